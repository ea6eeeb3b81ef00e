/**
 * A local DigitalOcean API: the part of the public v2 API that the DigitalOcean provider calls for
 * a stack of this project without Spaces or a container registry (SSH keys, droplets, firewalls,
 * volumes and their actions, domain records, uptime checks and alerts, projects and their
 * resources, tags, actions), served on 127.0.0.1 for the real provider (DIGITALOCEAN_API_URL). What the provider expects of each call is in
 * ../shared/research/do-api-calls.md; status codes, error bodies and rate-limit headers are the
 * public API's.
 *
 * A droplet is a sandbox droplet (harness/sandbox.ts) on a loopback address of its own, reported
 * as its public IPv4, with 22, 80 and 443 published there: root accepts the droplet's first SSH key
 * (a stack of this project sends one). It is "new" until its container runs, then "active", with
 * sshd answering a few seconds later, as on DigitalOcean; deleting it removes the container.
 *
 * A volume is a sparse file on this machine (formatted when asked for a filesystem, as DigitalOcean
 * does): attaching it makes it a loop device on this machine with a node in the droplet at
 * /dev/disk/by-id/scsi-0DO_Volume_<name>, as on a droplet, so its data moves with the attachment.
 * Actions (attach, detach, resize) finish in the background; the provider polls /v2/actions/{id}.
 * Every request is logged for the tests' assertions.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { LocalSpaces, SpacesGrant, startLocalSpaces } from "./localSpaces";
import { Droplet, processAlive, run, startDroplet } from "./sandbox";

export interface ApiRequest {
  method: string;
  path: string;
  status: number;
  body?: unknown;
}

interface SshKey {
  id: number;
  name: string;
  public_key: string;
  fingerprint: string;
}

interface DropletRecord {
  json: Record<string, unknown>;
  sandbox?: Droplet;
  /** Settles once the sandbox droplet is up (or failed to start). */
  started: Promise<void>;
}

type Json = Record<string, unknown>;

interface VolumeRecord {
  json: Json;
  /** The sparse file that holds the volume's blocks. */
  file: string;
  /** The loop device (/dev/loopN) while attached. */
  loop?: string;
}

/** Where a volume's node is in a droplet, as DigitalOcean's udev rule names it. */
export const volumeDevicePath = (name: string) => `/dev/disk/by-id/scsi-0DO_Volume_${name}`;

/** The start of the names of the API's volume directories in the temporary directory. */
const VOLUME_DIR_PREFIX = "chitram-do-volumes-";

/** A request field that must be a string; anything else counts as missing. */
const text = (v: unknown): string => (typeof v === "string" ? v : "");

/** The error body DigitalOcean sends: an id, a message and the request's id. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly id: string,
    message: string,
  ) {
    super(message);
  }
}
const notFound = () => new ApiError(404, "not_found", "The resource you were accessing could not be found.");

/** An MD5 fingerprint of an OpenSSH public key, as DigitalOcean shows it (aa:bb:...). */
export function md5Fingerprint(publicKey: string): string {
  const blob = publicKey.trim().split(/\s+/)[1];
  if (!blob)
    throw new ApiError(422, "unprocessable_entity", "Key invalid type, we support 'ssh-rsa', 'ssh-ed25519'");
  const hex = createHash("md5").update(Buffer.from(blob, "base64")).digest("hex");
  return hex.match(/../g)!.join(":");
}

/** Fails, naming the port and what to do, when `address:port` cannot be listened on. */
function mustBind(address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (e: Error) =>
      reject(
        new Error(
          `the local DigitalOcean API publishes its droplets' port ${port} on loopback addresses of their own, ` +
            `but ${address}:${port} cannot be listened on (${e.message}): stop what listens on 0.0.0.0:${port} on this machine`,
        ),
      ),
    );
    server.listen(port, address, () => server.close(() => resolve()));
  });
}

/**
 * Detaches the loop devices and removes the files of the volumes an API left behind when its
 * process was killed (close() never ran).
 */
