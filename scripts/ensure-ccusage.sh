#!/usr/bin/env bash
# Installs the pinned ccusage (the usage tool Claude Code users run; marshal's token totals must
# equal its) into a cache outside the repository when it is missing or another version, and
# prints the path of its binary. Used by the tests and scripts/bench-usage.sh.
set -euo pipefail

# 20.0.24 ships a native linux-x64 build (20.0.26 does not).
VERSION="20.0.24"
PREFIX="${MARSHAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marshal}/ccusage-$VERSION"
BIN="$PREFIX/node_modules/.bin/ccusage"

installed_version() {
  [ -x "$BIN" ] || return 1
  "$BIN" --version 2>/dev/null | awk '{print $2}'
}

if [ "$(installed_version || true)" != "$VERSION" ]; then
  command -v npm >/dev/null 2>&1 ||
    { echo "ensure-ccusage: npm not found; install Node.js 22+ and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
  echo "ensure-ccusage: installing ccusage@$VERSION into $PREFIX" >&2
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "ccusage@$VERSION" >&2
  got="$(installed_version || true)"
  [ "$got" = "$VERSION" ] ||
    { echo "ensure-ccusage: expected ccusage $VERSION at $BIN, found '${got:-nothing}'" >&2; exit 1; }
fi
printf '%s\n' "$BIN"
