//! The compliance report: aggregation of outcome records, kept pure, plus a fast streaming
//! reader that feeds it.
//!
//! Only `outcome` records decide compliance, so the reader parses just those lines (a byte
//! search finds them) into borrowed fields; every other line gets a cheap shape check. Files
//! are read in fixed-size chunks split across threads, so memory stays bounded whatever the
//! ledger's size.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::compliance::Outcome;
use crate::ledger::{Enforcement, RECORD_VERSION};

/// Counts of outcomes for one slice of the turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub followed: u64,
    pub deviated: u64,
    pub ignored: u64,
    pub interrupted: u64,
}

impl Tally {
    /// Turns that count toward the rate: followed + deviated + ignored.
    pub fn turns(&self) -> u64 {
        self.followed + self.deviated + self.ignored
    }

    /// followed / (followed + deviated + ignored); `None` with no such turn.
    pub fn compliance_rate(&self) -> Option<f64> {
        let turns = self.turns();
        (turns > 0).then(|| self.followed as f64 / turns as f64)
    }

    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Followed => self.followed += 1,
            Outcome::Deviated => self.deviated += 1,
            Outcome::Ignored => self.ignored += 1,
            Outcome::Interrupted => self.interrupted += 1,
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.followed += other.followed;
        self.deviated += other.deviated;
        self.ignored += other.ignored;
        self.interrupted += other.interrupted;
    }
}

/// One closed turn, borrowed from its ledger line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OutcomeRow<'a> {
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(borrow)]
    pub session: Cow<'a, str>,
    #[serde(borrow, default)]
    pub project: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub mode: Cow<'a, str>,
    #[serde(borrow)]
    pub recommended: Cow<'a, str>,
    #[serde(borrow)]
    pub tier: Cow<'a, str>,
    pub outcome: Outcome,
    #[serde(borrow, default)]
    pub actual: Option<Cow<'a, str>>,
    /// The outcome had marshal not enforced anything (absent in older records: same as outcome).
    #[serde(default)]
    pub unenforced: Option<Outcome>,
    #[serde(default)]
    pub enforcement: Enforcement,
}

/// What enforcement did, summed over turns: a turn's `nudged` flag becomes a count here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EnforcementTotals {
    pub warned: u64,
    pub denied: u64,
    pub rewritten: u64,
    /// Turns stopped once and asked to delegate.
    pub nudged: u64,
}

impl EnforcementTotals {
    pub fn total(&self) -> u64 {
        self.warned.saturating_add(self.denied).saturating_add(self.rewritten).saturating_add(self.nudged)
    }

    /// Sums saturate: the counts come from a ledger, which may hold any number.
    fn add(&mut self, turn: &Enforcement) {
        self.merge(&EnforcementTotals {
            warned: turn.warned,
            denied: turn.denied,
            rewritten: turn.rewritten,
            nudged: u64::from(turn.nudged),
        });
    }

    fn merge(&mut self, other: &EnforcementTotals) {
        self.warned = self.warned.saturating_add(other.warned);
        self.denied = self.denied.saturating_add(other.denied);
        self.rewritten = self.rewritten.saturating_add(other.rewritten);
        self.nudged = self.nudged.saturating_add(other.nudged);
    }
}

/// Which turns a report covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub session: Option<String>,
    pub project: Option<String>,
    pub mode: Option<crate::mode::Mode>,
}

impl Filter {
    pub fn accepts(&self, row: &OutcomeRow) -> bool {
        if self.project.as_deref().is_some_and(|p| Some(p) != row.project.as_deref()) {
            return false;
        }
        if self.mode.is_some_and(|m| m.as_str() != row.mode) {
            return false;
        }
        self.accepts_at(&row.session, row.project.as_deref(), &row.ts)
    }

