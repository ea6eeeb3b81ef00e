// The upgrade of a stack deployed before the admin key existed, through the real engine and the
// real DigitalOcean provider: the program of the last commit before it (taken from this
// repository's history) deploys a protected stack to the local DigitalOcean API; this program
// upgrades it without replacing the droplet (its root was seeded with the old stack key, which
// becomes the admin key); then a droplet replaced on purpose comes up with that admin key.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalDoApi, startLocalDoApi } from "../../harness/doApi";
import { plannedChanges, PulumiStack } from "../../harness/pulumiCli";
import { get, request, waitHealthy } from "../../harness/probes";
import { buildImages, ensureDockerd, removeAllSandboxes, run } from "../../harness/sandbox";
import { SANDBOX_APP_IMAGE } from "../../hostContract";

const ROOT = path.resolve(__dirname, "..", "..");
/** The last commit before the admin key (527f59e): root seeded with the stack key, `stack-key`. */
const PRE_ADMIN_COMMIT = "b5f038ff9a783b9260e49646443d55fcd5eecb28";

type Json = Record<string, unknown>;
const addressOf = (droplet: Json) => (droplet.networks as { v4: { ip_address: string }[] }).v4[0].ip_address;

describe("cloud: a stack deployed before the admin key, upgraded by this program on the local DigitalOcean API", () => {
  const old = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-pre-admin-"));
  let api: LocalDoApi;
  let stack: PulumiStack;
  const only = () => {
    assert.equal(api.droplets().length, 1);
    const [droplet] = api.droplets();
    return { droplet, address: addressOf(droplet) };
  };

  before(async () => {
    const have = await run("git", ["-C", ROOT, "cat-file", "-e", `${PRE_ADMIN_COMMIT}^{commit}`], {
      check: false,
    });
    assert.equal(
      have.code,
      0,
      `commit ${PRE_ADMIN_COMMIT} is not in this clone: the upgrade test needs the repository's history (git fetch --unshallow)`,
    );
    await run("bash", ["-c", `git -C "$0" archive "$1" | tar -x -C "$2"`, ROOT, PRE_ADMIN_COMMIT, old]);
    // Its program runs with this checkout's SDKs: the engine here has their plugins, not the
    // newer ones that commit asked for.
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(old, "node_modules"));
    await ensureDockerd();
    await removeAllSandboxes();
    await buildImages();
    api = await startLocalDoApi();
    stack = await PulumiStack.create("prod", {
      env: { DIGITALOCEAN_TOKEN: api.token, DIGITALOCEAN_API_URL: api.url },
      program: old,
    });
    await stack.configure({ appImage: SANDBOX_APP_IMAGE, region: "nyc3", protectData: "true" });
  });
  after(async () => {
    try {
      stack?.remove();
    } finally {
      await api?.close();
      fs.rmSync(old, { recursive: true, force: true });
    }
  });

  it("the older program deploys a protected stack; the app holds an object", async () => {
    await stack.up([], { timeoutMs: 20 * 60_000 });
    const { address } = only();
    await waitHealthy(80, 60_000, address);
    const put = await request(
      80,
      "PUT",
      "/api/objects/kept",
      "written by the older version",
      10_000,
      address,
    );
    assert.equal(put.status, 201, put.body);
  });

  it("this program upgrades it in place: the droplet and its SSH key stay, the old stack key becomes the admin key, and a new stack key is installed", async () => {
    const { droplet } = only();
    stack.runProgram(ROOT);
    const plan = plannedChanges(await stack.previewJson());
    assert.equal(plan["chitram-droplet"], undefined, JSON.stringify(plan));
    assert.deepEqual(plan["chitram-ssh-key"], ["update"], "only the key's name changes");
    assert.equal(plan["admin-key"], undefined, "the admin key is the old stack key, unchanged");
    assert.deepEqual(plan["steps-key"], ["create"]);
    const from = api.requests.length;
    await stack.up([], { timeoutMs: 20 * 60_000 });
    // Of the droplet and its key, only the key's new name is written: nothing deleted or made.
    const writes = api.requests
      .slice(from)
      .filter((r) => r.method !== "GET" && /^\/v2\/(droplets|account\/keys)/.test(r.path))
      .map((r) => `${r.method} ${r.path}`);
    assert.equal(writes.length, 1, writes.join("\n"));
    assert.match(writes[0], /^PUT \/v2\/account\/keys\/\d+$/);
    const { droplet: same, address } = only();
    assert.equal(same.id, droplet.id, "the droplet was replaced");
    const kept = await get(80, "/api/objects/kept", 10_000, address);
    assert.equal(kept.status, 200, kept.body);
    assert.equal(kept.body, "written by the older version");
    await stack.up(["--expect-no-changes"]);
  });

  it("a droplet replaced after the upgrade is seeded with the admin key, and every step runs on it", async () => {
    const { droplet } = only();
    await stack.configure({ protectData: "false", region: "fra1" });
    await stack.up([], { timeoutMs: 20 * 60_000 });
    const { droplet: now, address } = only();
    assert.notEqual(now.id, droplet.id);
    await waitHealthy(80, 60_000, address);
    await stack.up(["--expect-no-changes"]);
  });
});
