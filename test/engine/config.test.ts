// Bad config through the real CLI: `pulumi preview` and `pulumi up` exit non-zero with the
// message of config/ alone (each key named, no stack trace, no secret echoed), and nothing is
// created: the state holds no resource. No host is needed: nothing gets that far.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { PulumiStack, stateResources } from "../../harness/pulumiCli";
import { ed25519KeyPair } from "../../harness/keys";

describe("engine: bad config is refused before any resource", () => {
  let stack: PulumiStack;
  const password = "hunter2-plain-text-password";
  const bucketKey = "plain0text0bucket0key";

  before(async () => {
    stack = await PulumiStack.create("engine-config");
    await stack.configure(
      {
        target: "existing",
        host: "192.0.2.10",
        appImage: "ghcr.io/example/chitram:1.0.0",
        region: "mars1",
        backupSchedule: "every night",
        registryServer: "ghcr.io",
        registryUsername: "example",
        registryPassword: password, // plain text: refused, never echoed
        offsiteBackups: "true",
        offsiteEndpoint: "https://s3.example.net",
        offsiteBucket: "chitram-backups",
        offsiteAccessKey: "AKIAEXAMPLEKEY1",
        offsiteSecretKey: bucketKey, // plain text too
        // the managed services are DigitalOcean's: refused on an SSH host
        database: "managed",
        databaseNodes: "9",
        objectStore: "spaces",
        appHosts: "3",
      },
      { sshPrivateKey: ed25519KeyPair().private },
    );
  });
  after(() => stack?.remove());

  for (const command of [["preview"], ["up", "--yes"]]) {
    it(`pulumi ${command[0]}: exit non-zero, every bad key named, no stack trace, no secret echoed`, async () => {
      const r = await stack.pulumi(command, { check: false });
      const out = r.stdout + r.stderr;
      assert.notEqual(r.code, 0, out);
      assert.match(out, /Invalid configuration:/);
      assert.match(out, /chitram:region: "mars1" is not allowed; use one of: nyc1, /);
      assert.match(
        out,
        /chitram:backupSchedule: "every night" is not allowed; use a five-field cron expression/,
      );
      assert.match(
        out,
        /chitram:registryPassword: is set in plain text, .* pulumi config set --secret chitram:registryPassword/,
      );
      assert.match(
        out,
        /chitram:offsiteSecretKey: is set in plain text, .* pulumi config set --secret chitram:offsiteSecretKey/,
      );
      assert.match(out, /chitram:database: "managed" is not allowed; with target existing use container/);
      assert.match(out, /chitram:databaseNodes: "9" is not allowed; use a whole number from 1 to 3/);
      assert.match(out, /chitram:objectStore: "spaces" is not allowed; with target existing use minio/);
      assert.match(out, /chitram:appHosts: "3" is not allowed; with target existing use 1/);
      assert.ok(!out.includes(password), "the plain-text password is echoed");
      assert.ok(!out.includes(bucketKey), "the plain-text bucket key is echoed");
      // no stack trace: no frame of the program, the SDK or Node
      assert.doesNotMatch(out, /^\s+at .*\(.*:\d+:\d+\)$/m);
      assert.doesNotMatch(out, /\.ts:\d+/);
      assert.deepEqual(
        (await stateResources(stack)).filter((res) => res.type !== "pulumi:pulumi:Stack"),
        [],
        "a resource was created",
      );
    });
  }
});

describe("engine: a DigitalOcean stack with the example files' placeholders is refused before any resource", () => {
  let stack: PulumiStack;

  before(async () => {
    stack = await PulumiStack.create("engine-placeholders");
    // Pulumi.prod.yaml's placeholders, and off-box backups with no Spaces key in the environment
    await stack.configure({
      appImage: "ghcr.io/example/chitram:1.0.0",
      domain: "chitram.example.com",
      acmeEmail: "ops@example.com",
      offsiteBackups: "true",
      objectStore: "spaces",
    });
  });
  after(() => stack?.remove());

  it("pulumi preview names each placeholder and both Spaces variables; nothing is in the state", async () => {
    const env = { SPACES_ACCESS_KEY_ID: "", SPACES_SECRET_ACCESS_KEY: "", DIGITALOCEAN_TOKEN: "unused" };
    const r = await stack.pulumi(["preview"], { check: false, env });
    const out = r.stdout + r.stderr;
    assert.notEqual(r.code, 0, out);
    assert.match(out, /chitram:appImage: "ghcr\.io\/example\/chitram:1\.0\.0" is a placeholder/);
    assert.match(out, /chitram:domain: "chitram\.example\.com" is a placeholder/);
    assert.match(out, /chitram:acmeEmail: "ops@example\.com" is a placeholder/);
    assert.match(out, /export SPACES_ACCESS_KEY_ID and SPACES_SECRET_ACCESS_KEY/);
    assert.match(out, /chitram:objectStore: spaces creates a Spaces bucket, .*or set objectStore to minio/);
    assert.doesNotMatch(out, /\.ts:\d+/);
    assert.deepEqual(
      (await stateResources(stack)).filter((res) => res.type !== "pulumi:pulumi:Stack"),
      [],
    );
  });
});
