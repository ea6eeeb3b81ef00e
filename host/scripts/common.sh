#!/usr/bin/env bash
# Shared by backup.sh, restore.sh and prune-offsite.sh, sourced first: a PATH and HOME that cron
# and sudo may not give, SCRIPT_DIR, and HOST_ENV (../host.env next to the script, or
# CHITRAM_HOST_ENV). The functions use die, ERR_FILE, APP_DIR and a logging function of the caller.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME="${HOME:-/root}"
SCRIPT_DIR="$(dirname "$(readlink -f "$0")")"
# shellcheck disable=SC2034 # read by the scripts that source this file
HOST_ENV="${CHITRAM_HOST_ENV:-$SCRIPT_DIR/../host.env}"

compose() { docker compose --project-directory "$APP_DIR" -f "$APP_DIR/compose.yaml" "$@"; }

# The running containers of service $1 of this compose project, also one the compose file no longer
# has (by its labels: `compose ps` knows only the file's services).
running_in_project() {
  docker ps -q --filter "label=com.docker.compose.project.working_dir=$APP_DIR" \
    --filter "label=com.docker.compose.service=$1"
}

# Opens the release step's lock (RELEASE_LOCK from host.env) on fd 7, readable by the deploy user
# and root whichever makes it; the caller takes it with flock. Returns 1 on a host.env without it.
open_release_lock() {
  [[ -n ${RELEASE_LOCK:-} ]] || return 1
  [[ -e $RELEASE_LOCK ]] || (umask 022 && : >>"$RELEASE_LOCK") || die "cannot create $RELEASE_LOCK"
  exec 7<"$RELEASE_LOCK"
}

# Runs a PostgreSQL command ($@) against the app's database, stdin and stdout passed through: in
# the postgres container, or with a managed database (host.env's DATABASE=managed) in a one-off
# pgclient container, whose libpq settings (.env.postgres: PGHOST, PGSSLMODE=verify-full, the
# cluster's CA) reach the cluster. The commands name the database and user as "$POSTGRES_DB" and
# "$POSTGRES_USER", set in both containers.
# The one-off container is named after this process, so that a run stopped part-way (a timeout's
# TERM) leaves none behind: remove_pgclient, from the caller's cleanup.
pg() {
  if [[ ${DATABASE:-container} == managed ]]; then
    compose --profile tools run --rm -T --no-deps --name "chitram-pgclient-$$" pgclient "$@"
  else
    compose exec -T postgres "$@"
  fi
}

# The value of $2 in the environment of container $1 (read here, never printed).
container_env() {
  docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" | sed -n "s/^$2=//p" | head -n 1
}

