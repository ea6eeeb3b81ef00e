# Starts or updates the compose project and releases the app without downtime (docs/RUNBOOK.md,
# "Releases"). What it does, in the order the last lines of this file run it:
#  1. services_up: PostgreSQL, MinIO and Caddy brought up to date (`compose up --wait`: a changed
#     image or env file restarts that one service), PostgreSQL's password set from the env file,
#     Caddy reloaded with the Caddyfile.
#  2. When the app's compose config (image, env file, settings) differs from the live container's,
#     a release: start_new starts the new version as one more container of the `app` service,
#     NEXT to the live one; gate waits until it answers 200 on HEALTH_PATH, asked from inside the
#     Caddy container by its container name (the path Caddy will use); switch_to rewrites the
#     upstream file and reloads Caddy (new requests go to the new container, requests in flight
#     finish on the old one); stop_old stops the old container once Caddy has none in flight to
#     it; prune_images removes the app images no rollback needs.
#  3. abandon: an image that cannot be pulled, a container that exits, one that does not answer
#     200 within RELEASE_TIMEOUT seconds, or a TERM (the step's time limit; `pulumi` stopped)
#     before the switch: the new container is removed, Caddy and the live container are left as
#     they were, and the step fails naming why and how to retry. A failed step is not recorded,
#     so the next `pulumi up` runs it again.
#  A credential rotation (new PostgreSQL or MinIO credentials in the env files): the services take
#  the new ones in step 1 and the new app version must pass the gate with them; until the switch
#  the live version's new logins fail (docs/RUNBOOK.md, "Rotate the MinIO secret"). When the
#  release is abandoned, the services go back to the credentials of the last release that went
#  live (LIVE_DIR), so the live version serves as before.
cd "$APP_DIR"
# ENV_FILE, APP_UPSTREAM, RELEASES_LOG (one line per release that went live: UTC time, image,
# container, hash of the app's compose config), LIVE_DIR and APP_IMAGES_LOG come from host.env,
# pushed by the files step.
[[ -f host.env ]] || die "$APP_DIR/host.env is missing: the files step has not run"
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program (templates/hostConfig.ts)
. ./host.env
ERR="$APP_DIR/.compose-up.err"
SERVICE_ENV=(.env.postgres .env.minio)
NEW_ID=""
ROTATING=0

