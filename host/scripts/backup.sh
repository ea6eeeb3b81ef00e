#!/usr/bin/env bash
# Backs up the chitram host: one backup SET per run, named by its UTC stamp S, in BACKUP_DIR:
#   postgres-S.dump      pg_dump -Fc of POSTGRES_DB
#   minio-S.tar.gz       the MinIO data dir
#   manifest-S.data.txt  (or manifest-S.empty.txt) written LAST: both files' sha256 and size, and
#                        what the host held: "data" when PostgreSQL has a table with a row (but
#                        alembic_version) or MinIO an object (under no key starting with a dot),
#                        "empty" when it has neither (a host rebuilt and not restored yet)
# A set without a manifest is incomplete and is never restored from.
# With the objects in a Spaces bucket (host.env's OBJECTS=spaces) there is no MinIO on the host: a
# set is the dump and its manifest alone, and the bucket's versions keep the objects
# (docs/RUNBOOK.md, "Recover a deleted object"). With a managed database (DATABASE=managed) the
# dump is of the cluster, through the pgclient service (common.sh, pg).
#
# Run as root by /etc/cron.d/chitram-backup, or by hand: sudo /opt/chitram/scripts/backup.sh
# Settings come from ../host.env next to this script (docs/HOST-LAYOUT.md); CHITRAM_HOST_ENV
# points at another host.env (tests use it for a throw-away layout).
#
# Guarantees:
# - The pair is consistent: MinIO is paused (its requests wait, they do not fail) from before the
#   dump until the archive is written, so no row of the dump points at an object the archive
#   lacks; tar must finish without "file changed as we read it".
# - It never fills the disk the live data is on: before anything is written, the set's size
#   (the database's and the MinIO data's) plus BACKUP_MIN_FREE_MB must be free in BACKUP_DIR;
#   else the run fails, says how much is missing and writes nothing. It never makes room by
#   deleting a good set.
# - Files are written under temporary names and published (linked to their final names) only
#   once all are complete and checked; a failed run publishes nothing and never touches earlier
#   sets. A lock in BACKUP_DIR stops two runs (or a run and restore.sh) overlapping.
# - Retention, here and off the box: a set older than BACKUP_RETENTION_DAYS is deleted, except
#   the newest BACKUP_KEEP_GOOD sets marked "data", whatever their age. So a host that is empty
#   (rebuilt, not yet restored) never pushes the last good sets out, and a backup that stopped
#   leaves the last good sets where they are.
# - Any failure exits non-zero and says why, on stderr and in BACKUP_LOG; every run ends with a
#   line giving its exit status.
#
# Off-box copies: when BACKUP_SECRETS sets OFFSITE_BUCKET (and its endpoint and keys), the set is
# uploaded with mc (common.sh): each file is read back and compared by sha256 (a copy that differs
# is removed again), and the manifest goes last. The bucket keeps versions: the retention's
# deletions only hide a set (a delete marker), and nothing here ever deletes a version. With a
# put-only key (the host may not delete at all) the retention is skipped here and done by
# prune-offsite.sh, run off the host with a key of its own.
#
# Heartbeat: when BACKUP_SECRETS sets BACKUP_HEARTBEAT_URL, the run pings it on success and
# <url>/fail on failure (healthchecks.io convention), with the run's log as the body. The URL goes
# to curl on stdin, never on its command line. A run that dies before it can read its settings
# pings nothing: the heartbeat service then alerts on the missing ping.
set -euo pipefail

# cron gives PATH=/usr/bin:/bin and no HOME; docker may live in /usr/local/bin (common.sh sets both).
# shellcheck disable=SC1091 # common.sh sits beside this script and is checked on its own
. "$(dirname "$(readlink -f "$0")")/common.sh"
umask 077 # dumps hold every row of the database
LOG_READY=0
ERR_FILE=""
TMP_FILES=()
RUN_LOG=""
BACKUP_HEARTBEAT_URL=""
OFFSITE_BUCKET=""
OFFSITE_DIR=""
PAUSED_MINIO=""
STAMP=""

