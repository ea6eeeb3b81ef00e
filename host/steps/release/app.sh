# The app part of the release step (composeUp.sh), Kamal's way: find the live container, start
# the new version next to it, gate it on its health, switch Caddy to it, stop the old one; or
# abandon the release and leave the live one serving.

container_name() { docker inspect -f '{{.Name}}' "$1" | sed 's|^/||'; }
app_ids() { docker compose ps -a -q app; }

# Caddy proxies to the container the upstream file names (render/caddyfile.ts imports it).
write_upstream() {
  local tmp
  tmp=$(mktemp "$(dirname "$APP_UPSTREAM")/.app-upstream.XXXXXX")
  printf 'to %s:%s\n' "$1" "$APP_PORT" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$APP_UPSTREAM"
}

# One at a time: a release, a backup's pause of MinIO for its pair (host/scripts/backup.sh), or a
# restore (host/scripts/restore.sh), which take this lock too. Held until the step ends. The file
# is readable by both users.
take_release_lock() {
  [[ -e $RELEASE_LOCK ]] || (umask 022 && : >>"$RELEASE_LOCK") || die "cannot create $RELEASE_LOCK"
  exec 8<"$RELEASE_LOCK"
  flock -n 8 && return 0
  say "a backup (MinIO paused for its consistent pair), a restore, or an earlier release step still running on the host holds $RELEASE_LOCK: waiting for it to end (up to ${WAIT_SECONDS}s)"
  flock -w "$WAIT_SECONDS" 8 ||
    die "$RELEASE_LOCK has been held for ${WAIT_SECONDS}s (by a backup, a restore, or an earlier release step still running: fuser -v $RELEASE_LOCK names it): nothing changed; run pulumi up again once it is done"
}

# The live container: the one the upstream file names; on a host deployed before releases were
# health-gated, compose's single running app container. Containers of a release that did not
# finish (the step was killed) never served and are removed.
find_live() {
  local named="" id name running
  [[ -f $APP_UPSTREAM ]] && named=$(sed -n 's/^to \(.*\):[0-9]*$/\1/p' "$APP_UPSTREAM")
  live=""
  for id in $(app_ids); do
    [[ $(container_name "$id") == "$named" ]] && live=$named
  done
  if [[ -z $live ]]; then
    running=$(docker compose ps -q app)
    [[ $(wc -w <<<"$running") == 1 ]] && live=$(container_name "$running")
  fi
  for id in $(app_ids); do
    name=$(container_name "$id")
    if [[ $name != "$live" ]]; then
      docker rm -f "$id" >/dev/null
      say "removed $name, left by an unfinished release"
    fi
  done
  [[ -n $live && $named == "$live" ]] || write_upstream "${live:-app}"
}

still_serving() {
  if [[ -n $live ]]; then
    echo "  $live ($(docker inspect -f '{{.Config.Image}}' "$live")) still serves: Caddy was not switched."
  else
    echo "  No earlier app container exists on this host."
  fi
  echo "  To retry: fix the image or pick another, then: pulumi config set chitram:appImage <image> && pulumi up"
  echo "  (this step runs again on the next up). docs/RUNBOOK.md, \"Releases\", has the way back."
}

pull_image() {
  docker image inspect "$APP_IMAGE" >/dev/null 2>&1 && return 0
  say "pulling $APP_IMAGE"
  if ! docker pull -q "$APP_IMAGE" >/dev/null 2>"$ERR"; then
    die "release of $APP_IMAGE failed: the image cannot be pulled: $(tail -n 3 "$ERR")
$(still_serving)"
  fi
}

# The same request as the compose healthcheck, from inside container $1, with the body.
own_answer() {
  docker exec "$1" python3 -c '
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=3)
    print("HTTP", r.status, r.read(500).decode(errors="replace"))
except urllib.error.HTTPError as e:
    print("HTTP", e.code, e.read(500).decode(errors="replace"))
except Exception as e:
    print(type(e).__name__, e)
' "http://127.0.0.1:$APP_PORT$HEALTH_PATH" 2>&1 | head -c 600 || true
}

# The release could not go live: the new container (if any) removed, the credentials undone,
# the step failed naming why; $1 = why, $2 = the last health output (the release's own).
abandon() {
  local why=$1 out=${2:-} name="" answer="" logs=""
  # A TERM now (the limit reached during the rollback) would start it again: it is ignored, and
  # the KILL comes RELEASE_KILL_AFTER_SECONDS after it.
  trap '' TERM
  if [[ -n $NEW_ID ]]; then
    name=$(container_name "$NEW_ID")
    [[ $(docker inspect -f '{{.State.Running}}' "$NEW_ID") != true ]] || answer=$(own_answer "$NEW_ID")
    logs=$(docker logs --tail "$LOG_LINES" "$NEW_ID" 2>&1 | mask_secrets) || true
    docker rm -f "$NEW_ID" >/dev/null
    NEW_ID=""
  fi
  undo_rotation || true
  echo "chitram: release of $APP_IMAGE failed: ${name:+$name }$why${name:+; it was removed}.
  last health output: ${out:-none}${answer:+
  its own answer on 127.0.0.1:$APP_PORT$HEALTH_PATH: $answer}
$(still_serving)" >&2
  # Last, in the same form as a failed compose up: the failing service's last LOG_LINES lines only.
  if [[ -n $name ]]; then
    echo "--- app ($name, rolled back): last $LOG_LINES log lines" >&2
    [[ -z $logs ]] || printf '%s\n' "$logs" >&2
  fi
  exit 1
}
# TERM before the switch (`timeout` at the step's limit, or `pulumi` stopped), from the moment the
# services may take new credentials: the same rollback. bash runs it once the command in the
# foreground returns (at most the gate's 10 s wget, or a compose up).
on_term() {
  trap '' TERM
  abandon "was stopped before it went live (TERM: the step's time limit, or pulumi was stopped)"
}

