// The program's remote steps, as the engine would run them: each @pulumi/command resource with
// its resolved inputs and the other steps it waits for (directly or through other resources).
import { ProgramRun, RecordedResource, runProgram, SECRET_MASK } from "./mockProgram";
import type { StepConnection } from "./replay";

export const STEP_TYPES = ["command:remote:Command"] as const;

export type { StepConnection };

export interface ProgramStep {
  name: string;
  type: (typeof STEP_TYPES)[number];
  connection: StepConnection;
  create?: string;
  /** Run when the step is deleted or replaced. */
  delete?: string;
  stdin?: string;
  environment?: Record<string, string>;
  triggers: unknown[];
  /** Names of the steps this one waits for. */
  dependsOn: string[];
  /** Inputs that are secret (dotted paths). */
  secretPaths: string[];
  /** Resource options that matter for re-runs. */
  ignoreChanges: string[];
  /** Inputs whose change replaces the step, like a change of its triggers. */
  replaceOnChanges: string[];
  /** On a replacement the old step's delete runs before the new create. */
  deleteBeforeReplace: boolean;
  logging?: string;
}

function isStep(r: RecordedResource): boolean {
  return (STEP_TYPES as readonly string[]).includes(r.type);
}

/** Steps in registration order, each with the steps it depends on through any chain of resources. */
export function collectSteps(run: ProgramRun): ProgramStep[] {
  const byUrn = new Map(run.resources.map((r) => [r.urn, r]));
  const stepUrns = new Set(run.resources.filter(isStep).map((r) => r.urn));
  // Nearest steps reachable through dependencies, looking through non-step resources.
  const nearestSteps = (urn: string, seen = new Set<string>()): string[] => {
    const out: string[] = [];
    for (const dep of byUrn.get(urn)?.dependencies ?? []) {
      if (seen.has(dep)) continue;
      seen.add(dep);
      if (stepUrns.has(dep)) out.push(dep);
      else out.push(...nearestSteps(dep, seen));
    }
    return out;
  };
  return run.resources.filter(isStep).map((r) => {
    const inputs = r.inputs;
    return {
      name: r.name,
      type: r.type as ProgramStep["type"],
      connection: inputs.connection as StepConnection,
      create: inputs.create as string | undefined,
      delete: inputs.delete as string | undefined,
      stdin: inputs.stdin as string | undefined,
      environment: inputs.environment as Record<string, string> | undefined,
      triggers: (inputs.triggers as unknown[] | undefined) ?? [],
      dependsOn: [...new Set(nearestSteps(r.urn))].map((u) => byUrn.get(u)!.name),
      secretPaths: r.secretPaths,
      ignoreChanges: r.options.ignoreChanges,
      replaceOnChanges: r.options.replaceOnChanges,
      deleteBeforeReplace: r.options.deleteBeforeReplace,
      logging: inputs.logging as string | undefined,
    };
  });
}

/** A step as users read it in `render`: secrets masked, files listed rather than inlined. */
export function describeStep(step: ProgramStep, masked: RecordedResource): Record<string, unknown> {
  const maskedInputs = masked.maskedInputs;
  const stdinSecret = step.secretPaths.includes("stdin");
  return {
    name: step.name,
    type: step.type,
    sshUser: step.connection.user ?? "root",
    host: step.connection.host,
    port: step.connection.port ?? 22,
    command: step.create,
    ...(step.delete === undefined ? {} : { onDelete: step.delete }),
    stdin: step.stdin === undefined ? null : stdinSecret ? SECRET_MASK : step.stdin,
    dependsOn: step.dependsOn,
    triggers: maskedInputs.triggers ?? [],
    logging: step.logging ?? "stdoutAndStderr",
    ignoreChanges: step.ignoreChanges,
  };
}

/** The inputs the engine diffs for a Command (and stores after a successful run). */
export const DIFFED_INPUTS = ["connection", "create", "stdin", "environment", "triggers", "logging"] as const;
export type DiffedInputs = Pick<ProgramStep, (typeof DIFFED_INPUTS)[number]>;

/**
 * What `pulumi up` does with one step, given what the state holds of it. Mirrors the engine and
 * @pulumi/command v1.2.1: inputs listed in ignoreChanges keep their OLD stored values (also when
 * the step is replaced); a change of `triggers` or of an input in replaceOnChanges replaces the
 * step (create runs again); a change of any other input is an update, which runs `create` again with the new inputs (no step sets
 * `update`). `inputs` is the step as it will run and as the state will store it.
 */
export function planStep(
  step: ProgramStep,
  old: DiffedInputs | undefined,
): { action: "create" | "replace" | "update" | "same"; inputs: ProgramStep } {
  if (old === undefined) return { action: "create", inputs: step };
  const inputs: ProgramStep = { ...step };
  for (const key of DIFFED_INPUTS) {
    if (step.ignoreChanges.includes(key)) Object.assign(inputs, { [key]: old[key] });
  }
  // A property of the connection (connection.hostKey) keeps its stored value the same way.
  for (const ignored of step.ignoreChanges.filter((k) => k.startsWith("connection."))) {
    const prop = ignored.slice("connection.".length) as keyof StepConnection;
    const connection: Record<string, unknown> = { ...inputs.connection };
    if (old.connection[prop] === undefined) delete connection[prop];
    else connection[prop] = old.connection[prop];
    inputs.connection = connection as unknown as StepConnection;
  }
  const same = (key: (typeof DIFFED_INPUTS)[number]) =>
    JSON.stringify(inputs[key] ?? null) === JSON.stringify(old[key] ?? null);
  const replacing = ["triggers", ...step.replaceOnChanges] as (typeof DIFFED_INPUTS)[number][];
  if (!replacing.every(same)) return { action: "replace", inputs };
  return { action: DIFFED_INPUTS.every(same) ? "same" : "update", inputs };
}

/** The inputs of a step the state keeps. */
export function storedInputs(step: ProgramStep): DiffedInputs {
  return Object.fromEntries(DIFFED_INPUTS.map((k) => [k, step[k]])) as DiffedInputs;
}

/** Runs the program under mocks with a stack's config and collects its remote steps. */
export async function runStack(
  stack: string,
  config: Record<string, string>,
  values: "placeholders" | "real" = "placeholders",
  /** Keys also set as secrets, beyond those that must be (e.g. a token as registryUsername). */
  moreSecretKeys: string[] = [],
): Promise<ProgramRun & { steps: ProgramStep[] }> {
  const secretKeys = [
    "sshPrivateKey",
    "backupHeartbeatUrl",
    "offsiteAccessKey",
    "offsiteSecretKey",
    "registryPassword",
    ...moreSecretKeys,
  ].filter((k) => k in config);
  const run = await runProgram({ stack, config, secretKeys, values });
  return { ...run, steps: collectSteps(run) };
}
