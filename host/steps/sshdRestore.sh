# Runs when the harden step is deleted, on `pulumi destroy` of a target existing stack: the stack's
# sshd drop-in goes, so sshd is again as the host had it before the stack came (its own root login
# and password settings), and the next `pulumi up` makes its first contact the way the first did.
# Checked with sshd -t first: if sshd rejects the configuration without the drop-in, it is put back.
if [[ ! -e $SSHD_DROPIN_PATH ]]; then
  say "sshd: $SSHD_DROPIN_PATH is already gone"
  exit 0
fi
saved=$(mktemp)
trap 'rm -f "$saved"' EXIT
cp -p "$SSHD_DROPIN_PATH" "$saved"
rm -f "$SSHD_DROPIN_PATH"
if ! err=$(sshd -t 2>&1); then
  cp -p "$saved" "$SSHD_DROPIN_PATH"
  die "sshd -t rejects the configuration without the stack's drop-in, so it was put back: $err"
fi
reload_sshd
say "sshd: the stack's drop-in is removed; now $(sshd -T 2>/dev/null | grep -Ei '^(passwordauthentication|permitrootlogin) ' | tr '\n' ' ')"
