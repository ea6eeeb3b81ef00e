// The release: the app image, the registry it is pulled from after a login, the port it listens
// on and how long a new version has to become healthy.
import * as pulumi from "@pulumi/pulumi";
import type { AppRegistry, AppRelease } from "../components/appDeployment";
import { fullKey as key } from "./keys";
import { ConfigReader } from "./read";
import { Target } from "./host";

/** The release section is what components/appDeployment.ts takes as its release. */
export type ReleaseConfig = AppRelease;
export type RegistryConfig = AppRegistry;

// A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest], lowercase path.
const imageRef =
  /^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

/** DigitalOcean's container registry: the stack can obtain its credentials itself. */
const DO_REGISTRY = "registry.digitalocean.com";
// A registry as `docker login` takes it: lowercase DNS name or IPv4 address, optional port.
const registryHost = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$/;
// Registry user names: GHCR and Docker Hub users, emails, robot accounts (Quay `org+bot`, Harbor
// `robot$name`). It travels on stdin, never through a shell, but a colon would end it in the
// basic-auth pair and a newline would end it on stdin.
const registryUser = /^[A-Za-z0-9._@+$-]{1,256}$/;
// One line, as `docker login --password-stdin` reads it.
const registrySecret = /^[^\x00-\x1f\x7f]{1,4096}$/u;
// DigitalOcean registry names.
const doRegistryName = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

// Docker Hub's other names: Docker stores a login to them under that name, while pulls of Docker
// Hub images look it up under https://index.docker.io/v1/ (what `docker login docker.io` uses).
const dockerHubAliases = ["index.docker.io", "registry-1.docker.io"];

