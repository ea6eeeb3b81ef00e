/**
 * Replays the remote steps of the Pulumi program over real SSH, the way the @pulumi/command
 * provider (v1.2.1, Go, golang.org/x/crypto/ssh + pkg/sftp) runs them on `pulumi up`.
 *
 * The Pulumi CLI cannot run here, so the program is evaluated under mocks (another harness),
 * every `remote.Command` is collected with its resolved inputs as a
 * `Step`, and this module plays them against a throw-away host. docs/REPLAY.md lists each
 * provider behaviour mirrored here and the ones that are not.
 */
import { Client, utils } from "ssh2";
import type { ClientChannel, ConnectConfig, ParsedKey, SFTPWrapper } from "ssh2";

export interface StepConnection {
  host: string;
  port?: number;
  user?: string;
  privateKey?: string;
  privateKeyPassword?: string;
  password?: string;
  dialErrorLimit?: number;
  perDialTimeout?: number;
  /** OpenSSH public key line ("ssh-ed25519 AAAA..."); when set, any other host key fails the dial. */
  hostKey?: string;
}

export interface Step {
  /** Pulumi resource name. */
  name: string;
  type: "command:remote:Command";
  connection: StepConnection;
  create?: string;
  stdin?: string;
  environment?: Record<string, string>;
  /** Names of the steps this step depends on. */
  dependsOn: string[];
}

export interface StepResult {
  name: string;
  stdout: string;
  stderr: string;
  seconds: number;
}

export interface ReplayOptions {
  /** Run only the first k steps in order (simulates an apply killed after step k). */
  stopAfter?: number;
  /** Tests map host/port to 127.0.0.1:<published port>. */
  connectionOverride?: (c: StepConnection) => StepConnection;
  log?: (line: string) => void;
}

export class StepError extends Error {
  constructor(
    message: string,
    readonly step: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = "StepError";
  }
}

const COMMAND = "command:remote:Command";

// Provider defaults (connection.go): user "root", port 22, dialErrorLimit 10, perDialTimeout 15 s.
const DEFAULT_DIAL_ERROR_LIMIT = 10;
const DEFAULT_PER_DIAL_TIMEOUT_S = 15;
// Backoff of pulumi's retry.Until, which the provider's dialWithRetry uses: 100 ms, x1.5, max 5 s.
const RETRY_FIRST_DELAY_MS = 100;
const RETRY_BACKOFF = 1.5;
const RETRY_MAX_DELAY_MS = 5_000;
// Not in the provider: dialErrorLimit -1 retries forever there; a test must not hang forever.
const DIAL_CAP_MS = 300_000;
const TAIL_LINES = 20;

/**
 * Topological order of the steps, stable: among steps that are ready, the earliest in the input
 * goes first, so independent steps keep their input order. Throws on a duplicate name, an
 * unknown dependency or a cycle, naming the steps.
 */
export function orderSteps(steps: Step[]): Step[] {
  const names = new Set<string>();
  for (const s of steps) {
    if (names.has(s.name)) throw new Error(`duplicate step name "${s.name}"`);
    names.add(s.name);
  }
  for (const s of steps) {
    for (const d of s.dependsOn) {
      if (!names.has(d)) throw new Error(`step "${s.name}" depends on unknown step "${d}"`);
    }
  }
  const done = new Set<string>();
  const ordered: Step[] = [];
  while (ordered.length < steps.length) {
    const next = steps.find((s) => !done.has(s.name) && s.dependsOn.every((d) => done.has(d)));
    if (!next) throw new Error(`dependency cycle: ${findCycle(steps, done).join(" -> ")}`);
    done.add(next.name);
    ordered.push(next);
  }
  return ordered;
}

// Every step left over has a dependency that is also left over (else it would be ready), so
// following those dependencies must come back to a step already seen: that loop is a cycle.
function findCycle(steps: Step[], done: Set<string>): string[] {
  const byName = new Map(steps.map((s) => [s.name, s]));
  let cur = steps.find((s) => !done.has(s.name))!;
  const path: string[] = [];
  while (!path.includes(cur.name)) {
    path.push(cur.name);
    cur = byName.get(cur.dependsOn.find((d) => !done.has(d))!)!;
  }
  return [...path.slice(path.indexOf(cur.name)), cur.name];
}

/**
 * Runs the steps one at a time in dependency order, a fresh SSH connection per step, and
 * returns what each printed. The first failing step throws a StepError; later steps do not run.
 */
