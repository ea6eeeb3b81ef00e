// The checks of the retrospective's failures on a deployed host, shared by the real-host tests
// (steps replayed) and the engine tests (the real `pulumi up`): each asserts what its failure
// would have broken. The host is a sandbox droplet; the app is the stand-in.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { HostFile } from "../../remote/transfer";
import { parseEnvFile } from "../../render/envFile";
import { shellQuote as shq } from "../../remote/script";
import { get, request, sshExec, tcpOpen, waitHealthy } from "../../harness/probes";
import { Droplet } from "../../harness/sandbox";
import { APP_DIR, CRON_PATH, ENV_FILE_NAME } from "../../hostContract";
import { backupUnderCronEnv, dumpIsReadable } from "../../harness/backupDrill";

/** Retro #3/#4: the deploy user logs in with the key (no agent, no TTY) and `sudo -n` works; the key has no passphrase. */
export async function deployUserLogsIn(
  droplet: Droplet,
  deployPrivateKey: string,
  user = "chitram",
): Promise<void> {
  // `! tty`: tty exits 1 without a terminal, which is what this login must be.
  const r = await sshExec(droplet.sshPort, user, deployPrivateKey, "sudo -n true && id -nG && ! tty");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\bdocker\b/);
  assert.match(r.stdout, /not a tty/);
  // the key opens with an empty passphrase, checked by the host's ssh-keygen
  const check = await droplet.exec(
    `k=$(mktemp) && printf '%s' ${shq(deployPrivateKey)} > "$k" && ssh-keygen -y -P '' -f "$k"; rc=$?; rm -f "$k"; exit $rc`,
  );
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, /^ssh-ed25519 /);
}

/** Root login is closed once the deploy user is proven, and passwords are off. */
export async function rootLoginClosed(droplet: Droplet, rootPrivateKey: string): Promise<void> {
  await assert.rejects(sshExec(droplet.sshPort, "root", rootPrivateKey, "true"), /authentication/i);
  const sshd = await droplet.exec("sshd -T | grep -Ei '^(passwordauthentication|permitrootlogin) '");
  assert.match(sshd.stdout, /^passwordauthentication no$/m);
  assert.match(sshd.stdout, /^permitrootlogin no$/m);
}

/** Retro #1: the env file is 0600, owned by the deploy user, and its MinIO keys are equal. */
export async function envFileKeysMatch(droplet: Droplet): Promise<Record<string, string>> {
  const stat = await droplet.exec(`stat -c '%a %U' ${APP_DIR}/${ENV_FILE_NAME}`);
  assert.equal(stat.stdout.trim(), "600 chitram");
  const env = parseEnvFile((await droplet.exec(`cat ${APP_DIR}/${ENV_FILE_NAME}`)).stdout);
  assert.ok(env.MINIO_SECRET_KEY.length >= 32);
  assert.equal(env.MINIO_ROOT_PASSWORD, env.MINIO_SECRET_KEY);
  assert.equal(env.MINIO_ROOT_USER, env.MINIO_ACCESS_KEY);
  return env;
}

/** Retro #1/#7/#8: GET /health on the published port 80 is 200 through Caddy, no redirect, no HSTS. */
export async function healthyThroughCaddy(droplet: Droplet): Promise<void> {
  const r = await waitHealthy(droplet.httpPort);
  assert.equal(r.status, 200);
  assert.equal(r.headers.location, undefined);
  assert.equal(r.headers["strict-transport-security"], undefined);
  assert.equal(r.headers.server, undefined, "Caddy strips the Server header");
  assert.match(r.body, /ok/);
  assert.equal((await get(droplet.httpPort, "/")).status, 200);
}

/** Retro #7: PostgreSQL, MinIO and the app port are not reachable from outside the droplet. */
export async function internalPortsClosed(droplet: Droplet): Promise<void> {
  const ip = droplet.containerIp;
  assert.equal(await tcpOpen(ip, 80), true, "the probe reaches the droplet (Caddy on 80)");
  for (const port of [5432, 9000, 9001, 8000])
    assert.equal(await tcpOpen(ip, port), false, `port ${port} is open`);
}

/** Retro #6: every file of the bundle is on the host with its content and mode, scripts included. */
export async function bundleOnHost(droplet: Droplet, files: HostFile[]): Promise<void> {
  assert.ok(files.some((f) => f.path.endsWith("/scripts/backup.sh")));
  for (const f of files) {
    const r = await droplet.exec(`stat -c '%a %U' ${f.path} && sha256sum ${f.path}`);
    assert.equal(r.code, 0, `${f.path} missing: ${r.stderr}`);
    const [statLine, sumLine] = r.stdout.trim().split("\n");
    assert.equal(statLine, `${f.mode.slice(1)} chitram`, f.path);
    assert.equal(sumLine.split(" ")[0], createHash("sha256").update(f.content).digest("hex"), f.path);
  }
}

/** Retro #5: the cron file is root's 0644 and runs backup.sh on the schedule. */
export async function backupCronInstalled(droplet: Droplet, schedule = "0 3 * * *"): Promise<void> {
  const r = await droplet.exec(`stat -c '%a %U' ${CRON_PATH} && cat ${CRON_PATH}`);
  assert.match(r.stdout, /^644 root$/m);
  const line = `${schedule} root /opt/chitram/scripts/backup.sh`;
  assert.ok(
    r.stdout.split("\n").some((l) => l.startsWith(line)),
    `no line "${line}" in:\n${r.stdout}`,
  );
}

/** Retro #5: backup.sh under cron's empty environment writes a dump that pg_restore reads, and the object archive. */
export async function backupRunsUnderCron(droplet: Droplet, objectKey: string): Promise<void> {
  const exec = (cmd: string) => droplet.exec(cmd);
  // Some data first, written through Caddy into PostgreSQL and MinIO by the app.
  assert.equal(
    (await request(droplet.httpPort, "PUT", `/api/objects/${objectKey}`, "backup me")).status,
    201,
  );
  const r = await backupUnderCronEnv(exec);
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  assert.ok(r.dump, "a new dump was written");
  assert.equal(await dumpIsReadable(exec, r.dump), true);
  const toc = await exec(`cd /opt/chitram && docker compose exec -T postgres pg_restore -l < ${r.dump}`);
  assert.match(toc.stdout, /TABLE DATA public sandbox_objects/);
  const archive = r.dump.replace(/postgres-(\w+)\.dump$/, "minio-$1.tar.gz");
  const minio = await exec(`ls ${archive} && tar -tzf ${archive}`);
  assert.ok(minio.stdout.includes(objectKey), "the MinIO archive holds the object");
}
