// `appHosts` through the real engine and provider on the local DigitalOcean API: a running single
// droplet (with the managed database and Spaces) grows to three app droplets behind a load
// balancer that checks the health path, the first droplet kept, their firewall admitting port 80
// from the load balancer alone, one managed database and one Spaces bucket shared by all three
// (the database firewall admits each), the backup cron on the first droplet only. A release goes
// one droplet at a time, each taken out of the load balancer first and put back after, with no
// failed request through the load balancer; a release that fails stops there, its droplet rolled
// back and back in, the later droplets untouched. Back to one droplet, then destroy leaves nothing.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { APP_VARIANTS, buildAppVariants, DATA_OFF_DROPLET_CONFIG } from "../../harness/deployment";
import { dropletAddress, emptyAppBuckets, LocalDoApi, startLocalDoApi } from "../../harness/doApi";
import { plannedChanges, PulumiStack } from "../../harness/pulumiCli";
import { get, liveApp, probeDuring, request } from "../../harness/probes";
import { buildImages, Droplet, ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { LB_HEALTH_CHECK } from "../../components/dropletHost";
import { APP_DIR, CRON_PATH, LB_DRAIN_FILE, RELEASES_LOG_NAME } from "../../hostContract";
import { destroyLeavesNothing } from "./support";

const HOSTS = 3;

describe("cloud: three app droplets behind a load balancer, released one at a time", () => {
  let api: LocalDoApi;
  let stack: PulumiStack;
  let lbIp = "";
  /** The droplets' sandboxes, the first droplet first (by name: they are created at once). */
  let hosts: Droplet[] = [];
  const log = (line: string) => console.log(`# scale: ${line}`);

  const onHost = async (d: Droplet, cmd: string) => {
    const r = await d.exec(cmd);
    assert.equal(r.code, 0, `${d.name}: ${cmd}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  /** Each droplet's release log: one line per version that went live (UTC time, image, container, hash). */
  const releases = async () =>
    Promise.all(
      hosts.map(async (d) =>
        (await onHost(d, `cat ${APP_DIR}/${RELEASES_LOG_NAME}`)).trim().split("\n").filter(Boolean),
      ),
    );

  /** What each droplet's release step printed in the last up (from the state). */
  const releaseOutputs = async () => {
    const state = JSON.parse(await stack.exportState()) as {
      deployment: { resources: { urn: string; outputs?: { stdout?: unknown } }[] };
    };
    return state.deployment.resources
      .filter((r) => /::app(-\d)?-compose-up$/.test(r.urn))
      .map((r) => `${r.urn.split("::").pop()}: ${JSON.stringify(r.outputs?.stdout)}`)
      .join("\n");
  };

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    await buildImages();
    api = await startLocalDoApi({ databases: true, spaces: true, loadBalancers: true });
    stack = await PulumiStack.create("staging", { env: api.env });
    await stack.configure(DATA_OFF_DROPLET_CONFIG);
  });
  after(async () => {
    try {
      stack?.remove();
    } finally {
      await api?.close();
    }
  });

  it("one droplet grows to three behind a load balancer that checks the health path, the first kept; port 80 from the load balancer alone; one database and one bucket for all; one backup cron", async () => {
    const single = await stack.up([], { timeoutMs: 25 * 60_000 });
    // One droplet: no appHostIps output, and no warning about one.
    assert.doesNotMatch(single.stdout + single.stderr, /appHostIps|Undefined value/);
    assert.equal((await stack.outputs()).appHostIps, undefined);
    const [first] = api.droplets();
    const written = await request(
      80,
      "PUT",
      "/api/objects/shared",
      "one for all",
      10_000,
      dropletAddress(first),
    );
    assert.equal(written.status, 201, written.body);

    await stack.configure({ appHosts: String(HOSTS) });
    const plan = plannedChanges(await stack.previewJson());
    for (const name of ["chitram-droplet-2", "chitram-droplet-3", "chitram-lb"])
      assert.deepEqual(plan[name], ["create"], `${name}: ${JSON.stringify(plan)}`);
    for (const name of ["chitram-droplet", "chitram-ssh-key", "chitram-db-cluster", "objects"])
      assert.equal(plan[name], undefined, `${name}: ${JSON.stringify(plan)}`);
    const started = Date.now();
    await stack.up([], { timeoutMs: 25 * 60_000 });
    log(`growth from 1 to ${HOSTS} droplets: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.deepEqual(
      api.requests.filter((r) => r.status >= 400).map((r) => `${r.method} ${r.path} ${r.status}`),
      [],
      "a call the local API refused",
    );
    const droplets = api.droplets().sort((a, b) => String(a.name).localeCompare(String(b.name)));
    assert.deepEqual(
      droplets.map((d) => d.name),
      ["chitram-staging", "chitram-staging-2", "chitram-staging-3"],
    );
    assert.equal(droplets[0].id, first.id, "the first droplet was replaced");
    hosts = droplets.map((d) => api.sandbox(Number(d.id))!);
    const ids = droplets.map((d) => Number(d.id)).sort();

    const [lb] = api.loadBalancers();
    assert.equal(api.loadBalancers().length, 1);
    lbIp = String(lb.ip);
    assert.deepEqual([...(lb.droplet_ids as number[])].sort(), ids);
    assert.deepEqual(
      (lb.forwarding_rules as Record<string, unknown>[]).map(
        (r) =>
          `${String(r.entry_protocol)} ${String(r.entry_port)} -> ${String(r.target_protocol)} ${String(r.target_port)}`,
      ),
      ["http 80 -> http 80"],
    );
    const health = lb.health_check as Record<string, unknown>;
    assert.equal(health.path, "/health");
    assert.equal(health.port, 80);
    assert.equal(health.check_interval_seconds, LB_HEALTH_CHECK.checkIntervalSeconds);
    assert.equal(health.unhealthy_threshold, LB_HEALTH_CHECK.unhealthyThreshold);

    const outputs = await stack.outputs();
    assert.equal(outputs.publicIp, lbIp);
    assert.equal(outputs.url, `http://${lbIp}`);
    assert.deepEqual(outputs.appHostIps, droplets.map(dropletAddress));

    // The droplets' firewall: SSH as configured, port 80 from the load balancer only, no 443.
    const [fw] = api.firewalls();
    assert.equal(api.firewalls().length, 1);
    assert.deepEqual([...(fw.droplet_ids as number[])].sort(), ids);
    const inbound = (fw.inbound_rules as { ports: string; sources: Record<string, unknown> }[]).map(
      (r) => `${r.ports} ${JSON.stringify(r.sources)}`,
    );
    assert.deepEqual(
      inbound.filter((r) => !r.startsWith("22 ")),
      [`80 ${JSON.stringify({ load_balancer_uids: [lb.id] })}`],
    );

    // The database firewall admits each droplet.
    const rules = api.requests.filter((r) => r.method === "PUT" && r.path.endsWith("/firewall"));
    assert.deepEqual(
      (rules.at(-1)!.body as { rules: { type: string; value: string }[] }).rules
        .map((x) => `${x.type} ${x.value}`)
        .sort(),
      ids.map((id) => `droplet ${id}`).sort(),
    );

    // One database and one bucket: what the single droplet stored, and what is written through
    // the load balancer, each droplet serves.
    const put = await request(80, "PUT", "/api/objects/later", "through the load balancer", 10_000, lbIp);
    assert.equal(put.status, 201, put.body);
    for (const d of droplets)
      for (const [key, body] of [
        ["shared", "one for all"],
        ["later", "through the load balancer"],
      ]) {
        const r = await get(80, `/api/objects/${key}`, 10_000, dropletAddress(d));
        assert.equal(r.status, 200, `${String(d.name)} ${key}: ${r.body}`);
        assert.equal(r.body, body);
      }

    // The backup cron on the first droplet only; no droplet is drained.
    for (const [i, d] of hosts.entries()) {
      const cron = await d.exec(`test -f ${CRON_PATH}`);
      assert.equal(
        cron.code === 0,
        i === 0,
        `${d.name}: backup cron ${cron.code === 0 ? "present" : "absent"}`,
      );
      assert.notEqual((await d.exec(`test -e ${APP_DIR}/${LB_DRAIN_FILE}`)).code, 0, `${d.name} is drained`);
    }
    await stack.up(["--expect-no-changes"]);
  });

  it("a release goes one droplet at a time, each out of the load balancer while it changes: no failed request through the load balancer", async () => {
    for (const d of hosts) await buildAppVariants(d);
    const before = await releases();
    await stack.configure({ appImage: APP_VARIANTS.v2 });
    const started = Date.now();
    const probe = await probeDuring(80, () => stack.up([], { timeoutMs: 20 * 60_000 }), 100, lbIp);
    log(
      `release of ${HOSTS} droplets: ${((Date.now() - started) / 1000).toFixed(1)} s, ` +
        `${probe.failed} / ${probe.total} requests failed at 10 Hz through the load balancer, slowest ${probe.slowestMs} ms`,
    );
    assert.equal(probe.error, undefined, String(probe.error));
    assert.equal(probe.failed, 0, probe.failures.join("\n"));
    for (const d of hosts) assert.equal((await liveApp(d)).image, APP_VARIANTS.v2, d.name);
    // One line more on each droplet, and each droplet out of the load balancer (its Caddy answered
    // the checks 503) only after the one before it was back in: one at a time, in order.
    const after = await releases();
    hosts.forEach((d, i) => assert.equal(after[i].length, before[i].length + 1, d.name));
    const windows: [number, number][] = [];
    for (const d of hosts) {
      const lines = (
        await onHost(
          d,
          `cd ${APP_DIR} && docker compose logs --no-log-prefix caddy | { grep -F '"status":503' || true; }`,
        )
      )
        .split("\n")
        .filter((l) => l.includes('"uri":"/health"'));
      const drained = lines.map((l) => Number(/"ts":([0-9.]+)/.exec(l)?.[1]));
      assert.ok(
        drained.length >= LB_HEALTH_CHECK.unhealthyThreshold,
        `${d.name} was never taken out of the load balancer; its Caddy logged ${lines.length} answers 503 ` +
          `(${lines.slice(0, 2).join(" ").slice(0, 600)}); the release steps said:\n${await releaseOutputs()}`,
      );
      windows.push([Math.min(...drained), Math.max(...drained)]);
    }
    for (let i = 1; i < windows.length; i++)
      assert.ok(
        windows[i][0] > windows[i - 1][1],
        `${hosts[i].name} was out of the load balancer while ${hosts[i - 1].name} was: ${JSON.stringify(windows)}`,
      );
  });

  it("a release that fails stops at its droplet: rolled back and back in the load balancer, the later droplets untouched, no failed request", async () => {
    const before = await releases();
    await stack.configure({ appImage: APP_VARIANTS.crashing });
    let code = 0;
    const probe = await probeDuring(
      80,
      async () => {
        code = (
          await stack.pulumi(["up", "--yes", "--skip-preview"], { timeoutMs: 20 * 60_000, check: false })
        ).code;
      },
      100,
      lbIp,
    );
    log(`a failed release: ${probe.failed} / ${probe.total} requests failed through the load balancer`);
    assert.notEqual(code, 0, "a release that never started went on");
    assert.equal(probe.failed, 0, probe.failures.join("\n"));
    assert.deepEqual(await releases(), before, "a droplet's live version changed");
    for (const d of hosts) {
      assert.equal((await liveApp(d)).image, APP_VARIANTS.v2, d.name);
      assert.notEqual(
        (await d.exec(`test -e ${APP_DIR}/${LB_DRAIN_FILE}`)).code,
        0,
        `${d.name} stayed drained`,
      );
    }
    // The later droplets never got the new files: their release never began.
    for (const d of hosts.slice(1))
      assert.doesNotMatch(await onHost(d, `cat ${APP_DIR}/compose.yaml`), /sandbox-crashing/, d.name);
    await stack.configure({ appImage: APP_VARIANTS.v2 });
    await stack.up([], { timeoutMs: 20 * 60_000 });
    await stack.up(["--expect-no-changes"]);
  });

  it("back to one droplet: the others and the load balancer deleted, the first serving on its own address with its firewall open again; emptied, destroy leaves nothing", async () => {
    const [first] = api.droplets().filter((d) => d.name === "chitram-staging");
    await stack.configure({ appHosts: "1" });
    await stack.up([], { timeoutMs: 20 * 60_000 });
    assert.deepEqual(
      api.droplets().map((d) => d.id),
      [first.id],
    );
    assert.deepEqual(api.loadBalancers(), []);
    const [fw] = api.firewalls();
    const web = (fw.inbound_rules as { ports: string; sources: { addresses?: string[] } }[]).filter(
      (x) => x.ports === "80" || x.ports === "443",
    );
    assert.deepEqual(
      web.map((x) => `${x.ports} ${(x.sources.addresses ?? []).join(",")}`),
      ["80 0.0.0.0/0,::/0", "443 0.0.0.0/0,::/0"],
    );
    assert.equal((await stack.outputs()).publicIp, dropletAddress(first));
    const r = await get(80, "/api/objects/shared", 10_000, dropletAddress(first));
    assert.equal(r.body, "one for all");
    await stack.up(["--expect-no-changes"]);
    // The bucket holds the app's objects: the stack never deletes them (BucketNotEmpty). The app
    // is stopped first: its health check's round trip through the bucket leaves versions behind.
    await emptyAppBuckets(api);
    await destroyLeavesNothing(stack, api);
  });
});
