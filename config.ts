// The stack's configuration: every key is declared (type, description, default) in Pulumi.yaml and
// checked here, in one place, before any resource is registered.
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { DROPLET_SIZES, DROPLET_SIZES_DATE, MIN_MEMORY_MB } from "./dropletSizes";
import { readRepoText } from "./templates/hostFiles";
import {
  acmeDirectory,
  cronProblem,
  heartbeatUrl,
  isBareDomain,
  isCidr,
  isExampleImage,
  isExampleName,
  isPassphraseProtected,
  LETS_ENCRYPT_STAGING,
  s3Bucket,
  s3Endpoint,
  s3Key,
  slugMemoryMb,
} from "./checks";

export const CONFIG_NAMESPACE = "chitram";

export type Target = "digitalocean" | "existing";

/** The validated configuration, in plain values. Components receive parts of it as args. */
export interface StackConfig {
  stack: string;
  target: Target;
  region: string;
  /** Region slugs allowed besides DROPLET_REGIONS. */
  extraRegions: string[];
  size: string;
  /** Size slugs allowed besides the table of dropletSizes.ts. */
  extraSizes: string[];
  image: string;
  /** Undefined in IP mode. */
  domain?: string;
  acmeEmail?: string;
  /** ACME directory URL Caddy uses; undefined = Caddy's default issuers (Let's Encrypt first). */
  acmeCa?: string;
  /**
   * PEM roots the ACME CA issues under when the host's trust store lacks them (Let's Encrypt's
   * staging roots for acmeCa staging, or acmeCaRoot for a private CA): the deploy's health check
   * trusts them besides the system's. Undefined = the system's store alone.
   */
  acmeCaRoots?: string;
  /** Set when a domain is set, `manageDns` is true and the target is DigitalOcean. */
  dns?: { zone: string; recordName: string };
  sshAllowedCidrs: string[];
  deployUser: string;
  closeRootLogin: boolean;
  appImage: string;
  /**
   * The registry appImage is pulled from after a login; undefined = a public image, no login.
   * `password`: a user name and password from config, read by loadConfig (the password always
   * a secret, the user name when set as one); `digitalocean`: the stack obtains read-only
   * credentials for the DigitalOcean registry `name` itself.
   */
  registry?: { server: string } & ({ kind: "password" } | { kind: "digitalocean"; name: string });
  appPort: number;
  healthPath: string;
  releaseTimeoutSeconds: number;
  backupSchedule: string;
  backupRetentionDays: number;
  /** Hours without a successful backup after which the backup uptime check goes down. */
  backupAlertAfterHours: number;
  /** Whether `backupHeartbeatUrl` is set; the URL itself is a secret (loadConfig). */
  backupHeartbeat: boolean;
  /**
   * Off-box backups: undefined = off; `spaces` = a bucket and key the stack creates; `existing` =
   * the endpoint and bucket from config (the keys are secrets, see loadConfig).
   */
  offsite?: { kind: "spaces" } | { kind: "existing"; endpoint: string; bucket: string };
  dataVolumeSizeGb: number;
  protectData: boolean;
  swapSizeMb: number;
  alertEmails: string[];
  /** Set with `target: existing`. */
  existingHost?: { host: string; port: number; user: string; hostKey?: string };
}

/**
 * A host key as the provider can pin it (`ssh.ParseAuthorizedKey`, then only that algorithm is
 * offered): ED25519 or ECDSA. An RSA host key would be pinned to SHA-1 signatures (`ssh-rsa`),
 * which current OpenSSH servers refuse.
 */
export const HOST_KEY = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}$/;

/** Raw values as Pulumi hands them over: strings, with arrays as JSON text. */
export type RawConfig = Record<string, string | undefined>;

/**
 * Every problem of the configuration. A RunError: the Pulumi CLI prints its message alone, where a
 * plain Error is printed with a stack trace that buries the message.
 */