    /// The session and time checks (and the project's, when the record has one; a failure
    /// record has none, so a project filter does not hide it).
    pub fn accepts_at(&self, session: &str, project: Option<&str>, ts: &str) -> bool {
        if self.session.as_deref().is_some_and(|s| s != session) {
            return false;
        }
        if project.is_some() && self.project.as_deref().is_some_and(|p| Some(p) != project) {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Ok(ts) = DateTime::parse_from_rfc3339(ts) else {
            return false;
        };
        let ts = ts.with_timezone(&Utc);
        self.since.is_none_or(|since| ts >= since) && self.until.is_none_or(|until| ts < until)
    }
}

/// What reading the ledgers skipped, so the report can say so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Lines that are not a record (bad JSON, a cut-off line in the middle, a bad outcome).
    pub corrupt: u64,
    /// An unterminated last line: a write cut short by a crash.
    pub torn: u64,
    /// Records written by a newer marshal than this one.
    pub newer_version: u64,
}

impl Skipped {
    pub fn total(&self) -> u64 {
        self.corrupt + self.torn + self.newer_version
    }

    fn merge(&mut self, other: &Skipped) {
        self.corrupt += other.corrupt;
        self.torn += other.torn;
        self.newer_version += other.newer_version;
    }
}

/// The placeholder for "no agent" in tables keyed by actual agent.
pub const NO_AGENT: &str = "(none)";

/// The whole aggregation: a pure function of the rows added to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub overall: Tally,
    /// The same turns as they would have ended without enforcement.
    pub before_enforcement: Tally,
    pub enforcement: EnforcementTotals,
    pub by_mode: BTreeMap<String, Tally>,
    pub by_recommended: BTreeMap<String, Tally>,
    pub by_actual: BTreeMap<String, Tally>,
    pub by_day: BTreeMap<String, Tally>,
    pub by_project: BTreeMap<String, Tally>,
    /// Turns per (recommended agent, actual agent or [`NO_AGENT`]).
    pub matrix: BTreeMap<(String, String), u64>,
    /// Routed turns per recommended tier.
    pub tiers: BTreeMap<String, u64>,
    /// Lines read that were records this build understands (of every kind).
    pub records: u64,
    pub skipped: Skipped,
    /// Turns that ended on an API error (StopFailure), by day and kind (`rate_limit`, ...).
    pub failures: BTreeMap<String, BTreeMap<String, u64>>,
    /// The latest `rate_limit` failure: when the quota last ran out.
    pub last_rate_limit: Option<String>,
}

/// A StopFailure record, borrowed from its ledger line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FailureRow<'a> {
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(borrow)]
    pub session: Cow<'a, str>,
    #[serde(borrow)]
    pub error: Cow<'a, str>,
}

/// The failure kind Claude Code names a rate limit with.
pub const RATE_LIMIT: &str = "rate_limit";

fn bump(map: &mut BTreeMap<String, Tally>, key: &str, outcome: Outcome) {
    match map.get_mut(key) {
        Some(tally) => tally.add(outcome),
        None => {
            let mut tally = Tally::default();
            tally.add(outcome);
            map.insert(key.to_string(), tally);
        }
    }
}

/// The longest key kept from a ledger string; longer ones are cut.
const MAX_KEY_CHARS: usize = 120;

/// A ledger string made safe to show anywhere: control characters (escape sequences, bells,
/// newlines) and bidirectional overrides become U+FFFD, and it is cut to [`MAX_KEY_CHARS`]. A
/// ledger may be merged from another machine or hold names a model chose: it is untrusted.
pub fn displayable(text: &str) -> Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) && text.len() <= MAX_KEY_CHARS {
        return Cow::Borrowed(text);
    }
    let mut clean: String =
        text.chars().take(MAX_KEY_CHARS).map(|c| if unsafe_char(c) { '\u{fffd}' } else { c }).collect();
    if text.chars().nth(MAX_KEY_CHARS).is_some() {
        clean.push('…');
    }
    Cow::Owned(clean)
}

