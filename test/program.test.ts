// The whole program under Pulumi's mocks: every resource and its inputs, secrets still secret,
// the remote steps' order and connections, and bad config stopping everything.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { decodeFiles } from "../remote/transfer";
import { BACKUP_CRON_HOST_ENV } from "../render/hostConfig";
import { renderRegistryLogin } from "../render/registryLogin";
import { sha256 } from "../remote/transfer";
import { parseEnvFile } from "../render/envFile";
import { CLOUD_CONFIG } from "../render/cloudConfig";
import { FIRST_CONTACT_DIAL_ERROR_LIMIT } from "../components/hostProvisioning";
import { RELEASE_KILL_AFTER_SECONDS, releaseStepLimit } from "../components/appDeployment";
import { RELEASE_TIMEOUT_MAX_SECONDS } from "../config/release";
import {
  MOCK_DROPLET_ID,
  MOCK_DROPLET_IP,
  MOCK_LB_IP,
  RecordedResource,
  replaceRealValue,
  runProgram,
} from "../harness/mockProgram";
import { planStep, ProgramStep, storedInputs } from "../harness/steps";
import { EXISTING, named, ofType, PROD, runStack, STAGING, step } from "./support";

const DROPLET = "digitalocean:index/droplet:Droplet";
const FIREWALL = "digitalocean:index/firewall:Firewall";
const VOLUME = "digitalocean:index/volume:Volume";
const DNS = "digitalocean:index/dnsRecord:DnsRecord";
const UPTIME = "digitalocean:index/uptimeCheck:UptimeCheck";

describe("program: DigitalOcean host in IP mode (staging)", async () => {
  const run = await runStack("staging", STAGING);

  it("creates one droplet from config, monitored, with the stack's key and constant user data", () => {
    const [droplet] = ofType(run, DROPLET);
    assert.equal(ofType(run, DROPLET).length, 1);
    assert.equal(droplet.inputs.size, "s-2vcpu-2gb");
    assert.equal(droplet.inputs.image, "ubuntu-22-04-x64");
    assert.equal(droplet.inputs.region, "nyc3");
    assert.equal(droplet.inputs.monitoring, true);
    assert.equal(droplet.inputs.name, "chitram-staging");
    assert.deepEqual(droplet.inputs.sshKeys, ["fingerprint-of-chitram-ssh-key"]);
    assert.equal(droplet.inputs.userData, CLOUD_CONFIG);
  });

  it("root's key on the droplet is the admin key, never the rotated stack or deploy key, and is not ignored", () => {
    assert.equal(
      named(run, "chitram-ssh-key").inputs.publicKey,
      "ssh-ed25519 PLACEHOLDER-public-key-of-admin-key chitram-deploy\n",
    );
    // A replaced droplet must get the key the stack logs in with, not an old stored one.
    assert.ok(!named(run, "chitram-droplet").options.ignoreChanges.includes("sshKeys"));
    assert.equal(step(run, "host-ready").connection.privateKey, "PLACEHOLDER-private-key-of-admin-key\n");
  });

  it("the SSH key is named after the stack, so staging and prod never clash", async () => {
    const prod = await runStack("prod", PROD);
    const a = named(run, "chitram-ssh-key").inputs.name;
    const b = named(prod, "chitram-ssh-key").inputs.name;
    assert.notEqual(a, b);
    assert.match(String(a), /staging/);
  });

  it("the firewall lets in 22 from sshAllowedCidrs and 80/443 from anywhere, nothing else", () => {
    const [fw] = ofType(run, FIREWALL);
    const rules = (
      fw.inputs.inboundRules as { protocol: string; portRange: string; sourceAddresses: string[] }[]
    ).map((r) => `${r.protocol}/${r.portRange} ${r.sourceAddresses.join(",")}`);
    assert.deepEqual(rules.sort(), [
      "tcp/22 0.0.0.0/0,::/0",
      "tcp/443 0.0.0.0/0,::/0",
      "tcp/80 0.0.0.0/0,::/0",
    ]);
    assert.deepEqual(fw.inputs.dropletIds, [MOCK_DROPLET_ID], "the firewall applies to the droplet");
  });

  it("sshAllowedCidrs reach the firewall's port 22 rule only", async () => {
    const r = await runStack("staging", { ...STAGING, sshAllowedCidrs: '["198.51.100.0/24"]' });
    const rules = ofType(r, FIREWALL)[0].inputs.inboundRules as {
      portRange: string;
      sourceAddresses: string[];
    }[];
    assert.deepEqual(rules.find((x) => x.portRange === "22")!.sourceAddresses, ["198.51.100.0/24"]);
    assert.deepEqual(rules.find((x) => x.portRange === "80")!.sourceAddresses, ["0.0.0.0/0", "::/0"]);
  });

  it("IP mode: no volume, no DNS record, no uptime check without alertEmails; a project groups the droplet", () => {
    assert.equal(ofType(run, VOLUME).length, 0);
    assert.equal(ofType(run, DNS).length, 0);
    assert.equal(ofType(run, UPTIME).length, 0);
    const [project] = ofType(run, "digitalocean:index/project:Project");
    assert.deepEqual(project.inputs.resources, ["do:droplet:chitram-droplet"]);
    assert.equal(project.inputs.environment, "Staging");
  });

  it("stack outputs: the URL and health URL are plain HTTP on the droplet's IP, through Caddy's port 80", () => {
    assert.equal(run.outputs.publicIp.value, MOCK_DROPLET_IP);
    assert.equal(run.outputs.url.value, `http://${MOCK_DROPLET_IP}`);
    assert.equal(run.outputs.healthUrl.value, `http://${MOCK_DROPLET_IP}/health`);
    assert.equal(run.outputs.sshCommand.value, `ssh chitram@${MOCK_DROPLET_IP}`);
  });

  it("the deploy private key is a secret output; nothing else is", () => {
    assert.equal(run.outputs.deployPrivateKey.secret, true);
    assert.equal(run.outputs.deployPrivateKey.value, "PLACEHOLDER-private-key-of-deploy-key\n");
    for (const [k, o] of Object.entries(run.outputs))
      if (k !== "deployPrivateKey") assert.equal(o.secret, false, k);
  });

  it("retro #3: the deploy and stack keys are asked of @pulumi/tls as ED25519 and nothing else (no passphrase input)", () => {
    // What the provider generates cannot be run here (no engine); what the program asks for can.
    const keys = ofType(run, "tls:index/privateKey:PrivateKey");
    assert.deepEqual(keys.map((k) => [k.name, k.inputs]).sort(), [
      ["admin-key", { algorithm: "ED25519" }],
      ["deploy-key", { algorithm: "ED25519" }],
      ["steps-key", { algorithm: "ED25519" }],
    ]);
    assert.equal(
      run.outputs.deployPublicKey.value,
      "ssh-ed25519 PLACEHOLDER-public-key-of-deploy-key chitram-deploy\n",
    );
  });
});

