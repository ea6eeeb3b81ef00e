// Off-box backups and the disaster-recovery drill, on throw-away droplets deployed by the stack's
// steps. The off-box store is a second S3 endpoint (the MinIO stand-in) that the test starts on a
// network of its own, which every droplet of the test joins: the same endpoint for the lost host
// and its replacement, as a Spaces bucket would be.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { utils } from "ssh2";
import { backupUnderCronEnv, HostExec } from "./backupDrill";
import { apply } from "./engine";
import { Deployment, get, newDeployment, request, waitHealthy } from "./hostKit";
import {
  buildImages,
  Droplet,
  ensureDockerd,
  removeAllSandboxes,
  run,
  SANDBOX_LABEL,
  SERVICE_IMAGES,
  startDroplet,
} from "./sandbox";
import { runStack } from "../support";

const log = (line: string) => console.log(`  ${line}`);
const BUCKET = "chitram-offsite";
const S3_USER = "offsite-user";
const S3_SECRET = `offsite+${randomBytes(12).toString("hex")}/secret=`; // characters mc must percent-encode
const MINIO_IMAGE = SERVICE_IMAGES.find((i) => i.startsWith("minio/"))!;

/** Second S3 endpoint: a container on a network of its own. */
async function startS3(name: string): Promise<{ network: string; ip: string; stop(): Promise<void> }> {
  const network = `${name}-net`;
  const labels = ["--label", `${SANDBOX_LABEL}=1`, "--label", `chitram.sandbox.pid=${process.pid}`];
  await run("docker", ["network", "create", ...labels, network]);
  await run("docker", [
    "run",
    "-d",
    "--name",
    name,
    ...labels,
    "--network",
    network,
    "-e",
    `MINIO_ROOT_USER=${S3_USER}`,
    "-e",
    `MINIO_ROOT_PASSWORD=${S3_SECRET}`,
    MINIO_IMAGE,
    "server",
    "/data",
  ]);
  const ip = (
    await run("docker", [
      "inspect",
      "-f",
      `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`,
      name,
    ])
  ).stdout.trim();
  return {
    network,
    ip,
    stop: async () => {
      await run("docker", ["rm", "-f", name], { check: false });
      await run("docker", ["network", "rm", network], { check: false });
    },
  };
}

/** Runs mc inside the S3 container against itself. */
function s3mc(container: string, args: string[], input?: string) {
  const host = `MC_HOST_s3=http://${S3_USER}:${encodeURIComponent(S3_SECRET)}@localhost:9000`;
  return run("docker", ["exec", "-i", "-e", host, container, "mc", ...args], { input });
}

/** `postgres-<stamp>.dump` style stamp for a time. */
function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}

