// `npm run render` on both example stacks, as a user runs it, and on bad config.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, parseConfig, withDefaults } from "../config";
import { scratchDir, STAGING } from "./support";

const root = path.join(__dirname, "..");

function render(...args: string[]) {
  const out = scratchDir("chitram-render-");
  const r = spawnSync(
    path.join(root, "node_modules", ".bin", "tsx"),
    [path.join(root, "tools", "render.ts"), ...args, "--out", out],
    {
      cwd: os.tmpdir(), // paths must not depend on the working directory
      encoding: "utf8",
    },
  );
  const read = (f: string) => fs.readFileSync(path.join(out, f), "utf8");
  return { ...r, out, read, json: <T>(f: string) => JSON.parse(read(f)) as T };
}

type Step = {
  name: string;
  sshUser: string;
  command: string;
  stdin: string | null;
  dependsOn: string[];
  triggers: unknown[];
};

describe("render: staging (IP mode)", () => {
  const r = render("--stack", "staging");

  it("exits 0 and lists what it wrote", () => {
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /rendered stack staging: \d+ resources, 14 steps/);
  });

  it("resources.json has every resource with masked secrets", () => {
    const resources =
      r.json<{ type: string; name: string; inputs: Record<string, unknown>; secretInputs: string[] }[]>(
        "resources.json",
      );
    const types = resources.map((x) => x.type);
    for (const t of [
      "digitalocean:index/droplet:Droplet",
      "digitalocean:index/firewall:Firewall",
      "tls:index/privateKey:PrivateKey",
    ]) {
      assert.ok(types.includes(t), t);
    }
    const env = resources.find((x) => x.name === "app-env-file")!;
    assert.equal(env.inputs.stdin, "[secret]");
    assert.equal(env.inputs.connection, "[secret]");
    assert.doesNotMatch(r.read("resources.json"), /PLACEHOLDER-private-key/);
  });

  it("steps.json lists every step in an order that respects its dependencies, with user, command and triggers", () => {
    const steps = r.json<Step[]>("steps.json");
    assert.equal(steps[0].name, "host-ready");
    const seen = new Set<string>();
    for (const s of steps) {
      for (const d of s.dependsOn) assert.ok(seen.has(d), `${s.name} is listed before ${d}`);
      seen.add(s.name);
      assert.ok(["root", "chitram"].includes(s.sshUser));
      assert.match(s.command, /bash -c '/);
      assert.ok(s.triggers.length >= 1);
    }
    assert.equal(steps.find((s) => s.name === "app-env-file")!.stdin, "[secret]");
  });

  it("host/ holds every file the host receives, exactly as rendered, with placeholders for secrets", () => {
    for (const f of [
      "opt/chitram/compose.yaml",
      "opt/chitram/caddy/Caddyfile",
      "opt/chitram/host.env",
      "opt/chitram/.env.production",
      "opt/chitram/scripts/backup.sh",
      "opt/chitram/scripts/restore.sh",
      "opt/chitram/scripts/healthcheck.sh",
      "etc/sudoers.d/chitram",
      "etc/cron.d/chitram-backup",
      "etc/ssh/sshd_config.d/00-chitram.conf",
      "home/chitram/.ssh/authorized_keys",
      "var/lib/cloud/instance/user-data.txt",
    ]) {
      assert.ok(fs.existsSync(path.join(r.out, "host", f)), f);
    }
    assert.match(r.read("host/opt/chitram/caddy/Caddyfile"), /^:80 \{$/m);
    assert.match(
      r.read("host/opt/chitram/.env.production"),
      /^MINIO_SECRET_KEY=placeholder-app-minio-secret$/m,
    );
    assert.equal(fs.statSync(path.join(r.out, "host/opt/chitram/scripts/backup.sh")).mode & 0o111, 0o111);
  });

  it("outputs.json masks the deploy key", () => {
    const outputs = r.json<Record<string, { value: string; secret: boolean }>>("outputs.json");
    assert.deepEqual(outputs.deployPrivateKey, { value: "[secret]", secret: true });
  });
});

describe("render: prod (domain mode) and overrides", () => {
  it("prod renders the domain Caddyfile, the DNS record and the volume mount step", () => {
    const r = render("--stack", "prod");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.read("host/opt/chitram/caddy/Caddyfile"), /^chitram\.example\.com \{$/m);
    assert.ok(r.json<Step[]>("steps.json").some((s) => s.name === "host-data-volume"));
    assert.match(r.read("resources.json"), /digitalocean:index\/dnsRecord:DnsRecord/);
    assert.match(r.read("host/opt/chitram/compose.yaml"), /\/mnt\/chitram-data\/postgres:/);
  });

  it("--set and --config-file override the stack file", () => {
    const file = path.join(scratchDir("chitram-cfg-"), "Pulumi.x.yaml");
    fs.writeFileSync(
      file,
      "config:\n  chitram:appImage: registry.example.com/chitram:7\n  chitram:appPort: 9100\n",
    );
    const r = render("--stack", "x", "--config-file", file, "--set", "chitram:healthPath=/ready");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.read("host/opt/chitram/compose.yaml"), /image: registry\.example\.com\/chitram:7/);
    const composeUp = r.json<Step[]>("steps.json").find((s) => s.name === "app-compose-up");
    assert.match(composeUp?.command ?? "", /\nAPP_PORT='\\''9100'\\''\n/);
    assert.match(r.read("host/opt/chitram/host.env"), /^HEALTH_URL='http:\/\/127\.0\.0\.1\/ready'$/m);
  });

  it("bad config: non-zero exit and the program's own message, nothing written", () => {
    const r = render("--stack", "staging", "--set", "size=s-1vcpu-1gb", "--set", "domain=203.0.113.9");
    assert.notEqual(r.status, 0);
    let expected = "";
    try {
      parseConfig(
        withDefaults({ ...STAGING, size: "s-1vcpu-1gb", domain: "203.0.113.9" }),
        "staging",
        "unset",
      );
    } catch (err) {
      expected = (err as ConfigError).message;
    }
    assert.ok(expected.length > 0);
    assert.equal(r.stderr.trim(), expected);
    assert.deepEqual(fs.readdirSync(r.out), []);
  });
});
