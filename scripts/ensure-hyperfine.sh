#!/usr/bin/env bash
# Prints the path of a hyperfine with --input (1.16+). Debian 12 ships 1.15, so when none is
# found, a pinned version is installed from crates.io into marshal's cache (once).
set -euo pipefail
VERSION="1.20.0"
CACHE="${MARSHAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marshal}"
for candidate in "$(command -v hyperfine || true)" "$CACHE/tools/bin/hyperfine"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --help 2>/dev/null | grep -q -- '--input'; then
    printf '%s\n' "$candidate"
    exit 0
  fi
done
echo "ensure-hyperfine: installing hyperfine $VERSION into $CACHE/tools (once)" >&2
cargo install hyperfine --version "$VERSION" --locked --quiet --root "$CACHE/tools" >&2
printf '%s\n' "$CACHE/tools/bin/hyperfine"
