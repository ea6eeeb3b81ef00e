// Runs the real program under Pulumi's mocks and records every resource the engine would see:
// its type, name, resolved inputs (with which of them are secret), options and dependencies.
// Used by the tests, by `npm run render` and by the real-host replay.
import * as pulumi from "@pulumi/pulumi";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { CONFIG_NAMESPACE, UNDER_MOCKS_ENV } from "../config";
import { ed25519KeyPair } from "./keys";

// Internal to the SDK: resolves once every registration the program started has finished.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { waitForRPCs } = require("@pulumi/pulumi/runtime/settings") as { waitForRPCs: () => Promise<void> };

const SECRET_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
export const SECRET_MASK = "[secret]";

/** The droplet address the mocks hand out: TEST-NET-3, documentation only, never contacted. */
export const MOCK_DROPLET_IP = "203.0.113.10";

/**
 * The host key a step's stdout reports under mocks (the first step records the real one on a
 * host): a placeholder the real-host engine (harness/engine.ts) replaces with what that step
 * printed when it ran.
 */
export function hostKeyPlaceholder(step: string): string {
  return `ssh-ed25519 PLACEHOLDER-host-key-of-${step}`;
}
export const HOST_KEY_PLACEHOLDER = /^ssh-ed25519 PLACEHOLDER-host-key-of-(\S+)$/;

/** The droplet id the mocks hand out: numeric, as DigitalOcean's are (the firewall needs a number). */
export const MOCK_DROPLET_ID = 331296101;
/** The address the mocks give a load balancer (TEST-NET-3). */
export const MOCK_LB_IP = "203.0.113.80";

export interface RecordedResource {
  urn: string;
  type: string;
  name: string;
  parent?: string;
  custom: boolean;
  /** Inputs with secrets unwrapped to their values. */
  inputs: Record<string, unknown>;
  /** The same inputs with every secret value replaced by "[secret]". */
  maskedInputs: Record<string, unknown>;
  /** Dotted paths of the inputs that are secret. */
  secretPaths: string[];
  /** URNs this resource depends on (explicit dependsOn and inputs from other resources). */
  dependencies: string[];
  /** What the mocked provider returned for it (its outputs, secrets unwrapped); empty until created. */
  state: Record<string, unknown>;
  options: {
    protect: boolean;
    deleteBeforeReplace: boolean;
    ignoreChanges: string[];
    replaceOnChanges: string[];
    additionalSecretOutputs: string[];
    customTimeouts?: { create: string; update: string; delete: string };
  };
}

export interface OutputValue {
  value: unknown;
  secret: boolean;
}

export interface ProgramRun {
  resources: RecordedResource[];
  outputs: Record<string, OutputValue>;
}

export interface RunOptions {
  /** Stack name. */
  stack: string;
  /** Config values without the namespace, as Pulumi hands them over (strings; arrays as JSON). */
  config: Record<string, string>;
  /** Keys of `config` that are set as secrets. */
  secretKeys?: string[];
  /**
   * "placeholders": random values and keys are clearly-marked placeholders (render, most tests);
   * "real": real random values and a real ED25519 key (the real-host replay needs them).
   */
  values?: "placeholders" | "real";
  /**
   * Every registration is pushed here as it happens, so a caller sees what registered even when
   * the program throws part-way (a bad config must stop it before the first one).
   */
  registered?: RecordedResource[];
  /**
   * Run the checks only a real deploy makes (placeholders, cloud credentials: config/deploy.ts
   * deployProblems) as a real deploy does, stopping the program. Default false: under mocks they
   * are warnings, since nothing is created.
   */
  deployChecks?: boolean;
}

