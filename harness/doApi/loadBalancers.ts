// The local DigitalOcean API's load balancers: each is a proxy (the sandbox's Caddy stand-in) in a
// container on a loopback address of its own, reported as the load balancer's IP, with each
// forwarding rule's entry port published there. It forwards to its droplets on a network they all
// join and honours the health check: a droplet is sent requests only while its check passes
// (Caddy's active health checks, with the check's path, port, interval, timeout and thresholds).
// A change of droplets or of the check is applied without a restart (a graceful config reload).
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SERVICE_IMAGES } from "../../hostContract";
import { containerIp, run, sandboxLabelArgs, standInSource } from "../sandbox";
import { ApiContext, DropletRecord, get, Json, Route, text, unprocessable } from "./common";

interface Balancer {
  json: Json;
  container: string;
  /** The entry ports the container publishes (a change needs a new container). */
  ports: number[];
}

export interface LoadBalancerService {
  routes: Route[];
  balancers: Map<string, Balancer>;
  /** The network droplets join to be reached by the load balancers. */
  network: string;
  close(): Promise<void>;
}

const HEALTH_DEFAULTS = {
  protocol: "http",
  port: 80,
  path: "/",
  check_interval_seconds: 10,
  response_timeout_seconds: 5,
  healthy_threshold: 5,
  unhealthy_threshold: 3,
};

