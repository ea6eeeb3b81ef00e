# With a managed database: lets the app's user create tables in the public schema of its
# database. DigitalOcean makes the database as ADMIN_USER (doadmin), and from PostgreSQL 15 only a
# database's owner may create in its public schema, so the app's first migration would fail with
# "permission denied for schema public". The grant is idempotent. ADMIN_USER's password is the
# first line of stdin and reaches psql in its environment (never a command line); the connection
# is pgclient's: the cluster's private host, TLS with the certificate and host name checked.
cd "$APP_DIR"
[[ -f host.env ]] || die "$APP_DIR/host.env is missing: the files step has not run"
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program (render/hostConfig.ts)
. ./host.env
[[ ${DATABASE:-} == managed ]] || die "host.env does not name a managed database (DATABASE=${DATABASE:-}); nothing was granted"
IFS= read -r admin_password || [[ -n ${admin_password:-} ]] || die "the admin password did not arrive on stdin; nothing was granted"
err=$(mktemp)
# Named, so that a run stopped by the timeout leaves no container behind.
trap 'rm -f "$err"; docker rm -f chitram-database-grant >/dev/null 2>&1 || true' EXIT
docker rm -f chitram-database-grant >/dev/null 2>&1 || true
# shellcheck disable=SC2016 # expanded by sh inside the pgclient container
if ! printf '%s\n' "$admin_password" |
  timeout 120 docker compose --profile tools run --rm -T --no-deps --name chitram-database-grant -e "ADMIN_USER=$ADMIN_USER" pgclient sh -c \
    'IFS= read -r PGPASSWORD && export PGPASSWORD && exec psql -X -q -v ON_ERROR_STOP=1 -U "$ADMIN_USER" -d "$POSTGRES_DB" -c "GRANT CREATE, USAGE ON SCHEMA public TO \"$POSTGRES_USER\""' \
    >/dev/null 2>"$err"; then
  die "granting the app's user the public schema of its database failed; the app was not released:
$(tail -n 5 "$err")"
fi
say "the app's user may create tables in the managed database's public schema"
