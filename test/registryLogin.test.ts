// The registry login and logout scripts (host/steps/registryLogin.sh, registryLogout.sh) run
// by bash here, against a stand-in `docker` that records how it was called: no part of the
// credential is ever an argument (Docker checks it from a scratch config); the entry received is
// then merged into the deploy user's config.json (0600) next to what was there; a refused login,
// or a config where Docker would ignore the entry, changes nothing.
// The real login against a registry that requires one is test/engine/registry.test.ts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeEach, describe, it } from "node:test";
import { dockerAuthKey, renderRegistryLogin } from "../render/registryLogin";
import { renderStepScript } from "../remote/script";
import { scratchDir } from "./support";

const DOCR = "registry.digitalocean.com";
const TOKEN = "dop_v1_0123456789abcdef0123456789abcdef";
const DOCR_AUTH = Buffer.from(`${TOKEN}:${TOKEN}`).toString("base64");
const dockerConfigJson = JSON.stringify({ auths: { [DOCR]: { auth: DOCR_AUTH } } });
const USER = "example-bot";
const PASSWORD = "pw-Secret-Value-1234";

// Records each call (argv, DOCKER_CONFIG, the config it read, stdin). `docker login` succeeds when
// REFUSE is unset and then rewrites its config, as Docker does; `docker logout` fails with
// LOGOUT_FAILS set.
const FAKE_DOCKER = `#!/usr/bin/env bash
stdin=$(cat)
dir=\${DOCKER_CONFIG:-$HOME/.docker}
printf '%s\\n' "argv: $*" "config: \${DOCKER_CONFIG:-}" "read: $(cat "$dir/config.json" 2>/dev/null)" "stdin: $stdin" >>"$CALLS"
if [[ $1 == logout ]]; then
  [[ -z \${LOGOUT_FAILS:-} ]] || { echo 'Cannot connect to the Docker daemon' >&2; exit 1; }
  echo "Removing login credentials for $2"
  exit 0
fi
[[ $1 == login ]] || exit 0
if [[ -n \${REFUSE:-} ]]; then
  echo 'Error response from daemon: Get "https://server/v2/": unauthorized: authentication required' >&2
  exit 1
fi
printf '{"auths":{"%s":{"auth":"rewritten-by-docker"}}}' "$2" >"$dir/config.json"
echo "Login Succeeded"
`;

