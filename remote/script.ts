// Renders the remote steps' scripts: pure functions from values to the exact text the host runs.
import * as path from "path";
import { readRepoText } from "./transfer";

/** Every step's script: host/steps/<name>.sh. */
export const STEP_SCRIPTS = [
  "ready",
  "deployUser",
  "hostKey",
  "deployKeysRemove",
  "docker",
  "accessProof",
  "harden",
  "sshdRestore",
  "swap",
  "dataVolume",
  "appDirs",
  "pushFiles",
  "registryLogin",
  "registryLogout",
  "databaseGrant",
  "composeUp",
  "lbRelease",
  "healthCheck",
  "backupCron",
  "volumeRelease",
] as const;
export type StepScript = (typeof STEP_SCRIPTS)[number];

/** The files of host/steps/ a step's script is made of, after lib.sh: its parts, then its own. */
export function stepFiles(step: StepScript): string[] {
  const within = STEP_WITHIN[step];
  return [...(within ? stepFiles(within.step) : []), ...(STEP_PARTS[step] ?? []), `${step}.sh`];
}

// The release step is long enough to read as three files: its two parts define the functions
// that composeUp.sh runs.
const STEP_PARTS: Partial<Record<StepScript, string[]>> = {
  composeUp: ["release/services.sh", "release/app.sh"],
  lbRelease: ["release/drain.sh"],
};

// A step that runs another one whole, as a function whose body is a subshell (its traps, exits
// and `cd` stay inside): the release behind a load balancer runs composeUp.sh between taking its
// droplet out and putting it back.
const STEP_WITHIN: Partial<Record<StepScript, { step: StepScript; fn: string }>> = {
  lbRelease: { step: "composeUp", fn: "release_step" },
};

function stepBody(step: StepScript): string {
  const read = (f: string) => readRepoText(path.join(STEPS_DIR, f));
  const within = STEP_WITHIN[step];
  // shellcheck does not follow a trap set inside the subshell to its handler (on_term).
  const inner = within
    ? `# shellcheck disable=SC2317\n${within.fn}() (\nset -e\n${stepFiles(within.step).map(read).join("")})\n`
    : "";
  return inner + [...(STEP_PARTS[step] ?? []), `${step}.sh`].map(read).join("");
}

export const STEPS_DIR = path.join(__dirname, "..", "host", "steps");

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
  const lib = readRepoText(path.join(STEPS_DIR, "lib.sh"));
  const body = stepBody(step);
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

/** A time limit as `timeout` (coreutils) reads it: a whole number of seconds, minutes or hours. */
export const STEP_LIMIT = /^[1-9][0-9]*[smh]$/;

/** Seconds between the TERM a step gets at its limit and the KILL that follows if it ignores it (by default). */
export const KILL_AFTER_S = 30;

/**
 * The command string a step runs: the script handed to bash, through `sudo -n` for root steps,
 * under `timeout`, which the host enforces (the provider's customTimeouts bound only the dial). At
 * its limit the script and everything it started get TERM, then KILL; the step fails with a line
 * that names it and its limit, and as a failed create leaves nothing in the state, the next `up`
 * runs it again. stdin stays free for the step's data.
 */
export function stepCommand(
  script: string,
  opts: { sudo: boolean | "auto"; step: string; limit: string; killAfterSeconds?: number },
): string {
  if (!STEP_LIMIT.test(opts.limit)) throw new Error(`step ${opts.step}: bad time limit "${opts.limit}"`);
  const sudo = sudoPrefix[String(opts.sudo) as keyof typeof sudoPrefix];
  const stopped = `chitram: step ${opts.step} did not finish within its ${opts.limit} limit and was stopped; the next pulumi up runs it again`;
  const killed = `chitram: step ${opts.step} was killed (signal 9): it ignored the stop at its ${opts.limit} limit, or ran out of memory`;
  // POSIX sh: the login shell of the connection user runs this line.
  return [
    `${sudo}timeout --kill-after=${opts.killAfterSeconds ?? KILL_AFTER_S}s ${opts.limit} bash -c ${shellQuote(script)}`,
    "rc=$?",
    `if [ "$rc" -eq 124 ]; then echo ${shellQuote(stopped)} >&2; fi`,
    `if [ "$rc" -eq 137 ]; then echo ${shellQuote(killed)} >&2; fi`,
    'exit "$rc"',
  ].join("; ");
}
