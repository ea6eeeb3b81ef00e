#!/usr/bin/env bash
# Builds the real Pulumi engine this project runs offline: the CLI from its Go modules (through the
# Go module proxy, versions pinned by tools/engine/cli/go.mod + go.sum), and the Node.js language
# host and the command, random, tls and digitalocean provider plugins from the release tarballs in
# $ENGINE_SRC (their sources at their release tags, packed unchanged; SOURCES.md there). Their
# dependencies come from the proxy. Recipe and timings: docs/ENGINE.md.
#
# Output: the LAST line of stdout is the directory that holds
#   bin/pulumi, bin/pulumi-language-nodejs      (put bin/ first on PATH)
#   plugins/resource-<name>-v<version>/...      (each plugin registered at its exact version by
#                                                `pulumi plugin install --file`; point a PULUMI_HOME's
#                                                plugins/ at it)
#   versions                                    (name version, one per line)
# Progress goes to stderr: which binary, and the elapsed time.
# The directory is $CACHE/<key>, <key> a hash of this script, the CLI's go.mod/go.sum, the
# tarballs' sha256 and `go version`: a new version or recipe builds anew, an unchanged one returns
# at once. It counts only with its .complete marker, written after every binary ran (the CLI and
# the language host print their versions, each plugin answers the CLI's schema request); the build
# happens in a temporary directory renamed into place, so an interrupted or failed build never
# looks complete.
# Env: ENGINE_SRC (default ../shared/engine-src beside the repository),
#      CHITRAM_ENGINE_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/chitram-engine), FORCE=1.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
CLI_MODULE_DIR=$here/cli
ENGINE_SRC=${ENGINE_SRC:-$repo/../shared/engine-src}
CACHE=${CHITRAM_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chitram-engine}
FORCE=${FORCE:-0}

CLI_VERSION=3.276.0
LANGUAGE_VERSION=3.259.0
COMMAND_VERSION=1.2.1
RANDOM_VERSION=4.19.1
TLS_VERSION=5.3.0
DIGITALOCEAN_VERSION=4.57.0

# tarball sha256, as ENGINE_SRC/SOURCES.md lists them: another tarball is another build.
tarballs=(
  "pulumi-language-nodejs-v$LANGUAGE_VERSION.tar.gz 9245925d1f7cc119cd27037568674411b3e68bde9277ef566c29f16300ae73f3"
  "pulumi-command-v$COMMAND_VERSION.tar.gz 72feea4e414d802578718f97a67ffe11809bb22d3884c039ffc5435161142e38"
  "pulumi-random-v$RANDOM_VERSION.tar.gz 7eff69d81294f6cd71f01cbc8ce50924fa89d494f51a854b4984b75fc7d424ef"
  "pulumi-tls-v$TLS_VERSION.tar.gz 74b53e110542d2faa3714e3af503fff9005d20b5a7a54dee9aa1c9be72b359a6"
  "pulumi-digitalocean-v$DIGITALOCEAN_VERSION.tar.gz d80144afa40b0f5f9225702804141f6d1b26d043bff88446214d32a386677650"
  "terraform-provider-digitalocean-ea617eca.tar.gz 0f48b7b29249d40f61062d4824781b9808d00e16dca22c49d2a0ef1c913dc00b"
)

