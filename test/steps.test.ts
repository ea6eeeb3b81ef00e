// harness/steps.ts planStep: the engine's and @pulumi/command v1.2.1's plan for one step, which the
// program tests and the real-host engine imitation (harness/engine.ts) both rely on.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planStep, ProgramStep, storedInputs } from "../harness/steps";

const base: ProgramStep = {
  name: "host-ready",
  type: "command:remote:Command",
  connection: { host: "203.0.113.10", user: "root", privateKey: "KEY-1" },
  create: "bash -c 'v1'",
  stdin: "files v1",
  triggers: ["hash-v1"],
  dependsOn: [],
  secretPaths: [],
  ignoreChanges: [],
  replaceOnChanges: [],
  deleteBeforeReplace: false,
};
const stored = storedInputs(base);

describe("planStep", () => {
  it("a step not in the state is created", () => {
    assert.equal(planStep(base, undefined).action, "create");
  });

  it("unchanged inputs: nothing runs", () => {
    assert.equal(planStep({ ...base }, stored).action, "same");
  });

  it("changed triggers replace the step; any other changed input is an update that runs create with the NEW inputs", () => {
    // Catches: treating a connection change as a no-op (a rotated key would never reach the step).
    assert.equal(planStep({ ...base, triggers: ["hash-v2"] }, stored).action, "replace");
    const moved = planStep({ ...base, connection: { ...base.connection, privateKey: "KEY-2" } }, stored);
    assert.equal(moved.action, "update");
    assert.equal(moved.inputs.connection.privateKey, "KEY-2");
  });

  it("ignored inputs keep their OLD stored values, on update and on replace alike", () => {
    // Catches: an imitation that runs the new script of a step whose script is ignored, which
    // hides what a real `up` runs (the old script, as root, on a new connection).
    const ignoring = { ...base, ignoreChanges: ["create", "stdin", "triggers"] };
    const old = storedInputs(ignoring);
    const changedScript = { ...ignoring, create: "bash -c 'v2'", stdin: "files v2", triggers: ["hash-v2"] };
    assert.equal(planStep(changedScript, old).action, "same");
    const newKey = { ...changedScript, connection: { ...base.connection, privateKey: "KEY-2" } };
    const plan = planStep(newKey, old);
    assert.equal(plan.action, "update");
    assert.equal(plan.inputs.create, "bash -c 'v1'");
    assert.equal(plan.inputs.stdin, "files v1");
    assert.equal(plan.inputs.connection.privateKey, "KEY-2");
    const ignoringConnection = { ...base, ignoreChanges: ["connection"], triggers: ["hash-v2"] };
    const replaced = planStep(
      { ...ignoringConnection, connection: { ...base.connection, host: "203.0.113.99" } },
      storedInputs({ ...base, ignoreChanges: ["connection"] }),
    );
    assert.equal(replaced.action, "replace");
    assert.equal(
      replaced.inputs.connection.host,
      "203.0.113.10",
      "a replacement keeps the old ignored value too",
    );
  });
});
