// The host target of a new droplet: the first contact waits for everything DropletHost creates
// around the droplet, its firewall among them (target existing: test/program.test.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { named, runStack, STAGING, step } from "./support";

describe("host target", () => {
  it("a new droplet: the first step waits for the droplet and its firewall", async () => {
    const run = await runStack("staging", STAGING);
    const ready = named(run, "host-ready");
    for (const name of ["chitram-droplet", "chitram-firewall"]) {
      assert.ok(ready.dependencies.includes(named(run, name).urn), `host-ready must wait for ${name}`);
    }
    assert.equal(step(run, "host-ready").connection.port, 22);
  });
});
