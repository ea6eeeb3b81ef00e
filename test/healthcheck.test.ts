// host/scripts/healthcheck.sh run for real against small HTTP servers on 127.0.0.1: a 200 passes, a
// redirect fails even when its target answers 200 (retro #8: an IP redirected to https://localhost).
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

const SCRIPT = path.join(__dirname, "..", "host", "scripts", "healthcheck.sh");

/** Runs healthcheck.sh once (no retries) with a host.env whose HEALTH_URL is `url` (and more lines). */
function healthcheck(url: string, more = ""): Promise<{ code: number; out: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-health-"));
  const hostEnv = path.join(dir, "host.env");
  fs.writeFileSync(hostEnv, `HEALTH_URL=${url}\n${more}`);
  return new Promise((resolve) => {
    execFile(
      "bash",
      [SCRIPT, "--retries", "1", "--interval", "0"],
      { env: { ...process.env, CHITRAM_HOST_ENV: hostEnv } },
      (err, stdout, stderr) => {
        fs.rmSync(dir, { recursive: true, force: true });
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
  });
}

describe("healthcheck.sh against a server on 127.0.0.1", () => {
  let server: http.Server;
  let base = "";
  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === "/health") return void res.writeHead(200).end("ok");
      if (req.url === "/to-health") return void res.writeHead(301, { location: `${base}/health` }).end();
      if (req.url === "/to-localhost")
        return void res.writeHead(308, { location: "https://localhost/health" }).end();
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("200 passes", async () => {
    const r = await healthcheck(`${base}/health`);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /-> 200/);
  });

  it("a redirect fails, even to a URL that answers 200, and the message names it", async () => {
    const r = await healthcheck(`${base}/to-health`);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /last HTTP status: 301/);
    assert.match(r.out, new RegExp(`redirect to: ${base}/health \\(redirects are failures\\)`));
  });

  it("retro #8: the redirect to https://localhost fails without being followed", async () => {
    const r = await healthcheck(`${base}/to-localhost`);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /redirect to: https:\/\/localhost\/health/);
  });

  it("a 404 fails with its status", async () => {
    const r = await healthcheck(`${base}/nothing`);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /last HTTP status: 404/);
  });
});

describe("healthcheck.sh over HTTPS from a CA the system does not trust (acmeCa staging, a private ACME CA)", () => {
  let server: https.Server;
  let dir = "";
  let port = 0;
  const domain = "chitram.test";
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-health-ca-"));
    const sh = (cmd: string) => execFileSync("bash", ["-c", cmd], { cwd: dir, stdio: "pipe" });
    sh(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=test-root " +
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -keyout ca.key -out ca.crt 2>/dev/null && " +
        `openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=${domain} -keyout srv.key -out srv.csr 2>/dev/null && ` +
        `printf 'subjectAltName=DNS:${domain}\\n' > ext.cnf && ` +
        "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out srv.crt 2>/dev/null",
    );
    server = https.createServer(
      { key: fs.readFileSync(path.join(dir, "srv.key")), cert: fs.readFileSync(path.join(dir, "srv.crt")) },
      (_req, res) => res.writeHead(200).end("ok"),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("fails without the CA's roots (no -k anywhere), passes with HEALTH_CA_ROOTS naming them", async () => {
    const url = `https://${domain}:${port}/health`;
    const without = await healthcheck(url, `HEALTH_HOST=${domain}\n`);
    assert.equal(without.code, 1, without.out);
    assert.match(without.out, /curl error \(exit 60\): .*certificate/i);
    const roots = path.join(dir, "ca.crt");
    const trusted = await healthcheck(url, `HEALTH_HOST=${domain}\nHEALTH_CA_ROOTS=${roots}\n`);
    assert.equal(trusted.code, 0, trusted.out);
    assert.match(trusted.out, /-> 200/);
    assert.doesNotMatch(fs.readFileSync(SCRIPT, "utf8"), /curl[^\n]*(\s-k\b|--insecure)/);
  });
});
