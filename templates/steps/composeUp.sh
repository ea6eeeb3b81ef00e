# Starts or updates the compose project and releases the app without downtime (docs/RUNBOOK.md,
# "Releases"):
#  1. PostgreSQL, MinIO and Caddy are brought up to date with `compose up --wait` (a changed image
#     or env file restarts that one service), and Caddy reloads a changed Caddyfile.
#  2. When the app's compose config (image, env file, settings) differs from the live container's,
#     the new version starts as one more container of the `app` service, NEXT to the live one. It
#     must answer 200 on HEALTH_PATH, asked from inside the Caddy container by its container name:
#     the path Caddy will use. Only then is the upstream file rewritten and Caddy reloaded (new
#     requests go to the new container; requests in flight finish on the old one), and the old
#     container is stopped once Caddy has no request in flight to it.
#  3. An image that cannot be pulled, a container that exits, or one that does not answer 200
#     within RELEASE_TIMEOUT seconds: the new container is removed, Caddy and the live container
#     are left as they were, and the step fails naming the image, the last health output and how
#     to retry. A failed step is not recorded, so the next `pulumi up` runs it again.
cd "$APP_DIR"
# ENV_FILE, APP_UPSTREAM and RELEASES_LOG (one line per release that went live: UTC time, image,
# container, hash of the app's compose config) come from host.env, pushed by the files step.
[[ -f host.env ]] || die "$APP_DIR/host.env is missing: the files step has not run"
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program (templates/hostConfig.ts)
. ./host.env
ERR="$APP_DIR/.compose-up.err"

# The env file's secret values (passwords, keys, the MinIO user), each replaced by [secret] in
# what this step prints: a failing service may log its environment.
mask_secrets() {
  awk -v env_file="$ENV_FILE" '
    BEGIN {
      while ((getline line < env_file) > 0) {
        eq = index(line, "=")
        key = substr(line, 1, eq - 1)
        if (eq > 1 && key ~ /(PASSWORD|SECRET_KEY|ACCESS_KEY|ROOT_USER)$/ && eq < length(line)) secret[substr(line, eq + 1)] = 1
      }
    }
    {
      for (s in secret) while ((at = index($0, s)) > 0) $0 = substr($0, 1, at - 1) "[secret]" substr($0, at + length(s))
      print
    }'
}

# On failure: the state of every service, then the last LOG_LINES log lines of the services that
# are not running and healthy, and no others (CI keeps this output).
fail() {
  docker compose ps -a >&2 || true
  local service state health
  while read -r service state health; do
    [[ $state == running && ${health:-healthy} == healthy ]] && continue
    echo "--- $service ($state${health:+, $health}): last $LOG_LINES log lines" >&2
    docker compose logs --no-color --tail "$LOG_LINES" "$service" 2>&1 | mask_secrets >&2 || true
  done < <(docker compose ps -a --format '{{.Service}} {{.State}} {{.Health}}')
  die "$1: $(tail -n 5 "$ERR" | mask_secrets)"
}

container_name() { docker inspect -f '{{.Name}}' "$1" | sed 's|^/||'; }
app_ids() { docker compose ps -a -q app; }
# docker exec, not `docker compose exec`: the health gate polls through it, and compose's CLI
# takes up to a second to start on a busy host. CADDY_ID is set once Caddy is up to date.
in_caddy() { docker exec "$CADDY_ID" "$@"; }
reload_caddy() { in_caddy caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile; }

# Caddy proxies to the container the upstream file names (templates/caddyfile.ts imports it).
write_upstream() {
  local tmp
  tmp=$(mktemp "$(dirname "$APP_UPSTREAM")/.app-upstream.XXXXXX")
  printf 'to %s:%s\n' "$1" "$APP_PORT" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$APP_UPSTREAM"
}

# The live container: the one the upstream file names; on a host deployed before releases were
# health-gated, compose's single running app container.
named=""
[[ -f $APP_UPSTREAM ]] && named=$(sed -n 's/^to \(.*\):[0-9]*$/\1/p' "$APP_UPSTREAM")
live=""
for id in $(app_ids); do
  [[ $(container_name "$id") == "$named" ]] && live=$named
