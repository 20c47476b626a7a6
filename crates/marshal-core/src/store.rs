//! The state directory's layout: the ledger, per-session files, the lock and the log.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::ledger::LEDGER_FILE;
use crate::lock::{lock_exclusive, LockGuard, HOOK_LOCK_BUDGET};
use crate::{fsutil, paths};

const SESSIONS_DIR: &str = "sessions";
const LOCK_FILE: &str = "state.lock";

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
        self.dir
            .join(SESSIONS_DIR)
            .join(format!("{}.jsonl", paths::safe_file_stem(session)))
    }

    /// Takes the store's one exclusive lock (ledger and session files alike), creating the
    /// directories it needs. Waits at most [`HOOK_LOCK_BUDGET`].
    pub fn lock(&self) -> Result<LockGuard> {
        // Creates the state directory too: every level marshal creates gets mode 0700.
        fsutil::ensure_private_dir(&self.dir.join(SESSIONS_DIR))?;
        lock_exclusive(&self.dir.join(LOCK_FILE), HOOK_LOCK_BUDGET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_files_stay_inside_the_sessions_dir() {
        let store = Store::new("/state");
        assert_eq!(
            store.session_path("abc-1"),
            PathBuf::from("/state/sessions/abc-1.jsonl")
        );
        let hostile = store.session_path("../../etc/passwd");
        assert_eq!(hostile.parent(), Some(Path::new("/state/sessions")));
    }
}