describe("program: domain mode with a data volume and alerts (prod)", async () => {
  const run = await runStack("prod", PROD);

  it("the droplet and the volume are protected; only the attachment is deleted before it is replaced", () => {
    const [volume] = ofType(run, VOLUME);
    assert.equal(volume.inputs.size, 20);
    assert.equal(volume.inputs.region, "nyc3");
    assert.equal(volume.options.protect, true);
    assert.equal(volume.options.deleteBeforeReplace, false);
    const droplet = named(run, "chitram-droplet");
    assert.equal(droplet.options.protect, true);
    // A new droplet is created first: the old one serves until the volume moves over.
    assert.equal(droplet.options.deleteBeforeReplace, false);
    const attachments = ofType(run, "digitalocean:index/volumeAttachment:VolumeAttachment");
    assert.equal(attachments.length, 1);
    // A volume attaches to one droplet at a time.
    assert.equal(attachments[0].options.deleteBeforeReplace, true);
    assert.deepEqual(ofType(run, "digitalocean:index/project:Project")[0].inputs.resources, [
      "do:droplet:chitram-droplet",
      "do:volume:chitram-data",
    ]);
  });

  it("the volume is mounted before the app directories are made, and holds the data", () => {
    const mount = step(run, "host-data-volume");
    assert.match(mount.create!, /VOLUME_NAME='\\''chitram-prod-data'\\''/);
    assert.ok(step(run, "app-app-dirs").dependsOn.includes("host-data-volume"));
    assert.match(step(run, "app-app-dirs").create!, /DATA_DIR='\\''\/mnt\/chitram-data'\\''/);
  });

  it("the mount step gives docker.service a drop-in that requires exactly the volume's mount", async () => {
    const mount = step(run, "host-data-volume");
    const files = decodeFiles(mount.stdin!);
    assert.deepEqual(
      files.map((f) => [f.path, f.mode]),
      [["/etc/systemd/system/docker.service.d/chitram-data.conf", "0644"]],
    );
    const unit = files[0].content.split("\n").filter((l) => l && !l.startsWith("#"));
    assert.deepEqual(unit, ["[Unit]", "RequiresMountsFor=/mnt/chitram-data"]);
    assert.match(mount.create!, /systemctl daemon-reload/);
    // Without a volume there is no mount step, and nothing makes Docker wait for one.
    const noVolume = await runStack("prod", { ...PROD, dataVolumeSizeGb: "0" });
    assert.equal(
      noVolume.steps.find((s) => s.name === "host-data-volume"),
      undefined,
    );
  });

  it("the app directories step knows the other data directory, so a switch cannot start on an empty one", async () => {
    assert.match(step(run, "app-app-dirs").create!, /OTHER_DATA_DIR='\\''\/var\/lib\/chitram'\\''/);
    const noVolume = await runStack("prod", { ...PROD, dataVolumeSizeGb: "0" });
    const dirs = step(noVolume, "app-app-dirs").create!;
    assert.match(dirs, /\bDATA_DIR='\\''\/var\/lib\/chitram'\\''/);
    assert.match(dirs, /OTHER_DATA_DIR='\\''\/mnt\/chitram-data'\\''/);
  });

  it("a grown volume re-runs the mount step, which grows the filesystem to the device's size", async () => {
    const grown = await runStack("prod", { ...PROD, dataVolumeSizeGb: "40" });
    assert.equal(ofType(grown, VOLUME)[0].inputs.size, 40);
    const before = step(run, "host-data-volume");
    const after = step(grown, "host-data-volume");
    assert.notDeepEqual(after.triggers, before.triggers);
    assert.match(after.create!, /VOLUME_SIZE_GB='\\''40'\\''/);
    assert.match(after.create!, /resize2fs/);
    // The step waits for the volume's update (the provider's resize), not only for the
    // attachment, which a resize leaves alone: otherwise it sees the old size and grows nothing.
    const volumeUrn = ofType(grown, VOLUME)[0].urn;
    const mount = grown.resources.find((r) => r.name === "host-data-volume")!;
    assert.ok(mount.dependencies.includes(volumeUrn), JSON.stringify(mount.dependencies));
  });

  it("a changed swapSizeMb re-runs the swap step, which resizes or removes the swap file", async () => {
    const before = step(run, "host-swap");
    for (const size of ["1024", "0"]) {
      const after = step(await runStack("prod", { ...PROD, swapSizeMb: size }), "host-swap");
      assert.notDeepEqual(after.triggers, before.triggers, size);
      assert.match(after.create!, /swapoff/);
    }
  });

  it("protectData false leaves the droplet and the volume deletable (staging is destroyed at will)", async () => {
    const r = await runStack("staging", { ...STAGING, dataVolumeSizeGb: "10" });
    assert.equal(ofType(r, VOLUME)[0].options.protect, false);
    assert.equal(ofType(r, DROPLET)[0].options.protect, false);
  });

  it("a stack file without protectData protects the droplet (the default is true)", async () => {
    const withoutKey = Object.fromEntries(Object.entries(STAGING).filter(([k]) => k !== "protectData"));
    const r = await runStack("staging", withoutKey);
    assert.equal(ofType(r, DROPLET)[0].options.protect, true);
  });

  it("editing the volume's description never replaces the volume (the provider forces a new one)", () => {
    assert.deepEqual(ofType(run, VOLUME)[0].options.ignoreChanges, ["description"]);
  });

  it("before the volume is detached the app is stopped, synced and unmounted, within a time limit", () => {
    const release = named(run, "app-volume-release");
    const attachment = named(run, "chitram-data-attachment");
    // Replaced whenever the attachment is: the engine deletes it, running its delete, first.
    assert.ok(release.dependencies.includes(attachment.urn));
    assert.deepEqual(release.inputs.triggers, [`${attachment.name}-id`]);
    assert.equal(release.inputs.create, undefined);
    const del = String(release.inputs.delete);
    assert.match(del, /^sudo -n timeout --kill-after=30s 5m bash -c /);
    assert.match(del, /docker compose down/);
    assert.match(del, /sync/);
    assert.match(del, /umount/);
    assert.match(del, /timeout /);
    // The volume leaves the host: Docker must not wait for its mount at the next boot.
    assert.match(del, /DOCKER_DROPIN_PATH=\S*\/etc\/systemd\/system\/docker\.service\.d\/chitram-data\.conf/);
    assert.match(del, /rm -f "\$DOCKER_DROPIN_PATH"/);
    assert.equal(release.options.customTimeouts?.delete, "5m");
  });

  it("the domain gets an A record on the droplet's IP in its zone", () => {
    const [record] = ofType(run, DNS);
    assert.deepEqual(
      {
        domain: record.inputs.domain,
        name: record.inputs.name,
        type: record.inputs.type,
        value: record.inputs.value,
      },
      { domain: "example.com", name: "chitram", type: "A", value: MOCK_DROPLET_IP },
    );
  });

  it("manageDns false: no record", async () => {
    const r = await runStack("prod", { ...PROD, manageDns: "false" });
    assert.equal(ofType(r, DNS).length, 0);
  });

  it("alertEmails: an HTTPS uptime check on the health URL and a down alert to those emails", () => {
    const [check] = ofType(run, UPTIME);
    assert.equal(check.inputs.target, "https://chitram.example.com/health");
    assert.equal(check.inputs.type, "https");
    // Created only once the app answered: no "down" email during every first deploy.
    assert.ok(check.dependencies.includes(named(run, "app-health").urn), check.dependencies.join(", "));
    const [alert] = ofType(run, "digitalocean:index/uptimeAlert:UptimeAlert");
    assert.deepEqual(alert.inputs.notifications, [{ emails: ["ops@example.com"] }]);
    assert.equal(alert.inputs.type, "down");
  });

  it("alertEmails: failing or stopped backups reach the same people, with no heartbeat URL (a second check on the backup status path)", () => {
    assert.equal(PROD.backupHeartbeatUrl, undefined, "prod sets no heartbeat URL");
    const checks = ofType(run, UPTIME);
    assert.deepEqual(
      checks.map((c) => c.inputs.target),
      ["https://chitram.example.com/health", "https://chitram.example.com/.well-known/chitram/backup-fresh"],
    );
    const backups = named(run, "chitram-uptime-backups-check");
    assert.ok(backups.dependencies.includes(named(run, "app-health").urn), "created once the app answers");
    const alert = named(run, "chitram-uptime-backups-down");
    assert.deepEqual(alert.inputs.notifications, [{ emails: ["ops@example.com"] }]);
    assert.equal(alert.inputs.type, "down");
    assert.equal(alert.inputs.checkId, `${backups.name}-id`);
  });

  it("outputs: https URL on the domain", () => {
    assert.equal(run.outputs.url.value, "https://chitram.example.com");
    assert.equal(run.outputs.healthUrl.value, "https://chitram.example.com/health");
  });
});

