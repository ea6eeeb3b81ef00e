// Every file the host receives, read by the real tool that will read it on the host:
// caddy, visudo, shellcheck, docker compose, cloud-init, ssh-keygen, systemd-analyze.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { spawnSync } from "node:child_process";
import * as YAML from "yaml";
import { renderCaddyfile } from "../render/caddyfile";
import { CLOUD_CONFIG } from "../render/cloudConfig";
import { composeObject, MEMORY_LIMITS_MB, renderCompose } from "../render/compose";
import { renderEnvFile, renderServiceEnvFiles } from "../render/envFile";
import { renderBackupCron, renderDockerMountDropIn, renderSshdDropIn } from "../render/hostConfig";
import { renderStepScript, STEP_SCRIPTS, stepFiles, STEPS_DIR } from "../remote/script";
import { renderSudoers } from "../render/sudoers";
import { EXISTING, PROD, runStack, scratchDir, STAGING, tool } from "./support";
import {
  APP_UPSTREAM_FILE,
  DOCKER_MOUNT_DROPIN_PATH,
  SERVICE_ENV_FILES,
  VOLUME_MOUNT,
} from "../hostContract";

const tmp = scratchDir("chitram-validators-");
function write(name: string, content: string, mode = 0o644): string {
  const file = path.join(tmp, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content, { mode });
  return file;
}

function caddyJson(caddyfile: string): {
  apps: { http: { servers: Record<string, Record<string, unknown>> } };
} {
  const r = tool("caddy", [
    "adapt",
    "--adapter",
    "caddyfile",
    "--config",
    write(`Caddyfile-${Math.random()}`, caddyfile),
  ]);
  assert.equal(r.code, 0, r.out);
  return JSON.parse(r.out.slice(r.out.indexOf("{"), r.out.lastIndexOf("}") + 1)) as never;
}

