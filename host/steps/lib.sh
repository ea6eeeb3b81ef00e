# Shared helpers for the stack's remote steps. Each step script is rendered as:
# shebang + strict mode, its parameters as shell variables, this file, then the step's body.

die() {
  echo "chitram: $*" >&2
  exit 1
}

say() {
  echo "chitram: $*"
}

# Reads a file bundle (format: remote/transfer.ts) from stdin into the work directory $1 and
# checks ALL of it before the caller moves anything into place: the end marker (a bundle cut off
# in transfer has none), the checksum of the whole stream, every header and path, each file's
# checksum and the file count; then that every path named after $1 is in it. The files land under
# "$1/files" with their modes; RECEIVED lists their paths. Any problem ends the step, so call it
# directly: in a pipe, $(...) or <(...) its exit would end only a subshell.
receive_files() {
  local work=$1 bundle="$1/bundle" plain='^(/[A-Za-z0-9._-]+)+$' size trailer tag count sum extra
  local header mode lines fsum path f n line
  shift
  RECEIVED=()
  cat >"$bundle"
  size=$(wc -c <"$bundle")
  ((size > 0)) || die "file bundle: nothing arrived on stdin; nothing was installed"
  trailer=$(tail -n 1 "$bundle")
  read -r tag count sum extra <<<"$trailer"
  [[ -z $(tail -c 1 "$bundle") && $tag == "#chitram-end" && $count =~ ^[0-9]+$ && $sum =~ ^[0-9a-f]{64}$ && -z $extra ]] ||
    die "file bundle is incomplete: its last line is not the end marker (#chitram-end), so it was cut off in transfer; nothing was installed"
  [[ $(head -c "$((size - ${#trailer} - 1))" "$bundle" | sha256sum) == "$sum "* ]] ||
    die "file bundle checksum mismatch: it changed in transfer; nothing was installed"
  ((count > 0)) || die "file bundle holds no file; nothing was installed"
  {
    for ((f = 0; f < count; f++)); do
      { IFS= read -r header && [[ $header != "$trailer" ]]; } ||
        die "file bundle holds $f file(s), its end marker counts $count; nothing was installed"
      read -r tag mode lines fsum path extra <<<"$header"
      [[ $tag == "#chitram-file" && $mode =~ ^0[0-7]{3}$ && $lines =~ ^[0-9]+$ && $fsum =~ ^[0-9a-f]{64}$ &&
        $path =~ $plain && /$path/ != */./* && /$path/ != */../* && -z $extra ]] ||
        die "bad file bundle header: $header; nothing was installed"
      mkdir -p "$work/files$(dirname "$path")"
      for ((n = 0; n < lines; n++)); do
        IFS= read -r line || die "file bundle ended inside $path; nothing was installed"
        printf '%s\n' "$line"
      done >"$work/files$path"
      [[ $(sha256sum <"$work/files$path") == "$fsum "* ]] ||
        die "checksum mismatch for $path in the file bundle; nothing was installed"
      chmod "$mode" "$work/files$path"
      RECEIVED+=("$path")
    done
    { IFS= read -r line && [[ $line == "$trailer" ]]; } ||
      die "file bundle holds more than the $count file(s) its end marker counts; nothing was installed"
  } <"$bundle"
  for path in "$@"; do
    received "$path" || die "file bundle has no $path; nothing was installed"
  done
}

# Whether the last bundle held path $1. A loop, not `printf | grep -q`: under pipefail, grep
# leaving early can fail the pipe.
received() {
  local path
  for path in "${RECEIVED[@]}"; do
    [[ $path == "$1" ]] && return 0
  done
  return 1
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

# Prints the host's SSH key the provider can pin (ED25519, else ECDSA) as "chitram-host-key <type>
# <key>": the stack reads it from the step's stdout.
print_host_key() {
  local type key=""
  for type in ed25519 ecdsa; do
    if [[ -s /etc/ssh/ssh_host_${type}_key.pub ]]; then
      key=$(cut -d' ' -f1,2 "/etc/ssh/ssh_host_${type}_key.pub")
      break
    fi
  done
  [[ -n $key ]] || die "the host has no ED25519 or ECDSA SSH host key in /etc/ssh to pin"
  echo "chitram-host-key $key"
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
# keys the step received (the admin key, and after the first contact the stack and deploy keys).
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

# sshd reads its configuration again; connections that are open stay.
reload_sshd() {
  if has_systemd; then
    systemctl reload ssh 2>/dev/null || systemctl reload sshd
  else
    kill -HUP "$(cat /run/sshd.pid)"
  fi
}
