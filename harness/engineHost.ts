// A sandbox droplet and a stack of the real program (target existing) that deploys to it through
// the real engine: what the engine tests and the engine benchmark share.
import { ed25519KeyPair, KeyPair } from "./keys";
import { PulumiStack, StateResource, stateResources } from "./pulumiCli";
import { buildImages, Droplet, DropletImage, ensureDockerd, startDroplet } from "./sandbox";
import { SANDBOX_APP_IMAGE } from "../hostContract";

export interface EngineHost {
  droplet: Droplet;
  stack: PulumiStack;
  /** Root's key on the droplet: the stack's `sshPrivateKey`. */
  bootstrap: KeyPair;
  /** The config the stack was given (secrets left out). */
  config: Record<string, string>;
  /** The URN of a resource of the stack, by its name (e.g. "deploy-key"). */
  urn(name: string): Promise<string>;
  /** Removes the droplet and the stack's scratch directory. */
  remove(): Promise<void>;
}

/** A fresh droplet whose root accepts a new key, and a new stack of the program pointed at it. */
export async function engineHost(
  stackName: string,
  opts: {
    /** More plain config (strings, as `pulumi config set` takes them). */
    config?: Record<string, string>;
    /** More secret config. */
    secrets?: Record<string, string>;
    holdSshd?: boolean;
    images?: readonly DropletImage[] | false;
  } = {},
): Promise<EngineHost> {
  await ensureDockerd();
  await buildImages();
  const bootstrap = ed25519KeyPair("engine-root");
  const [droplet, stack] = await Promise.all([
    startDroplet({
      rootPublicKey: bootstrap.public,
      holdSshd: opts.holdSshd,
      images: opts.images,
      fixedPorts: true,
    }),
    PulumiStack.create(stackName),
  ]);
  const config = {
    target: "existing",
    host: "127.0.0.1",
    sshPort: String(droplet.sshPort),
    sshUser: "root",
    appImage: SANDBOX_APP_IMAGE,
    ...opts.config,
  };
  try {
    await stack.configure(config, { sshPrivateKey: bootstrap.private, ...opts.secrets });
  } catch (e) {
    await droplet.stop();
    stack.remove();
    throw e;
  }
  const urn = async (name: string) => {
    const found = (await stateResources(stack)).find((r: StateResource) => r.urn.endsWith(`::${name}`));
    if (!found) throw new Error(`no resource named ${name} in stack ${stackName}`);
    return found.urn;
  };
  return {
    droplet,
    stack,
    bootstrap,
    config,
    urn,
    remove: async () => {
      await droplet.stop();
      stack.remove();
    },
  };
}