describe("program: target existing", async () => {
  const run = await runStack("sandbox", EXISTING);

  it("creates no DigitalOcean resource at all", () => {
    assert.deepEqual(
      run.resources.filter((r) => r.type.startsWith("digitalocean:")).map((r) => r.type),
      [],
    );
  });

  it("runs the same steps against the given host, first contact as sshUser with the given key", () => {
    const doSteps = (await_: typeof run) => await_.steps.map((s) => s.name);
    assert.ok(doSteps(run).includes("app-compose-up"));
    const ready = step(run, "host-ready");
    assert.deepEqual(
      [ready.connection.host, ready.connection.port, ready.connection.user],
      ["192.0.2.7", 2222, "root"],
    );
    assert.equal(ready.connection.privateKey, "PLACEHOLDER-bootstrap-key");
    assert.ok(ready.secretPaths.includes("connection"), "the bootstrap key is secret in the step's inputs");
    assert.equal(run.outputs.sshCommand.value, "ssh -p 2222 chitram@192.0.2.7");
  });

  it("destroy gives the host back its login: the sshd drop-in and the stack's keys go; on a droplet nothing runs", async () => {
    const harden = step(run, "host-harden");
    const keys = step(run, "host-deploy-user");
    assert.match(harden.delete!, /# chitram step: sshdRestore\n/);
    assert.match(keys.delete!, /# chitram step: deployKeysRemove\n/);
    // Their delete undoes their create: a change re-runs create (an update), never a replacement,
    // whose old delete would undo the new create.
    for (const s of [harden, keys]) {
      assert.deepEqual(s.triggers, [], s.name);
      assert.ok(!s.replaceOnChanges.includes("stdin"), s.name);
      const changed = { ...s, create: `${s.create!} `, stdin: `${s.stdin!}x` };
      assert.equal(planStep(changed, storedInputs(s)).action, "update", s.name);
    }
    const droplet = await runStack("staging", STAGING);
    for (const name of ["host-harden", "host-deploy-user"])
      assert.equal(step(droplet, name).delete, undefined, name);
  });
});

describe("program: user data never changes with app config", () => {
  it("is byte-identical across changes of every app-level key", async () => {
    const base = await runStack("staging", STAGING);
    const changed = await runStack("staging", {
      ...STAGING,
      appImage: "ghcr.io/example/chitram:2.0.0",
      appPort: "9000",
      healthPath: "/healthz",
      domain: "chitram.example.com",
      acmeEmail: "ops@example.com",
      backupSchedule: "15 4 * * *",
      backupRetentionDays: "30",
      deployUser: "deployer",
      closeRootLogin: "false",
      swapSizeMb: "1024",
      alertEmails: '["ops@example.com"]',
    });
    const userData = (r: typeof base) => ofType(r, DROPLET)[0].inputs.userData;
    assert.equal(userData(changed), userData(base));
    // and the droplet's other inputs do not change either: nothing here replaces it
    const withoutUserData = (r: typeof base) => ({ ...ofType(r, DROPLET)[0].inputs, userData: undefined });
    assert.deepEqual(withoutUserData(changed), withoutUserData(base));
  });
});

describe("program: releases", () => {
  it("the release step gets the image, port, health path and releaseTimeoutSeconds, and re-runs when the image changes", async () => {
    const base = await runStack("staging", STAGING);
    const changed = await runStack("staging", {
      ...STAGING,
      appImage: "ghcr.io/example/chitram:2.0.0",
      appPort: "9000",
      healthPath: "/healthz",
      releaseTimeoutSeconds: "45",
    });
    const create = step(changed, "app-compose-up").create!;
    for (const line of [
      "APP_IMAGE='\\''ghcr.io/example/chitram:2.0.0'\\''",
      "APP_PORT='\\''9000'\\''",
      "HEALTH_PATH='\\''/healthz'\\''",
      "RELEASE_TIMEOUT='\\''45'\\''",
    ]) {
      assert.ok(create.includes(`\n${line}\n`), line);
    }
    assert.notDeepEqual(step(changed, "app-compose-up").triggers, step(base, "app-compose-up").triggers);
  });

  it("the release step's time limit covers every wait in it, releaseTimeoutSeconds included, up to the largest allowed", async () => {
    for (const [timeout, limit] of [
      ["10", "29m"],
      ["120", "30m"],
      ["1800", "58m"],
    ]) {
      const run = await runStack("staging", { ...STAGING, releaseTimeoutSeconds: timeout });
      const s = step(run, "app-compose-up");
      // The TERM at the limit rolls the release back, which may recreate MinIO (a compose up of
      // up to 300 s): the KILL comes that much later.
      assert.ok(
        s.create!.startsWith(`timeout --kill-after=330s ${limit} bash -c `),
        `${timeout}: ${s.create!.slice(0, 50)}`,
      );
      const minutes = Number(limit.slice(0, -1));
      // the release lock, the settle, both compose waits, the pull, the release's own timeout,
      // the drain and the stop
      assert.ok(minutes * 60 >= 300 + 60 + 2 * 300 + 600 + Number(timeout) + 30 + 30, `${timeout}: ${limit}`);
      assert.equal(named(run, "app-compose-up").options.customTimeouts?.create, limit);
    }
  });
});

describe("program: a destroy of a protected stack deletes nothing", () => {
  for (const [stack, config, protect] of [
    ["prod", PROD, true],
    ["staging", STAGING, false],
    ["prod", { ...PROD, database: "managed", objectStore: "spaces" }, true],
  ] as const) {
    it(`${stack}: the destroy guard depends on every other resource, protected ${String(protect)} as the data`, async () => {
      const run = await runStack(stack, config);
      const guard = named(run, "destroy-guard");
      assert.equal(guard.type, "random:index/randomId:RandomId");
      assert.equal(guard.options.protect, protect);
      assert.equal(named(run, "chitram-droplet").options.protect, protect);
      // every other custom resource: a destroy must delete the guard before any of them
      const others = run.resources.filter((r) => r.custom && r.name !== "destroy-guard").map((r) => r.urn);
      assert.ok(others.length > 20, String(others.length));
      assert.deepEqual(
        others.filter((urn) => !guard.dependencies.includes(urn)),
        [],
        "resources a destroy could delete before the guard",
      );
    });
  }
  it("target existing: no guard (destroy gives the host back its login)", async () => {
    const run = await runStack("existing", EXISTING);
    assert.equal(
      run.resources.find((r) => r.name === "destroy-guard"),
      undefined,
    );
  });
});

describe("program: a backup waits out the longest release", () => {
  it("backup.sh's wait for the release lock covers the longest release step and its KILL grace", () => {
    const backup = fs.readFileSync(path.join(__dirname, "..", "host", "scripts", "backup.sh"), "utf8");
    const wait = Number(/^RELEASE_WAIT_SECONDS=(\d+)$/m.exec(backup)?.[1]);
    const limit = releaseStepLimit(RELEASE_TIMEOUT_MAX_SECONDS);
    const longest = Number(limit.slice(0, -1)) * 60 + RELEASE_KILL_AFTER_SECONDS;
    assert.ok(
      wait >= longest,
      `RELEASE_WAIT_SECONDS=${wait}, but a release may take ${longest} s (${limit} + kill)`,
    );
  });
});

describe("program: the health check trusts the ACME CA's roots only where the config says which", () => {
  it("acmeCa staging: Let's Encrypt's staging roots reach the host and host.env names them; letsencrypt: none", async () => {
    const domain = { ...PROD, manageDns: "false" };
    const hostFile = (r: { steps: ProgramStep[] }, name: string) =>
      decodeFiles(step(r, "app-files").stdin!).find((f) => f.path.endsWith(name));
    const staging = await runStack("prod", { ...domain, acmeCa: "staging" });
    assert.equal(hostFile(staging, "/acme-ca-roots.pem")?.content.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.match(
      hostFile(staging, "/host.env")!.content,
      /^HEALTH_CA_ROOTS='\/opt\/chitram\/acme-ca-roots\.pem'$/m,
    );
    const production = await runStack("prod", domain);
    assert.equal(hostFile(production, "/acme-ca-roots.pem"), undefined);
    assert.match(hostFile(production, "/host.env")!.content, /^HEALTH_CA_ROOTS=''$/m);
  });
});

describe("program: bad config stops everything", () => {
  it("throws the config error before any resource is registered", async () => {
    const registered: RecordedResource[] = [];
    const attempt = runProgram({
      stack: "staging",
      config: { ...STAGING, size: "s-1vcpu-1gb", domain: "https://x.example.com" },
      registered,
    });
    await assert.rejects(attempt, /chitram:size:/);
    await assert.rejects(attempt, /chitram:domain:/);
    assert.deepEqual(
      registered.map((r) => r.name),
      [],
    );
    // the same record sees the registrations of a good config: the zero above is not blindness
    await runProgram({ stack: "staging", config: STAGING, registered });
    assert.ok(registered.length > 10, `${registered.length} registrations recorded`);
  });

  it("retro #3: a passphrase-protected sshPrivateKey stops the program, naming the key", async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "chitram-key-")), "locked");
    assert.equal(
      spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "a passphrase", "-f", file]).status,
      0,
    );
    const locked = fs.readFileSync(file, "utf8");
    fs.rmSync(path.dirname(file), { recursive: true });
    const registered: RecordedResource[] = [];
    const attempt = runProgram({
      stack: "sandbox",
      config: { ...EXISTING, sshPrivateKey: locked },
      secretKeys: ["sshPrivateKey"],
      registered,
    });
    await assert.rejects(attempt, /chitram:sshPrivateKey: the key is protected by a passphrase/);
    assert.equal(registered.length, 0);
  });
});

describe("program: secrets in config", () => {
  it("an sshPrivateKey set without --secret stops the program before any resource, naming the command", async () => {
    await assert.rejects(
      runProgram({ stack: "existing", config: EXISTING, secretKeys: [] }),
      /chitram:sshPrivateKey: is set in plain text.*pulumi config set --secret chitram:sshPrivateKey/,
    );
    const run = await runProgram({ stack: "existing", config: EXISTING, secretKeys: ["sshPrivateKey"] });
    assert.ok(run.resources.length > 0);
  });
});

describe("program: stack names in DigitalOcean names", () => {
  it("a stack name with _ , . or capitals gives DigitalOcean names of lowercase letters, digits and -, distinct per stack", async () => {
    const names = async (stack: string) => {
      const run = await runStack(stack, { ...PROD, dataVolumeSizeGb: "10" });
      return run.resources
        .filter(
          (r) => r.type.startsWith("digitalocean:") && r.type !== DNS && typeof r.inputs.name === "string",
        )
        .map((r) => ({ type: r.type, name: String(r.inputs.name), tags: (r.inputs.tags ?? []) as string[] }));
    };
    const odd = await names("Team_Alice.Prod");
    const other = await names("team-alice-prod");
    for (const r of odd) {
      assert.match(r.name, /^chitram-[a-z0-9-]+$/, `${r.type}: ${r.name}`);
      assert.ok(r.name.length <= 64, `${r.type}: ${r.name} is longer than a volume name may be`);
      for (const tag of r.tags) assert.match(tag, /^[a-z0-9-]+$/, `${r.type} tag ${tag}`);
    }
    const volume = odd.find((r) => r.type === VOLUME)!;
    assert.match(volume.name, /^chitram-team-alice-prod-[0-9a-f]{6}-data$/);
    assert.notEqual(volume.name, other.find((r) => r.type === VOLUME)!.name, "two stacks, one volume name");
    const dataVolume = (await runStack("Team_Alice.Prod", { ...PROD, dataVolumeSizeGb: "10" })).steps.find(
      (s) => s.name === "host-data-volume",
    )!;
    assert.match(dataVolume.create!, new RegExp(`VOLUME_NAME=\\S*${volume.name}`));
  });

  it("a stack name that is already a valid DigitalOcean name is used as it is (no existing resource is renamed)", async () => {
    const run = await runStack("prod", { ...PROD, dataVolumeSizeGb: "10" });
    assert.equal(named(run, "chitram-droplet").inputs.name, "chitram-prod");
    assert.equal(named(run, "chitram-data").inputs.name, "chitram-prod-data");
    assert.deepEqual(named(run, "chitram-droplet").inputs.tags, ["chitram", "chitram-prod"]);
  });
});

const CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster";
describe("program: a managed database (database: managed)", async () => {
  const config = { ...PROD, database: "managed", databaseSize: "db-s-1vcpu-2gb", databaseNodes: "2" };
  const run = await runStack("prod", config, "real");
  const cluster = named(run, "chitram-db-cluster");

  it("a PostgreSQL cluster of the configured size and nodes in the droplet's region, protected with the data", () => {
    assert.equal(cluster.type, CLUSTER);
    assert.equal(cluster.inputs.engine, "pg");
    assert.equal(cluster.inputs.version, "16");
    assert.equal(cluster.inputs.size, "db-s-1vcpu-2gb");
    assert.equal(cluster.inputs.nodeCount, 2);
    assert.equal(cluster.inputs.region, named(run, "chitram-droplet").inputs.region);
    assert.equal(cluster.options.protect, true);
    assert.equal(named(run, "chitram-db-db").options.protect, true);
    assert.equal(named(run, "chitram-db-db").inputs.name, "chitram");
    assert.equal(named(run, "chitram-db-user").inputs.name, "chitram");
  });

  it("its firewall admits the stack's droplet alone", () => {
    assert.deepEqual(named(run, "chitram-db-firewall").inputs.rules, [
      { type: "droplet", value: String(MOCK_DROPLET_ID) },
    ]);
  });

  it("the app reaches it on its private host over TLS with the cluster's CA (verify-full); no postgres service", () => {
    const files = decodeFiles(step(run, "app-env-file").stdin!);
    const env = parseEnvFile(files.find((f) => f.path === "/opt/chitram/.env.production")!.content);
    const user = String(named(run, "chitram-db-user").state.password);
    assert.equal(
      env.DATABASE_URL,
      `postgresql+asyncpg://chitram:${user}@${String(cluster.state.privateHost)}:25060/chitram?ssl=verify-full`,
    );
    assert.equal(env.PGSSLROOTCERT, "/etc/chitram/db/ca.crt");
    const ca = files.find((f) => f.path === "/opt/chitram/db/ca.crt");
    assert.equal(ca?.mode, "0644");
    assert.match(ca.content, /PLACEHOLDER-ca-of-chitram-db-cluster-id/);
    const client = parseEnvFile(files.find((f) => f.path === "/opt/chitram/.env.postgres")!.content);
    assert.equal(client.PGSSLMODE, "verify-full");
    assert.equal(client.PGHOST, String(cluster.state.privateHost));
    assert.equal(client.PGPASSWORD, user);
    const pushed = decodeFiles(step(run, "app-files").stdin!);
    const compose = pushed.find((f) => f.path === "/opt/chitram/compose.yaml")!.content;
    assert.doesNotMatch(compose, /^ {2}postgres:/m);
    assert.match(compose, /^ {2}pgclient:/m);
    assert.match(pushed.find((f) => f.path === "/opt/chitram/host.env")!.content, /^DATABASE='managed'$/m);
  });

  it("the app user is granted the public schema before the release, with the admin password on stdin only", () => {
    const grant = step(run, "app-database-grant");
    assert.ok(grant.secretPaths.includes("stdin"));
    assert.equal(grant.stdin, String(cluster.state.password));
    // (the first trigger is the script's hash: remote/step.ts)
    assert.deepEqual(grant.triggers.slice(-4, -1), [
      "chitram-db-cluster-id",
      "chitram-db-db-id",
      "chitram-db-user-id",
    ]);
    // a user made again under its name (the same id) has a new password: a keyed hash of it
    const password = String(named(run, "chitram-db-user").state.password);
    assert.match(String(grant.triggers.at(-1)), /^[0-9a-f]{64}$/);
    assert.ok(!JSON.stringify(grant.triggers).includes(password));
    assert.ok(grant.dependsOn.includes("app-env-file") && grant.dependsOn.includes("app-files"));
    // the database firewall admits the droplet alone before anything connects
    assert.ok(
      named(run, "app-database-grant").dependencies.includes(named(run, "chitram-db-firewall").urn),
      "the grant does not wait for the database firewall",
    );
    assert.ok(step(run, "app-compose-up").dependsOn.includes("app-database-grant"));
  });

  it("no password of the cluster appears in a command string or a non-secret input", () => {
    const secrets = [String(cluster.state.password), String(named(run, "chitram-db-user").state.password)];
    for (const s of secrets) assert.match(s, /^AVNS_[A-Za-z0-9]{20}$/);
    for (const r of run.resources) {
      const visible = JSON.stringify(r.maskedInputs);
      for (const secret of secrets) assert.ok(!visible.includes(secret), `${r.name} shows a password`);
    }
    for (const s of run.steps)
      for (const secret of secrets)
        assert.ok(
          !`${s.create ?? ""}${s.delete ?? ""}`.includes(secret),
          `${s.name}'s command has a password`,
        );
  });

  it("the default (database: container) has no cluster and no grant step", async () => {
    const plain = await runStack("prod", PROD);
    assert.deepEqual(ofType(plain, CLUSTER), []);
    assert.equal(
      plain.steps.some((s) => s.name === "app-database-grant"),
      false,
    );
  });
});

