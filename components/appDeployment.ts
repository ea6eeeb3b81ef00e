import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { BundleArgs, bundleManifest, hostEnvArgs } from "../render/bundle";
import {
  BACKUP_SECRETS_PATH,
  CRON_PATH,
  DB_CA_DIR,
  DOCKER_MOUNT_DROPIN_PATH,
  ENV_FILE_NAME,
  LB_DRAIN_FILE,
  SERVICE_ENV_FILES,
} from "../hostContract";
import { EnvFileArgs, renderEnvFile, renderServiceEnvFiles } from "../render/envFile";
import {
  BACKUP_CRON_HOST_ENV,
  hostEnvSettings,
  OffsiteTarget,
  renderBackupCron,
  renderBackupSecrets,
} from "../render/hostConfig";
import { encodeFiles, sha256 } from "../remote/transfer";
import { dockerAuthKey, renderRegistryLogin } from "../render/registryLogin";
import { Connection, keyedHash, remoteStep, RemoteStepOptions } from "../remote/step";
import { AppObjectStore } from "./appBucket";
import { LB_HEALTH_CHECK, LB_WAIT_SECONDS } from "./dropletHost";
import { ManagedDatabaseConnection } from "./managedDatabase";

/** DigitalOcean's admin user of a managed database cluster, the owner of the databases it makes. */
export const MANAGED_ADMIN_USER = "doadmin";

/** The waits inside the release step (host/steps/composeUp.sh and its parts), in seconds. */
export const RELEASE_WAITS = {
  /** Each `compose up --wait` of the services (it runs twice), and the wait for the release lock. */
  servicesSeconds: 300,
  /** A service still paused or unhealthy from a backup's pause (SETTLE_SECONDS). */
  settleSeconds: 60,
  /** A pull of the app image. */
  pullSeconds: 600,
  /** The old container's requests in flight, then its `docker stop -t 30`. */
  drainSeconds: 30,
  stopSeconds: 30,
};

/**
 * The release step's time limit: every wait it may take, with the release's own health timeout,
 * and a minute to spare, so the host's `timeout` never stops a release that is still within
 * releaseTimeoutSeconds (and when it does stop one, the step rolls it back on the TERM).
 */
export function releaseStepLimit(releaseTimeoutSeconds: number): string {
  const w = RELEASE_WAITS;
  const seconds =
    3 * w.servicesSeconds +
    w.settleSeconds +
    w.pullSeconds +
    releaseTimeoutSeconds +
    w.drainSeconds +
    w.stopSeconds +
    60;
  return `${Math.ceil(seconds / 60)}m`;
}

/**
 * How long the release step has between the TERM at its limit and the KILL: the rollback it runs
 * then may recreate MinIO on the live version's credentials (a `compose up --wait`).
 */
export const RELEASE_KILL_AFTER_SECONDS = RELEASE_WAITS.servicesSeconds + 30;

/**
 * A registry the deploy user logs in to before the app image is pulled: a user name and a password
 * or token (secret), or a DigitalOcean registry whose read-only credentials the stack obtains.
 */
export type AppRegistry =
  | { server: string; username: pulumi.Input<string>; password: pulumi.Input<string> }
  | { server: string; digitaloceanRegistry: string };

/** The release settings (config/release.ts). */
export interface AppRelease {
  /** The app's container image, rendered into compose.yaml. */
  appImage: string;
  /** Where the app image is pulled from after a login; undefined = a public image, no login. */
  registry?: AppRegistry;
  /** Port the app listens on inside the compose network. */
  appPort: number;
  /** Seconds a new app container has to pass its health check before it is rolled back. */
  releaseTimeoutSeconds: number;
}

/** The site settings (config/site.ts); a domain means automatic HTTPS, none IP mode. */
export interface AppSite {
  domain?: string;
  acmeEmail?: string;
  /** ACME directory URL Caddy uses; undefined = Caddy's default issuers, Let's Encrypt first. */
  acmeCa?: string;
  /** PEM roots the health check trusts besides the host's store; undefined = none. */
  acmeCaRoots?: string;
  healthPath: string;
}

