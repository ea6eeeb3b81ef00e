// The local DigitalOcean API's managed databases: a PostgreSQL cluster is a PostgreSQL server (the
// sandbox's stand-in) in a container on a network every droplet joins, answering there under the
// cluster's public and private host names on 25060, with TLS from a CA made for it and nothing
// but TLS accepted (sslmode=require, as on DigitalOcean). Its databases and users are made with
// SQL as `doadmin`; its trusted sources (the database firewall) become its pg_hba.conf, so a
// client the rules do not name is refused by the server itself.
import { randomBytes, randomUUID } from "node:crypto";
import { isIP, isIPv6 } from "node:net";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SERVICE_IMAGES } from "../../hostContract";
import { containerIp, Droplet, ExecResult, run, sandboxLabelArgs, standInSource } from "../sandbox";
import { makeCertificates } from "../testCa";
import {
  ApiContext,
  ApiError,
  DropletRecord,
  get,
  Json,
  notFound,
  Route,
  text,
  unprocessable,
} from "./common";

const PORT = 25060;
/** Database sizes the API takes, with the storage each comes with. */
const DB_SIZES: Record<string, { storage_size_mib: number }> = {
  "db-s-1vcpu-1gb": { storage_size_mib: 10240 },
  "db-s-1vcpu-2gb": { storage_size_mib: 30720 },
  "db-s-2vcpu-4gb": { storage_size_mib: 61440 },
};
const PG_VERSIONS = ["13", "14", "15", "16", "17"];
const identifier = /^[a-z][a-z0-9_-]{0,62}$/;

interface Cluster {
  json: Json;
  container: string;
  caCert: string;
  /** Settles once the server answers (the cluster is then "online"). */
  started: Promise<void>;
  dbs: Set<string>;
  users: Map<string, Json>;
  rules: Json[];
}

export interface DatabaseService {
  routes: Route[];
  clusters: Map<string, Cluster>;
  /** The network a droplet joins to reach the clusters. */
  network: string;
  /** SQL as doadmin in a cluster's `database` (stdin), for the tests. */
  sql(clusterId: string, database: string, script: string): Promise<ExecResult>;
  close(): Promise<void>;
}

/** A create's or a resize's size and node count, or DigitalOcean's 422. */
function sizeAndNodes(body: Json): { size: { storage_size_mib: number }; nodes: number } {
  const size = DB_SIZES[text(body.size)];
  if (!size) throw unprocessable(`size must be one of ${Object.keys(DB_SIZES).join(", ")}`);
  const nodes = Number(body.num_nodes);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 3) throw unprocessable("num_nodes must be 1, 2 or 3");
  return { size, nodes };
}

/** A password as DigitalOcean makes them: AVNS_ and 20 letters and digits. */
const password = () =>
  `AVNS_${randomBytes(30)
    .toString("base64")
    .replace(/[^A-Za-z0-9]/g, "")
    .slice(0, 20)}`;

