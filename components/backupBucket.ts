import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { OffsiteTarget } from "../render/hostConfig";
import { doStackName } from "./doNames";

export interface BackupBucketArgs {
  /** Spaces region of the bucket (e.g. nyc3). */
  region: pulumi.Input<string>;
  /** The S3 endpoint the host copies to: the provider's Spaces endpoint for the region (config/backup.ts). */
  endpoint: string;
  /** Days a backup is kept; an overwritten or deleted copy's version is kept longer. */
  retentionDays: number;
  /** Days after the retention a deleted or overwritten copy's version is still kept. Default: 30. */
  versionGraceDays?: number;
  /** Protect the bucket from deletion. Plain: a resource option. */
  protect: boolean;
}

/**
 * A Spaces bucket for off-box backups and a Spaces key that can read and write that bucket only.
 * The bucket keeps versions: what the host's retention deletes (backup.sh keeps the newest
 * BACKUP_KEEP_GOOD sets that hold data) or anything else overwrites or deletes becomes a
 * noncurrent version, kept `retentionDays + versionGraceDays` days by the lifecycle rule. No rule
 * ever expires a current object: backups that stop leave the last ones where they are.
 */
export class BackupBucket extends pulumi.ComponentResource {
  /** The bucket's name. */
  public readonly bucket: pulumi.Output<string>;
  /** The S3 endpoint of the bucket's region (https://<region>.digitaloceanspaces.com on DigitalOcean). */
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
        versioning: { enabled: true },
        lifecycleRules: [
          {
            id: "chitram-backup-versions",
            enabled: true,
            noncurrentVersionExpiration: { days: args.retentionDays + (args.versionGraceDays ?? 30) },
            // a delete marker whose versions have all expired
            expiration: { expiredObjectDeleteMarker: true },
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
    this.endpoint = pulumi.output(args.endpoint);
    this.accessKey = pulumi.secret(key.accessKey);
    this.secretKey = pulumi.secret(key.secretKey);
    this.offsite = offsiteTarget(this);
    this.registerOutputs({
      bucket: this.bucket,
      endpoint: this.endpoint,
      accessKey: this.accessKey,
      secretKey: this.secretKey,
    });
  }
}

/** Where backups are copied off the host: an S3 endpoint and bucket, and the (secret) keys for it. */
export function offsiteTarget(store: {
  endpoint: pulumi.Input<string>;
  bucket: pulumi.Input<string>;
  accessKey: pulumi.Input<string>;
  secretKey: pulumi.Input<string>;
}): pulumi.Output<OffsiteTarget> {
  return pulumi
    .all([store.endpoint, store.bucket, store.accessKey, store.secretKey])
    .apply(([endpoint, bucket, accessKey, secretKey]) => ({ endpoint, bucket, accessKey, secretKey }));
}
