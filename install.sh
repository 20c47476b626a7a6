#!/usr/bin/env bash
# install.sh: build marshal's binaries and register the plugin with Claude Code.
# Safe to run again at any time; see ./install.sh --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PLUGIN="marshal"
MARKETPLACE="marshal"
CLAUDE_CODE_VERSION="2.1.329"
BINARIES=(marshal marshal-prompt marshal-pretool marshal-stop marshal-orchestrate marshal-mcp)

usage() {
  cat <<USAGE
Usage: ./install.sh [--uninstall] [--binaries DIR] [--no-register] [--no-link] [--statusline]

Builds marshal's release binaries into $ROOT/bin, registers this folder as a
Claude Code plugin marketplace, installs the plugin, and checks that it works.
When ~/.local/bin is on your PATH, it also links marshal and marshal-orchestrate
there (it never replaces a file that is not its own link).
Running it again updates everything in place.

Options:
  --uninstall      Remove the plugin and the marketplace from Claude Code and
                   delete bin/. Your ledger and logs are kept (the path is printed).
  --binaries DIR   Copy already-built binaries from DIR instead of building.
  --no-register    Build and check the binaries only; leave Claude Code alone.
  --no-link        Do not link marshal and marshal-orchestrate into ~/.local/bin.
  --statusline     Also show marshal in Claude Code's status line (last route,
                   today's compliance and savings, rate-limit windows). An existing
                   statusLine in ~/.claude/settings.json is never replaced.
  -h, --help       Show this help.

Environment:
  CLAUDE_BIN         Claude Code CLI to register with (default: claude on PATH).
  CARGO_TARGET_DIR   Where cargo builds (default: \${XDG_CACHE_HOME:-~/.cache}/marshal/target,
                     outside this folder, because Claude Code copies the plugin folder).
USAGE
}

say() { printf '%s\n' "$*"; }
ok() { printf '  \342\234\224 %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

scratch=""
trap '[ -z "$scratch" ] || rm -rf "$scratch"' EXIT

uninstall=0
binaries_dir=""
register=1
link=1
statusline=0
while [ $# -gt 0 ]; do
  case "$1" in
    --uninstall) uninstall=1 ;;
    --binaries) [ $# -ge 2 ] || die "--binaries needs a directory"; binaries_dir="$2"; shift ;;
    --no-register) register=0 ;;
    --no-link) link=0 ;;
    --statusline) statusline=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done

find_claude() {
  if [ -n "${CLAUDE_BIN:-}" ]; then
    [ -x "$CLAUDE_BIN" ] || die "CLAUDE_BIN=$CLAUDE_BIN is not an executable file"
    printf '%s\n' "$CLAUDE_BIN"
  elif command -v claude >/dev/null 2>&1; then
    command -v claude
  else
    die "Claude Code CLI not found on PATH. Install it with
    npm install -g @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION
or point CLAUDE_BIN at it, then run ./install.sh again."
  fi
}

build_binaries() {
  command -v cargo >/dev/null 2>&1 && command -v rustc >/dev/null 2>&1 ||
    die "cargo and rustc not found. Install the Rust toolchain (1.89 or newer) from https://rustup.rs, then run ./install.sh again."
  local host target_dir
  host="$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')" || true
  [ -n "$host" ] ||
    die "rustc is on PATH but does not run. With rustup, check 'rustup default stable'; if HOME was changed, point RUSTUP_HOME and CARGO_HOME at the real ones."
  target_dir="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/marshal/target}"
  say "Building release binaries for $host (cargo target dir: $target_dir)."
  say "The first build takes a few minutes; cargo shows its progress below."
  # Static glibc linking saves ~0.3 ms of dynamic loading on every hook run (see README).
  # With --target, RUSTFLAGS reach only our binaries, not build scripts or proc-macros.
  local rustflags="${RUSTFLAGS:-}"
  case "$host" in *-linux-gnu) rustflags="$rustflags -C target-feature=+crt-static" ;; esac
  (cd "$ROOT" && RUSTFLAGS="$rustflags" CARGO_TARGET_DIR="$target_dir" \
    cargo build --release --locked --target "$host" -p marshal -p marshal-hooks -p marshal-mcp --bins) ||
    die "cargo build failed (see the messages above)"
  binaries_dir="$target_dir/$host/release"
}

