// The keys of the stack's configuration: declared once, in Pulumi.yaml (type, description,
// default), read here; a key that is not declared is refused with the nearest one named.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";

export const CONFIG_NAMESPACE = "chitram";

/** `chitram:<key>`, as the CLI and every problem name a key. */
export const fullKey = (key: string): string => `${CONFIG_NAMESPACE}:${key}`;

/** Raw values as Pulumi hands them over: strings, with arrays as JSON text. */
export type RawConfig = Record<string, string | undefined>;

/**
 * Every problem of the configuration. A RunError: the Pulumi CLI prints its message alone, where a
 * plain Error is printed with a stack trace that buries the message.
 */
export class ConfigError extends pulumi.RunError {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

interface Declaration {
  type: "string" | "integer" | "boolean" | "array";
  default?: unknown;
  description: string;
}

const projectFile = path.join(__dirname, "..", "Pulumi.yaml");

/** The `config:` block of Pulumi.yaml: the one list of keys and their defaults. */
export function declaredConfig(): Record<string, Declaration> {
  const project = YAML.parse(fs.readFileSync(projectFile, "utf8")) as { config: Record<string, Declaration> };
  return project.config;
}

/**
 * Pulumi's CLI fills in Pulumi.yaml defaults before the program runs; tests and `render` run the
 * program without the CLI, so defaults are applied here from the same file.
 */
export function withDefaults(raw: RawConfig): RawConfig {
  const out: RawConfig = { ...raw };
  for (const [key, decl] of Object.entries(declaredConfig())) {
    if (out[key] === undefined && decl.default !== undefined) {
      out[key] = typeof decl.default === "string" ? decl.default : JSON.stringify(decl.default);
    }
  }
  return out;
}

/** Edit distance between a and b (insertions, deletions, substitutions, adjacent swaps). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** The known key closest to `key`. */
export function nearestKey(key: string, known: readonly string[]): string {
  return known.reduce((best, k) => (editDistance(key, k) < editDistance(key, best) ? k : best));
}

/** A problem for each key of `raw` that Pulumi.yaml does not declare, with the nearest one named. */
export function unknownKeyProblems(raw: RawConfig): string[] {
  const declared = Object.keys(declaredConfig());
  return Object.keys(raw)
    .filter((k) => !declared.includes(k))
    .map(
      (key) =>
        `${fullKey(key)} is not a known key; did you mean ${fullKey(nearestKey(key, declared))}? ` +
        `(the keys are listed in Pulumi.yaml; remove it with: pulumi config rm ${fullKey(key)})`,
    );
}
