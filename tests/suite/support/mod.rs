//! Shared test helpers: running processes with a time limit, the hook binaries, the real
//! Claude Code CLI, and the scripted fake Messages API server.

pub mod claude;
pub mod fake_api;
pub mod mount;
pub mod process;

use std::path::{Path, PathBuf};

/// The repository root (the plugin folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// The folder holding the binaries cargo built for this test run. The hooks come from another
/// package (marshal-hooks), built beside these by `cargo test --workspace`, as scripts/test.sh
/// runs it; they are checked for here so a run of this package alone says what is missing.
pub fn built_binaries_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_marshal")).parent().expect("bin dir").to_path_buf();
    for hook in ["marshal-prompt", "marshal-pretool", "marshal-stop"] {
        assert!(
            dir.join(hook).exists(),
            "{hook} is not built in {}: run the suite with cargo test --workspace (or cargo build --workspace first)",
            dir.display()
        );
    }
    dir
}

/// Reads a JSON Lines file into values; a missing file is an empty list.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")))
            .collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => panic!("could not read {}: {err}", path.display()),
    }
}

/// The records of one kind (`route`, `call`, `outcome`, `subagent_stop`).
pub fn of_kind<'a>(records: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}
