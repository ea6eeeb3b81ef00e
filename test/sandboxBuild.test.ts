// sandbox/build-go-services.sh when the Go module proxy refuses a module: one error naming
// module@version, and nothing in the cache that looks built. The proxy is a local server that
// refuses everything (no other network: GOSUMDB is off, GOMODCACHE is empty).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

const SCRIPT = path.join(__dirname, "..", "sandbox", "build-go-services.sh");

function runScript(env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [SCRIPT], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe("sandbox/build-go-services.sh", () => {
  let proxy: http.Server;
  let dir: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-go-build-"));
    proxy = http.createServer((_req, res) => {
      res.writeHead(403, { "Content-Type": "text/plain" });
      res.end("not found: This module version is not available\n");
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  });
  after(async () => {
    await new Promise((resolve) => proxy.close(resolve));
    // the go command writes its module cache read-only
    spawn("chmod", ["-R", "u+w", dir]).on("close", () => fs.rmSync(dir, { recursive: true, force: true }));
  });

  it("a module the proxy refuses stops the build with its module@version; nothing looks complete", async () => {
    const cache = path.join(dir, "cache");
    const r = await runScript({
      ...process.env,
      GOPROXY: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
      GOSUMDB: "off",
      GOMODCACHE: path.join(dir, "mod"),
      GOCACHE: path.join(dir, "build"),
      CHITRAM_SANDBOX_CACHE: cache,
    });
    assert.notEqual(r.code, 0, r.stderr);
    assert.equal(r.stdout, "", "no directory is printed");
    assert.match(
      r.stderr,
      /ERROR: caddy: the Go module proxy refused [\w./-]+@v\d[\w.+-]*; nothing was built/,
    );
    const left = fs.readdirSync(path.join(cache, "go-services"));
    assert.deepEqual(left, [], `left in the cache: ${left.join(", ")}`);
  });
});
