# Behind a load balancer (appHosts > 1), the release step takes its droplet out of the load
# balancer first. The drain file makes Caddy answer the load balancer's health checks with 503
# (render/caddyfile.ts: the requests the load balancer forwards carry X-Forwarded-For, its checks
# do not), so after LB_DRAIN_SECONDS it sends this droplet no new request. Whatever the release's
# outcome, a new version live or the old one kept, the droplet goes back in, and the step waits
# LB_RETURN_SECONDS for the load balancer to readmit it before the next droplet is released.

drain_from_lb() {
  mkdir -p "$(dirname "$DRAIN_FILE")"
  : >"$DRAIN_FILE"
  say "out of the load balancer: waiting ${LB_DRAIN_SECONDS}s until its health checks have noticed"
  sleep "$LB_DRAIN_SECONDS"
}

return_to_lb() {
  rm -f "$DRAIN_FILE"
  say "back in the load balancer: waiting ${LB_RETURN_SECONDS}s until its health checks have readmitted this droplet"
  sleep "$LB_RETURN_SECONDS"
}
