#!/usr/bin/env bash
# Downloads the wheels of the app stand-in's runtime dependencies from PyPI with this machine's
# pip (its index, proxy and certificate settings), for CPython 3.11 on x86_64 glibc Linux (the
# image's Debian Python), checked against the hashes in images/app/rootfs/app/requirements.txt.
# That file is `uv export --frozen --no-dev --no-emit-project` of uv.lock beside it: the dev group
# (aiosqlite) is not in it, as in the real app's `uv sync --no-dev` image.
#
# Output: prints the directory holding wheels/ on stdout; progress goes to stderr. The directory
# is $CACHE/<key>, <key> a hash of this script and requirements.txt; it counts only with its
# .complete marker (written after pip checked every hash); a download happens in a temporary
# directory renamed into place. Env: CHITRAM_SANDBOX_CACHE (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/chitram-sandbox), FORCE=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REQUIREMENTS=$here/images/app/rootfs/app/requirements.txt
CACHE=${CHITRAM_SANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chitram-sandbox}/app-wheels
FORCE=${FORCE:-0}

log() { printf '[sandbox/wheels %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
now_ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

key=$(cat "${BASH_SOURCE[0]}" "$REQUIREMENTS" | sha256sum | cut -c1-16)
out=$CACHE/$key
if [[ $FORCE != 1 && -f $out/.complete ]]; then
  log "app wheels are up to date ($out)"
  echo "$out"
  exit 0
fi
python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip is missing (needed to download the app's wheels)"

mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.download-$key.XXXXXX")
# shellcheck disable=SC2064 # expand now: the trap must remove this very directory
trap "rm -rf '$tmp'" EXIT
t0=$(now_ms)
log "downloading the app's wheels (requirements.txt, hashes checked)"
# Debian 12's glibc is 2.36: every manylinux tag up to it fits (pip does not infer the older ones).
platforms=(--platform any --platform manylinux2014_x86_64)
for minor in {17..36}; do
  platforms+=(--platform "manylinux_2_${minor}_x86_64")
done
if ! python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
  --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
  "${platforms[@]}" \
  --dest "$tmp/wheels" -r "$REQUIREMENTS" >"$tmp/pip.log" 2>&1; then
  tail -n 20 "$tmp/pip.log" >&2
  die "pip download failed (requirements: $REQUIREMENTS); nothing was kept"
fi
rm -f "$tmp/pip.log"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
log "app wheels ($(find "$out/wheels" -name '*.whl' | wc -l) files, $(du -sm "$out/wheels" | cut -f1) MB) ready in $(secs_since "$t0") s"
echo "$out"
