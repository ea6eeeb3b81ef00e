// The local DigitalOcean API's container registries: the registries on the account, their docker
// credentials (each a new token, a user of the local registry, harness/registry.ts), and the
// address the provider revokes a token at when the credentials are deleted.
//
// That revocation is not an API call: the provider POSTs to the fixed
// https://cloud.digitalocean.com/v1/oauth/revoke with Go's default client, whatever its API
// endpoint, and crashes when the request fails. The provider gets an HTTPS proxy (HTTPS_PROXY)
// that answers a CONNECT to cloud.digitalocean.com:443 itself, with a certificate from the local
// registry's CA (SSL_CERT_FILE), and refuses every other host: nothing leaves this machine.
import { randomBytes } from "node:crypto";
import * as http from "node:http";
import * as net from "node:net";
import * as tls from "node:tls";
import { DO_CLOUD_HOST, DO_REGISTRY_HOST, DoRegistry } from "../registry";
import { ApiContext, ApiError, Json, notFound, Route } from "./common";

/** The revocation the provider sends, as the API's request log records it. */
export const REVOKE_PATH = `https://${DO_CLOUD_HOST}/v1/oauth/revoke`;

/** A token the API issued as docker credentials, until it is revoked. */
export interface RegistryToken {
  token: string;
  registry: string;
  readWrite: boolean;
  expiresAt: string;
}

export interface RegistryService {
  routes: Route[];
  /** The tokens issued and not revoked. */
  tokens: Map<string, RegistryToken>;
  /** `http://127.0.0.1:<port>`: HTTPS_PROXY for the provider. */
  proxy?: string;
  close(): Promise<void>;
}

export async function registryService(
  ctx: ApiContext,
  names: readonly string[],
  registry: DoRegistry | undefined,
  log: (method: string, path: string, status: number, body?: unknown) => void,
): Promise<RegistryService> {
  const tokens = new Map<string, RegistryToken>();
  const created = ctx.now();

  const registryNamed = (name: string): Json => {
    if (!names.includes(name)) throw notFound();
    return {
      name,
      created_at: created,
      region: "nyc3",
      storage_usage_bytes: 0,
      storage_usage_bytes_updated_at: created,
    };
  };

  /** DigitalOcean's docker-credentials body: a Docker config.json whose auth is base64(token:token). */
  async function dockerCredentials(name: string, query: URLSearchParams): Promise<Json> {
    registryNamed(name);
    if (!registry) throw new ApiError(500, "server_error", "this local DigitalOcean API runs no registry");
    const expiry = Number(query.get("expiry_seconds") ?? "2592000");
    if (!Number.isInteger(expiry) || expiry < 0 || expiry > 1576800000)
      throw new ApiError(422, "unprocessable_entity", "expiry_seconds must be between 0 and 1576800000");
    const token = `dop_v1_${randomBytes(32).toString("hex")}`;
    await registry.addUser(token, token);
    tokens.set(token, {
      token,
      registry: name,
      readWrite: query.get("read_write") === "true",
      expiresAt: new Date(Date.now() + expiry * 1000).toISOString(),
    });
    const auth = Buffer.from(`${token}:${token}`).toString("base64");
    return { auths: { [DO_REGISTRY_HOST]: { auth } } };
  }

  const routes: Route[] = [
    ["GET", /^\/v2\/registries\/([a-z0-9-]+)$/, ([, name]) => [200, { registry: registryNamed(name) }]],
    [
      "GET",
      /^\/v2\/registries\/([a-z0-9-]+)\/docker-credentials$/,
      async ([, name], _b, query) => [200, await dockerCredentials(name, query)],
    ],
  ];
  if (!registry) return { routes, tokens, close: async () => {} };

  // The revocation endpoint, over TLS inside the CONNECT tunnel.
  const cloud = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        let status = 404;
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        if (req.method === "POST" && req.url === "/v1/oauth/revoke") {
          const token = form.get("token") ?? "";
          // Bearer auth with the token itself; RFC 7009: 200 whether or not it was still valid.
          status = req.headers.authorization === `Bearer ${token}` ? 200 : 401;
          if (status === 200 && tokens.has(token)) {
            // Always an answer: the provider waits for one without a time limit.
            try {
              await registry.removeUser(token);
              tokens.delete(token);
            } catch (e) {
              status = 500;
              console.error(`local DigitalOcean API: revoking a registry token: ${String(e)}`);
            }
          }
        }
        // The token is a secret: the log keeps whether one was sent, not its value.
        log(req.method ?? "GET", `https://${DO_CLOUD_HOST}${req.url ?? "/"}`, status, {
          token: form.has("token") ? "(sent)" : "(none)",
        });
        res.writeHead(status, { "Content-Type": "application/json" }).end("{}");
      })();
    });
  });
  const proxy = http.createServer((_req, res) => {
    res.writeHead(403).end(`this proxy only tunnels to ${DO_CLOUD_HOST}:443\n`);
  });
  // Open tunnels, closed with the proxy (the revocation server never listens, so it holds none).
  const tunnels = new Set<net.Socket>();
  proxy.on("connect", (req: http.IncomingMessage, socket: net.Socket) => {
    tunnels.add(socket);
    socket.on("close", () => tunnels.delete(socket));
    socket.on("error", () => socket.destroy());
    if (req.url !== `${DO_CLOUD_HOST}:443`) {
      log("CONNECT", req.url ?? "", 403);
      socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
      return;
    }
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    const secure = new tls.TLSSocket(socket, { isServer: true, cert: registry.cert, key: registry.key });
    secure.on("error", () => socket.destroy());
    cloud.emit("connection", secure);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return {
    routes,
    tokens,
    proxy: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`,
    close: async () => {
      proxy.closeAllConnections();
      for (const socket of tunnels) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}
