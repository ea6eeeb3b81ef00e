// The registry login step's script (templates/steps/registryLogin.sh) run by bash here, against a
// stand-in `docker` that records how it was called: the credential reaches docker on stdin or in a
// scratch config, never as an argument; DigitalOcean's docker config is checked, then merged into
// the deploy user's config.json (0600) next to what was there; a refused login changes nothing.
// The real login against a registry that requires one is test/host/registry.test.ts.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { beforeEach, describe, it } from "node:test";
import { renderRegistryLogin } from "../templates/registryLogin";
import { renderStepScript } from "../templates/steps";

const DOCR = "registry.digitalocean.com";
const TOKEN = "dop_v1_0123456789abcdef0123456789abcdef";
const DOCR_AUTH = Buffer.from(`${TOKEN}:${TOKEN}`).toString("base64");
const dockerConfigJson = JSON.stringify({ auths: { [DOCR]: { auth: DOCR_AUTH } } });

// Records each call (argv, DOCKER_CONFIG, stdin); `docker login` succeeds when REFUSE is unset.
// In password mode a successful login stores the auth as Docker does.
const FAKE_DOCKER = `#!/usr/bin/env bash
stdin=$(cat)
printf '%s\\n' "argv: $*" "config: \${DOCKER_CONFIG:-}" "stdin: $stdin" >>"$CALLS"
[[ $1 == login ]] || exit 0
if [[ -n \${REFUSE:-} ]]; then
  echo 'Error response from daemon: Get "https://server/v2/": unauthorized: authentication required' >&2
  exit 1
fi
if [[ -z \${DOCKER_CONFIG:-} ]]; then
  mkdir -p "$HOME/.docker"
  printf '{"auths":{"%s":{"auth":"x"}}}' "\${!#}" >"$HOME/.docker/config.json"
fi
echo "Login Succeeded"
`;

describe("registry login script", () => {
  let home: string;
  let calls: string;
  let bin: string;

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-login-"));
    bin = path.join(home, "bin");
    calls = path.join(home, "calls");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "docker"), FAKE_DOCKER, { mode: 0o755 });
    fs.writeFileSync(calls, "");
  });

  function login(mode: "password" | "dockerconfig", server: string, stdin: string, refuse = false) {
    const script = renderStepScript("registryLogin", { REGISTRY_SERVER: server, LOGIN_MODE: mode });
    const env: NodeJS.ProcessEnv = { PATH: `${bin}:${process.env.PATH}`, HOME: home, CALLS: calls };
    if (refuse) env.REFUSE = "1";
    const r = spawnSync("bash", ["-c", script], { input: stdin, env, encoding: "utf8" });
    return { code: r.status, stderr: r.stderr, calls: fs.readFileSync(calls, "utf8") };
  }
  const configFile = () => path.join(home, ".docker", "config.json");
  const argvLines = (c: string) => c.split("\n").filter((l) => l.startsWith("argv: "));

  it("password: docker login gets the user as an argument and the password on stdin only", () => {
    const password = "pw-Secret-Value-1234";
    const r = login("password", "ghcr.io", renderRegistryLogin({ username: "example-bot", password }));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(argvLines(r.calls), ["argv: login --username example-bot --password-stdin ghcr.io"]);
    assert.match(r.calls, new RegExp(`^stdin: ${password}$`, "m"));
    assert.equal(fs.statSync(configFile()).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(configFile())).mode & 0o777, 0o700);
  });

  it("dockerconfig: checked from a scratch config with no credential argument, then merged next to the other entries, 0600", () => {
    fs.mkdirSync(path.join(home, ".docker"), { mode: 0o755 });
    fs.writeFileSync(
      configFile(),
      JSON.stringify({ auths: { "ghcr.io": { auth: "b3RoZXI=" } }, psFormat: "table" }),
      { mode: 0o644 },
    );
    const r = login("dockerconfig", DOCR, dockerConfigJson);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(argvLines(r.calls), [`argv: login ${DOCR}`]);
    assert.match(r.calls, /^config: \/tmp\/.+$/m, "logged in from a scratch DOCKER_CONFIG");
    assert.ok(!argvLines(r.calls).join("\n").includes(TOKEN));
    const merged = JSON.parse(fs.readFileSync(configFile(), "utf8")) as {
      auths: Record<string, { auth: string }>;
      psFormat: string;
    };
    assert.deepEqual(Object.keys(merged.auths).sort(), ["ghcr.io", DOCR]);
    assert.equal(merged.auths[DOCR].auth, DOCR_AUTH);
    assert.equal(merged.psFormat, "table");
    assert.equal(fs.statSync(configFile()).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(configFile())).mode & 0o777, 0o700);
  });

  it("a refused login fails with the registry's message and leaves the stored config as it was", () => {
    fs.mkdirSync(path.join(home, ".docker"));
    const before = JSON.stringify({ auths: { [DOCR]: { auth: "b2xkOm9sZA==" } } });
    fs.writeFileSync(configFile(), before, { mode: 0o600 });
    for (const [mode, stdin] of [
      ["dockerconfig", dockerConfigJson],
      ["password", renderRegistryLogin({ username: "u", password: "p" })],
    ] as const) {
      const r = login(mode, DOCR, stdin, true);
      assert.equal(r.code, 1, mode);
      assert.match(r.stderr, new RegExp(`docker login to ${DOCR} failed; .*running version is untouched`));
      assert.match(r.stderr, /unauthorized: authentication required/);
      assert.equal(fs.readFileSync(configFile(), "utf8"), before, mode);
    }
  });

  it("stdin that is not a docker config for the server, or no credential at all, stops before docker runs", () => {
    const wrongServer = JSON.stringify({ auths: { "ghcr.io": { auth: "eDp5" } } });
    for (const stdin of ["", "not json", wrongServer]) {
      const r = login("dockerconfig", DOCR, stdin);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /is not a Docker config.json with an auth for registry\.digitalocean\.com/);
    }
    const r = login("password", "ghcr.io", "user-only\n");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /stdin holds no user name and password/);
    assert.equal(argvLines(fs.readFileSync(calls, "utf8")).length, 0, "docker never ran");
  });
});
