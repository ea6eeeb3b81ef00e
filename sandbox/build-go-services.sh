#!/usr/bin/env bash
# Builds the Go programs of the sandbox's service images from their Go modules, through the Go
# module proxy (see /work/shared/ENVIRONMENT.md): static (CGO_ENABLED=0), -trimpath, stripped.
#   caddy  github.com/caddyserver/caddy/v2, version pinned by go-services/caddy/go.mod + go.sum
#          (a wrapper main module: cmd/caddy itself cannot be imported)
#   minio  github.com/minio/minio at $MINIO_VERSION (the release the compose file pins)
#   mc     github.com/minio/mc at $MC_VERSION (see the comment there)
# MinIO and mc are AGPL: they are only built here and run as separate services inside sandbox
# droplets; nothing of them is linked into the project or committed.
#
# Output: prints the directory holding bin/{caddy,minio,mc} on stdout; progress goes to stderr.
# The directory is $CACHE/<key>, <key> a hash of this script, the wrapper module and `go version`,
# so a changed version or recipe builds anew and an unchanged one is reused. A directory counts
# only with its .complete marker, written after every binary answered its version command; a
# build happens in a temporary directory renamed into place, so an interrupted or failed build
# never looks complete. The go command's own caches (GOMODCACHE, GOCACHE) are used as configured.
# Env: CHITRAM_SANDBOX_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/chitram-sandbox), FORCE=1.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CADDY_MODULE_DIR=$here/go-services/caddy

# RELEASE.2024-11-07T00-52-20Z is commit cefc43e4daa4cbb490ef6726ea374e26a93eb85e.
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20241107005220-cefc43e4daa4
MINIO_COMMIT=cefc43e4daa4cbb490ef6726ea374e26a93eb85e
MINIO_RELEASE=RELEASE.2024-11-07T00-52-20Z
MINIO_RELEASE_TIME=2024-11-07T00:52:20Z
# The image of that MinIO release carries the mc of its day (RELEASE.2024-11-05T11-29-45Z); the
# proxy serves that commit, but the checksum database does not know it (nor any mc release of
# late 2024), so the go command refuses it. This is the nearest version it verifies (2025-03-13).
MC_MODULE=github.com/minio/mc
MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
MC_COMMIT=cf909e1063a9a0aea7926378b0c416ed0eea7742

CACHE=${CHITRAM_SANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chitram-sandbox}/go-services
FORCE=${FORCE:-0}

