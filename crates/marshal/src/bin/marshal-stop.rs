//! `marshal-stop`, the Stop and SubagentStop hook: closes the turn and records its compliance outcome.
//!
//! Claude Code runs it with the event JSON on stdin. It always exits 0.

fn main() -> std::process::ExitCode {
    marshal_core::hook::main("marshal-stop")
}
