// The host scripts of the managed data services, run by bash with a stand-in docker: the grant
// step of `database: managed` (host/steps/databaseGrant.sh) and the refusals of
// host/scripts/bucket.sh (`objectStore: spaces`). Their real runs are in test/cloud/.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeEach, describe, it } from "node:test";
import { renderStepScript } from "../remote/script";
import { renderEnvFile } from "../render/envFile";
import { scratchDir } from "./support";

const ADMIN_PASSWORD = "AVNS_abcdefghij0123456789";

// Records its arguments and its stdin; `compose run` of pgclient "succeeds" unless FAIL is set.
const FAKE_DOCKER = `#!/usr/bin/env bash
printf 'argv: %s\\n' "$*" >>"$CALLS"
printf 'stdin: %s\\n' "$(cat)" >>"$CALLS"
if [[ -n \${FAIL:-} ]]; then echo 'psql: error: FATAL: password authentication failed' >&2; exit 2; fi
`;

describe("databaseGrant.sh: the app's user may create tables in the managed database", () => {
  let dir: string;
  let calls: string;
  let bin: string;
  beforeEach(() => {
    dir = scratchDir("chitram-grant-");
    bin = path.join(dir, "bin");
    calls = path.join(dir, "calls");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "docker"), FAKE_DOCKER, { mode: 0o755 });
    fs.writeFileSync(calls, "");
  });
  const run = (hostEnv: string, stdin: string, env: NodeJS.ProcessEnv = {}) => {
    fs.writeFileSync(path.join(dir, "host.env"), hostEnv);
    const text = renderStepScript("databaseGrant", { APP_DIR: dir, ADMIN_USER: "doadmin" });
    const r = spawnSync("bash", ["-c", text], {
      input: stdin,
      env: { PATH: `${bin}:${process.env.PATH}`, CALLS: calls, ...env },
      encoding: "utf8",
    });
    return { code: r.status, out: r.stdout + r.stderr, calls: fs.readFileSync(calls, "utf8") };
  };

  it("grants CREATE and USAGE on public as the admin user, whose password goes on stdin, never in argv", () => {
    const r = run("DATABASE='managed'\n", `${ADMIN_PASSWORD}\n`);
    assert.equal(r.code, 0, r.out);
    const argv = r.calls.split("\n").filter((l) => l.startsWith("argv: compose"));
    assert.equal(argv.length, 1, r.calls);
    assert.match(
      argv[0],
      /^argv: compose --profile tools run --rm -T --no-deps --name chitram-database-grant -e ADMIN_USER=doadmin pgclient sh -c /,
    );
    // the named one-off container is removed on the way out, whatever happened
    assert.match(r.calls, /^argv: rm -f chitram-database-grant$/m);
    assert.match(argv[0], /GRANT CREATE, USAGE ON SCHEMA public TO \\"\$POSTGRES_USER\\"/);
    assert.ok(!argv[0].includes(ADMIN_PASSWORD), "the admin password is an argument");
    assert.match(r.calls, new RegExp(`^stdin: ${ADMIN_PASSWORD}$`, "m"));
  });

  it("refuses a host whose host.env names no managed database, and an empty password, granting nothing", () => {
    const container = run("DATABASE='container'\n", `${ADMIN_PASSWORD}\n`);
    assert.notEqual(container.code, 0);
    assert.match(container.out, /does not name a managed database/);
    const empty = run("DATABASE='managed'\n", "");
    assert.notEqual(empty.code, 0);
    assert.match(empty.out, /admin password did not arrive/);
    assert.doesNotMatch(fs.readFileSync(calls, "utf8"), /argv: compose/, "docker compose ran");
  });

  it("a refused grant fails the step with psql's message, before the release", () => {
    const r = run("DATABASE='managed'\n", `${ADMIN_PASSWORD}\n`, { FAIL: "1" });
    assert.notEqual(r.code, 0);
    assert.match(r.out, /the app was not released:\n.*password authentication failed/);
  });
});

describe("bucket.sh: mc against the app's Spaces bucket", () => {
  const script = path.join(__dirname, "..", "host", "scripts", "bucket.sh");
  const run = (objects: string, env: Record<string, string>, ...args: string[]) => {
    const dir = scratchDir("chitram-bucket-");
    const envFile = path.join(dir, ".env.production");
    fs.writeFileSync(
      envFile,
      Object.entries(env)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(""),
    );
    const hostEnv = path.join(dir, "host.env");
    fs.writeFileSync(hostEnv, `OBJECTS='${objects}'\nENV_FILE='${envFile}'\nMC_IMAGE='minio/minio'\n`);
    const r = spawnSync("bash", [script, ...args], {
      env: { ...process.env, CHITRAM_HOST_ENV: hostEnv },
      encoding: "utf8",
    });
    return { code: r.status, out: r.stdout + r.stderr };
  };
  const spaces = {
    MINIO_ENDPOINT: "https://nyc3.digitaloceanspaces.com",
    MINIO_BUCKET: "objects-a1b2c3d",
    MINIO_ACCESS_KEY: "DO00ABCDEFGHIJKLMNOP",
    MINIO_SECRET_KEY: "abc+def/ghi=jklmnopqrstuvwxyz0123456789ABCD",
  };

  it("names the app's bucket", () => {
    const r = run("spaces", spaces, "name");
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out, "objects-a1b2c3d\n");
  });

  it("refuses a host whose objects are in MinIO, pointing at restore.sh --minio", () => {
    const r = run("minio", spaces, "name");
    assert.notEqual(r.code, 0);
    assert.match(r.out, /objects are in MinIO on this host .*restore\.sh --minio/);
  });

  it("refuses an endpoint, a bucket or a key it could not hand to mc as they are", () => {
    for (const bad of [
      { MINIO_ENDPOINT: "minio:9000" },
      { MINIO_BUCKET: "Bad_Bucket" },
      { MINIO_SECRET_KEY: "abc@def:ghi" },
    ]) {
      const r = run("spaces", { ...spaces, ...bad }, "name");
      assert.notEqual(r.code, 0, JSON.stringify(bad));
      assert.match(r.out, /bucket: ERROR: /);
    }
  });

  it("undelete takes one object key, not a path from the root", () => {
    for (const args of [["undelete"], ["undelete", "/objects/photo"], ["undelete", "a", "b"]]) {
      const r = run("spaces", spaces, ...args);
      assert.notEqual(r.code, 0, args.join(" "));
      assert.match(r.out, /usage: bucket\.sh undelete <object key>/);
    }
  });
});

