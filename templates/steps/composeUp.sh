# Starts or updates the compose project and waits until every service is healthy.
cd "$APP_DIR"
if ! docker compose up -d --remove-orphans --wait --wait-timeout "$WAIT_SECONDS" 2>"$APP_DIR/.compose-up.err"; then
  docker compose ps -a >&2 || true
  docker compose logs --tail 30 >&2 || true
  die "docker compose up did not get every service healthy: $(tail -n 5 "$APP_DIR/.compose-up.err")"
fi
rm -f "$APP_DIR/.compose-up.err"
# Compose does not see a changed Caddyfile (a bind mount): Caddy reloads it gracefully, with no
# dropped connections. The reload fails, and so does the step, if the new Caddyfile is invalid.
docker compose exec -T caddy caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile
say "compose project healthy: $(docker compose ps --services --status running | tr '\n' ' ')"
