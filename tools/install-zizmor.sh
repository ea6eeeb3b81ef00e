#!/usr/bin/env bash
# Installs zizmor, the security audit of the GitHub Actions workflows that test/workflows.test.ts
# runs, from PyPI into .tools/zizmor/ inside the repository (pip --target: nothing outside the
# repository changes, no root needed). Safe to run again: does nothing when that version is there.
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.32.0
dir=.tools/zizmor

if [[ "$("$dir/bin/zizmor" --version 2>/dev/null)" == "zizmor $version" ]]; then
  exit 0
fi
echo "install-zizmor: python3 -m pip install --target $dir zizmor==$version (from PyPI, into the repository)" >&2
rm -rf "$dir"
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
  --root-user-action=ignore --target "$dir" "zizmor==$version"
"$dir/bin/zizmor" --version >/dev/null
