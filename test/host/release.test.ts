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
  newDeployment,
  restep,
  withAppEnv,
  withCaddyfile,
} from "../../harness/deployment";
import { liveApp, probeDuring, ProbeResult, waitHealthy } from "../../harness/probes";
import { StepError } from "../../harness/replay";
import { replaceRealValue } from "../../harness/mockProgram";
import { ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { APP_DIR, RELEASE_LOCK_NAME, SANDBOX_APP_IMAGE } from "../../hostContract";

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

  it("a release that starts while a backup has MinIO paused waits for the backup's lock, and passes", async () => {
    // What a backup does under the release lock (host/scripts/backup.sh): MinIO paused for its
    // dump and archive, then unpaused and healthy again before the lock is let go. Docker reports
    // a container unhealthy from a pause until its next probe, which `compose up --wait` fails on.
    const minio = (await d.droplet.exec(`cd ${APP_DIR} && docker compose ps -q minio`)).stdout.trim();
    const held = `/tmp/release-lock-held-${Date.now()}`;
    const backup = d.droplet.exec(
      `flock ${APP_DIR}/${RELEASE_LOCK_NAME} sh -c 'docker pause ${minio} && touch ${held} && sleep 6 && docker unpause ${minio} ` +
        `&& until [ "$(docker inspect -f "{{.State.Health.Status}}" ${minio})" = healthy ]; do sleep 1; done'`,
    );
    try {
      while ((await d.droplet.exec(`test -e ${held}`)).code !== 0)
        await new Promise((r) => setTimeout(r, 200));
      const r = await apply(steps, d.state, { log, force: (s) => s.name === "app-compose-up" });
      const ran = r.ran.find((x) => x.name === "app-compose-up")!;
      assert.match(
        ran.stdout,
        /a backup \(MinIO paused for its consistent pair\), a restore, or an earlier release step still running on the host holds \S+\.release\.lock: waiting for it to end/,
      );
    } finally {
      assert.equal((await backup).code, 0);
    }
    const health = await d.droplet.exec(`docker inspect -f '{{.State.Health.Status}}' ${minio}`);
    assert.equal(health.stdout.trim(), "healthy");
  });

  it("a MinIO left paused by a backup stopped part-way is unpaused by the next release, which passes", async () => {
    const minio = (await d.droplet.exec(`cd ${APP_DIR} && docker compose ps -q minio`)).stdout.trim();
    assert.equal((await d.droplet.exec(`docker pause ${minio}`)).code, 0);
    const r = await apply(steps, d.state, { log, force: (s) => s.name === "app-compose-up" });
    const ran = r.ran.find((x) => x.name === "app-compose-up")!;
    assert.match(ran.stdout, /unpausing minio, left paused by a backup that was stopped part-way/);
    const health = await d.droplet.exec(
      `docker inspect -f '{{.State.Paused}} {{.State.Health.Status}}' ${minio}`,
    );
    assert.equal(health.stdout.trim(), "false healthy");
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

  it("a release stopped at the step's time limit (TERM) is rolled back like a failed one: 0 failed requests", async () => {
    const was = await live();
    config = { ...config, appImage: NO_HEALTH, releaseTimeoutSeconds: "600" };
    const next = await restep(d, config);
    // The host's `timeout` cut to 25 s: it sends TERM while the gate still waits for the image.
    const cut = next.map((x) =>
      x.name === "app-compose-up"
        ? {
            ...x,
            create: x.create!.replace(/^timeout --kill-after=(\d+)s \d+m /, "timeout --kill-after=$1s 25s "),
          }
        : x,
    );
    assert.notDeepEqual(cut, next);
    const probe = await probeDuring(d.droplet.httpPort, () => apply(cut, d.state, { log }), MIN_REQUESTS);
    assert.ok(probe.error instanceof StepError, String(probe.error));
    assert.equal(probe.error.exitCode, 124, "stopped by timeout");
    assert.match(
      probe.error.stderr,
      /release of chitram-app:sandbox-no-health failed: chitram-app-\d+ was stopped before it went live \(TERM/,
    );
    assertNoFailures(probe);
    assert.deepEqual(await live(), was);
    assert.deepEqual(await appContainers(), [was.name], "the new container was removed");
    config = { ...config, releaseTimeoutSeconds: "20" };
  });

  it("rollback on purpose: the previous image set again and `up`: 0 failed requests, and the next up proceeds", async () => {
    const probe = await release(SANDBOX_APP_IMAGE);
    assert.equal(probe.error, undefined);
    assertNoFailures(probe);
    assert.equal((await live()).image, SANDBOX_APP_IMAGE);
    assert.equal((await apply(steps, d.state, { log })).ran.length, 0, "a second up changes nothing");
  });

  it("old app images are pruned: after five more releases only the live image and the one before it stay", async () => {
    const tags = [3, 4, 5, 6, 7].map((n) => `chitram-app:sandbox-v${n}`);
    for (const [i, tag] of tags.entries()) {
      const b = await d.droplet.exec(`DOCKER_BUILDKIT=0 docker build -q -t ${tag} -`, {
        input: `FROM ${SANDBOX_APP_IMAGE}\nENV CHITRAM_SANDBOX_RELEASE=v${i + 3}\n`,
      });
      assert.equal(b.code, 0, b.stderr);
    }
    // (0 failed requests during a release is the tests' above; these are about the images)
    for (const tag of tags) assert.equal((await release(tag)).error, undefined, tag);
    const exists = async (image: string) =>
      (await d.droplet.exec(`docker image inspect ${image} >/dev/null 2>&1`)).code === 0;
    for (const gone of [...tags.slice(0, 3), V2, NO_HEALTH, CRASHING])
      assert.equal(await exists(gone), false, `${gone} is still on the host`);
    for (const kept of tags.slice(3)) assert.equal(await exists(kept), true, `${kept} was removed`);
    const log = (await d.droplet.exec(`cat ${APP_DIR}/app-images.log`)).stdout.trim().split("\n").sort();
    assert.deepEqual(log, tags.slice(3).sort());
  });

  /** The value of a variable in a container's environment. */
  const envOf = async (container: string, name: string) =>
    (
      await d.droplet.exec(`docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' ${container}`)
    ).stdout
      .split("\n")
      .find((l) => l.startsWith(`${name}=`))
      ?.slice(name.length + 1);
  const minioContainer = async () =>
    (await d.droplet.exec(`cd ${APP_DIR} && docker compose ps -q minio`)).stdout.trim();

  it("a credential rotation whose release fails is undone: PostgreSQL and MinIO back on the live version's credentials, and it serves", async () => {
    const was = await live();
    // the never-healthy image again (pruned above), on the live image
    const b = await d.droplet.exec(`DOCKER_BUILDKIT=0 docker build -q -t ${NO_HEALTH} -`, {
      input: `FROM ${was.image}\nCMD ["python3", "-m", "http.server", "8000"]\n`,
    });
    assert.equal(b.code, 0, b.stderr);
    const liveSecret = await envOf(was.name, "MINIO_SECRET_KEY");
    replaceRealValue(d.stack, "random:index/randomPassword:RandomPassword", "app-postgres-password");
    replaceRealValue(d.stack, "random:index/randomPassword:RandomPassword", "app-minio-secret");
    const probe = await release(NO_HEALTH);
    assert.ok(probe.error instanceof StepError, String(probe.error));
    assert.match(
      probe.error.stderr,
      /the credential rotation was undone: PostgreSQL and MinIO are back on the credentials of the live version/,
    );
    log(
      `failed rotation: ${probe.failed}/${probe.total} requests failed while the services had the new credentials`,
    );
    assert.deepEqual(await live(), was);
    assert.equal(
      await envOf(await minioContainer(), "MINIO_ROOT_PASSWORD"),
      liveSecret,
      "MinIO is back on the live secret",
    );
    const health = await waitHealthy(d.droplet.httpPort);
    assert.match(health.body, /"database":"ok".*"storage":"ok"/);
    // and a while later still: nothing flips back on its own
    await new Promise((r) => setTimeout(r, 3000));
    assert.match((await waitHealthy(d.droplet.httpPort)).body, /"storage":"ok"/);
  });

  it("a credential rotation whose services step fails (a Caddyfile Caddy refuses) is undone too, before the step fails", async () => {
    // The rotated values of the test above are still in the state: the services take them again.
    const was = await live();
    const liveSecret = await envOf(was.name, "MINIO_SECRET_KEY");
    config = { ...config, appImage: was.image };
    const next = withCaddyfile(await restep(d, config), (c) =>
      // an unknown directive inside the last site block: Caddy refuses the file
      c.replace(/\}\s*$/, "\tnot_a_caddy_directive\n}\n"),
    );
    const probe = await probeDuring(d.droplet.httpPort, () => apply(next, d.state, { log }), MIN_REQUESTS);
    assert.ok(probe.error instanceof StepError, String(probe.error));
    assert.equal(probe.error.step, "app-compose-up");
    assert.match(probe.error.stdout, /new PostgreSQL or MinIO credentials: the services take them now/);
    assert.match(
      probe.error.stderr,
      /the credential rotation was undone: PostgreSQL and MinIO are back on the credentials of the live version/,
    );
    assert.match(probe.error.stderr, /Caddy did not accept the Caddyfile/);
    assert.deepEqual(await live(), was);
    assert.equal(
      await envOf(await minioContainer(), "MINIO_ROOT_PASSWORD"),
      liveSecret,
      "MinIO is back on the live secret",
    );
    assert.match((await waitHealthy(d.droplet.httpPort)).body, /"database":"ok".*"storage":"ok"/);
    log(`rotation undone after a refused Caddyfile: ${probe.failed}/${probe.total} requests failed`);
  });

  it("the rotation with a good release goes live: the new version serves on the new credentials, MinIO and the app agree", async () => {
    const was = await live();
    const before = await envOf(was.name, "MINIO_SECRET_KEY");
    const probe = await release(was.image);
    assert.equal(probe.error, undefined, String(probe.error));
    log(`rotation: ${probe.failed}/${probe.total} requests failed until the new version went live`);
    const now = await live();
    assert.notEqual(now.name, was.name);
    const secret = await envOf(now.name, "MINIO_SECRET_KEY");
    assert.ok(secret && before && secret !== before, "the new version has the new secret");
    assert.equal(await envOf(await minioContainer(), "MINIO_ROOT_PASSWORD"), secret);
    assert.match((await waitHealthy(d.droplet.httpPort)).body, /"database":"ok".*"storage":"ok"/);
    assert.equal((await apply(steps, d.state, { log })).ran.length, 0, "the next up changes nothing");
  });
});
