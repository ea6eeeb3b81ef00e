# Mounts the DigitalOcean block volume that holds all app data, by UUID, kept across reboots.
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
say "volume $VOLUME_NAME mounted on $DATA_DIR"
