# Runs when the login step is deleted: on `pulumi destroy`, when registryServer is unset, and
# before a new login replaces it (a new credential or server; the step deletes before it
# replaces), so no stale token stays in the deploy user's ~/.docker/config.json. `docker logout`
# of a server it holds no login for says so and succeeds. Any other failure is reported, not
# fatal: a logout must not block a destroy.
if out=$(docker logout "$AUTH_KEY" 2>&1); then
  say "$out"
else
  say "warning: docker logout $REGISTRY_SERVER failed ($out); remove auths[\"$AUTH_KEY\"] from $HOME/.docker/config.json by hand"
fi
