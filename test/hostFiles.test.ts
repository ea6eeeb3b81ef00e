// The bundle format: what the program encodes is exactly what the host's bash decoder writes,
// byte for byte and with the same modes, for awkward content too; and a bundle that did not
// arrive whole and unchanged is never applied: the step fails, naming what was wrong, and moves
// and prunes nothing.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { decodeFiles, encodeFiles, HostFile } from "../remote/transfer";
import { renderStepScript } from "../remote/script";
import { scratchDir, tool } from "./support";

const LIB = path.join(__dirname, "..", "host", "steps", "lib.sh");

const awkward: HostFile[] = [
  {
    path: "/opt/chitram/a.sh",
    mode: "0755",
    content: "#!/bin/sh\necho 'single' \"double\" $HOME \\n \\\\\n",
  },
  { path: "/opt/chitram/empty-lines", mode: "0600", content: "\n\n  leading spaces\ttab\ntrailing   \n\n" },
  {
    path: "/opt/chitram/deep/dir/looks-like-header",
    mode: "0644",
    content: "#chitram-file 0644 1 /etc/passwd\nroot::0:0::/:/bin/sh\n#chitram-end 1 00\n",
  },
  { path: "/etc/cron.d/x", mode: "0644", content: "* * * * * root true\r\n" },
];

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const tmp = scratchDir;

/** A bundle body with an end marker that is right for it (a transfer could not have made it). */
function seal(body: string, count: number): string {
  return `${body}#chitram-end ${count} ${sha256(body)}\n`;
}
const bodyOf = (bundle: string) => bundle.slice(0, bundle.lastIndexOf("#chitram-end "));

/** receive_files on this machine's bash, as a step calls it; prints RECEIVED. */
function receive(bundle: string, expected: string[] = []) {
  const work = tmp("chitram-bundle-");
  const r = tool(
    "bash",
    [
      "-c",
      `set -euo pipefail; source ${LIB}; receive_files "$@"; printf '%s\\n' "\${RECEIVED[@]}"`,
      "x",
      work,
      ...expected,
    ],
    bundle,
  );
  return { ...r, files: path.join(work, "files") };
}

/** Every file under dir with its mode and content: what a failed step must leave unchanged. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    const stat = fs.lstatSync(full);
    out[path.relative(dir, full)] = stat.isFile()
      ? `${(stat.mode & 0o777).toString(8)} ${fs.readFileSync(full, "utf8")}`
      : "dir";
  }
  return out;
}

/** An app directory as a host has it after an earlier deploy: two scripts and a compose file. */
function deployedAppDir(): string {
  const app = tmp("chitram-app-");
  fs.mkdirSync(path.join(app, "scripts"));
  fs.writeFileSync(path.join(app, "compose.yaml"), "old compose\n");
  fs.writeFileSync(path.join(app, "scripts", "backup.sh"), "old backup\n", { mode: 0o755 });
  fs.writeFileSync(path.join(app, "scripts", "restore.sh"), "old restore\n", { mode: 0o755 });
  return app;
}

const release = (app: string): HostFile[] => [
  { path: `${app}/compose.yaml`, mode: "0644", content: "services: {}\n" },
  { path: `${app}/scripts/backup.sh`, mode: "0755", content: "#!/bin/sh\necho new backup\n" },
  { path: `${app}/scripts/healthcheck.sh`, mode: "0755", content: "#!/bin/sh\necho new\nexit 0\n" },
];

/** The rendered pushFiles step, run by bash the way the host runs it (as the deploy user). */
function pushFiles(app: string, bundle: string) {
  return tool("bash", ["-c", renderStepScript("pushFiles", { APP_DIR: app, PRUNE_SCRIPTS: true })], bundle);
}

describe("host files: bundle format", () => {
  it("decode(encode(files)) gives the files back", () => {
    assert.deepEqual(decodeFiles(encodeFiles(awkward)), awkward);
  });

  it("the host's receive_files (bash) writes every file byte for byte with its mode", () => {
    const r = receive(encodeFiles(awkward));
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(
      r.out.trim().split("\n"),
      awkward.map((f) => f.path),
    );
    for (const f of awkward) {
      const written = path.join(r.files, f.path);
      assert.equal(fs.readFileSync(written, "utf8"), f.content, f.path);
      assert.equal((fs.statSync(written).mode & 0o777).toString(8).padStart(4, "0"), f.mode, f.path);
    }
    assert.ok(
      !fs.existsSync(path.join(r.files, "etc/passwd")),
      "content that looks like a header stays content",
    );
  });

  it("refuses an empty list, content without a final newline or with NUL, unplain paths and bad modes", () => {
    assert.throws(() => encodeFiles([]), /at least one file/);
    assert.throws(() => encodeFiles([{ path: "/a", mode: "0644", content: "x" }]), /newline/);
    assert.throws(() => encodeFiles([{ path: "/a", mode: "0644", content: "x\0y\n" }]), /NUL/);
    assert.throws(() => encodeFiles([{ path: "a", mode: "0644", content: "x\n" }]), /absolute/);
    for (const p of ["/opt/../etc/passwd", "/opt/./x", "/opt//x", "/opt/x/", "/opt/a b"])
      assert.throws(() => encodeFiles([{ path: p, mode: "0644", content: "x\n" }]), /plain/, p);
    assert.throws(() => encodeFiles([{ path: "/a", mode: "644", content: "x\n" }]), /bad mode/);
  });
});

