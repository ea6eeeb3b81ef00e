// The local DigitalOcean API's Spaces: one S3 server (the MinIO stand-in) at a fixed address on a
// network of its own, which every droplet of the API joins (as a droplet reaches Spaces over the
// internet), and the users and policies behind the API's Spaces keys.
//
// The DigitalOcean provider addresses buckets as subdomains of the endpoint (virtual-hosted:
// `<bucket>.<host>:<port>`), which no resolver here answers. The provider gets an HTTP proxy
// instead (HTTP_PROXY; Go never proxies loopback, so the API itself is reached directly), which
// forwards requests for the endpoint's host and its subdomains to the server, Host header
// unchanged: MinIO serves virtual-hosted requests for MINIO_DOMAIN, here the server's address.
// Droplets use the endpoint itself, path-style, as mc does for an address.
import { randomBytes } from "node:crypto";
import * as http from "node:http";
import * as net from "node:net";
import { buildImages, ExecResult, run, sandboxLabelArgs } from "./sandbox";

/** A grant of a Spaces key, as the API takes it. */
export interface SpacesGrant {
  bucket: string;
  permission: "read" | "readwrite" | "fullaccess";
}

const ACTIONS: Record<SpacesGrant["permission"], string[]> = {
  read: [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:GetBucketLocation",
  ],
  readwrite: [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:GetBucketLocation",
    "s3:ListMultipartUploadParts",
    "s3:AbortMultipartUpload",
  ],
  fullaccess: ["s3:*"],
};

/** A MinIO policy with what each grant allows on its bucket and its objects. */
export function grantPolicy(grants: readonly SpacesGrant[]): object {
  return {
    Version: "2012-10-17",
    Statement: grants.map((g) => ({
      Effect: "Allow",
      Action: ACTIONS[g.permission],
      Resource: [`arn:aws:s3:::${g.bucket}`, `arn:aws:s3:::${g.bucket}/*`],
    })),
  };
}

export interface LocalSpaces {
  /** `http://<address>:9000`: SPACES_ENDPOINT_URL for the provider, the endpoint droplets use. */
  endpoint: string;
  /** `http://127.0.0.1:<port>`: HTTP_PROXY for the provider (virtual-hosted bucket requests). */
  proxy: string;
  /** A key that may do anything (SPACES_ACCESS_KEY_ID / SPACES_SECRET_ACCESS_KEY for the provider). */
  accessId: string;
  secretKey: string;
  /** The network droplets join to reach it. */
  network: string;
  /** Makes (or replaces) a user for the key with a policy of its grants. */
  putKey(accessKey: string, secretKey: string, grants: readonly SpacesGrant[]): Promise<void>;
  /** Replaces the policy of a key's user. */
  setGrants(accessKey: string, grants: readonly SpacesGrant[]): Promise<void>;
  removeKey(accessKey: string): Promise<void>;
  /** `mc <args>` in the server's container with the full-access key (alias `s3`). */
  mc(args: string[]): Promise<ExecResult>;
  stop(): Promise<void>;
}

/**
 * Starts the server on a network of its own (`<name>-net`, a /24 that no other network on this
 * engine uses) at that network's .2, and the proxy on 127.0.0.1.
 */
