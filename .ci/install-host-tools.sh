#!/usr/bin/env bash
# Installs the system tools the test suite needs, as root, on Debian 12/13 or Ubuntu: the real
# validators (caddy, visudo, shellcheck, cloud-init, systemd-analyze), a Docker engine with
# compose v2, debootstrap for the sandbox droplet's base image, pip (zizmor, the app stand-in's
# wheels), openssl (the test CAs of the registry and ACME host tests), and e2fsprogs and mount
# (mkfs.ext4, losetup: the volumes of the local DigitalOcean API). Go (for
# sandbox/build-go-services.sh) comes with the machine. Safe to run again; changes nothing that
# is already there, and prints each change before it makes it.
#
# Only the distribution's own packages are used. The one exception is Debian 12, which has no
# compose v2: there Debian 13 (trixie) is added as an apt source pinned at priority 100, so apt
# takes only what is asked for from it with -t trixie (docker-compose, which needs only libc6).
# Another distribution's sources are never added on Ubuntu (it has docker-compose-v2) or anywhere else.
# INSTALL_ROOT (default: empty, i.e. /) prefixes /etc/os-release and /etc/apt, for tests.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
root=${INSTALL_ROOT:-}

say() { echo "install-host-tools: $*" >&2; }

# shellcheck source=/dev/null
. "$root/etc/os-release"
distro="${ID:-unknown} ${VERSION_ID:-}"

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

missing=()
for pkg in docker.io debootstrap caddy sudo shellcheck cloud-init openssh-client openssl patch ca-certificates python3-pip systemd e2fsprogs mount; do
  installed "$pkg" || missing+=("$pkg")
done

compose=()
trixie=0
if ! docker compose version >/dev/null 2>&1; then
  case "$distro" in
    "ubuntu "*) compose=(docker-compose-v2) ;;
    "debian 12") compose=(-t trixie docker-compose) trixie=1 ;;
    "debian "*) compose=(docker-compose) ;;
    *)
      say "docker compose v2 is missing and $distro is neither Debian nor Ubuntu: install it by hand"
      exit 1
      ;;
  esac
fi

if ((trixie)) && [[ ! -f $root/etc/apt/sources.list.d/trixie.sources ]]; then
  say "adding apt source $root/etc/apt/sources.list.d/trixie.sources (Debian 13 trixie, for compose v2)"
  say "and $root/etc/apt/preferences.d/trixie-low (pin priority 100: nothing else comes from trixie)"
  cat >"$root/etc/apt/sources.list.d/trixie.sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >"$root/etc/apt/preferences.d/trixie-low" <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
fi

if ((${#missing[@]} == 0 && ${#compose[@]} == 0)); then
  exit 0
fi
say "apt-get update"
apt-get update -qq || true
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]} ($distro packages)"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ((${#compose[@]})); then
  say "apt-get install ${compose[*]} (compose v2)"
  apt-get install -y -qq --no-install-recommends "${compose[@]}" >/dev/null
fi
