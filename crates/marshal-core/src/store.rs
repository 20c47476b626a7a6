//! The state directory: every path under it, its one lock, and whether it can be trusted.
//!
//! No other module names a file in the state directory; they ask a [`Store`] for the path.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::lock::{lock_exclusive, LockGuard, HOOK_LOCK_BUDGET};
use crate::{fsutil, paths};

const LEDGER_FILE: &str = "ledger.jsonl";
const SESSIONS_DIR: &str = "sessions";
const RUNS_DIR: &str = "runs";
const LOCK_FILE: &str = "state.lock";
const LOG_FILE: &str = "marshal.log";
const LOG_FILE_ROTATED: &str = "marshal.log.1";
const HISTORY_FILE: &str = "history.json";
const AGENTS_CACHE_FILE: &str = "agents-cache.json";
const CLEAN_UP_MARKER: &str = "last-clean-up";
const LOGGED_PROBLEMS_FILE: &str = "logged-problems";
const RATE_LIMITS_FILE: &str = "rate-limits.json";
const STATUSLINE_CACHE_FILE: &str = "statusline-cache.json";
const DATABASE_FILE: &str = "marshal.db";
const DATABASE_WAL_FILE: &str = "marshal.db-wal";
const DATABASE_SHM_FILE: &str = "marshal.db-shm";
const WORKFLOWS_DIR: &str = "workflows";

/// Everything marshal itself may put in its state directory.
const MARSHAL_NAMES: &[&str] = &[
    LEDGER_FILE,
    SESSIONS_DIR,
    RUNS_DIR,
    LOCK_FILE,
    LOG_FILE,
    LOG_FILE_ROTATED,
    HISTORY_FILE,
    AGENTS_CACHE_FILE,
    CLEAN_UP_MARKER,
    LOGGED_PROBLEMS_FILE,
    RATE_LIMITS_FILE,
    STATUSLINE_CACHE_FILE,
    DATABASE_FILE,
    DATABASE_WAL_FILE,
    DATABASE_SHM_FILE,
    WORKFLOWS_DIR,
];