describe("registry login script", () => {
  let home: string;
  let calls: string;
  let bin: string;

  beforeEach(() => {
    home = scratchDir("chitram-login-");
    bin = path.join(home, "bin");
    calls = path.join(home, "calls");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "docker"), FAKE_DOCKER, { mode: 0o755 });
    fs.writeFileSync(calls, "");
  });

  function run(
    script: "registryLogin" | "registryLogout",
    server: string,
    stdin: string,
    env: NodeJS.ProcessEnv = {},
  ) {
    const text = renderStepScript(script, { REGISTRY_SERVER: server, AUTH_KEY: dockerAuthKey(server) });
    const r = spawnSync("bash", ["-c", text], {
      input: stdin,
      env: { PATH: `${bin}:${process.env.PATH}`, HOME: home, CALLS: calls, ...env },
      encoding: "utf8",
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, calls: fs.readFileSync(calls, "utf8") };
  }
  const login = (server: string, stdin: string, refuse = false) =>
    run("registryLogin", server, stdin, refuse ? { REFUSE: "1" } : {});
  const configFile = () => path.join(home, ".docker", "config.json");
  const stored = () => JSON.parse(fs.readFileSync(configFile(), "utf8")) as Record<string, unknown>;
  const argvLines = (c: string) => c.split("\n").filter((l) => l.startsWith("argv: "));
  const store = (config: unknown) => {
    fs.mkdirSync(path.dirname(configFile()), { recursive: true, mode: 0o755 });
    fs.writeFileSync(configFile(), JSON.stringify(config), { mode: 0o644 });
  };

  it("a user name and password: neither is an argument; Docker checks them from a scratch config, then they are merged, 0600", () => {
    const r = login(
      "ghcr.io",
      renderRegistryLogin({ server: "ghcr.io", username: USER, password: PASSWORD }),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(argvLines(r.calls), ["argv: login ghcr.io"]);
    assert.match(r.calls, /^config: \/tmp\/.+$/m, "logged in from a scratch DOCKER_CONFIG");
    assert.match(r.calls, /^stdin: $/m, "docker login reads nothing on stdin");
    const auth = Buffer.from(`${USER}:${PASSWORD}`).toString("base64");
    assert.match(
      r.calls,
      new RegExp(`^read: .*"auth":"${auth}"`, "m"),
      "docker read the credential from its config",
    );
    assert.deepEqual(stored(), { auths: { "ghcr.io": { auth } } });
    assert.equal(fs.statSync(configFile()).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(configFile())).mode & 0o777, 0o700);
  });

  it("DigitalOcean's docker config: merged as received next to the other entries and settings", () => {
    store({ auths: { "ghcr.io": { auth: "b3RoZXI=" } }, psFormat: "table" });
    const r = login(DOCR, dockerConfigJson);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(argvLines(r.calls), [`argv: login ${DOCR}`]);
    assert.ok(!r.calls.split("\n").some((l) => l.startsWith("argv: ") && l.includes(TOKEN)));
    assert.deepEqual(stored(), {
      auths: { "ghcr.io": { auth: "b3RoZXI=" }, [DOCR]: { auth: DOCR_AUTH } },
      psFormat: "table",
    });
    assert.equal(fs.statSync(configFile()).mode & 0o777, 0o600);
  });

  it("Docker Hub: the login is stored under the key its pulls look up", () => {
    const r = login(
      "docker.io",
      renderRegistryLogin({ server: "docker.io", username: USER, password: PASSWORD }),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(argvLines(r.calls), ["argv: login https://index.docker.io/v1/"]);
    assert.deepEqual(Object.keys(stored().auths as object), ["https://index.docker.io/v1/"]);
  });

  it("a refused login fails with the registry's message and leaves the stored config as it was", () => {
    const before = JSON.stringify({ auths: { [DOCR]: { auth: "b2xkOm9sZA==" } } });
    store(JSON.parse(before));
    for (const [server, stdin] of [
      [DOCR, dockerConfigJson],
      ["ghcr.io", renderRegistryLogin({ server: "ghcr.io", username: "u", password: "p" })],
    ] as const) {
      const r = login(server, stdin, true);
      assert.equal(r.code, 1, server);
      assert.match(r.stderr, new RegExp(`docker login to ${server} failed; .*running version is untouched`));
      assert.match(r.stderr, /unauthorized: authentication required/);
      assert.equal(fs.readFileSync(configFile(), "utf8"), before, server);
    }
  });

  it("a credential helper Docker would ask instead of auths stops the login, naming it, before docker runs", () => {
    for (const config of [{ credsStore: "desktop" }, { credHelpers: { [DOCR]: "doctl" } }]) {
      store(config);
      const r = login(DOCR, dockerConfigJson);
      assert.equal(r.code, 1, JSON.stringify(config));
      assert.match(r.stderr, /names the credential helper "(desktop|doctl)" for registry\.digitalocean\.com/);
      assert.deepEqual(stored(), config);
    }
    // A helper for another registry is no obstacle.
    store({ credHelpers: { "gcr.io": "gcloud" } });
    assert.equal(login(DOCR, dockerConfigJson).code, 0);
    assert.equal(argvLines(fs.readFileSync(calls, "utf8")).length, 1, "docker ran only for the last login");
  });

  it("stdin that is not a docker config with an auth for the server stops before docker runs", () => {
    const wrongServer = JSON.stringify({ auths: { "ghcr.io": { auth: "eDp5" } } });
    const noAuth = JSON.stringify({ auths: { [DOCR]: { identitytoken: "x" } } });
    for (const stdin of ["", "not json", wrongServer, noAuth]) {
      const r = login(DOCR, stdin);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /is not a Docker config.json with an auth for registry\.digitalocean\.com/);
    }
    assert.equal(argvLines(fs.readFileSync(calls, "utf8")).length, 0, "docker never ran");
  });

  it("the logout names the key the login stored; a failing logout warns and does not block a destroy", () => {
    const r = run("registryLogout", "docker.io", "");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(argvLines(r.calls), ["argv: logout https://index.docker.io/v1/"]);
    const failed = run("registryLogout", DOCR, "", { LOGOUT_FAILS: "1" });
    assert.equal(failed.code, 0, failed.stderr);
    assert.match(failed.stdout, /warning: docker logout registry\.digitalocean\.com failed .*by hand/);
  });
});

describe("registry login stdin", () => {
  it("is a Docker config with base64(user:password) under the server's key, and refuses what would not survive", () => {
    const json = JSON.parse(renderRegistryLogin({ server: "ghcr.io", username: USER, password: "a:b" })) as {
      auths: Record<string, { auth: string }>;
    };
    assert.equal(Buffer.from(json.auths["ghcr.io"].auth, "base64").toString(), `${USER}:a:b`);
    for (const [username, password] of [
      ["", "p"],
      ["u", ""],
      ["u:v", "p"],
      ["u", "p\nq"],
    ]) {
      assert.throws(
        () => renderRegistryLogin({ server: "ghcr.io", username, password }),
        /registry credential/,
      );
    }
  });
});
