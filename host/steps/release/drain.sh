# Behind a load balancer (appHosts > 1), the release step takes its droplet out of the load
# balancer first. The drain file makes Caddy answer the load balancer's health checks with 503
# (render/caddyfile.ts: the requests the load balancer forwards carry X-Forwarded-For, its checks
# do not). The step goes on once Caddy's log shows the load balancer has seen LB_UNHEALTHY such
# answers in a row, plus a second for requests already on their way; and after the release,
# whatever its outcome (a new version live or the old one kept), the droplet goes back in and the
# step waits for LB_HEALTHY passing checks, so the next droplet is released only once this one
# serves again. Neither waits longer than LB_WAIT_SECONDS: a load balancer that does not check
# this droplet fails the step (before the release, or after it, with the droplet back in).

DRAINED=0

# Whether the running Caddy answers the load balancer's checks of this health path by the drain
# file. Not when no Caddy runs yet (a new droplet), nor when it still runs the Caddyfile of
# before: the droplet's first release behind the load balancer, or the first after a change of
# healthPath (the load balancer already checks the new path). Such a release runs without a
# drain, as on a single droplet (with no failed request there either). A Caddy that runs but does
# not answer fails the step: nothing is released blind.
caddy_drains() {
  local config path=${HEALTH_PATH%%\?*}
  [[ -n $(docker compose ps -q caddy 2>/dev/null) ]] || return 1
  # Read whole, then matched: `| grep -q` would stop reading at the match, and under pipefail the
  # writer's SIGPIPE would fail the pipeline.
  config=$(docker compose exec -T caddy wget -qO- http://127.0.0.1:2019/config/) ||
    die "cannot read the running Caddy's config (its admin API), so this droplet cannot be taken out of the load balancer: nothing was released; run pulumi up again once Caddy answers"
  [[ $config == *"\"/${DRAIN_FILE##*/}\""* && $config == *"\"path\":[\"$path\"]"* ]]
}

# How many of the load balancer's checks of the health path Caddy answered with `status` since
# `since` (its checks carry no X-Forwarded-For; the requests it forwards do).
lb_checks() {
  local since=$1 status=$2 path=${HEALTH_PATH%%\?*}
  docker compose logs --since "$since" --no-log-prefix caddy 2>/dev/null |
    grep -F -e "\"uri\":\"$path\"" -e "\"uri\":\"$path?" |
    grep -F "\"status\":$status," | grep -vc X-Forwarded-For || true
}

# Waits until the load balancer has made `count` checks answered `status` since `since`, and at
# least `count` check intervals have passed (a load balancer may check from more than one place:
# each has then had the time to see as many); at most LB_WAIT_SECONDS.
wait_for_checks() {
  local since=$1 status=$2 count=$3 started=$SECONDS
  until (($(lb_checks "$since" "$status") >= count && SECONDS - started >= count * LB_CHECK_SECONDS)); do
    ((SECONDS - started < LB_WAIT_SECONDS)) || return 1
    sleep 1
  done
}

drain_from_lb() {
  if ! caddy_drains; then
    say "Caddy does not drain on ${HEALTH_PATH%%\?*} yet (no Caddy yet, or its first release behind the load balancer or since a change of healthPath): released without a drain, as on a single droplet"
    return 0
  fi
  local since
  since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  mkdir -p "$(dirname "$DRAIN_FILE")"
  : >"$DRAIN_FILE"
  DRAINED=1
  say "out of the load balancer: waiting for ${LB_UNHEALTHY} of its health checks to get 503"
  wait_for_checks "$since" 503 "$LB_UNHEALTHY" ||
    die "the load balancer's health checks did not reach this droplet's Caddy in ${LB_WAIT_SECONDS}s (none answered 503 while draining): nothing was released; see docs/RUNBOOK.md, \"Several app droplets\""
  sleep 1
  say "out of the load balancer"
}

return_to_lb() {
  ((DRAINED)) || return 0
  local since
  since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  rm -f "$DRAIN_FILE"
  DRAINED=0
  say "back in the load balancer: waiting for ${LB_HEALTHY} of its health checks to pass"
  wait_for_checks "$since" 200 "$LB_HEALTHY" ||
    die "the load balancer's health checks did not pass on this droplet in ${LB_WAIT_SECONDS}s after it was put back: the rollout stops here; see docs/RUNBOOK.md, \"Several app droplets\""
  say "back in the load balancer"
}
