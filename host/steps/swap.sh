# A swap file of SWAP_MB: the four services are tight in 2 GB of memory. A changed size is applied
# on the next run (the file is turned off, re-created, turned on); 0 removes the file. Turning swap
# off moves its pages back into memory: that fails, and so does the step, when memory is too full.
swap_active() {
  swapon --show=NAME --noheadings 2>/dev/null | grep -qx "$SWAP_FILE"
}

swap_off() {
  if swap_active; then
    timeout 300 swapoff "$SWAP_FILE" ||
      die "swapoff $SWAP_FILE failed or took over 300 s (not enough free memory for its pages?); it stays active as it was"
  fi
}

if ((SWAP_MB == 0)); then
  swap_off
  rm -f "$SWAP_FILE"
  sed -i "\|^$SWAP_FILE |d" /etc/fstab
  say "no swap file"
  exit 0
fi
if [[ ! -f $SWAP_FILE ]] || (($(stat -c %s "$SWAP_FILE") != SWAP_MB * 1024 * 1024)); then
  swap_off
  rm -f "$SWAP_FILE"
  fallocate -l "${SWAP_MB}M" "$SWAP_FILE" 2>/dev/null || dd if=/dev/zero of="$SWAP_FILE" bs=1M count="$SWAP_MB" status=none
  chmod 0600 "$SWAP_FILE"
  mkswap "$SWAP_FILE" >/dev/null
fi
grep -q "^$SWAP_FILE " /etc/fstab || echo "$SWAP_FILE none swap sw 0 0" >>/etc/fstab
echo "vm.swappiness=10" >/etc/sysctl.d/60-chitram-swap.conf
if swap_active; then
  say "swap file $SWAP_FILE (${SWAP_MB} MB) already active"
elif swapon "$SWAP_FILE" 2>/dev/null; then
  sysctl -q -p /etc/sysctl.d/60-chitram-swap.conf || true
  say "swap file $SWAP_FILE (${SWAP_MB} MB) active"
elif in_container; then
  # A container cannot enable swap; the file and fstab entry are still checked here.
  say "swap file $SWAP_FILE (${SWAP_MB} MB) prepared; swapon is not possible inside a container"
else
  die "swapon $SWAP_FILE failed"
fi
