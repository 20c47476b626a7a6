#!/usr/bin/env bash
# Whole-process time of each marshal hook against /bin/true, measured in the same hyperfine run,
# with a realistic event on stdin and a real state directory. Prints medians and the ratio.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=500
bin_dir="$ROOT/bin"

usage() {
  cat <<USAGE
Usage: scripts/bench.sh [--runs N] [--bin DIR]

Times marshal-prompt, marshal-pretool and marshal-stop as whole processes against /bin/true
(hyperfine -N, --input EVENT, 20 warm-up runs, N timed runs, default $runs) and prints each
median and its ratio to /bin/true. The budget is a ratio of 2.0 or less. Every timed run does
the hook's full work: lock, session journal, ledger append.
Binaries come from DIR (default: $ROOT/bin, filled by ./install.sh).
USAGE
}

while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift ;;
    --bin) bin_dir="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

for name in marshal-prompt marshal-pretool marshal-stop; do
  [ -x "$bin_dir/$name" ] || { echo "bench: $bin_dir/$name is missing; run ./install.sh (or --no-register) first" >&2; exit 1; }
done

hyperfine="$("$ROOT/scripts/ensure-hyperfine.sh")"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A realistic user setup, read on every prompt: a configuration with rules of its own and a
# handful of user agents (discovery is cached after the first run, as in real use).
export HOME="$work/home" CLAUDE_PLUGIN_ROOT="$ROOT"
mkdir -p "$HOME/.claude/agents"
cat > "$HOME/.claude/marshal.json" <<'JSON'
{
  "models": {"strong": "opus"},
  "thresholds": {"base": 4, "strong": 7},
  "rules": [
    {"id": "me.review", "match": ["review*", "pr", "pull request"], "task": "review", "agent": "code-reviewer"},
    {"id": "me.infra", "match": ["terraform", "helm", "kubernetes", "k8s"], "task": "implementation", "weight": 1.5},
    {"id": "me.release", "match": ["release notes", "changelog"], "task": "docs", "tier": "weak"},
    {"id": "me.db", "match": ["migration*", "schema", "index*"], "task": "implementation", "agent": "db-expert"}
  ],
  "disable_rules": ["builtin.small"]
}
JSON
for agent in code-reviewer db-expert test-writer docs-editor k8s-operator; do
  printf -- '---\nname: %s\ndescription: The team %s for our services; use it for %s work.\nmodel: sonnet\n---\nYou are the %s.\n' \
    "$agent" "$agent" "$agent" "$agent" > "$HOME/.claude/agents/$agent.md"
done
session="0f6e2b8c-5d1a-4c7e-9a3b-2e8f1d4c6a90"
prompt_id="7c1d9e2a-3b4f-4a6c-8d5e-1f2a3b4c5d6e"
common="\"session_id\":\"$session\",\"transcript_path\":\"/home/user/.claude/projects/-home-user-src-shop/$session.jsonl\",\"cwd\":\"/home/user/src/shop\",\"prompt_id\":\"$prompt_id\",\"permission_mode\":\"default\""
printf '{%s,"hook_event_name":"UserPromptSubmit","prompt":"rename the helper parse_cfg to parse_config in src/config/loader.py and update the two call sites in src/app.py"}' "$common" > "$work/prompt.json"
printf '{%s,"effort":{"level":"medium"},"hook_event_name":"PreToolUse","tool_name":"Agent","tool_input":{"description":"Rename parse_cfg","prompt":"Rename the helper parse_cfg to parse_config and update call sites.","subagent_type":"marshal:haiku-general"},"tool_use_id":"toolu_01ABCDEF"}' "$common" > "$work/pretool.json"
printf '{%s,"hook_event_name":"Stop","stop_hook_active":false,"last_assistant_message":"Renamed parse_cfg to parse_config.","background_tasks":[],"session_crons":[]}' "$common" > "$work/stop.json"
# Every timed run takes the full path (lock, session journal, ledger append), never a no-op
# shortcut. The prompt runs open the session's turn; the pretool runs then add calls to it.
# A stop closes the turn, so before each stop run a prompt run opens it again; /bin/true gets
# the same preparation, so both sides of that ratio see the same machine state.
open_turn="bash -c '\"$bin_dir/marshal-prompt\" < \"$work/prompt.json\" > /dev/null'"

measure() { # name, event file, prepare command or ""
  local name="$1" input="$2" prepare="$3" args=()
  [ -n "$prepare" ] && args+=(--prepare "$prepare")
  # Each hook starts from a fresh state directory with one open turn.
  export MARSHAL_STATE_DIR="$work/state-$name"
  "$bin_dir/marshal-prompt" < "$work/prompt.json" > /dev/null
  # A subscriber's rate-limit snapshot (from the status line), so budget-aware routing reads it.
  printf '{"captured_at":%s,"five_hour":{"used_percentage":42.0,"resets_at":%s},"seven_day":{"used_percentage":18.0,"resets_at":%s}}' \
    "$(date +%s)" "$(( $(date +%s) + 3600 ))" "$(( $(date +%s) + 86400 ))" > "$MARSHAL_STATE_DIR/rate-limits.json"
  "$hyperfine" -N --style none --warmup 20 --runs "$runs" --input "$input" "${args[@]}" \
    --export-json "$work/$name.json" -n /bin/true /bin/true -n "$name" "$bin_dir/$name" >/dev/null
}

measure marshal-prompt "$work/prompt.json" ""
measure marshal-pretool "$work/pretool.json" ""
measure marshal-stop "$work/stop.json" "$open_turn"

outcomes="$(grep -c '"kind":"outcome"' "$work/state-marshal-stop/ledger.jsonl" || true)"
[ "$outcomes" -ge "$runs" ] ||
  { echo "bench: only $outcomes of $runs stop runs closed a turn; the benchmark measured the wrong path" >&2; exit 1; }
if cat "$work"/state-*/marshal.log 2>/dev/null | grep -q .; then
  echo "bench: the hooks logged errors:" >&2; cat "$work"/state-*/marshal.log >&2; exit 1
fi

echo "marshal hook benchmark: $runs runs each after 20 warm-up runs, hyperfine -N --input, $(nproc) CPUs,"
echo "with a user configuration of 4 rules and 5 user agents loaded"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
print(f"{'hook':<16} {'median':>9} {'/bin/true':>10} {'ratio':>6}")
for name in ("marshal-prompt", "marshal-pretool", "marshal-stop"):
    results = {r["command"]: r for r in json.load(open(f"{work}/{name}.json"))["results"]}
    hook, floor = results[name]["median"] * 1000, results["/bin/true"]["median"] * 1000
    print(f"{name:<16} {hook:>7.3f}ms {floor:>8.3f}ms {hook / floor:>6.2f}")
PY
