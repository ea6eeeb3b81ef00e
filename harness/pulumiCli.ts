// The real Pulumi engine for tests and tools: the CLI, language host and plugins that
// tools/engine/build.sh builds, run against this repository's program with a file backend and a
// private PULUMI_HOME in a temporary directory. Nothing is downloaded (plugin acquisition and the
// update check are off) and nothing outside that directory is written.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ExecResult, run } from "./sandbox";

const REPO_ROOT = path.resolve(__dirname, "..");
const BUILD_SCRIPT = path.join(REPO_ROOT, "tools", "engine", "build.sh");
/** The passphrase of the test stacks' secrets (file backend). */
export const TEST_PASSPHRASE = "chitram-engine-tests";

let building: Promise<string> | undefined;

/**
 * The directory of the built engine (bin/, plugins/), built on first use: seconds when it is
 * cached, about 15 minutes on a machine with cold Go caches (docs/ENGINE.md).
 */
export function engineDir(): Promise<string> {
  building ??= run("bash", [BUILD_SCRIPT], { timeoutMs: 60 * 60_000 }).then((r) => {
    const dir = r.stdout.trim().split("\n").pop() ?? "";
    if (!fs.existsSync(path.join(dir, ".complete")))
      throw new Error(`${BUILD_SCRIPT} printed no engine directory`);
    return dir;
  });
  return building;
}

/** The environment the CLI runs in: the built engine first on PATH, then Node 22 of node_modules. */
export function engineEnv(engine: string, home: string, backend: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: [path.join(engine, "bin"), path.join(REPO_ROOT, "node_modules", ".bin"), process.env.PATH].join(
      ":",
    ),
    PULUMI_HOME: home,
    PULUMI_BACKEND_URL: `file://${backend}`,
    PULUMI_CONFIG_PASSPHRASE: TEST_PASSPHRASE,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_SKIP_CONFIRMATIONS: "true",
    NO_COLOR: "1",
  };
  delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
  delete env.PULUMI_ACCESS_TOKEN;
  delete env.CHITRAM_UNDER_MOCKS; // the real engine makes the real deploy's checks
  return env;
}

export interface PulumiOptions {
  /** Written to stdin. */
  input?: string;
  /** Reject on a non-zero exit (default true). */
  check?: boolean;
  /** Kill the CLI (and what it started) after this many ms. Default 15 minutes. */
  timeoutMs?: number;
  /** More environment for this one command (e.g. a DigitalOcean API endpoint). */
  env?: NodeJS.ProcessEnv;
}

export interface RunningCommand {
  /** Output so far. */
  output(): string;
  /** Kills the CLI and every process it started (its process group) with SIGKILL. */
  kill(): void;
  done: Promise<ExecResult>;
}

/**
 * One stack of this project in a scratch directory: Pulumi.yaml's copy (its `main` is the
 * repository, so the real program runs), the stack's settings file, the file backend and the
 * PULUMI_HOME whose plugins are the built ones.
 */
export class PulumiStack {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;

  private constructor(
    readonly stack: string,
    dir: string,
    env: NodeJS.ProcessEnv,
  ) {
    this.dir = dir;
    this.env = env;
  }

  /**
   * A new, empty stack (`pulumi stack init`). `program`: the directory of the program it runs
   * (default: this repository), e.g. an older commit's checkout.
   */
  static async create(
    stack: string,
    opts: { env?: NodeJS.ProcessEnv; program?: string } = {},
  ): Promise<PulumiStack> {
    const engine = await engineDir();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-engine-"));
    const project = path.join(dir, "project");
    const home = path.join(dir, "home");
    const backend = path.join(dir, "state");
    for (const d of [project, home, backend]) fs.mkdirSync(d);
    fs.symlinkSync(path.join(engine, "plugins"), path.join(home, "plugins"));
    const s = new PulumiStack(stack, dir, { ...engineEnv(engine, home, backend), ...opts.env });
    s.runProgram(opts.program ?? REPO_ROOT);
    await s.pulumi(["stack", "init"]);
    return s;
  }

  /** From now on the stack runs the program in `dir` (its Pulumi.yaml, with `main` pointing there). */
  runProgram(dir: string): void {
    const yaml = fs.readFileSync(path.join(dir, "Pulumi.yaml"), "utf8");
    const main = path.relative(this.projectDir, dir);
    fs.writeFileSync(
      path.join(this.projectDir, "Pulumi.yaml"),
      yaml.replace(/^main:.*\n/m, "").replace(/^runtime:/m, `main: ${main}\nruntime:`),
    );
  }

  /** The project directory the CLI runs in (it holds Pulumi.<stack>.yaml). */
  get projectDir(): string {
    return path.join(this.dir, "project");
  }

  /** The file backend's directory. */
  get stateDir(): string {
    return path.join(this.dir, "state");
  }

