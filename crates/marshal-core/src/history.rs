//! A small summary of past outcomes per task type (`history.json` in the state directory), so
//! routing can learn from history without scanning the ledger inside a hook.
//!
//! The Stop hook updates it under the store lock when it closes turns. It is a derived cache:
//! if it is lost or damaged it starts again from zero.

use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::compliance::Outcome;
use crate::fsutil;

const HISTORY_VERSION: u32 = 1;
/// Below this many turns of a task type, its history says nothing.
pub const MIN_TURNS: u64 = 10;
/// A deviation rate at or above this raises the complexity score by one.
pub const DEVIATION_RATE_RAISES: f64 = 0.4;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskHistory {
    /// Closed turns that count for compliance (followed, deviated, ignored).
    pub turns: u64,
    pub deviated: u64,
    /// Orchestrated turns that needed a stronger tier than the one routed.
    #[serde(default)]
    pub escalated: u64,
}

impl TaskHistory {
    pub fn deviation_rate(&self) -> Option<f64> {
        (self.turns >= MIN_TURNS).then(|| (self.deviated + self.escalated) as f64 / self.turns as f64)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub v: u32,
    pub tasks: BTreeMap<String, TaskHistory>,
}

impl History {
    /// Reads the summary; missing, unreadable, oversized or foreign files are an empty history.
    pub fn load(path: &Path) -> History {
        fsutil::read_capped(path, fsutil::MAX_STATE_FILE_BYTES, fsutil::Links::Refuse)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<History>(&bytes).ok())
            .filter(|h| h.v == HISTORY_VERSION)
            .unwrap_or_default()
    }

    pub fn record(&mut self, task: &str, outcome: Outcome) {
        let entry = self.tasks.entry(task.to_string()).or_default();
        match outcome {
            Outcome::Followed | Outcome::Ignored => entry.turns += 1,
            Outcome::Deviated => {
                entry.turns += 1;
                entry.deviated += 1;
            }
            Outcome::Interrupted => {}
        }
    }

    pub fn record_escalation(&mut self, task: &str) {
        self.tasks.entry(task.to_string()).or_default().escalated += 1;
    }

    /// Rewrites the file in place (the caller holds the store lock). A small file rewritten
    /// with one write; torn by a crash it reads as empty, which only forgets history.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut bytes = serde_json::to_vec(&History { v: HISTORY_VERSION, tasks: self.tasks.clone() })?;
        bytes.push(b'\n');
        let mut file = fsutil::open_read_write(path)?;
        file.rewind()?;
        file.write_all(&bytes)
            .and_then(|()| file.set_len(bytes.len() as u64))
            .with_context(|| format!("could not write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_save_and_load() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("history.json");
        let mut history = History::load(&path);
        for _ in 0..6 {
            history.record("chore", Outcome::Deviated);
        }
        for _ in 0..5 {
            history.record("chore", Outcome::Followed);
        }
        history.record("chore", Outcome::Interrupted);
        history.save(&path).unwrap();
        let loaded = History::load(&path);
        assert_eq!(loaded.tasks["chore"], TaskHistory { turns: 11, deviated: 6, escalated: 0 });
        assert_eq!(loaded.tasks["chore"].deviation_rate(), Some(6.0 / 11.0));
        // A shorter rewrite leaves no tail of the longer one.
        History::default().save(&path).unwrap();
        assert!(History::load(&path).tasks.is_empty());
    }

    #[test]
    fn little_history_says_nothing_and_garbage_is_empty() {
        let few = TaskHistory { turns: 3, deviated: 3, escalated: 0 };
        assert_eq!(few.deviation_rate(), None);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("history.json");
        std::fs::write(&path, "{garbage").unwrap();
        assert_eq!(History::load(&path), History::default());
    }
}
