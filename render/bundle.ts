// The app bundle's manifest: the ONE list of files pushed to the app directory. The host/scripts/
// folder is read whole, so a new script cannot be left out of a deploy (retro #6).
import * as fs from "fs";
import * as path from "path";
import { renderCaddyfile } from "./caddyfile";
import { renderCompose } from "./compose";
import { HostEnvArgs, renderHostEnv } from "./hostConfig";
import { HostFile, readRepoText } from "../remote/transfer";
import { ACME_CA_ROOTS_FILE, siteUrls } from "../hostContract";

export const SCRIPTS_DIR = path.join(__dirname, "..", "host", "scripts");

/** What the bundle is rendered from: host.env's settings (its health URL is derived here) and the app's. */
export interface BundleArgs extends Omit<HostEnvArgs, "healthUrl" | "healthHost"> {
  /** The app's container image. */
  appImage: string;
  /** Port the app listens on. */
  appPort: number;
  /** The app's health path. */
  healthPath: string;
  /** Domain mode: the domain; undefined = IP mode. */
  domain?: string;
  /** ACME account email (domain mode). */
  acmeEmail?: string;
  /** ACME directory URL (domain mode); undefined = Caddy's default issuers. */
  acmeCa?: string;
  /** PEM roots the health check trusts besides the host's store; undefined = none. */
  acmeCaRoots?: string;
  /** One of several droplets behind a load balancer (render/caddyfile.ts); undefined = none. */
  behindLoadBalancer?: { https: boolean };
}

/** Every script in host/scripts/, executable. */
export function scriptFiles(appDir: string): HostFile[] {
  return fs
    .readdirSync(SCRIPTS_DIR)
    .filter((f) => fs.statSync(path.join(SCRIPTS_DIR, f)).isFile())
    .sort()
    .map((f) => ({
      path: `${appDir}/scripts/${f}`,
      mode: "0755",
      content: readRepoText(path.join(SCRIPTS_DIR, f)),
    }));
}

/** host.env's settings for a bundle. */
export function hostEnvArgs(args: BundleArgs): HostEnvArgs {
  return {
    appDir: args.appDir,
    dataDir: args.dataDir,
    backupRetentionDays: args.backupRetentionDays,
    // The host checks itself through its own Caddy.
    healthUrl: siteUrls(args, "127.0.0.1").healthUrl,
    healthHost: args.domain ?? "",
    healthCaRoots: args.acmeCaRoots === undefined ? "" : `${args.appDir}/${ACME_CA_ROOTS_FILE}`,
    database: args.database ?? "container",
    objects: args.objects ?? "minio",
  };
}

export function bundleManifest(args: BundleArgs): HostFile[] {
  return [
    {
      path: `${args.appDir}/compose.yaml`,
      mode: "0644",
      content: renderCompose({
        appImage: args.appImage,
        appPort: args.appPort,
        dataDir: args.dataDir,
        healthPath: args.healthPath,
        database: args.database ?? "container",
        objects: args.objects ?? "minio",
      }),
    },
    {
      path: `${args.appDir}/caddy/Caddyfile`,
      mode: "0644",
      content: renderCaddyfile({
        domain: args.domain,
        acmeEmail: args.acmeEmail,
        acmeCa: args.acmeCa,
        ...(args.behindLoadBalancer && {
          behindLoadBalancer: { ...args.behindLoadBalancer, healthPath: args.healthPath },
        }),
      }),
    },
    {
      path: `${args.appDir}/host.env`,
      mode: "0644",
      content: renderHostEnv(hostEnvArgs(args)),
    },
    ...(args.acmeCaRoots === undefined
      ? []
      : [{ path: `${args.appDir}/${ACME_CA_ROOTS_FILE}`, mode: "0644", content: args.acmeCaRoots }]),
    ...scriptFiles(args.appDir),
  ];
}
