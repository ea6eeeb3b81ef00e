// A private registry that requires a login, for the host tests: Debian's docker-registry (the
// distribution registry) with htpasswd (bcrypt) users, as a container the test starts on a
// droplet's own bridge network. Docker sends credentials to a registry that is not on loopback
// only over TLS, so the registry serves a certificate from a CA made here, which the droplet's
// engine trusts through Docker's own mechanism, /etc/docker/certs.d/<host:port>/ca.crt.
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Droplet, run, sandboxLabelArgs } from "./sandbox";

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

/** Makes a CA and a server certificate for `host`, signed by it, in `dir`. */
async function makeCertificates(dir: string, host: string): Promise<void> {
  const script = [
    "set -eu",
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 " +
      "-subj /CN=chitram-sandbox-ca -addext basicConstraints=critical,CA:TRUE " +
      "-addext keyUsage=critical,keyCertSign -keyout ca.key -out ca.crt 2>/dev/null",
    'openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$1" ' +
      "-keyout registry.key -out registry.csr 2>/dev/null",
    'printf "subjectAltName=DNS:%s\\nextendedKeyUsage=serverAuth\\n" "$1" >ext.cnf',
    "openssl x509 -req -in registry.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 " +
      "-extfile ext.cnf -out registry.crt 2>/dev/null",
    "chmod 0644 registry.key",
  ].join("\n");
  await run("bash", ["-c", script, "bash", host], { cwd: dir });
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
    await run("docker", ["rm", "-f", name], { check: false });
  };
  try {
    await makeCertificates(dir, name);
    const htpasswd: string[] = [];
    for (const [user, password] of Object.entries(users)) {
      const r = await run("docker", ["run", "--rm", "-i", "--entrypoint", "htpasswd", image, "-Bin", user], {
        input: `${password}\n`,
      });
      htpasswd.push(r.stdout.trim());
    }
    fs.writeFileSync(path.join(dir, "htpasswd"), `${htpasswd.join("\n")}\n`);
    for (const f of ["ca.key", "ca.srl", "registry.csr", "ext.cnf"])
      fs.rmSync(path.join(dir, f), { force: true });
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
