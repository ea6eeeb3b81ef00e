# The services part of the release step (composeUp.sh): PostgreSQL, MinIO and Caddy brought up
# to date, PostgreSQL's password set from its env file, Caddy reloaded, and a credential rotation
# undone when its release does not go live. What fails is reported with the services' states
# and their last log lines, secrets masked. With a managed database (host.env's DATABASE=managed)
# the project has no postgres service, and the cluster's password is DigitalOcean's; with the
# objects in Spaces (OBJECTS=spaces) it has no minio service.

# The services the release keeps up, into SERVICES: PostgreSQL's container unless the database is
# a managed cluster, MinIO's unless the objects are in Spaces (host.env, sourced once these
# functions are defined).
SERVICES=()
release_services() {
  SERVICES=()
  if [[ ${DATABASE:-container} != managed ]]; then SERVICES+=(postgres); fi
  if [[ ${OBJECTS:-minio} != spaces ]]; then SERVICES+=(minio); fi
  SERVICES+=(caddy)
}

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

# docker exec, not `docker compose exec`: the health gate polls through it, and compose's CLI
# takes up to a second to start on a busy host. CADDY_ID is set once Caddy is up to date.
in_caddy() { docker exec "$CADDY_ID" "$@"; }
reload_caddy() { in_caddy caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile; }

# The PostgreSQL role's password: the env file's, or with $1 the value in that file (a rollback).
# PostgreSQL takes POSTGRES_PASSWORD only when it creates its data directory, so after a new
# password the role is altered on every run, before the app starts; psql over the container's
# local socket reads it from its environment (\getenv) or from stdin, never from a command line.
# At most 60 s: a PostgreSQL that hangs must not hold up the rest of a rollback.
set_postgres_password() {
  local from=${1:-}
  # shellcheck disable=SC2016 # $POSTGRES_USER is expanded by sh inside the container
  {
    if [[ -n $from ]]; then
      printf '\\set password %s\n' "$(sed -n 's/^POSTGRES_PASSWORD=//p' "$from")"
    else
      printf '\\getenv password POSTGRES_PASSWORD\n'
    fi
    printf "ALTER ROLE CURRENT_USER WITH PASSWORD :'password';\n"
  } | timeout 60 docker compose exec -T postgres sh -c 'psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres' >/dev/null 2>"$ERR"
}

