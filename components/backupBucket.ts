import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { OffsiteTarget } from "../templates/hostConfig";
import { doStackName } from "./dropletHost";

export interface BackupBucketArgs {
  /** Spaces region of the bucket (e.g. nyc3). Default: none (required). */
  region: pulumi.Input<string>;
  /** Days the host keeps a backup; the bucket's lifecycle rule expires objects later. Default: none (required). */
  retentionDays: number;
  /** Days after the retention the lifecycle rule still keeps an object. Default: 14. */
  lifecycleGraceDays?: number;
  /** Protect the bucket from deletion. Plain: a resource option. Default: none (required). */
  protect: boolean;
}

/**
 * A Spaces bucket for off-box backups and a Spaces key that can read and write that bucket only.
 * backup.sh prunes the bucket to the same retention as the host, always keeping the newest
 * backup; the lifecycle rule is the backstop for a host that no longer prunes (gone, or its
 * backups failing): it expires objects `lifecycleGraceDays` later, so the last backups of a lost
 * host outlive it by that long.
 */
export class BackupBucket extends pulumi.ComponentResource {
  /** The bucket's name. */
  public readonly bucket: pulumi.Output<string>;
  /** The S3 endpoint of the bucket's region (https://<region>.digitaloceanspaces.com). */
  public readonly endpoint: pulumi.Output<string>;
  /** The scoped key's access key id (secret). */
  public readonly accessKey: pulumi.Output<string>;
  /** The scoped key's secret key (secret). */
  public readonly secretKey: pulumi.Output<string>;
  /** All four, as the host's backup copies to them. */
  public readonly offsite: pulumi.Output<OffsiteTarget>;

  constructor(name: string, args: BackupBucketArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chitram:backup:BackupBucket", name, {}, opts);
    const bucket = new digitalocean.SpacesBucket(
      `${name}`,
      {
        region: args.region,
        acl: "private",
        lifecycleRules: [
          {
            id: "chitram-backup-retention",
            enabled: true,
            expiration: { days: args.retentionDays + (args.lifecycleGraceDays ?? 14) },
            abortIncompleteMultipartUploadDays: 1,
          },
        ],
      },
      { parent: this, protect: args.protect },
    );
    const key = new digitalocean.SpacesKey(
      `${name}-key`,
      {
        name: `chitram-${doStackName(pulumi.getStack())}-backups`,
        grants: [{ bucket: bucket.name, permission: "readwrite" }],
      },
      { parent: this, additionalSecretOutputs: ["secretKey", "accessKey"] },
    );
    this.bucket = bucket.name;
    this.endpoint = pulumi.interpolate`https://${bucket.region}.digitaloceanspaces.com`;
    this.accessKey = pulumi.secret(key.accessKey);
    this.secretKey = pulumi.secret(key.secretKey);
    this.offsite = offsiteTarget(this, this);
    this.registerOutputs({
      bucket: this.bucket,
      endpoint: this.endpoint,
      accessKey: this.accessKey,
      secretKey: this.secretKey,
    });
  }
}

/** Where backups are copied off the host: an S3 endpoint and bucket, and the (secret) keys for it. */
export function offsiteTarget(
  store: { endpoint: pulumi.Input<string>; bucket: pulumi.Input<string> },
  keys: { accessKey: pulumi.Input<string>; secretKey: pulumi.Input<string> },
): pulumi.Output<OffsiteTarget> {
  return pulumi
    .all([store.endpoint, store.bucket, keys.accessKey, keys.secretKey])
    .apply(([endpoint, bucket, accessKey, secretKey]) => ({ endpoint, bucket, accessKey, secretKey }));
}