log() { printf '[sandbox/go %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
now_ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

command -v go >/dev/null || die "the go command is missing (Go >= 1.23 is needed to build Caddy, MinIO and mc)"
go_version=$(go env GOVERSION)
if ! [[ $go_version =~ ^go1\.([0-9]+) ]] || ((BASH_REMATCH[1] < 23)); then
  die "Go >= 1.23 is needed to build Caddy, MinIO and mc; found $go_version"
fi

# The proxy and checksum database as the go command is configured; never a downloaded toolchain.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"

key=$({
  cat "${BASH_SOURCE[0]}" "$CADDY_MODULE_DIR/go.mod" "$CADDY_MODULE_DIR/go.sum" "$CADDY_MODULE_DIR/main.go"
  go version
} | sha256sum | cut -c1-16)
out=$CACHE/$key

if [[ $FORCE != 1 && -f $out/.complete ]]; then
  log "Caddy, MinIO and mc are up to date ($out)"
  echo "$out"
  exit 0
fi

# `go mod download -json` prints one object per module; an object with "Error" names what the
# proxy or the checksum database refused. When even the module graph cannot be loaded, the go
# command says so in a "go: module@version: reason" line instead. Prints "module@version: error".
download_errors() {
  awk '
    /^\t"Path": / { gsub(/[",]/, "", $2); path = $2 }
    /^\t"Version": / { gsub(/[",]/, "", $2); version = $2 }
    /^\t"Error": / { sub(/^\t"Error": "/, ""); sub(/",?$/, ""); print path "@" version ": " $0 }
    /^go: [^ @:]+@[^ :]+: / { sub(/^go: /, ""); print }
  '
}

# Runs `go mod download -json ...` ($1 names the build; the rest is the command), and stops with
# the module@version that could not be had. Prints the output (JSON) on success.
download() {
  local what=$1 t0 output errors
  shift
  t0=$(now_ms)
  log "$what: downloading modules"
  output=$("$@" 2>&1) || true
  errors=$(printf '%s\n' "$output" | download_errors)
  if [[ -n $errors ]]; then
    printf '%s\n' "$errors" | head -n 5 >&2
    die "$what: the Go module proxy refused $(printf '%s\n' "$errors" | head -n 1 | cut -d: -f1); nothing was built"
  fi
  if [[ $output != *'"Dir": '* ]]; then
    printf '%s\n' "$output" | tail -n 20 >&2
    die "$what: go mod download failed; nothing was built"
  fi
  log "$what: modules ready in $(secs_since "$t0") s"
  printf '%s\n' "$output"
}

# The module cache directory of module@version $2 (downloaded, with every module it builds with).
module_dir() {
  local what=$1 dir
  dir=$(download "$what" go mod download -json "$2" | sed -n 's/^\t"Dir": "\(.*\)",\{0,1\}$/\1/p')
  download "$what" go -C "$dir" mod download -json >/dev/null
  echo "$dir"
}

build() {
  local name=$1 t0
  shift
  t0=$(now_ms)
  log "$name: building (nice go ...)"
  if ! nice -n 10 "$@" >"$tmp/$name.log" 2>&1; then
    tail -n 30 "$tmp/$name.log" >&2
    die "$name: go build failed"
  fi
  log "$name: built in $(secs_since "$t0") s ($(du -m "$tmp/bin/$name" | cut -f1) MB)"
}

mkdir -p "$CACHE"
tmp=$(mktemp -d "$CACHE/.build-$key.XXXXXX")
# shellcheck disable=SC2064 # expand now: the trap must remove this very directory
trap "rm -rf '$tmp'" EXIT
mkdir -p "$tmp/bin"
t0=$(now_ms)
log "building Caddy $(awk '$1 == "require" && $2 ~ /caddy\/v2$/ { print $3 }' "$CADDY_MODULE_DIR/go.mod"), MinIO $MINIO_RELEASE and mc $MC_VERSION with $go_version into $out"

download caddy go -C "$CADDY_MODULE_DIR" mod download -json >/dev/null
build caddy go -C "$CADDY_MODULE_DIR" build -trimpath -ldflags "-s -w" -o "$tmp/bin/caddy" .

# Built in the module's own directory, with its own go.mod and go.sum (like `go install m@v`).
minio_dir=$(module_dir minio "$MINIO_MODULE@$MINIO_VERSION")
build minio go -C "$minio_dir" build -o "$tmp/bin/minio" -trimpath -ldflags "-s -w \
  -X github.com/minio/minio/cmd.Version=$MINIO_RELEASE_TIME \
  -X github.com/minio/minio/cmd.ReleaseTag=$MINIO_RELEASE \
  -X github.com/minio/minio/cmd.CommitID=$MINIO_COMMIT \
  -X github.com/minio/minio/cmd.ShortCommitID=${MINIO_COMMIT:0:12} \
  -X github.com/minio/minio/cmd.CopyrightYear=2024" .

mc_dir=$(module_dir mc "$MC_MODULE@$MC_VERSION")
build mc go -C "$mc_dir" build -o "$tmp/bin/mc" -trimpath -ldflags "-s -w \
  -X github.com/minio/mc/cmd.ReleaseTag=DEVELOPMENT.${MC_VERSION#v0.0.0-} \
  -X github.com/minio/mc/cmd.CommitID=$MC_COMMIT \
  -X github.com/minio/mc/cmd.ShortCommitID=${MC_COMMIT:0:12}" .

# Complete only once each binary runs (static: no loader needed) and says what it is.
"$tmp/bin/caddy" version >&2 || die "caddy version failed"
"$tmp/bin/minio" --version >&2 || die "minio --version failed"
MC_CONFIG_DIR=$tmp/mc-config "$tmp/bin/mc" --version >&2 || die "mc --version failed"
rm -rf "$tmp/mc-config" "$tmp"/*.log
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
log "Caddy, MinIO and mc built in $(secs_since "$t0") s"
echo "$out"
