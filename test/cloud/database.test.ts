// `database: managed` through the real engine and provider on the local DigitalOcean API: a running
// single-droplet stack moved to a Managed PostgreSQL cluster with its data (docs/RUNBOOK.md,
// "Moving PostgreSQL to a managed cluster, and back"), the app on the cluster over verify-full
// TLS, the host's backup dumping the cluster, and the way back to the container with the rows the
// cluster held; then destroy leaves nothing.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { backupUnderCronEnv } from "../../harness/backupDrill";
import { APP_VARIANTS, buildAppVariants } from "../../harness/deployment";
import { LocalDoApi, startLocalDoApi } from "../../harness/doApi";
import { plannedChanges, PulumiStack } from "../../harness/pulumiCli";
import { get, request } from "../../harness/probes";
import { buildImages, ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { parseEnvFile } from "../../render/envFile";
import { APP_DIR, SANDBOX_APP_IMAGE } from "../../hostContract";
import { gate } from "../../tools/previewGate";
import { destroyLeavesNothing, oneDroplet } from "./support";

const log = (line: string) => console.log(`  ${line}`);
/** The droplet and what is attached to it: a switch of the database must touch none of them. */
const DROPLET = ["chitram-droplet", "chitram-firewall", "chitram-ssh-key", "chitram-project"];
const ROWS = "SELECT key, sha256, size FROM sandbox_objects ORDER BY key";

describe("cloud: a managed PostgreSQL cluster, and a running stack moved to it and back, on the local DigitalOcean API", () => {
  let api: LocalDoApi;
  let stack: PulumiStack;
  const { only, onHost } = oneDroplet(() => api);
  const put = async (key: string, body: string) => {
    const r = await request(80, "PUT", `/api/objects/${key}`, body, 10_000, only().address);
    assert.equal(r.status, 201, r.body);
  };
  const read = async (key: string) => (await get(80, `/api/objects/${key}`, 10_000, only().address)).body;
  /** The rows as the app lists them (through Caddy, from whichever database it uses). */
  const listed = async () => {
    const r = await get(80, "/api/objects", 10_000, only().address);
    assert.equal(r.status, 200, r.body);
    return r.body;
  };
  const cluster = () => {
    const clusters = api.databaseClusters();
    assert.equal(clusters.length, 1);
    return clusters[0];
  };
  const inCluster = async (sql: string) => {
    const r = await api.databaseSql(String(cluster().id), "chitram", sql);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const inContainer = (sql: string) =>
    onHost(`cd ${APP_DIR} && docker compose exec -T postgres psql -X -qtA -U chitram -d chitram -c '${sql}'`);
  /** A backup as cron takes it; the name of its dump. */
  const backupNow = async () => {
    const backup = await backupUnderCronEnv((cmd) => only().sandbox.exec(cmd));
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);
    assert.ok(backup.dump, "the backup published no dump");
    return backup.dump.split("/").pop()!;
  };
  const restore = async (dump: string) => {
    // docs/RUNBOOK.md: the app stopped, the set taken before the switch restored by its name, the
    // app started again.
    await onHost(`cd ${APP_DIR} && docker compose stop app`);
    const out = await onHost(`${APP_DIR}/scripts/restore.sh ${dump} 2>&1`);
    await onHost(`cd ${APP_DIR} && docker compose start app && ${APP_DIR}/scripts/healthcheck.sh`);
    return out;
  };

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    await buildImages();
    api = await startLocalDoApi({ databases: true });
    stack = await PulumiStack.create("staging", { env: api.env });
    await stack.configure({ appImage: SANDBOX_APP_IMAGE, region: "nyc3", protectData: "false" });
  });
  after(async () => {
    try {
      stack?.remove();
    } finally {
      await api?.close();
    }
  });

  let containerRows = "";
  let clusterDump = "";
  it("from a running single-droplet stack to database: managed: the cluster is made, the droplet untouched, the dump restored into it; rows and objects identical", async () => {
    await stack.up([], { timeoutMs: 20 * 60_000 });
    assert.equal(api.databaseClusters().length, 0, "the default makes no cluster");
    await put("first", "written on the container");
    await put("second", "also on the container");
    containerRows = await inContainer(ROWS);
    assert.equal(containerRows.trim().split("\n").length, 2, containerRows);
    const listing = await listed();
    const dump = await backupNow();

    await stack.configure({ database: "managed" });
    const plan = plannedChanges(await stack.previewJson());
    for (const name of ["chitram-db-cluster", "chitram-db-db", "chitram-db-user", "chitram-db-firewall"])
      assert.deepEqual(plan[name], ["create"], `${name}: ${JSON.stringify(plan)}`);
    assert.deepEqual(plan["app-database-grant"], ["create"], JSON.stringify(plan));
    for (const name of DROPLET) assert.equal(plan[name], undefined, `${name}: ${JSON.stringify(plan)}`);

    // A switch whose release is abandoned (a new app version that never gets healthy): the live
    // version keeps serving from the postgres container, and no backup pretends the empty cluster
    // is the app's database.
    await buildAppVariants(only().sandbox);
    await stack.configure({ appImage: APP_VARIANTS.noHealth, releaseTimeoutSeconds: "20" });
    const abandoned = await stack.pulumi(["up", "--yes", "--skip-preview"], {
      timeoutMs: 20 * 60_000,
      check: false,
    });
    assert.notEqual(abandoned.code, 0, "a release that never got healthy went live");
    assert.notEqual(
      (await onHost("docker ps -q --filter label=com.docker.compose.service=postgres")).trim(),
      "",
      "the postgres container was removed before the new version passed its gate",
    );
    assert.equal(await listed(), listing, "the live version lost its rows");
    const refused = await backupUnderCronEnv((cmd) => only().sandbox.exec(cmd));
    assert.notEqual(refused.code, 0, "a backup of the cluster while the app still uses the container");
    assert.match(refused.stdout + refused.stderr, /has not gone live/);

    await stack.configure({ appImage: SANDBOX_APP_IMAGE, releaseTimeoutSeconds: "120" });
    const started = Date.now();
    await stack.up([], { timeoutMs: 20 * 60_000 });
    log(`up to the managed database: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.deepEqual(
      api.requests.filter((r) => r.status >= 400).map((r) => `${r.method} ${r.path} ${r.status}`),
      [],
      "a call the local API refused",
    );
    const c = cluster();
    assert.equal(c.engine, "pg");
    assert.equal(c.size, "db-s-1vcpu-1gb");
    assert.equal(c.num_nodes, 1);
    // The postgres container is gone (its data directory stays); the app runs on the empty cluster.
    assert.equal(
      (await onHost("docker ps -a -q --filter label=com.docker.compose.service=postgres")).trim(),
      "",
    );
    await onHost("test -s /var/lib/chitram/postgres/PG_VERSION");
    assert.equal(await listed(), JSON.stringify({ objects: [] }));

    const restored = await restore(dump);
    assert.match(restored, /PostgreSQL restored from postgres-\w+\.dump/);
    assert.equal(await inCluster(ROWS), containerRows, "the cluster holds the container's rows");
    assert.equal(await listed(), listing);
    assert.equal(await read("first"), "written on the container");
    assert.equal(await read("second"), "also on the container");
    // Every connection of the app's user to the cluster is TLS.
    const ssl = await inCluster(
      "SELECT DISTINCT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'chitram'",
    );
    assert.equal(ssl.trim(), "t", `pg_stat_ssl of the app's connections: ${ssl}`);
  });

  it("on the cluster: a second up changes nothing, the host's backup dumps the cluster, no password is in the state in plain text", async () => {
    await stack.up(["--expect-no-changes"]);
    await put("third", "written on the cluster");
    clusterDump = await backupNow();
    const toc = await onHost(
      `cd ${APP_DIR} && docker compose run --rm -T pgclient pg_restore -l < /var/lib/chitram/backups/${clusterDump}`,
    );
    assert.match(toc, /TABLE DATA public sandbox_objects/);
    const env = parseEnvFile(await onHost(`cat ${APP_DIR}/.env.postgres`));
    const admin = String((cluster().connection as { password: string }).password);
    const state = await stack.exportState();
    assert.ok(state.includes("chitram-db-cluster"));
    for (const password of [env.PGPASSWORD, admin]) {
      assert.match(password, /^AVNS_\w{20}$/);
      assert.ok(!state.includes(password), "a database password is in the state in plain text");
    }
  });

  it("and back to database: container: the postgres container starts again, the cluster's dump restored into it; then destroy leaves nothing", async () => {
    const clusterRows = await inCluster(ROWS);
    assert.equal(clusterRows.trim().split("\n").length, 3, clusterRows);
    const listing = await listed();
    await stack.configure({ database: "container" });
    const preview = await stack.previewJson();
    const plan = plannedChanges(preview);
    assert.deepEqual(plan["chitram-db-cluster"], ["delete"], JSON.stringify(plan));
    // The deploy workflow's gate stops this plan unless the person asked for it.
    assert.equal(gate(JSON.stringify(preview), false).code, 1);
    assert.equal(gate(JSON.stringify(preview), true).code, 0);
    for (const name of DROPLET) assert.equal(plan[name], undefined, `${name}: ${JSON.stringify(plan)}`);
    await stack.up([], { timeoutMs: 20 * 60_000 });
    assert.equal(api.databaseClusters().length, 0);
    // The container's data directory held the rows of before the move, and now the cluster's.
    assert.equal(await inContainer(ROWS), containerRows);
    await restore(clusterDump);
    assert.equal(await inContainer(ROWS), clusterRows);
    assert.equal(await listed(), listing);
    assert.equal(await read("third"), "written on the cluster");
    await destroyLeavesNothing(stack, api);
  });
});