/// The UTC day of a record, `YYYY-MM-DD`, or a placeholder when its time stamp is not one.
fn day_of(ts: &str) -> &str {
    let day = ts.as_bytes().get(..10).unwrap_or_default();
    let shape =
        day.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    if day.len() == 10 && shape {
        &ts[..10]
    } else {
        "(invalid date)"
    }
}

impl Report {
    /// Adds one closed turn.
    pub fn add(&mut self, row: &OutcomeRow) {
        let outcome = row.outcome;
        let recommended = displayable(&row.recommended);
        let actual = row.actual.as_deref().map_or(Cow::Borrowed(NO_AGENT), displayable);
        self.overall.add(outcome);
        self.before_enforcement.add(row.unenforced.unwrap_or(outcome));
        self.enforcement.add(&row.enforcement);
        bump(&mut self.by_mode, &displayable(&row.mode), outcome);
        bump(&mut self.by_recommended, &recommended, outcome);
        bump(&mut self.by_actual, &actual, outcome);
        bump(&mut self.by_day, day_of(&row.ts), outcome);
        bump(
            &mut self.by_project,
            &row.project.as_deref().map_or(Cow::Borrowed(NO_AGENT), displayable),
            outcome,
        );
        *self.matrix.entry((recommended.into_owned(), actual.into_owned())).or_default() += 1;
        *self.tiers.entry(displayable(&row.tier).into_owned()).or_default() += 1;
    }

    /// Folds another partial report (from another chunk or ledger) into this one.
    pub fn merge(&mut self, other: Report) {
        self.overall.merge(&other.overall);
        self.before_enforcement.merge(&other.before_enforcement);
        self.enforcement.merge(&other.enforcement);
        for (mine, theirs) in [
            (&mut self.by_mode, other.by_mode),
            (&mut self.by_recommended, other.by_recommended),
            (&mut self.by_actual, other.by_actual),
            (&mut self.by_day, other.by_day),
            (&mut self.by_project, other.by_project),
        ] {
            for (key, tally) in theirs {
                mine.entry(key).or_default().merge(&tally);
            }
        }
        for (key, n) in other.matrix {
            *self.matrix.entry(key).or_default() += n;
        }
        for (key, n) in other.tiers {
            *self.tiers.entry(key).or_default() += n;
        }
        self.records += other.records;
        self.skipped.merge(&other.skipped);
        for (day, kinds) in other.failures {
            let mine = self.failures.entry(day).or_default();
            for (kind, n) in kinds {
                *mine.entry(kind).or_default() += n;
            }
        }
        let at = |ts: &Option<String>| ts.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        if at(&other.last_rate_limit) > at(&self.last_rate_limit) {
            self.last_rate_limit = other.last_rate_limit;
        }
    }

    /// Adds one API failure.
    pub fn add_failure(&mut self, row: &FailureRow) {
        *self
            .failures
            .entry(day_of(&row.ts).to_string())
            .or_default()
            .entry(displayable(&row.error).into_owned())
            .or_default() += 1;
        // Compared as times, so a record with a broken time stamp never wins.
        let at = |ts: &str| DateTime::parse_from_rfc3339(ts).ok();
        if row.error == RATE_LIMIT {
            if let Some(new) = at(&row.ts) {
                if self.last_rate_limit.as_deref().and_then(at).is_none_or(|held| new > held) {
                    self.last_rate_limit = Some(row.ts.to_string());
                }
            }
        }
    }

    /// API failures of one kind, over all days.
    pub fn failures_of(&self, kind: &str) -> u64 {
        self.failures.values().filter_map(|kinds| kinds.get(kind)).sum()
    }