export class ConfigError extends pulumi.RunError {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

interface Declaration {
  type: "string" | "integer" | "boolean" | "array";
  default?: unknown;
  description: string;
}

const projectFile = path.join(__dirname, "Pulumi.yaml");

/** The `config:` block of Pulumi.yaml: the one list of keys and their defaults. */
export function declaredConfig(): Record<string, Declaration> {
  const project = YAML.parse(fs.readFileSync(projectFile, "utf8")) as { config: Record<string, Declaration> };
  return project.config;
}

/**
 * Pulumi's CLI fills in Pulumi.yaml defaults before the program runs; tests and `render` run the
 * program without the CLI, so defaults are applied here from the same file.
 */
export function withDefaults(raw: RawConfig): RawConfig {
  const out: RawConfig = { ...raw };
  for (const [key, decl] of Object.entries(declaredConfig())) {
    if (out[key] === undefined && decl.default !== undefined) {
      out[key] = typeof decl.default === "string" ? decl.default : JSON.stringify(decl.default);
    }
  }
  return out;
}

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

/** Edit distance between a and b (insertions, deletions, substitutions, adjacent swaps). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** The known key closest to `key`. */
export function nearestKey(key: string, known: readonly string[]): string {
  return known.reduce((best, k) => (editDistance(key, k) < editDistance(key, best) ? k : best));
}
const linuxUser = /^[a-z_][a-z0-9_-]{0,31}$/;
const email = /^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/;
// A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest], lowercase path.
const imageRef =
  /^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

/** DigitalOcean's container registry: the stack can obtain its credentials itself. */
const DO_REGISTRY = "registry.digitalocean.com";
// A registry as `docker login` takes it: lowercase DNS name or IPv4 address, optional port.
const registryHost = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$/;
// Registry user names: GHCR and Docker Hub users, emails, robot accounts (Quay `org+bot`, Harbor
// `robot$name`). It travels on stdin, never through a shell, but a colon would end it in the
// basic-auth pair and a newline would end it on stdin.
const registryUser = /^[A-Za-z0-9._@+$-]{1,256}$/;
// One line, as `docker login --password-stdin` reads it.
const registrySecret = /^[^\x00-\x1f\x7f]{1,4096}$/u;
// DigitalOcean registry names.
const doRegistryName = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

// Docker Hub's other names: Docker stores a login to them under that name, while pulls of Docker
// Hub images look it up under https://index.docker.io/v1/ (what `docker login docker.io` uses).
const dockerHubAliases = ["index.docker.io", "registry-1.docker.io"];

/** The registry an image reference is pulled from, as Docker reads it (no host = Docker Hub). */
export function imageRegistry(image: string): string {
  const first = image.split("/")[0];
  if (!(image.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost"))) {
    return "docker.io";
  }
  // Docker's reference parser reads index.docker.io/x as docker.io/x.
  return first.toLowerCase() === "index.docker.io" ? "docker.io" : first;
}

// The health path reaches curl, compose.yaml, host.env (sourced by root) and the uptime check: a
// path and an optional query string. `&` is allowed in the query (every file that carries the path
// quotes it); `$ ( ) ; '` and the like are not: no health endpoint needs them, and compose
// (interpolation) and curl (URL globbing) would read some of them even when quoted.
const healthPathPattern =
  /^\/(?:[A-Za-z0-9._~/:@+,=-]|%[0-9A-Fa-f]{2})*(?:\?(?:[A-Za-z0-9._~/:@+,=&-]|%[0-9A-Fa-f]{2})*)?$/;

/** Let's Encrypt's staging roots, shipped with the stack (templates/ca/), without their comment lines. */
export function letsEncryptStagingRoots(): string {
  const pem = readRepoText(path.join(__dirname, "templates", "ca", "letsencrypt-staging-roots.pem"));
  return `${pem
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n")
    .trim()}\n`;
}

/** One or more PEM certificates and nothing else, at most 64 KB. */
export function isPemCertificates(text: string): boolean {
  return (
    text.length <= 65536 &&
    /^(-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{1,76}\n)+-----END CERTIFICATE-----\n?)+$/.test(
      `${text.trim()}\n`,
    )
  );
}

/** Whether `sshPrivateKey` is set, and how: only a secret keeps it out of the stack file in plain text. */
export type KeyState = "unset" | "secret" | "plaintext";

/**
 * Checks raw config (defaults already applied) and returns it typed; throws ConfigError listing
 * every problem. `sshPrivateKeyText` is the key itself, only checked for a passphrase, never printed.
 */
export function parseConfig(
  raw: RawConfig,
  stack: string,
  sshPrivateKey: KeyState,
  sshPrivateKeyText?: string,
  /** Keys of those that must be secrets (registryPassword) that were set in plain text. */
  plaintextSecrets: readonly string[] = [],
): StackConfig {
  const problems: string[] = [];
  const bad = (key: string, value: string | undefined, allowed: string) =>
    problems.push(`${CONFIG_NAMESPACE}:${key}: ${JSON.stringify(value ?? null)} is not allowed; ${allowed}`);

  const str = (key: string): string => raw[key] ?? "";
  const oneOf = <T extends string>(key: string, allowed: readonly T[]): T => {
    const v = str(key);
    if (!(allowed as readonly string[]).includes(v)) bad(key, v, `use one of: ${allowed.join(", ")}`);
    return v as T;
  };
  const bool = (key: string): boolean => {
    const v = str(key);
    if (v !== "true" && v !== "false") bad(key, v, "use true or false");
    return v === "true";
  };
  const int = (key: string, min: number, max: number): number => {
    const v = str(key);
    const n = Number(v);
    if (!/^-?\d+$/.test(v) || n < min || n > max) bad(key, v, `use a whole number from ${min} to ${max}`);
    return n;
  };
  const list = (key: string, check: (item: string) => boolean, allowed: string): string[] => {
    const v = str(key);
    let items: unknown;
    try {
      items = JSON.parse(v);
    } catch {
      items = undefined;
    }
    if (!Array.isArray(items) || items.some((i) => typeof i !== "string")) {
      bad(key, v, `use a list of strings; ${allowed}`);
      return [];
    }
    for (const item of items as string[]) {
      if (!check(item)) bad(key, item, allowed);
    }
    return items as string[];
  };

  const declared = Object.keys(declaredConfig());
  for (const key of Object.keys(raw).filter((k) => !declared.includes(k))) {
    problems.push(
      `${CONFIG_NAMESPACE}:${key} is not a known key; did you mean ${CONFIG_NAMESPACE}:${nearestKey(key, declared)}? ` +
        `(the keys are listed in Pulumi.yaml; remove it with: pulumi config rm ${CONFIG_NAMESPACE}:${key})`,
    );
  }

  const target = oneOf<Target>("target", ["digitalocean", "existing"]);
  const extraRegions = list(
    "extraRegions",
    (r) => regionSlug.test(r),
    "each entry must be a region slug such as atl1 (three letters and a digit)",
  );
  const region = str("region");
  if (![...DROPLET_REGIONS, ...extraRegions].includes(region)) {
    bad(
      "region",
      region,
      `use one of: ${DROPLET_REGIONS.join(", ")}${extraRegions.length ? `, ${extraRegions.join(", ")}` : ""}; ` +
        `a region DigitalOcean opened since can be added to chitram:extraRegions (e.g. ["${region && regionSlug.test(region) ? region : "ric1"}"])`,
    );
  }

  const extraSizes = list(
    "extraSizes",
    (s) => /^[a-z0-9][a-z0-9_-]*$/.test(s),
    "each entry must be a droplet size slug such as s-2vcpu-2gb",
  );
  const size = str("size");
  // The table's memory, or for a slug from extraSizes the memory its name gives (else trusted).
  const memory =
    DROPLET_SIZES[size] ?? (extraSizes.includes(size) ? (slugMemoryMb(size) ?? MIN_MEMORY_MB) : undefined);
  if (memory === undefined) {
    bad(
      "size",
      size,
      `use a DigitalOcean droplet size slug with at least ${MIN_MEMORY_MB / 1024} GB of memory, e.g. s-2vcpu-2gb, ` +
        `s-2vcpu-4gb, c-2 or g-2vcpu-8gb (the table of ${DROPLET_SIZES_DATE} in dropletSizes.ts); a size DigitalOcean added ` +
        `since can be added to chitram:extraSizes`,
    );
  } else if (memory < MIN_MEMORY_MB) {
    bad(
      "size",
      size,
      `it has ${memory} MB of memory; the four services need at least ${MIN_MEMORY_MB / 1024} GB: use s-2vcpu-2gb or larger`,
    );
  }
  const image = str("image");
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(image))
    bad("image", image, "use a DigitalOcean image slug, e.g. ubuntu-22-04-x64");

