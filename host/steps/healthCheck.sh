# The app's health, through Caddy on the public port, the way users reach it (retro #7).
"$APP_DIR/scripts/healthcheck.sh" --retries "$RETRIES" --interval "$INTERVAL"