stamp_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

log() {
  local line
  line="$(stamp_now) backup[$$]: $*"
  printf '%s\n' "$line"
  if ((LOG_READY)); then printf '%s\n' "$line" >>"$BACKUP_LOG" || true; fi
  if [[ -n $RUN_LOG ]]; then printf '%s\n' "$line" >>"$RUN_LOG" || true; fi
}

err() {
  local line
  line="$(stamp_now) backup[$$]: ERROR: $*"
  printf '%s\n' "$line" >&2
  if ((LOG_READY)); then printf '%s\n' "$line" >>"$BACKUP_LOG" || true; fi
  if [[ -n $RUN_LOG ]]; then printf '%s\n' "$line" >>"$RUN_LOG" || true; fi
}

# Pings the heartbeat URL with suffix $1 ("" or "/fail"), the run's log as the body. A failed
# ping is logged; it never changes the run's exit status.
heartbeat() {
  local suffix=$1 out
  [[ -n $BACKUP_HEARTBEAT_URL ]] || return 0
  # The body is read from RUN_LOG as it is: on a full disk there may be no room for a copy.
  if out="$(printf 'url = "%s%s"\n' "$BACKUP_HEARTBEAT_URL" "$suffix" |
    curl -fsS -o /dev/null -m 10 --retry 2 --retry-connrefused \
      --data-binary "@${RUN_LOG:-/dev/null}" --config - 2>&1)"; then
    log "heartbeat: pinged ${suffix:-success}"
  else
    log "WARNING: heartbeat ping (${suffix:-success}) failed: ${out//$'\n'/ }"
  fi
}

# Logs the captured stderr of the last command (if any), indented, then exits 1.
die() {
  err "$*"
  if [[ -n $ERR_FILE && -s $ERR_FILE ]]; then
    local l
    while IFS= read -r l; do err "  | $l"; done < <(tail -n 20 "$ERR_FILE")
  fi
  exit 1
}

