import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { CLOUD_CONFIG } from "../render/cloudConfig";
import { appHostSuffix, doStackName } from "./doNames";

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
  /**
   * App droplets behind a load balancer; undefined = one droplet that users reach directly.
   * Plain: it decides which resources exist. Default: undefined.
   */
  loadBalancer?: LoadBalancerArgs;
}

/** How the load balancer in front of several app droplets checks them and serves the site. */
export interface LoadBalancerArgs {
  /** App droplets: 2 or more. */
  hosts: number;
  /** Path of the app's health check (through Caddy on port 80). */
  healthPath: string;
  /** Domain served over HTTPS with DigitalOcean's Let's Encrypt certificate; undefined = IP mode, plain HTTP. */
  domain?: string;
}

/**
 * The load balancer's health check. A droplet taken out (its health path answers 503 while a
 * release drains it, host/steps/release/drain.sh) gets no new requests after at most
 * unhealthyThreshold checks, and one put back gets them again after healthyThreshold checks:
 * DigitalOcean's shortest interval and thresholds, so a release waits as little as it can.
 */
export const LB_HEALTH_CHECK = {
  checkIntervalSeconds: 3,
  responseTimeoutSeconds: 3,
  healthyThreshold: 2,
  unhealthyThreshold: 2,
};

/**
 * The longest a release waits for the load balancer's checks to take its droplet out (to see
 * unhealthyThreshold 503s), and again to put it back (healthyThreshold passes): about 10 s each
 * with the check above; a load balancer that does not check the droplet fails the step
 * (host/steps/release/drain.sh).
 */
export const LB_WAIT_SECONDS = 60;

/** One app droplet: its address and id. */
export interface AppDroplet {
  ipv4Address: pulumi.Output<string>;
  dropletId: pulumi.Output<string>;
}

/**
 * A DigitalOcean droplet for the stack, with what a production host needs around it: the admin
 * key as a DigitalOcean SSH key (root's login on first boot), a cloud firewall, an optional data volume, the domain's A record and a DigitalOcean
 * project that groups them. The uptime check is not here: it must wait for the app (UptimeMonitor).
 * With `loadBalancer`: several app droplets behind a DigitalOcean load balancer, the only source
 * their firewall admits on port 80, which ends TLS in domain mode.
 */
export class DropletHost extends pulumi.ComponentResource {
  /** Public IPv4 address of the (first) droplet. */
  public readonly ipv4Address: pulumi.Output<string>;
  /** Every app droplet, the first one first (what a database firewall admits). */
  public readonly droplets: AppDroplet[];
  /** Where users reach the site: the load balancer's address, or the droplet's. */
  public readonly publicIp: pulumi.Output<string>;
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

    // The first droplet keeps the single droplet's names: a stack that grows keeps it.
    const lbArgs = args.loadBalancer;
    const droplets = Array.from({ length: lbArgs?.hosts ?? 1 }, (_, i) => {
      const suffix = appHostSuffix(i);
      return new digitalocean.Droplet(
        `${name}-droplet${suffix}`,
        {
          name: `${name}-${stack}${suffix}`,
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
          // The other app droplets hold no data (config/scale.ts): going back to fewer deletes them.
          protect: protect && i === 0,
          // No ignoreChanges on sshKeys: the admin key seeds root and is never rotated, so they never
          // change, and a replaced droplet must get the key the stack logs in with, not a stored old
          // one. A replacement deletes the old droplet before it creates the new one: the provider
          // asks for that of a resource whose name stays the same (test/cloud/staging.test.ts).
        },
      );
    });
    const [droplet] = droplets;

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

    const lb = lbArgs && loadBalancer(name, stack, args.region, lbArgs, droplets, this);

    const anywhere = ["0.0.0.0/0", "::/0"];
    new digitalocean.Firewall(
      `${name}-firewall`,
      {
        name: `${name}-${stack}`,
        dropletIds: droplets.map((d) => d.id.apply(Number)),
        inboundRules: [
          { protocol: "tcp", portRange: "22", sourceAddresses: args.sshAllowedCidrs },
          // Behind the load balancer: port 80 from it alone (it ends TLS, so 443 stays closed).
          ...(lb
            ? [{ protocol: "tcp", portRange: "80", sourceLoadBalancerUids: [lb.id] }]
            : [
                { protocol: "tcp", portRange: "80", sourceAddresses: anywhere },
                { protocol: "tcp", portRange: "443", sourceAddresses: anywhere },
              ]),
        ],
        outboundRules: [
          { protocol: "tcp", portRange: "1-65535", destinationAddresses: anywhere },
          { protocol: "udp", portRange: "1-65535", destinationAddresses: anywhere },
          { protocol: "icmp", destinationAddresses: anywhere },
        ],
      },
      { parent: this },
    );

    const publicIp = lb ? lb.ip : droplet.ipv4Address;
    if (args.dns !== undefined) {
      new digitalocean.DnsRecord(
        `${name}-a-record`,
        { domain: args.dns.zone, name: args.dns.recordName, type: "A", value: publicIp, ttl: 300 },
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
        resources: [
          ...droplets.map((d) => d.dropletUrn),
          ...(volume ? [volume.volumeUrn] : []),
          ...(lb ? [lb.loadBalancerUrn] : []),
        ],
      },
      { parent: this },
    );

    this.ipv4Address = droplet.ipv4Address;
    this.droplets = droplets.map((d) => ({ ipv4Address: d.ipv4Address, dropletId: d.id }));
    this.publicIp = publicIp;
    this.registerOutputs({ ipv4Address: this.ipv4Address });
  }
}

/**
 * The load balancer: HTTP to each droplet's Caddy on port 80, to the droplets whose health path
 * answers. In IP mode it forwards port 80; in domain mode it ends HTTPS on 443 with a Let's
 * Encrypt certificate DigitalOcean obtains and renews for the domain (its zone in DigitalOcean's
 * DNS) and redirects HTTP to HTTPS.
 */
function loadBalancer(
  name: string,
  stack: string,
  region: pulumi.Input<string>,
  args: LoadBalancerArgs,
  droplets: digitalocean.Droplet[],
  parent: pulumi.Resource,
): digitalocean.LoadBalancer {
  const http = { entryProtocol: "http", entryPort: 80, targetProtocol: "http", targetPort: 80 };
  let forwardingRules: digitalocean.types.input.LoadBalancerForwardingRule[] = [http];
  if (args.domain !== undefined) {
    // No fixed name: a new domain's certificate is made before the old one goes (the load
    // balancer is moved to it in between), so the two must not share a name.
    const certificate = new digitalocean.Certificate(
      `${name}-certificate`,
      { type: "lets_encrypt", domains: [args.domain] },
      { parent },
    );
    forwardingRules = [
      { ...http, entryProtocol: "https", entryPort: 443, certificateName: certificate.name },
      http,
    ];
  }
  return new digitalocean.LoadBalancer(
    `${name}-lb`,
    {
      name: `${name}-${stack}`,
      region,
      sizeUnit: 1,
      dropletIds: droplets.map((d) => d.id.apply(Number)),
      forwardingRules,
      redirectHttpToHttps: args.domain !== undefined,
      healthcheck: {
        protocol: "http",
        port: 80,
        path: args.healthPath,
        ...LB_HEALTH_CHECK,
      },
    },
    { parent },
  );
}
