// A throw-away CA and one server certificate it signs, for the stand-ins that must serve TLS under
// a public name (a registry, DigitalOcean's revocation address, a managed database).
import { run } from "./sandbox";

/**
 * Makes a CA (ca.crt) and a server certificate (server.crt, server.key) for `hosts`, signed
 * by it, in `dir`. The CA's key is removed: nothing else is ever signed with it.
 */
export async function makeCertificates(dir: string, hosts: readonly string[]): Promise<void> {
  const script = [
    "set -eu",
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 " +
      "-subj /CN=chitram-sandbox-ca -addext basicConstraints=critical,CA:TRUE " +
      "-addext keyUsage=critical,keyCertSign -keyout ca.key -out ca.crt 2>/dev/null",
    'openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$1" ' +
      "-keyout server.key -out server.csr 2>/dev/null",
    'sans=$(printf "DNS:%s," "$@")',
    'printf "subjectAltName=%s\\nextendedKeyUsage=serverAuth\\n" "${sans%,}" >ext.cnf',
    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 " +
      "-extfile ext.cnf -out server.crt 2>/dev/null",
    "chmod 0644 server.key",
    "rm -f ca.key ca.srl server.csr ext.cnf",
  ].join("\n");
  await run("bash", ["-c", script, "bash", ...hosts], { cwd: dir });
}
