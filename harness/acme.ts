// A test ACME CA beside a sandbox droplet, for domain mode: Debian's pebble (the ACME server) and
// pebble-challtestsrv (the DNS answer for the test domain), two containers on the droplet's own
// bridge network, from one image under a private name (sandbox/acme/Dockerfile).
//
// Two CAs are in play, as in production:
// - the "API CA" (made here with openssl) signs the HTTPS certificate of pebble's API, for its
//   container IP: Caddy must trust it to talk ACME, as it trusts Let's Encrypt's API certificate;
// - pebble's issuing root (random at each start, from its management API) signs the certificates
//   it issues: the droplet's curl must trust it for the health check, as it trusts Let's Encrypt.
//
// Network rule: the test talks to these containers and to 127.0.0.1 only.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as https from "node:https";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import { SERVICE_IMAGES } from "../hostContract";
import type { HttpResult } from "./probes";
import { containerIp, Droplet, run, sandboxLabelArgs } from "./sandbox";

const REPO_ROOT = path.resolve(__dirname, "..");
const DOCKERFILE = path.join(REPO_ROOT, "sandbox", "acme", "Dockerfile");
/** Built by sandbox/build.sh (buildImages). */
const BASE_IMAGE = "local/bookworm:base";
const HASH_LABEL = "chitram.sandbox.hash";
const ACME_PORT = 14000;
const MANAGEMENT_PORT = 15000;
const DNS_PORT = 8053;
const DNS_MANAGEMENT_PORT = 8055;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Builds chitram-standin/pebble:<recipe hash> (hash of the base image id and the Dockerfile, as
 * sandbox/build.sh names its stand-ins) unless an image with that hash exists. Needs the base image.
 */
export async function buildAcmeImage(): Promise<string> {
  const baseId = (await run("docker", ["image", "inspect", "-f", "{{.Id}}", BASE_IMAGE])).stdout.trim();
  const hash = createHash("sha256")
    .update(`${baseId}\n`)
    .update(fs.readFileSync(DOCKERFILE))
    .digest("hex")
    .slice(0, 16);
  const tag = `chitram-standin/pebble:${hash}`;
  const label = `{{ index .Config.Labels "${HASH_LABEL}" }}`;
  const have = await run("docker", ["image", "inspect", "-f", label, tag], { check: false });
  if (have.code === 0 && have.stdout.trim() === hash) return tag;
  await run(
    "docker",
    [
      "build",
      "-q",
      "--label",
      `${HASH_LABEL}=${hash}`,
      "-t",
      tag,
      "-f",
      DOCKERFILE,
      path.dirname(DOCKERFILE),
    ],
    { env: { ...process.env, DOCKER_BUILDKIT: "0" }, timeoutMs: 10 * 60_000 },
  );
  return tag;
}

export interface AcmeCa {
  /** The ACME directory URL, by IP: the droplet's inner containers cannot resolve container names. */
  directoryUrl: string;
  /** PEM of the CA that signed the HTTPS certificate of pebble's API. */
  apiCa: string;
  /** PEM of pebble's issuing root (GET /roots/0 of its management API). */
  root: string;
  /** Names of the two containers. */
  containers: string[];
  /** Makes `ip` (a container address on the CA's network) the domain's only A record. */
  pointAt(ip: string): Promise<void>;
  /** How many new orders pebble has received (its log). */
  orders(): Promise<number>;
  /** Serials of the certificates pebble issued, lower-case hex without leading zeros (its log). */
  issuedSerials(): Promise<string[]>;
  /** Pebble's log, for failure messages. */
  logs(): Promise<string>;
  stop(): Promise<void>;
}

