//! Per-session state: the routed turns of one Claude Code session that have not closed yet.
//!
//! Kept as a small append-only journal per session (`sessions/<id>.jsonl`): a turn opens with
//! an `open` line, each Agent call adds a `call` line, and closing the session's turns empties
//! the file. Appending to an existing file costs microseconds, where replacing a file (create
//! a temp file, rename it over) costs a few hundred on ext4, on every prompt. The rare rewrite
//! (more turns open than allowed) still replaces the file atomically. All under the store lock.
//!
//! Closing turns writes to two files, so it is a small commit: a `commit` line names the turns
//! closed and the exact ledger lines about to be appended at which offset; then the ledger is
//! appended; then the journal is emptied. A hook killed in between leaves the `commit` line, and
//! the next hook finishes it: it appends the lines only if they are not already at that offset.
//! So every turn gets exactly one outcome.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::agents::Tier;
use crate::enforcement::Action;
use crate::fsutil;
use crate::mode::Mode;

/// The journal format this build writes; lines of another version are skipped.
pub const SESSION_STATE_VERSION: u32 = 1;
/// A session never keeps more open turns than this; the oldest is closed first.
pub const MAX_OPEN_TURNS: usize = 8;
/// A journal larger than this is not read into memory; the session starts over.
const MAX_JOURNAL_BYTES: u64 = 1024 * 1024;
/// Past this size, opening a turn rewrites the journal down to the turns still open (prompts
/// re-sent with the same id leave superseded lines behind).
pub const COMPACT_AFTER_BYTES: u64 = 16 * 1024;

/// The open turns of a session, folded from its journal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionState {
    pub open_turns: Vec<OpenTurn>,
    /// A close that was begun but not seen through (its hook was killed).
    pub pending: Option<Commit>,
}

/// Ledger lines that close turns, and where in the ledger they go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The ledger's length before the append.
    pub ledger_offset: u64,
    /// The exact bytes appended (whole lines).
    pub lines: String,
    /// The prompt ids of the turns these lines close.
    pub closes: Vec<Option<String>>,
}

/// A routed turn waiting for its Stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenTurn {
    pub prompt_id: Option<String>,
    /// The task type routing settled on (for the history summary).
    #[serde(default)]
    pub task: String,
    pub started: String,
    pub mode: Mode,
    pub project: Option<String>,
    pub agent: String,
    pub tier: Tier,
    pub model: String,
    /// The exact `subagent_type` the directive named.
    #[serde(default)]
    pub subagent_type: String,
    /// Agents the user named in the prompt; enforcement respects them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_named: Vec<String>,
    /// Every Agent call the main agent made in this turn, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<TurnCall>,
    /// The Stop nudge was given: the turn went on after its first Stop.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nudged: bool,
}

/// One Agent call of a turn and what enforcement did to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnCall {
    /// The agent that ran (after a rewrite, the routed one); for a denied call, the one asked.
    pub subagent_type: String,
    /// What the model asked for, when enforcement changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    pub action: Action,
    /// Made after the Stop nudge (it would not have happened without it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_nudge: bool,
}