  const domain = str("domain");
  if (domain !== "" && !isBareDomain(domain)) {
    bad(
      "domain",
      domain,
      "use a bare lowercase DNS name such as chitram.example.com: no scheme, path, port or IP address",
    );
  }
  const acmeEmail = str("acmeEmail");
  if (acmeEmail !== "" && !email.test(acmeEmail)) bad("acmeEmail", acmeEmail, "use an email address");
  const acmeCaValue = str("acmeCa");
  let acmeCa: string | undefined;
  let acmeCaRoots: string | undefined;
  const acmeCaRoot = str("acmeCaRoot").trim();
  if (acmeCaValue === "staging") {
    acmeCa = LETS_ENCRYPT_STAGING;
    acmeCaRoots = letsEncryptStagingRoots();
  } else if (acmeCaValue !== "letsencrypt") {
    if (acmeDirectory.test(acmeCaValue)) acmeCa = acmeCaValue;
    else bad("acmeCa", acmeCaValue, "use letsencrypt, staging, or the https URL of an ACME directory");
  }
  if (acmeCaRoot !== "") {
    if (acmeCaValue === "letsencrypt" || acmeCaValue === "staging") {
      bad(
        "acmeCaRoot",
        `${acmeCaRoot.slice(0, 30)}...`,
        `only with acmeCa set to the URL of another ACME CA (${acmeCaValue}'s roots are known)`,
      );
    } else if (!isPemCertificates(acmeCaRoot)) {
      bad(
        "acmeCaRoot",
        `${acmeCaRoot.slice(0, 30)}...`,
        "use the CA's root certificate(s) in PEM, as -----BEGIN CERTIFICATE----- blocks " +
          "(pulumi config set chitram:acmeCaRoot < root.pem), at most 64 KB",
      );
    } else {
      acmeCaRoots = `${acmeCaRoot}\n`;
    }
  }
  const manageDns = bool("manageDns");
  let dnsZone = str("dnsZone");
  if (dnsZone !== "" && !isBareDomain(dnsZone))
    bad("dnsZone", dnsZone, "use a bare DNS name such as example.com");
  if (domain !== "" && dnsZone === "") {
    const labels = domain.split(".");
    dnsZone = labels.length >= 3 ? labels.slice(1).join(".") : domain;
  }
  if (domain !== "" && dnsZone !== "" && domain !== dnsZone && !domain.endsWith(`.${dnsZone}`)) {
    bad("dnsZone", dnsZone, `use a zone that contains the domain ${domain}`);
  }

