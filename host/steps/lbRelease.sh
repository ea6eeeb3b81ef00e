# The release step of a droplet behind a load balancer: out of the load balancer, the release
# (composeUp.sh, run whole in the subshell release_step), back in. A release that failed was
# rolled back by composeUp.sh, so the droplet goes back in with the version it had; the step
# still fails, and the engine releases no later droplet (each one's files and release wait for
# the one before it: components/appDeployment.ts). At the step's time limit the TERM reaches both
# shells: the release rolls back, and this one waits for it, then puts the droplet back. Any
# other way out puts the droplet back too (the EXIT trap).
cd "$APP_DIR"
trap ':' TERM
trap 'rm -f "$DRAIN_FILE"' EXIT
drain_from_lb
# Not `release_step || rc=$?`: bash ignores errexit in a function called where a failure is
# handled, and composeUp.sh relies on it (release_step sets it again first thing).
set +e
release_step
rc=$?
set -e
return_to_lb
trap - EXIT
((rc == 0)) || exit "$rc"
