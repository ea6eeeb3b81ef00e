// What the cloud tests share.
import assert from "node:assert/strict";
import { LocalDoApi } from "../../harness/doApi";
import { PulumiStack, stateResources } from "../../harness/pulumiCli";

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
