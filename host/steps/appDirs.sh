# The app directory belongs to the deploy user (the bundle is pushed as that user); data lives in
# DATA_DIR, backups are readable by root only.
#
# DATA_DIR changes when dataVolumeSizeGb goes from 0 to N or back. PostgreSQL would create a new,
# empty database in an empty DATA_DIR and pass every health check while the real one sits in
# OTHER_DATA_DIR: refuse, before anything is restarted, until the data has been moved.
has_database() {
  [[ -s $1/postgres/PG_VERSION ]]
}
if ! has_database "$DATA_DIR" && has_database "$OTHER_DATA_DIR"; then
  die "$OTHER_DATA_DIR holds the PostgreSQL database, and the new data directory $DATA_DIR has none: nothing was changed, the app still runs on $OTHER_DATA_DIR. Move the data first: docs/RUNBOOK.md, \"Move the data between the droplet's disk and a volume\""
fi
group=$(id -gn "$DEPLOY_USER")
install -d -m 0750 -o "$DEPLOY_USER" -g "$group" "$APP_DIR" "$APP_DIR/scripts"
install -d -m 0755 -o "$DEPLOY_USER" -g "$group" "$APP_DIR/caddy"
install -d -m 0755 "$DATA_DIR" "$DATA_DIR/postgres" "$DATA_DIR/minio" "$DATA_DIR/caddy" \
  "$DATA_DIR/caddy/data" "$DATA_DIR/caddy/config"
install -d -m 0700 "$DATA_DIR/backups"
say "app directory $APP_DIR (owner $DEPLOY_USER), data in $DATA_DIR"
