/**
 * Backup/restore drills against a real chitram host (docs/HOST-LAYOUT.md), for the real-host
 * test suite. Every function takes a `HostExec` that runs a shell command as root on the host
 * (through `sh -c` or an SSH session: the commands here are POSIX sh).
 *
 * The drills change the host: they take backups (kept, like cron's), stop and start postgres,
 * and `restoreDrill` restores the database from the dump it just took (anything written in
 * between is lost). Run them on a test host, not on production.
 *
 * Paths come from the host's own host.env (`cat <appDir>/host.env`); only the app directory is
 * fixed (`/opt/chitram`, overridable through `DrillOptions.appDir` for a local layout).
 */
import { randomBytes } from "node:crypto";
import { APP_DIR } from "../hostContract";
import { parseEnvFile } from "../render/envFile";
import { shellQuote as shq } from "../remote/script";

export type HostExec = (cmd: string) => Promise<{ code: number; stdout: string; stderr: string }>;

/** Runs `cmd` on the host and returns its stdout; throws with its output unless it exits 0. */
export async function mustSucceed(exec: HostExec, cmd: string): Promise<string> {
  const r = await exec(cmd);
  if (r.code !== 0) throw new Error(`${cmd} exited with ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** A backup set's UTC stamp for a time: the `<stamp>` of `postgres-<stamp>.dump`. */
export function setStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}

export interface DrillOptions {
  /** The app directory on the host; host.env, compose.yaml and scripts/ live in it. */
  appDir?: string;
  /** How long to wait for postgres to be healthy again after a restart (ms, default 120 000). */
  healthyTimeoutMs?: number;
}

// The host's PATH may be minimal (an SSH session, cron); docker can live in /usr/local/bin.
const PATH_PREFIX = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH; ";
const DRILL_TABLE = "chitram_backup_drill";

interface HostPaths {
  appDir: string;
  dataDir: string;
  backupDir: string;
  env: Record<string, string>;
}

async function run(exec: HostExec, cmd: string) {
  return exec(PATH_PREFIX + cmd);
}

function detail(what: string, r: { code: number; stdout: string; stderr: string }): string {
  return `${what} (exit ${r.code})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

async function must(exec: HostExec, what: string, cmd: string): Promise<string> {
  const r = await run(exec, cmd);
  if (r.code !== 0) throw new Error(detail(`${what} failed`, r));
  return r.stdout;
}

async function hostPaths(exec: HostExec, opts?: DrillOptions): Promise<HostPaths> {
  const appDir = opts?.appDir ?? APP_DIR;
  const env = parseEnvFile(await must(exec, "reading host.env", `cat ${shq(`${appDir}/host.env`)}`));
  for (const key of ["APP_DIR", "DATA_DIR", "BACKUP_DIR"]) {
    if (!env[key]) throw new Error(`${appDir}/host.env does not set ${key}`);
  }
  return { appDir: env.APP_DIR, dataDir: env.DATA_DIR, backupDir: env.BACKUP_DIR, env };
}

function compose(p: HostPaths, args: string): string {
  return `docker compose --project-directory ${shq(p.appDir)} -f ${shq(`${p.appDir}/compose.yaml`)} ${args}`;
}

/** Runs SQL through psql in the postgres container, as POSTGRES_USER on POSTGRES_DB. */
async function psql(exec: HostExec, p: HostPaths, sql: string) {
  const inner = 'psql -X -q -t -A -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"';
  return run(exec, `printf '%s\\n' ${shq(sql)} | ${compose(p, `exec -T postgres sh -c ${shq(inner)}`)}`);
}

/** Names of the postgres dumps in BACKUP_DIR, oldest first (the names carry a sortable UTC stamp). */
async function listDumps(exec: HostExec, p: HostPaths): Promise<string[]> {
  const out = await must(
    exec,
    "listing dumps",
    `if [ -d ${shq(p.backupDir)} ]; then find ${shq(p.backupDir)} -maxdepth 1 -type f -name 'postgres-*.dump' | sort; fi`,
  );
  return out.split("\n").filter((l) => l !== "");
}

/** `name size sha256` for every backup file and leftover temp file in BACKUP_DIR. */
async function backupFingerprint(exec: HostExec, p: HostPaths): Promise<string> {
  const d = shq(p.backupDir);
  return must(
    exec,
    "fingerprinting BACKUP_DIR",
    `if [ -d ${d} ]; then cd ${d} && for f in postgres-*.dump minio-*.tar.gz manifest-*.txt .*.tmp; do ` +
      `[ -f "$f" ] && printf '%s %s %s\\n' "$f" "$(stat -c %s "$f")" "$(sha256sum < "$f" | cut -d' ' -f1)"; ` +
      `done; fi; true`,
  );
}

/**
 * Runs backup.sh the way cron does (`env -i PATH=/usr/bin:/bin`, no HOME, no TERM). `dump` is the
 * newest postgres dump when this run created one, else undefined.
 */
export async function backupUnderCronEnv(
  exec: HostExec,
  opts?: DrillOptions,
): Promise<{ code: number; stdout: string; stderr: string; dump?: string }> {
  const p = await hostPaths(exec, opts);
  const before = new Set(await listDumps(exec, p));
  const script = `${opts?.appDir ?? APP_DIR}/scripts/backup.sh`;
  // Not through run(): the PATH must be cron's, which is the point of this drill.
  const r = await exec(`env -i PATH=/usr/bin:/bin ${shq(script)}`);
  const after = await listDumps(exec, p);
  const newest = after[after.length - 1];
  const dump = newest !== undefined && !before.has(newest) ? newest : undefined;
  return { ...r, dump };
}

/** True when the file is a non-empty dump that `pg_restore -l` in the postgres container reads. */
export async function dumpIsReadable(exec: HostExec, dump: string, opts?: DrillOptions): Promise<boolean> {
  const p = await hostPaths(exec, opts);
  const r = await run(
    exec,
    `test -s ${shq(dump)} && ${compose(p, "exec -T postgres pg_restore -l")} < ${shq(dump)}`,
  );
  // A readable archive lists at least one TOC entry (lines that are not `;` comments).
  return r.code === 0 && r.stdout.split("\n").some((l) => l.trim() !== "" && !l.startsWith(";"));
}

/**
 * Writes a row into a table of its own, backs up (cron env), drops the table, restores the latest
 * dump with restore.sh, and checks the row is back. Throws with the commands' output otherwise.
 * The drill table is dropped at the end.
 */
export async function restoreDrill(exec: HostExec, opts?: DrillOptions): Promise<void> {
  const p = await hostPaths(exec, opts);
  const token = `drill-${Date.now()}-${randomBytes(6).toString("hex")}`;
  const sqlOk = async (what: string, sql: string) => {
    const r = await psql(exec, p, sql);
    if (r.code !== 0) throw new Error(detail(`restoreDrill: ${what} failed`, r));
    return r.stdout.trim();
  };
  try {
    await sqlOk(
      "writing the drill row",
      `CREATE TABLE IF NOT EXISTS ${DRILL_TABLE} (id serial PRIMARY KEY, token text NOT NULL, ` +
        `at timestamptz NOT NULL DEFAULT now()); INSERT INTO ${DRILL_TABLE} (token) VALUES ('${token}');`,
    );

    const backup = await backupUnderCronEnv(exec, opts);
    if (backup.code !== 0 || !backup.dump) {
      throw new Error(
        detail(`restoreDrill: backup.sh did not produce a new dump (dump: ${backup.dump})`, backup),
      );
    }
    if (!(await dumpIsReadable(exec, backup.dump, opts))) {
      throw new Error(`restoreDrill: pg_restore -l cannot read ${backup.dump}`);
    }

    await sqlOk("dropping the drill table", `DROP TABLE ${DRILL_TABLE};`);
    const gone = await sqlOk("checking the table is gone", `SELECT to_regclass('${DRILL_TABLE}') IS NULL;`);
    if (gone !== "t") throw new Error(`restoreDrill: ${DRILL_TABLE} still exists after DROP TABLE (${gone})`);

    const appDir = opts?.appDir ?? APP_DIR;
    const restore = await run(exec, `${shq(`${appDir}/scripts/restore.sh`)} latest`);
    if (restore.code !== 0) throw new Error(detail("restoreDrill: restore.sh latest failed", restore));
    const dumpName = backup.dump.slice(backup.dump.lastIndexOf("/") + 1);
    if (!restore.stdout.includes(dumpName)) {
      throw new Error(detail(`restoreDrill: restore.sh latest did not restore ${dumpName}`, restore));
    }

    const count = await sqlOk(
      "reading the drill row back",
      `SELECT count(*) FROM ${DRILL_TABLE} WHERE token = '${token}';`,
    );
    if (count !== "1") {
      throw new Error(
        detail(
          `restoreDrill: expected the drill row ${token} once after the restore, found ${count}`,
          restore,
        ),
      );
    }
  } finally {
    await psql(exec, p, `DROP TABLE IF EXISTS ${DRILL_TABLE};`);
  }
}

/** Waits until postgres runs, is healthy (when it has a healthcheck) and accepts connections. */
async function waitPostgresReady(exec: HostExec, p: HostPaths, timeoutMs: number): Promise<void> {
  const check =
    `cid=$(${compose(p, "ps -a -q postgres")} | head -n 1) && [ -n "$cid" ] && ` +
    `st=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$cid") && ` +
    `echo "$st" && case "$st" in "running "|"running healthy") ;; *) exit 1 ;; esac && ` +
    compose(p, `exec -T postgres sh -c ${shq('pg_isready -q -U "$POSTGRES_USER" -d "$POSTGRES_DB"')}`);
  const deadline = Date.now() + timeoutMs;
  let last = { code: -1, stdout: "", stderr: "" };
  while (Date.now() < deadline) {
    last = await run(exec, check);
    if (last.code === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(detail(`postgres not ready ${timeoutMs / 1000}s after the restart`, last));
}

/**
 * Stops postgres through compose, runs backup.sh (cron env), then starts postgres again and waits
 * until it is healthy. `output` is the backup's stdout + stderr; `previousDumpUnchanged` is true
 * when BACKUP_DIR holds exactly the same files with the same contents as before the failed run
 * (the previous dump untouched, no new or partial file). When there is no dump yet, one is taken
 * first so that there is a previous dump to compare.
 */
export async function failsWithPostgresStopped(
  exec: HostExec,
  opts?: DrillOptions,
): Promise<{ code: number; output: string; previousDumpUnchanged: boolean }> {
  const p = await hostPaths(exec, opts);
  if ((await listDumps(exec, p)).length === 0) {
    const first = await backupUnderCronEnv(exec, opts);
    if (first.code !== 0 || !first.dump) {
      throw new Error(
        detail("failsWithPostgresStopped: the first backup (to have a previous dump) failed", first),
      );
    }
  }
  const before = await backupFingerprint(exec, p);
  if (!before.includes("postgres-"))
    throw new Error(`failsWithPostgresStopped: no previous dump in ${p.backupDir}`);

  let result: { code: number; stdout: string; stderr: string };
  await must(exec, "stopping postgres", compose(p, "stop postgres"));
  try {
    result = await backupUnderCronEnv(exec, opts);
  } finally {
    await must(exec, "starting postgres", compose(p, "start postgres"));
    await waitPostgresReady(exec, p, opts?.healthyTimeoutMs ?? 120_000);
  }
  const after = await backupFingerprint(exec, p);
  return {
    code: result.code,
    output: result.stdout + result.stderr,
    previousDumpUnchanged: after === before,
  };
}
