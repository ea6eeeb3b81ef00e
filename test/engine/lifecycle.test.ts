// The real engine, from a new stack to `destroy`: the Pulumi CLI and plugins built from source
// (tools/engine/build.sh) run preview, up, re-runs, a config change, key rotations, a release and a
// failed one, a restart, an `up` killed mid-step and its recovery, and destroy, against one sandbox
// droplet (target existing). Each test runs on what the one before left.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { buildAppVariants, APP_VARIANTS } from "../../harness/deployment";
import { get, liveApp, sshExec, waitHealthy } from "../../harness/probes";
import { EngineHost, engineHost } from "../../harness/engineHost";
import { plannedChanges, stateResources, StateExport } from "../../harness/pulumiCli";
import { ed25519KeyPair } from "../../harness/keys";
import { removeAllSandboxes } from "../../harness/sandbox";
import { runStack } from "../../harness/steps";
import { decodeFiles } from "../../remote/transfer";
import { parseEnvFile } from "../../render/envFile";
import {
  APP_DIR,
  BACKUP_SECRETS_PATH,
  CRON_PATH,
  ENV_FILE_NAME,
  SERVICE_ENV_FILES,
} from "../../hostContract";
import {
  backupCronInstalled,
  backupRunsUnderCron,
  bundleOnHost,
  deployUserLogsIn,
  envFileKeysMatch,
  healthyThroughCaddy,
  internalPortsClosed,
  rootLoginClosed,
} from "../host/retroChecks";

const STACK = "engine";
const log = (line: string) => console.log(`  ${line}`);

const planned = plannedChanges;

/** Lines of the droplet's sshd log that record a login (sshd -D -e logs to the container's stderr). */
async function sshdLogins(h: EngineHost): Promise<string[]> {
  const { run } = await import("../../harness/sandbox");
  const r = await run("docker", ["logs", h.droplet.name]);
  return `${r.stdout}${r.stderr}`.split("\n").filter((l) => /Accepted (publickey|password)/.test(l));
}