describe("validators: Caddyfile (caddy validate)", () => {
  const ip = renderCaddyfile({});
  const domain = renderCaddyfile({ domain: "chitram.example.com", acmeEmail: "ops@example.com" });
  // What the release step writes beside the Caddyfile (host/steps/composeUp.sh).
  write(APP_UPSTREAM_FILE, "to chitram-app-3:8000\n");

  const behindLb = renderCaddyfile({ behindLoadBalancer: { healthPath: "/health", https: true } });

  it("every mode passes caddy validate (IP, domain, behind a load balancer)", () => {
    for (const [name, text] of [
      ["ip", ip],
      ["domain", domain],
      ["behind-lb", behindLb],
    ]) {
      const r = tool("caddy", [
        "validate",
        "--adapter",
        "caddyfile",
        "--config",
        write(`Caddyfile.${name}`, text),
      ]);
      assert.equal(r.code, 0, `${name}: ${r.out}`);
      assert.match(r.out, /Valid configuration/);
    }
  });

  it("acmeCa: a domain Caddyfile with acme_ca passes caddy validate; without it, no acme_ca line", () => {
    const staging = renderCaddyfile({
      domain: "chitram.example.com",
      acmeCa: "https://acme-staging-v02.api.letsencrypt.org/directory",
    });
    assert.match(staging, /^\tacme_ca https:\/\/acme-staging-v02\.api\.letsencrypt\.org\/directory$/m);
    assert.doesNotMatch(domain, /acme_ca/);
    const r = tool("caddy", [
      "validate",
      "--adapter",
      "caddyfile",
      "--config",
      write("Caddyfile.staging", staging),
    ]);
    assert.equal(r.code, 0, r.out);
    assert.throws(() => renderCaddyfile({ domain: "a.example.com", acmeCa: "https://x/ {" }), /ACME/);
  });

  it("a broken Caddyfile fails caddy validate (the check can fail)", () => {
    const r = tool("caddy", [
      "validate",
      "--adapter",
      "caddyfile",
      "--config",
      write("Caddyfile.bad", ip.replace(`import ${APP_UPSTREAM_FILE}\n\t\t}`, `import ${APP_UPSTREAM_FILE}`)),
    ]);
    assert.notEqual(r.code, 0);
  });

  it("retro #8: IP mode listens on :80 only, with automatic HTTPS off: no redirect, no HSTS", () => {
    const server = Object.values(caddyJson(ip).apps.http.servers)[0];
    assert.deepEqual(server.listen, [":80"]);
    assert.deepEqual(server.automatic_https, { disable: true });
    const directives = ip
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n");
    assert.doesNotMatch(directives, /Strict-Transport-Security|redir|https:\/\/|localhost/);
  });

  it("domain mode: the domain as site address with automatic HTTPS and HSTS; certificates on /data", () => {
    const json = caddyJson(domain);
    const server = Object.values(json.apps.http.servers)[0];
    assert.deepEqual(server.listen, [":443"]);
    assert.match(JSON.stringify(server.routes), /"host":\["chitram.example.com"\]/);
    assert.match(domain, /Strict-Transport-Security/);
    assert.match(domain, /email ops@example\.com/);
    const caddy = composeObject({ appImage: "x", appPort: 8000, dataDir: "/d", healthPath: "/health" })
      .services.caddy;
    assert.ok(caddy.volumes.includes("/d/caddy/data:/data"));
  });

  it("an IP address or URL is never produced as a site address", () => {
    for (const bad of [
      "203.0.113.5",
      "https://chitram.example.com",
      "localhost",
      "chitram.example.com:443",
    ]) {
      assert.throws(() => renderCaddyfile({ domain: bad }), /not a bare domain/);
    }
  });

  it("both modes proxy to exactly the container the upstream file names and keep the security headers", () => {
    for (const text of [ip, domain]) {
      const server = Object.values(caddyJson(text).apps.http.servers)[0];
      const proxies = JSON.stringify(server.routes).match(/"upstreams":\[[^\]]*\]/g);
      assert.deepEqual(proxies, ['"upstreams":[{"dial":"chitram-app-3:8000"}]']);
    }
    for (const h of ["X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "-Server"]) {
      assert.ok(ip.includes(h) && domain.includes(h), h);
    }
  });
});

describe("validators: sudoers (visudo -cf)", () => {
  it("retro #4: the drop-in passes visudo and grants NOPASSWD to the deploy user", () => {
    const text = renderSudoers("chitram");
    const r = tool("visudo", ["-cf", write("sudoers-chitram", text, 0o440)]);
    assert.equal(r.code, 0, r.out);
    assert.match(text, /^chitram ALL=\(ALL:ALL\) NOPASSWD: ALL$/m);
  });

  it("a broken drop-in fails the same check (what the host step relies on)", () => {
    const r = tool("visudo", ["-cf", write("sudoers-bad", "chitram ALL=(ALL NOPASSWD ALL\n", 0o440)]);
    assert.notEqual(r.code, 0);
  });
});

