// Line ends: a checkout with CRLF (Windows, core.autocrlf, a copy made without git) must ship the
// same LF scripts with the same content hashes, or every step re-runs and bash fails on the CRs.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { scriptFiles } from "../render/bundle";
import { encodeFiles } from "../remote/transfer";
import { renderStepScript, STEP_SCRIPTS } from "../remote/script";
import { scratchDir } from "./support";

const ROOT = path.join(__dirname, "..");
const STEPS = STEP_SCRIPTS;
const PARAMS = { APP_DIR: "/opt/chitram", DEPLOY_USER: "chitram" };

/** What the host receives: every rendered step script and the bundle of host/scripts/. */
function rendered(): { steps: Record<string, string>; scripts: string } {
  return {
    steps: Object.fromEntries(STEPS.map((s) => [s, renderStepScript(s, PARAMS)])),
    scripts: encodeFiles(scriptFiles("/opt/chitram")),
  };
}

/** Copies a directory, every file with CRLF line ends. */
function copyWithCrlf(from: string, to: string): void {
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dest = path.join(to, entry.name);
    if (entry.isDirectory()) {
      fs.mkdirSync(dest);
      copyWithCrlf(src, dest);
    } else {
      fs.writeFileSync(dest, fs.readFileSync(src, "utf8").replace(/\n/g, "\r\n"));
    }
  }
}

describe("line ends", () => {
  it("a CRLF copy of host/, render/ and remote/ renders byte-identical LF step scripts and bundle", () => {
    const copy = scratchDir("chitram-crlf-");
    for (const dir of ["host", "render", "remote"]) {
      fs.mkdirSync(path.join(copy, dir));
      copyWithCrlf(path.join(ROOT, dir), path.join(copy, dir));
    }
    // the renderers import the value checks and the host contract
    fs.mkdirSync(path.join(copy, "config"));
    for (const file of ["config/checks.ts", "hostContract.ts"])
      fs.writeFileSync(
        path.join(copy, file),
        fs.readFileSync(path.join(ROOT, file), "utf8").replace(/\n/g, "\r\n"),
      );
    assert.match(fs.readFileSync(path.join(copy, "host", "steps", "lib.sh"), "utf8"), /\r\n/);
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(copy, "node_modules"));
    fs.writeFileSync(
      path.join(copy, "probe.ts"),
      [
        'import { scriptFiles } from "./render/bundle";',
        'import { encodeFiles } from "./remote/transfer";',
        'import { renderStepScript, StepScript } from "./remote/script";',
        `const steps = ${JSON.stringify(STEPS)} as StepScript[];`,
        `const params = ${JSON.stringify(PARAMS)};`,
        "process.stdout.write(JSON.stringify({",
        "  steps: Object.fromEntries(steps.map((s) => [s, renderStepScript(s, params)])),",
        '  scripts: encodeFiles(scriptFiles("/opt/chitram")),',
        "}));",
      ].join("\n"),
    );
    const fromCrlf = JSON.parse(
      execFileSync(process.execPath, ["--import", "tsx", path.join(copy, "probe.ts")], { encoding: "utf8" }),
    ) as ReturnType<typeof rendered>;
    const here = rendered();
    assert.deepEqual(fromCrlf, here);
    for (const text of [...Object.values(here.steps), here.scripts]) assert.ok(!text.includes("\r"));
  });

  it(".gitattributes checks out every tracked file with LF", () => {
    const files = execFileSync("git", ["ls-files"], { cwd: ROOT, encoding: "utf8" }).trim().split("\n");
    const attrs = execFileSync("git", ["check-attr", "eol", "--stdin"], {
      cwd: ROOT,
      input: files.join("\n"),
      encoding: "utf8",
    });
    const notLf = attrs
      .trim()
      .split("\n")
      .filter((l) => !l.endsWith(": eol: lf"));
    assert.deepEqual(notLf, []);
  });
});
