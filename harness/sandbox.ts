// Throw-away "droplets" for the host tests: a local/droplet:sandbox container (sshd, cron, its own
// Docker engine, compose v2) with the service images loaded into its engine.
// Stand-in images come from sandbox/build.sh (no registry is reachable on the test machines). On
// this machine's engine they keep private names (chitram-standin/<service>:<recipe hash>); the
// production tags the compose file names are given to them only inside a droplet's own engine.
//
// Network rule: a droplet publishes 22, 80 and 443 on 127.0.0.1 only (random free host ports), or
// as themselves on a loopback address of its own (127.x.y.z, the local DigitalOcean API's
// droplets); tests talk to those loopback addresses or to the droplet's container IP, never to
// any other address.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

const REPO_ROOT = path.resolve(__dirname, "..");
const BUILD_SCRIPT = path.join(REPO_ROOT, "sandbox", "build.sh");
const START_DOCKERD = path.join(REPO_ROOT, ".ci", "start-dockerd.sh");

/** Label (=1) on every container, network and volume this module creates. */
export const SANDBOX_LABEL = "chitram.sandbox";
/** Label holding the pid of the process that started the droplet (see removeAllSandboxes). */
export const OWNER_LABEL = "chitram.sandbox.pid";
export const DROPLET_IMAGE = "local/droplet:sandbox";

/** `docker run` / `network create` label arguments of a sandbox object this process owns (removeAllSandboxes). */
export const sandboxLabelArgs = (): string[] => [
  "--label",
  `${SANDBOX_LABEL}=1`,
  "--label",
  `${OWNER_LABEL}=${process.pid}`,
];

/**
 * `docker run` arguments of a droplet, up to its environment and image: the capabilities its inner
 * Docker engine needs (see ENVIRONMENT.md), ports 22, 80, 443 published on `address` (127.0.0.1)
 * only.
 */
export function dropletRunArgs(o: {
  name: string;
  network: string;
  labels: string[];
  /** Host ports for 22, 80 and 443 (on `address`); default: free ones Docker picks. */
  hostPorts?: { ssh: number; http: number; https: number };
  /** The loopback address the ports are published on. Default: 127.0.0.1. */
  address?: string;
  /** Let the droplet use loop block devices (the local DigitalOcean API's volumes). Default: false. */
  blockDevices?: boolean;
}): string[] {
  const publish = (host: number | undefined, port: number) => [
    "-p",
    `${o.address ?? "127.0.0.1"}:${host ?? ""}:${port}`,
  ];
  return [
    "run",
    "-d",
    "--name",
    o.name,
    "--hostname",
    o.name,
    ...o.labels.flatMap((l) => ["--label", l]),
    "--network",
    o.network,
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    // The loop devices (major 7): a droplet can open any of this machine's loop devices it makes a
    // node for. The API makes one for each volume it attaches; a droplet runs this project's own
    // scripts, not someone else's code.
    ...(o.blockDevices ? ["--device-cgroup-rule", "b 7:* rwm"] : []),
    // overlay2 cannot sit on the container's overlay root; the volume also keeps the GBs of vfs
    // copies out of the container layer (stop() deletes it in the background)
    "--mount",
    `type=volume,dst=/var/lib/docker,volume-label=${SANDBOX_LABEL}=1`,
    // /run starts empty at every start, as a host's tmpfs /run at boot: after a restart the
    // engine's stale pid files would name live processes of the new start, and it would not start
    "--mount",
    "type=tmpfs,dst=/run,tmpfs-mode=0755",
    ...publish(o.hostPorts?.ssh, 22),
    ...publish(o.hostPorts?.http, 80),
    ...publish(o.hostPorts?.https, 443),
  ];
}
/** An image of this machine's engine and the tag it gets inside a droplet's engine. */
export interface DropletImage {
  /** Name on this machine's engine, e.g. chitram-standin/postgres:<recipe hash>. */
  source: string;
  /** Tag inside the droplet, the one the compose file names, e.g. postgres:16-alpine. */
  tag: string;
}

/** The stand-ins of the last buildImages() of this process. */
let builtStandIns: readonly DropletImage[] | undefined;

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Written to the command's stdin. */
  input?: string | Buffer;
  /** Kill the command after this many ms (code is then 124). Default: no limit. */
  timeoutMs?: number;
}