describe("program: the app's objects in Spaces (objectStore: spaces)", async () => {
  const run = await runStack("staging", { ...STAGING, objectStore: "spaces" }, "real");
  const bucket = ofType(run, "digitalocean:index/spacesBucket:SpacesBucket").find(
    (r) => r.name === "objects",
  )!;
  const key = named(run, "objects-key");

  it("a private bucket that keeps versions, in the droplet's region; only noncurrent versions expire, after the backups' retention and a month", () => {
    assert.ok(bucket, "no bucket named objects");
    assert.equal(bucket.inputs.acl, "private");
    assert.deepEqual(bucket.inputs.versioning, { enabled: true });
    assert.deepEqual(bucket.inputs.lifecycleRules, [
      {
        id: "chitram-object-versions",
        enabled: true,
        noncurrentVersionExpiration: { days: 7 + 30 },
        expiration: { expiredObjectDeleteMarker: true },
      },
    ]);
    assert.equal(bucket.inputs.forceDestroy, undefined);
    assert.equal(bucket.inputs.region, named(run, "chitram-droplet").inputs.region);
    // staging: protectData false
    assert.equal(bucket.options.protect, false);
  });

  it("a key that may read and write that bucket only, its keys secret in the state", () => {
    assert.deepEqual(key.inputs.grants, [{ bucket: bucket.state.name, permission: "readwrite" }]);
    assert.ok(key.options.additionalSecretOutputs.includes("secretKey"));
    assert.ok(key.options.additionalSecretOutputs.includes("accessKey"));
  });

  it("retro #1: the app's S3 settings come from that ONE key and bucket; no MinIO service; host.env says so", () => {
    const files = decodeFiles(step(run, "app-env-file").stdin!);
    const env = parseEnvFile(files.find((f) => f.path === "/opt/chitram/.env.production")!.content);
    assert.equal(env.MINIO_ACCESS_KEY, key.state.accessKey);
    assert.equal(env.MINIO_SECRET_KEY, key.state.secretKey);
    assert.equal(env.MINIO_BUCKET, bucket.state.name);
    assert.equal(env.MINIO_ENDPOINT, "https://nyc3.digitaloceanspaces.com");
    assert.equal(env.MINIO_ROOT_USER, undefined);
    const pushed = decodeFiles(step(run, "app-files").stdin!);
    const compose = pushed.find((f) => f.path === "/opt/chitram/compose.yaml")!.content;
    assert.doesNotMatch(compose, /^ {2}minio:/m);
    assert.match(compose, /^ {2}postgres:/m);
    assert.match(pushed.find((f) => f.path === "/opt/chitram/host.env")!.content, /^OBJECTS='spaces'$/m);
  });

  it("the Spaces key appears in no command string and no non-secret input", () => {
    const secrets = [String(key.state.accessKey), String(key.state.secretKey)];
    for (const r of run.resources) {
      const visible = JSON.stringify(r.maskedInputs);
      for (const s of secrets) assert.ok(!visible.includes(s), `${r.name} shows the Spaces key`);
    }
    for (const s of run.steps)
      for (const secret of secrets)
        assert.ok(!`${s.create ?? ""}${s.delete ?? ""}`.includes(secret), `${s.name}'s command has the key`);
  });
});

describe("program: the files the host receives", async () => {
  const real = await runStack("staging", STAGING, "real");

  it("retro #1: the env file's MinIO keys are equal, non-empty, and come from ONE generated value each", () => {
    const files = decodeFiles(step(real, "app-env-file").stdin!);
    assert.deepEqual(
      files.map((f) => [f.path, f.mode]),
      [
        ["/opt/chitram/.env.production", "0600"],
        ["/opt/chitram/.env.postgres", "0600"],
        ["/opt/chitram/.env.minio", "0600"],
      ],
    );
    const env = parseEnvFile(files[0].content);
    // PostgreSQL and MinIO get only their own keys, with the same values
    assert.deepEqual(parseEnvFile(files[1].content), {
      POSTGRES_USER: env.POSTGRES_USER,
      POSTGRES_PASSWORD: env.POSTGRES_PASSWORD,
      POSTGRES_DB: env.POSTGRES_DB,
    });
    assert.deepEqual(parseEnvFile(files[2].content), {
      MINIO_ROOT_USER: env.MINIO_ACCESS_KEY,
      MINIO_ROOT_PASSWORD: env.MINIO_SECRET_KEY,
    });
    assert.ok(env.MINIO_SECRET_KEY.length >= 32);
    assert.equal(env.MINIO_ROOT_PASSWORD, env.MINIO_SECRET_KEY);
    assert.ok(env.MINIO_ROOT_USER.length > 0);
    assert.equal(env.MINIO_ROOT_USER, env.MINIO_ACCESS_KEY);
    const secrets = ofType(real, "random:index/randomPassword:RandomPassword").map((r) => r.name);
    assert.ok(secrets.includes("app-minio-secret"));
    assert.deepEqual(
      secrets.filter((n) => n.includes("minio")).sort(),
      ["app-minio-secret", "app-minio-user"],
      "exactly one generated value for the MinIO secret, one for its user",
    );
    assert.match(env.DATABASE_URL, new RegExp(`:${env.POSTGRES_PASSWORD}@postgres:5432/`));
  });

  it("the MinIO user (the S3 access key) and every generated password are secret in the state, ids included", () => {
    // (the destroy guard's random id guards nothing secret)
    for (const r of real.resources.filter((x) => x.type.startsWith("random:") && x.name !== "destroy-guard"))
      assert.ok(r.options.additionalSecretOutputs.includes("result"), r.name);
    assert.equal(named(real, "app-minio-user").type, "random:index/randomPassword:RandomPassword");
    // The random provider's RandomString has its result as its id: plain text in the state.
    assert.deepEqual(ofType(real, "random:index/randomString:RandomString"), []);
  });

  it("retro #2: the app gets PostgreSQL through asyncpg, the production driver, on the compose postgres service", () => {
    const env = parseEnvFile(decodeFiles(step(real, "app-env-file").stdin!)[0].content);
    assert.match(
      env.DATABASE_URL,
      /^postgresql\+asyncpg:\/\/chitram:[A-Za-z0-9]{32}@postgres:5432\/chitram$/,
      "driver, user, service, port and database",
    );
    assert.doesNotMatch(JSON.stringify(env), /sqlite/i);
  });

  it("the env file is secret: its step's stdin is secret, nothing is logged, outputs are secret", () => {
    const s = step(real, "app-env-file");
    assert.ok(s.secretPaths.includes("stdin"));
    assert.equal(s.logging, "none");
    const secretOutputs = named(real, "app-env-file").options.additionalSecretOutputs;
    assert.ok(secretOutputs.includes("stdout") && secretOutputs.includes("stderr"), secretOutputs.join(","));
  });

  it("no secret value appears in any command string or any non-secret input", () => {
    // The generated values, as the providers return them: every password and both private keys.
    const secretValues = [
      ...ofType(real, "random:index/randomPassword:RandomPassword").map((r) => String(r.state.result)),
      ...ofType(real, "tls:index/privateKey:PrivateKey").map((r) =>
        String(r.state.privateKeyOpenssh).split("\n").slice(1, -2).join(""),
      ),
    ];
    assert.ok(secretValues.length >= 5, `${secretValues.length} secrets collected`);
    for (const secret of secretValues)
      assert.ok(secret.length >= 16, `a real secret: ${secret.length} chars`);
    const env = parseEnvFile(decodeFiles(step(real, "app-env-file").stdin!)[0].content);
    for (const used of [env.POSTGRES_PASSWORD, env.MINIO_SECRET_KEY, env.SECRET_KEY])
      assert.ok(secretValues.includes(used), "the env file's secrets are among those scanned for");
    for (const r of real.resources) {
      const visible = JSON.stringify(r.maskedInputs);
      for (const secret of secretValues)
        assert.ok(!visible.includes(secret), `${r.name} shows a secret in a non-secret input`);
    }
    for (const s of real.steps) {
      for (const secret of secretValues)
        assert.ok(!s.create!.includes(secret), `${s.name}'s command contains a secret`);
    }
  });

  it("retro #6: the pushed files are exactly the manifest, with every file under scripts/ executable", () => {
    const pushed = decodeFiles(step(real, "app-files").stdin!);
    const scriptsDir = path.join(__dirname, "..", "host", "scripts");
    const onDisk = fs.readdirSync(scriptsDir).sort();
    assert.ok(onDisk.length >= 3, "backup, restore and health check scripts exist");
    for (const f of onDisk) {
      const file = pushed.find((p) => p.path === `/opt/chitram/scripts/${f}`);
      assert.ok(file, `host/scripts/${f} is not pushed`);
      assert.equal(file.mode, "0755");
      assert.equal(file.content, fs.readFileSync(path.join(scriptsDir, f), "utf8"));
    }
    assert.deepEqual(
      pushed.map((p) => p.path).filter((p) => !p.includes("/scripts/")),
      ["/opt/chitram/compose.yaml", "/opt/chitram/caddy/Caddyfile", "/opt/chitram/host.env"],
    );
  });

  it("retro #7: the host's health check goes through Caddy on port 80, never the app's port", () => {
    const hostEnv = decodeFiles(step(real, "app-files").stdin!).find((f) => f.path.endsWith("host.env"))!;
    assert.match(hostEnv.content, /^HEALTH_URL='http:\/\/127\.0\.0\.1\/health'$/m);
    assert.doesNotMatch(hostEnv.content, /:8000/);
    assert.match(step(real, "app-health").create!, /scripts\/healthcheck\.sh/);
  });

  it("retro #5: the backup cron entry is in /etc/cron.d format with a user field and the configured schedule", async () => {
    const r = await runStack("staging", { ...STAGING, backupSchedule: "15 4 * * *" });
    const [cron] = decodeFiles(step(r, "app-backup-cron").stdin!);
    assert.equal(cron.path, "/etc/cron.d/chitram-backup");
    assert.equal(cron.mode, "0644");
    const jobs = cron.content.split("\n").filter((l) => l && !l.startsWith("#") && !/^\w+=/.test(l));
    assert.equal(jobs.length, 2, "the backup and the backup status sweep");
    assert.match(
      jobs[1],
      /^7 \* \* \* \* root find \/opt\/chitram\/caddy\/status\/backup-fresh -mmin \+1560 -delete/,
    );
    const fields = jobs[0].split(/\s+/);
    assert.deepEqual(fields.slice(0, 7), [
      "15",
      "4",
      "*",
      "*",
      "*",
      "root",
      "/opt/chitram/scripts/backup.sh",
    ]);
  });
});

