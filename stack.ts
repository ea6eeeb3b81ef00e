// The whole stack: config is checked first, then the host (a new droplet or an existing SSH
// host), its provisioning, and the app. index.ts exports what this returns as stack outputs.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { AppBucket } from "./components/appBucket";
import { AppDeployment } from "./components/appDeployment";
import { BackupBucket, offsiteTarget } from "./components/backupBucket";
import { appHostSuffix } from "./components/doNames";
import { DropletHost } from "./components/dropletHost";
import { HostProvisioning } from "./components/hostProvisioning";
import { ManagedDatabase } from "./components/managedDatabase";
import { dataDirs, dropletTarget, existingTarget, HostTarget } from "./components/hostTarget";
import { UptimeMonitor } from "./components/uptimeMonitor";
import { loadConfig } from "./config";
import { APP_DIR, BACKUP_STATUS_URL_PATH, siteUrls } from "./hostContract";

export interface StackOutputs {
  publicIp: pulumi.Output<string>;
  url: pulumi.Output<string>;
  healthUrl: pulumi.Output<string>;
  sshCommand: pulumi.Output<string>;
  deployUser: string;
  deployPrivateKey: pulumi.Output<string>;
  deployPublicKey: pulumi.Output<string>;
  /** With several app droplets, each one's address (the first is sshCommand's); undefined = one droplet. */
  appHostIps?: pulumi.Output<string[]>;
}