    /// Deviations, most common first: (recommended, actual, turns).
    pub fn top_deviations(&self, limit: usize) -> Vec<(&str, &str, u64)> {
        let mut rows: Vec<(&str, &str, u64)> = self
            .matrix
            .iter()
            .filter(|((recommended, actual), _)| actual != NO_AGENT && actual != recommended)
            .map(|((recommended, actual), n)| (recommended.as_str(), actual.as_str(), *n))
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)).then(a.1.cmp(b.1)));
        rows.truncate(limit);
        rows
    }

    /// Reads one ledger line (without its newline) into the report.
    pub fn add_line(&mut self, line: &[u8], filter: &Filter) {
        match classify_line(line) {
            Line::Blank => {}
            Line::Corrupt => self.skipped.corrupt += 1,
            Line::Newer => self.skipped.newer_version += 1,
            Line::Other => self.records += 1,
            Line::Failure => match serde_json::from_slice::<FailureRow>(line) {
                Ok(row) => {
                    self.records += 1;
                    if filter.accepts_at(&row.session, None, &row.ts) {
                        self.add_failure(&row);
                    }
                }
                Err(_) => self.skipped.corrupt += 1,
            },
            Line::Outcome => match serde_json::from_slice::<OutcomeRow>(line) {
                Ok(row) => {
                    self.records += 1;
                    if filter.accepts(&row) {
                        self.add(&row);
                    }
                }
                Err(_) => self.skipped.corrupt += 1,
            },
        }
    }
}

enum Line {
    Blank,
    Corrupt,
    Newer,
    Other,
    Outcome,
    Failure,
}

const KIND: &[u8] = br#""kind":""#;
const OUTCOME_VALUE: &[u8] = br#"outcome""#;
const FAILURE_VALUE: &[u8] = br#"failure""#;

/// Sorts a line. Every record marshal writes starts `{"v":N,`, holds `"kind":"...` and ends
/// with `}`: those are sorted by a byte search. Any other line that is a JSON object (a ledger
/// written with ordinary spacing, or edited by hand) is parsed to find its `v` and `kind`.
fn classify_line(line: &[u8]) -> Line {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Line::Blank;
    }
    if line.first() != Some(&b'{') || line.last() != Some(&b'}') {
        return Line::Corrupt;
    }
    let compact = line.strip_prefix(br#"{"v":"#).and_then(parse_version);
    let kind = memchr::memmem::find(line, KIND);
    // The first `"kind":"` is the record's own: inside a JSON string every quote is escaped.
    let (version, kind) = match (compact, kind) {
        (Some(v), Some(at)) => {
            let value = &line[at + KIND.len()..];
            let kind = if value.starts_with(OUTCOME_VALUE) {
                Line::Outcome
            } else if value.starts_with(FAILURE_VALUE) {
                Line::Failure
            } else {
                Line::Other
            };
            (v, kind)
        }
        _ => match serde_json::from_slice::<Probe>(line) {
            Ok(Probe { v: Some(v), kind }) => (
                v,
                match kind.as_deref() {
                    Some("outcome") => Line::Outcome,
                    Some("failure") => Line::Failure,
                    _ => Line::Other,
                },
            ),
            _ => return Line::Corrupt,
        },
    };
    if version > RECORD_VERSION {
        Line::Newer
    } else {
        kind
    }
}

/// The two fields that sort a line marshal did not write itself.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(default, deserialize_with = "lenient_version")]
    v: Option<u32>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
}

fn lenient_version<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Ok(serde_json::Value::deserialize(deserializer)?.as_u64().and_then(|v| u32::try_from(v).ok()))
}

