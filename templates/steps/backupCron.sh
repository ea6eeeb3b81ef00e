# The backup cron entry (arrives on stdin) goes to /etc/cron.d with cron's required owner and mode.
incoming=$(mktemp -d)
trap 'rm -rf "$incoming"' EXIT
receive_files "$incoming" "$CRON_PATH"
install_atomically "$incoming/files$CRON_PATH" "$CRON_PATH" root:root
touch "$BACKUP_LOG"
chmod 0640 "$BACKUP_LOG"
say "backup scheduled: $(grep -v '^#' "$CRON_PATH" | grep -v '=' | head -n 1)"
