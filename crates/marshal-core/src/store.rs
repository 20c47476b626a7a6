//! The state directory's layout: the ledger, per-session files, the lock and the log.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::ledger::LEDGER_FILE;
use crate::lock::{lock_exclusive, LockGuard, HOOK_LOCK_BUDGET};
use crate::{fsutil, paths};

const SESSIONS_DIR: &str = "sessions";
const LOCK_FILE: &str = "state.lock";
/// Everything marshal itself may have put in its state directory before the first lock.
const MARSHAL_FILES: &[&str] =
    &[SESSIONS_DIR, crate::discovery::CACHE_FILE, crate::history::HISTORY_FILE, crate::log::LOG_FILE];

/// A state directory. Nothing is created until something is written.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.dir.join(LEDGER_FILE)
    }

    /// The journal of a session; the id is made safe, so it never leaves `sessions/`.
    pub fn session_path(&self, session: &str) -> PathBuf {
        self.dir.join(SESSIONS_DIR).join(format!("{}.jsonl", paths::safe_file_stem(session)))
    }

    /// Takes the store's one exclusive lock (ledger and session files alike), creating the
    /// directories it needs. Waits at most [`HOOK_LOCK_BUDGET`].
    pub fn lock(&self) -> Result<LockGuard> {
        // Creates the state directory too: every level marshal creates gets mode 0700.
        fsutil::ensure_private_dir(&self.dir.join(SESSIONS_DIR))?;
        self.tighten_state_dir();
        lock_exclusive(&self.dir.join(LOCK_FILE), HOOK_LOCK_BUDGET)
    }

    /// Claude Code creates the plugin's data directory with mode 0755; marshal's records are
    /// private, so on first use (the directory holds nothing but what marshal just created) it
    /// is narrowed to 0700. A directory that already held other files when marshal first used
    /// it is shared (someone pointed `MARSHAL_STATE_DIR` at it) and is left alone.
    #[cfg(unix)]
    fn tighten_state_dir(&self) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(&self.dir) else { return };
        if meta.permissions().mode() & 0o077 == 0 {
            return;
        }
        let first_use = std::fs::read_dir(&self.dir).is_ok_and(|entries| {
            entries
                .flatten()
                .all(|e| e.file_name().to_str().is_some_and(|name| MARSHAL_FILES.contains(&name)))
        });
        if first_use {
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        }
    }

    #[cfg(not(unix))]
    fn tighten_state_dir(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_loose_state_dir_of_ours_is_narrowed_but_a_shared_one_is_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let ours = tmp.path().join("plugin-data");
        std::fs::create_dir(&ours).unwrap();
        std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(Store::new(&ours).lock().unwrap());
        assert_eq!(mode(&ours), 0o700);

        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::write(shared.join("someone-elses-file"), "x").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(Store::new(&shared).lock().unwrap());
        drop(Store::new(&shared).lock().unwrap());
        assert_eq!(mode(&shared), 0o755);
    }

    #[test]
    fn session_files_stay_inside_the_sessions_dir() {
        let store = Store::new("/state");
        assert_eq!(store.session_path("abc-1"), PathBuf::from("/state/sessions/abc-1.jsonl"));
        let hostile = store.session_path("../../etc/passwd");
        assert_eq!(hostile.parent(), Some(Path::new("/state/sessions")));
    }
}
