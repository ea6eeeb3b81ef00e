// The stack's remote steps replayed over real SSH against a throw-away droplet container, then
// the host's state checked. Each test names the retrospective failure it shows prevented.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { decodeFiles, encodeFiles } from "../../remote/transfer";
import {
  backupUnderCronEnv,
  failsWithPostgresStopped,
  HostExec,
  restoreDrill,
} from "../../harness/backupDrill";
import {
  backupCronInstalled,
  backupRunsUnderCron,
  bundleOnHost,
  deployUserLogsIn,
  envFileKeysMatch,
  healthyThroughCaddy,
  internalPortsClosed,
  rootLoginClosed,
} from "./retroChecks";
import { shellQuote as shq, stepCommand } from "../../remote/script";
import { apply, EngineState, toReplayStep, withOutputs } from "../../harness/engine";
import { Deployment, newDeployment, restep, withMismatchedMinioKeys } from "../../harness/deployment";
import { get, hostFingerprint, sshExec, waitHealthy } from "../../harness/probes";
import { ed25519KeyPair } from "../../harness/keys";
import { replay, StepConnection, StepError } from "../../harness/replay";
import { replaceRealValue } from "../../harness/mockProgram";
import { ProgramStep, runStack } from "../../harness/steps";
import { buildImages, Droplet, ensureDockerd, removeAllSandboxes, startDroplet } from "../../harness/sandbox";
import { utils } from "ssh2";
import {
  DIAL_ERROR_LIMIT,
  FIRST_CONTACT_DIAL_ERROR_LIMIT,
  hostKeyFromStdout,
} from "../../components/hostProvisioning";
import { SANDBOX_APP_IMAGE } from "../../hostContract";
import { STAGING } from "../support";

const log = (line: string) => console.log(`  ${line}`);
const stepIn = (steps: ProgramStep[], name: string) => steps.find((s) => s.name === name)!;
const stepNamed = (d: Deployment, name: string) => stepIn(d.steps, name);

