# Files for the app directory arrive on stdin; each replaces its old version atomically with the
# mode the bundle gives it. Scripts no longer in the bundle are removed, so the host's scripts/
# folder is exactly the manifest.
incoming=$(mktemp -d "$APP_DIR/.incoming.XXXXXX")
trap 'rm -rf "$incoming"' EXIT
mapfile -t files < <(receive_files "$incoming")
for file in "${files[@]}"; do
  [[ $file == "$APP_DIR"/* ]] || die "refusing to write $file outside $APP_DIR"
  mkdir -p "$(dirname "$file")"
  mv -f "$incoming$file" "$file"
done
if [[ $PRUNE_SCRIPTS == true ]]; then
  for existing in "$APP_DIR"/scripts/*; do
    [[ -e $existing ]] || continue
    printf '%s\n' "${files[@]}" | grep -qxF "$existing" || { rm -f "$existing" && say "removed $existing"; }
  done
fi
say "${#files[@]} file(s) in place under $APP_DIR"
