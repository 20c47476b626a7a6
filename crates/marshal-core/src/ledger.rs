//! The ledger: append-only JSON Lines, one versioned record per line.
//!
//! Writers hold the store lock and append with [`fsutil::append_lines`]: one `write()`, on a
//! fresh line, cut back off if it fails. Readers skip anything that does not parse, and say
//! how much.

use std::fs::File;
use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::agents::Tier;
use crate::compliance::Outcome;
use crate::enforcement::Action;
use crate::fsutil;
use crate::mode::Mode;
use crate::orchestrate::AttemptStatus;

/// The record format this build writes; readers skip records from a newer format.
pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Format version, so later builds can read old ledgers and skip newer ones.
    pub v: u32,
    /// RFC 3339 UTC timestamp.
    pub ts: String,
    pub session: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<String>,
    #[serde(flatten)]
    pub body: RecordBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordBody {
    /// marshal recommended an agent for a user prompt (a routed turn began).
    Route {
        mode: Mode,
        project: Option<String>,
        agent: String,
        subagent_type: String,
        tier: Tier,
        model: String,
        confidence: f64,
        reasons: Vec<String>,
        /// Length of the prompt in characters; the text itself is not stored.
        prompt_chars: usize,
        /// The task type routing settled on.
        #[serde(default)]
        task: String,
        /// Complexity score, 1 to 10 (0 in records written before scores existed).
        #[serde(default)]
        score: u8,
        /// Why the mode was chosen.
        #[serde(default)]
        mode_reason: String,
        /// The prompt's text, only when `store_prompts` is on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prompt: Option<String>,
    },
    /// An Agent tool call, as the model made it.
    Call {
        subagent_type: String,
        /// Bare agent name (`marshal:` prefix removed).
        agent: String,
        model: Option<String>,
        tool_use_id: Option<String>,
        /// The calling subagent's id when the call came from inside a subagent.
        inside_subagent: Option<String>,
        /// Whether the call belongs to a routed turn of the main agent (and so can decide it).
        routed_turn: bool,
        /// What the model asked for, when enforcement rewrote it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        original: Option<String>,
        /// What enforcement did to the call.
        #[serde(default)]
        action: Action,
    },
    /// A routed turn closed, with its compliance outcome.
    Outcome {
        mode: Mode,
        project: Option<String>,
        recommended: String,
        tier: Tier,
        model: String,
        outcome: Outcome,
        actual: Option<String>,
        /// Every agent the main agent called in the turn, bare names, in call order.
        called: Vec<String>,
        closed_by: ClosedBy,
        /// The turn's task type.
        #[serde(default)]
        task: String,
        /// The outcome had marshal not intervened (the calls as the model made them, before
        /// any nudge); absent in records written before enforcement existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unenforced: Option<Outcome>,
        /// What enforcement did during the turn.
        #[serde(default)]
        enforcement: Enforcement,
        /// Orchestration moved up this many tiers.
        #[serde(default, skip_serializing_if = "is_zero")]
        escalations: u32,
    },
    /// One `claude -p` child of an orchestrated turn.
    Attempt {
        number: u32,
        tier: Tier,
        agent: String,
        subagent_type: String,
        model: String,
        status: AttemptStatus,
        exit_code: Option<i32>,
        api_error_status: Option<u64>,
        duration_ms: u64,
        /// From the start of the marshal process to this child's spawn.
        spawned_after_us: u64,
        /// The child's output file (its errors are beside it, `.err`).
        output: String,
        /// The child's own Claude Code session, whose transcript holds its token usage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        child_session: Option<String>,
    },
    /// A subagent finished.
    SubagentStop { agent_id: String, agent_type: Option<String> },
    /// A turn ended on an API error (Claude Code's StopFailure): `rate_limit` when the quota ran
    /// out, else `server_error`, ... as Claude Code names it.
    Failure { error: String },
}

