// The off-box store of the sandbox and the disaster-recovery drill, shared by the host tests and
// the benchmark. The store is a second S3 endpoint (the MinIO stand-in image) on a network of its
// own, which every droplet that uses it joins: the same endpoint for a lost host and its
// replacement, as a Spaces bucket would be.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { ed25519KeyPair } from "./keys";
import { runStack } from "./steps";
import { apply } from "./engine";
import { Deployment, newDeployment } from "./deployment";
import { get, waitHealthy } from "./probes";
import { backupUnderCronEnv } from "./backupDrill";
import {
  buildImages,
  containerIp,
  Droplet,
  ExecResult,
  run,
  sandboxLabelArgs,
  startDroplet,
} from "./sandbox";

export const OFFSITE_BUCKET = "chitram-offsite";
// The store's root, which only the test uses; the key the host gets, put-only (it may put, read
// and list, but delete nothing: in MinIO s3:DeleteObject also deletes versions), so the off-box
// history is not in the host's power; and the pruner's key, which may delete and never stays on
// the host (host/scripts/prune-offsite.sh reads it from stdin).
const S3_ROOT = "offsite-root";
const S3_HOST_USER = "offsite-host";
const S3_PRUNE_USER = "offsite-prune";
const policy = (objectActions: string[]) => ({
  Version: "2012-10-17",
  Statement: [
    {
      Effect: "Allow",
      Action: ["s3:ListBucket", "s3:GetBucketLocation"],
      Resource: [`arn:aws:s3:::${OFFSITE_BUCKET}`],
    },
    { Effect: "Allow", Action: objectActions, Resource: [`arn:aws:s3:::${OFFSITE_BUCKET}/*`] },
  ],
});
const POLICIES = {
  "chitram-host": policy(["s3:PutObject", "s3:GetObject"]),
  "chitram-prune": policy(["s3:GetObject", "s3:DeleteObject"]),
};

export interface OffsiteStore {
  /** Container name. */
  name: string;
  /** The stack config that points backups at this store (target existing keys). */
  config: Record<string, string>;
  /** The host's secret key (with + / =, as in a base64 Spaces secret). */
  secretKey: string;
  /** The pruner's key as prune-offsite.sh reads it on stdin. */
  pruneEnv: string;
  /** Puts the droplet on the store's network. */
  join(droplet: Droplet): Promise<void>;
  /** Takes the droplet off the store's network (the store becomes unreachable from it). */
  leave(droplet: Droplet): Promise<void>;
  /** Runs `mc` in the store's container against itself (alias `s3`). */
  mc(args: string[]): Promise<ExecResult>;
  /** sha256 of an object, read back through S3. */
  sha256(key: string): Promise<string>;
  stop(): Promise<void>;
}

