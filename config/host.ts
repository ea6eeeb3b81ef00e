// The host: a new DigitalOcean droplet (with its firewall, volume and DNS record) or an SSH host
// the user already has, and how the stack provisions it.
import * as net from "net";
import * as pulumi from "@pulumi/pulumi";
import { isBareDomain, isCidr, isPassphraseProtected, LINUX_USER, slugMemoryMb } from "./checks";
import { DROPLET_SIZES, DROPLET_SIZES_DATE, MIN_MEMORY_MB } from "./dropletSizes";
import { KeyState, ConfigReader } from "./read";
import { SiteConfig } from "./site";

export const TARGETS = ["digitalocean", "existing"] as const;
export type Target = (typeof TARGETS)[number];

/** A new droplet, as components/dropletHost.ts takes it (the stack adds the admin key). */
export interface DropletConfig {
  region: string;
  size: string;
  image: string;
  sshAllowedCidrs: string[];
  dataVolumeSizeGb: number;
  protect: boolean;
  /** The domain's A record; set when a domain is set and `manageDns` is true. */
  dns?: { zone: string; recordName: string };
  /** The DigitalOcean project's environment label. */
  environment: "Production" | "Staging";
}

/** An SSH host from config: where it is and how the first connection logs in. */
export interface ExistingHostConfig {
  host: string;
  port: number;
  user: string;
  hostKey?: string;
  /** The login key (secret). */
  privateKey: pulumi.Output<string>;
}

export type HostConfig =
  { target: "digitalocean"; droplet: DropletConfig } | { target: "existing"; existing: ExistingHostConfig };

/** What provisioning does on the host, as components/hostProvisioning.ts takes it (but the keys). */
export interface ProvisioningConfig {
  deployUser: string;
  closeRootLogin: boolean;
  swapSizeMb: number;
  /** A host the stack does not own gets its own login back on destroy. */
  restoreLoginOnDelete: boolean;
}

/**
 * A host key as the provider can pin it (`ssh.ParseAuthorizedKey`, then only that algorithm is
 * offered): ED25519 or ECDSA. An RSA host key would be pinned to SHA-1 signatures (`ssh-rsa`),
 * which current OpenSSH servers refuse.
 */
export const HOST_KEY = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}$/;

/**
 * The regions where droplets can be created (DigitalOcean's regional availability page). Retired
 * regions (nyc2, ams2, sfo1) are left out; a region added later is allowed with
 * `chitram:extraRegions` until this list has it.
 */
export const DROPLET_REGIONS: readonly string[] = [
  "nyc1",
  "nyc3",
  "sfo2",
  "sfo3",
  "ams3",
  "sgp1",
  "lon1",
  "fra1",
  "tor1",
  "blr1",
  "syd1",
  "atl1",
];
const regionSlug = /^[a-z]{3}[0-9]$/;

/** The region: one of DROPLET_REGIONS or of extraRegions (slugs DigitalOcean added since). */
function regionConfig(r: ConfigReader): string {
  const extraRegions = r.list(
    "extraRegions",
    (s) => regionSlug.test(s),
    "each entry must be a region slug such as atl1 (three letters and a digit)",
  );
  const region = r.str("region");
  if (![...DROPLET_REGIONS, ...extraRegions].includes(region)) {
    r.bad(
      "region",
      region,
      `use one of: ${DROPLET_REGIONS.join(", ")}${extraRegions.length ? `, ${extraRegions.join(", ")}` : ""}; ` +
        `a region DigitalOcean opened since can be added to chitram:extraRegions (e.g. ["${region && regionSlug.test(region) ? region : "ric1"}"])`,
    );
  }
  return region;
}

/** The droplet size: one of the table in dropletSizes.ts or of extraSizes, with at least 2 GB. */
function sizeConfig(r: ConfigReader): string {
  const extraSizes = r.list(
    "extraSizes",
    (s) => /^[a-z0-9][a-z0-9_-]*$/.test(s),
    "each entry must be a droplet size slug such as s-2vcpu-2gb",
  );
  const size = r.str("size");
  // The table's memory, or for a slug from extraSizes the memory its name gives (else trusted).
  const memory =
    DROPLET_SIZES[size] ?? (extraSizes.includes(size) ? (slugMemoryMb(size) ?? MIN_MEMORY_MB) : undefined);
  if (memory === undefined) {
    r.bad(
      "size",
      size,
      `use a DigitalOcean droplet size slug with at least ${MIN_MEMORY_MB / 1024} GB of memory, e.g. s-2vcpu-2gb, ` +
        `s-2vcpu-4gb, c-2 or g-2vcpu-8gb (the table of ${DROPLET_SIZES_DATE} in config/dropletSizes.ts); a size DigitalOcean added ` +
        `since can be added to chitram:extraSizes`,
    );
  } else if (memory < MIN_MEMORY_MB) {
    r.bad(
      "size",
      size,
      `it has ${memory} MB of memory; the four services need at least ${MIN_MEMORY_MB / 1024} GB: use s-2vcpu-2gb or larger`,
    );
  }
  return size;
}

/** The DNS zone the domain's record goes in (manageDns), by default the domain less its first label. */
function dnsZone(r: ConfigReader, domain: string): string {
  let zone = r.str("dnsZone");
  if (zone !== "" && !isBareDomain(zone)) r.bad("dnsZone", zone, "use a bare DNS name such as example.com");
  if (domain !== "" && zone === "") {
    const labels = domain.split(".");
    zone = labels.length >= 3 ? labels.slice(1).join(".") : domain;
  }
  if (domain !== "" && zone !== "" && domain !== zone && !domain.endsWith(`.${zone}`)) {
    r.bad("dnsZone", zone, `use a zone that contains the domain ${domain}`);
  }
  return zone;
}

