# Runs as the deploy user, with the generated key, no agent and no TTY: the way CI/CD logs in.
sudo -n true 2>/dev/null ||
  die "sudo asks $(id -un) for a password over non-interactive SSH: passwordless sudo is not in effect"
docker info >/dev/null 2>&1 ||
  die "$(id -un) cannot use the Docker engine: $(docker info 2>&1 | tail -n 3)"
docker compose version >/dev/null 2>&1 || die "docker compose v2 is not available to $(id -un)"
say "$(id -un) logs in with the deploy key, sudo -n works, docker $(docker compose version --short) answers"
