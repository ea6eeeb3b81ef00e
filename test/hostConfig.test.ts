// host.env is sourced by bash, by root's nightly backup among others: whatever its values hold,
// sourcing it must set them exactly and run nothing. And a health path with a query string works
// end to end through the host's own health check.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import * as path from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { parseEnvFile } from "../render/envFile";
import { HostEnvArgs, renderBackupCron, renderHostEnv } from "../render/hostConfig";
import { scratchDir, tool } from "./support";

const NAMES = [
  "APP_DIR",
  "DATA_DIR",
  "BACKUP_DIR",
  "BACKUP_RETENTION_DAYS",
  "BACKUP_LOG",
  "HEALTH_URL",
  "HEALTH_HOST",
  "BACKUP_SECRETS",
  "MC_IMAGE",
  "ENV_FILE",
  "APP_UPSTREAM",
  "RELEASES_LOG",
  "CRON_PATH",
];

/** Sources host.env in a fresh bash inside an empty directory; returns the values it sets. */
function sourced(text: string): { values: Record<string, string>; dir: string } {
  const dir = scratchDir("chitram-hostenv-");
  fs.writeFileSync(path.join(dir, "host.env"), text);
  const r = tool("bash", [
    "-c",
    `set -euo pipefail; cd "$1"; . ./host.env; for v in ${NAMES.join(" ")}; do printf '%s\\0' "\${!v}"; done`,
    "x",
    dir,
  ]);
  assert.equal(r.code, 0, r.out);
  const parts = r.out.split("\0");
  return { values: Object.fromEntries(NAMES.map((n, i) => [n, parts[i]])), dir };
}

describe("host.env: every value quoted", () => {
  it("hostile values come back exactly when sourced, and nothing in them runs", () => {
    const args: HostEnvArgs = {
      appDir: "/opt/$(touch pwned-appdir)",
      dataDir: "/data/`touch pwned-datadir`'\"",
      backupRetentionDays: 7,
      healthUrl: "http://127.0.0.1/health$(id)?a=1&b=2'x'\\ ${HOME} * ~",
      healthHost: "line one\nline two; touch pwned-newline\n'",
    };
    const { values, dir } = sourced(renderHostEnv(args));
    assert.deepEqual(values, {
      APP_DIR: args.appDir,
      DATA_DIR: args.dataDir,
      BACKUP_DIR: `${args.dataDir}/backups`,
      BACKUP_RETENTION_DAYS: "7",
      BACKUP_LOG: "/var/log/chitram-backup.log",
      HEALTH_URL: args.healthUrl,
      HEALTH_HOST: args.healthHost,
      BACKUP_SECRETS: "/etc/chitram/backup.env",
      MC_IMAGE: "minio/minio:RELEASE.2024-11-07T00-52-20Z",
      ENV_FILE: `${args.appDir}/.env.production`,
      APP_UPSTREAM: `${args.appDir}/caddy/app-upstream.caddy`,
      RELEASES_LOG: `${args.appDir}/releases.log`,
      CRON_PATH: "/etc/cron.d/chitram-backup",
    });
    assert.deepEqual(fs.readdirSync(dir), ["host.env"], "sourcing host.env ran a command");
  });

  it("the three health paths of the issue: /health$(id), /he'alth and /health?a=1&b=2 are sourced literally", () => {
    for (const healthPath of ["/health$(id)", "/he'alth", "/health?a=1&b=2"]) {
      const healthUrl = `http://127.0.0.1${healthPath}`;
      const env = renderHostEnv({
        appDir: "/opt/chitram",
        dataDir: "/var/lib/chitram",
        backupRetentionDays: 7,
        healthUrl,
        healthHost: "",
      });
      assert.equal(sourced(env).values.HEALTH_URL, healthUrl);
      assert.equal(parseEnvFile(env).HEALTH_URL, healthUrl, "the tests' parser reads what bash reads");
    }
  });

  it("a health path with a query string passes the host's health check (host/scripts/healthcheck.sh)", async () => {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.url ?? "");
      res.writeHead(req.url === "/health?a=1&b=2" ? 200 : 404).end("ok\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const dir = scratchDir("chitram-health-");
      const hostEnv = path.join(dir, "host.env");
      fs.writeFileSync(
        hostEnv,
        renderHostEnv({
          appDir: dir,
          dataDir: dir,
          backupRetentionDays: 7,
          healthUrl: `http://127.0.0.1:${port}/health?a=1&b=2`,
          healthHost: "",
        }),
      );
      const script = path.join(__dirname, "..", "host", "scripts", "healthcheck.sh");
      const r = await promisify(execFile)("bash", [script, "--retries", "1"], {
        env: { ...process.env, CHITRAM_HOST_ENV: hostEnv },
      });
      assert.match(r.stdout, /-> 200/);
      assert.deepEqual(seen, ["/health?a=1&b=2"]);
    } finally {
      server.close();
    }
  });
});

describe("cron file: only plain values reach cron's bash", () => {
  it("refuses a schedule or app directory with characters cron or bash would read", () => {
    assert.throws(
      () => renderBackupCron({ schedule: "0 3 * * * root id;", appDir: "/opt/chitram", alertAfterHours: 26 }),
      /schedule/,
    );
    assert.throws(
      () => renderBackupCron({ schedule: "0 3 % * *", appDir: "/opt/chitram", alertAfterHours: 26 }),
      /schedule/,
    );
    assert.throws(
      () => renderBackupCron({ schedule: "0 3 * * *", appDir: "/opt/$(id)", alertAfterHours: 26 }),
      /app directory/,
    );
    assert.match(
      renderBackupCron({ schedule: "*/15 1-5 * jan,feb mon", appDir: "/opt/chitram", alertAfterHours: 26 }),
      /scripts\/backup\.sh/,
    );
  });

  it("sweeps the backup status file once no backup succeeded for alertAfterHours", () => {
    const cron = renderBackupCron({ schedule: "0 3 * * *", appDir: "/opt/chitram", alertAfterHours: 26 });
    assert.match(
      cron,
      /^7 \* \* \* \* root find \/opt\/chitram\/caddy\/status\/backup-fresh -mmin \+1560 -delete/m,
    );
    assert.throws(
      () => renderBackupCron({ schedule: "0 3 * * *", appDir: "/opt/chitram", alertAfterHours: 0 }),
      /alertAfterHours/,
    );
  });
});
