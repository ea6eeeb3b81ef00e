// The local DigitalOcean API (harness/doApi.ts) answers as the public API does where the provider
// depends on it (../shared/research/do-api-calls.md): the token, DigitalOcean's error body, a 404
// that names an unknown path, key fingerprints, rule objects the provider dereferences, the
// default project. Its droplets are covered by test/cloud/ (they start sandbox droplets).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalDoApi, md5Fingerprint, startLocalDoApi } from "../harness/doApi";
import { ed25519KeyPair } from "../harness/keys";
import { run } from "../harness/sandbox";

interface Key {
  id: number;
  name: string;
  fingerprint: string;
}
interface Rule {
  sources?: object;
  destinations?: object;
}
interface Firewall {
  id: string;
  name: string;
  droplet_ids: number[];
  inbound_rules: Rule[];
  outbound_rules: Rule[];
}
interface Project {
  id: string;
  is_default: boolean;
}
/** The roots and fields these tests read; absent where a response has none. */
interface Body {
  id?: string;
  message?: string;
  request_id?: string;
  ssh_key?: Key;
  firewall?: Firewall;
  project?: Project;
  volume?: { id: string; size_gigabytes: number; droplet_ids: number[] };
  action?: { id: number; status: string; completed_at: string | null };
  check?: { id: string; regions: string[] };
  alert?: { id: string; notifications: { email: string[]; slack: unknown[] } };
  domain_record?: { id: number; name: string; data: string; ttl: number; type: string };
}

