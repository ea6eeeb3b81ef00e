# Docker engine and compose v2: installed only when `docker compose` does not already work.
if docker compose version >/dev/null 2>&1; then
  say "docker present: $(docker --version), $(docker compose version --short)"
else
  # shellcheck disable=SC1091 # the host's own file
  . /etc/os-release
  if apt-cache show docker-compose-v2 >/dev/null 2>&1 || { apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-cache show docker-compose-v2 >/dev/null 2>&1; }; then
    # Ubuntu 22.04+: the distribution's engine and compose v2 plugin.
    apt_install docker.io docker-compose-v2
  else
    # Debian has no compose v2 package: use Docker's own repository.
    apt_install ca-certificates curl
    install -m 0755 -d /etc/apt/keyrings
    curl -fsSL --connect-timeout 20 --max-time 120 "https://download.docker.com/linux/$ID/gpg" -o /etc/apt/keyrings/docker.asc
    chmod a+r /etc/apt/keyrings/docker.asc
    echo "deb [signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/$ID $VERSION_CODENAME stable" \
      >/etc/apt/sources.list.d/docker.list
    apt_install docker-ce docker-ce-cli containerd.io docker-compose-plugin
  fi
  say "docker installed: $(docker --version), $(docker compose version --short)"
fi
if has_systemd; then
  systemctl enable --now docker >/dev/null
fi
docker info >/dev/null 2>&1 || die "the Docker engine does not answer: $(docker info 2>&1 | tail -n 3)"
if getent group docker >/dev/null; then
  usermod -aG docker "$DEPLOY_USER"
fi
