// Files travel to the host on a step's stdin in a small line-based bundle format, read by
// `receive_files` in templates/steps/lib.sh:
//
//   #chitram-file <mode> <line count> <absolute path>
//   <that many lines>
//
// Plain text keeps `pulumi preview` readable (the diff of a step's stdin is the diff of the files)
// and keeps secret files out of command strings. Modes travel with the files.

export interface HostFile {
  /** Absolute path on the host. */
  path: string;
  /** Octal mode, e.g. "0644". */
  mode: string;
  /** Text content; must end with a newline. */
  content: string;
}

export function encodeFiles(files: HostFile[]): string {
  return files
    .map((f) => {
      if (!/^\/[A-Za-z0-9._/-]+$/.test(f.path))
        throw new Error(`host file path "${f.path}" must be absolute and plain`);
      if (!/^0[0-7]{3}$/.test(f.mode)) throw new Error(`host file ${f.path}: bad mode "${f.mode}"`);
      if (!f.content.endsWith("\n")) throw new Error(`host file ${f.path} must end with a newline`);
      const lines = f.content.split("\n").length - 1;
      return `#chitram-file ${f.mode} ${lines} ${f.path}\n${f.content}`;
    })
    .join("");
}

export function decodeFiles(bundle: string): HostFile[] {
  const lines = bundle.split("\n");
  const files: HostFile[] = [];
  let i = 0;
  while (i < lines.length) {
    const header = lines[i++];
    if (header === "") continue;
    const m = /^#chitram-file (0[0-7]{3}) (\d+) (\/\S+)$/.exec(header);
    if (!m) throw new Error(`bad bundle header: ${header}`);
    const count = Number(m[2]);
    if (i + count > lines.length) throw new Error(`bundle ended inside ${m[3]}`);
    files.push({
      path: m[3],
      mode: m[1],
      content: lines
        .slice(i, i + count)
        .map((l) => `${l}\n`)
        .join(""),
    });
    i += count;
  }
  return files;
}
