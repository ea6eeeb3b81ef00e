// npm run bench:scale — numbers for appHosts behind the local DigitalOcean API's load balancer
// (not a test): seconds for the first up of N app droplets (the managed database and Spaces with
// them), then for each release across them (one droplet at a time, each out of the load balancer
// while it changes) the seconds it took and the failed requests out of those sent at 10 Hz on
// /health through the load balancer, the slowest answer, and a release that fails (an image that
// exits on start). N is 3, or the first argument.
import { APP_VARIANTS, buildAppVariants, DATA_OFF_DROPLET_CONFIG } from "../harness/deployment";
import { emptyAppBuckets, startLocalDoApi } from "../harness/doApi";
import { PulumiStack } from "../harness/pulumiCli";
import { probeDuring } from "../harness/probes";
import { buildImages, ensureDockerd, removeAllSandboxes } from "../harness/sandbox";
import { SANDBOX_APP_IMAGE } from "../hostContract";

const seconds = (since: number) => ((Date.now() - since) / 1000).toFixed(1);

async function main(hosts: number): Promise<void> {
  await ensureDockerd();
  await removeAllSandboxes();
  await buildImages();
  const api = await startLocalDoApi({ databases: true, spaces: true, loadBalancers: true });
  const stack = await PulumiStack.create("staging", { env: api.env });
  try {
    await stack.configure({ ...DATA_OFF_DROPLET_CONFIG, appHosts: String(hosts) });
    let t = Date.now();
    await stack.up([], { timeoutMs: 30 * 60_000 });
    console.log(`first up, ${hosts} app droplets, the cluster and the bucket: ${seconds(t)} s`);
    const lbIp = String(api.loadBalancers()[0].ip);
    for (const d of api.droplets()) await buildAppVariants(api.sandbox(Number(d.id))!);
    for (const [what, image, fails] of [
      ["app image change", APP_VARIANTS.v2, false],
      ["back to the first image", SANDBOX_APP_IMAGE, false],
      ["image that exits on start (stops at the first droplet)", APP_VARIANTS.crashing, true],
    ] as const) {
      await stack.configure({ appImage: image });
      t = Date.now();
      const probe = await probeDuring(
        80,
        () => stack.pulumi(["up", "--yes", "--skip-preview"], { timeoutMs: 30 * 60_000, check: !fails }),
        100,
        lbIp,
      );
      if (probe.error !== undefined) throw probe.error as Error;
      console.log(
        `${what}: ${seconds(t)} s, ${probe.failed} / ${probe.total} requests failed at 10 Hz through the load balancer, slowest ${probe.slowestMs} ms`,
      );
    }
    await stack.configure({ appImage: SANDBOX_APP_IMAGE });
    await stack.up([], { timeoutMs: 30 * 60_000 });
    // The stack never deletes a bucket that holds objects, and the app's health checks leave
    // versions in it: the apps stopped, the bucket emptied, then destroy.
    await emptyAppBuckets(api);
    await stack.pulumi(["destroy", "--yes", "--skip-preview"], { timeoutMs: 20 * 60_000 });
  } finally {
    stack.remove();
    await api.close();
  }
}

main(Number(process.argv[2] ?? 3)).catch((e: Error) => {
  console.error(`bench:scale: ${e.message}`);
  process.exit(1);
});
