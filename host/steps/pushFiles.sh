# Files for the app directory arrive on stdin; each replaces its old version atomically with the
# mode the bundle gives it. Scripts no longer in the bundle are removed, so the host's scripts/
# folder is exactly the manifest. Nothing is moved or removed unless the whole bundle arrived
# intact (receive_files) and every path in it is inside the app directory.
incoming=$(mktemp -d "$APP_DIR/.incoming.XXXXXX")
trap 'rm -rf "$incoming"' EXIT
receive_files "$incoming"
for file in "${RECEIVED[@]}"; do
  [[ $file == "$APP_DIR"/* ]] || die "refusing to write $file outside $APP_DIR; nothing was installed"
done
for file in "${RECEIVED[@]}"; do
  mkdir -p "$(dirname "$file")"
  mv -f "$incoming/files$file" "$file"
done
if [[ $PRUNE_SCRIPTS == true ]]; then
  for existing in "$APP_DIR"/scripts/*; do
    [[ -e $existing ]] || continue
    received "$existing" || { rm -f "$existing" && say "removed $existing"; }
  done
fi
say "${#RECEIVED[@]} file(s) in place under $APP_DIR"