/// The leading digits of `rest` as a version number (at most 9 digits).
fn parse_version(rest: &[u8]) -> Option<u32> {
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).take(10).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    Some(rest[..digits].iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Bytes read per step by each reader; one buffer per thread bounds memory.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Below this size a ledger is read by one thread: starting more costs more than it saves.
const PARALLEL_FROM_BYTES: u64 = 8 * 1024 * 1024;

/// Streams a ledger file into a report. A large file is split into `threads` byte ranges read
/// in parallel, each with its own buffer: a line belongs to the range it starts in. Memory is
/// about `CHUNK_BYTES` per thread, whatever the file's size.
pub fn read_ledger(path: &Path, filter: &Filter, threads: usize) -> Result<Report> {
    // A regular file only: a FIFO or /dev/zero given as a ledger would never end.
    let file = crate::fsutil::open_regular(path, crate::fsutil::Links::Follow)
        .with_context(|| format!("could not open ledger {}", path.display()))?
        .with_context(|| format!("no ledger at {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let threads = threads.max(1) as u64;
    let context = || format!("could not read ledger {}", path.display());
    if threads == 1 || len < PARALLEL_FROM_BYTES {
        return scan(file, Range::whole(), filter).with_context(context);
    }
    let bounds: Vec<u64> = (0..=threads).map(|i| len * i / threads).collect();
    let parts: Vec<std::io::Result<Report>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (start, end) = (w[0], w[1]);
                let file = &file;
                scope.spawn(move || {
                    // Start one byte early and skip through the first newline: if the range
                    // starts exactly at a line, that byte is the previous line's newline.
                    let from = start.saturating_sub(1);
                    let range = Range {
                        skip_partial_first_line: start > 0,
                        owned_bytes: end - from,
                        last: end == len,
                    };
                    scan(PositionedReader { file, pos: from }, range, filter)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("a report worker panicked"))))
            .collect()
    });
    let mut report = Report::default();
    for part in parts {
        report.merge(part.with_context(context)?);
    }
    Ok(report)
}

/// Reads a whole ledger from any reader, on this thread.
pub fn read_ledger_from(reader: impl Read, filter: &Filter) -> std::io::Result<Report> {
    scan(reader, Range::whole(), filter)
}

/// Which lines of a reader's bytes a scan owns.
#[derive(Clone, Copy)]
struct Range {
    /// The reader starts mid-file: everything up to its first newline belongs to the
    /// previous range.
    skip_partial_first_line: bool,
    /// Lines starting at or after this many bytes belong to the next range.
    owned_bytes: u64,
    /// The range ends at the end of the file, so an unterminated line there is torn.
    last: bool,
}

impl Range {
    fn whole() -> Range {
        Range { skip_partial_first_line: false, owned_bytes: u64::MAX, last: true }
    }
}

/// Reads a file from an offset without moving a shared cursor (threads share the handle).
struct PositionedReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PositionedReader<'_> {
    #[cfg(unix)]
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    #[cfg(not(unix))]
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn scan(mut reader: impl Read, range: Range, filter: &Filter) -> std::io::Result<Report> {
    let mut report = Report::default();
    let mut buf = vec![0u8; CHUNK_BYTES];
    // Bytes of an unfinished line carried over from the previous chunk, at buf[..carried].
    let mut carried = 0;
    // Offset of buf[0] from the start of the range.
    let mut offset: u64 = 0;
    let mut skipping = range.skip_partial_first_line;
    loop {
        if carried == buf.len() {
            // A line longer than a chunk: not a record this build writes.
            if !skipping && offset < range.owned_bytes {
                report.skipped.corrupt += 1;
            }
            skipping = true;
            offset += carried as u64;
            carried = 0;
        }
        let n = read_full(&mut reader, &mut buf[carried..])?;
        let filled = carried + n;
        let mut pos = 0;
        for newline in memchr::memchr_iter(b'\n', &buf[carried..filled]).map(|i| i + carried) {
            if skipping {
                skipping = false;
            } else if offset + pos as u64 >= range.owned_bytes {
                return Ok(report);
            } else {
                report.add_line(&buf[pos..newline], filter);
            }
            pos = newline + 1;
        }
        if n == 0 {
            let unterminated = filled > pos;
            if unterminated && !skipping && range.last && offset + (pos as u64) < range.owned_bytes {
                report.skipped.torn += 1;
            }
            return Ok(report);
        }
        buf.copy_within(pos..filled, 0);
        offset += pos as u64;
        carried = filled - pos;
    }
}

