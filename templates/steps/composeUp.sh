# Starts or updates the compose project and waits until every service is healthy.
cd "$APP_DIR"
err="$APP_DIR/.compose-up.err"

# The env file's secret values (passwords, keys, the MinIO user), each replaced by [secret] in
# what this step prints: a failing service may log its environment.
mask_secrets() {
  awk -v env_file="$APP_DIR/$ENV_FILE" '
    BEGIN {
      while ((getline line < env_file) > 0) {
        eq = index(line, "=")
        key = substr(line, 1, eq - 1)
        if (eq > 1 && key ~ /(PASSWORD|SECRET_KEY|ACCESS_KEY|ROOT_USER)$/ && eq < length(line)) secret[substr(line, eq + 1)] = 1
      }
    }
    {
      for (s in secret) while ((at = index($0, s)) > 0) $0 = substr($0, 1, at - 1) "[secret]" substr($0, at + length(s))
      print
    }'
}

# On failure: the state of every service, then the last LOG_LINES log lines of the services that
# are not running and healthy, and no others (CI keeps this output).
fail() {
  docker compose ps -a >&2 || true
  local service state health
  while read -r service state health; do
    [[ $state == running && ${health:-healthy} == healthy ]] && continue
    echo "--- $service ($state${health:+, $health}): last $LOG_LINES log lines" >&2
    docker compose logs --no-color --tail "$LOG_LINES" "$service" 2>&1 | mask_secrets >&2 || true
  done < <(docker compose ps -a --format '{{.Service}} {{.State}} {{.Health}}')
  die "$1: $(tail -n 5 "$err" | mask_secrets)"
}

# PostgreSQL takes POSTGRES_PASSWORD only when it creates its data directory. After a new password
# (the generated one was replaced) the app could no longer log in, so the password in the env file
# is set on every run, before the app starts: psql over the container's local socket reads it from
# the container's environment (\getenv), never from a command line.
docker compose up -d --wait --wait-timeout "$WAIT_SECONDS" postgres 2>"$err" ||
  fail "PostgreSQL did not get healthy"
if ! docker compose exec -T postgres sh -c 'psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres' >/dev/null 2>"$err" <<'SQL'; then
\getenv password POSTGRES_PASSWORD
ALTER ROLE CURRENT_USER WITH PASSWORD :'password';
SQL
  fail "setting the PostgreSQL password from the env file failed"
fi
if ! docker compose up -d --remove-orphans --wait --wait-timeout "$WAIT_SECONDS" 2>"$err"; then
  fail "docker compose up did not get every service healthy"
fi
rm -f "$err"
# Compose does not see a changed Caddyfile (a bind mount): Caddy reloads it gracefully, with no
# dropped connections. The reload fails, and so does the step, if the new Caddyfile is invalid.
docker compose exec -T caddy caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile
say "compose project healthy: $(docker compose ps --services --status running | tr '\n' ' ')"
