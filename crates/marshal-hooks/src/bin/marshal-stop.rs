//! `marshal-stop`, the Stop, SubagentStop and SessionEnd hook: closes turns and records their
//! compliance outcome.
//!
//! Claude Code runs it with the event JSON on stdin. It always exits 0.

fn main() -> std::process::ExitCode {
    marshal_core::hook::main("marshal-stop")
}
