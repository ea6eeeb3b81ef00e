// The app's objects in DigitalOcean Spaces (`objectStore: spaces`): a private bucket that keeps
// versions, and a Spaces key that may read and write that bucket only (the app's S3 key).
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { doStackName } from "./doNames";

export interface AppBucketArgs {
  /** Spaces region of the bucket: the droplet's. */
  region: pulumi.Input<string>;
  /** The S3 endpoint the app uses: the provider's Spaces endpoint for the region (config/). */
  endpoint: string;
  /** Protect the bucket from deletion (protectData). Plain: a resource option. */
  protect: boolean;
  /** Days an overwritten or deleted object's version is kept (backupRetentionDays + 30). */
  versionDays: number;
}

/** What the app's env file takes: the endpoint, the bucket and the key (secret). */
export interface AppObjectStore {
  endpoint: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
}

/**
 * The bucket keeps versions: an object the app overwrites or deletes stays as a noncurrent
 * version for `versionDays`, which is how a deleted object is recovered (docs/RUNBOOK.md, "Recover
 * a deleted object"), as long as the host keeps its backups and a month more. No rule ever expires
 * a current object. The provider refuses to delete a bucket that holds objects (no forceDestroy),
 * with or without protectData.
 */
export class AppBucket extends pulumi.ComponentResource {
  /** The bucket's name (the provider names it: the logical name and a random suffix). */
  public readonly bucket: pulumi.Output<string>;
  /** Endpoint, bucket and key, for the env file (secret: the key). */
  public readonly store: pulumi.Output<AppObjectStore>;

  constructor(name: string, args: AppBucketArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chitram:digitalocean:AppBucket", name, {}, opts);
    const bucket = new digitalocean.SpacesBucket(
      name,
      {
        region: args.region,
        acl: "private",
        versioning: { enabled: true },
        lifecycleRules: [
          {
            id: "chitram-object-versions",
            enabled: true,
            noncurrentVersionExpiration: { days: args.versionDays },
            // a delete marker whose versions have all expired
            expiration: { expiredObjectDeleteMarker: true },
          },
        ],
      },
      { parent: this, protect: args.protect },
    );
    const key = new digitalocean.SpacesKey(
      `${name}-key`,
      {
        name: `chitram-${doStackName(pulumi.getStack())}-objects`,
        grants: [{ bucket: bucket.name, permission: "readwrite" }],
      },
      { parent: this, additionalSecretOutputs: ["secretKey", "accessKey"] },
    );
    this.bucket = bucket.name;
    this.store = pulumi.secret(
      pulumi
        .all([bucket.name, key.accessKey, key.secretKey])
        .apply(([b, accessKey, secretKey]) => ({ endpoint: args.endpoint, bucket: b, accessKey, secretKey })),
    );
    this.registerOutputs({ bucket: this.bucket });
  }
}
