// One test per config rule: each bad value is rejected with a message that names the key and says
// what is allowed; good values pass; Pulumi.yaml and the checker agree on the keys and defaults.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import * as YAML from "yaml";
import * as pulumi from "@pulumi/pulumi";
import { spacesEndpointFor } from "../config/backup";
import { cronProblem, isExampleImage, isExampleName, isPassphraseProtected } from "../config/checks";
import {
  ConfigError,
  declaredConfig,
  deployProblems,
  DROPLET_REGIONS,
  KeyState,
  parseConfig as parseSections,
  RawConfig,
  StackConfig,
  withDefaults,
} from "../config";
import { runProgram } from "../harness/mockProgram";
import { EXISTING, STAGING } from "./support";

/**
 * A parsed config as one flat record of the keys' values, secrets left out (they are Outputs;
 * "config: secrets stay secret" reads them): the assertions below name values, not sections.
 */
function flat(c: StackConfig) {
  const droplet = c.host.target === "digitalocean" ? c.host.droplet : undefined;
  const existing = c.host.target === "existing" ? c.host.existing : undefined;
  const { registry } = c.release;
  const offsite = c.backup.offsite;
  return {
    target: c.host.target,
    region: droplet?.region,
    size: droplet?.size,
    image: droplet?.image,
    sshAllowedCidrs: droplet?.sshAllowedCidrs ?? [],
    dataVolumeSizeGb: droplet?.dataVolumeSizeGb,
    dns: droplet?.dns,
    existingHost: existing && {
      host: existing.host,
      port: existing.port,
      user: existing.user,
      hostKey: existing.hostKey,
    },
    ...c.provisioning,
    ...c.site,
    appImage: c.release.appImage,
    appPort: c.release.appPort,
    releaseTimeoutSeconds: c.release.releaseTimeoutSeconds,
    registry:
      registry &&
      ("digitaloceanRegistry" in registry
        ? { server: registry.server, kind: "digitalocean", name: registry.digitaloceanRegistry }
        : { server: registry.server, kind: "password" }),
    backupSchedule: c.backup.schedule,
    backupRetentionDays: c.backup.retentionDays,
    backupHeartbeat: c.backup.heartbeatUrl !== undefined,
    offsite:
      offsite &&
      (offsite.kind === "spaces"
        ? { kind: offsite.kind }
        : { kind: offsite.kind, endpoint: offsite.endpoint, bucket: offsite.bucket }),
  };
}

const parseConfig = (...args: Parameters<typeof parseSections>) => flat(parseSections(...args));

const valid: RawConfig = { appImage: "ghcr.io/example/chitram:1.0.0" };
const existing: RawConfig = { ...valid, target: "existing", host: "192.0.2.7", manageDns: "false" };

function sections(overrides: RawConfig, key: KeyState = "unset", keyText?: string) {
  return parseSections(withDefaults({ ...valid, ...overrides }), "test", key, keyText);
}

function parse(overrides: RawConfig, key: KeyState = "unset", keyText?: string) {
  return flat(sections(overrides, key, keyText));
}

function rejects(
  overrides: RawConfig,
  key: string,
  allowed: RegExp,
  keyState: KeyState = "unset",
  keyText?: string,
) {
  assert.throws(
    () => parse(overrides, keyState, keyText),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      const line = err.problems.find((p) => p.startsWith(`chitram:${key}:`));
      assert.ok(line, `no problem names chitram:${key}; got:\n${err.message}`);
      assert.match(line, allowed);
      return true;
    },
  );
}

