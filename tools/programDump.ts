// npm run dump -- [--out FILE]: the program under Pulumi's mocks for eight configs, every resource
// with its type, name, parent, inputs (secrets masked) and options, as one canonical JSON text.
// A structure change that must not move anything leaves it byte-identical: compare the files of
// before and after (`cmp`).
import * as fs from "node:fs";
import { readStackFile, stackFile } from "../harness/mockProgram";
import { runStack } from "../harness/steps";

const STAGING = readStackFile(stackFile("staging"));
const PROD = readStackFile(stackFile("prod"));
const EXISTING = {
  appImage: "ghcr.io/acme/chitram:1.0.0",
  target: "existing",
  host: "192.0.2.7",
  sshPort: "2222",
  sshUser: "root",
  sshPrivateKey: "PLACEHOLDER-bootstrap-key",
};

export const DUMP_CONFIGS: Record<string, [stack: string, config: Record<string, string>]> = {
  staging: ["staging", STAGING],
  prod: ["prod", PROD],
  "prod-no-dns": ["prod", { ...PROD, manageDns: "false" }],
  existing: ["existing", EXISTING],
  "existing-domain": [
    "existing",
    { ...EXISTING, domain: "chitram.app", manageDns: "false", acmeCa: "staging" },
  ],
  "existing-registry": [
    "existing",
    { ...EXISTING, registryServer: "ghcr.io", registryUsername: "acme", registryPassword: "registry-secret" },
  ],
  "existing-offsite": [
    "existing",
    {
      ...EXISTING,
      offsiteBackups: "true",
      offsiteEndpoint: "https://s3.example.net",
      offsiteBucket: "chitram-backups",
      offsiteAccessKey: "AKIAEXAMPLEKEY1",
      offsiteSecretKey: "secret0key0for0the0bucket",
      backupHeartbeatUrl: "https://hc-ping.com/0f4c2f2e-1a7e-4c38-9a55-3b0c2d7c5e11",
    },
  ],
  "staging-docr": [
    "staging",
    {
      ...STAGING,
      appImage: "registry.digitalocean.com/acme/chitram:1.0.0",
      registryServer: "registry.digitalocean.com",
      size: "s-2vcpu-4gb",
      dataVolumeSizeGb: "10",
    },
  ],
};

/** Keys sorted at every level: the same program gives the same text. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object")
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  return v;
}

export async function programDump(): Promise<string> {
  const out: Record<string, unknown> = {};
  for (const [name, [stack, config]] of Object.entries(DUMP_CONFIGS)) {
    const run = await runStack(stack, config);
    out[name] = run.resources.map((r) => ({
      type: r.type,
      name: r.name,
      parent: r.parent,
      inputs: r.maskedInputs,
      options: r.options,
      dependencies: r.dependencies,
    }));
  }
  return `${JSON.stringify(canonical(out), null, 1)}\n`;
}

if (require.main === module) {
  const i = process.argv.indexOf("--out");
  programDump()
    .then((text) => (i > 0 ? fs.writeFileSync(process.argv[i + 1], text) : process.stdout.write(text)))
    .catch((e: Error) => {
      console.error(e.message);
      process.exit(1);
    });
}
