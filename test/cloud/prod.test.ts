// A prod-like stack on the local DigitalOcean API through the real engine and provider, as
// Pulumi.prod.yaml has it: domain mode with the domain's A record managed by the stack and a
// certificate from a test ACME CA that finds the droplet through that record; the data on a block
// volume (attached and mounted before the app starts, kept across a droplet replacement, grown in
// place); uptime checks and alerts made once the app answers; a destroy that leaves no record,
// volume, file or loop device behind.
//
// DNS is stood in for: the API tells the CA's DNS server about every A record the provider
// writes, translated to the droplet's address on the CA's network (harness/acme.ts).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AcmeCa, startAcme, tlsProbe, trustInDropletCaddy } from "../../harness/acme";
import { dropletAddress, LocalDoApi, startLocalDoApi, volumeDevicePath } from "../../harness/doApi";
import { PulumiStack } from "../../harness/pulumiCli";
import {
  buildImages,
  containerIp,
  Droplet,
  ensureDockerd,
  removeAllSandboxes,
  run,
  sandboxLabelArgs,
} from "../../harness/sandbox";
import { SANDBOX_APP_IMAGE, VOLUME_MOUNT } from "../../hostContract";
import { destroyLeavesNothing } from "./support";

const log = (line: string) => console.log(`  ${line}`);
const VOLUME = "chitram-prod-data";
const ZONE = "chitram.dev";
const DOMAIN = `app.${ZONE}`;
const ALERTS_TO = `ops@${ZONE}`;