/// A state directory. Nothing is created until something is written.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    /// The store in `dir`, if marshal may keep records there: a directory of this user's that
    /// no one else can write to, reached through no one else's link, with real `sessions/` and
    /// `runs/` directories (see [`fsutil::untrusted_state_dir`]). A directory others can only
    /// read that holds only marshal's own files is narrowed to 0700 on the way.
    pub fn trusted(dir: &Path) -> Result<Store> {
        if let Some(why) = fsutil::untrusted_state_dir(dir, MARSHAL_NAMES, &[SESSIONS_DIR, RUNS_DIR]) {
            bail!("state directory {} is {why}: routing, not recording", dir.display());
        }
        Ok(Store::new(dir))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The append-only record of every routed turn ([`crate::ledger`]).
    pub fn ledger_path(&self) -> PathBuf {
        self.dir.join(LEDGER_FILE)
    }

    /// The latest rate-limit snapshot from the status line ([`crate::quota`]).
    pub fn rate_limits_path(&self) -> PathBuf {
        self.dir.join(RATE_LIMITS_FILE)
    }

    /// `marshal statusline`'s figures of the day, recomputed at most once a minute.
    pub fn statusline_cache_path(&self) -> PathBuf {
        self.dir.join(STATUSLINE_CACHE_FILE)
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.dir.join(SESSIONS_DIR)
    }

    /// The journal of a session; the id is made safe, so it never leaves `sessions/`.
    pub fn session_path(&self, session: &str) -> PathBuf {
        self.sessions_dir().join(format!("{}.jsonl", paths::safe_file_stem(session)))
    }

    /// Each orchestration attempt's output (`<run>-<n>.out` and `.err`).
    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join(RUNS_DIR)
    }

    /// The SQLite database of workflow runs and the work queue (the `marshal-db` crate owns
    /// its schema; SQLite adds `-wal` and `-shm` files beside it).
    pub fn database_path(&self) -> PathBuf {
        self.dir.join(DATABASE_FILE)
    }

    /// A workflow run's folder: each step's answer (`<step>.txt`) and the run's lock, held by
    /// the process running it. The run id is made safe, so it never leaves `workflows/`.
    pub fn workflow_run_dir(&self, run_id: &str) -> PathBuf {
        self.dir.join(WORKFLOWS_DIR).join(paths::safe_file_stem(run_id))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    pub fn rotated_log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE_ROTATED)
    }

    /// The per-task outcome summary routing reads ([`crate::history`]).
    pub fn history_path(&self) -> PathBuf {
        self.dir.join(HISTORY_FILE)
    }

    /// Discovered agents, reused while their folders are unchanged ([`crate::discovery`]).
    pub fn agents_cache_path(&self) -> PathBuf {
        self.dir.join(AGENTS_CACHE_FILE)
    }

    /// Its age says when old journals and outputs were last removed.
    pub fn clean_up_marker(&self) -> PathBuf {
        self.dir.join(CLEAN_UP_MARKER)
    }

    /// A digest of the configuration problems last logged, so each is logged once per change.
    pub fn logged_problems_path(&self) -> PathBuf {
        self.dir.join(LOGGED_PROBLEMS_FILE)
    }

    /// Takes the store's one exclusive lock (ledger and session files alike), creating the
    /// directories it needs. Waits at most [`HOOK_LOCK_BUDGET`].
    pub fn lock(&self) -> Result<LockGuard> {
        // Creates the state directory too: every level marshal creates gets mode 0700.
        fsutil::ensure_private_dir(&self.sessions_dir())?;
        lock_exclusive(&self.dir.join(LOCK_FILE), HOOK_LOCK_BUDGET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_loose_state_dir_of_ours_is_narrowed_but_a_writable_or_planted_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let set = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let ours = tmp.path().join("plugin-data");
        std::fs::create_dir(&ours).unwrap();
        set(&ours, 0o755);
        Store::trusted(&ours).unwrap();
        assert_eq!(mode(&ours), 0o700, "narrowed on first use");

        // Writable by others, even empty: refused and left as it is (sticky bit included).
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        set(&empty, 0o1777);
        assert!(Store::trusted(&empty).is_err());
        assert_eq!(std::fs::metadata(&empty).unwrap().permissions().mode() & 0o7777, 0o1777);

        // A link someone else owns, even to a good directory of ours: refused.
        let good = tmp.path().join("good");
        std::fs::create_dir(&good).unwrap();
        set(&good, 0o700);
        let theirs = tmp.path().join("theirs");
        std::os::unix::fs::symlink(&good, &theirs).unwrap();
        std::os::unix::fs::lchown(&theirs, Some(65534), None).unwrap();
        assert!(Store::trusted(&theirs).unwrap_err().to_string().contains("link owned by user 65534"));
        assert!(Store::trusted(&good).is_ok());

        // runs/ or sessions/ planted as a link: refused.
        std::os::unix::fs::symlink(tmp.path(), good.join("runs")).unwrap();
        assert!(Store::trusted(&good).unwrap_err().to_string().contains("runs"));

        // Readable by others with someone else's file in it: left alone, still usable.
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::write(shared.join("someone-elses-file"), "x").unwrap();
        set(&shared, 0o755);
        Store::trusted(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755);

        // Writable by others, with a link planted: refused, and not narrowed.
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", open.join(HISTORY_FILE)).unwrap();
        set(&open, 0o777);
        let err = Store::trusted(&open).unwrap_err().to_string();
        assert!(err.contains("writable by others") && err.contains("not recording"), "{err}");
        assert_eq!(mode(&open), 0o777);

        assert!(Store::trusted(&tmp.path().join("not-yet")).is_ok(), "created 0700 when first written");
    }

    #[test]
    fn session_files_stay_inside_the_sessions_dir() {
        let store = Store::new("/state");
        assert_eq!(store.session_path("abc-1"), PathBuf::from("/state/sessions/abc-1.jsonl"));
        let hostile = store.session_path("../../etc/passwd");
        assert_eq!(hostile.parent(), Some(Path::new("/state/sessions")));
    }
}
