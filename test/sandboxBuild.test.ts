// sandbox/build-go-services.sh when the Go module proxy refuses a module: one error naming
// module@version, and nothing in the cache that looks built. The proxy is a local server that
// refuses everything (no other network: GOSUMDB is off, GOMODCACHE is empty).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { RefusingGoProxy, refusingGoProxy, runBashScript } from "./support";

const SCRIPT = path.join(__dirname, "..", "sandbox", "build-go-services.sh");

describe("sandbox/build-go-services.sh", () => {
  let proxy: RefusingGoProxy;

  before(async () => {
    proxy = await refusingGoProxy("chitram-go-build-");
  });
  after(() => proxy?.close());

  it("a module the proxy refuses stops the build with its module@version; nothing looks complete", async () => {
    const cache = path.join(proxy.dir, "cache");
    const r = await runBashScript(SCRIPT, { ...process.env, ...proxy.goEnv, CHITRAM_SANDBOX_CACHE: cache });
    assert.notEqual(r.code, 0, r.stderr);
    assert.equal(r.stdout, "", "no directory is printed");
    assert.match(
      r.stderr,
      /ERROR: caddy: the Go module proxy refused [\w./-]+@v\d[\w.+-]*; nothing was built/,
    );
    const left = fs.readdirSync(path.join(cache, "go-services"));
    assert.deepEqual(left, [], `left in the cache: ${left.join(", ")}`);
  });
});
