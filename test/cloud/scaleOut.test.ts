// The scaled-out shape's resources through the real engine and the real DigitalOcean provider,
// against the local DigitalOcean API's load balancers and database clusters
// (harness/doApi/loadBalancers.ts, harness/doApi/databases.ts): two app droplets behind a load
// balancer, and a managed PostgreSQL cluster with its database, user and trusted sources
// (test/cloud/fixtures/scaleOut). They are created, read back without drift, changed in place and
// destroyed. The load balancer is a real proxy: it spreads requests over the droplets whose health
// check passes, and only those. The cluster is a real PostgreSQL server: a droplet its trusted
// sources name connects over TLS (the CA verified) as the user the provider made; a connection
// without TLS, and one from an address the rules do not name, are refused by the server.
import assert from "node:assert/strict";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalDoApi, startLocalDoApi } from "../../harness/doApi";
import { ed25519KeyPair } from "../../harness/keys";
import { PulumiStack } from "../../harness/pulumiCli";
import { get } from "../../harness/probes";
import {
  buildImages,
  Droplet,
  ensureDockerd,
  removeAllSandboxes,
  run,
  standInSource,
} from "../../harness/sandbox";
import { SERVICE_IMAGES } from "../../hostContract";
import { destroyLeavesNothing } from "./support";

const FIXTURE = path.join(__dirname, "fixtures", "scaleOut");

/** A web server on the droplet's port 80 that answers every path with the droplet's name. */
const SERVER = `import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = socket.gethostname().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 80), H).serve_forever()
`;

