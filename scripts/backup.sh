#!/usr/bin/env bash
# Backs up the chitram host: a `pg_dump -Fc` of PostgreSQL and a tar.gz of the MinIO data dir,
# into BACKUP_DIR as postgres-<UTC stamp>.dump and minio-<UTC stamp>.tar.gz, then deletes
# backups older than BACKUP_RETENTION_DAYS (never the newest of each kind).
#
# Run as root by /etc/cron.d/chitram-backup, or by hand: sudo /opt/chitram/scripts/backup.sh
# Settings come from ../host.env next to this script (docs/HOST-LAYOUT.md); CHITRAM_HOST_ENV
# points at another host.env (tests use it for a throw-away layout).
#
# Guarantees: every file is written under a temporary name and renamed only once it is complete
# and checked, so a failed run leaves no partial file and never touches earlier backups; a lock
# in BACKUP_DIR stops two runs (or a run and restore.sh) overlapping; any failure exits non-zero
# and says why, on stderr and in BACKUP_LOG.
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

stamp_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

log() {
  local line
  line="$(stamp_now) backup[$$]: $*"
  printf '%s\n' "$line"
  if ((LOG_READY)); then printf '%s\n' "$line" >>"$BACKUP_LOG" || true; fi
}

err() {
  local line
  line="$(stamp_now) backup[$$]: ERROR: $*"
  printf '%s\n' "$line" >&2
  if ((LOG_READY)); then printf '%s\n' "$line" >>"$BACKUP_LOG" || true; fi
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
  if ((rc != 0)); then err "backup FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
# Without these, a signal would kill bash without running the EXIT trap.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

[[ -r $HOST_ENV ]] || die "cannot read $HOST_ENV"
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program onto the host
. "$HOST_ENV"
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
DUMP="$BACKUP_DIR/postgres-$STAMP.dump"
# ln (not mv) fails instead of replacing a file of the same name.
ln -- "$TMP_DUMP" "$DUMP" 2>"$ERR_FILE" || die "cannot publish $DUMP"
rm -f -- "$TMP_DUMP"
TMP_DUMP=""
log "postgres: $DUMP ($(stat -c %s "$DUMP") bytes, $entries TOC entries)"

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
TARBALL="$BACKUP_DIR/minio-$STAMP.tar.gz"
ln -- "$TMP_TAR" "$TARBALL" 2>"$ERR_FILE" || die "cannot publish $TARBALL"
rm -f -- "$TMP_TAR"
TMP_TAR=""
log "minio: $TARBALL ($(stat -c %s "$TARBALL") bytes)"

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

log "backup $STAMP done"