export async function replay(steps: Step[], opts: ReplayOptions = {}): Promise<StepResult[]> {
  const log = opts.log ?? ((line: string) => console.log(line));
  // Check every step before touching the host, so a typo cannot leave it half-applied.
  for (const s of steps) checkStep(s);
  let ordered = orderSteps(steps);
  if (opts.stopAfter !== undefined) {
    if (!Number.isInteger(opts.stopAfter) || opts.stopAfter < 0) {
      throw new Error(`stopAfter must be a non-negative integer, got ${opts.stopAfter}`);
    }
    ordered = ordered.slice(0, opts.stopAfter);
  }
  const results: StepResult[] = [];
  for (const step of ordered) {
    const started = Date.now();
    const seconds = () => (Date.now() - started) / 1000;
    try {
      const connection = opts.connectionOverride ? opts.connectionOverride(step.connection) : step.connection;
      const out = await runStep(step, connection);
      results.push({ name: step.name, ...out, seconds: seconds() });
      log(`replay: ${step.name} ok (${seconds().toFixed(1)} s)`);
    } catch (err) {
      log(`replay: ${step.name} FAILED (${seconds().toFixed(1)} s)`);
      if (err instanceof StepError) throw err;
      const message = err instanceof Error ? err.message : String(err);
      throw new StepError(`step ${step.name} failed: ${message}`, step.name, null, "", "");
    }
  }
  return results;
}

function checkStep(s: Step): void {
  if (s.type !== COMMAND) throw new Error(`step "${s.name}": unknown step type "${String(s.type)}"`);
}

async function runStep(step: Step, c: StepConnection): Promise<{ stdout: string; stderr: string }> {
  // The provider's Create returns without dialling when `create` is unset.
  if (step.create === undefined) return { stdout: "", stderr: "" };
  const client = await dial(c);
  try {
    return await runCommand(client, step);
  } finally {
    client.end();
  }
}

// ---- connection -------------------------------------------------------------------------------

/**
 * Dial like the provider's Connection.Dial: any failure (refused, reset, timeout, handshake or
 * auth failure: ssh.Dial returns them all) is retried after a growing delay; the step fails once
 * the number of failed dials exceeds dialErrorLimit (so the default 10 makes 11 attempts). With -1
 * it never gives up, short of this replay's overall cap.
 */
async function dial(c: StepConnection): Promise<Client> {
  const limit = c.dialErrorLimit ?? DEFAULT_DIAL_ERROR_LIMIT;
  const perDialMs = (c.perDialTimeout ?? DEFAULT_PER_DIAL_TIMEOUT_S) * 1000;
  const config = connectConfig(c); // a bad key fails here, undialled, as in the provider's SShConfig()
  const hostKey = c.hostKey === undefined ? undefined : parseHostKey(c.hostKey);
  const where = `${config.host}:${config.port}`;
  const deadline = Date.now() + DIAL_CAP_MS;
  let delay = RETRY_FIRST_DELAY_MS;
  for (let dials = 1; ; dials++) {
    const left = Math.max(1, deadline - Date.now());
    try {
      // perDialTimeout 0 means "no maximum" in the provider; here the overall cap still applies.
      return await dialOnce(config, perDialMs > 0 ? Math.min(perDialMs, left) : left, hostKey);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      if (limit > -1 && dials > limit) {
        throw new Error(`dial ${where}: ${dials} failed attempts (dialErrorLimit ${limit}): ${why}`);
      }
      delay = Math.min(delay, RETRY_MAX_DELAY_MS);
      if (Date.now() + delay >= deadline) {
        throw new Error(`dial ${where}: gave up at the replay's ${DIAL_CAP_MS / 1000} s cap: ${why}`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay *= RETRY_BACKOFF;
    }
  }
}

function connectConfig(c: StepConnection): ConnectConfig {
  const config: ConnectConfig = { host: c.host, port: c.port ?? 22, username: c.user ?? "root" };
  // No `agent`: ssh2 uses an agent only when told to. (The provider would also try
  // $SSH_AUTH_SOCK; the replay must prove the stack's own key is enough.)
  if (c.privateKey !== undefined) {
    const parsed = utils.parseKey(c.privateKey, c.privateKeyPassword);
    if (parsed instanceof Error) throw new Error(`connection.privateKey: ${parsed.message}`);
    config.privateKey = c.privateKey;
    if (c.privateKeyPassword !== undefined) config.passphrase = c.privateKeyPassword;
  }
  if (c.password !== undefined) {
    // The provider offers password and keyboard-interactive (answering every question with it).
    config.password = c.password;
    config.tryKeyboard = true;
  }
  return config;
}

/**
 * The provider's `hostKey`: `ssh.ParseAuthorizedKey`, then `ssh.FixedHostKey` and only that key's
 * algorithm offered. A host key that is not the pinned one fails the handshake with x/crypto's
 * "ssh: host key mismatch", a dial error like any other (retried up to dialErrorLimit).
 */
function parseHostKey(line: string): { type: string; blob: Buffer } {
  const parsed = utils.parseKey(line);
  if (parsed instanceof Error) throw new Error(`failed to parse host key: ${parsed.message}`);
  const key: ParsedKey = Array.isArray(parsed) ? (parsed as ParsedKey[])[0] : parsed;
  return { type: key.type, blob: key.getPublicSSH() };
}

function dialOnce(
  config: ConnectConfig,
  timeoutMs: number,
  hostKey?: { type: string; blob: Buffer },
): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let mismatch = false;
    // readyTimeout spans TCP connect, handshake and auth in ssh2.
    client.on("error", (err) => {
      client.destroy();
      reject(mismatch ? new Error("ssh: handshake failed: ssh: host key mismatch") : err);
    });
    client.on("keyboard-interactive", (_name, _instr, _lang, prompts, finish) => {
      finish(prompts.map(() => config.password ?? ""));
    });
    client.once("ready", () => resolve(client));
    const pin: Partial<ConnectConfig> = hostKey
      ? {
          algorithms: { serverHostKey: [hostKey.type as never] },
          hostVerifier: (key: Buffer) => (mismatch = !key.equals(hostKey.blob)) === false,
        }
      : {};
    client.connect({ ...config, ...pin, readyTimeout: timeoutMs });
  });
}

