// Where PostgreSQL runs: in the compose project on the host (the default), or as a DigitalOcean
// Managed PostgreSQL cluster the stack creates (`database: managed`, target digitalocean only).
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
