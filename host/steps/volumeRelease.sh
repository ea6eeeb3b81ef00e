# Runs when the data volume's attachment is about to be deleted (droplet replaced, stack destroyed):
# nothing may be writing to the volume when it is detached. Stops the compose project, flushes
# writes and unmounts DATA_DIR. Every wait is bounded; a failure stops the detach. Docker no longer
# waits for the volume at boot: with it gone, docker.service would not start at all.
if [[ -f $APP_DIR/compose.yaml ]]; then
  cd "$APP_DIR"
  timeout "$STOP_SECONDS" docker compose down --timeout 60 ||
    die "docker compose down did not finish within $STOP_SECONDS s; the volume stays attached (docs/RUNBOOK.md, \"Replacing the droplet or the volume\")"
  cd /
fi
sync
if mountpoint -q "$DATA_DIR"; then
  timeout 60 umount "$DATA_DIR" ||
    die "$DATA_DIR could not be unmounted within 60 s (still in use: $(fuser -vm "$DATA_DIR" 2>&1 | tr '\n' ' ')); the volume stays attached"
  say "app stopped, $DATA_DIR unmounted: the volume can be detached"
else
  say "app stopped; $DATA_DIR is not mounted"
fi
if [[ -e $DOCKER_DROPIN_PATH ]]; then
  rm -f "$DOCKER_DROPIN_PATH"
  if has_systemd; then
    systemctl daemon-reload
  fi
  say "docker.service no longer requires $DATA_DIR to be mounted"
fi