// ---- command ----------------------------------------------------------------------------------

async function runCommand(client: Client, step: Step): Promise<{ stdout: string; stderr: string }> {
  const env = step.environment ?? {};
  const hasEnv = Object.keys(env).length > 0;
  if (hasEnv) {
    const refused = await firstRefusedEnv(client, env);
    if (refused !== undefined) {
      throw new StepError(
        `step ${step.name} failed: could not set environment variable "${refused}": the server ` +
          `refused the SSH env request (sshd only accepts names listed in AcceptEnv)`,
        step.name,
        null,
        "",
        "",
      );
    }
  }
  // exec as given: the server runs it as `<login shell> -c <create>`. No PTY (none requested).
  // `env` sends the same SSH "env" requests as the provider, so accepted variables are set.
  const stdoutChunks: Buffer[] = [];
  const stderrChunks: Buffer[] = [];
  const exit: { code: number | null; signal?: string } = { code: null };
  await new Promise<void>((resolve, reject) => {
    client.exec(step.create!, hasEnv ? { env } : {}, (err, channel: ClientChannel) => {
      if (err) return reject(err);
      // Listeners go on in this callback, not after an await: when the exit status arrives in the
      // same read as the exec reply (a fast command, a busy event loop), ssh2 emits "exit" in the
      // same tick, and a listener added a microtask later never hears it.
      channel.on("data", (b: Buffer) => stdoutChunks.push(b));
      channel.stderr.on("data", (b: Buffer) => stderrChunks.push(b));
      channel.on("exit", (code: number | null, signal?: string) => {
        exit.code = code;
        exit.signal = signal;
      });
      channel.on("close", () => resolve());
      // Go's session.Run copies Stdin (an empty reader when unset) and then closes it: EOF.
      channel.end(step.stdin ? step.stdin : undefined);
    });
  });
  const stdout = Buffer.concat(stdoutChunks).toString("utf8");
  const stderr = Buffer.concat(stderrChunks).toString("utf8");
  const { code: exitCode, signal } = exit;
  if (exitCode !== 0) {
    const output = tail(stderr.trim() ? stderr : stdout);
    const how =
      exitCode !== null ? `exit ${exitCode}` : signal !== undefined ? `signal ${signal}` : "no exit status";
    throw new StepError(
      `step ${step.name} failed (${how})${output ? `: ${output}` : ""}`,
      step.name,
      exitCode,
      stdout,
      stderr,
    );
  }
  // The provider's stdout/stderr outputs drop one trailing newline.
  return { stdout: stdout.replace(/\n$/, ""), stderr: stderr.replace(/\n$/, "") };
}

function tail(text: string): string {
  return text.replace(/\n+$/, "").split("\n").slice(-TAIL_LINES).join("\n");
}

type SftpWithEnv = (
  env: Record<string, string>,
  cb: (err: Error | undefined, sftp: SFTPWrapper | undefined) => void,
) => void;

/**
 * The provider (commandOutputs.go, since pulumi-command PR #395) calls Go's session.Setenv for
 * each variable, which asks for a reply, and fails the step when the server says no, as a sshd
 * without a matching AcceptEnv does. ssh2's exec({env}) asks for no reply, so it cannot see the
 * refusal; its sftp(env) is the one public call that does. Probe each variable on a throw-away
 * channel, one per variable because ssh2 waits for a single reply per call.
 */
async function firstRefusedEnv(client: Client, env: Record<string, string>): Promise<string | undefined> {
  const sftpWithEnv = (client.sftp as unknown as SftpWithEnv).bind(client);
  for (const [key, value] of Object.entries(env)) {
    const err = await new Promise<Error | undefined>((resolve) => {
      sftpWithEnv({ [key]: value }, (e, sftp) => {
        sftp?.end();
        resolve(e);
      });
    });
    // Any other error comes after the env reply (e.g. no sftp subsystem): the variable passed.
    if (err?.message === "Unable to set environment") return key;
  }
  return undefined;
}

// ---- copy -------------------------------------------------------------------------------------
