// Entry point of the chitram Pulumi program: the stack outputs. See stack.ts for the resources.
import { createStack } from "./stack";

const stack = createStack();

/** Where users reach the site: the host's public IPv4 address, or the load balancer's with appHosts > 1. */
export const publicIp = stack.publicIp;
/** The URL users open: https://<domain> in domain mode, http://<ip> in IP mode. */
export const url = stack.url;
/** The app's health URL, through Caddy. */
export const healthUrl = stack.healthUrl;
/** How to log in as the deploy user (with the deploy key). */
export const sshCommand = stack.sshCommand;
/** The deploy user CI/CD logs in as. */
export const deployUser = stack.deployUser;
/** The deploy key's private half (secret): `pulumi stack output --show-secrets deployPrivateKey`. */
export const deployPrivateKey = stack.deployPrivateKey;
/** The deploy key's public half. */
export const deployPublicKey = stack.deployPublicKey;
// With appHosts > 1, each app droplet's address (sshCommand logs in to the first). Exported only
// then: an export whose value is undefined makes the engine warn on every up of a stack with one
// droplet, and a new output would change the plan of every existing stack.
if (stack.appHostIps !== undefined) (exports as Record<string, unknown>).appHostIps = stack.appHostIps;
