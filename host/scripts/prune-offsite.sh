#!/usr/bin/env bash
# Applies the backup retention (backup.sh's header) to the off-box bucket with a key of its own,
# for a bucket whose host key is put-only: the host cannot delete its backups, so this runs off
# it, or on it with a key that never stays there. The key arrives on stdin, never in an argument
# or a file on the host:
#
#   ssh deploy@host 'sudo /opt/chitram/scripts/prune-offsite.sh' < prune.env
#
# prune.env: OFFSITE_ACCESS_KEY='...' and OFFSITE_SECRET_KEY='...' (a key that may delete objects);
# the endpoint and bucket are the host's (BACKUP_SECRETS), the retention host.env's. Deletes only
# current copies: in a versioned bucket each one stays as a version until the bucket's lifecycle
# rule expires it. Settings: ../host.env next to this script, or CHITRAM_HOST_ENV.
set -euo pipefail

# shellcheck disable=SC1091 # common.sh sits beside this script and is checked on its own
. "$(dirname "$(readlink -f "$0")")/common.sh"
ERR_FILE="$(mktemp)"
OFFSITE_DIR=""
trap 'rm -f -- "$ERR_FILE"; if [[ -n $OFFSITE_DIR ]]; then rm -rf -- "$OFFSITE_DIR"; fi' EXIT

say() { printf '%s prune-offsite: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }
die() {
  printf '%s prune-offsite: ERROR: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
  if [[ -s $ERR_FILE ]]; then sed 's/^/  | /' "$ERR_FILE" | tail -n 20 >&2; fi
  exit 1
}

[[ -r $HOST_ENV ]] || die "cannot read $HOST_ENV"
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program onto the host
. "$HOST_ENV"
[[ -n ${BACKUP_SECRETS:-} && -r $BACKUP_SECRETS ]] || die "cannot read the backup's settings ${BACKUP_SECRETS:-BACKUP_SECRETS} (run as root)"
# shellcheck source=/dev/null # rendered (values checked and quoted) by the Pulumi program
. "$BACKUP_SECRETS"
[[ -n ${OFFSITE_BUCKET:-} ]] || die "no off-box bucket is configured"
for var in BACKUP_RETENTION_DAYS BACKUP_KEEP_GOOD; do
  [[ ${!var:-} =~ ^[0-9]+$ ]] || die "$HOST_ENV does not set $var to a whole number"
done

# The pruning key, from stdin: exactly the two assignments, each value a plain key.
OFFSITE_ACCESS_KEY="" OFFSITE_SECRET_KEY=""
while IFS= read -r line; do
  if [[ $line =~ ^(OFFSITE_ACCESS_KEY|OFFSITE_SECRET_KEY)=\'?([A-Za-z0-9+/=_.~-]+)\'?$ ]]; then
    printf -v "${BASH_REMATCH[1]}" '%s' "${BASH_REMATCH[2]}"
  elif [[ -n $line && $line != \#* ]]; then
    die "stdin: expected OFFSITE_ACCESS_KEY=... and OFFSITE_SECRET_KEY=... lines"
  fi
done
[[ -n $OFFSITE_ACCESS_KEY && -n $OFFSITE_SECRET_KEY ]] || die "stdin holds no OFFSITE_ACCESS_KEY and OFFSITE_SECRET_KEY (the pruning key)"

offsite_begin
offsite_prune "$(date -u -d "-$BACKUP_RETENTION_DAYS days" +%Y%m%dT%H%M%SZ)" "$BACKUP_KEEP_GOOD" say
say "done: $OFFSITE_ENDPOINT/$OFFSITE_BUCKET keeps $BACKUP_RETENTION_DAYS days of sets and the newest $BACKUP_KEEP_GOOD with data"
