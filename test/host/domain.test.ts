// Domain mode served for real: the stack deployed with `domain` on a throw-away droplet, its Caddy
// getting the certificate from a test ACME CA (pebble) that validates on the droplet's ports 80
// and 443 after resolving the domain through a DNS server the test runs (harness/acme.ts).
// Let's Encrypt's two trusts are stood in for: Caddy's image in the droplet trusts the CA of
// pebble's API certificate, the droplet's trust store holds pebble's issuing root.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  AcmeCa,
  getAs,
  normalSerial,
  startAcme,
  tlsProbe,
  TlsProbe,
  trustInDropletCaddy,
} from "../../harness/acme";
import { apply, ApplyResult } from "../../harness/engine";
import { Deployment, newDeployment } from "../../harness/deployment";
import { Droplet, ensureDockerd, removeAllSandboxes } from "../../harness/sandbox";
import { APP_DIR, LOCAL_DATA_DIR } from "../../hostContract";

const DOMAIN = "chitram.test";

/** The first verified handshake after Caddy (re)starts: waits up to 30 s. */
async function servedAgain(port: number, ca: string): Promise<TlsProbe> {
  let last: TlsProbe | Error = new Error("no handshake");
  for (let i = 0; i < 60; i++) {
    last = await tlsProbe(port, DOMAIN, ca).catch((e: Error) => e);
    if (!(last instanceof Error) && last.authorized) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `no verified TLS from Caddy: ${last instanceof Error ? last.message : last.authorizationError}`,
  );
}

/** Seconds from Caddy's "obtaining certificate" to "certificate obtained successfully" (its JSON log). */
async function issuanceSeconds(droplet: Droplet): Promise<number | undefined> {
  // `docker logs`, not `docker compose logs`, which starts each line with an escape sequence.
  const r = await droplet.exec(`cd ${APP_DIR} && docker logs "$(docker compose ps -q caddy)" 2>&1`);
  const ts = (msg: string) =>
    r.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { ts: number; msg: string; identifier?: string })
      .find((e) => e.msg === msg && e.identifier === DOMAIN)?.ts;
  const [start, end] = [ts("obtaining certificate"), ts("certificate obtained successfully")];
  return start !== undefined && end !== undefined ? end - start : undefined;
}
const log = (line: string) => console.log(`  ${line}`);

