// What the real-host tests measure on a host: HTTP through the published port (one request, a
// probe that runs during a change, a server that records what the host sends), SSH logins as
// CI/CD makes them, the services' states and a fingerprint a re-run must not change.
import * as http from "node:http";
import * as net from "node:net";
import { Client } from "ssh2";
import { APP_DIR, APP_UPSTREAM_FILE, CRON_PATH, ENV_FILE_NAME } from "../hostContract";
import { Droplet, run } from "./sandbox";

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One GET to 127.0.0.1:<port>, redirects not followed. */
export function get(port: number, path: string, timeoutMs = 5000, host = "127.0.0.1"): Promise<HttpResult> {
  return request(port, "GET", path, undefined, timeoutMs, host);
}

/**
 * One request to 127.0.0.1:<port> (or another loopback address of a droplet the test started) on a connection of its own (no keep-alive: a reused idle
 * connection that the server closes at that moment, e.g. on a Caddy reload, fails in Node without
 * a retry, where browsers retry), redirects not followed.
 */
export function request(
  port: number,
  method: string,
  path: string,
  body?: string,
  timeoutMs = 5000,
  host = "127.0.0.1",
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const options = { host, port, path, method, timeout: timeoutMs, agent: false };
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
export async function waitHealthy(port: number, timeoutMs = 60_000, host = "127.0.0.1"): Promise<HttpResult> {
  const deadline = Date.now() + timeoutMs;
  let last: HttpResult | Error = new Error("no answer");
  while (Date.now() < deadline) {
    last = await get(port, "/health", 5000, host).catch((e: Error) => e);
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
 * GETs /health on the published port (of loopback, or `host`) every 100 ms (10 Hz) while `work` runs, and on until at least
 * `minRequests` were sent; counts answers other than 200. A request fails after 10 s without an
 * answer: on a loaded 2-core machine the stand-in's health check (a database query and an S3
 * round trip) can take a few seconds, which is slow, not dropped.
 */
export async function probeDuring(
  port: number,
  work: () => Promise<unknown>,
  minRequests = 0,
  /** The address probed (a load balancer's). Default: loopback. */
  host = "127.0.0.1",
): Promise<ProbeResult & { error?: unknown }> {
  let working = true;
  const result: ProbeResult = { total: 0, failed: 0, failures: [], slowestMs: 0 };
  const started = Date.now();
  const probe = (async () => {
    while (working || result.total < minRequests) {
      const tick = Date.now();
      result.total++;
      const r = await get(port, "/health", 10_000, host).catch((e: Error) => e);
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
