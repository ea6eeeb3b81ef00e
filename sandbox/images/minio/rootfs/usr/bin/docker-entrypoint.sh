#!/bin/sh
# Like the official minio/minio entrypoint: `server /data ...` means `minio server /data ...`.
set -e
if [ "${1}" != "minio" ] && [ -n "${1}" ] && ! command -v "${1}" >/dev/null 2>&1; then
  set -- minio "$@"
fi
exec "$@"
