// Renders the remote steps' scripts: pure functions from values to the exact text the host runs.
import * as path from "path";
import { readRepoText } from "./hostFiles";

export type StepScript =
  | "ready"
  | "deployUser"
  | "docker"
  | "accessProof"
  | "harden"
  | "swap"
  | "dataVolume"
  | "appDirs"
  | "pushFiles"
  | "composeUp"
  | "healthCheck"
  | "backupCron"
  | "volumeRelease";

const stepsDir = path.join(__dirname, "steps");

export type StepParams = Record<string, string | number | boolean>;

function shellAssign(name: string, value: string | number | boolean): string {
  if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`bad step parameter name ${name}`);
  return `${name}=${shellQuote(String(value))}`;
}

/** Quotes a string for POSIX shells: single quotes, with embedded ones closed and escaped. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The complete script for a step: strict bash, its parameters, the shared helpers, its body. */
export function renderStepScript(step: StepScript, params: StepParams = {}): string {
  const lib = readRepoText(path.join(stepsDir, "lib.sh"));
  const body = readRepoText(path.join(stepsDir, `${step}.sh`));
  return [
    "#!/usr/bin/env bash",
    `# chitram step: ${step}`,
    "set -euo pipefail",
    ...Object.entries(params).map(([k, v]) => shellAssign(k, v)),
    lib,
    body,
  ].join("\n");
}

const sudoPrefix = {
  true: "sudo -n ",
  false: "",
  // Expands to `sudo -n` unless the connection user is already root (sh and bash alike).
  auto: '$([ "$(id -u)" -eq 0 ] || echo sudo -n) ',
};

/**
 * The command string a step runs: the script handed to bash, through `sudo -n` for root steps.
 * stdin stays free for the step's data.
 */
export function stepCommand(script: string, opts: { sudo: boolean | "auto" }): string {
  return `${sudoPrefix[String(opts.sudo) as keyof typeof sudoPrefix]}bash -c ${shellQuote(script)}`;
}
