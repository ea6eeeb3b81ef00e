# The app directory belongs to the deploy user (the bundle is pushed as that user); data lives in
# DATA_DIR, backups are readable by root only.
group=$(id -gn "$DEPLOY_USER")
install -d -m 0750 -o "$DEPLOY_USER" -g "$group" "$APP_DIR" "$APP_DIR/scripts"
install -d -m 0755 -o "$DEPLOY_USER" -g "$group" "$APP_DIR/caddy"
install -d -m 0755 "$DATA_DIR" "$DATA_DIR/postgres" "$DATA_DIR/minio" "$DATA_DIR/caddy" \
  "$DATA_DIR/caddy/data" "$DATA_DIR/caddy/config"
install -d -m 0700 "$DATA_DIR/backups"
say "app directory $APP_DIR (owner $DEPLOY_USER), data in $DATA_DIR"
