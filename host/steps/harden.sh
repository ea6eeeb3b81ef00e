# sshd: keys only, and root login closed once the deploy user is proven. The drop-in is checked
# with sshd -t before sshd reloads; a bad file is removed again.
incoming=$(mktemp -d)
trap 'rm -rf "$incoming"' EXIT
receive_files "$incoming" "$SSHD_DROPIN_PATH"
grep -Eq '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/' /etc/ssh/sshd_config ||
  die "/etc/ssh/sshd_config does not include /etc/ssh/sshd_config.d/*.conf"
install_atomically "$incoming/files$SSHD_DROPIN_PATH" "$SSHD_DROPIN_PATH" root:root
if ! sshd -t 2>"$incoming/sshd-t.err"; then
  rm -f "$SSHD_DROPIN_PATH"
  die "sshd -t rejects the configuration, drop-in removed: $(cat "$incoming/sshd-t.err")"
fi
reload_sshd
say "sshd: $(sshd -T 2>/dev/null | grep -Ei '^(passwordauthentication|permitrootlogin) ' | tr '\n' ' ')"
