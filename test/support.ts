// Shared helpers for the program tests: run the program under mocks with a stack's config.
import { spawnSync } from "node:child_process";
import { ProgramRun, readStackFile, RecordedResource, stackFile } from "../harness/mockProgram";
import { ProgramStep } from "../harness/steps";

export { runStack } from "../harness/steps";

export const STAGING = readStackFile(stackFile("staging"));
export const PROD = readStackFile(stackFile("prod"));
export const EXISTING = {
  appImage: "ghcr.io/example/chitram:1.0.0",
  target: "existing",
  host: "192.0.2.7",
  sshPort: "2222",
  sshUser: "root",
  sshPrivateKey: "PLACEHOLDER-bootstrap-key",
};

export function ofType(run: ProgramRun, type: string): RecordedResource[] {
  return run.resources.filter((r) => r.type === type);
}

export function named(run: ProgramRun, name: string): RecordedResource {
  const r = run.resources.find((x) => x.name === name);
  if (!r) throw new Error(`no resource named ${name}; have: ${run.resources.map((x) => x.name).join(", ")}`);
  return r;
}

export function step(run: { steps: ProgramStep[] }, name: string): ProgramStep {
  const s = run.steps.find((x) => x.name === name);
  if (!s) throw new Error(`no step ${name}; have: ${run.steps.map((x) => x.name).join(", ")}`);
  return s;
}

/** Runs a validator; throws with its output when it is missing or fails. */
export function tool(cmd: string, args: string[], input?: string): { code: number; out: string } {
  const r = spawnSync(cmd, args, { input, encoding: "utf8" });
  if (r.error)
    throw new Error(
      `${cmd} is not installed here (.ci/install-host-tools.sh installs it): ${r.error.message}`,
    );
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}