describe("validators: docker.service drop-in (systemd-analyze verify)", () => {
  /**
   * systemd-analyze verify of a docker.service stand-in with the drop-in beside it, as systemd
   * loads drop-ins from <unit>.d/ in its unit path; the lines that name this unit directory
   * (warnings about the host's own units are not the drop-in's).
   */
  function verify(dropIn: string): { code: number; ours: string[] } {
    const dir = fs.mkdtempSync(path.join(tmp, "units-"));
    fs.writeFileSync(
      path.join(dir, "docker.service"),
      "[Unit]\nDescription=Docker stand-in\n[Service]\nExecStart=/bin/true\n",
    );
    fs.mkdirSync(path.join(dir, "docker.service.d"));
    fs.writeFileSync(path.join(dir, "docker.service.d", path.basename(DOCKER_MOUNT_DROPIN_PATH)), dropIn);
    const r = spawnSync("systemd-analyze", ["verify", path.join(dir, "docker.service")], {
      encoding: "utf8",
      // A trailing colon: this directory first, then the usual search path.
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` },
    });
    if (r.error)
      throw new Error(
        `systemd-analyze is not installed here (.ci/install-host-tools.sh installs it): ${r.error.message}`,
      );
    const ours = `${r.stdout}${r.stderr}`.split("\n").filter((l) => l.includes(dir));
    return { code: r.status ?? -1, ours };
  }

  it("the drop-in passes systemd-analyze verify without a warning", () => {
    assert.equal(path.dirname(DOCKER_MOUNT_DROPIN_PATH), "/etc/systemd/system/docker.service.d");
    assert.match(path.basename(DOCKER_MOUNT_DROPIN_PATH), /\.conf$/, "systemd reads only *.conf drop-ins");
    const r = verify(renderDockerMountDropIn({ dataDir: VOLUME_MOUNT }));
    assert.deepEqual(r.ours, []);
    assert.equal(r.code, 0);
  });

  it("a misspelt key or a relative path is reported by the same check (what the test relies on)", () => {
    const misspelt = verify("[Unit]\nRequiresMountFor=/mnt/chitram-data\n");
    assert.match(misspelt.ours.join("\n"), /Unknown key/);
    const relative = verify("[Unit]\nRequiresMountsFor=mnt/chitram-data\n");
    assert.match(relative.ours.join("\n"), /not absolute/);
  });

  it("the renderer refuses a data directory systemd would read otherwise (specifiers, spaces)", () => {
    for (const dataDir of ["/mnt/%h", "/mnt/a b", "mnt/data", "/mnt/chitram-data/"]) {
      assert.throws(() => renderDockerMountDropIn({ dataDir }), /plain absolute path/, dataDir);
    }
  });
});

describe("validators: shellcheck on every script the host runs", async () => {
  const run = await runStack("prod", PROD);
  // With a registry login, so that step is checked as rendered too.
  const existing = await runStack("sandbox", {
    ...EXISTING,
    registryServer: "ghcr.io",
    registryUsername: "example-bot",
    registryPassword: "PLACEHOLDER-registry-password",
  });

  it("every rendered step script (prod and existing) is shellcheck-clean", () => {
    const scripts = new Map<string, string>();
    for (const r of [run, existing]) {
      for (const s of r.steps) {
        for (const [when, command] of [
          ["create", s.create],
          ["delete", s.delete],
        ] as const) {
          if (command === undefined) continue;
          // The command is `[sudo -n] bash -c '<script>'`: check exactly the script bash receives.
          const quoted = command.slice(command.indexOf("bash -c '") + "bash -c ".length);
          const script = tool("bash", ["-c", `printf %s ${quoted}`]).out;
          assert.match(script, /^#!\/usr\/bin\/env bash\n/, s.name);
          scripts.set(`${s.name} (${when})`, script);
        }
      }
    }
    assert.ok(scripts.size >= 13);
    assert.ok(scripts.has("app-registry-login (create)"));
    for (const [name, script] of scripts) {
      const r = tool("shellcheck", ["-s", "bash", "-"], script);
      assert.equal(r.code, 0, `${name}:\n${r.out}`);
    }
  });

  it("every step script template renders and passes shellcheck, including ones a stack may not use", () => {
    for (const step of STEP_SCRIPTS) {
      const r = tool("shellcheck", ["-s", "bash", "-"], renderStepScript(step, {}));
      assert.equal(r.code, 0, `${step}:\n${r.out}`);
    }
  });

  it("every file of host/steps/ is lib.sh or part of a step's script", () => {
    const files = fs
      .readdirSync(STEPS_DIR, { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".sh"))
      .sort();
    const used = new Set(["lib.sh", ...STEP_SCRIPTS.flatMap(stepFiles)]);
    assert.deepEqual(
      files.filter((f) => !used.has(f)),
      [],
      "scripts no step renders",
    );
    assert.deepEqual(
      [...used].filter((f) => !files.includes(f)),
      [],
      "parts that do not exist",
    );
  });

  it("every script in scripts/ is shellcheck-clean", () => {
    const dir = path.join(__dirname, "..", "host", "scripts");
    for (const f of fs.readdirSync(dir)) {
      const r = tool("shellcheck", [path.join(dir, f)]);
      assert.equal(r.code, 0, `host/scripts/${f}:\n${r.out}`);
    }
  });

  it("shellcheck does catch a broken script (the check can fail)", () => {
    assert.notEqual(tool("shellcheck", ["-s", "bash", "-"], "#!/usr/bin/env bash\nrm -rf $DIR/*\n").code, 0);
  });
});

describe("validators: compose file (docker compose config)", () => {
  const args = {
    appImage: "ghcr.io/example/chitram:1.0.0",
    appPort: 8000,
    dataDir: "/var/lib/chitram",
    healthPath: "/health",
  };
  const dir = path.join(tmp, "compose");
  const composeFile = write("compose/compose.yaml", renderCompose(args));
  const envArgs = {
    postgresPassword: "pw1234567890",
    minioUser: "user1234",
    minioSecret: "secret1234567890",
    appSecretKey: "key1234567890",
  };
  write("compose/.env.production", renderEnvFile(envArgs), 0o600);
  const serviceEnv = renderServiceEnvFiles(envArgs);
  write(`compose/${SERVICE_ENV_FILES.postgres}`, serviceEnv.postgres, 0o600);
  write(`compose/${SERVICE_ENV_FILES.minio}`, serviceEnv.minio, 0o600);
  const config = tool("docker", [
    "compose",
    "--project-directory",
    dir,
    "-f",
    composeFile,
    "config",
    "--format",
    "json",
  ]);

  it("passes docker compose config", () => {
    assert.equal(config.code, 0, config.out);
  });

  it("retro #7: only Caddy publishes ports, 80 and 443; the app, Postgres and MinIO are internal", () => {
    const parsed = JSON.parse(config.out) as {
      services: Record<string, { ports?: { published: string; target: number }[] }>;
    };
    const published = Object.entries(parsed.services).flatMap(([name, s]) =>
      (s.ports ?? []).map((p) => `${name}:${p.published}->${p.target}`),
    );
    assert.deepEqual(published.sort(), ["caddy:443->443", "caddy:80->80"]);
  });

  it("PostgreSQL and MinIO see only their own keys: a change of the app's env restarts neither", () => {
    const parsed = JSON.parse(config.out) as {
      services: Record<string, { environment?: Record<string, string> }>;
    };
    const keys = (service: string) => Object.keys(parsed.services[service].environment ?? {}).sort();
    assert.deepEqual(keys("postgres"), ["POSTGRES_DB", "POSTGRES_PASSWORD", "POSTGRES_USER"]);
    assert.deepEqual(keys("minio"), ["MINIO_ROOT_PASSWORD", "MINIO_ROOT_USER"]);
    assert.ok(keys("app").includes("SECRET_KEY"));
  });

  it("every service restarts, has a healthcheck and a memory limit; the limits fit a 2 GB host", () => {
    type Service = { restart: string; healthcheck?: { test: string[] }; mem_limit: string };
    for (const database of ["container", "managed"] as const) {
      const obj = composeObject({ ...args, database });
      for (const [name, s] of Object.entries(obj.services) as [string, Service][]) {
        // pgclient runs one command and exits (`compose run --rm`): no restart, no healthcheck.
        assert.equal(s.restart, name === "pgclient" ? "no" : "unless-stopped", name);
        if (name !== "pgclient") assert.ok((s.healthcheck?.test.length ?? 0) > 1, name);
        assert.match(s.mem_limit, /^\d+m$/, name);
      }
    }
    // pgclient is in a project only where postgres is not (a managed database), and smaller.
    const total = Object.values(MEMORY_LIMITS_MB).reduce((a, b) => a + b, 0) - MEMORY_LIMITS_MB.pgclient;
    // 2 GB droplet: about 1.9 GiB usable, of which the OS, dockerd and sshd need a few hundred MiB.
    assert.ok(total <= 1600, `limits sum to ${total} MiB`);
  });

  it("starting Caddy never starts or recreates the app: the release step alone starts app containers", () => {
    assert.equal("depends_on" in composeObject(args).services.caddy, false);
  });

  it("the app starts only when Postgres and MinIO are healthy; data lives under the data directory", () => {
    const obj = composeObject(args);
    assert.deepEqual(obj.services.app.depends_on, {
      postgres: { condition: "service_healthy" },
      minio: { condition: "service_healthy" },
    });
    assert.ok("postgres" in obj.services);
    assert.deepEqual(obj.services.postgres.volumes, ["/var/lib/chitram/postgres:/var/lib/postgresql/data"]);
    assert.deepEqual(obj.services.minio?.volumes, ["/var/lib/chitram/minio:/data"]);
    assert.equal(obj.services.app.image, "ghcr.io/example/chitram:1.0.0");
  });

  it("a managed database: docker compose config passes; no postgres; pgclient is only run on demand, with the CA", () => {
    const managedDir = path.join(tmp, "compose-managed");
    const file = write("compose-managed/compose.yaml", renderCompose({ ...args, database: "managed" }));
    const managedEnv = { ...envArgs, managedDatabase: { host: "private-db.example.com", port: 25060 } };
    write("compose-managed/.env.production", renderEnvFile(managedEnv), 0o600);
    const env = renderServiceEnvFiles(managedEnv);
    write(`compose-managed/${SERVICE_ENV_FILES.postgres}`, env.postgres, 0o600);
    write(`compose-managed/${SERVICE_ENV_FILES.minio}`, env.minio, 0o600);
    const run = (...extra: string[]) =>
      tool("docker", [
        "compose",
        "--project-directory",
        managedDir,
        "-f",
        file,
        ...extra,
        "config",
        "--format",
        "json",
      ]);
    const plain = run();
    assert.equal(plain.code, 0, plain.out);
    type Parsed = {
      services: Record<string, { volumes?: { target: string }[]; environment?: Record<string, string> }>;
    };
    // `compose up` starts what has no profile: the app, MinIO and Caddy.
    assert.deepEqual(Object.keys((JSON.parse(plain.out) as Parsed).services).sort(), [
      "app",
      "caddy",
      "minio",
    ]);
    const tools = JSON.parse(run("--profile", "tools").out) as Parsed;
    assert.deepEqual(Object.keys(tools.services).sort(), ["app", "caddy", "minio", "pgclient"]);
    for (const s of ["app", "pgclient"])
      assert.ok(
        tools.services[s].volumes?.some((v) => v.target === "/etc/chitram/db"),
        s,
      );
    assert.equal(tools.services.pgclient.environment?.PGSSLMODE, "verify-full");
    assert.equal(tools.services.app.environment?.PGSSLROOTCERT, "/etc/chitram/db/ca.crt");
  });

  it("objects in Spaces: docker compose config passes; no minio; the app depends on nothing it does not run", () => {
    for (const database of ["container", "managed"] as const) {
      const name = `compose-spaces-${database}`;
      const file = write(`${name}/compose.yaml`, renderCompose({ ...args, database, objects: "spaces" }));
      const env = {
        ...envArgs,
        ...(database === "managed" && { managedDatabase: { host: "private-db.example.com", port: 25060 } }),
        objectStore: {
          endpoint: "https://nyc3.digitaloceanspaces.com",
          bucket: "objects-a1b2c3d",
          accessKey: "DO00ABCDEFGHIJKLMNOP",
          secretKey: "abc+def/ghi=jklmnopqrstuvwxyz0123456789ABCD",
        },
      };
      write(`${name}/.env.production`, renderEnvFile(env), 0o600);
      const service = renderServiceEnvFiles(env);
      write(`${name}/${SERVICE_ENV_FILES.postgres}`, service.postgres, 0o600);
      write(`${name}/${SERVICE_ENV_FILES.minio}`, service.minio, 0o600);
      const r = tool("docker", [
        "compose",
        "--project-directory",
        path.join(tmp, name),
        "-f",
        file,
        "config",
        "--format",
        "json",
      ]);
      assert.equal(r.code, 0, r.out);
      const parsed = JSON.parse(r.out) as {
        services: Record<
          string,
          { depends_on?: Record<string, unknown>; environment?: Record<string, string> }
        >;
      };
      const want = database === "managed" ? ["app", "caddy"] : ["app", "caddy", "postgres"];
      assert.deepEqual(Object.keys(parsed.services).sort(), want);
      assert.deepEqual(
        Object.keys(parsed.services.app.depends_on ?? {}),
        database === "managed" ? [] : ["postgres"],
      );
      assert.equal(parsed.services.app.environment?.MINIO_SECRET_KEY, env.objectStore.secretKey);
    }
  });

  it("a compose file with a bad key fails the same check (the check can fail)", () => {
    const bad = YAML.stringify({ services: { app: { image: "x", publish: ["5432:5432"] } } });
    const r = tool("docker", ["compose", "-f", write("compose-bad/compose.yaml", bad), "config"]);
    assert.notEqual(r.code, 0);
  });
});

describe("validators: cloud-init, cron, sshd, keys", () => {
  it("the droplet's user data passes cloud-init schema", () => {
    const r = tool("cloud-init", ["schema", "--config-file", write("user-data", CLOUD_CONFIG)]);
    assert.equal(r.code, 0, r.out);
    const bad = tool("cloud-init", [
      "schema",
      "--config-file",
      write("user-data-bad", "#cloud-config\nssh_pwauth: [1, 2]\n"),
    ]);
    assert.notEqual(bad.code, 0, "cloud-init schema can fail");
  });

  it("the cron file has cron.d's user field, an absolute script path and a trailing newline", () => {
    const text = renderBackupCron({ schedule: "0 3 * * *", appDir: "/opt/chitram", alertAfterHours: 26 });
    assert.match(text, /^0 3 \* \* \* root \/opt\/chitram\/scripts\/backup\.sh /m);
    assert.ok(text.endsWith("\n"));
    assert.match(text, /^PATH=\/usr\/local\/sbin/m, "cron's default PATH has no /usr/local/bin");
  });

  it("sshd drop-in: keys only; root login closed or key-only as configured", () => {
    assert.match(
      renderSshdDropIn({ closeRootLogin: true }),
      /^PasswordAuthentication no$[\s\S]*^PermitRootLogin no$/m,
    );
    assert.match(renderSshdDropIn({ closeRootLogin: false }), /^PermitRootLogin prohibit-password$/m);
  });

  it("retro #3: ssh-keygen -y -P '' reads the deploy key output (under mocks, a stand-in ED25519 key) and refuses a passphrase key", async () => {
    const run = await runStack("staging", STAGING, "real");
    const keyFile = write("deploy_key", String(run.outputs.deployPrivateKey.value), 0o600);
    const ok = tool("ssh-keygen", ["-y", "-P", "", "-f", keyFile]);
    assert.equal(ok.code, 0, ok.out);
    assert.equal(
      ok.out.trim().split(" ").slice(0, 2).join(" "),
      String(run.outputs.deployPublicKey.value).trim().split(" ").slice(0, 2).join(" "),
    );
    assert.match(ok.out, /^ssh-ed25519 /);
    const locked = path.join(tmp, "locked_key");
    assert.equal(tool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "a passphrase", "-f", locked]).code, 0);
    const fail = tool("ssh-keygen", ["-y", "-P", "", "-f", locked]);
    assert.notEqual(fail.code, 0, "a passphrase-protected key must fail the same check");
  });
});