/** The registry an image reference is pulled from, as Docker reads it (no host = Docker Hub). */
export function imageRegistry(image: string): string {
  const first = image.split("/")[0];
  if (!(image.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost"))) {
    return "docker.io";
  }
  // Docker's reference parser reads index.docker.io/x as docker.io/x.
  return first.toLowerCase() === "index.docker.io" ? "docker.io" : first;
}

function appImageConfig(r: ConfigReader): string {
  const appImage = r.str("appImage");
  if (appImage === "") {
    r.problem(
      "appImage",
      "is not set, and it is required; set your app's container image, " +
        `e.g. pulumi config set ${key("appImage")} ghcr.io/<owner>/chitram:1.0.0 (README, "Your app image")`,
    );
  } else if (!imageRef.test(appImage)) {
    r.bad("appImage", appImage, "use a container image reference such as ghcr.io/<owner>/chitram:1.0.0");
  }
  return appImage;
}

/** The registry credential's own checks; neither value is ever echoed (either may be a token). */
function checkCredential(r: ConfigReader, username: string, password: string): void {
  if (password !== "" && r.inPlaintext("registryPassword")) {
    r.problem(
      "registryPassword",
      "is set in plain text, so the credential sits readable in the stack file; " +
        `set it as a secret: pulumi config set --secret ${key("registryPassword")}`,
    );
  } else if (password !== "" && !registrySecret.test(password)) {
    r.problem(
      "registryPassword",
      "the value set is not allowed; use one line of up to 4096 characters, without control characters",
    );
  }
  if (username !== "" && !registryUser.test(username)) {
    r.problem(
      "registryUsername",
      "the value set is not allowed; use 1-256 of A-Z a-z 0-9 . _ @ + $ - (no spaces or colon)",
    );
  }
}

/** A registry server `docker login` and the image's pulls agree on, or undefined after a problem. */
function checkServer(r: ConfigReader, server: string, appImage: string): boolean {
  const port = Number(server.split(":")[1] ?? "443");
  if (!registryHost.test(server) || port < 1 || port > 65535) {
    r.bad(
      "registryServer",
      server,
      "use a bare registry host[:port] such as ghcr.io or registry.example.com:5000: lowercase, " +
        "no scheme, path, user name or trailing slash",
    );
    return false;
  }
  if (dockerHubAliases.includes(server)) {
    r.bad(
      "registryServer",
      server,
      "use docker.io for Docker Hub: Docker stores a login to this name where pulls of Docker Hub images do not look",
    );
    return false;
  }
  const pulledFrom = imageRef.test(appImage) ? imageRegistry(appImage) : server;
  if (pulledFrom !== server && pulledFrom.toLowerCase() === server) {
    // Docker looks the login up by the host exactly as the image names it.
    r.bad(
      "appImage",
      appImage,
      `write its registry host in lowercase, as ${key("registryServer")} is: ` +
        `${server}/${appImage.slice(pulledFrom.length + 1)}`,
    );
  } else if (pulledFrom !== server) {
    r.bad(
      "appImage",
      appImage,
      `it is pulled from ${pulledFrom}, but ${key("registryServer")} is ${server}: ` +
        `use an image on ${server} (e.g. ${server}/<name>:<tag>), or set registryServer to ${pulledFrom.toLowerCase()}`,
    );
  }
  return true;
}

/** DigitalOcean's registry with no credential on a droplet: the stack obtains a read-only one. */
function digitaloceanRegistry(r: ConfigReader, appImage: string): RegistryConfig {
  // registry.digitalocean.com/<registry>/<repository>:<tag>
  const name = appImage.split("/")[1] ?? "";
  if (appImage.split("/").length < 3 || !doRegistryName.test(name)) {
    r.bad(
      "appImage",
      appImage,
      `with ${key("registryServer")} ${DO_REGISTRY}, use ${DO_REGISTRY}/<registry name>/<repository>:<tag>`,
    );
  }
  return { server: DO_REGISTRY, digitaloceanRegistry: name };
}

/** A user name and password from config: both required, the password (and a token) a secret. */
function passwordRegistry(r: ConfigReader, server: string, target: Target): RegistryConfig {
  const username = r.str("registryUsername");
  const doHint =
    server === DO_REGISTRY && target === "existing"
      ? ` (on target existing the stack cannot obtain ${DO_REGISTRY} credentials: use a DigitalOcean API token with registry read scope as both, each set with --secret)`
      : "";
  if (username === "") {
    r.bad(
      "registryUsername",
      undefined,
      `with ${key("registryServer")} ${server}, set the registry's user name (with --secret when it is a token)${doHint}`,
    );
  } else if (server === DO_REGISTRY && r.inPlaintext("registryUsername")) {
    // DigitalOcean's registry takes an API token as the user name: never echoed, never plain.
    r.problem(
      "registryUsername",
      `for ${DO_REGISTRY} it is a DigitalOcean API token, set in plain text in the stack file; ` +
        `set it as a secret: pulumi config set --secret ${key("registryUsername")}`,
    );
  }
  if (r.str("registryPassword") === "") {
    r.problem(
      "registryPassword",
      `with ${key("registryServer")} ${server}, set the password or token: ` +
        `pulumi config set --secret ${key("registryPassword")}${doHint}`,
    );
  }
  return {
    server,
    // The user name is secret when it was set with --secret (a token); the password always is.
    username: r.inPlaintext("registryUsername") ? pulumi.output(username) : r.secret("registryUsername"),
    password: r.secret("registryPassword"),
  };
}

/** The registry appImage is pulled from, and how the deploy user logs in to it. */
function registryConfig(r: ConfigReader, target: Target, appImage: string): RegistryConfig | undefined {
  const server = r.str("registryServer");
  const username = r.str("registryUsername");
  const password = r.str("registryPassword");
  checkCredential(r, username, password);
  if (server === "") {
    for (const k of ["registryUsername", "registryPassword"]) {
      if (r.str(k) !== "")
        r.problem(k, `only used with registryServer; set ${key("registryServer")} or unset it`);
    }
    return undefined;
  }
  if (!checkServer(r, server, appImage)) return undefined;
  return server === DO_REGISTRY && target === "digitalocean" && username === "" && password === ""
    ? digitaloceanRegistry(r, appImage)
    : passwordRegistry(r, server, target);
}

/** The largest releaseTimeoutSeconds: a backup waits for the longest release step it allows. */
export const RELEASE_TIMEOUT_MAX_SECONDS = 1800;

export function releaseConfig(r: ConfigReader, target: Target): ReleaseConfig {
  const appImage = appImageConfig(r);
  return {
    appImage,
    registry: registryConfig(r, target, appImage),
    appPort: r.int("appPort", 1, 65535),
    releaseTimeoutSeconds: r.int("releaseTimeoutSeconds", 10, RELEASE_TIMEOUT_MAX_SECONDS),
  };
}