impl OpenTurn {
    pub fn denials(&self) -> usize {
        self.calls.iter().filter(|c| c.action == Action::Denied).count()
    }
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalLine {
    pub v: u32,
    #[serde(flatten)]
    pub entry: JournalEntry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalEntry {
    /// A routed turn began (replaces an open turn with the same prompt id).
    Open(OpenTurn),
    /// The main agent called an agent during the turn `prompt_id`.
    Call {
        prompt_id: Option<String>,
        subagent_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        original: Option<String>,
        #[serde(default)]
        action: Action,
    },
    /// The Stop hook stopped the turn once to ask for delegation.
    Nudge { prompt_id: Option<String> },
    /// Turns are being closed with these ledger lines (see the module docs).
    Commit(Commit),
    /// The last commit's lines are in the ledger.
    Committed,
}

impl SessionState {
    pub fn turn_mut(&mut self, prompt_id: Option<&str>) -> Option<&mut OpenTurn> {
        self.open_turns.iter_mut().find(|t| t.prompt_id.as_deref() == prompt_id)
    }

    fn apply(&mut self, entry: JournalEntry) {
        match entry {
            JournalEntry::Open(turn) => {
                self.open_turns.retain(|t| t.prompt_id != turn.prompt_id);
                self.open_turns.push(turn);
            }
            JournalEntry::Call { prompt_id, subagent_type, original, action } => {
                if let Some(turn) = self.turn_mut(prompt_id.as_deref()) {
                    let after_nudge = turn.nudged;
                    turn.calls.push(TurnCall { subagent_type, original, action, after_nudge });
                }
            }
            JournalEntry::Nudge { prompt_id } => {
                if let Some(turn) = self.turn_mut(prompt_id.as_deref()) {
                    turn.nudged = true;
                }
            }
            JournalEntry::Commit(commit) => {
                self.open_turns.retain(|t| !commit.closes.contains(&t.prompt_id));
                self.pending = Some(commit);
            }
            JournalEntry::Committed => self.pending = None,
        }
    }
}

/// A loaded session and what was wrong with its journal, if anything (worth a log line).
pub struct Loaded {
    pub state: SessionState,
    pub problem: Option<String>,
    /// Size of the journal read.
    pub bytes: u64,
}

/// Folds the journal at `path`; a missing file is an empty session. Lines that do not parse
/// (a torn write, another version) are skipped and reported, never fatal. The file is read
/// bounded and never through a link.
pub fn load(path: &Path) -> Loaded {
    let mut state = SessionState::default();
    let content = match fsutil::read_capped(path, MAX_JOURNAL_BYTES, fsutil::Links::Refuse) {
        Ok(Some(content)) => content,
        Ok(None) => return Loaded { state, problem: None, bytes: 0 },
        Err(err) => {
            let problem = Some(format!("session journal: {err:#}; starting over"));
            return Loaded { state, problem, bytes: MAX_JOURNAL_BYTES + 1 };
        }
    };
    let bytes = content.len() as u64;
    let mut skipped = 0;
    for line in content.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<JournalLine>(line) {
            Ok(parsed) if parsed.v == SESSION_STATE_VERSION => state.apply(parsed.entry),
            _ => skipped += 1,
        }
    }
    let problem = (skipped > 0)
        .then(|| format!("session journal {}: skipped {skipped} unreadable line(s)", path.display()));
    Loaded { state, problem, bytes }
}

/// Appends one entry to the journal.
pub fn append(path: &Path, entry: JournalEntry) -> Result<()> {
    let line = JournalLine { v: SESSION_STATE_VERSION, entry };
    let mut bytes = serde_json::to_vec(&line).context("could not encode a session journal line")?;
    bytes.push(b'\n');
    fsutil::append_lines(path, &bytes)
}

/// Replaces the journal with exactly `state`'s open turns (atomically), or empties it. A pending
/// commit is dropped: callers finish it first.
pub fn rewrite(path: &Path, state: &SessionState) -> Result<()> {
    if state.open_turns.is_empty() {
        return clear(path);
    }
    let mut bytes = Vec::new();
    for turn in &state.open_turns {
        let line = JournalLine { v: SESSION_STATE_VERSION, entry: JournalEntry::Open(turn.clone()) };
        serde_json::to_writer(&mut bytes, &line).context("could not encode a session journal line")?;
        bytes.push(b'\n');
    }
    fsutil::write_atomic(path, &bytes)
}

/// Empties the journal: no turn is open. The empty file is kept, so the session's next prompt
/// appends to it instead of creating a file.
pub fn clear(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    fsutil::open_read_write(path)?.set_len(0).with_context(|| format!("could not empty {}", path.display()))
}

/// Deletes the journal: the session is over.
pub fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("could not remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Whether the journal holds anything at all (a cheap check before taking the lock).
pub fn has_entries(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(prompt_id: &str) -> OpenTurn {
        OpenTurn {
            prompt_id: Some(prompt_id.into()),
            task: "chore".into(),
            started: "2026-11-21T05:00:00Z".into(),
            mode: Mode::Directive,
            project: Some("/w".into()),
            agent: "haiku-general".into(),
            tier: Tier::Weak,
            model: "haiku".into(),
            calls: vec![],
            subagent_type: "marshal:haiku-general".into(),
            user_named: vec![],
            nudged: false,
        }
    }

    fn call(prompt_id: &str, agent: &str) -> JournalEntry {
        JournalEntry::Call {
            prompt_id: Some(prompt_id.into()),
            subagent_type: agent.into(),
            original: None,
            action: Action::None,
        }
    }

    #[test]
    fn journal_folds_into_open_turns_with_their_calls() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s1.jsonl");
        assert_eq!(load(&path).state, SessionState::default());
        append(&path, JournalEntry::Open(turn("p1"))).unwrap();
        append(&path, call("p1", "marshal:haiku-general")).unwrap();
        append(&path, call("p-unknown", "Explore")).unwrap();
        append(&path, JournalEntry::Open(turn("p2"))).unwrap();
        let loaded = load(&path);
        assert!(loaded.problem.is_none());
        let turns = loaded.state.open_turns;
        assert_eq!(turns.len(), 2);
        assert_eq!(
            turns[0].calls.iter().map(|c| c.subagent_type.as_str()).collect::<Vec<_>>(),
            ["marshal:haiku-general"]
        );
        assert!(turns[1].calls.is_empty());
    }

    #[test]
    fn reopening_a_prompt_id_replaces_the_turn() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s1.jsonl");
        append(&path, JournalEntry::Open(turn("p1"))).unwrap();
        append(&path, call("p1", "x")).unwrap();
        append(&path, JournalEntry::Open(turn("p1"))).unwrap();
        assert_eq!(load(&path).state.open_turns, vec![turn("p1")]);
    }

    #[test]
    fn clear_empties_and_rewrite_replaces() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s1.jsonl");
        append(&path, JournalEntry::Open(turn("p1"))).unwrap();
        clear(&path).unwrap();
        assert!(path.exists() && !has_entries(&path));
        let state = SessionState { open_turns: vec![turn("p2"), turn("p3")], pending: None };
        rewrite(&path, &state).unwrap();
        assert_eq!(load(&path).state, state);
        clear(&tmp.path().join("missing.jsonl")).unwrap();
    }

    #[test]
    fn torn_and_foreign_lines_are_skipped_and_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s1.jsonl");
        append(&path, JournalEntry::Open(turn("p1"))).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"v\":99,\"open\":{}}\ngarbage\n{\"v\":1,\"ca");
        std::fs::write(&path, text).unwrap();
        let loaded = load(&path);
        assert_eq!(loaded.state.open_turns, vec![turn("p1")]);
        assert!(loaded.problem.unwrap().contains("skipped 3"));
        // The next append starts on a fresh line after the torn one.
        append(&path, call("p1", "x")).unwrap();
        assert_eq!(load(&path).state.open_turns[0].calls[0].subagent_type, "x");
        // A commit closes its turns and stays pending until it is marked done.
        let commit = Commit { ledger_offset: 7, lines: "x\n".into(), closes: vec![Some("p1".into())] };
        append(&path, JournalEntry::Commit(commit.clone())).unwrap();
        let state = load(&path).state;
        assert_eq!((state.open_turns.len(), state.pending), (0, Some(commit)));
        append(&path, JournalEntry::Committed).unwrap();
        assert_eq!(load(&path).state.pending, None);
    }
}