  const sshAllowedCidrs = list(
    "sshAllowedCidrs",
    isCidr,
    "each entry must be an IPv4 or IPv6 CIDR such as 203.0.113.0/24",
  );
  if (sshAllowedCidrs.length === 0 && problems.every((p) => !p.includes(":sshAllowedCidrs:"))) {
    bad(
      "sshAllowedCidrs",
      str("sshAllowedCidrs"),
      "list at least one CIDR (the stack itself deploys over SSH)",
    );
  }

  const deployUser = str("deployUser");
  if (!linuxUser.test(deployUser) || deployUser === "root") {
    bad(
      "deployUser",
      deployUser,
      "use a Linux user name (lowercase letter or _, then up to 31 of a-z 0-9 _ -), not root",
    );
  }
  const closeRootLogin = bool("closeRootLogin");

  const appImage = str("appImage");
  if (appImage === "") {
    problems.push(
      `${CONFIG_NAMESPACE}:appImage: is not set, and it is required; set your app's container image, ` +
        `e.g. pulumi config set ${CONFIG_NAMESPACE}:appImage ghcr.io/<owner>/chitram:1.0.0 (README, "Your app image")`,
    );
  } else if (!imageRef.test(appImage)) {
    bad("appImage", appImage, "use a container image reference such as ghcr.io/<owner>/chitram:1.0.0");
  }
  // The registry appImage is pulled from, and how the deploy user logs in to it.
  function registryConfig(): StackConfig["registry"] {
    const server = str("registryServer");
    const username = str("registryUsername");
    const password = str("registryPassword");
    const key = (k: string) => `${CONFIG_NAMESPACE}:${k}`;
    // The password is never echoed: not in a problem, not in a stack trace.
    if (password !== "" && plaintextSecrets.includes("registryPassword")) {
      problems.push(
        `${key("registryPassword")}: is set in plain text, so the credential sits readable in the stack file; ` +
          `set it as a secret: pulumi config set --secret ${key("registryPassword")}`,
      );
    } else if (password !== "" && !registrySecret.test(password)) {
      problems.push(
        `${key("registryPassword")}: the value set is not allowed; use one line of up to 4096 characters, ` +
          "without control characters",
      );
    }
    // Not echoed either: it may be a token (DigitalOcean's registry takes one as the user name).
    if (username !== "" && !registryUser.test(username)) {
      problems.push(
        `${key("registryUsername")}: the value set is not allowed; use 1-256 of A-Z a-z 0-9 . _ @ + $ - ` +
          "(no spaces or colon)",
      );
    }
    if (server === "") {
      for (const k of ["registryUsername", "registryPassword"]) {
        if (str(k) !== "") {
          problems.push(`${key(k)}: only used with registryServer; set ${key("registryServer")} or unset it`);
        }
      }
      return undefined;
    }
    const port = Number(server.split(":")[1] ?? "443");
    if (!registryHost.test(server) || port < 1 || port > 65535) {
      bad(
        "registryServer",
        server,
        "use a bare registry host[:port] such as ghcr.io or registry.example.com:5000: lowercase, " +
          "no scheme, path, user name or trailing slash",
      );
      return undefined;
    }
    if (dockerHubAliases.includes(server)) {
      bad(
        "registryServer",
        server,
        "use docker.io for Docker Hub: Docker stores a login to this name where pulls of Docker Hub images do not look",
      );
      return undefined;
    }
    const pulledFrom = imageRef.test(appImage) ? imageRegistry(appImage) : server;
    if (pulledFrom !== server && pulledFrom.toLowerCase() === server) {
      // Docker looks the login up by the host exactly as the image names it.
      bad(
        "appImage",
        appImage,
        `write its registry host in lowercase, as ${key("registryServer")} is: ` +
          `${server}/${appImage.slice(pulledFrom.length + 1)}`,
      );
    } else if (pulledFrom !== server) {
      bad(
        "appImage",
        appImage,
        `it is pulled from ${pulledFrom}, but ${key("registryServer")} is ${server}: ` +
          `use an image on ${server} (e.g. ${server}/<name>:<tag>), or set registryServer to ${pulledFrom.toLowerCase()}`,
      );
    }
    if (server === DO_REGISTRY && target === "digitalocean" && username === "" && password === "") {
      // registry.digitalocean.com/<registry>/<repository>:<tag>
      const name = appImage.split("/")[1] ?? "";
      if (appImage.split("/").length < 3 || !doRegistryName.test(name)) {
        bad(
          "appImage",
          appImage,
          `with ${key("registryServer")} ${DO_REGISTRY}, use ${DO_REGISTRY}/<registry name>/<repository>:<tag>`,
        );
      }
      return { server, kind: "digitalocean", name };
    }
    const doHint =
      server === DO_REGISTRY && target === "existing"
        ? ` (on target existing the stack cannot obtain ${DO_REGISTRY} credentials: use a DigitalOcean API token with registry read scope as both, each set with --secret)`
        : "";
    if (username === "") {
      bad(
        "registryUsername",
        undefined,
        `with ${key("registryServer")} ${server}, set the registry's user name (with --secret when it is a token)${doHint}`,
      );
    } else if (server === DO_REGISTRY && plaintextSecrets.includes("registryUsername")) {
      // DigitalOcean's registry takes an API token as the user name: never echoed, never plain.
      problems.push(
        `${key("registryUsername")}: for ${DO_REGISTRY} it is a DigitalOcean API token, set in plain text in the stack file; ` +
          `set it as a secret: pulumi config set --secret ${key("registryUsername")}`,
      );
    }
    if (password === "") {
      problems.push(
        `${key("registryPassword")}: with ${key("registryServer")} ${server}, set the password or token: ` +
          `pulumi config set --secret ${key("registryPassword")}${doHint}`,
      );
    }
    return { server, kind: "password" };
  }
  const registry = registryConfig();
  const appPort = int("appPort", 1, 65535);
  const healthPath = str("healthPath");
  if (!healthPathPattern.test(healthPath)) {
    bad(
      "healthPath",
      healthPath,
      "use a URL path that starts with /, made of letters, digits, . _ ~ - / : @ + , = and %XX escapes, " +
        "optionally followed by a query string after ? that may also use &; " +
        "no spaces, quotes, # or shell characters such as $ ( ) ; ' \" ` \\ | < > * ! [ ] { }",
    );
  }

