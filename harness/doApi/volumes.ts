// The local DigitalOcean API's volumes: a volume is a sparse file on this machine, formatted as
// asked (as DigitalOcean does); attached, it is a loop device on this machine with a node in the
// droplet at /dev/disk/by-id/scsi-0DO_Volume_<name>, as on a droplet, so its data moves with the
// attachment. Attach, detach and resize are actions the provider polls.
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Droplet, processAlive, run } from "../sandbox";
import { ApiContext, ApiError, DropletRecord, get, Json, notFound, Route, text } from "./common";

export interface VolumeRecord {
  json: Json;
  /** The sparse file that holds the volume's blocks. */
  file: string;
  /** The loop device (/dev/loopN) while attached, and the droplet it is attached to. */
  loop?: string;
  loopOwner?: number;
  /** The volume's work in order: an attach never overtakes the release of an earlier one. */
  queue: Promise<void>;
}

/** Where a volume's node is in a droplet, as DigitalOcean's udev rule names it. */
export const volumeDevicePath = (name: string) => `/dev/disk/by-id/scsi-0DO_Volume_${name}`;

/** The start of the names of the API's volume directories in the temporary directory. */
const VOLUME_DIR_PREFIX = "chitram-do-volumes-";

/**
 * Detaches the loop devices and removes the files of the volumes an API left behind when its
 * process was killed (close() never ran).
 */
export async function removeStaleVolumes(): Promise<void> {
  const tmp = os.tmpdir();
  const stale = fs
    .readdirSync(tmp)
    .filter((n) => n.startsWith(VOLUME_DIR_PREFIX))
    .filter((n) => !processAlive(Number(n.slice(VOLUME_DIR_PREFIX.length).split("-")[0])))
    .map((n) => path.join(tmp, n));
  if (!stale.length) return;
  const loops = (await run("losetup", ["-l", "-n", "-O", "NAME,BACK-FILE"], { check: false })).stdout;
  for (const line of loops.split("\n")) {
    const [device, file = ""] = line.trim().split(/\s+/);
    if (device && stale.some((dir) => file.startsWith(`${dir}/`)))
      await run("losetup", ["-d", device], { check: false });
  }
  for (const dir of stale) fs.rmSync(dir, { recursive: true, force: true });
}

export interface VolumeService {
  volumes: Map<string, VolumeRecord>;
  routes: Route[];
  /**
   * Volumes detached (or whose droplet was deleted) while still mounted in the droplet: on
   * DigitalOcean, writes in flight are lost and the filesystem needs a repair. "<volume> from <droplet id>".
   */
  unsafeDetaches: string[];
  /** The droplet's volumes, taken from it as its deletion does (in the state; see releaseAfter). */
  takeFrom(droplet: DropletRecord): VolumeRecord[];
  /** Records the volume as detached unsafely if it is still mounted in the droplet. */
  noteIfMounted(v: VolumeRecord, droplet: DropletRecord | undefined): Promise<void>;
  /** Detaches the volumes' loop devices from this machine once `stopped` (the droplet gone) settled. */
  releaseAfter(attached: VolumeRecord[], stopped: Promise<void>): void;
  /** Makes the volume's node in the droplet (again after a power-on: a new /dev, as after a reboot). */
  volumeNodes(v: VolumeRecord, sandbox: Droplet): Promise<void>;
  /** Detaches every loop device and removes the volumes' files. */
  close(): Promise<void>;
}