  /** Starts `pulumi <args> --stack <stack>`; the caller may kill it. */
  start(args: string[], opts: PulumiOptions = {}): RunningCommand {
    const child = spawn("pulumi", [...args, "--stack", this.stack, "--non-interactive", "--color", "never"], {
      cwd: this.projectDir,
      env: { ...this.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
      detached: true, // its own process group: kill() reaches the language host and the plugins
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const kill = () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
      killPluginsOf(String(this.env.PULUMI_HOME));
    };
    const timeoutMs = opts.timeoutMs ?? 15 * 60_000;
    const done = new Promise<ExecResult>((resolve, reject) => {
      const timer = setTimeout(kill, timeoutMs);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`pulumi: ${e.message}`));
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
    return { output: () => stdout + stderr, kill, done };
  }

  /** Runs `pulumi <args>`; rejects on a non-zero exit with the CLI's output, unless check is false. */
  async pulumi(args: string[], opts: PulumiOptions = {}): Promise<ExecResult> {
    const r = await this.start(args, opts).done;
    if ((opts.check ?? true) && r.code !== 0) {
      throw new Error(
        `pulumi ${args.join(" ")} exited with ${r.code}\n${(r.stdout + r.stderr).slice(-6000)}`,
      );
    }
    return r;
  }

  /** Sets `chitram:<key>` values; secrets travel on stdin, never in argv. */
  async configure(plain: Record<string, string>, secrets: Record<string, string> = {}): Promise<void> {
    const entries = Object.entries(plain);
    if (entries.length) {
      await this.pulumi([
        "config",
        "set-all",
        ...entries.flatMap(([k, v]) => ["--plaintext", `chitram:${k}=${v}`]),
      ]);
    }
    for (const [key, value] of Object.entries(secrets)) {
      await this.pulumi(["config", "set", "--secret", `chitram:${key}`], { input: value });
    }
  }

  async up(args: string[] = [], opts: PulumiOptions = {}): Promise<ExecResult> {
    return this.pulumi(["up", "--yes", "--skip-preview", ...args], opts);
  }

  /** `pulumi preview --json`: the steps the engine plans. */
  async previewJson(args: string[] = []): Promise<PreviewJson> {
    const r = await this.pulumi(["preview", "--json", ...args]);
    return JSON.parse(r.stdout) as PreviewJson;
  }

  /** `pulumi stack export --show-secrets=false`: the state as the backend holds it. */
  async exportState(): Promise<string> {
    return (await this.pulumi(["stack", "export"])).stdout;
  }

  /** `pulumi stack output --json` (secrets as "[secret]"). */
  async outputs(): Promise<Record<string, unknown>> {
    return JSON.parse((await this.pulumi(["stack", "output", "--json"])).stdout) as Record<string, unknown>;
  }

  /** The secret output's value. */
  async secretOutput(name: string): Promise<string> {
    return (await this.pulumi(["stack", "output", "--show-secrets", name])).stdout.replace(/\n$/, "");
  }

  /** Removes the scratch directory (the stack's state with it), and any plugin left running. */
  remove(): void {
    killPluginsOf(String(this.env.PULUMI_HOME));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * SIGKILLs every process whose environment names this PULUMI_HOME: the CLI starts the language
 * host and each plugin in a process group of its own, so a CLI killed with its group leaves them
 * running (as on a laptop whose `pulumi up` was killed).
 */
function killPluginsOf(home: string): void {
  const marker = Buffer.from(`\0PULUMI_HOME=${home}\0`);
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let environ: Buffer;
    try {
      environ = Buffer.concat([Buffer.from([0]), fs.readFileSync(`/proc/${pid}/environ`), Buffer.from([0])]);
    } catch {
      continue; // gone, or not ours to read
    }
    if (environ.includes(marker) && Number(pid) !== process.pid) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }
}

export interface PreviewStep {
  op: string;
  urn: string;
  diffReasons?: string[];
  replaceReasons?: string[];
}

export interface PreviewJson {
  steps: PreviewStep[];
  changeSummary: Record<string, number>;
  diagnostics?: { message: string; severity: string; urn?: string }[];
}

/** The resource name at the end of a URN. */
export const urnName = (urn: string): string => urn.split("::").pop() ?? urn;

/** The resources a preview plans to change, by name, with their operations. */
export function plannedChanges(preview: PreviewJson): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of preview.steps.filter((x) => x.op !== "same")) (out[urnName(s.urn)] ??= []).push(s.op);
  return out;
}

/** A resource as `pulumi stack export` holds it (secrets still encrypted). */
export interface StateResource {
  urn: string;
  type: string;
  id?: string;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
}

export interface StateExport {
  deployment: {
    resources?: StateResource[];
    pending_operations?: { type: string; resource: StateResource }[];
  };
}

/** The resources of the stack's state. */
export async function stateResources(stack: PulumiStack): Promise<StateResource[]> {
  const state = JSON.parse(await stack.exportState()) as StateExport;
  return state.deployment.resources ?? [];
}
