// The real Pulumi CLI deploys the whole stack to a throw-away "droplet" container on this machine:
// target existing, host 127.0.0.1, state in a local file backend under .sandbox/. Nothing in
// DigitalOcean is touched. See docs/DEPLOYING.md ("Laptop sandbox").
//
//   npm run sandbox [-- --base IMAGE] [--stand-ins] [--engine E] [--dry-run]   build, start the droplet, pulumi up
//   npm run sandbox:down [-- --engine E] [--dry-run]   pulumi destroy (best effort), remove the droplet
//   npm run sandbox -- --target digitalocean [--scale] [--engine E] [--dry-run]   the DigitalOcean path:
//     the stack as users deploy it (target digitalocean, the real DigitalOcean provider) against a
//     local DigitalOcean API (harness/doApi.ts) that starts sandbox droplets; it runs in the
//     foreground, and Ctrl-C destroys the stack and stops the API. --scale deploys the scaled
//     shape: three app droplets behind a load balancer (appHosts 3), a managed PostgreSQL
//     cluster and a Spaces bucket, each a container of the local API.
//
// --base is the droplet's base image: ubuntu:22.04 (default, what the droplets run; when it cannot
// be pulled, local/bookworm:base, the debootstrap base sandbox/build.sh builds).
// --engine: `launcher` runs `npx pulumi` (the npm launcher downloads the official CLI and
// plugins); `built` runs the engine tools/engine/build.sh builds from ../shared/engine-src;
// `auto` (default) asks the launcher for its version and builds when it cannot download.
// The droplet runs the real PostgreSQL, MinIO and Caddy images when a registry answers
// `docker pull`; else (or with --stand-ins) the stand-ins from sandbox/build.sh, which keep their
// private names on this machine and get the production tags only inside the droplet. The app is
// always the stand-in chitram-app:sandbox. The output says which images run.
// --dry-run prints the commands without running any; values known only once the droplet runs
// (its published ports) appear as <ssh port> and <http port>.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  buildImages,
  DROPLET_IMAGE,
  DropletImage,
  dropletRunArgs,
  ensureDockerd,
  run,
  SANDBOX_LABEL,
  startDroplet,
} from "../harness/sandbox";
import { dropletAddress, emptyAppBuckets, LocalDoApi, startLocalDoApi } from "../harness/doApi";
import { APP_DIR, SANDBOX_APP_IMAGE, SERVICE_IMAGES } from "../hostContract";
import { shellQuote } from "../remote/script";

const ROOT = path.resolve(__dirname, "..");
const STACK = "sandbox";
// Both can be moved for a second sandbox beside the first (the engine test runs one).
export const DROPLET_NAME = process.env.CHITRAM_SANDBOX_NAME ?? "chitram-sandbox";
export const DEFAULT_BASE = "ubuntu:22.04";
/** Built by sandbox/build.sh, which also builds the droplet image from it. */
const DEBOOTSTRAP_BASE = "local/bookworm:base";
/** The app stand-in built by sandbox/build.sh and loaded into the droplet's engine. */
const PASSPHRASE = "sandbox";

// Paths relative to the repository root: commands run there and print the way a person types them.
const WORK = process.env.CHITRAM_SANDBOX_WORK ?? ".sandbox";
const STATE_DIR = `${WORK}/state`;
// `pulumi stack init` writes the new stack's settings file (with its encryption salt) next to the
// Pulumi.yaml it finds, and has no --config-file flag. It runs against a copy of Pulumi.yaml in
// here, so Pulumi.sandbox.yaml lands in .sandbox/ (ignored by git); every other command is given
// that file with --config-file and runs the real program from the repository root.
const PROJECT_DIR = `${WORK}/project`;
const CONFIG_FILE = `${PROJECT_DIR}/Pulumi.${STACK}.yaml`;
const KEY_FILE = `${WORK}/bootstrap_ed25519`;

interface Ports {
  ssh: string;
  http: string;
}

interface Action {
  /** The command as a person would type it from the repository root. */
  show(ports: Ports): string;
  run(ports: Ports): Promise<void>;
}

const quote = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : shellQuote(arg));
const commandLine = (argv: string[]) => argv.map(quote).join(" ");

