// npm run bench:sandbox — numbers for a deploy into a throw-away sandbox droplet (not a test):
// seconds from a bare host to healthy (image builds excluded), seconds for a no-op re-run,
// failed requests out of N at 10 Hz on /health while a Caddyfile change, app image changes, an
// env change, a broken image and a rollback are applied, the seconds from the start of the release
// step to the new version serving, steady-state memory of the containers, and a disaster-recovery
// drill (the host lost, a new one deployed and restored from the off-box copy).
import { decodeFiles, encodeFiles } from "../remote/transfer";
import { ProgramStep } from "../harness/steps";
import { apply } from "../harness/engine";
import { StepError } from "../harness/replay";
import {
  APP_VARIANTS,
  buildAppVariants,
  Deployment,
  newDeployment,
  restep,
  withAppEnv,
} from "../harness/deployment";
import { probeDuring, waitHealthy } from "../harness/probes";
import { SANDBOX_APP_IMAGE } from "../hostContract";
import { buildImages, ensureDockerd, removeAllSandboxes } from "../harness/sandbox";
import { backupUnderCronEnv } from "../harness/backupDrill";
import { rebuildFromOffsite, startOffsiteStore } from "../harness/offsiteStore";

// A step's whole stderr: its error message keeps only the tail, where a broken app's request log
// can push out the release step's own line.
const errorText = (e: unknown) => (e instanceof StepError ? e.stderr : String((e as Error).message));

const seconds = (since: number) => ((Date.now() - since) / 1000).toFixed(1);

function withCaddyHeader(steps: ProgramStep[], value: string): ProgramStep[] {
  return steps.map((s) => {
    if (s.name !== "app-files") return s;
    const files = decodeFiles(s.stdin!).map((f) =>
      f.path.endsWith("/Caddyfile")
        ? {
            ...f,
            content: f.content.replace("\t\t-Server\n", `\t\t-Server\n\t\tX-Chitram-Release "${value}"\n`),
          }
        : f,
    );
    // The program would also change the compose and health steps' triggers (the bundle hash);
    // the caller forces those two steps instead.
    return { ...s, stdin: encodeFiles(files) };
  });
}

async function main(): Promise<void> {
  await ensureDockerd();
  let t = Date.now();
  await buildImages();
  console.log(`images ready (built or up to date): ${seconds(t)} s`);
  await removeAllSandboxes();

  t = Date.now();
  const d: Deployment = await newDeployment("bench");
  console.log(`sandbox droplet started, service images loaded: ${seconds(t)} s`);
  try {
    t = Date.now();
    await apply(d.steps, d.state);
    await waitHealthy(d.droplet.httpPort);
    console.log(`bare host -> healthy (all ${d.steps.length} steps): ${seconds(t)} s`);

    t = Date.now();
    const noop = await apply(d.steps, d.state);
    console.log(`no-op re-run (${noop.ran.length} steps ran): ${seconds(t)} s`);

    const caddy = withCaddyHeader(d.steps, "bench");
    t = Date.now();
    const caddyProbe = await probeDuring(d.droplet.httpPort, () =>
      apply(caddy, d.state, { force: (s) => ["app-compose-up", "app-health"].includes(s.name) }),
    );
    console.log(
      `Caddyfile change: applied in ${seconds(t)} s, failed requests ${caddyProbe.failed}/${caddyProbe.total} at 10 Hz`,
    );

    await buildAppVariants(d.droplet);
    // Each release: the whole apply under a 10 Hz probe (at least 100 requests), and the release
    // step's own report of when the new container took over (host/steps/composeUp.sh).
    const release = async (what: string, steps: ProgramStep[], force?: string) => {
      let stepOutput = "";
      t = Date.now();
      const probe = await probeDuring(
        d.droplet.httpPort,
        async () => {
          const r = await apply(steps, d.state, { force: (s) => s.name === force });
          stepOutput = r.ran.find((s) => s.name === "app-compose-up")?.stdout ?? "";
        },
        100,
      );
      const serving = /serves .*, (\d+)s after the step started/.exec(stepOutput);
      const outcome =
        probe.error === undefined
          ? `new version serving ${serving ? serving[1] : "?"} s after the release step started`
          : `rolled back (${/release of \S+ failed: [^\n]*/.exec(errorText(probe.error))?.[0] ?? (probe.error as Error).message})`;
      console.log(
        `${what}: applied in ${seconds(t)} s, ${outcome}, failed requests ${probe.failed}/${probe.total} at 10 Hz (slowest ${probe.slowestMs} ms)`,
      );
      return steps;
    };
    await release("app image change", await restep(d, { appImage: APP_VARIANTS.v2 }));
    const current = await restep(d, { appImage: APP_VARIANTS.v2 });
    const envChanged = withAppEnv(current, "CHITRAM_SANDBOX_NOTE", "bench");
    await release("app env file change", envChanged, "app-compose-up");
    await release("back to the stack's env file", current, "app-compose-up");
    await release(
      "image that never passes its health check",
      await restep(d, { appImage: APP_VARIANTS.noHealth, releaseTimeoutSeconds: "20" }),
    );
    await release("image that exits on start", await restep(d, { appImage: APP_VARIANTS.crashing }));
    await release("rollback to the previous image", await restep(d, { appImage: SANDBOX_APP_IMAGE }));
    await waitHealthy(d.droplet.httpPort);
    await new Promise((r) => setTimeout(r, 10_000));
    const stats = await d.droplet.exec("docker stats --no-stream --format '{{.Name}} {{.MemUsage}}'");
    console.log("steady-state memory (container, used / limit):");
    for (const line of stats.stdout.trim().split("\n")) console.log(`  ${line}`);
    const mib = stats.stdout
      .trim()
      .split("\n")
      .map((l) => /\s([\d.]+)(KiB|MiB|GiB) \//.exec(l))
      .reduce(
        (sum, m) => sum + (m ? Number(m[1]) * { KiB: 1 / 1024, MiB: 1, GiB: 1024 }[m[2] as "KiB"] : 0),
        0,
      );
    console.log(`  total: ${mib.toFixed(0)} MiB`);
  } finally {
    await d.droplet.stop();
  }
  await disasterRecovery();
}

/** Times the disaster-recovery drill of test/host/offsite.test.ts. */
async function disasterRecovery(): Promise<void> {
  const store = await startOffsiteStore(`chitram-bench-s3-${process.pid}`);
  let replacement: { stop(): Promise<void> } | undefined;
  const d = await newDeployment("bench-dr", {
    config: async (droplet) => {
      await store.join(droplet);
      return store.config;
    },
  });
  try {
    await apply(d.steps, d.state);
    await waitHealthy(d.droplet.httpPort);
    const backup = await backupUnderCronEnv((cmd) => d.droplet.exec(cmd));
    if (backup.code !== 0) throw new Error(`backup failed:\n${backup.stdout}${backup.stderr}`);
    const r = await rebuildFromOffsite(d, store);
    replacement = r.droplet;
    if (r.restore.code !== 0) throw new Error(`restore failed:\n${r.restore.stdout}${r.restore.stderr}`);
    const { newHostMs, deployMs, restoreMs } = r.timings;
    const s = (ms: number) => (ms / 1000).toFixed(1);
    console.log(
      `disaster recovery: new droplet ${s(newHostMs)} s, deploy to healthy ${s(deployMs)} s, ` +
        `restore from the off-box copy ${s(restoreMs)} s; ${s(newHostMs + deployMs + restoreMs)} s in all`,
    );
  } finally {
    await d.droplet.stop();
    await replacement?.stop();
    await store.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
