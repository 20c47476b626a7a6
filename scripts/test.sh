#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit and integration tests (including
# the real Claude Code CLI end to end), a real ./install.sh into a throw-away HOME, the HTML
# report checked in headless Chromium, and benchmark smoke runs. Installs what it needs (the
# pinned Claude Code CLI, hyperfine, Chromium) itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Keep build output out of the plugin folder (claude plugin install copies the folder), and pin
# cargo's and rustup's homes before HOME is pointed elsewhere below.
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
export MARSHAL_CACHE_DIR="${MARSHAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marshal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MARSHAL_CACHE_DIR/target}"

step() { printf '\n==> %s\n' "$*"; }

step "pinned Claude Code CLI"
MARSHAL_TEST_CLAUDE_BIN="$(scripts/ensure-claude-code.sh)"
export MARSHAL_TEST_CLAUDE_BIN
"$MARSHAL_TEST_CLAUDE_BIN" --version

step "pinned ccusage (marshal usage's token totals must equal its)"
MARSHAL_TEST_CCUSAGE_BIN="$(scripts/ensure-ccusage.sh)"
export MARSHAL_TEST_CCUSAGE_BIN
"$MARSHAL_TEST_CCUSAGE_BIN" --version

step "tools the fault tests use"
if ! command -v faketime >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime) >/dev/null
  fi
fi
command -v faketime || { echo "test.sh: faketime is needed (Debian: apt-get install faketime)" >&2; exit 1; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings

step "the hook binaries link no SQLite, YAML, async runtime or clap"
scripts/check-hook-deps.sh

step "cargo build: every binary, the hooks included (the suite runs them as processes)"
cargo build --workspace --bins --locked

step "cargo test (unit, property, hooks as processes, faults, real Claude Code end to end)"
cargo test --workspace --locked

step "stress: 32 concurrent writers x 1000 turns through the real hook binaries"
cargo test --locked -p marshal --test suite -- --ignored --exact reliability::thirty_two_concurrent_writers_lose_and_duplicate_nothing

step "./install.sh from a copy of the checkout into a throw-away HOME (release build, registration, health check)"
# A copy, because hooks run from the plugin folder itself: installing here would swap the
# developer's live hooks for whatever is being tested.
install_root="$(mktemp -d)"
install_home="$(mktemp -d)"
trap 'rm -rf "$install_root" "$install_home"' EXIT
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
  if [ -e "$file" ] || [ -L "$file" ]; then cp -P --parents -- "$file" "$install_root"; fi
done
HOME="$install_home" CLAUDE_BIN="$MARSHAL_TEST_CLAUDE_BIN" \
  ANTHROPIC_BASE_URL=http://127.0.0.1:9 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
  DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 \
  "$install_root/install.sh"

step "HTML report in headless Chromium (screenshot shows the chart)"
scripts/check-html-report.sh

step "benchmark smoke runs (numbers only; the README quotes full runs)"
scripts/bench.sh --runs 50 --bin "$install_root/bin"
scripts/bench-report.sh --records 200000 --runs 3
scripts/bench-usage.sh --megabytes 64 --runs 3
scripts/bench-orchestrate.sh --runs 30 --bin "$install_root/bin"
scripts/bench-workflow.sh --steps 50 --runs 3 --bin "$install_root/bin"
