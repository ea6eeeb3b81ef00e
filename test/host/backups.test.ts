// Backups you can bet on, on a real host with an off-box store (harness/offsiteStore.ts): an empty
// host's backups never push out the last good sets, here or off the box; retention deletes every
// expired file in one run; root on the host cannot erase the off-box history; a backup that would
// not fit fails before it writes anything; the pair is taken with MinIO paused and a tar that
// reports a changed file fails the run; a restore takes a matched pair and holds the lock before
// it downloads anything.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { backupUnderCronEnv, HostExec, mustSucceed as must, setStamp } from "../../harness/backupDrill";
import { deployWithOffsiteStore, listRows, OFFSITE_BUCKET, OffsiteStore } from "../../harness/offsiteStore";
import { Deployment } from "../../harness/deployment";
import { get, recordingServer, request, waitHealthy, networkGateway } from "../../harness/probes";
import { ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { APP_DIR, BACKUP_KEEP_GOOD, BACKUP_STATUS_URL_PATH, RELEASE_LOCK_NAME } from "../../hostContract";

const log = (line: string) => console.log(`  ${line}`);
const BACKUPS = "/var/lib/chitram/backups";
const DAY = 86_400_000;

const stamp = setStamp;

const setFiles = (s: string, kind: "data" | "empty") => [
  `postgres-${s}.dump`,
  `minio-${s}.tar.gz`,
  `manifest-${s}.${kind}.txt`,
];

describe("real host: backups that never lose the last good copy", () => {
  let store: OffsiteStore;
  let d: Deployment;
  let exec: HostExec;
  /** The backup sets' file names in BACKUP_DIR and in the bucket. */
  const setName = /^(postgres-\w+\.dump|minio-\w+\.tar\.gz|manifest-\w+\.(data|empty)\.txt)$/;
  const local = async () =>
    (await must(exec, `ls -a ${BACKUPS}`))
      .split("\n")
      .filter((n) => setName.test(n) || n.endsWith(".tmp"))
      .sort();
  const remote = async () =>
    (await store.mc(["ls", `s3/${OFFSITE_BUCKET}/`])).stdout
      .split("\n")
      .map((l) => l.trim().split(/\s+/).pop() ?? "")
      .filter((n) => setName.test(n))
      .sort();
  const SECRET = "/etc/chitram/backup.env";

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    ({ store, d } = await deployWithOffsiteStore("sandbox-backups", log));
    exec = (cmd) => d.droplet.exec(cmd);
  });
  after(async () => {
    await d?.droplet.stop();
    await store?.stop();
  });

  it("an empty host's backups never push out the newest good sets, here or off the box; every expired file goes in one run", async () => {
    assert.equal(
      (await request(d.droplet.httpPort, "PUT", "/api/objects/kept", "the good data")).status,
      201,
    );
    const good = await backupUnderCronEnv(exec);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    const goodStamp = /published set (\w+) \(data: /.exec(good.stdout)?.[1];
    assert.ok(goodStamp, good.stdout);
    // Seven older good sets, 8 to 14 days old (copies of this one under older stamps), here and
    // off the box: the retention (7 days) has expired all of them.
    const older = Array.from({ length: 7 }, (_, i) => stamp(new Date(Date.now() - (8 + i) * DAY)));
    for (const s of older) {
      await must(
        exec,
        `cd ${BACKUPS} && cp postgres-${goodStamp}.dump postgres-${s}.dump && cp minio-${goodStamp}.tar.gz minio-${s}.tar.gz && ` +
          `sed 's/^stamp=.*/stamp=${s}/' manifest-${goodStamp}.data.txt > manifest-${s}.data.txt`,
      );
    }
    await must(exec, `rm ${BACKUPS}/*${goodStamp}*`);
    await store.mc(["rm", "--recursive", "--force", `s3/${OFFSITE_BUCKET}/`]);
    await must(
      exec,
      `. ${SECRET} && printf 'MC_HOST_offsite=%s://%s:%s@%s\\n' "\${OFFSITE_ENDPOINT%%://*}" "$OFFSITE_ACCESS_KEY" "$OFFSITE_SECRET_KEY" "\${OFFSITE_ENDPOINT#*://}" > /root/mc.env && ` +
        `docker run --rm --env-file /root/mc.env -v ${BACKUPS}:/b --entrypoint mc minio/minio:RELEASE.2024-11-07T00-52-20Z cp --recursive --quiet /b/ offsite/${OFFSITE_BUCKET}/ >/dev/null && rm /root/mc.env`,
    );
    // The host is rebuilt empty: no rows, no objects.
    await must(
      exec,
      `cd /opt/chitram && docker compose exec -T postgres sh -c 'psql -q -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "DROP TABLE sandbox_objects"' && ` +
        `docker compose stop minio >/dev/null && find /var/lib/chitram/minio -mindepth 1 -delete && docker compose start minio >/dev/null`,
    );
    const empty = await backupUnderCronEnv(exec);
    assert.equal(empty.code, 0, empty.stdout + empty.stderr);
    const emptyStamp = /published set (\w+) \(empty: /.exec(empty.stdout)?.[1];
    assert.ok(emptyStamp, empty.stdout);
    const kept = [
      ...older.slice(0, BACKUP_KEEP_GOOD).flatMap((s) => setFiles(s, "data")),
      ...setFiles(emptyStamp, "empty"),
    ];
    assert.deepEqual(await local(), [...kept].sort(), "here: the newest good sets and the new one");
    // The host's key is put-only: off the box, the pruner does it, with its own key on stdin.
    assert.match(empty.stdout, /off-box retention: this key may not delete \(a put-only key\)/);
    const prune = await exec(`/opt/chitram/scripts/prune-offsite.sh <<'EOF'\n${store.pruneEnv}EOF`);
    assert.equal(prune.code, 0, prune.stdout + prune.stderr);
    assert.deepEqual(await remote(), [...kept].sort(), "off the box: the same");
    // every expired file of every kind went in one run (4 sets: 4 dumps, 4 archives, 4 manifests)
    assert.equal((prune.stdout.match(/off-box retention: deleted /g) ?? []).length, 12, prune.stdout);
    const left = await exec("grep -rl offsite-prune /etc /opt /root 2>/dev/null");
    assert.equal(left.stdout.trim(), "", "the pruning key stayed on the host");
    // and `latest` is the newest good set, not the empty one
    const restore = await exec("/opt/chitram/scripts/restore.sh --offsite latest --minio latest");
    assert.equal(restore.code, 0, restore.stdout + restore.stderr);
    assert.match(restore.stdout, new RegExp(`set ${older[0]} \\(data\\): the files match its manifest`));
    await waitHealthy(d.droplet.httpPort, 120_000);
    const back = await get(d.droplet.httpPort, "/api/objects/kept");
    assert.equal(back.body, "the good data");
  });

  it("root on the host cannot erase the off-box history with the host's key (put-only): no version, no copy, no setting changes", async () => {
    const before = (await store.mc(["ls", "--versions", "--recursive", `s3/${OFFSITE_BUCKET}/`])).stdout;
    const versions = before.split("\n").filter((l) => l.includes("PUT")).length;
    assert.ok(versions >= 9, before);
    // As root would, with the host's own key: every version, the bucket's versioning, every copy.
    const attack = await exec(
      `. ${SECRET} && printf 'MC_HOST_offsite=%s://%s:%s@%s\\n' "\${OFFSITE_ENDPOINT%%://*}" "$OFFSITE_ACCESS_KEY" "$OFFSITE_SECRET_KEY" "\${OFFSITE_ENDPOINT#*://}" > /root/mc.env && ` +
        'm() { docker run --rm --env-file /root/mc.env --entrypoint mc minio/minio:RELEASE.2024-11-07T00-52-20Z "$@"; }; ' +
        `m rm --recursive --force --versions offsite/${OFFSITE_BUCKET}/; echo "versions: $?"; ` +
        `m version suspend offsite/${OFFSITE_BUCKET}; echo "suspend: $?"; ` +
        `m rm --recursive --force offsite/${OFFSITE_BUCKET}/; echo "current: $?"; rm -f /root/mc.env`,
    );
    assert.match(attack.stdout + attack.stderr, /Access Denied/i);
    assert.match(attack.stdout, /^versions: [1-9]/m);
    assert.match(attack.stdout, /^suspend: [1-9]/m);
    assert.match(attack.stdout, /^current: [1-9]/m);
    const after = (await store.mc(["ls", "--versions", "--recursive", `s3/${OFFSITE_BUCKET}/`])).stdout;
    assert.equal(after, before, "the off-box history changed");
  });

  it("a backup that would not fit fails before it writes anything, pings /fail, and keeps every earlier set", async () => {
    const recorder = await recordingServer(await networkGateway(d.droplet));
    const gateway = await networkGateway(d.droplet);
    try {
      await must(
        exec,
        `sed -i "s|^BACKUP_HEARTBEAT_URL=.*|BACKUP_HEARTBEAT_URL='http://${gateway}:${recorder.port}/ping'|" ${SECRET}`,
      );
      const before = await local();
      // BACKUP_DIR on a 200 MB file system: the set needs a few MB, plus BACKUP_MIN_FREE_MB (1024) kept free.
      await must(
        exec,
        `mkdir -p /tmp/saved && cp -a ${BACKUPS}/. /tmp/saved/ && mount -t tmpfs -o size=200m tmpfs ${BACKUPS} && cp -a /tmp/saved/. ${BACKUPS}/`,
      );
      let r;
      try {
        r = await backupUnderCronEnv(exec);
        assert.deepEqual(await local(), before, "a file was written or deleted");
      } finally {
        await must(exec, `umount ${BACKUPS}`);
      }
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        /not enough free space in \/var\/lib\/chitram\/backups: the backup needs about \d+ MB and 1024 MB must stay free for the live data, but \d+ MB are free\. Nothing was written/,
      );
      assert.deepEqual(
        recorder.requests.map((q) => q.url),
        ["/ping/fail"],
      );
      assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200, "the live app is untouched");
      // the backup uptime check sees it at once: the status file is gone
      assert.equal((await get(d.droplet.httpPort, BACKUP_STATUS_URL_PATH)).status, 404);
      const next = await backupUnderCronEnv(exec);
      assert.equal(next.code, 0, next.stdout + next.stderr);
      const fresh = await get(d.droplet.httpPort, BACKUP_STATUS_URL_PATH);
      assert.equal(fresh.status, 200);
      assert.match(fresh.body, /^last good backup run \w+$/m);
    } finally {
      await must(exec, `sed -i "s|^BACKUP_HEARTBEAT_URL=.*|BACKUP_HEARTBEAT_URL=''|" ${SECRET}`);
      await recorder.close();
    }
  });

  it("the pair is taken with MinIO paused, and a tar that reports a changed file fails the run", async () => {
    // A tar in front of the real one (backup.sh puts /usr/local/bin first on PATH) that records
    // whether MinIO was paused and keeps it paused 12 s (longer than its health probes' 10 s
    // interval, as a large archive does), and with /tmp/fake-changed exits 1 as GNU tar does for
    // a changed file.
    const wrapper = [
      "#!/bin/sh",
      'case " $* " in *" -czf "*) docker inspect -f "{{.State.Paused}}" "$(docker ps -qf name=chitram-minio)" > /tmp/minio-paused-during-tar; sleep 12;;',
      "esac",
      '/bin/tar "$@" || exit $?',
      'if [ -e /tmp/fake-changed ]; then case " $* " in *" -czf "*) echo "tar: ./x: file changed as we read it" >&2; exit 1;; esac; fi',
    ].join("\n");
    await must(exec, `cat > /usr/local/bin/tar <<'EOF'\n${wrapper}\nEOF\nchmod 0755 /usr/local/bin/tar`);
    try {
      const ok = await backupUnderCronEnv(exec);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.equal((await must(exec, "cat /tmp/minio-paused-during-tar")).trim(), "true");
      // Running and healthy again when the run ends: Docker calls it unhealthy from the pause
      // until its next probe, and a release right after the backup would fail on that.
      assert.equal(
        (
          await must(
            exec,
            "docker inspect -f '{{.State.Paused}} {{.State.Health.Status}}' $(docker ps -qf name=chitram-minio)",
          )
        ).trim(),
        "false healthy",
      );
      assert.match(
        ok.stdout,
        /MinIO was paused for \d+ s while the dump and the archive were taken, and healthy again \d+ s later/,
      );
      const before = await local();
      await must(exec, "touch /tmp/fake-changed");
      const changed = await backupUnderCronEnv(exec);
      assert.notEqual(changed.code, 0);
      assert.match(
        changed.stderr,
        /tar of \/var\/lib\/chitram\/minio failed \(exit 1; 1 is a file changed while it was read\)/,
      );
      // nothing new (the retention, which runs first, may have taken expired sets)
      assert.deepEqual(
        (await local()).filter((n) => !before.includes(n)),
        [],
        "a failed pair published something",
      );
      assert.equal(
        (
          await must(exec, "docker inspect -f '{{.State.Paused}}' $(docker ps -qf name=chitram-minio)")
        ).trim(),
        "false",
        "MinIO was left paused",
      );
    } finally {
      await exec("rm -f /usr/local/bin/tar /tmp/fake-changed /tmp/minio-paused-during-tar");
    }
  });

  it("a backup during a release waits for the release lock before it pauses MinIO", async () => {
    // A release holds the lock for its whole step (host/steps/release/app.sh) and needs MinIO
    // answering: here a holder of the lock records MinIO's state five times a second for 6 s.
    const minio = (await must(exec, "docker ps -qf name=chitram-minio")).trim();
    const held = "/tmp/release-lock-held";
    const record = "/tmp/minio-paused-while-released";
    const release = exec(
      `rm -f ${held} ${record}; flock ${APP_DIR}/${RELEASE_LOCK_NAME} sh -c ` +
        `'touch ${held}; for i in $(seq 30); do docker inspect -f "{{.State.Paused}}" ${minio} >> ${record}; sleep 0.2; done'`,
    );
    try {
      while ((await exec(`test -e ${held}`)).code !== 0) await new Promise((r) => setTimeout(r, 200));
      const ok = await backupUnderCronEnv(exec);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /a release is running: MinIO is paused only once it has ended/);
      assert.equal((await release).code, 0);
      const states = (await must(exec, `cat ${record}`)).trim().split("\n");
      assert.equal(states.length, 30);
      assert.deepEqual([...new Set(states)], ["false"], "MinIO was paused while the release held the lock");
    } finally {
      await exec(`rm -f ${held} ${record}`);
    }
  });

  it("a MinIO left paused by a run killed part-way is unpaused by the next run, which then succeeds", async () => {
    const minio = (await must(exec, "docker ps -qf name=chitram-minio")).trim();
    await must(exec, `docker pause ${minio}`);
    const ok = await backupUnderCronEnv(exec);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /MinIO was left paused, by a run killed part-way: unpausing it/);
    assert.equal((await must(exec, `docker inspect -f '{{.State.Paused}}' ${minio}`)).trim(), "false");
  });

  it("writes during a backup: the restored pair has every object its rows point at", async () => {
    let writing = true;
    let n = 0;
    const writer = (async () => {
      while (writing) {
        await request(
          d.droplet.httpPort,
          "PUT",
          `/api/objects/busy-${n++}`,
          randomBytes(2000).toString("hex"),
          30_000,
        ).catch(() => undefined);
      }
    })();
    const r = await backupUnderCronEnv(exec);
    writing = false;
    await writer;
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const restore = await exec("/opt/chitram/scripts/restore.sh latest --minio latest");
    assert.equal(restore.code, 0, restore.stdout + restore.stderr);
    await waitHealthy(d.droplet.httpPort, 120_000);
    const rows = (await listRows(d.droplet.httpPort)) as { key: string }[];
    assert.ok(rows.length > 1, `${rows.length} rows`);
    for (const row of rows) {
      const got = await get(d.droplet.httpPort, `/api/objects/${row.key}`, 30_000);
      assert.equal(
        got.status,
        200,
        `${row.key}: a row whose object the archive lacks (${got.body.slice(0, 200)})`,
      );
    }
    log(`${n} writes during the backup; ${rows.length} rows restored, each with its object`);
  });

  it("restore takes a matched pair: a set whose upload did not finish is never latest", async () => {
    const names = await remote();
    const newestGood = names
      .filter((n) => n.endsWith(".data.txt"))
      .sort()
      .pop()!
      .replace(/^manifest-(\w+)\.data\.txt$/, "$1");
    // A newer set whose archive and manifest never reached the bucket (the upload failed after the dump).
    const broken = stamp(new Date(Date.now() + 60_000));
    await store.mc(["cp", "/etc/hostname", `s3/${OFFSITE_BUCKET}/postgres-${broken}.dump`]);
    const restore = await exec("/opt/chitram/scripts/restore.sh --offsite latest --minio latest");
    assert.equal(restore.code, 0, restore.stdout + restore.stderr);
    assert.match(restore.stdout, new RegExp(`fetched postgres-${newestGood}\\.dump`));
    assert.match(restore.stdout, new RegExp(`fetched minio-${newestGood}\\.tar\\.gz`));
    assert.doesNotMatch(restore.stdout, new RegExp(broken));
    // and naming the broken one is refused before anything changes
    const named = await exec(`/opt/chitram/scripts/restore.sh --offsite postgres-${broken}.dump`);
    assert.notEqual(named.code, 0);
    assert.match(named.stderr, /has no manifest .* it is incomplete .* nothing was changed/);
    await waitHealthy(d.droplet.httpPort, 120_000);
  });

  it("restore takes the lock before it downloads anything", async () => {
    const before = await local();
    await must(exec, `(flock ${BACKUPS}/.lock sleep 20 &) ; sleep 1`);
    const r = await exec("/opt/chitram/scripts/restore.sh --offsite latest --minio latest");
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /a backup or restore holds .*\.lock; try again when it is done/);
    assert.doesNotMatch(r.stdout, /fetched/);
    assert.deepEqual(await local(), before, "something was downloaded");
    await exec(`flock ${BACKUPS}/.lock true`);
    // and the release step's lock: no release starts the app while the data is replaced
    await must(exec, `(flock ${APP_DIR}/${RELEASE_LOCK_NAME} sleep 20 &) ; sleep 1`);
    const during = await exec("/opt/chitram/scripts/restore.sh --offsite latest --minio latest");
    assert.notEqual(during.code, 0);
    assert.match(
      during.stderr,
      /a release is running \(it holds .*\.release\.lock\); try again when pulumi up is done/,
    );
    assert.doesNotMatch(during.stdout, /fetched/);
    assert.deepEqual(await local(), before, "something was downloaded");
    await exec(`flock ${APP_DIR}/${RELEASE_LOCK_NAME} true`);
  });
});
