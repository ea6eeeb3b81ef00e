// The local DigitalOcean API's Spaces keys: each a user of the local Spaces (harness/localSpaces.ts)
// with a policy of its grants. The secret is shown once, when the key is made.
import { createHash, randomUUID } from "node:crypto";
import { LocalSpaces, SpacesGrant } from "../localSpaces";
import { Answer, ApiContext, ApiError, get, Json, Route, text } from "./common";

export function spacesKeyService(
  ctx: ApiContext,
  spaces: LocalSpaces | undefined,
): { routes: Route[]; keys: Map<string, Json> } {
  const spacesKeys = new Map<string, Json>();
  const now = ctx.now;

  const localSpaces = () => {
    if (!spaces)
      throw new ApiError(404, "not_found", "this local DigitalOcean API was started without Spaces");
    return spaces;
  };

  function spacesGrants(list: unknown): SpacesGrant[] {
    return (Array.isArray(list) ? (list as Json[]) : []).map((g) => {
      const permission = text(g.permission);
      if (permission !== "read" && permission !== "readwrite" && permission !== "fullaccess")
        throw new ApiError(
          422,
          "unprocessable_entity",
          "a grant's permission must be read, readwrite or fullaccess",
        );
      // An empty bucket name grants every bucket on DigitalOcean; no key of this project asks for that.
      if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(text(g.bucket)))
        throw new ApiError(
          422,
          "unprocessable_entity",
          `a grant needs a bucket name, not ${JSON.stringify(g.bucket)}`,
        );
      return { bucket: text(g.bucket), permission };
    });
  }

  /** A key as GET returns it: without its secret, which DigitalOcean shows once. */
  const publicKey = (key: Json): Json => ({ ...key, secret_key: undefined });

  async function createSpacesKey(body: Json): Promise<Answer> {
    const store = localSpaces();
    if (!text(body.name)) throw new ApiError(422, "unprocessable_entity", "name is required");
    const grants = spacesGrants(body.grants);
    const accessKey = `DO00${randomUUID().replace(/-/g, "").slice(0, 16).toUpperCase()}`;
    const secretKey = createHash("sha256").update(randomUUID()).digest("base64").replace(/=+$/, "");
    await store.putKey(accessKey, secretKey, grants);
    const key: Json = {
      name: body.name,
      access_key: accessKey,
      secret_key: secretKey,
      grants,
      created_at: now(),
    };
    spacesKeys.set(accessKey, key);
    return [201, { key }];
  }

  const routes: Route[] = [
    ["POST", /^\/v2\/spaces\/keys$/, (_m, b) => createSpacesKey(b)],
    ["GET", /^\/v2\/spaces\/keys\/(\w+)$/, ([, id]) => [200, { key: publicKey(get(spacesKeys, id)) }]],
    [
      "PUT",
      /^\/v2\/spaces\/keys\/(\w+)$/,
      async ([, id], b) => {
        const key = get(spacesKeys, id);
        const grants = spacesGrants(b.grants);
        await localSpaces().setGrants(id, grants);
        Object.assign(key, { name: text(b.name) || key.name, grants });
        return [200, { key: publicKey(key) }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/spaces\/keys\/(\w+)$/,
      async ([, id]) => {
        get(spacesKeys, id);
        await localSpaces().removeKey(id);
        spacesKeys.delete(id);
        return [204, undefined];
      },
    ],
  ];
  return { routes, keys: spacesKeys };
}
