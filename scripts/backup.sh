#!/usr/bin/env bash
# Backs up the chitram host: a `pg_dump -Fc` of PostgreSQL and a tar.gz of the MinIO data dir,
# into BACKUP_DIR as postgres-<UTC stamp>.dump and minio-<UTC stamp>.tar.gz, then deletes
# backups older than BACKUP_RETENTION_DAYS (never the newest of each kind).
#
# Run as root by /etc/cron.d/chitram-backup, or by hand: sudo /opt/chitram/scripts/backup.sh
# Settings come from ../host.env next to this script (docs/HOST-LAYOUT.md); CHITRAM_HOST_ENV
# points at another host.env (tests use it for a throw-away layout).
#
# Guarantees: every file is written under a temporary name, and the run's files are published
# (linked to their final names) only once all of them are complete and checked, so a failed run
# (a full disk, a stopped container) publishes nothing and never touches earlier backups; a lock
# in BACKUP_DIR stops two runs (or a run and restore.sh) overlapping; any failure exits non-zero
# and says why, on stderr and in BACKUP_LOG; every run ends with a line giving its exit status.
#
# Off-box copies: when BACKUP_SECRETS sets OFFSITE_BUCKET (and its endpoint and keys), both files
# are also uploaded with mc (common.sh), read back and compared by sha256, and the bucket is pruned
# by the same rule as BACKUP_DIR. A failed upload or check fails the run; the local backup stays.
#
# Heartbeat: when BACKUP_SECRETS (a root-only file named in host.env) sets BACKUP_HEARTBEAT_URL,
# the run pings it on success and <url>/fail on failure (healthchecks.io convention), with the
# run's log as the body. The URL goes to curl on stdin, never on its command line (a URL path
# can be a token, and command lines are visible to every user). A run that dies before it can
# read its settings pings nothing: the heartbeat service then alerts on the missing ping.
set -euo pipefail

# cron gives PATH=/usr/bin:/bin and no HOME; docker may live in /usr/local/bin.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME="${HOME:-/root}"
umask 077 # dumps hold every row of the database

SCRIPT_DIR="$(dirname "$(readlink -f "$0")")"
HOST_ENV="${CHITRAM_HOST_ENV:-$SCRIPT_DIR/../host.env}"
LOG_READY=0
ERR_FILE=""
TMP_DUMP=""
TMP_TAR=""
RUN_LOG=""
BACKUP_HEARTBEAT_URL=""
OFFSITE_BUCKET=""
OFFSITE_DIR=""

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

# Pings the heartbeat URL with suffix $1 ("" or "/fail"), the run's log as the body. A failed ping is logged; it never changes the run's exit status.
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

cleanup() {
  local rc=$?
  if [[ -n $TMP_DUMP ]]; then rm -f -- "$TMP_DUMP"; fi
  if [[ -n $TMP_TAR ]]; then rm -f -- "$TMP_TAR"; fi
  if [[ -n $ERR_FILE ]]; then rm -f -- "$ERR_FILE"; fi
  if [[ -n $OFFSITE_DIR ]]; then rm -rf -- "$OFFSITE_DIR"; fi
  if ((rc != 0)); then
    err "backup FAILED (exit $rc)"
    heartbeat /fail
  else
    log "backup finished (exit 0)"
    heartbeat ""
  fi
  if [[ -n $RUN_LOG ]]; then rm -f -- "$RUN_LOG"; fi
  exit "$rc"
}
trap cleanup EXIT
# Without these, a signal would kill bash without running the EXIT trap.
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
for var in APP_DIR DATA_DIR BACKUP_DIR BACKUP_RETENTION_DAYS BACKUP_LOG; do
  [[ -n ${!var:-} ]] || die "$HOST_ENV does not set $var"
done
[[ $BACKUP_RETENTION_DAYS =~ ^[0-9]+$ ]] ||
  die "BACKUP_RETENTION_DAYS must be a whole number of days, got '$BACKUP_RETENTION_DAYS'"

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
# shellcheck disable=SC1091 # common.sh sits beside this script and is checked on its own
. "$SCRIPT_DIR/common.sh"

# --- PostgreSQL must be running (and healthy when it has a healthcheck) -------------------------
# Not `docker compose ps` text (retro #5) nor its JSON (shape differs across compose versions):
# the container id, then docker inspect. A running container first; else -a, so that a stopped
# container reports its state.
require_running_postgres log

# --- PostgreSQL dump -----------------------------------------------------------------------------
# Temp names start with a dot and end in .tmp: they never match postgres-*.dump / minio-*.tar.gz.
TMP_DUMP="$(mktemp "$BACKUP_DIR/.postgres-$STAMP.XXXXXX.tmp")"
# shellcheck disable=SC2016 # $POSTGRES_USER/$POSTGRES_DB are expanded by sh inside the container
compose exec -T postgres sh -c 'pg_dump -U "$POSTGRES_USER" -Fc "$POSTGRES_DB"' >"$TMP_DUMP" 2>"$ERR_FILE" ||
  die "pg_dump failed"
[[ -s $TMP_DUMP ]] || die "pg_dump produced an empty file"
toc="$(compose exec -T postgres pg_restore -l <"$TMP_DUMP" 2>"$ERR_FILE")" ||
  die "pg_restore -l cannot read the new dump"
entries="$(grep -cv '^;' <<<"$toc" || true)"
sync -- "$TMP_DUMP"
log "postgres: dump complete ($(stat -c %s "$TMP_DUMP") bytes, $entries TOC entries)"

