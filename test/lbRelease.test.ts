// The release step behind a load balancer (host/steps/lbRelease.sh), run by bash as rendered:
// the droplet is out of the load balancer while composeUp.sh runs, a failed command still stops
// the release (errexit holds inside the wrapped release), and the droplet goes back in and the
// step fails. composeUp.sh reads host.env first; a host.env that reports and then fails stands in
// for a release that fails.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { renderStepScript } from "../remote/script";

describe("lbRelease: out of the load balancer, the release, back in", () => {
  it("a release that fails: drained while it ran, stopped at the failed command, back in the load balancer, the step failed", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-lbrelease-"));
    try {
      const drainFile = path.join(dir, "caddy", "lb", "draining");
      fs.writeFileSync(
        path.join(dir, "host.env"),
        [
          `[[ -e ${drainFile} ]] && echo "drained during the release" >&2`,
          "false",
          'echo "went on after a failed command" >&2',
          "",
        ].join("\n"),
      );
      const script = renderStepScript("lbRelease", {
        APP_DIR: dir,
        DRAIN_FILE: drainFile,
        LB_DRAIN_SECONDS: 0,
        LB_RETURN_SECONDS: 0,
      });
      const r = spawnSync("bash", ["-c", script], { encoding: "utf8", timeout: 30_000 });
      assert.notEqual(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /out of the load balancer/);
      assert.match(r.stderr, /drained during the release/);
      assert.doesNotMatch(r.stderr, /went on after a failed command/);
      assert.match(r.stdout, /back in the load balancer/);
      assert.equal(fs.existsSync(drainFile), false, "the droplet stayed out of the load balancer");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
