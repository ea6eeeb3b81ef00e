// Off-box backups and the rebuild of a lost host through the DigitalOcean path: the real engine
// and provider make the Spaces bucket and its scoped key in the local API's Spaces, the host's
// backup lands there, and when the droplet and its volume are deleted behind the stack's back,
// docs/RUNBOOK.md's "Rebuild a lost host" (refresh, drop the release step, up, restore from the
// off-box copies) brings the app back with its data, on a prod-like stack (protectData).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { backupUnderCronEnv } from "../../harness/backupDrill";
import { LocalDoApi, startLocalDoApi } from "../../harness/doApi";
import { plannedChanges, PulumiStack, stateResources } from "../../harness/pulumiCli";
import { get, request, waitHealthy } from "../../harness/probes";
import { buildImages, ensureDockerd, removeAllSandboxes, run } from "../../harness/sandbox";
import { APP_DIR, SANDBOX_APP_IMAGE } from "../../hostContract";

import { oneDroplet } from "./support";

const log = (line: string) => console.log(`  ${line}`);

describe("cloud: off-box backups in Spaces and the rebuild of a lost host, on the local DigitalOcean API", () => {
  let api: LocalDoApi;
  let stack: PulumiStack;
  let bucket = "";
  const { only, onHost } = oneDroplet(() => api);
  const bucketFiles = async () => {
    const r = await api.spaces!.mc(["ls", `s3/${bucket}/`]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split("\n").map((l) => l.trim().split(/\s+/).pop() ?? "");
  };

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    await buildImages();
    api = await startLocalDoApi({ spaces: true });
    // api.env: with the API, the provider's Spaces endpoint, the key it makes buckets with, and
    // the proxy that takes its virtual-hosted bucket requests there (harness/localSpaces.ts).
    stack = await PulumiStack.create("prod", { env: api.env });
    // Pulumi.prod.yaml in IP mode, without alerts: its volume, off-box backups and protection.
    await stack.configure({
      appImage: SANDBOX_APP_IMAGE,
      region: "nyc3",
      dataVolumeSizeGb: "10",
      offsiteBackups: "true",
      protectData: "true",
    });
  });
  after(async () => {
    try {
      stack?.remove();
    } finally {
      await api?.close();
    }
  });

  it("up makes a private, versioned bucket with its lifecycle rule and a key that may use that bucket only; a backup lands there", async () => {
    await stack.up([], { timeoutMs: 20 * 60_000 });
    assert.deepEqual(
      api.requests.filter((r) => r.status >= 400).map((r) => `${r.method} ${r.path} ${r.status}`),
      [],
      "a call the local API refused",
    );
    const buckets = (await api.spaces!.mc(["ls", "s3"])).stdout.trim().split("\n");
    assert.equal(buckets.length, 1, buckets.join("\n"));
    bucket = buckets[0].trim().split(/\s+/).pop()!.replace(/\/$/, "");
    assert.match(
      (await api.spaces!.mc(["version", "info", `s3/${bucket}`])).stdout,
      /versioning is enabled/i,
    );
    assert.match(
      (await api.spaces!.mc(["ilm", "rule", "ls", `s3/${bucket}`])).stdout,
      /chitram-backup-versions/,
    );
    // Private: nobody without a key may list or read it.
    const store = new URL(api.spaces!.endpoint);
    const anonymous = await get(Number(store.port), `/${bucket}/`, 10_000, store.hostname);
    assert.equal(anonymous.status, 403);
    // The host's key: read and write on this bucket, nothing on any other.
    const [key] = api.spacesKeys();
    assert.equal(api.spacesKeys().length, 1);
    assert.deepEqual(key.grants, [{ bucket, permission: "readwrite" }]);
    assert.equal((await api.spaces!.mc(["mb", "s3/another-bucket"])).code, 0);
    const asHostKey = (target: string) =>
      run("docker", ["exec", "-e", "MC_HOST_k", `${api.containerPrefix}spaces`, "mc", "ls", `k/${target}/`], {
        check: false,
        env: {
          ...process.env,
          MC_HOST_k: `http://${String(key.access_key)}:${String(key.secret_key)}@localhost:9000`,
        },
      });
    const own = await asHostKey(bucket);
    assert.equal(own.code, 0, own.stderr);
    assert.match((await asHostKey("another-bucket")).stderr, /Access Denied/i);

    const { address } = only();
    const put = await request(80, "PUT", "/api/objects/kept", "written before the disaster", 10_000, address);
    assert.equal(put.status, 201, put.body);
    const backup = await backupUnderCronEnv((cmd) => only().sandbox.exec(cmd));
    assert.equal(backup.code, 0, backup.stdout + backup.stderr);
    const files = await bucketFiles();
    for (const kind of [/^postgres-\w+\.dump$/, /^minio-\w+\.tar\.gz$/, /^manifest-\w+\.data\.txt$/])
      assert.ok(
        files.some((f) => kind.test(f)),
        `no ${String(kind)} in the bucket: ${files.join(" ")}`,
      );
  });

  it("the droplet and its volume deleted behind the stack's back: the runbook's rebuild and the restore from Spaces bring the data back", async () => {
    const { droplet } = only();
    const [volume] = api.volumes();
    const call = async (method: string, path: string) => {
      const r = await fetch(`${api.url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${api.token}` },
      });
      assert.equal(r.status, 204, `${method} ${path}: ${await r.text()}`);
    };
    await call("DELETE", `/v2/droplets/${String(droplet.id)}`);
    await call("DELETE", `/v2/volumes/${String(volume.id)}`);
    await api.settled();
    const started = Date.now();

    // docs/RUNBOOK.md, "Rebuild a lost host", steps 1-3, as written there.
    await stack.pulumi(["refresh", "--yes"]);
    const urns = (await stack.pulumi(["stack", "--show-urns"])).stdout;
    const release = /urn:pulumi:\S+app-volume-release/.exec(urns);
    assert.ok(release, urns);
    // The destroy guard depends on every resource, this step included: it goes with it (it holds
    // nothing, and the up makes it again), and only it.
    const before = (await stateResources(stack)).map((r) => r.urn);
    await stack.pulumi(["state", "delete", release[0], "--target-dependents", "--force", "--yes"]);
    const left = new Set((await stateResources(stack)).map((r) => r.urn));
    const gone = before.filter((u) => !left.has(u));
    assert.deepEqual(gone.map((u) => u.split("::").pop()).sort(), ["app-volume-release", "destroy-guard"]);
    await stack.up([], { timeoutMs: 20 * 60_000 });
    const { address } = only();
    await waitHealthy(80, 60_000, address);
    // A new, empty volume: the app starts empty.
    assert.equal((await get(80, "/api/objects/kept", 10_000, address)).status, 404);

    // "When the data is gone too": restore the newest set that holds data from the off-box copies.
    await onHost(`cd ${APP_DIR} && docker compose stop app`);
    await onHost(`${APP_DIR}/scripts/restore.sh --offsite latest --minio latest`);
    await onHost(`cd ${APP_DIR} && docker compose start app && ${APP_DIR}/scripts/healthcheck.sh`);
    log(`rebuilt and restored from Spaces: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const kept = await get(80, "/api/objects/kept", 10_000, address);
    assert.equal(kept.status, 200, kept.body);
    assert.equal(kept.body, "written before the disaster");
    // Nothing else to do but the bucket's lifecycle rule, which every up writes again here: MinIO
    // does not keep its AbortIncompleteMultipartUpload (docs/DEPLOYING.md, section 8).
    assert.deepEqual(plannedChanges(await stack.previewJson()), { backups: ["update"] });
  });
});