describe("harness/doApi.ts: the local DigitalOcean API", () => {
  let api: LocalDoApi;
  const call = async (method: string, path: string, body?: unknown, token = api.token) => {
    const r = await fetch(`${api.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return {
      status: r.status,
      headers: r.headers,
      json: (text ? JSON.parse(text) : {}) as Body,
      text,
    };
  };

  before(async () => {
    api = await startLocalDoApi({ droplets: false, domains: ["chitram.test"] });
  });
  after(() => api?.close());

  it("refuses a wrong token with 401 and DigitalOcean's error body; sends the rate-limit headers", async () => {
    const r = await call("GET", "/v2/projects/default", undefined, "not-the-token");
    assert.equal(r.status, 401);
    assert.equal(r.json.id, "unauthorized");
    assert.match(String(r.json.request_id), /^[0-9a-f-]{36}$/);
    const ok = await call("GET", "/v2/projects/default");
    assert.equal(ok.status, 200);
    assert.equal(ok.json.project?.is_default, true);
    assert.equal(ok.headers.get("ratelimit-limit"), "5000");
  });

  it("an unknown endpoint is a 404 that names the method and path", async () => {
    const r = await call("GET", "/v2/kubernetes/clusters");
    assert.equal(r.status, 404);
    assert.match(String(r.json.message), /no GET \/v2\/kubernetes\/clusters/);
  });

  it("a container registry not on the account: 404 for it and its docker credentials (the provider then drops the credentials from its state)", async () => {
    for (const p of [
      "/v2/registries/chitram-sbx",
      "/v2/registries/chitram-sbx/docker-credentials?read_write=false",
    ]) {
      const r = await call("GET", p);
      assert.equal(r.status, 404, p);
      assert.equal(r.json.id, "not_found");
    }
  });

  it("SSH keys: created with DigitalOcean's MD5 fingerprint, read by id or fingerprint, a second copy refused, deleted", async () => {
    const pub = ed25519KeyPair("doapi").public;
    const created = await call("POST", "/v2/account/keys", { name: "k", public_key: pub });
    assert.equal(created.status, 201);
    const key = created.json.ssh_key!;
    assert.match(key.fingerprint, /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
    assert.equal(key.fingerprint, md5Fingerprint(pub));
    assert.equal((await call("GET", `/v2/account/keys/${key.id}`)).json.ssh_key?.name, "k");
    assert.equal((await call("GET", `/v2/account/keys/${key.fingerprint}`)).json.ssh_key?.id, key.id);
    assert.equal((await call("POST", "/v2/account/keys", { name: "again", public_key: pub })).status, 422);
    assert.equal((await call("DELETE", `/v2/account/keys/${key.id}`)).status, 204);
    assert.equal((await call("GET", `/v2/account/keys/${key.id}`)).status, 404);
  });

  it("firewalls: every rule comes back with its sources or destinations object; PUT replaces the whole firewall", async () => {
    const fw = (
      await call("POST", "/v2/firewalls", {
        name: "fw",
        droplet_ids: null,
        inbound_rules: [{ protocol: "tcp", ports: "22" }],
        outbound_rules: [{ protocol: "icmp", destinations: { addresses: ["0.0.0.0/0"] } }],
      })
    ).json.firewall!;
    assert.deepEqual(fw.inbound_rules[0].sources, {});
    assert.deepEqual(fw.droplet_ids, []);
    const put = await call("PUT", `/v2/firewalls/${fw.id}`, { name: "fw2", inbound_rules: [] });
    assert.equal(put.json.firewall?.name, "fw2");
    assert.deepEqual(put.json.firewall?.outbound_rules, []);
    assert.equal((await call("DELETE", `/v2/firewalls/${fw.id}`)).status, 204);
  });

  it("projects: the default one cannot be deleted; a droplet that does not exist cannot be assigned", async () => {
    const def = (await call("GET", "/v2/projects/default")).json.project!;
    assert.equal((await call("DELETE", `/v2/projects/${def.id}`)).status, 412);
    const p = (await call("POST", "/v2/projects", { name: "p", purpose: "Web Application" })).json.project!;
    const refused = await call("POST", `/v2/projects/${p.id}/resources`, { resources: ["do:droplet:1"] });
    assert.equal(refused.status, 422);
    const listed = await call("GET", `/v2/projects/${p.id}/resources?page=1&per_page=200`);
    assert.deepEqual(JSON.parse(listed.text), { resources: [], links: {}, meta: { total: 0 } });
    assert.equal((await call("DELETE", `/v2/projects/${p.id}`)).status, 204);
    assert.deepEqual(
      Object.entries(api.holds()).filter(([, n]) => n > 0),
      [],
    );
  });

  it("a droplet needs a known size and an SSH key of the account (422 otherwise)", async () => {
    const base = { name: "d", region: "nyc3", image: "ubuntu-22-04-x64" };
    assert.equal((await call("POST", "/v2/droplets", { ...base, size: "s-1vcpu-512mb" })).status, 422);
    const r = await call("POST", "/v2/droplets", { ...base, size: "s-2vcpu-2gb", ssh_keys: ["00:11"] });
    assert.equal(r.status, 422);
    assert.match(String(r.json.message), /ssh_keys: no key 00:11/);
    assert.deepEqual(api.requests.at(-1), {
      method: "POST",
      path: "/v2/droplets",
      status: 422,
      body: { ...base, size: "s-2vcpu-2gb", ssh_keys: ["00:11"] },
    });
  });

  it("volumes: a sparse file formatted as asked; a second name in the region refused; resized by an action that completes; deleted with its file", async () => {
    const body = {
      name: "chitram-t-data",
      region: "nyc3",
      size_gigabytes: 10,
      filesystem_type: "ext4",
      description: "",
      snapshot_id: "",
      filesystem_label: "",
      tags: [],
    };
    const created = await call("POST", "/v2/volumes", body);
    assert.equal(created.status, 201, created.text);
    const id = created.json.volume!.id;
    assert.equal((await call("POST", "/v2/volumes", body)).status, 409);
    assert.equal((await call("POST", "/v2/volumes", { ...body, name: "Data_1" })).status, 422);
    const dir = fs.readdirSync(os.tmpdir()).find((n) => n.startsWith(`chitram-do-volumes-${process.pid}-`))!;
    const file = path.join(os.tmpdir(), dir, `${id}.img`);
    assert.equal(fs.statSync(file).size, 10 * 2 ** 30);
    assert.ok(fs.statSync(file).blocks * 512 < 2 ** 30, "the volume's file is not sparse");
    assert.match((await run("blkid", ["-o", "value", "-s", "TYPE", file])).stdout, /ext4/);

    assert.equal(
      (await call("POST", `/v2/volumes/${id}/actions`, { type: "resize", size_gigabytes: 5 })).status,
      422,
    );
    const resize = await call("POST", `/v2/volumes/${id}/actions`, {
      type: "resize",
      size_gigabytes: 12,
      region: "nyc3",
    });
    assert.equal(resize.status, 202, resize.text);
    await api.settled();
    const action = await call("GET", `/v2/actions/${resize.json.action!.id}`);
    assert.equal(action.json.action!.status, "completed");
    assert.ok(action.json.action!.completed_at, "completed_at is what the provider waits for");
    assert.equal((await call("GET", `/v2/volumes/${id}`)).json.volume!.size_gigabytes, 12);
    assert.equal(fs.statSync(file).size, 12 * 2 ** 30);
    const attach = await call("POST", `/v2/volumes/${id}/actions`, { type: "attach", droplet_id: 9 });
    assert.equal(attach.status, 404);
    assert.equal((await call("DELETE", `/v2/volumes/${id}`)).status, 204);
    assert.equal(fs.existsSync(file), false);
    assert.equal((await call("GET", `/v2/volumes/${id}`)).status, 404);
  });

  it("uptime: a check and its alert as sent, the alert's notifications always an object; deleting the check takes its alerts", async () => {
    const check = await call("POST", "/v2/uptime/checks", {
      name: "c",
      type: "http",
      target: "http://127.0.0.9/health",
      regions: ["us_east"],
      enabled: true,
    });
    assert.equal(check.status, 201, check.text);
    const checkId = check.json.check!.id;
    const alertBody = {
      name: "a",
      type: "down",
      period: "2m",
      notifications: { email: ["ops@example.com"], slack: null },
    };
    assert.equal(
      (await call("POST", `/v2/uptime/checks/${checkId}/alerts`, { ...alertBody, period: "1m" })).status,
      422,
    );
    const alert = await call("POST", `/v2/uptime/checks/${checkId}/alerts`, alertBody);
    assert.equal(alert.status, 201, alert.text);
    const read = await call("GET", `/v2/uptime/checks/${checkId}/alerts/${alert.json.alert!.id}`);
    assert.deepEqual(read.json.alert!.notifications, { email: ["ops@example.com"], slack: [] });
    assert.equal((await call("GET", `/v2/uptime/checks/nope/alerts/${alert.json.alert!.id}`)).status, 404);
    assert.equal((await call("DELETE", `/v2/uptime/checks/${checkId}`)).status, 204);
    assert.equal(api.holds().uptimeAlerts, 0);
  });

  it("domain records: only under a domain of the account; an A record needs an IPv4 address; PUT keeps the type; deleted", async () => {
    const record = {
      type: "A",
      name: "www",
      data: "127.20.0.2",
      priority: 0,
      port: 0,
      weight: 0,
      flags: 0,
      ttl: 300,
    };
    assert.equal((await call("POST", "/v2/domains/example.org/records", record)).status, 404);
    assert.equal(
      (await call("POST", "/v2/domains/chitram.test/records", { ...record, data: "x" })).status,
      422,
    );
    const created = await call("POST", "/v2/domains/chitram.test/records", record);
    assert.equal(created.status, 201, created.text);
    const id = created.json.domain_record!.id;
    const moved = await call("PUT", `/v2/domains/chitram.test/records/${id}`, {
      ...record,
      type: undefined,
      data: "127.20.0.3",
    });
    assert.deepEqual(
      [moved.json.domain_record!.type, moved.json.domain_record!.data, moved.json.domain_record!.ttl],
      ["A", "127.20.0.3", 300],
    );
    assert.equal((await call("DELETE", `/v2/domains/chitram.test/records/${id}`)).status, 204);
    assert.equal((await call("GET", `/v2/domains/chitram.test/records/${id}`)).status, 404);
  });
});
