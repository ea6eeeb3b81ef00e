# Shared helpers for the stack's remote steps. Each step script is rendered as:
# shebang + strict mode, its parameters as shell variables, this file, then the step's body.

die() {
  echo "chitram: $*" >&2
  exit 1
}

say() {
  echo "chitram: $*"
}

# Reads files in the bundle format of templates/hostFiles.ts from stdin into directory $1,
# each under its absolute path below $1 and with its mode. Lists the paths on stdout.
receive_files() {
  local root=$1 header tag mode count path n line
  while IFS= read -r header; do
    [[ -z $header ]] && continue
    read -r tag mode count path <<<"$header"
    [[ $tag == "#chitram-file" && $mode =~ ^0[0-7]{3}$ && $count =~ ^[0-9]+$ && $path == /* ]] ||
      die "bad bundle header: $header"
    mkdir -p "$root$(dirname "$path")"
    {
      for ((n = 0; n < count; n++)); do
        IFS= read -r line || die "bundle ended inside $path"
        printf '%s\n' "$line"
      done
    } >"$root$path"
    chmod "$mode" "$root$path"
    echo "$path"
  done
}

# Installs $1 at $2 atomically (a temp file beside the target, then rename), owned by $3.
install_atomically() {
  local src=$1 dest=$2 owner=$3 tmp
  tmp=$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX")
  cat "$src" >"$tmp"
  chmod "$(stat -c %a "$src")" "$tmp"
  chown "$owner" "$tmp"
  mv -f "$tmp" "$dest"
}

# apt/dpkg can be held for minutes by cloud-init or unattended-upgrades on a new droplet.
apt_busy() {
  if command -v fuser >/dev/null 2>&1; then
    fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock >/dev/null 2>&1
  else
    pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1
  fi
}

wait_for_apt() {
  local waited=0
  while apt_busy; do
    ((waited < 600)) || die "apt/dpkg is still locked after 600 s"
    sleep 5
    waited=$((waited + 5))
  done
}

apt_install() {
  wait_for_apt
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}

has_systemd() {
  [[ -d /run/systemd/system ]]
}

in_container() {
  [[ -f /.dockerenv || -f /run/.containerenv ]] ||
    { command -v systemd-detect-virt >/dev/null 2>&1 && systemd-detect-virt --container --quiet; }
}

# The deploy user exists, logs in with bash, has no usable password, and is in the docker group
# once Docker is installed.
ensure_deploy_user() {
  if ! id -u "$DEPLOY_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --user-group "$DEPLOY_USER"
    say "created user $DEPLOY_USER"
  fi
  usermod --shell /bin/bash "$DEPLOY_USER"
  if getent group docker >/dev/null; then
    usermod -aG docker "$DEPLOY_USER"
  fi
}

deploy_home() {
  getent passwd "$DEPLOY_USER" | cut -d: -f6
}

# authorized_keys: 0600 in a 0700 .ssh, both owned by the deploy user; the file holds exactly the
# stack's deploy key.
install_authorized_keys() {
  local src=$1 home group
  home=$(deploy_home)
  group=$(id -gn "$DEPLOY_USER")
  install -d -m 0700 -o "$DEPLOY_USER" -g "$group" "$home/.ssh"
  chmod 0600 "$src"
  install_atomically "$src" "$home/.ssh/authorized_keys" "$DEPLOY_USER:$group"
}

# A broken sudoers drop-in locks everyone out of sudo, so the file is checked with visudo before
# it is moved into /etc/sudoers.d. The temp name has a dot, which sudo's includedir ignores.
install_sudoers() {
  local src=$1 dest="/etc/sudoers.d/$DEPLOY_USER" tmp
  command -v visudo >/dev/null 2>&1 || apt_install sudo
  tmp=$(mktemp /etc/sudoers.d/.chitram.XXXXXX)
  cat "$src" >"$tmp"
  chmod 0440 "$tmp"
  chown root:root "$tmp"
  if ! visudo -cf "$tmp" >/dev/null; then
    rm -f "$tmp"
    die "the sudoers drop-in fails visudo -c; /etc/sudoers.d was left unchanged"
  fi
  mv -f "$tmp" "$dest"
  visudo -c >/dev/null || die "sudo configuration is invalid after installing $dest"
}
