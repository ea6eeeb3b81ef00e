// Where the app's data lives. PostgreSQL: in the compose project on the host (the default), or a
// DigitalOcean Managed PostgreSQL cluster the stack creates (`database: managed`). Objects: MinIO
// in the compose project (the default), or a Spaces bucket the stack creates (`objectStore:
// spaces`). The managed services are for target digitalocean only.
import { spacesEndpointFor } from "./backup";
import { Target } from "./host";
import { ConfigReader } from "./read";

export const DATABASE_KINDS = ["container", "managed"] as const;

/**
 * Managed PostgreSQL sizes (DigitalOcean's `doctl databases options slugs --engine pg`), smallest
 * first. A size DigitalOcean adds later is taken when its slug reads like one of these.
 */
export const DATABASE_SIZES = [
  "db-s-1vcpu-1gb",
  "db-s-1vcpu-2gb",
  "db-s-2vcpu-4gb",
  "db-s-4vcpu-8gb",
  "db-s-6vcpu-16gb",
  "db-s-8vcpu-32gb",
  "db-s-16vcpu-64gb",
] as const;
const DATABASE_SIZE = /^db-[a-z0-9]+-[0-9]+vcpu-[0-9]+gb$/;

/** The PostgreSQL major version of a managed cluster (the one the container runs too). */
export const MANAGED_PG_VERSION = "16";

export type DatabaseConfig =
  | { kind: "container" }
  | {
      kind: "managed";
      /** Size slug of each node. */
      size: string;
      /** 1 = a primary alone; 2 or 3 adds standby nodes that take over on failure. */
      nodes: number;
    };

export function databaseConfig(r: ConfigReader, target: Target): DatabaseConfig {
  const kind = r.oneOf("database", DATABASE_KINDS);
  const size = r.str("databaseSize");
  if (!DATABASE_SIZE.test(size))
    r.bad("databaseSize", size, `use a Managed PostgreSQL size slug: ${DATABASE_SIZES.join(", ")}`);
  const nodes = r.int("databaseNodes", 1, 3);
  // "Standby nodes are only supported for plans with 2 GB of RAM or more" (DigitalOcean, "How to
  // Add Standby Nodes to PostgreSQL Database Clusters").
  const memoryGb = Number(/-([0-9]+)gb$/.exec(size)?.[1] ?? "0");
  if (kind === "managed" && nodes > 1 && DATABASE_SIZE.test(size) && memoryGb < 2)
    r.bad(
      "databaseNodes",
      String(nodes),
      `use 1 with databaseSize ${size}: standby nodes need a size with 2 GB or more, e.g. db-s-1vcpu-2gb`,
    );
  if (kind === "managed" && target === "existing")
    r.bad(
      "database",
      kind,
      "with target existing use container (a managed cluster admits DigitalOcean droplets only)",
    );
  return kind === "managed" ? { kind, size, nodes } : { kind: "container" };
}

export const OBJECT_STORES = ["minio", "spaces"] as const;

export type ObjectStoreConfig =
  | { kind: "minio" }
  | {
      kind: "spaces";
      /** The bucket's region: the droplet's. */
      region: string;
      /** Protect the bucket from deletion (protectData). */
      protect: boolean;
      /**
       * The bucket's S3 endpoint as the app reaches it: the provider's Spaces endpoint for the
       * region (config/backup.ts, spacesEndpointFor), set by loadConfig.
       */
      endpoint: string;
    };

/** Where the app's objects live: MinIO in the compose project, or a Spaces bucket the stack creates. */
export function objectStoreConfig(
  r: ConfigReader,
  host: { target: Target; droplet?: { region: string; protect: boolean } },
): ObjectStoreConfig {
  const kind = r.oneOf("objectStore", OBJECT_STORES);
  if (kind === "spaces" && (host.target === "existing" || host.droplet === undefined)) {
    r.bad("objectStore", kind, "with target existing use minio (Spaces buckets are DigitalOcean resources)");
    return { kind: "minio" };
  }
  return kind === "spaces" && host.droplet
    ? {
        kind,
        region: host.droplet.region,
        protect: host.droplet.protect,
        endpoint: spacesEndpointFor("", host.droplet.region),
      }
    : { kind: "minio" };
}