/** The backup settings (config/backup.ts), with the off-box target resolved. */
export interface AppBackup {
  /** Five-field cron expression. */
  schedule: string;
  retentionDays: number;
  /** Hours without a successful backup after which its status file goes, and the backup check with it. */
  alertAfterHours: number;
  /** Pinged after each backup (secret: its path is a token); undefined = none. */
  heartbeatUrl?: pulumi.Input<string>;
  /** Where each backup is also copied (the keys are secret); undefined = no off-box copies. */
  offsite?: pulumi.Input<OffsiteTarget>;
}

/** A managed database (components/managedDatabase.ts); undefined = the compose project's postgres. */
export interface AppDatabase {
  /** The private host, port, app user's password and CA (secret). */
  connection: pulumi.Output<ManagedDatabaseConnection>;
  /** The admin user's password (secret), for the grant step. */
  adminPassword: pulumi.Output<string>;
  /** The ids of the cluster, the app's database and its user: a new one of any re-runs the grant. */
  grantTriggers: pulumi.Output<string>[];
  /** The database firewall: the grant connects once it admits the droplet alone. */
  firewall: pulumi.Resource;
}

export interface AppDeploymentArgs {
  /** How steps connect: as the deploy user with the stack key. */
  connection: pulumi.Input<Connection>;
  /** The deploy user, owner of the app directory; rendered into scripts. */
  deployUser: string;
  /** The app directory on the host (hostContract.ts). */
  appDir: string;
  /** Directory for all persistent data. */
  dataDir: string;
  /**
   * The other directory the data may have lived in (the droplet's disk or the volume): the app is
   * not started on an empty dataDir while this one holds a database.
   */
  otherDataDir: string;
  release: AppRelease;
  site: AppSite;
  backup: AppBackup;
  /** A managed database; undefined = PostgreSQL in the compose project. Default: undefined. */
  database?: AppDatabase;
  /** The app's objects in a Spaces bucket (components/appBucket.ts); undefined = MinIO in the compose project. Default: undefined. */
  objects?: { store: pulumi.Output<AppObjectStore> };
  /**
   * The data volume's attachment, when dataDir is a block volume: before it is deleted the app is
   * stopped and the volume unmounted. Undefined = no volume.
   */
  volumeAttachment?: pulumi.CustomResource;
  /** Provisioning steps that must have run first. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
  /**
   * The droplet is one of several behind a load balancer: Caddy serves plain HTTP (the load
   * balancer ends TLS when `https`), and each release takes the droplet out of the load balancer
   * first and puts it back after. Undefined = users reach this host directly. Default: undefined.
   */
  loadBalancer?: { https: boolean };
  /**
   * The secrets another droplet's deployment generated (its `shared`): every droplet runs the
   * app with the same ones. Undefined = generate them; this deployment also grants the managed
   * database's schema to the app. Default: undefined.
   */
  shared?: AppShared;
  /** A step the release waits for: the previous droplet's health, so droplets are released one at a time. Default: none. */
  releaseAfter?: pulumi.Resource;
  /** Install the backup cron (one droplet of several backs up the shared database). Default: true. */
  backupCron?: boolean;
}

/** What every droplet's deployment shares: the generated secrets and the key of the keyed triggers. */
export interface AppShared {
  generated: pulumi.Output<EnvFileArgs>;
  triggerKey: pulumi.Output<string>;
}

/**
 * The app on a provisioned host: generated secrets, the env file, the bundle (compose file,
 * Caddyfile, scripts), the release (services brought up to date, the new app version started
 * next to the live one and switched to once healthy), a health check through Caddy, the backup
 * cron.
 */
export class AppDeployment extends pulumi.ComponentResource {
  /** Keyed hash of everything the compose project is started from; changes re-run compose and health. */
  public readonly releaseHash: pulumi.Output<string>;
  /** The step that proved the app answers through Caddy; what watches the app waits for it. */
  public readonly healthy: pulumi.Resource;
  /** The secrets and trigger key, for the other droplets' deployments. */
  public readonly shared: AppShared;

