// The site: where users reach the app (a domain with automatic HTTPS, or the host's IP address),
// its health path, and who is told when it is down.
import * as path from "path";
import { readRepoText } from "../remote/transfer";
import { acmeDirectory, EMAIL, isBareDomain, LETS_ENCRYPT_STAGING } from "./checks";
import { ConfigReader } from "./read";

export interface SiteConfig {
  /** Undefined in IP mode. */
  domain?: string;
  acmeEmail?: string;
  /** ACME directory URL Caddy uses; undefined = Caddy's default issuers (Let's Encrypt first). */
  acmeCa?: string;
  /**
   * PEM roots the ACME CA issues under when the host's trust store lacks them (Let's Encrypt's
   * staging roots for acmeCa staging, or acmeCaRoot for a private CA): the deploy's health check
   * trusts them besides the system's. Undefined = the system's store alone.
   */
  acmeCaRoots?: string;
  healthPath: string;
  /** Who DigitalOcean's uptime checks email; empty = no checks. */
  alertEmails: string[];
}

// The health path reaches curl, compose.yaml, host.env (sourced by root) and the uptime check: a
// path and an optional query string. `&` is allowed in the query (every file that carries the path
// quotes it); `$ ( ) ; '` and the like are not: no health endpoint needs them, and compose
// (interpolation) and curl (URL globbing) would read some of them even when quoted.
const healthPathPattern =
  /^\/(?:[A-Za-z0-9._~/:@+,=-]|%[0-9A-Fa-f]{2})*(?:\?(?:[A-Za-z0-9._~/:@+,=&-]|%[0-9A-Fa-f]{2})*)?$/;

/** Let's Encrypt's staging roots, shipped with the stack (host/ca/), without their comment lines. */
export function letsEncryptStagingRoots(): string {
  const pem = readRepoText(path.join(__dirname, "..", "host", "ca", "letsencrypt-staging-roots.pem"));
  return `${pem
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .join("\n")
    .trim()}\n`;
}

/** One or more PEM certificates and nothing else, at most 64 KB. */
export function isPemCertificates(text: string): boolean {
  return (
    text.length <= 65536 &&
    /^(-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{1,76}\n)+-----END CERTIFICATE-----\n?)+$/.test(
      `${text.trim()}\n`,
    )
  );
}

/** The ACME CA's directory and the roots its certificates chain to; both undefined = Let's Encrypt. */
function acmeConfig(r: ConfigReader): { acmeCa?: string; acmeCaRoots?: string } {
  const ca = r.str("acmeCa");
  const root = r.str("acmeCaRoot").trim();
  let acmeCa: string | undefined;
  let acmeCaRoots: string | undefined;
  if (ca === "staging") {
    acmeCa = LETS_ENCRYPT_STAGING;
    acmeCaRoots = letsEncryptStagingRoots();
  } else if (ca !== "letsencrypt") {
    if (acmeDirectory.test(ca)) acmeCa = ca;
    else r.bad("acmeCa", ca, "use letsencrypt, staging, or the https URL of an ACME directory");
  }
  if (root !== "") {
    if (ca === "letsencrypt" || ca === "staging") {
      r.bad(
        "acmeCaRoot",
        `${root.slice(0, 30)}...`,
        `only with acmeCa set to the URL of another ACME CA (${ca}'s roots are known)`,
      );
    } else if (!isPemCertificates(root)) {
      r.bad(
        "acmeCaRoot",
        `${root.slice(0, 30)}...`,
        "use the CA's root certificate(s) in PEM, as -----BEGIN CERTIFICATE----- blocks " +
          "(pulumi config set chitram:acmeCaRoot < root.pem), at most 64 KB",
      );
    } else {
      acmeCaRoots = `${root}\n`;
    }
  }
  return { acmeCa, acmeCaRoots };
}

export function siteConfig(r: ConfigReader): SiteConfig {
  const domain = r.str("domain");
  if (domain !== "" && !isBareDomain(domain)) {
    r.bad(
      "domain",
      domain,
      "use a bare lowercase DNS name such as chitram.example.com: no scheme, path, port or IP address",
    );
  }
  const acmeEmail = r.str("acmeEmail");
  if (acmeEmail !== "" && !EMAIL.test(acmeEmail)) r.bad("acmeEmail", acmeEmail, "use an email address");
  const { acmeCa, acmeCaRoots } = acmeConfig(r);
  const healthPath = r.str("healthPath");
  if (!healthPathPattern.test(healthPath)) {
    r.bad(
      "healthPath",
      healthPath,
      "use a URL path that starts with /, made of letters, digits, . _ ~ - / : @ + , = and %XX escapes, " +
        "optionally followed by a query string after ? that may also use &; " +
        "no spaces, quotes, # or shell characters such as $ ( ) ; ' \" ` \\ | < > * ! [ ] { }",
    );
  }
  const alertEmails = r.list("alertEmails", (e) => EMAIL.test(e), "each entry must be an email address");
  return {
    domain: domain || undefined,
    acmeEmail: acmeEmail || undefined,
    // ACME is domain mode's alone.
    acmeCa: domain !== "" ? acmeCa : undefined,
    acmeCaRoots: domain !== "" ? acmeCaRoots : undefined,
    healthPath,
    alertEmails,
  };
}
