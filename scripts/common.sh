#!/usr/bin/env bash
# Shared by backup.sh and restore.sh (sourced, not run). The caller defines die, ERR_FILE,
# APP_DIR and a logging function; compose() and require_running_postgres come from here.

compose() { docker compose --project-directory "$APP_DIR" -f "$APP_DIR/compose.yaml" "$@"; }

# Sets PG_CID to the running, healthy postgres container, or dies naming why not.
# Not `docker compose ps` text (retro #5) nor its JSON (its shape differs across compose
# versions): the container id, then docker inspect. A running container first; else -a, so that
# a stopped container reports its state. $1 is the caller's logging function.
require_running_postgres() {
  local note=$1 ids state pg_status pg_health waited
  ids="$(compose ps -q postgres 2>"$ERR_FILE")" || die "cannot list the postgres container (docker compose ps)"
  if [[ -z $ids ]]; then
    ids="$(compose ps -a -q postgres 2>"$ERR_FILE")" || die "cannot list the postgres container (docker compose ps -a)"
  fi
  PG_CID="${ids%%$'\n'*}"
  [[ -n $PG_CID ]] || die "no postgres container in compose project at $APP_DIR (is the stack up?)"
  # A container that was just (re)started reports health "starting": give it up to 60 s.
  for ((waited = 0; ; waited += 2)); do
    state="$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$PG_CID" 2>"$ERR_FILE")" ||
      die "cannot inspect postgres container $PG_CID"
    read -r pg_status pg_health <<<"$state"
    [[ $pg_status == running && $pg_health == starting && $waited -lt 60 ]] || break
    if ((waited == 0)); then "$note" "postgres health is 'starting'; waiting up to 60 s"; fi
    sleep 2
  done
  [[ $pg_status == running ]] || die "postgres container is not running (state: $pg_status)"
  [[ -z $pg_health || $pg_health == healthy ]] || die "postgres container is not healthy (health: $pg_health)"
}
