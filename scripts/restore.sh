#!/usr/bin/env bash
# Restores a backup made by backup.sh.
#
#   restore.sh <postgres-dump|latest> [--minio <minio-tar.gz|latest>]
#   restore.sh --offsite <postgres-dump|latest> [--minio <minio-tar.gz|latest>]
#
# --offsite: the names are those of the off-box copies (BACKUP_SECRETS' bucket; `latest` = the
# newest there). They are downloaded into BACKUP_DIR first (checked, then renamed into place),
# then restored as below: the way back after the host is lost.
#
# PostgreSQL: pg_restore --clean --if-exists --no-owner into POSTGRES_DB, in one transaction
# (a failed restore changes nothing). `latest` picks the newest postgres-*.dump in BACKUP_DIR;
# a bare file name is also looked up in BACKUP_DIR.
# MinIO (--minio): stops minio, replaces the contents of DATA_DIR/minio with the archive, starts
# minio again. The old contents are kept aside until the new ones are in place.
#
# Run as root on the host (sudo). Settings come from ../host.env next to this script
# (docs/HOST-LAYOUT.md); CHITRAM_HOST_ENV points at another host.env. The app keeps running:
# stop it first (docker compose stop app) if it must not write during the restore.
set -euo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME="${HOME:-/root}"

SCRIPT_DIR="$(dirname "$(readlink -f "$0")")"
HOST_ENV="${CHITRAM_HOST_ENV:-$SCRIPT_DIR/../host.env}"
ERR_FILE=""
STAGING=""
MINIO_STOPPED=0
OFFSITE_DIR=""
OFFSITE_BUCKET=""

usage() {
  cat >&2 <<'EOF'
usage: restore.sh [--offsite] <postgres-dump-file|latest> [--minio <minio-tar.gz|latest>]
  Restores PostgreSQL from a pg_dump -Fc file made by backup.sh (latest = newest in BACKUP_DIR),
  and with --minio replaces the MinIO data from a minio-*.tar.gz archive. With --offsite, the
  files are first downloaded from the off-box bucket (latest = newest there).
EOF
  exit 2
}