  constructor(name: string, args: AppDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chitram:app:AppDeployment", name, {}, opts);
    const { appDir, dataDir, release, site, backup } = args;
    const managed = args.database;
    const generated = args.shared?.generated ?? generatedSecrets(name, this);
    // With a managed database, the app's user and password are the cluster's (the generated
    // PostgreSQL password stays in the state unused, so a switch back needs no new resource).
    // With a Spaces bucket, the app's S3 settings are the bucket's and its key's (the generated
    // MinIO user and secret stay, in .env.minio, for MinIO's data on the disk).
    const envArgs: pulumi.Output<EnvFileArgs> = pulumi
      .all([generated, managed?.connection, args.objects?.store])
      .apply(([env, db, objectStore]) => ({
        ...env,
        ...(db && { postgresPassword: db.password, managedDatabase: { host: db.host, port: db.port } }),
        ...(objectStore && { objectStore }),
      }));
    const caCert = managed?.connection.apply((db) => db.caCert);

    const behindLb = args.loadBalancer;
    const bundleArgs: BundleArgs = {
      appDir,
      dataDir,
      database: managed === undefined ? "container" : "managed",
      objects: args.objects === undefined ? "minio" : "spaces",
      backupRetentionDays: backup.retentionDays,
      appImage: release.appImage,
      appPort: release.appPort,
      // Behind a load balancer, Caddy serves plain HTTP as in IP mode, and the host checks
      // itself so; the load balancer holds the domain's certificate.
      ...(behindLb ? { healthPath: site.healthPath, behindLoadBalancer: { https: behindLb.https } } : site),
    };
    const bundle = encodeFiles(bundleManifest(bundleArgs));
    const envBundle = pulumi.secret(
      pulumi.all([envArgs, caCert]).apply(([env, ca]) => envFiles(appDir, env, ca)),
    );
    // Keyed: the env file is secret, and a trigger cannot be (remote/step.ts, keyedHash).
    const triggerKey = args.shared?.triggerKey ?? randomSecret(name, "trigger-key", 64, this);
    this.shared = { generated, triggerKey };
    this.releaseHash = keyedHash(
      triggerKey,
      envBundle.apply((env) => bundle + env),
    );

    const step = (stepName: string, o: Omit<RemoteStepOptions, "connection" | "parent">) =>
      remoteStep(stepName, { ...o, parent: this, connection: args.connection });
    const user = args.deployUser;

    const appDirs = step(`${name}-app-dirs`, {
      script: "appDirs",
      params: {
        DEPLOY_USER: user,
        APP_DIR: appDir,
        DATA_DIR: dataDir,
        OTHER_DATA_DIR: args.otherDataDir,
      },
      sudo: true,
      dependsOn: args.dependsOn ?? [],
    });
    // The release step pulls as the deploy user, so that user logs in; a refused credential fails
    // here, before anything of the running version changes: the steps that rewrite the app's files
    // wait for it too. The credential is its stdin and the server a parameter of its script, so a
    // rotated credential or a new server replaces the step (remoteStep): the old login is logged
    // out first, then the new one logged in.
    let registryLogin: pulumi.Resource | undefined;
    const registry = release.registry;
    if (registry !== undefined) {
      const credential = registryCredential(name, registry, this);
      registryLogin = step(`${name}-registry-login`, {
        script: "registryLogin",
        onDelete: "registryLogout",
        deleteBeforeReplace: true,
        params: { REGISTRY_SERVER: registry.server, AUTH_KEY: dockerAuthKey(registry.server) },
        stdin: pulumi.secret(credential),
        secret: true,
        sudo: false,
        dependsOn: args.dependsOn ?? [],
      });
    }
    const afterLogin = registryLogin === undefined ? [] : [registryLogin];
    // One droplet of several gets the new files only once the one before it is released: a
    // release that fails leaves the later droplets as they were.
    const afterPrevious = args.releaseAfter ? [args.releaseAfter] : [];
    // Pushed as the deploy user into the directory it owns: no sudo, so its files are its own.
    const envFile = step(`${name}-env-file`, {
      script: "pushFiles",
      params: { APP_DIR: appDir, PRUNE_SCRIPTS: false },
      stdin: envBundle,
      secret: true,
      sudo: false,
      dependsOn: [appDirs, ...afterLogin, ...afterPrevious],
    });
    const files = step(`${name}-files`, {
      script: "pushFiles",
      params: { APP_DIR: appDir, PRUNE_SCRIPTS: true },
      stdin: bundle,
      sudo: false,
      dependsOn: [appDirs, ...afterLogin, ...afterPrevious],
    });
    // With a managed database: the app's user may create its tables before the app first starts.
    // One deployment grants, the one that generated the secrets; the others' releases wait for
    // it (releaseAfter).
    const databaseGrant =
      managed === undefined || args.shared !== undefined
        ? []
        : [
            step(`${name}-database-grant`, {
              script: "databaseGrant",
              params: { APP_DIR: appDir, ADMIN_USER: MANAGED_ADMIN_USER },
              stdin: managed.adminPassword,
              secret: true,
              // DigitalOcean's ids of a database and a user are their names: one made again under
              // the same name has a new password (hashed with a key: a trigger cannot be secret).
              triggers: [
                ...managed.grantTriggers,
                keyedHash(
                  triggerKey,
                  managed.connection.apply((c) => c.password),
                ),
              ],
              sudo: false,
              dependsOn: [envFile, files, managed.firewall],
              timeout: "5m",
            }),
          ];
    const releaseParams = {
      APP_DIR: appDir,
      WAIT_SECONDS: RELEASE_WAITS.servicesSeconds,
      LOG_LINES: 40,
      APP_IMAGE: release.appImage,
      APP_PORT: release.appPort,
      HEALTH_PATH: site.healthPath,
      RELEASE_TIMEOUT: release.releaseTimeoutSeconds,
      DRAIN_SECONDS: RELEASE_WAITS.drainSeconds,
    };
    const composeUp = step(`${name}-compose-up`, {
      ...(behindLb
        ? {
            script: "lbRelease",
            params: {
              ...releaseParams,
              DRAIN_FILE: `${appDir}/${LB_DRAIN_FILE}`,
              LB_UNHEALTHY: LB_HEALTH_CHECK.unhealthyThreshold,
              LB_HEALTHY: LB_HEALTH_CHECK.healthyThreshold,
              LB_CHECK_SECONDS: LB_HEALTH_CHECK.checkIntervalSeconds,
              LB_WAIT_SECONDS,
            },
          }
        : { script: "composeUp", params: releaseParams }),
      triggers: [this.releaseHash],
      sudo: false,
      dependsOn: [envFile, files, ...afterLogin, ...databaseGrant, ...afterPrevious],
      timeout: releaseStepLimit(release.releaseTimeoutSeconds + (behindLb ? 2 * (LB_WAIT_SECONDS + 1) : 0)),
      killAfterSeconds: RELEASE_KILL_AFTER_SECONDS,
    });
    // Domain mode waits longer: the first certificate comes from Let's Encrypt.
    this.healthy = step(`${name}-health`, {
      script: "healthCheck",
      params: { APP_DIR: appDir, RETRIES: site.domain ? 90 : 30, INTERVAL: 4 },
      triggers: [this.releaseHash],
      sudo: false,
      dependsOn: [composeUp],
    });
    // The cron entry and the backup's secrets file (root only) travel together; the step is
    // silenced when the secrets file holds anything.
    if (args.backupCron ?? true)
      step(`${name}-backup-cron`, {
        script: "backupCron",
        params: { APP_DIR: appDir },
        stdin: backupFiles(appDir, backup),
        // It also reads paths from host.env (pushed by the files step): their lines re-run it.
        triggers: [sha256(hostEnvSettings(hostEnvArgs(bundleArgs), BACKUP_CRON_HOST_ENV))],
        secret: backup.heartbeatUrl !== undefined || backup.offsite !== undefined,
        sudo: true,
        dependsOn: [files],
      });

    if (args.volumeAttachment !== undefined) {
      // Nothing on create. Replaced with the attachment (its id is the trigger), so the engine
      // deletes this step, which stops the app and unmounts the volume, before the attachment.
      step(`${name}-volume-release`, {
        onDelete: "volumeRelease",
        params: {
          APP_DIR: appDir,
          DATA_DIR: dataDir,
          STOP_SECONDS: 180,
          DOCKER_DROPIN_PATH: DOCKER_MOUNT_DROPIN_PATH,
        },
        triggers: [args.volumeAttachment.id],
        sudo: true,
        dependsOn: [appDirs, args.volumeAttachment],
        timeout: "5m",
      });
    }

    this.registerOutputs({ releaseHash: this.releaseHash });
  }
}