# The env files' secret values (passwords, keys, the MinIO user), each replaced by [secret] in
# what this step prints: a failing service may log its environment. The previous credentials too.
mask_secrets() {
  awk -v files="$ENV_FILE $LIVE_DIR/.env.postgres $LIVE_DIR/.env.minio" '
    BEGIN {
      n = split(files, f, " ")
      for (i = 1; i <= n; i++)
        while ((getline line < f[i]) > 0) {
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
# health-gated, compose's single running app container. Containers of a release that did not
# finish (the step was killed) never served and are removed.
find_live() {
  local named="" id name running
  [[ -f $APP_UPSTREAM ]] && named=$(sed -n 's/^to \(.*\):[0-9]*$/\1/p' "$APP_UPSTREAM")
  live=""
  for id in $(app_ids); do
    [[ $(container_name "$id") == "$named" ]] && live=$named
  done
  if [[ -z $live ]]; then
    running=$(docker compose ps -q app)
    [[ $(wc -w <<<"$running") == 1 ]] && live=$(container_name "$running")
  fi
  for id in $(app_ids); do
    name=$(container_name "$id")
    if [[ $name != "$live" ]]; then
      docker rm -f "$id" >/dev/null
      say "removed $name, left by an unfinished release"
    fi
  done
  [[ -n $live && $named == "$live" ]] || write_upstream "${live:-app}"
}

still_serving() {
  if [[ -n $live ]]; then
    echo "  $live ($(docker inspect -f '{{.Config.Image}}' "$live")) still serves: Caddy was not switched."
  else
    echo "  No earlier app container exists on this host."
  fi
  echo "  To retry: fix the image or pick another, then: pulumi config set chitram:appImage <image> && pulumi up"
  echo "  (this step runs again on the next up). docs/RUNBOOK.md, \"Releases\", has the way back."
}

pull_image() {
  docker image inspect "$APP_IMAGE" >/dev/null 2>&1 && return 0
  say "pulling $APP_IMAGE"
  if ! docker pull -q "$APP_IMAGE" >/dev/null 2>"$ERR"; then
    die "release of $APP_IMAGE failed: the image cannot be pulled: $(tail -n 3 "$ERR")
$(still_serving)"
  fi
}

# The PostgreSQL role's password: the env file's, or with $1 the value in that file (a rollback).
# PostgreSQL takes POSTGRES_PASSWORD only when it creates its data directory, so after a new
# password the role is altered on every run, before the app starts; psql over the container's
# local socket reads it from its environment (\getenv) or from stdin, never from a command line.
set_postgres_password() {
  local from=${1:-}
  {
    if [[ -n $from ]]; then
      printf '\\set password %s\n' "$(sed -n 's/^POSTGRES_PASSWORD=//p' "$from")"
    else
      printf '\\getenv password POSTGRES_PASSWORD\n'
    fi
    printf "ALTER ROLE CURRENT_USER WITH PASSWORD :'password';\n"
  } | docker compose exec -T postgres sh -c 'psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres' >/dev/null 2>"$ERR"
}

services_up() {
  local f
  if [[ -d $LIVE_DIR ]]; then
    for f in "${SERVICE_ENV[@]}"; do cmp -s "$f" "$LIVE_DIR/$f" || ROTATING=1; done
  fi
  if ((ROTATING)); then
    say "new PostgreSQL or MinIO credentials: the services take them now, and the new app version must pass its health check with them"
  fi
  docker compose up -d --wait --wait-timeout "$WAIT_SECONDS" postgres 2>"$ERR" ||
    fail "PostgreSQL did not get healthy"
  set_postgres_password || fail "setting the PostgreSQL password from the env file failed"
  if ! docker compose up -d --remove-orphans --wait --wait-timeout "$WAIT_SECONDS" postgres minio caddy 2>"$ERR"; then
    fail "docker compose up did not get postgres, minio and caddy healthy"
  fi
  CADDY_ID=$(docker compose ps -q caddy)
  # Compose does not see a changed Caddyfile (a bind mount): Caddy reloads it gracefully, with no
  # dropped connections. The reload fails, and so does the step, if the new Caddyfile is invalid.
  reload_caddy
}

# A rotation that did not go live: PostgreSQL and MinIO back on the live release's credentials
# (LIVE_DIR), which the live container still uses. MinIO is recreated with them through an
# override file (environment outranks env_file); the next run's `compose up` recreates it with the
# env file's again, which is the retry.
undo_rotation() {
  local override="$LIVE_DIR/rollback.yaml"
  ((ROTATING)) || return 0
  set_postgres_password "$LIVE_DIR/.env.postgres" ||
    fail "the rotation could not be undone: PostgreSQL's password could not be set back"
  {
    printf 'services:\n  minio:\n    environment:\n'
    sed -n 's/^\(MINIO_ROOT_[A-Z]*\)=\(.*\)$/      \1: "\2"/p' "$LIVE_DIR/.env.minio"
  } >"$override"
  chmod 0600 "$override"
  docker compose -f compose.yaml -f "$override" up -d --wait --wait-timeout "$WAIT_SECONDS" minio 2>"$ERR" ||
    fail "the rotation could not be undone: MinIO did not come back on the previous credentials"
  rm -f "$override"
  ROTATING=0
  echo "chitram: the credential rotation was undone: PostgreSQL and MinIO are back on the credentials of the live version; the next up tries it again" >&2
}

# The release could not go live: the new container (if any) removed, the credentials undone,
# the step failed naming why; $1 = why, $2 = the last health output (the release's own).
abandon() {
  local why=$1 out=${2:-} name="" answer="" logs=""
  if [[ -n $NEW_ID ]]; then
    name=$(container_name "$NEW_ID")
    if [[ $(docker inspect -f '{{.State.Running}}' "$NEW_ID") == true ]]; then
      # The same request as the compose healthcheck, from inside the container, with the body.
      answer=$(docker exec "$NEW_ID" python3 -c '
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
    logs=$(docker logs --tail "$LOG_LINES" "$NEW_ID" 2>&1 | mask_secrets) || true
    docker rm -f "$NEW_ID" >/dev/null
    NEW_ID=""
  fi
  undo_rotation
  echo "chitram: release of $APP_IMAGE failed: ${name:+$name }$why${name:+; it was removed}.
  last health output: ${out:-none}${answer:+
  its own answer on 127.0.0.1:$APP_PORT$HEALTH_PATH: $answer}
$(still_serving)" >&2
  # Last, in the same form as a failed compose up: the failing service's last LOG_LINES lines only.
  if [[ -n $name ]]; then
    echo "--- app ($name, rolled back): last $LOG_LINES log lines" >&2
    [[ -z $logs ]] || printf '%s\n' "$logs" >&2
  fi
  exit 1
}

# TERM before the switch (`timeout` at the step's limit, or `pulumi` stopped): the same rollback.
# bash runs it once the command in the foreground returns (at most the gate's 10 s wget).
on_term() {
  trap - TERM
  abandon "was stopped before it went live (TERM: the step's time limit, or pulumi was stopped)"
}

start_new() {
  local before
  before=$(app_ids | sort)
  trap on_term TERM
  echo "$APP_IMAGE" >>"$APP_IMAGES_LOG"
  if ! docker compose up -d --no-deps --no-recreate --scale "app=$(($(wc -w <<<"$before") + 1))" app 2>"$ERR"; then
    for id in $(comm -13 <(echo "$before") <(app_ids | sort)); do docker rm -f "$id" >/dev/null; done
    abandon "docker compose could not start it: $(tail -n 5 "$ERR")"
  fi
  NEW_ID=$(comm -13 <(echo "$before") <(app_ids | sort))
  [[ $(wc -w <<<"$NEW_ID") == 1 ]] || die "expected one new app container, found: ${NEW_ID:-none}"
  new=$(container_name "$NEW_ID")
}

gate() {
  local url="http://$new:$APP_PORT$HEALTH_PATH" out="" state deadline=$((SECONDS + RELEASE_TIMEOUT))
  say "started $new ($APP_IMAGE); up to ${RELEASE_TIMEOUT}s for $url to answer 200 from the caddy container"
  for (( ; ; )); do
    state=$(docker inspect -f '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}' "$NEW_ID")
    [[ $state == "running 0 "* ]] || abandon "exited on start (status, restarts, exit code: $state)" "$out"
    # timeout, not wget -T: Debian's BusyBox wget (the sandbox's Caddy) crashes on -T.
    out=$(in_caddy timeout 10 wget -q -O /dev/null "$url" 2>&1) && return 0
    ((SECONDS < deadline)) || abandon "did not answer 200 on $url within ${RELEASE_TIMEOUT}s" "$out"
    sleep 0.5
  done
}

switch_to() {
  write_upstream "$new"
  if ! reload_caddy; then
    write_upstream "${live:-app}"
    abandon "Caddy did not accept the switch to it"
  fi
  NEW_ID=""
  trap - TERM
  say "$new serves $APP_IMAGE, ${SECONDS}s after the step started"
  # The way back (docs/RUNBOOK.md, "Releases"): the image before this one is the line above.
  printf '%s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$APP_IMAGE" "$new" "$want" >>"$RELEASES_LOG"
}

# Stops the old container once Caddy has no request in flight to it (at most DRAIN_SECONDS).
stop_old() {
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

# The app images no rollback needs: every image a release tried (APP_IMAGES_LOG) but the live one
# and the one released before it (RELEASES_LOG's newest other image: "Roll back on purpose" goes
# back to it). An image a container still uses is kept (docker refuses).
prune_images() {
  local previous keep image removed=()
  previous=$(awk -v live="$APP_IMAGE" '$2 != live { image = $2 } END { print image }' "$RELEASES_LOG")
  keep=("$APP_IMAGE" "$previous")
  while IFS= read -r image; do
    [[ -z $image || $image == "${keep[0]}" || $image == "${keep[1]}" ]] && continue
    if docker image inspect "$image" >/dev/null 2>&1 && docker image rm "$image" >/dev/null 2>&1; then
      removed+=("$image")
    fi
  done < <(sort -u "$APP_IMAGES_LOG")
  printf '%s\n' "${keep[@]}" | grep -v '^$' | sort -u >"$APP_IMAGES_LOG"
  ((${#removed[@]} == 0)) || say "removed app images no rollback needs: ${removed[*]}"
}

# The credentials of the version that went live, for a rotation's rollback.
remember_live() {
  install -d -m 0700 "$LIVE_DIR"
  local f
  for f in "${SERVICE_ENV[@]}"; do install -m 0600 "$f" "$LIVE_DIR/$f"; done
  ROTATING=0
}

release() {
  local old=$live
  start_new
  gate
  switch_to
  [[ -z $old ]] || stop_old "$old"
  live=$new
  remember_live
  prune_images
}

find_live
# Pulled before anything changes: an image that cannot be had fails the step with no service touched.
pull_image
services_up
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
  [[ -d $LIVE_DIR ]] || remember_live
else
  release
fi
rm -f "$ERR"
say "compose project healthy: $(docker compose ps --services --status running | tr '\n' ' ')"