/** `onDelete(urn)`: a volume was deleted (its project assignment goes with it). */
export function volumeService(
  ctx: ApiContext,
  droplets: Map<number, DropletRecord>,
  onDelete: (urn: string) => void,
): VolumeService {
  const volumes = new Map<string, VolumeRecord>();
  const unsafeDetaches: string[] = [];
  let volumeDir: string | undefined;

  function createVolume(body: Json): Json {
    const name = text(body.name);
    if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(name))
      throw new ApiError(
        422,
        "unprocessable_entity",
        "name must be 1-64 lowercase letters, numbers and dashes, starting with a letter or number",
      );
    const size = body.size_gigabytes;
    if (typeof size !== "number" || !Number.isInteger(size) || size < 1 || size > 16384)
      throw new ApiError(
        422,
        "unprocessable_entity",
        "size_gigabytes must be a whole number from 1 to 16384",
      );
    const region = text(body.region);
    if (!region) throw new ApiError(422, "unprocessable_entity", "region is required");
    if ([...volumes.values()].some((v) => v.json.name === name && (v.json.region as Json).slug === region))
      throw new ApiError(409, "conflict", `a volume named ${name} already exists in ${region}`);
    const fsType = text(body.filesystem_type);
    if (!["", "ext4"].includes(fsType))
      throw new ApiError(422, "unprocessable_entity", `this API formats ext4 only, not ${fsType}`);
    volumeDir ??= fs.mkdtempSync(path.join(os.tmpdir(), `${VOLUME_DIR_PREFIX}${process.pid}-`));
    const id = randomUUID();
    const file = path.join(volumeDir, `${id}.img`);
    fs.closeSync(fs.openSync(file, "w", 0o600));
    fs.truncateSync(file, size * 2 ** 30); // sparse: takes no space until written
    const label = text(body.filesystem_label);
    if (fsType) execFileSync("mkfs.ext4", ["-q", "-F", ...(label ? ["-L", label] : []), file]);
    const json: Json = {
      id,
      name,
      description: body.description ?? "",
      size_gigabytes: size,
      region: { slug: region, name: region.toUpperCase(), available: true },
      droplet_ids: [],
      filesystem_type: fsType,
      filesystem_label: label,
      tags: Array.isArray(body.tags) ? body.tags : [],
      created_at: ctx.now(),
    };
    volumes.set(id, { json, file, queue: Promise.resolve() });
    return json;
  }

  /** Records, as a finding for the tests, a volume taken from a droplet that still has it mounted. */
  async function noteIfMounted(v: VolumeRecord, droplet: DropletRecord | undefined): Promise<void> {
    if (!v.loop || !droplet?.sandbox) return;
    const r = await droplet.sandbox.exec(`grep -q '^${v.loop} ' /proc/mounts`);
    if (r.code === 0) unsafeDetaches.push(`${String(v.json.name)} from ${String(droplet.json.id)}`);
  }

  /** Detaches the volume's loop device from this machine (deferred by the kernel while mounted). */
  async function releaseLoop(v: VolumeRecord): Promise<void> {
    if (!v.loop) return;
    await run("losetup", ["-d", v.loop], { check: false });
    v.loop = undefined;
    v.loopOwner = undefined;
  }

  /** Runs `work` after the volume's earlier work; its result is the work's own. */
  function serial(v: VolumeRecord, work: () => Promise<void>): Promise<void> {
    const next = v.queue.then(work);
    v.queue = next.catch(() => undefined);
    return next;
  }

  function volumeAction(v: VolumeRecord, body: Json): Json {
    const type = String(body.type);
    const dropletId = Number(body.droplet_id);
    const droplet = droplets.get(dropletId);
    const attachedTo = v.json.droplet_ids as number[];
    if (type === "attach") {
      if (!droplet) throw notFound();
      if (droplet.json.status !== "active" || !droplet.sandbox)
        throw new ApiError(422, "unprocessable_entity", "Droplet already has a pending event.");
      if ((droplet.json.region as Json).slug !== (v.json.region as Json).slug)
        throw new ApiError(422, "unprocessable_entity", "Droplet and volume must be in the same region");
      if (attachedTo.length && attachedTo[0] !== dropletId)
        throw new ApiError(422, "unprocessable_entity", "This volume is already attached to another Droplet");
      v.json.droplet_ids = [dropletId];
      const ids = droplet.json.volume_ids as string[];
      if (!ids.includes(String(v.json.id))) ids.push(String(v.json.id));
      const sandbox = droplet.sandbox;
      return ctx.startAction("attach_volume", "volume", () =>
        serial(v, async () => {
          if (v.loop && v.loopOwner === dropletId) return;
          await releaseLoop(v);
          v.loop = (await run("losetup", ["--find", "--show", v.file])).stdout.trim();
          v.loopOwner = dropletId;
          await volumeNodes(v, sandbox);
        }),
      );
    }
    if (type === "detach") {
      if (!attachedTo.includes(dropletId))
        throw new ApiError(422, "unprocessable_entity", "This volume is not attached to that Droplet");
      v.json.droplet_ids = [];
      if (droplet)
        droplet.json.volume_ids = (droplet.json.volume_ids as string[]).filter((i) => i !== v.json.id);
      return ctx.startAction("detach_volume", "volume", () =>
        serial(v, async () => {
          await noteIfMounted(v, droplet);
          await droplet?.sandbox?.exec(`rm -f ${volumeDevicePath(String(v.json.name))} ${v.loop ?? ""}`);
          await releaseLoop(v);
        }),
      );
    }
    if (type === "resize") {
      const size = body.size_gigabytes;
      if (typeof size !== "number" || !Number.isInteger(size) || size <= Number(v.json.size_gigabytes))
        throw new ApiError(
          422,
          "unprocessable_entity",
          "a volume can only grow: size_gigabytes must be larger",
        );
      return ctx.startAction("resize", "volume", () =>
        serial(v, async () => {
          fs.truncateSync(v.file, size * 2 ** 30);
          if (v.loop) await run("losetup", ["-c", v.loop]);
          v.json.size_gigabytes = size;
        }),
      );
    }
    throw new ApiError(422, "unprocessable_entity", `this API has no volume action ${type}`);
  }

  /** The droplet's volume nodes, made again after a power-on (a new /dev, as after a reboot). */
  async function volumeNodes(v: VolumeRecord, sandbox: Droplet): Promise<void> {
    if (!v.loop) return;
    // major:minor as the kernel numbers this device (the minor is not N with max_part set)
    const [major, minor] = fs
      .readFileSync(`/sys/block/${path.basename(v.loop)}/dev`, "utf8")
      .trim()
      .split(":");
    const link = volumeDevicePath(String(v.json.name));
    const r = await sandbox.exec(
      `[ -e ${v.loop} ] || mknod ${v.loop} b ${major} ${minor}; mkdir -p /dev/disk/by-id && ln -sfn ${v.loop} ${link}`,
    );
    if (r.code !== 0) throw new Error(`the volume's node in ${sandbox.name}: ${r.stderr}`);
  }

  /** power_off, shutdown, power_on and resize: what the provider's size change sends. */

  const routes: Route[] = [
    ["POST", /^\/v2\/volumes$/, (_m, b) => [201, { volume: createVolume(b) }]],
    ["GET", /^\/v2\/volumes\/([\w-]+)$/, ([, id]) => [200, { volume: get(volumes, id).json }]],
    [
      "DELETE",
      /^\/v2\/volumes\/([\w-]+)$/,
      ([, id]) => {
        const v = get(volumes, id);
        if ((v.json.droplet_ids as number[]).length)
          throw new ApiError(409, "conflict", "the volume is attached to a Droplet: detach it first");
        volumes.delete(id);
        onDelete(`do:volume:${id}`);
        fs.rmSync(v.file, { force: true });
        return [204, undefined];
      },
    ],
    [
      "POST",
      /^\/v2\/volumes\/([\w-]+)\/actions$/,
      ([, id], b) => [202, { action: volumeAction(get(volumes, id), b) }],
    ],
  ];

  return {
    volumes,
    routes,
    unsafeDetaches,
    takeFrom: (droplet) => {
      const attached = (droplet.json.volume_ids as string[]).map((v) => volumes.get(v)!);
      for (const v of attached) v.json.droplet_ids = [];
      return attached;
    },
    noteIfMounted,
    releaseAfter: (attached, stopped) => {
      for (const v of attached) {
        void serial(v, async () => {
          await stopped.catch(() => undefined);
          await releaseLoop(v);
        });
        ctx.pending.push(v.queue);
      }
    },
    volumeNodes,
    close: async () => {
      for (const v of volumes.values()) await releaseLoop(v);
      if (volumeDir) fs.rmSync(volumeDir, { recursive: true, force: true });
    },
  };
}