/** Seconds the provider waits between `limit + 1` failed dials (pulumi's retry: 100 ms, x1.5, 5 s max). */
function retrySeconds(limit: number): number {
  let total = 0;
  for (let i = 0, delay = 0.1; i < limit; i++, delay *= 1.5) total += Math.min(delay, 5);
  return total;
}

function dependsOnStep(run: { steps: ProgramStep[] }, from: string, on: string): boolean {
  const seen = new Set<string>();
  const visit = (n: string): boolean =>
    step(run, n).dependsOn.some((d) => d === on || (!seen.has(d) && (seen.add(d), visit(d))));
  return visit(from);
}

describe("program: the backup heartbeat URL stays secret", async () => {
  const url = "https://hc-ping.com/0b8c4f1e-7d2a-4c55-9e3b-5a1f2d3c4b5a";
  const token = url.slice(url.lastIndexOf("/") + 1);
  const withUrl = await runStack("staging", { ...STAGING, backupHeartbeatUrl: url }, "real");

  it("reaches the host only in the root-only secrets file, on the silenced cron step's secret stdin", () => {
    const s = step(withUrl, "app-backup-cron");
    assert.ok(s.secretPaths.includes("stdin"));
    assert.equal(s.logging, "none");
    const files = decodeFiles(s.stdin!);
    const secrets = files.find((f) => f.path === "/etc/chitram/backup.env")!;
    assert.equal(secrets.mode, "0600");
    assert.match(secrets.content, new RegExp(`^BACKUP_HEARTBEAT_URL='${url}'$`, "m"));
    const cron = files.find((f) => f.path === "/etc/cron.d/chitram-backup")!;
    assert.ok(!cron.content.includes(token), "the world-readable cron file holds no token");
  });

  it("appears in no command, no plain input, no other step's stdin and no output", () => {
    for (const r of withUrl.resources) {
      assert.ok(!JSON.stringify(r.maskedInputs).includes(token), `${r.name} shows the heartbeat URL`);
    }
    for (const s of withUrl.steps) {
      assert.ok(!s.create!.includes(token), `${s.name}'s command holds the heartbeat URL`);
      if (s.name !== "app-backup-cron") assert.ok(!(s.stdin ?? "").includes(token), s.name);
    }
    for (const [k, o] of Object.entries(withUrl.outputs)) {
      assert.ok(!JSON.stringify(o.value).includes(token), `output ${k} holds the heartbeat URL`);
    }
  });

  it("without it, the secrets file is still pushed (empty URL), so unsetting the key stops the pings", async () => {
    const plain = await runStack("staging", STAGING, "real");
    const files = decodeFiles(step(plain, "app-backup-cron").stdin!);
    const secrets = files.find((f) => f.path === "/etc/chitram/backup.env")!;
    assert.match(secrets.content, /^BACKUP_HEARTBEAT_URL=''$/m);
  });
});

describe("program: off-box backups", async () => {
  const prod = await runStack("prod", PROD, "real");

  it("prod (offsiteBackups: true) creates a private, versioned Spaces bucket whose rule never expires a current copy, and a key scoped to it", () => {
    const [bucket] = ofType(prod, "digitalocean:index/spacesBucket:SpacesBucket");
    assert.equal(bucket.inputs.region, "nyc3");
    assert.equal(bucket.inputs.acl, "private");
    assert.equal(bucket.options.protect, true);
    assert.deepEqual(bucket.inputs.versioning, { enabled: true }, "a deleted copy stays as a version");
    const rules = bucket.inputs.lifecycleRules as {
      enabled: boolean;
      expiration?: { days?: number; date?: string; expiredObjectDeleteMarker?: boolean };
      noncurrentVersionExpiration?: { days: number };
    }[];
    assert.equal(rules.length, 1);
    const [rule] = rules;
    assert.equal(rule.enabled, true);
    // A stopped backup must never empty the bucket: no rule expires current objects.
    assert.equal(rule.expiration?.days, undefined);
    assert.equal(rule.expiration?.date, undefined);
    assert.equal(rule.expiration?.expiredObjectDeleteMarker, true);
    assert.equal(rule.noncurrentVersionExpiration?.days, 7 + 30, "backupRetentionDays plus the grace period");
    const [key] = ofType(prod, "digitalocean:index/spacesKey:SpacesKey");
    const grants = key.inputs.grants as { bucket: string; permission: string }[];
    assert.equal(grants.length, 1);
    assert.equal(grants[0].permission, "readwrite");
    assert.notEqual(grants[0].bucket, "", "an empty bucket would grant every bucket");
    assert.equal(grants[0].bucket, "backups-a1b2c3d", "the grant names the bucket the stack created");
    assert.ok(key.options.additionalSecretOutputs.includes("secretKey"));
  });

  it("the bucket's endpoint, name and key reach the host only on the silenced cron step's secret stdin", () => {
    const s = step(prod, "app-backup-cron");
    assert.ok(s.secretPaths.includes("stdin"));
    assert.equal(s.logging, "none");
    const secrets = decodeFiles(s.stdin!).find((f) => f.path === "/etc/chitram/backup.env")!;
    assert.match(secrets.content, /^OFFSITE_ENDPOINT='https:\/\/nyc3\.digitaloceanspaces\.com'$/m);
    assert.match(secrets.content, /^OFFSITE_BUCKET='[a-z0-9.-]+'$/m);
    const secretKey = /^OFFSITE_SECRET_KEY='(.+)'$/m.exec(secrets.content)![1];
    for (const r of prod.resources) assert.ok(!JSON.stringify(r.maskedInputs).includes(secretKey), r.name);
    for (const x of prod.steps) {
      for (const command of [x.create, x.delete]) assert.ok(!(command ?? "").includes(secretKey), x.name);
    }
  });

  it("the host copies to the bucket where the provider made it: a Spaces endpoint the provider is pointed at", async () => {
    const saved = process.env.SPACES_ENDPOINT_URL;
    process.env.SPACES_ENDPOINT_URL = "https://{{.Region}}.spaces.internal:9443";
    try {
      const elsewhere = await runStack("prod", PROD, "real");
      const secrets = decodeFiles(step(elsewhere, "app-backup-cron").stdin!).find(
        (f) => f.path === "/etc/chitram/backup.env",
      )!;
      assert.match(secrets.content, /^OFFSITE_ENDPOINT='https:\/\/nyc3\.spaces\.internal:9443'$/m);
    } finally {
      if (saved === undefined) delete process.env.SPACES_ENDPOINT_URL;
      else process.env.SPACES_ENDPOINT_URL = saved;
    }
  });

  it("staging has no off-box copies unless asked; target existing needs an endpoint, a bucket and keys", async () => {
    const staging = await runStack("staging", STAGING, "real");
    assert.equal(ofType(staging, "digitalocean:index/spacesBucket:SpacesBucket").length, 0);
    const secrets = decodeFiles(step(staging, "app-backup-cron").stdin!).find(
      (f) => f.path === "/etc/chitram/backup.env",
    )!;
    assert.match(secrets.content, /^OFFSITE_BUCKET=''$/m);
    const existing = await runStack(
      "existing",
      {
        ...EXISTING,
        offsiteBackups: "true",
        offsiteEndpoint: "https://fra1.digitaloceanspaces.com",
        offsiteBucket: "chitram-backups",
        offsiteAccessKey: "DO00EXAMPLEACCESSKEY",
        offsiteSecretKey: "example/secret+key=",
      },
      "real",
    );
    assert.equal(ofType(existing, "digitalocean:index/spacesBucket:SpacesBucket").length, 0);
    const file = decodeFiles(step(existing, "app-backup-cron").stdin!).find(
      (f) => f.path === "/etc/chitram/backup.env",
    )!;
    assert.match(file.content, /^OFFSITE_SECRET_KEY='example\/secret\+key='$/m);
    assert.ok(step(existing, "app-backup-cron").secretPaths.includes("stdin"));
  });
});