done
if [[ -z $live ]]; then
  running=$(docker compose ps -q app)
  [[ $(wc -w <<<"$running") == 1 ]] && live=$(container_name "$running")
fi
# Containers of a release that did not finish (the step was killed): never served, removed.
for id in $(app_ids); do
  name=$(container_name "$id")
  if [[ $name != "$live" ]]; then
    docker rm -f "$id" >/dev/null
    say "removed $name, left by an unfinished release"
  fi
done
[[ -n $live && $named == "$live" ]] || write_upstream "${live:-app}"

still_serving() {
  if [[ -n $live ]]; then
    echo "  $live ($(docker inspect -f '{{.Config.Image}}' "$live")) still serves: Caddy was not switched."
  else
    echo "  No earlier app container exists on this host."
  fi
  echo "  To retry: fix the image or pick another, then: pulumi config set chitram:appImage <image> && pulumi up"
  echo "  (this step runs again on the next up). docs/RUNBOOK.md, \"Releases\", has the way back."
}

if ! docker image inspect "$APP_IMAGE" >/dev/null 2>&1; then
  say "pulling $APP_IMAGE"
  if ! docker pull -q "$APP_IMAGE" >/dev/null 2>"$ERR"; then
    die "release of $APP_IMAGE failed: the image cannot be pulled: $(tail -n 3 "$ERR")
$(still_serving)"
  fi
fi

# PostgreSQL takes POSTGRES_PASSWORD only when it creates its data directory. After a new password
# (the generated one was replaced) the app could no longer log in, so the password in the env file
# is set on every run, before the app starts: psql over the container's local socket reads it from
# the container's environment (\getenv), never from a command line.
docker compose up -d --wait --wait-timeout "$WAIT_SECONDS" postgres 2>"$ERR" ||
  fail "PostgreSQL did not get healthy"
if ! docker compose exec -T postgres sh -c 'psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres' >/dev/null 2>"$ERR" <<'SQL'; then
\getenv password POSTGRES_PASSWORD
ALTER ROLE CURRENT_USER WITH PASSWORD :'password';
SQL
  fail "setting the PostgreSQL password from the env file failed"
fi
if ! docker compose up -d --remove-orphans --wait --wait-timeout "$WAIT_SECONDS" postgres minio caddy 2>"$ERR"; then
  fail "docker compose up did not get postgres, minio and caddy healthy"
fi
CADDY_ID=$(docker compose ps -q caddy)
# Compose does not see a changed Caddyfile (a bind mount): Caddy reloads it gracefully, with no
# dropped connections. The reload fails, and so does the step, if the new Caddyfile is invalid.
reload_caddy

# Removes the new container and fails the step; $1 = container id, $2 = why, $3 = last health output.
roll_back() {
  local id=$1 name answer logs
  name=$(container_name "$id")
  answer=""
  if [[ $(docker inspect -f '{{.State.Running}}' "$id") == true ]]; then
    # The same request as the compose healthcheck, from inside the container, with the body.
    answer=$(docker exec "$id" python3 -c '
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=3)
    print("HTTP", r.status, r.read(500).decode(errors="replace"))
except urllib.error.HTTPError as e:
    print("HTTP", e.code, e.read(500).decode(errors="replace"))
except Exception as e:
    print(type(e).__name__, e)
' "http://127.0.0.1:$APP_PORT$HEALTH_PATH" 2>&1 | head -c 600) || true
  fi
  logs=$(docker logs --tail "$LOG_LINES" "$id" 2>&1 | mask_secrets) || true
  docker rm -f "$id" >/dev/null
  echo "chitram: release of $APP_IMAGE failed: $name $2; it was removed.
  last health output: ${3:-none}${answer:+
  its own answer on 127.0.0.1:$APP_PORT$HEALTH_PATH: $answer}
$(still_serving)" >&2
  # Last, in the same form as a failed compose up: the failing service's last LOG_LINES lines only.
  echo "--- app ($name, rolled back): last $LOG_LINES log lines" >&2
  [[ -z $logs ]] || printf '%s\n' "$logs" >&2
  exit 1
}

