// The test setup leaves the developer's machine alone: sandbox/build.sh never gives a stand-in a
// production name on this machine's engine (a laptop's other projects would run Debian's
// PostgreSQL 15 under postgres:16-alpine), and `npm run sandbox` runs the real images when a
// registry answers. build.sh runs here against a `docker` that only records its commands.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { SERVICE_IMAGES } from "../hostContract";
import { DropletImage, parseStandIns } from "../harness/sandbox";
import { chooseImages } from "../tools/laptopSandbox";

const ROOT = path.resolve(__dirname, "..");
const PRODUCTION_NAMES = [...Object.values(SERVICE_IMAGES), "chitram-app:sandbox"];

/** Runs sandbox/build.sh with stub docker and debootstrap; returns its stdout and every docker call. */
function buildWithStubDocker(): { stdout: string; calls: string[][] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-build-stub-"));
  try {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    const log = path.join(dir, "docker.log");
    // One line per call, arguments separated by tabs. No image exists, so everything is built.
    fs.writeFileSync(
      path.join(bin, "docker"),
      `#!/usr/bin/env bash
(IFS=$'\\t'; echo "$*") >>"${log}"
case "$1 $2" in
  "image inspect") [[ $3 == -f && $4 == "{{.Id}}" ]] && echo sha256:stub || exit 1 ;;
  "import -"*|import*) cat >/dev/null ;;
  "buildx version") exit 1 ;;
esac
exit 0
`,
      { mode: 0o755 },
    );
    fs.writeFileSync(
      path.join(bin, "debootstrap"),
      `#!/usr/bin/env bash
root=$3
mkdir -p "$root"/etc/apt/sources.list.d "$root"/etc/apt/apt.conf.d "$root"/etc/dpkg/dpkg.cfg.d \\
  "$root"/usr/sbin "$root"/usr/share/doc "$root"/usr/share/locale
`,
      { mode: 0o755 },
    );
    const r = spawnSync("bash", [path.join(ROOT, "sandbox", "build.sh")], {
      encoding: "utf8",
      env: {
        ...process.env,
        PATH: `${bin}:${process.env.PATH}`,
        SANDBOX_BUILD_LOGS: path.join(dir, "logs"),
        SANDBOX_BUILD_LOCK: path.join(dir, "lock"),
      },
    });
    assert.equal(r.status, 0, `build.sh failed:\n${r.stderr}`);
    const calls = fs
      .readFileSync(log, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t"));
    return { stdout: r.stdout, calls };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Every image name a docker call gives (build -t, tag, import, commit). */
function namesGiven(calls: string[][]): string[] {
  const names: string[] = [];
  for (const c of calls) {
    if (c[0] === "build") c.forEach((a, i) => (a === "-t" || a === "--tag") && names.push(c[i + 1]));
    if (c[0] === "tag" || (c[0] === "image" && c[1] === "tag")) names.push(c[c.length - 1]);
    if (c[0] === "import" || c[0] === "commit") names.push(c[c.length - 1]);
  }
  return names;
}

describe("machine hygiene: sandbox/build.sh", () => {
  const { stdout, calls } = buildWithStubDocker();

  it("builds the four stand-ins under private chitram-standin/<service>:<recipe hash> names", () => {
    const given = namesGiven(calls);
    assert.ok(given.length >= 6, `saw the base, four services and the droplet built: ${given.join(", ")}`);
    for (const name of given) {
      assert.ok(
        !PRODUCTION_NAMES.includes(name),
        `build.sh gave ${name} to an image on this machine's engine`,
      );
    }
    const standIns = given.filter((n) => n.startsWith("chitram-standin/"));
    assert.deepEqual(
      standIns.map((n) => n.replace(/:[0-9a-f]{16}$/, ":HASH")).sort(),
      ["app", "caddy", "minio", "postgres"].map((s) => `chitram-standin/${s}:HASH`),
    );
  });

  it("prints which production tag each stand-in stands in for, naming exactly what it built", () => {
    const printed = parseStandIns(stdout);
    assert.deepEqual(printed.map((i) => i.tag).sort(), [...PRODUCTION_NAMES].sort());
    const built = new Set(namesGiven(calls));
    for (const { source } of printed) assert.ok(built.has(source), `${source} was printed but not built`);
  });
});

describe("machine hygiene: npm run sandbox picks its images", () => {
  const built: DropletImage[] = PRODUCTION_NAMES.map((tag) => ({
    source: `chitram-standin/${tag.split(/[/:]/)[0]}:0123456789abcdef`,
    tag,
  }));
  const app = built.find((i) => i.tag === "chitram-app:sandbox")!;

  it("runs the real images when a registry answers (and the app stand-in)", async () => {
    const pulled: string[] = [];
    const choice = await chooseImages({
      standIns: false,
      built,
      pull: (image) => {
        pulled.push(image);
        return Promise.resolve(undefined);
      },
    });
    assert.deepEqual(pulled, Object.values(SERVICE_IMAGES));
    assert.deepEqual(choice.images, [
      ...Object.values(SERVICE_IMAGES).map((tag) => ({ source: tag, tag })),
      app,
    ]);
    assert.match(choice.note, /^production service images: postgres:16-alpine/);
  });

  it("runs the stand-ins, and says so and why, when no registry answers", async () => {
    const choice = await chooseImages({
      standIns: false,
      built,
      pull: () => Promise.resolve("dial tcp: lookup registry-1.docker.io: no such host"),
    });
    assert.deepEqual(
      choice.images.map((i) => i.tag),
      [...Object.values(SERVICE_IMAGES), "chitram-app:sandbox"],
    );
    assert.ok(choice.images.every((i) => i.source.startsWith("chitram-standin/")));
    assert.match(choice.note, /^stand-in service images \(postgres:16-alpine could not be pulled: dial tcp/);
  });

  it("with --stand-ins pulls nothing", async () => {
    const choice = await chooseImages({
      standIns: true,
      built,
      pull: () => assert.fail("pulled with --stand-ins"),
    });
    assert.match(choice.note, /^stand-in service images \(--stand-ins\)/);
    assert.ok(choice.images.every((i) => i.source.startsWith("chitram-standin/")));
  });
});

/**
 * Runs .ci/install-host-tools.sh for a machine described by os-release, with nothing installed:
 * dpkg-query, docker and apt-get are stubs, and apt-get writes "RAN apt-get ..." to the same stream
 * the script prints to, so the order shows whether each change was announced first.
 */
function installOn(osRelease: string): { code: number; output: string; files: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-install-stub-"));
  try {
    const bin = path.join(dir, "bin");
    const root = path.join(dir, "root");
    for (const d of [bin, `${root}/etc/apt/sources.list.d`, `${root}/etc/apt/preferences.d`]) {
      fs.mkdirSync(d, { recursive: true });
    }
    fs.writeFileSync(`${root}/etc/os-release`, osRelease);
    const stub = (name: string, body: string) =>
      fs.writeFileSync(path.join(bin, name), `#!/usr/bin/env bash\n${body}\n`, { mode: 0o755 });
    stub("dpkg-query", "exit 1");
    stub("docker", "exit 1");
    stub("apt-get", 'echo "RAN apt-get $*" >&2');
    const r = spawnSync("bash", [path.join(ROOT, ".ci", "install-host-tools.sh")], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, INSTALL_ROOT: root },
    });
    const files = fs
      .readdirSync(`${root}/etc/apt`, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.relative(root, path.join(e.parentPath, e.name)));
    return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}`, files };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Each "RAN apt-get install ..." line is preceded by the script's own line announcing it. */
function assertAnnounced(output: string): void {
  const lines = output.split("\n");
  lines.forEach((line, i) => {
    const ran = /^RAN apt-get (install|update)\b.*?((?:\s[\w.-]+)+)$/.exec(line);
    if (!ran) return;
    const announced = lines.slice(0, i).filter((l) => l.startsWith("install-host-tools: apt-get"));
    const last = announced[announced.length - 1] ?? "";
    assert.ok(last.includes(`apt-get ${ran[1]}`), `not announced before it ran: ${line}\n${output}`);
  });
}

describe("machine hygiene: the test prerequisites installer", () => {
  it("Ubuntu: the distribution's docker-compose-v2, no other distribution's sources, every change announced", () => {
    const r = installOn('ID=ubuntu\nVERSION_ID="24.04"\n');
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(r.files, [], "wrote apt sources or pins on Ubuntu");
    assert.doesNotMatch(r.output, /trixie|debian/i);
    assert.match(r.output, /^RAN apt-get install .*docker-compose-v2$/m);
    assertAnnounced(r.output);
  });

  it("Debian 12: Debian trixie as a source pinned at priority 100, for compose v2 only, announced", () => {
    const r = installOn('ID=debian\nVERSION_ID="12"\n');
    assert.equal(r.code, 0, r.output);
    assert.deepEqual(r.files.sort(), [
      "etc/apt/preferences.d/trixie-low",
      "etc/apt/sources.list.d/trixie.sources",
    ]);
    assert.match(r.output, /install-host-tools: adding apt source \S+trixie\.sources/);
    assert.match(r.output, /^RAN apt-get install .*-t trixie docker-compose$/m);
    assert.match(r.output, /^RAN apt-get install (?!.*trixie).*\bdocker\.io\b/m);
    assertAnnounced(r.output);
  });

  it("elsewhere: stops and says what is missing, changing nothing", () => {
    const r = installOn('ID=fedora\nVERSION_ID="41"\n');
    assert.notEqual(r.code, 0);
    assert.match(r.output, /compose v2 is missing and fedora 41 is neither Debian nor Ubuntu/);
    assert.doesNotMatch(r.output, /RAN apt-get/);
    assert.deepEqual(r.files, []);
  });
});