describe("program: remote steps", async () => {
  const run = await runStack("staging", STAGING);
  const names = run.steps.map((s) => s.name);
  const dependsTransitively = (from: string, on: string): boolean => {
    const seen = new Set<string>();
    const visit = (n: string): boolean =>
      step(run, n).dependsOn.some((d) => d === on || (!seen.has(d) && (seen.add(d), visit(d))));
    return visit(from);
  };

  it("every step waits for the ready step, which waits longest for SSH and may take 25 minutes", () => {
    for (const n of names) if (n !== "host-ready") assert.ok(dependsTransitively(n, "host-ready"), n);
    const ready = step(run, "host-ready");
    assert.equal(ready.connection.dialErrorLimit, FIRST_CONTACT_DIAL_ERROR_LIMIT);
    assert.ok((ready.connection.perDialTimeout ?? 0) >= 15);
    assert.equal(named(run, "host-ready").options.customTimeouts?.create, "25m");
    assert.match(ready.create!, /cloud-init status --wait/);
  });

  it("retro #3/#4: access is proven as the deploy user after the user and sudoers exist", () => {
    assert.ok(dependsTransitively("host-access-proof", "host-bootstrap"));
    assert.ok(dependsTransitively("host-access-proof", "host-deploy-user"));
    assert.ok(dependsTransitively("host-access-proof", "host-docker"));
    const proof = step(run, "host-access-proof");
    assert.equal(proof.connection.user, "chitram");
    assert.match(proof.create!, /sudo -n true/);
    assert.match(proof.create!, /docker info/);
    assert.doesNotMatch(proof.create!, /^sudo /, "the proof itself must not run under sudo");
  });

  it("root login closes only after access is proven, and app steps run after it", () => {
    assert.ok(dependsTransitively("host-harden", "host-access-proof"));
    for (const n of names.filter((x) => x.startsWith("app-")))
      assert.ok(dependsTransitively(n, "host-harden"), n);
  });

  it("only the two first-contact steps connect as root; they ignore later script changes", () => {
    const asRoot = run.steps.filter((s) => s.connection.user === "root").map((s) => s.name);
    assert.deepEqual(asRoot, ["host-ready", "host-bootstrap"]);
    for (const n of asRoot)
      assert.deepEqual(step(run, n).ignoreChanges, [
        "create",
        "stdin",
        "triggers",
        "connection.hostKey",
        "connection.dialErrorLimit",
        "connection.perDialTimeout",
        "addPreviousOutputInEnv",
      ]);
    // The host key's record logs in as the deploy user with the admin key, once per host: a new
    // address or pin runs it again (a replaced droplet: the new first step's key), nothing else.
    assert.deepEqual(step(run, "host-host-key").ignoreChanges, [
      "create",
      "triggers",
      "connection.dialErrorLimit",
      "connection.perDialTimeout",
      "addPreviousOutputInEnv",
    ]);
    assert.equal(step(run, "host-host-key").connection.privateKey, "PLACEHOLDER-private-key-of-admin-key\n");
    for (const s of run.steps.filter((x) => x.connection.user !== "root" && x.name !== "host-host-key")) {
      assert.equal(s.connection.user, "chitram", s.name);
      assert.deepEqual(s.ignoreChanges, [], s.name);
    }
  });

  it("the stack's steps log in with the stack key; the access proof with the deploy key; key installation with the admin key", () => {
    const keyOf: Record<string, string> = {
      "host-access-proof": "deploy-key",
      "host-deploy-user": "admin-key",
      "host-host-key": "admin-key",
    };
    for (const s of run.steps.filter((x) => x.connection.user === "chitram")) {
      const expected = keyOf[s.name] ?? "steps-key";
      assert.equal(s.connection.privateKey, `PLACEHOLDER-private-key-of-${expected}\n`, s.name);
    }
    const keys = decodeFiles(step(run, "host-deploy-user").stdin!).find((f) =>
      f.path.endsWith("authorized_keys"),
    )!;
    assert.deepEqual(
      keys.content
        .trim()
        .split("\n")
        .map((l) => l.split(" ")[1]),
      [
        "PLACEHOLDER-public-key-of-admin-key",
        "PLACEHOLDER-public-key-of-steps-key",
        "PLACEHOLDER-public-key-of-deploy-key",
      ],
    );
    // First contact installs the admin key only: its inputs hold no key that is ever rotated.
    const first = decodeFiles(step(run, "host-bootstrap").stdin!).find((f) =>
      f.path.endsWith("authorized_keys"),
    )!;
    assert.equal(first.content, "ssh-ed25519 PLACEHOLDER-public-key-of-admin-key chitram-deploy\n");
  });

  it("every dial limit is finite: a wrong key fails in under a minute, not after 20 (retries cover auth failures too)", () => {
    for (const s of run.steps) {
      const limit = s.connection.dialErrorLimit ?? 10;
      assert.ok(limit >= 0 && limit <= FIRST_CONTACT_DIAL_ERROR_LIMIT, `${s.name}: dialErrorLimit ${limit}`);
      assert.ok(retrySeconds(limit) < 60, `${s.name}: ${retrySeconds(limit)} s of retries`);
    }
    // ... and the first contact still waits out a new droplet whose sshd answers late.
    assert.ok(retrySeconds(FIRST_CONTACT_DIAL_ERROR_LIMIT) >= 40);
  });

  it("every step runs under a host-enforced time limit (its customTimeouts), and says so when it is stopped", () => {
    for (const s of run.steps) {
      const limit = named(run, s.name).options.customTimeouts!.create;
      assert.match(limit, /^\d+m$/);
      // The release step cleans up on TERM (a rollback): its KILL comes later (the test above).
      const killAfter = s.name === "app-compose-up" ? 330 : 30;
      assert.ok(
        s.create!.includes(`timeout --kill-after=${killAfter}s ${limit} bash -c `),
        `${s.name}: not under timeout ${limit}`,
      );
      assert.ok(s.create!.includes(`step ${s.name} did not finish within its ${limit} limit`), s.name);
    }
  });

  it("host keys: the first step records it; every step after the first two pins it", () => {
    assert.match(step(run, "host-ready").create!, /chitram-host-key/);
    for (const s of run.steps) {
      const pinned = s.connection.hostKey;
      if (s.name === "host-ready" || s.name === "host-bootstrap") assert.equal(pinned, undefined, s.name);
      else assert.equal(pinned, "ssh-ed25519 PLACEHOLDER-host-key-of-host-ready", s.name);
    }
  });

  it("target existing with chitram:hostKey: every step pins the configured key, the first two included; a new key re-runs neither", async () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7aWYi2bVXdnKqZ4Ym0pmQ2a4hA3n0mO5lEbdIivTzB";
    const r = await runStack("sandbox", { ...EXISTING, hostKey: `${key} root@host` });
    assert.equal(r.steps.length, 14);
    for (const s of r.steps) assert.equal(s.connection.hostKey, key, s.name);
    // The host re-keyed: the later steps pin the new key; the first two, which connect as root,
    // keep the stored one and do not run again.
    const rekeyed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHjQmKyRz0aWYi2bVXdnKqZ4Ym0pmQ2a4hA3n0mO5lEb";
    const again = await runStack("sandbox", { ...EXISTING, hostKey: rekeyed });
    for (const name of ["host-ready", "host-bootstrap"])
      assert.equal(planStep(step(again, name), storedInputs(step(r, name))).action, "same", name);
    assert.equal(planStep(step(again, "host-docker"), storedInputs(step(r, "host-docker"))).action, "update");
    // The host key's record runs again with the new pin (as after a droplet replacement, whose
    // first step records a new key): a stored old pin would fail on the new host.
    const record = planStep(step(again, "host-host-key"), storedInputs(step(r, "host-host-key")));
    assert.equal(record.action, "update");
    assert.equal(record.inputs.connection.hostKey, rekeyed);
  });

  // `pulumi up --replace` of a key, planned step by step as the engine does it.
  const rotate = async (stack: string, config: Record<string, string>, key: string) => {
    const before = await runStack(stack, config, "real");
    replaceRealValue(stack, "tls:index/privateKey:PrivateKey", key);
    const after = await runStack(stack, config, "real");
    const plan = new Map(
      after.steps.map((s) => [s.name, planStep(s, storedInputs(step(before, s.name))).action]),
    );
    const rerun = [...plan].filter(([, a]) => a !== "same").map(([n]) => n);
    return { before, after, plan, rerun };
  };
  const usesKey = (s: ProgramStep, run: { steps: ProgramStep[] }, other: ProgramStep) =>
    s.connection.privateKey === step(run, other.name).connection.privateKey;

  for (const [target, config] of [
    ["digitalocean", STAGING],
    ["existing", EXISTING],
  ] as const) {
    for (const key of ["steps-key", "deploy-key"]) {
      it(`${target}: replacing the ${key} re-runs no first-contact step, and every re-run step logs in with a key the host already accepts`, async () => {
        const { before, after, plan, rerun } = await rotate(`rotation-${target}-${key}`, config, key);
        assert.equal(plan.get("host-ready"), "same");
        assert.equal(plan.get("host-bootstrap"), "same");
        // The step that installs the new key logs in with a key that did not change, and every
        // other re-run step that logs in with a changed key waits for it.
        const install = step(after, "host-deploy-user");
        assert.ok(rerun.includes(install.name));
        assert.ok(usesKey(install, before, install), "the key-installing step's own login did not change");
        for (const n of rerun.filter((x) => x !== install.name)) {
          const s = step(after, n);
          if (!usesKey(s, before, s)) assert.ok(dependsOnStep(after, n, install.name), n);
        }
      });
    }
  }

  it("replacing the deploy key re-runs only the steps that install and prove it", async () => {
    const { rerun } = await rotate("rotation-deploy-only", STAGING, "deploy-key");
    assert.deepEqual(rerun, ["host-deploy-user", "host-access-proof"]);
  });

  it("the compose step sets the env file's PostgreSQL password before the app starts, never on a command line", () => {
    const compose = step(run, "app-compose-up").create!;
    assert.match(compose, /\\getenv password POSTGRES_PASSWORD/);
    assert.match(compose, /ALTER ROLE CURRENT_USER WITH PASSWORD :'\\''password'\\''/);
    const servicesUp = compose.indexOf('up -d --wait --wait-timeout "$WAIT_SECONDS" "${SERVICES[@]}"');
    assert.ok(servicesUp > 0, "no compose up of the services");
    assert.ok(compose.indexOf("ALTER ROLE") < servicesUp, "the password is set before the app starts");
  });

  it("a failing compose step prints only the failing services' last 40 lines, secrets masked", () => {
    const compose = step(run, "app-compose-up").create!;
    assert.match(compose, /LOG_LINES='\\''40'\\''/);
    assert.match(
      compose,
      /docker compose logs --no-color --tail "\$LOG_LINES" "\$service" 2>&1 \| mask_secrets/,
    );
    assert.doesNotMatch(compose, /docker compose logs --tail \d+ >&2/);
  });

  it("steps that need root use sudo -n (never a password prompt); the bundle is pushed without sudo", () => {
    assert.match(step(run, "host-docker").create!, /^sudo -n timeout /);
    assert.match(step(run, "app-files").create!, /^timeout /);
    assert.match(step(run, "app-env-file").create!, /^timeout /);
  });

  it("no step sets environment variables (a default sshd drops them: no AcceptEnv)", () => {
    for (const s of run.steps) assert.equal(s.environment, undefined, s.name);
  });

  it("triggers are content hashes: the same config twice gives identical step inputs", async () => {
    const again = await runStack("staging", STAGING);
    for (const s of run.steps) {
      const t = step(again, s.name);
      assert.deepEqual(t.triggers, s.triggers, s.name);
      assert.equal(t.create, s.create, s.name);
      assert.equal(t.stdin, s.stdin, s.name);
      assert.match(String(s.triggers[0]), /^[0-9a-f]{64}$/, `${s.name}: first trigger is a sha256`);
    }
  });

  it("no trigger is a secret: the engine refuses a secret whose value is still unknown inside triggers", async () => {
    const everySecret = await runStack(
      "existing",
      {
        ...EXISTING,
        appImage: "ghcr.io/example/chitram:1.0.0",
        registryServer: "ghcr.io",
        registryUsername: "example",
        registryPassword: "hunter2-registry",
        backupHeartbeatUrl: "https://hc-ping.com/0f4c2f2e-1a7e-4c38-9a55-3b0c2d7c5e11",
        offsiteBackups: "true",
        offsiteEndpoint: "https://s3.example.net",
        offsiteBucket: "chitram-backups",
        offsiteAccessKey: "AKIAEXAMPLEKEY1",
        offsiteSecretKey: "secret0key0for0the0bucket",
      },
      "real",
    );
    for (const r of [run, everySecret]) {
      for (const s of r.steps) {
        assert.deepEqual(
          s.secretPaths.filter((p) => p.startsWith("triggers")),
          [],
          `${s.name}: a secret in triggers`,
        );
        // What a secret trigger held before: a plain sha256 of the step's secret stdin.
        if (s.stdin !== undefined)
          assert.ok(!s.triggers.includes(sha256(s.stdin)), `${s.name}: stdin's hash`);
      }
    }
    // The release trigger is keyed: neither the env file nor anything holding it hashes to it.
    const env = step(everySecret, "app-env-file").stdin!;
    const bundle = step(everySecret, "app-files").stdin!;
    const [releaseTrigger] = step(everySecret, "app-compose-up").triggers.slice(1);
    assert.match(String(releaseTrigger), /^[0-9a-f]{64}$/);
    for (const plain of [env, bundle + env, env + bundle]) assert.notEqual(releaseTrigger, sha256(plain));
  });

  it("a Caddyfile change re-runs the push, compose and health steps, and nothing on the host level", async () => {
    const changed = await runStack("staging", {
      ...STAGING,
      domain: "chitram.example.com",
      manageDns: "false",
    });
    const plans = run.steps.map((s) => [s.name, planStep(step(changed, s.name), storedInputs(s)).action]);
    assert.deepEqual(plans.filter(([, action]) => action !== "same").sort(), [
      ["app-compose-up", "replace"],
      ["app-files", "replace"],
      ["app-health", "replace"],
    ]);
  });

  it("the backup cron step re-runs when the host.env lines it reads change, not on other host.env changes", async () => {
    // The lines of the host.env the host receives that set the cron step's settings.
    const hostEnvLines = (hostEnv: string, keys: readonly string[]) =>
      hostEnv
        .split("\n")
        .filter((line) => keys.some((k) => line.startsWith(`${k}=`)))
        .join("\n");
    const hostEnvOf = (r: { steps: ProgramStep[] }) =>
      decodeFiles(step(r, "app-files").stdin!).find((f) => f.path.endsWith("/host.env"))!.content;
    const cron = step(run, "app-backup-cron");
    const lines = hostEnvLines(hostEnvOf(run), BACKUP_CRON_HOST_ENV);
    assert.match(lines, /^BACKUP_LOG='\/var\/log\/[^']+'$/m);
    assert.ok(cron.triggers.includes(sha256(lines)), "the lines it reads are in its triggers");
    // Another BACKUP_LOG in host.env gives other triggers.
    const moved = hostEnvOf(run).replace(/^BACKUP_LOG=.*$/m, "BACKUP_LOG='/var/log/elsewhere.log'");
    assert.notEqual(sha256(hostEnvLines(moved, BACKUP_CRON_HOST_ENV)), sha256(lines));
    // Retention days are in host.env too, but the cron step does not read them.
    const retention = await runStack("staging", { ...STAGING, backupRetentionDays: "9" });
    assert.notEqual(hostEnvOf(retention), hostEnvOf(run));
    assert.deepEqual(step(retention, "app-backup-cron").triggers, cron.triggers);
  });
});

