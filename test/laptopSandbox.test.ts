// `npm run sandbox` arguments, and what `--target digitalocean --scale` runs (its --dry-run): the
// scaled shape's three keys set before the up, on the local API with load balancers, database
// clusters and Spaces (test/cloud/scale.test.ts deploys that shape).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseArgs } from "../tools/laptopSandbox";

const ROOT = path.resolve(__dirname, "..");

describe("npm run sandbox: --scale", () => {
  it("only with --target digitalocean", () => {
    assert.throws(
      () => parseArgs(["up", "--scale"]),
      /--scale deploys to the local DigitalOcean API: add --target digitalocean/,
    );
    assert.equal(parseArgs(["up", "--target", "digitalocean", "--scale"]).scale, true);
    assert.equal(parseArgs(["up", "--target", "digitalocean"]).scale, false);
    assert.throws(() => parseArgs(["down", "--scale"]), /unknown argument --scale/);
  });

  it("--dry-run: database managed, objectStore spaces and appHosts 3 are set before the up", () => {
    const r = spawnSync(
      path.join(ROOT, "node_modules", ".bin", "tsx"),
      [
        "tools/laptopSandbox.ts",
        "up",
        "--target",
        "digitalocean",
        "--scale",
        "--dry-run",
        "--engine",
        "launcher",
      ],
      { cwd: ROOT, encoding: "utf8", timeout: 60_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split("\n");
    const at = (pattern: RegExp) => lines.findIndex((l) => pattern.test(l));
    const up = at(/ pulumi up --yes --stack sandbox-do /);
    for (const key of [/chitram:database managed$/, /chitram:objectStore spaces$/, /chitram:appHosts 3$/]) {
      assert.ok(at(key) !== -1 && at(key) < up, `${String(key)} is not set before the up:\n${r.stdout}`);
    }
    const plain = spawnSync(
      path.join(ROOT, "node_modules", ".bin", "tsx"),
      ["tools/laptopSandbox.ts", "up", "--target", "digitalocean", "--dry-run", "--engine", "launcher"],
      { cwd: ROOT, encoding: "utf8", timeout: 60_000 },
    );
    assert.doesNotMatch(plain.stdout, /appHosts/);
    // Ctrl-C: the apps stopped and the bucket emptied before the destroy (the stack never deletes
    // a bucket that holds objects); only with --scale.
    const emptied = at(/^# --scale: each droplet's app stopped/);
    assert.ok(emptied !== -1 && emptied < at(/ pulumi destroy --yes --stack sandbox-do /), r.stdout);
    assert.doesNotMatch(plain.stdout, /--scale: each droplet/);
  });
});
