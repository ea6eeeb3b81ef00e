// ED25519 key pairs in OpenSSH format, without a passphrase, made by ssh-keygen (OpenSSH itself).
// ssh2's generateKeyPairSync drops a leading zero byte of the public key (about 1 key in 500),
// which gives a key that neither ssh2 nor OpenSSH can read: a test would fail at random.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface KeyPair {
  /** The private key, OpenSSH format. */
  private: string;
  /** The public key, one authorized_keys line without a newline. */
  public: string;
}

export function ed25519KeyPair(comment = "chitram-sandbox"): KeyPair {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chitram-key-"));
  try {
    const file = path.join(dir, "id_ed25519");
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file], {
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr || r.error}`);
    return { private: fs.readFileSync(file, "utf8"), public: fs.readFileSync(`${file}.pub`, "utf8").trim() };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