/** How `pulumi` is run: the npm launcher's official CLI, or the engine built from source. */
interface Engine {
  argv: string[];
  /** What runs it: put before the commands when running them by hand. */
  env: Record<string, string>;
}
const LAUNCHER: Engine = { argv: ["npx", "pulumi"], env: {} };
let engine: Engine = LAUNCHER;
/** The local DigitalOcean API of `--target digitalocean`, once started. */
let api: LocalDoApi | undefined;

const pulumiEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PULUMI_BACKEND_URL: `file://${path.resolve(ROOT, STATE_DIR)}`,
    PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    ...engine.env,
    ...api?.env,
  };
  delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
  return env;
};

/**
 * The engine to run. The launcher is tried first (`npx pulumi version` downloads the official CLI
 * on first use); where it cannot download, the engine is built from source (cached after the
 * first build, about 12 minutes on 2 cores) with its plugins in .sandbox/pulumi-home.
 */
async function pickEngine(mode: Args["engine"]): Promise<Engine> {
  if (mode !== "built") {
    const r = await run("npx", ["pulumi", "version"], { cwd: ROOT, check: false, timeoutMs: 5 * 60_000 });
    if (r.code === 0) {
      console.log(`# the pulumi launcher's CLI ${r.stdout.trim()}`);
      return LAUNCHER;
    }
    const why = (r.stderr.trim().split("\n").pop() ?? "").slice(0, 200) || `exit code ${r.code}`;
    if (mode === "launcher") throw new Error(`npx pulumi version failed: ${why}`);
    console.log(`# the pulumi launcher cannot download the CLI (${why}): building the engine from source`);
  }
  const build = spawn("bash", [path.join(ROOT, "tools", "engine", "build.sh")], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  build.stdout.on("data", (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number>((resolve) => build.on("close", (c) => resolve(c ?? 1)));
  if (code !== 0) throw new Error("npm run engine:build failed (its last lines above say why)");
  const dir = out.trim().split("\n").pop()!;
  const home = path.resolve(ROOT, WORK, "pulumi-home");
  fs.mkdirSync(home, { recursive: true });
  const plugins = path.join(home, "plugins");
  fs.rmSync(plugins, { force: true });
  fs.symlinkSync(path.join(dir, "plugins"), plugins);
  return {
    argv: ["pulumi"],
    env: {
      PATH: [path.join(dir, "bin"), path.join(ROOT, "node_modules", ".bin"), process.env.PATH].join(":"),
      PULUMI_HOME: home,
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    },
  };
}

/**
 * Runs a command from the repository root with the terminal attached; stdin from `input` if given.
 * `detached`: in a process group of its own, so that a Ctrl-C in the terminal does not reach it.
 */
function exec(
  argv: string[],
  opts: { input?: string; check?: boolean; detached?: boolean } = {},
): Promise<number> {
  const check = opts.check ?? true;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: ROOT,
      env: pulumiEnv(),
      stdio: [opts.input === undefined ? "inherit" : "pipe", "inherit", "inherit"],
      detached: opts.detached,
    });
    child.on("error", (e) => reject(new Error(`${argv[0]}: ${e.message}`)));
    child.on("close", (code) => {
      if (check && code !== 0) reject(new Error(`${commandLine(argv)} exited with ${code}`));
      else resolve(code ?? 1);
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

const command = (
  argv: string[],
  opts: { input?: string; inputFrom?: string; check?: boolean; detached?: boolean } = {},
): Action => ({
  show: () =>
    commandLine(argv) +
    (opts.inputFrom ? ` < ${opts.inputFrom}` : "") +
    (opts.check === false ? "   # may fail" : ""),
  run: async () => {
    const input = opts.inputFrom ? fs.readFileSync(path.resolve(ROOT, opts.inputFrom), "utf8") : opts.input;
    await exec(argv, { input, check: opts.check, detached: opts.detached });
  },
});

/** A pulumi command; which engine runs it is known only once pickEngine has run. */
const pulumi = (
  args: string[],
  opts: { inputFrom?: string; check?: boolean; detached?: boolean } = {},
): Action => ({
  show: (ports) => command([...engine.argv, ...args], opts).show(ports),
  run: (ports) => command([...engine.argv, ...args], opts).run(ports),
});
const engineAction = (mode: Args["engine"]): Action => ({
  show: () => (mode === "launcher" ? "npx pulumi version" : "npx pulumi version || npm run engine:build"),
  run: async () => {
    engine = await pickEngine(mode);
    const shown = Object.entries(engine.env).map(
      ([k, v]) => `${k}=${k === "PATH" ? `${quote(v.split(":")[0])}:node_modules/.bin:$PATH` : quote(v)}`,
    );
    if (shown.length) console.log(`export ${shown.join(" ")}`);
  },
});
const withConfig = ["--stack", STACK, "--config-file", CONFIG_FILE];
// The droplet's SSH port is known only once it runs, so this command is built late.
const setSshPort = (ports: Ports) => [
  ...engine.argv,
  "config",
  "set",
  ...withConfig,
  "--type",
  "int",
  "chitram:sshPort",
  ports.ssh,
];

/** The images the droplet runs, and a line that says which and why. */
export interface ImageChoice {
  images: DropletImage[];
  note: string;
}

/**
 * The real service images when a registry answers (`pull` resolves to undefined for each), else the
 * stand-ins; with `standIns` no pull is tried. The app is always the stand-in. `pull` resolves to
 * an error text when the image could not be pulled.
 */
export async function chooseImages(o: {
  standIns: boolean;
  built: readonly DropletImage[];
  pull: (image: string) => Promise<string | undefined>;
}): Promise<ImageChoice> {
  const app = o.built.filter((i) => i.tag === SANDBOX_APP_IMAGE);
  if (app.length !== 1) throw new Error(`sandbox/build.sh built no stand-in for ${SANDBOX_APP_IMAGE}`);
  const production = Object.values(SERVICE_IMAGES);
  const standIns = (why: string): ImageChoice => {
    const images = production.map((tag) => {
      const found = o.built.find((i) => i.tag === tag);
      if (!found) throw new Error(`sandbox/build.sh built no stand-in for ${tag}`);
      return found;
    });
    return { images: [...images, ...app], note: `stand-in service images (${why}): ${describe(images)}` };
  };
  if (o.standIns) return standIns("--stand-ins");
  const [first, ...rest] = production;
  const error = await o.pull(first);
  if (error !== undefined) return standIns(`${first} could not be pulled: ${error}`);
  for (const image of rest) {
    const e = await o.pull(image);
    if (e !== undefined) throw new Error(`${first} was pulled but ${image} could not be: ${e}`);
  }
  const images = production.map((tag) => ({ source: tag, tag }));
  return { images: [...images, ...app], note: `production service images: ${production.join(", ")}` };
}

const describe = (images: readonly DropletImage[]) => images.map((i) => `${i.tag} <- ${i.source}`).join(", ");

/** `docker pull IMAGE`; undefined when it worked, else the last line of its error output. */
async function dockerPull(image: string): Promise<string | undefined> {
  const r = await run("docker", ["pull", "--quiet", image], { check: false, timeoutMs: 15 * 60_000 });
  if (r.code === 0) return undefined;
  return r.stderr.trim().split("\n").pop() || `exit code ${r.code}`;
}

interface DropletState {
  status: "running" | "stopped" | "absent";
  ports?: Ports;
}

interface ContainerInspect {
  State: { Running: boolean };
  NetworkSettings: { Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> };
}

async function dropletState(): Promise<DropletState> {
  const r = await run("docker", ["inspect", DROPLET_NAME], { check: false }).catch(() => undefined);
  if (!r || r.code !== 0) return { status: "absent" };
  const inspect = (JSON.parse(r.stdout) as ContainerInspect[])[0];
  const port = (p: string) => inspect.NetworkSettings.Ports?.[p]?.[0]?.HostPort;
  const ssh = port("22/tcp");
  const http = port("80/tcp");
  if (!inspect.State.Running || !ssh || !http) return { status: "stopped" };
  return { status: "running", ports: { ssh, http } };
}

const removeDroplet = (): Action[] => [
  command(["docker", "rm", "-f", "-v", DROPLET_NAME], { check: false }),
  command(["docker", "network", "rm", `${DROPLET_NAME}-net`], { check: false }),
];

function upActions(args: Args, droplet: DropletState): Action[] {
  const base = args.base;
  let built: readonly DropletImage[] = [];
  let images: DropletImage[] = [];
  const actions: Action[] = [
    { show: () => "bash .ci/start-dockerd.sh", run: () => ensureDockerd() },
    engineAction(args.engine),
    // The service stand-ins (PostgreSQL, MinIO, Caddy, the app) and local/bookworm:base.
    {
      show: () => "bash sandbox/build.sh",
      run: async () => {
        built = await buildImages();
      },
    },
  ];
  if (base !== DEBOOTSTRAP_BASE) {
    // Same tag as the bookworm droplet the host tests use; the label differs from build.sh's own
    // hash, so build.sh builds its bookworm droplet again the next time the tests run.
    const argv = (from: string) => [
      "docker",
      "build",
      "--build-arg",
      `BASE=${from}`,
      "--label",
      `chitram.sandbox.hash=base:${from}`,
      "-t",
      DROPLET_IMAGE,
      "sandbox/droplet",
    ];
    actions.push({
      show: (ports) =>
        `${command(argv(base)).show(ports)}   # if ${base} cannot be pulled: ${DEBOOTSTRAP_BASE}`,
      run: async (ports) => {
        const have = await run("docker", ["image", "inspect", base], { check: false });
        const error = have.code === 0 ? undefined : await dockerPull(base);
        if (error === undefined) return command(argv(base)).run(ports);
        // sandbox/build.sh's own droplet image is built on the debootstrap base already
        console.log(`# ${base} could not be pulled (${error}): the droplet runs on ${DEBOOTSTRAP_BASE}`);
        return buildImages().then(() => undefined);
      },
    });
  }
  actions.push({
    show: () => `mkdir -p ${STATE_DIR} ${PROJECT_DIR} && cp Pulumi.yaml ${PROJECT_DIR}/Pulumi.yaml`,
    run: () => {
      for (const dir of [STATE_DIR, PROJECT_DIR]) fs.mkdirSync(path.resolve(ROOT, dir), { recursive: true });
      fs.copyFileSync(path.join(ROOT, "Pulumi.yaml"), path.resolve(ROOT, PROJECT_DIR, "Pulumi.yaml"));
      return Promise.resolve();
    },
  });
  if (!fs.existsSync(path.resolve(ROOT, KEY_FILE))) {
    actions.push(
      command([
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "chitram-sandbox-bootstrap",
        "-f",
        KEY_FILE,
      ]),
    );
  }
  if (droplet.status !== "running") {
    actions.push({
      show: () =>
        args.standIns
          ? "# --stand-ins: the service stand-ins from sandbox/build.sh"
          : `docker pull ${Object.values(SERVICE_IMAGES).join(" ")}   # if no registry answers: the stand-ins`,
      run: async () => {
        const choice = await chooseImages({ standIns: args.standIns, built, pull: dockerPull });
        images = choice.images;
        console.log(`# ${choice.note}`);
      },
    });
    if (droplet.status === "stopped") actions.push(...removeDroplet());
    // What startDroplet() in harness/sandbox.ts runs (it labels the droplet with the id of the
    // process that started it), before it waits for the inner engine and sshd.
    const labels = ["--label", `${SANDBOX_LABEL}=1`, "--label", "chitram.sandbox.pid=<this process id>"];
    actions.push({
      show: () =>
        [
          commandLine(["docker", "network", "create", ...labels, `${DROPLET_NAME}-net`]),
          commandLine([
            "docker",
            ...dropletRunArgs({
              name: DROPLET_NAME,
              network: `${DROPLET_NAME}-net`,
              labels: [`${SANDBOX_LABEL}=1`, "chitram.sandbox.pid=<this process id>"],
            }),
          ]) +
            ` -e "ROOT_AUTHORIZED_KEY=$(cat ${KEY_FILE}.pub)" -e DOCKERD_STORAGE_DRIVER=vfs ${DROPLET_IMAGE}`,
          `docker save <images> | docker exec -i ${DROPLET_NAME} docker load`,
          `docker exec ${DROPLET_NAME} docker tag <stand-in> <production tag>   # each stand-in`,
        ].join("\n"),
      run: async (ports) => {
        const rootPublicKey = fs.readFileSync(path.resolve(ROOT, `${KEY_FILE}.pub`), "utf8");
        const started = await startDroplet({ name: DROPLET_NAME, rootPublicKey, images });
        ports.ssh = String(started.sshPort);
        ports.http = String(started.httpPort);
      },
    });
    // A new droplet gets a new stack: state left from an earlier droplet would skip its steps.
    actions.push(pulumi(["--cwd", PROJECT_DIR, "stack", "rm", STACK, "--force", "--yes"], { check: false }));
  }
  actions.push(
    pulumi(["--cwd", PROJECT_DIR, "stack", "select", "--create", STACK]),
    pulumi(["config", "set", ...withConfig, "chitram:target", "existing"]),
    pulumi(["config", "set", ...withConfig, "chitram:host", "127.0.0.1"]),
    {
      show: (ports) => commandLine(setSshPort(ports)),
      run: (ports) => exec(setSshPort(ports)).then(() => undefined),
    },
    pulumi(["config", "set", ...withConfig, "chitram:sshUser", "root"]),
    pulumi(["config", "set", ...withConfig, "--secret", "chitram:sshPrivateKey"], { inputFrom: KEY_FILE }),
    pulumi(["config", "set", ...withConfig, "chitram:appImage", SANDBOX_APP_IMAGE]),
    pulumi(["up", "--yes", ...withConfig]),
  );
  return actions;
}

/** App droplets of `--target digitalocean --scale`. */
const SCALE_APP_HOSTS = 3;

/** The stack of `--target digitalocean`, beside the `sandbox` stack of the SSH-host sandbox. */
const DO_STACK = "sandbox-do";
const DO_CONFIG_FILE = `${PROJECT_DIR}/Pulumi.${DO_STACK}.yaml`;
const withDoConfig = ["--stack", DO_STACK, "--config-file", DO_CONFIG_FILE];

/** `--target digitalocean`: from nothing to the app on a droplet of the local DigitalOcean API. */
function digitalOceanUpActions(args: Args): Action[] {
  return [
    { show: () => "bash .ci/start-dockerd.sh", run: () => ensureDockerd() },
    engineAction(args.engine),
    {
      show: () => "bash sandbox/build.sh",
      run: () => buildImages().then(() => undefined),
    },
    {
      show: () => `mkdir -p ${STATE_DIR} ${PROJECT_DIR} && cp Pulumi.yaml ${PROJECT_DIR}/Pulumi.yaml`,
      run: () => {
        for (const dir of [STATE_DIR, PROJECT_DIR])
          fs.mkdirSync(path.resolve(ROOT, dir), { recursive: true });
        fs.copyFileSync(path.join(ROOT, "Pulumi.yaml"), path.resolve(ROOT, PROJECT_DIR, "Pulumi.yaml"));
        return Promise.resolve();
      },
    },
    // The API starts empty: a stack left by an earlier run names droplets that no longer exist.
    pulumi(["--cwd", PROJECT_DIR, "stack", "rm", DO_STACK, "--force", "--yes"], { check: false }),
    {
      show: () =>
        "# the local DigitalOcean API (harness/doApi.ts) on 127.0.0.1; its URL and token go to the pulumi commands below",
      run: async () => {
        api = await startLocalDoApi(
          args.scale ? { databases: true, spaces: true, loadBalancers: true } : undefined,
        );
        const env = api.env;
        console.log(
          `export ${Object.keys(env)
            .map((k) => `${k}=${env[k]}`)
            .join(" ")}`,
        );
      },
    },
    pulumi(["--cwd", PROJECT_DIR, "stack", "select", "--create", DO_STACK]),
    // Pulumi.staging.yaml, with the app stand-in the sandbox droplets hold.
    pulumi(["config", "set", ...withDoConfig, "chitram:appImage", SANDBOX_APP_IMAGE]),
    pulumi(["config", "set", ...withDoConfig, "chitram:region", "nyc3"]),
    pulumi(["config", "set", ...withDoConfig, "chitram:protectData", "false"]),
    ...(args.scale
      ? [
          pulumi(["config", "set", ...withDoConfig, "chitram:database", "managed"]),
          pulumi(["config", "set", ...withDoConfig, "chitram:objectStore", "spaces"]),
          pulumi(["config", "set", ...withDoConfig, "chitram:appHosts", String(SCALE_APP_HOSTS)]),
        ]
      : []),
    pulumi(["up", "--yes", ...withDoConfig]),
  ];
}

/** What Ctrl-C runs after `--target digitalocean`: the stack destroyed, then the API stopped. */
function digitalOceanDownActions(args: Args): Action[] {
  return [
    // The stack never deletes a bucket that holds objects, and the apps' health checks leave
    // versions in it: with --scale (objectStore spaces) they are stopped and it is emptied first.
    ...(args.scale
      ? [
          {
            show: () =>
              `# --scale: each droplet's app stopped (cd ${APP_DIR} && docker compose stop app), the app's bucket emptied (mc rm --recursive --force --versions)`,
            // Best effort: the destroy below runs whatever happens here.
            run: async () => {
              if (api) await emptyAppBuckets(api).catch((e: Error) => console.log(`# ${e.message}`));
            },
          },
        ]
      : []),
    // In a process group of their own: a second Ctrl-C in the terminal does not cancel them.
    pulumi(["destroy", "--yes", ...withDoConfig], { check: false, detached: true }),
    pulumi(["--cwd", PROJECT_DIR, "stack", "rm", DO_STACK, "--force", "--yes"], {
      check: false,
      detached: true,
    }),
    {
      show: () => "# the local DigitalOcean API stops and removes whatever droplet it still holds",
      run: async () => {
        await api?.close();
      },
    },
  ];
}

function downActions(args: Args): Action[] {
  return [
    engineAction(args.engine),
    pulumi(["destroy", "--yes", ...withConfig], { check: false }),
    // Everything the stack manages lives in the droplet (or is local: keys, random values).
    pulumi(["--cwd", PROJECT_DIR, "stack", "rm", STACK, "--force", "--yes"], { check: false }),
    ...removeDroplet(),
  ];
}

export interface Args {
  command: "up" | "down";
  /** existing: an SSH host (the default); digitalocean: the local DigitalOcean API, in the foreground. */
  target: "existing" | "digitalocean";
  /** With target digitalocean: the scaled shape (appHosts 3, the managed database, Spaces). */
  scale: boolean;
  base: string;
  /** Which pulumi runs the commands (pickEngine). */
  engine: "auto" | "launcher" | "built";
  /** Run the stand-ins even when a registry answers. */
  standIns: boolean;
  dryRun: boolean;
}

const usage =
  "usage: tsx tools/laptopSandbox.ts up [--base IMAGE] [--stand-ins] [--engine auto|launcher|built] [--dry-run]" +
  " | up --target digitalocean [--scale] [--engine auto|launcher|built] [--dry-run]" +
  " | down [--engine auto|launcher|built] [--dry-run]";

export function parseArgs(argv: string[]): Args {
  const [cmd, ...rest] = argv;
  if (cmd !== "up" && cmd !== "down") throw new Error(usage);
  const args: Args = {
    command: cmd,
    target: "existing",
    scale: false,
    base: DEFAULT_BASE,
    engine: "auto",
    standIns: false,
    dryRun: false,
  };
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--dry-run") args.dryRun = true;
    else if (rest[i] === "--engine") {
      const mode = rest[++i];
      if (mode !== "auto" && mode !== "launcher" && mode !== "built")
        throw new Error(`--engine takes auto, launcher or built\n${usage}`);
      args.engine = mode;
    } else if (rest[i] === "--target" && cmd === "up") {
      const target = rest[++i];
      if (target !== "existing" && target !== "digitalocean")
        throw new Error(`--target takes existing or digitalocean\n${usage}`);
      args.target = target;
    } else if (rest[i] === "--scale" && cmd === "up") args.scale = true;
    else if (rest[i] === "--stand-ins" && cmd === "up") args.standIns = true;
    else if (rest[i] === "--base" && cmd === "up") {
      if (!rest[i + 1]) throw new Error(`--base needs an image, e.g. ${DEFAULT_BASE}\n${usage}`);
      args.base = rest[++i];
    } else throw new Error(`unknown argument ${rest[i]}\n${usage}`);
  }
  if (args.target === "digitalocean" && (args.standIns || args.base !== DEFAULT_BASE))
    throw new Error(
      `--target digitalocean runs the droplets of the local DigitalOcean API (stand-in images on ${DEBOOTSTRAP_BASE}): no --base or --stand-ins\n${usage}`,
    );
  if (args.scale && args.target !== "digitalocean")
    throw new Error(`--scale deploys to the local DigitalOcean API: add --target digitalocean\n${usage}`);
  return args;
}

/** Runs the actions in order, each shown as a person would type it. */
async function runActions(actions: Action[], ports: Ports, dryRun: boolean, started: number): Promise<void> {
  for (const action of actions) {
    const elapsed = `[${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s]`;
    console.log(`${dryRun ? "" : `${elapsed} $ `}${action.show(ports)}`);
    if (!dryRun) await action.run(ports);
  }
}

/**
 * `--target digitalocean`: up, then the app's address and how to reach the API by hand, then
 * wait for Ctrl-C (or TERM), which destroys the stack and stops the API.
 */
async function mainDigitalOcean(args: Args): Promise<void> {
  const ports: Ports = { ssh: "22", http: "80" };
  console.log(
    `export PULUMI_BACKEND_URL=${quote(pulumiEnv().PULUMI_BACKEND_URL!)} PULUMI_CONFIG_PASSPHRASE=${PASSPHRASE}`,
  );
  const started = Date.now();
  // The first Ctrl-C (or TERM) starts the destroy, which runs in process groups of its own; the
  // third leaves at once.
  const stop = new Promise<string>((resolve) => {
    let seen = 0;
    for (const signal of ["SIGINT", "SIGTERM"] as const)
      process.on(signal, () => {
        seen++;
        if (seen === 2)
          console.log(`# ${signal}: the stack is being destroyed; once more to leave it half-removed`);
        if (seen > 2) process.exit(130);
        resolve(signal);
      });
  });
  try {
    await runActions(digitalOceanUpActions(args), ports, args.dryRun, started);
    if (!args.dryRun) {
      const droplets = api!.droplets().sort((a, b) => String(a.name).localeCompare(String(b.name)));
      const address = dropletAddress(droplets[0]);
      const [lb] = api!.loadBalancers();
      console.log(`\nThe app: http://${lb ? `${String(lb.ip)} (the load balancer)` : address}`);
      for (const droplet of droplets)
        console.log(
          `The droplet: ${String(droplet.name)} (${String((droplet.size as { slug: string }).slug)}, ${String((droplet.region as { slug: string }).slug)})` +
            `${droplets.length > 1 ? ` at ${dropletAddress(droplet)}` : ""}, ` +
            `the container ${api!.sandbox(Number(droplet.id))?.name ?? "?"} on this machine`,
        );
      console.log(
        `The deploy user: ${engine.argv.join(" ")} stack output --stack ${DO_STACK} --show-secrets deployPrivateKey > ${WORK}/deploy_key && ` +
          `chmod 600 ${WORK}/deploy_key && ssh -i ${WORK}/deploy_key chitram@${address}`,
      );
      console.log(
        `Up in ${Math.round((Date.now() - started) / 1000)} s. The local DigitalOcean API runs as long as this command: ` +
          `pulumi preview, up and refresh work against it from another shell with the exports above and ${withDoConfig.join(" ")}. ` +
          "Press Ctrl-C to destroy the stack and stop it.",
      );
      console.log(`# ${await stop}: destroying the stack`);
    }
  } finally {
    // Also after a failed up: the API's droplets live only as long as this process.
    await runActions(digitalOceanDownActions(args), ports, args.dryRun, started);
  }
}

async function main(args: Args): Promise<void> {
  if (args.target === "digitalocean") return mainDigitalOcean(args);
  const droplet = await dropletState();
  const ports: Ports = droplet.ports ?? { ssh: "<ssh port>", http: "<http port>" };
  const actions = args.command === "up" ? upActions(args, droplet) : downActions(args);
  // The commands below run with these two variables set; export them to run Pulumi by hand.
  console.log(
    `export PULUMI_BACKEND_URL=${quote(pulumiEnv().PULUMI_BACKEND_URL!)} PULUMI_CONFIG_PASSPHRASE=${PASSPHRASE}`,
  );
  if (args.command === "up" && droplet.status === "running") {
    console.log(`# droplet ${DROPLET_NAME} is running (ssh 127.0.0.1:${ports.ssh}): updating it`);
  }
  const started = Date.now();
  await runActions(actions, ports, args.dryRun, started);
  if (args.command === "up") {
    console.log(`\nThe app: http://127.0.0.1:${ports.http}`);
    console.log(
      `The deploy user: ${engine.argv.join(" ")} stack output --stack ${STACK} --show-secrets deployPrivateKey > ${WORK}/deploy_key && ` +
        `chmod 600 ${WORK}/deploy_key && ssh -i ${WORK}/deploy_key -p ${ports.ssh} chitram@127.0.0.1`,
    );
    console.log(
      `Done in ${Math.round((Date.now() - started) / 1000)} s. Remove it all: npm run sandbox:down`,
    );
  }
}

if (require.main === module) {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exit(2);
  }
  main(args).catch((e: Error) => {
    console.error(`sandbox: ${e.message}`);
    if (args.command === "up" && args.target === "existing") {
      console.error("Nothing was removed: run `npm run sandbox` again to go on, or `npm run sandbox:down`.");
    }
    process.exit(1);
  });
}
