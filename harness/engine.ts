// A small stand-in for the Pulumi engine's update logic around the replay: a step runs when it is
// new or when an input it does not ignore has changed since its last successful run, and only a
// step that succeeded is recorded in the state. That is what makes a second `pulumi up` a no-op
// and lets an apply that died after step k pick up from there.
import { createHash } from "node:crypto";
import { ProgramStep } from "./steps";
import { orderSteps, replay, Step, StepResult } from "./replay";

/** What the engine remembers of each step: a hash of the inputs that decide whether it re-runs. */
export type EngineState = Map<string, string>;

const DIFFED_INPUTS = ["connection", "create", "stdin", "environment", "triggers"] as const;

function inputsHash(step: ProgramStep): string {
  const relevant = Object.fromEntries(
    DIFFED_INPUTS.filter((k) => !step.ignoreChanges.includes(k)).map((k) => [
      k,
      step[k as keyof ProgramStep],
    ]),
  );
  return createHash("sha256").update(JSON.stringify(relevant)).digest("hex");
}

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

export interface ApplyOptions {
  /** Stop after this many steps of the ordered list (skipped ones count): an apply killed there. */
  stopAfter?: number;
  /** Run these steps even if nothing changed (proves a script can run twice). */
  force?: (step: ProgramStep) => boolean;
  log?: (line: string) => void;
}

export interface ApplyResult {
  ran: StepResult[];
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
    const hash = inputsHash(step);
    if (state.get(step.name) === hash && !opts.force?.(step)) {
      result.skipped.push(step.name);
      continue;
    }
    // Dependencies are satisfied by the order; the replay runs this one step.
    const [ran] = await replay([{ ...toReplayStep(step), dependsOn: [] }], { log });
    state.set(step.name, hash);
    result.ran.push(ran);
  }
  return result;
}
