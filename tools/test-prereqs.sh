#!/usr/bin/env bash
# Runs before `npm test` (and, with --sandbox, before `npm run sandbox`, which needs no zizmor):
# makes sure the real validators, a Docker engine and zizmor are there.
# On a Debian/Ubuntu machine as root it installs what is missing with .ci/install-host-tools.sh
# (which prints each change before it makes it); elsewhere it says what to do. zizmor goes into
# .tools/ inside the repository (tools/install-zizmor.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in caddy visudo shellcheck cloud-init ssh-keygen systemd-analyze debootstrap dockerd patch mkfs.ext4 losetup; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
docker compose version >/dev/null 2>&1 || missing+=("docker compose v2")
python3 -m pip --version >/dev/null 2>&1 || missing+=("python3 pip (for zizmor and the app stand-in's wheels)")

if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "test prerequisites missing: ${missing[*]}; running .ci/install-host-tools.sh" >&2
    bash .ci/install-host-tools.sh
  else
    echo "test prerequisites missing: ${missing[*]}" >&2
    echo "run as root on Debian/Ubuntu: sudo bash .ci/install-host-tools.sh" >&2
    exit 1
  fi
fi
[[ ${1:-} == --sandbox ]] || bash tools/install-zizmor.sh
bash .ci/start-dockerd.sh