/** Runs `cmd` as root in the droplet; its stdout, or a failure with its output. */
async function onDroplet(sandbox: Droplet | undefined, cmd: string): Promise<string> {
  assert.ok(sandbox, "the droplet has no sandbox");
  const r = await sandbox.exec(cmd);
  assert.equal(r.code, 0, `${cmd}\n${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

/** The app over HTTPS from inside the droplet, through its own Caddy (the CA is checked by tlsProbe). */
function appRequest(method: "GET" | "PUT", path: string, body = ""): string {
  const data = method === "PUT" ? `--data-binary '${body}'` : "";
  return `curl -sSk --fail-with-body -X ${method} ${data} --resolve ${DOMAIN}:443:127.0.0.1 https://${DOMAIN}${path}`;
}

/** The first verified handshake at the droplet's address for the domain, within 60 s. */
async function servedWithCertificate(address: string, root: string): Promise<void> {
  let last = "no handshake";
  for (let i = 0; i < 60; i++) {
    const probe = await tlsProbe(443, DOMAIN, root, address).catch((e: Error) => e);
    if (!(probe instanceof Error) && probe.authorized) return;
    last = probe instanceof Error ? probe.message : String(probe.authorizationError);
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.fail(`no certificate for ${DOMAIN} from the test CA at ${address}: ${last}`);
}

describe("cloud: a prod-like stack (domain, DNS record, data volume, uptime alerts) on the local DigitalOcean API", () => {
  let api: LocalDoApi;
  let acme: AcmeCa;
  let stack: PulumiStack;
  const network = `chitram-sbx-acme-${process.pid}-net`;
  const only = () => {
    assert.equal(api.droplets().length, 1);
    const [droplet] = api.droplets();
    return { droplet, sandbox: api.sandbox(Number(droplet.id)), address: dropletAddress(droplet) };
  };

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    await buildImages();
    const labels = sandboxLabelArgs();
    await run("docker", ["network", "create", ...labels, network]);
    acme = await startAcme({ name: `chitram-sbx-acme-${process.pid}`, network }, DOMAIN);
    api = await startLocalDoApi({
      domains: [ZONE],
      // Every droplet reaches the CA, and its Caddy trusts the CA's API certificate.
      onDropletStarted: async (sandbox) => {
        await sandbox.connect(network);
        await trustInDropletCaddy(sandbox, acme.apiCa);
      },
      onARecord: async (fqdn, address) => {
        if (fqdn !== DOMAIN || address === undefined) return;
        // The record is written right after the droplet is created, before it may have started.
        for (let i = 0; i < 600; i++) {
          const droplet = api.droplets().find((d) => dropletAddress(d) === address);
          const sandbox = droplet && api.sandbox(Number(droplet.id));
          if (droplet?.status === "active" && sandbox) {
            await acme.pointAt(await containerIp(sandbox.name, network));
            return;
          }
          await new Promise((r) => setTimeout(r, 500));
        }
        throw new Error(`no droplet at ${address} for ${fqdn}`);
      },
    });
    stack = await PulumiStack.create("prod", {
      env: api.env,
    });
    // Pulumi.prod.yaml with the test CA, unprotected so that the droplet can be replaced here;
    // off-box backups are test/cloud/recovery.test.ts's.
    await stack.configure({
      appImage: SANDBOX_APP_IMAGE,
      region: "nyc3",
      domain: DOMAIN,
      acmeEmail: ALERTS_TO,
      acmeCa: acme.directoryUrl,
      dataVolumeSizeGb: "10",
      protectData: "false",
    });
    await stack.pulumi(["config", "set", "chitram:acmeCaRoot"], { input: acme.root });
    await stack.pulumi(["config", "set", "--path", "chitram:alertEmails[0]", ALERTS_TO]);
  });
  after(async () => {
    try {
      stack?.remove();
    } finally {
      try {
        await api?.close();
      } finally {
        await acme?.stop();
        await run("docker", ["network", "rm", network], { check: false });
      }
    }
  });

  it("up from nothing: the A record names the droplet and the test CA's certificate is served there; the volume is mounted where the app keeps its data; the uptime checks and alerts watch the app", async () => {
    const started = Date.now();
    await stack.up([], { timeoutMs: 20 * 60_000 });
    log(`first up of the prod-like stack: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.deepEqual(
      api.requests.filter((r) => r.status >= 400).map((r) => `${r.method} ${r.path} ${r.status}`),
      [],
      "a call the local API refused",
    );
    const { droplet, sandbox, address } = only();
    const [volume] = api.volumes();
    assert.equal(api.volumes().length, 1);
    assert.equal(volume.name, VOLUME);
    assert.equal(volume.size_gigabytes, 10);
    assert.equal(volume.filesystem_type, "ext4");
    assert.deepEqual(volume.droplet_ids, [droplet.id]);
    assert.deepEqual(droplet.volume_ids, [volume.id]);
    // The volume's device is what is mounted on the data directory, and the database is on it.
    const device = await onDroplet(sandbox, `readlink -f ${volumeDevicePath(VOLUME)}`);
    assert.equal(await onDroplet(sandbox, `findmnt -n -o SOURCE --target ${VOLUME_MOUNT}`), device);
    assert.match(await onDroplet(sandbox, `ls ${VOLUME_MOUNT}`), /postgres/);
    assert.deepEqual(api.projectResources("chitram-prod").sort(), [
      `do:droplet:${String(droplet.id)}`,
      `do:volume:${String(volume.id)}`,
    ]);

    // The domain's A record, managed by the stack, is how the CA found the droplet.
    const records = api.records(ZONE);
    assert.deepEqual(
      records.map((r) => [r.type, r.name, r.data, r.ttl]),
      [["A", "app", address, 300]],
    );
    await servedWithCertificate(address, acme.root);

    const checks = api.uptimeChecks();
    const health = checks.find((c) => c.target === `https://${DOMAIN}/health`);
    assert.ok(health, `no check on the health URL: ${JSON.stringify(checks)}`);
    assert.equal(health.type, "https");
    const alerts = api.uptimeAlerts();
    assert.equal(alerts.length, checks.length, "a check without its alert");
    for (const alert of alerts) {
      assert.equal(alert.type, "down");
      assert.deepEqual((alert.notifications as { email: string[] }).email, [ALERTS_TO]);
    }
    // Made only once the app answered: the checks come after the last droplet call of the up.
    const firstCheck = api.requests.findIndex((r) => r.method === "POST" && r.path === "/v2/uptime/checks");
    const lastAttach = Math.max(
      ...api.requests.map((r, i) => (r.method === "POST" && r.path.endsWith("/actions") ? i : -1)),
    );
    assert.ok(
      lastAttach >= 0 && firstCheck > lastAttach,
      "an uptime check was made before the volume was attached",
    );

    await onDroplet(sandbox, appRequest("PUT", "/api/objects/kept", "written before the replacement"));
  });

  it("a droplet replacement (new image): the A record follows the new droplet, which gets its own certificate; the volume moves cleanly, with its rows and objects", async () => {
    const { droplet: old } = only();
    const [volume] = api.volumes();
    const [record] = api.records(ZONE);
    await stack.configure({ image: "ubuntu-24-04-x64" });
    const started = Date.now();
    await stack.up([], { timeoutMs: 20 * 60_000 });
    log(`droplet replaced with the volume moved: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await api.settled();
    const { droplet, sandbox, address } = only();
    assert.notEqual(droplet.id, old.id);
    assert.equal(api.volumes().length, 1);
    assert.equal(api.volumes()[0].id, volume.id, "the volume was replaced");
    assert.deepEqual(api.volumes()[0].droplet_ids, [droplet.id]);
    // The app on the old droplet was stopped and the volume unmounted before it was detached.
    assert.deepEqual(api.unsafeDetaches, [], "the volume was detached while still mounted");
    const device = await onDroplet(sandbox, `readlink -f ${volumeDevicePath(VOLUME)}`);
    assert.equal(await onDroplet(sandbox, `findmnt -n -o SOURCE --target ${VOLUME_MOUNT}`), device);
    assert.equal(
      await onDroplet(sandbox, appRequest("GET", "/api/objects/kept")),
      "written before the replacement",
    );
    // Updated in place, not made anew: the name never stops resolving.
    assert.deepEqual(
      api.records(ZONE).map((r) => [r.id, r.data]),
      [[record.id, address]],
    );
    await servedWithCertificate(address, acme.root);
    await stack.up(["--expect-no-changes"]);
  });

  it("a size change powers the droplet off and on: the volume is mounted again before Docker starts, and the app serves its data", async () => {
    const { droplet } = only();
    await stack.configure({ size: "s-2vcpu-4gb" });
    await stack.up([], { timeoutMs: 10 * 60_000 });
    const { droplet: same, sandbox } = only();
    assert.equal(same.id, droplet.id, "the droplet was replaced");
    assert.equal((same.size as { slug: string }).slug, "s-2vcpu-4gb");
    const device = await onDroplet(sandbox, `readlink -f ${volumeDevicePath(VOLUME)}`);
    assert.equal(await onDroplet(sandbox, `findmnt -n -o SOURCE --target ${VOLUME_MOUNT}`), device);
    // Restart policies bring the app back: within a minute it serves the object from the volume.
    let body = "";
    for (let i = 0; i < 60 && body !== "written before the replacement"; i++) {
      const r = await sandbox!.exec(appRequest("GET", "/api/objects/kept"));
      body = r.stdout.trim();
      if (body !== "written before the replacement")
        await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    assert.equal(body, "written before the replacement");
    await stack.up(["--expect-no-changes"]);
  });

  it("a bigger dataVolumeSizeGb: the provider resizes the volume, and only then does the mount step grow the filesystem, in place", async () => {
    const { droplet, sandbox } = only();
    await stack.configure({ dataVolumeSizeGb: "12" });
    const r = await stack.up([], { check: false });
    const { droplet: same } = only();
    assert.equal(same.id, droplet.id, "the droplet was replaced");
    assert.equal(api.volumes()[0].size_gigabytes, 12);
    const device = await onDroplet(sandbox, `readlink -f ${volumeDevicePath(VOLUME)}`);
    assert.equal(Number(await onDroplet(sandbox, `blockdev --getsize64 ${device}`)), 12 * 2 ** 30);
    // Growing a mounted ext4 takes CAP_SYS_RESOURCE, which a droplet's root has and this
    // machine's containers do not (ENVIRONMENT.md). Without it the step must fail saying so: it
    // tried, so it saw the grown device; a step that ran before the resize grows nothing and passes.
    const capabilities = BigInt(`0x${await onDroplet(sandbox, "awk '/^CapEff/ {print $2}' /proc/1/status")}`);
    if ((capabilities >> 24n) & 1n) {
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const [count, size] = (
        await onDroplet(
          sandbox,
          `tune2fs -l ${device} | awk -F: '/^Block count/ {c = $2} /^Block size/ {s = $2} END {print c, s}'`,
        )
      )
        .split(/\s+/)
        .map(Number);
      assert.equal(count * size, 12 * 2 ** 30, "the filesystem did not grow with the volume");
      await stack.up(["--expect-no-changes"]);
    } else {
      assert.notEqual(r.code, 0, "the mount step did not try to grow the filesystem");
      assert.match(r.stdout + r.stderr, /Permission denied to resize filesystem/);
      assert.match(
        r.stdout + r.stderr,
        /resize2fs could not grow the filesystem on \S+ to the volume's 12 GB/,
      );
      log(
        "growing the mounted filesystem is refused here (no CAP_SYS_RESOURCE): the step tried after the resize and failed, as it must",
      );
    }
  });

  it("destroy: no volume, record, check or droplet is left in the API, and no volume file or loop device on this machine", async () => {
    await destroyLeavesNothing(stack, api);
    assert.deepEqual(api.unsafeDetaches, [], "the volume was detached while still mounted");
    const loops = await run("losetup", ["-l", "-n", "-O", "BACK-FILE"]);
    assert.doesNotMatch(loops.stdout, new RegExp(`chitram-do-volumes-${process.pid}-`));
  });
});
