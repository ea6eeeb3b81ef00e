#!/usr/bin/env bash
# Entrypoint of the sandbox's postgres stand-in; behaves like the official image's:
# - first start (no PG_VERSION in $PGDATA): initdb with POSTGRES_USER as superuser and
#   POSTGRES_PASSWORD as its password, create POSTGRES_DB, run /docker-entrypoint-initdb.d/*
# - listens on all addresses, password (scram-sha-256) auth for network clients, trust on
#   the local socket (so `docker compose exec postgres pg_dump -U ...` needs no password)
# - runs as the postgres user; fixes ownership of a root-owned bind-mounted data directory.
# *_FILE variants (POSTGRES_PASSWORD_FILE, ...) are honoured too.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%F %T UTC')" "$*" >&2; }

file_env() {
  local var=$1 def=${2:-} file_var="${1}_FILE" val
  if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
    log "error: both $var and $file_var are set (but are exclusive)"
    exit 1
  fi
  val=$def
  if [[ -n ${!var:-} ]]; then
    val=${!var}
  elif [[ -n ${!file_var:-} ]]; then
    val=$(<"${!file_var}")
  fi
  export "$var"="$val"
  unset "$file_var"
}

if [[ ${1:-} == -* ]]; then
  set -- postgres "$@"
fi

if [[ ${1:-} == postgres && $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  chmod 0700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  chmod 3777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

init_database() {
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  local auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [[ -z $POSTGRES_PASSWORD && $auth != trust ]]; then
    cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
MSG
    exit 1
  fi

  log "initializing database cluster in $PGDATA"
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, like upstream
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host="$auth" --encoding=UTF8 --locale=C.UTF-8 \
    $POSTGRES_INITDB_ARGS -D "$PGDATA" >/dev/null
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w -t 60 start >/dev/null
  local -a psql_cmd=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc -U "$POSTGRES_USER")
  if [[ $POSTGRES_DB != postgres ]]; then
    local exists
    exists=$("${psql_cmd[@]}" -d postgres -tA -v db="$POSTGRES_DB" \
      <<<"SELECT 1 FROM pg_database WHERE datname = :'db' ;")
    if [[ -z $exists ]]; then
      "${psql_cmd[@]}" -d postgres -q -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
    fi
  fi
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    [[ -e $f ]] || continue
    case $f in
      *.sh)
        log "running $f"
        if [[ -x $f ]]; then "$f"; else
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql) log "running $f" && "${psql_cmd[@]}" -d "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) log "running $f" && gunzip -c "$f" | "${psql_cmd[@]}" -d "$POSTGRES_DB" ;;
      *) log "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  log "PostgreSQL init process complete; ready for start up."
}

if [[ ${1:-} == postgres && ! -s $PGDATA/PG_VERSION ]]; then
  init_database
fi

exec "$@"