export async function loadBalancerService(
  ctx: ApiContext,
  prefix: string,
  droplets: Map<number, DropletRecord>,
  nextAddress: () => string,
  /** Told a deleted load balancer's URN, which no project holds any more. */
  onDeleted: (urn: string) => void = () => undefined,
): Promise<LoadBalancerService> {
  const balancers = new Map<string, Balancer>();
  const network = `${prefix}lb-net`;
  const labels = sandboxLabelArgs();
  const image = await standInSource(SERVICE_IMAGES.caddy);
  await run("docker", ["network", "create", ...labels, network]);

  /** The droplets' addresses on the load balancers' network. */
  async function targets(json: Json): Promise<string[]> {
    const ids = (json.droplet_ids as number[]).map(String);
    const tag = text(json.tag);
    const out: string[] = [];
    for (const record of droplets.values()) {
      if (!(ids.includes(String(record.json.id)) || (tag && (record.json.tags as string[]).includes(tag))))
        continue;
      await record.started;
      if (!record.sandbox) continue;
      out.push(await containerIp(record.sandbox.name, network));
    }
    return out;
  }

  /** Caddy's JSON config: a server per forwarding rule, round robin over the healthy droplets. */
  async function caddyConfig(json: Json): Promise<string> {
    const health = json.health_check as typeof HEALTH_DEFAULTS;
    const addresses = await targets(json);
    const servers: Record<string, Json> = {};
    for (const rule of json.forwarding_rules as Json[]) {
      servers[`entry${String(rule.entry_port)}`] = {
        listen: [`:${String(rule.entry_port)}`],
        automatic_https: { disable: true },
        routes: [
          {
            handle: [
              {
                handler: "reverse_proxy",
                upstreams: addresses.map((a) => ({ dial: `${a}:${String(rule.target_port)}` })),
                load_balancing: {
                  selection_policy: {
                    policy: json.algorithm === "least_connections" ? "least_conn" : "round_robin",
                  },
                },
                health_checks: {
                  active: {
                    uri: health.path,
                    port: health.port,
                    interval: `${health.check_interval_seconds}s`,
                    timeout: `${health.response_timeout_seconds}s`,
                    passes: health.healthy_threshold,
                    fails: health.unhealthy_threshold,
                  },
                },
              },
            ],
          },
        ],
      };
    }
    return JSON.stringify({ admin: { listen: "localhost:2019" }, apps: { http: { servers } } });
  }

  function validate(body: Json): Json {
    if (!text(body.name)) throw unprocessable("name is required");
    if (!text(body.region)) throw unprocessable("region is required");
    const rules = Array.isArray(body.forwarding_rules) ? (body.forwarding_rules as Json[]) : [];
    if (rules.length === 0) throw unprocessable("at least one forwarding rule is required");
    for (const rule of rules) {
      // TLS termination needs a DigitalOcean certificate, and passthrough a TCP proxy: not served here.
      if (rule.entry_protocol !== "http" || rule.target_protocol !== "http")
        throw unprocessable("this local API forwards http to http only");
      for (const port of [rule.entry_port, rule.target_port])
        if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535)
          throw unprocessable("a forwarding rule's ports must be 1-65535");
    }
    const health = { ...HEALTH_DEFAULTS, ...((body.health_check as Json | undefined) ?? {}) };
    // Caddy's active checks are HTTP requests: a tcp or https check would be something else here.
    if (health.protocol !== "http")
      throw unprocessable(
        "this local API checks droplets' health over http only (health_check.protocol http)",
      );
    return {
      name: body.name,
      algorithm: text(body.algorithm) || "round_robin",
      forwarding_rules: rules.map((r) => ({ certificate_id: "", tls_passthrough: false, ...r })),
      health_check: health,
      sticky_sessions: body.sticky_sessions ?? { type: "none" },
      redirect_http_to_https: body.redirect_http_to_https === true,
      enable_proxy_protocol: body.enable_proxy_protocol === true,
      enable_backend_keepalive: body.enable_backend_keepalive === true,
      http_idle_timeout_seconds: Number(body.http_idle_timeout_seconds) || 60,
      disable_lets_encrypt_dns_records: body.disable_lets_encrypt_dns_records === true,
      droplet_ids: Array.isArray(body.droplet_ids) ? body.droplet_ids : [],
      tag: text(body.tag),
      vpc_uuid: text(body.vpc_uuid) || `vpc-${text(body.region)}-default`,
      project_id: text(body.project_id),
      firewall: body.firewall ?? { allow: [], deny: [] },
      ...(body.size_unit !== undefined
        ? { size_unit: body.size_unit }
        : { size: text(body.size) || "lb-small" }),
      type: text(body.type) || "REGIONAL",
      network: text(body.network) || "EXTERNAL",
      region: { slug: body.region, name: text(body.region).toUpperCase(), available: true },
    };
  }

  /** Starts (or, for new entry ports, replaces) the container, or reloads its config in place. */
  async function apply(lb: Balancer): Promise<void> {
    const config = await caddyConfig(lb.json);
    const ports = (lb.json.forwarding_rules as Json[]).map((r) => Number(r.entry_port)).sort();
    if (ports.join() === lb.ports.join()) {
      await run(
        "docker",
        [
          "exec",
          "-i",
          lb.container,
          "sh",
          "-c",
          "cat >/etc/caddy/lb.json && caddy reload --config /etc/caddy/lb.json",
        ],
        {
          input: config,
        },
      );
      return;
    }
    await run("docker", ["rm", "-fv", lb.container], { check: false });
    const address = String(lb.json.ip);
    await run("docker", [
      ...["create", "--name", lb.container, ...labels, "--network", network],
      ...ports.flatMap((p) => ["-p", `${address}:${p}:${p}`]),
      // Caddy's state in memory: no volume outlives the container.
      ...["--mount", "type=tmpfs,dst=/data", "--mount", "type=tmpfs,dst=/config"],
      ...["--entrypoint", "sh", image, "-c", "caddy run --config /etc/caddy/lb.json"],
    ]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-lb-"));
    try {
      fs.writeFileSync(path.join(dir, "lb.json"), config);
      await run("docker", ["cp", path.join(dir, "lb.json"), `${lb.container}:/etc/caddy/lb.json`]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    await run("docker", ["start", lb.container]);
    lb.ports = ports;
  }

  const routes: Route[] = [
    [
      "POST",
      /^\/v2\/load_balancers$/,
      async (_m, b) => {
        const id = randomUUID();
        const json: Json = {
          id,
          ...validate(b),
          ip: nextAddress(),
          ipv6: "",
          status: "new",
          created_at: ctx.now(),
          domains: [],
          target_load_balancer_ids: [],
        };
        const lb: Balancer = { json, container: `${prefix}lb-${id.slice(0, 8)}`, ports: [] };
        balancers.set(id, lb);
        try {
          await apply(lb);
        } catch (e) {
          // Nothing half-made stays, and a 422 is not retried by the provider (a 5xx would be, four times).
          balancers.delete(id);
          await run("docker", ["rm", "-fv", lb.container], { check: false });
          throw unprocessable(`the load balancer's proxy did not start: ${String(e)}`);
        }
        json.status = "active";
        return [202, { load_balancer: json }];
      },
    ],
    [
      "GET",
      /^\/v2\/load_balancers\/([\w-]+)$/,
      ([, id]) => [200, { load_balancer: get(balancers, id).json }],
    ],
    [
      "PUT",
      /^\/v2\/load_balancers\/([\w-]+)$/,
      async ([, id], b) => {
        const lb = get(balancers, id);
        Object.assign(lb.json, validate(b));
        await apply(lb).catch((e: Error) => {
          throw unprocessable(`the load balancer's proxy was not updated: ${e.message}`);
        });
        return [200, { load_balancer: lb.json }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/load_balancers\/([\w-]+)$/,
      async ([, id]) => {
        const lb = get(balancers, id);
        balancers.delete(id);
        onDeleted(`do:loadbalancer:${id}`);
        await run("docker", ["rm", "-fv", lb.container], { check: false });
        return [204, undefined];
      },
    ],
  ];

  return {
    routes,
    balancers,
    network,
    close: async () => {
      for (const lb of balancers.values()) await run("docker", ["rm", "-fv", lb.container], { check: false });
      balancers.clear();
      await run("docker", ["network", "rm", network], { check: false });
    },
  };
}