say() { printf '%s restore: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

die() {
  printf '%s restore: ERROR: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
  if [[ -n $ERR_FILE && -s $ERR_FILE ]]; then sed 's/^/  | /' "$ERR_FILE" | tail -n 30 >&2; fi
  exit 1
}

cleanup() {
  local rc=$?
  if [[ -n $STAGING ]]; then rm -rf -- "$STAGING"; fi
  if [[ -n $OFFSITE_DIR ]]; then rm -rf -- "$OFFSITE_DIR"; fi
  if ((MINIO_STOPPED)); then
    # Failed between stop and start: bring minio back on whatever data is in place.
    printf 'restore: starting minio again after the failure\n' >&2
    compose start minio >&2 || printf 'restore: could not start minio\n' >&2
  fi
  if [[ -n $ERR_FILE ]]; then rm -f -- "$ERR_FILE"; fi
  if ((rc != 0 && rc != 2)); then printf 'restore: FAILED (exit %d)\n' "$rc" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

dump_arg=""
minio_arg=""
from_offsite=0
while (($#)); do
  case $1 in
    -h | --help) usage ;;
    --offsite)
      from_offsite=1
      shift
      ;;
    --minio)
      (($# >= 2)) || usage
      minio_arg=$2
      shift 2
      ;;
    --minio=*)
      minio_arg=${1#--minio=}
      shift
      ;;
    -*) usage ;;
    *)
      [[ -z $dump_arg ]] || usage
      dump_arg=$1
      shift
      ;;
  esac
done
[[ -n $dump_arg ]] || usage

[[ -r $HOST_ENV ]] || die "cannot read $HOST_ENV"
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program onto the host
. "$HOST_ENV"
for var in APP_DIR DATA_DIR BACKUP_DIR; do
  [[ -n ${!var:-} ]] || die "$HOST_ENV does not set $var"
done

# shellcheck disable=SC1091 # common.sh sits beside this script and is checked on its own
. "$SCRIPT_DIR/common.sh"

# fetch <arg> <kind>: downloads that off-box copy (latest = the newest of its kind) into
# BACKUP_DIR under its own name, checked by sha256 against a second read, and prints its name.
fetch() {
  local arg=$1 kind=$2 name part sum again
  if [[ $arg == latest ]]; then
    name="$(offsite_list)" || die "cannot list $OFFSITE_ENDPOINT/$OFFSITE_BUCKET"
    name="$(grep "^$kind-" <<<"$name" | sort | tail -n 1 || true)"
    [[ -n $name ]] || die "no $kind backup in $OFFSITE_ENDPOINT/$OFFSITE_BUCKET"
  else
    name="$(basename -- "$arg")"
  fi
  [[ $name =~ ^$kind-[0-9]{8}T[0-9]{6}Z\.(dump|tar\.gz)$ ]] || die "not a $kind backup name: $name"
  part=".$name.fetch.tmp"
  mc cp --quiet "offsite/$OFFSITE_BUCKET/$name" "/backups/$part" >/dev/null ||
    die "cannot download $name from $OFFSITE_ENDPOINT/$OFFSITE_BUCKET"
  sum="$(sha256sum <"$BACKUP_DIR/$part" | cut -d' ' -f1)"
  again="$(mc cat "offsite/$OFFSITE_BUCKET/$name" | sha256sum | cut -d' ' -f1)" || die "cannot read $name again"
  [[ $sum == "$again" ]] || die "the download of $name differs from the off-box copy"
  mv -f -- "$BACKUP_DIR/$part" "$BACKUP_DIR/$name"
  say "fetched $name from $OFFSITE_ENDPOINT/$OFFSITE_BUCKET (sha256 $sum)" >&2
  printf '%s\n' "$name"
}

if ((from_offsite)); then
  if [[ -n ${BACKUP_SECRETS:-} && -r $BACKUP_SECRETS ]]; then
    # shellcheck source=/dev/null # rendered (values checked and quoted) by the Pulumi program
    . "$BACKUP_SECRETS"
  fi
  [[ -n $OFFSITE_BUCKET ]] || die "--offsite: no off-box bucket is configured (OFFSITE_BUCKET in ${BACKUP_SECRETS:-BACKUP_SECRETS})"
  ERR_FILE="$(mktemp)"
  install -d -m 0700 "$BACKUP_DIR"
  offsite_begin
  dump_arg="$(fetch "$dump_arg" postgres)"
  if [[ -n $minio_arg ]]; then minio_arg="$(fetch "$minio_arg" minio)"; fi
fi

# newest <glob>: the newest backup of that kind in BACKUP_DIR (names carry a sortable UTC stamp).
newest() {
  find "$BACKUP_DIR" -maxdepth 1 -type f -name "$1" -printf '%f\n' | sort | tail -n 1
}

# resolve <arg> <glob>: a path to an existing file, or fail.
resolve() {
  local arg=$1 pattern=$2 name
  if [[ $arg == latest ]]; then
    name="$(newest "$pattern")"
    [[ -n $name ]] || die "no $pattern in $BACKUP_DIR"
    printf '%s\n' "$BACKUP_DIR/$name"
  elif [[ -f $arg ]]; then
    readlink -f -- "$arg"
  elif [[ $arg != */* && -f $BACKUP_DIR/$arg ]]; then
    printf '%s\n' "$BACKUP_DIR/$arg"
  else
    die "no such file: $arg"
  fi
}

DUMP="$(resolve "$dump_arg" 'postgres-*.dump')"
[[ -s $DUMP ]] || die "$DUMP is empty"
TARBALL=""
if [[ -n $minio_arg ]]; then
  TARBALL="$(resolve "$minio_arg" 'minio-*.tar.gz')"
  # Read the whole archive now, before PostgreSQL is touched.
  tar -tzf "$TARBALL" >/dev/null || die "$TARBALL is not a readable tar.gz; nothing was changed"
fi

command -v docker >/dev/null || die "docker not found in $PATH"
if [[ -z $ERR_FILE ]]; then ERR_FILE="$(mktemp)"; fi

# Same lock as backup.sh: never restore while a backup is being written.
if [[ -d $BACKUP_DIR ]]; then
  exec 9>>"$BACKUP_DIR/.lock" || die "cannot open lock file $BACKUP_DIR/.lock"
  flock -n 9 || die "a backup or restore holds $BACKUP_DIR/.lock; try again when it is done"
fi

# --- PostgreSQL ----------------------------------------------------------------------------------
require_running_postgres say

# Read the whole archive before dropping anything.
compose exec -T postgres pg_restore -l <"$DUMP" >/dev/null 2>"$ERR_FILE" ||
  die "pg_restore cannot read $DUMP; nothing was changed"
say "restoring PostgreSQL from $DUMP"
# shellcheck disable=SC2016 # $POSTGRES_USER/$POSTGRES_DB are expanded by sh inside the container
compose exec -T postgres sh -c \
  'pg_restore --clean --if-exists --no-owner --single-transaction -U "$POSTGRES_USER" -d "$POSTGRES_DB"' \
  <"$DUMP" 2>"$ERR_FILE" ||
  die "pg_restore failed; the transaction was rolled back, the database is as it was"
if [[ -s $ERR_FILE ]]; then sed 's/^/  | /' "$ERR_FILE"; fi
say "PostgreSQL restored from $(basename "$DUMP")"

# --- MinIO ---------------------------------------------------------------------------------------
if [[ -n $TARBALL ]]; then
  MINIO_DIR="$DATA_DIR/minio"
  [[ -d $MINIO_DIR ]] || die "MinIO data dir $MINIO_DIR does not exist"
  # Unpack next to the data dir (same filesystem, so the swap below is renames only) before
  # stopping minio: a broken archive fails here with the old data untouched and minio up.
  STAGING="$(mktemp -d "$DATA_DIR/.minio-restore.XXXXXX")"
  mkdir "$STAGING/new" "$STAGING/old"
  tar -C "$STAGING/new" -xzf "$TARBALL" 2>"$ERR_FILE" || die "cannot unpack $TARBALL; the MinIO data was not changed"
  say "stopping minio"
  MINIO_STOPPED=1
  compose stop minio 2>"$ERR_FILE" || die "cannot stop minio"
  # Keep the directory itself (it is minio's bind mount); swap its contents. From here on a
  # failure keeps the work dir: it may hold the only copy of the old data.
  work="$STAGING"
  STAGING=""
  find "$MINIO_DIR" -mindepth 1 -maxdepth 1 -exec mv -t "$work/old" -- {} + 2>"$ERR_FILE" ||
    die "cannot move the old MinIO data aside; what was moved is in $work/old"
  find "$work/new" -mindepth 1 -maxdepth 1 -exec mv -t "$MINIO_DIR" -- {} + 2>"$ERR_FILE" ||
    die "cannot move the restored MinIO data in; the old data is in $work/old, the rest in $work/new"
  rm -rf -- "$work"
  say "replaced the contents of $MINIO_DIR from $TARBALL"
  say "starting minio"
  compose start minio 2>"$ERR_FILE" || die "cannot start minio"
  MINIO_STOPPED=0
  say "MinIO restored from $(basename "$TARBALL")"
fi

say "done"
