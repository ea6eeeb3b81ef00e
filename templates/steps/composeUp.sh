# Starts or updates the compose project and waits until every service is healthy.
cd "$APP_DIR"
if ! docker compose up -d --remove-orphans --wait --wait-timeout "$WAIT_SECONDS" 2>"$APP_DIR/.compose-up.err"; then
  docker compose ps -a >&2 || true
  docker compose logs --tail 30 >&2 || true
  die "docker compose up did not get every service healthy: $(tail -n 5 "$APP_DIR/.compose-up.err")"
fi
rm -f "$APP_DIR/.compose-up.err"
say "compose project healthy: $(docker compose ps --services --status running | tr '\n' ' ')"
