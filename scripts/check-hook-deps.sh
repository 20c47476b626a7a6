#!/usr/bin/env bash
# The hook binaries are the hot path: Claude Code runs one per prompt, tool call and stop, and
# each must start in about a millisecond. They may never link SQLite, a YAML parser, an async
# runtime or clap (those belong to the user CLI and the MCP server). The hooks live in their own
# package, marshal-hooks, so its dependency tree is exactly what they link; this fails when a
# forbidden crate appears anywhere in it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

forbidden='^(rusqlite|libsqlite3-sys|sqlx|diesel|serde_yaml|serde_yml|serde-saphyr|saphyr|saphyr-parser|yaml-rust|yaml-rust2|unsafe-libyaml|tokio|async-std|smol|futures-executor|rmcp|clap|clap_builder)$'
tree="$(cargo tree --locked -p marshal-hooks -e normal,build --prefix none --format '{p}' | awk '{print $1}' | sort -u)"
found="$(grep -E "$forbidden" <<<"$tree" || true)"
if [ -n "$found" ]; then
  echo "check-hook-deps: the hook binaries (package marshal-hooks) would link:" >&2
  sed 's/^/  /' <<<"$found" >&2
  echo "Keep SQLite, YAML, async runtimes and clap in the marshal CLI or the MCP server; see docs/ARCHITECTURE.md." >&2
  exit 1
fi
echo "check-hook-deps: marshal-hooks links $(wc -l <<<"$tree") crates, none of them SQLite, YAML, an async runtime or clap:"
tr '\n' ' ' <<<"$tree"; echo
