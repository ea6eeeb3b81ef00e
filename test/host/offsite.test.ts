// Off-box backups and the disaster-recovery drill, on throw-away droplets deployed by the stack's
// steps, against the sandbox's off-box store (harness/offsiteStore.ts).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { backupUnderCronEnv, HostExec, mustSucceed as must, setStamp } from "../../harness/backupDrill";
import { Deployment } from "../../harness/deployment";
import { get, request } from "../../harness/probes";
import {
  listRows,
  OFFSITE_BUCKET,
  OffsiteStore,
  rebuildFromOffsite,
  deployWithOffsiteStore,
} from "../../harness/offsiteStore";
import { Droplet, ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { BACKUP_SECRETS_PATH } from "../../hostContract";

const log = (line: string) => console.log(`  ${line}`);

const stamp = setStamp;

describe("real host: off-box backups, and a host lost and rebuilt from them", () => {
  let store: OffsiteStore;
  let d: Deployment;
  let exec: HostExec;
  let replacement: Droplet | undefined;

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    ({ store, d } = await deployWithOffsiteStore("sandbox-offsite", log));
    exec = (cmd) => d.droplet.exec(cmd);
  });
  after(async () => {
    await d?.droplet.stop();
    await replacement?.stop();
    await store?.stop();
  });

  it("the off-box keys are on the host only in the root-only secrets file", async () => {
    const visible = await exec(
      `grep -rlF ${JSON.stringify(store.secretKey)} /etc/cron.d /opt/chitram /var/log || true`,
    );
    assert.equal(visible.stdout.trim(), "");
    assert.match(await must(exec, `cat ${BACKUP_SECRETS_PATH}`), /^OFFSITE_BUCKET='chitram-offsite'$/m);
  });

  it("each backup is copied off the box and read back; the pruner applies the same retention to the bucket", async () => {
    const day = 86_400_000;
    const old = `postgres-${stamp(new Date(Date.now() - 8 * day))}.dump`;
    const recent = `minio-${stamp(new Date(Date.now() - 2 * day))}.tar.gz`;
    for (const name of [old, recent]) await store.mc(["cp", "/etc/hostname", `s3/${OFFSITE_BUCKET}/${name}`]);
    assert.equal((await request(d.droplet.httpPort, "PUT", "/api/objects/first", "first")).status, 201);
    const r = await backupUnderCronEnv(exec);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(r.dump);
    const tarball = r.dump.replace(/postgres-(\w+)\.dump$/, "minio-$1.tar.gz");
    assert.match(r.stdout, /off-box: .*postgres-\w+\.dump uploaded and read back/);
    // the host's key is put-only: the pruner, with its own key on stdin, applies the retention
    assert.match(r.stdout, /off-box retention: this key may not delete/);
    const prune = await exec(`/opt/chitram/scripts/prune-offsite.sh <<'EOF'\n${store.pruneEnv}EOF`);
    assert.equal(prune.code, 0, prune.stdout + prune.stderr);
    assert.match(prune.stdout, new RegExp(`off-box retention: deleted ${old.replace(/\./g, "\\.")}`));

    const listing = (await store.mc(["ls", `s3/${OFFSITE_BUCKET}/`])).stdout;
    assert.ok(!listing.includes(old), "the copy older than 7 days is gone");
    assert.ok(listing.includes(recent), "a 2-day-old copy stays");
    for (const f of [r.dump, tarball]) {
      const name = f.slice(f.lastIndexOf("/") + 1);
      const local = (await must(exec, `sha256sum < ${f}`)).split(" ")[0];
      assert.equal(await store.sha256(name), local, `${name} off the box differs`);
    }
  });

  it("an unreachable off-box store fails the run (the local backup is kept and says so)", async () => {
    await store.leave(d.droplet);
    try {
      const r = await backupUnderCronEnv(exec);
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, /off-box upload of postgres-\w+\.dump .* failed/);
      assert.match(r.stdout + r.stderr, /backup FAILED/);
    } finally {
      await store.join(d.droplet);
    }
  });

  it("disaster recovery: the host is destroyed, a new one deployed with the same config is restored from the off-box copy", async () => {
    // Rows and objects written through the app.
    const objects: Record<string, string> = {
      "photo-1": randomBytes(300_000).toString("base64"),
      "photo-2": randomBytes(5_000).toString("base64"),
      note: "a small note\n",
    };
    for (const [k, v] of Object.entries(objects)) {
      assert.equal((await request(d.droplet.httpPort, "PUT", `/api/objects/${k}`, v, 30_000)).status, 201);
    }
    const rows = await listRows(d.droplet.httpPort);
    assert.equal(rows.length, 4);
    const backup = await backupUnderCronEnv(exec);
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);

    const rebuilt = await rebuildFromOffsite(d, store, {
      log,
      beforeRestore: async (droplet) =>
        assert.deepEqual(await listRows(droplet.httpPort), [], "the new host starts empty"),
    });
    replacement = rebuilt.droplet;
    log(`disaster recovery phases (ms): ${JSON.stringify(rebuilt.timings)}`);
    // the new host's scheduled backup ran first, of an empty host, and went off the box too
    assert.equal(rebuilt.scheduled.code, 0, rebuilt.scheduled.stdout + rebuilt.scheduled.stderr);
    assert.match(rebuilt.scheduled.stdout, /published set \w+ \(empty: /);
    assert.match(rebuilt.scheduled.stdout, /off-box: .*manifest-\w+\.empty\.txt uploaded/);
    assert.equal(rebuilt.restore.code, 0, rebuilt.restore.stdout + rebuilt.restore.stderr);
    const restored = /^.* restore: set (\w+) \(data\)/m.exec(rebuilt.restore.stdout);
    assert.ok(
      restored && backup.dump?.includes(restored[1]),
      `restored the set of the last good backup:\n${rebuilt.restore.stdout}`,
    );

    assert.deepEqual(await listRows(replacement.httpPort), rows);
    for (const [k, v] of Object.entries(objects)) {
      const got = await get(replacement.httpPort, `/api/objects/${k}`, 30_000);
      assert.equal(got.status, 200, `${k}: ${got.body.slice(0, 200)}`);
      assert.ok(got.body === v, `object ${k} differs after the recovery`);
    }
  });
});