describe("env file: the managed services' values are checked before they reach a file", () => {
  const base = {
    postgresPassword: "pw1234567890",
    minioUser: "user1234",
    minioSecret: "secret1234567890",
    appSecretKey: "key1234567890",
  };
  const store = {
    endpoint: "https://nyc3.digitaloceanspaces.com",
    bucket: "objects-a1b2c3d",
    accessKey: "DO00ABCDEFGHIJKLMNOP",
    secretKey: "abc+def/ghi=jklmnopqrstuvwxyz0123456789ABCD",
  };

  it("a managed database's host must be a DNS name and its port a TCP port", () => {
    const ok = renderEnvFile({ ...base, managedDatabase: { host: "private-db.example.com", port: 25060 } });
    assert.match(ok, /@private-db\.example\.com:25060\/chitram\?ssl=verify-full$/m);
    for (const db of [
      { host: "db.example.com/x?ssl=disable", port: 25060 },
      { host: "db.example.com", port: 0 },
    ])
      assert.throws(() => renderEnvFile({ ...base, managedDatabase: db }), /host must be a DNS name/);
  });

  it("a Spaces endpoint, bucket and key with a character the file or mc would misread are refused", () => {
    assert.match(renderEnvFile({ ...base, objectStore: store }), /^MINIO_SECRET_KEY=abc\+def\/ghi=/m);
    for (const bad of [{ endpoint: "ftp://x" }, { bucket: "A b" }, { secretKey: "a b c d e f g h" }])
      assert.throws(() => renderEnvFile({ ...base, objectStore: { ...store, ...bad } }), /not allowed/);
  });
});

describe("common.sh require_switch_live: backups and restores wait until a switch has gone live", () => {
  const common = path.join(__dirname, "..", "host", "scripts", "common.sh");
  // common.sh with docker as a function (it outranks PATH, which common.sh resets): one running
  // app container whose environment is APP_ENV.
  const check = (hostEnv: string, appEnv: string) => {
    const script = [
      `. ${JSON.stringify(common)}`,
      'die() { echo "ERROR: $*"; exit 1; }',
      'docker() { case $1 in ps) echo app1 ;; inspect) printf "%s\\n" "$APP_ENV" ;; esac; }',
      "APP_DIR=/opt/chitram",
      hostEnv,
      "require_switch_live && echo live",
    ].join("\n");
    const r = spawnSync("bash", ["-c", script], {
      env: { ...process.env, APP_ENV: appEnv },
      encoding: "utf8",
    });
    return r.stdout + r.stderr;
  };
  const container = "DATABASE_URL=postgresql+asyncpg://chitram:pw@postgres:5432/chitram";
  const managed =
    "DATABASE_URL=postgresql+asyncpg://chitram:pw@private-db.example.com:25060/chitram?ssl=verify-full";
  const minio = "MINIO_ENDPOINT=minio:9000";
  const spaces = "MINIO_ENDPOINT=https://nyc3.digitaloceanspaces.com";

  it("host.env and the running app agree: nothing to wait for, in every combination", () => {
    for (const [env, app] of [
      ["DATABASE=container OBJECTS=minio", `${container}\n${minio}`],
      ["DATABASE=managed OBJECTS=minio", `${managed}\n${minio}`],
      ["DATABASE=container OBJECTS=spaces", `${container}\n${spaces}`],
      ["DATABASE=managed OBJECTS=spaces", `${managed}\n${spaces}`],
      // an older host.env without the keys, an app with another database URL
      ["", `DATABASE_URL=sqlite:///x.db\n${minio}`],
    ])
      assert.match(check(env, app), /^live$/m, `${env} / ${app}`);
  });

  it("each way of each switch that has not gone live is refused, naming what the app still uses", () => {
    for (const [env, app, uses] of [
      ["DATABASE=managed", `${container}\n${minio}`, "the postgres container"],
      ["DATABASE=container", `${managed}\n${minio}`, "the managed database"],
      ["OBJECTS=spaces", `${container}\n${minio}`, "MinIO on this host"],
      ["OBJECTS=minio", `${container}\n${spaces}`, "the Spaces bucket"],
    ]) {
      const out = check(env, app);
      assert.match(out, new RegExp(`still uses ${uses}: the switch has not gone live`), `${env} / ${app}`);
      assert.doesNotMatch(out, /^live$/m);
    }
  });
});
