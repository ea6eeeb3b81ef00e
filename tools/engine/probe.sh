#!/usr/bin/env bash
# Asks the Go module proxy for every module the real Pulumi engine is built from (the CLI, the
# Node.js language host and the providers this stack uses) and prints, for each, whether the proxy
# serves it. Exit 0 only when every module is served, so `npm run engine:probe` says in one run
# whether `pulumi up` through the real engine can be built on this machine. Downloads nothing but
# the modules' metadata and zips into the Go module cache.
set -uo pipefail

# module@version, as close to package.json's pins as was known to exist (docs/ENGINE.md says why).
modules=(
  "github.com/pulumi/pulumi/pkg/v3@v3.276.0"
  "github.com/pulumi/pulumi/sdk/v3@v3.276.0"
  "github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3@v3.0.0-20260820084410-a05d88f24d05"
  "github.com/pulumi/pulumi-command/provider@v0.0.0-20260303235922-7f3eb6f3b77c"
  "github.com/pulumi/pulumi-random/provider/v4@v4.0.0-20260722185042-f2d8b029d0f7"
  "github.com/pulumi/pulumi-tls/provider/v5@v5.0.0-20260722185624-c3b9a61e7075"
  "github.com/pulumi/pulumi-digitalocean/provider/v4@latest"
)

if ! command -v go >/dev/null 2>&1; then
  echo "engine probe: the go command is missing (Go >= 1.25 is needed to build the engine)" >&2
  exit 2
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
refused=0
for module in "${modules[@]}"; do
  if out=$(cd "$scratch" && GOFLAGS=-mod=mod go mod download -json "$module" 2>&1) &&
    ! grep -q '"Error"' <<<"$out"; then
    printf 'served   %s\n' "$module"
  else
    refused=$((refused + 1))
    reason=$(grep -o '"Error": "[^"]*' <<<"$out" | head -n 1 | sed 's/"Error": "//; s/\\n.*//')
    printf 'REFUSED  %s\n         %s\n' "$module" "${reason:-$out}"
  fi
done
if ((refused)); then
  echo "engine probe: $refused of ${#modules[@]} modules are refused by $(go env GOPROXY); the real engine cannot be built here" >&2
  exit 1
fi
echo "engine probe: every module is served"
