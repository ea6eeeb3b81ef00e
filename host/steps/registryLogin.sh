# Logs the deploy user's Docker in to REGISTRY_SERVER, so that the release step (run as the same
# user) can pull the app image. stdin is a Docker config.json holding one entry, auths[AUTH_KEY]
# with "auth" = base64(user:password) (rendered by render/registryLogin.ts, or DigitalOcean's
# docker credentials): no part of the credential is ever an argument, so none is in
# /proc/*/cmdline. Docker checks it from a scratch config directory (`docker login AUTH_KEY`
# with nothing on stdin uses the stored credential); only then is the entry, as received, merged
# into the deploy user's ~/.docker/config.json (0600, in a 0700 ~/.docker). A credential the
# registry refuses fails this step with Docker's message, before the release step runs: the
# running version is untouched, and what was stored before stays as it was.
umask 077
install -d -m 0700 "$HOME/.docker"
CONFIG="$HOME/.docker/config.json"
python3 -c 'import json' 2>/dev/null ||
  die "registry login to $REGISTRY_SERVER: python3 with its json module is missing (it merges the credential into $CONFIG; install the python3 package)"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cat >"$scratch/incoming.json"
python3 -c 'import json, sys; a = json.load(open(sys.argv[1]))["auths"][sys.argv[2]]["auth"]; assert isinstance(a, str) and a' \
  "$scratch/incoming.json" "$AUTH_KEY" 2>/dev/null ||
  die "registry login: stdin is not a Docker config.json with an auth for $AUTH_KEY; nothing was changed"
# Docker reads a credsStore or a credHelpers entry for the server instead of auths: a merged
# entry would be ignored and the pull would fail later, with a less helpful message.
if [[ -f $CONFIG ]]; then
  helper=$(python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); print(c.get("credHelpers", {}).get(sys.argv[2]) or c.get("credsStore") or "")' \
    "$CONFIG" "$AUTH_KEY") ||
    die "registry login: $CONFIG is not valid JSON; fix or remove it, then run pulumi up again"
  [[ -z $helper ]] ||
    die "registry login: $CONFIG names the credential helper \"$helper\" for $REGISTRY_SERVER (credsStore or credHelpers), so Docker would ignore the login the stack stores; remove it from $CONFIG, then run pulumi up again"
fi
cp "$scratch/incoming.json" "$scratch/config.json"
if ! DOCKER_CONFIG=$scratch docker login "$AUTH_KEY" </dev/null >"$scratch/out" 2>&1; then
  die "docker login to $REGISTRY_SERVER failed; the app image was not pulled and the running version is untouched:
$(tail -n 3 "$scratch/out")
  Fix the credential (docs/RUNBOOK.md, \"A wrong or expired registry credential\"), then run pulumi up again."
fi
# From the copy taken before the login (Docker rewrites its scratch config), checked once more in
# the merged file: an entry without "auth" would make the pull fail far from here.
python3 - "$scratch/incoming.json" "$AUTH_KEY" "$CONFIG" <<'PY'
import json, os, sys

incoming, key, target = sys.argv[1:4]
entry = json.load(open(incoming))["auths"][key]
try:
    with open(target) as f:
        config = json.load(f)
except FileNotFoundError:
    config = {}
config.setdefault("auths", {})[key] = entry
tmp = target + ".chitram-tmp"
with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump(config, f, indent="\t")
os.replace(tmp, target)
if not json.load(open(target))["auths"][key].get("auth"):
    sys.exit(f"chitram: {target} holds no auth for {key} after the merge")
PY
chmod 0600 "$CONFIG"
say "the deploy user's Docker is logged in to $REGISTRY_SERVER (credential in $CONFIG, 0600)"
