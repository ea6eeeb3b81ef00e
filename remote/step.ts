// One remote step of the stack: a rendered script run over SSH by @pulumi/command, re-run only
// when what it installs changes.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createHmac } from "crypto";
import { sha256 } from "./transfer";
import { renderStepScript, StepParams, StepScript, stepCommand } from "./script";

export type Connection = command.types.input.remote.ConnectionArgs;

/**
 * A trigger value for content that holds secrets: HMAC-SHA256 under a key the stack generated
 * (a secret in the state), returned as a plain Output. A secret cannot be a trigger (the engine
 * refuses a secret whose value is still unknown inside `triggers`: "malformed secret: missing
 * value"), and a plain hash of a guessable secret (a registry password) could be brute-forced
 * from the state; this hash reveals nothing without the key.
 */
export function keyedHash(key: pulumi.Input<string>, content: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.unsecret(
    pulumi.all([key, content]).apply(([k, c]) => createHmac("sha256", k).update(c).digest("hex")),
  );
}

export interface RemoteStepOptions {
  /** The component the step belongs to. */
  parent: pulumi.Resource;
  /** Who the step connects as, and how. */
  connection: pulumi.Input<Connection>;
  /** The step's script in host/steps/, run on create and on every update; undefined = none. */
  script?: StepScript;
  /**
   * A script run when the step is deleted, which includes its replacement (a change of its
   * triggers). Edits of it only update the stored script: they run nothing.
   */
  onDelete?: StepScript;
  /**
   * On a replacement, run the old step's onDelete before the new create (the engine's default is
   * the other way round). Default: false.
   */
  deleteBeforeReplace?: boolean;
  /**
   * What a new script or new stdin does: "replace" (delete, then create anew) or "update" (create
   * runs again over what is there). A step whose onDelete undoes its create takes "update": on a
   * replacement the old step's delete would undo what the new create just did. Default: "replace".
   */
  onChange?: "replace" | "update";
  /** Shell variables the script reads. */
  params?: StepParams;
  /** Run the script as root through `sudo -n`; "auto" = only when the connection user is not root. */
  sudo: boolean | "auto";
  /** Data for the script, usually files in the bundle format of remote/transfer.ts. */
  stdin?: pulumi.Input<string>;
  /** stdin holds secrets: nothing is logged and stdout/stderr are stored as secrets. */
  secret?: boolean;
  /** More values whose change must re-run the step (hashes of what it acts on); never a secret (keyedHash). */
  triggers?: pulumi.Input<string>[];
  /** Steps that must have run first. */
  dependsOn: pulumi.Input<pulumi.Resource>[];
  /** How long the step may take, enforced on the host by `timeout` (also the dial's bound). Default: 10m. */
  timeout?: string;
  /** Seconds from the TERM at the limit to the KILL, for a step that cleans up on TERM. Default: 30. */
  killAfterSeconds?: number;
  /**
   * Changes to these inputs do not re-run the step. First-contact steps connect as root, which may
   * be closed later; they must not need root again when their script changes.
   */
  ignoreChanges?: string[];
}

export function remoteStep(name: string, o: RemoteStepOptions): command.remote.Command {
  const script = o.script === undefined ? undefined : renderStepScript(o.script, o.params);
  const onDelete = o.onDelete === undefined ? undefined : renderStepScript(o.onDelete, o.params);
  const limit = o.timeout ?? "10m";
  const replace = (o.onChange ?? "replace") === "replace";
  return new command.remote.Command(
    name,
    {
      connection: o.connection,
      create:
        script === undefined
          ? undefined
          : stepCommand(script, { sudo: o.sudo, step: name, limit, killAfterSeconds: o.killAfterSeconds }),
      delete: onDelete === undefined ? undefined : stepCommand(onDelete, { sudo: o.sudo, step: name, limit }),
      stdin: o.stdin,
      triggers: [...(script === undefined || !replace ? [] : [sha256(script)]), ...(o.triggers ?? [])],
      logging: o.secret ? "none" : "stdoutAndStderr",
      // The provider would send the last run's stdout and stderr as SSH environment variables,
      // which sshd refuses (a warning on every update) and which may hold secret output.
      addPreviousOutputInEnv: false,
    },
    {
      parent: o.parent,
      dependsOn: o.dependsOn,
      additionalSecretOutputs: o.secret ? ["stdout", "stderr"] : [],
      customTimeouts: { create: limit, update: limit, delete: limit },
      ignoreChanges: o.ignoreChanges,
      // New files on stdin replace the step like a new script does (its delete runs first with
      // deleteBeforeReplace). The engine compares stdin itself, secret or not, so no hash of a
      // secret lands in the state.
      replaceOnChanges: o.stdin === undefined || !replace ? undefined : ["stdin"],
      deleteBeforeReplace: o.deleteBeforeReplace,
    },
  );
}