describe("cloud: app droplets behind a load balancer and a managed PostgreSQL cluster, through the provider", () => {
  let api: LocalDoApi;
  let stack: PulumiStack;
  let droplet: Droplet;
  let droplets: Droplet[];
  let lbIp: string;

  const serve = async (d: Droplet) => {
    const r = await d.exec(
      "cat >/tmp/lb-server.py && { setsid python3 /tmp/lb-server.py </dev/null >/dev/null 2>&1 & echo $! >/tmp/lb-server.pid; }",
      { input: SERVER },
    );
    assert.equal(r.code, 0, r.stderr);
  };
  const stopServing = async (d: Droplet) => {
    const r = await d.exec('kill "$(cat /tmp/lb-server.pid)"');
    assert.equal(r.code, 0, r.stderr);
  };
  /** Who answers `n` requests through the load balancer (another answer counts as "<status> <body>", none as "0 <error>"). */
  const answers = async (n: number) => {
    const seen: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await get(80, "/", 5_000, lbIp).catch((e: Error) => ({ status: 0, body: e.message }));
      seen.push(r.status === 200 ? r.body : `${r.status} ${r.body.slice(0, 80)}`);
    }
    return seen;
  };
  /** Polls until every one of 10 answers is among `names`, and each of them answers. */
  const until = async (names: string[]) => {
    for (let i = 0; ; i++) {
      const seen = await answers(10);
      if (seen.every((s) => names.includes(s)) && names.every((n) => seen.includes(n))) return;
      if (i === 40)
        assert.fail(`the load balancer answered ${JSON.stringify(seen)}, not only ${JSON.stringify(names)}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };
  let cluster: { id: string; privateHost: string; port: number; password: string; ca: string };

  /** psql in a client container on the droplet's own network stack; the password and the CA on stdin. */
  const psqlFromDroplet = (conninfo: string, sql: string) =>
    droplet.exec(
      "read -r PGPASSWORD && export PGPASSWORD && cat >/tmp/db-ca.crt && " +
        `docker run --rm --network host -e PGPASSWORD -v /tmp/db-ca.crt:/tmp/db-ca.crt:ro ${SERVICE_IMAGES.postgres} ` +
        `psql -v ON_ERROR_STOP=1 -qtA "${conninfo}" -c "${sql}"`,
      { input: `${cluster.password}\n${cluster.ca}` },
    );
  /** The calls since request `from` that were not reads. */
  const writesSince = (from: number) =>
    api.requests
      .slice(from)
      .filter((r) => r.method !== "GET")
      .map((r) => `${r.method} ${r.path}`);
  const conninfo = (sslmode: string) =>
    `host=${cluster.privateHost} port=${cluster.port} dbname=chitram user=chitram sslmode=${sslmode} sslrootcert=/tmp/db-ca.crt`;

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    await buildImages();
    api = await startLocalDoApi({ databases: true, loadBalancers: true });
    stack = await PulumiStack.create("dbfixture", { env: api.env, program: FIXTURE });
    await stack.pulumi(["config", "set", "chitram-fixture:publicKey", ed25519KeyPair("fixture").public]);
  });
  after(async () => {
    try {
      stack?.remove();
    } finally {
      await api?.close();
    }
  });

  it("up: the load balancer and the cluster are made, the cluster online with its database, user and trusted sources, every call answered", async () => {
    await stack.up([], { timeoutMs: 10 * 60_000 });
    assert.deepEqual(
      api.requests.filter((r) => r.status >= 400).map((r) => `${r.method} ${r.path} ${r.status}`),
      [],
    );
    const [json] = api.databaseClusters();
    assert.equal(api.databaseClusters().length, 1);
    assert.equal(json.status, "online");
    const outputs = await stack.outputs();
    const ca = (await fetch(`${api.url}/v2/databases/${String(json.id)}/ca`, {
      headers: { Authorization: `Bearer ${api.token}` },
    }).then((r) => r.json())) as { ca: { certificate: string } };
    cluster = {
      id: String(json.id),
      privateHost: String(outputs.privateHost),
      port: Number(outputs.port),
      password: await stack.secretOutput("userPassword"),
      ca: Buffer.from(ca.ca.certificate, "base64").toString(),
    };
    assert.match(cluster.privateHost, /^private-chitram-fixture-db-/);
    assert.equal(cluster.port, 25060);
    const ids = outputs.dropletIds as string[];
    droplets = ids.map((id) => api.sandbox(Number(id))!);
    droplet = droplets[0];
    const rules = api.requests.filter((r) => r.method === "PUT" && r.path.endsWith("/firewall"));
    assert.deepEqual(
      rules.map((r) =>
        (r.body as { rules: { type: string; value: string }[] }).rules
          .map((x) => `${x.type} ${x.value}`)
          .sort(),
      ),
      [ids.map((id) => `droplet ${id}`).sort()],
    );
    const [lb] = api.loadBalancers();
    assert.equal(api.loadBalancers().length, 1);
    assert.equal(lb.status, "active");
    lbIp = String(outputs.lbIp);
    assert.equal(lb.ip, lbIp);
    assert.deepEqual((lb.droplet_ids as number[]).map(String).sort(), [...ids].sort());
    const dbs = await api.databaseSql(
      cluster.id,
      "defaultdb",
      "SELECT datname FROM pg_database WHERE datname = 'chitram';",
    );
    assert.equal(dbs.stdout.trim(), "chitram");
  });

  it("the droplet the rules name connects over TLS, the server's certificate verified, as the user the provider made", async () => {
    const r = await psqlFromDroplet(
      conninfo("verify-full"),
      "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "chitram|t");
    // PostgreSQL 15+: the public schema of a database doadmin owns is not the user's to create in,
    // as on DigitalOcean; a deployment grants it (or makes the user the owner) before migrations.
    const create = await psqlFromDroplet(conninfo("require"), "CREATE TABLE t (id int)");
    assert.notEqual(create.code, 0);
    assert.match(create.stderr, /permission denied for schema public/);
  });

  it("without TLS, or from an address the rules do not name, the server refuses the connection", async () => {
    const plain = await psqlFromDroplet(conninfo("disable"), "SELECT 1");
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /no pg_hba\.conf entry for host .*no encryption/);
    // A client on the same network that is not the droplet.
    const other = await run(
      "docker",
      [
        ...[
          "run",
          "--rm",
          "-i",
          "--network",
          api.databaseNetwork!,
          "-e",
          "PGPASSWORD",
          "--entrypoint",
          "psql",
        ],
        await standInSource(SERVICE_IMAGES.postgres),
        `host=${cluster.privateHost} port=25060 dbname=chitram user=chitram sslmode=require`,
        ...["-c", "SELECT 1"],
      ],
      { check: false, env: { ...process.env, PGPASSWORD: cluster.password } },
    );
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /no pg_hba\.conf entry for host/);
  });

  it("the load balancer spreads requests over the droplets whose health check passes, and only those", async () => {
    // Nothing serves yet: no droplet is healthy.
    for (const answer of await answers(3)) assert.match(answer, /^50[23] /);
    for (const d of droplets) await serve(d);
    await until(droplets.map((d) => d.name));
    await stopServing(droplets[0]);
    await until([droplets[1].name]);
    // Once the check has failed, every request goes to the healthy droplet: none is lost.
    assert.deepEqual(new Set(await answers(20)), new Set([droplets[1].name]));
    await serve(droplets[0]);
    await until(droplets.map((d) => d.name));
  });

  it("a droplet taken out of the load balancer gets no more requests: an update in place, the proxy not restarted", async () => {
    const [lb] = api.loadBalancers();
    const container = `${api.containerPrefix}lb-${String(lb.id).slice(0, 8)}`;
    const startedAt = async () =>
      (await run("docker", ["inspect", "-f", "{{.State.StartedAt}}", container])).stdout.trim();
    const was = await startedAt();
    await stack.pulumi(["config", "set", "chitram-fixture:members", "1"]);
    const from = api.requests.length;
    await stack.up([], { timeoutMs: 10 * 60_000 });
    assert.deepEqual(writesSince(from), [`PUT /v2/load_balancers/${String(lb.id)}`]);
    await until([droplets[0].name]);
    assert.equal(await startedAt(), was, "the proxy was restarted");
    await stack.up(["--expect-no-changes"]);
  });

  it("a refresh finds no drift; a bigger size is a resize in place (the same cluster)", async () => {
    await stack.pulumi(["refresh", "--yes", "--expect-no-changes"]);
    await stack.pulumi(["config", "set", "chitram-fixture:dbSize", "db-s-1vcpu-2gb"]);
    const from = api.requests.length;
    await stack.up([], { timeoutMs: 10 * 60_000 });
    assert.deepEqual(writesSince(from), [`PUT /v2/databases/${cluster.id}/resize`]);
    const [json] = api.databaseClusters();
    assert.equal(json.id, cluster.id);
    assert.equal(json.size, "db-s-1vcpu-2gb");
    await stack.up(["--expect-no-changes"]);
  });

  it("destroy leaves no load balancer, cluster, droplet or container", async () => {
    await destroyLeavesNothing(stack, api);
    const left = await run("docker", [
      "ps",
      "-a",
      "--format",
      "{{.Names}}",
      "--filter",
      `name=${api.containerPrefix}`,
    ]);
    assert.equal(left.stdout.trim(), "");
  });
});