  const backupSchedule = str("backupSchedule");
  const cron = cronProblem(backupSchedule);
  if (cron)
    bad(
      "backupSchedule",
      backupSchedule,
      `use a five-field cron expression such as "0 3 * * *" (this one ${cron})`,
    );
  const releaseTimeoutSeconds = int("releaseTimeoutSeconds", 10, 1800);
  const backupRetentionDays = int("backupRetentionDays", 1, 365);
  const backupAlertAfterHours = int("backupAlertAfterHours", 2, 2000);
  const backupHeartbeatUrl = str("backupHeartbeatUrl");
  if (backupHeartbeatUrl !== "" && plaintextSecrets.includes("backupHeartbeatUrl")) {
    // Its path is the token that lets anyone ping the check (or silence a failure): never echoed.
    problems.push(
      `${CONFIG_NAMESPACE}:backupHeartbeatUrl: is set in plain text, so the check's token sits readable in the stack file; ` +
        `set it as a secret: pulumi config set --secret ${CONFIG_NAMESPACE}:backupHeartbeatUrl <url>`,
    );
  } else if (backupHeartbeatUrl !== "" && !heartbeatUrl.test(backupHeartbeatUrl)) {
    // The value is not echoed: its path is the token that lets anyone ping the check.
    problems.push(
      `${CONFIG_NAMESPACE}:backupHeartbeatUrl: the value set is not allowed; use an http(s) URL such as ` +
        `https://hc-ping.com/<uuid>: no query string, credentials, quotes or trailing slash`,
    );
  }
  const offsiteBackups = bool("offsiteBackups");
  const offsiteSet = {
    offsiteEndpoint: str("offsiteEndpoint"),
    offsiteBucket: str("offsiteBucket"),
    offsiteAccessKey: str("offsiteAccessKey"),
    offsiteSecretKey: str("offsiteSecretKey"),
  };
  let offsite: StackConfig["offsite"];
  if (offsiteBackups && target === "existing") {
    const { offsiteEndpoint: endpoint, offsiteBucket: bucket } = offsiteSet;
    if (!s3Endpoint.test(endpoint)) {
      bad(
        "offsiteEndpoint",
        endpoint,
        "with offsiteBackups on a target existing host, set the S3 endpoint as https://host[:port]",
      );
    }
    if (!s3Bucket.test(bucket))
      bad("offsiteBucket", bucket, "set an existing bucket's name: 3-63 of a-z 0-9 . -");
    for (const key of ["offsiteAccessKey", "offsiteSecretKey"] as const) {
      // Not echoed: they are secrets.
      if (!s3Key.test(offsiteSet[key])) {
        problems.push(
          `${CONFIG_NAMESPACE}:${key}: with offsiteBackups on a target existing host, set it with --secret ` +
            `(8-128 of A-Z a-z 0-9 + / = _ -)`,
        );
      }
    }
    offsite = { kind: "existing", endpoint, bucket };
  } else {
    for (const [key, value] of Object.entries(offsiteSet)) {
      if (value !== "") {
        problems.push(
          `${CONFIG_NAMESPACE}:${key}: only used with offsiteBackups on a target existing host ` +
            `(with target digitalocean the stack creates the bucket and its key); unset it`,
        );
      }
    }
    if (offsiteBackups) offsite = { kind: "spaces" };
  }
  const dataVolumeSizeGb = int("dataVolumeSizeGb", 0, 16384);
  const protectData = bool("protectData");
  const swapSizeMb = int("swapSizeMb", 0, 16384);
  const alertEmails = list("alertEmails", (e) => email.test(e), "each entry must be an email address");

