# First contact: wait until the host has finished booting (cloud-init) and apt is free.
command -v apt-get >/dev/null 2>&1 || die "this stack needs a Debian-family host (no apt-get found)"
if command -v cloud-init >/dev/null 2>&1; then
  rc=0
  cloud-init status --wait >/dev/null || rc=$?
  # Exit 2 means "done, with recoverable errors" on newer cloud-init: the host is usable.
  if ((rc != 0 && rc != 2)); then
    die "cloud-init failed (exit $rc): $(cloud-init status --long 2>&1 | tail -n 5)"
  fi
fi
wait_for_apt
# shellcheck disable=SC1091 # the host's own file
say "host ready: $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -r)"
