// What the real-host tests and the sandbox benchmark share: a deployed sandbox droplet, its
// program run and engine state, and small probes (HTTP through the published port, SSH logins).
import * as http from "node:http";
import * as net from "node:net";
import { Client } from "ssh2";
import { decodeFiles, encodeFiles } from "../templates/hostFiles";
import { ed25519KeyPair } from "./keys";
import { ProgramStep } from "./steps";
import { APP_DIR, APP_UPSTREAM_FILE, CRON_PATH, ENV_FILE_NAME, SANDBOX_APP_IMAGE } from "../hostContract";
import { EngineState } from "./engine";
import { buildImages, Droplet, ensureDockerd, run, startDroplet } from "./sandbox";
import { runStack } from "./steps";

/** App images for release tests, built by buildAppVariants inside a droplet's own engine only. */
export const APP_VARIANTS = {
  /** The stand-in app under another tag and env: a new version. */
  v2: "chitram-app:sandbox-v2",
  /** Listens on the app's port and answers 404 on /health: never healthy. */
  noHealth: "chitram-app:sandbox-no-health",
  /** Exits as soon as it starts. */
  crashing: "chitram-app:sandbox-crashing",
  /** No registry listens there: the pull fails at once, without leaving the droplet. */
  missing: "127.0.0.1:5999/chitram-app:missing",
} as const;

const VARIANT_DOCKERFILES: Record<string, string> = {
  [APP_VARIANTS.v2]: `FROM ${SANDBOX_APP_IMAGE}\nENV CHITRAM_SANDBOX_RELEASE=v2\n`,
  [APP_VARIANTS.noHealth]: `FROM ${SANDBOX_APP_IMAGE}\nCMD ["python3", "-m", "http.server", "8000"]\n`,
  [APP_VARIANTS.crashing]: `FROM ${SANDBOX_APP_IMAGE}\nCMD ["python3", "-c", "import sys; sys.exit('boom: DATABASE_URL has no host')"]\n`,
};

/** Builds the APP_VARIANTS images (metadata-only layers) in the droplet's engine, from its app image. */
export async function buildAppVariants(droplet: Droplet): Promise<void> {
  for (const [tag, dockerfile] of Object.entries(VARIANT_DOCKERFILES)) {
    const r = await droplet.exec(`DOCKER_BUILDKIT=0 docker build -q -t ${tag} -`, { input: dockerfile });
    if (r.code !== 0) throw new Error(`building ${tag} in ${droplet.name}: ${r.stderr}`);
  }
}

export interface Deployment {
  droplet: Droplet;
  stack: string;
  config: Record<string, string>;
  steps: ProgramStep[];
  state: EngineState;
  deployPrivateKey: string;
  bootstrapPrivateKey: string;
}

/** A fresh droplet whose root accepts a new bootstrap key, and the program configured for it. */
export async function newDeployment(
  stack: string,
  opts: {
    holdSshd?: boolean;
    /** More config, or a function of the new droplet that returns it (e.g. its network's addresses). */
    config?: Record<string, string> | ((droplet: Droplet) => Promise<Record<string, string>>);
  } = {},
): Promise<Deployment> {
  await ensureDockerd();
  await buildImages();
  const bootstrap = ed25519KeyPair("sandbox-root");
  const droplet = await startDroplet({
    rootPublicKey: bootstrap.public,
    holdSshd: opts.holdSshd,
  });
  // First: a config function may connect the droplet to another network, which moves its ports.
  const more = typeof opts.config === "function" ? await opts.config(droplet) : opts.config;
  const config = {
    target: "existing",
    host: "127.0.0.1",
    sshPort: String(droplet.sshPort),
    sshUser: "root",
    sshPrivateKey: bootstrap.private,
    appImage: SANDBOX_APP_IMAGE,
    ...more,
  };
  const run = await runStack(stack, config, "real");
  return {
    droplet,
    stack,
    config,
    steps: run.steps,
    state: new Map(),
    deployPrivateKey: String(run.outputs.deployPrivateKey.value),
    bootstrapPrivateKey: bootstrap.private,
  };
}