/// What enforcement did during one turn. The one shape of an `outcome` record's
/// `enforcement`: the report reads it through this type too (and sums it in
/// [`crate::report::EnforcementTotals`]). Counts are `u64` so that a merged or hand-edited ledger
/// with absurd numbers still parses; the report's sums saturate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforcement {
    #[serde(default)]
    pub warned: u64,
    #[serde(default)]
    pub denied: u64,
    #[serde(default)]
    pub rewritten: u64,
    /// Stopped once and asked to delegate. Older tools summed this as a count: any number
    /// above zero reads as true.
    #[serde(default, deserialize_with = "flag_or_count")]
    pub nudged: bool,
}

fn flag_or_count<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::Number(n) => n.as_u64().is_some_and(|n| n > 0),
        _ => false,
    })
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What closed a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedBy {
    /// The turn's own Stop event.
    Stop,
    /// A Stop for a later prompt of the same session (this turn never got its own).
    LaterStop,
    /// Too many turns were open in one session; the oldest was closed to bound state.
    Overflow,
    /// marshal ran the turn itself (orchestrate mode).
    Orchestration,
    /// The session ended with the turn still open (its Stop never came: an API error, a cancel).
    SessionEnd,
}

impl Record {
    pub fn new(ts: String, session: String, prompt_id: Option<String>, body: RecordBody) -> Self {
        Record { v: RECORD_VERSION, ts, session, prompt_id, body }
    }
}

/// Appends `records` to the ledger at `path`, one `write()` for all. The caller holds the
/// store lock.
pub fn append(path: &Path, records: &[Record]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    fsutil::append_lines(path, &encode(records)?)
}

/// Appends lines made by [`encode`] (a close commit keeps them to check later; see
/// [`holds_at`]). The caller holds the store lock.
pub fn append_encoded(path: &Path, lines: &[u8]) -> Result<()> {
    fsutil::append_lines(path, lines)
}

/// The ledger lines of `records`, exactly as [`append`] writes them.
pub fn encode(records: &[Record]) -> Result<Vec<u8>> {
    let mut lines = Vec::with_capacity(256 * records.len());
    for record in records {
        serde_json::to_writer(&mut lines, record).context("could not encode a ledger record")?;
        lines.push(b'\n');
    }
    Ok(lines)
}

/// The ledger's length now (0 when there is none yet).
pub fn len(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).map_or(0, |m| m.len())
}

/// Whether `lines` were appended at `offset` (right there, or after the newline an append puts
/// first when it finds the ledger ending torn). The ledger only grows and a failed append is cut
/// back, so this says exactly whether an append that began at `offset` completed.
pub fn holds_at(path: &Path, offset: u64, lines: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(Some(mut file)) = fsutil::open_regular(path, fsutil::Links::Refuse) else { return false };
    let mut found = Vec::with_capacity(lines.len() + 1);
    let read = file
        .seek(SeekFrom::Start(offset))
        .and_then(|_| file.by_ref().take(lines.len() as u64 + 1).read_to_end(&mut found));
    if read.is_err() {
        return false;
    }
    let found = &found[..];
    found.starts_with(lines) || (found.first() == Some(&b'\n') && found[1..].starts_with(lines))
}

/// What a read skipped, so a report can say so.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadStats {
    pub records: u64,
    /// Lines that are not a record this build understands (corrupt JSON, unknown kind).
    pub corrupt: u64,
    /// Records written by a newer marshal.
    pub newer_version: u64,
    /// An unterminated last line: a write cut short by a crash.
    pub torn: u64,
}

/// Streams the records of a ledger, calling `visit` for each one that parses.
pub fn read(reader: impl BufRead, mut visit: impl FnMut(Record)) -> Result<ReadStats> {
    let mut stats = ReadStats::default();
    let mut reader = reader;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).context("could not read ledger")?;
        if n == 0 {
            return Ok(stats);
        }
        if line.last() != Some(&b'\n') {
            stats.torn += 1;
            return Ok(stats);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) if record.v > RECORD_VERSION => stats.newer_version += 1,
            Ok(record) => {
                stats.records += 1;
                visit(record);
            }
            Err(_) => stats.corrupt += 1,
        }
    }
}

