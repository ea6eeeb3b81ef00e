// A private registry that requires a login, for the host tests: Debian's docker-registry (the
// distribution registry) with htpasswd (bcrypt) users, as a container the test starts on a
// droplet's own bridge network. Docker sends credentials to a registry that is not on loopback
// only over TLS, so the registry serves a certificate from a CA made here, which the droplet's
// engine trusts through Docker's own mechanism, /etc/docker/certs.d/<host:port>/ca.crt.
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import { containerIp, Droplet, run, sandboxLabelArgs } from "./sandbox";
import { makeCertificates } from "./testCa";

const BASE_IMAGE = "local/bookworm:base";
const HASH_LABEL = "chitram.sandbox.hash";
const PORT = 5000;

const DOCKERFILE = `FROM ${BASE_IMAGE}
RUN set -eu; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; \\
    apt-get install -y -qq --no-install-recommends docker-registry apache2-utils >/dev/null; \\
    rm -rf /var/lib/apt/lists/*
COPY config.yml /etc/docker/registry/config.yml
EXPOSE ${PORT}
ENTRYPOINT ["docker-registry", "serve", "/etc/docker/registry/config.yml"]
`;

// Certificate, key and users are copied into /etc/chitram-registry before the container starts.
const CONFIG = `version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :${PORT}
  tls:
    certificate: /etc/chitram-registry/registry.crt
    key: /etc/chitram-registry/registry.key
auth:
  htpasswd:
    realm: chitram-sandbox
    path: /etc/chitram-registry/htpasswd
`;

/**
 * Builds chitram-standin/registry:<recipe hash> from local/bookworm:base (sandbox/build.sh builds
 * the base), unless an image with that hash exists: the same private-name and label convention.
 */
