#!/usr/bin/env bash
# Installs the system tools the test suite needs on a Debian 12 machine (run as root):
# the real validators (caddy, visudo, shellcheck, cloud-init), a Docker engine with compose v2,
# debootstrap for the sandbox droplet's base image and pip for the app stand-in's wheels. Go
# (>= 1.23, for sandbox/build-go-services.sh) comes with the machine. Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Compose v2 is only in trixie; pin trixie low so nothing else is taken from it.
if [[ ! -f /etc/apt/sources.list.d/trixie.sources ]]; then
  cat >/etc/apt/sources.list.d/trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >/etc/apt/preferences.d/trixie-low <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
fi

apt-get update -qq || true
apt-get install -y -qq --no-install-recommends \
  docker.io debootstrap caddy sudo shellcheck cloud-init openssh-client ca-certificates python3-pip \
  >/dev/null
if ! docker compose version >/dev/null 2>&1; then
  apt-get install -y -qq -t trixie --no-install-recommends docker-compose >/dev/null
fi