/// Reads until `buf` is full or the input ends.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut total = 0;
    while total < buf.len() {
        match reader.read(&mut buf[total..]) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // mkfifo(1)
mod tests {
    use super::*;

    fn outcome_line(day: &str, mode: &str, recommended: &str, outcome: &str, actual: Option<&str>) -> String {
        let actual = actual.map_or("null".to_string(), |a| format!("\"{a}\""));
        format!(
            r#"{{"v":1,"ts":"{day}T10:00:00.000Z","session":"s-{mode}","prompt_id":"p","kind":"outcome","mode":"{mode}","project":"/w/{mode}","recommended":"{recommended}","tier":"weak","model":"haiku","outcome":"{outcome}","actual":{actual},"called":[],"closed_by":"stop"}}"#
        )
    }

    /// A hand-built ledger: 4 followed, 2 deviated, 1 ignored, 1 interrupted, plus noise.
    fn sample_ledger() -> String {
        let lines = [
            outcome_line("2026-11-01", "directive", "haiku-general", "followed", Some("haiku-general")),
            outcome_line("2026-11-01", "directive", "haiku-general", "deviated", Some("general-purpose")),
            outcome_line("2026-11-01", "directive", "opus-general", "followed", Some("opus-general")),
            outcome_line("2026-11-02", "directive", "haiku-general", "ignored", None),
            outcome_line("2026-11-02", "orchestrate", "sonnet-general", "followed", Some("sonnet-general")),
            outcome_line("2026-11-02", "orchestrate", "sonnet-general", "followed", Some("sonnet-general")),
            outcome_line("2026-11-03", "directive", "haiku-general", "deviated", Some("general-purpose")),
            outcome_line("2026-11-03", "directive", "haiku-general", "interrupted", None),
            r#"{"v":1,"ts":"2026-11-03T10:00:00.000Z","session":"s","kind":"route","mode":"directive"}"#
                .to_string(),
            "garbage".to_string(),
            r#"{"v":7,"ts":"2026-11-03T10:00:00.000Z","kind":"outcome"}"#.to_string(),
            r#"{"v":1,"ts":"x","kind":"outcome","broken":tru}"#.to_string(),
        ];
        lines.join("\n") + "\n" + r#"{"v":1,"ts":"2026-11-0"#
    }

    /// Reads `text` as a ledger file with `threads` readers.
    fn report_of(text: &str, filter: &Filter, threads: usize) -> Report {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ledger.jsonl");
        std::fs::write(&path, text).unwrap();
        let from_file = read_ledger(&path, filter, threads).unwrap();
        assert_eq!(from_file, read_ledger_from(text.as_bytes(), filter).unwrap(), "file and stream agree");
        from_file
    }

    #[test]
    fn hand_computed_tables() {
        let report = report_of(&sample_ledger(), &Filter::default(), 1);
        let overall = Tally { followed: 4, deviated: 2, ignored: 1, interrupted: 1 };
        assert_eq!(report.overall, overall);
        assert_eq!(report.overall.compliance_rate(), Some(4.0 / 7.0));
        assert_eq!(
            report.by_mode["directive"],
            Tally { followed: 2, deviated: 2, ignored: 1, interrupted: 1 }
        );
        assert_eq!(report.by_mode["orchestrate"], Tally { followed: 2, ..Default::default() });
        assert_eq!(report.by_recommended["haiku-general"].turns(), 4);
        assert_eq!(report.by_actual["general-purpose"].deviated, 2);
        assert_eq!(report.by_actual[NO_AGENT], Tally { ignored: 1, interrupted: 1, ..Default::default() });
        assert_eq!(report.by_day["2026-11-02"], Tally { followed: 2, ignored: 1, ..Default::default() });
        assert_eq!(report.matrix[&("haiku-general".into(), "general-purpose".into())], 2);
        assert_eq!(report.tiers["weak"], 8);
        assert_eq!(report.top_deviations(5), vec![("haiku-general", "general-purpose", 2)]);
        assert_eq!(report.records, 9);
        assert_eq!(report.skipped, Skipped { corrupt: 2, torn: 1, newer_version: 1 });
    }

    #[test]
    fn filters() {
        let by_mode = Filter { mode: Some(crate::mode::Mode::Orchestrate), ..Default::default() };
        assert_eq!(report_of(&sample_ledger(), &by_mode, 1).overall.followed, 2);
        let since = Filter { since: Some("2026-11-02T00:00:00Z".parse().unwrap()), ..Default::default() };
        // 2026-11-02: ignored, followed, followed; 2026-11-03: deviated (interrupted not counted).
        assert_eq!(report_of(&sample_ledger(), &since, 1).overall.turns(), 4);
        let until = Filter { until: Some("2026-11-02T00:00:00Z".parse().unwrap()), ..Default::default() };
        assert_eq!(report_of(&sample_ledger(), &until, 1).overall.turns(), 3);
        let project = Filter { project: Some("/w/orchestrate".into()), ..Default::default() };
        assert_eq!(report_of(&sample_ledger(), &project, 1).overall.turns(), 2);
        let session = Filter { session: Some("nope".into()), ..Default::default() };
        assert_eq!(report_of(&sample_ledger(), &session, 1).overall, Tally::default());
    }

    #[test]
    fn chunking_and_threads_do_not_change_the_result() {
        let text = sample_ledger(); // ends with a torn line
        let many: String =
            std::iter::repeat_n(sample_ledger().rsplit_once('\n').unwrap().0.to_string() + "\n", 4_000)
                .collect();
        let single = report_of(&many, &Filter::default(), 1);
        let parallel = report_of(&many, &Filter::default(), 4);
        assert_eq!(single, parallel);
        assert_eq!(single.overall.followed, 4 * 4_000);
        assert!(many.len() > 2 * CHUNK_BYTES, "the input spans several chunks");
        assert_eq!(report_of(&text, &Filter::default(), 3).skipped.torn, 1);

        // A torn tail and a line longer than a chunk, read by several threads.
        let huge_line = "x".repeat(CHUNK_BYTES + 10);
        let damaged = format!("{many}{huge_line}\n{many}{{\"v\":1,\"ts\":\"2026");
        let report = report_of(&damaged, &Filter::default(), 3);
        assert_eq!(report.overall.followed, 2 * 4 * 4_000);
        assert_eq!(report.skipped.torn, 1);
        assert_eq!(report.skipped.corrupt, 2 * single.skipped.corrupt + 1);
    }

    #[test]
    fn api_failures_are_counted_by_day_and_kind_with_the_last_rate_limit() {
        let line = |ts: &str, error: &str| {
            format!(
                r#"{{"v":1,"ts":"{ts}","session":"s","prompt_id":"p","kind":"failure","error":"{error}"}}"#
            )
        };
        let ledger = [
            line("2026-11-20T10:00:00Z", "rate_limit"),
            line("2026-11-21T09:00:00Z", "server_error"),
            line("2026-11-21T11:00:00Z", "rate_limit"),
            line("2026-11-21T10:00:00Z", "rate_limit"),
            line("bad", "rate_limit"),
        ]
        .join("\n")
            + "\n";
        let report = read_ledger_from(ledger.as_bytes(), &Filter::default()).unwrap();
        assert_eq!(report.failures_of(RATE_LIMIT), 4);
        assert_eq!(report.failures["2026-11-21"]["server_error"], 1);
        assert_eq!(report.last_rate_limit.as_deref(), Some("2026-11-21T11:00:00Z"));
        assert_eq!((report.records, report.overall.turns()), (5, 0), "failures are not turns");
        let since = Filter { since: Some("2026-11-21T00:00:00Z".parse().unwrap()), ..Filter::default() };
        assert_eq!(read_ledger_from(ledger.as_bytes(), &since).unwrap().failures_of(RATE_LIMIT), 2);
    }

    #[test]
    fn compliance_before_and_after_enforcement() {
        let line = |outcome: &str, unenforced: Option<&str>, enforcement: &str| {
            let unenforced = unenforced.map_or(String::new(), |u| format!(r#","unenforced":"{u}""#));
            format!(
                r#"{{"v":1,"ts":"2026-11-01T10:00:00Z","session":"s","kind":"outcome","mode":"directive","recommended":"haiku-general","tier":"weak","outcome":"{outcome}","actual":null{unenforced},"enforcement":{enforcement}}}"#
            )
        };
        let text = [
            line("followed", Some("deviated"), r#"{"warned":0,"denied":1,"rewritten":0,"nudged":false}"#),
            line("followed", Some("ignored"), r#"{"warned":0,"denied":0,"rewritten":0,"nudged":true}"#),
            line("followed", Some("followed"), r#"{"warned":0,"denied":0,"rewritten":0,"nudged":false}"#),
            line("deviated", None, r#"{"warned":1,"denied":0,"rewritten":0,"nudged":false}"#),
        ]
        .join("\n")
            + "\n";
        let report = report_of(&text, &Filter::default(), 1);
        assert_eq!(report.overall, Tally { followed: 3, deviated: 1, ..Default::default() });
        assert_eq!(
            report.before_enforcement,
            Tally { followed: 1, deviated: 2, ignored: 1, ..Default::default() }
        );
        assert_eq!(report.enforcement, EnforcementTotals { warned: 1, denied: 1, rewritten: 0, nudged: 1 });
    }

    #[test]
    fn untrusted_strings_become_displayable_keys() {
        assert_eq!(displayable("haiku-general"), "haiku-general");
        assert_eq!(displayable("\u{1b}[2Jx\u{7}\n"), "\u{fffd}[2Jx\u{fffd}\u{fffd}");
        assert_eq!(displayable("a\u{202e}b"), "a\u{fffd}b");
        assert_eq!(displayable(&"x".repeat(500)).chars().count(), MAX_KEY_CHARS + 1);
        assert_eq!(day_of("2026-11-01T10:00:00Z"), "2026-11-01");
        assert_eq!(day_of("2026-11-0\u{e9}<img>"), "(invalid date)");
        assert_eq!(day_of("short"), "(invalid date)");
    }

    #[test]
    fn lines_in_any_json_spacing_are_read() {
        let compact =
            outcome_line("2026-11-01", "directive", "haiku-general", "followed", Some("haiku-general"));
        let value: serde_json::Value = serde_json::from_str(&compact).unwrap();
        let spaced = serde_json::to_string_pretty(&value).unwrap().replace('\n', " ");
        let reordered = value.to_string(); // keys sorted: `v` is no longer first
        let text =
            format!("{spaced}\n{reordered}\n{{\"v\": 9, \"kind\": \"outcome\"}}\n{{\"kind\": \"route\"}}\n");
        let report = report_of(&text, &Filter::default(), 1);
        assert_eq!(report.overall.followed, 2);
        assert_eq!(report.skipped, Skipped { corrupt: 1, torn: 0, newer_version: 1 });
    }

    #[test]
    fn huge_counts_in_a_ledger_saturate_and_fifos_are_refused() {
        let line = r#"{"v":1,"ts":"2026-11-01T10:00:00Z","session":"s","kind":"outcome","mode":"directive","recommended":"a","tier":"weak","outcome":"followed","actual":"a","enforcement":{"warned":18446744073709551615,"denied":0,"rewritten":0,"nudged":false}}"#;
        let report = report_of(&format!("{line}\n{line}\n"), &Filter::default(), 1);
        assert_eq!((report.enforcement.warned, report.enforcement.total()), (u64::MAX, u64::MAX));
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("ledger.jsonl");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(read_ledger(&fifo, &Filter::default(), 1).is_err());
        assert!(read_ledger(Path::new("/dev/zero"), &Filter::default(), 1).is_err());
    }

    #[test]
    fn an_empty_ledger_is_an_empty_report() {
        let report = report_of("", &Filter::default(), 2);
        assert_eq!(report, Report::default());
        assert_eq!(report.overall.compliance_rate(), None);
    }
}