describe("config: defaults", () => {
  it("a config with only appImage is valid and gets the documented defaults", () => {
    const c = parse({});
    assert.equal(c.target, "digitalocean");
    assert.equal(c.region, "nyc3");
    assert.equal(c.size, "s-2vcpu-2gb");
    assert.equal(c.image, "ubuntu-22-04-x64");
    assert.equal(c.domain, undefined);
    assert.equal(c.deployUser, "chitram");
    assert.equal(c.appPort, 8000);
    assert.equal(c.healthPath, "/health");
    assert.equal(c.backupSchedule, "0 3 * * *");
    assert.equal(c.backupRetentionDays, 7);
    assert.equal(c.releaseTimeoutSeconds, 120);
    assert.equal(c.dataVolumeSizeGb, 0);
    assert.deepEqual(c.sshAllowedCidrs, ["0.0.0.0/0", "::/0"]);
    assert.deepEqual(c.alertEmails, []);
    assert.equal(c.closeRootLogin, true);
    assert.equal(c.dns, undefined);
  });

  it("every key in Pulumi.yaml has a type and a description, and only appImage has no default", () => {
    const decl = declaredConfig();
    for (const [key, d] of Object.entries(decl)) {
      assert.ok(["string", "integer", "boolean", "array"].includes(d.type), `${key}: type`);
      assert.ok(d.description.length > 10, `${key}: description`);
    }
    const noDefault = Object.entries(decl)
      .filter(([, d]) => d.default === undefined)
      .map(([k]) => k);
    assert.deepEqual(noDefault, ["appImage"]);
  });

  it("every key the checker reads is declared in Pulumi.yaml (an undeclared key would be unset under the CLI)", () => {
    const declared = new Set(Object.keys(declaredConfig()));
    const dir = path.join(__dirname, "..", "config");
    const source = fs
      .readdirSync(dir)
      .map((f) => fs.readFileSync(path.join(dir, f), "utf8"))
      .join("\n");
    const read = new Set(
      [...source.matchAll(/\b(?:str|bool|int|oneOf|list|secret)(?:<\w+>)?\(\s*"(\w+)"/g)].map((m) => m[1]),
    );
    assert.ok(read.size > 15, "found the keys the checker reads");
    for (const key of read) assert.ok(declared.has(key), `${key} is read but not declared`);
    for (const key of declared) {
      if (key !== "sshPrivateKey") assert.ok(read.has(key), `${key} is declared but never checked`);
    }
  });
});

describe("config: the example stack files", () => {
  it('give every value the YAML type its key declares (the CLI rejects a quoted "20" for an integer)', () => {
    const decl = declaredConfig();
    const expected = { string: "string", integer: "number", boolean: "boolean", array: "array" } as const;
    for (const stack of ["prod", "staging"]) {
      const doc = YAML.parse(fs.readFileSync(path.join(__dirname, "..", `Pulumi.${stack}.yaml`), "utf8")) as {
        config: Record<string, unknown>;
      };
      for (const [key, value] of Object.entries(doc.config)) {
        const name = key.replace(/^chitram:/, "");
        assert.ok(decl[name], `${stack}: ${key} is not declared in Pulumi.yaml`);
        const actual = Array.isArray(value) ? "array" : typeof value;
        assert.equal(actual, expected[decl[name].type], `${stack}: ${key}`);
      }
    }
  });
});

describe("config: what only a real deploy needs (deployProblems)", () => {
  const spaces = { spacesKeys: true };
  const stackFile = (name: string) =>
    YAML.parse(fs.readFileSync(path.join(__dirname, "..", `Pulumi.${name}.yaml`), "utf8")) as {
      config: Record<string, unknown>;
    };
  const raw = (name: string): Record<string, string> =>
    Object.fromEntries(
      Object.entries(stackFile(name).config).map(([k, v]) => [
        k.replace(/^chitram:/, ""),
        typeof v === "string" ? v : JSON.stringify(v),
      ]),
    );

  it("names reserved for examples are placeholders; real ones are not", () => {
    for (const n of [
      "chitram.example.com",
      "ops@example.com",
      "a.example.org",
      "x@y.example",
      "app.test",
      "b.invalid",
    ])
      assert.equal(isExampleName(n), true, n);
    for (const n of ["chitram.app", "ops@chitram.app", "example.chitram.app", "myexample.com"])
      assert.equal(isExampleName(n), false, n);
    for (const i of ["ghcr.io/example/chitram:1.0.0", "example/chitram:1", "registry.example.com/chitram:1"])
      assert.equal(isExampleImage(i), true, i);
    for (const i of [
      "ghcr.io/acme/chitram:1.0.0",
      "chitram:1",
      "example:1",
      "registry.digitalocean.com/example-co/app:1",
    ])
      assert.equal(isExampleImage(i), false, i);
  });

  it("the example stack files' placeholders are each refused by key on a DigitalOcean stack, with what to put there", () => {
    const prod = deployProblems(parseSections(withDefaults(raw("prod")), "prod", "unset"), spaces);
    const keyed = (key: string) => prod.filter((p) => p.startsWith(`chitram:${key}: `));
    assert.match(
      keyed("appImage")[0],
      /"ghcr\.io\/example\/chitram:1\.0\.0" is a placeholder.*pulumi config set chitram:appImage /,
    );
    assert.match(
      keyed("domain")[0],
      /"chitram\.example\.com" is a placeholder.*set the domain.*or remove it for IP mode/,
    );
    assert.match(keyed("acmeEmail")[0], /"ops@example\.com" is a placeholder/);
    assert.match(
      keyed("alertEmails")[0],
      /"ops@example\.com" is a placeholder.*--path 'chitram:alertEmails\[0\]'/,
    );
    assert.equal(prod.length, 4, prod.join("\n"));
    const staging = deployProblems(parseSections(withDefaults(raw("staging")), "staging", "unset"), spaces);
    assert.deepEqual(
      staging.map((p) => p.split(":")[1]),
      ["appImage"],
    );
    // the same stacks with real values pass
    const real = {
      appImage: "ghcr.io/acme/chitram:1.0.0",
      domain: "chitram.app",
      acmeEmail: "ops@chitram.app",
      alertEmails: '["ops@chitram.app"]',
    };
    assert.deepEqual(
      deployProblems(parseSections(withDefaults({ ...raw("prod"), ...real }), "prod", "unset"), spaces),
      [],
    );
    // target existing creates nothing in the cloud: its own checks only
    assert.deepEqual(
      deployProblems(sections({ ...existing, appImage: "ghcr.io/example/chitram:1" }, "secret"), spaces),
      [],
    );
  });

  it("offsiteBackups on DigitalOcean without a Spaces key in the environment names both variables", () => {
    const config = sections({ offsiteBackups: "true", appImage: "ghcr.io/acme/chitram:1" });
    const [problem, ...rest] = deployProblems(config, { spacesKeys: false });
    assert.deepEqual(rest, []);
    assert.match(
      problem,
      /^chitram:offsiteBackups: .*export SPACES_ACCESS_KEY_ID and SPACES_SECRET_ACCESS_KEY/,
    );
    assert.deepEqual(deployProblems(config, spaces), []);
  });

  it("objectStore spaces on DigitalOcean without a Spaces key, or with an endpoint the host cannot use, is refused by key", () => {
    const config = sections({ objectStore: "spaces", appImage: "ghcr.io/acme/chitram:1" });
    const [problem, ...rest] = deployProblems(config, { spacesKeys: false });
    assert.deepEqual(rest, []);
    assert.match(
      problem,
      /^chitram:objectStore: spaces creates a Spaces bucket.*or set objectStore to minio$/,
    );
    assert.deepEqual(deployProblems(config, spaces), []);
    const [bad] = deployProblems(config, {
      spacesKeys: true,
      spacesEndpoint: "ftp://{{.Region}}.example.com",
    });
    assert.match(bad, /for the app's bucket, which the host cannot use/);
  });

  it("the provider's Spaces endpoint, where the host copies backups, must be one the host can use; the key is named", () => {
    const config = sections({ offsiteBackups: "true", appImage: "ghcr.io/acme/chitram:1" });
    for (const ok of ["https://{{.Region}}.digitaloceanspaces.com", "http://172.31.7.2:9000", ""])
      assert.deepEqual(deployProblems(config, { ...spaces, spacesEndpoint: ok }), [], ok);
    const [problem, ...rest] = deployProblems(config, {
      ...spaces,
      spacesEndpoint: "https://spaces.example/{{.Region}}",
    });
    assert.deepEqual(rest, []);
    assert.match(
      problem,
      /^digitalocean:spacesEndpoint \(or SPACES_ENDPOINT_URL\): .* gives "https:\/\/spaces\.example\/nyc3" .*use https:\/\/host\[:port\]/,
    );
    assert.equal(spacesEndpointFor("", "NYC3"), "https://nyc3.digitaloceanspaces.com");
  });

  it("the program stops on them before any resource when it deploys for real, and only warns under mocks", async () => {
    const registered: unknown[] = [];
    await assert.rejects(
      runProgram({ stack: "prod", config: raw("prod"), deployChecks: true, registered: registered as never }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.match(err.message, /chitram:appImage: .* is a placeholder/);
        assert.match(err.message, /chitram:offsiteBackups: /);
        return true;
      },
    );
    assert.deepEqual(registered, [], "a resource was registered");
    const mocked = await runProgram({ stack: "prod", config: raw("prod") });
    assert.ok(mocked.resources.length > 10);
  });

  it("backupHeartbeatUrl set in plain text is refused without echoing it", () => {
    const url = "https://hc-ping.com/0f4c2f2e-1a7e-4c38-9a55-3b0c2d7c5e11";
    assert.throws(
      () =>
        parseConfig(withDefaults({ ...valid, backupHeartbeatUrl: url }), "test", "unset", undefined, [
          "backupHeartbeatUrl",
        ]),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(
          err.message,
          /chitram:backupHeartbeatUrl: is set in plain text.*pulumi config set --secret chitram:backupHeartbeatUrl/,
        );
        assert.ok(!err.message.includes(url));
        return true;
      },
    );
  });
});

describe("config: one rule per key", () => {
  it("target: digitalocean or existing", () =>
    rejects({ target: "aws" }, "target", /digitalocean, existing/));
  it("region: a DigitalOcean region slug", () => rejects({ region: "us-east-1" }, "region", /nyc3/));
  it("region: the regions where droplets can be created today, atl1 included, retired ones out", () => {
    for (const region of DROPLET_REGIONS) assert.equal(parse({ region }).region, region);
    assert.ok(DROPLET_REGIONS.includes("atl1"));
    for (const retired of ["nyc2", "ams2", "sfo1"]) {
      rejects({ region: retired }, "region", /use one of: nyc1, nyc3, .*atl1/);
    }
  });
  it("extraRegions: allows a region the built-in list does not have yet, and must hold region slugs", () => {
    rejects(
      { region: "ric1" },
      "region",
      /use one of: .*; a region DigitalOcean opened since can be added to chitram:extraRegions \(e\.g\. \["ric1"\]\)/,
    );
    assert.equal(parse({ region: "ric1", extraRegions: '["ric1"]' }).region, "ric1");
    rejects({ extraRegions: '["Richmond 1"]' }, "extraRegions", /region slug such as atl1/);
  });
  it("size: a slug of DigitalOcean's size table with at least 2 GB of memory, CPU-optimised ones included", () => {
    rejects(
      { size: "s-1vcpu-1gb" },
      "size",
      /it has 1024 MB of memory; the four services need at least 2 GB/,
    );
    rejects({ size: "s-1vcpu-512mb-10gb" }, "size", /it has 512 MB/);
    for (const ok of [
      "s-2vcpu-2gb",
      "s-2vcpu-4gb-amd",
      "c-2",
      "c-4",
      "c2-2vcpu-4gb",
      "g-2vcpu-8gb",
      "m-2vcpu-16gb",
      "so1_5-2vcpu-16gb",
    ])
      assert.equal(parse({ size: ok }).size, ok);
    rejects(
      { size: "s-2vcpu-3gb" },
      "size",
      /table of 2026-12 in config\/dropletSizes\.ts\); a size DigitalOcean added since can be added to chitram:extraSizes/,
    );
  });
  it("extraSizes: a size the table does not have yet, still at least 2 GB when its name gives its memory", () => {
    assert.equal(parse({ size: "s-4vcpu-12gb", extraSizes: '["s-4vcpu-12gb"]' }).size, "s-4vcpu-12gb");
    assert.equal(parse({ size: "x-new", extraSizes: '["x-new"]' }).size, "x-new");
    rejects({ size: "s-1vcpu-1536mb", extraSizes: '["s-1vcpu-1536mb"]' }, "size", /it has 1536 MB/);
    rejects({ extraSizes: '["Big One"]' }, "extraSizes", /droplet size slug/);
  });
  it("image: an image slug", () => rejects({ image: "Ubuntu 22.04" }, "image", /image slug/));
  it("domain: bare DNS name, never an IP, scheme, path or port", () => {
    for (const bad of [
      "https://chitram.example.com",
      "chitram.example.com/app",
      "chitram.example.com:443",
      "203.0.113.5",
      "localhost",
      "::1",
      "Chitram.Example.com",
      "exa_mple.com",
    ]) {
      rejects({ domain: bad }, "domain", /bare lowercase DNS name/);
    }
    assert.equal(parse({ domain: "chitram.example.com" }).domain, "chitram.example.com");
  });
  it("acmeEmail: an email address", () =>
    rejects({ acmeEmail: "ops-at-example" }, "acmeEmail", /email address/));
  it("manageDns: true or false", () => rejects({ manageDns: "yes" }, "manageDns", /true or false/));
  it("dnsZone: must contain the domain; default is the parent zone", () => {
    rejects({ domain: "chitram.example.com", dnsZone: "example.org" }, "dnsZone", /contains the domain/);
    assert.deepEqual(parse({ domain: "chitram.example.com" }).dns, {
      zone: "example.com",
      recordName: "chitram",
    });
    assert.deepEqual(parse({ domain: "example.com" }).dns, { zone: "example.com", recordName: "@" });
    assert.equal(parse({ domain: "chitram.example.com", manageDns: "false" }).dns, undefined);
  });
  it("sshAllowedCidrs: valid IPv4/IPv6 CIDRs", () => {
    rejects({ sshAllowedCidrs: '["10.0.0.0/33"]' }, "sshAllowedCidrs", /CIDR/);
    rejects({ sshAllowedCidrs: '["203.0.113.4"]' }, "sshAllowedCidrs", /CIDR/);
    rejects({ sshAllowedCidrs: '["2001:db8::/129"]' }, "sshAllowedCidrs", /CIDR/);
    rejects({ sshAllowedCidrs: "0.0.0.0/0" }, "sshAllowedCidrs", /list of strings/);
    rejects({ sshAllowedCidrs: "[]" }, "sshAllowedCidrs", /at least one/);
    assert.deepEqual(
      parse({ sshAllowedCidrs: '["203.0.113.0/24","2001:db8::/32"]' }).sshAllowedCidrs.length,
      2,
    );
  });
  it("deployUser: a Linux user name, not root", () => {
    rejects({ deployUser: "root" }, "deployUser", /not root/);
    rejects({ deployUser: "Deploy User" }, "deployUser", /Linux user name/);
    rejects({ deployUser: "1deploy" }, "deployUser", /Linux user name/);
  });
  it("closeRootLogin: true or false", () =>
    rejects({ closeRootLogin: "1" }, "closeRootLogin", /true or false/));
  it("appImage: required, a container image reference", () => {
    assert.throws(
      () => parseConfig(withDefaults({}), "test", "unset"),
      /chitram:appImage: is not set, and it is required; set your app's container image, e\.g\. pulumi config set chitram:appImage /,
    );
    rejects({ appImage: "ghcr.io/Example/Chitram:1.0" }, "appImage", /image reference/);
    rejects({ appImage: "chitram:has space" }, "appImage", /image reference/);
    for (const ok of [
      "chitram",
      "chitram:sandbox",
      "registry.example.com:5000/team/chitram:1.2.3",
      `ghcr.io/x/y@sha256:${"a".repeat(64)}`,
    ]) {
      assert.equal(parse({ appImage: ok }).appImage, ok);
    }
  });
  it("appPort: 1-65535", () => {
    rejects({ appPort: "0" }, "appPort", /1 to 65535/);
    rejects({ appPort: "65536" }, "appPort", /1 to 65535/);
    rejects({ appPort: "80.5" }, "appPort", /whole number/);
  });
  it("healthPath: a path from / with an optional query string; shell characters are refused", () => {
    rejects({ healthPath: "health" }, "healthPath", /starts with \//);
    const hostile = ["/health$(id)", "/he'alth", "/he alth", "/health;id", "/health`id`", '/he"alth'];
    hostile.push("/health#top", "/health|id", "/he%zzalth", "/health?a=$(id)", "/he&alth", "/health\nid");
    for (const p of hostile)
      rejects({ healthPath: p }, "healthPath", /query string after \? .*no spaces, quotes/);
    for (const p of [
      "/health",
      "/health?a=1&b=2",
      "/api/v1/health",
      "/health%20check",
      "/-/ready",
      "/health?",
    ])
      assert.equal(parse({ healthPath: p }).healthPath, p);
  });
  it("backupSchedule: a five-field cron expression", () => {
    rejects({ backupSchedule: "@daily" }, "backupSchedule", /five-field cron/);
    rejects({ backupSchedule: "0 3 * *" }, "backupSchedule", /has 4 fields/);
    rejects({ backupSchedule: "60 3 * * *" }, "backupSchedule", /minute field/);
    rejects({ backupSchedule: "0 24 * * *" }, "backupSchedule", /hour field/);
    rejects({ backupSchedule: "0 3 * * 8" }, "backupSchedule", /day of week/);
    rejects({ backupSchedule: "0 3 */0 * *" }, "backupSchedule", /bad step/);
    for (const ok of ["*/15 * * * *", "0 3 * * mon-fri", "30 2 1,15 jan,jul *", "0 0-6/2 * * 7"]) {
      assert.equal(cronProblem(ok), undefined, ok);
    }
  });
  it("releaseTimeoutSeconds: 10-1800", () => {
    rejects({ releaseTimeoutSeconds: "9" }, "releaseTimeoutSeconds", /10 to 1800/);
    rejects({ releaseTimeoutSeconds: "1801" }, "releaseTimeoutSeconds", /10 to 1800/);
  });

  it("backupHeartbeatUrl: an http(s) URL that /fail can be appended to, never echoed back", () => {
    const token = "0b8c4f1e-7d2a-4c55-9e3b-5a1f2d3c4b5a";
    for (const bad of [
      `ftp://hc-ping.com/${token}`,
      `https://hc-ping.com/${token}/`,
      `https://hc-ping.com/${token}?create=1`,
      `https://user:pw@hc-ping.com/${token}`,
      `https://hc-ping.com/${token}'; rm -rf /`,
      `https://hc-ping.com/"${token}"`,
      `hc-ping.com/${token}`,
    ]) {
      rejects({ backupHeartbeatUrl: bad }, "backupHeartbeatUrl", /http\(s\) URL/);
      assert.throws(
        () => parse({ backupHeartbeatUrl: bad }),
        (err: Error) => !err.message.includes(token),
        "the message must not show the URL (its path is a token)",
      );
    }
    assert.equal(parse({}).backupHeartbeat, false);
    assert.equal(parse({ backupHeartbeatUrl: `https://hc-ping.com/${token}` }).backupHeartbeat, true);
    assert.equal(
      parse({ backupHeartbeatUrl: "http://10.0.0.1:8000/ping/abc_DEF-1.2" }).backupHeartbeat,
      true,
    );
  });

  it("offsite*: target existing needs an https endpoint, a bucket and keys (never echoed); digitalocean takes none", () => {
    const keys = { offsiteAccessKey: "DO00EXAMPLEKEY", offsiteSecretKey: "s3cr3t/key+value=" };
    const on = {
      ...keys,
      offsiteBackups: "true",
      offsiteEndpoint: "https://fra1.digitaloceanspaces.com",
      offsiteBucket: "chitram-bk",
    };
    assert.deepEqual(parseConfig(withDefaults({ ...existing, ...on }), "test", "secret").offsite, {
      kind: "existing",
      endpoint: "https://fra1.digitaloceanspaces.com",
      bucket: "chitram-bk",
    });
    const rejectsExisting = (o: RawConfig, key: string, allowed: RegExp) =>
      rejects({ ...existing, ...on, ...o }, key, allowed, "secret");
    rejectsExisting({ offsiteEndpoint: "" }, "offsiteEndpoint", /https:\/\/host/);
    rejectsExisting({ offsiteEndpoint: "https://x.example.com/path" }, "offsiteEndpoint", /https:\/\/host/);
    rejectsExisting({ offsiteEndpoint: "http://spaces.example.com" }, "offsiteEndpoint", /https:\/\/host/);
    rejectsExisting({ offsiteBucket: "Bad_Bucket" }, "offsiteBucket", /bucket's name/);
    rejectsExisting({ offsiteSecretKey: "it's'bad" }, "offsiteSecretKey", /--secret/);
    assert.throws(
      () => parseConfig(withDefaults({ ...existing, ...on, offsiteSecretKey: "it's'bad" }), "test", "secret"),
      (err: Error) => !err.message.includes("it's'bad"),
    );
    // Set without --secret, either key is refused, and neither is echoed.
    for (const k of ["offsiteAccessKey", "offsiteSecretKey"] as const) {
      assert.throws(
        () => parseConfig(withDefaults({ ...existing, ...on }), "test", "secret", undefined, [k]),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          const line = err.problems.find((p) => p.startsWith(`chitram:${k}:`));
          assert.match(line ?? "", /in plain text.*pulumi config set --secret chitram:/, err.message);
          assert.ok(!err.message.includes(keys[k]), "the message must not show the key");
          return true;
        },
      );
    }
    assert.deepEqual(parse({ offsiteBackups: "true" }).offsite, { kind: "spaces" });
    assert.equal(parse({}).offsite, undefined);
    rejects(
      { offsiteBackups: "true", offsiteBucket: "mine" },
      "offsiteBucket",
      /only used with .* target existing/,
    );
  });

  it("acmeCa: letsencrypt (Caddy's default, nothing rendered), staging, or an https directory URL", () => {
    const domain = { domain: "chitram.example.com" };
    assert.equal(parse(domain).acmeCa, undefined);
    assert.equal(
      parse({ ...domain, acmeCa: "staging" }).acmeCa,
      "https://acme-staging-v02.api.letsencrypt.org/directory",
    );
    assert.equal(
      parse({ ...domain, acmeCa: "https://ca.internal:14000/dir" }).acmeCa,
      "https://ca.internal:14000/dir",
    );
    // A private CA addressed by IP (the sandbox's pebble, test/host/domain.test.ts).
    assert.equal(
      parse({ ...domain, acmeCa: "https://172.18.0.4:14000/dir" }).acmeCa,
      "https://172.18.0.4:14000/dir",
    );
    assert.equal(parse({ acmeCa: "staging" }).acmeCa, undefined, "IP mode has no ACME");
    for (const bad of [
      "zerossl",
      "http://ca.internal/dir",
      "https://ca.internal/dir {",
      "https://ca internal/dir",
    ]) {
      rejects({ ...domain, acmeCa: bad }, "acmeCa", /letsencrypt, staging, or the https URL/);
    }
  });

  it("acmeCaRoot: a private ACME CA's roots in PEM, for its URL only; staging brings Let's Encrypt's staging roots", () => {
    const domain = { domain: "chitram.example.com" };
    const pem = fs.readFileSync(
      path.join(__dirname, "..", "host", "ca", "letsencrypt-staging-roots.pem"),
      "utf8",
    );
    const [first] = pem
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n")
      .split(/(?<=-----END CERTIFICATE-----)\n/);
    assert.equal(parse(domain).acmeCaRoots, undefined, "letsencrypt: the system's store alone");
    const staging = parse({ ...domain, acmeCa: "staging" }).acmeCaRoots!;
    assert.match(staging, /^-----BEGIN CERTIFICATE-----\n/);
    assert.equal(staging.match(/BEGIN CERTIFICATE/g)?.length, 2, "Pretend Pear X1 and Bogus Broccoli X2");
    assert.doesNotMatch(staging, /^#/m);
    const privateCa = { ...domain, acmeCa: "https://ca.internal:14000/dir" };
    assert.equal(parse({ ...privateCa, acmeCaRoot: first }).acmeCaRoots, `${first}\n`);
    assert.equal(parse(privateCa).acmeCaRoots, undefined);
    rejects(
      { ...domain, acmeCaRoot: first },
      "acmeCaRoot",
      /only with acmeCa set to the URL of another ACME CA/,
    );
    rejects(
      { ...domain, acmeCa: "staging", acmeCaRoot: first },
      "acmeCaRoot",
      /only with acmeCa set to the URL/,
    );
    for (const bad of [
      "not a certificate",
      `${first}\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----`,
    ])
      rejects({ ...privateCa, acmeCaRoot: bad }, "acmeCaRoot", /PEM, as -----BEGIN CERTIFICATE----- blocks/);
    assert.equal(parse({ acmeCa: "staging" }).acmeCaRoots, undefined, "IP mode has no ACME");
  });

  it("the shipped staging roots are Let's Encrypt's, by their published sha256 fingerprints", () => {
    const pem = fs.readFileSync(
      path.join(__dirname, "..", "host", "ca", "letsencrypt-staging-roots.pem"),
      "utf8",
    );
    const fingerprints = pem
      .split(/(?=-----BEGIN CERTIFICATE-----)/)
      .filter((b) => b.startsWith("-----BEGIN"))
      .map((b) => new X509Certificate(b).fingerprint256);
    assert.deepEqual(fingerprints, [
      "E7:05:70:A9:89:F8:56:5A:AB:DF:7C:AE:27:AB:D1:62:18:72:D6:A3:F8:11:E3:FE:F2:7E:3D:BA:02:91:21:98",
      "9B:2A:33:9F:E6:A3:E8:55:85:C4:CD:75:53:6C:B8:C1:CF:7C:D6:03:B9:A6:4B:EC:25:21:85:8A:E4:8D:A8:5D",
    ]);
  });

  it("backupRetentionDays: 1-365", () => {
    rejects({ backupRetentionDays: "0" }, "backupRetentionDays", /1 to 365/);
    rejects({ backupRetentionDays: "366" }, "backupRetentionDays", /1 to 365/);
  });
  it("dataVolumeSizeGb: 0 or a volume size", () =>
    rejects({ dataVolumeSizeGb: "-1" }, "dataVolumeSizeGb", /0 to 16384/));
  it("protectData: true or false", () => rejects({ protectData: "no" }, "protectData", /true or false/));
  it("swapSizeMb: 0-16384", () => rejects({ swapSizeMb: "99999" }, "swapSizeMb", /0 to 16384/));
  it("database: container by default; managed gives the cluster's size and nodes", () => {
    assert.deepEqual(sections({}).database, { kind: "container" });
    assert.deepEqual(
      sections({ database: "managed", databaseSize: "db-s-1vcpu-2gb", databaseNodes: "2" }).database,
      { kind: "managed", size: "db-s-1vcpu-2gb", nodes: 2 },
    );
    // The size keys are checked whichever the database, so a typo is never silent.
    rejects({ databaseSize: "s-2vcpu-2gb" }, "databaseSize", /db-s-1vcpu-1gb/);
    rejects({ database: "postgres" }, "database", /container, managed/);
  });
  it("objectStore: minio by default; spaces in the droplet's region, protected with the data; not on target existing", () => {
    assert.deepEqual(sections({}).objects, { kind: "minio" });
    assert.deepEqual(sections({ objectStore: "spaces", region: "fra1", protectData: "false" }).objects, {
      kind: "spaces",
      region: "fra1",
      protect: false,
      endpoint: "https://fra1.digitaloceanspaces.com",
    });
    rejects({ objectStore: "s3" }, "objectStore", /minio, spaces/);
    rejects({ ...existing, objectStore: "spaces" }, "objectStore", /with target existing use minio/);
  });
  it("database: managed only on DigitalOcean; nodes 1-3; standbys need 2 GB or more", () => {
    rejects({ ...existing, database: "managed" }, "database", /with target existing use container/);
    rejects({ database: "managed", databaseNodes: "4" }, "databaseNodes", /1 to 3/);
    rejects({ database: "managed", databaseNodes: "2" }, "databaseNodes", /2 GB or more/);
    assert.equal(sections({ databaseNodes: "2" }).database.kind, "container");
  });
  it("appHosts: 1 by default; 2-10 with the managed database and Spaces, on DigitalOcean, without a volume; with a domain, its zone in DigitalOcean DNS and Let's Encrypt", () => {
    assert.equal(sections({}).appHosts, 1);
    const scaled = { database: "managed", objectStore: "spaces", dataVolumeSizeGb: "0" };
    assert.equal(sections({ ...scaled, appHosts: "3" }).appHosts, 3);
    rejects({ ...scaled, appHosts: "0" }, "appHosts", /1 to 10/);
    rejects({ ...scaled, appHosts: "11" }, "appHosts", /1 to 10/);
    rejects({ ...scaled, database: "container", appHosts: "2" }, "appHosts", /set database to managed/);
    rejects({ ...scaled, objectStore: "minio", appHosts: "2" }, "appHosts", /set objectStore to spaces/);
    rejects(
      { ...scaled, dataVolumeSizeGb: "20", appHosts: "2" },
      "dataVolumeSizeGb",
      /use 0 with appHosts 2/,
    );
    rejects({ ...existing, appHosts: "2" }, "appHosts", /with target existing use 1/);
    const domain = { ...scaled, appHosts: "2", domain: "chitram.app", acmeEmail: "ops@chitram.app" };
    assert.equal(sections({ ...domain, manageDns: "true" }).appHosts, 2);
    rejects({ ...domain, manageDns: "false" }, "manageDns", /zone in DigitalOcean DNS/);
    rejects({ ...domain, manageDns: "true", acmeCa: "staging" }, "acmeCa", /use letsencrypt with appHosts 2/);
    // The backup uptime check watches one droplet: with several, alerts need the heartbeat URL.
    const alerts = { ...scaled, appHosts: "2", alertEmails: '["ops@chitram.app"]' };
    rejects(alerts, "backupHeartbeatUrl", /set it with appHosts 2 and alertEmails/);
    // One droplet keeps every choice it had.
    assert.equal(sections({ dataVolumeSizeGb: "20", appHosts: "1" }).appHosts, 1);
  });
  it("alertEmails: email addresses", () => {
    rejects({ alertEmails: '["ops@example.com", "pager"]' }, "alertEmails", /email address/);
    rejects({ alertEmails: "ops@example.com" }, "alertEmails", /list of strings/);
  });
  it("target existing: host, sshPort, sshUser and sshPrivateKey are required and checked", () => {
    rejects({ ...existing, host: "" }, "host", /SSH host's address/, "secret");
    rejects({ ...existing, host: "http://h" }, "host", /SSH host's address/, "secret");
    rejects({ ...existing, sshPort: "70000" }, "sshPort", /1 to 65535/, "secret");
    rejects({ ...existing, sshUser: "Admin User" }, "sshUser", /Linux user name/, "secret");
    rejects(existing, "sshPrivateKey", /--secret/, "unset");
    assert.deepEqual(parse(existing, "secret").existingHost, {
      host: "192.0.2.7",
      port: 22,
      user: "root",
      hostKey: undefined,
    });
  });
  it("hostKey: an ED25519 or ECDSA key as ssh-keyscan prints it, target existing only", () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7aWYi2bVXdnKqZ4Ym0pmQ2a4hA3n0mO5lEbdIivTzB";
    assert.equal(parse({ ...existing, hostKey: `${key} root@web1` }, "secret").existingHost?.hostKey, key);
    const ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=";
    assert.equal(parse({ ...existing, hostKey: ecdsa }, "secret").existingHost?.hostKey, ecdsa);
    rejects(
      { ...existing, hostKey: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ==" },
      "hostKey",
      /ED25519 or ECDSA/,
      "secret",
    );
    rejects(
      { ...existing, hostKey: "192.0.2.7 ssh-ed25519 AAAA" },
      "hostKey",
      /without the host name/,
      "secret",
    );
    rejects({ ...existing, hostKey: "ssh-ed25519 AAAA$(id)" }, "hostKey", /ED25519 or ECDSA/, "secret");
    rejects({ hostKey: key }, "hostKey", /target: existing only/);
  });
  it("retro #3: a passphrase-protected sshPrivateKey is rejected, naming the key; passphrase-free keys pass", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-keys-"));
    const keygen = (name: string, passphrase: string, ...args: string[]) => {
      const file = path.join(dir, name);
      const r = spawnSync("ssh-keygen", ["-q", "-N", passphrase, "-C", "", "-f", file, ...args], {
        encoding: "utf8",
      });
      assert.equal(r.status, 0, `ssh-keygen: ${r.stderr}`);
      return fs.readFileSync(file, "utf8");
    };
    try {
      const locked = {
        "OpenSSH (bcrypt kdf)": keygen("openssh", "a passphrase", "-t", "ed25519"),
        "PEM (Proc-Type: 4,ENCRYPTED)": keygen("pem", "a passphrase", "-t", "rsa", "-b", "2048", "-m", "PEM"),
        "PKCS#8 (ENCRYPTED PRIVATE KEY)": keygen(
          "pkcs8",
          "a passphrase",
          "-t",
          "rsa",
          "-b",
          "2048",
          "-m",
          "PKCS8",
        ),
      };
      for (const [format, key] of Object.entries(locked)) {
        rejects(existing, "sshPrivateKey", /protected by a passphrase.*ssh-keygen -p -N ''/, "secret", key);
        assert.throws(
          () => parse(existing, "secret", key),
          (err: ConfigError) => !err.message.includes(key.split("\n")[1]),
          `${format}: the error must not print the key`,
        );
      }
      for (const key of [
        keygen("free-openssh", "", "-t", "ed25519"),
        keygen("free-pem", "", "-t", "rsa", "-b", "2048", "-m", "PEM"),
      ]) {
        assert.equal(isPassphraseProtected(key), false);
        assert.deepEqual(parse(existing, "secret", key).existingHost, {
          host: "192.0.2.7",
          port: 22,
          user: "root",
          hostKey: undefined,
        });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it("target existing: no DigitalOcean-only features", () => {
    rejects({ ...existing, dataVolumeSizeGb: "10" }, "dataVolumeSizeGb", /target existing use 0/, "secret");
    rejects(
      { ...existing, alertEmails: '["ops@example.com"]' },
      "alertEmails",
      /target existing leave it empty/,
      "secret",
    );
    rejects(
      { ...existing, domain: "chitram.example.com", manageDns: "true" },
      "manageDns",
      /set it to false/,
      "secret",
    );
  });
  it("sshPrivateKey: set without --secret is refused, for any target, naming the command to use", () => {
    rejects(
      existing,
      "sshPrivateKey",
      /in plain text.*pulumi config set --secret chitram:sshPrivateKey/,
      "plaintext",
    );
    rejects(
      {},
      "sshPrivateKey",
      /in plain text.*pulumi config set --secret chitram:sshPrivateKey/,
      "plaintext",
    );
  });
  it("every problem is reported at once, not one per run", () => {
    assert.throws(
      () => parse({ size: "s-1vcpu-1gb", appPort: "0", deployUser: "root" }),
      (err: ConfigError) => err.problems.length === 3,
    );
  });
});

describe("config: unknown keys and how errors reach the CLI", () => {
  it("an unknown key is an error naming it and the nearest known key", () => {
    const cases: [string, string][] = [
      ["regoin", "region"],
      ["backupRetentionDay", "backupRetentionDays"],
      ["sshallowedcidrs", "sshAllowedCidrs"],
      ["appimage", "appImage"],
    ];
    for (const [typo, meant] of cases) {
      assert.throws(
        () => parse({ [typo]: "x" }),
        (err: ConfigError) => {
          assert.deepEqual(err.problems.length, 1, err.message);
          assert.match(
            err.problems[0],
            new RegExp(`^chitram:${typo} is not a known key; did you mean chitram:${meant}\\?`),
          );
          return true;
        },
      );
    }
  });

  it("the error is a pulumi.RunError (the CLI prints it without a stack trace) and its message lists every problem", () => {
    assert.throws(
      () => parse({ size: "s-1vcpu-1gb", appPort: "0", regoin: "ams3", region: "nyc2" }),
      (err: unknown) => {
        assert.ok(err instanceof pulumi.RunError, `not a RunError: ${String(err)}`);
        assert.ok(pulumi.RunError.isInstance(err));
        const lines = err.message.split("\n");
        assert.equal(lines[0], "Invalid configuration:");
        for (const key of ["regoin", "region", "size", "appPort"]) {
          assert.equal(
            lines.filter((l) => l.startsWith(`  - chitram:${key}`)).length,
            1,
            `${key}:\n${err.message}`,
          );
        }
        assert.equal(lines.length, 5, err.message);
        return true;
      },
    );
  });

  it("the program reads every key of the namespace from Pulumi's config, so a typo in a stack file is caught", async () => {
    await assert.rejects(
      runProgram({ stack: "staging", config: { ...STAGING, regoin: "ams3" } }),
      (err: unknown) => {
        assert.ok(pulumi.RunError.isInstance(err), `not a RunError: ${String(err)}`);
        assert.match(err.message, /chitram:regoin is not a known key; did you mean chitram:region\?/);
        return true;
      },
    );
  });
});

describe("config: secrets travel in their sections, as secrets", () => {
  /** An Output's value and whether it is secret. */
  async function reveal(input: pulumi.Input<string> | undefined): Promise<[string, boolean]> {
    assert.ok(input !== undefined, "no value");
    const o = pulumi.output(input);
    const value = await new Promise<string>((resolve) => o.apply((v) => (resolve(v), v)));
    return [value, await pulumi.isSecret(o)];
  }
  const ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n";

  it("the SSH key, the off-box keys, the heartbeat URL and the registry credential", async () => {
    const c = sections(
      {
        ...existing,
        offsiteBackups: "true",
        offsiteEndpoint: "https://fra1.digitaloceanspaces.com",
        offsiteBucket: "chitram-bk",
        offsiteAccessKey: "DO00EXAMPLEKEY",
        offsiteSecretKey: "s3cr3t/key+value=",
        backupHeartbeatUrl: "https://hc-ping.com/abc",
        registryServer: "ghcr.io",
        registryUsername: "example-bot",
        registryPassword: "registry-password",
      },
      "secret",
      ssh,
    );
    assert.ok(c.host.target === "existing");
    assert.deepEqual(await reveal(c.host.existing.privateKey), [ssh, true]);
    assert.ok(c.backup.offsite?.kind === "existing");
    assert.deepEqual(await reveal(c.backup.offsite.accessKey), ["DO00EXAMPLEKEY", true]);
    assert.deepEqual(await reveal(c.backup.offsite.secretKey), ["s3cr3t/key+value=", true]);
    assert.deepEqual(await reveal(c.backup.heartbeatUrl), ["https://hc-ping.com/abc", true]);
    const registry = c.release.registry;
    assert.ok(registry !== undefined && "password" in registry);
    assert.deepEqual(await reveal(registry.password), ["registry-password", true]);
    assert.deepEqual(await reveal(registry.username), ["example-bot", true]);
  });

  it("a registry user name set in plain text stays plain; the password is a secret whatever", async () => {
    const c = parseSections(
      withDefaults({ ...valid, registryServer: "ghcr.io", registryUsername: "bot", registryPassword: "pw" }),
      "test",
      "unset",
      undefined,
      ["registryUsername"],
    );
    const registry = c.release.registry;
    assert.ok(registry !== undefined && "password" in registry);
    assert.deepEqual(await reveal(registry.username), ["bot", false]);
    assert.deepEqual(await reveal(registry.password), ["pw", true]);
  });

  it("the off-box bucket the stack creates gets the droplet's region and protection", () => {
    const c = sections({
      offsiteBackups: "true",
      region: "fra1",
      protectData: "false",
      backupRetentionDays: "9",
    });
    assert.deepEqual(c.backup.offsite, {
      kind: "spaces",
      region: "fra1",
      retentionDays: 9,
      protect: false,
      endpoint: "https://fra1.digitaloceanspaces.com",
    });
  });
});

describe("config: private registry", () => {
  const secret = "s3cret-Registry-Token-value";
  const ghcr = {
    registryServer: "ghcr.io",
    registryUsername: "example-bot",
    registryPassword: secret,
  };
  const withRegistry = (o: RawConfig, plaintext: string[] = []) =>
    parseConfig(withDefaults({ ...valid, ...o }), "test", "unset", undefined, plaintext);
  /** The problems of a config that must be refused (each line, joined). */
  const problems = (o: RawConfig, plaintext: string[] = []): string => {
    try {
      withRegistry(o, plaintext);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return e.message;
    }
    assert.fail(`accepted: ${JSON.stringify(o)}`);
  };
  const refuses = (o: RawConfig, key: string, allowed: RegExp, plaintext: string[] = []) => {
    const message = problems(o, plaintext);
    const line = message.split("\n").find((l) => l.trim().startsWith(`- chitram:${key}:`));
    assert.ok(line, `no problem names chitram:${key}:\n${message}`);
    assert.match(line, allowed);
    assert.ok(!message.includes(secret), `the password is echoed:\n${message}`);
  };

  it("by default there is no registry login; a server, user and secret password give one", () => {
    assert.equal(parse({}).registry, undefined);
    assert.deepEqual(withRegistry(ghcr).registry, { server: "ghcr.io", kind: "password" });
    const port = {
      ...ghcr,
      registryServer: "registry.example.com:5000",
      appImage: "registry.example.com:5000/chitram:1",
    };
    assert.equal(withRegistry(port).registry?.server, "registry.example.com:5000");
  });

  it("registryPassword set in plain text is refused without echoing it", () => {
    refuses(ghcr, "registryPassword", /in plain text.*pulumi config set --secret chitram:registryPassword/, [
      "registryPassword",
    ]);
  });

  it("a user name or password without registryServer is refused", () => {
    const noServer = { registryUsername: ghcr.registryUsername, registryPassword: ghcr.registryPassword };
    refuses(noServer, "registryUsername", /only used with registryServer/);
    refuses(noServer, "registryPassword", /only used with registryServer/);
  });

  it("a server without a user name or password is refused (but for DigitalOcean's own registry on a droplet)", () => {
    refuses(
      { ...ghcr, registryUsername: "" },
      "registryUsername",
      /with chitram:registryServer ghcr\.io, set/,
    );
    refuses(
      { ...ghcr, registryPassword: "" },
      "registryPassword",
      /set the password or token: pulumi config set --secret/,
    );
    const docr = "registry.digitalocean.com/acme-apps/chitram:1.0.0";
    refuses(
      { ...existing, appImage: docr, registryServer: "registry.digitalocean.com" },
      "registryUsername",
      /on target existing the stack cannot obtain/,
    );
  });

  it("for DigitalOcean's registry on target existing, a registryUsername in plain text (an API token) is refused without echoing it", () => {
    const token = "dop_v1_Plain0Text0Token0As0User0Name";
    const docr = {
      ...existing,
      appImage: "registry.digitalocean.com/acme-apps/chitram:1.0.0",
      registryServer: "registry.digitalocean.com",
      registryUsername: token,
      registryPassword: secret,
    };
    const message = problems(docr, ["registryUsername"]);
    assert.match(
      message,
      /chitram:registryUsername: for registry\.digitalocean\.com it is a DigitalOcean API token, .*pulumi config set --secret chitram:registryUsername/,
    );
    assert.ok(!message.includes(token), "the token is echoed");
    // a GHCR user name may be plain
    assert.doesNotThrow(() => withRegistry(ghcr));
  });

  it("a server that is not a bare host[:port] is refused", () => {
    for (const server of [
      "https://ghcr.io",
      "ghcr.io/example",
      "user@ghcr.io",
      "ghcr.io:99999",
      "GHCR.io",
      "ghcr.io;id",
      "ghcr.io ",
    ]) {
      refuses({ ...ghcr, registryServer: server }, "registryServer", /bare registry host\[:port\]/);
    }
  });

  it("Docker Hub is docker.io: an image without a registry host logs in there; its other names are refused", () => {
    for (const appImage of [
      "example/chitram:1",
      "docker.io/example/chitram:1",
      "index.docker.io/example/chitram:1",
    ]) {
      assert.deepEqual(withRegistry({ ...ghcr, registryServer: "docker.io", appImage }).registry, {
        server: "docker.io",
        kind: "password",
      });
    }
    for (const server of ["index.docker.io", "registry-1.docker.io"]) {
      refuses(
        { ...ghcr, registryServer: server, appImage: "example/chitram:1" },
        "registryServer",
        /use docker\.io/,
      );
    }
    refuses(
      { ...ghcr, appImage: "example/chitram:1" },
      "appImage",
      /pulled from docker\.io, .*or set registryServer to docker\.io/,
    );
  });

  it("an appImage whose registry host differs from registryServer only in case is told to lowercase it", () => {
    refuses(
      { ...ghcr, appImage: "GHCR.io/example/chitram:1.0.0" },
      "appImage",
      /write its registry host in lowercase, as chitram:registryServer is: ghcr\.io\/example\/chitram:1\.0\.0$/,
    );
    // Another registry in capitals: the advice names a registryServer the check accepts.
    const message = problems({ ...ghcr, appImage: "Registry.Example.com/chitram:1" });
    assert.match(message, /or set registryServer to registry\.example\.com$/m);
  });

  it("an appImage on another registry than registryServer is refused, naming both", () => {
    refuses(
      { ...ghcr, appImage: "registry.example.com/chitram:1.0.0" },
      "appImage",
      /pulled from registry\.example\.com, but chitram:registryServer is ghcr\.io/,
    );
    refuses({ ...ghcr, appImage: "example/chitram:1.0.0" }, "appImage", /pulled from docker\.io/);
  });

  it("a user name with a colon, space or newline, and a password of more than one line, are refused, neither echoed", () => {
    for (const user of ["a:b", "a b", "a\nb"]) {
      refuses({ ...ghcr, registryUsername: user }, "registryUsername", /no spaces or colon/);
    }
    // The user name may be a token (DigitalOcean's registry): never echoed either.
    const token = "dop_v1_0123456789abcdef:with-a-colon";
    const user = problems({ ...ghcr, registryUsername: token });
    assert.match(user, /chitram:registryUsername: the value set is not allowed/);
    assert.ok(!user.includes("dop_v1"), `the user name is echoed:\n${user}`);
    const twoLines = `${secret}\nsecond`;
    const message = problems({ ...ghcr, registryPassword: twoLines });
    assert.match(message, /chitram:registryPassword: the value set is not allowed; use one line/);
    assert.ok(!message.includes("second"), "the password is echoed");
  });

  it("DigitalOcean's registry on a droplet without user and password: the registry name comes from appImage", () => {
    const docr = {
      registryServer: "registry.digitalocean.com",
      appImage: "registry.digitalocean.com/acme-apps/chitram:1.0.0",
    };
    assert.deepEqual(withRegistry(docr).registry, {
      server: "registry.digitalocean.com",
      kind: "digitalocean",
      name: "acme-apps",
    });
    refuses(
      { ...docr, appImage: "registry.digitalocean.com/chitram:1.0.0" },
      "appImage",
      /use registry\.digitalocean\.com\/<registry name>\/<repository>:<tag>/,
    );
    // With a user and password set, they are used as given (e.g. a token with write scope).
    assert.equal(
      withRegistry({ ...docr, registryUsername: "tok", registryPassword: secret }).registry?.kind,
      "password",
    );
  });

  it("the program refuses a plain-text registryPassword before any resource", async () => {
    const config = { ...STAGING, appImage: "ghcr.io/example/chitram:1.0.0", ...ghcr };
    await assert.rejects(runProgram({ stack: "staging", config, secretKeys: [] }), (err: unknown) => {
      assert.match(String(err), /chitram:registryPassword: is set in plain text/);
      assert.ok(!String(err).includes(secret));
      return true;
    });
    await runProgram({ stack: "staging", config, secretKeys: ["registryPassword"] });
  });

  it("the program refuses the off-box bucket's keys in plain text before any resource", async () => {
    const keys = { offsiteAccessKey: "DO00EXAMPLEACCESSKEY", offsiteSecretKey: "example/secret+key=" };
    const config = {
      ...EXISTING,
      offsiteBackups: "true",
      offsiteEndpoint: "https://fra1.digitaloceanspaces.com",
      offsiteBucket: "chitram-bk",
      ...keys,
    };
    await assert.rejects(
      runProgram({ stack: "staging", config, secretKeys: ["sshPrivateKey"] }),
      (err: unknown) => {
        assert.match(String(err), /chitram:offsiteAccessKey: is set in plain text/);
        assert.match(String(err), /chitram:offsiteSecretKey: is set in plain text/);
        for (const v of Object.values(keys)) assert.ok(!String(err).includes(v));
        return true;
      },
    );
    await runProgram({ stack: "staging", config, secretKeys: ["sshPrivateKey", ...Object.keys(keys)] });
  });
});
