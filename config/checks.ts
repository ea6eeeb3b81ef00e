// Checks of single config values, with no Pulumi or provider import: the config sections use
// them, and so do the renderers that must refuse a bad value themselves (a Caddyfile site address).
import * as net from "net";

const dnsLabel = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A Linux user name as useradd takes it by default: a lowercase letter or _, then up to 31 of a-z 0-9 _ -. */
export const LINUX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * An absolute path of plain characters, which any shell, cron or systemd line can carry unquoted,
 * without an empty, `.` or `..` component (the host's receive_files checks the same).
 */
export const PLAIN_PATH = /^(\/(?!\.\.?(\/|$))[A-Za-z0-9._-]+)+$/;

export const EMAIL = /^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/;

/** Memory in MB named by a droplet size slug (`s-2vcpu-2gb` → 2048), or undefined if it names none. */
export function slugMemoryMb(slug: string): number | undefined {
  for (const part of slug.split("-")) {
    const m = /^(\d+)(mb|gb)$/.exec(part);
    if (m) return Number(m[1]) * (m[2] === "gb" ? 1024 : 1);
  }
  return undefined;
}

export function isCidr(value: string): boolean {
  const [addr, prefix, ...rest] = value.split("/");
  if (rest.length > 0 || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return false;
  const family = net.isIP(addr);
  return family !== 0 && Number(prefix) <= (family === 4 ? 32 : 128);
}

/** A bare DNS name: no scheme, path, port or trailing dot, at least two labels, not an IP address. */
export function isBareDomain(value: string): boolean {
  if (value.length > 253 || net.isIP(value) !== 0) return false;
  const labels = value.split(".");
  return (
    labels.length >= 2 && labels.every((l) => dnsLabel.test(l)) && !/^\d+$/.test(labels[labels.length - 1])
  );
}

// Names reserved for examples (RFC 2606, RFC 6761): nobody can own them.
const exampleDomain = /(^|\.)(example\.(com|net|org)|example|test|invalid|localhost)$/;

/** Whether a domain, or an email address's domain, is one reserved for examples. */
export function isExampleName(value: string): boolean {
  return exampleDomain.test(value.slice(value.lastIndexOf("@") + 1).toLowerCase());
}

/**
 * Whether an image reference is a placeholder: on a registry with an example name, or under an
 * `example` owner (`ghcr.io/example/chitram:1.0.0`, the example stack files' image).
 */
export function isExampleImage(image: string): boolean {
  const parts = image.toLowerCase().split("/");
  const host = parts.length > 1 && /[.:]|^localhost$/.test(parts[0]) ? parts.shift()! : "";
  return isExampleName(host.split(":")[0]) || (parts.length > 1 && parts[0] === "example");
}

const cronFields: { name: string; min: number; max: number; names?: string[] }[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  {
    name: "month",
    min: 1,
    max: 12,
    names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
  },
  { name: "day of week", min: 0, max: 7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] },
];

/** Why a five-field cron expression is invalid, or undefined if it is valid. */
export function cronProblem(expr: string): string | undefined {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) return `has ${fields.length} fields`;
  for (const [i, field] of fields.entries()) {
    const spec = cronFields[i];
    const value = (v: string): number | undefined => {
      const named = spec.names?.indexOf(v.toLowerCase()) ?? -1;
      if (named >= 0) return named + (spec.min === 1 ? 1 : 0);
      return /^\d+$/.test(v) ? Number(v) : undefined;
    };
    for (const item of field.split(",")) {
      const [range, step, ...extra] = item.split("/");
      if (extra.length > 0 || (step !== undefined && !/^[1-9]\d*$/.test(step))) {
        return `${spec.name} field "${field}" has a bad step`;
      }
      if (range === "*") continue;
      const bounds = range.split("-");
      const nums = bounds.map(value);
      if (bounds.length > 2 || nums.some((n) => n === undefined || n < spec.min || n > spec.max)) {
        return `${spec.name} field "${field}" must be within ${spec.min}-${spec.max}`;
      }
      if (nums.length === 2 && nums[0]! > nums[1]!)
        return `${spec.name} field "${field}" has a reversed range`;
    }
  }
  return undefined;
}

/**
 * True when an SSH private key needs a passphrase (retro #3): an OpenSSH key whose kdf is not
 * "none" (ssh-keygen uses bcrypt), a PEM key with `Proc-Type: 4,ENCRYPTED`, or encrypted PKCS#8.
 */
export function isPassphraseProtected(key: string): boolean {
  if (/^Proc-Type:\s*4,ENCRYPTED/m.test(key) || key.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
    return true;
  const openssh = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(key);
  if (!openssh) return false;
  // "openssh-key-v1\0", then the cipher name and the kdf name, each a uint32 length and bytes.
  const body = Buffer.from(openssh[1].replace(/\s/g, ""), "base64");
  const magic = "openssh-key-v1\0".length;
  if (body.length < magic + 4) return false;
  const cipherLength = body.readUInt32BE(magic);
  const kdfAt = magic + 4 + cipherLength;
  if (body.length < kdfAt + 4) return false;
  const kdf = body.subarray(kdfAt + 4, kdfAt + 4 + body.readUInt32BE(kdfAt)).toString("latin1");
  return kdf !== "none";
}

/**
 * A heartbeat URL the backup can append `/fail` to and hand to curl in a quoted config line:
 * http(s), a host, an optional port and path, no query, fragment, credentials, quotes or
 * trailing slash.
 */
export const heartbeatUrl = /^https?:\/\/[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:\/[A-Za-z0-9._~%+-]+)*$/;

/** An S3 endpoint for off-box backups: https (http only for a host name without dots, a test's). */
export const s3Endpoint =
  /^(?:https:\/\/[A-Za-z0-9.-]+|http:\/\/[A-Za-z0-9-]+|http:\/\/(?:\d{1,3}\.){3}\d{1,3})(?::[0-9]{1,5})?$/;
export const s3Bucket = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** S3/Spaces keys as rendered into the backup's secrets file and mc's alias. */
export const s3Key = /^[A-Za-z0-9+/=_-]{8,128}$/;

export const LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory";
/** An ACME directory URL that can stand unquoted in a Caddyfile: https, no spaces, quotes or braces. */
export const acmeDirectory = /^https:\/\/[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:\/[A-Za-z0-9._~%+-]+)*\/?$/;
