// A sandbox droplet with the program configured for it, as the real-host tests and the sandbox
// benchmark deploy it, and the program's steps with the changes a test makes (a new app env, a
// mismatched MinIO key, app versions that fail in each way a release can).
import { decodeFiles, encodeFiles } from "../remote/transfer";
import { ENV_FILE_NAME, SANDBOX_APP_IMAGE } from "../hostContract";
import { EngineState } from "./engine";
import { ed25519KeyPair } from "./keys";
import { buildImages, Droplet, ensureDockerd, startDroplet } from "./sandbox";
import { ProgramStep, runStack } from "./steps";

/** App images for release tests, built by buildAppVariants inside a droplet's own engine only. */
export const APP_VARIANTS = {
  /** The stand-in app under another tag and env: a new version. */
  v2: "chitram-app:sandbox-v2",
  /** Listens on the app's port and answers 404 on /health: never healthy. */
  noHealth: "chitram-app:sandbox-no-health",
  /** Exits as soon as it starts. */
  crashing: "chitram-app:sandbox-crashing",
  /** No registry listens there: the pull fails at once, without leaving the droplet. */
  missing: "127.0.0.1:5999/chitram-app:missing",
} as const;

/**
 * A throw-away stack on the local DigitalOcean API with the data off its droplets (the managed
 * database and a Spaces bucket), as `appHosts` needs: test/cloud/scale.test.ts grows it,
 * tools/benchScale.ts starts with several droplets.
 */
export const DATA_OFF_DROPLET_CONFIG = {
  appImage: SANDBOX_APP_IMAGE,
  region: "nyc3",
  protectData: "false",
  database: "managed",
  objectStore: "spaces",
};

const VARIANT_DOCKERFILES: Record<string, string> = {
  [APP_VARIANTS.v2]: `FROM ${SANDBOX_APP_IMAGE}\nENV CHITRAM_SANDBOX_RELEASE=v2\n`,
  [APP_VARIANTS.noHealth]: `FROM ${SANDBOX_APP_IMAGE}\nCMD ["python3", "-m", "http.server", "8000"]\n`,
  [APP_VARIANTS.crashing]: `FROM ${SANDBOX_APP_IMAGE}\nCMD ["python3", "-c", "import sys; sys.exit('boom: DATABASE_URL has no host')"]\n`,
};

/** Builds the APP_VARIANTS images (metadata-only layers) in the droplet's engine, from its app image. */
export async function buildAppVariants(droplet: Droplet): Promise<void> {
  for (const [tag, dockerfile] of Object.entries(VARIANT_DOCKERFILES)) {
    const r = await droplet.exec(`DOCKER_BUILDKIT=0 docker build -q -t ${tag} -`, { input: dockerfile });
    if (r.code !== 0) throw new Error(`building ${tag} in ${droplet.name}: ${r.stderr}`);
  }
}

export interface Deployment {
  droplet: Droplet;
  stack: string;
  config: Record<string, string>;
  steps: ProgramStep[];
  state: EngineState;
  deployPrivateKey: string;
  bootstrapPrivateKey: string;
}

/** A fresh droplet whose root accepts a new bootstrap key, and the program configured for it. */
export async function newDeployment(
  stack: string,
  opts: {
    holdSshd?: boolean;
    /** More config, or a function of the new droplet that returns it (e.g. its network's addresses). */
    config?: Record<string, string> | ((droplet: Droplet) => Promise<Record<string, string>>);
  } = {},
): Promise<Deployment> {
  await ensureDockerd();
  await buildImages();
  const bootstrap = ed25519KeyPair("sandbox-root");
  const droplet = await startDroplet({
    rootPublicKey: bootstrap.public,
    holdSshd: opts.holdSshd,
  });
  // First: a config function may connect the droplet to another network, which moves its ports.
  const more = typeof opts.config === "function" ? await opts.config(droplet) : opts.config;
  const config = {
    target: "existing",
    host: "127.0.0.1",
    sshPort: String(droplet.sshPort),
    sshUser: "root",
    sshPrivateKey: bootstrap.private,
    appImage: SANDBOX_APP_IMAGE,
    ...more,
  };
  const run = await runStack(stack, config, "real");
  return {
    droplet,
    stack,
    config,
    steps: run.steps,
    state: new Map(),
    deployPrivateKey: String(run.outputs.deployPrivateKey.value),
    bootstrapPrivateKey: bootstrap.private,
  };
}

/** The program's steps again with changed config; keys and passwords stay (as in Pulumi's state). */
export async function restep(d: Deployment, config: Record<string, string>): Promise<ProgramStep[]> {
  return (await runStack(d.stack, { ...d.config, ...config }, "real")).steps;
}

/** The steps with one more line in the app's env file (.env.production): a change of the app's env. */
export function withAppEnv(steps: ProgramStep[], name: string, value: string): ProgramStep[] {
  return steps.map((s) => {
    if (s.name !== "app-env-file") return s;
    const files = decodeFiles(s.stdin!).map((f) =>
      f.path.endsWith(`/${ENV_FILE_NAME}`) ? { ...f, content: `${f.content}${name}=${value}\n` } : f,
    );
    return { ...s, stdin: encodeFiles(files) };
  });
}

/** The steps with the Caddyfile the files step pushes edited by `edit`, re-encoded. */
export function withCaddyfile(steps: ProgramStep[], edit: (caddyfile: string) => string): ProgramStep[] {
  return steps.map((s) => {
    if (s.name !== "app-files") return s;
    const files = decodeFiles(s.stdin!).map((f) =>
      f.path.endsWith("/caddy/Caddyfile") ? { ...f, content: edit(f.content) } : f,
    );
    return { ...s, stdin: encodeFiles(files) };
  });
}

/**
 * The steps with an env file whose MINIO_SECRET_KEY is not MinIO's root password (retro #1),
 * re-encoded: a hand-edited bundle would fail its checksum in app-env-file instead.
 */
export function withMismatchedMinioKeys(steps: ProgramStep[]): ProgramStep[] {
  return steps.map((s) =>
    s.name !== "app-env-file"
      ? s
      : {
          ...s,
          stdin: encodeFiles(
            decodeFiles(s.stdin!).map((f) => ({
              ...f,
              content: f.content.replace(
                /^MINIO_SECRET_KEY=.*$/m,
                "MINIO_SECRET_KEY=not-the-minio-root-password",
              ),
            })),
          ),
        },
  );
}
