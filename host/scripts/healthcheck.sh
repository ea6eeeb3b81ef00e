#!/usr/bin/env bash
# Checks the app through Caddy, the way a client reaches it (never the app's internal port 8000,
# retro #7).
#
#   healthcheck.sh [--retries N] [--interval SECONDS]     (defaults: 30 attempts, 2 s apart)
#
# GETs HEALTH_URL from host.env and succeeds on HTTP 200. In domain mode (HEALTH_HOST set) the URL
# is https://<domain>/..., and curl resolves <domain> to 127.0.0.1 so the request reaches this
# host's Caddy with the right SNI and certificate check. Redirects are not followed: a redirect is
# a failure (retro #8, an IP redirected to https://localhost). On the last failure it prints the
# HTTP status, the first 500 bytes of the body and curl's error, and exits 1.
# HEALTH_CA_ROOTS (host.env; acmeCa staging, or a private ACME CA's acmeCaRoot): PEM roots
# trusted besides the system's store for this check only. Certificates are always verified.
#
# Settings come from ../host.env next to this script (docs/HOST-LAYOUT.md); CHITRAM_HOST_ENV
# points at another host.env.
set -euo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SCRIPT_DIR="$(dirname "$(readlink -f "$0")")"
HOST_ENV="${CHITRAM_HOST_ENV:-$SCRIPT_DIR/../host.env}"

usage() {
  echo "usage: healthcheck.sh [--retries N] [--interval SECONDS]" >&2
  exit 2
}

retries=30
interval=2
while (($#)); do
  case $1 in
    --retries) (($# >= 2)) || usage; retries=$2; shift 2 ;;
    --retries=*) retries=${1#*=}; shift ;;
    --interval) (($# >= 2)) || usage; interval=$2; shift 2 ;;
    --interval=*) interval=${1#*=}; shift ;;
    -h | --help) usage ;;
    *) usage ;;
  esac
done
[[ $retries =~ ^[1-9][0-9]*$ ]] || { echo "healthcheck: --retries must be a positive integer" >&2; exit 2; }
[[ $interval =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "healthcheck: --interval must be a number of seconds" >&2; exit 2; }

[[ -r $HOST_ENV ]] || { echo "healthcheck: cannot read $HOST_ENV" >&2; exit 1; }
HEALTH_HOST=""
# shellcheck source=/dev/null # host.env is rendered by the Pulumi program onto the host
. "$HOST_ENV"
[[ -n ${HEALTH_URL:-} ]] || { echo "healthcheck: $HOST_ENV does not set HEALTH_URL" >&2; exit 1; }
command -v curl >/dev/null || { echo "healthcheck: curl not found in $PATH" >&2; exit 1; }

# scheme://host[:port]/path
if [[ ! $HEALTH_URL =~ ^(https?)://([^/:]+)(:([0-9]+))?(/.*)?$ ]]; then
  echo "healthcheck: HEALTH_URL is not an http(s) URL: $HEALTH_URL" >&2
  exit 1
fi
scheme=${BASH_REMATCH[1]}
url_host=${BASH_REMATCH[2]}
url_port=${BASH_REMATCH[4]}

resolve=()
if [[ -n $HEALTH_HOST ]]; then
  # Without a matching --resolve curl would ask DNS and could reach another machine.
  if [[ ${url_host,,} != "${HEALTH_HOST,,}" ]]; then
    echo "healthcheck: HEALTH_URL host '$url_host' is not HEALTH_HOST '$HEALTH_HOST'" >&2
    exit 1
  fi
  if [[ $scheme != https ]]; then
    echo "healthcheck: domain mode (HEALTH_HOST=$HEALTH_HOST) needs an https:// HEALTH_URL, got $HEALTH_URL" >&2
    exit 1
  fi
  resolve=(--resolve "$HEALTH_HOST:${url_port:-443}:127.0.0.1")
fi

body="$(mktemp)"
cerr="$(mktemp)"
roots="$(mktemp)"
trap 'rm -f -- "$body" "$cerr" "$roots"' EXIT

cacert=()
if [[ -n ${HEALTH_CA_ROOTS:-} ]]; then
  [[ -r $HEALTH_CA_ROOTS ]] || { echo "healthcheck: cannot read HEALTH_CA_ROOTS $HEALTH_CA_ROOTS" >&2; exit 1; }
  # curl --cacert replaces the default store: the system's roots, then these.
  for store in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    if [[ -r $store ]]; then
      cat "$store" >"$roots"
      break
    fi
  done
  cat "$HEALTH_CA_ROOTS" >>"$roots"
  cacert=(--cacert "$roots")
fi

status=000
curl_rc=0
location=""
for ((attempt = 1; attempt <= retries; attempt++)); do
  : >"$body"
  # -q: ignore ~/.curlrc; no -L: a redirect is a failure; --noproxy: always this host's Caddy.
  if out="$(curl -q -sS --noproxy '*' --connect-timeout 5 --max-time 10 "${resolve[@]}" "${cacert[@]}" \
    -o "$body" -w '%{http_code} %{redirect_url}' "$HEALTH_URL" 2>"$cerr")"; then
    curl_rc=0
  else
    curl_rc=$?
  fi
  status=${out%% *}
  location=${out#* }
  [[ -n $status ]] || status=000
  if [[ $status == 200 ]]; then
    echo "healthcheck: $HEALTH_URL -> 200 (attempt $attempt/$retries)"
    exit 0
  fi
  msg="HTTP $status"
  if ((curl_rc != 0)); then msg+=", curl exit $curl_rc: $(head -n 1 "$cerr")"; fi
  if [[ -n $location ]]; then msg+=", redirect to $location (not followed)"; fi
  echo "healthcheck: attempt $attempt/$retries: $HEALTH_URL: $msg" >&2
  if ((attempt < retries)); then sleep "$interval"; fi
done

{
  echo "healthcheck: FAILED: $HEALTH_URL did not answer 200 after $retries attempts (${interval}s apart)"
  if [[ -n $HEALTH_HOST ]]; then echo "  resolved $HEALTH_HOST to 127.0.0.1 (this host's Caddy)"; fi
  echo "  last HTTP status: $status"
  if [[ -n $location ]]; then echo "  redirect to: $location (redirects are failures)"; fi
  echo "  last response body (first 500 bytes):"
  if [[ -s $body ]]; then
    head -c 500 "$body"
    echo
  else
    echo "  (empty)"
  fi
  if ((curl_rc != 0)); then
    echo "  curl error (exit $curl_rc): $(cat "$cerr")"
  else
    echo "  curl error: none"
  fi
} >&2
exit 1
