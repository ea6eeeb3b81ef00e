# The backup cron entry and the backup's secrets file arrive on stdin. The cron entry goes to
# /etc/cron.d with cron's required owner and mode; the secrets file is root's alone (0600 in a
# 0700 directory), installed first so that the next cron run already reads it. CRON_PATH,
# BACKUP_SECRETS, BACKUP_LOG and BACKUP_STATUS_FILE come from host.env, pushed by the files step.
[[ -f $APP_DIR/host.env ]] || die "$APP_DIR/host.env is missing: the files step has not run"
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program (render/hostConfig.ts)
. "$APP_DIR/host.env"
incoming=$(mktemp -d)
trap 'rm -rf "$incoming"' EXIT
receive_files "$incoming" "$CRON_PATH" "$BACKUP_SECRETS"
install -d -m 0700 -o root -g root "$(dirname "$BACKUP_SECRETS")"
install_atomically "$incoming/files$BACKUP_SECRETS" "$BACKUP_SECRETS" root:root
install_atomically "$incoming/files$CRON_PATH" "$CRON_PATH" root:root
touch "$BACKUP_LOG"
chmod 0640 "$BACKUP_LOG"
# A new host starts with a fresh backup status (the backup uptime check waits for the first
# scheduled run); afterwards only backup.sh and the cron sweep change it.
if [[ ! -e $BACKUP_STATUS_FILE ]]; then
  install -d -m 0755 "$(dirname "$BACKUP_STATUS_FILE")"
  printf 'backups scheduled %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$BACKUP_STATUS_FILE"
  chmod 0644 "$BACKUP_STATUS_FILE"
fi
say "backup scheduled: $(grep -v '^#' "$CRON_PATH" | grep -v '=' | head -n 1)"
