// The whole stack: config is checked first, then the host (a new droplet or an existing SSH
// host), its provisioning, and the app. index.ts exports what this returns as stack outputs.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { AppBucket } from "./components/appBucket";
import { AppDeployment } from "./components/appDeployment";
import { BackupBucket, offsiteTarget } from "./components/backupBucket";
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
}

export function createStack(): StackOutputs {
  // Throws before any resource is registered when the config is bad.
  const { host, provisioning: provisioningConfig, site, release, backup, database, objects } = loadConfig();

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
  let droplet: DropletHost | undefined;
  let target: HostTarget;
  if (host.target === "digitalocean") {
    droplet = new DropletHost("chitram", { ...host.droplet, publicKey: adminKey.publicKeyOpenssh });
    target = dropletTarget(droplet, adminKey.privateKeyOpenssh);
  } else {
    target = existingTarget(host.existing);
  }

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
      dropletId: droplet.dropletId,
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

  const provisioning = new HostProvisioning("host", {
    ...provisioningConfig,
    target,
    adminPublicKey: adminKey.publicKeyOpenssh,
    adminPrivateKey: adminKey.privateKeyOpenssh,
    stackPublicKey: stackKey.publicKeyOpenssh,
    stackPrivateKey: stackKey.privateKeyOpenssh,
    deployPublicKey: deployKey.publicKeyOpenssh,
    deployPrivateKey: deployKey.privateKeyOpenssh,
  });

  const app = new AppDeployment("app", {
    connection: provisioning.stackConnection,
    deployUser: provisioningConfig.deployUser,
    appDir: APP_DIR,
    ...dataDirs(target),
    release,
    site,
    backup: { ...backup, offsite },
    database: managedDatabase,
    objects: appBucket,
    volumeAttachment: target.dataVolume?.attachment,
    dependsOn: provisioning.lastSteps,
  });

  // In domain mode the URLs are known before the droplet's IP (as `pulumi preview` shows them).
  const urls = site.domain
    ? pulumi.output(siteUrls(site, site.domain))
    : target.publicIp.apply((ip) => siteUrls(site, ip));
  // config/ allows alert emails only with target digitalocean: uptime checks are DigitalOcean's.
  let uptime: UptimeMonitor | undefined;
  if (site.alertEmails.length > 0) {
    uptime = new UptimeMonitor("chitram-uptime", {
      url: urls.healthUrl,
      type: site.domain ? "https" : "http",
      alertEmails: site.alertEmails,
      backupStatusUrl: urls.url.apply((u) => `${u}${BACKUP_STATUS_URL_PATH}`),
      dependsOn: [app.healthy],
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
          provisioning,
          app,
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
    publicIp: target.publicIp,
    url: urls.url,
    healthUrl: urls.healthUrl,
    sshCommand: pulumi.interpolate`ssh${sshPort} ${deployUser}@${target.publicIp}`,
    deployUser,
    deployPrivateKey: pulumi.secret(deployKey.privateKeyOpenssh),
    deployPublicKey: deployKey.publicKeyOpenssh,
  };
}
