// Switching where the data lives (`dataVolumeSizeGb` 0 <-> N) on a real host: the app steps must
// refuse to start PostgreSQL on an empty directory while the other one holds the database, and the
// runbook's migration procedure must move the data with every row intact.
//
// The sandbox has no block device: the volume is never attached or mounted here (host-data-volume
// is not run). /mnt/chitram-data is a plain directory on the droplet's disk, which is what the app
// steps see once the volume is mounted.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { apply, toReplayStep, withOutputs } from "../../harness/engine";
import { Deployment, newDeployment } from "../../harness/deployment";
import { sshExec, waitHealthy } from "../../harness/probes";
import { replay, StepError } from "../../harness/replay";
import { runStack } from "../../harness/steps";
import { ProgramStep } from "../../harness/steps";
import { ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { DOCKER_MOUNT_DROPIN_PATH, LOCAL_DATA_DIR, VOLUME_MOUNT } from "../../hostContract";

const log = (line: string) => console.log(`  ${line}`);

/**
 * The app steps of the same stack with a data volume: the program as `pulumi up` sees it after
 * `dataVolumeSizeGb` went from 0 to 10, pointed at the sandbox instead of a droplet.
 */
async function stepsWithVolume(d: Deployment): Promise<ProgramStep[]> {
  const existingOnly = ["target", "host", "sshPort", "sshUser", "sshPrivateKey"];
  const config = Object.fromEntries(Object.entries(d.config).filter(([k]) => !existingOnly.includes(k)));
  const run = await runStack(d.stack, { ...config, dataVolumeSizeGb: "10" }, "real");
  const app = run.steps.filter((s) => s.name.startsWith("app-"));
  const names = new Set(app.map((s) => s.name));
  return app.map((s) => ({
    ...s,
    // Same host and login as the deployed steps: only the data directory differs.
    connection: { ...s.connection, host: "127.0.0.1", port: d.droplet.sshPort },
    dependsOn: s.dependsOn.filter((n) => names.has(n)),
  }));
}

/** psql in the postgres container as POSTGRES_USER on POSTGRES_DB, the SQL on stdin. */
function psqlCommand(sql: string): string {
  const inner = `psql -X -q -t -A -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"`;
  return `cd /opt/chitram && docker compose exec -T postgres sh -c '${inner}' <<'SQL'\n${sql}\nSQL`;
}

describe("real host: moving the data between the droplet's disk and a volume", () => {
  let d: Deployment;
  const onHost = async (cmd: string) => {
    const r = await sshExec(d.droplet.sshPort, "chitram", d.deployPrivateKey, cmd);
    assert.equal(r.code, 0, `${cmd}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const psql = (sql: string) => onHost(psqlCommand(sql));

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    d = await newDeployment("sandbox-datadir");
    await apply(d.steps, d.state, { log });
    await waitHealthy(d.droplet.httpPort);
    await psql("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('written before the move');");
  });
  after(async () => {
    await d?.droplet.stop();
  });

  it("a switch to an empty data directory is refused while the old one holds the database; the app keeps serving", async () => {
    const switched = await stepsWithVolume(d);
    assert.match(switched.find((s) => s.name === "app-app-dirs")!.create!, new RegExp(VOLUME_MOUNT));
    const err = await apply(switched, d.state, { log }).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (err === undefined) {
      // The defect: PostgreSQL initialised a new, empty cluster, and the deploy called it healthy.
      const health = await waitHealthy(d.droplet.httpPort).then(
        (r) => r.status,
        (e: Error) => e.message,
      );
      const rows = await sshExec(
        d.droplet.sshPort,
        "chitram",
        d.deployPrivateKey,
        psqlCommand("SELECT note FROM kept;"),
      );
      assert.fail(
        `the switch was applied: /health answered ${health}; the table: ${rows.stdout}${rows.stderr}`,
      );
    }
    assert.ok(err instanceof StepError, (err as Error).message);
    assert.equal(err.step, "app-app-dirs");
    assert.match(err.stderr, new RegExp(`${LOCAL_DATA_DIR} holds the PostgreSQL database`));
    assert.match(err.stderr, /docs\/RUNBOOK\.md, "Move the data between the droplet's disk and a volume"/);
    // Nothing was started on the empty directory, and the running app still has its data.
    assert.equal(
      await onHost(`sudo test -e ${VOLUME_MOUNT}/postgres/PG_VERSION && echo new || echo none`),
      "none\n",
    );
    assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200);
    assert.equal(await psql("SELECT note FROM kept;"), "written before the move\n");
  });

  it("the runbook's procedure (stop, copy, set the old directory aside, up) keeps every row", async () => {
    // docs/RUNBOOK.md, "Move the data between the droplet's disk and a volume", step 3.
    await onHost("cd /opt/chitram && docker compose down --timeout 60");
    await onHost(`sudo cp -a ${LOCAL_DATA_DIR}/. ${VOLUME_MOUNT}/`);
    await onHost(`sudo mv ${LOCAL_DATA_DIR} ${LOCAL_DATA_DIR}.moved-$(date +%F)`);
    // Step 4: `pulumi up` again.
    await apply(await stepsWithVolume(d), d.state, { log });
    assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200);
    assert.equal(await psql("SELECT note FROM kept;"), "written before the move\n");
    assert.equal(await onHost(`sudo test -s ${VOLUME_MOUNT}/postgres/PG_VERSION && echo moved`), "moved\n");
    assert.match(
      await onHost("cat /opt/chitram/host.env"),
      new RegExp(`^DATA_DIR='?${VOLUME_MOUNT}'?$`, "m"),
    );
  });

  it("before the volume is detached, the release step stops the app, syncs and unmounts; a busy mount stops the detach", async () => {
    const release = (await stepsWithVolume(d)).find((s) => s.name === "app-volume-release")!;
    // What the engine runs when it deletes the step (before the attachment): its delete command.
    const runRelease = () =>
      replay([{ ...toReplayStep(withOutputs(release, d.state)), create: release.delete, dependsOn: [] }], {
        log,
      });
    // A bind mount of the directory onto itself stands in for the volume's mount (no block device here).
    const mountVolume = `mount --bind ${VOLUME_MOUNT} ${VOLUME_MOUNT}`;
    assert.equal((await d.droplet.exec(mountVolume)).code, 0);
    // host-data-volume's drop-in (that step needs a block device; its content does not matter here).
    const dropIn = `install -D -m 0644 /dev/null ${DOCKER_MOUNT_DROPIN_PATH}`;
    assert.equal((await d.droplet.exec(dropIn)).code, 0);
    const dropInThere = async () =>
      (await d.droplet.exec(`test -e ${DOCKER_MOUNT_DROPIN_PATH} && echo there || echo gone`)).stdout;

    // Something still using the mount: the step fails, names the reason, and nothing is detached.
    await d.droplet.exec(`cd ${VOLUME_MOUNT} && (setsid sleep 300 </dev/null >/dev/null 2>&1 &)`);
    await assert.rejects(runRelease(), (err: StepError) => {
      assert.match(err.stderr, /could not be unmounted within 60 s \(still in use/);
      assert.match(err.stderr, /the volume stays attached/);
      return true;
    });
    assert.equal(
      (await d.droplet.exec(`pkill -x sleep; mountpoint -q ${VOLUME_MOUNT} && echo mounted`)).stdout,
      "mounted\n",
    );
    // The volume stays attached, so Docker still waits for it at boot.
    assert.equal(await dropInThere(), "there\n");

    const [done] = await runRelease();
    assert.match(done.stdout, /app stopped, \/mnt\/chitram-data unmounted/);
    // The volume leaves: Docker must not wait at the next boot for a mount that will never come.
    assert.match(done.stdout, /docker\.service no longer requires \/mnt\/chitram-data to be mounted/);
    assert.equal(await dropInThere(), "gone\n");
    assert.equal(await onHost("cd /opt/chitram && docker compose ps -q"), "");
    assert.equal(
      (await d.droplet.exec(`mountpoint -q ${VOLUME_MOUNT} || echo unmounted`)).stdout,
      "unmounted\n",
    );
    // The next attachment's `up` starts the app again, data intact.
    await apply(await stepsWithVolume(d), d.state, { log, force: (s) => s.name === "app-compose-up" });
    assert.equal(await psql("SELECT note FROM kept;"), "written before the move\n");
  });
});