/** An API CA and a server certificate for `ip` signed by it, made by openssl in a temporary directory. */
async function apiCertificates(ip: string): Promise<{ ca: string; cert: string; key: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-acme-"));
  try {
    const f = (n: string) => path.join(dir, n);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    await run("openssl", [
      ...["req", "-x509", ...ec, "-keyout", f("ca-key.pem"), "-out", f("ca.pem"), "-days", "2"],
      ...["-subj", "/CN=chitram test ACME API CA"],
      ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
    ]);
    await run("openssl", [
      ...["req", "-x509", ...ec, "-keyout", f("key.pem"), "-out", f("cert.pem"), "-days", "2"],
      ...["-CA", f("ca.pem"), "-CAkey", f("ca-key.pem"), "-subj", "/CN=pebble"],
      ...["-addext", `subjectAltName=IP:${ip}`, "-addext", "extendedKeyUsage=serverAuth"],
      ...["-addext", "basicConstraints=critical,CA:FALSE"],
    ]);
    const read = (n: string) => fs.readFileSync(f(n), "utf8");
    return { ca: read("ca.pem"), cert: read("cert.pem"), key: read("key.pem") };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One GET of a URL; rejects on a network error or a status other than 200. */
function fetchText(url: string, ca?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith("https:") ? https.get : http.get;
    const req = get(url, { ca, agent: false, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${url}: ${res.statusCode} ${body}`)),
      );
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on("error", reject);
  });
}

function postJson(url: string, body: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on("end", () =>
        res.statusCode === 200 ? resolve() : reject(new Error(`POST ${url}: ${res.statusCode}`)),
      );
    });
    req.on("timeout", () => req.destroy(new Error(`POST ${url} timed out`)));
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

async function retry<T>(what: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what}: ${(e as Error).message}`);
      await sleep(300);
    }
  }
}

/**
 * Starts the DNS server (its only answer: `domain` A → the droplet's container IP, once there is
 * one) and pebble, which validates challenges on the droplet's ports 80 and 443 and resolves
 * through that DNS server, both on the droplet's network and named after it. Resolves once
 * pebble's directory answers over HTTPS and its root is fetched.
 */
export async function startAcme(
  droplet: Pick<Droplet, "name" | "network"> & { containerIp?: string },
  domain: string,
): Promise<AcmeCa> {
  const image = await buildAcmeImage();
  const labels = sandboxLabelArgs();
  const dnsName = `${droplet.name}-dns`;
  const acmeName = `${droplet.name}-acme`;
  const containers = [acmeName, dnsName];
  const stop = async () => {
    await run("docker", ["rm", "-fv", ...containers], { check: false });
  };
  const runContainer = (name: string, args: string[]) =>
    run("docker", ["run", "-d", "--name", name, ...labels, "--network", droplet.network, ...args]);
  try {
    // No default answers: a name other than the domain gets no address.
    await runContainer(dnsName, [
      ...[image, "pebble-challtestsrv", "-defaultIPv4", "", "-defaultIPv6", ""],
      ...["-dns01", `:${DNS_PORT}`, "-http01", "", "-https01", "", "-tlsalpn01", ""],
      ...["-management", `:${DNS_MANAGEMENT_PORT}`],
    ]);
    const dnsIp = await containerIp(dnsName, droplet.network);
    const pointAt = async (ip: string) => {
      await retry("replacing the A record", 20_000, async () => {
        await postJson(`http://${dnsIp}:${DNS_MANAGEMENT_PORT}/clear-a`, { host: domain });
        await postJson(`http://${dnsIp}:${DNS_MANAGEMENT_PORT}/add-a`, { host: domain, addresses: [ip] });
      });
    };
    if (droplet.containerIp !== undefined) await pointAt(droplet.containerIp);

    // Pebble waits for its API certificate, which names the address the container gets at start.
    const wait = "until [ -e /certs/ready ]; do sleep 0.2; done";
    await runContainer(acmeName, [
      ...["-e", `DNS_SERVER=${dnsIp}:${DNS_PORT}`, image, "sh", "-c"],
      `${wait}; exec pebble -config /etc/pebble/pebble-config.json -dnsserver "$DNS_SERVER"`,
    ]);
    const ip = await containerIp(acmeName, droplet.network);
    const certs = await apiCertificates(ip);
    const files = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-acme-certs-"));
    try {
      fs.writeFileSync(path.join(files, "pebble.pem"), certs.cert);
      fs.writeFileSync(path.join(files, "pebble-key.pem"), certs.key, { mode: 0o600 });
      for (const f of ["pebble.pem", "pebble-key.pem"])
        await run("docker", ["cp", path.join(files, f), `${acmeName}:/certs/${f}`]);
    } finally {
      fs.rmSync(files, { recursive: true, force: true });
    }
    await run("docker", ["exec", acmeName, "touch", "/certs/ready"]);

    const base = `https://${ip}`;
    const directoryUrl = `${base}:${ACME_PORT}/dir`;
    await retry("pebble's directory", 30_000, () => fetchText(directoryUrl, certs.ca));
    const root = await retry("pebble's root", 10_000, () =>
      fetchText(`${base}:${MANAGEMENT_PORT}/roots/0`, certs.ca),
    );
    const logs = async () => {
      const r = await run("docker", ["logs", acmeName], { check: false });
      return r.stdout + r.stderr;
    };
    return {
      directoryUrl,
      apiCa: certs.ca,
      root,
      containers,
      logs,
      pointAt,
      orders: async () => (await logs()).split("\n").filter((l) => /POST \/order-plz\b/.test(l)).length,
      issuedSerials: async () =>
        [...(await logs()).matchAll(/Issued certificate serial ([0-9a-f]+) for order/gi)].map((m) =>
          normalSerial(m[1]),
        ),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Rebuilds caddy:2.8-alpine INSIDE the droplet's engine with `caPem` added to its trust store
 * (so Caddy talks ACME to pebble), under the same tag: the compose file runs it unchanged.
 */
export async function trustInDropletCaddy(droplet: Droplet, caPem: string): Promise<void> {
  const b64 = Buffer.from(caPem).toString("base64");
  const dockerfile =
    `FROM ${SERVICE_IMAGES.caddy}\n` +
    `RUN echo ${b64} | base64 -d > /usr/local/share/ca-certificates/chitram-test-acme-api.crt && update-ca-certificates\n`;
  const r = await droplet.exec(`DOCKER_BUILDKIT=0 docker build -q -t ${SERVICE_IMAGES.caddy} -`, {
    input: dockerfile,
  });
  if (r.code !== 0)
    throw new Error(`building the trusting ${SERVICE_IMAGES.caddy} in ${droplet.name}: ${r.stderr}`);
}

/** A certificate serial as lower-case hex without leading zeros, for comparisons. */
export function normalSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+(?=.)/, "");
}

export interface TlsProbe {
  /** Whether the chain verifies against the given CA and the certificate names the server name. */
  authorized: boolean;
  authorizationError?: string;
  cert: tls.DetailedPeerCertificate;
}

/** A TLS handshake with <host>:<port> for `servername` (SNI), checked against `ca` only. */
export function tlsProbe(
  port: number,
  servername: string,
  ca: string,
  host = "127.0.0.1",
): Promise<TlsProbe> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, servername, ca, rejectUnauthorized: false });
    socket.setTimeout(5000, () => socket.destroy(new Error(`TLS handshake with ${host}:${port} timed out`)));
    socket.on("secureConnect", () => {
      const authorizationError = socket.authorizationError;
      resolve({
        authorized: socket.authorized,
        authorizationError: authorizationError === null ? undefined : String(authorizationError),
        cert: socket.getPeerCertificate(true),
      });
      socket.end();
    });
    socket.on("error", reject);
  });
}

/**
 * One GET to 127.0.0.1:<port> for `host` (the Host header; over HTTPS also the SNI, and the
 * certificate checked against `ca`), redirects not followed.
 */
export function getAs(
  scheme: "http" | "https",
  port: number,
  host: string,
  urlPath: string,
  ca?: string,
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const options = {
      host: "127.0.0.1",
      port,
      path: urlPath,
      headers: { host },
      agent: false,
      timeout: 5000,
    };
    const onResponse = (res: http.IncomingMessage) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    };
    const req =
      scheme === "https"
        ? https.get({ ...options, servername: host, ca }, onResponse)
        : http.get(options, onResponse);
    req.on("timeout", () => req.destroy(new Error(`GET ${scheme}://${host}${urlPath} timed out`)));
    req.on("error", reject);
  });
}