# --- MinIO data ----------------------------------------------------------------------------------
MINIO_DIR="$DATA_DIR/minio"
[[ -d $MINIO_DIR ]] || die "MinIO data dir $MINIO_DIR does not exist"
TMP_TAR="$(mktemp "$BACKUP_DIR/.minio-$STAMP.XXXXXX.tmp")"
if tar -C "$MINIO_DIR" -czf "$TMP_TAR" . 2>"$ERR_FILE"; then
  tar_rc=0
else
  tar_rc=$?
fi
if ((tar_rc == 1)); then
  # GNU tar: 1 = some file changed while it was read (MinIO kept writing); the archive is
  # complete and readable, the changed objects may not be consistent.
  log "WARNING: tar reported files changed while archiving $MINIO_DIR:"
  while IFS= read -r l; do log "  | $l"; done < <(tail -n 20 "$ERR_FILE")
elif ((tar_rc != 0)); then
  die "tar of $MINIO_DIR failed (exit $tar_rc)"
fi
tar -tzf "$TMP_TAR" >/dev/null 2>"$ERR_FILE" || die "the new MinIO archive does not read back"
sync -- "$TMP_TAR"

# --- Publish -------------------------------------------------------------------------------------
# Both files are complete: link them to their final names. ln (not mv) fails instead of replacing
# a file of the same name; a link takes no space, so a full disk cannot stop it half-way.
DUMP="$BACKUP_DIR/postgres-$STAMP.dump"
TARBALL="$BACKUP_DIR/minio-$STAMP.tar.gz"
ln -- "$TMP_DUMP" "$DUMP" 2>"$ERR_FILE" || die "cannot publish $DUMP"
if ! ln -- "$TMP_TAR" "$TARBALL" 2>"$ERR_FILE"; then
  rm -f -- "$DUMP"
  die "cannot publish $TARBALL"
fi
rm -f -- "$TMP_DUMP" "$TMP_TAR"
TMP_DUMP=""
TMP_TAR=""
log "published $DUMP ($(stat -c %s "$DUMP") bytes) and $TARBALL ($(stat -c %s "$TARBALL") bytes)"

# --- Retention -----------------------------------------------------------------------------------
# Older than N days, to the minute (find -mtime +N would round down to whole days, keeping
# files up to N+1 days old). The newest file of each kind is always kept.
prune() {
  local pattern=$1 newest deleted f
  newest="$(find "$BACKUP_DIR" -maxdepth 1 -type f -name "$pattern" -printf '%T@ %f\n' |
    sort -n | tail -n 1 | cut -d' ' -f2-)"
  [[ -n $newest ]] || return 0
  deleted="$(find "$BACKUP_DIR" -maxdepth 1 -type f -name "$pattern" ! -name "$newest" \
    -mmin "+$((BACKUP_RETENTION_DAYS * 1440))" -print -delete 2>"$ERR_FILE")" ||
    die "retention: cannot delete old $pattern files"
  while IFS= read -r f; do
    if [[ -n $f ]]; then log "retention: deleted $f (older than $BACKUP_RETENTION_DAYS days)"; fi
  done <<<"$deleted"
}
prune 'postgres-*.dump'
prune 'minio-*.tar.gz'

# --- Off-box copies ------------------------------------------------------------------------------
if [[ -n $OFFSITE_BUCKET ]]; then
  offsite_begin
  for f in "$DUMP" "$TARBALL"; do
    name="$(basename "$f")"
    local_sum="$(sha256sum <"$f" | cut -d' ' -f1)"
    mc cp --quiet "/backups/$name" "offsite/$OFFSITE_BUCKET/$name" >/dev/null 2>"$ERR_FILE" ||
      die "off-box upload of $name to $OFFSITE_ENDPOINT/$OFFSITE_BUCKET failed"
    remote_sum="$(mc cat "offsite/$OFFSITE_BUCKET/$name" 2>"$ERR_FILE" | sha256sum | cut -d' ' -f1)" ||
      die "cannot read back the off-box copy of $name"
    [[ $remote_sum == "$local_sum" ]] ||
      die "the off-box copy of $name differs from the local file (sha256 $remote_sum, expected $local_sum)"
    log "off-box: $OFFSITE_ENDPOINT/$OFFSITE_BUCKET/$name uploaded and read back ($(stat -c %s "$f") bytes, sha256 $local_sum)"
  done
  # Same rule as above, by the UTC stamp in the names: older than N days goes, the newest of each
  # kind stays.
  remote="$(offsite_list 2>"$ERR_FILE")" || die "cannot list $OFFSITE_ENDPOINT/$OFFSITE_BUCKET"
  cutoff="$(date -u -d "-$BACKUP_RETENTION_DAYS days" +%Y%m%dT%H%M%SZ)"
  for kind in postgres minio; do
    newest="$(grep "^$kind-" <<<"$remote" | sort | tail -n 1 || true)"
    while IFS= read -r name; do
      [[ -n $name && $name != "$newest" ]] || continue
      stamp="${name#"$kind"-}"
      stamp="${stamp%%.*}"
      if [[ $stamp < $cutoff ]]; then
        mc rm "offsite/$OFFSITE_BUCKET/$name" >/dev/null 2>"$ERR_FILE" || die "off-box retention: cannot delete $name"
        log "off-box retention: deleted $name (older than $BACKUP_RETENTION_DAYS days)"
      fi
    done < <(grep "^$kind-" <<<"$remote" || true)
  done
fi

log "backup $STAMP done"