/// Reads a whole ledger file into memory (tests and small tools; reports stream instead).
pub fn read_file(path: &Path) -> Result<(Vec<Record>, ReadStats)> {
    let file = File::open(path).with_context(|| format!("could not open ledger {}", path.display()))?;
    let mut records = Vec::new();
    let stats = read(std::io::BufReader::new(file), |r| records.push(r))?;
    Ok((records, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop_record(agent: &str) -> Record {
        Record::new(
            "2026-11-21T05:00:00.000Z".into(),
            "s1".into(),
            Some("p1".into()),
            RecordBody::SubagentStop { agent_id: "a1".into(), agent_type: Some(agent.into()) },
        )
    }

    #[test]
    fn append_then_read_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ledger.jsonl");
        append(&path, &[stop_record("x"), stop_record("y")]).unwrap();
        append(&path, &[stop_record("z")]).unwrap();
        let (records, stats) = read_file(&path).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(stats, ReadStats { records: 3, ..Default::default() });
        assert_eq!(records[2], stop_record("z"));
        let first_line = std::fs::read_to_string(&path).unwrap().lines().next().unwrap().to_string();
        assert!(first_line.starts_with(r#"{"v":1,"ts":"#), "{first_line}");
        assert!(first_line.contains(r#""kind":"subagent_stop""#), "{first_line}");
    }

    #[test]
    fn torn_last_line_is_skipped_and_the_next_append_starts_fresh() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ledger.jsonl");
        append(&path, &[stop_record("before")]).unwrap();
        use std::io::Write;
        let mut file = fsutil::open_append(&path).unwrap();
        file.write_all(br#"{"v":1,"ts":"2026-11-21T05:00:00Z","sess"#).unwrap();
        let (_, stats) = read_file(&path).unwrap();
        assert_eq!((stats.records, stats.torn), (1, 1));

        append(&path, &[stop_record("after")]).unwrap();
        let (records, stats) = read_file(&path).unwrap();
        assert_eq!(records, vec![stop_record("before"), stop_record("after")]);
        assert_eq!((stats.corrupt, stats.torn), (1, 0));
    }

    #[test]
    fn holds_at_says_whether_an_append_completed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ledger.jsonl");
        append(&path, &[stop_record("a")]).unwrap();
        let offset = len(&path);
        let lines = encode(&[stop_record("b")]).unwrap();
        assert!(!holds_at(&path, offset, &lines), "not yet appended");
        fsutil::append_lines(&path, &lines).unwrap();
        assert!(holds_at(&path, offset, &lines));
        append(&path, &[stop_record("c")]).unwrap();
        assert!(holds_at(&path, offset, &lines), "later appends change nothing");
        assert!(!holds_at(&path, 0, &lines));
        // After a torn line, the append starts one newline later.
        use std::io::Write;
        fsutil::open_append(&path).unwrap().write_all(b"{\"v\":1,\"to").unwrap();
        let offset = len(&path);
        fsutil::append_lines(&path, &lines).unwrap();
        assert!(holds_at(&path, offset, &lines));
    }

    #[test]
    fn corrupt_and_newer_lines_are_counted_not_fatal() {
        let text = format!(
            "garbage\n{}\n{}\n\n\u{0}\u{ff}\n",
            serde_json::to_string(&stop_record("ok")).unwrap(),
            serde_json::to_string(&stop_record("future")).unwrap().replace(r#""v":1"#, r#""v":99"#),
        );
        let mut seen = Vec::new();
        let stats = read(text.as_bytes(), |r| seen.push(r)).unwrap();
        assert_eq!(seen, vec![stop_record("ok")]);
        assert_eq!(stats, ReadStats { records: 1, corrupt: 2, newer_version: 1, torn: 0 });
    }
}