# Docker reports a container as unhealthy from a pause until its next health probe, and
# `compose up --wait` fails on that at once. Backups pause MinIO only under the release lock, which
# this step holds (take_release_lock): a service paused now was left so by a backup killed
# part-way, and is unpaused. One still unhealthy (a probe in flight) is waited for up to
# SETTLE_SECONDS, then left to compose up, which reports it.
SETTLE_SECONDS=60
settle_services() {
  local deadline=$((SECONDS + SETTLE_SECONDS)) states paused
  release_services
  while ((SECONDS < deadline)); do
    states=$(docker compose ps -a --format '{{.Service}} {{.State}} {{.Health}}' "${SERVICES[@]}")
    mapfile -t paused < <(awk '$2 == "paused" { print $1 }' <<<"$states")
    if ((${#paused[@]})); then
      say "unpausing ${paused[*]}, left paused by a backup that was stopped part-way"
      docker compose unpause "${paused[@]}" >/dev/null 2>"$ERR" || fail "could not unpause ${paused[*]}"
      continue
    fi
    grep -q ' running unhealthy' <<<"$states" || return 0
    sleep 1
  done
  say "still unhealthy after ${SETTLE_SECONDS}s: $(grep ' running unhealthy' <<<"$states" | tr '\n' ';')"
}

# What a rotation has changed so far, for undo_rotation: PostgreSQL's password, MinIO's container.
PG_CHANGED=0 MINIO_CHANGED=0

# A failure once the services may have taken new credentials: they are put back first (TERM is
# ignored meanwhile: the KILL comes RELEASE_KILL_AFTER_SECONDS after the TERM, time for the undo).
fail_services() {
  trap '' TERM
  cp "$ERR" "$ERR.cause" 2>/dev/null || : >"$ERR.cause"
  undo_rotation || true
  mv -f "$ERR.cause" "$ERR"
  fail "$1"
}

services_up() {
  local f
  release_services
  if [[ -d $LIVE_DIR ]]; then
    for f in "${SERVICE_ENV[@]}"; do cmp -s "$f" "$LIVE_DIR/$f" || ROTATING=1; done
  fi
  if ((ROTATING)); then
    say "new PostgreSQL or MinIO credentials: the services take them now, and the new app version must pass its health check with them"
  fi
  settle_services
  if [[ ${SERVICES[0]} == postgres ]]; then
    docker compose up -d --wait --wait-timeout "$WAIT_SECONDS" postgres 2>"$ERR" ||
      fail_services "PostgreSQL did not get healthy"
    PG_CHANGED=1
    set_postgres_password || fail_services "setting the PostgreSQL password from the env file failed"
  fi
  if [[ " ${SERVICES[*]} " == *" minio "* ]]; then MINIO_CHANGED=1; fi
  # No --remove-orphans here: after a switch to a managed database or to Spaces, the postgres or
  # minio container the project no longer has still serves the live version until the new one
  # has passed its gate (remove_orphans).
  if ! docker compose up -d --wait --wait-timeout "$WAIT_SECONDS" "${SERVICES[@]}" 2>"$ERR"; then
    fail_services "docker compose up did not get ${SERVICES[*]} healthy"
  fi
  CADDY_ID=$(docker compose ps -q caddy)
  # Compose does not see a changed Caddyfile (a bind mount): Caddy reloads it gracefully, with no
  # dropped connections. The reload fails, and so does the step, if the new Caddyfile is invalid.
  reload_caddy 2>"$ERR" || fail_services "Caddy did not accept the Caddyfile"
}

# Once the live version runs without them (a release went live, or the app was unchanged): the
# postgres or minio container a switch to a managed database or to Spaces left behind is removed.
# Its data directory stays on the disk, untouched.
remove_orphans() {
  docker compose up -d --no-recreate --no-deps --remove-orphans caddy 2>"$ERR" ||
    fail "removing the services the project no longer has (postgres or minio after a switch) failed"
}

# A rotation that did not go live: PostgreSQL and MinIO back on the live release's credentials
# (LIVE_DIR), which the live container still uses. MinIO is recreated with them through an
# override file (environment outranks env_file); the next run's `compose up` recreates it with the
# env file's again, which is the retry.
undo_rotation() {
  local override="$LIVE_DIR/rollback.yaml" failed=()
  ((ROTATING)) || return 0
  ROTATING=0
  if ((PG_CHANGED)) && ! set_postgres_password "$LIVE_DIR/.env.postgres"; then
    failed+=("PostgreSQL's password could not be set back")
  fi
  if ((MINIO_CHANGED)); then
    {
      printf 'services:\n  minio:\n    environment:\n'
      sed -n 's/^\(MINIO_ROOT_[A-Z]*\)=\(.*\)$/      \1: "\2"/p' "$LIVE_DIR/.env.minio"
    } >"$override"
    chmod 0600 "$override"
    if ! docker compose -f compose.yaml -f "$override" up -d --wait --wait-timeout "$WAIT_SECONDS" minio 2>"$ERR.undo"; then
      failed+=("MinIO did not come back on the previous credentials: $(tail -n 3 "$ERR.undo" | mask_secrets)")
    fi
    rm -f "$override" "$ERR.undo"
  fi
  if ((${#failed[@]})); then
    echo "chitram: the credential rotation could not be undone: ${failed[*]}; the live version may fail until the next up" >&2
    return 1
  fi
  if ((PG_CHANGED || MINIO_CHANGED)); then
    echo "chitram: the credential rotation was undone: PostgreSQL and MinIO are back on the credentials of the live version; the next up tries it again" >&2
  else
    echo "chitram: the credential rotation had not reached PostgreSQL or MinIO yet: nothing to undo; the next up tries it again" >&2
  fi
}
