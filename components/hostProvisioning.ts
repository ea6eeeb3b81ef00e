import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { SSHD_DROPIN_PATH, SWAP_FILE } from "../hostContract";
import { renderSshdDropIn } from "../templates/hostConfig";
import { encodeFiles } from "../templates/hostFiles";
import { renderSudoers } from "../templates/sudoers";
import { Connection, remoteStep, RemoteStepOptions } from "./remoteStep";

export interface HostProvisioningArgs {
  /** Address of the host. Default: none (required). */
  host: pulumi.Input<string>;
  /** SSH port of the host. Default: 22. */
  port?: pulumi.Input<number>;
  /** User of the first connection: root, or a user with passwordless sudo. Default: "root". */
  bootstrapUser?: pulumi.Input<string>;
  /** Private key of the first connection. Default: none (required). */
  bootstrapPrivateKey: pulumi.Input<string>;
  /** The deploy user. Plain: it is rendered into the scripts. Default: none (required). */
  deployUser: string;
  /** OpenSSH public half of the stack key, which the stack's own steps log in with. Default: none (required). */
  stackPublicKey: pulumi.Input<string>;
  /** Private half of the stack key. Default: none (required). */
  stackPrivateKey: pulumi.Input<string>;
  /** OpenSSH public half of the deploy key, which CI/CD logs in with. Default: none (required). */
  deployPublicKey: pulumi.Input<string>;
  /** Private half of the deploy key (no passphrase). Default: none (required). */
  deployPrivateKey: pulumi.Input<string>;
  /** Forbid root SSH logins once the deploy user is proven. Plain: rendered into sshd config. Default: none (required). */
  closeRootLogin: boolean;
  /** Swap file size in MB; 0 = none. Plain: rendered into the script. Default: none (required). */
  swapSizeMb: number;
  /** Block volume to mount (its size: a grown volume re-runs the mount step, which grows the filesystem), and the attachment to wait for; undefined = none. Plain: rendered into the script. Default: undefined. */
  dataVolume?: { name: string; sizeGb: number; mountPoint: string; attachment: pulumi.Resource };
  /** Resources that must exist before the first connection (the droplet's firewall etc.). Default: []. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/**
 * Turns a bare Debian-family host into one the app can be deployed to: waits until it is ready,
 * installs Docker, creates the deploy user with passwordless sudo and the deploy key, proves that
 * user works the way CI/CD will use it, then hardens sshd and adds swap.
 *
 * Who each step connects as: only the two first-contact steps (`ready`, `bootstrap`) connect as
 * the bootstrap user, and they ignore later changes of their script, so they never need root again
 * once root login is closed. Every other step connects as the deploy user and uses `sudo -n`, so
 * any of them can re-run months later; the sudoers file those steps rely on is only ever replaced
 * after `visudo -cf` accepts the new one, so a bad template cannot lock the stack out.
 *
 * Keys: the deploy user accepts two keys. The stack's steps log in with the stack key; CI/CD logs
 * in with the deploy key, and so does the access proof. Replacing the deploy key re-runs only the
 * steps that install and prove it, and they log in with the stack key, which has not changed.
 */
export class HostProvisioning extends pulumi.ComponentResource {
  /** How later steps connect: as the deploy user with the stack key. */
  public readonly deployConnection: pulumi.Output<Connection>;
  /** The last provisioning steps; app steps depend on them. */
  public readonly ready: command.remote.Command[];

