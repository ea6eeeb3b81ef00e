// The deploy workflow's preview gate: reads `pulumi preview --json` and refuses (exit 1) a plan
// that replaces or deletes the droplet, the data volume or the managed database, unless --allow-replace says the person
// who started the deploy asked for it (docs/RUNBOOK.md, "Replacing the droplet or the volume").
//
//   tsx tools/previewGate.ts PREVIEW_JSON [--allow-replace]
//
// Exit codes: 0 the plan may be applied, 1 refused, 2 unreadable input or bad usage.
import * as fs from "fs";

/** Resources whose loss loses data or the host: their replacement must be asked for. */
export const GUARDED_TYPES = [
  "digitalocean:index/droplet:Droplet",
  "digitalocean:index/volume:Volume",
  // The Spaces buckets (the app's objects, the off-box backups): a new one is empty.
  "digitalocean:index/spacesBucket:SpacesBucket",
  // A managed database and the app's database in it (`database: managed`).
  "digitalocean:index/databaseCluster:DatabaseCluster",
  "digitalocean:index/databaseDb:DatabaseDb",
];

// Every step op the engine prints that deletes a resource or swaps it for a new one.
const DESTRUCTIVE_OPS = [
  "delete",
  "replace",
  "create-replacement",
  "delete-replaced",
  "discard",
  "discard-replaced",
  "import-replacement",
  "read-replacement",
];

/** One step of `pulumi preview --json` (Pulumi's display/json.go previewStep), the fields read here. */
export interface PreviewStep {
  op: string;
  urn: string;
  oldState?: { type?: string };
  newState?: { type?: string };
  replaceReasons?: string[];
}

export interface GuardedChange {
  op: string;
  type: string;
  urn: string;
  reasons: string[];
}

/** The resource type of a step: from its state, else from its URN (`...::<parent$>type::name`). */
export function stepType(step: PreviewStep): string {
  const fromState = step.newState?.type ?? step.oldState?.type;
  if (fromState) return fromState;
  const parts = step.urn.split("::");
  const types = parts.length >= 4 ? parts[parts.length - 2] : "";
  return types.split("$").pop() ?? "";
}

/** Steps of a parsed preview that replace or delete a guarded resource. */
export function guardedChanges(preview: unknown): GuardedChange[] {
  const steps = (preview as { steps?: unknown })?.steps;
  if (!Array.isArray(steps)) throw new Error("not the output of `pulumi preview --json`: no steps list");
  const out: GuardedChange[] = [];
  for (const step of steps as PreviewStep[]) {
    if (typeof step?.op !== "string" || typeof step.urn !== "string") {
      throw new Error(`a preview step without op or urn: ${JSON.stringify(step)}`);
    }
    const type = stepType(step);
    if (DESTRUCTIVE_OPS.includes(step.op) && GUARDED_TYPES.includes(type)) {
      out.push({ op: step.op, type, urn: step.urn, reasons: step.replaceReasons ?? [] });
    }
  }
  return out;
}

/** What the gate prints and its exit code. */
export function gate(previewJson: string, allowReplace: boolean): { code: number; message: string } {
  let changes: GuardedChange[];
  try {
    changes = guardedChanges(JSON.parse(previewJson));
  } catch (e) {
    return { code: 2, message: `preview gate: cannot read the preview: ${(e as Error).message}` };
  }
  if (changes.length === 0) {
    return {
      code: 0,
      message: "preview gate: no replacement or deletion of the droplet, the volume or the managed database",
    };
  }
  const list = changes
    .map((c) => `  ${c.op} ${c.urn}${c.reasons.length ? ` (because of: ${c.reasons.join(", ")})` : ""}`)
    .join("\n");
  if (allowReplace) {
    return { code: 0, message: `preview gate: applying, as asked (allow_replace):\n${list}` };
  }
  return {
    code: 1,
    message:
      `preview gate: this deploy would replace or delete the droplet, the data volume or the managed database:\n${list}\n` +
      "Nothing was applied. If that is intended, follow docs/RUNBOOK.md, " +
      '"Replacing the droplet or the volume", and run the deploy workflow by hand with allow_replace.',
  };
}

function main(argv: string[]): number {
  const args = argv.filter((a) => a !== "--allow-replace");
  if (args.length !== 1 || args[0].startsWith("-")) {
    console.error("usage: tsx tools/previewGate.ts PREVIEW_JSON [--allow-replace]");
    return 2;
  }
  const { code, message } = gate(fs.readFileSync(args[0], "utf8"), argv.includes("--allow-replace"));
  (code === 0 ? console.log : console.error)(message);
  return code;
}

if (require.main === module) process.exit(main(process.argv.slice(2)));
