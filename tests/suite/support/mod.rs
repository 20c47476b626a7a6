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

/// The folder holding the binaries cargo built for this test run. The hooks and the MCP server
/// come from other packages (marshal-hooks, marshal-mcp), which `cargo test` does not build as plain binaries: scripts/test.sh
/// runs `cargo build --workspace --bins` first. A hook that is missing, or older than a source
/// file it is built from, stops the run here rather than testing yesterday's binary.
pub fn built_binaries_dir() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_BIN_EXE_marshal")).parent().expect("bin dir").to_path_buf();
            let newest = |dirs: &[&str]| {
                dirs.iter()
                    .flat_map(|d| walk(&repo_root().join(d)))
                    .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
                    .max()
                    .expect("sources")
            };
            let hooks = ["crates/marshal-core/src", "crates/marshal-hooks/src"];
            let mcp = ["crates/marshal-core/src", "crates/marshal-db/src", "crates/marshal-mcp/src"];
            for (binary, sources) in [
                ("marshal-prompt", &hooks[..]),
                ("marshal-pretool", &hooks[..]),
                ("marshal-stop", &hooks[..]),
                ("marshal-mcp", &mcp[..]),
            ] {
                let built = std::fs::metadata(dir.join(binary)).and_then(|m| m.modified());
                assert!(
                    built.as_ref().is_ok_and(|t| *t >= newest(sources)),
                    "{binary} in {} is missing or older than its sources: run cargo build --workspace --bins first (scripts/test.sh does)",
                    dir.display()
                );
            }
            dir
        })
        .clone()
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
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
