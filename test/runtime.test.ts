// The program and the tests run under a Node that @pulumi/pulumi supports (its engines field says
// >= 22): the npm scripts run the Node binary the `node` devDependency puts in node_modules/.bin,
// whatever the machine's own Node is.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

const ROOT = path.resolve(__dirname, "..");
const readJson = (file: string) =>
  JSON.parse(fs.readFileSync(path.join(ROOT, file), "utf8")) as {
    engines: { node: string };
    devDependencies: Record<string, string>;
  };
const major = (version: string) => Number(/^v?(\d+)\./.exec(version)?.[1]);

describe("runtime: Node 22 or later", () => {
  it("this test runs under Node 22 or later", () => {
    assert.ok(
      major(process.version) >= 22,
      `running under Node ${process.version}; use npm test / npm run test:unit`,
    );
  });

  it("package.json's engines and pinned node agree with @pulumi/pulumi's engines", () => {
    const pkg = readJson("package.json");
    const sdk = readJson("node_modules/@pulumi/pulumi/package.json");
    assert.equal(pkg.engines.node, ">=22");
    assert.match(sdk.engines.node, /^>=\s*22\b/, "@pulumi/pulumi changed its engines: update ours");
    assert.match(pkg.devDependencies.node, /^22\.\d+\.\d+$/, "node is pinned exactly to a 22.x release");
  });

  it("npm scripts run the pinned node, not the machine's", { skip: !process.env.npm_lifecycle_event }, () => {
    assert.equal(process.version, `v${readJson("package.json").devDependencies.node}`);
  });
});
