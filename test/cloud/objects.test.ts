// `objectStore: spaces` through the real engine and provider on the local DigitalOcean API and its
// Spaces: a running stack's objects moved from MinIO into a private, versioned bucket with a key
// scoped to it (docs/RUNBOOK.md, "Moving the objects to Spaces, and back"), no MinIO on the host,
// backups of PostgreSQL alone, a deleted object and its row recovered as the runbook says
// ("Recover a deleted object"), the way back to MinIO, and an up that stops at a bucket holding
// objects rather than delete them.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { backupUnderCronEnv } from "../../harness/backupDrill";
import { LocalDoApi, startLocalDoApi } from "../../harness/doApi";
import { plannedChanges, PulumiStack } from "../../harness/pulumiCli";
import { get, request } from "../../harness/probes";
import { buildImages, ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { parseEnvFile } from "../../render/envFile";
import { APP_DIR, SANDBOX_APP_IMAGE } from "../../hostContract";
import { destroyLeavesNothing, oneDroplet } from "./support";

describe("cloud: the app's objects in a Spaces bucket, on the local DigitalOcean API", () => {
  let api: LocalDoApi;
  let stack: PulumiStack;
  let bucket = "";
  const { only, onHost } = oneDroplet(() => api);
  const mc = async (...args: string[]) => {
    const r = await api.spaces!.mc(args);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    await buildImages();
    api = await startLocalDoApi({ spaces: true });
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

  const read = async (key: string) => get(80, `/api/objects/${key}`, 10_000, only().address);

  it("a running stack moved to objectStore: spaces: a private, versioned bucket and a key for it alone; MinIO's objects copied in; no MinIO on the host", async () => {
    await stack.up([], { timeoutMs: 20 * 60_000 });
    for (const [key, body] of [
      ["photo", "the first photo"],
      ["album/cover", "a cover"],
    ]) {
      const r = await request(80, "PUT", `/api/objects/${key}`, body, 10_000, only().address);
      assert.equal(r.status, 201, r.body);
    }
    await stack.configure({ objectStore: "spaces" });
    const plan = plannedChanges(await stack.previewJson());
    // the component and the bucket, both named "objects"
    assert.deepEqual(plan.objects, ["create", "create"], JSON.stringify(plan));
    assert.deepEqual(plan["objects-key"], ["create"], JSON.stringify(plan));
    for (const name of ["chitram-droplet", "chitram-firewall", "chitram-ssh-key"])
      assert.equal(plan[name], undefined, `${name}: ${JSON.stringify(plan)}`);
    await stack.up([], { timeoutMs: 20 * 60_000 });
    assert.deepEqual(
      api.requests.filter((r) => r.status >= 400).map((r) => `${r.method} ${r.path} ${r.status}`),
      [],
      "a call the local API refused",
    );
    const buckets = (await mc("ls", "s3")).trim().split("\n");
    assert.equal(buckets.length, 1, buckets.join("\n"));
    bucket = buckets[0].trim().split(/\s+/).pop()!.replace(/\/$/, "");
    assert.equal((await onHost(`${APP_DIR}/scripts/bucket.sh name`)).trim(), bucket);
    assert.match(await mc("version", "info", `s3/${bucket}`), /versioning is enabled/i);
    const [key] = api.spacesKeys();
    assert.equal(api.spacesKeys().length, 1);
    assert.deepEqual(key.grants, [{ bucket, permission: "readwrite" }]);
    // ONE source: the app's S3 settings are that key's.
    const env = parseEnvFile(await onHost(`cat ${APP_DIR}/.env.production`));
    assert.equal(env.MINIO_ACCESS_KEY, key.access_key);
    assert.equal(env.MINIO_BUCKET, bucket);
    assert.equal(
      (await onHost("docker ps -a -q --filter label=com.docker.compose.service=minio")).trim(),
      "",
      "a MinIO container on the host",
    );
    // Private: nobody without a key may list it.
    const store = new URL(api.spaces!.endpoint);
    assert.equal((await get(Number(store.port), `/${bucket}/`, 10_000, store.hostname)).status, 403);

    // The rows are there, the objects not yet; docs/RUNBOOK.md's copy brings them.
    assert.notEqual((await read("photo")).status, 200);
    assert.match(await onHost(`${APP_DIR}/scripts/bucket.sh from-minio`), /now holds 2 object\(s\)/);
    assert.equal((await read("photo")).body, "the first photo");
    assert.equal((await read("album/cover")).body, "a cover");
    assert.match(await mc("ls", "--recursive", `s3/${bucket}/`), /objects\/album\/cover/);
    await stack.up(["--expect-no-changes"]);
    // No secret of the key in the state in plain text.
    const state = await stack.exportState();
    assert.ok(!state.includes(String(key.secret_key)), "the Spaces secret key is in the state in plain text");
  });

  it("a backup is of PostgreSQL alone; restore.sh refuses --minio; a deleted object and its row come back as the runbook says", async () => {
    const backup = await backupUnderCronEnv((cmd) => only().sandbox.exec(cmd));
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);
    const set = await onHost("ls /var/lib/chitram/backups");
    assert.match(set, /postgres-\w+\.dump/);
    assert.match(set, /manifest-\w+\.data\.txt/);
    assert.doesNotMatch(set, /minio-/);
    const refused = await only().sandbox.exec(`${APP_DIR}/scripts/restore.sh latest --minio latest`);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /objects are in a Spaces bucket/);

    const gone = await request(80, "DELETE", "/api/objects/photo", "", 10_000, only().address);
    assert.equal(gone.status, 204, gone.body);
    assert.equal((await get(80, "/api/objects/photo", 10_000, only().address)).status, 404);

    // docs/RUNBOOK.md, "Recover a deleted object": the object's last delete undone in the bucket,
    // its row from the newest backup.
    const name = (await onHost(`${APP_DIR}/scripts/bucket.sh name`)).trim();
    const versions = await onHost(`${APP_DIR}/scripts/bucket.sh ls --versions app/${name}/objects/photo`);
    assert.match(versions, /DEL/, versions);
    assert.match(
      await onHost(`${APP_DIR}/scripts/bucket.sh undelete objects/photo`),
      /objects\/photo is back/,
    );
    await onHost(`cd ${APP_DIR} && docker compose stop app`);
    // The set taken while the object existed, by its name (docs/RUNBOOK.md: `latest` may be a set
    // taken after the delete).
    await onHost(`${APP_DIR}/scripts/restore.sh ${backup.dump!.split("/").pop()!}`);
    await onHost(`cd ${APP_DIR} && docker compose start app && ${APP_DIR}/scripts/healthcheck.sh`);
    const back = await get(80, "/api/objects/photo", 10_000, only().address);
    assert.equal(back.status, 200, back.body);
    assert.equal(back.body, "the first photo");
  });

  it("and back to MinIO: the bucket's objects copied into MinIO's data, the app on MinIO; the up stops at the bucket while it holds objects; emptied, destroy leaves nothing", async () => {
    const put = await request(80, "PUT", "/api/objects/later", "written in Spaces", 10_000, only().address);
    assert.equal(put.status, 201, put.body);
    assert.match(await onHost(`${APP_DIR}/scripts/bucket.sh to-minio`), /now holds 3 object\(s\)/);
    await stack.configure({ objectStore: "minio" });
    const failed = await stack.pulumi(["up", "--yes", "--skip-preview"], {
      timeoutMs: 20 * 60_000,
      check: false,
    });
    assert.notEqual(failed.code, 0, "the up deleted a bucket that holds objects");
    assert.match(failed.stdout + failed.stderr, /BucketNotEmpty/);
    assert.match(await mc("ls", "--recursive", `s3/${bucket}/`), /objects\/later/);
    // The app went back to MinIO before the delete was tried, with every object.
    assert.notEqual(
      (await onHost("docker ps -q --filter label=com.docker.compose.service=minio")).trim(),
      "",
      "no MinIO container on the host",
    );
    for (const [key, body] of [
      ["photo", "the first photo"],
      ["album/cover", "a cover"],
      ["later", "written in Spaces"],
    ])
      assert.equal((await read(key)).body, body, key);
    // The user's decision, by hand: every version of every object removed, then the up again.
    await mc("rm", "--recursive", "--force", "--versions", `s3/${bucket}`);
    await stack.up([], { timeoutMs: 20 * 60_000 });
    assert.equal((await mc("ls", "s3")).trim(), "");
    await destroyLeavesNothing(stack, api);
  });
});
