//! `marshal-pretool`, the PreToolUse hook on the Agent tool: records which agent the model really called.
//!
//! Claude Code runs it with the event JSON on stdin. It always exits 0.

fn main() -> std::process::ExitCode {
    marshal_core::hook::main("marshal-pretool")
}
