# The deploy user with the stack's key and passwordless sudo. Files arrive on stdin.
incoming=$(mktemp -d)
trap 'rm -rf "$incoming"' EXIT
receive_files "$incoming" "$AUTHORIZED_KEYS_PATH" "$SUDOERS_PATH"
ensure_deploy_user
install_authorized_keys "$incoming/files$AUTHORIZED_KEYS_PATH"
install_sudoers "$incoming/files$SUDOERS_PATH"
say "deploy user $DEPLOY_USER: key installed, passwordless sudo checked by visudo"
