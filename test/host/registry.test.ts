// A private registry on a real host: the app image lives only in a registry that requires a login
// (Debian's docker-registry with htpasswd users, TLS from a CA the test makes), started by the test
// on the droplet's own network. The deploy user logs in with the credential on stdin, the release
// step pulls the image and the app serves; a new credential first logs the old one out, and a
// wrong one then fails the login step with Docker's message and changes nothing of the running
// version; a new credential logs in again, and a login run once more changes nothing.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { apply, ApplyResult } from "../../harness/engine";
import { Deployment, liveApp, newDeployment, restep } from "../../harness/hostKit";
import { AuthRegistry, startAuthRegistry } from "../../harness/registry";
import { StepError } from "../../harness/replay";
import { Droplet, ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { ProgramStep } from "../../harness/steps";
import { SANDBOX_APP_IMAGE } from "../../hostContract";

const USER = "chitram-bot";
const PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
// A second account: the credential rotated to a new token.
const NEW_USER = "chitram-ci";
const NEW_PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
const WRONG_PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
const SECRETS = [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD];

const logged: string[] = [];
const log = (line: string) => {
  logged.push(line);
  console.log(`  ${line}`);
};

/** The stand-in app pushed to the registry as `tag` from inside the droplet's engine, then removed there. */
async function pushApp(droplet: Droplet, registry: AuthRegistry, tag: string, env: string): Promise<string> {
  const image = `${registry.server}/chitram/app:${tag}`;
  const build = await droplet.exec(`DOCKER_BUILDKIT=0 docker build -q -t ${image} -`, {
    input: `FROM ${SANDBOX_APP_IMAGE}\nENV CHITRAM_SANDBOX_RELEASE=${env}\n`,
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

describe("real host: the app image from a private registry", () => {
  let d: Deployment;
  let registry: AuthRegistry;
  let config: Record<string, string>;
  let v1: string;
  let v2: string;
  const everything: (ProgramStep[] | ApplyResult | StepError)[] = [];

  const live = () => liveApp(d.droplet);

  const hasImage = async (image: string) =>
    (await d.droplet.exec(`docker image inspect ${image} >/dev/null 2>&1`)).code === 0;
  const dockerConfig = async () =>
    (
      await d.droplet.exec(
        "stat -c '%a %U' /home/chitram/.docker/config.json && cat /home/chitram/.docker/config.json",
      )
    ).stdout;

  async function up(
    change: Record<string, string>,
    force?: (s: ProgramStep) => boolean,
  ): Promise<ApplyResult> {
    config = { ...config, ...change };
    const steps = await restep(d, config);
    everything.push(steps);
    try {
      const result = await apply(steps, d.state, { log, force });
      everything.push(result);
      return result;
    } catch (e) {
      if (e instanceof StepError) everything.push(e);
      throw e;
    }
  }

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    d = await newDeployment("sandbox-registry", {
      config: async (droplet) => {
        registry = await startAuthRegistry(droplet, { [USER]: PASSWORD, [NEW_USER]: NEW_PASSWORD });
        v1 = await pushApp(droplet, registry, "v1", "v1");
        v2 = await pushApp(droplet, registry, "v2", "v2");
        return {
          appImage: v1,
          registryServer: registry.server,
          registryUsername: USER,
          registryPassword: PASSWORD,
        };
      },
    });
    config = d.config;
  });
  after(async () => {
    await registry?.stop();
    await d?.droplet.stop();
  });

  it("a first deploy: the deploy user logs in, the image only the registry holds is pulled and serves", async () => {
    assert.equal(await hasImage(v1), false, "the droplet's engine has no copy before the deploy");
    everything.push(d.steps);
    const result = await apply(d.steps, d.state, { log });
    everything.push(result);
    const names = result.ran.map((s) => s.name);
    assert.ok(names.indexOf("app-registry-login") < names.indexOf("app-compose-up"));
    assert.equal((await live()).image, v1);
    // Docker's own place for it: the deploy user's ~/.docker/config.json, 0600; root is not logged in.
    const stored = await dockerConfig();
    assert.match(stored, /^600 chitram\n/);
    assert.ok(stored.includes(`"${registry.server}"`), stored);
    const root = await d.droplet.exec(`grep -qs '${registry.server}' /root/.docker/config.json`);
    assert.notEqual(root.code, 0, "root holds no login to the registry");
  });

  it("a wrong password: the old login is logged out, the new one fails with Docker's message; compose-up never runs, the live version is untouched", async () => {
    const was = await live();
    assert.ok((await dockerConfig()).includes(`"${registry.server}"`), "logged in before");
    await assert.rejects(up({ appImage: v2, registryPassword: WRONG_PASSWORD }), (err: unknown) => {
      assert.ok(err instanceof StepError, String(err));
      assert.equal(err.step, "app-registry-login");
      // What users read (docs/RUNBOOK.md quotes it); the secret scan below covers it too.
      log(`refused: ${err.stderr.trim()}`);
      assert.match(err.stderr, new RegExp(`docker login to ${registry.server} failed`));
      assert.match(err.stderr, /401 Unauthorized/);
      assert.match(err.stderr, /the running version is untouched/);
      return true;
    });
    assert.deepEqual(await live(), was);
    assert.equal(await hasImage(v2), false, "the release step did not run: the new image was never pulled");
    // The refused login stores nothing, so its absence is the logout's doing.
    assert.ok(!(await dockerConfig()).includes(`"${registry.server}"`), "no stale login stays behind");
    assert.match(await registry.logs(), /authentication failure|invalid password/i);
  });

  it("a new credential: the failed login step runs again and succeeds, and the release proceeds", async () => {
    const result = await up({ registryUsername: NEW_USER, registryPassword: NEW_PASSWORD });
    const login = result.ran.find((s) => s.name === "app-registry-login");
    assert.ok(login, `the login step did not run: ${result.ran.map((s) => s.name).join(", ")}`);
    assert.ok(result.ran.some((s) => s.name === "app-compose-up"));
    assert.equal((await live()).image, v2);
    assert.equal((await up({})).ran.length, 0, "a second up changes nothing");
    // The login run once more (as on a replaced step's retry): the same stored config, nothing else runs.
    const stored = await dockerConfig();
    const again = await up({}, (s) => s.name === "app-registry-login");
    assert.deepEqual(
      again.ran.map((s) => s.name),
      ["app-registry-login"],
    );
    assert.equal(await dockerConfig(), stored, "logging in twice stores the same config");
    assert.equal((await live()).image, v2);
  });

  it("no password appears in any step's command, in what the harness logged, or in any step's output", () => {
    const text = JSON.stringify(
      everything.map((x) =>
        x instanceof StepError
          ? { message: x.message, stdout: x.stdout, stderr: x.stderr }
          : Array.isArray(x)
            ? x.map((s) => ({ create: s.create, delete: s.delete }))
            : x.ran.map((s) => ({ stdout: s.stdout, stderr: s.stderr })),
      ),
    );
    assert.ok(text.includes("docker login"), "the login step's command is among those scanned");
    for (const secret of SECRETS) {
      assert.ok(!text.includes(secret), "a password appears in a command or an output");
      assert.ok(!logged.join("\n").includes(secret), "a password appears in the harness log");
    }
    // The login step's stdin is the one place it travels.
    for (const steps of everything.filter((x): x is ProgramStep[] => Array.isArray(x))) {
      for (const s of steps.filter((s) => s.name !== "app-registry-login")) {
        for (const secret of SECRETS) assert.ok(!(s.stdin ?? "").includes(secret), s.name);
      }
    }
  });
});
