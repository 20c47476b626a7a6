//! marshal's own log: one line per problem, in `marshal.log` in the state directory.
//!
//! Hooks never show errors to Claude Code; this file is where they go instead.

use std::io::Write;
use std::path::Path;

use crate::fsutil;

pub const LOG_FILE: &str = "marshal.log";
/// Past this size the log is moved to `marshal.log.1` (one generation kept).
const ROTATE_BYTES: u64 = 1024 * 1024;

/// Appends one line. Never fails: if even the log cannot be written, the line goes to stderr,
/// which Claude Code ignores for a hook that exits 0.
pub fn log_line(state_dir: Option<&Path>, source: &str, message: &str) {
    let line = format!(
        "{} {source}: {}\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        message.replace('\n', " ")
    );
    let written = state_dir.is_some_and(|dir| append(dir, line.as_bytes()).is_ok());
    if !written {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

fn append(dir: &Path, line: &[u8]) -> anyhow::Result<()> {
    fsutil::ensure_private_dir(dir)?;
    let path = dir.join(LOG_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
        let _ = std::fs::rename(&path, dir.join(format!("{LOG_FILE}.1")));
    }
    fsutil::open_append(&path)?.write_all(line)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_line_per_message() {
        let tmp = tempfile::tempdir().unwrap();
        log_line(Some(tmp.path()), "marshal-prompt", "could not parse\nevent");
        log_line(Some(tmp.path()), "marshal-stop", "second");
        let text = std::fs::read_to_string(tmp.path().join(LOG_FILE)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("marshal-prompt: could not parse event"), "{}", lines[0]);
    }
}
