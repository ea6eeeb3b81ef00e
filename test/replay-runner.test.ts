// Unit tests of harness/replay.ts. No real host: pure tests of the ordering and the checks,
// then a tiny in-process ssh2 Server on 127.0.0.1 that runs exec'd commands with a local
// `bash -c` (test only) in a temp dir.
// Run: node --import tsx --test test/replay-runner.test.ts
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { Server, utils } from "ssh2";
import type { Connection, ParsedKey, Session } from "ssh2";
import { stepCommand } from "../remote/script";
import { orderSteps, replay, StepError } from "../harness/replay";
import type { Step, StepConnection } from "../harness/replay";
import { ed25519KeyPair } from "../harness/keys";

const HOST_KEY = ed25519KeyPair();
const USER_KEY = ed25519KeyPair();

function step(name: string, dependsOn: string[] = [], extra: Partial<Step> = {}): Step {
  return {
    name,
    type: "command:remote:Command",
    connection: { host: "droplet.invalid", privateKey: USER_KEY.private },
    create: "true",
    dependsOn,
    ...extra,
  };
}

const names = (steps: { name: string }[]) => steps.map((s) => s.name);

describe("orderSteps", () => {
  it("keeps input order among independent steps", () => {
    // Catches: a sort that reorders (e.g. by name) steps the DAG leaves free.
    assert.deepEqual(names(orderSteps([step("c"), step("a"), step("b")])), ["c", "a", "b"]);
  });

  it("puts dependencies first and otherwise keeps input order", () => {
    // Catches: running a step before a step it depends on; or a non-stable topological sort.
    const steps = [step("app", ["files"]), step("user"), step("files", ["user"]), step("cron")];
    assert.deepEqual(names(orderSteps(steps)), ["user", "files", "app", "cron"]);
  });

  it("throws on a cycle, naming the steps in it", () => {
    // Catches: a cycle silently dropping steps, or looping forever.
    const steps = [step("free"), step("a", ["c"]), step("b", ["a"]), step("c", ["b"]), step("d", ["a"])];
    assert.throws(() => orderSteps(steps), /dependency cycle: a -> c -> b -> a/);
    assert.throws(() => orderSteps([step("self", ["self"])]), /dependency cycle: self -> self/);
  });

  it("throws on an unknown dependency, naming both steps", () => {
    // Catches: a misspelt dependsOn being ignored (the step would run too early).
    assert.throws(() => orderSteps([step("a", ["nope"])]), /step "a" depends on unknown step "nope"/);
  });

  it("throws on a duplicate name", () => {
    // Catches: two resources with one name collapsing into one step.
    assert.throws(() => orderSteps([step("a"), step("a")]), /duplicate step name "a"/);
  });
});

describe("replay checks (no host contacted)", () => {
  // A closed port on 127.0.0.1 with no retries: any dial fails fast, so a step that should not
  // dial and does shows up as a failure.
  let closedPort = 0;
  before(async () => (closedPort = await freePort()));
  const noDial = (c: StepConnection) => ({ ...c, host: "127.0.0.1", port: closedPort, dialErrorLimit: 0 });

  it("throws on an unknown step type before running anything", async () => {
    // Catches: unknown resources being skipped, or the earlier steps running first.
    const steps = [step("ok"), { ...step("odd"), type: "command:local:Command" as Step["type"] }];
    await assert.rejects(replay(steps, { connectionOverride: noDial, log: () => {} }), /unknown step type/);
  });

  it("does not dial for a Command without create (the provider's Create does nothing)", async () => {
    // Catches: a create-less Command (delete-only) dialling the host and failing the replay.
    const res = await replay([step("delete-only", [], { create: undefined })], {
      connectionOverride: noDial,
      log: () => {},
    });
    assert.deepEqual(names(res), ["delete-only"]);
  });
});

// ---- in-process SSH server ---------------------------------------------------------------------

interface TestServer {
  port: number;
  commands: string[]; // every exec'd command, as received
  users: string[]; // every authenticated user
  root: string; // a temp dir: the commands' HOME
  close(): Promise<void>;
}