describe("real host: a bare droplet deployed by the stack's steps", () => {
  let d: Deployment;
  let exec: HostExec;

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes(); // droplets left by an earlier run that was killed
    d = await newDeployment("sandbox");
    exec = (cmd) => d.droplet.exec(cmd);
    const first = await apply(d.steps, d.state, { log });
    assert.equal(first.ran.length, d.steps.length, "a bare host runs every step");
  });
  after(async () => {
    await d?.droplet.stop();
  });

  it("retro #3/#4: the deploy user logs in with the generated key (no agent, no TTY) and sudo -n works", async () => {
    await deployUserLogsIn(d.droplet, d.deployPrivateKey);
  });

  it("retro #4 negative control: a sudoers drop-in that asks for a password makes the access proof fail", async () => {
    const dropIn = "/etc/sudoers.d/chitram";
    const saved = await exec(
      `cp -p ${dropIn} /root/sudoers.saved && printf 'chitram ALL=(ALL) ALL\\n' > ${dropIn} && visudo -cf ${dropIn}`,
    );
    assert.equal(saved.code, 0, saved.stderr);
    try {
      await assert.rejects(
        apply(d.steps, d.state, { log, force: (s) => s.name === "host-access-proof" }),
        (err: StepError) => {
          assert.equal(err.step, "host-access-proof");
          assert.match(err.message, /passwordless sudo is not in effect/);
          return true;
        },
      );
    } finally {
      assert.equal((await exec(`cp -p /root/sudoers.saved ${dropIn}`)).code, 0);
    }
    const again = await apply(d.steps, d.state, { log, force: (s) => s.name === "host-access-proof" });
    assert.deepEqual(
      again.ran.map((x) => x.name),
      ["host-access-proof"],
    );
  });

  it("root login is closed after the deploy user is proven, and passwords are off", async () => {
    await rootLoginClosed(d.droplet, d.bootstrapPrivateKey);
  });

  it("a step relying on SSH environment variables fails here as on a droplet (sshd has no AcceptEnv for them)", async () => {
    const proof = stepNamed(d, "host-access-proof");
    const probe = {
      ...toReplayStep(withOutputs(proof, d.state)),
      name: "env-probe",
      dependsOn: [],
      environment: { CHITRAM_PROBE: "1" },
    };
    await assert.rejects(replay([probe], { log }), /could not set environment variable "CHITRAM_PROBE"/);
    // the same step without environment runs: the refusal is about the variable, not the login
    await replay([{ ...probe, environment: undefined }], { log });
  });

  it("retro #1: the env file is 0600, owned by the deploy user, and its MinIO keys are equal", async () => {
    await envFileKeysMatch(d.droplet);
  });

  it("retro #2: the app is verified against PostgreSQL through asyncpg, the production driver", async () => {
    assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200, "the app's /health runs SELECT 1");
    const url = await exec("cd /opt/chitram && docker compose exec -T app printenv DATABASE_URL");
    assert.match(url.stdout.trim(), /^postgresql\+asyncpg:\/\/chitram:[A-Za-z0-9]+@postgres:5432\/chitram$/);
    const version = await exec(
      `cd /opt/chitram && docker compose exec -T postgres sh -c 'psql -tA -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "select version()"'`,
    );
    assert.match(version.stdout, /^PostgreSQL \d+/, version.stderr);
  });

  it("retro #1/#7/#8: GET /health on the published port 80 is 200 through Caddy, no redirect, no HSTS", async () => {
    await healthyThroughCaddy(d.droplet);
  });

  it("retro #7: PostgreSQL, MinIO and the app port are not reachable from outside the droplet", async () => {
    await internalPortsClosed(d.droplet);
  });

  it("retro #6: every manifest file is on the host with its content, scripts executable", async () => {
    await bundleOnHost(d.droplet, decodeFiles(stepNamed(d, "app-files").stdin!));
  });

  it("retro #5: the cron file is installed, root-owned 0644, running backup.sh", async () => {
    await backupCronInstalled(d.droplet);
  });

  it("retro #5: backup.sh under cron's empty environment writes a dump that pg_restore -l reads", async () => {
    await backupRunsUnderCron(d.droplet, "retro5");
  });

  it("retention: backup.sh deletes files of sets older than backupRetentionDays (7), by the stamp in their names, and keeps the rest", async () => {
    const dir = (await exec("grep '^BACKUP_DIR=' /opt/chitram/host.env | cut -d= -f2-")).stdout
      .trim()
      .replace(/'/g, "");
    const stampDaysAgo = (days: number) =>
      new Date(Date.now() - days * 86_400_000)
        .toISOString()
        .replace(/[-:]/g, "")
        .replace(/\.\d+Z$/, "Z");
    // Files of incomplete sets (no manifest): they go by their age alone.
    const [old, recent] = [stampDaysAgo(8), stampDaysAgo(6)];
    const names = [
      `postgres-${old}.dump`,
      `minio-${old}.tar.gz`,
      `postgres-${recent}.dump`,
      `minio-${recent}.tar.gz`,
    ];
    for (const name of names) assert.equal((await exec(`touch ${shq(`${dir}/${name}`)}`)).code, 0);
    const r = await backupUnderCronEnv(exec);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    const left = (await exec(`ls ${shq(dir)}`)).stdout.split("\n");
    assert.ok(!left.includes(names[0]), "an 8-day-old dump is deleted");
    assert.ok(!left.includes(names[1]), "an 8-day-old archive is deleted");
    assert.ok(left.includes(names[2]), "a 6-day-old dump is kept");
    assert.ok(left.includes(names[3]), "a 6-day-old archive is kept");
    assert.ok(r.dump && left.includes(r.dump.slice(r.dump.lastIndexOf("/") + 1)), "the new dump is kept");
    assert.match(r.stdout, new RegExp(`retention: deleted postgres-${old}\\.dump \\(older than 7 days`));
    await exec(`rm -f ${shq(`${dir}/${names[2]}`)} ${shq(`${dir}/${names[3]}`)}`);
  });

  it("retro #5: with PostgreSQL stopped, backup.sh exits non-zero, names the reason, keeps the last dump", async () => {
    const r = await failsWithPostgresStopped(exec);
    assert.notEqual(r.code, 0);
    assert.match(r.output, /postgres container is not running|no postgres container/);
    assert.equal(r.previousDumpUnchanged, true);
  });

  it("restore drill: write a row, back up, drop it, restore, the row is back", async () => {
    await restoreDrill(exec);
    await waitHealthy(d.droplet.httpPort);
  });

  it("a second apply with nothing changed runs no step (steps re-run only when their content changes)", async () => {
    // a fresh run of the program, as the next `pulumi up` makes: keys and passwords from the state
    const again = await runStack(d.stack, d.config, "real");
    assert.notEqual(again.steps, d.steps);
    const r = await apply(again.steps, d.state, { log });
    assert.deepEqual(
      r.ran.map((x) => x.name),
      [],
    );
    assert.equal(r.skipped.length, d.steps.length);
  });

  it("every step the deploy user runs is idempotent: forced to re-run, it exits 0 and the host stays the same", async () => {
    const before = await hostFingerprint(d.droplet);
    const r = await apply(d.steps, d.state, { log, force: (s) => s.connection.user === "chitram" });
    assert.equal(r.ran.length, d.steps.length - 2, "all but the two first-contact steps ran again");
    assert.equal(await hostFingerprint(d.droplet), before);
    await waitHealthy(d.droplet.httpPort);
  });

  it("a changed Caddyfile reaches the running Caddy (pushed, then reloaded by the compose step)", async () => {
    const filesStep = stepNamed(d, "app-files");
    const files = decodeFiles(filesStep.stdin!).map((f) =>
      f.path.endsWith("/Caddyfile")
        ? {
            ...f,
            content: f.content.replace(
              "\t\t-Server\n",
              '\t\t-Server\n\t\tX-Chitram-Release "caddy-reload-check"\n',
            ),
          }
        : f,
    );
    const changed = { ...filesStep, stdin: encodeFiles(files) };
    assert.notEqual(changed.stdin, filesStep.stdin);
    const steps = d.steps.map((s) => (s.name === filesStep.name ? changed : s));
    // the compose step's triggers would change with the bundle's hash; force it here
    const r = await apply(steps, d.state, { log, force: (s) => s.name === "app-compose-up" });
    assert.ok(r.ran.some((x) => x.name === "app-files"));
    assert.equal(
      (await get(d.droplet.httpPort, "/health")).headers["x-chitram-release"],
      "caddy-reload-check",
    );
    await apply(d.steps, d.state, { log, force: (s) => s.name === "app-compose-up" });
    assert.equal((await get(d.droplet.httpPort, "/health")).headers["x-chitram-release"], undefined);
  });

  it("rotating the deploy key: only its steps re-run (installed through the admin key), the new key works, the old one is refused", async () => {
    const oldKey = d.deployPrivateKey;
    replaceRealValue(d.stack, "tls:index/privateKey:PrivateKey", "deploy-key");
    const rotated = await runStack(d.stack, d.config, "real");
    const r = await apply(rotated.steps, d.state, { log });
    assert.deepEqual(
      r.ran.map((x) => x.name),
      ["host-deploy-user", "host-access-proof"],
    );
    d.steps = rotated.steps;
    d.deployPrivateKey = String(rotated.outputs.deployPrivateKey.value);
    assert.equal((await sshExec(d.droplet.sshPort, "chitram", d.deployPrivateKey, "sudo -n true")).code, 0);
    await assert.rejects(sshExec(d.droplet.sshPort, "chitram", oldKey, "true"), /authentication/i);
  });

  it("a file bundle cut off or changed in transfer fails every step that receives files and changes nothing; the good bundle then applies", async () => {
    const receivers = ["host-deploy-user", "host-harden", "app-env-file", "app-files", "app-backup-cron"];
    const before = await hostFingerprint(d.droplet);
    for (const name of receivers) {
      const good = stepNamed(d, name);
      const bundle = good.stdin!;
      const cutOff = bundle.slice(0, Math.floor(bundle.length / 2));
      const flipped = bundle.replace(/\n(.)/, (_, c: string) => `\n${c === "#" ? "$" : "#"}`);
      for (const [what, stdin, message] of [
        ["cut off", cutOff, /file bundle is incomplete.*nothing was installed/],
        ["one byte changed", flipped, /file bundle checksum mismatch.*nothing was installed/],
      ] as const) {
        await assert.rejects(
          replay([{ ...toReplayStep(withOutputs(good, d.state)), stdin, dependsOn: [] }], { log }),
          (err: StepError) => {
            assert.equal(err.step, name);
            assert.notEqual(err.exitCode, 0);
            assert.match(err.stderr, message, `${name}, ${what}`);
            return true;
          },
        );
        assert.equal(await hostFingerprint(d.droplet), before, `${name}, ${what}: the host changed`);
      }
    }
    const again = await apply(d.steps, d.state, { log, force: (s) => receivers.includes(s.name) });
    assert.deepEqual(again.ran.map((x) => x.name).sort(), [...receivers].sort());
    assert.equal(await hostFingerprint(d.droplet), before);
    assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200);
  });

  it("retro #1 negative control: an env file whose MinIO keys differ: the release is rolled back and names SignatureDoesNotMatch", async () => {
    const steps = withMismatchedMinioKeys(d.steps);
    // the new app container's health check fails, so it never gets traffic and the step fails
    await assert.rejects(
      apply(steps, d.state, { log, force: (s) => s.name === "app-compose-up" }),
      (err: StepError) => {
        assert.equal(err.step, "app-compose-up");
        assert.match(err.stderr, /HTTP 503 .*SignatureDoesNotMatch/);
        return true;
      },
    );
    assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200, "the old container still serves");
    // and the stack's own env file puts it right again
    await apply(d.steps, d.state, { log, force: (s) => s.name === "app-compose-up" });
    assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200);
  });

  it("retro #2 negative control: the app image with a sqlite+aiosqlite DATABASE_URL dies with ModuleNotFoundError; the stack's URL works", async () => {
    // The image is built without dev dependencies, as in production: aiosqlite is not in it.
    const run = (args: string) =>
      exec(`cd /opt/chitram && timeout 120 docker compose run --rm --no-deps -T ${args}`);
    const sqlite = await run("-e DATABASE_URL=sqlite+aiosqlite:////tmp/chitram.db app");
    assert.notEqual(sqlite.code, 0, "the app started without its database driver");
    assert.match(sqlite.stdout + sqlite.stderr, /ModuleNotFoundError: No module named 'aiosqlite'/);
    // the same image and entry module, with the env file's postgresql+asyncpg URL, reach PostgreSQL
    const selectOne =
      "import asyncio, app, sqlalchemy\n" +
      "async def main():\n" +
      "    async with app.engine.connect() as c:\n" +
      "        print('select', (await c.execute(sqlalchemy.text('SELECT 1'))).scalar())\n" +
      "asyncio.run(main())\n";
    const postgres = await run(`app python3 -c ${shq(selectOne)}`);
    assert.equal(postgres.code, 0, `${postgres.stdout}${postgres.stderr}`);
    assert.match(postgres.stdout, /^select 1$/m);
  });

  it("a health path with a query string (/health?a=1&b=2) deploys, and the health check and the nightly backup pass", async () => {
    const steps = await restep(d, { healthPath: "/health?a=1&b=2" });
    const r = await apply(steps, d.state, { log });
    assert.deepEqual(
      r.ran.map((x) => x.name),
      ["app-files", "app-compose-up", "app-health"],
    );
    assert.match(r.ran[2].stdout, /http:\/\/127\.0\.0\.1\/health\?a=1&b=2 -> 200/);
    const backup = await backupUnderCronEnv(exec);
    assert.equal(backup.code, 0, `${backup.stdout}${backup.stderr}`);
    await apply(d.steps, d.state, { log });
    assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200);
  });

  it("rotating the stack key with root login closed: installed by the admin-key step, every step that logs in with it updated, no first contact", async () => {
    const oldKey = stepNamed(d, "host-docker").connection.privateKey!;
    replaceRealValue(d.stack, "tls:index/privateKey:PrivateKey", "steps-key");
    const rotated = await runStack(d.stack, d.config, "real");
    const r = await apply(rotated.steps, d.state, { log });
    const ran = r.ran.map((x) => x.name);
    assert.equal(ran[0], "host-deploy-user", "the key is installed before any step logs in with it");
    assert.ok(!ran.includes("host-ready") && !ran.includes("host-bootstrap"), ran.join(", "));
    const newKey = stepIn(rotated.steps, "host-docker").connection.privateKey!;
    assert.notEqual(newKey, oldKey);
    const stackKeySteps = rotated.steps.filter((s) => s.connection.privateKey === newKey);
    assert.ok(stackKeySteps.length > 5, "the stack's own steps log in with the stack key");
    for (const s of stackKeySteps)
      assert.equal(r.ran.find((x) => x.name === s.name)?.action, "update", s.name);
    d.steps = rotated.steps;
    assert.equal((await sshExec(d.droplet.sshPort, "chitram", newKey, "sudo -n true")).code, 0);
    await assert.rejects(sshExec(d.droplet.sshPort, "chitram", oldKey, "true"), /authentication/i);
    await assert.rejects(
      sshExec(d.droplet.sshPort, "root", d.bootstrapPrivateKey, "true"),
      /authentication/i,
    );
    await waitHealthy(d.droplet.httpPort);
  });

  it("a wrong key fails the step after its dial limit with the authentication error, not a deadline", async () => {
    const wrong = ed25519KeyPair().private;
    for (const [name, limit] of [
      ["host-ready", FIRST_CONTACT_DIAL_ERROR_LIMIT],
      ["host-swap", DIAL_ERROR_LIMIT],
    ] as const) {
      const s = stepNamed(d, name);
      const probe = { ...s, name: `${name}-wrong-key`, connection: { ...s.connection, privateKey: wrong } };
      const started = Date.now();
      await assert.rejects(apply([{ ...probe, dependsOn: [] }], new Map(d.state), { log }), (err: Error) => {
        assert.match(err.message, new RegExp(`${limit + 1} failed attempts \\(dialErrorLimit ${limit}\\)`));
        assert.match(err.message, /authentication methods failed/);
        return true;
      });
      log(`${name} with a wrong key failed after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  });

  it("a step that hangs is stopped on the host at its limit, naming the step and the limit, and the next apply runs it again", async () => {
    const swap = stepNamed(d, "host-swap");
    const hang = {
      ...swap,
      name: "host-hang-probe",
      dependsOn: [],
      create: stepCommand("sleep 600 & wait", { sudo: true, step: "host-hang-probe", limit: "5s" }),
    };
    const state = new Map(d.state);
    await assert.rejects(apply([hang], state, { log }), (err: StepError) => {
      assert.equal(err.exitCode, 124);
      assert.match(err.message, /step host-hang-probe did not finish within its 5s limit and was stopped/);
      return true;
    });
    assert.equal(state.has("host-hang-probe"), false, "a failed create leaves nothing in the state");
    assert.equal(
      (await d.droplet.exec("pgrep -fx 'sleep 600' || true")).stdout.trim(),
      "",
      "the script's children were stopped too",
    );
    const fixed = {
      ...hang,
      create: stepCommand("true", { sudo: true, step: "host-hang-probe", limit: "5s" }),
    };
    const again = await apply([fixed], state, { log });
    assert.deepEqual(
      again.ran.map((x) => [x.name, x.action]),
      [["host-hang-probe", "create"]],
    );
  });

  it("a changed host key fails the next step with the provider's host key mismatch (the last test: the host is re-keyed)", async () => {
    const recorded = hostKeyFromStdout(d.state.get("host-ready")!.stdout);
    const onHost = (await d.droplet.exec("cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub")).stdout.trim();
    assert.equal(recorded, onHost, "the first step recorded the host's ED25519 key");
    const rekey = await d.droplet.exec(
      'rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && kill -HUP "$(cat /run/sshd.pid)"',
    );
    assert.equal(rekey.code, 0, rekey.stderr);
    await assert.rejects(
      apply([{ ...stepNamed(d, "host-swap"), dependsOn: [] }], d.state, { log, force: () => true }),
      (err: StepError) => {
        assert.equal(err.step, "host-swap");
        assert.match(err.message, /ssh: host key mismatch/);
        return true;
      },
    );
  });
});

describe("real host: faults — sshd late, applies killed part-way", () => {
  let d: Deployment;

  before(async () => {
    // sshd is held back until the test lets it start, as on a new droplet whose sshd answers late.
    d = await newDeployment("sandbox-faults", { holdSshd: true });
  });
  after(async () => {
    await d?.droplet.stop();
  });

  it("SSH refused at first (sshd started late) is waited out by the first step", async () => {
    await assert.rejects(
      sshExec(d.droplet.sshPort, "root", d.bootstrapPrivateKey, "true"),
      "sshd is not up yet",
    );
    const started = Date.now();
    // sshd starts 5 s after the first step began dialling: the step must wait it out.
    const sshdLate = new Promise((resolve) => setTimeout(resolve, 5_000)).then(() => d.droplet.startSshd());
    const r = await apply(d.steps, d.state, { log, stopAfter: 1 });
    await sshdLate;
    assert.deepEqual(
      r.ran.map((x) => x.name),
      ["host-ready"],
    );
    assert.ok(Date.now() - started >= 3_000, "the step had to wait for sshd");
  });

  it("applies killed after step 3, 6 and 10 each pick up where the last stopped, and the host converges", async () => {
    const runs: string[][] = [];
    for (const k of [3, 6, 10])
      runs.push((await apply(d.steps, d.state, { log, stopAfter: k })).ran.map((x) => x.name));
    assert.equal(runs[0].length, 2);
    assert.equal(runs[1].length, 3);
    assert.equal(runs[2].length, 4);
    const last = await apply(d.steps, d.state, { log });
    assert.equal(last.ran.length, d.steps.length - 10);
    assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200);
  });
});

describe("real host: a DigitalOcean stack's first contact (root with the admin key) and both key rotations", () => {
  const stack = "sandbox-droplet";
  // Only the host's own steps: the rotations are about them (the app steps are covered above).
  const hostSteps = (run: { steps: ProgramStep[] }) => run.steps.filter((s) => s.name.startsWith("host-"));
  const config = { ...STAGING, appImage: SANDBOX_APP_IMAGE };
  let droplet: Droplet;
  let steps: ProgramStep[];
  const state: EngineState = new Map();
  let toSandbox: (c: StepConnection) => StepConnection;

  before(async () => {
    await ensureDockerd();
    await buildImages();
    steps = hostSteps(await runStack(stack, config, "real"));
    // The droplet's root accepts the admin key, as DigitalOcean seeds it from the SshKey resource.
    const admin = utils.parseKey(stepIn(steps, "host-ready").connection.privateKey!);
    assert.ok(!(admin instanceof Error) && !Array.isArray(admin));
    droplet = await startDroplet({
      rootPublicKey: `${admin.type} ${admin.getPublicSSH().toString("base64")}`,
      images: false,
    });
    toSandbox = (c) => ({ ...c, host: "127.0.0.1", port: droplet.sshPort });
    const first = await apply(steps, state, { log, connectionOverride: toSandbox });
    assert.equal(first.ran.length, steps.length);
  });
  after(async () => {
    await droplet?.stop();
  });

  for (const key of ["steps-key", "deploy-key"]) {
    it(`replacing the ${key} with root login closed: no first contact, the new key works, the old one is refused`, async () => {
      const keyOf = (s: ProgramStep[]) =>
        stepIn(s, key === "steps-key" ? "host-swap" : "host-access-proof").connection.privateKey!;
      const oldKey = keyOf(steps);
      replaceRealValue(stack, "tls:index/privateKey:PrivateKey", key);
      const rotated = hostSteps(await runStack(stack, config, "real"));
      const r = await apply(rotated, state, { log, connectionOverride: toSandbox });
      const ran = r.ran.map((x) => x.name);
      assert.equal(ran[0], "host-deploy-user");
      assert.ok(!ran.includes("host-ready") && !ran.includes("host-bootstrap"), ran.join(", "));
      steps = rotated;
      assert.equal((await sshExec(droplet.sshPort, "chitram", keyOf(steps), "sudo -n true")).code, 0);
      await assert.rejects(sshExec(droplet.sshPort, "chitram", oldKey, "true"), /authentication/i);
      const admin = stepIn(steps, "host-ready").connection.privateKey!;
      await assert.rejects(
        sshExec(droplet.sshPort, "root", admin, "true"),
        /authentication/i,
        "root stays closed",
      );
    });
  }
});