/** Starts the store with an empty bucket OFFSITE_BUCKET, from the MinIO stand-in's private name. */
export async function startOffsiteStore(name: string): Promise<OffsiteStore> {
  const minio = (await buildImages()).find((i) => i.tag.startsWith("minio/"));
  if (!minio) throw new Error("sandbox/build.sh built no MinIO stand-in");
  const network = `${name}-net`;
  const rootSecret = randomBytes(24).toString("hex");
  const secretKey = `offsite+${randomBytes(12).toString("hex")}/secret=`;
  const pruneSecret = `prune+${randomBytes(12).toString("hex")}/secret=`;
  const labels = sandboxLabelArgs();
  await run("docker", ["network", "create", ...labels, network]);
  await run("docker", [
    ...["run", "-d", "--name", name, ...labels, "--network", network],
    ...["-e", `MINIO_ROOT_USER=${S3_ROOT}`, "-e", `MINIO_ROOT_PASSWORD=${rootSecret}`],
    ...[minio.source, "server", "/data"],
  ]);
  const ip = await containerIp(name, network);
  // mc takes the keys in MC_HOST_* as they are: it does not percent-decode them.
  const mcHost = `MC_HOST_s3=http://${S3_ROOT}:${rootSecret}@localhost:9000`;
  const store: OffsiteStore = {
    name,
    secretKey,
    pruneEnv: `OFFSITE_ACCESS_KEY='${S3_PRUNE_USER}'\nOFFSITE_SECRET_KEY='${pruneSecret}'\n`,
    config: {
      offsiteBackups: "true",
      offsiteEndpoint: `http://${ip}:9000`,
      offsiteBucket: OFFSITE_BUCKET,
      offsiteAccessKey: S3_HOST_USER,
      offsiteSecretKey: secretKey,
    },
    join: (droplet) => droplet.connect(network),
    leave: (droplet) => droplet.disconnect(network),
    mc: (args) => run("docker", ["exec", "-e", mcHost, name, "mc", ...args]),
    sha256: async (key) =>
      // Read through S3: the real MinIO keeps an object as a directory of metadata and parts.
      (
        await run("docker", [
          ...["exec", "-e", mcHost, name, "sh", "-c"],
          `mc cat s3/${OFFSITE_BUCKET}/${key} | sha256sum`,
        ])
      ).stdout.split(" ")[0],
    stop: async () => {
      await run("docker", ["rm", "-fv", name], { check: false });
      await run("docker", ["network", "rm", network], { check: false });
    },
  };
  for (let i = 0; ; i++) {
    const r = await store.mc(["mb", "--with-versioning", `s3/${OFFSITE_BUCKET}`]).catch((e: Error) => e);
    if (!(r instanceof Error)) break;
    if (i === 20) throw new Error(`cannot create the bucket: ${r.message}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  for (const [user, secret, policyName] of [
    [S3_HOST_USER, secretKey, "chitram-host"],
    [S3_PRUNE_USER, pruneSecret, "chitram-prune"],
  ] as const) {
    await run("docker", ["exec", "-i", name, "sh", "-c", `cat > /tmp/${policyName}.json`], {
      input: JSON.stringify(POLICIES[policyName]),
    });
    await store.mc(["admin", "policy", "create", "s3", policyName, `/tmp/${policyName}.json`]);
    await run(
      "docker",
      ["exec", "-i", "-e", mcHost, name, "sh", "-c", 'mc admin user add s3 "$0" "$(cat)"', user],
      {
        input: secret,
      },
    );
    await store.mc(["admin", "policy", "attach", "s3", policyName, "--user", user]);
  }
  return store;
}

/** The rows the app lists (GET /api/objects), each with its key, sha256 and size. */
export async function listRows(port: number): Promise<unknown[]> {
  const r = await get(port, "/api/objects");
  assert.equal(r.status, 200, r.body);
  return (JSON.parse(r.body) as { objects: unknown[] }).objects;
}

export interface RecoveryTimings {
  /** A new droplet started, the service images loaded into its engine. */
  newHostMs: number;
  /** Every step of the stack on the new host, until /health is 200. */
  deployMs: number;
  /** `restore.sh --offsite latest --minio latest`, until /health is 200 again. */
  restoreMs: number;
}

/**
 * The host of `d` is lost: its droplet is removed with its disk and local backups. A new droplet
 * joins the store, the stack (same stack, same config, new root key) is applied to it, its backup
 * cron runs once (`scheduled`: an empty host's backup, off the box too), and restore.sh restores
 * the newest off-box set that holds data. Returns the new droplet (the caller stops it)
 * and the time of each phase.
 */
export async function rebuildFromOffsite(
  d: Deployment,
  store: OffsiteStore,
  opts: { log?: (line: string) => void; beforeRestore?: (droplet: Droplet) => Promise<void> } = {},
): Promise<{ droplet: Droplet; scheduled: ExecResult; restore: ExecResult; timings: RecoveryTimings }> {
  let t = Date.now();
  await d.droplet.stop();
  const rootKey = ed25519KeyPair("sandbox-root");
  await buildImages(); // as newDeployment does: the images the droplet loads must be this recipe's
  const droplet = await startDroplet({ rootPublicKey: rootKey.public });
  await store.join(droplet);
  const newHostMs = Date.now() - t;
  t = Date.now();
  const again = await runStack(
    d.stack,
    { ...d.config, sshPort: String(droplet.sshPort), sshPrivateKey: rootKey.private },
    "real",
  );
  await apply(again.steps, new Map(), { log: opts.log });
  await waitHealthy(droplet.httpPort);
  const deployMs = Date.now() - t;
  await opts.beforeRestore?.(droplet);
  // The new host's backup cron runs before anyone restores (a rebuild at 02:50, the cron at
  // 03:00): its backup of an empty host must never become what `latest` restores.
  const scheduled = await backupUnderCronEnv((cmd) => droplet.exec(cmd));
  t = Date.now();
  const restore = await droplet.exec("/opt/chitram/scripts/restore.sh --offsite latest --minio latest");
  if (restore.code === 0) await waitHealthy(droplet.httpPort);
  return { droplet, scheduled, restore, timings: { newHostMs, deployMs, restoreMs: Date.now() - t } };
}

/**
 * A store, and a deployment whose backups go to it, applied and healthy: where the off-box tests
 * start. The store is stopped again when the deployment cannot be made.
 */
export async function deployWithOffsiteStore(
  stack: string,
  log: (line: string) => void,
): Promise<{ store: OffsiteStore; d: Deployment }> {
  await buildImages(); // the store runs the MinIO stand-in image
  const store = await startOffsiteStore(`chitram-sbx-s3-${randomBytes(3).toString("hex")}`);
  try {
    const d = await newDeployment(stack, {
      config: async (droplet) => {
        await store.join(droplet);
        return store.config;
      },
    });
    await apply(d.steps, d.state, { log });
    await waitHealthy(d.droplet.httpPort);
    return { store, d };
  } catch (e) {
    await store.stop();
    throw e;
  }
}
