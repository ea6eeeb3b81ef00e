// The host the stack deploys to, as provisioning sees it: a new droplet (DropletHost) or an SSH
// host from config. Everything after this point is the same for both.
import * as pulumi from "@pulumi/pulumi";
import { LOCAL_DATA_DIR, VOLUME_MOUNT } from "../hostContract";
import { DropletHost } from "./dropletHost";

export interface HostTarget {
  /** The host's public address: what users, the uptime check and `sshCommand` reach. */
  publicIp: pulumi.Output<string>;
  /** Address every step dials. */
  host: pulumi.Input<string>;
  /** SSH port. */
  port: number;
  /** User of the first connection: root, or a user with passwordless sudo. */
  bootstrapUser: string;
  /** Private key of the first connection. */
  bootstrapPrivateKey: pulumi.Input<string>;
  /** The host's SSH host key, pinned after first contact; undefined = the key the first step records. */
  hostKey?: string;
  /**
   * The block volume that holds all data: the volume and its attachment, both waited for (the
   * filesystem is grown only once a resize of the volume finished); undefined = none.
   */
  dataVolume?: {
    name: string;
    sizeGb: number;
    mountPoint: string;
    volume: pulumi.CustomResource;
    attachment: pulumi.CustomResource;
  };
  /** What must exist before SSH can reach the host (the droplet and its firewall); undefined = nothing. */
  dependsOn?: pulumi.Resource[];
}

/**
 * A new droplet (the `index`th of the stack's app droplets, the first by default): root logs in
 * with the key the droplet was created with (its admin key). The data volume is the first's.
 */
export function dropletTarget(
  droplet: DropletHost,
  rootPrivateKey: pulumi.Input<string>,
  index = 0,
): HostTarget {
  const { ipv4Address } = droplet.droplets[index];
  return {
    publicIp: ipv4Address,
    host: ipv4Address,
    port: 22,
    bootstrapUser: "root",
    bootstrapPrivateKey: rootPrivateKey,
    dataVolume: index === 0 && droplet.volume ? { ...droplet.volume, mountPoint: VOLUME_MOUNT } : undefined,
    // SSH is possible only once the droplet and its firewall exist.
    dependsOn: [droplet],
  };
}

/** An SSH host from config (`target: existing`): its address, port, user, key and host key. */
export function existingTarget(existing: {
  host: string;
  port: number;
  user: string;
  hostKey?: string;
  privateKey: pulumi.Input<string>;
}): HostTarget {
  return {
    publicIp: pulumi.output(existing.host),
    host: existing.host,
    port: existing.port,
    bootstrapUser: existing.user,
    bootstrapPrivateKey: existing.privateKey,
    hostKey: existing.hostKey,
  };
}

/**
 * Where the data lives on the target (the volume, or the droplet's disk) and the other place it
 * may have lived before the volume was added or removed.
 */
export function dataDirs(target: HostTarget): { dataDir: string; otherDataDir: string } {
  return target.dataVolume
    ? { dataDir: target.dataVolume.mountPoint, otherDataDir: LOCAL_DATA_DIR }
    : { dataDir: LOCAL_DATA_DIR, otherDataDir: VOLUME_MOUNT };
}
