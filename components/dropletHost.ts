import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { CLOUD_CONFIG } from "../render/cloudConfig";
import { doStackName } from "./doNames";

export interface DropletHostArgs {
  /** Region slug of the droplet, volume and project resources. */
  region: pulumi.Input<string>;
  /** Droplet size slug. */
  size: pulumi.Input<string>;
  /** Droplet image slug. */
  image: pulumi.Input<string>;
  /** OpenSSH public key that root accepts on first boot (the stack's admin key, never rotated). */
  publicKey: pulumi.Input<string>;
  /** CIDRs allowed to reach port 22. */
  sshAllowedCidrs: pulumi.Input<pulumi.Input<string>[]>;
  /** Size of a block volume for all app data; 0 = no volume. Plain: it decides which resources exist. */
  dataVolumeSizeGb: number;
  /** Protect the droplet and the data volume from deletion and replacement. Plain: a resource option. */
  protect: boolean;
  /** Zone and record name of the domain's A record; undefined = no record. Plain: it decides which resources exist. Default: undefined. */
  dns?: { zone: string; recordName: string };
  /** DigitalOcean project environment label. */
  environment: pulumi.Input<string>;
}

/**
 * A DigitalOcean droplet for the stack, with what a production host needs around it: the admin
 * key as a DigitalOcean SSH key (root's login on first boot), a cloud firewall, an optional data volume, the domain's A record and a DigitalOcean
 * project that groups them. The uptime check is not here: it must wait for the app (UptimeMonitor).
 */
export class DropletHost extends pulumi.ComponentResource {
  /** Public IPv4 address of the droplet. */
  public readonly ipv4Address: pulumi.Output<string>;
  /** The droplet's id (what a database firewall rule names). */
  public readonly dropletId: pulumi.Output<string>;
  /**
   * The data volume: its name and size, the volume itself (a resize must finish before the host
   * grows the filesystem) and the attachment the host steps wait for; undefined without one.
   */
  public readonly volume?: {
    name: string;
    sizeGb: number;
    volume: digitalocean.Volume;
    attachment: digitalocean.VolumeAttachment;
  };

  constructor(name: string, args: DropletHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chitram:digitalocean:DropletHost", name, {}, opts);
    const stack = doStackName(pulumi.getStack());
    // A new region or image replaces the droplet, and without a volume its disk holds all data:
    // both stay until someone turns protection off on purpose (docs/RUNBOOK.md).
    const { protect } = args;

    // Named after the stack, so a recreated staging stack never clashes with prod's key.
    const sshKey = new digitalocean.SshKey(
      `${name}-ssh-key`,
      { name: `${name}-${stack}-admin`, publicKey: args.publicKey },
      { parent: this },
    );

    const droplet = new digitalocean.Droplet(
      `${name}-droplet`,
      {
        name: `${name}-${stack}`,
        region: args.region,
        size: args.size,
        image: args.image,
        monitoring: true,
        ipv6: false,
        sshKeys: [sshKey.fingerprint],
        // Constant for every stack and config: a change here would replace the droplet.
        userData: CLOUD_CONFIG,
        tags: ["chitram", `chitram-${stack}`],
      },
      {
        parent: this,
        protect,
        // No ignoreChanges on sshKeys: the admin key seeds root and is never rotated, so they never
        // change, and a replaced droplet must get the key the stack logs in with, not a stored old
        // one. A replacement deletes the old droplet before it creates the new one: the provider
        // asks for that of a resource whose name stays the same (test/cloud/staging.test.ts).
      },
    );

    let volume: digitalocean.Volume | undefined;
    if (args.dataVolumeSizeGb > 0) {
      const volumeName = `${name}-${stack}-data`;
      volume = new digitalocean.Volume(
        `${name}-data`,
        {
          name: volumeName,
          region: args.region,
          size: args.dataVolumeSizeGb,
          initialFilesystemType: "ext4",
          description: `chitram ${pulumi.getStack()}: PostgreSQL, MinIO, Caddy data and backups`,
        },
        // The provider replaces a volume whose description changes: an edit must never do that.
        { parent: this, protect, ignoreChanges: ["description"] },
      );
      const attachment = new digitalocean.VolumeAttachment(
        `${name}-data-attachment`,
        { dropletId: droplet.id.apply(Number), volumeId: volume.id },
        // A volume attaches to one droplet at a time: the old attachment must go first.
        { parent: this, deleteBeforeReplace: true },
      );
      this.volume = { name: volumeName, sizeGb: args.dataVolumeSizeGb, volume, attachment };
    }

    const anywhere = ["0.0.0.0/0", "::/0"];
    new digitalocean.Firewall(
      `${name}-firewall`,
      {
        name: `${name}-${stack}`,
        dropletIds: [droplet.id.apply(Number)],
        inboundRules: [
          { protocol: "tcp", portRange: "22", sourceAddresses: args.sshAllowedCidrs },
          { protocol: "tcp", portRange: "80", sourceAddresses: anywhere },
          { protocol: "tcp", portRange: "443", sourceAddresses: anywhere },
        ],
        outboundRules: [
          { protocol: "tcp", portRange: "1-65535", destinationAddresses: anywhere },
          { protocol: "udp", portRange: "1-65535", destinationAddresses: anywhere },
          { protocol: "icmp", destinationAddresses: anywhere },
        ],
      },
      { parent: this },
    );

    if (args.dns !== undefined) {
      new digitalocean.DnsRecord(
        `${name}-a-record`,
        { domain: args.dns.zone, name: args.dns.recordName, type: "A", value: droplet.ipv4Address, ttl: 300 },
        { parent: this },
      );
    }

    new digitalocean.Project(
      `${name}-project`,
      {
        name: `${name}-${stack}`,
        description: `chitram web app, stack ${pulumi.getStack()}`,
        purpose: "Web Application",
        environment: args.environment,
        resources: volume ? [droplet.dropletUrn, volume.volumeUrn] : [droplet.dropletUrn],
      },
      { parent: this },
    );

    this.ipv4Address = droplet.ipv4Address;
    this.dropletId = droplet.id;
    this.registerOutputs({ ipv4Address: this.ipv4Address });
  }
}
