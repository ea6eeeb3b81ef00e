#!/bin/sh
# Installs the droplet's packages (run once, by the Dockerfile). Debian bookworm or Ubuntu 22.04.
set -eu
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC1091
. /etc/os-release

# python3 (with its standard library; python3-minimal has no json): Ubuntu and Debian cloud images
# have it; the registry login step merges Docker's config.json with it.
packages="openssh-server sudo cron curl ca-certificates procps iproute2 docker.io passwd adduser
  iptables gzip tar less python3"
compose_from_trixie=no
case "${ID}:${VERSION_CODENAME:-}" in
  debian:bookworm)
    # bookworm has only compose v1: take docker-compose (v2, needs only libc6) from trixie,
    # pinned low so nothing else comes from there (as .ci/install-host-tools.sh does).
    cat >/etc/apt/sources.list.d/trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >/etc/apt/preferences.d/trixie-low
    compose_from_trixie=yes
    ;;
  ubuntu:*) packages="$packages docker-compose-v2" ;;
  *) echo "install.sh: unsupported base ${ID} ${VERSION_CODENAME:-}" >&2; exit 1 ;;
esac

apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $packages >/dev/null
if [ "$compose_from_trixie" = yes ]; then
  apt-get install -y -qq --no-install-recommends -t trixie docker-compose >/dev/null
fi
rm -rf /var/lib/apt/lists/*

# Every droplet gets its own host keys at first start (entrypoint.sh).
rm -f /etc/ssh/ssh_host_*
mkdir -p /run/sshd /root/.ssh
chmod 0700 /root/.ssh
docker compose version