# host.env names where the data is (DATABASE, OBJECTS) from the moment the files step pushed it;
# the running app uses it only once the release step has put it there, and a release that is
# abandoned leaves it on the other one. Until then a backup or a restore would use the wrong one
# (dump the empty cluster, archive stale MinIO data): die, naming the switch that has not gone
# live. What the app uses is read from its environment as the stack renders it: a managed
# database's URL ends in ?ssl=verify-full, the compose project's MinIO is minio:9000.
require_switch_live() {
  local id url endpoint now
  for id in $(running_in_project app); do
    url=$(container_env "$id" DATABASE_URL)
    endpoint=$(container_env "$id" MINIO_ENDPOINT)
    now=""
    if [[ ${DATABASE:-container} == managed && $url == *@postgres:5432/* ]]; then now="the postgres container"; fi
    if [[ ${DATABASE:-container} != managed && $url == *'?ssl=verify-full' ]]; then now="the managed database"; fi
    if [[ ${OBJECTS:-minio} == spaces && $endpoint == minio:9000 ]]; then now="MinIO on this host"; fi
    if [[ ${OBJECTS:-minio} != spaces && $endpoint == http*://* ]]; then now="the Spaces bucket"; fi
    [[ -z $now ]] ||
      die "host.env names DATABASE=${DATABASE:-container} OBJECTS=${OBJECTS:-minio}, but the running app still uses $now: the switch has not gone live (run pulumi up); nothing was done"
  done
}

remove_pgclient() { docker rm -f "chitram-pgclient-$$" >/dev/null 2>&1 || true; }

# Sets PG_CID to the running, healthy postgres container, or dies naming why not. With a managed
# database: that the cluster answers a query over TLS, as the app's user (PG_CID empty).
# Not `docker compose ps` text (retro #5) nor its JSON (its shape differs across compose
# versions): the container id, then docker inspect. A running container first; else -a, so that
# a stopped container reports its state. $1 is the caller's logging function.
require_running_postgres() {
  local note=$1 ids state pg_status pg_health waited
  if [[ ${DATABASE:-container} == managed ]]; then
    PG_CID=""
    # host.env names the cluster from the moment the files step pushed it; until the release step
    # has put the app on it, the project's postgres container still runs and holds the live data.
    pg psql -X -qtA -c 'SELECT 1' >/dev/null 2>"$ERR_FILE" ||
      die "the managed database does not answer (pgclient, $(sed -n 's/^PGHOST=//p' "$APP_DIR/.env.postgres" 2>/dev/null))"
    "$note" "the managed database answers over TLS"
    return 0
  fi
  ids="$(compose ps -q postgres 2>"$ERR_FILE")" || die "cannot list the postgres container (docker compose ps)"
  if [[ -z $ids ]]; then
    ids="$(compose ps -a -q postgres 2>"$ERR_FILE")" || die "cannot list the postgres container (docker compose ps -a)"
  fi
  PG_CID="${ids%%$'\n'*}"
  [[ -n $PG_CID ]] || die "no postgres container in compose project at $APP_DIR (is the stack up?)"
  # A container that was just (re)started reports health "starting": give it up to 60 s.
  for ((waited = 0; ; waited += 2)); do
    state="$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$PG_CID" 2>"$ERR_FILE")" ||
      die "cannot inspect postgres container $PG_CID"
    read -r pg_status pg_health <<<"$state"
    [[ $pg_status == running && $pg_health == starting && $waited -lt 60 ]] || break
    if ((waited == 0)); then "$note" "postgres health is 'starting'; waiting up to 60 s"; fi
    sleep 2
  done
  [[ $pg_status == running ]] || die "postgres container is not running (state: $pg_status)"
  [[ -z $pg_health || $pg_health == healthy ]] || die "postgres container is not healthy (health: $pg_health)"
}

# --- Off-box copies (OFFSITE_* from BACKUP_SECRETS, MC_IMAGE from host.env) ----------------------
# `mc` from the MinIO image, run as a container: the S3 client that is already on the host. The
# credentials reach it in an env file (MC_HOST_offsite), never on a command line. offsite_begin
# creates that file; the caller removes $OFFSITE_DIR when done.

offsite_begin() {
  local var
  for var in OFFSITE_ENDPOINT OFFSITE_BUCKET OFFSITE_ACCESS_KEY OFFSITE_SECRET_KEY MC_IMAGE; do
    [[ -n ${!var:-} ]] || die "off-box copies are on but $var is not set"
  done
  [[ $OFFSITE_ENDPOINT =~ ^https?://[A-Za-z0-9.:-]+$ ]] || die "OFFSITE_ENDPOINT is not http(s)://host[:port]"
  [[ $OFFSITE_BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "OFFSITE_BUCKET is not a bucket name"
  # mc reads the keys from MC_HOST_* as they are (it does not percent-decode them), so they go in
  # raw; S3 and Spaces keys are base64-like, and a key with a character that would end the URL's
  # user-info part is refused rather than sent.
  for var in OFFSITE_ACCESS_KEY OFFSITE_SECRET_KEY; do
    [[ ${!var} =~ ^[A-Za-z0-9+/=_.~-]+$ ]] || die "$var has a character other than A-Z a-z 0-9 + / = _ . ~ -"
  done
  OFFSITE_DIR="$(mktemp -d)"
  printf 'MC_HOST_offsite=%s://%s:%s@%s\n' "${OFFSITE_ENDPOINT%%://*}" "$OFFSITE_ACCESS_KEY" \
    "$OFFSITE_SECRET_KEY" "${OFFSITE_ENDPOINT#*://}" >"$OFFSITE_DIR/mc.env"
}

# mc <args>: BACKUP_DIR is mounted read-write at /backups. No -i: docker would read the caller's
# stdin (a `while read` loop's), and the loop would end after its first name.
mc() {
  docker run --rm --env-file "$OFFSITE_DIR/mc.env" -v "$BACKUP_DIR:/backups" --entrypoint mc "$MC_IMAGE" "$@"
}

# Uploads BACKUP_DIR/$1's file to the bucket under its name, reads it back and compares sha256.
# A copy that cannot be read back or differs is removed again: it never stays under its name.
offsite_put() {
  local name local_sum remote_sum
  name="$(basename "$1")"
  local_sum="$(sha256sum <"$1" | cut -d' ' -f1)"
  mc cp --quiet "/backups/$name" "offsite/$OFFSITE_BUCKET/$name" </dev/null >/dev/null 2>"$ERR_FILE" ||
    die "off-box upload of $name to $OFFSITE_ENDPOINT/$OFFSITE_BUCKET failed"
  if ! remote_sum="$(mc cat "offsite/$OFFSITE_BUCKET/$name" </dev/null 2>"$ERR_FILE" | sha256sum | cut -d' ' -f1)" ||
    [[ $remote_sum != "$local_sum" ]]; then
    mc rm --quiet "offsite/$OFFSITE_BUCKET/$name" </dev/null >/dev/null 2>&1 || true
    die "the off-box copy of $name does not read back as the local file (sha256 ${remote_sum:-unreadable}, expected $local_sum); it was removed again"
  fi
}

# The names on stdin that are files of a backup set, one a line.
backup_names() {
  grep -E '^((postgres-[0-9]{8}T[0-9]{6}Z\.dump)|(minio-[0-9]{8}T[0-9]{6}Z\.tar\.gz)|(manifest-[0-9]{8}T[0-9]{6}Z\.(data|empty)\.txt))$' || true
}

# The UTC stamp in a backup set's file name.
stamp_of() {
  local stamp=${1#*-}
  printf '%s\n' "${stamp%%.*}"
}

# The retention (backup.sh's header): of the set file names on stdin, prints those to delete: a
# stamp before the cutoff $1 (a UTC stamp), unless it is one of the newest $2 sets whose
# manifest says they hold data. An incomplete set (no manifest) goes by its age alone.
expired_names() {
  local cutoff=$1 keep=$2 name stamp
  local -a names good
  local -A kept=()
  mapfile -t names
  mapfile -t good < <(printf '%s\n' "${names[@]}" | sed -n 's/^manifest-\([0-9]\{8\}T[0-9]\{6\}Z\)\.data\.txt$/\1/p' | sort -r | head -n "$keep")
  for stamp in "${good[@]}"; do kept[$stamp]=1; done
  for name in "${names[@]}"; do
    [[ -n $name ]] || continue
    stamp="$(stamp_of "$name")"
    if [[ -z ${kept[$stamp]:-} && $stamp < $cutoff ]]; then printf '%s\n' "$name"; fi
  done
}

# The files of the backup sets in the bucket (mc ls prints the name last). Fails when the listing
# fails: an unreadable bucket must not look like an empty one.
offsite_list() {
  local listing
  listing="$(mc ls "offsite/$OFFSITE_BUCKET/" </dev/null)" || return 1
  awk '{print $NF}' <<<"$listing" | backup_names
}

# Applies the retention (expired_names) to the bucket: $1 cutoff stamp, $2 sets to keep, $3 the
# caller's logging function. Deletes only current copies (a delete marker in a versioned
# bucket). A key that may not delete (put-only) stops it with one line, not a failure: the
# pruner with its own key does it then.
offsite_prune() {
  local cutoff=$1 keep=$2 note=$3 remote name
  remote="$(offsite_list 2>"$ERR_FILE")" || die "cannot list $OFFSITE_ENDPOINT/$OFFSITE_BUCKET"
  while IFS= read -r name; do
    [[ -n $name ]] || continue
    if mc rm --quiet "offsite/$OFFSITE_BUCKET/$name" </dev/null >/dev/null 2>"$ERR_FILE"; then
      "$note" "off-box retention: deleted $name (older than the retention, not among the newest $keep sets with data; a versioned bucket keeps its version)"
    elif grep -qi 'access denied' "$ERR_FILE"; then
      "$note" "off-box retention: this key may not delete (a put-only key): $name and older stay until prune-offsite.sh runs with a key that may"
      return 0
    else
      die "off-box retention: cannot delete $name"
    fi
  done < <(expired_names "$cutoff" "$keep" <<<"$remote")
}

# The newest stamp with a "data" manifest among the set file names on stdin; empty if none.
newest_good_stamp() {
  sed -n 's/^manifest-\([0-9]\{8\}T[0-9]\{6\}Z\)\.data\.txt$/\1/p' | sort | tail -n 1
}
