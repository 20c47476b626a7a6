#!/usr/bin/env bash
# `marshal usage` against ccusage (the pinned native build) on the same synthetic Claude Code
# folder, in the same hyperfine run. Checks both count the same tokens first, then prints both
# medians, the ratio and each tool's peak memory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
megabytes=1024
runs=5

usage() {
  cat <<USAGE
Usage: scripts/bench-usage.sh [--megabytes N] [--runs N]

Generates a Claude Code folder of about N MB of transcripts (default $megabytes;
examples/gen_transcripts.rs: sessions of prompts, responses, tool results, subagents), then
times 'marshal usage --json' and 'ccusage daily --json --offline' on it (hyperfine, 1 warm-up
run, $runs timed runs each, page cache warm), after checking that both count the same input,
output, cache-write and cache-read tokens. Prints the medians, the ratio and peak RSS.
USAGE
}
while [ $# -gt 0 ]; do
  case "$1" in
    --megabytes) megabytes="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

hyperfine="$("$ROOT/scripts/ensure-hyperfine.sh")"
ccusage="$("$ROOT/scripts/ensure-ccusage.sh")"
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
(cd "$ROOT" && cargo build --release --locked --quiet -p marshal --bin marshal --example gen_transcripts)
marshal="$target_dir/release/marshal"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$target_dir/release/examples/gen_transcripts" --megabytes "$megabytes" "$work/claude" 2>/dev/null
: > "$work/ledger.jsonl"
size_mb=$(( $(du -sk "$work/claude" | cut -f1) / 1024 ))
files=$(find "$work/claude/projects" -name '*.jsonl' | wc -l)

ours=(env TZ=UTC "$marshal" usage --json --claude-dir "$work/claude" --ledger "$work/ledger.jsonl")
theirs=(env TZ=UTC CLAUDE_CONFIG_DIR="$work/claude" "$ccusage" daily --json --offline)
"${ours[@]}" > "$work/ours.json"
"${theirs[@]}" > "$work/theirs.json"
python3 - "$work/ours.json" "$work/theirs.json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))["total"]
theirs = json.load(open(sys.argv[2]))["totals"]
a = [ours[k] for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")]
b = [theirs[k] for k in ("inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens")]
if a != b:
    sys.exit(f"bench-usage: token totals differ: marshal {a}, ccusage {b}")
PY

"$hyperfine" --style none --warmup 1 --runs "$runs" --export-json "$work/times.json" \
  -n marshal "${ours[*]} > /dev/null" \
  -n ccusage "${theirs[*]} > /dev/null" >/dev/null
our_kb="$(/usr/bin/time -f %M "${ours[@]}" 2>&1 >/dev/null | tail -1)"
their_kb="$(/usr/bin/time -f %M "${theirs[@]}" 2>&1 >/dev/null | tail -1)"

echo "usage benchmark: $files transcript files ($size_mb MB), $runs runs each after 1 warm-up, $(nproc) CPUs; token totals equal"
python3 - "$work/times.json" "$our_kb" "$their_kb" <<'PY'
import json, sys
results = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
ours, theirs = results["marshal"], results["ccusage"]
print(f"marshal usage --json              {ours * 1000:8.0f} ms   peak RSS {int(sys.argv[2]) / 1024:6.1f} MB")
print(f"ccusage daily --json --offline    {theirs * 1000:8.0f} ms   peak RSS {int(sys.argv[3]) / 1024:6.1f} MB")
print(f"ratio                             {theirs / ours:8.1f}x faster")
PY
