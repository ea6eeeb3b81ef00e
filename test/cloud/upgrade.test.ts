// Upgrades of stacks deployed by older versions of this program, through the real engine and the
// real DigitalOcean provider: each older commit's program (taken from this repository's history)
// deploys a protected stack to the local DigitalOcean API, and this program upgrades it with the
// droplet and its data kept, every step after the first contact pinning the host's key.
// - the last commit before the admin key: its root was seeded with the stack key ("stack-key"),
//   which becomes the admin key; its first step recorded no host key; a droplet replaced later
//   comes up with the admin key;
// - the previous release (stop 27): its stack key ("stack-key" beside "admin-key") starts anew as
//   "steps-key", a rotation.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { dropletAddress, LocalDoApi, startLocalDoApi } from "../../harness/doApi";
import { plannedChanges, PulumiStack, StateExport } from "../../harness/pulumiCli";
import { get, request, waitHealthy } from "../../harness/probes";
import { buildImages, ensureDockerd, removeAllSandboxes, run } from "../../harness/sandbox";
import { SANDBOX_APP_IMAGE } from "../../hostContract";

const ROOT = path.resolve(__dirname, "..", "..");

type Json = Record<string, unknown>;

/** A step's pinned host key in the stack's state (its connection is a secret). */
async function pinnedHostKey(stack: PulumiStack, step: string): Promise<string | undefined> {
  const state = JSON.parse((await stack.pulumi(["stack", "export", "--show-secrets"])).stdout) as StateExport;
  const resource = state.deployment.resources?.find((r) => r.urn.endsWith(`::${step}`));
  assert.ok(resource, `no ${step} in the state`);
  const connection = resource.inputs?.connection as { plaintext?: string; hostKey?: string };
  return (connection.plaintext === undefined ? connection : (JSON.parse(connection.plaintext) as Json))
    .hostKey as string | undefined;
}

function upgradeFrom(o: {
  commit: string;
  what: string;
  /** What the upgrade's plan holds for the keys. */
  keyPlan: Record<string, string[] | undefined>;
  /** After the upgrade: also replace the droplet on purpose. */
  replaceAfter: boolean;
  /** The droplet's SSH key gets a new name (…-admin): its one write. */
  keyRenamed: boolean;
}) {
  describe(`cloud: a stack deployed by ${o.what}, upgraded by this program on the local DigitalOcean API`, () => {
    const old = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-older-"));
    let api: LocalDoApi;
    let stack: PulumiStack;
    const only = () => {
      assert.equal(api.droplets().length, 1);
      const [droplet] = api.droplets();
      return { droplet, address: dropletAddress(droplet), sandbox: api.sandbox(Number(droplet.id))! };
    };

    before(async () => {
      const have = await run("git", ["-C", ROOT, "cat-file", "-e", `${o.commit}^{commit}`], { check: false });
      assert.equal(
        have.code,
        0,
        `commit ${o.commit} is not in this clone: the upgrade test needs the repository's history (git fetch --unshallow)`,
      );
      await run("bash", ["-c", `git -C "$0" archive "$1" | tar -x -C "$2"`, ROOT, o.commit, old]);
      // Its program runs with this checkout's SDKs: the engine here has their plugins (an older
      // commit may have asked for newer ones).
      fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(old, "node_modules"));
      await ensureDockerd();
      await removeAllSandboxes();
      await buildImages();
      api = await startLocalDoApi();
      stack = await PulumiStack.create("prod", {
        env: api.env,
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

    it("this program upgrades it in place: the droplet stays (only its SSH key's name is written), the data too, and every later step pins the host's key", async () => {
      const { droplet, sandbox } = only();
      stack.runProgram(ROOT);
      const plan = plannedChanges(await stack.previewJson());
      assert.equal(plan["chitram-droplet"], undefined, JSON.stringify(plan));
      for (const [key, ops] of Object.entries(o.keyPlan)) assert.deepEqual(plan[key], ops, key);
      const from = api.requests.length;
      await stack.up([], { timeoutMs: 20 * 60_000 });
      // Of the droplet and its key, at most the key's new name is written: nothing deleted or made.
      const writes = api.requests
        .slice(from)
        .filter((r) => r.method !== "GET" && /^\/v2\/(droplets|account\/keys)/.test(r.path))
        .map((r) => `${r.method} ${r.path}`);
      assert.equal(writes.length, o.keyRenamed ? 1 : 0, writes.join("\n"));
      for (const w of writes) assert.match(w, /^PUT \/v2\/account\/keys\/\d+$/);
      const { droplet: same, address } = only();
      assert.equal(same.id, droplet.id, "the droplet was replaced");
      const kept = await get(80, "/api/objects/kept", 10_000, address);
      assert.equal(kept.status, 200, kept.body);
      assert.equal(kept.body, "written by the older version");
      const onHost = (await sandbox.exec("cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub")).stdout.trim();
      for (const step of ["host-deploy-user", "host-docker", "app-compose-up"])
        assert.equal(await pinnedHostKey(stack, step), onHost, `${step} does not pin the host's key`);
      await stack.up(["--expect-no-changes"]);
    });

    if (o.replaceAfter)
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
}

upgradeFrom({
  // The last commit before the admin key (527f59e).
  commit: "b5f038ff9a783b9260e49646443d55fcd5eecb28",
  what: "the last version before the admin key",
  keyPlan: {
    "admin-key": undefined,
    "steps-key": ["create"],
    "stack-key": undefined,
    "chitram-ssh-key": ["update"],
  },
  replaceAfter: true,
  keyRenamed: true,
});
upgradeFrom({
  commit: "a7958d4df87dc9d9e94e77fe853efa969a14677c",
  what: "the previous release",
  keyPlan: {
    "admin-key": undefined,
    "steps-key": ["create"],
    "stack-key": ["delete"],
    "chitram-ssh-key": undefined,
  },
  replaceAfter: false,
  keyRenamed: false,
});