describe("engine: a new stack from preview to destroy", () => {
  let h: EngineHost;
  let deployKey: string;

  before(async () => {
    await removeAllSandboxes();
    // a never-healthy release is rolled back after 20 s, not the default 120
    h = await engineHost(STACK, { config: { releaseTimeoutSeconds: "20" } });
    await buildAppVariants(h.droplet);
  });
  after(async () => {
    await h?.remove();
  });

  it("preview of the new stack plans every resource the program declares, and logs in nowhere", async () => {
    const preview = await h.stack.previewJson();
    const plan = planned(preview);
    const declared = (await runStack(STACK, { ...h.config, sshPrivateKey: "PLACEHOLDER" })).resources
      .filter((r) => r.custom)
      .map((r) => r.name);
    for (const name of declared) assert.deepEqual(plan[name], ["create"], name);
    assert.ok(
      Object.values(plan).every((ops) => ops.join() === "create"),
      JSON.stringify(plan),
    );
    assert.deepEqual(await sshdLogins(h), [], "the preview logged in to the host");
  });

  it("a configured hostKey is pinned from the first contact: another host key stops the first step before it logs in", async () => {
    await h.stack.configure({ hostKey: ed25519KeyPair("not-the-host").public });
    const r = await h.stack.up([], { check: false });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /host-ready[\s\S]*ssh: handshake failed: ssh: host key mismatch/);
    assert.deepEqual(await sshdLogins(h), [], "it logged in");
    const hostKey = (await h.droplet.exec("cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub")).stdout.trim();
    await h.stack.configure({ hostKey });
  });

  it("up: a bare host to /health 200 through Caddy, with the retrospective's checks on this host", async () => {
    const started = Date.now();
    await h.stack.up();
    log(`first up: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    deployKey = await h.stack.secretOutput("deployPrivateKey");
    await healthyThroughCaddy(h.droplet); // #1, #7, #8
    await envFileKeysMatch(h.droplet); // #1
    await deployUserLogsIn(h.droplet, deployKey); // #3, #4
    await rootLoginClosed(h.droplet, h.bootstrap.private);
    await internalPortsClosed(h.droplet); // #7
    const files = (await stateResources(h.stack)).find((r) => r.urn.endsWith("::app-files"));
    await bundleOnHost(h.droplet, decodeFiles(String(files?.inputs?.stdin))); // #6
    await backupCronInstalled(h.droplet); // #5
    await backupRunsUnderCron(h.droplet, "engine-retro5"); // #5
  });

  it("a second up changes nothing: `up --expect-no-changes` passes and the preview counts 0 changes", async () => {
    await h.stack.up(["--expect-no-changes"]);
    const preview = await h.stack.previewJson();
    assert.deepEqual(planned(preview), {});
    assert.deepEqual(Object.keys(preview.changeSummary), ["same"]);
  });

  it("the state and the outputs hold none of the generated secrets in plain text (ids included)", async () => {
    const generated = new Set<string>();
    // every value of the host's secret files but the few fixed names they also carry
    const fixed = new Set(["POSTGRES_USER", "POSTGRES_DB", "MINIO_ENDPOINT", "MINIO_BUCKET"]);
    for (const file of [ENV_FILE_NAME, SERVICE_ENV_FILES.postgres, SERVICE_ENV_FILES.minio]) {
      const env = parseEnvFile((await h.droplet.exec(`cat ${APP_DIR}/${file}`)).stdout);
      for (const [key, value] of Object.entries(env)) if (!fixed.has(key)) generated.add(value);
    }
    const backupEnv = parseEnvFile((await h.droplet.exec(`cat ${BACKUP_SECRETS_PATH}`)).stdout);
    for (const value of Object.values(backupEnv)) if (value) generated.add(value);
    // and every generated password and private key, as the state holds them decrypted
    const shown = JSON.parse(
      (await h.stack.pulumi(["stack", "export", "--show-secrets"])).stdout,
    ) as StateExport;
    for (const r of shown.deployment.resources ?? []) {
      for (const key of ["result", "privateKeyOpenssh", "privateKeyPem", "privateKeyPemPkcs8"]) {
        const v = decrypted(r.outputs?.[key]);
        if (typeof v === "string" && v) generated.add(v);
      }
    }
    assert.ok(generated.size >= 10, `only ${generated.size} generated values found`);
    const plain = [
      await h.stack.exportState(),
      JSON.stringify(await h.stack.outputs()),
      // every file of the backend: the stack, its history and its backups
      ...walk(h.stack.stateDir).map((f) => fs.readFileSync(f, "utf8")),
      fs.readFileSync(path.join(h.stack.projectDir, `Pulumi.${STACK}.yaml`), "utf8"),
    ].join("\n");
    for (const value of generated) {
      const lines = value.split("\n").filter((l) => l.length >= 12 && !/^-----/.test(l));
      for (const needle of [value, ...lines]) {
        assert.ok(!plain.includes(needle), `a generated secret is in plain text: ${needle.slice(0, 6)}...`);
      }
    }
  });

  it("a backupSchedule change: the preview plans exactly the cron step, up applies it, the new line is on the host", async () => {
    await h.stack.configure({ backupSchedule: "30 4 * * *" });
    const plan = planned(await h.stack.previewJson());
    assert.deepEqual(Object.keys(plan), ["app-backup-cron"], JSON.stringify(plan));
    await h.stack.up();
    // the replaced step's delete (none) removed nothing its replacement installed
    await backupCronInstalled(h.droplet, "30 4 * * *");
    const cron = await h.droplet.exec(`cat ${CRON_PATH}`);
    assert.doesNotMatch(cron.stdout, /^0 3 \* \* \* /m);
    await h.stack.up(["--expect-no-changes"]);
  });

  for (const key of ["deploy-key", "steps-key"] as const) {
    it(`${key} rotation with root login closed: it converges, the new key works, the old one is refused`, async () => {
      const keyNow = async () =>
        key === "deploy-key" ? h.stack.secretOutput("deployPrivateKey") : stackKey(h);
      const old = await keyNow();
      await h.stack.up(["--replace", await h.urn(key)]);
      const fresh = await keyNow();
      assert.notEqual(fresh, old);
      assert.equal((await sshExec(h.droplet.sshPort, "chitram", fresh, "sudo -n true")).code, 0);
      await assert.rejects(sshExec(h.droplet.sshPort, "chitram", old, "true"), /authentication/i);
      await rootLoginClosed(h.droplet, h.bootstrap.private);
      await h.stack.up(["--expect-no-changes"]);
      if (key === "deploy-key") deployKey = fresh;
    });
  }

  it("a new app image is released; a never-healthy one is rolled back, and the next up runs the failed step again", async () => {
    await h.stack.configure({ appImage: APP_VARIANTS.v2 });
    await h.stack.up();
    assert.equal((await liveApp(h.droplet)).image, APP_VARIANTS.v2);
    await h.stack.configure({ appImage: APP_VARIANTS.noHealth });
    const failed = await h.stack.up([], { check: false });
    assert.notEqual(failed.code, 0);
    assert.match(failed.stdout + failed.stderr, /release of chitram-app:sandbox-no-health failed/);
    assert.equal((await liveApp(h.droplet)).image, APP_VARIANTS.v2, "the old version still serves");
    await waitHealthy(h.droplet.httpPort);
    // the failed step is not recorded as done: the next preview plans it again
    const plan = planned(await h.stack.previewJson());
    assert.ok(plan["app-compose-up"], JSON.stringify(plan));
    await h.stack.configure({ appImage: APP_VARIANTS.v2 });
    await h.stack.up();
    await h.stack.up(["--expect-no-changes"]);
    await healthyThroughCaddy(h.droplet);
  });

  it("a credential rotation (--replace of MinIO's secret): with a never-healthy image it is undone, with a good one it goes live", async () => {
    const envOf = async (container: string, key: string) => {
      const r = await h.droplet.exec(
        `docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' ${container}`,
      );
      assert.equal(r.code, 0, r.stderr);
      return new RegExp(`^${key}=(.*)$`, "m").exec(r.stdout)?.[1];
    };
    const minio = async () =>
      (await h.droplet.exec(`cd ${APP_DIR} && docker compose ps -q minio`)).stdout.trim();
    const secret = (await stateResources(h.stack)).find((r) => r.urn.endsWith("::app-minio-secret"));
    assert.ok(secret, "no app-minio-secret in the state");
    const was = await liveApp(h.droplet);
    const liveSecret = await envOf(was.name, "MINIO_SECRET_KEY");
    assert.ok(liveSecret);
    const plan = planned(await h.stack.previewJson(["--replace", secret.urn]));
    assert.ok(
      plan["app-minio-secret"]?.some((op) => op.includes("replace")),
      JSON.stringify(plan),
    );
    assert.ok(plan["app-compose-up"], JSON.stringify(plan));

    await h.stack.configure({ appImage: APP_VARIANTS.noHealth });
    const failed = await h.stack.up(["--replace", secret.urn], { check: false });
    assert.notEqual(failed.code, 0);
    assert.match(
      failed.stdout + failed.stderr,
      /the credential rotation was undone: PostgreSQL and MinIO are back on the credentials of the live version/,
    );
    assert.deepEqual(await liveApp(h.droplet), was, "the live version still serves");
    assert.equal(
      await envOf(await minio(), "MINIO_ROOT_PASSWORD"),
      liveSecret,
      "MinIO is back on the live secret",
    );
    assert.match((await waitHealthy(h.droplet.httpPort)).body, /"database":"ok".*"storage":"ok"/);

    await h.stack.configure({ appImage: APP_VARIANTS.v2 });
    await h.stack.up();
    const now = await liveApp(h.droplet);
    assert.notEqual(now.name, was.name);
    const newSecret = await envOf(now.name, "MINIO_SECRET_KEY");
    assert.ok(newSecret && newSecret !== liveSecret, "the new version has a new secret");
    assert.equal(await envOf(await minio(), "MINIO_ROOT_PASSWORD"), newSecret, "MinIO and the app agree");
    assert.match((await waitHealthy(h.droplet.httpPort)).body, /"database":"ok".*"storage":"ok"/);
    await h.stack.up(["--expect-no-changes"]);
  });

  it("after the droplet restarts, up changes nothing and the app serves", async () => {
    await h.droplet.restart();
    await waitHealthy(h.droplet.httpPort, 180_000);
    await h.stack.up(["--expect-no-changes"]);
  });

  it("an up killed with SIGKILL in the middle of the release step recovers as docs/RUNBOOK.md says", async () => {
    await h.stack.configure({ appImage: "chitram-app:sandbox" });
    const running = h.stack.start(["up", "--yes", "--skip-preview"]);
    // in the middle of a long step: the release's script runs on the host
    const deadline = Date.now() + 120_000;
    while ((await h.droplet.exec("pgrep -f 'chitram step: composeUp'")).code !== 0) {
      assert.ok(Date.now() < deadline, `the release step never started:\n${running.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 1500));
    running.kill();
    await running.done;
    assert.match(running.output(), /app-compose-up (creating|updating)/);
    // What a user meets next, and the recovery the runbook gives.
    const locked = await h.stack.up([], { check: false });
    assert.notEqual(locked.code, 0);
    assert.match(locked.stdout + locked.stderr, /the stack is currently locked/);
    for (const command of RECOVERY) await h.stack.pulumi(command);
    const state = JSON.parse(await h.stack.exportState()) as StateExport;
    assert.deepEqual(state.deployment.pending_operations ?? [], [], "pending operations are cleared");
    await h.stack.up();
    await h.stack.up(["--expect-no-changes"]);
    assert.equal((await liveApp(h.droplet)).image, "chitram-app:sandbox");
    await healthyThroughCaddy(h.droplet);
  });

  it("destroy exits 0, leaves an empty stack, and gives the host back its own login", async () => {
    const keys = `/home/chitram/.ssh/authorized_keys`;
    // a line of the host's own, which the stack must leave alone
    const own = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwnLineOfTheHostsOwnThatStaysAfterDestroy0 operator";
    assert.equal((await h.droplet.exec(`echo '${own}' >> ${keys}`)).code, 0);
    await h.stack.pulumi(["destroy", "--yes"]);
    assert.deepEqual(
      (await stateResources(h.stack)).filter((r) => r.type !== "pulumi:pulumi:Stack"),
      [],
    );
    // README, "What destroy leaves": root logs in again as before, the stack's keys are gone, the app runs on
    assert.equal((await sshExec(h.droplet.sshPort, "root", h.bootstrap.private, "true")).code, 0);
    await assert.rejects(sshExec(h.droplet.sshPort, "chitram", deployKey, "true"), /authentication/i);
    assert.equal((await h.droplet.exec(`cat ${keys}`)).stdout, `${own}\n`);
    assert.equal((await h.droplet.exec("test -e /etc/ssh/sshd_config.d/00-chitram.conf")).code, 1);
    await waitHealthy(h.droplet.httpPort);
  });

  it("up again on the same host after destroy: the first contact works, and the app is healthy with its data", async () => {
    const before = await get(h.droplet.httpPort, "/api/objects/engine-retro5");
    assert.equal(before.status, 200, "the object written before destroy");
    await h.stack.up();
    await h.stack.up(["--expect-no-changes"]);
    await healthyThroughCaddy(h.droplet);
    await deployUserLogsIn(h.droplet, await h.stack.secretOutput("deployPrivateKey"));
    await rootLoginClosed(h.droplet, h.bootstrap.private);
    const after = await get(h.droplet.httpPort, "/api/objects/engine-retro5");
    assert.equal(after.status, 200, after.body);
    assert.equal(after.body, before.body);
  });
});

/** The recovery from an interrupted up, as docs/RUNBOOK.md gives it (checked against the runbook below). */
const RECOVERY = [
  ["cancel", "--yes"],
  ["refresh", "--yes", "--clear-pending-creates"],
];

describe("engine: docs/RUNBOOK.md gives the recovery the engine test runs", () => {
  it("each command of the recovery is in the runbook's section on an interrupted up", () => {
    const runbook = fs.readFileSync(path.join(__dirname, "..", "..", "docs", "RUNBOOK.md"), "utf8");
    const section = runbook.split(/^### /m).find((s) => s.startsWith("An interrupted `pulumi up`"));
    assert.ok(section, 'no section "An interrupted `pulumi up`"');
    for (const command of RECOVERY)
      assert.ok(section.includes(`npx pulumi ${command.join(" ")}`), command.join(" "));
  });
});

/** The stack key's private half, as the state holds it (decrypted). */
async function stackKey(h: EngineHost): Promise<string> {
  const shown = JSON.parse(
    (await h.stack.pulumi(["stack", "export", "--show-secrets"])).stdout,
  ) as StateExport;
  const key = shown.deployment.resources?.find((r) => r.urn.endsWith("::steps-key"));
  return String(decrypted(key?.outputs?.privateKeyOpenssh));
}

/** A value of `stack export --show-secrets`: a secret is an object whose `plaintext` is its JSON. */
function decrypted(v: unknown): unknown {
  if (v && typeof v === "object" && "plaintext" in v) return JSON.parse(String(v.plaintext));
  return v;
}

function walk(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}
