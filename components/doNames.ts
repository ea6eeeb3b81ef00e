// Names of the stack's DigitalOcean resources.
import { sha256 } from "../remote/transfer";

/**
 * The stack's name as it appears in DigitalOcean names and tags. Pulumi allows `_`, `.` and capitals
 * in stack names; DigitalOcean's volume names allow only lowercase letters, digits and `-` (64 at
 * most, so 51 for the stack in `chitram-<stack>-data`), tags no `.`. A name that already fits is
 * used as it is, so no existing resource is renamed; any other is lowercased, every other
 * character becomes `-`, and a short hash of the real name is appended, so two stacks never share
 * a name ("Team_A" and "team-a" differ).
 */
export function doStackName(stack: string): string {
  if (/^[a-z0-9]([a-z0-9-]{0,49}[a-z0-9])?$/.test(stack)) return stack;
  const plain = stack
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .slice(0, 32)
    .replace(/^-+|-+$/g, "");
  const hash = sha256(stack).slice(0, 6);
  return plain === "" ? hash : `${plain}-${hash}`;
}

/**
 * What the `index`th app droplet adds to its resources' names (and its provisioning's and app's):
 * nothing for the first, which keeps the single droplet's names, `-2`, `-3`, ... for the others.
 */
export function appHostSuffix(index: number): string {
  return index === 0 ? "" : `-${index + 1}`;
}
