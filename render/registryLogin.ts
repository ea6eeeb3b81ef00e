// What the registry login step (host/steps/registryLogin.sh) reads on stdin: a Docker
// config.json with the one entry Docker looks up for the server. The credential travels there,
// never in the command string nor in `docker login`'s arguments.

/** Docker Hub's pulls look up their login under this key, not under docker.io. */
const DOCKER_HUB_KEY = "https://index.docker.io/v1/";

/** The key of config.json's auths under which Docker stores and finds the login to `server`. */
export function dockerAuthKey(server: string): string {
  return server === "docker.io" ? DOCKER_HUB_KEY : server;
}

/** `{"auths":{KEY:{"auth":base64(user:password)}}}`, as `docker login` would store it. */
export function renderRegistryLogin(c: { server: string; username: string; password: string }): string {
  for (const value of [c.username, c.password]) {
    if (value === "" || /[\r\n]/.test(value)) throw new Error("registry credential: one non-empty line each");
  }
  if (c.username.includes(":")) throw new Error("registry credential: the user name ends at a colon");
  const auth = Buffer.from(`${c.username}:${c.password}`).toString("base64");
  return JSON.stringify({ auths: { [dockerAuthKey(c.server)]: { auth } } });
}