# Copies the binaries into bin/ with a rename, so a hook running right now keeps its old file.
place_binaries() {
  mkdir -p "$ROOT/bin"
  local name
  for name in "${BINARIES[@]}"; do
    [ -x "$binaries_dir/$name" ] || die "$binaries_dir/$name is missing or not executable"
    cp "$binaries_dir/$name" "$ROOT/bin/.$name.new"
    chmod 0755 "$ROOT/bin/.$name.new"
    mv -f "$ROOT/bin/.$name.new" "$ROOT/bin/$name"
  done
  ok "binaries installed in $ROOT/bin"
}

register_plugin() {
  local claude="$1"
  say "Registering with Claude Code ($claude)..."
  "$claude" plugin validate "$ROOT" >/dev/null || die "claude plugin validate $ROOT failed; run it by hand to see why"
  ok "plugin manifest, hooks and agents validate"
  "$claude" plugin marketplace add "$ROOT" >/dev/null || die "claude plugin marketplace add $ROOT failed"
  "$claude" plugin install "$PLUGIN@$MARKETPLACE" >/dev/null || die "claude plugin install $PLUGIN@$MARKETPLACE failed"
  "$claude" plugin list 2>/dev/null | grep -qF "$PLUGIN@$MARKETPLACE" ||
    die "claude plugin list does not show $PLUGIN@$MARKETPLACE after installing it"
  ok "plugin $PLUGIN@$MARKETPLACE installed and enabled"
}

# Sends synthetic events through the binaries just placed in bin/ (the ones hooks.json runs),
# in a throw-away state dir, whatever MARSHAL_MODE the caller has set.
health_check() {
  local out
  scratch="$(mktemp -d)"
  export MARSHAL_STATE_DIR="$scratch" MARSHAL_MODE=directive
  out="$(printf '%s' '{"hook_event_name":"UserPromptSubmit","session_id":"install-check","prompt_id":"p1","cwd":"/","prompt":"rename foo to bar"}' |
    "$ROOT/bin/marshal-prompt")"
  case "$out" in
    *'"additionalContext"'*'marshal:haiku-general'*) ok "marshal-prompt routes a chore to marshal:haiku-general" ;;
    *) die "marshal-prompt printed an unexpected answer: '$out'; its log says: $(cat "$scratch/marshal.log" 2>/dev/null)" ;;
  esac
  printf '%s' '{"hook_event_name":"Stop","session_id":"install-check","prompt_id":"p1"}' |
    "$ROOT/bin/marshal-stop"
  grep -q '"outcome":"ignored"' "$scratch/ledger.jsonl" 2>/dev/null ||
    die "marshal-stop did not record the turn's outcome; its log says: $(cat "$scratch/marshal.log" 2>/dev/null)"
  ok "marshal-stop records the turn's outcome in the ledger"
  out="$(printf 'not json' | "$ROOT/bin/marshal-pretool")" ||
    die "marshal-pretool exited non-zero on bad input"
  [ -z "$out" ] || die "marshal-pretool printed something on bad input: $out"
  ok "bad input is ignored quietly (exit 0, nothing on stdout)"
  unset MARSHAL_STATE_DIR MARSHAL_MODE
}

# The commands a user types, linked into ~/.local/bin when that folder is on PATH.
USER_COMMANDS=(marshal marshal-orchestrate)
LINK_DIR="${HOME:-}/.local/bin"

on_path() {
  case ":${PATH:-}:" in *":$1:"*) return 0 ;; *) return 1 ;; esac
}