/** Start an ssh2 Server on 127.0.0.1. `acceptEnv` plays sshd's AcceptEnv (default: none). */
async function startServer(opts: { acceptEnv?: string[]; port?: number } = {}): Promise<TestServer> {
  const allowed = utils.parseKey(USER_KEY.public) as ParsedKey;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "replay-home-"));
  const commands: string[] = [];
  const users: string[] = [];
  const conns = new Set<Connection>();
  const server = new Server({ hostKeys: [HOST_KEY.private] }, (conn) => {
    conns.add(conn);
    conn.on("close", () => conns.delete(conn));
    conn.on("error", () => {});
    conn.on("authentication", (ctx) => {
      const ok =
        ctx.method === "publickey" &&
        ctx.key.algo === allowed.type &&
        ctx.key.data.equals(allowed.getPublicSSH()) &&
        (!ctx.signature || allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true);
      if (!ok) return ctx.reject(["publickey"]);
      users.push(ctx.username);
      ctx.accept();
    });
    conn.on("ready", () => conn.on("session", (accept) => serveSession(accept(), opts.acceptEnv ?? [])));
  });

  function serveSession(session: Session, acceptEnv: string[]) {
    const env: Record<string, string> = {};
    session.on("env", (accept, reject, info) => {
      if (!acceptEnv.includes(info.key)) return reject?.();
      env[info.key] = info.val;
      accept?.();
    });
    session.on("exec", (accept, _reject, info) => {
      commands.push(info.command);
      const ch = accept();
      // --norc: bash reads ~/.bashrc when its stdin is a socket (it takes that for sshd), and
      // node's stdio pipes are sockets; this host's .bashrc must not leak into the tests.
      const child = spawn("bash", ["--norc", "-c", info.command], {
        env: { PATH: process.env.PATH, HOME: root, ...env },
      });
      child.stdin.on("error", () => {}); // the command may exit without reading its stdin
      ch.pipe(child.stdin); // the client's EOF ends the command's stdin
      child.stdout.on("data", (b: Buffer) => ch.write(b));
      child.stderr.on("data", (b: Buffer) => ch.stderr.write(b));
      child.on("close", (code, signal) => {
        if (code !== null) ch.exit(code);
        else ch.exit(String(signal).replace(/^SIG/, ""), false, "");
        ch.end();
      });
    });
  }

  const srv = server as unknown as net.Server;
  await new Promise<void>((resolve) => srv.listen(opts.port ?? 0, "127.0.0.1", resolve));
  return {
    port: (srv.address() as net.AddressInfo).port,
    commands,
    users,
    root,
    close: async () => {
      for (const c of conns) c.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** A port that nothing listens on (right now). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

const to = (port: number) => (c: StepConnection) => ({ ...c, host: "127.0.0.1", port });

describe("replay over SSH (in-process server on 127.0.0.1)", { timeout: 60_000 }, () => {
  let srv: TestServer;
  before(async () => (srv = await startServer()));
  after(() => srv.close());

  it("execs create as given, as root by default, and feeds stdin then EOF", async () => {
    // Catches: stdin not written or never closed (`cat` would hang until the test times out),
    // the command being wrapped or rewritten, or a user other than the provider's default root.
    const create = "cat; echo to-stderr >&2";
    const res = await replay(
      [step("feed", [], { create, stdin: "hello\nworld\n" }), step("no-stdin", ["feed"], { create: "cat" })],
      { connectionOverride: to(srv.port), log: () => {} },
    );
    assert.equal(res[0].stdout, "hello\nworld"); // one trailing newline dropped, like the provider
    assert.equal(res[0].stderr, "to-stderr");
    assert.equal(res[1].stdout, "");
    assert.deepEqual(srv.commands.slice(-2), [create, "cat"]);
    assert.deepEqual(srv.users.slice(-2), ["root", "root"]);
  });

  it("throws StepError with the step name, exit code and the last 20 lines of stderr", async () => {
    // Catches: a non-zero exit passing as success, the wrong step blamed, the tail missing or
    // untrimmed, or the steps after a failure still running.
    const create = 'for i in $(seq 1 30); do echo "line$i" >&2; done; echo out; exit 3';
    const steps = [step("boom", [], { create }), step("after-boom", ["boom"], { create: "echo never" })];
    const before = srv.commands.length;
    const err = await replay(steps, { connectionOverride: to(srv.port), log: () => {} }).catch(
      (e: unknown) => e,
    );
    assert.ok(err instanceof StepError, String(err));
    assert.equal(err.step, "boom");
    assert.equal(err.exitCode, 3);
    assert.match(err.message, /^step boom failed \(exit 3\): line11\n/);
    assert.match(err.message, /line30$/);
    assert.doesNotMatch(err.message, /\bline10\b/);
    assert.equal(err.stdout, "out\n");
    assert.deepEqual(srv.commands.slice(before), [create]);
  });

  it("falls back to the stdout tail when stderr is empty", async () => {
    // Catches: an empty message for commands that report failures on stdout.
    const err = await replay([step("quiet", [], { create: "echo why-it-failed; exit 1" })], {
      connectionOverride: to(srv.port),
      log: () => {},
    }).catch((e: unknown) => e);
    assert.ok(err instanceof StepError);
    assert.equal(err.message, "step quiet failed (exit 1): why-it-failed");
  });

  it("stopAfter runs only the first k steps in order", async () => {
    // Catches: stopAfter ignored, off by one, or applied before ordering.
    const file = path.join(srv.root, "stop-after.txt");
    const steps = ["s3", "s1", "s2"].map((n, i) =>
      step(n, i === 0 ? ["s2"] : i === 2 ? ["s1"] : [], { create: `echo ${n} >> ${file}` }),
    );
    const res = await replay(steps, { stopAfter: 2, connectionOverride: to(srv.port), log: () => {} });
    assert.deepEqual(names(res), ["s1", "s2"]);
    assert.equal(fs.readFileSync(file, "utf8"), "s1\ns2\n");
    assert.deepEqual(await replay(steps, { stopAfter: 0, log: () => {} }), []);
  });

  it("logs one line per step with its name and seconds", async () => {
    // Catches: a silent replay (no way to see which step is slow or which one failed).
    const lines: string[] = [];
    await replay([step("a"), step("b")], { connectionOverride: to(srv.port), log: (l) => lines.push(l) });
    assert.equal(lines.length, 2);
    assert.match(lines[0], /\ba ok \(\d+\.\d s\)/);
    assert.match(lines[1], /\bb ok \(\d+\.\d s\)/);
  });
});

describe("environment (SSH env requests, as the provider sends them)", { timeout: 60_000 }, () => {
  it("fails the step, naming the variable, when the server refuses it (no AcceptEnv)", async () => {
    // Catches: a refused variable passing silently (the provider fails the step), or the
    // command running anyway, or the variable being smuggled in through the command line.
    const srv = await startServer({ acceptEnv: [] });
    try {
      const err = await replay([step("env", [], { create: "echo $FOO", environment: { FOO: "bar" } })], {
        connectionOverride: to(srv.port),
        log: () => {},
      }).catch((e: unknown) => e);
      assert.ok(err instanceof StepError, String(err));
      assert.match(err.message, /^step env failed: could not set environment variable "FOO"/);
      assert.deepEqual(srv.commands, []);
    } finally {
      await srv.close();
    }
  });

  it("sets accepted variables through env requests, not the command line", async () => {
    // Catches: env requests not sent at all (the variable would be empty here).
    const srv = await startServer({ acceptEnv: ["FOO", "LANG"] });
    try {
      const res = await replay(
        [step("env", [], { create: 'echo "$FOO $LANG"', environment: { FOO: "bar", LANG: "C.UTF-8" } })],
        { connectionOverride: to(srv.port), log: () => {} },
      );
      assert.equal(res[0].stdout, "bar C.UTF-8");
      assert.deepEqual(srv.commands, ['echo "$FOO $LANG"']);
    } finally {
      await srv.close();
    }
  });
});

describe("dial retry", { timeout: 60_000 }, () => {
  it("waits out a server that starts listening ~2 s late", async () => {
    // Catches: no retry (connection refused fails at once) or a retry budget too short for the
    // provider's backoff (default 10 errors allowed: 100 ms growing x1.5, ~11 s in all).
    const port = await freePort();
    let srv: TestServer | undefined;
    const late = setTimeout(() => void startServer({ port }).then((s) => (srv = s)), 2_000);
    const started = Date.now();
    try {
      const res = await replay([step("late", [], { create: "echo up" })], {
        connectionOverride: to(port),
        log: () => {},
      });
      assert.equal(res[0].stdout, "up");
      assert.ok(Date.now() - started >= 1_900, "connected before the server listened?");
    } finally {
      clearTimeout(late);
      await srv?.close();
    }
  });

  it("gives up after dialErrorLimit + 1 failed dials, counting handshake failures", async () => {
    // Catches: retrying forever, not retrying handshake failures, or being off by one against
    // the provider (it fails once the failed dials exceed the limit).
    let accepted = 0;
    const dropper = net.createServer((sock) => {
      accepted++;
      sock.destroy(); // TCP connects, SSH handshake fails: a reset
    });
    await new Promise<void>((resolve) => dropper.listen(0, "127.0.0.1", resolve));
    const { port } = dropper.address() as net.AddressInfo;
    try {
      const err = await replay([step("never", [], { create: "true" })], {
        connectionOverride: (c) => ({ ...to(port)(c), dialErrorLimit: 2 }),
        log: () => {},
      }).catch((e: unknown) => e);
      assert.ok(err instanceof StepError, String(err));
      assert.match(
        err.message,
        /^step never failed: dial 127\.0\.0\.1:\d+: 3 failed attempts \(dialErrorLimit 2\)/,
      );
      assert.equal(err.exitCode, null);
      assert.equal(accepted, 3);
    } finally {
      await new Promise<void>((resolve) => dropper.close(() => resolve()));
    }
  });
});

describe("host key pinning (the provider's connection.hostKey)", { timeout: 60_000 }, () => {
  let srv: TestServer;
  before(async () => (srv = await startServer()));
  after(() => srv.close());
  const pinned = (hostKey: string) => (c: StepConnection) => ({
    ...to(srv.port)(c),
    hostKey,
    dialErrorLimit: 1,
  });

  it("runs the step when the server's host key is the pinned one (a comment after it is fine)", async () => {
    // Catches: a pin that compares the wrong thing and refuses the right host.
    const res = await replay([step("pinned", [], { create: "echo in" })], {
      connectionOverride: pinned(`${HOST_KEY.public.trim()} root@host`),
      log: () => {},
    });
    assert.equal(res[0].stdout, "in");
  });

  it("fails the dial with x/crypto's host key mismatch when the server's key is another one", async () => {
    // Catches: the pin being ignored (the step would hand stdin to whatever answers).
    const other = ed25519KeyPair().public;
    const err = await replay([step("impostor", [], { create: "echo leaked" })], {
      connectionOverride: pinned(other),
      log: () => {},
    }).catch((e: unknown) => e);
    assert.ok(err instanceof StepError, String(err));
    assert.match(
      err.message,
      /2 failed attempts \(dialErrorLimit 1\): ssh: handshake failed: ssh: host key mismatch/,
    );
    assert.ok(!srv.commands.includes("echo leaked"));
  });
});

describe(
  "step time limits (remote/script.ts stepCommand, run by a local bash here)",
  { timeout: 60_000 },
  () => {
    let srv: TestServer;
    before(async () => (srv = await startServer()));
    after(() => srv.close());

    it("a step that hangs is stopped at its limit and fails naming the step and the limit", async () => {
      // Catches: a step with no host-side limit (it would hang the `up` until CI kills it).
      const create = stepCommand("sleep 30", { sudo: false, step: "host-hang", limit: "2s" });
      const err = await replay([step("host-hang", [], { create })], {
        connectionOverride: to(srv.port),
        log: () => {},
      }).catch((e: unknown) => e);
      assert.ok(err instanceof StepError, String(err));
      assert.equal(err.exitCode, 124);
      assert.match(err.message, /step host-hang did not finish within its 2s limit and was stopped/);
    });

    it("a step within its limit passes its exit code and output through unchanged", async () => {
      // Catches: the wrapper swallowing a failure or the script's output.
      const ok = stepCommand("cat; echo done", { sudo: false, step: "quick", limit: "10s" });
      const res = await replay([step("quick", [], { create: ok, stdin: "in\n" })], {
        connectionOverride: to(srv.port),
        log: () => {},
      });
      assert.equal(res[0].stdout, "in\ndone");
      const failing = stepCommand("echo bad >&2; exit 3", { sudo: false, step: "bad", limit: "10s" });
      const err = await replay([step("bad", [], { create: failing })], {
        connectionOverride: to(srv.port),
        log: () => {},
      }).catch((e: unknown) => e);
      assert.ok(err instanceof StepError);
      assert.equal(err.exitCode, 3);
      assert.match(err.message, /\(exit 3\): bad$/);
    });
  },
);