async function must(exec: HostExec, cmd: string): Promise<string> {
  const r = await exec(cmd);
  assert.equal(r.code, 0, `${cmd}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

describe("real host: off-box backups, and a host lost and rebuilt from them", () => {
  const s3Name = `chitram-sbx-s3-${randomBytes(3).toString("hex")}`;
  let s3: Awaited<ReturnType<typeof startS3>>;
  let d: Deployment;
  let exec: HostExec;
  let replacement: Droplet | undefined;
  const joinS3 = (droplet: Droplet) => run("docker", ["network", "connect", s3.network, droplet.name]);

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    await buildImages(); // the S3 endpoint runs the MinIO stand-in image
    s3 = await startS3(s3Name);
    d = await newDeployment("sandbox-offsite", {
      config: async (droplet) => {
        await joinS3(droplet);
        return {
          offsiteBackups: "true",
          offsiteEndpoint: `http://${s3.ip}:9000`,
          offsiteBucket: BUCKET,
          offsiteAccessKey: S3_USER,
          offsiteSecretKey: S3_SECRET,
        };
      },
    });
    exec = (cmd) => d.droplet.exec(cmd);
    await s3mc(s3Name, ["mb", `s3/${BUCKET}`]);
    await apply(d.steps, d.state, { log });
    await waitHealthy(d.droplet.httpPort);
  });
  after(async () => {
    await d?.droplet.stop();
    await replacement?.stop();
    await s3?.stop();
  });

  it("the off-box keys are on the host only in the root-only secrets file", async () => {
    const visible = await exec(
      `grep -rlF ${JSON.stringify(S3_SECRET)} /etc/cron.d /opt/chitram /var/log || true`,
    );
    assert.equal(visible.stdout.trim(), "");
    assert.match(await must(exec, "cat /etc/chitram/backup.env"), /^OFFSITE_BUCKET='chitram-offsite'$/m);
  });

  it("each backup is copied off the box, read back, and the bucket pruned by the same retention", async () => {
    const day = 86_400_000;
    const old = `postgres-${stamp(new Date(Date.now() - 8 * day))}.dump`;
    const recent = `minio-${stamp(new Date(Date.now() - 2 * day))}.tar.gz`;
    for (const name of [old, recent]) {
      await s3mc(s3Name, ["cp", "/etc/hostname", `s3/${BUCKET}/${name}`]);
    }
    assert.equal((await request(d.droplet.httpPort, "PUT", "/api/objects/first", "first")).status, 201);
    const r = await backupUnderCronEnv(exec);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(r.dump);
    const tarball = r.dump.replace(/postgres-(\w+)\.dump$/, "minio-$1.tar.gz");
    assert.match(r.stdout, /off-box: .*postgres-\w+\.dump uploaded and read back/);
    assert.match(r.stdout, new RegExp(`off-box retention: deleted ${old.replace(/\./g, "\\.")}`));

    const listing = (await s3mc(s3Name, ["ls", `s3/${BUCKET}/`])).stdout;
    assert.ok(!listing.includes(old), "the copy older than 7 days is gone");
    assert.ok(listing.includes(recent), "a 2-day-old copy stays");
    for (const f of [r.dump, tarball]) {
      const name = f.slice(f.lastIndexOf("/") + 1);
      const local = (await must(exec, `sha256sum < ${f}`)).split(" ")[0];
      const remote = (
        await run("docker", ["exec", s3Name, "sh", "-c", `sha256sum < /data/${BUCKET}/${name}`])
      ).stdout;
      assert.equal(remote.split(" ")[0], local, `${name} off the box differs`);
    }
  });

  it("an unreachable off-box store fails the run (the local backup is kept and says so)", async () => {
    await run("docker", ["network", "disconnect", s3.network, d.droplet.name]);
    try {
      const r = await backupUnderCronEnv(exec);
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, /off-box upload of postgres-\w+\.dump .* failed/);
      assert.match(r.stdout + r.stderr, /backup FAILED/);
    } finally {
      await joinS3(d.droplet);
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
    const rows = JSON.parse((await get(d.droplet.httpPort, "/api/objects")).body) as unknown[];
    assert.equal(rows.length, 4);
    const backup = await backupUnderCronEnv(exec);
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);

    const t0 = Date.now();
    await d.droplet.stop(); // the host is lost, its disk and local backups with it
    const rootKey = utils.generateKeyPairSync("ed25519", { comment: "sandbox-root" });
    replacement = await startDroplet({ rootPublicKey: rootKey.public });
    await joinS3(replacement);
    const t1 = Date.now();
    const again = await runStack(
      d.stack,
      { ...d.config, sshPort: String(replacement.sshPort), sshPrivateKey: rootKey.private },
      "real",
    );
    await apply(again.steps, new Map(), { log });
    await waitHealthy(replacement.httpPort);
    const t2 = Date.now();
    const fresh = JSON.parse((await get(replacement.httpPort, "/api/objects")).body) as unknown[];
    assert.equal(fresh.length, 0, "a fresh host");

    const restore = await replacement.exec("/opt/chitram/scripts/restore.sh --offsite latest --minio latest");
    assert.equal(restore.code, 0, restore.stdout + restore.stderr);
    await waitHealthy(replacement.httpPort);
    const t3 = Date.now();

    assert.deepEqual(JSON.parse((await get(replacement.httpPort, "/api/objects")).body), rows);
    for (const [k, v] of Object.entries(objects)) {
      const got = await get(replacement.httpPort, `/api/objects/${k}`, 30_000);
      assert.equal(got.status, 200, `${k}: ${got.body.slice(0, 200)}`);
      assert.ok(got.body === v, `object ${k} differs after the recovery`);
    }
    log(
      `disaster recovery: new droplet ${((t1 - t0) / 1000).toFixed(1)} s, deploy ${((t2 - t1) / 1000).toFixed(1)} s, ` +
        `restore from off-box ${((t3 - t2) / 1000).toFixed(1)} s; ${((t3 - t0) / 1000).toFixed(1)} s in all`,
    );
  });
});
