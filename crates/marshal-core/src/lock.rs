//! A bounded exclusive lock on a file: try first, then wait a little, then give up.
//!
//! A hook must never hang the user's session, so there is no unbounded wait anywhere.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::fsutil;

/// How long a hook waits for the state lock before giving up and logging.
pub const HOOK_LOCK_BUDGET: Duration = Duration::from_millis(500);

/// Holds the lock until dropped (closing the file releases it, on every path).
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Takes an exclusive lock on `path`, waiting at most `budget`.
pub fn lock_exclusive(path: &Path, budget: Duration) -> Result<LockGuard> {
    let file = fsutil::open_lock_file(path)?;
    let deadline = Instant::now() + budget;
    let mut pause = Duration::from_micros(200);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(LockGuard { file }),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(err)) if err.kind() == std::io::ErrorKind::Unsupported => {
                // A file system without locks: carry on unlocked rather than fail every hook.
                return Ok(LockGuard { file });
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("could not lock {}", path.display()))
            }
        }
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "gave up waiting for lock {} after {} ms (another marshal process held it; if this \
                 repeats, look for a stuck process with `fuser {}`)",
                path.display(),
                budget.as_millis(),
                path.display()
            );
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_locker_gives_up_within_budget_then_succeeds_after_release() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lock");
        let held = lock_exclusive(&path, HOOK_LOCK_BUDGET).unwrap();
        let started = Instant::now();
        let err = lock_exclusive(&path, Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("gave up waiting") && err.to_string().contains("50 ms"), "{err}");
        // It waited its budget (not a single try), then gave up (not an unbounded wait; the
        // upper bound is loose so that a loaded machine cannot fail it).
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(50), "gave up after {waited:?}");
        assert!(waited < Duration::from_millis(1000), "waited {waited:?}");
        drop(held);
        lock_exclusive(&path, Duration::from_millis(50)).unwrap();
    }
}
