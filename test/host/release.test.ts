// Releases on a real host: the app's image or env changes while /health is asked 10 times a second
// through Caddy on the published port; a broken, a crashing and a missing image are rolled back
// with the old version serving throughout; and going back to the previous image is one config
// change. Variant images are built inside the droplet's own engine under private names.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ProgramStep } from "../../harness/steps";
import { apply } from "../../harness/engine";
import {
  APP_VARIANTS,
  buildAppVariants,
  Deployment,
  liveApp,
  newDeployment,
  probeDuring,
  ProbeResult,
  restep,
  withAppEnv,
} from "../../harness/hostKit";
import { StepError } from "../../harness/replay";
import { ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { APP_DIR, SANDBOX_APP_IMAGE } from "../../hostContract";

const { v2: V2, noHealth: NO_HEALTH, crashing: CRASHING, missing: MISSING } = APP_VARIANTS;

const log = (line: string) => console.log(`  ${line}`);

const MIN_REQUESTS = 100;

function assertNoFailures(p: ProbeResult): void {
  assert.ok(p.total >= MIN_REQUESTS, `only ${p.total} requests`);
  assert.equal(p.failed, 0, `${p.failed}/${p.total} requests failed: ${p.failures.slice(0, 10).join("; ")}`);
}

describe("real host: releases without downtime", () => {
  let d: Deployment;
  let config: Record<string, string>;
  let steps: ProgramStep[];

  const live = () => liveApp(d.droplet);

  async function appContainers(): Promise<string[]> {
    const r = await d.droplet.exec(`cd ${APP_DIR} && docker compose ps -a --format '{{.Name}}' app`);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split("\n").filter(Boolean).sort();
  }

  async function release(image: string) {
    config = { ...config, appImage: image };
    const next = await restep(d, config);
    const probe = await probeDuring(d.droplet.httpPort, () => apply(next, d.state, { log }), MIN_REQUESTS);
    steps = next;
    return probe;
  }

  /** A release that must fail: the step's error, and the probe, which must have seen no failure. */
  async function failedRelease(image: string): Promise<StepError> {
    const was = await live();
    const probe = await release(image);
    assert.ok(
      probe.error instanceof StepError,
      `the release of ${image} did not fail: ${String(probe.error)}`,
    );
    assert.equal(probe.error.step, "app-compose-up");
    assertNoFailures(probe);
    assert.deepEqual(await live(), was, "the old container still serves");
    assert.deepEqual(await appContainers(), [was.name], "the new container was removed");
    return probe.error;
  }

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    d = await newDeployment("sandbox-release", { config: { releaseTimeoutSeconds: "20" } });
    config = d.config;
    steps = d.steps;
    await apply(steps, d.state, { log });
    await buildAppVariants(d.droplet);
  });
  after(async () => {
    await d?.droplet.stop();
  });

  it("a first deploy: Caddy proxies to the one app container that the upstream file names", async () => {
    assert.deepEqual(await live(), { name: "chitram-app-1", image: SANDBOX_APP_IMAGE });
    assert.deepEqual(await appContainers(), ["chitram-app-1"]);
  });

  it("an app image change: the new container serves, the old one is gone, 0 failed requests at 10 Hz", async () => {
    const probe = await release(V2);
    assert.equal(probe.error, undefined);
    assertNoFailures(probe);
    const now = await live();
    assert.equal(now.image, V2);
    assert.deepEqual(await appContainers(), [now.name]);
  });

  it("the release step re-run with nothing changed keeps the live container", async () => {
    const was = await live();
    await apply(steps, d.state, { log, force: (s) => s.name === "app-compose-up" });
    assert.deepEqual(await live(), was);
    assert.deepEqual(await appContainers(), [was.name]);
  });

  it("an app env file change is released the same way: 0 failed requests, the new container has the new value", async () => {
    const changed = withAppEnv(steps, "CHITRAM_SANDBOX_NOTE", "env-change");
    const was = await live();
    // The program would change the release step's triggers with the env file's hash; forced here.
    const probe = await probeDuring(
      d.droplet.httpPort,
      () => apply(changed, d.state, { log, force: (s) => s.name === "app-compose-up" }),
      MIN_REQUESTS,
    );
    assert.equal(probe.error, undefined);
    assertNoFailures(probe);
    const now = await live();
    assert.notEqual(now.name, was.name);
    const env = await d.droplet.exec(
      `docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' ${now.name}`,
    );
    assert.match(env.stdout, /^CHITRAM_SANDBOX_NOTE=env-change$/m);
    // and back to the stack's own env file
    await apply(steps, d.state, { log, force: (s) => s.name === "app-compose-up" });
  });

  it("an image whose health check never passes: rolled back, 0 failed requests, the error says what and how to retry", async () => {
    const err = await failedRelease(NO_HEALTH);
    assert.match(
      err.stderr,
      new RegExp(`release of ${NO_HEALTH} failed: chitram-app-\\d+ did not answer 200`),
    );
    assert.match(err.stderr, /last health output: .*404/);
    assert.match(err.stderr, new RegExp(`chitram-app-\\d+ \\(${V2}\\) still serves`));
    assert.match(err.stderr, /pulumi config set chitram:appImage <image> && pulumi up/);
  });

  it("an image that exits on start: rolled back at once, 0 failed requests; the failed step runs again on the next up", async () => {
    const err = await failedRelease(CRASHING);
    assert.match(err.stderr, new RegExp(`release of ${CRASHING} failed: chitram-app-\\d+ exited on start`));
    assert.match(err.stderr, /boom: DATABASE_URL has no host/);
    // nothing was recorded for the failed step: the same config runs it again (and fails again)
    const again = await probeDuring(d.droplet.httpPort, () => apply(steps, d.state, { log }));
    assert.ok(again.error instanceof StepError && again.error.step === "app-compose-up");
    assert.equal(again.failed, 0);
  });

  it("an image missing from the registry: the step fails before anything changes, 0 failed requests", async () => {
    const err = await failedRelease(MISSING);
    assert.match(err.stderr, new RegExp(`release of ${MISSING} failed: the image cannot be pulled`));
  });

  it("rollback on purpose: the previous image set again and `up`: 0 failed requests, and the next up proceeds", async () => {
    const probe = await release(SANDBOX_APP_IMAGE);
    assert.equal(probe.error, undefined);
    assertNoFailures(probe);
    assert.equal((await live()).image, SANDBOX_APP_IMAGE);
    assert.equal((await apply(steps, d.state, { log })).ran.length, 0, "a second up changes nothing");
  });
});
