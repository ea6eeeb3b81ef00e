/**
 * A local DigitalOcean API: the part of the public v2 API that the DigitalOcean provider calls for
 * a stack of this project (SSH keys, droplets, firewalls, volumes and their actions, domain
 * records, uptime checks and alerts, projects and their resources, tags, actions, Spaces keys,
 * container registries and their docker credentials, managed PostgreSQL clusters, load balancers),
 * served on 127.0.0.1 for the real provider
 * (DIGITALOCEAN_API_URL, or all of `env`). What the provider expects of each call is in
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
import { createHash, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { APP_DIR, SANDBOX_APP_IMAGE } from "../hostContract";
import { apiContext, ApiError, DropletRecord, get, Json, notFound, Route } from "./doApi/common";
import { DatabaseService, databaseService } from "./doApi/databases";
import { ARecordHook, dnsService } from "./doApi/dns";
import { LoadBalancerService, loadBalancerService } from "./doApi/loadBalancers";
import { RegistryService, RegistryToken, registryService } from "./doApi/registries";
import { spacesKeyService } from "./doApi/spacesKeys";
import { uptimeService } from "./doApi/uptime";
import { removeStaleVolumes, volumeService } from "./doApi/volumes";
import { LocalSpaces, startLocalSpaces } from "./localSpaces";
import { DoRegistry, startDoRegistry } from "./registry";
import { Droplet, ExecResult, removeAllSandboxes, startDroplet } from "./sandbox";

export { volumeDevicePath } from "./doApi/volumes";

/** A droplet's public IPv4 address as the API reports it (its own loopback address here). */
export const dropletAddress = (droplet: Json): string =>
  (droplet.networks as { v4: { ip_address: string }[] }).v4[0].ip_address;

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
  /** The local registry, when started with `registries`. */
  registry?: DoRegistry;
  /**
   * The provider's environment for this API: its token and URL; with Spaces, the endpoint, a key
   * and the proxy for virtual-hosted bucket requests; with registries, the HTTPS proxy and CA for
   * the token revocation (harness/doApi/registries.ts).
   */
  env: Record<string, string>;
  /** The registry tokens issued as docker credentials and not revoked. */
  registryTokens(): RegistryToken[];
  /** The database clusters, as GET returns them (connection fields included). */
  databaseClusters(): Json[];
  /** SQL (stdin) as doadmin in a cluster's database, over its local socket. */
  databaseSql(clusterId: string, database: string, script: string): Promise<ExecResult>;
  /** The network the database servers are on, when started with `databases`. */
  databaseNetwork?: string;
  /** The load balancers, as GET returns them (`ip` is where they answer). */
  loadBalancers(): Json[];
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
    registryTokens: number;
    databaseClusters: number;
    loadBalancers: number;
  };
  droplets(): Json[];
  firewalls(): Json[];
  volumes(): Json[];
  /** The records of a domain the API was started with. */
  records(domain: string): Json[];
  uptimeChecks(): Json[];
  /** The Spaces keys, secrets included (the API shows a secret only once, when the key is made). */
  spacesKeys(): Json[];
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
    onARecord?: ARecordHook;
    /** Serve Spaces: keys here, buckets in a local S3 server every droplet reaches (harness/localSpaces.ts). Default: false. */
    spaces?: boolean;
    /**
     * Container registries on the account: their docker credentials here, the images in a local
     * registry every droplet reaches as registry.digitalocean.com (harness/registry.ts). Default: none.
     */
    registries?: string[];
    /** Serve managed PostgreSQL clusters, each a server every droplet reaches (harness/doApi/databases.ts). Default: false. */
    databases?: boolean;
    /** Serve load balancers, each a health-checking proxy on an address of its own (harness/doApi/loadBalancers.ts). Default: false. */
    loadBalancers?: boolean;
  } = {},
): Promise<LocalDoApi> {
  const subnet = opts.net ?? `${((process.pid >> 8) % 200) + 20}.${process.pid % 256}`;
  // A droplet's ports are published as themselves on its own address: a listener on 0.0.0.0 of
  // this machine (an sshd on 0.0.0.0:22) would take them all. Said once, here, not per droplet.
  if (opts.droplets ?? true) for (const port of [22, 80, 443]) await mustBind(`127.${subnet}.1`, port);
  const containerPrefix = `chitram-sbx-do-${subnet.replace(".", "-")}-`;
  // What a killed run of this API left: its droplets, networks, volume files and loop devices
  // (an API with none of them, nor Spaces, registries, databases or load balancers, needs no
  // Docker, and leaves none).
  if (
    (opts.droplets ?? true) ||
    opts.spaces ||
    opts.databases ||
    opts.loadBalancers ||
    opts.registries?.length
  ) {
    await removeAllSandboxes({ namePrefix: "chitram-sbx-do-", deadOwnersOnly: true });
    await removeStaleVolumes();
  }

  const token = `dop_v1_local_${randomUUID().replace(/-/g, "")}`;
  const requests: ApiRequest[] = [];
  const { ctx, routes: actionRoutes } = apiContext();
  const { now, pending } = ctx;
  const keys = new Map<number, SshKey>();
  const droplets = new Map<number, DropletRecord>();
  let nextAddress = 2;
  const takeAddress = () => `127.${subnet}.${nextAddress++}`;
  // The servers behind Spaces, the registry, databases and load balancers; what started is
  // stopped again when a later one fails to start.
  const stops: (() => Promise<unknown>)[] = [];
  const started = <T extends { close?: () => Promise<unknown>; stop?: () => Promise<unknown> }>(s: T): T => {
    stops.unshift(() => (s.close ?? s.stop)?.() ?? Promise.resolve());
    return s;
  };
  let spaces: LocalSpaces | undefined;
  let registry: DoRegistry | undefined;
  let databases: DatabaseService | undefined;
  let loadBalancers: LoadBalancerService | undefined;
  let registries: RegistryService;
  try {
    if (opts.spaces) spaces = started(await startLocalSpaces(`${containerPrefix}spaces`));
    if (opts.registries?.length)
      registry = started(await startDoRegistry(`${containerPrefix}registry`, SANDBOX_APP_IMAGE));
    if (opts.databases) databases = started(await databaseService(ctx, containerPrefix, droplets));
    if (opts.loadBalancers)
      loadBalancers = started(
        await loadBalancerService(ctx, containerPrefix, droplets, takeAddress, (urn) => assigned.delete(urn)),
      );
    registries = started(
      await registryService(ctx, opts.registries ?? [], registry, (method, path, status, body) =>
        requests.push({ method, path, status, body }),
      ),
    );
  } catch (e) {
    for (const stop of stops) await stop().catch(() => undefined);
    throw e;
  }
  const deleted = new Set<number>();
  const firewalls = new Map<string, Json>();
  const projects = new Map<string, Json>();
  const assigned = new Map<string, string>(); // urn -> project id
  const tags = new Set<string>();
  const volumes = volumeService(ctx, droplets, (urn) => assigned.delete(urn));
  const dns = dnsService(ctx, opts.domains ?? [], opts.onARecord);
  const uptime = uptimeService();
  const spacesKeys = spacesKeyService(ctx, spaces);
  // The provider trusts the registry's CA for the revocation (and nothing else needs TLS here).
  const caDir = registry ? fs.mkdtempSync(path.join(os.tmpdir(), "chitram-do-ca-")) : undefined;
  if (caDir && registry) fs.writeFileSync(path.join(caDir, "ca.crt"), registry.caCert);

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
    const id = ctx.nextId();
    const address = takeAddress();
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
        // A droplet that fails here is "errored" (the provider stops waiting) and is still removed
        // by its delete.
        try {
          if (spaces) await sandbox.connect(spaces.network);
          if (registry) await registry.join(sandbox);
          if (databases) await sandbox.connect(databases.network);
          if (loadBalancers) await sandbox.connect(loadBalancers.network);
          await opts.onDropletStarted?.(sandbox);
          json.status = "active";
          await new Promise((resolve) => setTimeout(resolve, SSHD_LATE_MS));
          await sandbox.startSshd();
        } catch (e) {
          json.status = "errored";
          json.error = String(e);
          console.error(`local DigitalOcean API: droplet ${id} (${address}): ${String(e)}`);
        }
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
    const attached = volumes.takeFrom(record);
    const stopped = record.started.then(async () => {
      for (const v of attached) await volumes.noteIfMounted(v, record);
      await record.sandbox?.stop();
    });
    volumes.releaseAfter(attached, stopped);
    pending.push(
      stopped.catch((e: Error) =>
        console.error(`local DigitalOcean API: removing droplet ${id}: ${e.message}`),
      ),
    );
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
      return ctx.startAction(type, "droplet", async () => {
        await sandbox.powerOff();
        json.status = "off";
      });
    }
    if (type === "power_on") {
      if (json.status !== "off")
        throw new ApiError(422, "unprocessable_entity", "Droplet is already powered on.");
      return ctx.startAction(type, "droplet", async () => {
        await sandbox.powerOn();
        for (const id of json.volume_ids as string[])
          await volumes.volumeNodes(volumes.volumes.get(id)!, sandbox);
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
      return ctx.startAction(type, "droplet", () => {
        Object.assign(json, { memory: size.memory, vcpus: size.vcpus, size_slug: body.size });
        if (body.disk === true) json.disk = size.disk;
        json.size = { slug: body.size, ...size, price_hourly: size.price_monthly / 672 };
        return Promise.resolve();
      });
    }
    throw new ApiError(422, "unprocessable_entity", `this API has no droplet action ${type}`);
  }

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

  const page = (root: string, items: unknown[]) => ({
    [root]: items,
    links: {},
    meta: { total: items.length },
  });

  /** The routes: [method, path pattern, handler(params, body)] → [status, body]. */
  const routes: Route[] = [
    [
      "POST",
      /^\/v2\/account\/keys$/,
      (_m, b) => {
        if (typeof b.name !== "string" || typeof b.public_key !== "string")
          throw new ApiError(422, "unprocessable_entity", "name and public_key are required");
        const fingerprint = md5Fingerprint(b.public_key);
        if ([...keys.values()].some((k) => k.fingerprint === fingerprint))
          throw new ApiError(422, "unprocessable_entity", "SSH Key is already in use on your account");
        const key: SshKey = { id: ctx.nextId(), name: b.name, public_key: b.public_key, fingerprint };
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
          const balancer = /^do:loadbalancer:([\w-]+)$/.exec(urn);
          // The provider moves the URNs a project no longer lists to the default project, a
          // deleted droplet's too (after a replacement): those are taken and dropped; one never
          // made is refused.
          if (droplet && deleted.has(Number(droplet[1]))) continue;
          const exists = droplet
            ? droplets.has(Number(droplet[1]))
            : volume
              ? volumes.volumes.has(volume[1])
              : balancer
                ? (loadBalancers?.balancers.has(balancer[1]) ?? false)
                : false;
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
    ...actionRoutes,
    ...volumes.routes,
    ...uptime.routes,
    ...dns.routes,
    ...spacesKeys.routes,
    ...registries.routes,
    ...(databases?.routes ?? []),
    ...(loadBalancers?.routes ?? []),
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
    const [path, search = ""] = (req.url ?? "/").split("?");
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
      [status, body] = await route[2](route[1].exec(path)!, parsed, new URLSearchParams(search));
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
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url,
    token,
    containerPrefix,
    requests,
    spaces,
    holds: () => ({
      sshKeys: keys.size,
      droplets: droplets.size,
      firewalls: firewalls.size,
      projects: projects.size - 1,
      volumes: volumes.volumes.size,
      records: [...dns.domains.values()].reduce((n, records) => n + records.size, 0),
      uptimeChecks: uptime.checks.size,
      uptimeAlerts: uptime.alerts.size,
      spacesKeys: spacesKeys.keys.size,
      registryTokens: registries.tokens.size,
      databaseClusters: databases?.clusters.size ?? 0,
      loadBalancers: loadBalancers?.balancers.size ?? 0,
    }),
    droplets: () => [...droplets.values()].map((d) => d.json),
    firewalls: () => [...firewalls.values()],
    volumes: () => [...volumes.volumes.values()].map((v) => v.json),
    records: (domain) => [...(dns.domains.get(domain)?.values() ?? [])],
    uptimeChecks: () => [...uptime.checks.values()],
    spacesKeys: () => [...spacesKeys.keys.values()],
    registryTokens: () => [...registries.tokens.values()],
    databaseClusters: () => [...(databases?.clusters.values() ?? [])].map((c) => c.json),
    databaseSql: (id, database, script) => {
      if (!databases) throw new Error("this local DigitalOcean API was started without databases");
      return databases.sql(id, database, script);
    },
    databaseNetwork: databases?.network,
    loadBalancers: () => [...(loadBalancers?.balancers.values() ?? [])].map((b) => b.json),
    registry,
    env: {
      DIGITALOCEAN_TOKEN: token,
      DIGITALOCEAN_API_URL: url,
      ...(spaces && {
        SPACES_ENDPOINT_URL: spaces.endpoint,
        SPACES_ACCESS_KEY_ID: spaces.accessId,
        SPACES_SECRET_ACCESS_KEY: spaces.secretKey,
        HTTP_PROXY: spaces.proxy,
      }),
      ...(caDir &&
        registries.proxy && { HTTPS_PROXY: registries.proxy, SSL_CERT_FILE: path.join(caDir, "ca.crt") }),
    },
    uptimeAlerts: () => [...uptime.alerts.values()],
    unsafeDetaches: volumes.unsafeDetaches,
    projectResources: (name) => {
      const project = [...projects.values()].find((p) => p.name === name);
      return project ? projectResources(String(project.id)).map((r) => String(r.urn)) : [];
    },
    sandbox: (id) => droplets.get(id)?.sandbox,
    settled,
    close: async () => {
      try {
        await new Promise((resolve) => server.close(resolve));
        for (const id of [...droplets.keys()]) deleteDroplet(id);
        await settled();
        await volumes.close();
      } finally {
        for (const stop of stops) await stop();
        if (caDir) fs.rmSync(caDir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Makes the local API's Spaces buckets deletable: the app stopped on every droplet (its health
 * checks' round trips leave versions in its bucket), then every version of every bucket removed.
 * The stack never deletes a bucket that holds objects (BucketNotEmpty). Throws when a step fails.
 */
export async function emptyAppBuckets(api: LocalDoApi): Promise<void> {
  if (!api.spaces) throw new Error("the local API runs no Spaces");
  for (const d of api.droplets()) {
    const r = await api.sandbox(Number(d.id))?.exec(`cd ${APP_DIR} && docker compose stop app`);
    if (r && r.code !== 0) throw new Error(`stopping the app on ${String(d.name)}: ${r.stderr}`);
  }
  const listing = await api.spaces.mc(["ls", "s3"]);
  if (listing.code !== 0) throw new Error(`listing the buckets: ${listing.stderr}`);
  for (const line of listing.stdout.trim().split("\n").filter(Boolean)) {
    const bucket = line.trim().split(/\s+/).pop()!.replace(/\/$/, "");
    const r = await api.spaces.mc(["rm", "--recursive", "--force", "--versions", `s3/${bucket}`]);
    if (r.code !== 0) throw new Error(`emptying ${bucket}: ${r.stderr}`);
  }
}
