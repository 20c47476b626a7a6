//! marshal's own log: one line per problem, in `marshal.log` in the state directory.
//!
//! Hooks never show errors to Claude Code; this file is where they go instead.

use std::io::Write;
use std::path::Path;

use crate::fsutil;
use crate::store::Store;

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

/// At most this many problem lines are logged at once; the rest are counted.
const MAX_PROBLEM_LINES: usize = 20;
/// How many sets of problems are remembered as logged.
const REMEMBERED_PROBLEM_SETS: usize = 8;

/// Logs `problems` (configuration errors and warnings, a bad `MARSHAL_*` value) once: they are
/// logged again only when they, or one of the `files` they came from, change. Without this a
/// hook would log the same problems on every run and rotate the log away.
pub fn log_problems_once(state_dir: Option<&Path>, source: &str, problems: &[String], files: &[&Path]) {
    if problems.is_empty() {
        return;
    }
    let digest = problems_digest(problems, files);
    let stamp = state_dir.map(|dir| Store::new(dir).logged_problems_path());
    // The last few sets logged: several projects (or hooks that see different files) each log
    // once, instead of taking turns.
    let mut seen: Vec<String> = stamp
        .as_ref()
        .and_then(|stamp| fsutil::read_capped(stamp, 4096, fsutil::Links::Refuse).ok().flatten())
        .map(|bytes| String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect())
        .unwrap_or_default();
    if seen.contains(&digest) {
        return;
    }
    for problem in problems.iter().take(MAX_PROBLEM_LINES) {
        log_line(state_dir, source, problem);
    }
    if problems.len() > MAX_PROBLEM_LINES {
        log_line(
            state_dir,
            source,
            &format!("... and {} more problem(s) not shown", problems.len() - MAX_PROBLEM_LINES),
        );
    }
    if let Some(stamp) = &stamp {
        seen.push(digest);
        let keep = &seen[seen.len().saturating_sub(REMEMBERED_PROBLEM_SETS)..];
        let _ = fsutil::create_private(stamp).and_then(|mut f| Ok(f.write_all(keep.join("\n").as_bytes())?));
    }
}

/// A digest of the problems and of each file's size and modification time.
fn problems_digest(problems: &[String], files: &[&Path]) -> String {
    use std::hash::Hasher;
    // DefaultHasher::new() is keyed the same in every process, and this only decides whether
    // to log again.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for problem in problems {
        hasher.write(problem.as_bytes());
        hasher.write_u8(0);
    }
    for file in files {
        if let Ok(meta) = std::fs::metadata(file) {
            hasher.write_u64(meta.len());
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            hasher.write_u128(modified.map_or(0, |d| d.as_nanos()));
        }
    }
    format!("{:016x}", hasher.finish())
}

fn append(dir: &Path, line: &[u8]) -> anyhow::Result<()> {
    fsutil::ensure_private_dir(dir)?;
    let store = Store::new(dir);
    let path = store.log_path();
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
        let _ = std::fs::rename(&path, store.rotated_log_path());
    }
    fsutil::open_append(&path)?.write_all(line)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_logged_once_until_they_or_their_file_change() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("marshal.json");
        std::fs::write(&config, "{}").unwrap();
        let lines =
            || std::fs::read_to_string(Store::new(tmp.path()).log_path()).unwrap_or_default().lines().count();
        let problems: Vec<String> = (0..30).map(|i| format!("problem {i}")).collect();
        log_problems_once(Some(tmp.path()), "t", &problems, &[&config]);
        assert_eq!(lines(), MAX_PROBLEM_LINES + 1, "capped, with a count of the rest");
        log_problems_once(Some(tmp.path()), "t", &problems, &[&config]);
        assert_eq!(lines(), MAX_PROBLEM_LINES + 1, "not again");
        std::fs::write(&config, "{ }").unwrap();
        log_problems_once(Some(tmp.path()), "t", &problems[..1], &[&config]);
        assert_eq!(lines(), MAX_PROBLEM_LINES + 2, "the file changed");
        // Two projects' problems, in turns: each is logged once.
        let other: Vec<String> = vec!["another project's problem".into()];
        for _ in 0..3 {
            log_problems_once(Some(tmp.path()), "t", &other, &[]);
            log_problems_once(Some(tmp.path()), "t", &problems[..1], &[&config]);
        }
        assert_eq!(lines(), MAX_PROBLEM_LINES + 3);
    }

    #[test]
    fn writes_one_line_per_message() {
        let tmp = tempfile::tempdir().unwrap();
        log_line(Some(tmp.path()), "marshal-prompt", "could not parse\nevent");
        log_line(Some(tmp.path()), "marshal-stop", "second");
        let text = std::fs::read_to_string(Store::new(tmp.path()).log_path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("marshal-prompt: could not parse event"), "{}", lines[0]);
    }
}
