// A private registry through the real engine: the app image lives only in a registry that requires
// a login (Debian's docker-registry with htpasswd users, TLS from a CA the test makes), started by
// the test on the droplet's own network. `pulumi up` logs the deploy user in with the credential
// on stdin, pulls the image and the app serves; a rotated registryPassword replaces the login step
// delete-first (the old login is logged out, then the new one fails with Docker's message, and
// nothing of the running version changes); a new credential logs in again and releases; the login
// replaced once more changes nothing; destroy logs out. No password is in any command, output,
// log or the state.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { EngineHost, engineHost } from "../../harness/engineHost";
import { liveApp } from "../../harness/probes";
import { AuthRegistry, startAuthRegistry } from "../../harness/registry";
import { Droplet, ExecResult, removeAllSandboxes } from "../../harness/sandbox";
import { SANDBOX_APP_IMAGE } from "../../hostContract";

const USER = "chitram-bot";
const PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
// A second account: the credential rotated to a new token.
const NEW_USER = "chitram-ci";
const NEW_PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
const WRONG_PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
const SECRETS = [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD];

/** The stand-in app pushed to the registry as `tag` from inside the droplet's engine, then removed there. */
async function pushApp(droplet: Droplet, registry: AuthRegistry, tag: string): Promise<string> {
  const image = `${registry.server}/chitram/app:${tag}`;
  const build = await droplet.exec(`DOCKER_BUILDKIT=0 docker build -q -t ${image} -`, {
    input: `FROM ${SANDBOX_APP_IMAGE}\nENV CHITRAM_SANDBOX_RELEASE=${tag}\n`,
  });
  assert.equal(build.code, 0, build.stderr);
  // root's own login, for the push only; the deploy user's Docker is what the stack logs in.
  const push = await droplet.exec(
    `docker login --username ${USER} --password-stdin ${registry.server} >/dev/null && ` +
      `docker push -q ${image} && docker logout ${registry.server} >/dev/null && docker rmi -f ${image}`,
    { input: `${PASSWORD}\n` },
  );
  assert.equal(push.code, 0, push.stderr);
  return image;
}

describe("engine: the app image from a private registry", () => {
  let h: EngineHost;
  let registry: AuthRegistry;
  let v1: string;
  let v2: string;
  /** Everything the CLI printed. */
  const printed: ExecResult[] = [];

  const up = async (args: string[] = [], check = true) => {
    const r = await h.stack.up(args, { check: false });
    printed.push(r);
    if (check && r.code !== 0) throw new Error(`pulumi up failed:\n${(r.stdout + r.stderr).slice(-4000)}`);
    return r;
  };
  const hasImage = async (image: string) =>
    (await h.droplet.exec(`docker image inspect ${image} >/dev/null 2>&1`)).code === 0;
  const dockerConfig = async () =>
    (
      await h.droplet.exec(
        "stat -c '%a %U' /home/chitram/.docker/config.json && cat /home/chitram/.docker/config.json",
      )
    ).stdout;
  const loggedIn = async () => (await dockerConfig()).includes(`"${registry.server}"`);

  before(async () => {
    await removeAllSandboxes();
    h = await engineHost("engine-registry", { config: { releaseTimeoutSeconds: "30" } });
    registry = await startAuthRegistry(h.droplet, { [USER]: PASSWORD, [NEW_USER]: NEW_PASSWORD });
    v1 = await pushApp(h.droplet, registry, "v1");
    v2 = await pushApp(h.droplet, registry, "v2");
    await h.stack.configure(
      { appImage: v1, registryServer: registry.server, registryUsername: USER },
      { registryPassword: PASSWORD },
    );
  });
  after(async () => {
    await registry?.stop();
    await h?.remove();
  });

  it("a first up: the deploy user logs in, the image only the registry holds is pulled and serves", async () => {
    assert.equal(await hasImage(v1), false, "the droplet's engine has no copy before the deploy");
    await up();
    assert.equal((await liveApp(h.droplet)).image, v1);
    // Docker's own place for it: the deploy user's ~/.docker/config.json, 0600; root is not logged in.
    const stored = await dockerConfig();
    assert.match(stored, /^600 chitram\n/);
    assert.ok(await loggedIn(), stored);
    const root = await h.droplet.exec(`grep -qs '${registry.server}' /root/.docker/config.json`);
    assert.notEqual(root.code, 0, "root holds no login to the registry");
    await up(["--expect-no-changes"]);
  });

  it("a rotated registryPassword that is wrong: logged out first, the login fails with Docker's message, nothing else runs", async () => {
    const was = await liveApp(h.droplet);
    await h.stack.configure({ appImage: v2 }, { registryPassword: WRONG_PASSWORD });
    const preview = await h.stack.previewJson();
    const login = preview.steps.filter((s) => s.urn.endsWith("::app-registry-login")).map((s) => s.op);
    assert.deepEqual(login, ["replace"]);
    const r = await up([], false);
    assert.notEqual(r.code, 0);
    const out = r.stdout + r.stderr;
    // deleteBeforeReplace: the old login's delete (the logout) runs before the new one's create
    const deleted = out.indexOf("app-registry-login deleting original");
    assert.ok(deleted >= 0, out.slice(-3000));
    assert.ok(deleted < out.indexOf("app-registry-login creating replacement"), "the logout ran first");
    assert.match(out, new RegExp(`docker login to ${registry.server} failed`));
    assert.match(out, /401 Unauthorized/);
    assert.match(out, /the running version is untouched/);
    assert.deepEqual(await liveApp(h.droplet), was);
    assert.equal(await hasImage(v2), false, "the release step did not run: the new image was never pulled");
    // The refused login stores nothing, so its absence is the logout's doing.
    assert.equal(await loggedIn(), false, "no stale login stays behind");
    assert.match(await registry.logs(), /authentication failure|invalid password/i);
  });

  it("a new credential: the failed login runs again, the release proceeds; replacing the login once more changes nothing", async () => {
    await h.stack.configure({ registryUsername: NEW_USER }, { registryPassword: NEW_PASSWORD });
    await up();
    assert.equal((await liveApp(h.droplet)).image, v2);
    await up(["--expect-no-changes"]);
    const stored = await dockerConfig();
    await up(["--replace", await h.urn("app-registry-login")]);
    assert.equal(await dockerConfig(), stored, "logging out and in again stores the same config");
    assert.equal((await liveApp(h.droplet)).image, v2);
    await up(["--expect-no-changes"]);
  });

  it("destroy logs the deploy user out", async () => {
    const r = await h.stack.pulumi(["destroy", "--yes"]);
    printed.push(r);
    assert.equal(await loggedIn(), false);
  });

  it("no password in any command, in what the CLI printed, or in the state", async () => {
    const text = [
      ...printed.map((r) => r.stdout + r.stderr),
      (await h.stack.pulumi(["stack", "history", "--json"])).stdout,
      await h.stack.exportState(),
    ].join("\n");
    assert.ok(text.includes("app-registry-login"), "the login step's output is among those scanned");
    for (const secret of SECRETS) assert.ok(!text.includes(secret), "a password appears in plain text");
    assert.ok(!(await h.droplet.exec("cat /var/log/auth.log 2>/dev/null; ps aux")).stdout.includes(PASSWORD));
  });
});