/** The program's steps again with changed config; keys and passwords stay (as in Pulumi's state). */
export async function restep(d: Deployment, config: Record<string, string>): Promise<ProgramStep[]> {
  return (await runStack(d.stack, { ...d.config, ...config }, "real")).steps;
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One GET to 127.0.0.1:<port>, redirects not followed. */
export function get(port: number, path: string, timeoutMs = 5000): Promise<HttpResult> {
  return request(port, "GET", path, undefined, timeoutMs);
}

/**
 * One request to 127.0.0.1:<port> on a connection of its own (no keep-alive: a reused idle
 * connection that the server closes at that moment, e.g. on a Caddy reload, fails in Node without
 * a retry, where browsers retry), redirects not followed.
 */
export function request(
  port: number,
  method: string,
  path: string,
  body?: string,
  timeoutMs = 5000,
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const options = { host: "127.0.0.1", port, path, method, timeout: timeoutMs, agent: false };
    const req = http.request(options, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** Whether a TCP connection to host:port is accepted (host: a container the test started). */
export function tcpOpen(host: string, port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on("connect", () => done(true));
    socket.on("error", () => done(false));
  });
}

/**
 * Logs in over SSH the way CI/CD does: a private key, no agent, no TTY, no password; runs one
 * command. Rejects when the login itself fails.
 */
export function sshExec(
  port: number,
  user: string,
  privateKey: string,
  command: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    client
      .on("ready", () => {
        client.exec(command, (err, channel) => {
          if (err) return reject(err);
          let stdout = "";
          let stderr = "";
          channel.on("data", (d: Buffer) => (stdout += d.toString()));
          channel.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
          channel.on("close", (code: number | null) => {
            client.end();
            resolve({ code, stdout, stderr });
          });
        });
      })
      .on("error", reject)
      .connect({
        host: "127.0.0.1",
        port,
        username: user,
        privateKey,
        readyTimeout: 15_000,
        tryKeyboard: false,
      });
  });
}

/** A summary of the host's state that a re-run must not change. */
export async function hostFingerprint(droplet: Droplet, deployUser = "chitram"): Promise<string> {
  const r = await droplet.exec(
    [
      `getent passwd ${deployUser}`,
      `id -nG ${deployUser}`,
      `stat -c '%n %a %U' ${APP_DIR} ${APP_DIR}/${ENV_FILE_NAME} /etc/sudoers.d/${deployUser} ${CRON_PATH}`,
      `find ${APP_DIR} /etc/sudoers.d ${CRON_PATH} /etc/ssh/sshd_config.d /home/${deployUser}/.ssh -type f -not -name '.compose-up.err' -exec sha256sum {} + | sort`,
      `cd ${APP_DIR} && docker compose ps -q | sort`,
      "grep -c chitram /etc/fstab || true",
    ].join(" && "),
  );
  if (r.code !== 0) throw new Error(`fingerprint failed: ${r.stderr}`);
  return r.stdout;
}