export function createStack(): StackOutputs {
  // Throws before any resource is registered when the config is bad.
  const {
    host,
    provisioning: provisioningConfig,
    site,
    release,
    backup,
    database,
    objects,
    appHosts,
  } = loadConfig();

  // ED25519 in OpenSSH format: keys without a passphrase by construction (retro #3).
  // The deploy key is CI/CD's (a stack output, rotated at will); the stack key is the one the
  // stack's own steps log in with (rotated at will). The admin key is never rotated: it seeds root
  // on a new droplet, and it is the login of the one step that installs the other two, so either
  // can be replaced with root login closed (docs/RUNBOOK.md, "Rotating keys").
  const deployKey = new tls.PrivateKey("deploy-key", { algorithm: "ED25519" });
  const stackKey = new tls.PrivateKey("steps-key", { algorithm: "ED25519" });
  // A stack deployed before the admin key existed seeded root with its stack key, then named
  // "stack-key", and every login of the stack worked with it: that key becomes the admin key
  // (the alias), so the droplet keeps its seeded key and is not replaced, and the key-installing
  // step logs in with a key the deploy user already accepts. The stack key then starts anew as
  // "steps-key" (a stack deployed with "stack-key" as its stack key rotates it once:
  // docs/RUNBOOK.md, "Upgrading a stack").
  const adminKey = new tls.PrivateKey(
    "admin-key",
    { algorithm: "ED25519" },
    { aliases: [{ name: "stack-key" }] },
  );

  // Where the host is and how the first connection logs in: a new droplet (root, seeded with the
  // admin key) or the SSH host from config.
  // With appHosts > 1, several droplets behind a load balancer (config/ allows it on DigitalOcean
  // only, with the database and the objects off the droplets).
  let droplet: DropletHost | undefined;
  let targets: HostTarget[];
  if (host.target === "digitalocean") {
    droplet = new DropletHost("chitram", {
      ...host.droplet,
      publicKey: adminKey.publicKeyOpenssh,
      ...(appHosts > 1 && {
        loadBalancer: { hosts: appHosts, healthPath: site.healthPath, domain: site.domain },
      }),
    });
    const d = droplet;
    targets = d.droplets.map((_, i) => dropletTarget(d, adminKey.privateKeyOpenssh, i));
  } else {
    targets = [existingTarget(host.existing)];
  }
  const [target] = targets;

  // Off-box backups: a bucket and scoped key the stack creates, or the ones from config.
  const bucket = backup.offsite?.kind === "spaces" ? new BackupBucket("backups", backup.offsite) : undefined;
  const offsite =
    backup.offsite?.kind === "spaces" ? bucket?.offsite : backup.offsite && offsiteTarget(backup.offsite);

  // `database: managed`: a cluster in the droplet's region that admits the droplet alone
  // (config/ refuses it with target existing).
  let managedDatabase: ManagedDatabase | undefined;
  if (database.kind === "managed" && host.target === "digitalocean" && droplet) {
    managedDatabase = new ManagedDatabase("chitram-db", {
      region: host.droplet.region,
      size: database.size,
      nodes: database.nodes,
      dropletIds: droplet.droplets.map((d) => d.dropletId),
      protect: host.droplet.protect,
    });
  }

  // `objectStore: spaces`: the app's bucket and its key (config/ refuses it with target existing).
  const appBucket =
    objects.kind === "spaces"
      ? new AppBucket("objects", {
          region: objects.region,
          endpoint: objects.endpoint,
          protect: objects.protect,
          versionDays: backup.retentionDays + 30,
        })
      : undefined;

  // Each droplet is provisioned at once; the app is released on one droplet at a time, the first
  // one first, each waiting for the one before it to be healthy (and back in the load balancer).
  // The first keeps the single droplet's names ("host", "app"), the others are numbered from 2.
  const provisionings: HostProvisioning[] = [];
  const apps: AppDeployment[] = [];
  targets.forEach((t, i) => {
    const suffix = appHostSuffix(i);
    const provisioning = new HostProvisioning(`host${suffix}`, {
      ...provisioningConfig,
      target: t,
      adminPublicKey: adminKey.publicKeyOpenssh,
      adminPrivateKey: adminKey.privateKeyOpenssh,
      stackPublicKey: stackKey.publicKeyOpenssh,
      stackPrivateKey: stackKey.privateKeyOpenssh,
      deployPublicKey: deployKey.publicKeyOpenssh,
      deployPrivateKey: deployKey.privateKeyOpenssh,
    });
    const previous = apps[i - 1] as AppDeployment | undefined;
    apps.push(
      new AppDeployment(`app${suffix}`, {
        connection: provisioning.stackConnection,
        deployUser: provisioningConfig.deployUser,
        appDir: APP_DIR,
        ...dataDirs(t),
        release,
        site,
        backup: { ...backup, offsite },
        database: managedDatabase,
        objects: appBucket,
        volumeAttachment: t.dataVolume?.attachment,
        dependsOn: provisioning.lastSteps,
        ...(appHosts > 1 && { loadBalancer: { https: site.domain !== undefined } }),
        ...(previous && {
          shared: previous.shared,
          releaseAfter: previous.healthy,
          // The database and the objects are off the droplets: one backup of them is enough.
          backupCron: false,
        }),
      }),
    );
    provisionings.push(provisioning);
  });

  // In domain mode the URLs are known before the droplet's IP (as `pulumi preview` shows them).
  const publicIp = droplet ? droplet.publicIp : target.publicIp;
  const urls = site.domain
    ? pulumi.output(siteUrls(site, site.domain))
    : publicIp.apply((ip) => siteUrls(site, ip));
  // config/ allows alert emails only with target digitalocean: uptime checks are DigitalOcean's.
  let uptime: UptimeMonitor | undefined;
  if (site.alertEmails.length > 0) {
    uptime = new UptimeMonitor("chitram-uptime", {
      url: urls.healthUrl,
      type: site.domain ? "https" : "http",
      alertEmails: site.alertEmails,
      // Behind a load balancer the status file is on the first droplet alone, and the check would
      // reach the others too: the backups' heartbeat URL watches them there (docs/RUNBOOK.md).
      ...(appHosts === 1 && { backupStatusUrl: urls.url.apply((u) => `${u}${BACKUP_STATUS_URL_PATH}`) }),
      dependsOn: apps.map((a) => a.healthy),
    });
  }
  // `pulumi destroy` deletes every resource it may and stops only at a protected one: with the
  // droplet protected it would still delete the keys, passwords, steps, firewall and project,
  // leaving a droplet with root login closed that the state can no longer reach. The guard
  // depends on every other resource, so a destroy must delete it first; protected with the data
  // (protectData), it stops the destroy before anything is deleted (test/cloud/staging.test.ts).
  // Plain dependsOn edges never make it part of a replacement.
  if (host.target === "digitalocean" && droplet) {
    new random.RandomId(
      "destroy-guard",
      { byteLength: 4 },
      {
        protect: host.droplet.protect,
        dependsOn: [
          deployKey,
          stackKey,
          adminKey,
          droplet,
          ...provisionings,
          ...apps,
          ...(bucket ? [bucket] : []),
          ...(uptime ? [uptime] : []),
          ...(managedDatabase ? [managedDatabase] : []),
          ...(appBucket ? [appBucket] : []),
        ],
      },
    );
  }
  const { deployUser } = provisioningConfig;
  const sshPort = target.port !== 22 ? ` -p ${target.port}` : "";
  return {
    publicIp,
    url: urls.url,
    healthUrl: urls.healthUrl,
    sshCommand: pulumi.interpolate`ssh${sshPort} ${deployUser}@${target.publicIp}`,
    deployUser,
    deployPrivateKey: pulumi.secret(deployKey.privateKeyOpenssh),
    deployPublicKey: deployKey.publicKeyOpenssh,
    ...(targets.length > 1 && { appHostIps: pulumi.all(targets.map((t) => t.publicIp)) }),
  };
}