describe("host files: a bundle that did not arrive whole is never applied", () => {
  it("pushFiles: cut off anywhere, the step fails naming why, moves nothing and prunes nothing; the whole bundle then applies", () => {
    const app = deployedAppDir();
    const bundle = encodeFiles(release(app));
    const before = snapshot(app);
    // Every line boundary, the middle of every line, and the final newline alone.
    const cuts = new Set<number>([0, bundle.length - 1]);
    for (let at = bundle.indexOf("\n"); at !== -1; at = bundle.indexOf("\n", at + 1)) {
      cuts.add(at + 1);
      const next = bundle.indexOf("\n", at + 1);
      if (next !== -1) cuts.add(Math.floor((at + next) / 2));
    }
    cuts.delete(bundle.length);
    for (const cut of cuts) {
      const r = pushFiles(app, bundle.slice(0, cut));
      assert.notEqual(r.code, 0, `cut at ${cut} of ${bundle.length} was applied:\n${r.out}`);
      assert.match(
        r.out,
        /chitram: (file bundle is incomplete|file bundle: nothing arrived)/,
        `cut at ${cut}`,
      );
      assert.match(r.out, /nothing was installed/);
      assert.deepEqual(snapshot(app), before, `cut at ${cut} changed the app directory`);
    }
    const r = pushFiles(app, bundle);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /removed .*\/scripts\/restore\.sh/);
    assert.deepEqual(Object.keys(snapshot(app)).sort(), [
      "compose.yaml",
      "scripts",
      "scripts/backup.sh",
      "scripts/healthcheck.sh",
    ]);
    assert.equal(
      fs.readFileSync(path.join(app, "scripts", "backup.sh"), "utf8"),
      "#!/bin/sh\necho new backup\n",
    );
  });

  it("pushFiles: a changed byte, a file that fails its own checksum or a wrong file count fails the step and changes nothing", () => {
    const app = deployedAppDir();
    const bundle = encodeFiles(release(app));
    const body = bodyOf(bundle);
    const cases: [string, string, RegExp][] = [
      [
        "one byte changed in transfer",
        bundle.replace("new backup", "new backuP"),
        /bundle checksum mismatch/,
      ],
      [
        "a file changed, the stream re-sealed",
        seal(body.replace("new backup", "old backup"), 3),
        /checksum mismatch for \/.*\/scripts\/backup\.sh/,
      ],
      ["one file fewer than counted", seal(body, 4), /holds 3 file\(s\), its end marker counts 4/],
      ["one file more than counted", seal(body, 2), /holds more than the 2 file\(s\)/],
      ["no file at all", seal("", 0), /holds no file/],
      [
        "a line count too large",
        seal(body.replace(/^(#chitram-file 0644) 1 /, "$1 2 "), 3),
        /checksum mismatch for/,
      ],
      [
        "a bad header",
        seal(body.replace(/^#chitram-file 0644/, "#chitram-file 644"), 3),
        /bad file bundle header/,
      ],
      [
        "a path with ..",
        seal(body.replace(`${app}/compose.yaml`, `${app}/../x/compose.yaml`), 3),
        /bad file bundle header/,
      ],
      ["data after the end marker", `${bundle}more\n`, /is incomplete/],
    ];
    const before = snapshot(app);
    for (const [what, input, message] of cases) {
      const r = pushFiles(app, input);
      assert.notEqual(r.code, 0, `${what}: applied\n${r.out}`);
      assert.match(r.out, message, what);
      assert.deepEqual(snapshot(app), before, `${what}: changed the app directory`);
    }
  });

  it("pushFiles: a path outside the app directory refuses the whole bundle, even after good files", () => {
    const app = deployedAppDir();
    const before = snapshot(app);
    const outside = tmp("chitram-outside-");
    const r = pushFiles(
      app,
      encodeFiles([...release(app), { path: `${outside}/x`, mode: "0644", content: "x\n" }]),
    );
    assert.notEqual(r.code, 0);
    assert.match(r.out, /refusing to write .*\/x outside/);
    assert.deepEqual(snapshot(app), before);
    assert.deepEqual(fs.readdirSync(outside), []);
  });

  it("receive_files: a bundle without a file the step installs fails, naming the file", () => {
    const r = receive(encodeFiles(awkward.slice(0, 2)), ["/opt/chitram/a.sh", "/etc/sudoers.d/chitram"]);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /file bundle has no \/etc\/sudoers\.d\/chitram; nothing was installed/);
  });

  it("decodeFiles (used by the tests) refuses the same bundles", () => {
    const bundle = encodeFiles(awkward);
    assert.throws(() => decodeFiles(bundle.slice(0, -20)), /no end marker/);
    assert.throws(() => decodeFiles(bundle.replace("single", "Single")), /checksum mismatch/);
    assert.throws(() => decodeFiles(seal(bodyOf(bundle), 5)), /end marker says 5/);
    assert.throws(
      () => decodeFiles(seal(bodyOf(bundle).replace("'single'", "'singlE'"), 4)),
      /checksum mismatch for \/opt\/chitram\/a\.sh/,
    );
  });
});