function dropletConfig(r: ConfigReader, stack: string, site: SiteConfig): DropletConfig {
  const domain = site.domain ?? "";
  const region = regionConfig(r);
  const size = sizeConfig(r);
  const image = r.str("image");
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(image))
    r.bad("image", image, "use a DigitalOcean image slug, e.g. ubuntu-22-04-x64");
  const manageDns = r.bool("manageDns");
  const zone = dnsZone(r, domain);
  const sshAllowedCidrs = r.list(
    "sshAllowedCidrs",
    isCidr,
    "each entry must be an IPv4 or IPv6 CIDR such as 203.0.113.0/24",
  );
  if (sshAllowedCidrs.length === 0 && !r.hasProblem("sshAllowedCidrs")) {
    r.bad(
      "sshAllowedCidrs",
      r.str("sshAllowedCidrs"),
      "list at least one CIDR (the stack itself deploys over SSH)",
    );
  }
  return {
    region,
    size,
    image,
    sshAllowedCidrs,
    dataVolumeSizeGb: r.int("dataVolumeSizeGb", 0, 16384),
    protect: r.bool("protectData"),
    dns:
      domain !== "" && manageDns
        ? { zone, recordName: domain === zone ? "@" : domain.slice(0, -zone.length - 1) }
        : undefined,
    environment: stack === "prod" ? "Production" : "Staging",
  };
}

/** The SSH host of `target: existing`; the keys of DigitalOcean resources are refused there. */
function existingConfig(
  r: ConfigReader,
  site: SiteConfig,
  droplet: DropletConfig,
  sshKey: { state: KeyState; text?: string },
): ExistingHostConfig {
  const host = r.str("host");
  if (host === "" || !(net.isIP(host) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host))) {
    r.bad("host", host, "with target existing, set the SSH host's address (IP address or DNS name)");
  }
  const port = r.int("sshPort", 1, 65535);
  const user = r.str("sshUser");
  if (!LINUX_USER.test(user))
    r.bad("sshUser", user, "use a Linux user name: root, or a user with passwordless sudo");
  if (sshKey.state === "unset") {
    r.bad(
      "sshPrivateKey",
      undefined,
      "with target existing, set it: pulumi config set --secret chitram:sshPrivateKey < key",
    );
  } else if (sshKey.text !== undefined && isPassphraseProtected(sshKey.text)) {
    r.problem(
      "sshPrivateKey",
      "the key is protected by a passphrase, which nothing can " +
        "type during `pulumi up`; use a key without one (`ssh-keygen -p -N '' -f <key>` removes it)",
    );
  }
  if (droplet.dataVolumeSizeGb > 0)
    r.bad(
      "dataVolumeSizeGb",
      r.str("dataVolumeSizeGb"),
      "with target existing use 0 (volumes are DigitalOcean resources)",
    );
  if (site.alertEmails.length > 0)
    r.bad(
      "alertEmails",
      r.str("alertEmails"),
      "with target existing leave it empty (uptime checks are DigitalOcean resources)",
    );
  if (droplet.dns !== undefined)
    r.bad(
      "manageDns",
      "true",
      "with target existing and a domain, set it to false and point the domain at the host yourself",
    );
  const hostKey = r.str("hostKey").trim().split(/\s+/).slice(0, 2).join(" ");
  if (hostKey !== "" && !HOST_KEY.test(hostKey))
    r.bad(
      "hostKey",
      r.str("hostKey"),
      "use the host's public key as OpenSSH prints it, ED25519 or ECDSA: ssh-keyscan -t ed25519 <host>, without the host name",
    );
  return {
    host,
    port,
    user,
    hostKey: hostKey === "" ? undefined : hostKey,
    privateKey: r.secret("sshPrivateKey"),
  };
}

/** The host; the droplet's keys are checked whichever the target, so a typo is never silent. */
export function hostConfig(
  r: ConfigReader,
  target: Target,
  stack: string,
  site: SiteConfig,
  sshKey: { state: KeyState; text?: string },
): HostConfig {
  const droplet = dropletConfig(r, stack, site);
  if (target !== "existing" && r.str("hostKey") !== "")
    r.bad(
      "hostKey",
      r.str("hostKey"),
      "target: existing only (a droplet's key is recorded at first contact)",
    );
  const host: HostConfig =
    target === "existing"
      ? { target, existing: existingConfig(r, site, droplet, sshKey) }
      : { target, droplet };
  if (sshKey.state === "plaintext") {
    r.problem(
      "sshPrivateKey",
      "is set in plain text, so the private key sits readable in the stack file; " +
        "set it as a secret: pulumi config set --secret chitram:sshPrivateKey < key",
    );
  }
  return host;
}

export function provisioningConfig(r: ConfigReader, target: Target): ProvisioningConfig {
  const deployUser = r.str("deployUser");
  if (!LINUX_USER.test(deployUser) || deployUser === "root") {
    r.bad(
      "deployUser",
      deployUser,
      "use a Linux user name (lowercase letter or _, then up to 31 of a-z 0-9 _ -), not root",
    );
  }
  return {
    deployUser,
    closeRootLogin: r.bool("closeRootLogin"),
    swapSizeMb: r.int("swapSizeMb", 0, 16384),
    restoreLoginOnDelete: target === "existing",
  };
}
