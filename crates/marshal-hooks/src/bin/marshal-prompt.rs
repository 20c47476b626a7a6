//! `marshal-prompt`, the UserPromptSubmit hook: routes the prompt and injects a short directive.
//!
//! Claude Code runs it with the event JSON on stdin. It always exits 0.

fn main() -> std::process::ExitCode {
    marshal_core::hook::main("marshal-prompt")
}
