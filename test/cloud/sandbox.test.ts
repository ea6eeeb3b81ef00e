// `npm run sandbox -- --target digitalocean`, as a user runs it: the stack through the real
// DigitalOcean provider against the local DigitalOcean API, in the foreground, with the app's
// address printed; Ctrl-C destroys the stack and stops the API, leaving no droplet behind.
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";
import { get } from "../../harness/probes";
import { run } from "../../harness/sandbox";

const ROOT = path.join(__dirname, "..", "..");
const TOOL = path.join(ROOT, "tools", "laptopSandbox.ts");

describe("cloud: npm run sandbox -- --target digitalocean, up to Ctrl-C", () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-laptop-do-"));
  let child: ChildProcess | undefined;
  let output = "";
  let exited: Promise<number>;

  after(async () => {
    if (child?.exitCode === null) {
      child.kill("SIGINT");
      // The destroy, then the tool gone; killed when it takes longer than 10 minutes.
      const killer = setTimeout(() => child?.kill("SIGKILL"), 10 * 60_000);
      await exited;
      clearTimeout(killer);
    }
    fs.rmSync(work, { recursive: true, force: true });
  });

  it("prints the app's address, which answers; Ctrl-C destroys the stack and leaves no droplet", async () => {
    child = spawn(path.join(ROOT, "node_modules", ".bin", "tsx"), [TOOL, "up", "--target", "digitalocean"], {
      cwd: ROOT,
      env: { ...process.env, CHITRAM_SANDBOX_WORK: work },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (output += b.toString()));
    exited = new Promise((resolve) => child!.on("close", (code) => resolve(code ?? 1)));
    // Until the tool says it is up, or exits, within 40 minutes; no timer outlives the wait (a
    // pending one would keep this test process alive after its tests).
    let ready = false;
    let gone = false;
    void exited.then(() => (gone = true));
    for (const deadline = Date.now() + 40 * 60_000; !gone && Date.now() < deadline;) {
      if ((ready = output.includes("Press Ctrl-C"))) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.ok(ready, output.slice(-4000));
    assert.match(output, /^\[\s*\d+ s\] \$ .*pulumi up --yes --stack sandbox-do/m);
    const url = /^The app: http:\/\/(127\.\d+\.\d+\.\d+)$/m.exec(output);
    assert.ok(url, output.slice(-2000));
    assert.equal((await get(80, "/health", 10_000, url[1])).status, 200);
    const container =
      /^The droplet: chitram-sandbox-do \(s-2vcpu-2gb, nyc3\), the container (\S+) on this machine$/m.exec(
        output,
      );
    assert.ok(container, output.slice(-2000));
    const inspect = () => run("docker", ["inspect", container[1]], { check: false });
    assert.equal((await inspect()).code, 0, "the droplet's container is not there");

    child.kill("SIGINT");
    assert.equal(await exited, 0, output.slice(-4000));
    assert.match(output, /SIGINT: destroying the stack/);
    assert.match(output, /pulumi destroy --yes --stack sandbox-do/);
    assert.notEqual((await inspect()).code, 0, "the droplet's container is left");
    const stacks = fs.readdirSync(path.join(work, "state", ".pulumi", "stacks", "chitram"));
    assert.deepEqual(
      stacks.filter((f) => f.endsWith(".json")),
      [],
      "the stack is still in the backend",
    );
  });
});