describe("real host: domain mode, a certificate from a test ACME CA", () => {
  let acme: AcmeCa | undefined;
  let d: Deployment;
  let deployed: ApplyResult;

  before(async () => {
    await ensureDockerd();
    await removeAllSandboxes();
    d = await newDeployment("sandbox-domain", {
      config: async (droplet) => {
        acme = await startAcme(droplet, DOMAIN);
        await trustInDropletCaddy(droplet, acme.apiCa);
        // pebble's issuing root reaches the deploy's health check through the config, as a
        // private ACME CA's would; the host's own trust store does not hold it.
        return {
          domain: DOMAIN,
          manageDns: "false",
          acmeCa: acme.directoryUrl,
          acmeCaRoot: acme.root,
          acmeEmail: `ops@${DOMAIN}`,
        };
      },
    });
    const t = Date.now();
    try {
      deployed = await apply(d.steps, d.state, { log });
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- pebble ---\n${(await acme?.logs())?.slice(-3000)}`);
    }
    const health = deployed.ran.find((s) => s.name === "app-health");
    const issued = await issuanceSeconds(d.droplet);
    log(
      `deploy in domain mode: ${((Date.now() - t) / 1000).toFixed(1)} s; certificate obtained in ` +
        `${issued?.toFixed(2)} s; health step ${health?.seconds.toFixed(1)} s`,
    );
  });
  after(async () => {
    await acme?.stop();
    await d?.droplet.stop();
  });

  it("the deploy's own health step passed over HTTPS, the domain resolved to this host by --resolve", async () => {
    const health = deployed.ran.find((s) => s.name === "app-health");
    assert.ok(health, "the health step ran");
    assert.match(health.stdout, new RegExp(`https://${DOMAIN.replace(".", "\\.")}/health -> 200`));
    const env = await d.droplet.exec(`cat ${APP_DIR}/host.env`);
    assert.match(env.stdout, new RegExp(`^HEALTH_HOST='${DOMAIN}'$`, "m"));
  });

  it("the certificate Caddy serves for the domain is pebble's, and verifies against pebble's root", async () => {
    const probe = await tlsProbe(d.droplet.httpsPort, DOMAIN, acme!.root);
    assert.equal(probe.authorizationError, undefined);
    assert.ok(probe.authorized);
    assert.equal(probe.cert.subjectaltname, `DNS:${DOMAIN}`);
    assert.match(String(probe.cert.issuer.CN), /^Pebble Intermediate CA/);
    assert.deepEqual(await acme!.issuedSerials(), [normalSerial(probe.cert.serialNumber)]);
    // The same chain against another CA (the one of pebble's API) does not verify: the check can fail.
    const other = await tlsProbe(d.droplet.httpsPort, DOMAIN, acme!.apiCa);
    assert.equal(other.authorized, false);
    assert.equal(other.authorizationError, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY");
  });

  it("plain HTTP redirects to https://<domain>/ with the same path, and sends no HSTS", async () => {
    const r = await getAs("http", d.droplet.httpPort, DOMAIN, "/health?x=1");
    assert.ok([301, 308].includes(r.status), `HTTP ${r.status}`);
    assert.equal(r.headers.location, `https://${DOMAIN}/health?x=1`);
    assert.equal(r.headers["strict-transport-security"], undefined);
  });

  it("HTTPS answers the app's health and sends HSTS", async () => {
    const r = await getAs("https", d.droplet.httpsPort, DOMAIN, "/health", acme!.root);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers["strict-transport-security"], "max-age=31536000; includeSubDomains");
  });

  it("after a restart of Caddy, and after its container is replaced, the same certificate is served from the data dir, with no new order", async () => {
    const first = await tlsProbe(d.droplet.httpsPort, DOMAIN, acme!.root);
    const orders = await acme!.orders();
    assert.equal(orders, 1, "one order for the first certificate");
    // `restart` keeps the container (and any anonymous volume); `rm -v` + `up` keeps only the bind mounts.
    for (const cmd of [
      "docker compose restart caddy",
      "docker compose rm -s -f -v caddy && docker compose up -d --wait caddy",
    ]) {
      const r = await d.droplet.exec(`cd ${APP_DIR} && ${cmd}`);
      assert.equal(r.code, 0, r.stderr);
      const again = await servedAgain(d.droplet.httpsPort, acme!.root);
      assert.equal(again.cert.serialNumber, first.cert.serialNumber, `after ${cmd}`);
      assert.equal(await acme!.orders(), orders, `no new order reached pebble after ${cmd}`);
    }
    // The certificate on the host's data dir is the one served.
    const stored = await d.droplet.exec(
      `find ${LOCAL_DATA_DIR}/caddy/data/caddy/certificates -name ${DOMAIN}.crt -exec openssl x509 -noout -serial -in {} \\;`,
    );
    assert.equal(stored.code, 0, stored.stderr);
    assert.equal(
      normalSerial(stored.stdout.trim().replace(/^serial=/, "")),
      normalSerial(first.cert.serialNumber),
    );
  });

  it("acmeCaRoot is what the health check trusts: without it (HEALTH_CA_ROOTS emptied) it fails, naming the TLS error", async () => {
    const env = `${APP_DIR}/host.env`;
    assert.match(
      (await d.droplet.exec(`cat ${env}`)).stdout,
      /^HEALTH_CA_ROOTS='\/opt\/chitram\/acme-ca-roots\.pem'$/m,
    );
    await d.droplet.exec(
      `cp -p ${env} /root/host.env.saved && sed -i "s|^HEALTH_CA_ROOTS=.*|HEALTH_CA_ROOTS=''|" ${env}`,
    );
    try {
      const r = await d.droplet.exec(`${APP_DIR}/scripts/healthcheck.sh --retries 1`);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(
        r.stderr,
        /curl error \(exit 60\): .*SSL certificate problem: unable to get local issuer certificate/,
      );
    } finally {
      await d.droplet.exec(`cp -p /root/host.env.saved ${env}`);
    }
    const again = await d.droplet.exec(`${APP_DIR}/scripts/healthcheck.sh --retries 1`);
    assert.equal(again.code, 0, again.stdout + again.stderr);
  });
});
