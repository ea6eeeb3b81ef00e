// Day-2 changes on a real host: a replaced PostgreSQL password, a failing compose step's output,
// a changed swap size. Each test names the defect it shows fixed.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { decodeFiles } from "../../remote/transfer";
import { parseEnvFile } from "../../render/envFile";
import { replaceRealValue } from "../../harness/mockProgram";
import { ProgramStep } from "../../harness/steps";
import { apply } from "../../harness/engine";
import { Deployment, newDeployment, restep, withMismatchedMinioKeys } from "../../harness/deployment";
import { sshExec, waitHealthy } from "../../harness/probes";
import { StepError } from "../../harness/replay";
import { ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { SWAP_FILE } from "../../hostContract";

const log = (line: string) => console.log(`  ${line}`);
const envOf = (steps: ProgramStep[]) =>
  parseEnvFile(decodeFiles(steps.find((s) => s.name === "app-env-file")!.stdin!)[0].content);

describe("real host: day-2 changes", () => {
  let d: Deployment;
  const onHost = async (cmd: string) => {
    const r = await sshExec(d.droplet.sshPort, "chitram", d.deployPrivateKey, cmd);
    assert.equal(r.code, 0, `${cmd}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const psql = (sql: string) =>
    onHost(
      `cd /opt/chitram && docker compose exec -T postgres sh -c 'psql -X -q -t -A -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"' <<'SQL'\n${sql}\nSQL`,
    );

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    d = await newDeployment("sandbox-day2");
    await apply(d.steps, d.state, { log });
    await waitHealthy(d.droplet.httpPort);
    await psql("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('before the new password');");
  });
  after(async () => {
    await d?.droplet.stop();
  });

  it("a replaced PostgreSQL password reaches PostgreSQL (it reads the env only at init): the app logs in, the rows stay", async () => {
    replaceRealValue(d.stack, "random:index/randomPassword:RandomPassword", "app-postgres-password");
    const steps = await restep(d, {});
    assert.notEqual(envOf(steps).POSTGRES_PASSWORD, envOf(d.steps).POSTGRES_PASSWORD);
    await apply(steps, d.state, { log });
    d.steps = steps;
    assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200);
    assert.equal(await psql("SELECT note FROM kept;"), "before the new password\n");
  });

  it("a failing compose step prints the last lines of the failing services only, and no secret", async () => {
    const env = envOf(d.steps);
    const steps = withMismatchedMinioKeys(d.steps);
    const err = await apply(steps, d.state, { log, force: (s) => s.name === "app-compose-up" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof StepError, "the compose step must fail with MinIO's keys differing");
    assert.equal(err.step, "app-compose-up");
    const sections = [...err.stderr.matchAll(/^--- (\S+) \(/gm)].map((m) => m[1]);
    assert.ok(sections.includes("app"), err.stderr);
    for (const healthy of ["postgres", "minio"]) assert.ok(!sections.includes(healthy), err.stderr);
    for (const section of err.stderr.split(/^--- /m).slice(1)) {
      assert.ok(section.trimEnd().split("\n").length <= 41, `more than 40 lines: ${section.slice(0, 200)}`);
    }
    for (const secret of [env.POSTGRES_PASSWORD, env.MINIO_SECRET_KEY, env.MINIO_ROOT_USER, env.SECRET_KEY])
      assert.ok(!err.stderr.includes(secret), "a secret reached the step's output");
    // The stack's own env file puts it right again.
    await apply(d.steps, d.state, { log, force: (s) => s.name === "app-compose-up" });
    assert.equal((await waitHealthy(d.droplet.httpPort)).status, 200);
  });

  it("a new swapSizeMb resizes an active swap file (off, re-created, on), and 0 removes it", async () => {
    // A container cannot turn swap on: stand-in swapon/swapoff in /usr/local/sbin (first in sudo's
    // PATH) keep the list of active swap files in /run/stand-in-swaps, so the script's logic runs.
    const standIns = [
      "cat >/usr/local/sbin/swapon <<'EOF'",
      "#!/bin/sh",
      'if [ "$1" = --show=NAME ]; then cat /run/stand-in-swaps 2>/dev/null; else echo "on $1" >>/run/stand-in-swaps.log; echo "$1" >>/run/stand-in-swaps; fi',
      "EOF",
      "cat >/usr/local/sbin/swapoff <<'EOF'",
      "#!/bin/sh",
      'echo "off $1" >>/run/stand-in-swaps.log; grep -vx "$1" /run/stand-in-swaps >/run/stand-in-swaps.new; mv /run/stand-in-swaps.new /run/stand-in-swaps',
      "EOF",
      "chmod 0755 /usr/local/sbin/swapon /usr/local/sbin/swapoff",
      `echo ${SWAP_FILE} >/run/stand-in-swaps`,
    ].join("\n");
    assert.equal((await d.droplet.exec(standIns)).code, 0);
    try {
      await apply(await restep(d, { swapSizeMb: "1024" }), d.state, { log });
      assert.equal(
        (await d.droplet.exec(`stat -c %s ${SWAP_FILE}`)).stdout.trim(),
        String(1024 * 1024 * 1024),
      );
      assert.equal(
        (await d.droplet.exec("cat /run/stand-in-swaps.log")).stdout,
        `off ${SWAP_FILE}\non ${SWAP_FILE}\n`,
      );
      await apply(await restep(d, { swapSizeMb: "0" }), d.state, { log });
      assert.equal((await d.droplet.exec(`test -e ${SWAP_FILE} || echo gone`)).stdout, "gone\n");
      assert.equal((await d.droplet.exec(`grep -c ${SWAP_FILE} /etc/fstab || true`)).stdout.trim(), "0");
      assert.equal((await d.droplet.exec("cat /run/stand-in-swaps")).stdout, "");
    } finally {
      await d.droplet.exec("rm -f /usr/local/sbin/swapon /usr/local/sbin/swapoff /run/stand-in-swaps*");
    }
  });
});
