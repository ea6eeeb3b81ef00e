// `target: digitalocean` through the real engine and the real DigitalOcean provider, against the
// local DigitalOcean API (harness/doApi.ts), whose droplets are sandbox droplets: a staging stack
// from nothing to the app's /health, a re-run that changes nothing, and destroy, which leaves no
// resource in the API and no container.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { dropletAddress, LocalDoApi, startLocalDoApi } from "../../harness/doApi";
import { plannedChanges, PulumiStack, stateResources } from "../../harness/pulumiCli";
import { REVOKE_PATH } from "../../harness/doApi/registries";
import { get, liveApp, waitHealthy } from "../../harness/probes";
import { buildImages, ensureDockerd, removeAllSandboxes, run } from "../../harness/sandbox";
import { SANDBOX_APP_IMAGE } from "../../hostContract";
import { destroyLeavesNothing } from "./support";
import { gate } from "../../tools/previewGate";

const log = (line: string) => console.log(`  ${line}`);
/** The droplet and what belongs to it alone. */
const DROPLET = ["chitram-droplet", "chitram-firewall", "chitram-ssh-key", "chitram-project"];
/** The container registry on the account; the app image is pushed there. */
const REGISTRY = "chitram-sbx";

describe("cloud: a staging stack on the local DigitalOcean API, from nothing to destroy", () => {
  let api: LocalDoApi;
  let stack: PulumiStack;

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    await buildImages();
    api = await startLocalDoApi({ registries: [REGISTRY] });
    stack = await PulumiStack.create("staging", { env: api.env });
    // Pulumi.staging.yaml, with an app image the sandbox droplets hold
    await stack.configure({ appImage: SANDBOX_APP_IMAGE, region: "nyc3", protectData: "false" });
  });
  after(async () => {
    try {
      stack?.remove();
    } finally {
      await api?.close();
    }
  });

  it("up from nothing: the droplet, its firewall, SSH key and project through the provider, and the app healthy at the droplet's address", async () => {
    const started = Date.now();
    await stack.up([], { timeoutMs: 20 * 60_000 });
    assert.deepEqual(
      api.requests.filter((r) => r.status >= 400).map((r) => `${r.method} ${r.path} ${r.status}`),
      [],
      "a call the local API refused",
    );
    log(`first up on the local DigitalOcean API: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const [droplet] = api.droplets();
    assert.equal(api.droplets().length, 1);
    assert.equal(droplet.name, "chitram-staging");
    assert.equal((droplet.size as { slug: string }).slug, "s-2vcpu-2gb");
    assert.equal((droplet.region as { slug: string }).slug, "nyc3");
    assert.equal((droplet.image as { slug: string }).slug, "ubuntu-22-04-x64");
    assert.equal((droplet.requested as { monitoring: boolean }).monitoring, true);
    assert.equal(api.holds().sshKeys, 1);
    const [fw] = api.firewalls();
    assert.deepEqual(fw.droplet_ids, [droplet.id]);
    const inbound = (fw.inbound_rules as { ports: string; sources: { addresses?: string[] } }[]).map(
      (r) => `${r.ports} ${(r.sources.addresses ?? []).join(",")}`,
    );
    assert.deepEqual(inbound.sort(), ["22 0.0.0.0/0,::/0", "443 0.0.0.0/0,::/0", "80 0.0.0.0/0,::/0"]);
    assert.deepEqual(api.projectResources("chitram-staging"), [`do:droplet:${String(droplet.id)}`]);
    const address = dropletAddress(droplet);
    const outputs = await stack.outputs();
    assert.equal(outputs.publicIp, address);
    const health = await get(80, "/health", 10_000, address);
    assert.equal(health.status, 200, health.body);
  });

  it("a refresh finds what the provider created as it left it (reads only), and a second up changes nothing", async () => {
    const before = api.requests.length;
    await stack.pulumi(["refresh", "--yes", "--expect-no-changes"]);
    const calls = api.requests.slice(before);
    assert.ok(calls.length >= 4, `the refresh read ${calls.length} things`);
    assert.deepEqual(
      calls
        .filter((r) => r.method !== "GET" || r.status !== 200)
        .map((r) => `${r.method} ${r.path} ${r.status}`),
      [],
    );
    await stack.up(["--expect-no-changes"]);
  });

  it("app-level changes never touch the droplet", async () => {
    const droplet = DROPLET;
    await stack.configure({ backupSchedule: "30 4 * * *" });
    const plan = plannedChanges(await stack.previewJson());
    assert.ok(plan["app-backup-cron"], JSON.stringify(plan));
    for (const name of droplet) assert.equal(plan[name], undefined, `${name}: ${JSON.stringify(plan)}`);
    await stack.up();
    await stack.up(["--expect-no-changes"]);
  });

  it("the app image from DigitalOcean's container registry: the provider obtains read-only docker credentials, the deploy user logs in with them and the release pulls the image; the droplet is untouched", async () => {
    const [droplet] = api.droplets();
    const sandbox = api.sandbox(Number(droplet.id))!;
    const image = await api.registry!.push(sandbox, `${REGISTRY}/chitram`, "v2");
    const held = await sandbox.exec(`docker image inspect ${image} >/dev/null 2>&1`);
    assert.notEqual(held.code, 0, "the droplet's engine has a copy before the deploy");
    await stack.configure({ appImage: image, registryServer: "registry.digitalocean.com" });
    const plan = plannedChanges(await stack.previewJson());
    assert.deepEqual(plan["app-registry-credentials"], ["create"], JSON.stringify(plan));
    assert.deepEqual(plan["app-registry-login"], ["create"], JSON.stringify(plan));
    for (const name of DROPLET) assert.equal(plan[name], undefined, `${name}: ${JSON.stringify(plan)}`);
    const from = api.requests.length;
    await stack.up();
    assert.deepEqual(
      api.requests
        .slice(from)
        .filter((r) => r.path.startsWith("/v2/registries"))
        .map((r) => `${r.method} ${r.path} ${r.status}`),
      [`GET /v2/registries/${REGISTRY} 200`, `GET /v2/registries/${REGISTRY}/docker-credentials 200`],
    );
    const tokens = api.registryTokens();
    assert.deepEqual(
      tokens.map((t) => [t.registry, t.readWrite]),
      [[REGISTRY, false]],
    );
    assert.equal((await liveApp(sandbox)).image, image);
    assert.equal(await api.registry!.authorizes(tokens[0].token, tokens[0].token), true);
    const config = await sandbox.exec("cat /home/chitram/.docker/config.json");
    assert.ok(config.stdout.includes('"registry.digitalocean.com"'), config.stdout);
    await stack.up(["--expect-no-changes"]);
    // The token is a secret: nowhere in the state or the outputs in plain text.
    const state = await stack.exportState();
    assert.ok(state.includes("app-registry-credentials"));
    assert.ok(!state.includes(tokens[0].token), "the registry token is in the state in plain text");
    assert.ok(!state.includes(Buffer.from(`${tokens[0].token}:`).toString("base64").slice(0, 40)));
  });

  it("RUNBOOK's replacement of a revoked registry credential: a new token, the old one revoked at DigitalOcean's fixed address, the deploy user logged in again, the app untouched", async () => {
    const [old] = api.registryTokens();
    const sandbox = api.sandbox(Number(api.droplets()[0].id))!;
    const live = await liveApp(sandbox);
    const urn = (await stateResources(stack)).find((r) => r.urn.endsWith("::app-registry-credentials"))!.urn;
    assert.match(
      urn,
      /\$digitalocean:index\/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials::app-registry-credentials$/,
    );
    const from = api.requests.length;
    await stack.up(["--replace", urn]);
    assert.deepEqual(
      api.requests
        .slice(from)
        .filter((r) => r.path.includes("docker-credentials") || r.path.startsWith("https://"))
        .map((r) => `${r.method} ${r.path} ${r.status}`),
      [`GET /v2/registries/${REGISTRY}/docker-credentials 200`, `POST ${REVOKE_PATH} 200`],
    );
    const [now] = api.registryTokens();
    assert.equal(api.registryTokens().length, 1);
    assert.notEqual(now.token, old.token);
    assert.equal(await api.registry!.authorizes(old.token, old.token), false, "the old token still logs in");
    const config = await sandbox.exec("cat /home/chitram/.docker/config.json");
    assert.ok(
      config.stdout.includes(Buffer.from(`${now.token}:`).toString("base64").slice(0, 40)),
      "the deploy user holds the new token",
    );
    assert.deepEqual(await liveApp(sandbox), live);
    await stack.up(["--expect-no-changes"]);
  });

  it("a size change is an update in place: the provider powers the droplet off, resizes it and powers it on, and the app comes back by itself", async () => {
    const [droplet] = api.droplets();
    await stack.configure({ size: "s-2vcpu-4gb" });
    assert.deepEqual(plannedChanges(await stack.previewJson())["chitram-droplet"], ["update"]);
    const from = api.requests.length;
    const started = Date.now();
    await stack.up([], { timeoutMs: 10 * 60_000 });
    log(`resize up (power off, resize, power on): ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const actions = api.requests
      .slice(from)
      .filter((r) => r.method === "POST" && r.path === `/v2/droplets/${String(droplet.id)}/actions`)
      .map((r) => `${String((r.body as { type: string }).type)} ${r.status}`);
    assert.deepEqual(actions, ["power_off 201", "resize 201", "power_on 201"]);
    const [now] = api.droplets();
    assert.equal(now.id, droplet.id, "the droplet was replaced");
    assert.equal((now.size as { slug: string }).slug, "s-2vcpu-4gb");
    assert.equal(now.memory, 4096);
    const address = dropletAddress(now);
    // Nothing of the stack ran after the power-on: Docker's restart policies brought the app back.
    await waitHealthy(80, 120_000, address);
    await stack.up(["--expect-no-changes"]);
  });

  it("a region change: protectData stops it before anything is created, the preview gate refuses the plan, and the documented override replaces the droplet, which then serves", async () => {
    const [old] = api.droplets();
    await stack.configure({ protectData: "true" });
    await stack.up();
    await stack.configure({ region: "fra1" });
    const before = api.requests.length;
    for (const command of [["preview"], ["up", "--yes", "--skip-preview"]]) {
      const stopped = await stack.pulumi(command, { check: false });
      assert.notEqual(stopped.code, 0, `${command[0]} went through`);
      assert.match(
        stopped.stdout + stopped.stderr,
        /unable to replace resource "\S+::chitram-droplet"\s+as it is currently marked for protection/,
      );
    }
    assert.deepEqual(
      api.requests.slice(before).filter((r) => r.method !== "GET"),
      [],
      "something was created, changed or deleted",
    );
    assert.deepEqual(
      api.droplets().map((d) => d.id),
      [old.id],
    );

    // docs/RUNBOOK.md, "Replacing the droplet or the volume": protectData false; the deploy
    // workflow's preview gate still refuses the plan unless the deploy is started with allow_replace.
    await stack.configure({ protectData: "false" });
    const plan = await stack.previewJson();
    const moved = plannedChanges(plan)["chitram-droplet"] ?? [];
    assert.ok(
      moved.some((op) => op.includes("replace")),
      JSON.stringify(moved),
    );
    const refused = gate(JSON.stringify(plan), false);
    assert.equal(refused.code, 1);
    assert.match(
      refused.message,
      /replace urn:pulumi:staging::chitram::\S+::chitram-droplet \(because of: region\)/,
    );
    assert.equal(gate(JSON.stringify(plan), true).code, 0);
    const from = api.requests.length;
    const started = Date.now();
    await stack.up([], { timeoutMs: 20 * 60_000 });
    log(
      `the replacement up (old droplet deleted, new one deployed): ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    await api.settled();
    // The provider deletes the old droplet before it creates the new one (the bridge's rule for a
    // resource whose name stays the same): the app is down until the new droplet is deployed.
    const order = api.requests
      .slice(from)
      .filter((r) => r.path.startsWith("/v2/droplets") && r.method !== "GET")
      .map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(order, [`DELETE /v2/droplets/${String(old.id)}`, "POST /v2/droplets"]);
    // The project's update then hands the deleted droplet's URN to the default project: this API
    // takes it (docs/DEPLOYING.md, "The local DigitalOcean API", on this assumption).
    const handedBack = api.requests
      .slice(from)
      .find(
        (r) =>
          r.method === "POST" &&
          r.path.endsWith("/resources") &&
          JSON.stringify(r.body).includes(`do:droplet:${String(old.id)}`),
      );
    assert.equal(handedBack?.status, 200, "the old droplet's URN was not handed back");
    const [now] = api.droplets();
    assert.equal(api.droplets().length, 1);
    assert.notEqual(now.id, old.id);
    assert.equal((now.region as { slug: string }).slug, "fra1");
    const address = dropletAddress(now);
    assert.equal((await stack.outputs()).publicIp, address);
    assert.equal((await get(80, "/health", 10_000, address)).status, 200);
    assert.deepEqual(api.firewalls()[0].droplet_ids, [now.id]);
    assert.deepEqual(api.projectResources("chitram-staging"), [`do:droplet:${String(now.id)}`]);
    await stack.up(["--expect-no-changes"]);
  });

  it("with protectData (prod's setting) destroy stops before anything is deleted, and says how to go on", async () => {
    await stack.configure({ protectData: "true" });
    await stack.up();
    const state = (await stateResources(stack)).map((r) => r.urn).sort();
    const sshd = await api
      .sandbox(Number(api.droplets()[0].id))!
      .exec("cat /home/chitram/.ssh/authorized_keys");
    const before = api.requests.length;
    const stopped = await stack.pulumi(["destroy", "--yes", "--skip-preview"], { check: false });
    assert.notEqual(stopped.code, 0);
    assert.match(stopped.stdout + stopped.stderr, /destroy-guard[\s\S]*is protected/);
    assert.match(stopped.stdout + stopped.stderr, /pulumi state unprotect/);
    assert.deepEqual(
      api.requests.slice(before).filter((r) => r.method !== "GET"),
      [],
      "the destroy changed something in the API",
    );
    assert.deepEqual(
      (await stateResources(stack)).map((r) => r.urn).sort(),
      state,
      "the state lost resources",
    );
    assert.equal(
      (await api.sandbox(Number(api.droplets()[0].id))!.exec("cat /home/chitram/.ssh/authorized_keys"))
        .stdout,
      sshd.stdout,
      "a step's delete ran on the host",
    );
    await stack.configure({ protectData: "false" });
    await stack.up();
    await stack.up(["--expect-no-changes"]);
  });

  it("destroy exits 0, revoking the registry token at DigitalOcean's fixed address; the API holds nothing of the stack and no droplet container is left", async () => {
    const from = api.requests.length;
    const [token] = api.registryTokens();
    await destroyLeavesNothing(stack, api);
    assert.deepEqual(
      api.requests
        .slice(from)
        .filter((r) => r.path.startsWith("https://"))
        .map((r) => `${r.method} ${r.path} ${r.status}`),
      [`POST ${REVOKE_PATH} 200`],
    );
    assert.deepEqual(api.registryTokens(), []);
    assert.equal(
      await api.registry!.authorizes(token.token, token.token),
      false,
      "the revoked token still logs in",
    );
    for (const [kind, list] of [
      ["container", ["ps", "-a", "--format", "{{.Names}}"]],
      ["network", ["network", "ls", "--format", "{{.Name}}"]],
    ] as const) {
      const left = (await run("docker", [...list, "--filter", `name=${api.containerPrefix}`])).stdout
        .split("\n")
        .filter((n) => n !== "" && !n.startsWith(`${api.containerPrefix}registry`));
      assert.deepEqual(left, [], `a droplet ${kind} is left`);
    }
  });
});
