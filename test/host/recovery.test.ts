// Backups under faults, on a throw-away droplet deployed by the stack's steps: failures reach a
// person (heartbeat), a full disk loses nothing, retention deletes exactly what is old, MinIO
// restores byte for byte, and the services come back with their data after dockerd restarts.
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { backupUnderCronEnv, failsWithPostgresStopped, HostExec } from "../../harness/backupDrill";
import { apply } from "../../harness/engine";
import { Deployment, newDeployment } from "../../harness/deployment";
import {
  get,
  networkGateway,
  recordingServer,
  request,
  serviceStates,
  waitHealthy,
} from "../../harness/probes";
import { ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { BACKUP_LOG, BACKUP_SECRETS_PATH, LOCAL_DATA_DIR } from "../../hostContract";

const log = (line: string) => console.log(`  ${line}`);
const BACKUP_DIR = `${LOCAL_DATA_DIR}/backups`;

/** `name size sha256` of every file (dot files too) in BACKUP_DIR, sorted. */
async function fingerprint(exec: HostExec): Promise<string> {
  const r = await exec(
    `cd ${BACKUP_DIR} && find . -maxdepth 1 -type f ! -name .lock -printf '%f\\n' | sort | ` +
      `while read -r f; do printf '%s %s %s\\n' "$f" "$(stat -c %s "$f")" "$(sha256sum < "$f" | cut -d' ' -f1)"; done`,
  );
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

async function must(exec: HostExec, cmd: string): Promise<string> {
  const r = await exec(cmd);
  assert.equal(r.code, 0, `${cmd}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

describe("real host: backup failures reach a person, faults lose nothing", () => {
  let d: Deployment;
  let exec: HostExec;
  let server: Awaited<ReturnType<typeof recordingServer>>;
  const token = randomUUID();
  const pings = () => server.requests.filter((r) => r.url.startsWith(`/ping/${token}`));

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    d = await newDeployment("sandbox-recovery", {
      // The heartbeat server listens on this machine's address on the droplet's own network.
      config: async (droplet) => {
        server = await recordingServer(await networkGateway(droplet));
        return { backupHeartbeatUrl: `http://${await networkGateway(droplet)}:${server.port}/ping/${token}` };
      },
    });
    exec = (cmd) => d.droplet.exec(cmd);
    await apply(d.steps, d.state, { log });
    await waitHealthy(d.droplet.httpPort);
  });
  after(async () => {
    await d?.droplet.stop();
    await server?.close();
  });

  it("the heartbeat URL is on the host only in the root-only secrets file", async () => {
    assert.equal(
      (
        await must(exec, `stat -c '%a %U' ${path.dirname(BACKUP_SECRETS_PATH)} ${BACKUP_SECRETS_PATH}`)
      ).trim(),
      "700 root\n600 root",
    );
    const visible = await exec(`grep -rl ${token} /etc/cron.d /opt/chitram /var/log || true`);
    assert.equal(visible.stdout.trim(), "", "the token is in a readable file");
  });

  it("a good backup pings the URL with its log, and the log ends with its exit status", async () => {
    assert.equal(
      (await request(d.droplet.httpPort, "PUT", "/api/objects/first", "first object")).status,
      201,
    );
    server.requests.length = 0;
    const r = await backupUnderCronEnv(exec);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(
      pings().map((p) => p.url),
      [`/ping/${token}`],
    );
    assert.match(pings()[0].body, /backup finished \(exit 0\)/);
    assert.match(await must(exec, `tail -n 3 ${BACKUP_LOG}`), /backup finished \(exit 0\)/);
  });

  it("a failing backup (PostgreSQL stopped) pings <url>/fail with the reason and logs its exit status", async () => {
    server.requests.length = 0;
    const r = await failsWithPostgresStopped(exec);
    assert.notEqual(r.code, 0);
    assert.equal(r.previousDumpUnchanged, true);
    assert.deepEqual(
      pings().map((p) => p.url),
      [`/ping/${token}/fail`],
    );
    assert.match(pings()[0].body, /postgres container is not running/);
    assert.match(await exec(`cat ${BACKUP_LOG}`).then((x) => x.stdout), /backup FAILED \(exit 1\)/);
  });

  it("a disk without room for a backup: refused before anything is written, earlier backups intact, the failure reported; the next run succeeds once space is back", async () => {
    const big = randomBytes(3 * 1024 * 1024).toString("base64");
    assert.equal((await request(d.droplet.httpPort, "PUT", "/api/objects/big", big, 30_000)).status, 201);
    // BACKUP_DIR becomes a small tmpfs holding the same files, with 1 MiB to spare: less than the
    // backup needs and far less than the BACKUP_MIN_FREE_MB the live data keeps.
    await must(
      exec,
      `set -e; rm -rf /root/backups-saved; cp -a ${BACKUP_DIR} /root/backups-saved; ` +
        `kb=$(du -sk ${BACKUP_DIR} | cut -f1); ` +
        `mount -t tmpfs -o size=$((kb + 1024))k,mode=0700 chitram-full ${BACKUP_DIR}; ` +
        `cp -a /root/backups-saved/. ${BACKUP_DIR}/`,
    );
    try {
      const before = await fingerprint(exec);
      server.requests.length = 0;
      const full = await backupUnderCronEnv(exec);
      assert.notEqual(full.code, 0, "the backup must fail on a full disk");
      assert.match(
        full.stdout + full.stderr,
        /not enough free space in \S+: the backup needs about \d+ MB and 1024 MB must stay free for the live data, but 1 MB are free\. Nothing was written/,
      );
      assert.match(full.stdout + full.stderr, /backup FAILED \(exit 1\)/);
      assert.equal(await fingerprint(exec), before, "earlier backups changed or a file was left behind");
      assert.deepEqual(
        pings().map((p) => p.url),
        [`/ping/${token}/fail`],
      );
      // The earlier backups still read back.
      await must(exec, `cd ${BACKUP_DIR} && for f in minio-*.tar.gz; do tar -tzf "$f" >/dev/null; done`);

      await must(exec, `mount -o remount,size=4g ${BACKUP_DIR}`);
      const next = await backupUnderCronEnv(exec);
      assert.equal(next.code, 0, next.stdout + next.stderr);
      assert.ok(next.dump, "the next run publishes a dump");
      await must(
        exec,
        `tar -tzf ${next.dump.replace(/postgres-(\w+)\.dump$/, "minio-$1.tar.gz")} | grep -q big`,
      );
    } finally {
      await exec(
        `cp -a ${BACKUP_DIR}/. /root/backups-saved/ && umount ${BACKUP_DIR} && ` +
          `cp -a /root/backups-saved/. ${BACKUP_DIR}/ && rm -rf /root/backups-saved`,
      );
    }
  });

  it("retention deletes exactly the sets older than backupRetentionDays (7) by their stamps, to the minute, that are not among the newest good ones", async () => {
    // Sets without a manifest never count as good: age alone decides for these.
    const aged: [string, boolean][] = [
      ["30 days ago", true],
      ["7 days ago 30 minutes ago", true],
      ["6 days ago 23 hours ago 30 minutes ago", false],
      ["1 day ago", false],
    ];
    const stamps: string[] = [];
    for (const [age] of aged) {
      const stamp = (await must(exec, `date -u -d '${age}' +%Y%m%dT%H%M%SZ`)).trim();
      stamps.push(stamp);
      for (const f of [`postgres-${stamp}.dump`, `minio-${stamp}.tar.gz`]) {
        await must(exec, `printf old > ${BACKUP_DIR}/${f}`);
      }
    }
    const before = (await must(exec, `ls ${BACKUP_DIR}`)).split("\n").filter(Boolean);
    const r = await backupUnderCronEnv(exec);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const after = (await must(exec, `ls ${BACKUP_DIR}`)).split("\n").filter(Boolean);
    const deleted = before.filter((f) => !after.includes(f)).sort();
    const expected = aged
      .flatMap(([, old], i) => (old ? [`minio-${stamps[i]}.tar.gz`, `postgres-${stamps[i]}.dump`] : []))
      .sort();
    assert.deepEqual(deleted, expected);
    for (const f of expected) assert.match(r.stdout, new RegExp(`retention: deleted .*${f}`));
    for (const stamp of stamps) await must(exec, `rm -f ${BACKUP_DIR}/*-${stamp}.*`);
  });

  it("restore.sh --minio brings back byte-identical objects (and the rows that point at them)", async () => {
    const objects = { a: randomBytes(200_000).toString("base64"), b: "small object b\n" };
    for (const [k, v] of Object.entries(objects)) {
      assert.equal((await request(d.droplet.httpPort, "PUT", `/api/objects/${k}`, v, 30_000)).status, 201);
    }
    const r = await backupUnderCronEnv(exec);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // Overwrite one, add another: the restore must undo both.
    assert.equal((await request(d.droplet.httpPort, "PUT", "/api/objects/a", "changed")).status, 201);
    assert.equal((await request(d.droplet.httpPort, "PUT", "/api/objects/c", "new")).status, 201);

    await must(exec, "/opt/chitram/scripts/restore.sh latest --minio latest");
    await waitHealthy(d.droplet.httpPort);
    for (const [k, v] of Object.entries(objects)) {
      const got = await get(d.droplet.httpPort, `/api/objects/${k}`, 30_000);
      assert.equal(got.status, 200, `${k}: ${got.body.slice(0, 200)}`);
      assert.ok(got.body === v, `object ${k} differs after the restore`);
    }
    assert.equal((await get(d.droplet.httpPort, "/api/objects/c")).status, 404);
  });

  it("dockerd restarted: all four services healthy again, with their data", async () => {
    const rows = await get(d.droplet.httpPort, "/api/objects");
    await must(
      exec,
      "kill $(cat /var/run/docker.pid) && for i in $(seq 60); do [ -e /var/run/docker.pid ] || break; sleep 1; done; " +
        "! [ -e /var/run/docker.pid ]",
    );
    assert.notEqual((await get(d.droplet.httpPort, "/health").catch(() => ({ status: 0 }))).status, 200);
    // As the droplet's init does it (no systemd in the sandbox).
    await must(exec, "setsid dockerd --storage-driver=vfs >>/var/log/dockerd.log 2>&1 < /dev/null &");
    await waitHealthy(d.droplet.httpPort, 180_000);
    const states = await serviceStates(d.droplet);
    assert.equal(states.length, 4, states.join("\n"));
    for (const line of states) assert.match(line, /^running( healthy)?\s*$/);
    assert.deepEqual(JSON.parse((await get(d.droplet.httpPort, "/api/objects")).body), JSON.parse(rows.body));
    assert.equal((await get(d.droplet.httpPort, "/api/objects/b")).body, "small object b\n");
  });
});
