// The stack's configuration: every key is declared (type, description, default) in Pulumi.yaml and
// checked here before any resource is registered. Each section is what one part of the stack
// takes, secrets attached: stack.ts hands them on as they are.
import * as pulumi from "@pulumi/pulumi";
import { backupConfig, BackupConfig, spacesEndpointFor } from "./backup";
import { databaseConfig, DatabaseConfig, objectStoreConfig, ObjectStoreConfig } from "./database";
import { DeployEnvironment, deployProblems, UNDER_MOCKS_ENV } from "./deploy";
import { hostConfig, HostConfig, provisioningConfig, ProvisioningConfig, Target, TARGETS } from "./host";
import {
  CONFIG_NAMESPACE,
  ConfigError,
  declaredConfig,
  RawConfig,
  unknownKeyProblems,
  withDefaults,
} from "./keys";
import { ConfigReader, KeyState, SecretSource } from "./read";
import { releaseConfig, ReleaseConfig } from "./release";
import { appHostsConfig } from "./scale";
import { siteConfig, SiteConfig } from "./site";

export { CONFIG_NAMESPACE, ConfigError, declaredConfig, nearestKey, withDefaults } from "./keys";
export type { RawConfig } from "./keys";
export type { KeyState } from "./read";
export { DROPLET_REGIONS, HOST_KEY } from "./host";
export type { HostConfig, ProvisioningConfig, Target } from "./host";
export { imageRegistry } from "./release";
export type { RegistryConfig, ReleaseConfig } from "./release";
export { isPemCertificates, letsEncryptStagingRoots } from "./site";
export type { SiteConfig } from "./site";
export type { BackupConfig, OffsiteConfig } from "./backup";
export { DATABASE_SIZES, MANAGED_PG_VERSION } from "./database";
export { MAX_APP_HOSTS } from "./scale";
export type { DatabaseConfig, ObjectStoreConfig } from "./database";
export { deployProblems, UNDER_MOCKS_ENV } from "./deploy";
export type { DeployEnvironment } from "./deploy";

/** The validated configuration, one section per part of the stack. */
export interface StackConfig {
  stack: string;
  /** The droplet the stack creates, or the SSH host from config. */
  host: HostConfig;
  /** The deploy user, root login, swap. */
  provisioning: ProvisioningConfig;
  /** The domain or IP mode, the health path, the uptime alerts. */
  site: SiteConfig;
  /** The app image, its registry, port and health timeout. */
  release: ReleaseConfig;
  /** The schedule, retention, alerting and off-box copies of backups. */
  backup: BackupConfig;
  /** PostgreSQL in a container on the host, or a managed cluster. */
  database: DatabaseConfig;
  /** The app's objects in MinIO on the host, or in a Spaces bucket. */
  objects: ObjectStoreConfig;
  /** App droplets: 1, or more behind a DigitalOcean load balancer (config/scale.ts). */
  appHosts: number;
}

/** The keys that must be secrets besides sshPrivateKey: set in plain text, each is refused. */
const SECRET_KEYS = [
  "registryPassword",
  "registryUsername",
  "backupHeartbeatUrl",
  "offsiteAccessKey",
  "offsiteSecretKey",
];

/**
 * Checks raw config (defaults already applied) and returns it in sections; throws ConfigError
 * listing every problem. `sshPrivateKeyText` is the key itself, only checked for a passphrase,
 * never printed. Secrets come from `secrets`; by default from `raw`, as secret Outputs.
 */
export function parseConfig(
  raw: RawConfig,
  stack: string,
  sshPrivateKey: KeyState,
  sshPrivateKeyText?: string,
  /** Keys of SECRET_KEYS that were set in plain text. */
  plaintextSecrets: readonly string[] = [],
  secrets: SecretSource = (k) =>
    pulumi.secret(k === "sshPrivateKey" ? (sshPrivateKeyText ?? "") : (raw[k] ?? "")),
): StackConfig {
  const r = new ConfigReader(raw, plaintextSecrets, secrets);
  r.problems.push(...unknownKeyProblems(raw));
  const target: Target = r.oneOf("target", TARGETS);
  const site = siteConfig(r);
  const host = hostConfig(r, target, stack, site, { state: sshPrivateKey, text: sshPrivateKeyText });
  const database = databaseConfig(r, target);
  const objects = objectStoreConfig(r, host);
  const config: StackConfig = {
    stack,
    host,
    provisioning: provisioningConfig(r, target),
    site,
    release: releaseConfig(r, target),
    backup: backupConfig(r, host),
    database,
    objects,
    appHosts: appHostsConfig(r, host, site, database, objects),
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** Reads the stack's configuration through Pulumi and checks it; what a deploy needs too. */
export function loadConfig(): StackConfig {
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
  // Whether a value was set with --secret comes from the engine's list of secret keys (the SDK's
  // isConfigSecret, not in its typings); the values are read as secrets whatever the answer.
  const runtime = pulumi.runtime as unknown as { isConfigSecret(key: string): boolean };
  const isSecret = (k: string) => runtime.isConfigSecret(`${CONFIG_NAMESPACE}:${k}`);
  const keyText = cfg.get("sshPrivateKey") ?? "";
  const keyState: KeyState = keyText === "" ? "unset" : isSecret("sshPrivateKey") ? "secret" : "plaintext";
  const plaintextSecrets = SECRET_KEYS.filter((k) => (raw[k] ?? "") !== "" && !isSecret(k));
  // A key read here was checked first; one that is missing leaves the config refused.
  const secrets: SecretSource = (k) => cfg.getSecret(k) ?? pulumi.secret("");
  const config = parseConfig(
    withDefaults(raw),
    pulumi.getStack(),
    keyState,
    keyText,
    plaintextSecrets,
    secrets,
  );
  const provider = new pulumi.Config("digitalocean");
  const environment: DeployEnvironment = {
    spacesKeys:
      Boolean(process.env.SPACES_ACCESS_KEY_ID || provider.get("spacesAccessId")) &&
      Boolean(process.env.SPACES_SECRET_ACCESS_KEY || provider.get("spacesSecretKey")),
    // As the provider reads it: its config first, then the environment.
    spacesEndpoint: provider.get("spacesEndpoint") || process.env.SPACES_ENDPOINT_URL || "",
  };
  const deploy = deployProblems(config, environment);
  if (deploy.length > 0 && process.env[UNDER_MOCKS_ENV] === "1") {
    for (const problem of deploy) void pulumi.log.warn(`${problem} (a real deploy stops here)`);
  } else if (deploy.length > 0) {
    throw new ConfigError(deploy);
  }
  const { offsite } = config.backup;
  const { objects } = config;
  // The host copies to, and the app uses, each bucket where the provider makes it (its endpoint
  // template, DigitalOcean's when none is set).
  const atProvider = <T extends { region: string }>(bucket: T): T => ({
    ...bucket,
    endpoint: spacesEndpointFor(environment.spacesEndpoint ?? "", bucket.region),
  });
  return {
    ...config,
    backup: offsite?.kind === "spaces" ? { ...config.backup, offsite: atProvider(offsite) } : config.backup,
    objects: objects.kind === "spaces" ? atProvider(objects) : objects,
  };
}