function unwrap(value: unknown, at: string, secrets: string[], mask: boolean): unknown {
  if (Array.isArray(value)) return value.map((v, i) => unwrap(v, `${at}[${i}]`, secrets, mask));
  if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (obj[SECRET_KEY] === SECRET_SIG) {
      secrets.push(at);
      return mask ? SECRET_MASK : unwrap(obj.value, at, [], false);
    }
    return Object.fromEntries(
      Object.entries(obj).map(([k, v]) => [k, unwrap(v, at ? `${at}.${k}` : k, secrets, mask)]),
    );
  }
  return value;
}

function randomAlnum(length: number, upper: boolean): string {
  const alphabet = `abcdefghijklmnopqrstuvwxyz0123456789${upper ? "ABCDEFGHIJKLMNOPQRSTUVWXYZ" : ""}`;
  return Array.from(randomBytes(length), (b) => alphabet[b % alphabet.length]).join("");
}

function realEd25519(): { privateKeyOpenssh: string; publicKeyOpenssh: string } {
  // OpenSSH-format keys without a passphrase, as @pulumi/tls writes them.
  const pair = ed25519KeyPair("chitram-deploy");
  return { privateKeyOpenssh: pair.private, publicKeyOpenssh: `${pair.public.trim()}\n` };
}

// Real values are generated once per stack and resource in a process and then kept, as Pulumi keeps
// them in the stack's state: a second run of the program sees the same keys and passwords.
const realValues = new Map<string, Record<string, unknown>>();

/** Drops a remembered value, as `pulumi up --replace` of that resource would: the next run makes a new one. */
export function replaceRealValue(stack: string, type: string, name: string): void {
  realValues.delete(`${stack}/${type}/${name}`);
}

function remembered(key: string, make: () => Record<string, unknown>): Record<string, unknown> {
  if (!realValues.has(key)) realValues.set(key, make());
  return realValues.get(key)!;
}

/** Outputs the providers would compute, for the resource types the program uses. */
function mockState(
  args: pulumi.runtime.MockResourceArgs,
  real: boolean,
  stack: string,
): Record<string, unknown> {
  const key = `${stack}/${args.type}/${args.name}`;
  const inputs = args.inputs as Record<string, unknown>;
  switch (args.type) {
    case "tls:index/privateKey:PrivateKey":
      return real
        ? remembered(key, realEd25519)
        : {
            privateKeyOpenssh: `PLACEHOLDER-private-key-of-${args.name}\n`,
            publicKeyOpenssh: `ssh-ed25519 PLACEHOLDER-public-key-of-${args.name} chitram-deploy\n`,
          };
    case "random:index/randomPassword:RandomPassword":
    case "random:index/randomString:RandomString": {
      const length = Number(inputs.length);
      return {
        result: real
          ? remembered(key, () => ({ result: randomAlnum(length, inputs.upper !== false) })).result
          : `PLACEHOLDER-${args.name}`.toLowerCase().replace(/[^a-z0-9-]/g, "-"),
      };
    }
    case "command:remote:Command":
      return { stdout: `chitram-host-key ${hostKeyPlaceholder(args.name)}` };
    case "digitalocean:index/droplet:Droplet":
      return { ipv4Address: MOCK_DROPLET_IP, dropletUrn: `do:droplet:${args.name}` };
    case "digitalocean:index/sshKey:SshKey":
      return { fingerprint: `fingerprint-of-${args.name}` };
    case "digitalocean:index/volume:Volume":
      return { volumeUrn: `do:volume:${args.name}` };
    case "digitalocean:index/certificate:Certificate":
      // Auto-named: the logical name and a random suffix.
      return { name: `${args.name}-a1b2c3d` };
    case "digitalocean:index/loadBalancer:LoadBalancer":
      return { ip: MOCK_LB_IP, loadBalancerUrn: `do:loadbalancer:${args.name}-id` };
    case "digitalocean:index/spacesBucket:SpacesBucket":
      // The provider auto-names a bucket without a name: the logical name and a random suffix.
      return {
        name: `${args.name}-a1b2c3d`,
        region: inputs.region,
        bucketUrn: `do:space:${args.name}-a1b2c3d`,
      };
    case "digitalocean:index/spacesKey:SpacesKey":
      return real
        ? remembered(key, () => ({
            accessKey: `DO00${randomAlnum(16, true)}`,
            secretKey: randomAlnum(43, true),
          }))
        : {
            accessKey: `PLACEHOLDER-access-key-of-${args.name}`,
            secretKey: `PLACEHOLDER-secret-key-of-${args.name}`,
          };
    case "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials": {
      // What the provider returns: a Docker config.json for the registry (read-only by default).
      const token = real
        ? String(remembered(key, () => ({ token: `dop_v1_${randomAlnum(64, false)}` })).token)
        : `PLACEHOLDER-token-of-${args.name}`;
      const auth = Buffer.from(`${token}:${token}`).toString("base64");
      return {
        dockerCredentials: JSON.stringify({ auths: { "registry.digitalocean.com": { auth } } }),
        credentialExpirationTime: "2076-12-04T00:00:00Z",
      };
    }
    case "digitalocean:index/databaseCluster:DatabaseCluster": {
      // DigitalOcean's fields: the admin user doadmin, its password, the public and private hosts.
      const password = real
        ? String(remembered(key, () => ({ password: `AVNS_${randomAlnum(20, true)}` })).password)
        : `PLACEHOLDER-admin-password-of-${args.name}`;
      return {
        host: `${String(inputs.name)}-do-user-1-0.j.db.ondigitalocean.com`,
        privateHost: `private-${String(inputs.name)}-do-user-1-0.j.db.ondigitalocean.com`,
        port: 25060,
        user: "doadmin",
        password,
        database: "defaultdb",
        clusterUrn: `do:dbaas:${args.name}`,
      };
    }
    case "digitalocean:index/databaseUser:DatabaseUser":
      return {
        password: real
          ? String(remembered(key, () => ({ password: `AVNS_${randomAlnum(20, true)}` })).password)
          : `PLACEHOLDER-password-of-${args.name}`,
      };
    default:
      return {};
  }
}

