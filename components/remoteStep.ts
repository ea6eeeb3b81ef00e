// One remote step of the stack: a rendered script run over SSH by @pulumi/command, re-run only
// when what it installs changes.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import { renderStepScript, StepParams, StepScript, stepCommand } from "../templates/steps";

export type Connection = command.types.input.remote.ConnectionArgs;

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export interface RemoteStepOptions {
  /** The component the step belongs to. */
  parent: pulumi.Resource;
  /** Who the step connects as, and how. */
  connection: pulumi.Input<Connection>;
  /** The step's script in templates/steps/, run on create and on every update; undefined = none. */
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
  /** Shell variables the script reads. */
  params?: StepParams;
  /** Run the script as root through `sudo -n`; "auto" = only when the connection user is not root. */
  sudo: boolean | "auto";
  /** Data for the script, usually files in the bundle format of templates/hostFiles.ts. */
  stdin?: pulumi.Input<string>;
  /** stdin holds secrets: nothing is logged and stdout/stderr are stored as secrets. */
  secret?: boolean;
  /** More values whose change must re-run the step (hashes of what it acts on). */
  triggers?: pulumi.Input<string>[];
  /** Steps that must have run first. */
  dependsOn: pulumi.Input<pulumi.Resource>[];
  /** How long the step may take, enforced on the host by `timeout` (also the dial's bound). Default: 10m. */
  timeout?: string;
  /**
   * Changes to these inputs do not re-run the step. First-contact steps connect as root, which may
   * be closed later; they must not need root again when their script changes.
   */
  ignoreChanges?: string[];
}

export function remoteStep(name: string, o: RemoteStepOptions): command.remote.Command {
  const script = o.script === undefined ? undefined : renderStepScript(o.script, o.params);
  const onDelete = o.onDelete === undefined ? undefined : renderStepScript(o.onDelete, o.params);
  // A hash of stdin re-runs the step when its files change; for secret stdin the hash is secret too.
  const limit = o.timeout ?? "10m";
  const stdinHash = o.stdin === undefined ? [] : [pulumi.output(o.stdin).apply(sha256)];
  return new command.remote.Command(
    name,
    {
      connection: o.connection,
      create: script === undefined ? undefined : stepCommand(script, { sudo: o.sudo, step: name, limit }),
      delete: onDelete === undefined ? undefined : stepCommand(onDelete, { sudo: o.sudo, step: name, limit }),
      stdin: o.stdin,
      triggers: [...(script === undefined ? [] : [sha256(script)]), ...stdinHash, ...(o.triggers ?? [])],
      logging: o.secret ? "none" : "stdoutAndStderr",
    },
    {
      parent: o.parent,
      dependsOn: o.dependsOn,
      additionalSecretOutputs: o.secret ? ["stdout", "stderr"] : [],
      customTimeouts: { create: limit, update: limit, delete: limit },
      ignoreChanges: o.ignoreChanges,
      deleteBeforeReplace: o.deleteBeforeReplace,
    },
  );
}
