# Mounts the DigitalOcean block volume that holds all app data, by UUID, kept across reboots, and
# grows its filesystem when the volume was grown (VOLUME_SIZE_GB changed re-runs this step).
# docker.service gets a drop-in (from stdin) that makes it wait for the mount at every boot.
incoming=$(mktemp -d)
trap 'rm -rf "$incoming"' EXIT
receive_files "$incoming" "$DOCKER_DROPIN_PATH"
device="/dev/disk/by-id/scsi-0DO_Volume_$VOLUME_NAME"
for _ in $(seq 1 60); do
  [[ -e $device ]] && break
  sleep 2
done
[[ -e $device ]] || die "block volume $VOLUME_NAME is not attached ($device missing after 120 s)"
blkid "$device" >/dev/null 2>&1 || mkfs.ext4 -q "$device"
uuid=$(blkid -s UUID -o value "$device")
mkdir -p "$DATA_DIR"
grep -q "UUID=$uuid " /etc/fstab || echo "UUID=$uuid $DATA_DIR ext4 defaults,nofail,discard,noatime 0 2" >>/etc/fstab
mountpoint -q "$DATA_DIR" || mount "$DATA_DIR"
# The kernel may still report the old size of a volume resized while attached: ask it again.
disk=$(basename "$(readlink -f "$device")")
[[ -w /sys/class/block/$disk/device/rescan ]] && echo 1 >"/sys/class/block/$disk/device/rescan"
device_bytes=$(blockdev --getsize64 "$device")
# The product in bash: mawk (Ubuntu's awk) prints a product above 2^31 as 1.07374e+10, which is no
# number to (( )), and the filesystem would never be grown.
read -r block_count block_size < <(tune2fs -l "$device" | awk -F: '/^Block count/ {c = $2} /^Block size/ {s = $2} END {print c, s}')
[[ ${block_count:-} =~ ^[0-9]+$ && ${block_size:-} =~ ^[0-9]+$ ]] ||
  die "tune2fs -l $device gave no block count and size: its filesystem cannot be read"
fs_bytes=$((block_count * block_size))
if ((device_bytes > fs_bytes)); then
  # ext4 grows online, mounted and in use.
  timeout 600 resize2fs "$device" >/dev/null ||
    die "resize2fs could not grow the filesystem on $device to the volume's $VOLUME_SIZE_GB GB within 600 s (its error is above); the data is untouched and the old size stays usable"
  say "filesystem on $VOLUME_NAME grown to the volume's $VOLUME_SIZE_GB GB"
fi
install -d -m 0755 "$(dirname "$DOCKER_DROPIN_PATH")"
install_atomically "$incoming/files$DOCKER_DROPIN_PATH" "$DOCKER_DROPIN_PATH" root:root
if has_systemd; then
  systemctl daemon-reload
  [[ " $(systemctl show -p RequiresMountsFor --value docker.service) " == *" $DATA_DIR "* ]] ||
    die "docker.service does not require the mount of $DATA_DIR after installing $DOCKER_DROPIN_PATH (systemctl show -p RequiresMountsFor docker.service)"
  say "docker.service starts only once $DATA_DIR is mounted"
else
  say "no systemd: $DOCKER_DROPIN_PATH is installed but nothing orders the mount before Docker at boot"
fi
say "volume $VOLUME_NAME ($VOLUME_SIZE_GB GB) mounted on $DATA_DIR"