start_new() {
  local before
  before=$(app_ids | sort)
  echo "$APP_IMAGE" >>"$APP_IMAGES_LOG"
  if ! docker compose up -d --no-deps --no-recreate --scale "app=$(($(wc -w <<<"$before") + 1))" app 2>"$ERR"; then
    for id in $(comm -13 <(echo "$before") <(app_ids | sort)); do docker rm -f "$id" >/dev/null; done
    abandon "docker compose could not start it: $(tail -n 5 "$ERR")"
  fi
  NEW_ID=$(comm -13 <(echo "$before") <(app_ids | sort))
  [[ $(wc -w <<<"$NEW_ID") == 1 ]] || die "expected one new app container, found: ${NEW_ID:-none}"
  new=$(container_name "$NEW_ID")
}

gate() {
  local url="http://$new:$APP_PORT$HEALTH_PATH" out="" state deadline=$((SECONDS + RELEASE_TIMEOUT))
  say "started $new ($APP_IMAGE); up to ${RELEASE_TIMEOUT}s for $url to answer 200 from the caddy container"
  for (( ; ; )); do
    state=$(docker inspect -f '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}' "$NEW_ID")
    [[ $state == "running 0 "* ]] || abandon "exited on start (status, restarts, exit code: $state)" "$out"
    # timeout, not wget -T: Debian's BusyBox wget (the sandbox's Caddy) crashes on -T.
    out=$(in_caddy timeout 10 wget -q -O /dev/null "$url" 2>&1) && return 0
    ((SECONDS < deadline)) || abandon "did not answer 200 on $url within ${RELEASE_TIMEOUT}s" "$out"
    sleep 0.5
  done
}

switch_to() {
  # A TERM now would remove the container Caddy is being switched to: it waits for the switch.
  trap '' TERM
  write_upstream "$new"
  if ! reload_caddy; then
    write_upstream "${live:-app}"
    abandon "Caddy did not accept the switch to it"
  fi
  NEW_ID=""
  # The credentials the live version now uses: what a later rotation's rollback goes back to.
  remember_live
  # The way back (docs/RUNBOOK.md, "Releases"): the image before this one is the line above.
  printf '%s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$APP_IMAGE" "$new" "$want" >>"$RELEASES_LOG"
  trap - TERM
  say "$new serves $APP_IMAGE, ${SECONDS}s after the step started"
}

# Stops the old container once Caddy has no request in flight to it (at most DRAIN_SECONDS).
stop_old() {
  local old=$1 deadline=$((SECONDS + DRAIN_SECONDS)) upstreams
  while ((SECONDS < deadline)); do
    upstreams=$(in_caddy timeout 10 wget -q -O - http://127.0.0.1:2019/reverse_proxy/upstreams 2>/dev/null) || break
    grep -q "\"address\":\"$old:$APP_PORT\",\"num_requests\":[1-9]" <<<"$upstreams" || break
    sleep 0.5
  done
  docker stop -t 30 "$old" >/dev/null
  docker rm "$old" >/dev/null
  say "stopped and removed $old"
}

# The app images no rollback needs: every image a release tried (APP_IMAGES_LOG) but the live one
# and the one released before it (RELEASES_LOG's newest other image: "Roll back on purpose" goes
# back to it). An image a container still uses is kept (docker refuses).
prune_images() {
  local previous keep image removed=()
  previous=$(awk -v live="$APP_IMAGE" '$2 != live { image = $2 } END { print image }' "$RELEASES_LOG")
  keep=("$APP_IMAGE" "$previous")
  while IFS= read -r image; do
    [[ -z $image || $image == "${keep[0]}" || $image == "${keep[1]}" ]] && continue
    if docker image inspect "$image" >/dev/null 2>&1 && docker image rm "$image" >/dev/null 2>&1; then
      removed+=("$image")
    fi
  done < <(sort -u "$APP_IMAGES_LOG")
  printf '%s\n' "${keep[@]}" | grep -v '^$' | sort -u >"$APP_IMAGES_LOG"
  ((${#removed[@]} == 0)) || say "removed app images no rollback needs: ${removed[*]}"
}

# The credentials of the version that went live, for a rotation's rollback.
# Each file is copied whole before either is renamed into place: a full disk or a KILL never
# leaves a cut-off credential for a rollback to set.
remember_live() {
  install -d -m 0700 "$LIVE_DIR"
  local f
  for f in "${SERVICE_ENV[@]}"; do install -m 0600 "$f" "$LIVE_DIR/$f.tmp"; done
  for f in "${SERVICE_ENV[@]}"; do mv -f "$LIVE_DIR/$f.tmp" "$LIVE_DIR/$f"; done
  ROTATING=0
}

release() {
  local old=$live
  start_new
  gate
  switch_to
  [[ -z $old ]] || stop_old "$old"
  live=$new
  prune_images
}
