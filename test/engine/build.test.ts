// tools/engine/build.sh: what it needs is checked before anything is built, with one error that
// names what is missing, and nothing is left in the cache that looks complete. The built engine's
// plugin versions are the versions of the npm SDKs package.json pins (the program's SDK must
// match the plugin that serves it).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { engineDir } from "../../harness/pulumiCli";
import { RefusingGoProxy, refusingGoProxy, runBashScript } from "../support";

const ROOT = path.join(__dirname, "..", "..");
const SCRIPT = path.join(ROOT, "tools", "engine", "build.sh");
const SOURCES = path.join(ROOT, "..", "shared", "engine-src");

const runScript = (env: NodeJS.ProcessEnv) => runBashScript(SCRIPT, env);

describe("tools/engine/build.sh: refusals", () => {
  let dir: string;
  let proxy: RefusingGoProxy;
  const cache = () => path.join(dir, "cache");
  const leftInCache = () => (fs.existsSync(cache()) ? fs.readdirSync(cache()) : []);

  before(async () => {
    proxy = await refusingGoProxy("chitram-engine-build-");
    dir = proxy.dir;
  });
  after(() => proxy?.close());

  it("without Go: one error that names it, nothing built", async () => {
    const r = await runScript({ ...process.env, PATH: "/usr/bin:/bin", CHITRAM_ENGINE_CACHE: cache() });
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /ERROR: the go command is missing: Go >= 1\.\d+(\.\d+)? builds the engine/);
    assert.deepEqual(leftInCache(), []);
  });

  it("without patch (the DigitalOcean provider's patches need it): one error that names it, nothing built", async () => {
    // PATH: Go, and every command of /usr/bin and /bin but patch
    const bin = path.join(dir, "bin-without-patch");
    fs.mkdirSync(bin);
    for (const d of ["/usr/bin", "/bin"])
      for (const f of fs.readdirSync(d))
        if (f !== "patch" && !fs.existsSync(path.join(bin, f)))
          fs.symlinkSync(path.join(d, f), path.join(bin, f));
    const go = path.dirname(
      fs.realpathSync(spawnSync("bash", ["-c", "command -v go"], { encoding: "utf8" }).stdout.trim()),
    );
    const r = await runScript({ ...process.env, PATH: `${go}:${bin}`, CHITRAM_ENGINE_CACHE: cache() });
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      /ERROR: the patch command is missing: the DigitalOcean provider's patches need it/,
    );
    assert.deepEqual(leftInCache(), []);
  });

  it("without the tarballs: one error naming each missing file and ENGINE_SRC, nothing built", async () => {
    const src = path.join(dir, "src-partial");
    fs.mkdirSync(src);
    fs.copyFileSync(
      path.join(SOURCES, "pulumi-command-v1.2.1.tar.gz"),
      path.join(src, "pulumi-command-v1.2.1.tar.gz"),
    );
    const r = await runScript({ ...process.env, ENGINE_SRC: src, CHITRAM_ENGINE_CACHE: cache() });
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    const errors = r.stderr.split("\n").filter((l) => l.includes("ERROR"));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0], new RegExp(`missing from ENGINE_SRC=${src}: `));
    for (const f of [
      "pulumi-language-nodejs-v3.259.0",
      "pulumi-random-v4.19.1",
      "pulumi-tls-v5.3.0",
      "pulumi-digitalocean-v4.57.0",
    ])
      assert.ok(errors[0].includes(`${f}.tar.gz`), f);
    assert.ok(!errors[0].includes("pulumi-command"), "a present tarball is not named");
    const none = await runScript({
      ...process.env,
      ENGINE_SRC: path.join(dir, "nowhere"),
      CHITRAM_ENGINE_CACHE: cache(),
    });
    assert.match(none.stderr, /ERROR: ENGINE_SRC=.*nowhere is not a directory/);
    assert.deepEqual(leftInCache(), []);
  });

  it("a tarball other than the pinned one (another sha256) is refused by name", async () => {
    const src = path.join(dir, "src-changed");
    fs.mkdirSync(src);
    for (const f of fs.readdirSync(SOURCES)) fs.symlinkSync(path.join(SOURCES, f), path.join(src, f));
    fs.rmSync(path.join(src, "pulumi-tls-v5.3.0.tar.gz"));
    fs.writeFileSync(path.join(src, "pulumi-tls-v5.3.0.tar.gz"), "not the release\n");
    const r = await runScript({ ...process.env, ENGINE_SRC: src, CHITRAM_ENGINE_CACHE: cache() });
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /ERROR: not the tarball this build pins \(sha256 differs\) in ENGINE_SRC=.*: pulumi-tls-v5\.3\.0\.tar\.gz$/m,
    );
    assert.deepEqual(leftInCache(), []);
  });

  it("a Go module proxy that refuses: the go command's answer, and nothing in the cache looks complete", async () => {
    const r = await runScript({
      ...process.env,
      ...proxy.goEnv,
      CHITRAM_ENGINE_CACHE: cache(),
    });
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /403 Forbidden/);
    assert.match(r.stderr, /ERROR: pulumi CLI v3\.276\.0 failed after \d+ s: go -C /);
    assert.deepEqual(leftInCache(), [], "the temporary build directory is removed");
  });

  it("one build of the engine at a time: a second one waits, and takes the build the first one completed", async () => {
    // The directory of this key, from a build that the proxy stops at once
    const refused = await runScript({
      ...process.env,
      ...proxy.goEnv,
      CHITRAM_ENGINE_CACHE: cache(),
    });
    const out = /into (\S+)$/m.exec(refused.stderr)?.[1];
    assert.ok(out, refused.stderr);
    // A first build holds the lock; while the second waits it completes (here: its marker).
    const first = spawn("flock", [
      cache(),
      "sh",
      "-c",
      `sleep 3 && mkdir -p ${out} && touch ${out}/.complete`,
    ]);
    const firstDone = new Promise((resolve) => first.on("close", resolve));
    await new Promise((r) => setTimeout(r, 300));
    const second = await runScript({ ...process.env, CHITRAM_ENGINE_CACHE: cache() });
    await firstDone;
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /another build of this engine is running: waiting for it/);
    assert.equal(second.stdout.trim().split("\n").pop(), out);
    fs.rmSync(out, { recursive: true, force: true });
  });
});

describe("tools/engine/build.sh: the built engine", () => {
  it("prints its directory last; a cached build is found again; every plugin is the version its npm SDK pins", async () => {
    const dir = await engineDir();
    const again = await runScript({ ...process.env });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.trim().split("\n").pop(), dir);
    assert.match(again.stderr, /the engine is built/);
    for (const f of [".complete", "bin/pulumi", "bin/pulumi-language-nodejs"])
      assert.ok(fs.existsSync(path.join(dir, f)), f);
    const versions: Record<string, string> = Object.fromEntries(
      fs
        .readFileSync(path.join(dir, "versions"), "utf8")
        .trim()
        .split("\n")
        .map((l) => l.split(" ") as [string, string]),
    );
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    for (const name of ["command", "random", "tls", "digitalocean"]) {
      assert.equal(versions[name], pkg.dependencies[`@pulumi/${name}`], `plugin ${name} and @pulumi/${name}`);
      assert.ok(
        fs.existsSync(path.join(dir, "plugins", `resource-${name}-v${versions[name]}`)),
        `${name} registered`,
      );
    }
    assert.equal(versions.pulumi, pkg.dependencies["@pulumi/pulumi"], "the CLI and @pulumi/pulumi");
  });
});