link_commands() {
  if [ "$link" = 0 ] || [ -z "${HOME:-}" ] || ! on_path "$LINK_DIR"; then
    say "To run marshal by name, add $ROOT/bin to your PATH (or run $ROOT/bin/marshal)."
    return
  fi
  mkdir -p "$LINK_DIR"
  local name target
  for name in "${USER_COMMANDS[@]}"; do
    target="$LINK_DIR/$name"
    if [ -e "$target" ] || [ -L "$target" ]; then
      if [ "$(readlink "$target" 2>/dev/null)" != "$ROOT/bin/$name" ]; then
        say "  $target exists and is not marshal's link; left alone (run $ROOT/bin/$name instead)"
        continue
      fi
    fi
    ln -sfn "$ROOT/bin/$name" "$target"
  done
  ok "linked ${USER_COMMANDS[*]} into $LINK_DIR (on your PATH)"
}

unlink_commands() {
  local name target
  for name in "${USER_COMMANDS[@]}"; do
    target="$LINK_DIR/$name"
    if [ -L "$target" ] && [ "$(readlink "$target")" = "$ROOT/bin/$name" ]; then
      rm -f "$target"
      ok "removed the link $target"
    fi
  done
}

do_uninstall() {
  local claude
  # Without a working CLI the plugin would stay enabled with its binaries gone, and every hook
  # would fail: stop here instead, before deleting anything.
  claude="$(find_claude)"
  if "$claude" plugin list 2>/dev/null | grep -qF "$PLUGIN@$MARKETPLACE"; then
    # --keep-data: the ledger and log live in the plugin's data folder; they are the user's.
    "$claude" plugin uninstall --keep-data "$PLUGIN@$MARKETPLACE" >/dev/null ||
      die "claude plugin uninstall $PLUGIN@$MARKETPLACE failed; nothing was removed"
    ok "plugin $PLUGIN@$MARKETPLACE uninstalled"
  else
    ok "plugin $PLUGIN@$MARKETPLACE was not installed"
  fi
  if "$claude" plugin marketplace list 2>/dev/null | grep -qF "($ROOT)"; then
    "$claude" plugin marketplace remove "$MARKETPLACE" >/dev/null ||
      die "claude plugin marketplace remove $MARKETPLACE failed"
    ok "marketplace $MARKETPLACE removed"
  fi
  if "$claude" plugin list 2>/dev/null | grep -qF "$PLUGIN@$MARKETPLACE"; then
    die "claude plugin list still shows $PLUGIN@$MARKETPLACE; bin/ was left in place"
  fi
  unlink_commands
  # The status line --statusline added would point at a binary that is about to go.
  if [ -x "$ROOT/bin/marshal" ]; then
    "$ROOT/bin/marshal" statusline --uninstall || say "  could not check ~/.claude/settings.json for marshal's status line"
  fi
  rm -rf "$ROOT/bin"
  ok "removed $ROOT/bin"
  say "Your ledger and log are kept in ${MARSHAL_STATE_DIR:-$HOME/.claude/plugins/data/$PLUGIN-$MARKETPLACE}; delete that folder to remove them."
}

if [ "$uninstall" = 1 ]; then
  say "Uninstalling marshal..."
  do_uninstall
  exit 0
fi

claude=""
if [ "$register" = 1 ]; then
  claude="$(find_claude)" # fail early, before a long build
fi
if [ -z "$binaries_dir" ]; then
  build_binaries
fi
place_binaries
health_check
if [ "$register" = 1 ]; then
  register_plugin "$claude"
fi
link_commands
if [ "$register" = 1 ]; then
  say "marshal is installed. Start Claude Code as usual; every prompt is now routed."
  if [ "$statusline" = 1 ]; then
    "$ROOT/bin/marshal" statusline --install || die "could not set the status line"
  else
    say "Optional: ./install.sh --statusline puts routing, savings and rate-limit use in Claude Code's status line."
  fi
  if on_path "$LINK_DIR" && [ "$link" = 1 ]; then
    say "See what it recorded: marshal report (and marshal doctor if anything seems off)."
  else
    say "See what it recorded: $ROOT/bin/marshal report (and $ROOT/bin/marshal doctor if anything seems off)."
  fi
else
  say "Binaries built and checked; Claude Code was left alone (--no-register)."
fi