# Docker reports a container as unhealthy from a pause until its next health probe, and a
# release (`compose up --wait`) or a monitor would take that for a failure: the run ends only
# once MinIO is healthy again (at most HEALTH_SETTLE_SECONDS, two probes).
HEALTH_SETTLE_SECONDS=30
# How long a run waits for a release to end: the longest release step (58 minutes, with
# releaseTimeoutSeconds 1800) and the 330 s between its TERM and its KILL (test/program.test.ts).
RELEASE_WAIT_SECONDS=3900
UNPAUSE_FAILED=0
unpause_minio() {
  local id=$PAUSED_MINIO deadline=$((SECONDS + HEALTH_SETTLE_SECONDS))
  [[ -n $id ]] || return 0
  PAUSED_MINIO=""
  UNPAUSED_AT=$SECONDS
  if ! docker unpause "$id" >/dev/null 2>&1; then
    UNPAUSE_FAILED=1
    err "could not unpause MinIO ($id): docker unpause $id"
    return 0
  fi
  until [[ $(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id" 2>/dev/null) == healthy ]]; do
    if ((SECONDS >= deadline)); then
      err "MinIO is not healthy ${HEALTH_SETTLE_SECONDS}s after the pause: docker compose -f $APP_DIR/compose.yaml logs minio"
      return 0
    fi
    sleep 1
  done
}

# The backup status file Caddy serves to the backup uptime check: renewed by each run that
# succeeds, removed by a run that fails (the check goes down at once; the cron sweep removes it
# when no run succeeded for backupAlertAfterHours).
backup_status() {
  [[ -n ${BACKUP_STATUS_FILE:-} ]] || return 0
  if [[ $1 == ok ]]; then
    if ! { install -d -m 0755 "$(dirname "$BACKUP_STATUS_FILE")" &&
      printf 'last good backup run %s\n' "$STAMP" >"$BACKUP_STATUS_FILE.tmp" &&
      chmod 0644 "$BACKUP_STATUS_FILE.tmp" && mv -f "$BACKUP_STATUS_FILE.tmp" "$BACKUP_STATUS_FILE"; }; then
      err "cannot renew the backup status file $BACKUP_STATUS_FILE"
    fi
  else
    rm -f -- "$BACKUP_STATUS_FILE" || err "cannot remove the backup status file $BACKUP_STATUS_FILE"
  fi
}

cleanup() {
  local rc=$? f
  unpause_minio
  if [[ ${DATABASE:-container} == managed ]]; then remove_pgclient; fi
  for f in "${TMP_FILES[@]}"; do rm -f -- "$f"; done
  if [[ -n $ERR_FILE ]]; then rm -f -- "$ERR_FILE"; fi
  if [[ -n $OFFSITE_DIR ]]; then rm -rf -- "$OFFSITE_DIR"; fi
  if ((rc != 0)); then
    err "backup FAILED (exit $rc)"
    backup_status failed
    heartbeat /fail
  else
    log "backup finished (exit 0)"
    backup_status ok
    heartbeat ""
  fi
  if [[ -n $RUN_LOG ]]; then rm -f -- "$RUN_LOG"; fi
  exit "$rc"
}
trap cleanup EXIT
# Without these, a signal would kill bash without running the EXIT trap (and MinIO would stay paused).
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

RUN_LOG="$(mktemp)"
[[ -r $HOST_ENV ]] || die "cannot read $HOST_ENV"
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program onto the host
. "$HOST_ENV"
if [[ -n ${BACKUP_SECRETS:-} && -e $BACKUP_SECRETS ]]; then
  [[ -r $BACKUP_SECRETS ]] || die "cannot read $BACKUP_SECRETS (run as root)"
  # shellcheck source=/dev/null # rendered (values checked and quoted) by the Pulumi program
  . "$BACKUP_SECRETS"
fi
if [[ -n $BACKUP_HEARTBEAT_URL && ! $BACKUP_HEARTBEAT_URL =~ ^https?://[^[:space:]\"\\]+$ ]]; then
  BACKUP_HEARTBEAT_URL=""
  die "BACKUP_HEARTBEAT_URL in $BACKUP_SECRETS is not an http(s) URL without spaces, quotes or backslashes"
fi
for var in APP_DIR DATA_DIR BACKUP_DIR BACKUP_RETENTION_DAYS BACKUP_KEEP_GOOD BACKUP_MIN_FREE_MB BACKUP_LOG; do
  [[ -n ${!var:-} ]] || die "$HOST_ENV does not set $var"
done
for var in BACKUP_RETENTION_DAYS BACKUP_KEEP_GOOD BACKUP_MIN_FREE_MB; do
  [[ ${!var} =~ ^[0-9]+$ ]] || die "$var must be a whole number, got '${!var}'"
done
((BACKUP_KEEP_GOOD >= 1)) || die "BACKUP_KEEP_GOOD must be at least 1"

if [[ ! -e $BACKUP_LOG ]]; then
  install -m 0640 /dev/null "$BACKUP_LOG" 2>/dev/null || die "cannot create $BACKUP_LOG (run as root)"
fi
[[ -w $BACKUP_LOG ]] || die "cannot write $BACKUP_LOG (run as root)"
LOG_READY=1

if [[ ! -d $BACKUP_DIR ]]; then
  # umask 077 already makes it 0700; chmod says so explicitly.
  mkdir -p "$BACKUP_DIR" || die "cannot create $BACKUP_DIR"
  chmod 0700 "$BACKUP_DIR"
fi

exec 9>>"$BACKUP_DIR/.lock" || die "cannot open lock file $BACKUP_DIR/.lock"
flock -n 9 || die "another backup or restore holds $BACKUP_DIR/.lock; not starting a second one"

# Temp files of a run that was killed (SIGKILL, power loss): we hold the lock, so nothing else
# is writing them.
find "$BACKUP_DIR" -maxdepth 1 -type f -name '.*.tmp' -print -delete |
  while IFS= read -r f; do log "removed leftover temp file $f"; done

ERR_FILE="$(mktemp)"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
log "starting backup $STAMP (APP_DIR=$APP_DIR, BACKUP_DIR=$BACKUP_DIR)"

command -v docker >/dev/null || die "docker not found in $PATH"

# --- Retention -----------------------------------------------------------------------------------
# Before the new set is written (what goes makes room for it) and never the newest good sets: the
# set names to delete, by the rule in common.sh, from the names present.
local_names() {
  find "$BACKUP_DIR" -maxdepth 1 -type f -printf '%f\n' | backup_names
}
cutoff="$(date -u -d "-$BACKUP_RETENTION_DAYS days" +%Y%m%dT%H%M%SZ)"
while IFS= read -r name; do
  [[ -n $name ]] || continue
  rm -f -- "${BACKUP_DIR:?}/$name" 2>"$ERR_FILE" || die "retention: cannot delete $name"
  log "retention: deleted $name (older than $BACKUP_RETENTION_DAYS days, not among the newest $BACKUP_KEEP_GOOD sets with data)"
done < <(local_names | expired_names "$cutoff" "$BACKUP_KEEP_GOOD")

# --- Not during a release ------------------------------------------------------------------------
# A release needs MinIO answering, and may recreate PostgreSQL or MinIO: the release step holds
# RELEASE_LOCK for its whole run, and this run holds it from before it looks up the containers
# until the dump has been read back (a release waits for it in turn).
if open_release_lock; then
  if ! flock -n 7; then
    log "a release is running: MinIO is paused only once it has ended (waiting up to ${RELEASE_WAIT_SECONDS}s)"
    flock -w "$RELEASE_WAIT_SECONDS" 7 ||
      die "a release has held $RELEASE_LOCK for ${RELEASE_WAIT_SECONDS}s: no backup was taken; the next scheduled run tries again"
  fi
fi

# --- What host.env names is what the app uses (not half-way through a switch) -------------------
require_switch_live

# --- PostgreSQL and MinIO must be running (and healthy when they have a healthcheck) -------------
# Not `docker compose ps` text (retro #5) nor its JSON (shape differs across compose versions):
# the container id, then docker inspect.
require_running_postgres log
MINIO_DIR=""
MINIO_CID=""
if [[ ${OBJECTS:-minio} == spaces ]]; then
  log "the objects are in Spaces (OBJECTS=spaces): the set is the PostgreSQL dump alone"
else
  MINIO_DIR="$DATA_DIR/minio"
  [[ -d $MINIO_DIR ]] || die "MinIO data dir $MINIO_DIR does not exist"
  MINIO_CID="$(compose ps -q minio 2>"$ERR_FILE")" || die "cannot list the minio container (docker compose ps)"
  [[ -n $MINIO_CID ]] || die "the minio container is not running: the archive could not be consistent with the dump"
fi
# A run killed while MinIO was paused (SIGKILL, the OOM killer) left it so; this run holds the
# backup lock, so no other run paused it.
if [[ -n $MINIO_CID && $(docker inspect -f '{{.State.Paused}}' "$MINIO_CID" 2>"$ERR_FILE") == true ]]; then
  log "MinIO was left paused, by a run killed part-way: unpausing it"
  PAUSED_MINIO=$MINIO_CID
  unpause_minio
  ((UNPAUSE_FAILED == 0)) || die "MinIO is paused and could not be unpaused: docker unpause $MINIO_CID"
fi

# --- Free space ----------------------------------------------------------------------------------
# shellcheck disable=SC2016 # expanded by sh inside the container
db_bytes="$(pg sh -c 'psql -X -qtA -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "SELECT pg_database_size(current_database())"' 2>"$ERR_FILE")" ||
  die "cannot read the database's size"
minio_bytes=0
if [[ -n $MINIO_DIR ]]; then
  minio_bytes="$(du -sb "$MINIO_DIR" 2>"$ERR_FILE" | cut -f1)" || die "cannot measure $MINIO_DIR"
fi
need_mb=$(((db_bytes + minio_bytes) / 1048576 + 1))
free_mb=$(($(df --output=avail -B1 "$BACKUP_DIR" | tail -n 1) / 1048576))
if ((free_mb < need_mb + BACKUP_MIN_FREE_MB)); then
  die "not enough free space in $BACKUP_DIR: the backup needs about $need_mb MB and $BACKUP_MIN_FREE_MB MB must stay free for the live data, but $free_mb MB are free. Nothing was written; the newest good backups are kept. Grow the disk or volume (docs/RUNBOOK.md, \"Grow the volume\"), or lower backupRetentionDays."
fi
log "free space: $free_mb MB in $BACKUP_DIR, the backup needs about $need_mb MB (+ $BACKUP_MIN_FREE_MB MB kept free)"

# --- The pair: PostgreSQL dump and MinIO archive, with MinIO paused ------------------------------
# Temp names start with a dot and end in .tmp: they never match the set's names.
TMP_DUMP="$(mktemp "$BACKUP_DIR/.postgres-$STAMP.XXXXXX.tmp")"
TMP_TAR=""
if [[ -n $MINIO_DIR ]]; then TMP_TAR="$(mktemp "$BACKUP_DIR/.minio-$STAMP.XXXXXX.tmp")"; fi
TMP_MANIFEST="$(mktemp "$BACKUP_DIR/.manifest-$STAMP.XXXXXX.tmp")"
TMP_FILES=("$TMP_DUMP" ${TMP_TAR:+"$TMP_TAR"} "$TMP_MANIFEST")
if [[ -n $MINIO_CID ]]; then
  docker pause "$MINIO_CID" >/dev/null 2>"$ERR_FILE" || die "cannot pause MinIO for a consistent pair"
  PAUSED_MINIO=$MINIO_CID
fi
paused_at=$SECONDS
# What the host holds, in the same frozen state: tables with at least one row (an exact check,
# not the statistics; a migration tool's bookkeeping table does not count), and objects (files
# under no directory whose name starts with a dot: MinIO's own .minio.sys, and health probes
# that write under a key such as .health/...).
# shellcheck disable=SC2016 # expanded by sh inside the container
tables="$(pg sh -c 'psql -X -qtA -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB"' 2>"$ERR_FILE" <<'SQL'
SELECT format('SELECT 1 FROM %I.%I LIMIT 1', schemaname, relname) FROM pg_stat_user_tables
  WHERE relname <> 'alembic_version' \gexec
SQL
)" || die "cannot count the tables that hold rows"
tables="$(grep -c '^1$' <<<"$tables" || true)"
objects=0
if [[ -n $MINIO_DIR ]]; then
  objects="$(find "$MINIO_DIR" -mindepth 1 -name '.*' -prune -o -type f -print 2>"$ERR_FILE" | wc -l)"
fi
# shellcheck disable=SC2016 # $POSTGRES_USER/$POSTGRES_DB are expanded by sh inside the container
pg sh -c 'pg_dump -U "$POSTGRES_USER" -Fc "$POSTGRES_DB"' >"$TMP_DUMP" 2>"$ERR_FILE" ||
  die "pg_dump failed"
if [[ -n $MINIO_DIR ]]; then
  tar -C "$MINIO_DIR" -czf "$TMP_TAR" . 2>"$ERR_FILE" ||
    die "tar of $MINIO_DIR failed (exit $?; 1 is a file changed while it was read): the archive would not match the dump"
  unpause_minio
  ((UNPAUSE_FAILED == 0)) || die "MinIO could not be unpaused after the dump and the archive: docker unpause $MINIO_CID"
  log "MinIO was paused for $((UNPAUSED_AT - paused_at)) s while the dump and the archive were taken, and healthy again $((SECONDS - UNPAUSED_AT)) s later"
fi
[[ -s $TMP_DUMP ]] || die "pg_dump produced an empty file"
toc="$(pg pg_restore -l <"$TMP_DUMP" 2>"$ERR_FILE")" ||
  die "pg_restore -l cannot read the new dump"
entries="$(grep -cv '^;' <<<"$toc" || true)"
if [[ -n ${RELEASE_LOCK:-} ]]; then flock -u 7; fi
if [[ -n $TMP_TAR ]]; then
  tar -tzf "$TMP_TAR" >/dev/null 2>"$ERR_FILE" || die "the new MinIO archive does not read back"
  sync -- "$TMP_TAR"
fi
sync -- "$TMP_DUMP"
archived="none (the objects are in Spaces)"
if [[ -n $TMP_TAR ]]; then archived="archive complete ($(stat -c %s "$TMP_TAR") bytes)"; fi
log "postgres: dump complete ($(stat -c %s "$TMP_DUMP") bytes, $entries TOC entries); minio: $archived"

kind=empty
if ((tables > 0 || objects > 0)); then kind=data; fi
{
  printf 'stamp=%s\n' "$STAMP"
  printf 'postgres=%s %s\n' "$(sha256sum <"$TMP_DUMP" | cut -d' ' -f1)" "$(stat -c %s "$TMP_DUMP")"
  if [[ -n $TMP_TAR ]]; then printf 'minio=%s %s\n' "$(sha256sum <"$TMP_TAR" | cut -d' ' -f1)" "$(stat -c %s "$TMP_TAR")"; fi
  printf 'tables_with_rows=%s\nobjects=%s\nholds=%s\n' "$tables" "$objects" "$kind"
} >"$TMP_MANIFEST"
sync -- "$TMP_MANIFEST"

# --- Publish -------------------------------------------------------------------------------------
# All three are complete: link them to their final names, the manifest last. ln (not mv) fails
# instead of replacing a file of the same name; a link takes no space, so a full disk cannot stop
# it half-way.
DUMP="$BACKUP_DIR/postgres-$STAMP.dump"
TARBALL=""
if [[ -n $TMP_TAR ]]; then TARBALL="$BACKUP_DIR/minio-$STAMP.tar.gz"; fi
MANIFEST="$BACKUP_DIR/manifest-$STAMP.$kind.txt"
ln -- "$TMP_DUMP" "$DUMP" 2>"$ERR_FILE" || die "cannot publish $DUMP"
if [[ -n $TARBALL ]] && ! ln -- "$TMP_TAR" "$TARBALL" 2>"$ERR_FILE"; then
  rm -f -- "$DUMP"
  die "cannot publish $TARBALL"
fi
ln -- "$TMP_MANIFEST" "$MANIFEST" 2>"$ERR_FILE" || {
  rm -f -- "$DUMP" ${TARBALL:+"$TARBALL"}
  die "cannot publish $MANIFEST"
}
rm -f -- "${TMP_FILES[@]}"
TMP_FILES=()
log "published set $STAMP ($kind: $tables table(s) with rows, $objects object file(s)): $DUMP, ${TARBALL:+$TARBALL, }$MANIFEST"
if [[ $kind == empty ]]; then
  log "WARNING: this host holds no data (a new host not restored yet?): the set does not count as a good backup, and the retention keeps the newest $BACKUP_KEEP_GOOD sets that do"
fi

# --- Off-box copies ------------------------------------------------------------------------------
if [[ -n $OFFSITE_BUCKET ]]; then
  offsite_begin
  for f in "$DUMP" ${TARBALL:+"$TARBALL"} "$MANIFEST"; do
    offsite_put "$f"
    log "off-box: $OFFSITE_ENDPOINT/$OFFSITE_BUCKET/$(basename "$f") uploaded and read back ($(stat -c %s "$f") bytes)"
  done
  offsite_prune "$cutoff" "$BACKUP_KEEP_GOOD" log
fi

log "backup $STAMP done"
