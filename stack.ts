// The whole stack: config is checked first, then the host (a new droplet or an existing SSH
// host), its provisioning, and the app. index.ts exports what this returns as stack outputs.
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { AppDeployment } from "./components/appDeployment";
import { BackupBucket, offsiteTarget } from "./components/backupBucket";
import { DropletHost } from "./components/dropletHost";
import { HostProvisioning } from "./components/hostProvisioning";
import { dataDirs, dropletTarget, existingTarget } from "./components/hostTarget";
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
  const { config, sshPrivateKey, backupHeartbeatUrl, offsiteKeys, registryCredential } = loadConfig();

  // ED25519 in OpenSSH format: keys without a passphrase by construction (retro #3).
  // The deploy key is CI/CD's (a stack output, rotated at will); the stack key is the one the
  // stack's own steps log in with (rotated at will). The admin key is never rotated: it seeds root
  // on a new droplet, and it is the login of the one step that installs the other two, so either
  // can be replaced with root login closed (docs/RUNBOOK.md, "Rotating keys").
  const deployKey = new tls.PrivateKey("deploy-key", { algorithm: "ED25519" });
  const stackKey = new tls.PrivateKey("stack-key", { algorithm: "ED25519" });
  const adminKey = new tls.PrivateKey("admin-key", { algorithm: "ED25519" });

  // Where the host is and how the first connection logs in: a new droplet (root, seeded with the
  // admin key) or the SSH host from config.
  const target =
    config.target === "digitalocean"
      ? dropletTarget(
          new DropletHost("chitram", {
            region: config.region,
            size: config.size,
            image: config.image,
            publicKey: adminKey.publicKeyOpenssh,
            sshAllowedCidrs: config.sshAllowedCidrs,
            dataVolumeSizeGb: config.dataVolumeSizeGb,
            protect: config.protectData,
            dns: config.dns,
            environment: config.stack === "prod" ? "Production" : "Staging",
          }),
          adminKey.privateKeyOpenssh,
        )
      : existingTarget(config.existingHost!, sshPrivateKey!);

  // Off-box backups: a bucket and scoped key the stack creates, or the ones from config.
  const offsite =
    config.offsite?.kind === "spaces"
      ? new BackupBucket("backups", {
          region: config.region,
          retentionDays: config.backupRetentionDays,
          protect: config.protectData,
        }).offsite
      : config.offsite?.kind === "existing"
        ? offsiteTarget(config.offsite, offsiteKeys!)
        : undefined;

  const provisioning = new HostProvisioning("host", {
    target,
    deployUser: config.deployUser,
    adminPublicKey: adminKey.publicKeyOpenssh,
    adminPrivateKey: adminKey.privateKeyOpenssh,
    stackPublicKey: stackKey.publicKeyOpenssh,
    stackPrivateKey: stackKey.privateKeyOpenssh,
    deployPublicKey: deployKey.publicKeyOpenssh,
    deployPrivateKey: deployKey.privateKeyOpenssh,
    closeRootLogin: config.closeRootLogin,
    swapSizeMb: config.swapSizeMb,
    restoreLoginOnDelete: config.target === "existing",
  });

  const app = new AppDeployment("app", {
    connection: provisioning.deployConnection,
    deployUser: config.deployUser,
    appDir: APP_DIR,
    ...dataDirs(target),
    appImage: config.appImage,
    registry:
      config.registry?.kind === "password"
        ? { server: config.registry.server, ...registryCredential! }
        : config.registry && { server: config.registry.server, digitaloceanRegistry: config.registry.name },
    appPort: config.appPort,
    healthPath: config.healthPath,
    releaseTimeoutSeconds: config.releaseTimeoutSeconds,
    domain: config.domain,
    acmeEmail: config.acmeEmail,
    acmeCa: config.acmeCa,
    acmeCaRoots: config.acmeCaRoots,
    backupSchedule: config.backupSchedule,
    backupRetentionDays: config.backupRetentionDays,
    backupAlertAfterHours: config.backupAlertAfterHours,
    volumeAttachment: target.dataVolume?.attachment,
    backupHeartbeatUrl,
    offsite,
    dependsOn: provisioning.ready,
  });

  // In domain mode the URLs are known before the droplet's IP (as `pulumi preview` shows them).
  const urls = config.domain
    ? pulumi.output(siteUrls(config, config.domain))
    : target.publicIp.apply((ip) => siteUrls(config, ip));
  // config.ts allows alert emails only with target digitalocean: uptime checks are DigitalOcean's.
  if (config.alertEmails.length > 0) {
    new UptimeMonitor("chitram-uptime", {
      url: urls.healthUrl,
      type: config.domain ? "https" : "http",
      alertEmails: config.alertEmails,
      backupStatusUrl: urls.url.apply((u) => `${u}${BACKUP_STATUS_URL_PATH}`),
      dependsOn: [app.healthy],
    });
  }
  const sshPort = target.port !== 22 ? ` -p ${target.port}` : "";
  return {
    publicIp: target.publicIp,
    url: urls.url,
    healthUrl: urls.healthUrl,
    sshCommand: pulumi.interpolate`ssh${sshPort} ${config.deployUser}@${target.publicIp}`,
    deployUser: config.deployUser,
    deployPrivateKey: pulumi.secret(deployKey.privateKeyOpenssh),
    deployPublicKey: deployKey.publicKeyOpenssh,
  };
}
