// The README's main job, for real: `npm run sandbox` deploys the stack with the real engine to a
// droplet container on this machine and prints the app's URL and the deploy user's login; `npm run
// sandbox:down` removes it all. The tool runs as a user runs it, in a work directory and under a
// droplet name of this test's own (a developer's own sandbox is left alone).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { get, sshExec } from "../../harness/probes";
import { ExecResult, run } from "../../harness/sandbox";

const ROOT = path.join(__dirname, "..", "..");
const TOOL = path.join(ROOT, "tools", "laptopSandbox.ts");

describe("engine: npm run sandbox and sandbox:down, end to end", () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-laptop-"));
  const name = `chitram-sandbox-test-${randomBytes(3).toString("hex")}`;
  const env = { ...process.env, CHITRAM_SANDBOX_WORK: work, CHITRAM_SANDBOX_NAME: name };
  const tool = (...args: string[]): Promise<ExecResult> =>
    run(path.join(ROOT, "node_modules", ".bin", "tsx"), [TOOL, ...args], {
      cwd: ROOT,
      env,
      check: false,
      timeoutMs: 40 * 60_000,
    });
  let up: ExecResult;

  before(async () => {
    up = await tool("up");
  });
  after(async () => {
    await run("docker", ["rm", "-f", "-v", name], { check: false });
    await run("docker", ["network", "rm", `${name}-net`], { check: false });
    fs.rmSync(work, { recursive: true, force: true });
  });

  it("up ends with the app's URL, which answers /health 200, and progress lines on the way", async () => {
    assert.equal(up.code, 0, `${up.stdout.slice(-3000)}\n${up.stderr.slice(-3000)}`);
    assert.match(up.stdout, /^\[\s*\d+ s\] \$ .*pulumi up --yes --stack sandbox/m);
    const url = /^The app: (http:\/\/127\.0\.0\.1:(\d+))$/m.exec(up.stdout);
    assert.ok(url, up.stdout.slice(-2000));
    const health = await get(Number(url[2]), "/health");
    assert.equal(health.status, 200, health.body);
  });

  it("the deploy user's login it prints works: the key from the stack output, no passphrase, sudo -n", async () => {
    const login =
      /^The deploy user: (.*) > (\S+) && chmod 600 \S+ && ssh -i \S+ -p (\d+) chitram@127\.0\.0\.1$/m.exec(
        up.stdout,
      );
    assert.ok(login, up.stdout.slice(-2000));
    // The exports it printed, then its stack output command, as a user pastes them.
    const exports = up.stdout.split("\n").filter((l) => l.startsWith("export "));
    const r = await run("bash", ["-c", `${exports.join("\n")}\n${login[1]}`], { cwd: ROOT, env });
    const key = r.stdout;
    assert.match(key, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
    assert.equal(
      (await sshExec(Number(login[3]), "chitram", key, "sudo -n true && echo ok")).stdout.trim(),
      "ok",
    );
  });

  it("down removes the droplet and the stack", async () => {
    const down = await tool("down");
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /pulumi destroy --yes --stack sandbox/);
    const inspect = await run("docker", ["inspect", name], { check: false });
    assert.notEqual(inspect.code, 0, "the droplet container is still there");
    const stacks = fs.readdirSync(path.join(work, "state", ".pulumi", "stacks", "chitram"));
    assert.deepEqual(
      stacks.filter((f) => f.endsWith(".json")),
      [],
      "the stack is still in the backend",
    );
  });
});