release() {
  local before new_id new url out="" state
  before=$(app_ids | sort)
  if ! docker compose up -d --no-deps --no-recreate --scale "app=$(($(wc -w <<<"$before") + 1))" app 2>"$ERR"; then
    for id in $(comm -13 <(echo "$before") <(app_ids | sort)); do docker rm -f "$id" >/dev/null; done
    die "release of $APP_IMAGE failed: docker compose could not start it: $(tail -n 5 "$ERR")
$(still_serving)"
  fi
  new_id=$(comm -13 <(echo "$before") <(app_ids | sort))
  [[ $(wc -w <<<"$new_id") == 1 ]] || die "expected one new app container, found: ${new_id:-none}"
  new=$(container_name "$new_id")
  url="http://$new:$APP_PORT$HEALTH_PATH"
  say "started $new ($APP_IMAGE); up to ${RELEASE_TIMEOUT}s for $url to answer 200 from the caddy container"
  local deadline=$((SECONDS + RELEASE_TIMEOUT))
  for (( ; ; )); do
    state=$(docker inspect -f '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}' "$new_id")
    if [[ $state != "running 0 "* ]]; then
      roll_back "$new_id" "exited on start (status, restarts, exit code: $state)" "$out"
    fi
    # timeout, not wget -T: Debian's BusyBox wget (the sandbox's Caddy) crashes on -T.
    if out=$(in_caddy timeout 10 wget -q -O /dev/null "$url" 2>&1); then
      break
    fi
    if ((SECONDS >= deadline)); then
      roll_back "$new_id" "did not answer 200 on $url within ${RELEASE_TIMEOUT}s" "$out"
    fi
    sleep 0.5
  done
  write_upstream "$new"
  if ! reload_caddy; then
    write_upstream "${live:-app}"
    docker rm -f "$new_id" >/dev/null
    die "release of $APP_IMAGE failed: Caddy did not accept the switch to $new
$(still_serving)"
  fi
  say "$new serves $APP_IMAGE, ${SECONDS}s after the step started"
  # The way back (docs/RUNBOOK.md, "Releases"): the image before this one is the line above.
  printf '%s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$APP_IMAGE" "$new" "$want" >>"$RELEASES_LOG"
  [[ -z $live ]] || drain_and_stop "$live"
  live=$new
}

# Stops the old container once Caddy has no request in flight to it (at most DRAIN_SECONDS).
drain_and_stop() {
  local old=$1 deadline=$((SECONDS + DRAIN_SECONDS)) upstreams
  while ((SECONDS < deadline)); do
    upstreams=$(in_caddy timeout 10 wget -q -O - http://127.0.0.1:2019/reverse_proxy/upstreams 2>/dev/null) || break
    grep -q "\"address\":\"$old:$APP_PORT\",\"num_requests\":[1-9]" <<<"$upstreams" || break
    sleep 0.5
  done
  docker stop -t 30 "$old" >/dev/null
  docker rm "$old" >/dev/null
  say "stopped and removed $old"
}

# The app's resolved compose config (image, settings, the env file's values), hashed: compose's own
# config-hash label cannot be compared, since it changes with the scale a container was made at.
want=$(docker compose config app | sha256sum | cut -c1-64)
have=""
if [[ -n $live && -s $RELEASES_LOG ]]; then
  read -r _ _ released config_hash < <(tail -n 1 "$RELEASES_LOG")
  [[ $released != "$live" ]] ||
    have="$(docker inspect -f '{{.State.Running}}' "$live") $config_hash"
fi
if [[ $have == "true $want" ]]; then
  say "app unchanged: $live keeps serving"
else
  release
fi
rm -f "$ERR"
say "compose project healthy: $(docker compose ps --services --status running | tr '\n' ' ')"
