#!/usr/bin/env bash
# Restores a backup set made by backup.sh.
#
#   restore.sh [--offsite] <postgres-dump|latest> [--minio <minio-tar.gz|latest>]
#
# latest = the newest set whose manifest says it holds data (manifest-<stamp>.data.txt): a set
# taken on an empty host (rebuilt, not restored yet) is never "latest". `--minio latest` is the
# archive of the SAME set as the dump (a matched pair, consistent by construction); name another
# archive to mix sets on purpose. Each file is checked against its set's manifest (sha256) before
# anything is changed.
# --offsite: the names are those of the off-box copies (BACKUP_SECRETS' bucket). The manifest and
# the files are downloaded into BACKUP_DIR first (checked, then renamed into place), then
# restored as below: the way back after the host is lost.
#
# PostgreSQL: pg_restore --clean --if-exists --no-owner into POSTGRES_DB, in one transaction
# (a failed restore changes nothing), the container's or, with DATABASE=managed, the cluster's
# (common.sh, pg). A bare file name is looked up in BACKUP_DIR.
# MinIO (--minio): stops minio, replaces the contents of DATA_DIR/minio with the archive, starts
# minio again. The old contents are kept aside until the new ones are in place.
#
# Run as root on the host (sudo). Settings come from ../host.env next to this script
# (docs/HOST-LAYOUT.md); CHITRAM_HOST_ENV points at another host.env. It holds backup.sh's lock
# from before the first download to the end, so no backup runs meanwhile, and refuses to start
# during a release (the release step's lock, which it holds too). The app keeps running:
# stop it first (docker compose stop app) if it must not write during the restore.
set -euo pipefail

# shellcheck disable=SC1091 # common.sh sits beside this script and is checked on its own
. "$(dirname "$(readlink -f "$0")")/common.sh"
ERR_FILE=""
STAGING=""
MINIO_STOPPED=0
OFFSITE_DIR=""
OFFSITE_BUCKET=""