/** Polls GET /health on the published port until it answers 200 or the time is up. */
export async function waitHealthy(port: number, timeoutMs = 60_000): Promise<HttpResult> {
  const deadline = Date.now() + timeoutMs;
  let last: HttpResult | Error = new Error("no answer");
  while (Date.now() < deadline) {
    last = await get(port, "/health").catch((e: Error) => e);
    if (!(last instanceof Error) && last.status === 200) return last;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(
    `health did not become 200: ${last instanceof Error ? last.message : `${last.status} ${last.body}`}`,
  );
}

/**
 * `<status> <health>` of the app, postgres, minio and caddy containers, once each is running and
 * (where it has a healthcheck) healthy, or as they are when `timeoutMs` is up. Caddy answers
 * before every healthcheck has run again, so /health alone does not show all four are back.
 */
export async function serviceStates(droplet: Droplet, timeoutMs = 180_000): Promise<string[]> {
  const rounds = Math.ceil(timeoutMs / 2000);
  const r = await droplet.exec(
    `cd ${APP_DIR} && for i in $(seq ${rounds}); do all=$(for s in app postgres minio caddy; do ` +
      "docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' $(docker compose ps -q $s); " +
      'done); echo "$all" | grep -qv -E \'^running( healthy)? *$\' || break; sleep 2; done; echo "$all"',
  );
  if (r.code !== 0) throw new Error(`service states: ${r.stderr}`);
  return r.stdout.trim().split("\n");
}

export interface ProbeResult {
  total: number;
  failed: number;
  /** Status (0 = no answer) and time of each failed request, for the failure message. */
  failures: string[];
  /** The slowest answer, in ms. */
  slowestMs: number;
}

/** The app container Caddy proxies to (the upstream file names it) and that container's image. */
export async function liveApp(droplet: Droplet): Promise<{ name: string; image: string }> {
  const r = await droplet.exec(
    `name=$(sed -n 's/^to \\(.*\\):[0-9]*$/\\1/p' ${APP_DIR}/caddy/${APP_UPSTREAM_FILE}) && ` +
      'echo "$name $(docker inspect -f \'{{.Config.Image}}\' "$name")"',
  );
  if (r.code !== 0) throw new Error(`reading the live app container of ${droplet.name}: ${r.stderr}`);
  const [name, image] = r.stdout.trim().split(" ");
  return { name, image };
}

/**
 * GETs /health on the published port every 100 ms (10 Hz) while `work` runs, and on until at least
 * `minRequests` were sent; counts answers other than 200. A request fails after 10 s without an
 * answer: on a loaded 2-core machine the stand-in's health check (a database query and an S3
 * round trip) can take a few seconds, which is slow, not dropped.
 */
export async function probeDuring(
  port: number,
  work: () => Promise<unknown>,
  minRequests = 0,
): Promise<ProbeResult & { error?: unknown }> {
  let working = true;
  const result: ProbeResult = { total: 0, failed: 0, failures: [], slowestMs: 0 };
  const started = Date.now();
  const probe = (async () => {
    while (working || result.total < minRequests) {
      const tick = Date.now();
      result.total++;
      const r = await get(port, "/health", 10_000).catch((e: Error) => e);
      result.slowestMs = Math.max(result.slowestMs, Date.now() - tick);
      if (r instanceof Error || r.status !== 200) {
        result.failed++;
        const at = ((tick - started) / 1000).toFixed(1);
        result.failures.push(
          `${at}s: ${r instanceof Error ? r.message : `HTTP ${r.status} ${r.body.slice(0, 300).trim()}`}`,
        );
      }
      await new Promise((res) => setTimeout(res, Math.max(0, 100 - (Date.now() - tick))));
    }
  })();
  let error: unknown;
  try {
    await work();
  } catch (e) {
    error = e;
  } finally {
    working = false;
    await probe;
  }
  return error === undefined ? result : { ...result, error };
}

/** The steps with one more line in the app's env file (.env.production): a change of the app's env. */
export function withAppEnv(steps: ProgramStep[], name: string, value: string): ProgramStep[] {
  return steps.map((s) => {
    if (s.name !== "app-env-file") return s;
    const files = decodeFiles(s.stdin!).map((f) =>
      f.path.endsWith(`/${ENV_FILE_NAME}`) ? { ...f, content: `${f.content}${name}=${value}\n` } : f,
    );
    return { ...s, stdin: encodeFiles(files) };
  });
}

/** The gateway address of the droplet's own bridge network: this machine, as the droplet sees it. */
export async function networkGateway(droplet: Droplet): Promise<string> {
  const r = await run("docker", [
    "network",
    "inspect",
    "-f",
    "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    droplet.network,
  ]);
  const ip = r.stdout.trim();
  if (!net.isIPv4(ip)) throw new Error(`no IPv4 gateway on ${droplet.network}: ${JSON.stringify(ip)}`);
  return ip;
}

export interface RecordedRequest {
  method: string;
  url: string;
  body: string;
}

/** An HTTP server on host:0 that answers 200 to everything and records each request. */
export async function recordingServer(
  host: string,
): Promise<{ port: number; requests: RecordedRequest[]; close(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (body += c));
    req.on("end", () => {
      requests.push({ method: req.method ?? "", url: req.url ?? "", body });
      res.end("OK");
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  return { port, requests, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/**
 * The steps with an env file whose MINIO_SECRET_KEY is not MinIO's root password (retro #1),
 * re-encoded: a hand-edited bundle would fail its checksum in app-env-file instead.
 */
export function withMismatchedMinioKeys(steps: ProgramStep[]): ProgramStep[] {
  return steps.map((s) =>
    s.name !== "app-env-file"
      ? s
      : {
          ...s,
          stdin: encodeFiles(
            decodeFiles(s.stdin!).map((f) => ({
              ...f,
              content: f.content.replace(
                /^MINIO_SECRET_KEY=.*$/m,
                "MINIO_SECRET_KEY=not-the-minio-root-password",
              ),
            })),
          ),
        },
  );
}