function randomSecret(
  name: string,
  suffix: string,
  length: number,
  parent: pulumi.Resource,
): pulumi.Output<string> {
  return new random.RandomPassword(`${name}-${suffix}`, { length, special: false }, { parent }).result;
}

/**
 * The app's generated secrets: ONE value each for the MinIO user and secret, both keys of each
 * pair rendered from it (retro #1). The user is the S3 access key, so a RandomPassword too: a
 * RandomString's id IS its result, in plain text in the state whatever its outputs say.
 */
function generatedSecrets(name: string, parent: pulumi.Resource): pulumi.Output<EnvFileArgs> {
  const minioUser = new random.RandomPassword(
    `${name}-minio-user`,
    { length: 20, special: false, upper: false },
    { parent },
  ).result;
  const minioSecret = randomSecret(name, "minio-secret", 40, parent);
  const postgresPassword = randomSecret(name, "postgres-password", 32, parent);
  const appSecretKey = randomSecret(name, "app-secret-key", 50, parent);
  return pulumi
    .all([postgresPassword, minioUser, minioSecret, appSecretKey])
    .apply(([postgresPassword, minioUser, minioSecret, appSecretKey]) => ({
      postgresPassword,
      minioUser,
      minioSecret,
      appSecretKey,
    }));
}

