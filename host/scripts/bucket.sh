#!/usr/bin/env bash
# mc against the app's Spaces bucket (objectStore: spaces), with the app's own key: how a deleted
# or overwritten object is found and brought back (docs/RUNBOOK.md, "Recover a deleted object").
#
#   sudo /opt/chitram/scripts/bucket.sh name                   the bucket's name
#   sudo /opt/chitram/scripts/bucket.sh undelete <object key>  its delete undone: the delete marker
#                                                               (its latest version) removed
#   sudo /opt/chitram/scripts/bucket.sh ls --versions app/<bucket>/<object key>   (any mc command)
#   sudo /opt/chitram/scripts/bucket.sh from-minio   MinIO's objects on this host's disk copied
#                                                    into the bucket (the move to Spaces)
#   sudo /opt/chitram/scripts/bucket.sh to-minio     the bucket's objects copied into MinIO's data
#                                                    on this host's disk (before the move back)
#
# from-minio and to-minio run a MinIO server of their own on DATA_DIR/minio (there is none in the
# compose project with the objects in Spaces), with the generated credentials of .env.minio, for
# as long as the copy takes, holding the release step's lock so that no release starts the
# project's MinIO on the same directory meanwhile. They copy the current version of each object,
# overwrite what differs, and delete nothing on either side (docs/RUNBOOK.md, "Moving the
# objects to Spaces, and back").
#
# The alias `app` is the bucket's endpoint with the app's key, read from the app's env file; the
# key reaches mc in an env file (MC_HOST_app), never on a command line. mc is the MinIO image's
# (MC_IMAGE in host.env), as for the off-box backups.
set -euo pipefail

# shellcheck disable=SC1091 # common.sh sits beside this script and is checked on its own
. "$(dirname "$(readlink -f "$0")")/common.sh"
WORK=""
MIRROR=chitram-objects-mirror
MIRROR_STARTED=0
die() {
  printf 'bucket: ERROR: %s\n' "$*" >&2
  exit 1
}
# Only this run's mirror: another run's (a second from-minio refused by the lock) is left alone.
trap 'if [[ -n $WORK ]]; then rm -rf -- "$WORK"; fi; if ((MIRROR_STARTED)); then docker rm -f "$MIRROR" >/dev/null 2>&1 || true; fi' EXIT

