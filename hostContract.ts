// What the host and everything that talks to it agree on: paths, file names, the compose project
// and its service images. Components and renderers put these onto the host, host.env hands
// them to host/scripts/, and the tests and tools check the host against them. docs/HOST-LAYOUT.md
// describes each.

/** The app directory: compose file, Caddyfile, env file, host.env and scripts/. */
export const APP_DIR = "/opt/chitram";
/** Where a data volume is mounted; with one, all data and backups live on it. */
export const VOLUME_MOUNT = "/mnt/chitram-data";
/** The data directory when there is no volume. */
export const LOCAL_DATA_DIR = "/var/lib/chitram";
/** The app's env file, in APP_DIR (0600, secrets). */
export const ENV_FILE_NAME = ".env.production";
/** PostgreSQL's and MinIO's own env files, in APP_DIR (0600): an app env change leaves them running. */
export const SERVICE_ENV_FILES = { postgres: ".env.postgres", minio: ".env.minio" } as const;
/**
 * With a managed database (`database: managed`): the directory in APP_DIR that holds the cluster's
 * CA certificate (ca.crt), mounted read-only at DB_CA_MOUNT in the app and the pgclient containers,
 * which verify the cluster's certificate and host name with it (sslmode verify-full).
 */
export const DB_CA_DIR = "db";
export const DB_CA_MOUNT = "/etc/chitram/db";
/**
 * The file in APP_DIR/caddy, beside the Caddyfile, that names the app container Caddy proxies to
 * (`to <container>:<port>`). The release step (host/steps/composeUp.sh) writes it once a new
 * container is healthy and reloads Caddy; a restarted Caddy reads it again, so it always proxies
 * to the live container.
 */
export const APP_UPSTREAM_FILE = "app-upstream.caddy";
/** One line per release that went live, in APP_DIR: written by the release step, read by the next one. */
export const RELEASES_LOG_NAME = "releases.log";
/** The compose project name (`docker compose -p`), set in the compose file. */
export const COMPOSE_PROJECT = "chitram";
/** The backup cron entry. */
export const CRON_PATH = "/etc/cron.d/chitram-backup";
/** Where backup.sh logs. */
export const BACKUP_LOG = "/var/log/chitram-backup.log";
/**
 * Where Caddy answers 200 while the last backup run succeeded within backupAlertAfterHours, 404
 * otherwise: what the backup uptime check watches (components/uptimeMonitor.ts).
 */
export const BACKUP_STATUS_URL_PATH = "/.well-known/chitram/backup-fresh";
/** The file behind it, relative to the app directory (Caddy sees caddy/ as /etc/caddy). */
export const BACKUP_STATUS_FILE = "caddy/status/backup-fresh";
/**
 * Behind a load balancer: while this file exists (a release is under way), Caddy answers the load
 * balancer's health checks with 503 (render/caddyfile.ts). Relative to the app directory, in a
 * directory the deploy user owns.
 */
export const LB_DRAIN_FILE = "caddy/lb/draining";
/** The ACME CA's roots the health check trusts besides the host's store (relative to the app directory). */
export const ACME_CA_ROOTS_FILE = "acme-ca-roots.pem";
/** The credentials of the release that went live, for a rotation's rollback (relative to the app directory). */
export const LIVE_DIR_NAME = ".live";
/** Every app image a release tried, for the pruning after the next one that goes live. */
export const APP_IMAGES_LOG_NAME = "app-images.log";
/**
 * The lock of the release step, which a backup takes too while it has MinIO paused (relative to
 * the app directory; readable by the deploy user and root, whichever made it).
 */
export const RELEASE_LOCK_NAME = ".release.lock";
/** The newest backup sets that hold data, kept whatever their age (here and off the box). */
export const BACKUP_KEEP_GOOD = 3;
/** MB a backup leaves free on the disk it writes to (the live data's disk). */
export const BACKUP_MIN_FREE_MB = 1024;
/** The backup's secrets (root only, 0600 in a 0700 directory), sourced by backup.sh and restore.sh. */
export const BACKUP_SECRETS_PATH = "/etc/chitram/backup.env";
/** The sshd drop-in that turns passwords off and closes root login. */
export const SSHD_DROPIN_PATH = "/etc/ssh/sshd_config.d/00-chitram.conf";
/** The systemd drop-in that keeps docker.service from starting before the data volume is mounted. */
export const DOCKER_MOUNT_DROPIN_PATH = "/etc/systemd/system/docker.service.d/chitram-data.conf";
/** The swap file. */
export const SWAP_FILE = "/swapfile";

/** Images of the services the stack runs next to the app. Pinned: an upgrade is a reviewed change. */
export const SERVICE_IMAGES = {
  postgres: "postgres:16-alpine",
  minio: "minio/minio:RELEASE.2024-11-07T00-52-20Z",
  caddy: "caddy:2.8-alpine",
} as const;

/** The app stand-in the sandbox builds; `appImage` of every sandbox deployment. */
export const SANDBOX_APP_IMAGE = "chitram-app:sandbox";

/**
 * The site's URLs, built in one place: `url` is what users open (HTTPS on the domain, or plain
 * HTTP on `address` in IP mode, retro #8) and `healthUrl` what health checks GET, through Caddy.
 * `address` (unused with a domain) is the droplet's IP for users and uptime checks, 127.0.0.1 for
 * the host's own check.
 */
export function siteUrls(
  site: { domain?: string; healthPath: string },
  address: string,
): { url: string; healthUrl: string } {
  const url = site.domain ? `https://${site.domain}` : `http://${address}`;
  return { url, healthUrl: `${url}${site.healthPath}` };
}
