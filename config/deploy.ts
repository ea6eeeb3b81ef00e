// What only a real deploy needs, beyond a valid config: checked before any resource exists.
import { spacesEndpointFor } from "./backup";
import { isExampleImage, isExampleName, s3Endpoint } from "./checks";
import { fullKey as key } from "./keys";
import type { StackConfig } from "./index";

/** What the deploy's environment holds that config cannot say. */
export interface DeployEnvironment {
  /** The Spaces key the DigitalOcean provider creates buckets with (SPACES_ACCESS_KEY_ID/SPACES_SECRET_ACCESS_KEY, or the provider's spacesAccessId/spacesSecretKey). */
  spacesKeys: boolean;
  /**
   * The provider's Spaces endpoint template (digitalocean:spacesEndpoint, else SPACES_ENDPOINT_URL;
   * "" = DigitalOcean's): the host copies backups to the bucket there. Default: "".
   */
  spacesEndpoint?: string;
}

/**
 * Set by the harness that runs the program under Pulumi's mocks (render, the program tests):
 * nothing is created there, so deployProblems are printed as warnings instead of stopping it.
 */
export const UNDER_MOCKS_ENV = "CHITRAM_UNDER_MOCKS";

/**
 * On a stack that creates DigitalOcean resources, no placeholder of the example stack files (an
 * `up` would create the droplet, the volume and the bucket, then fail on the DNS record or the
 * image pull), and the Spaces key the provider needs for the backup bucket. Each problem names
 * the key and what to put there.
 */
export function deployProblems(config: StackConfig, env: DeployEnvironment): string[] {
  const problems: string[] = [];
  if (config.host.target !== "digitalocean") return problems;
  const { site, release, backup } = config;
  const placeholder = (k: string, value: string, what: string) =>
    problems.push(
      `${key(k)}: ${JSON.stringify(value)} is a placeholder (a name reserved for examples); ${what}`,
    );
  if (isExampleImage(release.appImage)) {
    placeholder(
      "appImage",
      release.appImage,
      `set your app's image: pulumi config set ${key("appImage")} <registry>/<owner>/<name>:<tag> (README, "Your app image")`,
    );
  }
  if (site.domain !== undefined && isExampleName(site.domain)) {
    placeholder(
      "domain",
      site.domain,
      `set the domain the app is served on, whose DNS zone is in your DigitalOcean account ` +
        `(pulumi config set ${key("domain")} <domain>), or remove it for IP mode (pulumi config rm ${key("domain")})`,
    );
  }
  if (site.acmeEmail !== undefined && isExampleName(site.acmeEmail)) {
    placeholder(
      "acmeEmail",
      site.acmeEmail,
      `set an address that reaches you about certificates (pulumi config set ${key("acmeEmail")} <email>), or remove it`,
    );
  }
  for (const email of site.alertEmails.filter(isExampleName)) {
    placeholder(
      "alertEmails",
      email,
      `list addresses that reach you when the app is down: pulumi config set --path '${key("alertEmails")}[0]' <email>`,
    );
  }
  // The Spaces buckets the stack creates: each needs the provider's Spaces key, and an endpoint
  // the host can use.
  const buckets = [
    ...(backup.offsite?.kind === "spaces"
      ? [
          {
            setting: "offsiteBackups",
            value: "true",
            what: "the backup bucket",
            off: "set offsiteBackups to false",
            region: backup.offsite.region,
          },
        ]
      : []),
    ...(config.objects.kind === "spaces"
      ? [
          {
            setting: "objectStore",
            value: "spaces",
            what: "the app's bucket",
            off: "set objectStore to minio",
            region: config.objects.region,
          },
        ]
      : []),
  ];
  for (const b of buckets) {
    const endpoint = spacesEndpointFor(env.spacesEndpoint ?? "", b.region);
    if (env.spacesEndpoint && !s3Endpoint.test(endpoint))
      problems.push(
        `digitalocean:spacesEndpoint (or SPACES_ENDPOINT_URL): ${JSON.stringify(env.spacesEndpoint)} gives ${JSON.stringify(endpoint)} ` +
          `for ${b.what}, which the host cannot use: use https://host[:port] (http:// only with an IP address), ` +
          "e.g. https://{{.Region}}.digitaloceanspaces.com",
      );
    if (!env.spacesKeys)
      problems.push(
        `${key(b.setting)}: ${b.value} creates a Spaces bucket, and the DigitalOcean provider needs a Spaces key for it: ` +
          "export SPACES_ACCESS_KEY_ID and SPACES_SECRET_ACCESS_KEY (DigitalOcean: API > Spaces Keys), " +
          `or ${b.off}`,
      );
  }
  return problems;
}