async function removeStaleVolumes(): Promise<void> {
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

/** How long after a droplet is "active" its sshd starts. */
const SSHD_LATE_MS = 5000;

/** The sizes a stack of this project may ask for, with the fields the provider reads. */
const SIZES: Record<string, { vcpus: number; memory: number; disk: number; price_monthly: number }> = {
  "s-2vcpu-2gb": { vcpus: 2, memory: 2048, disk: 60, price_monthly: 18 },
  "s-2vcpu-4gb": { vcpus: 2, memory: 4096, disk: 80, price_monthly: 24 },
  "s-4vcpu-8gb": { vcpus: 4, memory: 8192, disk: 160, price_monthly: 48 },
};

export interface LocalDoApi {
  /** `http://127.0.0.1:<port>`: DIGITALOCEAN_API_URL. */
  url: string;
  /** The token the API accepts (DIGITALOCEAN_TOKEN). */
  token: string;
  /** The start of the names of this API's droplet containers (and of their networks). */
  containerPrefix: string;
  /** Every request so far, in order. */
  requests: ApiRequest[];
  /** The local Spaces, when started with `spaces`. */
  spaces?: LocalSpaces;
  /** What the API holds now, by kind. */
  holds(): {
    sshKeys: number;
    droplets: number;
    firewalls: number;
    projects: number;
    volumes: number;
    records: number;
    uptimeChecks: number;
    uptimeAlerts: number;
    spacesKeys: number;
  };
  droplets(): Json[];
  firewalls(): Json[];
  volumes(): Json[];
  /** The records of a domain the API was started with. */
  records(domain: string): Json[];
  uptimeChecks(): Json[];
  /** Every uptime alert, with the id of its check (check_id). */
  uptimeAlerts(): Json[];
  /**
   * Volumes detached (or whose droplet was deleted) while still mounted in the droplet: on
   * DigitalOcean, writes in flight are lost and the filesystem needs a repair. "<volume> from <droplet id>".
   */
  unsafeDetaches: string[];
  /** The URNs assigned to the project named `name`. */
  projectResources(name: string): string[];
  /** The sandbox droplet of the droplet `id`. */
  sandbox(id: number): Droplet | undefined;
  /** Waits until every droplet started or removed so far is up or gone. */
  settled(): Promise<void>;
  /** Stops the server and removes every droplet it still holds. */
  close(): Promise<void>;
}

/**
 * Starts the API. Droplets get the addresses `127.<net>.<n>` counting n up from 2; `net` is
 * "x.y", default from the process id, so that test files running at once never share one.
 */
export async function startLocalDoApi(
  opts: {
    net?: string;
    /** false: no droplet will be made (no ports to check). */
    droplets?: boolean;
    /** Domains on the account (the stack manages records, never the domain itself). Default: none. */
    domains?: string[];
    /** Runs once a droplet's container is up, before the droplet is "active". Default: nothing. */
    onDropletStarted?: (sandbox: Droplet) => Promise<void>;
    /**
     * Runs after an A record is made, changed or deleted (address undefined), with the name it
     * answers for: the stand-in for DNS resolution. Default: nothing.
     */
    onARecord?: (fqdn: string, address: string | undefined) => Promise<void>;
    /** Serve Spaces: keys here, buckets in a local S3 server every droplet reaches (harness/localSpaces.ts). Default: false. */
    spaces?: boolean;
  } = {},
): Promise<LocalDoApi> {
  const subnet = opts.net ?? `${((process.pid >> 8) % 200) + 20}.${process.pid % 256}`;
  // A droplet's ports are published as themselves on its own address: a listener on 0.0.0.0 of
  // this machine (an sshd on 0.0.0.0:22) would take them all. Said once, here, not per droplet.
  if (opts.droplets ?? true) for (const port of [22, 80, 443]) await mustBind(`127.${subnet}.1`, port);
  const containerPrefix = `chitram-sbx-do-${subnet.replace(".", "-")}-`;
  await removeStaleVolumes();
  const spaces = opts.spaces ? await startLocalSpaces(`${containerPrefix}spaces`) : undefined;
  const spacesKeys = new Map<string, Json>();

  const token = `dop_v1_local_${randomUUID().replace(/-/g, "")}`;
  const requests: ApiRequest[] = [];
  const keys = new Map<number, SshKey>();
  const droplets = new Map<number, DropletRecord>();
  const deleted = new Set<number>();
  const firewalls = new Map<string, Json>();
  const projects = new Map<string, Json>();
  const assigned = new Map<string, string>(); // urn -> project id
  const tags = new Set<string>();
  const volumes = new Map<string, VolumeRecord>();
  const actions = new Map<number, Json>();
  const domains = new Map<string, Map<number, Json>>((opts.domains ?? []).map((d) => [d, new Map()]));
  const checks = new Map<string, Json>();
  const alerts = new Map<string, Json>();
  const unsafeDetaches: string[] = [];
  let volumeDir: string | undefined;
  const pending: Promise<unknown>[] = [];
  let nextId = 1000;
  let nextAddress = 2;
  const now = () => new Date().toISOString();

  const defaultProject: Json = {
    id: randomUUID(),
    owner_uuid: randomUUID(),
    owner_id: 1,
    name: "Default",
    description: "",
    purpose: "Service or API",
    environment: "Development",
    is_default: true,
    created_at: now(),
    updated_at: now(),
  };
  projects.set(String(defaultProject.id), defaultProject);

  const keyFor = (ref: unknown): SshKey | undefined =>
    typeof ref === "number" ? keys.get(ref) : [...keys.values()].find((k) => k.fingerprint === ref);

  function createDroplet(body: Json): Json {
    for (const field of ["name", "region", "size", "image"])
      if (typeof body[field] !== "string" || body[field] === "")
        throw new ApiError(422, "unprocessable_entity", `${field} is required`);
    const size = SIZES[String(body.size)];
    if (!size)
      throw new ApiError(422, "unprocessable_entity", `You specified an invalid size for Droplet creation.`);
    const sshKeys = (Array.isArray(body.ssh_keys) ? body.ssh_keys : []).map((ref) => {
      const k = keyFor(ref);
      if (!k)
        throw new ApiError(422, "unprocessable_entity", `ssh_keys: no key ${String(ref)} on this account`);
      return k;
    });
    if (sshKeys.length === 0)
      throw new ApiError(422, "unprocessable_entity", "a droplet of this API needs an SSH key for root");
    const id = nextId++;
    const address = `127.${subnet}.${nextAddress++}`;
    const json: Json = {
      id,
      name: body.name,
      memory: size.memory,
      vcpus: size.vcpus,
      disk: size.disk,
      locked: false,
      status: "new",
      created_at: now(),
      backup_ids: [],
      snapshot_ids: [],
      image: { slug: body.image, distribution: "Ubuntu", name: "22.04 (LTS) x64" },
      size: { slug: body.size, ...size, price_hourly: size.price_monthly / 672 },
      size_slug: body.size,
      region: { slug: body.region, name: String(body.region).toUpperCase(), available: true },
      networks: {
        v4: [{ ip_address: address, netmask: "255.0.0.0", gateway: "127.0.0.1", type: "public" }],
        v6: [],
      },
      tags: Array.isArray(body.tags) ? body.tags : [],
      volume_ids: [],
      vpc_uuid: `vpc-${String(body.region)}-default`,
      // what the request asked for, for the tests (not part of DigitalOcean's droplet object)
      requested: {
        monitoring: body.monitoring,
        ipv6: body.ipv6,
        user_data: body.user_data,
        ssh_keys: body.ssh_keys,
      },
    };
    const record: DropletRecord = { json, started: Promise.resolve() };
    // As on DigitalOcean, the droplet is "active" before its sshd answers (the first contact
    // waits it out), here about SSHD_LATE_MS later.
    record.started = startDroplet({
      name: `${containerPrefix}${id}`,
      rootPublicKey: sshKeys[0].public_key.trim(),
      address,
      holdSshd: true,
      blockDevices: true,
    }).then(
      async (sandbox) => {
        if (!droplets.has(id)) {
          await sandbox.stop(); // deleted while it started
          return;
        }
        record.sandbox = sandbox;
        if (spaces) await sandbox.connect(spaces.network);
        await opts.onDropletStarted?.(sandbox);
        json.status = "active";
        await new Promise((resolve) => setTimeout(resolve, SSHD_LATE_MS));
        await sandbox.startSshd();
      },
      (e: Error) => {
        json.status = "errored";
        json.error = e.message;
        console.error(`local DigitalOcean API: droplet ${id} (${address}) did not start: ${e.message}`);
      },
    );
    pending.push(
      record.started.catch((e: Error) =>
        console.error(`local DigitalOcean API: droplet ${id}: ${e.message}`),
      ),
    );
    droplets.set(id, record);
    return json;
  }

  function deleteDroplet(id: number): void {
    const record = droplets.get(id);
    if (!record) throw notFound();
    droplets.delete(id);
    deleted.add(id);
    assigned.delete(`do:droplet:${id}`);
    for (const fw of firewalls.values())
      fw.droplet_ids = (fw.droplet_ids as number[]).filter((d) => d !== id);
    // DigitalOcean detaches a deleted droplet's volumes (the provider detaches them first).
    const attached = (record.json.volume_ids as string[]).map((v) => volumes.get(v)!);
    for (const v of attached) v.json.droplet_ids = [];
    pending.push(
      record.started
        .then(async () => {
          for (const v of attached) await noteIfMounted(v, record);
          await record.sandbox?.stop();
          for (const v of attached) await releaseLoop(v);
        })
        .catch((e: Error) => console.error(`local DigitalOcean API: removing droplet ${id}: ${e.message}`)),
    );
  }

  /** An action that finishes when `work` does; the provider polls it until completed_at is set. */
  function startAction(type: string, resourceType: string, work: () => Promise<void>): Json {
    const action: Json = {
      id: nextId++,
      status: "in-progress",
      type,
      started_at: now(),
      completed_at: null,
      resource_id: 0,
      resource_type: resourceType,
      region_slug: null,
    };
    actions.set(Number(action.id), action);
    pending.push(
      work().then(
        () => {
          action.status = "completed";
          action.completed_at = now();
        },
        (e: Error) => {
          action.status = "errored";
          console.error(`local DigitalOcean API: ${type} (action ${String(action.id)}): ${e.message}`);
        },
      ),
    );
    return action;
  }

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
      created_at: now(),
    };
    volumes.set(id, { json, file });
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
      return startAction("attach_volume", "volume", async () => {
        if (v.loop) return;
        v.loop = (await run("losetup", ["--find", "--show", v.file])).stdout.trim();
        await volumeNodes(v, sandbox);
      });
    }
    if (type === "detach") {
      if (!attachedTo.includes(dropletId))
        throw new ApiError(422, "unprocessable_entity", "This volume is not attached to that Droplet");
      v.json.droplet_ids = [];
      if (droplet)
        droplet.json.volume_ids = (droplet.json.volume_ids as string[]).filter((i) => i !== v.json.id);
      return startAction("detach_volume", "volume", async () => {
        await noteIfMounted(v, droplet);
        await droplet?.sandbox?.exec(`rm -f ${volumeDevicePath(String(v.json.name))} ${v.loop ?? ""}`);
        await releaseLoop(v);
      });
    }
    if (type === "resize") {
      const size = body.size_gigabytes;
      if (typeof size !== "number" || !Number.isInteger(size) || size <= Number(v.json.size_gigabytes))
        throw new ApiError(
          422,
          "unprocessable_entity",
          "a volume can only grow: size_gigabytes must be larger",
        );
      return startAction("resize", "volume", async () => {
        fs.truncateSync(v.file, size * 2 ** 30);
        if (v.loop) await run("losetup", ["-c", v.loop]);
        v.json.size_gigabytes = size;
      });
    }
    throw new ApiError(422, "unprocessable_entity", `this API has no volume action ${type}`);
  }

  /** The droplet's volume nodes, made again after a power-on (a new /dev, as after a reboot). */
  async function volumeNodes(v: VolumeRecord, sandbox: Droplet): Promise<void> {
    if (!v.loop) return;
    const minor = v.loop.replace("/dev/loop", "");
    const link = volumeDevicePath(String(v.json.name));
    const r = await sandbox.exec(
      `[ -e ${v.loop} ] || mknod ${v.loop} b 7 ${minor}; mkdir -p /dev/disk/by-id && ln -sfn ${v.loop} ${link}`,
    );
    if (r.code !== 0) throw new Error(`the volume's node in ${sandbox.name}: ${r.stderr}`);
  }

  /** power_off, shutdown, power_on and resize: what the provider's size change sends. */
  function dropletAction(record: DropletRecord, body: Json): Json {
    const { json, sandbox } = record;
    const type = String(body.type);
    if (!sandbox || !["active", "off"].includes(String(json.status)))
      throw new ApiError(422, "unprocessable_entity", "Droplet already has a pending event.");
    if (type === "power_off" || type === "shutdown") {
      if (json.status === "off")
        throw new ApiError(422, "unprocessable_entity", "Droplet is already powered off.");
      return startAction(type, "droplet", async () => {
        await sandbox.powerOff();
        json.status = "off";
      });
    }
    if (type === "power_on") {
      if (json.status !== "off")
        throw new ApiError(422, "unprocessable_entity", "Droplet is already powered on.");
      return startAction(type, "droplet", async () => {
        await sandbox.powerOn();
        for (const id of json.volume_ids as string[]) await volumeNodes(volumes.get(id)!, sandbox);
        json.status = "active";
        await new Promise((resolve) => setTimeout(resolve, SSHD_LATE_MS));
        await sandbox.startSshd();
      });
    }
    if (type === "resize") {
      const size = SIZES[String(body.size)];
      if (!size)
        throw new ApiError(422, "unprocessable_entity", "You specified an invalid size for Droplet resize.");
      if (json.status !== "off")
        throw new ApiError(422, "unprocessable_entity", "Droplet must be powered off before a resize.");
      // Only what the API reports: a container's processors and memory stay as they are.
      return startAction(type, "droplet", () => {
        Object.assign(json, { memory: size.memory, vcpus: size.vcpus, size_slug: body.size });
        if (body.disk === true) json.disk = size.disk;
        json.size = { slug: body.size, ...size, price_hourly: size.price_monthly / 672 };
        return Promise.resolve();
      });
    }
    throw new ApiError(422, "unprocessable_entity", `this API has no droplet action ${type}`);
  }

  function uptimeCheck(body: Json, id: string): Json {
    if (!["http", "https", "ping"].includes(String(body.type)))
      throw new ApiError(422, "unprocessable_entity", "type must be ping, http or https");
    if (typeof body.target !== "string" || !/^https?:\/\/[^/]+/.test(body.target))
      throw new ApiError(422, "unprocessable_entity", "target must be a URL");
    return {
      id,
      name: body.name,
      type: body.type,
      target: body.target,
      regions: Array.isArray(body.regions) ? body.regions : [],
      enabled: body.enabled !== false,
    };
  }

  function uptimeAlert(body: Json, id: string, checkId: string): Json {
    if (!["latency", "down", "down_global", "ssl_expiry"].includes(String(body.type)))
      throw new ApiError(
        422,
        "unprocessable_entity",
        "type must be latency, down, down_global or ssl_expiry",
      );
    if (!["2m", "3m", "5m", "10m", "15m", "30m", "1h"].includes(String(body.period)))
      throw new ApiError(422, "unprocessable_entity", "period must be one of 2m, 3m, 5m, 10m, 15m, 30m, 1h");
    const n = (body.notifications ?? {}) as Json;
    const email = Array.isArray(n.email) ? n.email : [];
    const slack = Array.isArray(n.slack) ? n.slack : [];
    if (!email.length && !slack.length)
      throw new ApiError(422, "unprocessable_entity", "notifications need an email or a Slack channel");
    return {
      id,
      check_id: checkId,
      name: body.name,
      type: body.type,
      threshold: body.threshold ?? 0,
      comparison: body.comparison ?? "",
      period: body.period,
      notifications: { email, slack },
    };
  }

  function domainRecord(body: Json, id: number, old?: Json): Json {
    const type = String(old?.type ?? body.type);
    if (!["A", "AAAA", "CAA", "CNAME", "MX", "NS", "TXT", "SRV"].includes(type))
      throw new ApiError(422, "unprocessable_entity", `record type ${type} is not supported`);
    const data = text(body.data);
    if (type === "A" && !net.isIPv4(data))
      throw new ApiError(
        422,
        "unprocessable_entity",
        `data of an A record must be an IPv4 address, not ${data}`,
      );
    if (typeof body.name !== "string" || body.name === "")
      throw new ApiError(422, "unprocessable_entity", "name is required");
    const int = (v: unknown) => (typeof v === "number" && v !== 0 ? v : null);
    return {
      id,
      type,
      name: body.name,
      data,
      priority: int(body.priority),
      port: int(body.port),
      ttl: typeof body.ttl === "number" && body.ttl > 0 ? body.ttl : 1800,
      weight: int(body.weight),
      flags: int(body.flags),
      tag: body.tag ?? null,
    };
  }

  /** Tells onARecord about an A record that was made, changed or deleted. */
  function aRecordChanged(domain: string, record: Json, deleted = false): void {
    if (record.type !== "A" || !opts.onARecord) return;
    const fqdn = record.name === "@" ? domain : `${String(record.name)}.${domain}`;
    pending.push(
      opts
        .onARecord(fqdn, deleted ? undefined : String(record.data))
        .catch((e: Error) => console.error(`local DigitalOcean API: the A record of ${fqdn}: ${e.message}`)),
    );
  }

  const localSpaces = () => {
    if (!spaces)
      throw new ApiError(404, "not_found", "this local DigitalOcean API was started without Spaces");
    return spaces;
  };

  function spacesGrants(list: unknown): SpacesGrant[] {
    return (Array.isArray(list) ? (list as Json[]) : []).map((g) => {
      const permission = text(g.permission);
      if (permission !== "read" && permission !== "readwrite" && permission !== "fullaccess")
        throw new ApiError(
          422,
          "unprocessable_entity",
          "a grant's permission must be read, readwrite or fullaccess",
        );
      // An empty bucket name grants every bucket on DigitalOcean; no key of this project asks for that.
      if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(text(g.bucket)))
        throw new ApiError(
          422,
          "unprocessable_entity",
          `a grant needs a bucket name, not ${JSON.stringify(g.bucket)}`,
        );
      return { bucket: text(g.bucket), permission };
    });
  }

  /** A key as GET returns it: without its secret, which DigitalOcean shows once. */
  const publicKey = (key: Json): Json => ({ ...key, secret_key: undefined });

  async function createSpacesKey(body: Json): Promise<Answer> {
    const store = localSpaces();
    if (!text(body.name)) throw new ApiError(422, "unprocessable_entity", "name is required");
    const grants = spacesGrants(body.grants);
    const accessKey = `DO00${randomUUID().replace(/-/g, "").slice(0, 16).toUpperCase()}`;
    const secretKey = createHash("sha256").update(randomUUID()).digest("base64").replace(/=+$/, "");
    await store.putKey(accessKey, secretKey, grants);
    const key: Json = {
      name: body.name,
      access_key: accessKey,
      secret_key: secretKey,
      grants,
      created_at: now(),
    };
    spacesKeys.set(accessKey, key);
    return [201, { key }];
  }

  const zone = (name: string) => {
    const records = domains.get(name);
    if (!records) throw notFound();
    return records;
  };

  function firewall(body: Json, id: string, created: string): Json {
    const rules = (list: unknown, side: string) =>
      (Array.isArray(list) ? (list as Json[]) : []).map((r) => ({ ...r, [side]: r[side] ?? {} }));
    return {
      id,
      name: body.name,
      status: "succeeded",
      created_at: created,
      pending_changes: [],
      droplet_ids: Array.isArray(body.droplet_ids) ? body.droplet_ids : [],
      tags: Array.isArray(body.tags) ? body.tags : [],
      inbound_rules: rules(body.inbound_rules, "sources"),
      outbound_rules: rules(body.outbound_rules, "destinations"),
    };
  }

  function projectResources(id: string): Json[] {
    return [...assigned.entries()]
      .filter(([, p]) => p === id)
      .map(([urn]) => ({ urn, assigned_at: now(), links: { self: "" }, status: "ok" }));
  }

  /** The value under `key`, or DigitalOcean's 404. */
  function get<K, V>(map: Map<K, V>, key: K): V {
    const value = map.get(key);
    if (value === undefined) throw notFound();
    return value;
  }
  const alertOf = (checkId: string, id: string) => {
    const alert = get(alerts, id);
    if (alert.check_id !== checkId) throw notFound();
    return alert;
  };

  const page = (root: string, items: unknown[]) => ({
    [root]: items,
    links: {},
    meta: { total: items.length },
  });

  /** The routes: [method, path pattern, handler(params, body)] → [status, body]. */
  type Answer = [number, unknown];
  const routes: [string, RegExp, (m: string[], body: Json) => Answer | Promise<Answer>][] = [
    [
      "POST",
      /^\/v2\/account\/keys$/,
      (_m, b) => {
        if (typeof b.name !== "string" || typeof b.public_key !== "string")
          throw new ApiError(422, "unprocessable_entity", "name and public_key are required");
        const fingerprint = md5Fingerprint(b.public_key);
        if ([...keys.values()].some((k) => k.fingerprint === fingerprint))
          throw new ApiError(422, "unprocessable_entity", "SSH Key is already in use on your account");
        const key: SshKey = { id: nextId++, name: b.name, public_key: b.public_key, fingerprint };
        keys.set(key.id, key);
        return [201, { ssh_key: key }];
      },
    ],
    [
      "GET",
      /^\/v2\/account\/keys\/([^/]+)$/,
      ([, ref]) => {
        const key = keyFor(/^\d+$/.test(ref) ? Number(ref) : ref);
        if (!key) throw notFound();
        return [200, { ssh_key: key }];
      },
    ],
    [
      "PUT",
      /^\/v2\/account\/keys\/(\d+)$/,
      ([, id], b) => {
        const key = keys.get(Number(id));
        if (!key) throw notFound();
        if (typeof b.name === "string") key.name = b.name;
        return [200, { ssh_key: key }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/account\/keys\/(\d+)$/,
      ([, id]) => {
        if (!keys.delete(Number(id))) throw notFound();
        return [204, undefined];
      },
    ],
    ["POST", /^\/v2\/droplets$/, (_m, b) => [202, { droplet: createDroplet(b), links: { actions: [] } }]],
    [
      "GET",
      /^\/v2\/droplets\/(\d+)$/,
      ([, id]) => {
        const record = droplets.get(Number(id));
        if (!record) throw notFound();
        return [200, { droplet: record.json }];
      },
    ],
    [
      "POST",
      /^\/v2\/droplets\/(\d+)\/actions$/,
      ([, id], b) => [201, { action: dropletAction(get(droplets, Number(id)), b) }],
    ],
    [
      "DELETE",
      /^\/v2\/droplets\/(\d+)$/,
      ([, id]) => {
        deleteDroplet(Number(id));
        return [204, undefined];
      },
    ],
    [
      "POST",
      /^\/v2\/firewalls$/,
      (_m, b) => {
        const fw = firewall(b, randomUUID(), now());
        firewalls.set(String(fw.id), fw);
        return [202, { firewall: fw }];
      },
    ],
    [
      "GET",
      /^\/v2\/firewalls\/([\w-]+)$/,
      ([, id]) => {
        const fw = firewalls.get(id);
        if (!fw) throw notFound();
        return [200, { firewall: fw }];
      },
    ],
    [
      "PUT",
      /^\/v2\/firewalls\/([\w-]+)$/,
      ([, id], b) => {
        const old = firewalls.get(id);
        if (!old) throw notFound();
        const fw = firewall(b, id, String(old.created_at));
        firewalls.set(id, fw);
        return [200, { firewall: fw }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/firewalls\/([\w-]+)$/,
      ([, id]) => {
        if (!firewalls.delete(id)) throw notFound();
        return [204, undefined];
      },
    ],
    [
      "POST",
      /^\/v2\/projects$/,
      (_m, b) => {
        if (typeof b.name !== "string" || typeof b.purpose !== "string")
          throw new ApiError(400, "bad_request", "name and purpose are required");
        const project: Json = {
          ...defaultProject,
          id: randomUUID(),
          name: b.name,
          description: b.description ?? "",
          purpose: b.purpose,
          environment: b.environment ?? "",
          is_default: false,
          created_at: now(),
          updated_at: now(),
        };
        projects.set(String(project.id), project);
        return [201, { project }];
      },
    ],
    ["GET", /^\/v2\/projects\/default$/, () => [200, { project: defaultProject }]],
    [
      "GET",
      /^\/v2\/projects\/([\w-]+)$/,
      ([, id]) => {
        const project = projects.get(id);
        if (!project) throw notFound();
        return [200, { project }];
      },
    ],
    [
      "PATCH",
      /^\/v2\/projects\/([\w-]+)$/,
      ([, id], b) => {
        const project = projects.get(id);
        if (!project) throw notFound();
        for (const f of ["name", "description", "purpose", "environment", "is_default"])
          if (b[f] !== undefined) project[f] = b[f];
        project.updated_at = now();
        return [200, { project }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/projects\/([\w-]+)$/,
      ([, id]) => {
        const project = projects.get(id);
        if (!project) throw notFound();
        if (project.is_default)
          throw new ApiError(412, "precondition_failed", "cannot delete the default project");
        if (projectResources(id).length)
          throw new ApiError(412, "precondition_failed", "cannot delete a project with resources");
        projects.delete(id);
        return [204, undefined];
      },
    ],
    [
      "GET",
      /^\/v2\/projects\/([\w-]+)\/resources$/,
      ([, id]) => {
        if (!projects.has(id)) throw notFound();
        return [200, page("resources", projectResources(id))];
      },
    ],
    [
      "POST",
      /^\/v2\/projects\/([\w-]+)\/resources$/,
      ([, id], b) => {
        if (!projects.has(id)) throw notFound();
        const urns = Array.isArray(b.resources) ? (b.resources as string[]) : [];
        for (const urn of urns) {
          const droplet = /^do:droplet:(\d+)$/.exec(urn);
          const volume = /^do:volume:([\w-]+)$/.exec(urn);
          // The provider moves the URNs a project no longer lists to the default project, a
          // deleted droplet's too (after a replacement): those are taken and dropped; one never
          // made is refused.
          if (droplet && deleted.has(Number(droplet[1]))) continue;
          const exists = droplet ? droplets.has(Number(droplet[1])) : volume ? volumes.has(volume[1]) : false;
          if (!exists) throw new ApiError(422, "unprocessable_entity", `no resource ${urn} on this account`);
          assigned.set(urn, id);
        }
        return [200, { resources: projectResources(id).filter((r) => urns.includes(String(r.urn))) }];
      },
    ],
    [
      "POST",
      /^\/v2\/tags$/,
      (_m, b) => {
        tags.add(String(b.name));
        return [201, { tag: { name: b.name, resources: { count: 0 } } }];
      },
    ],
    ["POST", /^\/v2\/tags\/([^/]+)\/resources$/, () => [204, undefined]],
    ["DELETE", /^\/v2\/tags\/([^/]+)\/resources$/, () => [204, undefined]],
    ["POST", /^\/v2\/spaces\/keys$/, (_m, b) => createSpacesKey(b)],
    ["GET", /^\/v2\/spaces\/keys\/(\w+)$/, ([, id]) => [200, { key: publicKey(get(spacesKeys, id)) }]],
    [
      "PUT",
      /^\/v2\/spaces\/keys\/(\w+)$/,
      async ([, id], b) => {
        const key = get(spacesKeys, id);
        const grants = spacesGrants(b.grants);
        await localSpaces().setGrants(id, grants);
        Object.assign(key, { name: text(b.name) || key.name, grants });
        return [200, { key: publicKey(key) }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/spaces\/keys\/(\w+)$/,
      async ([, id]) => {
        get(spacesKeys, id);
        await localSpaces().removeKey(id);
        spacesKeys.delete(id);
        return [204, undefined];
      },
    ],
    ["GET", /^\/v2\/actions\/(\d+)$/, ([, id]) => [200, { action: get(actions, Number(id)) }]],
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
        assigned.delete(`do:volume:${id}`);
        fs.rmSync(v.file, { force: true });
        return [204, undefined];
      },
    ],
    [
      "POST",
      /^\/v2\/volumes\/([\w-]+)\/actions$/,
      ([, id], b) => [202, { action: volumeAction(get(volumes, id), b) }],
    ],
    [
      "POST",
      /^\/v2\/uptime\/checks$/,
      (_m, b) => {
        const check = uptimeCheck(b, randomUUID());
        checks.set(String(check.id), check);
        return [201, { check }];
      },
    ],
    ["GET", /^\/v2\/uptime\/checks\/([\w-]+)$/, ([, id]) => [200, { check: get(checks, id) }]],
    [
      "PUT",
      /^\/v2\/uptime\/checks\/([\w-]+)$/,
      ([, id], b) => {
        get(checks, id);
        const check = uptimeCheck(b, id);
        checks.set(id, check);
        return [200, { check }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/uptime\/checks\/([\w-]+)$/,
      ([, id]) => {
        get(checks, id);
        checks.delete(id);
        for (const [alertId, a] of alerts) if (a.check_id === id) alerts.delete(alertId);
        return [204, undefined];
      },
    ],
    [
      "POST",
      /^\/v2\/uptime\/checks\/([\w-]+)\/alerts$/,
      ([, checkId], b) => {
        get(checks, checkId);
        const alert = uptimeAlert(b, randomUUID(), checkId);
        alerts.set(String(alert.id), alert);
        return [201, { alert }];
      },
    ],
    [
      "GET",
      /^\/v2\/uptime\/checks\/([\w-]+)\/alerts\/([\w-]+)$/,
      ([, checkId, id]) => [200, { alert: alertOf(checkId, id) }],
    ],
    [
      "PUT",
      /^\/v2\/uptime\/checks\/([\w-]+)\/alerts\/([\w-]+)$/,
      ([, checkId, id], b) => {
        alertOf(checkId, id);
        const alert = uptimeAlert(b, id, checkId);
        alerts.set(id, alert);
        return [200, { alert }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/uptime\/checks\/([\w-]+)\/alerts\/([\w-]+)$/,
      ([, checkId, id]) => {
        alertOf(checkId, id);
        alerts.delete(id);
        return [204, undefined];
      },
    ],
    [
      "GET",
      /^\/v2\/domains\/([\w.-]+)$/,
      ([, name]) => {
        zone(name);
        return [200, { domain: { name, ttl: 1800, zone_file: "" } }];
      },
    ],
    [
      "POST",
      /^\/v2\/domains\/([\w.-]+)\/records$/,
      ([, name], b) => {
        const record = domainRecord(b, nextId++);
        zone(name).set(Number(record.id), record);
        aRecordChanged(name, record);
        return [201, { domain_record: record }];
      },
    ],
    [
      "GET",
      /^\/v2\/domains\/([\w.-]+)\/records\/(\d+)$/,
      ([, name, id]) => [200, { domain_record: get(zone(name), Number(id)) }],
    ],
    [
      "PUT",
      /^\/v2\/domains\/([\w.-]+)\/records\/(\d+)$/,
      ([, name, id], b) => {
        const record = domainRecord(b, Number(id), get(zone(name), Number(id)));
        zone(name).set(Number(id), record);
        aRecordChanged(name, record);
        return [200, { domain_record: record }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/domains\/([\w.-]+)\/records\/(\d+)$/,
      ([, name, id]) => {
        const record = get(zone(name), Number(id));
        zone(name).delete(Number(id));
        aRecordChanged(name, record, true);
        return [204, undefined];
      },
    ],
  ];

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => void answer(req, res, chunks));
  });
  /** Routes one request and sends DigitalOcean's answer (or its error body). */
  async function answer(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    chunks: Buffer[],
  ): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    const method = req.method ?? "GET";
    let status = 500;
    let body: unknown;
    let parsed: Json = {};
    try {
      if (req.headers.authorization !== `Bearer ${token}`)
        throw new ApiError(401, "unauthorized", "Unable to authenticate you");
      const text = Buffer.concat(chunks).toString();
      try {
        parsed = text ? (JSON.parse(text) as Json) : {};
      } catch {
        throw new ApiError(400, "bad_request", "the request body is not JSON");
      }
      const route = routes.find(([m, re]) => m === method && re.test(path));
      if (!route) throw new ApiError(404, "not_found", `the local DigitalOcean API has no ${method} ${path}`);
      [status, body] = await route[2](route[1].exec(path)!, parsed);
    } catch (e) {
      if (!(e instanceof ApiError)) console.error(`local DigitalOcean API: ${method} ${path}: ${String(e)}`);
      const err = e instanceof ApiError ? e : new ApiError(500, "server_error", String(e));
      status = err.status;
      body = { id: err.id, message: err.message, request_id: randomUUID() };
    }
    requests.push({ method, path, status, body: parsed });
    res.writeHead(status, {
      "Content-Type": "application/json",
      "RateLimit-Limit": "5000",
      "RateLimit-Remaining": String(5000 - (requests.length % 5000)),
      "RateLimit-Reset": String(Math.floor(Date.now() / 1000) + 3600),
    });
    res.end(body === undefined ? "" : JSON.stringify(body));
  }
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));

  const settled = async () => {
    while (pending.length) await Promise.allSettled(pending.splice(0));
  };
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    token,
    containerPrefix,
    requests,
    spaces,
    holds: () => ({
      sshKeys: keys.size,
      droplets: droplets.size,
      firewalls: firewalls.size,
      projects: projects.size - 1,
      volumes: volumes.size,
      records: [...domains.values()].reduce((n, records) => n + records.size, 0),
      uptimeChecks: checks.size,
      uptimeAlerts: alerts.size,
      spacesKeys: spacesKeys.size,
    }),
    droplets: () => [...droplets.values()].map((d) => d.json),
    firewalls: () => [...firewalls.values()],
    volumes: () => [...volumes.values()].map((v) => v.json),
    records: (domain) => [...(domains.get(domain)?.values() ?? [])],
    uptimeChecks: () => [...checks.values()],
    uptimeAlerts: () => [...alerts.values()],
    unsafeDetaches,
    projectResources: (name) => {
      const project = [...projects.values()].find((p) => p.name === name);
      return project ? projectResources(String(project.id)).map((r) => String(r.urn)) : [];
    },
    sandbox: (id) => droplets.get(id)?.sandbox,
    settled,
    close: async () => {
      await new Promise((resolve) => server.close(resolve));
      for (const id of [...droplets.keys()]) deleteDroplet(id);
      await settled();
      for (const v of volumes.values()) await releaseLoop(v);
      if (volumeDir) fs.rmSync(volumeDir, { recursive: true, force: true });
      await spaces?.stop();
    },
  };
}
