# Logs the deploy user's Docker in to REGISTRY_SERVER, so that the release step (run as the same
# user) can pull the app image. The credential arrives on stdin only, never as an argument, and is
# kept where Docker keeps it: ~/.docker/config.json (0600, in a 0700 ~/.docker). A credential the
# registry refuses fails this step with the registry's own message, before the release step runs:
# the running version is untouched, and what was stored before stays as it was.
#  LOGIN_MODE=password      stdin: the user name, then the password, one line each. `docker login
#                           --password-stdin` checks them with the registry and stores them.
#  LOGIN_MODE=dockerconfig  stdin: a Docker config.json with the registry's auth (DigitalOcean's
#                           docker credentials: the user name is a token too, so it cannot be an
#                           argument either). Docker checks it from a scratch config directory;
#                           then its entry is merged into the deploy user's config.json.
umask 077
install -d -m 0700 "$HOME/.docker"
CONFIG="$HOME/.docker/config.json"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

refused() {
  die "docker login to $REGISTRY_SERVER failed; the app image was not pulled and the running version is untouched:
$(tail -n 3 "$scratch/out")
  Fix the credential (docs/RUNBOOK.md, \"A wrong or expired registry credential\"), then run pulumi up again."
}

case $LOGIN_MODE in
  password)
    user='' password=''
    IFS= read -r user || true
    IFS= read -r password || true
    [[ -n $user && -n $password ]] || die "registry login: stdin holds no user name and password; nothing was changed"
    printf '%s\n' "$password" |
      docker login --username "$user" --password-stdin "$REGISTRY_SERVER" >"$scratch/out" 2>&1 || refused
    ;;
  dockerconfig)
    command -v python3 >/dev/null ||
      die "registry login to $REGISTRY_SERVER: python3 is missing (it merges the credential into $CONFIG)"
    cat >"$scratch/config.json"
    python3 -c 'import json, sys; json.load(open(sys.argv[1]))["auths"][sys.argv[2]]["auth"]' \
      "$scratch/config.json" "$REGISTRY_SERVER" 2>/dev/null ||
      die "registry login: stdin is not a Docker config.json with an auth for $REGISTRY_SERVER; nothing was changed"
    # No user name given: Docker logs in with the credential stored in the scratch config.
    DOCKER_CONFIG=$scratch docker login "$REGISTRY_SERVER" </dev/null >"$scratch/out" 2>&1 || refused
    python3 - "$scratch/config.json" "$REGISTRY_SERVER" "$CONFIG" <<'PY'
import json, os, sys

scratch, server, target = sys.argv[1:4]
entry = json.load(open(scratch))["auths"][server]
try:
    with open(target) as f:
        config = json.load(f)
except FileNotFoundError:
    config = {}
config.setdefault("auths", {})[server] = entry
tmp = target + ".chitram-tmp"
with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump(config, f, indent="\t")
os.replace(tmp, target)
PY
    ;;
  *) die "registry login: unknown LOGIN_MODE $LOGIN_MODE" ;;
esac
chmod 0600 "$CONFIG"
say "the deploy user's Docker is logged in to $REGISTRY_SERVER (credential in $CONFIG, 0600)"
