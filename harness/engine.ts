// A small stand-in for the Pulumi engine's update logic around the replay. Each step is planned
// as the engine and @pulumi/command v1.2.1 would (harness/steps.ts planStep): new → create; changed
// triggers → replace (create runs again); any other changed input → update, which runs `create`
// again with the NEW inputs, while inputs in ignoreChanges keep their OLD stored values. Only a
// step that succeeded is recorded in the state (with its stdout, which later steps may read), so
// a second `pulumi up` is a no-op and an apply that died after step k picks up from there. A step
// replaced with deleteBeforeReplace first runs the delete command stored with it (the engine runs
// a replaced step's delete too, but otherwise after the new create: not modelled here).
import { hostKeyFromStdout } from "../components/hostProvisioning";
import { HOST_KEY_PLACEHOLDER } from "./mockProgram";
import { DiffedInputs, planStep, ProgramStep, storedInputs } from "./steps";
import { orderSteps, replay, Step, StepConnection, StepResult } from "./replay";

/** What the engine remembers of each step: its inputs as it last ran, and its stdout output. */
export type EngineState = Map<string, { inputs: DiffedInputs; stdout: string; delete?: string }>;

export function toReplayStep(step: ProgramStep): Step {
  return {
    name: step.name,
    type: step.type,
    connection: step.connection,
    create: step.create,
    stdin: step.stdin,
    environment: step.environment,
    dependsOn: step.dependsOn,
  };
}

/**
 * Under mocks a step's stdout is a placeholder; on a real `up` a later step gets the real output.
 * Here that is the host key the first step recorded, which later steps pin.
 */
export function withOutputs(step: ProgramStep, state: EngineState): ProgramStep {
  const m = HOST_KEY_PLACEHOLDER.exec(step.connection.hostKey ?? "");
  if (!m) return step;
  const source = state.get(m[1]);
  if (!source) throw new Error(`step ${step.name} pins the host key of ${m[1]}, which has not run`);
  return { ...step, connection: { ...step.connection, hostKey: hostKeyFromStdout(source.stdout) } };
}

export interface ApplyOptions {
  /** Stop after this many steps of the ordered list (skipped ones count): an apply killed there. */
  stopAfter?: number;
  /** Run these steps even if nothing changed (proves a script can run twice). */
  force?: (step: ProgramStep) => boolean;
  /** Maps each connection, as the replay's option of that name (a droplet's address to the sandbox). */
  connectionOverride?: (c: StepConnection) => StepConnection;
  log?: (line: string) => void;
}

export interface ApplyResult {
  ran: (StepResult & { action: "create" | "replace" | "update" | "same" | "delete" })[];
  skipped: string[];
}

/** Applies the program's steps against the state, in dependency order, like `pulumi up`. */
export async function apply(
  steps: ProgramStep[],
  state: EngineState,
  opts: ApplyOptions = {},
): Promise<ApplyResult> {
  const log = opts.log ?? (() => undefined);
  const byName = new Map(steps.map((s) => [s.name, s]));
  // The replay's own ordering (and its checks for cycles and unknown dependencies).
  const ordered = orderSteps(steps.map(toReplayStep)).map((s) => byName.get(s.name)!);
  const limit = opts.stopAfter ?? ordered.length;
  const result: ApplyResult = { ran: [], skipped: [] };
  for (const step of ordered.slice(0, limit)) {
    const old = state.get(step.name);
    const { action, inputs } = planStep(withOutputs(step, state), old?.inputs);
    if (action === "same" && !opts.force?.(step)) {
      result.skipped.push(step.name);
      continue;
    }
    if (action === "replace" && step.deleteBeforeReplace && old?.delete !== undefined) {
      const [deleted] = await replay(
        [
          {
            name: step.name,
            type: step.type,
            connection: old.inputs.connection,
            create: old.delete,
            dependsOn: [],
          },
        ],
        { log, connectionOverride: opts.connectionOverride },
      );
      state.delete(step.name);
      result.ran.push({ ...deleted, action: "delete" });
    }
    // Dependencies are satisfied by the order; the replay runs this one step.
    const [ran] = await replay([{ ...toReplayStep(inputs), dependsOn: [] }], {
      log,
      connectionOverride: opts.connectionOverride,
    });
    state.set(step.name, { inputs: storedInputs(inputs), stdout: ran.stdout, delete: inputs.delete });
    result.ran.push({ ...ran, action });
  }
  return result;
}
