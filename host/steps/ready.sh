# First contact: wait until the host has finished booting (cloud-init) and apt is free, then
# record the host's SSH host key, which every later step pins.
command -v apt-get >/dev/null 2>&1 || die "this stack needs a Debian-family host (no apt-get found)"
if command -v cloud-init >/dev/null 2>&1; then
  rc=0
  timeout "$CLOUD_INIT_WAIT_SECONDS" cloud-init status --wait >/dev/null || rc=$?
  ((rc != 124)) || die "cloud-init did not finish within $CLOUD_INIT_WAIT_SECONDS s: $(cloud-init status --long 2>&1 | tail -n 5)"
  # Exit 2 means "done, with recoverable errors" on newer cloud-init: the host is usable.
  if ((rc != 0 && rc != 2)); then
    die "cloud-init failed (exit $rc): $(cloud-init status --long 2>&1 | tail -n 5)"
  fi
fi
wait_for_apt
# The key the provider can pin; cloud-init has generated them by now.
print_host_key
# shellcheck disable=SC1091 # the host's own file
say "host ready: $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -r)"