usage() {
  cat >&2 <<'USAGE'
usage: restore.sh [--offsite] <postgres-dump-file|latest> [--minio <minio-tar.gz|latest>]
  Restores PostgreSQL from a pg_dump -Fc file made by backup.sh, and with --minio the MinIO data
  from a minio-*.tar.gz archive. latest = the newest backup set that holds data; --minio latest =
  the archive of the same set as the dump. With --offsite, the files are first downloaded from
  the off-box bucket. With a managed database (DATABASE=managed) the dump goes into the cluster;
  with the objects in Spaces (OBJECTS=spaces) --minio is refused.
USAGE
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
  if [[ ${DATABASE:-container} == managed ]]; then remove_pgclient; fi
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


# fetch <name> [sha256]: downloads that off-box file into BACKUP_DIR under its own name (a temp
# name first), checked against the sha256 given (the manifest's), else against a second read.
fetch() {
  local name=$1 want=${2:-} part sum
  part=".$name.fetch.tmp"
  mc cp --quiet "offsite/$OFFSITE_BUCKET/$name" "/backups/$part" </dev/null >/dev/null 2>"$ERR_FILE" ||
    die "cannot download $name from $OFFSITE_ENDPOINT/$OFFSITE_BUCKET"
  sum="$(sha256sum <"$BACKUP_DIR/$part" | cut -d' ' -f1)"
  if [[ -z $want ]]; then
    want="$(mc cat "offsite/$OFFSITE_BUCKET/$name" </dev/null | sha256sum | cut -d' ' -f1)" || die "cannot read $name again"
  fi
  if [[ $sum != "$want" ]]; then
    rm -f -- "${BACKUP_DIR:?}/$part"
    die "the download of $name does not match (sha256 $sum, expected $want); nothing was changed"
  fi
  mv -f -- "$BACKUP_DIR/$part" "$BACKUP_DIR/$name"
  say "fetched $name from $OFFSITE_ENDPOINT/$OFFSITE_BUCKET (sha256 $sum)"
}

# The manifest of stamp $1 among the set file names on stdin, or nothing.
manifest_of() {
  grep -E "^manifest-$1\.(data|empty)\.txt$" | head -n 1 || true
}

# The sha256 the manifest file $1 records for kind $2 (postgres or minio).
manifest_sum() {
  sed -n "s/^$2=\([0-9a-f]\{64\}\) [0-9]*$/\1/p" "$1"
}

# resolve <arg>: a path to an existing file, or fail (a bare name is looked up in BACKUP_DIR).
resolve() {
  local arg=$1
  if [[ -f $arg ]]; then
    readlink -f -- "$arg"
  elif [[ $arg != */* && -f $BACKUP_DIR/$arg ]]; then
    printf '%s\n' "$BACKUP_DIR/$arg"
  else
    die "no such file: $arg"
  fi
}

ERR_FILE="$(mktemp)"
command -v docker >/dev/null || die "docker not found in $PATH"
# backup.sh's lock, before anything is downloaded: no backup starts meanwhile (its cleanup of
# leftover .tmp files would take a download in progress), and none is running.
install -d -m 0700 "$BACKUP_DIR"
exec 9>>"$BACKUP_DIR/.lock" || die "cannot open lock file $BACKUP_DIR/.lock"
flock -n 9 || die "a backup or restore holds $BACKUP_DIR/.lock; try again when it is done"
# and the release step's: a release must not start the app, or recreate the services, while they
# are stopped and their data replaced (RELEASE_LOCK from host.env; older ones have none).
if open_release_lock; then
  flock -n 7 || die "a release is running (it holds $RELEASE_LOCK); try again when pulumi up is done"
fi

# Not half-way through a switch of the database or the objects (common.sh).
require_switch_live

# With the objects in a Spaces bucket there is no MinIO here to restore into: the bucket's
# versions are the objects' backup (docs/RUNBOOK.md, "Recover a deleted object").
if [[ -n $minio_arg && ${OBJECTS:-minio} == spaces ]]; then
  die "--minio: the app's objects are in a Spaces bucket (OBJECTS=spaces in host.env), not in MinIO on this host; restore PostgreSQL alone, and recover objects from the bucket's versions (docs/RUNBOOK.md, \"Recover a deleted object\"); nothing was changed"
fi

# --- Which set -----------------------------------------------------------------------------------
if ((from_offsite)); then
  if [[ -n ${BACKUP_SECRETS:-} && -r $BACKUP_SECRETS ]]; then
    # shellcheck source=/dev/null # rendered (values checked and quoted) by the Pulumi program
    . "$BACKUP_SECRETS"
  fi
  [[ -n $OFFSITE_BUCKET ]] || die "--offsite: no off-box bucket is configured (OFFSITE_BUCKET in ${BACKUP_SECRETS:-BACKUP_SECRETS})"
  offsite_begin
  where="$OFFSITE_ENDPOINT/$OFFSITE_BUCKET"
  names="$(offsite_list 2>"$ERR_FILE")" || die "cannot list $where"
else
  where=$BACKUP_DIR
  names="$(find "$BACKUP_DIR" -maxdepth 1 -type f -printf '%f\n' | backup_names)"
fi
if [[ $dump_arg == latest ]]; then
  STAMP="$(newest_good_stamp <<<"$names")"
  [[ -n $STAMP ]] || die "no backup set that holds data in $where (a set taken on an empty host is never latest: name its dump to restore it anyway)"
  dump_arg="postgres-$STAMP.dump"
fi
[[ $(basename -- "$dump_arg") =~ ^postgres-([0-9]{8}T[0-9]{6}Z)\.dump$ ]] || die "not a backup's postgres-<stamp>.dump: $dump_arg"
STAMP=${BASH_REMATCH[1]}
if [[ $minio_arg == latest ]]; then minio_arg="minio-$STAMP.tar.gz"; fi
manifest="$(manifest_of "$STAMP" <<<"$names")"

if ((from_offsite)); then
  [[ -n $manifest ]] || die "the set $STAMP has no manifest in $where: it is incomplete (its upload or read-back failed); nothing was changed"
  fetch "$manifest"
  fetch "$(basename -- "$dump_arg")" "$(manifest_sum "$BACKUP_DIR/$manifest" postgres)"
  if [[ -n $minio_arg ]]; then
    want=""
    if [[ $(basename -- "$minio_arg") == "minio-$STAMP.tar.gz" ]]; then want="$(manifest_sum "$BACKUP_DIR/$manifest" minio)"; fi
    fetch "$(basename -- "$minio_arg")" "$want"
  fi
fi

DUMP="$(resolve "$dump_arg")"
[[ -s $DUMP ]] || die "$DUMP is empty"
TARBALL=""
if [[ -n $minio_arg ]]; then TARBALL="$(resolve "$minio_arg")"; fi
# Both files against their set's manifest, when the set has one here.
if [[ -n $manifest && -f $BACKUP_DIR/$manifest ]]; then
  [[ $(sha256sum <"$DUMP" | cut -d' ' -f1) == "$(manifest_sum "$BACKUP_DIR/$manifest" postgres)" ]] ||
    die "$DUMP does not match its set's manifest $manifest (sha256); nothing was changed"
  if [[ -n $TARBALL && $(basename -- "$TARBALL") == "minio-$STAMP.tar.gz" ]]; then
    [[ $(sha256sum <"$TARBALL" | cut -d' ' -f1) == "$(manifest_sum "$BACKUP_DIR/$manifest" minio)" ]] ||
      die "$TARBALL does not match its set's manifest $manifest (sha256); nothing was changed"
  fi
  say "set $STAMP ($(sed -n 's/^holds=//p' "$BACKUP_DIR/$manifest")): the files match its manifest"
fi
if [[ -n $TARBALL && $(basename -- "$TARBALL") != "minio-$STAMP.tar.gz" ]]; then
  say "WARNING: $(basename -- "$TARBALL") is not of the dump's set $STAMP: rows may point at objects it lacks"
fi
# Read the whole archive now, before PostgreSQL is touched.
if [[ -n $TARBALL ]]; then
  tar -tzf "$TARBALL" >/dev/null || die "$TARBALL is not a readable tar.gz; nothing was changed"
fi

# --- PostgreSQL ----------------------------------------------------------------------------------
require_running_postgres say

# Read the whole archive before dropping anything.
pg pg_restore -l <"$DUMP" >/dev/null 2>"$ERR_FILE" ||
  die "pg_restore cannot read $DUMP; nothing was changed"
say "restoring PostgreSQL from $DUMP"
# shellcheck disable=SC2016 # $POSTGRES_USER/$POSTGRES_DB are expanded by sh inside the container
pg sh -c \
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