export async function startLocalSpaces(name: string): Promise<LocalSpaces> {
  const minio = (await buildImages()).find((i) => i.tag.startsWith("minio/"));
  if (!minio) throw new Error("sandbox/build.sh built no MinIO stand-in");
  const labels = sandboxLabelArgs();
  const network = `${name}-net`;
  // A fixed address: MinIO must know it (MINIO_DOMAIN) before it starts.
  let subnet = "";
  for (let i = 0; i < 20 && !subnet; i++) {
    const candidate = `172.${16 + ((process.pid + i) % 16)}.${(process.pid * 7 + i * 31) % 256}`;
    const r = await run(
      "docker",
      ["network", "create", ...labels, "--subnet", `${candidate}.0/24`, network],
      { check: false },
    );
    if (r.code === 0) subnet = candidate;
    else if (!/overlap/i.test(r.stderr)) throw new Error(`docker network create ${network}: ${r.stderr}`);
  }
  if (!subnet) throw new Error(`no free /24 in 172.16.0.0/12 for ${network}`);
  const address = `${subnet}.2`;
  const accessId = `DO00${randomBytes(8).toString("hex").toUpperCase()}`;
  const secretKey = randomBytes(32).toString("base64").replace(/=+$/, "");
  const stopServer = async () => {
    await run("docker", ["rm", "-fv", name], { check: false });
    await run("docker", ["network", "rm", network], { check: false });
  };
  try {
    // The password from this process's environment (`-e NAME`), not on a command line.
    await run(
      "docker",
      [
        ...["run", "-d", "--name", name, ...labels, "--network", network, "--ip", address],
        ...["-e", `MINIO_ROOT_USER=${accessId}`, "-e", "MINIO_ROOT_PASSWORD"],
        ...["-e", `MINIO_DOMAIN=${address}`, minio.source, "server", "/data"],
      ],
      { env: { ...process.env, MINIO_ROOT_PASSWORD: secretKey } },
    );
  } catch (e) {
    await stopServer();
    throw e;
  }
  // mc's alias with the full-access key, passed as `-e MC_HOST_s3` from this process's environment.
  const mcEnv = { ...process.env, MC_HOST_s3: `http://${accessId}:${secretKey}@localhost:9000` };
  const mc = (args: string[], input?: string) =>
    run("docker", ["exec", "-i", "-e", "MC_HOST_s3", name, "mc", ...args], {
      check: false,
      input,
      env: mcEnv,
    });
  const mustMc = async (args: string[], input?: string) => {
    const r = await mc(args, input);
    if (r.code !== 0) throw new Error(`mc ${args.join(" ")}: ${r.stderr || r.stdout}`);
    return r;
  };
  for (let i = 0; ; i++) {
    if ((await mc(["admin", "info", "s3"])).code === 0) break;
    if (i === 60) {
      await stopServer();
      throw new Error(`the local Spaces server ${name} did not answer within 30 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }

  const policyName = (accessKey: string) => `key-${accessKey.toLowerCase()}`;
  const setGrants = async (accessKey: string, grants: readonly SpacesGrant[]) => {
    const file = `/tmp/${policyName(accessKey)}.json`;
    await run("docker", ["exec", "-i", name, "sh", "-c", `cat > ${file}`], {
      input: JSON.stringify(grantPolicy(grants)),
    });
    await mc(["admin", "policy", "detach", "s3", policyName(accessKey), "--user", accessKey]);
    await mc(["admin", "policy", "remove", "s3", policyName(accessKey)]);
    if (grants.length === 0) return;
    await mustMc(["admin", "policy", "create", "s3", policyName(accessKey), file]);
    await mustMc(["admin", "policy", "attach", "s3", policyName(accessKey), "--user", accessKey]);
  };

  // The proxy: only the endpoint's host and its subdomains, on its port; nothing else leaves here.
  const proxy = http.createServer((req, res) => {
    // Not new URL(): a host like <bucket>.172.18.0.2 ends in a number, which the URL standard
    // takes for an IPv4 address and refuses.
    const target = /^http:\/\/([^/:]+)(?::(\d+))?(\/.*)?$/.exec(req.url ?? "");
    if (!target) {
      res.writeHead(400).end("the local Spaces proxy takes absolute http:// URLs only\n");
      return;
    }
    const [, host, port = "80", pathAndQuery = "/"] = target;
    if ((host !== address && !host.endsWith(`.${address}`)) || port !== "9000") {
      res.writeHead(403).end(`the local Spaces proxy forwards only to ${address}:9000 and its subdomains\n`);
      return;
    }
    const headers = { ...req.headers };
    delete headers["proxy-connection"];
    delete headers["proxy-authorization"];
    const upstream = http.request(
      { host: address, port: 9000, method: req.method, path: pathAndQuery, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    // A client that goes away takes its upstream request with it.
    res.on("close", () => upstream.destroy());
    upstream.on("error", (e) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(`the local Spaces server: ${e.message}\n`);
    });
    req.pipe(upstream);
  });
  // HTTPS through the proxy (CONNECT) is refused: the endpoint is plain HTTP.
  proxy.on("connect", (_req, socket: net.Socket) => {
    socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));

  return {
    endpoint: `http://${address}:9000`,
    proxy: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`,
    accessId,
    secretKey,
    network,
    putKey: async (accessKey, secret, grants) => {
      // The secret on stdin, not on this machine's command lines; inside the container mc takes it
      // as an argument (it has no other way), for this throw-away server only.
      const r = await run(
        "docker",
        ["exec", "-i", "-e", "MC_HOST_s3", name, "sh", "-c", 'mc admin user add s3 "$0" "$(cat)"', accessKey],
        { check: false, input: secret, env: mcEnv },
      );
      if (r.code !== 0) throw new Error(`mc admin user add ${accessKey}: ${r.stderr || r.stdout}`);
      await setGrants(accessKey, grants);
    },
    setGrants,
    removeKey: async (accessKey) => {
      await setGrants(accessKey, []);
      await mustMc(["admin", "user", "remove", "s3", accessKey]);
    },
    mc: (args) => mc(args),
    stop: async () => {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
      await stopServer();
    },
  };
}