export interface Droplet {
  /** Container name (also the droplet's hostname). */
  name: string;
  /** The loopback address its ports are published on (127.0.0.1 unless it has one of its own). */
  address: string;
  /** Host ports on `address` that reach the droplet's 22, 80 and 443. */
  sshPort: number;
  httpPort: number;
  httpsPort: number;
  /** The droplet's address on its own bridge network (reachable from this machine). */
  containerIp: string;
  /** The bridge network created for this droplet. */
  network: string;
  /** `docker exec <droplet> bash -lc <cmd>` as root. Never rejects on a non-zero exit code. */
  exec(cmd: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Lets a held sshd start (holdSshd); does nothing useful otherwise. */
  startSshd(): Promise<void>;
  /**
   * `docker restart`, the stand-in for a reboot: PID 1 (sshd) gets TERM, every other process is
   * killed, /run starts empty; the disk and the inner engine's volume stay. Resolves once the inner
   * engine and sshd answer again, with the ports and address above re-read (Docker may publish
   * on other host ports after a restart).
   */
  restart(): Promise<void>;
  /** `docker stop`, the stand-in for a power-off: the disk and the inner engine's volume stay. */
  powerOff(): Promise<void>;
  /**
   * `docker start` after powerOff(), with the ports and address re-read. Resolves once the
   * container runs: its engine and sshd come later (a held sshd waits for startSshd()).
   */
  powerOn(): Promise<void>;
  /**
   * Connects the droplet to (or disconnects it from) another Docker network, then re-reads the
   * ports and address above: Docker 20.10 publishes the ports anew, on other host ports, when the
   * network it routes them through changes (the network whose name sorts first).
   */
  connect(network: string): Promise<void>;
  disconnect(network: string): Promise<void>;
  /**
   * Removes the container and its network. Safe to call twice. The inner engine's volume (GBs of
   * vfs copies, slow to delete) is removed by a detached background `docker volume rm`.
   */
  stop(): Promise<void>;
}

export interface StartDropletOptions {
  /** Container name; default chitram-sbx-<random>. */
  name?: string;
  /** One authorized_keys line for root (e.g. "ssh-ed25519 AAAA... comment"). */
  rootPublicKey: string;
  /** Hold sshd back until droplet.startSshd() (a new droplet whose sshd answers late); startDroplet then does not wait for sshd. */
  holdSshd?: boolean;
  /**
   * Publish on host ports chosen now, which a restart keeps (Docker picks new ones for "any free
   * port" on a restart): a droplet keeps its address across a reboot. Default: false.
   */
  fixedPorts?: boolean;
  /**
   * A loopback address of its own (127.x.y.z) on which 22, 80 and 443 are published as themselves,
   * as a droplet's public address: the local DigitalOcean API's droplets. Default: 127.0.0.1, on
   * free host ports.
   */
  address?: string;
  /** Storage driver of the inner engine: vfs (default) or overlay2 (on a volume, faster). */
  storageDriver?: "vfs" | "overlay2";
  /** May use loop block devices (a volume attached by the local DigitalOcean API). Default: false. */
  blockDevices?: boolean;
  /**
   * Images to load into the inner engine, each tagged there with its production tag. Default: the
   * stand-ins of the last buildImages(); false: none.
   */
  images?: readonly DropletImage[] | false;
}

interface RunOptions {
  input?: string | Buffer;
  timeoutMs?: number;
  /** Reject when the exit code is not 0 (default true). */
  check?: boolean;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command without a shell and collects its output. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const { input, timeoutMs, check = true, cwd, env } = opts;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, timeoutMs);
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`${cmd}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      const result: ExecResult = {
        code: timedOut ? 124 : (code ?? (signal ? 128 : 1)),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      if (check && result.code !== 0) {
        const what = timedOut ? `timed out after ${timeoutMs} ms` : `exited with ${result.code}`;
        reject(new Error(`${[cmd, ...args].join(" ").slice(0, 300)} ${what}\n${result.stderr.slice(-4000)}`));
      } else {
        resolve(result);
      }
    });
    child.stdin.on("error", () => undefined); // the command may exit without reading stdin
    child.stdin.end(input ?? "");
  });
}

const docker = (args: readonly string[], opts?: RunOptions) => run("docker", args, opts);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(500);
  }
}

/** Starts the host's Docker engine if it is not running (.ci/start-dockerd.sh). */
export async function ensureDockerd(): Promise<void> {
  await run("bash", [START_DOCKERD], { timeoutMs: 90_000 });
}

/** The "<production tag> <private name>" lines sandbox/build.sh prints on stdout. */
export function parseStandIns(stdout: string): DropletImage[] {
  return stdout
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => {
      const [tag, source, ...rest] = line.trim().split(/\s+/);
      if (!source || rest.length)
        throw new Error(`sandbox/build.sh: unexpected output line ${JSON.stringify(line)}`);
      return { source, tag };
    });
}

/**
 * Builds local/bookworm:base, the four service stand-ins and local/droplet:sandbox
 * (sandbox/build.sh) and returns the stand-ins. Fast (< 1 s) when they are up to date; the first
 * build takes 1-3 minutes. Rejects with the script's output on failure.
 */
export async function buildImages(opts: { force?: boolean } = {}): Promise<readonly DropletImage[]> {
  const env = { ...process.env, ...(opts.force ? { FORCE: "1" } : {}) };
  const r = await run("bash", [BUILD_SCRIPT], { env, timeoutMs: 20 * 60_000 });
  builtStandIns = parseStandIns(r.stdout);
  return builtStandIns;
}

/**
 * The private name of the stand-in for the production image `tag`, from the images this process
 * built (sandbox/build.sh runs only when it has built none yet).
 */
export async function standInSource(tag: string): Promise<string> {
  const found = (builtStandIns ?? (await buildImages())).find((i) => i.tag === tag);
  if (!found) throw new Error(`sandbox/build.sh built no stand-in for ${tag}`);
  return found.source;
}

/**
 * Pipes `docker save <sources>` into `docker exec -i <container> docker load`, then gives each image
 * its production tag inside the container's engine (and drops the private name there).
 */
async function loadImagesInto(container: string, images: readonly DropletImage[]): Promise<void> {
  await pipeSaveToLoad(
    container,
    images.map((i) => i.source),
  );
  const renames = images.filter((i) => i.source !== i.tag).flatMap((i) => [i.source, i.tag]);
  if (!renames.length) return;
  // One exec for all of them (the names are arguments, never part of the script).
  const script =
    'while [ $# -gt 0 ]; do docker tag "$1" "$2" && docker rmi "$1" >/dev/null || exit 1; shift 2; done';
  await docker(["exec", container, "sh", "-c", script, "sh", ...renames]);
}

function pipeSaveToLoad(container: string, images: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const save = spawn("docker", ["save", ...images], { stdio: ["ignore", "pipe", "pipe"] });
    const load = spawn("docker", ["exec", "-i", container, "docker", "load"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const errors: string[] = [];
    let saveErr = "";
    let loadErr = "";
    save.stderr.on("data", (b: Buffer) => (saveErr += b.toString()));
    load.stderr.on("data", (b: Buffer) => (loadErr += b.toString()));
    load.stdout.resume();
    save.stdout.pipe(load.stdin);
    load.stdin.on("error", () => undefined);
    let pending = 2;
    const done = () => {
      if (--pending > 0) return;
      if (errors.length) reject(new Error(`loading images into ${container}: ${errors.join("; ")}`));
      else resolve();
    };
    save.on("error", (e) => errors.push(`docker save: ${e.message}`));
    load.on("error", (e) => errors.push(`docker load: ${e.message}`));
    save.on("close", (code) => {
      if (code !== 0) {
        errors.push(`docker save exited with ${code}: ${saveErr.trim()}`);
        load.stdin.destroy();
      }
      done();
    });
    load.on("close", (code) => {
      if (code !== 0) errors.push(`docker load exited with ${code}: ${loadErr.trim()}`);
      done();
    });
  });
}

function hostPort(inspect: ContainerInspect, port: string, address: string): number {
  const binding = inspect.NetworkSettings.Ports?.[port]?.[0];
  if (!binding || binding.HostIp !== address) {
    throw new Error(`port ${port} of ${inspect.Name} is not published on ${address}`);
  }
  return Number(binding.HostPort);
}

interface ContainerInspect {
  Name: string;
  NetworkSettings: {
    Ports?: Record<string, { HostIp: string; HostPort: string }[] | null>;
    Networks: Record<string, { IPAddress: string }>;
  };
}

/**
 * Starts a fresh droplet: root's authorized_keys holds rootPublicKey, no other user exists.
 * Resolves once the inner Docker engine answers, the service images are loaded into it and
 * (unless holdSshd is set) sshd answers on address:sshPort (127.0.0.1 unless `address` is set).
 * Call buildImages() first. Takes ~25 s with vfs (mostly `docker load`).
 */
export async function startDroplet(opts: StartDropletOptions): Promise<Droplet> {
  const name = opts.name ?? `chitram-sbx-${randomBytes(4).toString("hex")}`;
  const network = `${name}-net`;
  const storageDriver = opts.storageDriver ?? "vfs";
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name))
    throw new Error(`invalid droplet name ${JSON.stringify(name)}`);
  if (!opts.rootPublicKey?.trim()) throw new Error("startDroplet: rootPublicKey is required");
  const images = opts.images === false ? [] : (opts.images ?? builtStandIns);
  if (!images) throw new Error("startDroplet: no images to load: run buildImages() first");
  const required = [DROPLET_IMAGE, ...images.map((i) => i.source)];
  const missing = (await docker(["image", "inspect", ...required], { check: false })).code !== 0;
  if (missing)
    throw new Error(`sandbox images missing (need ${required.join(", ")}): run buildImages() first`);

  const stop = async () => {
    const volumes = await docker(["inspect", "-f", "{{range .Mounts}}{{.Name}} {{end}}", name], {
      check: false,
    });
    await docker(["rm", "-f", name], { check: false });
    await docker(["network", "rm", network], { check: false });
    removeVolumesInBackground(volumes.code === 0 ? volumes.stdout.split(/\s+/).filter(Boolean) : []);
  };
  const exec = (cmd: string, execOpts: ExecOptions = {}) =>
    docker(["exec", ...(execOpts.input === undefined ? [] : ["-i"]), name, "bash", "-lc", cmd], {
      check: false,
      input: execOpts.input,
      timeoutMs: execOpts.timeoutMs,
    });

  const label = `${SANDBOX_LABEL}=1`;
  const owner = `${OWNER_LABEL}=${process.pid}`;
  await docker(["network", "create", "--label", label, "--label", owner, network]);
  let created = false; // never remove a same-named container that someone else started
  try {
    const env = [
      "-e",
      `ROOT_AUTHORIZED_KEY=${opts.rootPublicKey.trim()}`,
      "-e",
      `DOCKERD_STORAGE_DRIVER=${storageDriver}`,
    ];
    if (opts.holdSshd) env.push("-e", "SSHD_HOLD=1");
    const address = opts.address ?? "127.0.0.1";
    if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address))
      throw new Error(`not a loopback address: ${address}`);
    const hostPorts = opts.address
      ? { ssh: 22, http: 80, https: 443 }
      : opts.fixedPorts
        ? { ssh: await freePort(), http: await freePort(), https: await freePort() }
        : undefined;
    await docker([
      ...dropletRunArgs({
        name,
        network,
        labels: [label, owner],
        hostPorts,
        address,
        blockDevices: opts.blockDevices,
      }),
      ...env,
      DROPLET_IMAGE,
    ]);
    created = true;
    const waitForEngine = () =>
      waitFor(`the Docker engine in ${name}`, 60_000, async () => {
        const r = await docker(["exec", name, "docker", "version", "--format", "{{.Server.Version}}"], {
          check: false,
          timeoutMs: 10_000,
        });
        return r.code === 0;
      });
    const waitForSshd = () =>
      waitFor(`sshd of ${name} on ${address}:${droplet.sshPort}`, 30_000, async () => {
        const r = await run("ssh-keyscan", ["-T", "2", "-p", String(droplet.sshPort), address], {
          check: false,
          timeoutMs: 5_000,
        });
        return r.code === 0 && r.stdout.includes("ssh-");
      });
    const readAddresses = async () => {
      const [inspect] = JSON.parse((await docker(["inspect", name])).stdout) as ContainerInspect[];
      return {
        sshPort: hostPort(inspect, "22/tcp", address),
        httpPort: hostPort(inspect, "80/tcp", address),
        httpsPort: hostPort(inspect, "443/tcp", address),
        containerIp: inspect.NetworkSettings.Networks[network]?.IPAddress ?? "",
      };
    };
    const droplet: Droplet = {
      name,
      network,
      address,
      ...(await readAddresses()),
      exec,
      startSshd: async () => {
        await docker(["exec", name, "touch", "/run/chitram-start-sshd"]);
      },
      restart: async () => {
        await docker(["restart", name]);
        Object.assign(droplet, await readAddresses());
        await waitForEngine();
        await waitForSshd();
      },
      powerOff: async () => {
        await docker(["stop", "-t", "30", name]);
      },
      powerOn: async () => {
        await docker(["start", name]);
        Object.assign(droplet, await readAddresses());
      },
      connect: async (other) => {
        await docker(["network", "connect", other, name]);
        Object.assign(droplet, await readAddresses());
      },
      disconnect: async (other) => {
        await docker(["network", "disconnect", other, name]);
        Object.assign(droplet, await readAddresses());
      },
      stop,
    };
    await waitForEngine();
    if (images.length) await loadImagesInto(name, images);
    if (!opts.holdSshd) await waitForSshd();
    return droplet;
  } catch (e) {
    let detail = "";
    if (created) {
      const logs = await docker(["logs", "--tail", "30", name], { check: false });
      const dockerd = await docker(["exec", name, "tail", "-n", "30", "/var/log/dockerd.log"], {
        check: false,
      });
      detail = [logs.stdout, logs.stderr, dockerd.stdout].filter((s) => s.trim()).join("\n");
      await stop();
    } else {
      await docker(["network", "rm", network], { check: false });
    }
    throw new Error(
      `startDroplet(${name}) failed: ${(e as Error).message}${detail ? `\n--- logs ---\n${detail}` : ""}`,
    );
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Deletes docker volumes from a detached process that outlives this one. */
function removeVolumesInBackground(volumes: readonly string[]): void {
  if (!volumes.length) return;
  const child = spawn("docker", ["volume", "rm", "-f", ...volumes], { detached: true, stdio: "ignore" });
  child.on("error", () => undefined);
  child.unref();
}

/** Whether a process with this id runs (possibly as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes sandbox droplets (containers labelled chitram.sandbox=1), their networks and volumes:
 * those started by this process and those whose starting process is gone (left over by a killed
 * run). Droplets of other live processes (a colleague's test run on the same engine) and
 * droplets without an owner label are kept unless `all` is set.
 */
export async function removeAllSandboxes(
  opts: {
    all?: boolean;
    /** Only containers and networks whose names start with this. */
    namePrefix?: string;
    /** Only those whose starting process is gone (not this process's own). */
    deadOwnersOnly?: boolean;
  } = {},
): Promise<void> {
  const mine = (pidLabel: string) => {
    const pid = Number(pidLabel);
    if (opts.all) return true;
    if (!pidLabel || !Number.isInteger(pid)) return false; // no owner recorded: not ours to judge
    return (pid === process.pid && !opts.deadOwnersOnly) || !processAlive(pid);
  };
  const filter = ["--filter", `label=${SANDBOX_LABEL}=1`];
  const fmt = (name: string) => `{{.ID}} {{.Label "${OWNER_LABEL}"}} {{${name}}}`;
  const named = (name = "") => name.startsWith(opts.namePrefix ?? "");
  const rows = (await docker(["ps", "-a", ...filter, "--format", fmt(".Names")])).stdout
    .split("\n")
    .filter(Boolean);
  const containers = rows
    .map((r) => r.split(" "))
    .filter(([, pid, name]) => mine(pid ?? "") && named(name))
    .map(([id]) => id);
  if (containers.length) await docker(["rm", "-f", ...containers], { check: false });
  const nets = (await docker(["network", "ls", ...filter, "--format", fmt(".Name")])).stdout
    .split("\n")
    .filter(Boolean);
  const networks = nets
    .map((r) => r.split(" "))
    .filter(([, pid, name]) => mine(pid ?? "") && named(name))
    .map(([id]) => id);
  for (const n of networks) await docker(["network", "rm", n], { check: false }); // in use: kept
  // volumes of removed droplets (anonymous, labelled; slow to delete, so in the background)
  const volumes = (await docker(["volume", "ls", "-q", ...filter, "--filter", "dangling=true"])).stdout
    .split(/\s+/)
    .filter(Boolean);
  removeVolumesInBackground(volumes);
}

export interface SshKeyPair {
  dir: string;
  privateKeyPath: string;
  privateKey: string;
  publicKey: string;
  /** Deletes dir. */
  remove(): void;
}

/** A fresh ED25519 key pair (ssh-keygen) in a temporary directory, for logging into droplets. */
export async function makeSshKeyPair(comment = "chitram-sandbox"): Promise<SshKeyPair> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-sbx-key-"));
  const privateKeyPath = path.join(dir, "id_ed25519");
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", privateKeyPath]);
  return {
    dir,
    privateKeyPath,
    privateKey: fs.readFileSync(privateKeyPath, "utf8"),
    publicKey: fs.readFileSync(`${privateKeyPath}.pub`, "utf8").trim(),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** ssh arguments for `ssh <args> root@127.0.0.1 <cmd>` to a droplet on 127.0.0.1 (no host key checks). */
export function sshArgs(droplet: Pick<Droplet, "sshPort">, privateKeyPath: string): string[] {
  return [
    "-i",
    privateKeyPath,
    "-p",
    String(droplet.sshPort),
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
  ];
}

/** A container's address on a Docker network. */
export async function containerIp(name: string, network: string): Promise<string> {
  const format = `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`;
  const ip = (await run("docker", ["inspect", "-f", format, name])).stdout.trim();
  if (!ip) throw new Error(`${name} has no address on ${network}`);
  return ip;
}
