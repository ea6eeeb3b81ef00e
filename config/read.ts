// Reads raw config values as their types, collecting every problem instead of stopping at the
// first: a user fixes the whole config in one round.
import * as pulumi from "@pulumi/pulumi";
import { fullKey, RawConfig } from "./keys";

/** Whether `sshPrivateKey` is set, and how: only a secret keeps it out of the stack file in plain text. */
export type KeyState = "unset" | "secret" | "plaintext";

/** Where secret values come from: the engine's config (loadConfig), or the raw values (tests, render). */
export type SecretSource = (key: string) => pulumi.Output<string>;

export class ConfigReader {
  readonly problems: string[] = [];

  constructor(
    private readonly raw: RawConfig,
    /** Keys of those that must be secrets that were set in plain text. */
    private readonly plaintextSecrets: readonly string[],
    private readonly secrets: SecretSource,
  ) {}

  /** A problem of `key` that does not echo its value (a secret's, or one with nothing to show). */
  problem(key: string, text: string): void {
    this.problems.push(`${fullKey(key)}: ${text}`);
  }

  /** A value that is not allowed, echoed, and what is. */
  bad(key: string, value: string | undefined, allowed: string): void {
    this.problem(key, `${JSON.stringify(value ?? null)} is not allowed; ${allowed}`);
  }

  /** Whether a problem of `key` was recorded. */
  hasProblem(key: string): boolean {
    return this.problems.some((p) => p.startsWith(`${fullKey(key)}:`));
  }

  str(key: string): string {
    return this.raw[key] ?? "";
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.str(key);
    if (!(allowed as readonly string[]).includes(v)) this.bad(key, v, `use one of: ${allowed.join(", ")}`);
    return v as T;
  }

  bool(key: string): boolean {
    const v = this.str(key);
    if (v !== "true" && v !== "false") this.bad(key, v, "use true or false");
    return v === "true";
  }

  int(key: string, min: number, max: number): number {
    const v = this.str(key);
    const n = Number(v);
    if (!/^-?\d+$/.test(v) || n < min || n > max)
      this.bad(key, v, `use a whole number from ${min} to ${max}`);
    return n;
  }

  list(key: string, check: (item: string) => boolean, allowed: string): string[] {
    const v = this.str(key);
    let items: unknown;
    try {
      items = JSON.parse(v);
    } catch {
      items = undefined;
    }
    if (!Array.isArray(items) || items.some((i) => typeof i !== "string")) {
      this.bad(key, v, `use a list of strings; ${allowed}`);
      return [];
    }
    for (const item of items as string[]) {
      if (!check(item)) this.bad(key, item, allowed);
    }
    return items as string[];
  }

  /** Whether `key`, one that must be a secret, was set in plain text. */
  inPlaintext(key: string): boolean {
    return this.plaintextSecrets.includes(key);
  }

  /**
   * The value of `key` as a secret Output. Read only for a key whose value was checked: when a
   * check failed the config is refused and the Output is never used.
   */
  secret(key: string): pulumi.Output<string> {
    return this.secrets(key);
  }
}