(($# > 0)) || die "usage: bucket.sh name | undelete <object key> | from-minio | to-minio | <mc command and arguments, the bucket as app/<bucket>>"
[[ -r $HOST_ENV ]] || die "cannot read $HOST_ENV"
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program onto the host
. "$HOST_ENV"
[[ ${OBJECTS:-minio} == spaces ]] ||
  die "the app's objects are in MinIO on this host (OBJECTS=${OBJECTS:-minio}), not in a Spaces bucket: restore them with restore.sh --minio"
[[ -r $ENV_FILE ]] || die "cannot read $ENV_FILE (run as root)"
value() { sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1; }
endpoint=$(value MINIO_ENDPOINT)
bucket=$(value MINIO_BUCKET)
access=$(value MINIO_ACCESS_KEY)
secret=$(value MINIO_SECRET_KEY)
[[ $endpoint =~ ^https?://[A-Za-z0-9.:-]+$ ]] || die "MINIO_ENDPOINT in $ENV_FILE is not http(s)://host[:port]"
[[ $bucket =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "MINIO_BUCKET in $ENV_FILE is not a bucket name"
# mc takes the keys raw (off-box copies, common.sh): nothing that would end the URL's user-info.
for key in "$access" "$secret"; do
  [[ $key =~ ^[A-Za-z0-9+/=_.~-]+$ ]] || die "a key in $ENV_FILE has a character other than A-Z a-z 0-9 + / = _ . ~ -"
done
if [[ $1 == name ]]; then
  printf '%s\n' "$bucket"
  exit 0
fi
WORK=$(mktemp -d)
printf 'MC_HOST_app=%s://%s:%s@%s\n' "${endpoint%%://*}" "$access" "$secret" "${endpoint#*://}" >"$WORK/mc.env"
mc() { docker run --rm --env-file "$WORK/mc.env" --entrypoint mc "$MC_IMAGE" "$@"; }

if [[ $1 == from-minio || $1 == to-minio ]]; then
  (($# == 1)) || die "usage: bucket.sh $1"
  MINIO_DIR="$DATA_DIR/minio"
  [[ -d $MINIO_DIR ]] || die "MinIO's data directory $MINIO_DIR does not exist"
  [[ -r $APP_DIR/.env.minio ]] || die "cannot read $APP_DIR/.env.minio (run as root)"
  user=$(sed -n 's/^MINIO_ROOT_USER=//p' "$APP_DIR/.env.minio" | tail -n 1)
  password=$(sed -n 's/^MINIO_ROOT_PASSWORD=//p' "$APP_DIR/.env.minio" | tail -n 1)
  [[ $user =~ ^[A-Za-z0-9_-]+$ && $password =~ ^[A-Za-z0-9_-]+$ ]] || die "$APP_DIR/.env.minio holds no plain MinIO credentials"
  if open_release_lock; then
    flock -n 7 || die "a release, a backup or a copy holds $RELEASE_LOCK; try again when it is done"
  fi
  [[ -z $(running_in_project minio) ]] ||
    die "the compose project's MinIO is running on $MINIO_DIR: stop it first; nothing was copied"
  {
    printf 'MINIO_ROOT_USER=%s\nMINIO_ROOT_PASSWORD=%s\n' "$user" "$password"
    printf 'MC_HOST_local=http://%s:%s@127.0.0.1:9000\n' "$user" "$password"
    cat "$WORK/mc.env"
  } >"$WORK/mirror.env"
  # One left by a run that was killed (this run holds the lock, so no other is copying).
  docker rm -f "$MIRROR" >/dev/null 2>&1 || true
  # shellcheck disable=SC2034 # read by the EXIT trap
  MIRROR_STARTED=1
  docker run -d --name "$MIRROR" --memory 384m --env-file "$WORK/mirror.env" -v "$MINIO_DIR:/data" "$MC_IMAGE" server /data >/dev/null ||
    die "cannot start a MinIO server on $MINIO_DIR"
  for ((i = 0; ; i++)); do
    docker exec "$MIRROR" mc ready local >/dev/null 2>&1 && break
    ((i < 60)) || die "the MinIO server on $MINIO_DIR did not get ready in 60 s: docker logs $MIRROR"
    sleep 1
  done
  if [[ $1 == from-minio ]]; then
    from="local/$MINIO_LOCAL_BUCKET" to="app/$bucket"
    docker exec "$MIRROR" mc stat "$from" >/dev/null 2>&1 || die "MinIO on $MINIO_DIR has no bucket $MINIO_LOCAL_BUCKET: nothing to copy"
  else
    from="app/$bucket" to="local/$MINIO_LOCAL_BUCKET"
    docker exec "$MIRROR" mc mb --ignore-existing "$to" >/dev/null || die "cannot make the bucket $MINIO_LOCAL_BUCKET in MinIO"
  fi
  # Health probes' keys start with a dot (the backup's object count skips them too).
  docker exec "$MIRROR" mc mirror --overwrite --exclude '.*' "$from" "$to" ||
    die "copying $from to $to failed part-way; run it again (it copies what differs)"
  listing=$(docker exec "$MIRROR" mc ls --recursive "$to") || die "the copy is done, but $to cannot be listed"
  count=$(awk '$NF !~ /^\./' <<<"$listing" | wc -l)
  printf 'bucket: copied %s to %s; %s now holds %s object(s)\n' "$from" "$to" "$to" "$count"
  exit 0
fi
if [[ $1 != undelete ]]; then
  mc "$@"
  exit
fi

# undelete <key>: a delete in a versioned bucket only adds a delete marker as the key's latest
# version; removing that marker (the key's own versions, nothing else) makes the version before it
# current again. Needs only the object permissions a scoped key has.
if (($# != 2)) || [[ -z $2 || $2 == /* ]]; then die "usage: bucket.sh undelete <object key>"; fi
key=$2
listing=$(mc ls --versions --json "app/$bucket/$key") || die "cannot list the versions of $key in $bucket"
marker=$(python3 -c '
import json, sys
name = sys.argv[1].rsplit("/", 1)[-1]
# mc lists a prefix: the key itself and any key that starts with it, each version with its
# ordinal (the newest the highest); it names the object by the last part of its key.
listed = [json.loads(line) for line in sys.stdin if line.strip()]
versions = [v for v in listed if v.get("status") == "success" and v.get("key") == name]
newest = max(versions, key=lambda v: v.get("versionOrdinal", 0), default=None)
if newest and newest.get("isDeleteMarker"):
    print(newest["versionId"])
' "$key" <<<"$listing") || die "cannot read mc's listing of $key"
[[ -n $marker ]] || die "$key is not deleted in $bucket (its latest version is no delete marker): nothing to undo"
[[ $marker =~ ^[A-Za-z0-9._-]+$ ]] || die "the delete marker's version id is not plain: $marker"
mc rm --version-id "$marker" "app/$bucket/$key" >/dev/null || die "cannot remove the delete marker $marker of $key"
printf 'bucket: %s is back: its delete marker %s was removed\n' "$key" "$marker"