describe("program: a private registry for the app image", async () => {
  const password = "ghp_Registry0Password0That0Must0Stay0Secret";
  const registry = {
    appImage: "ghcr.io/example/chitram:1.0.0",
    registryServer: "ghcr.io",
    registryUsername: "example-bot",
    registryPassword: password,
  };
  const withLogin = await runStack("existing", { ...EXISTING, ...registry }, "real");

  it("without registryServer there is no login step; with it, the release step also waits for the login", async () => {
    const plain = await runStack("existing", EXISTING, "real");
    assert.deepEqual(
      step(withLogin, "app-compose-up").dependsOn.sort(),
      [...step(plain, "app-compose-up").dependsOn, "app-registry-login"].sort(),
    );
    assert.ok(
      !plain.steps.some((s) => s.name.includes("registry")),
      plain.steps.map((s) => s.name).join(","),
    );
  });

  it("logs in as the deploy user before the release step, which depends on it", () => {
    const login = step(withLogin, "app-registry-login");
    assert.equal(login.connection.user, "chitram");
    assert.ok(
      !login.create!.includes("sudo -n"),
      "not through sudo: the release step pulls as the deploy user",
    );
    // The parameters as they stand inside the quoted script.
    assert.ok(login.create!.includes(`REGISTRY_SERVER='\\''ghcr.io'\\''`), login.create);
    assert.ok(login.create!.includes(`AUTH_KEY='\\''ghcr.io'\\''`));
    assert.ok(step(withLogin, "app-compose-up").dependsOn.includes("app-registry-login"));
  });

  it("a refused login stops the steps that rewrite the app's files too (they run after it)", () => {
    for (const name of ["app-env-file", "app-files", "app-compose-up"]) {
      assert.ok(step(withLogin, name).dependsOn.includes("app-registry-login"), name);
    }
    // The backup cron waits for the files step.
    assert.ok(step(withLogin, "app-backup-cron").dependsOn.includes("app-files"));
  });

  it("deleting the login step logs out; a new credential or server logs out the old login before the new one", async () => {
    const login = step(withLogin, "app-registry-login");
    assert.match(login.delete!, /docker logout "\$AUTH_KEY"/);
    assert.ok(!login.delete!.includes("sudo -n"), "as the deploy user, whose config holds the login");
    assert.equal(named(withLogin, "app-registry-login").options.deleteBeforeReplace, true);
    const moved = await runStack(
      "existing",
      {
        ...EXISTING,
        ...registry,
        registryServer: "registry.example.com",
        appImage: "registry.example.com/chitram:1",
      },
      "real",
    );
    assert.equal(planStep(step(moved, "app-registry-login"), storedInputs(login)).action, "replace");
  });

  it("the credential travels only on the step's secret stdin; nothing is logged, the outputs are secret", () => {
    const login = step(withLogin, "app-registry-login");
    assert.equal(login.stdin, renderRegistryLogin({ server: "ghcr.io", username: "example-bot", password }));
    assert.ok(login.secretPaths.includes("stdin"));
    assert.equal(login.logging, "none");
    const secretOutputs = named(withLogin, "app-registry-login").options.additionalSecretOutputs;
    assert.ok(secretOutputs.includes("stdout") && secretOutputs.includes("stderr"), secretOutputs.join(","));
  });

  it("the password is in no step's create or delete command, no plain input and no output", () => {
    for (const s of withLogin.steps) {
      for (const cmd of [s.create, s.delete]) {
        assert.ok(!(cmd ?? "").includes(password), `${s.name}'s command holds the password`);
      }
      if (s.name !== "app-registry-login") assert.ok(!(s.stdin ?? "").includes(password), s.name);
    }
    for (const r of withLogin.resources) {
      assert.ok(!JSON.stringify(r.maskedInputs).includes(password), `${r.name} shows the password`);
    }
    for (const [k, o] of Object.entries(withLogin.outputs)) {
      assert.ok(!JSON.stringify(o.value).includes(password), `output ${k} holds the password`);
    }
  });

  it("a rotated password replaces the login step (it logs in again), and nothing else; no trigger derives from it", async () => {
    const rotated = await runStack(
      "existing",
      { ...EXISTING, ...registry, registryPassword: `${password}2` },
      "real",
    );
    const login = step(withLogin, "app-registry-login");
    const again = step(rotated, "app-registry-login");
    assert.ok(again.replaceOnChanges.includes("stdin"));
    assert.deepEqual(again.triggers, login.triggers, "the credential is in no trigger, not even hashed");
    const plans = withLogin.steps.map((s) => [
      s.name,
      planStep(step(rotated, s.name), storedInputs(s)).action,
    ]);
    assert.deepEqual(
      plans.filter(([, action]) => action !== "same"),
      [["app-registry-login", "replace"]],
    );
  });

  it("a user name set with --secret (a token) is in no command, plain input or output; a plain one is no parameter either", async () => {
    const token = "dop_v1_Token0As0Registry0User0Name";
    const run = await runStack(
      "existing",
      {
        ...EXISTING,
        appImage: "registry.digitalocean.com/acme-apps/chitram:1.0.0",
        registryServer: "registry.digitalocean.com",
        registryUsername: token,
        registryPassword: token,
      },
      "real",
      ["registryUsername"],
    );
    const login = step(run, "app-registry-login");
    assert.ok(login.secretPaths.includes("stdin"));
    for (const s of run.steps) {
      for (const cmd of [s.create, s.delete]) assert.ok(!(cmd ?? "").includes(token), `${s.name}'s command`);
    }
    for (const r of run.resources) assert.ok(!JSON.stringify(r.maskedInputs).includes(token), r.name);
    for (const [k, o] of Object.entries(run.outputs)) assert.ok(!JSON.stringify(o.value).includes(token), k);
    for (const s of withLogin.steps) {
      for (const cmd of [s.create, s.delete]) assert.ok(!(cmd ?? "").includes("example-bot"), s.name);
    }
  });

  it("DigitalOcean's registry: the stack obtains read-only credentials for the registry named by appImage", async () => {
    const run = await runStack(
      "staging",
      {
        ...STAGING,
        appImage: "registry.digitalocean.com/acme-apps/chitram:1.0.0",
        registryServer: "registry.digitalocean.com",
      },
      "real",
    );
    const [creds] = ofType(
      run,
      "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials",
    );
    assert.equal(creds.inputs.registryName, "acme-apps");
    // docs/RUNBOOK.md quotes this URN for `pulumi up --replace` of a revoked credential.
    assert.equal(
      creds.urn,
      "urn:pulumi:staging::chitram::chitram:app:AppDeployment$digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials::app-registry-credentials",
    );
    assert.equal(creds.inputs.write, false);
    assert.ok(creds.options.additionalSecretOutputs.includes("dockerCredentials"));
    const login = step(run, "app-registry-login");
    assert.ok(login.create!.includes(`AUTH_KEY='\\''registry.digitalocean.com'\\''`));
    assert.ok(login.secretPaths.includes("stdin"));
    assert.equal(login.logging, "none");
    const { auth } = (JSON.parse(login.stdin!) as { auths: Record<string, { auth: string }> }).auths[
      "registry.digitalocean.com"
    ];
    const token = Buffer.from(auth, "base64").toString().split(":")[0];
    for (const s of run.steps)
      assert.ok(!(s.create ?? "").includes(token), `${s.name}'s command holds the token`);
    assert.ok(step(run, "app-compose-up").dependsOn.includes("app-registry-login"));
  });
});