export async function databaseService(
  ctx: ApiContext,
  prefix: string,
  droplets: Map<number, DropletRecord>,
): Promise<DatabaseService> {
  const clusters = new Map<string, Cluster>();
  const network = `${prefix}db-net`;
  const labels = sandboxLabelArgs();
  const image = await standInSource(SERVICE_IMAGES.postgres);
  await run("docker", ["network", "create", ...labels, network]);

  const psql = (c: Cluster, database: string, script: string) =>
    run(
      "docker",
      [
        ...["exec", "-i", c.container, "psql", "-v", "ON_ERROR_STOP=1", "-qtA"],
        ...["-p", String(PORT), "-U", "doadmin", "-d", database],
      ],
      { input: script, check: false },
    );
  const mustSql = async (c: Cluster, database: string, script: string) => {
    const r = await psql(c, database, script);
    if (r.code !== 0) throw new ApiError(422, "unprocessable_entity", r.stderr.trim());
    return r.stdout;
  };
  const online = async (c: Cluster) => {
    await c.started;
    if (c.json.status !== "online") throw unprocessable(`the cluster is ${String(c.json.status)}`);
  };

  function connection(name: string, host: string, user: string, pass: string, database: string): Json {
    return {
      protocol: "postgresql",
      uri: `postgresql://${user}:${pass}@${host}:${PORT}/${database}?sslmode=require`,
      database,
      host,
      port: PORT,
      user,
      password: pass,
      ssl: true,
      name,
    };
  }

  /** The addresses a cluster's trusted sources admit, on its network (none: everyone, as on DigitalOcean). */
  async function trusted(rules: Json[]): Promise<string[]> {
    if (rules.length === 0) return ["0.0.0.0/0"];
    const out: string[] = [];
    for (const rule of rules) {
      const value = text(rule.value);
      if (rule.type === "ip_addr")
        out.push(value.includes("/") ? value : `${value}/${isIPv6(value) ? 128 : 32}`);
      else if (rule.type === "droplet" || rule.type === "tag") {
        const records = [...droplets.values()].filter((d) =>
          rule.type === "droplet" ? String(d.json.id) === value : (d.json.tags as string[]).includes(value),
        );
        for (const record of records) {
          await record.started;
          if (record.sandbox) out.push(`${await addressOn(record.sandbox)}/32`);
        }
      }
    }
    return out;
  }
  const addressOn = (sandbox: Droplet) => containerIp(sandbox.name, network);

  /** Writes the cluster's pg_hba.conf from its rules and reloads it: TLS and a password, from those addresses only. */
  async function applyRules(c: Cluster): Promise<void> {
    const lines = [
      "local all all trust",
      ...(await trusted(c.rules)).map((a) => `hostssl all all ${a} scram-sha-256`),
    ];
    await run("docker", ["exec", "-i", c.container, "sh", "-c", "cat >/etc/chitram-db/pg_hba.conf"], {
      input: `${lines.join("\n")}\n`,
    });
    await mustSql(c, "postgres", "SELECT pg_reload_conf();");
    // A file the server refuses leaves the old rules in force: say so rather than report the new.
    const errors = await mustSql(
      c,
      "postgres",
      "SELECT error FROM pg_hba_file_rules WHERE error IS NOT NULL;",
    );
    if (errors.trim()) throw unprocessable(`the trusted sources were not applied: ${errors.trim()}`);
  }

  async function startServer(c: Cluster, adminPassword: string, hosts: string[]): Promise<void> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-db-"));
    try {
      await makeCertificates(dir, hosts);
      c.caCert = fs.readFileSync(path.join(dir, "ca.crt"), "utf8");
      fs.writeFileSync(path.join(dir, "pg_hba.conf"), "local all all trust\n");
      // Key and config owned by postgres (uid 70 in the stand-in), as the server requires of its key.
      const start =
        "install -d -o postgres -g postgres -m 0700 /etc/chitram-db && " +
        "install -o postgres -g postgres -m 0600 /tmp/chitram-db/* /etc/chitram-db/ && " +
        "exec docker-entrypoint.sh postgres -c port=25060 -c ssl=on -c hba_file=/etc/chitram-db/pg_hba.conf " +
        "-c ssl_cert_file=/etc/chitram-db/server.crt -c ssl_key_file=/etc/chitram-db/server.key";
      await run(
        "docker",
        [
          ...["create", "--name", c.container, ...labels, "--network", network],
          ...hosts.flatMap((h) => ["--network-alias", h]),
          ...["-e", "POSTGRES_USER=doadmin", "-e", "POSTGRES_PASSWORD", "-e", "POSTGRES_DB=defaultdb"],
          // The data in memory: nothing of a cluster outlives its container.
          ...["--mount", "type=tmpfs,dst=/var/lib/postgresql/data"],
          ...["--entrypoint", "bash", image, "-c", start],
        ],
        { env: { ...process.env, POSTGRES_PASSWORD: adminPassword } },
      );
      await run("docker", ["cp", `${dir}/.`, `${c.container}:/tmp/chitram-db`]);
      await run("docker", ["start", c.container]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    for (let i = 0; ; i++) {
      const r = await run(
        "docker",
        ["exec", c.container, "pg_isready", "-q", "-p", String(PORT), "-h", "/var/run/postgresql"],
        {
          check: false,
        },
      );
      if (r.code === 0 && (await psql(c, "defaultdb", "SELECT 1;")).code === 0) break;
      if (i === 120) throw new Error(`the database server ${c.container} did not answer within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await applyRules(c);
  }

  function createCluster(body: Json): Json {
    const name = text(body.name);
    if (!/^[a-z][a-z0-9-]{1,61}[a-z0-9]$/.test(name))
      throw unprocessable("name must be 3-63 of a-z, 0-9 and -");
    if ([...clusters.values()].some((c) => c.json.name === name))
      throw unprocessable(`a database cluster named ${name} already exists`);
    if (body.engine !== "pg")
      throw unprocessable("this local API serves PostgreSQL clusters (engine pg) only");
    const version = text(body.version) || "16";
    if (!PG_VERSIONS.includes(version))
      throw unprocessable(`version must be one of ${PG_VERSIONS.join(", ")}`);
    const { size, nodes } = sizeAndNodes(body);
    const region = text(body.region);
    if (!region) throw unprocessable("region is required");
    const id = randomUUID();
    const host = `${name}-do-user-1-0.l.db.ondigitalocean.com`;
    const privateHost = `private-${host}`;
    const admin = password();
    const json: Json = {
      id,
      name,
      engine: "pg",
      version,
      semantic_version: `${version}.0`,
      num_nodes: nodes,
      size: body.size,
      region,
      status: "creating",
      created_at: ctx.now(),
      connection: connection(name, host, "doadmin", admin, "defaultdb"),
      private_connection: connection(name, privateHost, "doadmin", admin, "defaultdb"),
      users: [{ name: "doadmin", role: "primary", password: admin }],
      db_names: ["defaultdb"],
      maintenance_window: { day: "sunday", hour: "02:00:00", pending: false, description: [] },
      tags: Array.isArray(body.tags) ? body.tags : [],
      private_network_uuid: text(body.private_network_uuid) || `vpc-${region}-default`,
      project_id: text(body.project_id),
      storage_size_mib: Number(body.storage_size_mib) || size.storage_size_mib,
      metrics_endpoints: [{ host, port: 9273 }],
    };
    const cluster: Cluster = {
      json,
      container: `${prefix}db-${id.slice(0, 8)}`,
      caCert: "",
      started: Promise.resolve(),
      dbs: new Set(["defaultdb"]),
      users: new Map(),
      rules: [],
    };
    cluster.started = startServer(cluster, admin, [host, privateHost]).then(
      () => {
        if (clusters.has(id)) json.status = "online";
      },
      (e: Error) => {
        json.status = "errored";
        console.error(`local DigitalOcean API: database cluster ${name}: ${e.message}`);
      },
    );
    ctx.pending.push(cluster.started);
    clusters.set(id, cluster);
    return json;
  }

  const quoted = (name: string) => {
    if (!identifier.test(name))
      throw unprocessable("a name must be 1-63 of a-z, 0-9, _ and -, starting with a letter");
    return `"${name}"`;
  };
  const userJson = (u: Json) => ({ name: u.name, role: u.role, password: u.password });

  const routes: Route[] = [
    ["POST", /^\/v2\/databases$/, (_m, b) => [201, { database: createCluster(b) }]],
    [
      "GET",
      /^\/v2\/databases$/,
      () => [
        200,
        { databases: [...clusters.values()].map((c) => c.json), links: {}, meta: { total: clusters.size } },
      ],
    ],
    ["GET", /^\/v2\/databases\/([\w-]+)$/, ([, id]) => [200, { database: get(clusters, id).json }]],
    [
      "DELETE",
      /^\/v2\/databases\/([\w-]+)$/,
      ([, id]) => {
        const c = get(clusters, id);
        clusters.delete(id);
        ctx.pending.push(c.started.then(() => run("docker", ["rm", "-fv", c.container], { check: false })));
        return [204, undefined];
      },
    ],
    [
      "PUT",
      /^\/v2\/databases\/([\w-]+)\/resize$/,
      ([, id], b) => {
        const c = get(clusters, id);
        const { nodes } = sizeAndNodes(b);
        Object.assign(c.json, { size: b.size, num_nodes: nodes, status: "resizing" });
        if (b.storage_size_mib !== undefined) c.json.storage_size_mib = Number(b.storage_size_mib);
        // The server keeps running; the cluster is "online" again a little later, as on DigitalOcean.
        ctx.pending.push(
          new Promise((resolve) => setTimeout(resolve, 2000)).then(() => {
            c.json.status = "online";
          }),
        );
        return [202, undefined];
      },
    ],
    [
      "PUT",
      /^\/v2\/databases\/([\w-]+)\/maintenance$/,
      ([, id], b) => {
        const c = get(clusters, id);
        Object.assign(c.json.maintenance_window as Json, { day: text(b.day), hour: text(b.hour) });
        return [204, undefined];
      },
    ],
    [
      "GET",
      /^\/v2\/databases\/([\w-]+)\/ca$/,
      async ([, id]) => {
        const c = get(clusters, id);
        await c.started;
        return [200, { ca: { certificate: Buffer.from(c.caCert).toString("base64") } }];
      },
    ],
    [
      "POST",
      /^\/v2\/databases\/([\w-]+)\/dbs$/,
      async ([, id], b) => {
        const c = get(clusters, id);
        const name = text(b.name);
        await online(c);
        if (c.dbs.has(name)) throw unprocessable(`database ${name} already exists`);
        await mustSql(c, "defaultdb", `CREATE DATABASE ${quoted(name)};`);
        c.dbs.add(name);
        return [201, { db: { name } }];
      },
    ],
    [
      "GET",
      /^\/v2\/databases\/([\w-]+)\/dbs\/([\w-]+)$/,
      ([, id, name]) => {
        if (!get(clusters, id).dbs.has(name)) throw notFound();
        return [200, { db: { name } }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/databases\/([\w-]+)\/dbs\/([\w-]+)$/,
      async ([, id, name]) => {
        const c = get(clusters, id);
        if (!c.dbs.has(name) || name === "defaultdb") throw notFound();
        await mustSql(c, "defaultdb", `DROP DATABASE ${quoted(name)} WITH (FORCE);`);
        c.dbs.delete(name);
        return [204, undefined];
      },
    ],
    [
      "POST",
      /^\/v2\/databases\/([\w-]+)\/users$/,
      async ([, id], b) => {
        const c = get(clusters, id);
        const name = text(b.name);
        await online(c);
        if (c.users.has(name) || name === "doadmin") throw unprocessable(`user ${name} already exists`);
        const user: Json = { name, role: "normal", password: password() };
        // The password is letters, digits and _ only, so it needs no escaping; it goes on stdin.
        await mustSql(
          c,
          "defaultdb",
          `CREATE ROLE ${quoted(name)} LOGIN PASSWORD '${String(user.password)}';`,
        );
        c.users.set(name, user);
        return [201, { user: userJson(user) }];
      },
    ],
    [
      "GET",
      /^\/v2\/databases\/([\w-]+)\/users\/([\w-]+)$/,
      ([, id, name]) => [200, { user: userJson(get(get(clusters, id).users, name)) }],
    ],
    [
      "DELETE",
      /^\/v2\/databases\/([\w-]+)\/users\/([\w-]+)$/,
      async ([, id, name]) => {
        const c = get(clusters, id);
        get(c.users, name);
        // What the user owns goes to doadmin, database by database, then the role. A database
        // dropped meanwhile (the provider deletes a database and a user at the same time) is skipped.
        for (const db of [...c.dbs, "postgres"]) {
          const sql = `REASSIGN OWNED BY ${quoted(name)} TO doadmin; DROP OWNED BY ${quoted(name)};`;
          const r = await psql(c, db, sql);
          if (r.code !== 0 && !/database "[^"]+" does not exist/.test(r.stderr))
            throw unprocessable(r.stderr.trim());
        }
        await mustSql(c, "defaultdb", `DROP ROLE ${quoted(name)};`);
        c.users.delete(name);
        return [204, undefined];
      },
    ],
    ["GET", /^\/v2\/databases\/([\w-]+)\/firewall$/, ([, id]) => [200, { rules: get(clusters, id).rules }]],
    [
      "PUT",
      /^\/v2\/databases\/([\w-]+)\/firewall$/,
      async ([, id], b) => {
        const c = get(clusters, id);
        const rules = (Array.isArray(b.rules) ? (b.rules as Json[]) : []).map((r) => {
          if (!["ip_addr", "droplet", "tag", "k8s", "app"].includes(text(r.type)))
            throw unprocessable("a rule's type must be ip_addr, droplet, tag, k8s or app");
          if (!text(r.value)) throw unprocessable("a rule needs a value");
          if (r.type === "ip_addr") {
            const [ip, prefix, ...rest] = text(r.value).split("/");
            const bits = isIPv6(ip) ? 128 : 32;
            if (
              !isIP(ip) ||
              rest.length ||
              (prefix !== undefined && !(/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits))
            )
              throw unprocessable(
                `an ip_addr rule takes an IPv4 or IPv6 address or range, not ${text(r.value)}`,
              );
          }
          return {
            uuid: randomUUID(),
            cluster_uuid: id,
            type: r.type,
            value: r.value,
            created_at: ctx.now(),
          };
        });
        await online(c);
        c.rules = rules;
        await applyRules(c);
        return [204, undefined];
      },
    ],
  ];

  return {
    routes,
    clusters,
    network,
    sql: (id, database, script) => psql(get(clusters, id), database, script),
    close: async () => {
      for (const c of clusters.values()) {
        await c.started;
        await run("docker", ["rm", "-fv", c.container], { check: false });
      }
      clusters.clear();
      await run("docker", ["network", "rm", network], { check: false });
    },
  };
}
