// Retro #8 with real Caddy (Debian's, run unprivileged on 127.0.0.1 ports): the retrospective's
// `{$DOMAIN:localhost}` Caddyfile, reached on an IP address, redirects to HTTPS (to
// https://localhost when the request names localhost); the stack's IP-mode Caddyfile answers on
// plain HTTP with no redirect. The app is a tiny server on 127.0.0.1 answering 200.
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  APP_UPSTREAM_FILE,
  BACKUP_STATUS_FILE,
  BACKUP_STATUS_URL_PATH,
  LB_DRAIN_FILE,
} from "../hostContract";
import { renderCaddyfile } from "../render/caddyfile";

const RETRO_CADDYFILE = `{$DOMAIN:localhost} {
    reverse_proxy app:8000
    encode gzip zstd
}
`;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.on("connect", () => (sock.destroy(), resolve(true)));
    sock.on("error", () => resolve(false));
  });
}

/** One GET to 127.0.0.1:<port> with the given Host header; redirects not followed. */
function get(
  port: number,
  host: string,
  urlPath = "/health",
  headers: Record<string, string> = {},
): Promise<{ status: number; location?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: "127.0.0.1", port, path: urlPath, headers: { host, ...headers }, timeout: 5000 },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer from 127.0.0.1:${port} in 5 s`)));
    req.on("error", reject);
  });
}

interface RunningCaddy {
  httpPort: number;
  httpsPort: number;
  /** What the Caddyfile calls /etc/caddy (the Caddyfile's directory on the host). */
  dir: string;
  stop(): Promise<void>;
}

/**
 * Runs `caddy run` on a Caddyfile, with a global block that only moves Caddy's ports onto free
 * 127.0.0.1 ports, turns the admin API off and keeps its local CA out of the system trust store.
 * `app:<port>` upstreams, and the upstream file the stack's Caddyfile imports, are pointed at
 * `appPort` on 127.0.0.1.
 */
async function runCaddy(caddyfile: string, appPort: number): Promise<RunningCaddy> {
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-caddy-"));
  const config = path.join(dir, "Caddyfile");
  fs.writeFileSync(path.join(dir, APP_UPSTREAM_FILE), `to 127.0.0.1:${appPort}\n`);
  const options = ["admin off", `http_port ${httpPort}`, `https_port ${httpsPort}`, "skip_install_trust"]
    .map((o) => `\t${o}\n`)
    .join("");
  const body = caddyfile
    .replace(/app:\d+/g, `127.0.0.1:${appPort}`)
    .replace(/^:80 \{$/m, `:${httpPort} {`)
    .replace(/\/etc\/caddy\//g, `${dir}/`);
  // A Caddyfile has at most one global options block: add to the file's own, or put one first.
  fs.writeFileSync(
    config,
    /^\{$/m.test(body) ? body.replace(/^\{\n/m, `{\n${options}`) : `{\n${options}}\n${body}`,
  );
  const child: ChildProcess = spawn("caddy", ["run", "--adapter", "caddyfile", "--config", config], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr!.on("data", (b: Buffer) => (log += b.toString()));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 100 && child.exitCode === null && !(await tcpOpen(httpPort)); i++)
    await new Promise((r) => setTimeout(r, 100));
  if (!(await tcpOpen(httpPort))) {
    await stop();
    throw new Error(`caddy did not listen on ${httpPort}: ${log}`);
  }
  return { httpPort, httpsPort, dir, stop };
}

describe("retro #8: Caddyfiles served by real Caddy on an IP address", () => {
  let app: http.Server;
  let appPort = 0;
  /** The headers of the last request the app got. */
  let seen: http.IncomingHttpHeaders = {};
  before(async () => {
    app = http.createServer((req, res) => {
      seen = req.headers;
      res.writeHead(200).end("ok");
    });
    await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
    appPort = (app.address() as net.AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => app.close(() => resolve())));

  it("the retrospective's {$DOMAIN:localhost} Caddyfile redirects plain HTTP on the IP to HTTPS, and https://localhost for localhost", async () => {
    const caddy = await runCaddy(RETRO_CADDYFILE, appPort);
    try {
      const onIp = await get(caddy.httpPort, "203.0.113.10");
      assert.equal(onIp.status, 308);
      assert.match(onIp.location ?? "", /^https:\/\/203\.0\.113\.10\//, "users leave plain HTTP");
      const onLocalhost = await get(caddy.httpPort, "localhost");
      assert.equal(onLocalhost.location, "https://localhost/health");
    } finally {
      await caddy.stop();
    }
  });

  it("the stack's IP-mode Caddyfile answers 200 from the app on the same request, with no redirect and no HSTS", async () => {
    const caddy = await runCaddy(renderCaddyfile({}), appPort);
    try {
      for (const host of ["203.0.113.10", "localhost"]) {
        const r = await get(caddy.httpPort, host);
        assert.equal(r.status, 200, `${host}: ${r.status} ${r.location ?? ""}`);
        assert.equal(r.location, undefined);
        assert.equal(r.body, "ok");
      }
    } finally {
      await caddy.stop();
    }
  });

  it("the backup status path answers 200 while the status file exists and 404 once it is gone, and never reaches the app", async () => {
    const caddy = await runCaddy(renderCaddyfile({}), appPort);
    try {
      const file = path.join(caddy.dir, BACKUP_STATUS_FILE.slice("caddy/".length));
      assert.equal((await get(caddy.httpPort, "203.0.113.10", BACKUP_STATUS_URL_PATH)).status, 404);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, "last good backup run 20261204T030000Z\n");
      const fresh = await get(caddy.httpPort, "203.0.113.10", BACKUP_STATUS_URL_PATH);
      assert.equal(fresh.status, 200);
      assert.equal(fresh.body, "last good backup run 20261204T030000Z\n");
      fs.rmSync(file);
      assert.equal((await get(caddy.httpPort, "203.0.113.10", BACKUP_STATUS_URL_PATH)).status, 404);
      // nothing else of that directory is served, and every other path still reaches the app
      fs.writeFileSync(path.join(path.dirname(file), "other"), "x");
      assert.equal((await get(caddy.httpPort, "203.0.113.10", "/.well-known/chitram/other")).body, "ok");
      assert.equal((await get(caddy.httpPort, "203.0.113.10", "/health")).body, "ok");
    } finally {
      await caddy.stop();
    }
  });

  it("behind a load balancer: while the drain file exists the load balancer's checks of the health path get 503; the requests it forwards (X-Forwarded-For) and other paths still reach the app", async () => {
    const caddy = await runCaddy(
      renderCaddyfile({ behindLoadBalancer: { healthPath: "/health?full=1", https: false } }),
      appPort,
    );
    const forwarded = { "X-Forwarded-For": "198.51.100.7" };
    try {
      const check = () => get(caddy.httpPort, "10.10.0.5", "/health?full=1");
      assert.equal((await check()).status, 200);
      const file = path.join(caddy.dir, LB_DRAIN_FILE.slice("caddy/".length));
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, "");
      const drained = await check();
      assert.equal(drained.status, 503);
      assert.equal(drained.body, "draining");
      assert.equal((await get(caddy.httpPort, "203.0.113.80", "/health", forwarded)).body, "ok");
      // The app is told the user's address, as the load balancer saw it.
      assert.equal(seen["x-forwarded-for"], "198.51.100.7");
      assert.equal((await get(caddy.httpPort, "10.10.0.5", "/")).body, "ok");
      fs.rmSync(file);
      assert.equal((await check()).status, 200);
    } finally {
      await caddy.stop();
    }
  });

  it("behind a load balancer that ends HTTPS: the app is told users are on HTTPS, and the user's address", async () => {
    const caddy = await runCaddy(
      renderCaddyfile({ behindLoadBalancer: { healthPath: "/health", https: true } }),
      appPort,
    );
    try {
      const r = await get(caddy.httpPort, "chitram.example.com", "/", {
        "X-Forwarded-For": "198.51.100.7",
        "X-Forwarded-Proto": "https",
      });
      assert.equal(r.body, "ok");
      assert.equal(seen["x-forwarded-proto"], "https");
      assert.equal(seen["x-forwarded-for"], "198.51.100.7");
      assert.match((await get(caddy.httpPort, "chitram.example.com", "/")).body, /ok/);
    } finally {
      await caddy.stop();
    }
  });
});
