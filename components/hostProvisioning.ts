import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { DOCKER_MOUNT_DROPIN_PATH, SSHD_DROPIN_PATH, SWAP_FILE } from "../hostContract";
import { renderDockerMountDropIn, renderSshdDropIn } from "../render/hostConfig";
import { encodeFiles } from "../remote/transfer";
import { renderSudoers } from "../render/sudoers";
import { HostTarget } from "./hostTarget";
import { Connection, remoteStep, RemoteStepOptions } from "../remote/step";

/** The line ready.sh and deployUser.sh print with the host's SSH host key (print_host_key in lib.sh). */
const HOST_KEY_LINE = /^chitram-host-key (\S+ \S+)$/m;

/** The host key a step recorded, from its stdout; undefined when it printed none. */
export function hostKeyFromStdout(stdout: string): string | undefined {
  return HOST_KEY_LINE.exec(stdout)?.[1];
}

// Dial limits. The provider retries every failed dial, authentication failures included, with a
// growing pause (100 ms, x1.5, at most 5 s). 16 failed dials pause about 41 s in all: a new
// droplet whose sshd is not up yet is waited for that long, and a wrong key fails in under a
// minute with the server's real answer instead of a 20-minute "context deadline exceeded".
export const FIRST_CONTACT_DIAL_ERROR_LIMIT = 16;
// Later steps reach a host that answered already: 10 failed dials, about 8 s.
export const DIAL_ERROR_LIMIT = 10;
export const PER_DIAL_TIMEOUT_S = 30;

export interface HostProvisioningArgs {
  /** The host and how the first connection logs in (components/hostTarget.ts). */
  target: HostTarget;
  /** The deploy user. Plain: it is rendered into the scripts. */
  deployUser: string;
  /** OpenSSH public half of the admin key, which installs the deploy user's keys; never rotated. */
  adminPublicKey: pulumi.Input<string>;
  /** Private half of the admin key. */
  adminPrivateKey: pulumi.Input<string>;
  /** OpenSSH public half of the stack key, which the stack's own steps log in with. */
  stackPublicKey: pulumi.Input<string>;
  /** Private half of the stack key. */
  stackPrivateKey: pulumi.Input<string>;
  /** OpenSSH public half of the deploy key, which CI/CD logs in with. */
  deployPublicKey: pulumi.Input<string>;
  /** Private half of the deploy key (no passphrase). */
  deployPrivateKey: pulumi.Input<string>;
  /** Forbid root SSH logins once the deploy user is proven. Plain: rendered into sshd config. */
  closeRootLogin: boolean;
  /** Swap file size in MB; 0 = none. Plain: rendered into the script. */
  swapSizeMb: number;
  /**
   * On delete (`pulumi destroy`), give the host back its own sshd settings and take the stack's
   * keys off the deploy user, so the next stack's first contact works as this one's did: for a
   * host the stack does not own (target existing). Default: false (a droplet goes with the stack).
   */
  restoreLoginOnDelete?: boolean;
}

/**
 * Turns a bare Debian-family host into one the app can be deployed to: the deploy user with
 * passwordless sudo and its keys, Docker, a proof that the deploy key works as CI/CD will use it,
 * sshd hardened, swap.
 *
 * Only the first two steps (`ready`, `bootstrap`) log in as the bootstrap user (root or a sudo
 * user), and they ignore later changes, so no later `up` needs root once root login is closed.
 * Of the deploy user's three keys, the admin key (never rotated) logs in only the step that
 * installs the keys, so the stack key and the deploy key can each be rotated with root login
 * closed. The first step records the host key and every later one pins it; a configured key
 * (target existing) is pinned by all of them.
 */
export class HostProvisioning extends pulumi.ComponentResource {
  /** How the stack's later steps connect: as the deploy user with the stack key, the host key pinned. */
  public readonly stackConnection: pulumi.Output<Connection>;
  /** The steps provisioning ends with; the app's steps wait for them. */
  public readonly lastSteps: command.remote.Command[];

