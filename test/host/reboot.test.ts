// The droplet restarted: on a throw-away droplet deployed by the stack's steps, the whole droplet
// container is restarted twice (the sandbox's stand-in for a reboot: harness/sandbox.ts restart()). The
// four services come back by themselves (restart: unless-stopped) with every row and object, the
// backup cron is still in place, and the stack's next apply changes nothing.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { apply } from "../../harness/engine";
import { Deployment, newDeployment } from "../../harness/deployment";
import { get, request, serviceStates, waitHealthy } from "../../harness/probes";
import { ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { CRON_PATH } from "../../hostContract";

const log = (line: string) => console.log(`  ${line}`);
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

describe("real host: the droplet restarted", () => {
  let d: Deployment;
  const objects: Record<string, string> = {
    photo: randomBytes(300_000).toString("base64"),
    "albums/2026/note": "a small object\n",
  };
  let rowsBefore: unknown;
  let cronBefore: string;
  let portsBefore: number[];

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    d = await newDeployment("sandbox-reboot");
    await apply(d.steps, d.state, { log });
    await waitHealthy(d.droplet.httpPort);
    for (const [key, body] of Object.entries(objects)) {
      const put = await request(d.droplet.httpPort, "PUT", `/api/objects/${key}`, body, 30_000);
      assert.equal(put.status, 201, put.body);
    }
    rowsBefore = JSON.parse((await get(d.droplet.httpPort, "/api/objects")).body);
    const cron = await d.droplet.exec(`sha256sum ${CRON_PATH}`);
    assert.equal(cron.code, 0, cron.stderr);
    cronBefore = cron.stdout;
    portsBefore = [d.droplet.sshPort, d.droplet.httpPort];

    // Twice: the second boot is the first to find the runtime state an earlier boot left behind.
    for (const boot of [1, 2]) {
      const started = Date.now();
      await d.droplet.restart();
      await waitHealthy(d.droplet.httpPort, 180_000);
      const s = ((Date.now() - started) / 1000).toFixed(1);
      log(`restart ${boot}: /health 200 through Caddy ${s} s after docker restart began`);
    }
    if (portsBefore.join() !== [d.droplet.sshPort, d.droplet.httpPort].join())
      log(
        `published ports moved: ssh ${portsBefore[0]} -> ${d.droplet.sshPort}, http ${portsBefore[1]} -> ${d.droplet.httpPort}`,
      );
  });
  after(async () => {
    await d?.droplet.stop();
  });

  it("all four services are running and healthy again, started by the engine alone", async () => {
    const states = await serviceStates(d.droplet);
    assert.equal(states.length, 4, states.join("\n"));
    for (const line of states) assert.match(line, /^running( healthy)?\s*$/);
    // The engine of this boot started them: each container's start is after the engine's own.
    const r = await d.droplet.exec(
      "engine=$(stat -c %Y /run/docker.pid); cd /opt/chitram && for c in $(docker compose ps -q); do " +
        's=$(date -d "$(docker inspect -f \'{{.State.StartedAt}}\' $c)" +%s); [ $s -ge $engine ] || echo "$c started at $s"; done',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "", "a container kept running across the restart: it was not a restart");
  });

  it("the same rows and byte-identical objects, through Caddy and the app's API", async () => {
    assert.deepEqual(JSON.parse((await get(d.droplet.httpPort, "/api/objects")).body), rowsBefore);
    for (const [key, body] of Object.entries(objects)) {
      const got = await get(d.droplet.httpPort, `/api/objects/${key}`, 30_000);
      assert.equal(got.status, 200, `${key}: ${got.body.slice(0, 200)}`);
      assert.equal(sha256(got.body), sha256(body), `object ${key} differs after the restart`);
    }
  });

  it("the backup cron entry is unchanged and cron runs again", async () => {
    assert.equal((await d.droplet.exec(`sha256sum ${CRON_PATH}`)).stdout, cronBefore);
    assert.equal((await d.droplet.exec("pgrep -x cron")).code, 0, "cron is not running after the restart");
  });

  it("the stack's next apply re-runs no step", async () => {
    // A droplet keeps its address across a reboot; the sandbox's published SSH port may move, so
    // a step that did run would be sent to where the droplet is now.
    const port = d.droplet.sshPort;
    const r = await apply(d.steps, d.state, { log, connectionOverride: (c) => ({ ...c, port }) });
    assert.deepEqual(
      r.ran.map((s) => s.name),
      [],
    );
    assert.equal(r.skipped.length, d.steps.length);
  });
});
