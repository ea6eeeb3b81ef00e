# Runs when the deploy-user step is deleted, on `pulumi destroy` of a target existing stack: the
# keys the stack installed (its admin, stack and deploy keys, the authorized_keys of the stored
# bundle) leave the deploy user's authorized_keys; any other line stays. The user, its sudoers
# drop-in ($SUDOERS_PATH, in the bundle too), Docker and the app with its data are kept (README,
# "What destroy leaves").
incoming=$(mktemp -d)
trap 'rm -rf "$incoming"' EXIT
receive_files "$incoming" "$AUTHORIZED_KEYS_PATH" "$SUDOERS_PATH"
if [[ ! -f $AUTHORIZED_KEYS_PATH ]]; then
  say "deploy user $DEPLOY_USER: $AUTHORIZED_KEYS_PATH is already gone"
  exit 0
fi
# A line goes when one of its fields is the base64 of one of the stack's keys.
awk 'NR == FNR { if ($2 != "") stack[$2] = 1; next } { for (i = 1; i <= NF; i++) if ($i in stack) next; print }' \
  "$incoming/files$AUTHORIZED_KEYS_PATH" "$AUTHORIZED_KEYS_PATH" >"$incoming/kept"
removed=$(($(wc -l <"$AUTHORIZED_KEYS_PATH") - $(wc -l <"$incoming/kept")))
chmod 0600 "$incoming/kept"
install_atomically "$incoming/kept" "$AUTHORIZED_KEYS_PATH" "$DEPLOY_USER:$(id -gn "$DEPLOY_USER")"
say "deploy user $DEPLOY_USER: the stack's $removed key(s) removed from $AUTHORIZED_KEYS_PATH, $(wc -l <"$incoming/kept") other line(s) kept"
