// The release step behind a load balancer (host/steps/lbRelease.sh), run by bash as rendered,
// with a stand-in `docker` that answers for Caddy: its config (whether it drains by the file) and
// its access log (the load balancer's checks of /health: 503 while the drain file exists, 200
// otherwise, or none at all). composeUp.sh reads host.env first; a host.env that reports and then
// fails stands in for a release that fails.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { renderStepScript } from "../remote/script";

const DOCKER = `#!/bin/bash
case "$*" in
  "compose ps -q caddy")
    [[ $FAKE_CADDY == none ]] || echo 4f2a9c1e ;;
  *"exec -T caddy wget"*)
    # No container to exec in, or a Caddy whose admin API does not answer.
    [[ $FAKE_CADDY == none || $FAKE_CADDY == mute ]] && exit 1
    # Caddy's config is long: a reader that stops at the match must not fail the check.
    case $FAKE_CADDY in
      drains) echo '{"match":[{"file":{"try_files":["/draining"]},"path":["/health"]}],' ;;
      old-path) echo '{"match":[{"file":{"try_files":["/draining"]},"path":["/healthz"]}],' ;;
    esac
    head -c 1000000 /dev/zero | tr '\\0' x
    echo '}' ;;
  "compose logs --since "*" --no-log-prefix caddy")
    [[ $4 =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] || { echo "bad --since $4" >&2; exit 1; }
    if [[ -e $FAKE_DRAIN_FILE ]]; then status=503; else status=200; fi
    for _ in 1 2 3; do
      # The load balancer's checks (none with FAKE_LB silent), and requests it forwards, which
      # are never its checks (a 503 among them, as a user's request could get elsewhere).
      [[ $FAKE_LB == silent ]] ||
        echo "{\\"request\\":{\\"uri\\":\\"/health\\",\\"headers\\":{\\"User-Agent\\":[\\"lb\\"]}},\\"status\\":$status,\\"size\\":8}"
      echo "{\\"request\\":{\\"uri\\":\\"/health\\",\\"headers\\":{\\"X-Forwarded-For\\":[\\"198.51.100.7\\"]}},\\"status\\":$status,\\"size\\":2}"
    done ;;
  *) echo "unexpected: docker $*" >&2; exit 1 ;;
esac
`;

/** Runs the rendered step in a scratch app directory; `release` is host.env's content. */
function runStep(opts: {
  caddy: "drains" | "plain" | "old-path" | "none" | "mute";
  lb: "checks" | "silent";
  release: string[];
}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-lbrelease-"));
  try {
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "docker"), DOCKER, { mode: 0o755 });
    const drainFile = path.join(dir, "caddy", "lb", "draining");
    fs.writeFileSync(path.join(dir, "host.env"), [...opts.release, ""].join("\n"));
    const script = renderStepScript("lbRelease", {
      APP_DIR: dir,
      HEALTH_PATH: "/health",
      DRAIN_FILE: drainFile,
      LB_UNHEALTHY: 2,
      LB_HEALTHY: 2,
      LB_WAIT_SECONDS: 3,
      LB_CHECK_SECONDS: 0,
    });
    const r = spawnSync("bash", ["-c", script], {
      encoding: "utf8",
      timeout: 30_000,
      env: {
        PATH: `${bin}:${process.env.PATH ?? ""}`,
        FAKE_CADDY: opts.caddy,
        FAKE_LB: opts.lb,
        FAKE_DRAIN_FILE: drainFile,
      },
    });
    return { ...r, drainLeft: fs.existsSync(drainFile) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const FAILING = (drainFile = "$FAKE_DRAIN_FILE") => [
  `[[ -e ${drainFile} ]] && echo "drained during the release" >&2`,
  'echo "the release ran" >&2',
  "false",
  'echo "went on after a failed command" >&2',
];

describe("lbRelease: out of the load balancer, the release, back in", () => {
  it("a release that fails: out once the load balancer's checks got 503, stopped at the failed command, back in once they pass, the step failed", () => {
    const r = runStep({ caddy: "drains", lb: "checks", release: FAILING() });
    assert.notEqual(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /waiting for 2 of its health checks to get 503/);
    assert.match(r.stderr, /drained during the release/);
    assert.doesNotMatch(r.stderr, /went on after a failed command/);
    assert.match(r.stdout, /waiting for 2 of its health checks to pass\n.*back in the load balancer$/m);
    assert.equal(r.drainLeft, false, "the droplet stayed out of the load balancer");
  });

  it("a load balancer whose checks never reach the droplet (forwarded requests' 503s do not count): the step fails before the release, the droplet back in", () => {
    const r = runStep({ caddy: "drains", lb: "silent", release: FAILING() });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /the load balancer's health checks did not reach this droplet's Caddy in 3s/);
    assert.doesNotMatch(r.stderr, /the release ran/);
    assert.equal(r.drainLeft, false, "the droplet stayed out of the load balancer");
  });

  for (const caddy of ["plain", "old-path", "none"] as const)
    it(`a Caddy that cannot drain on this health path (${caddy}: its first release behind the load balancer, after a healthPath change, no Caddy yet): released without a drain`, () => {
      const r = runStep({ caddy, lb: "checks", release: FAILING() });
      assert.match(r.stdout, /released without a drain/);
      assert.match(r.stderr, /the release ran/);
      assert.doesNotMatch(r.stderr, /drained during the release/);
      assert.notEqual(r.status, 0);
    });

  it("a Caddy that runs but whose config cannot be read: the step fails before the release, nothing drained", () => {
    const r = runStep({ caddy: "mute", lb: "checks", release: FAILING() });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /cannot read the running Caddy's config/);
    assert.doesNotMatch(r.stderr, /the release ran/);
    assert.equal(r.drainLeft, false);
  });
});