  let existingHost: StackConfig["existingHost"];
  if (target !== "existing" && str("hostKey") !== "")
    bad("hostKey", str("hostKey"), "target: existing only (a droplet's key is recorded at first contact)");
  if (target === "existing") {
    const host = str("host");
    if (host === "" || !(net.isIP(host) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host))) {
      bad("host", host, "with target existing, set the SSH host's address (IP address or DNS name)");
    }
    const port = int("sshPort", 1, 65535);
    const user = str("sshUser");
    if (!linuxUser.test(user))
      bad("sshUser", user, "use a Linux user name: root, or a user with passwordless sudo");
    if (sshPrivateKey === "unset") {
      bad(
        "sshPrivateKey",
        undefined,
        "with target existing, set it: pulumi config set --secret chitram:sshPrivateKey < key",
      );
    } else if (sshPrivateKeyText !== undefined && isPassphraseProtected(sshPrivateKeyText)) {
      problems.push(
        `${CONFIG_NAMESPACE}:sshPrivateKey: the key is protected by a passphrase, which nothing can ` +
          "type during `pulumi up`; use a key without one (`ssh-keygen -p -N '' -f <key>` removes it)",
      );
    }
    if (dataVolumeSizeGb > 0)
      bad(
        "dataVolumeSizeGb",
        str("dataVolumeSizeGb"),
        "with target existing use 0 (volumes are DigitalOcean resources)",
      );
    if (alertEmails.length > 0)
      bad(
        "alertEmails",
        str("alertEmails"),
        "with target existing leave it empty (uptime checks are DigitalOcean resources)",
      );
    if (domain !== "" && manageDns)
      bad(
        "manageDns",
        "true",
        "with target existing and a domain, set it to false and point the domain at the host yourself",
      );
    const hostKey = str("hostKey").trim().split(/\s+/).slice(0, 2).join(" ");
    if (hostKey !== "" && !HOST_KEY.test(hostKey))
      bad(
        "hostKey",
        str("hostKey"),
        "use the host's public key as OpenSSH prints it, ED25519 or ECDSA: ssh-keyscan -t ed25519 <host>, without the host name",
      );
    existingHost = { host, port, user, hostKey: hostKey === "" ? undefined : hostKey };
  }

  if (sshPrivateKey === "plaintext") {
    problems.push(
      `${CONFIG_NAMESPACE}:sshPrivateKey: is set in plain text, so the private key sits readable in the stack file; ` +
        `set it as a secret: pulumi config set --secret ${CONFIG_NAMESPACE}:sshPrivateKey < key`,
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const dns =
    target === "digitalocean" && domain !== "" && manageDns
      ? { zone: dnsZone, recordName: domain === dnsZone ? "@" : domain.slice(0, -dnsZone.length - 1) }
      : undefined;

  return {
    stack,
    target,
    region,
    extraRegions,
    size,
    extraSizes,
    image,
    domain: domain || undefined,
    acmeEmail: acmeEmail || undefined,
    acmeCa: domain !== "" ? acmeCa : undefined,
    acmeCaRoots: domain !== "" ? acmeCaRoots : undefined,
    dns,
    sshAllowedCidrs,
    deployUser,
    closeRootLogin,
    appImage,
    registry,
    appPort,
    healthPath,
    releaseTimeoutSeconds,
    backupSchedule: backupSchedule.trim().split(/\s+/).join(" "),
    backupRetentionDays,
    backupAlertAfterHours,
    backupHeartbeat: backupHeartbeatUrl !== "",
    offsite,
    dataVolumeSizeGb,
    protectData,
    swapSizeMb,
    alertEmails,
    existingHost,
  };
}

/** What the deploy's environment holds that config cannot say. */
export interface DeployEnvironment {
  /** The Spaces key the DigitalOcean provider creates buckets with (SPACES_ACCESS_KEY_ID/SPACES_SECRET_ACCESS_KEY, or the provider's spacesAccessId/spacesSecretKey). */
  spacesKeys: boolean;
}

/**
 * What only a real deploy needs, checked before any resource exists: on a stack that creates
 * DigitalOcean resources, no placeholder of the example stack files (an `up` would create the
 * droplet, the volume and the bucket, then fail on the DNS record or the image pull), and the
 * Spaces key the provider needs for the backup bucket. Each problem names the key and what to put
 * there.
 */
export function deployProblems(config: StackConfig, env: DeployEnvironment): string[] {
  const problems: string[] = [];
  const key = (k: string) => `${CONFIG_NAMESPACE}:${k}`;
  if (config.target === "digitalocean") {
    const placeholder = (k: string, value: string, what: string) =>
      problems.push(
        `${key(k)}: ${JSON.stringify(value)} is a placeholder (a name reserved for examples); ${what}`,
      );
    if (isExampleImage(config.appImage)) {
      placeholder(
        "appImage",
        config.appImage,
        `set your app's image: pulumi config set ${key("appImage")} <registry>/<owner>/<name>:<tag> (README, "Your app image")`,
      );
    }
    if (config.domain !== undefined && isExampleName(config.domain)) {
      placeholder(
        "domain",
        config.domain,
        `set the domain the app is served on, whose DNS zone is in your DigitalOcean account ` +
          `(pulumi config set ${key("domain")} <domain>), or remove it for IP mode (pulumi config rm ${key("domain")})`,
      );
    }
    if (config.acmeEmail !== undefined && isExampleName(config.acmeEmail)) {
      placeholder(
        "acmeEmail",
        config.acmeEmail,
        `set an address that reaches you about certificates (pulumi config set ${key("acmeEmail")} <email>), or remove it`,
      );
    }
    for (const email of config.alertEmails.filter(isExampleName)) {
      placeholder(
        "alertEmails",
        email,
        `list addresses that reach you when the app is down: pulumi config set --path '${key("alertEmails")}[0]' <email>`,
      );
    }
    if (config.offsite?.kind === "spaces" && !env.spacesKeys) {
      problems.push(
        `${key("offsiteBackups")}: true creates a Spaces bucket, and the DigitalOcean provider needs a Spaces key for it: ` +
          "export SPACES_ACCESS_KEY_ID and SPACES_SECRET_ACCESS_KEY (DigitalOcean: API > Spaces Keys), " +
          `or set offsiteBackups to false`,
      );
    }
  }
  return problems;
}

/**
 * Set by the harness that runs the program under Pulumi's mocks (render, the program tests):
 * nothing is created there, so deployProblems are printed as warnings instead of stopping it.
 */
export const UNDER_MOCKS_ENV = "CHITRAM_UNDER_MOCKS";

/** Reads the stack's configuration through Pulumi and checks it. */
export function loadConfig(): {
  config: StackConfig;
  sshPrivateKey?: pulumi.Output<string>;
  backupHeartbeatUrl?: pulumi.Output<string>;
  offsiteKeys?: { accessKey: pulumi.Output<string>; secretKey: pulumi.Output<string> };
  /** The user name is secret when it was set with --secret (a token); the password always is. */
  registryCredential?: { username: pulumi.Output<string>; password: pulumi.Output<string> };
} {
  const cfg = new pulumi.Config(CONFIG_NAMESPACE);
  const raw: RawConfig = {};
  // Every key of the namespace, so that a misspelt one is reported rather than ignored.
  const prefix = `${CONFIG_NAMESPACE}:`;
  const keys = Object.keys(pulumi.runtime.allConfig())
    .filter((k) => k.startsWith(prefix))
    .map((k) => k.slice(prefix.length));
  for (const key of new Set([...Object.keys(declaredConfig()), ...keys])) {
    if (key !== "sshPrivateKey") raw[key] = cfg.get(key);
  }
  // The value is read only through requireSecret; whether it was set with --secret comes from the
  // engine's list of secret keys (the SDK's isConfigSecret, not in its typings).
  const runtime = pulumi.runtime as unknown as { isConfigSecret(key: string): boolean };
  const keyText = cfg.get("sshPrivateKey") ?? "";
  const keyState: KeyState =
    keyText === ""
      ? "unset"
      : runtime.isConfigSecret(`${CONFIG_NAMESPACE}:sshPrivateKey`)
        ? "secret"
        : "plaintext";
  const plaintextSecrets = ["registryPassword", "registryUsername", "backupHeartbeatUrl"].filter(
    (k) => (raw[k] ?? "") !== "" && !runtime.isConfigSecret(`${CONFIG_NAMESPACE}:${k}`),
  );
  const config = parseConfig(withDefaults(raw), pulumi.getStack(), keyState, keyText, plaintextSecrets);
  const provider = new pulumi.Config("digitalocean");
  const deploy = deployProblems(config, {
    spacesKeys:
      Boolean(process.env.SPACES_ACCESS_KEY_ID || provider.get("spacesAccessId")) &&
      Boolean(process.env.SPACES_SECRET_ACCESS_KEY || provider.get("spacesSecretKey")),
  });
  if (deploy.length > 0 && process.env[UNDER_MOCKS_ENV] === "1") {
    for (const problem of deploy) void pulumi.log.warn(`${problem} (a real deploy stops here)`);
  } else if (deploy.length > 0) {
    throw new ConfigError(deploy);
  }
  const sshPrivateKey = keyState === "unset" ? undefined : cfg.requireSecret("sshPrivateKey");
  // A secret Output even when set in plaintext: its path is the check's token.
  const backupHeartbeatUrl = config.backupHeartbeat ? cfg.requireSecret("backupHeartbeatUrl") : undefined;
  const offsiteKeys =
    config.offsite?.kind === "existing"
      ? { accessKey: cfg.requireSecret("offsiteAccessKey"), secretKey: cfg.requireSecret("offsiteSecretKey") }
      : undefined;
  const secretKey = (k: string) => runtime.isConfigSecret(`${CONFIG_NAMESPACE}:${k}`);
  const registryCredential =
    config.registry?.kind === "password"
      ? {
          username: secretKey("registryUsername")
            ? cfg.requireSecret("registryUsername")
            : pulumi.output(cfg.require("registryUsername")),
          password: cfg.requireSecret("registryPassword"),
        }
      : undefined;
  return { config, sshPrivateKey, backupHeartbeatUrl, offsiteKeys, registryCredential };
}