  constructor(name: string, args: HostProvisioningArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chitram:host:HostProvisioning", name, {}, opts);
    const port = args.port ?? 22;
    const user = args.deployUser;
    // A new droplet refuses SSH for its first minute: dial until it answers.
    const bootstrapConnection = pulumi.output({
      host: args.host,
      port,
      user: args.bootstrapUser ?? "root",
      privateKey: args.bootstrapPrivateKey,
      dialErrorLimit: -1,
      perDialTimeout: 30,
    });
    const asDeployUser = (privateKey: pulumi.Input<string>) =>
      pulumi.output({ host: args.host, port, user, privateKey, dialErrorLimit: 30, perDialTimeout: 30 });
    this.deployConnection = asDeployUser(args.stackPrivateKey);
    const firstContact = ["create", "stdin", "triggers"];

    // Both keys, so the deploy key can be replaced by a step that logs in with the stack key.
    const deployUserFiles = pulumi
      .all([args.stackPublicKey, args.deployPublicKey])
      .apply(([stackKey, deployKey]) =>
        encodeFiles([
          {
            path: `/home/${user}/.ssh/authorized_keys`,
            mode: "0600",
            content: `${stackKey.trim()}\n${deployKey.trim()}\n`,
          },
          { path: `/etc/sudoers.d/${user}`, mode: "0440", content: renderSudoers(user) },
        ]),
      );
    const deployUserParams = {
      DEPLOY_USER: user,
      AUTHORIZED_KEYS_PATH: `/home/${user}/.ssh/authorized_keys`,
      SUDOERS_PATH: `/etc/sudoers.d/${user}`,
    };

    // The bootstrap user may be root or a user with passwordless sudo: the host decides ("auto").
    const asBootstrap = (stepName: string, o: Omit<RemoteStepOptions, "sudo" | "connection" | "parent">) =>
      remoteStep(stepName, { ...o, parent: this, connection: bootstrapConnection, sudo: "auto" });

    const ready = asBootstrap(`${name}-ready`, {
      script: "ready",
      dependsOn: args.dependsOn ?? [],
      timeout: "20m",
      ignoreChanges: firstContact,
    });
    const bootstrap = asBootstrap(`${name}-bootstrap`, {
      script: "deployUser",
      params: deployUserParams,
      stdin: deployUserFiles,
      dependsOn: [ready],
      ignoreChanges: firstContact,
    });

    const asDeploy = (stepName: string, o: Omit<RemoteStepOptions, "connection" | "parent">) =>
      remoteStep(stepName, { ...o, parent: this, connection: this.deployConnection });

    const docker = asDeploy(`${name}-docker`, {
      script: "docker",
      params: { DEPLOY_USER: user },
      sudo: true,
      dependsOn: [bootstrap],
      timeout: "20m",
    });
    // Re-applies the deploy user's key and sudoers as the deploy user itself, whenever they change.
    const deployUser = asDeploy(`${name}-deploy-user`, {
      script: "deployUser",
      params: deployUserParams,
      stdin: deployUserFiles,
      sudo: true,
      dependsOn: [docker],
    });
    // Logs in with the deploy key itself: the way CI/CD will.
    const accessProof = remoteStep(`${name}-access-proof`, {
      parent: this,
      connection: asDeployUser(args.deployPrivateKey),
      script: "accessProof",
      sudo: false,
      dependsOn: [deployUser],
    });
    const harden = asDeploy(`${name}-harden`, {
      script: "harden",
      params: { SSHD_DROPIN_PATH },
      stdin: encodeFiles([
        {
          path: SSHD_DROPIN_PATH,
          mode: "0644",
          content: renderSshdDropIn({ closeRootLogin: args.closeRootLogin }),
        },
      ]),
      sudo: true,
      dependsOn: [accessProof],
    });
    const swap = asDeploy(`${name}-swap`, {
      script: "swap",
      params: { SWAP_MB: args.swapSizeMb, SWAP_FILE },
      sudo: true,
      dependsOn: [accessProof],
    });
    const last: command.remote.Command[] = [harden, swap];
    if (args.dataVolume !== undefined) {
      last.push(
        asDeploy(`${name}-data-volume`, {
          script: "dataVolume",
          params: {
            DATA_DIR: args.dataVolume.mountPoint,
            VOLUME_NAME: args.dataVolume.name,
            VOLUME_SIZE_GB: args.dataVolume.sizeGb,
          },
          sudo: true,
          dependsOn: [accessProof, args.dataVolume.attachment],
        }),
      );
    }
    this.ready = last;

    this.registerOutputs({ deployConnection: this.deployConnection });
  }
}