log() { printf '[engine %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
now_ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.0f", (b - a) / 1000 }'; }

# Everything a build needs, checked before anything is built.
# The CLI's module needs the Go its go.mod names (its dependencies ask for it); the local
# toolchain is used, never a downloaded one.
go_min=$(awk '$1 == "go" { print $2 }' "$CLI_MODULE_DIR/go.mod")
command -v patch >/dev/null || die "the patch command is missing: the DigitalOcean provider's patches need it (apt-get install patch)"
command -v go >/dev/null || die "the go command is missing: Go >= $go_min builds the engine (https://go.dev/dl)"
go_version=$(go env GOVERSION)
if [[ $(printf '%s\n' "$go_min" "${go_version#go}" | sort -V | head -n 1) != "$go_min" ]]; then
  die "Go >= $go_min is needed to build the engine; found $go_version"
fi
[[ -d $ENGINE_SRC ]] || die "ENGINE_SRC=$ENGINE_SRC is not a directory: it must hold the engine's source tarballs (${tarballs[*]%% *})"
missing=() wrong=()
for entry in "${tarballs[@]}"; do
  file=${entry%% *} sum=${entry##* }
  if [[ ! -f $ENGINE_SRC/$file ]]; then
    missing+=("$file")
  elif [[ $(sha256sum "$ENGINE_SRC/$file" | cut -d' ' -f1) != "$sum" ]]; then
    wrong+=("$file")
  fi
done
((${#missing[@]} == 0)) || die "missing from ENGINE_SRC=$ENGINE_SRC: ${missing[*]}"
((${#wrong[@]} == 0)) || die "not the tarball this build pins (sha256 differs) in ENGINE_SRC=$ENGINE_SRC: ${wrong[*]}"

# The proxy and checksum database as the go command is configured; never a downloaded toolchain.
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

key=$({
  cat "${BASH_SOURCE[0]}" "$CLI_MODULE_DIR/go.mod" "$CLI_MODULE_DIR/go.sum"
  printf '%s\n' "${tarballs[@]}"
  go version
} | sha256sum | cut -c1-16)
out=$CACHE/$key

if [[ $FORCE != 1 && -f $out/.complete ]]; then
  log "the engine is built ($out)"
  echo "$out"
  exit 0
fi

mkdir -p "$CACHE"
# One build at a time (of any key): test files that start together, or two terminals, wait for the
# first build and then take its result.
exec 9<"$CACHE"
if ! flock -n 9; then
  log "another build of this engine is running: waiting for it"
  flock 9
fi
if [[ $FORCE != 1 && -f $out/.complete ]]; then
  log "the engine is built ($out)"
  echo "$out"
  exit 0
fi
tmp=$(mktemp -d "$CACHE/.build-$key.XXXXXX")
# shellcheck disable=SC2064 # expand now: the trap must remove this very directory
trap "chmod -R u+w '$tmp' 2>/dev/null; rm -rf '$tmp'" EXIT
mkdir -p "$tmp/bin" "$tmp/src"
bin=$tmp/bin
t_all=$(now_ms)
log "building the Pulumi CLI v$CLI_VERSION, pulumi-language-nodejs v$LANGUAGE_VERSION and the plugins command $COMMAND_VERSION, random $RANDOM_VERSION, tls $TLS_VERSION, digitalocean $DIGITALOCEAN_VERSION with $go_version into $out"

# Runs "$@" (a go command) with its output in a log, and stops naming $1's step and the go
# command's last lines when it fails. A module the proxy refuses is named by the go command there.
run() {
  local what=$1 t0
  shift
  t0=$(now_ms)
  log "$what ... ($(secs_since "$t_all") s since the start)"
  if ! nice -n 10 "$@" >"$tmp/step.log" 2>&1; then
    tail -n 25 "$tmp/step.log" >&2
    die "$what failed after $(secs_since "$t0") s: $*"
  fi
  log "$what: done in $(secs_since "$t0") s"
}

ldflag_version() { printf -- '-s -w -X %s=%s' "$1" "$2"; }

extract() {
  tar -C "$tmp/src" -xzf "$ENGINE_SRC/$1"
}

# A Terraform-bridged provider's module, built without its tests: their test-only requirements
# (pulumi/providertest and what it needs) are modules the proxy refuses.
drop_tests() {
  local dir=$1
  find "$dir" -name '*_test.go' -delete
  rm -rf "$dir/test-programs"
  go -C "$dir" mod edit -droprequire github.com/pulumi/providertest
}

# $1 name, $2 provider dir, $3 module path of the version variable, $4 version, $5 cmd dir.
build_bridged() {
  local name=$1 dir=$2 pkg=$3 version=$4 cmd=$2/cmd/pulumi-resource-$1
  drop_tests "$dir"
  run "$name: go mod tidy" go -C "$dir" mod tidy
  run "$name: schema" env VERSION="$version" go -C "$cmd" run generate.go
  run "$name: build" go -C "$cmd" build -trimpath -ldflags "$(ldflag_version "$pkg/pkg/version.Version" "$version")" \
    -o "$bin/pulumi-resource-$name" .
}

# 1. The CLI, from the wrapper module's pinned go.mod/go.sum.
run "pulumi CLI v$CLI_VERSION" go -C "$CLI_MODULE_DIR" build -mod=readonly -trimpath \
  -ldflags "$(ldflag_version github.com/pulumi/pulumi/sdk/v3/go/common/version.Version "v$CLI_VERSION")" \
  -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi

# 2. The Node.js language host: its go.mod points at the pulumi repository's own pkg and sdk
# folders; the released modules of the same version replace them.
extract "pulumi-language-nodejs-v$LANGUAGE_VERSION.tar.gz"
lang=$tmp/src/pulumi-language-nodejs/sdk/nodejs/cmd/pulumi-language-nodejs
go -C "$lang" mod edit \
  -dropreplace github.com/pulumi/pulumi/pkg/v3 -dropreplace github.com/pulumi/pulumi/sdk/v3 \
  -require "github.com/pulumi/pulumi/pkg/v3@v$LANGUAGE_VERSION" -require "github.com/pulumi/pulumi/sdk/v3@v$LANGUAGE_VERSION"
run "pulumi-language-nodejs: go mod tidy" go -C "$lang" mod tidy
run "pulumi-language-nodejs: build" go -C "$lang" build -trimpath \
  -ldflags "$(ldflag_version github.com/pulumi/pulumi/sdk/v3/go/common/version.Version "v$LANGUAGE_VERSION")" \
  -o "$bin/pulumi-language-nodejs" .

# 3. command: builds as released.
extract "pulumi-command-v$COMMAND_VERSION.tar.gz"
run "command: build" go -C "$tmp/src/pulumi-command/provider" build -trimpath \
  -ldflags "$(ldflag_version github.com/pulumi/pulumi-command/provider/pkg/version.Version "$COMMAND_VERSION")" \
  -o "$bin/pulumi-resource-command" ./cmd/pulumi-resource-command

# 4. random and tls (bridged from their Terraform providers, the shims in the tarballs).
extract "pulumi-random-v$RANDOM_VERSION.tar.gz"
build_bridged random "$tmp/src/pulumi-random/provider" github.com/pulumi/pulumi-random/provider/v4 "$RANDOM_VERSION"
extract "pulumi-tls-v$TLS_VERSION.tar.gz"
build_bridged tls "$tmp/src/pulumi-tls/provider" github.com/pulumi/pulumi-tls/provider/v5 "$TLS_VERSION"

# 5. digitalocean: the provider's go.mod replaces its upstream with ../upstream (a git submodule
# of the repository, packed as its own tarball) and godo with the copy vendored there; the
# provider's patches give that copy a go.mod.
extract "pulumi-digitalocean-v$DIGITALOCEAN_VERSION.tar.gz"
extract terraform-provider-digitalocean-ea617eca.tar.gz
do_src=$tmp/src/pulumi-digitalocean
mv "$tmp/src/terraform-provider-digitalocean" "$do_src/upstream"
for p in "$do_src"/patches/*.patch; do
  patch -d "$do_src/upstream" -p1 --quiet <"$p" || die "digitalocean: $(basename "$p") does not apply"
done
build_bridged digitalocean "$do_src/provider" github.com/pulumi/pulumi-digitalocean/provider/v4 "$DIGITALOCEAN_VERSION"

chmod -R u+w "$tmp/src"
rm -rf "$tmp/src" "$tmp/step.log"

# Complete only once each binary has run: the CLI and the language host print their versions,
# and each plugin, registered at its exact version in a scratch PULUMI_HOME, answers the CLI's
# schema request (a plugin that cannot start fails it).
export PULUMI_HOME=$tmp/home PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
[[ $("$bin/pulumi" version) == "v$CLI_VERSION" ]] || die "bin/pulumi does not say v$CLI_VERSION: $("$bin/pulumi" version 2>&1)"
[[ $("$bin/pulumi-language-nodejs" -version) == "v$LANGUAGE_VERSION" ]] ||
  die "bin/pulumi-language-nodejs does not say v$LANGUAGE_VERSION"
printf 'pulumi %s\npulumi-language-nodejs %s\n' "$CLI_VERSION" "$LANGUAGE_VERSION" >"$tmp/versions"
for plugin in "command $COMMAND_VERSION" "random $RANDOM_VERSION" "tls $TLS_VERSION" "digitalocean $DIGITALOCEAN_VERSION"; do
  name=${plugin% *} version=${plugin#* }
  "$bin/pulumi" plugin install resource "$name" "$version" --file "$bin/pulumi-resource-$name" >/dev/null 2>"$tmp/step.log" ||
    die "$name: pulumi plugin install failed: $(tail -n 5 "$tmp/step.log")"
  rm "$bin/pulumi-resource-$name"
  schema_version=$("$bin/pulumi" package get-schema "$name@$version" 2>"$tmp/step.log" | grep -m1 -o '"version": *"[^"]*"' || true)
  [[ $schema_version == *"\"$version\"" ]] ||
    die "$name $version: the plugin did not answer the schema request ($schema_version): $(tail -n 5 "$tmp/step.log")"
  log "$name $version: registered, answers as $schema_version"
  echo "$name $version" >>"$tmp/versions"
done
mv "$tmp/home/plugins" "$tmp/plugins"
rm -rf "${tmp:?}/home" "$tmp/step.log"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
log "the engine is built in $(secs_since "$t_all") s"
echo "$out"
