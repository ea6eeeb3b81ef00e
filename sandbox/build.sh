#!/usr/bin/env bash
# Builds the images the host tests need, without any image registry (see sandbox/README.md):
#   local/bookworm:base            debootstrap --variant=minbase + docker import
#   chitram-standin/postgres:HASH  real PostgreSQL 15 from Debian, for postgres:16-alpine
#   chitram-standin/minio:HASH     MinIO server + mc of that release, from Go modules, for minio/minio
#   chitram-standin/caddy:HASH     Caddy 2.8 from its Go module, for caddy:2.8-alpine
#   chitram-standin/app:HASH       app stand-in (FastAPI, SQLAlchemy/asyncpg, minio; PyPI wheels),
#                                  for chitram-app:sandbox
#   local/droplet:sandbox          the throw-away "droplet" (sshd, cron, Docker engine)
# On this machine's engine the stand-ins keep these private names: a production tag here would
# shadow the real image for every other project on the machine. They get the production tags the
# compose file names only inside a sandbox droplet's own engine (harness/sandbox.ts).
#
# stdout: one line per service image, "<production tag> <private name>" (logs go to stderr).
# Every image carries the label chitram.sandbox.hash (a hash of its recipe, its files and the
# base image id); an image whose label matches is not rebuilt. FORCE=1 rebuilds everything.
# Env: FORCE=1, DEBIAN_MIRROR (default http://deb.debian.org/debian), PARALLEL=0 to build the
# images one after the other (default: service images in parallel), SANDBOX_BUILD_LOGS (dir),
# SANDBOX_BUILD_LOCK (lock file, default /tmp/chitram-sandbox-build.lock).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

FORCE=${FORCE:-0}
PARALLEL=${PARALLEL:-1}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
BASE_IMAGE=local/bookworm:base
DROPLET_IMAGE=local/droplet:sandbox
LABEL=chitram.sandbox.hash
LOG_DIR=${SANDBOX_BUILD_LOGS:-/tmp/chitram-sandbox-build}

STANDIN_REPO=chitram-standin

# name of the directory under sandbox/images -> the tag the compose file uses inside a droplet
declare -A SERVICE_TAGS=(
  [postgres]=postgres:16-alpine
  [minio]=minio/minio:RELEASE.2024-11-07T00-52-20Z
  [caddy]=caddy:2.8-alpine
  [app]=chitram-app:sandbox
)
# Build contexts other than sandbox/images/<name>: what build-go-services.sh (bin/<program>) and
# fetch-app-wheels.sh (wheels/) print, set in main. Each directory's name is a hash of its inputs.
declare -A CONTEXTS=()

