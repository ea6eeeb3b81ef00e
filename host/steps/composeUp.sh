# The release step: brings the services up to date and releases the app without downtime
# (docs/RUNBOOK.md, "Releases"). Rendered after its two parts, release/services.sh and
# release/app.sh, so this file reads as what runs, in order:
#  1. take_release_lock (not during a backup's pause of MinIO), find_live, pull_image: the
#     container Caddy proxies to, and the new image, pulled before anything changes (an image
#     that cannot be had fails the step with no service touched).
#  2. services_up: PostgreSQL, MinIO and Caddy up to date (a changed image or env file restarts
#     that one service), PostgreSQL's password set, Caddy reloaded.
#  3. When the app's compose config (image, env file, settings) differs from the live container's,
#     release: start_new next to the live one, gate on its health from inside Caddy, switch_to
#     it, stop_old once Caddy has no request in flight to it, prune_images no rollback needs.
#     Or abandon: the new container removed, a credential rotation undone, Caddy and the live
#     container left as they were, the step failed naming why and how to retry (a failed step is
#     not recorded, so the next `pulumi up` runs it again).
cd "$APP_DIR"
# ENV_FILE, APP_UPSTREAM, RELEASES_LOG (one line per release that went live: UTC time, image,
# container, hash of the app's compose config), LIVE_DIR, APP_IMAGES_LOG and RELEASE_LOCK come
# from host.env, pushed by the files step.
[[ -f host.env ]] || die "$APP_DIR/host.env is missing: the files step has not run"
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program (render/hostConfig.ts)
. ./host.env
ERR="$APP_DIR/.compose-up.err"
SERVICE_ENV=(.env.postgres .env.minio)
NEW_ID=""
ROTATING=0

# Whether the live container runs what the release would start: the app's resolved compose
# config (image, settings, the env file's values) hashed, against the hash the release log
# recorded for it (compose's own config-hash label changes with the scale a container was made at).
app_unchanged() {
  local released config_hash
  want=$(docker compose config app | sha256sum | cut -c1-64)
  [[ -n $live && -s $RELEASES_LOG ]] || return 1
  read -r _ _ released config_hash < <(tail -n 1 "$RELEASES_LOG")
  [[ $released == "$live" && $(docker inspect -f '{{.State.Running}}' "$live") == true && $config_hash == "$want" ]]
}

take_release_lock
find_live
pull_image
trap on_term TERM
# Any other way out that is not a success (a command that fails under set -e) also puts the
# services back on the live version's credentials; a rotation that went live, or was undone, is not.
trap 'rc=$?; if ((rc != 0)); then undo_rotation || true; fi' EXIT
services_up
if app_unchanged; then
  trap - TERM
  say "app unchanged: $live keeps serving"
  remember_live
else
  release
fi
remove_orphans
rm -f "$ERR"
say "compose project healthy: $(docker compose ps --services --status running | tr '\n' ' ')"
