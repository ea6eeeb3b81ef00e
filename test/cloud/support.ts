// What the cloud tests share.
import assert from "node:assert/strict";
import { dropletAddress, LocalDoApi } from "../../harness/doApi";
import { PulumiStack, stateResources } from "../../harness/pulumiCli";

/**
 * The API's one droplet (the test fails when there is not exactly one), its sandbox and address,
 * and `onHost`, which runs a command on it and fails the test on a non-zero exit.
 */
export function oneDroplet(api: () => LocalDoApi) {
  const only = () => {
    assert.equal(api().droplets().length, 1);
    const [droplet] = api().droplets();
    const sandbox = api().sandbox(Number(droplet.id));
    assert.ok(sandbox, "the droplet has no sandbox");
    return { droplet, sandbox, address: dropletAddress(droplet) };
  };
  const onHost = async (cmd: string) => {
    const r = await only().sandbox.exec(cmd);
    assert.equal(r.code, 0, `${cmd}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  return { only, onHost };
}

/** `pulumi destroy` exits 0, the state holds nothing but the stack, and the API nothing at all. */
export async function destroyLeavesNothing(stack: PulumiStack, api: LocalDoApi): Promise<void> {
  await stack.pulumi(["destroy", "--yes", "--skip-preview"], { timeoutMs: 10 * 60_000 });
  assert.deepEqual(
    (await stateResources(stack)).filter((r) => r.type !== "pulumi:pulumi:Stack"),
    [],
  );
  await api.settled();
  assert.deepEqual(
    Object.entries(api.holds()).filter(([, n]) => n > 0),
    [],
  );
}
