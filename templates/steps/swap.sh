# A swap file: the four services are tight in 2 GB of memory.
if ((SWAP_MB == 0)); then
  say "no swap file requested"
  exit 0
fi
if swapon --show=NAME --noheadings 2>/dev/null | grep -qx "$SWAP_FILE"; then
  say "swap file $SWAP_FILE already active"
  exit 0
fi
if [[ ! -f $SWAP_FILE ]] || (($(stat -c %s "$SWAP_FILE") != SWAP_MB * 1024 * 1024)); then
  rm -f "$SWAP_FILE"
  fallocate -l "${SWAP_MB}M" "$SWAP_FILE" 2>/dev/null || dd if=/dev/zero of="$SWAP_FILE" bs=1M count="$SWAP_MB" status=none
  chmod 0600 "$SWAP_FILE"
  mkswap "$SWAP_FILE" >/dev/null
fi
grep -q "^$SWAP_FILE " /etc/fstab || echo "$SWAP_FILE none swap sw 0 0" >>/etc/fstab
echo "vm.swappiness=10" >/etc/sysctl.d/60-chitram-swap.conf
if swapon "$SWAP_FILE" 2>/dev/null; then
  sysctl -q -p /etc/sysctl.d/60-chitram-swap.conf || true
  say "swap file $SWAP_FILE (${SWAP_MB} MB) active"
elif in_container; then
  # A container cannot enable swap; the file and fstab entry are still checked here.
  say "swap file $SWAP_FILE prepared; swapon is not possible inside a container"
else
  die "swapon $SWAP_FILE failed"
fi
