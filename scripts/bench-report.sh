#!/usr/bin/env bash
# `marshal report` on a large synthetic ledger against `jq -r .outcome | sort | uniq -c` on the
# same file, in the same hyperfine run. Prints both medians, the ratio and marshal's peak memory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
records=1000000
runs=5

usage() {
  cat <<USAGE
Usage: scripts/bench-report.sh [--records N] [--runs N]

Generates a realistic ledger of N records (default $records; examples/gen_ledger.rs), then times
'marshal report --json' and 'jq -r .outcome FILE | sort | uniq -c' (hyperfine, 1 warm-up run,
$runs timed runs each, page cache warm), checks both count the same outcomes, and prints the
medians, the ratio (target: marshal at least 10x faster) and marshal's peak RSS (target: < 64 MB).
USAGE
}
while [ $# -gt 0 ]; do
  case "$1" in
    --records) records="$2"; shift ;;
    --runs) runs="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

command -v jq >/dev/null || { echo "bench-report: jq is needed for the comparison (apt-get install jq)" >&2; exit 1; }
hyperfine="$("$ROOT/scripts/ensure-hyperfine.sh")"
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
(cd "$ROOT" && cargo build --release --locked --quiet -p marshal --bin marshal --example gen_ledger)
marshal="$target_dir/release/marshal"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ledger="$work/ledger.jsonl"
"$target_dir/release/examples/gen_ledger" --records "$records" "$ledger" 2>/dev/null
size_mb=$(( $(stat -c %s "$ledger") / 1024 / 1024 ))

# Same answer first: the followed count from both tools.
ours="$("$marshal" report --no-usage --ledger "$ledger" --json | jq '.followed')"
theirs="$(jq -r .outcome "$ledger" | sort | uniq -c | awk '$2 == "followed" {print $1}')"
[ "$ours" = "$theirs" ] || { echo "bench-report: marshal counted $ours followed turns, jq $theirs" >&2; exit 1; }

"$hyperfine" --style none --warmup 1 --runs "$runs" --export-json "$work/times.json" \
  -n marshal "$marshal report --no-usage --ledger $ledger --json > /dev/null" \
  -n jq "jq -r .outcome $ledger | sort | uniq -c > /dev/null" >/dev/null
peak_kb="$(/usr/bin/time -f %M "$marshal" report --no-usage --ledger "$ledger" --json 2>&1 >/dev/null | tail -1)"

echo "report benchmark: $records records ($size_mb MB), $runs runs each after 1 warm-up, $(nproc) CPUs"
python3 - "$work/times.json" "$peak_kb" <<'PY'
import json, sys
results = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
ours, jq = results["marshal"], results["jq"]
print(f"marshal report --json      {ours * 1000:8.0f} ms")
print(f"jq .outcome | sort | uniq  {jq * 1000:8.0f} ms")
print(f"ratio                      {jq / ours:8.1f}x faster")
print(f"marshal peak RSS           {int(sys.argv[2]) / 1024:8.1f} MB")
PY
