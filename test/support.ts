// Shared helpers for the program tests: run the program under mocks with a stack's config.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { ProgramRun, readStackFile, RecordedResource, stackFile } from "../harness/mockProgram";
import { ProgramStep } from "../harness/steps";

export { runStack } from "../harness/steps";

export const STAGING = readStackFile(stackFile("staging"));
export const PROD = readStackFile(stackFile("prod"));
export const EXISTING = {
  appImage: "ghcr.io/example/chitram:1.0.0",
  target: "existing",
  host: "192.0.2.7",
  sshPort: "2222",
  sshUser: "root",
  sshPrivateKey: "PLACEHOLDER-bootstrap-key",
};

export function ofType(run: ProgramRun, type: string): RecordedResource[] {
  return run.resources.filter((r) => r.type === type);
}

export function named(run: ProgramRun, name: string): RecordedResource {
  const r = run.resources.find((x) => x.name === name);
  if (!r) throw new Error(`no resource named ${name}; have: ${run.resources.map((x) => x.name).join(", ")}`);
  return r;
}

export function step(run: { steps: ProgramStep[] }, name: string): ProgramStep {
  const s = run.steps.find((x) => x.name === name);
  if (!s) throw new Error(`no step ${name}; have: ${run.steps.map((x) => x.name).join(", ")}`);
  return s;
}

/** Runs a validator; throws with its output when it is missing or fails. */
export function tool(cmd: string, args: string[], input?: string): { code: number; out: string } {
  const r = spawnSync(cmd, args, { input, encoding: "utf8" });
  if (r.error)
    throw new Error(
      `${cmd} is not installed here (.ci/install-host-tools.sh installs it): ${r.error.message}`,
    );
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** Runs `bash script` with `env` and stdin closed: its exit code and output. */
export function runBashScript(
  script: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [script], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

/**
 * A scratch directory, and a Go module proxy on 127.0.0.1 that refuses every module as the public
 * proxy refuses some; `goEnv` points the go command at both (no checksum database, empty caches).
 */
export interface RefusingGoProxy {
  dir: string;
  goEnv: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export async function refusingGoProxy(prefix: string): Promise<RefusingGoProxy> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const server = http.createServer((_req, res) => {
    res.writeHead(403, { "Content-Type": "text/plain" });
    res.end("not found: This module version is not available\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    dir,
    goEnv: {
      GOPROXY: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      GOSUMDB: "off",
      GOMODCACHE: path.join(dir, "mod"),
      GOCACHE: path.join(dir, "build"),
    },
    close: async () => {
      await new Promise((resolve) => server.close(resolve));
      // the go command writes its module cache read-only
      await new Promise((resolve) => spawn("chmod", ["-R", "u+w", dir]).on("close", resolve));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const scratch: string[] = [];
/**
 * A new directory under the system's temporary directory, removed when this test process exits
 * (each test file runs in a process of its own), whatever the tests' outcome.
 */
export function scratchDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (scratch.push(dir) === 1) {
    process.on("exit", () => {
      for (const d of scratch) fs.rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}