/**
 * The app's env file and PostgreSQL's and MinIO's own, as one bundle (all 0600); with a managed
 * database, its CA certificate too (public, 0644: the containers read it as other users).
 */
function envFiles(appDir: string, env: EnvFileArgs, caCert?: string): string {
  const services = renderServiceEnvFiles(env);
  return encodeFiles([
    { path: `${appDir}/${ENV_FILE_NAME}`, mode: "0600", content: renderEnvFile(env) },
    { path: `${appDir}/${SERVICE_ENV_FILES.postgres}`, mode: "0600", content: services.postgres },
    { path: `${appDir}/${SERVICE_ENV_FILES.minio}`, mode: "0600", content: services.minio },
    ...(caCert === undefined
      ? []
      : [{ path: `${appDir}/${DB_CA_DIR}/ca.crt`, mode: "0644", content: caCert }]),
  ]);
}

/** What `docker login` is fed: the user's credential, or read-only DigitalOcean registry credentials. */
function registryCredential(
  name: string,
  registry: AppRegistry,
  parent: pulumi.Resource,
): pulumi.Output<string> {
  return "password" in registry
    ? pulumi
        .all([registry.username, registry.password])
        .apply(([username, password]) => renderRegistryLogin({ server: registry.server, username, password }))
    : new digitalocean.ContainerRegistryDockerCredentials(
        `${name}-registry-credentials`,
        { registryName: registry.digitaloceanRegistry, write: false },
        { parent },
      ).dockerCredentials;
}

/** The backup's cron entry and its secrets file (root only, 0600). */
function backupFiles(appDir: string, backup: AppBackup): pulumi.Output<string> {
  return pulumi.all([backup.heartbeatUrl, backup.offsite]).apply(([heartbeatUrl, offsite]) =>
    encodeFiles([
      {
        path: CRON_PATH,
        mode: "0644",
        content: renderBackupCron({
          schedule: backup.schedule,
          appDir,
          alertAfterHours: backup.alertAfterHours,
        }),
      },
      { path: BACKUP_SECRETS_PATH, mode: "0600", content: renderBackupSecrets({ heartbeatUrl, offsite }) },
    ]),
  );
}
