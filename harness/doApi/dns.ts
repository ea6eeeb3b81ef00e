// The local DigitalOcean API's domain records, under the domains the API is started with (the
// stack manages records, never the domain itself).
import * as net from "node:net";
import { ApiContext, ApiError, get, Json, notFound, Route, text } from "./common";

/** Runs after an A record is made, changed or deleted (address undefined), with the name it answers for. */
export type ARecordHook = (fqdn: string, address: string | undefined) => Promise<void>;

export function dnsService(
  ctx: ApiContext,
  names: readonly string[],
  onARecord?: ARecordHook,
): { routes: Route[]; domains: Map<string, Map<number, Json>> } {
  const domains = new Map<string, Map<number, Json>>(names.map((d) => [d, new Map()]));

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
    if (record.type !== "A" || !onARecord) return;
    const fqdn = record.name === "@" ? domain : `${String(record.name)}.${domain}`;
    ctx.pending.push(
      onARecord(fqdn, deleted ? undefined : String(record.data)).catch((e: Error) =>
        console.error(`local DigitalOcean API: the A record of ${fqdn}: ${e.message}`),
      ),
    );
  }

  const zone = (name: string) => {
    const records = domains.get(name);
    if (!records) throw notFound();
    return records;
  };

  const routes: Route[] = [
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
        const record = domainRecord(b, ctx.nextId());
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
  return { routes, domains };
}
