#!/usr/bin/env bash
# The scheduling overhead of `marshal workflow run`, per step: a chain of N steps (each waits for
# the one before, so nothing overlaps) run with a stand-in CLI that answers at once, against a
# shell loop that runs the same stand-in N times with the same arguments. Both in one hyperfine
# run; the difference over N is what marshal adds to each step: checking, routing, filling the
# template, the database writes, the answer file, the ledger records and the spawn.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps=100
runs=5
bin_dir="$ROOT/bin"
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    --bin) bin_dir="$2"; shift ;;
    -h|--help) echo "Usage: scripts/bench-workflow.sh [--steps N] [--runs N] [--bin DIR]"; exit 0 ;;
    *) echo "bench-workflow: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$bin_dir/marshal" ] || { echo "bench-workflow: $bin_dir/marshal is missing; run ./install.sh first" >&2; exit 1; }
hyperfine="$("$ROOT/scripts/ensure-hyperfine.sh")"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '#!/bin/sh\necho '"'"'{"type":"result","is_error":false,"result":"ok"}'"'"'\n' > "$work/claude"
chmod +x "$work/claude"
export HOME="$work/home" MARSHAL_STATE_DIR="$work/state" MARSHAL_CLAUDE_BIN="$work/claude" CLAUDE_PLUGIN_ROOT="$ROOT"
mkdir -p "$HOME"

# Half the steps have a tier, half are routed on their prompt (as a user's workflow would mix).
{
  echo "name: chain"
  echo "steps:"
  for i in $(seq 1 "$steps"); do
    echo "  - id: s$i"
    if [ "$i" -eq 1 ]; then
      echo "    prompt: \"rename the helper parse_cfg to parse_config in utils.py\""
    else
      echo "    prompt: \"rename the helper in {steps.s$((i - 1)).output} to parse_config in utils.py\""
      echo "    depends_on: [s$((i - 1))]"
    fi
    if [ $((i % 2)) -eq 0 ]; then echo "    tier: weak"; fi
  done
} > "$work/chain.yaml"
"$bin_dir/marshal" workflow check "$work/chain.yaml" > /dev/null

# The floor: the same children, started by a shell one after the other.
cat > "$work/loop.sh" <<EOF
#!/bin/sh
i=0
while [ \$i -lt $steps ]; do
  "$work/claude" -p --output-format json --model haiku --agent marshal:haiku-general -- "rename the helper in ok to parse_config in utils.py" > "$work/out" 2> "$work/err"
  i=\$((i + 1))
done
EOF
chmod +x "$work/loop.sh"

"$hyperfine" --style basic --warmup 1 --runs "$runs" --export-json "$work/times.json" \
  --prepare "rm -rf '$work/state'" --prepare "true" \
  --command-name "marshal workflow run ($steps-step chain)" "'$bin_dir/marshal' workflow run --concurrency 1 '$work/chain.yaml' > /dev/null 2>&1" \
  --command-name "shell loop ($steps children)" "'$work/loop.sh'" > "$work/hyperfine.txt"

status="$("$bin_dir/marshal" workflow status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
[ "$status" = succeeded ] || { echo "bench-workflow: the last run did not succeed ($status)" >&2; exit 1; }

python3 - "$work/times.json" "$steps" <<'PY'
import json, statistics, sys
results = json.load(open(sys.argv[1]))["results"]
steps = int(sys.argv[2])
workflow, floor = (statistics.median(r["times"]) for r in results)
per_step = (workflow - floor) / steps * 1000
print(f"workflow run: {workflow * 1000:.0f} ms for {steps} steps; the same {steps} children from a shell loop: "
      f"{floor * 1000:.0f} ms")
print(f"scheduling overhead per step: {per_step:.2f} ms (budget 5 ms)")
PY
