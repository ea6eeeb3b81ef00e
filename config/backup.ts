// Backups: when they run, how long they are kept, who hears when they stop, and where they are
// copied off the host.
import * as pulumi from "@pulumi/pulumi";
import { cronProblem, heartbeatUrl, s3Bucket, s3Endpoint, s3Key } from "./checks";
import { fullKey as key } from "./keys";
import { ConfigReader } from "./read";
import { HostConfig } from "./host";

/**
 * Off-box copies: a Spaces bucket and key the stack creates (components/backupBucket.ts takes
 * these), or an S3 bucket the user has, with its keys (secret).
 */
export type OffsiteConfig =
  | {
      kind: "spaces";
      region: string;
      retentionDays: number;
      protect: boolean;
      /**
       * The bucket's S3 endpoint as the host reaches it: the DigitalOcean provider's Spaces
       * endpoint rendered for the region (spacesEndpointFor), https://<region>.digitaloceanspaces.com
       * unless the provider is pointed elsewhere.
       */
      endpoint: string;
    }
  | {
      kind: "existing";
      endpoint: string;
      bucket: string;
      accessKey: pulumi.Output<string>;
      secretKey: pulumi.Output<string>;
    };

export interface BackupConfig {
  /** Five-field cron expression, its fields separated by one space. */
  schedule: string;
  retentionDays: number;
  /** Hours without a successful backup after which the backup uptime check goes down. */
  alertAfterHours: number;
  /** Pinged after each backup (secret: its path is the check's token); undefined = none. */
  heartbeatUrl?: pulumi.Output<string>;
  /** Undefined = no off-box copies. */
  offsite?: OffsiteConfig;
}

const OFFSITE_KEYS = ["offsiteEndpoint", "offsiteBucket", "offsiteAccessKey", "offsiteSecretKey"] as const;

function heartbeatConfig(r: ConfigReader): pulumi.Output<string> | undefined {
  const url = r.str("backupHeartbeatUrl");
  if (url === "") return undefined;
  // Never echoed: its path is the token that lets anyone ping the check (or silence a failure).
  if (r.inPlaintext("backupHeartbeatUrl")) {
    r.problem(
      "backupHeartbeatUrl",
      "is set in plain text, so the check's token sits readable in the stack file; " +
        `set it as a secret: pulumi config set --secret ${key("backupHeartbeatUrl")} <url>`,
    );
  } else if (!heartbeatUrl.test(url)) {
    r.problem(
      "backupHeartbeatUrl",
      "the value set is not allowed; use an http(s) URL such as " +
        "https://hc-ping.com/<uuid>: no query string, credentials, quotes or trailing slash",
    );
  }
  return r.secret("backupHeartbeatUrl");
}

/** An S3 bucket from config, for a host the stack does not create. */
function existingBucket(r: ConfigReader): OffsiteConfig {
  const endpoint = r.str("offsiteEndpoint");
  const bucket = r.str("offsiteBucket");
  if (!s3Endpoint.test(endpoint)) {
    r.bad(
      "offsiteEndpoint",
      endpoint,
      "with offsiteBackups on a target existing host, set the S3 endpoint as https://host[:port]",
    );
  }
  if (!s3Bucket.test(bucket))
    r.bad("offsiteBucket", bucket, "set an existing bucket's name: 3-63 of a-z 0-9 . -");
  for (const k of ["offsiteAccessKey", "offsiteSecretKey"]) {
    // Not echoed: they are secrets.
    if (r.str(k) !== "" && r.inPlaintext(k)) {
      r.problem(
        k,
        "is set in plain text, so the bucket's key sits readable in the stack file; " +
          `set it as a secret: pulumi config set --secret ${key(k)}`,
      );
    } else if (!s3Key.test(r.str(k))) {
      r.problem(
        k,
        "with offsiteBackups on a target existing host, set it with --secret (8-128 of A-Z a-z 0-9 + / = _ -)",
      );
    }
  }
  return {
    kind: "existing",
    endpoint,
    bucket,
    accessKey: r.secret("offsiteAccessKey"),
    secretKey: r.secret("offsiteSecretKey"),
  };
}

function offsiteConfig(r: ConfigReader, host: HostConfig, retentionDays: number): OffsiteConfig | undefined {
  const on = r.bool("offsiteBackups");
  if (on && host.target === "existing") return existingBucket(r);
  for (const k of OFFSITE_KEYS) {
    if (r.str(k) !== "") {
      r.problem(
        k,
        "only used with offsiteBackups on a target existing host " +
          "(with target digitalocean the stack creates the bucket and its key); unset it",
      );
    }
  }
  return on && host.target === "digitalocean"
    ? {
        kind: "spaces",
        region: host.droplet.region,
        retentionDays,
        protect: host.droplet.protect,
        endpoint: spacesEndpointFor("", host.droplet.region),
      }
    : undefined;
}

/** DigitalOcean's Spaces endpoint template, the provider's default. */
export const DEFAULT_SPACES_ENDPOINT = "https://{{.Region}}.digitaloceanspaces.com";

/**
 * The DigitalOcean provider's Spaces endpoint for a region: its template (digitalocean:spacesEndpoint
 * or SPACES_ENDPOINT_URL; "" = DigitalOcean's) with {{.Region}} filled in, as the provider renders it.
 */
export function spacesEndpointFor(template: string, region: string): string {
  return (template || DEFAULT_SPACES_ENDPOINT).replace(/\{\{\s*\.Region\s*\}\}/g, region.toLowerCase());
}

export function backupConfig(r: ConfigReader, host: HostConfig): BackupConfig {
  const schedule = r.str("backupSchedule");
  const cron = cronProblem(schedule);
  if (cron)
    r.bad(
      "backupSchedule",
      schedule,
      `use a five-field cron expression such as "0 3 * * *" (this one ${cron})`,
    );
  const retentionDays = r.int("backupRetentionDays", 1, 365);
  return {
    schedule: schedule.trim().split(/\s+/).join(" "),
    retentionDays,
    alertAfterHours: r.int("backupAlertAfterHours", 2, 2000),
    heartbeatUrl: heartbeatConfig(r),
    offsite: offsiteConfig(r, host, retentionDays),
  };
}
