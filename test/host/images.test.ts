// Stand-in images on a real engine: building them and starting a droplet leaves this machine's
// engine without any new image under a production name, and the droplet's own engine holds every
// image the stack's compose file names. And a droplet joined to another network still reports the
// ports it answers on.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { composeObject } from "../../render/compose";
import { SANDBOX_APP_IMAGE, SERVICE_IMAGES } from "../../hostContract";
import {
  buildImages,
  Droplet,
  DropletImage,
  ensureDockerd,
  makeSshKeyPair,
  run,
  SANDBOX_LABEL,
  startDroplet,
} from "../../harness/sandbox";

const PRODUCTION_NAMES = [...Object.values(SERVICE_IMAGES), SANDBOX_APP_IMAGE];

/** The image id each production name has on this machine's engine ("absent" when none). */
async function productionNamesOnHost(): Promise<Record<string, string>> {
  const ids: Record<string, string> = {};
  for (const name of PRODUCTION_NAMES) {
    const r = await run("docker", ["image", "inspect", "-f", "{{.Id}}", name], { check: false });
    ids[name] = r.code === 0 ? r.stdout.trim() : "absent";
  }
  return ids;
}

describe("real engine: stand-in images keep private names on this machine", () => {
  let before_: Record<string, string>;
  let standIns: readonly DropletImage[];
  let droplet: Droplet | undefined;

  before(async () => {
    await ensureDockerd();
    before_ = await productionNamesOnHost();
    standIns = await buildImages();
    const key = await makeSshKeyPair();
    try {
      droplet = await startDroplet({ rootPublicKey: key.publicKey });
    } finally {
      key.remove();
    }
  });

  after(async () => {
    await droplet?.stop();
  });

  it("after building and starting a droplet, no production name on this engine is new or moved", async () => {
    assert.deepEqual(
      standIns.map((i) => i.tag).sort(),
      [...PRODUCTION_NAMES].sort(),
      "build.sh names a stand-in for each",
    );
    for (const { source } of standIns) assert.match(source, /^chitram-standin\/[a-z]+:[0-9a-f]{16}$/);
    assert.deepEqual(await productionNamesOnHost(), before_);
  });

  it("inside the droplet every image of the compose file exists under its production tag, and no private name", async () => {
    const compose = composeObject({
      appImage: SANDBOX_APP_IMAGE,
      appPort: 8000,
      dataDir: "/srv/chitram/data",
      healthPath: "/health",
    });
    const services: Record<string, { image: string }> = compose.services;
    const images = Object.values(services).map((s) => s.image);
    assert.deepEqual([...images].sort(), [...PRODUCTION_NAMES].sort());
    const listed = await droplet!.exec("docker image ls --format '{{.Repository}}:{{.Tag}}'");
    assert.equal(listed.code, 0, listed.stderr);
    const inside = listed.stdout.split("\n").filter(Boolean);
    for (const image of images)
      assert.ok(inside.includes(image), `${image} missing in the droplet: ${inside.join(", ")}`);
    assert.deepEqual(
      inside.filter((i) => i.startsWith("chitram-standin/")),
      [],
      "the droplet mirrors a production host",
    );
  });

  it("joined to another network, and taken off it, the droplet answers SSH on the port it reports", async () => {
    // A name that sorts before the droplet's own network: Docker 20.10 then routes the published
    // ports through the new network and publishes them anew, on other host ports.
    const network = `chitram-aaa-${randomBytes(3).toString("hex")}`;
    await run("docker", ["network", "create", "--label", `${SANDBOX_LABEL}=1`, network]);
    const sshAnswers = async () => {
      const port = String(droplet!.sshPort);
      const r = await run("ssh-keyscan", ["-T", "5", "-p", port, "127.0.0.1"], { check: false });
      return r.stdout.includes("ssh-ed25519") ? "answers" : `no answer on 127.0.0.1:${port}`;
    };
    try {
      await droplet!.connect(network);
      assert.equal(await sshAnswers(), "answers", "after connect");
      await droplet!.disconnect(network);
      assert.equal(await sshAnswers(), "answers", "after disconnect");
    } finally {
      await run("docker", ["network", "disconnect", "-f", network, droplet!.name], { check: false });
      await run("docker", ["network", "rm", network], { check: false });
    }
  });
});
