// Every variable a remote step reads is set before it is read: by the step's parameters, by the
// script itself, or, for the steps that run after the bundle, by the host.env that bundle holds.
// shellcheck cannot see this (it takes upper-case names for the environment), and `set -u`
// finds a missing one only on a real host, as an "unbound variable" in the middle of a deploy.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { parseEnvFile } from "../render/envFile";
import { renderStepScript, StepScript } from "../remote/script";
import { decodeFiles } from "../remote/transfer";
import { APP_DIR } from "../hostContract";
import { BACKUP_CRON_HOST_ENV } from "../render/hostConfig";
import { EXISTING, runStack, scratchDir, STAGING, tool } from "./support";

/**
 * Set by something other than the step: bash, the login (HOME), /etc/os-release, the PostgreSQL
 * container's env.
 */
const EXTERNAL = new Set(["SECONDS", "HOME", "ID", "VERSION_CODENAME", "PRETTY_NAME", "POSTGRES_USER"]);

/** The script inside a step's command: `... bash -c '<script>'; rc=$?; ...`. */
function scriptOf(command: string): string {
  const m = /bash -c '((?:[^']|'\\'')*)'; rc=/.exec(command);
  assert.ok(m, `no bash -c script in: ${command.slice(0, 80)}`);
  return m[1].replace(/'\\''/g, "'");
}

// The helpers every step gets. Their one parameter, DEPLOY_USER, is read only by the deploy-user
// helpers, which only the steps given DEPLOY_USER call; what they set (RECEIVED) is set for all.
const LIB = fs.readFileSync(path.join(__dirname, "..", "host", "steps", "lib.sh"), "utf8");

/** The parameters rendered at the top of a step script, and its own body (without lib.sh). */
function split(script: string): { params: string[]; body: string } {
  const lines = script.split("\n");
  const params: string[] = [];
  let i = lines.indexOf("set -euo pipefail") + 1;
  for (; /^[A-Z][A-Z0-9_]*=/.test(lines[i]); i++) params.push(lines[i].slice(0, lines[i].indexOf("=")));
  const rest = lines.slice(i).join("\n");
  assert.ok(rest.startsWith(LIB), "lib.sh follows the parameters");
  return { params, body: rest.slice(LIB.length) };
}

const read = (body: string) => new Set([...body.matchAll(/\$\{?([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]));
const assigned = (body: string) => new Set([...body.matchAll(/\b([A-Z][A-Z0-9_]*)\+?=/g)].map((m) => m[1]));
const sourcesHostEnv = (body: string) => /^\. "?(\$APP_DIR|\.)\/host\.env"?$/m.test(body);

describe("step variables", async () => {
  // A droplet with a volume, and each way of logging in to a registry: every step there is.
  const runs = [
    await runStack("staging", { ...STAGING, dataVolumeSizeGb: "10" }),
    await runStack("existing", {
      ...EXISTING,
      registryServer: "ghcr.io",
      registryUsername: "example-bot",
      registryPassword: "PLACEHOLDER-registry-password",
    }),
    await runStack("staging", {
      ...STAGING,
      appImage: "registry.digitalocean.com/acme-apps/chitram:1.0.0",
      registryServer: "registry.digitalocean.com",
    }),
  ];
  const run = runs[0];
  const files = run.steps.find((s) => s.name === "app-files")!;
  const hostEnv = decodeFiles(files.stdin!).find((f) => f.path === `${APP_DIR}/host.env`)!;
  const hostEnvKeys = new Set(Object.keys(parseEnvFile(hostEnv.content)));
  const scripts = runs.flatMap((r) =>
    r.steps.flatMap((s) =>
      [s.create, s.delete].flatMap((c) => (c === undefined ? [] : [{ step: s, ...split(scriptOf(c)) }])),
    ),
  );

  it("covers every step, and the steps after the bundle read host.env", () => {
    for (const [i, r] of runs.entries()) {
      const mine = scripts.filter((s) => r.steps.includes(s.step));
      assert.equal(
        new Set(mine.map((s) => s.step)).size,
        r.steps.length,
        `run ${i}: a step without a script`,
      );
      const readers = mine.filter((s) => sourcesHostEnv(s.body)).map((s) => s.step.name);
      assert.deepEqual(readers.sort(), ["app-backup-cron", "app-compose-up"], `run ${i}`);
      for (const name of readers) {
        const step = r.steps.find((s) => s.name === name)!;
        assert.ok(step.dependsOn.includes("app-files"), `${name} must run after host.env is pushed`);
      }
    }
    for (const [i, name] of [
      [1, "app-registry-login"],
      [2, "app-registry-login"],
    ] as const) {
      assert.ok(
        runs[i].steps.some((s) => s.name === name && s.delete !== undefined),
        `run ${i}: ${name}`,
      );
    }
  });

  it("the backup cron step reads from host.env exactly the settings its triggers carry", () => {
    const cron = scripts.find((s) => s.step.name === "app-backup-cron")!;
    const fromHostEnv = [...read(cron.body)].filter((v) => hostEnvKeys.has(v) && v !== "APP_DIR");
    assert.deepEqual(fromHostEnv.sort(), [...BACKUP_CRON_HOST_ENV].sort());
  });

  it("every variable a step reads is a parameter, set by the script, or (after the bundle) in host.env", () => {
    for (const { step, params, body } of scripts) {
      const hostEnvSet = sourcesHostEnv(body) ? hostEnvKeys : [];
      const set = new Set([...params, ...assigned(LIB), ...assigned(body), ...hostEnvSet]);
      const unset = [...read(body)].filter((v) => !set.has(v) && !EXTERNAL.has(v));
      assert.deepEqual(unset, [], `${step.name} reads variables nothing sets`);
    }
  });

  it("a step that reads host.env takes no path from it as a parameter: one value, one way in", () => {
    for (const { step, params } of scripts.filter((s) => sourcesHostEnv(s.body))) {
      const twice = params.filter((p) => hostEnvKeys.has(p) && p !== "APP_DIR");
      assert.deepEqual(twice, [], `${step.name}: also in host.env (APP_DIR alone locates host.env)`);
    }
  });

  it("a step that reads host.env stops before anything else, naming it, when it is missing", () => {
    const empty = scratchDir("chitram-no-host-env-");
    for (const script of ["composeUp", "backupCron"] satisfies StepScript[]) {
      const r = tool("bash", ["-c", renderStepScript(script, { APP_DIR: empty })]);
      assert.equal(r.code, 1, `${script}: ${r.out}`);
      assert.match(r.out, /chitram: .*\/host\.env is missing: the files step has not run/);
    }
    assert.deepEqual(fs.readdirSync(empty), []);
  });
});