const LB = "digitalocean:index/loadBalancer:LoadBalancer";
describe("program: several app droplets behind a load balancer (appHosts)", async () => {
  const scaled = { database: "managed", objectStore: "spaces", appHosts: "3" };
  const run = await runStack("staging", { ...STAGING, ...scaled }, "real");
  const heartbeat = "https://hc-ping.com/0b8c4f1e-7d2a-4c55-9e3b-5a1f2d3c4b5a";
  const domain = await runStack(
    "prod",
    { ...PROD, ...scaled, dataVolumeSizeGb: "0", backupHeartbeatUrl: heartbeat },
    "real",
  );
  const lb = named(run, "chitram-lb");

  it("three droplets, the first under the single droplet's names, all in the load balancer, its health check on the health path", () => {
    assert.deepEqual(
      ofType(run, DROPLET).map((d) => [d.name, d.inputs.name]),
      [
        ["chitram-droplet", "chitram-staging"],
        ["chitram-droplet-2", "chitram-staging-2"],
        ["chitram-droplet-3", "chitram-staging-3"],
      ],
    );
    // One admin key for all: DigitalOcean refuses the same public key twice.
    assert.equal(ofType(run, "digitalocean:index/sshKey:SshKey").length, 1);
    assert.equal(lb.type, LB);
    // The first droplet is protected as ever; the others hold no data, so fewer deletes them.
    const protectedRun = ofType(domain, DROPLET).map((d) => [d.name, d.options.protect]);
    assert.deepEqual(protectedRun, [
      ["chitram-droplet", true],
      ["chitram-droplet-2", false],
      ["chitram-droplet-3", false],
    ]);
    assert.deepEqual(lb.inputs.dropletIds, [MOCK_DROPLET_ID, MOCK_DROPLET_ID, MOCK_DROPLET_ID]);
    assert.deepEqual(lb.inputs.healthcheck, {
      protocol: "http",
      port: 80,
      path: "/health",
      checkIntervalSeconds: 3,
      responseTimeoutSeconds: 3,
      healthyThreshold: 2,
      unhealthyThreshold: 2,
    });
    assert.deepEqual(lb.inputs.forwardingRules, [
      { entryProtocol: "http", entryPort: 80, targetProtocol: "http", targetPort: 80 },
    ]);
    assert.equal(lb.inputs.redirectHttpToHttps, false);
    assert.equal(lb.inputs.region, named(run, "chitram-droplet").inputs.region);
    assert.deepEqual(named(run, "chitram-project").inputs.resources, [
      "do:droplet:chitram-droplet",
      "do:droplet:chitram-droplet-2",
      "do:droplet:chitram-droplet-3",
      `do:loadbalancer:chitram-lb-id`,
    ]);
  });

  it("the droplets' firewall admits port 80 from the load balancer alone, and 443 not at all", () => {
    const fw = named(run, "chitram-firewall");
    assert.equal((fw.inputs.dropletIds as number[]).length, 3);
    const inbound = fw.inputs.inboundRules as Record<string, unknown>[];
    assert.deepEqual(
      inbound.filter((r) => r.portRange !== "22"),
      [{ protocol: "tcp", portRange: "80", sourceLoadBalancerUids: ["chitram-lb-id"] }],
    );
  });

  it("the database firewall admits each droplet", () => {
    assert.equal((named(run, "chitram-db-firewall").inputs.rules as unknown[]).length, 3);
  });

  it("domain mode: the load balancer ends HTTPS with DigitalOcean's Let's Encrypt certificate and redirects HTTP; the A record is the load balancer's", () => {
    const cert = named(domain, "chitram-certificate");
    assert.equal(cert.inputs.type, "lets_encrypt");
    assert.deepEqual(cert.inputs.domains, [PROD.domain]);
    assert.equal(
      cert.inputs.name,
      undefined,
      "a fixed name: a new domain's certificate could not be made beside the old",
    );
    const balancer = named(domain, "chitram-lb");
    assert.deepEqual(balancer.inputs.forwardingRules, [
      {
        entryProtocol: "https",
        entryPort: 443,
        targetProtocol: "http",
        targetPort: 80,
        certificateName: cert.state.name,
      },
      { entryProtocol: "http", entryPort: 80, targetProtocol: "http", targetPort: 80 },
    ]);
    assert.equal(balancer.inputs.redirectHttpToHttps, true);
    assert.equal(named(domain, "chitram-a-record").inputs.value, balancer.state.ip);
    // Caddy serves plain HTTP from the load balancer, with HSTS: users are on HTTPS.
    const caddyfile = decodeFiles(step(domain, "app-2-files").stdin!).find((f) =>
      f.path.endsWith("/Caddyfile"),
    )!.content;
    assert.match(caddyfile, /^:80 \{$/m);
    assert.match(caddyfile, /Strict-Transport-Security/);
    assert.ok(!caddyfile.includes(PROD.domain), "Caddy would get a certificate of its own");
    assert.match(caddyfile, /not header X-Forwarded-For \*/);
  });

  it("a release goes one droplet at a time: each droplet's files and release wait for the one before it to be healthy; each release drains its droplet", () => {
    for (const [later, before] of [
      ["app-2", "app"],
      ["app-3", "app-2"],
    ]) {
      for (const s of ["env-file", "files", "compose-up"])
        assert.ok(
          step(run, `${later}-${s}`).dependsOn.includes(`${before}-health`),
          `${later}-${s} does not wait for ${before}-health`,
        );
    }
    assert.equal(dependsOnStep(run, "app-compose-up", "app-2-health"), false);
    for (const name of ["app", "app-2", "app-3"]) {
      const release = step(run, `${name}-compose-up`);
      assert.match(release.create!, /# chitram step: lbRelease/);
      assert.match(release.create!, /DRAIN_FILE=\W+\/opt\/chitram\/caddy\/lb\/draining\W/);
    }
  });

  it("the droplets share the app's secrets (one set generated) and one grant; the backup cron on the first droplet only; no backup uptime check", () => {
    const envs = ["app", "app-2", "app-3"].map(
      (n) => decodeFiles(step(run, `${n}-env-file`).stdin!)[0].content,
    );
    assert.equal(new Set(envs).size, 1);
    assert.equal(
      ofType(run, "random:index/randomPassword:RandomPassword").filter((r) => /^app-\d/.test(r.name)).length,
      0,
    );
    assert.deepEqual(
      run.steps
        .filter((s) => /database-grant|backup-cron/.test(s.name))
        .map((s) => s.name)
        .sort(),
      ["app-backup-cron", "app-database-grant"],
    );
    const checks = ofType(domain, UPTIME).map((c) => c.name);
    assert.ok(checks.length > 0 || PROD.alertEmails === undefined);
    assert.ok(!checks.some((n) => n.includes("backups")), checks.join(", "));
  });

  it("the outputs: the load balancer's address for users, each droplet's for SSH", () => {
    assert.equal(run.outputs.publicIp.value, MOCK_LB_IP);
    assert.deepEqual(run.outputs.appHostIps.value, [MOCK_DROPLET_IP, MOCK_DROPLET_IP, MOCK_DROPLET_IP]);
  });
});