log() { printf '[sandbox/build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
now_ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

image_hash() { docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }
up_to_date() { [[ $FORCE != 1 && "$(image_hash "$1")" == "$2" ]]; }

# Legacy builder unless buildx is there (the CLI here has no buildx; the engine is 20.10).
if ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
fi

# Files written into the debootstrap tree before it is imported. Part of the base hash.
configure_rootfs() {
  local root=$1
  chmod 0755 "$root" # mktemp made it 0700: it becomes the image's /
  rm -f "$root/etc/apt/sources.list" "$root/etc/resolv.conf" "$root/etc/hostname"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  # Same tweaks as the official debian image: no service starts during builds, no caches.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  cat >"$root/etc/apt/apt.conf.d/90sandbox" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  # Small images matter: the droplet's inner engine uses vfs, which copies every layer.
  cat >"$root/etc/dpkg/dpkg.cfg.d/90sandbox-nodoc" <<'DPKG'
force-unsafe-io
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
DPKG
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/var/lib/apt/lists/"* \
    "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb "$root/var/log/"*.log
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
}

build_base() {
  local hash t0 rootfs
  hash=$({
    echo "base-v1 $SUITE minbase"
    declare -f configure_rootfs
  } | sha256sum | cut -c1-16)
  if up_to_date "$BASE_IMAGE" "$hash"; then
    log "$BASE_IMAGE is up to date ($hash)"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap is missing (run .ci/install-host-tools.sh)"
  t0=$(now_ms)
  rootfs=$(mktemp -d /var/tmp/chitram-bookworm.XXXXXX)
  # shellcheck disable=SC2064 # expand now: the trap must remove this very directory
  trap "rm -rf '$rootfs'" EXIT
  log "debootstrap $SUITE from $MIRROR (log: $LOG_DIR/debootstrap.log)"
  if ! debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$LOG_DIR/debootstrap.log" 2>&1; then
    tail -n 30 "$LOG_DIR/debootstrap.log" >&2
    die "debootstrap failed"
  fi
  log "debootstrap took $(secs_since "$t0") s"
  configure_rootfs "$rootfs"
  tar --numeric-owner -C "$rootfs" -c . |
    docker import \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'CMD ["bash"]' \
      -c "LABEL $LABEL=$hash" \
      - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  log "built $BASE_IMAGE in $(secs_since "$t0") s"
}

# A service image is the base plus exactly ONE layer: its files travel as a gzip+base64 build
# argument that the Dockerfile's single RUN unpacks, because a COPY would add a second layer
# and the droplet's vfs engine stores every layer as a full copy of the filesystem.
service_files_b64() {
  local dir=$1
  if [[ -d $dir/rootfs ]]; then
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=go-w \
      --exclude=__pycache__ -C "$dir/rootfs" -c . | gzip -n -9 | base64 -w0
  fi
}

# Builds image $1 labelled with recipe hash $2 from context $4 (extra `docker build` arguments
# after it), unless an image with that hash exists; the build log goes to $LOG_DIR/$3.log.
build_image() {
  local tag=$1 hash=$2 name=$3 dir=$4 t0
  shift 4
  if up_to_date "$tag" "$hash"; then
    log "$tag is up to date ($hash)"
    return
  fi
  t0=$(now_ms)
  log "building $tag (log: $LOG_DIR/$name.log)"
  if ! docker build --rm --force-rm --label "$LABEL=$hash" -t "$tag" "$@" "$dir" >"$LOG_DIR/$name.log" 2>&1; then
    tail -n 40 "$LOG_DIR/$name.log" >&2
    die "building $tag failed"
  fi
  log "built $tag in $(secs_since "$t0") s"
}

# The recipe hash of service image $1: the base image id, its Dockerfile, its files and, for an
# image built from a prepared context (Go binaries, wheels), that context's name (it names their versions).
service_hash() {
  local dir=$here/images/$1
  local context=${CONTEXTS[$1]:-$dir}
  {
    docker image inspect -f '{{.Id}}' "$BASE_IMAGE"
    cat "$dir/Dockerfile"
    service_files_b64 "$dir"
    [[ $context == "$dir" ]] || basename "$context"
  } | sha256sum | cut -c1-16
}

# The private name of service image $1 on this machine's engine.
standin_name() { echo "$STANDIN_REPO/$1:$(service_hash "$1")"; }

build_service() {
  local name=$1 dir=$here/images/$1 files tag
  local context=${CONTEXTS[$1]:-$dir}
  files=$(service_files_b64 "$dir")
  if ((${#files} > 100000)); then
    die "$name: files are ${#files} bytes as base64; the build argument must stay under 100 kB"
  fi
  tag=$(standin_name "$name")
  local -a args=(-f "$dir/Dockerfile")
  if [[ -n $files ]]; then
    args+=(--build-arg "SANDBOX_FILES=$files")
  fi
  build_image "$tag" "${tag##*:}" "$name" "$context" "${args[@]}"
}

build_droplet() {
  local dir=$here/droplet base_id hash
  base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  hash=$({
    echo "$base_id"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=go-w -C "$dir" -c .
  } | sha256sum | cut -c1-16)
  build_image "$DROPLET_IMAGE" "$hash" droplet "$dir" --build-arg "BASE=$BASE_IMAGE"
}

main() {
  local t0 name pid failed=0
  local -A pids=()
  t0=$(now_ms)
  mkdir -p "$LOG_DIR"
  "$repo/.ci/start-dockerd.sh"
  # Several test runs may share this engine: one build at a time, the others then find the
  # images up to date.
  exec 9>"${SANDBOX_BUILD_LOCK:-/tmp/chitram-sandbox-build.lock}"
  if ! flock -n 9; then
    log "waiting for another sandbox/build.sh to finish"
    flock 9
  fi
  build_base
  CONTEXTS[caddy]=$("$here/build-go-services.sh")
  CONTEXTS[minio]=${CONTEXTS[caddy]}
  CONTEXTS[app]=$("$here/fetch-app-wheels.sh")
  if [[ $PARALLEL == 1 ]]; then
    for name in "${!SERVICE_TAGS[@]}"; do
      build_service "$name" &
      pids[$name]=$!
    done
    build_droplet &
    pids[droplet]=$!
    for name in "${!pids[@]}"; do
      pid=${pids[$name]}
      wait "$pid" || failed=1
    done
    ((failed == 0)) || die "some images failed to build (logs in $LOG_DIR)"
  else
    for name in postgres minio caddy app; do
      build_service "$name"
    done
    build_droplet
  fi
  # Old versions of these images (untagged by a rebuild) are dropped, unless a container uses them.
  docker image prune -f --filter "label=$LABEL" >/dev/null || true
  for name in postgres minio caddy app; do
    echo "${SERVICE_TAGS[$name]} $(standin_name "$name")"
  done
  log "all sandbox images ready in $(secs_since "$t0") s"
}

main "$@"
