// What the registry login step (templates/steps/registryLogin.sh, LOGIN_MODE=password) reads on
// stdin: the credential travels there, never in the command string.

/** The user name, then the password, one line each (config.ts allows no newline in either). */
export function renderRegistryLogin(c: { username: string; password: string }): string {
  for (const value of [c.username, c.password]) {
    if (value === "" || /[\r\n]/.test(value)) throw new Error("registry credential: one non-empty line each");
  }
  return `${c.username}\n${c.password}\n`;
}
