// Files travel to the host on a step's stdin in a small line-based bundle format, read by
// `receive_files` in host/steps/lib.sh:
//
//   #chitram-file <mode> <line count> <sha256 of the content> <absolute path>
//   <that many lines>
//   ... (one or more files)
//   #chitram-end <file count> <sha256 of every byte before this line>
//
// Plain text keeps `pulumi preview` readable (the diff of a step's stdin is the diff of the files)
// and keeps secret files out of command strings. Modes travel with the files. The end marker
// makes a bundle cut off in transfer detectable, and the checksums a changed byte: the host
// checks all of it before it moves a single file into place.
import { createHash } from "crypto";
import * as fs from "fs";
import { PLAIN_PATH } from "../config/checks";

export interface HostFile {
  /** Absolute path on the host. */
  path: string;
  /** Octal mode, e.g. "0644". */
  mode: string;
  /** Text content; must end with a newline. */
  content: string;
}

/**
 * A script or template of this repository as the host gets it: with LF line ends, whatever the
 * checkout made of them. A CRLF script fails on the host (`$'\r': command not found`), and its
 * content hash, which decides whether a step re-runs, would differ from one checkout to another.
 */
export function readRepoText(file: string): string {
  return fs.readFileSync(file, "utf8").replace(/\r\n/g, "\n");
}

/** Hex SHA-256 of a text's UTF-8 bytes. */
export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export function encodeFiles(files: HostFile[]): string {
  if (files.length === 0) throw new Error("a file bundle needs at least one file");
  const body = files
    .map((f) => {
      if (!PLAIN_PATH.test(f.path))
        throw new Error(`host file path "${f.path}" must be absolute and plain, without . or .. parts`);
      if (!/^0[0-7]{3}$/.test(f.mode)) throw new Error(`host file ${f.path}: bad mode "${f.mode}"`);
      if (!f.content.endsWith("\n")) throw new Error(`host file ${f.path} must end with a newline`);
      if (f.content.includes("\0")) throw new Error(`host file ${f.path} must not contain NUL bytes`);
      const lines = f.content.split("\n").length - 1;
      return `#chitram-file ${f.mode} ${lines} ${sha256(f.content)} ${f.path}\n${f.content}`;
    })
    .join("");
  return `${body}#chitram-end ${files.length} ${sha256(body)}\n`;
}

/** The files of a bundle, checked as the host checks them; throws naming what is wrong. */
export function decodeFiles(bundle: string): HostFile[] {
  const end = /(?:^|\n)(#chitram-end (\d+) ([0-9a-f]{64}))\n$/.exec(bundle);
  if (!end) throw new Error("bundle has no end marker (#chitram-end) as its last line: it was cut off");
  const body = bundle.slice(0, bundle.length - end[1].length - 1);
  if (sha256(body) !== end[3]) throw new Error("bundle checksum mismatch: it was changed in transfer");
  const lines = body.split("\n");
  const files: HostFile[] = [];
  let i = 0;
  while (i < lines.length - 1) {
    const header = lines[i++];
    const m = /^#chitram-file (0[0-7]{3}) (\d+) ([0-9a-f]{64}) (\/\S+)$/.exec(header);
    if (!m || !PLAIN_PATH.test(m[4])) throw new Error(`bad bundle header: ${header}`);
    const count = Number(m[2]);
    if (i + count > lines.length - 1) throw new Error(`bundle ended inside ${m[4]}`);
    const content = lines
      .slice(i, i + count)
      .map((l) => `${l}\n`)
      .join("");
    if (sha256(content) !== m[3]) throw new Error(`checksum mismatch for ${m[4]}`);
    files.push({ path: m[4], mode: m[1], content });
    i += count;
  }
  if (files.length !== Number(end[2]))
    throw new Error(`bundle holds ${files.length} file(s), its end marker says ${end[2]}`);
  return files;
}
