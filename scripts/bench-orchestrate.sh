#!/usr/bin/env bash
# The overhead of marshal-orchestrate: time from its start to the child's spawn, with a stand-in
# CLI that answers at once, measured by marshal itself (attempts[0].spawned_after_us) over N runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=200
bin_dir="$ROOT/bin"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift ;;
    --bin) bin_dir="$2"; shift ;;
    -h|--help) echo "Usage: scripts/bench-orchestrate.sh [--runs N] [--bin DIR]"; exit 0 ;;
    *) echo "bench-orchestrate: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$bin_dir/marshal-orchestrate" ] || { echo "bench-orchestrate: $bin_dir/marshal-orchestrate is missing; run ./install.sh first" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '#!/bin/sh\necho '"'"'{"type":"result","is_error":false,"result":"ok"}'"'"'\n' > "$work/claude"
chmod +x "$work/claude"
export HOME="$work/home" MARSHAL_STATE_DIR="$work/state" MARSHAL_CLAUDE_BIN="$work/claude" CLAUDE_PLUGIN_ROOT="$ROOT"
mkdir -p "$HOME"
for _ in $(seq "$runs"); do
  "$bin_dir/marshal-orchestrate" --json "rename the helper parse_cfg to parse_config in utils.py" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["attempts"][0]["spawned_after_us"])'
done > "$work/us"
python3 - "$work/us" "$runs" <<'PY'
import statistics, sys
values = sorted(int(line) for line in open(sys.argv[1]))
p90 = values[int(len(values) * 0.9) - 1]
print(f"marshal-orchestrate start-to-spawn over {sys.argv[2]} runs (stand-in CLI): "
      f"median {statistics.median(values) / 1000:.2f} ms, p90 {p90 / 1000:.2f} ms, max {values[-1] / 1000:.2f} ms (budget 5 ms)")
PY