/** Reads a stack file's `config:` into raw strings for `namespace` keys (objects as JSON). */
export function readStackFile(file: string): Record<string, string> {
  const doc = (YAML.parse(fs.readFileSync(file, "utf8")) ?? {}) as { config?: Record<string, unknown> };
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(doc.config ?? {})) {
    const [ns, name] = key.includes(":") ? key.split(":", 2) : [CONFIG_NAMESPACE, key];
    if (ns !== CONFIG_NAMESPACE) continue;
    if (value !== null && typeof value === "object" && "secure" in value) {
      out[name] = `PLACEHOLDER-secure-${name}`;
    } else {
      out[name] = typeof value === "string" ? value : JSON.stringify(value);
    }
  }
  return out;
}

export function stackFile(stack: string): string {
  return path.join(__dirname, "..", `Pulumi.${stack}.yaml`);
}

interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): { toJavaScript(): Record<string, unknown> } | undefined;
  getDependenciesList(): string[];
  getProtect(): boolean;
  getDeletebeforereplace(): boolean;
  getIgnorechangesList(): string[];
  getReplaceonchangesList(): string[];
  getAdditionalsecretoutputsList(): string[];
  getCustomtimeouts(): { getCreate(): string; getUpdate(): string; getDelete(): string } | undefined;
}

interface MockMonitorLike {
  registerResource(req: RegisterRequest, cb: unknown): unknown;
  newUrn(parent: string, type: string, name: string): string;
}

// Pulumi's runtime state (config, mocks, monitor) is global: runs take turns.
let queue: Promise<unknown> = Promise.resolve();

/** Evaluates the program with the given config under mocks. Concurrent calls run one after another. */
export function runProgram(opts: RunOptions): Promise<ProgramRun> {
  const result = queue.then(() => runProgramAlone(opts));
  queue = result.catch(() => undefined);
  return result;
}

