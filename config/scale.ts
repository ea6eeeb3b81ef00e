// How many app droplets serve the site: one (the default, today's single droplet) or N behind a
// DigitalOcean load balancer. Several droplets share nothing but what lives off them, so they
// need the managed database and the Spaces bucket; their disks hold only Caddy's state.
import { DatabaseConfig, ObjectStoreConfig } from "./database";
import { HostConfig } from "./host";
import { ConfigReader } from "./read";
import { SiteConfig } from "./site";

/** The most app droplets one stack runs behind its load balancer. */
export const MAX_APP_HOSTS = 10;

/** The number of app droplets: 1, or 2 to MAX_APP_HOSTS behind a load balancer. */
export function appHostsConfig(
  r: ConfigReader,
  host: HostConfig,
  site: SiteConfig,
  database: DatabaseConfig,
  objects: ObjectStoreConfig,
): number {
  const appHosts = r.int("appHosts", 1, MAX_APP_HOSTS);
  if (appHosts <= 1 || r.hasProblem("appHosts")) return appHosts;
  const n = String(appHosts);
  if (host.target === "existing") {
    r.bad(
      "appHosts",
      n,
      "with target existing use 1 (the load balancer and the other droplets are DigitalOcean resources)",
    );
    return appHosts;
  }
  // Each droplet would have a database and objects of its own, and a user's next request lands
  // on another one.
  if (database.kind !== "managed")
    r.bad("appHosts", n, "use 1, or set database to managed: several droplets must share one database");
  if (objects.kind !== "spaces")
    r.bad("appHosts", n, "use 1, or set objectStore to spaces: several droplets must share one object store");
  if (host.droplet.dataVolumeSizeGb > 0)
    r.bad(
      "dataVolumeSizeGb",
      r.str("dataVolumeSizeGb"),
      `use 0 with appHosts ${n}: the droplets hold no data (it is in the managed database and the bucket)`,
    );
  // The load balancer ends TLS with a Let's Encrypt certificate DigitalOcean obtains and renews,
  // which needs the domain's zone in DigitalOcean's DNS.
  if (site.domain !== undefined && host.droplet.dns === undefined)
    r.bad(
      "manageDns",
      "false",
      `set it to true with appHosts ${n} and a domain: the load balancer's certificate is DigitalOcean's Let's Encrypt certificate, which needs the domain's zone in DigitalOcean DNS`,
    );
  // The backup uptime check reads a status file on the droplet that backs up (the first), and
  // through the load balancer would reach any: the heartbeat URL reports backups instead.
  if (site.alertEmails.length > 0 && r.str("backupHeartbeatUrl") === "")
    r.bad(
      "backupHeartbeatUrl",
      "",
      `set it with appHosts ${n} and alertEmails (pulumi config set --secret chitram:backupHeartbeatUrl <url>): the backup uptime check cannot watch one droplet of several`,
    );
  if (site.domain !== undefined && site.acmeCa !== undefined)
    r.bad(
      "acmeCa",
      r.str("acmeCa"),
      `use letsencrypt with appHosts ${n}: the load balancer's certificate comes from DigitalOcean's Let's Encrypt integration`,
    );
  return appHosts;
}
