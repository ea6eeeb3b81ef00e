// The bundle format: what the program encodes is exactly what the host's bash decoder writes,
// byte for byte and with the same modes, for awkward content too.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { decodeFiles, encodeFiles, HostFile } from "../templates/hostFiles";
import { tool } from "./support";

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
    content: "#chitram-file 0644 1 /etc/passwd\nroot::0:0::/:/bin/sh\n",
  },
  { path: "/etc/cron.d/x", mode: "0644", content: "* * * * * root true\n" },
];

describe("host files: bundle format", () => {
  it("decode(encode(files)) gives the files back", () => {
    assert.deepEqual(decodeFiles(encodeFiles(awkward)), awkward);
  });

  it("the host's receive_files (bash) writes every file byte for byte with its mode", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-bundle-"));
    const lib = path.join(__dirname, "..", "templates", "steps", "lib.sh");
    const r = tool(
      "bash",
      ["-c", `set -euo pipefail; source ${lib}; receive_files "$1"`, "x", root],
      encodeFiles(awkward),
    );
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(
      r.out.trim().split("\n"),
      awkward.map((f) => f.path),
    );
    for (const f of awkward) {
      const written = path.join(root, f.path);
      assert.equal(fs.readFileSync(written, "utf8"), f.content, f.path);
      assert.equal((fs.statSync(written).mode & 0o777).toString(8).padStart(4, "0"), f.mode, f.path);
    }
    assert.ok(
      !fs.existsSync(path.join(root, "etc/passwd")),
      "content that looks like a header stays content",
    );
  });

  it("a truncated bundle fails on the host instead of writing half a file", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-bundle-"));
    const lib = path.join(__dirname, "..", "templates", "steps", "lib.sh");
    const text = encodeFiles(awkward.slice(0, 2));
    const r = tool(
      "bash",
      ["-c", `set -euo pipefail; source ${lib}; receive_files "$1"`, "x", root],
      text.slice(0, text.length - 12),
    );
    assert.notEqual(r.code, 0);
    assert.match(r.out, /bundle ended inside \/opt\/chitram\/empty-lines/);
  });

  it("refuses content without a final newline, relative paths and bad modes", () => {
    assert.throws(() => encodeFiles([{ path: "/a", mode: "0644", content: "x" }]), /newline/);
    assert.throws(() => encodeFiles([{ path: "a", mode: "0644", content: "x\n" }]), /absolute/);
    assert.throws(() => encodeFiles([{ path: "/a", mode: "644", content: "x\n" }]), /bad mode/);
  });
});
