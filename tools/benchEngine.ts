// npm run bench:engine [-- --cold]: the real engine's own timings, printed (nothing is asserted):
// the engine build (cached, warm Go caches with FORCE=1, and with --cold empty Go caches in a
// scratch directory), then against a fresh sandbox droplet: the preview of a new stack, the first
// `up` from a bare host to /health 200, a no-op `up`, a one-step change and `destroy`.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { engineHost } from "../harness/engineHost";
import { waitHealthy } from "../harness/probes";
import { run } from "../harness/sandbox";

const ROOT = path.resolve(__dirname, "..");
const BUILD = path.join(ROOT, "tools", "engine", "build.sh");

async function timed<T>(what: string, work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const result = await work();
  console.log(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

async function main(cold: boolean): Promise<void> {
  console.log(`bench:engine on ${os.cpus().length} cores, ${new Date().toISOString()}`);
  const build = (env: NodeJS.ProcessEnv) =>
    run("bash", [BUILD], { env: { ...process.env, ...env }, timeoutMs: 90 * 60_000 });
  if (cold) {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-engine-cold-"));
    try {
      await timed("engine build, cold (empty module and build caches)", () =>
        build({
          GOMODCACHE: path.join(scratch, "mod"),
          GOCACHE: path.join(scratch, "build"),
          CHITRAM_ENGINE_CACHE: path.join(scratch, "engine"),
        }),
      );
    } finally {
      await run("chmod", ["-R", "u+w", scratch], { check: false });
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }
  await timed("engine build, warm (Go caches warm, binaries built anew: FORCE=1)", () =>
    build({ FORCE: "1" }),
  );
  await timed("engine build, cached", () => build({}));

  const h = await timed("sandbox droplet started (sshd answers), stack created and configured", () =>
    engineHost("bench"),
  );
  try {
    await timed("preview of the new stack", () => h.stack.pulumi(["preview"]));
    await timed("first up, bare host to /health 200 through Caddy", async () => {
      await h.stack.up();
      await waitHealthy(h.droplet.httpPort);
    });
    await timed("no-op up (preview and update, as `pulumi up --yes`)", () =>
      h.stack.pulumi(["up", "--yes", "--expect-no-changes"]),
    );
    await timed("no-op up --skip-preview", () => h.stack.up(["--expect-no-changes"]));
    await h.stack.configure({ backupSchedule: "15 2 * * *" });
    await timed("a one-step change (backupSchedule: the cron step replaced)", () => h.stack.up());
    await timed("destroy", () => h.stack.pulumi(["destroy", "--yes"]));
  } finally {
    await h.remove();
  }
}

main(process.argv.includes("--cold")).catch((e: Error) => {
  console.error(`bench:engine: ${e.message}`);
  process.exit(1);
});
