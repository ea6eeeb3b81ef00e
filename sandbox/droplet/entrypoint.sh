#!/bin/bash
# PID 1 of the sandbox droplet (no systemd): host keys, root's key, cron, the inner Docker
# engine (vfs, log /var/log/dockerd.log), then sshd in the foreground.
# Env: ROOT_AUTHORIZED_KEY (root's authorized_keys), SSHD_HOLD=1 (start sshd only once
#      /run/chitram-start-sshd exists, as a new droplet whose sshd answers late),
#      DOCKERD_STORAGE_DRIVER (default vfs).
set -euo pipefail

ssh-keygen -A >/dev/null
mkdir -p /run/sshd
chmod 0755 /run/sshd

install -d -m 0700 /root/.ssh
if [[ -n ${ROOT_AUTHORIZED_KEY:-} ]]; then
  printf '%s\n' "$ROOT_AUTHORIZED_KEY" >/root/.ssh/authorized_keys
  chmod 0600 /root/.ssh/authorized_keys
fi
hold=${SSHD_HOLD:-}
driver=${DOCKERD_STORAGE_DRIVER:-vfs}
unset ROOT_AUTHORIZED_KEY SSHD_HOLD DOCKERD_STORAGE_DRIVER

# Without --privileged the cgroup hierarchies are mounted read-only, and the inner engine must
# create cgroups for its containers (runc: "mkdir /sys/fs/cgroup/cpuset/docker: read-only").
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
  # cgroup v2 (untested here; same steps as docker:dind): move ourselves out of the root
  # cgroup so that controllers can be delegated to the engine's children.
  mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
  sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers \
    >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
else
  # cgroup v1: each controller is a read-only bind mount of this container's own cgroup.
  for d in /sys/fs/cgroup/*/; do
    if mountpoint -q "$d"; then
      mount -o remount,bind,rw "$d" || echo "entrypoint: warning: $d stays read-only" >&2
    fi
  done
fi

cron
# A droplet's systemd mounts /etc/fstab at boot and starts docker.service only once the mounts its
# drop-ins require are there (RequiresMountsFor=): the same here, for a volume of the local
# DigitalOcean API, whose device node appears a moment after a power-on. Without the mount the
# engine does not start, as docker.service would not. In the background: sshd does not wait.
start_engine() {
  local dropin dir i
  for dropin in /etc/systemd/system/docker.service.d/*.conf; do
    [[ -f $dropin ]] || continue
    # shellcheck disable=SC2013 # a space-separated list of paths, as systemd reads it
    for dir in $(sed -n 's/^RequiresMountsFor=//p' "$dropin"); do
      for ((i = 0; i < 120; i++)); do
        mountpoint -q "$dir" || mount "$dir" 2>/dev/null || true
        mountpoint -q "$dir" && break
        sleep 1
      done
      if ! mountpoint -q "$dir"; then
        echo "entrypoint: $dir is not mounted after 120 s ($dropin requires it): the Docker engine stays stopped" >&2
        return 0
      fi
    done
  done
  exec dockerd --storage-driver="$driver" >>/var/log/dockerd.log 2>&1
}
start_engine &

if [[ $hold == 1 ]]; then
  echo "entrypoint: sshd starts once /run/chitram-start-sshd exists (at most 15 min)" >&2
  for ((i = 0; i < 900; i++)); do
    [[ -e /run/chitram-start-sshd ]] && break
    sleep 1
  done
fi
exec /usr/sbin/sshd -D -e
