// The droplet's user data. It has no parameters at all, so it is byte-identical for every stack
// and every change of app config: a change of user data replaces the droplet and loses its disk.
// Everything app-level reaches the host over SSH instead.

export const CLOUD_CONFIG = [
  "#cloud-config",
  "# chitram: keep this file free of app settings (a change here replaces the droplet).",
  "ssh_pwauth: false",
  "disable_root: false",
  "package_update: false",
  "package_upgrade: false",
  "",
].join("\n");
