// npm run render -- --stack <name> [--config-file <path>] [--set key=value ...] --out <dir>
//
// Runs the real program under Pulumi's mocks with a stack's config and writes what `pulumi up`
// would create: resources.json, steps.json (remote steps in order) and host/ (every file the
// host receives, exactly as rendered). Secrets and random values are placeholders.
import * as fs from "fs";
import * as path from "path";
import { ConfigError } from "../config";
import { CLOUD_CONFIG } from "../render/cloudConfig";
import { decodeFiles } from "../remote/transfer";
import { readStackFile, runProgram, SECRET_MASK, stackFile } from "../harness/mockProgram";
import { collectSteps, describeStep } from "../harness/steps";

interface RenderArgs {
  stack: string;
  configFile?: string;
  set: Record<string, string>;
  out: string;
}

const usage =
  "usage: npm run render -- --stack <name> [--config-file <path>] [--set key=value ...] --out <dir>";

export function parseArgs(argv: string[]): RenderArgs {
  const args: Partial<RenderArgs> & { set: Record<string, string> } = { set: {} };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value\n${usage}`);
    if (flag === "--stack") args.stack = value;
    else if (flag === "--config-file") args.configFile = value;
    else if (flag === "--out") args.out = value;
    else if (flag === "--set") {
      const eq = value.indexOf("=");
      if (eq <= 0) throw new Error(`--set takes key=value, got "${value}"\n${usage}`);
      args.set[value.slice(0, eq).replace(/^chitram:/, "")] = value.slice(eq + 1);
    } else throw new Error(`unknown argument ${flag}\n${usage}`);
  }
  if (!args.stack || !args.out) throw new Error(usage);
  return args as RenderArgs;
}

export async function render(
  args: RenderArgs,
): Promise<{ resources: number; steps: number; files: string[] }> {
  const file = args.configFile ?? stackFile(args.stack);
  if (!fs.existsSync(file))
    throw new Error(`no config file ${file}: pass --config-file or create the stack file`);
  const fromFile = readStackFile(file);
  const secretKeys = Object.entries(fromFile)
    .filter(([, v]) => v.startsWith("PLACEHOLDER-secure-"))
    .map(([k]) => k);
  const run = await runProgram({ stack: args.stack, config: { ...fromFile, ...args.set }, secretKeys });

  fs.rmSync(args.out, { recursive: true, force: true });
  fs.mkdirSync(args.out, { recursive: true });
  const nameOf = new Map(run.resources.map((r) => [r.urn, r.name]));
  const resources = run.resources.map((r) => ({
    type: r.type,
    name: r.name,
    parent: r.parent ? nameOf.get(r.parent) : undefined,
    inputs: r.maskedInputs,
    secretInputs: r.secretPaths,
    dependsOn: r.dependencies.map((u) => nameOf.get(u) ?? u),
    options: r.options,
  }));
  fs.writeFileSync(path.join(args.out, "resources.json"), JSON.stringify(resources, null, 2) + "\n");

  const steps = collectSteps(run);
  const described = steps.map((s) =>
    describeStep(
      s,
      run.resources.find((r) => r.name === s.name)!,
    ),
  );
  fs.writeFileSync(path.join(args.out, "steps.json"), JSON.stringify(described, null, 2) + "\n");

  const files: string[] = [];
  const write = (hostPath: string, content: string, mode: string) => {
    const dest = path.join(args.out, "host", hostPath);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, content, { mode: parseInt(mode, 8) });
    files.push(hostPath);
  };
  for (const step of steps) {
    if (step.stdin?.startsWith("#chitram-file ")) {
      for (const f of decodeFiles(step.stdin)) write(f.path, f.content, f.mode);
    }
  }
  if (run.resources.some((r) => r.type === "digitalocean:index/droplet:Droplet")) {
    write("/var/lib/cloud/instance/user-data.txt", CLOUD_CONFIG, "0600");
  }
  for (const [key, o] of Object.entries(run.outputs)) {
    if (o.secret) run.outputs[key] = { value: SECRET_MASK, secret: true };
  }
  fs.writeFileSync(path.join(args.out, "outputs.json"), JSON.stringify(run.outputs, null, 2) + "\n");
  return { resources: resources.length, steps: steps.length, files: [...new Set(files)].sort() };
}

if (require.main === module) {
  (async () => {
    const args = parseArgs(process.argv.slice(2));
    const result = await render(args);
    console.log(
      `rendered stack ${args.stack}: ${result.resources} resources, ${result.steps} steps, ${result.files.length} host files -> ${args.out}`,
    );
    for (const f of result.files) console.log(`  host${f}`);
    console.log(
      `\nWhat each file is: README, "Look first". Next: npm run sandbox deploys this stack for real into a ` +
        `throw-away droplet on this machine; README, "Deploy staging", to DigitalOcean.`,
    );
  })().catch((err: unknown) => {
    console.error(
      err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err),
    );
    process.exit(1);
  });
}
