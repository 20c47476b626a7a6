#!/usr/bin/env bash
# Installs the pinned Claude Code CLI into a cache outside the repository (Claude Code copies
# the plugin folder on install, so nothing big may live in it) when it is missing or another
# version, and prints the path of its binary. Used by the tests.
set -euo pipefail

VERSION="2.1.329"
PREFIX="${MARSHAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marshal}/claude-code-$VERSION"
BIN="$PREFIX/node_modules/@anthropic-ai/claude-code/bin/claude.exe"

installed_version() {
  [ -x "$BIN" ] || return 1
  # No network: --version only prints.
  DISABLE_AUTOUPDATER=1 "$BIN" --version 2>/dev/null | awk '{print $1}'
}

if [ "$(installed_version || true)" != "$VERSION" ]; then
  command -v npm >/dev/null 2>&1 ||
    { echo "ensure-claude-code: npm not found; install Node.js 20+ and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
  echo "ensure-claude-code: installing @anthropic-ai/claude-code@$VERSION into $PREFIX" >&2
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$VERSION" >&2
  got="$(installed_version || true)"
  [ "$got" = "$VERSION" ] ||
    { echo "ensure-claude-code: expected Claude Code $VERSION at $BIN, found '${got:-nothing}'" >&2; exit 1; }
fi
printf '%s\n' "$BIN"
