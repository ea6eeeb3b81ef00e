// The deploy workflow's preview gate against `pulumi preview --json` output in the CLI's format.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { gate, guardedChanges, stepType } from "../tools/previewGate";

const FIXTURES = path.join(__dirname, "fixtures", "preview");
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), "utf8");
const DROPLET_URN =
  "urn:pulumi:prod::chitram::chitram:digitalocean:DropletHost$digitalocean:index/droplet:Droplet::chitram-droplet";

function runGate(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", path.join(__dirname, "..", "tools", "previewGate.ts"), ...args],
    {
      encoding: "utf8",
    },
  );
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("preview gate", () => {
  it("lets through a plan without changes and one that only updates app steps", () => {
    assert.deepEqual(guardedChanges(JSON.parse(fixture("no-change.json"))), []);
    assert.deepEqual(guardedChanges(JSON.parse(fixture("app-update.json"))), []);
    assert.equal(gate(fixture("app-update.json"), false).code, 0);
  });

  it("refuses a droplet replacement (a new region) and names the step, the resource and the reason", () => {
    const changes = guardedChanges(JSON.parse(fixture("droplet-replace.json")));
    assert.deepEqual(
      changes.map((c) => c.op),
      ["create-replacement", "replace", "delete-replaced"],
    );
    assert.ok(changes.every((c) => c.urn === DROPLET_URN));
    const { code, message } = gate(fixture("droplet-replace.json"), false);
    assert.equal(code, 1);
    assert.match(
      message,
      /replace urn:pulumi:prod::chitram::.*droplet:Droplet::chitram-droplet \(because of: region\)/,
    );
    assert.match(message, /docs\/RUNBOOK\.md/);
    assert.match(message, /allow_replace/);
    // The attachment is replaced with the droplet; it is not itself a reason to refuse.
    assert.ok(changes.every((c) => !c.type.includes("volumeAttachment")));
  });

  it("refuses a deletion of the volume, also when the step carries no state (type from the URN)", () => {
    assert.deepEqual(
      guardedChanges(JSON.parse(fixture("volume-delete.json"))).map((c) => [c.op, c.type]),
      [["delete", "digitalocean:index/volume:Volume"]],
    );
    assert.equal(gate(fixture("volume-delete-urn-only.json"), false).code, 1);
  });

  it("refuses a deletion of the managed database cluster or the app's database in it", () => {
    const cluster =
      "urn:pulumi:prod::chitram::chitram:digitalocean:ManagedDatabase$digitalocean:index/databaseCluster:DatabaseCluster::chitram-db-cluster";
    const db =
      "urn:pulumi:prod::chitram::chitram:digitalocean:ManagedDatabase$digitalocean:index/databaseDb:DatabaseDb::chitram-db-db";
    for (const urn of [cluster, db]) {
      const preview = JSON.stringify({ steps: [{ op: "delete", urn }] });
      assert.equal(gate(preview, false).code, 1, urn);
      assert.equal(gate(preview, true).code, 0, urn);
    }
    const bucket =
      "urn:pulumi:prod::chitram::chitram:digitalocean:AppBucket$digitalocean:index/spacesBucket:SpacesBucket::objects";
    assert.equal(gate(JSON.stringify({ steps: [{ op: "replace", urn: bucket }] }), false).code, 1);
    // Its user (a new password) and its firewall (a new droplet) are no data.
    const user = cluster.replace(
      /databaseCluster:DatabaseCluster::chitram-db-cluster$/,
      "databaseUser:DatabaseUser::chitram-db-user",
    );
    assert.equal(gate(JSON.stringify({ steps: [{ op: "replace", urn: user }] }), false).code, 0);
  });

  it("applies a guarded plan when the person asked for it, listing what will be replaced", () => {
    const { code, message } = gate(fixture("droplet-replace.json"), true);
    assert.equal(code, 0);
    assert.match(message, /as asked/);
    assert.match(message, /chitram-droplet/);
  });

  it("the type of a nested resource comes from the last type in its URN", () => {
    assert.equal(stepType({ op: "delete", urn: DROPLET_URN }), "digitalocean:index/droplet:Droplet");
  });

  it("anything that is not a preview is an error (exit 2), never a pass", () => {
    assert.equal(gate("", false).code, 2);
    assert.equal(gate("{}", false).code, 2);
    assert.equal(gate('{"steps":[{"urn":"x"}]}', true).code, 2);
  });

  it("as a command: exit 0, 1 and 2 as documented, and the flag that allows a replacement", () => {
    assert.equal(runGate([path.join(FIXTURES, "app-update.json")]).code, 0);
    const refused = runGate([path.join(FIXTURES, "droplet-replace.json")]);
    assert.equal(refused.code, 1);
    assert.match(refused.out, /Nothing was applied/);
    assert.equal(runGate([path.join(FIXTURES, "droplet-replace.json"), "--allow-replace"]).code, 0);
    assert.equal(runGate([]).code, 2);
  });
});