  constructor(name: string, args: HostProvisioningArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chitram:host:HostProvisioning", name, {}, opts);
    const { target } = args;
    const user = args.deployUser;
    // Nothing here changes when a key is rotated: a change would re-run first contact as root.
    // A configured host key (target existing) is pinned from the very first contact; a later
    // change of it (the host re-keyed) must not run the first two steps again as root.
    const bootstrapConnection = pulumi.output({
      host: target.host,
      port: target.port,
      user: target.bootstrapUser,
      privateKey: target.bootstrapPrivateKey,
      ...(target.hostKey === undefined ? {} : { hostKey: target.hostKey }),
      dialErrorLimit: FIRST_CONTACT_DIAL_ERROR_LIMIT,
      perDialTimeout: PER_DIAL_TIMEOUT_S,
    });
    // Also what a newer version of this project may set differently while the host stays the same
    // (dial limits, the provider's addPreviousOutputInEnv): a stack deployed by an older version
    // has closed root login, and its first contact must not run again on its upgrade
    // (test/cloud/upgrade.test.ts). A new host (connection.host) or login runs them again.
    const firstContact = [
      "create",
      "stdin",
      "triggers",
      "connection.hostKey",
      "connection.dialErrorLimit",
      "connection.perDialTimeout",
      "addPreviousOutputInEnv",
    ];

    // The bootstrap user may be root or a user with passwordless sudo: the host decides ("auto").
    const asBootstrap = (stepName: string, o: Omit<RemoteStepOptions, "sudo" | "connection" | "parent">) =>
      remoteStep(stepName, { ...o, parent: this, connection: bootstrapConnection, sudo: "auto" });

    const ready = asBootstrap(`${name}-ready`, {
      script: "ready",
      // cloud-init (600 s) and then the apt locks (600 s) within the step's own limit.
      params: { CLOUD_INIT_WAIT_SECONDS: 600 },
      dependsOn: target.dependsOn ?? [],
      timeout: "25m",
      ignoreChanges: firstContact,
    });
    // The key the first step recorded, or the configured one.
    const firstKey = target.hostKey ?? ready.stdout.apply(hostKeyFromStdout);
    const deployUserConnection = (
      privateKey: pulumi.Input<string>,
      hostKey: pulumi.Input<string | undefined>,
    ) =>
      pulumi.output({
        host: target.host,
        port: target.port,
        user,
        privateKey,
        hostKey,
        dialErrorLimit: DIAL_ERROR_LIMIT,
        perDialTimeout: PER_DIAL_TIMEOUT_S,
      });

    const deployUserFiles = (keys: pulumi.Input<string>[]) =>
      pulumi.all(keys).apply((publicKeys) =>
        encodeFiles([
          {
            path: `/home/${user}/.ssh/authorized_keys`,
            mode: "0600",
            content: publicKeys.map((k) => `${k.trim()}\n`).join(""),
          },
          { path: `/etc/sudoers.d/${user}`, mode: "0440", content: renderSudoers(user) },
        ]),
      );
    const deployUserParams = {
      DEPLOY_USER: user,
      AUTHORIZED_KEYS_PATH: `/home/${user}/.ssh/authorized_keys`,
      SUDOERS_PATH: `/etc/sudoers.d/${user}`,
    };

    // The deploy user with the admin key only, as the bootstrap user: the key-installing step below
    // logs in with that key. (Both run deployUser.sh: user, keys and sudoers in one script.)
    const adminKeyInstall = asBootstrap(`${name}-bootstrap`, {
      script: "deployUser",
      params: deployUserParams,
      stdin: deployUserFiles([args.adminPublicKey]),
      dependsOn: [ready],
      ignoreChanges: firstContact,
    });
    // The host key again, as the deploy user with the admin key, once per host (it ignores all
    // but a new address or pin): a stack whose first step ran before host keys were recorded (an older
    // version of this project) has none from it, and its first contact never runs again; this
    // step's key is pinned by every step after it. Elsewhere it pins the first step's key.
    const hostKeyRecord = remoteStep(`${name}-host-key`, {
      parent: this,
      connection: deployUserConnection(args.adminPrivateKey, firstKey),
      script: "hostKey",
      sudo: false,
      dependsOn: [adminKeyInstall],
      // It runs again only for a new host or pin; never for a script change, which must not
      // re-record an unpinned stack's key.
      ignoreChanges: firstContact.filter((k) => !["stdin", "connection.hostKey"].includes(k)),
    });
    const hostKey = pulumi.output(firstKey).apply((key) =>
      key !== undefined
        ? pulumi.output(key)
        : hostKeyRecord.stdout.apply((out) => {
            const recorded = hostKeyFromStdout(out);
            if (recorded === undefined)
              throw new Error(
                `neither the first step (ready) nor ${name}-host-key recorded the host's SSH host key to pin: ` +
                  'see docs/RUNBOOK.md, "When a step fails: dial limits, time limits, host keys"',
              );
            return recorded;
          }),
    );
    // Installs all three keys and the sudoers file whenever they change, logged in with the admin
    // key, which no rotation changes. Every step that logs in with another key runs after it.
    const keysInstall = remoteStep(`${name}-deploy-user`, {
      parent: this,
      connection: deployUserConnection(args.adminPrivateKey, hostKey),
      script: "deployUser",
      params: deployUserParams,
      stdin: deployUserFiles([args.adminPublicKey, args.stackPublicKey, args.deployPublicKey]),
      sudo: true,
      dependsOn: [hostKeyRecord],
      ...(args.restoreLoginOnDelete ? { onDelete: "deployKeysRemove", onChange: "update" } : {}),
    });

    this.stackConnection = deployUserConnection(args.stackPrivateKey, hostKey);

    const stackStep = (stepName: string, o: Omit<RemoteStepOptions, "connection" | "parent">) =>
      remoteStep(stepName, { ...o, parent: this, connection: this.stackConnection });

    const docker = stackStep(`${name}-docker`, {
      script: "docker",
      params: { DEPLOY_USER: user },
      sudo: true,
      dependsOn: [keysInstall],
      timeout: "20m",
    });
    // Logs in with the deploy key itself: the way CI/CD will.
    const accessProof = remoteStep(`${name}-access-proof`, {
      parent: this,
      connection: deployUserConnection(args.deployPrivateKey, hostKey),
      script: "accessProof",
      sudo: false,
      dependsOn: [docker],
    });
    const harden = stackStep(`${name}-harden`, {
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
      ...(args.restoreLoginOnDelete ? { onDelete: "sshdRestore", onChange: "update" } : {}),
    });
    const swap = stackStep(`${name}-swap`, {
      script: "swap",
      params: { SWAP_MB: args.swapSizeMb, SWAP_FILE },
      sudo: true,
      dependsOn: [accessProof],
    });
    const last: command.remote.Command[] = [harden, swap];
    if (target.dataVolume !== undefined) {
      last.push(
        stackStep(`${name}-data-volume`, {
          script: "dataVolume",
          params: {
            DATA_DIR: target.dataVolume.mountPoint,
            VOLUME_NAME: target.dataVolume.name,
            VOLUME_SIZE_GB: target.dataVolume.sizeGb,
            DOCKER_DROPIN_PATH: DOCKER_MOUNT_DROPIN_PATH,
          },
          stdin: encodeFiles([
            {
              path: DOCKER_MOUNT_DROPIN_PATH,
              mode: "0644",
              content: renderDockerMountDropIn({ dataDir: target.dataVolume.mountPoint }),
            },
          ]),
          sudo: true,
          // After the volume's own update: a grown volume is resized by the provider, and only
          // then does the device have the size the filesystem is grown to.
          dependsOn: [accessProof, target.dataVolume.volume, target.dataVolume.attachment],
        }),
      );
    }
    this.lastSteps = last;

    this.registerOutputs({});
  }
}