async function runProgramAlone(opts: RunOptions): Promise<ProgramRun> {
  const real = opts.values === "real";
  const config = Object.fromEntries(
    Object.entries(opts.config).map(([k, v]) => [`${CONFIG_NAMESPACE}:${k}`, v]),
  );
  pulumi.runtime.setAllConfig(
    config,
    (opts.secretKeys ?? []).map((k) => `${CONFIG_NAMESPACE}:${k}`),
  );
  const resources: RecordedResource[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        const state = { ...(args.inputs as Record<string, unknown>), ...mockState(args, real, opts.stack) };
        const recorded = resources.find((r) => r.type === args.type && r.name === args.name);
        if (recorded) recorded.state = unwrap(state, "", [], false) as Record<string, unknown>;
        const id =
          args.type === "digitalocean:index/droplet:Droplet" ? String(MOCK_DROPLET_ID) : `${args.name}-id`;
        return { id, state };
      },
      call: (args) => {
        // The one read: a managed database's CA, which the host verifies the cluster against.
        if (args.token === "digitalocean:index/getDatabaseCa:getDatabaseCa") {
          const clusterId = String((args.inputs as Record<string, unknown>).clusterId);
          return {
            clusterId,
            certificate: `-----BEGIN CERTIFICATE-----\nPLACEHOLDER-ca-of-${clusterId}\n-----END CERTIFICATE-----\n`,
          };
        }
        throw new Error(`unmocked provider call ${args.token}: the program must not read from the cloud`);
      },
    },
    "chitram",
    opts.stack,
    false,
  );

  const monitor = (pulumi.runtime as unknown as { getMonitor(): MockMonitorLike }).getMonitor();
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: RegisterRequest, cb: unknown) => {
    const raw = req.getObject()?.toJavaScript() ?? {};
    const secretPaths: string[] = [];
    const timeouts = req.getCustomtimeouts();
    const recorded: RecordedResource = {
      urn: monitor.newUrn(req.getParent(), req.getType(), req.getName()),
      type: req.getType(),
      name: req.getName(),
      parent: req.getParent() || undefined,
      custom: req.getCustom(),
      inputs: unwrap(raw, "", [], false) as Record<string, unknown>,
      maskedInputs: unwrap(raw, "", secretPaths, true) as Record<string, unknown>,
      secretPaths,
      dependencies: req.getDependenciesList(),
      options: {
        protect: req.getProtect(),
        deleteBeforeReplace: req.getDeletebeforereplace(),
        ignoreChanges: req.getIgnorechangesList(),
        replaceOnChanges: req.getReplaceonchangesList(),
        additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
        customTimeouts: timeouts
          ? { create: timeouts.getCreate(), update: timeouts.getUpdate(), delete: timeouts.getDelete() }
          : undefined,
      },
      state: {},
    };
    resources.push(recorded);
    opts.registered?.push(recorded);
    return register(req, cb);
  };

  // Imported here, after the mocks: the program's modules must see the mocked runtime.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createStack } = require("../stack") as typeof import("../stack");
  let stack: ReturnType<typeof createStack>;
  const underMocks = process.env[UNDER_MOCKS_ENV];
  if (!opts.deployChecks) process.env[UNDER_MOCKS_ENV] = "1";
  try {
    stack = createStack();
  } finally {
    if (underMocks === undefined) delete process.env[UNDER_MOCKS_ENV];
    else process.env[UNDER_MOCKS_ENV] = underMocks;
    await waitForRPCs();
  }
  const outputs: Record<string, OutputValue> = {};
  for (const [key, value] of Object.entries(stack)) {
    if (pulumi.Output.isInstance(value)) {
      const internal = value as unknown as { promise(): Promise<unknown>; isSecret: Promise<boolean> };
      outputs[key] = { value: await internal.promise(), secret: await internal.isSecret };
    } else {
      outputs[key] = { value, secret: false };
    }
  }
  await waitForRPCs();
  return { resources, outputs };
}