export async function buildRegistryImage(): Promise<string> {
  const baseId = (await run("docker", ["image", "inspect", "-f", "{{.Id}}", BASE_IMAGE])).stdout.trim();
  const hash = createHash("sha256").update(`${baseId}\n${DOCKERFILE}\n${CONFIG}`).digest("hex").slice(0, 16);
  const tag = `chitram-standin/registry:${hash}`;
  const have = await run(
    "docker",
    ["image", "inspect", "-f", `{{index .Config.Labels "${HASH_LABEL}"}}`, tag],
    {
      check: false,
    },
  );
  if (have.code === 0 && have.stdout.trim() === hash) return tag;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-registry-build-"));
  try {
    fs.writeFileSync(path.join(dir, "Dockerfile"), DOCKERFILE);
    fs.writeFileSync(path.join(dir, "config.yml"), CONFIG);
    await run("docker", ["build", "-q", "--label", `${HASH_LABEL}=${hash}`, "-t", tag, dir], {
      env: { ...process.env, DOCKER_BUILDKIT: "0" },
      timeoutMs: 15 * 60_000,
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return tag;
}

export interface AuthRegistry {
  /** Container name, also its host name on the droplet's network. */
  name: string;
  /** host:port as the droplet's engine reaches it: the stack's registryServer. */
  server: string;
  /** Makes the droplet's engine trust the registry's CA (no daemon restart). */
  trust(droplet: Droplet): Promise<void>;
  /** The registry's log (it names each refused login). */
  logs(): Promise<string>;
  stop(): Promise<void>;
}

/** The CA and the registry's certificate in `dir`, under the names CONFIG gives them. */
async function registryCertificates(dir: string, hosts: readonly string[]): Promise<void> {
  await makeCertificates(dir, hosts);
  for (const ext of ["crt", "key"])
    fs.renameSync(path.join(dir, `server.${ext}`), path.join(dir, `registry.${ext}`));
}

/**
 * The htpasswd line (bcrypt) of a user. The password reaches htpasswd on stdin, and the user name
 * (which may be a token) is joined to the hash here, never on a command line: htpasswd runs in
 * `container` when given, else in a throw-away container of `image`.
 */
async function htpasswdLine(
  where: { image: string } | { container: string },
  user: string,
  password: string,
): Promise<string> {
  const command =
    "container" in where
      ? ["exec", "-i", where.container, "htpasswd", "-Bin", "user"]
      : ["run", "--rm", "-i", ...sandboxLabelArgs(), "--entrypoint", "htpasswd", where.image, "-Bin", "user"];
  const r = await run("docker", command, { input: `${password}\n` });
  const hash = r.stdout.trim().replace(/^user:/, "");
  if (!hash.startsWith("$2")) throw new Error("htpasswd made no bcrypt hash");
  return `${user}:${hash}`;
}

/**
 * Starts the registry on the droplet's network with these users (name -> password, bcrypt in
 * htpasswd; the passwords reach htpasswd on stdin). Resolves once it answers.
 */
export async function startAuthRegistry(
  droplet: Droplet,
  users: Record<string, string>,
): Promise<AuthRegistry> {
  const image = await buildRegistryImage();
  const name = `chitram-registry-${randomBytes(4).toString("hex")}`;
  const server = `${name}:${PORT}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-registry-"));
  const labels = sandboxLabelArgs();
  const stop = async () => {
    await run("docker", ["rm", "-fv", name], { check: false });
  };
  try {
    await registryCertificates(dir, [name]);
    const htpasswd: string[] = [];
    for (const [user, password] of Object.entries(users))
      htpasswd.push(await htpasswdLine({ image }, user, password));
    fs.writeFileSync(path.join(dir, "htpasswd"), `${htpasswd.join("\n")}\n`);
    await run("docker", ["create", "--name", name, ...labels, "--network", droplet.network, image]);
    await run("docker", ["cp", `${dir}/.`, `${name}:/etc/chitram-registry`]);
    await run("docker", ["start", name]);
    const caCert = fs.readFileSync(path.join(dir, "ca.crt"), "utf8");
    const registry: AuthRegistry = {
      name,
      server,
      trust: async (d) => {
        const r = await d.exec(
          `install -d -m 0755 /etc/docker/certs.d/${server} && cat >/etc/docker/certs.d/${server}/ca.crt`,
          { input: caCert },
        );
        if (r.code !== 0) throw new Error(`trusting ${server} in ${d.name}: ${r.stderr}`);
      },
      logs: async () => {
        const r = await run("docker", ["logs", name], { check: false });
        return r.stdout + r.stderr;
      },
      stop,
    };
    await registry.trust(droplet);
    // Up once it answers 401 to an anonymous request (from the droplet, which trusts the CA).
    for (let i = 0; ; i++) {
      const r = await droplet.exec(
        `curl -s -o /dev/null -w '%{http_code}' --cacert /etc/docker/certs.d/${server}/ca.crt https://${server}/v2/`,
      );
      if (r.stdout.trim() === "401") break;
      if (i === 40) throw new Error(`registry ${server} did not answer: ${r.stdout} ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 250));
    }
    return registry;
  } catch (e) {
    await stop();
    throw e;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** DigitalOcean's container registry, and the cloud address the provider revokes its tokens at. */
export const DO_REGISTRY_HOST = "registry.digitalocean.com";
export const DO_CLOUD_HOST = "cloud.digitalocean.com";

/**
 * The local DigitalOcean API's container registry: a registry on a network of its own that every
 * droplet joins, answering there as registry.digitalocean.com on 443 with a certificate from a CA
 * made here (the droplets' engines trust it through /etc/docker/certs.d, as they trust the public
 * CAs on DigitalOcean). Its users are the tokens the API hands out as docker credentials, and one
 * account of its own that pushes the test's images.
 */
export interface DoRegistry {
  network: string;
  /** The CA (PEM) that signed `cert`. */
  caCert: string;
  /** A certificate for registry.digitalocean.com and cloud.digitalocean.com, and its key (PEM). */
  cert: string;
  key: string;
  /** Connects a droplet to the registry's network and makes its engine trust the CA. */
  join(droplet: Droplet): Promise<void>;
  /** Adds a user (a token the API issued) and restarts the registry, which reads its users once. */
  addUser(user: string, password: string): Promise<void>;
  removeUser(user: string): Promise<void>;
  /** Whether the registry takes this login (GET /v2/ with basic auth, from this machine). */
  authorizes(user: string, password: string): Promise<boolean>;
  /**
   * Builds the stand-in app as `registry.digitalocean.com/<repository>:<tag>` in the droplet's
   * engine (tagged `release` in CHITRAM_SANDBOX_RELEASE), pushes it with the registry's own account
   * and removes it there again. Returns the image reference.
   */
  push(droplet: Droplet, repository: string, tag: string): Promise<string>;
  /** The registry's log (it names each refused login). */
  logs(): Promise<string>;
  stop(): Promise<void>;
}

export async function startDoRegistry(name: string, baseAppImage: string): Promise<DoRegistry> {
  const image = await buildRegistryImage();
  const network = `${name}-net`;
  const labels = sandboxLabelArgs();
  const stop = async () => {
    await run("docker", ["rm", "-fv", name], { check: false });
    await run("docker", ["network", "rm", network], { check: false });
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-do-registry-"));
  try {
    await registryCertificates(dir, [DO_REGISTRY_HOST, DO_CLOUD_HOST]);
    const pushUser = "chitram-sandbox-push";
    const pushPassword = randomBytes(18).toString("hex");
    const users = new Map<string, string>([
      [pushUser, await htpasswdLine({ image }, pushUser, pushPassword)],
    ]);
    fs.writeFileSync(path.join(dir, "htpasswd"), `${[...users.values()].join("\n")}\n`);
    await run("docker", ["network", "create", ...labels, network]);
    await run("docker", [
      ...["create", "--name", name, ...labels, "--network", network],
      ...["--network-alias", DO_REGISTRY_HOST, "-e", "REGISTRY_HTTP_ADDR=:443", image],
    ]);
    await run("docker", ["cp", `${dir}/.`, `${name}:/etc/chitram-registry`]);
    await run("docker", ["start", name]);
    const read = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");
    const caCert = read("ca.crt");
    const [cert, key] = [read("registry.crt"), read("registry.key")];
    // Up once it accepts connections on 443.
    const answering = async () => {
      for (let i = 0; ; i++) {
        const r = await run(
          "docker",
          ["exec", name, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/443 && echo up"],
          { check: false },
        );
        if (r.stdout.includes("up")) return;
        if (i === 80) throw new Error(`the local registry ${name} did not answer within 20 s: ${r.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    };
    await answering();
    // One change of the users at a time: each rewrites the file and restarts the registry, which
    // reads its users once. A change that fails is undone in the map.
    let queue: Promise<unknown> = Promise.resolve();
    const changeUsers = (change: () => Promise<() => void>): Promise<void> => {
      const next = queue.then(async () => {
        const undo = await change();
        try {
          await run("docker", ["exec", "-i", name, "sh", "-c", "cat >/etc/chitram-registry/htpasswd"], {
            input: `${[...users.values()].join("\n")}\n`,
          });
          await run("docker", ["restart", "-t", "2", name]);
          await answering();
        } catch (e) {
          undo();
          throw e;
        }
      });
      queue = next.catch(() => undefined);
      return next;
    };
    const registry: DoRegistry = {
      network,
      caCert,
      cert,
      key,
      join: async (droplet) => {
        await droplet.connect(network);
        const r = await droplet.exec(
          `install -d -m 0755 /etc/docker/certs.d/${DO_REGISTRY_HOST} && cat >/etc/docker/certs.d/${DO_REGISTRY_HOST}/ca.crt`,
          { input: caCert },
        );
        if (r.code !== 0) throw new Error(`trusting ${DO_REGISTRY_HOST} in ${droplet.name}: ${r.stderr}`);
      },
      addUser: (user, password) =>
        changeUsers(async () => {
          users.set(user, await htpasswdLine({ container: name }, user, password));
          return () => users.delete(user);
        }),
      removeUser: (user) =>
        changeUsers(() => {
          const line = users.get(user);
          users.delete(user);
          return Promise.resolve(() => {
            if (line !== undefined) users.set(user, line);
          });
        }),
      authorizes: async (user, password) => {
        const ip = await containerIp(name, network);
        const status = await new Promise<number>((resolve, reject) => {
          const req = https.request(
            {
              host: ip,
              port: 443,
              path: "/v2/",
              servername: DO_REGISTRY_HOST,
              ca: caCert,
              auth: `${user}:${password}`,
              timeout: 10_000,
            },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on("timeout", () => req.destroy(new Error("no answer within 10 s")));
          req.on("error", reject);
          req.end();
        });
        if (status !== 200 && status !== 401) throw new Error(`the local registry answered ${status}`);
        return status === 200;
      },
      push: async (droplet, repository, tag) => {
        const ref = `${DO_REGISTRY_HOST}/${repository}:${tag}`;
        const build = await droplet.exec(`DOCKER_BUILDKIT=0 docker build -q -t ${ref} -`, {
          input: `FROM ${baseAppImage}\nENV CHITRAM_SANDBOX_RELEASE=${tag}\n`,
        });
        if (build.code !== 0) throw new Error(`building ${ref} in ${droplet.name}: ${build.stderr}`);
        // A scratch Docker config: root's own stays as it was.
        const push = await droplet.exec(
          `export DOCKER_CONFIG=$(mktemp -d) && docker login --username ${pushUser} --password-stdin ${DO_REGISTRY_HOST} >/dev/null && ` +
            `docker push -q ${ref} >/dev/null; rc=$?; rm -rf "$DOCKER_CONFIG"; [ $rc -eq 0 ] || exit $rc; docker rmi ${ref} >/dev/null`,
          { input: `${pushPassword}\n` },
        );
        if (push.code !== 0) throw new Error(`pushing ${ref} from ${droplet.name}: ${push.stderr}`);
        return ref;
      },
      logs: async () => {
        const r = await run("docker", ["logs", name], { check: false });
        return r.stdout + r.stderr;
      },
      stop,
    };
    return registry;
  } catch (e) {
    await stop();
    throw e;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
