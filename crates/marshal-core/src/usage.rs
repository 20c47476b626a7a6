//! Token usage and cost from Claude Code's own transcripts, joined to marshal's ledger: which
//! model, tier, agent and compliance outcome each API response belongs to, and what routing
//! saved. Read by `marshal usage` (and the report); never by a hook.
//!
//! Where the data is (verified on Claude Code 2.1.329):
//! - `<claude dir>/projects/<cwd slug>/<session>.jsonl`: the main thread. `user` lines carry
//!   `promptId` (the hooks' `prompt_id`); responses carry `requestId`, `message.id`,
//!   `message.model` and `message.usage`.
//! - `<session>/subagents/agent-<id>.jsonl`, beside `agent-<id>.meta.json` (`agentType`): a
//!   subagent. Its first `user` line has the parent turn's `promptId`.
//! - An orchestrated child (`claude -p`) is a session of its own; the ledger's `attempt` record
//!   names it (`child_session`), which ties it to the routed turn.
//!
//! Counting follows ccusage, the tool Claude Code users already trust, so totals agree: a
//! response written as several lines (same `message.id` and `requestId`; without a `requestId`,
//! same `message.id` and `timestamp`) counts once, as its line with the most tokens; a line
//! without `message.id` always counts; a line without a readable `timestamp` does not. Lines are
//! read one at a time, files in parallel.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agents::{normalize_agent_name, Tier};
use crate::compliance::Outcome;
use crate::ledger::{self, RecordBody};
use crate::mode::Mode;
use crate::pricing::{PriceBook, Tokens};
use crate::report::Filter;

/// The agent name of a session's own (main-thread) work.
pub const MAIN_AGENT: &str = "main";
/// Tier and outcome of work no routed turn owns.
pub const UNROUTED: &str = "unrouted";
/// Outcome of work marshal ran itself (orchestrate mode).
pub const ORCHESTRATED: &str = "orchestrated";

// ---------------------------------------------------------------------------
// Finding transcripts

/// Whose work a transcript file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// A session's main thread.
    Main,
    /// A subagent of the session; its type from `agent-<id>.meta.json`.
    Subagent { agent_type: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptFile {
    pub path: PathBuf,
    pub session: String,
    /// The `projects/` folder's name for the session's working directory.
    pub project_slug: String,
    pub kind: FileKind,
}

/// Every transcript under `<dir>/projects/` of each Claude Code folder, in path order. Folders
/// that do not exist are skipped (`missing` names them).
pub fn find_transcripts(claude_dirs: &[PathBuf]) -> (Vec<TranscriptFile>, Vec<PathBuf>) {
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for dir in claude_dirs {
        let projects = dir.join("projects");
        let Ok(entries) = std::fs::read_dir(&projects) else {
            missing.push(dir.clone());
            continue;
        };
        for project in sorted_entries(entries) {
            let Some(slug) = project.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            let Ok(inside) = std::fs::read_dir(&project) else { continue };
            for path in sorted_entries(inside) {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                if let Some(session) = name.strip_suffix(".jsonl") {
                    if path.is_file() {
                        files.push(TranscriptFile {
                            path: path.clone(),
                            session: session.to_string(),
                            project_slug: slug.clone(),
                            kind: FileKind::Main,
                        });
                    }
                } else if path.is_dir() {
                    subagent_files(&path, &name, &slug, &mut files);
                }
            }
        }
    }
    (files, missing)
}

fn subagent_files(session_dir: &Path, session: &str, slug: &str, files: &mut Vec<TranscriptFile>) {
    let Ok(entries) = std::fs::read_dir(session_dir.join("subagents")) else { return };
    for path in sorted_entries(entries) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some(stem) = name.strip_suffix(".jsonl") else { continue };
        if !path.is_file() {
            continue;
        }
        let meta = path.with_file_name(format!("{stem}.meta.json"));
        files.push(TranscriptFile {
            path: path.clone(),
            session: session.to_string(),
            project_slug: slug.to_string(),
            kind: FileKind::Subagent { agent_type: agent_type_of(&meta) },
        });
    }
}

/// `agentType` from a subagent's meta file (small; capped all the same).
fn agent_type_of(meta: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "agentType")]
        agent_type: Option<String>,
    }
    let bytes = crate::fsutil::read_capped(meta, 1 << 20, crate::fsutil::Links::Follow).ok()??;
    serde_json::from_slice::<Meta>(&bytes).ok()?.agent_type.filter(|t| !t.is_empty())
}

fn sorted_entries(entries: std::fs::ReadDir) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths
}

// ---------------------------------------------------------------------------
// Reading one transcript

/// One API response as a transcript line recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Response {
    /// Hash of the identity that marks duplicates (`None`: never a duplicate).
    key: Option<u64>,
    /// Milliseconds since the epoch (`None`: the line had no readable timestamp).
    at_ms: Option<i64>,
    /// Index into the file's `models`.
    model: u32,
    /// Index into the file's `prompts` (`None`: before any prompt).
    prompt: Option<u32>,
    /// Index into the file's `cwds`.
    cwd: Option<u32>,
    tokens: Tokens,
}

/// What one transcript file holds, with its strings interned per file.
#[derive(Debug, Default)]
struct FileUsage {
    models: Vec<String>,
    prompts: Vec<String>,
    cwds: Vec<String>,
    responses: Vec<Response>,
    /// Lines that looked like usage but could not be read.
    unreadable: u64,
    error: Option<String>,
}

fn intern(list: &mut Vec<String>, value: &str) -> u32 {
    // Per file these lists hold a handful of values: the last one is almost always the match.
    if let Some(i) = list.iter().rposition(|v| v == value) {
        return i as u32;
    }
    list.push(value.to_string());
    (list.len() - 1) as u32
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "requestId", borrow, default)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cwd: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<LineUsage>,
}

#[derive(Deserialize)]
struct LineUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
}

#[derive(Deserialize)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_1h_input_tokens: Option<u64>,
}

const USAGE_KEY: &[u8] = br#""usage":{"#;
const PROMPT_KEY: &[u8] = br#""promptId":""#;
/// A prompt Claude Code sends itself when a background agent finishes: part of the turn that
/// started the agent, not a turn of its own.
const NOTIFICATION: &[u8] = br#""content":"<task-notification>"#;

/// Reads one transcript. Lines are read one at a time (memory is one line, whatever the file's
/// size); only lines holding a `"usage":{` or `"promptId":"` key are looked at closely.
fn read_transcript(file: &TranscriptFile) -> FileUsage {
    let mut usage = FileUsage::default();
    let handle = match File::open(&file.path) {
        Ok(handle) => handle,
        Err(err) => {
            usage.error = Some(format!("{}: {err}", file.path.display()));
            return usage;
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, handle);
    let usage_finder = memchr::memmem::Finder::new(USAGE_KEY);
    let prompt_finder = memchr::memmem::Finder::new(PROMPT_KEY);
    let notification_finder = memchr::memmem::Finder::new(NOTIFICATION);
    let mut line = Vec::new();
    let mut prompt: Option<u32> = None;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => {
                usage.error = Some(format!("{}: {err}", file.path.display()));
                break;
            }
        }
        if let Some(at) = prompt_finder.find(&line) {
            let start = at + PROMPT_KEY.len();
            let id = line[start..].iter().position(|b| *b == b'"').map(|end| &line[start..start + end]);
            let starts_a_turn = match file.kind {
                // A subagent's lines all belong to the turn that started it: its first prompt.
                FileKind::Subagent { .. } => prompt.is_none(),
                FileKind::Main => notification_finder.find(&line).is_none() || prompt.is_none(),
            };
            if let (Some(id), true) = (id.and_then(|id| std::str::from_utf8(id).ok()), starts_a_turn) {
                if !id.is_empty() && !id.contains('\\') {
                    prompt = Some(intern(&mut usage.prompts, id));
                }
            }
        }
        if usage_finder.find(&line).is_none() {
            continue;
        }
        // JavaScript can write lone surrogates (`\ud83d`), which serde_json rejects: repair the
        // line rather than lose the response.
        let response = match serde_json::from_slice::<Line>(&line) {
            Ok(parsed) => Some(response_of(&parsed, prompt, &mut usage)),
            Err(_) => crate::wire::replace_lone_surrogates(&line).and_then(|repaired| {
                serde_json::from_slice::<Line>(&repaired)
                    .ok()
                    .map(|parsed| response_of(&parsed, prompt, &mut usage))
            }),
        };
        match response {
            // A response with no readable time stamp cannot be put on a day; ccusage leaves it
            // out too, and totals must agree.
            Some(Some(response)) if response.at_ms.is_none() => usage.unreadable += 1,
            Some(Some(response)) => usage.responses.push(response),
            // A `usage` key somewhere else in the line (not a response's usage).
            Some(None) => {}
            None => usage.unreadable += 1,
        }
    }
    usage
}

fn response_of(line: &Line, prompt: Option<u32>, usage: &mut FileUsage) -> Option<Response> {
    let message = line.message.as_ref()?;
    let counts = message.usage.as_ref()?;
    let cache_creation = counts.cache_creation_input_tokens.unwrap_or(0);
    let tokens = Tokens {
        input: counts.input_tokens,
        output: counts.output_tokens,
        cache_creation,
        cache_creation_1h: counts
            .cache_creation
            .as_ref()
            .and_then(|c| c.ephemeral_1h_input_tokens)
            .unwrap_or(0)
            .min(cache_creation),
        cache_read: counts.cache_read_input_tokens.unwrap_or(0),
    };
    let key = message.id.as_deref().map(|id| {
        let second = line.request_id.as_deref().or(line.timestamp.as_deref()).unwrap_or("");
        let tag = if line.request_id.is_some() { "r" } else { "t" };
        fnv1a(&[id.as_bytes(), tag.as_bytes(), second.as_bytes()])
    });
    let at_ms = line
        .timestamp
        .as_deref()
        .and_then(|ts| DateTime::parse_from_rfc3339(ts).ok())
        .map(|ts| ts.timestamp_millis());
    let model = message.model.as_deref().filter(|m| !m.is_empty()).unwrap_or("unknown");
    Some(Response {
        key,
        at_ms,
        model: intern(&mut usage.models, model),
        prompt,
        cwd: line.cwd.as_deref().map(|cwd| intern(&mut usage.cwds, cwd)),
        tokens,
    })
}

/// 64-bit FNV-1a over the parts, each followed by a 0 byte so that ("ab","c") and ("a","bc")
/// differ. Collisions between distinct responses are ~1 in 10^19 per pair.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(std::iter::once(&0u8)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Reads every file, `threads` at a time; results come back in the files' order.
fn read_all(files: &[TranscriptFile], threads: usize) -> Vec<FileUsage> {
    let next = AtomicUsize::new(0);
    // Each worker takes the next file and keeps what it read with the file's index.
    let read: Vec<(usize, FileUsage)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, files.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(file) = files.get(i) else { break mine };
                        mine.push((i, read_transcript(file)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    // In the files' order, one entry per file (an empty one for a file a failed worker held).
    let mut in_order: Vec<FileUsage> = (0..files.len()).map(|_| FileUsage::default()).collect();
    for (i, usage) in read {
        in_order[i] = usage;
    }
    in_order
}

// ---------------------------------------------------------------------------
// The ledger side: which turn was routed where, and how it ended

/// A routed turn, as the ledger tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedTurn {
    pub tier: Tier,
    pub agent: String,
    pub mode: Mode,
    pub project: Option<String>,
    pub outcome: Option<Outcome>,
}

/// Routed turns by (session, prompt id), and orchestrated children by their own session id.
#[derive(Debug, Default)]
pub struct LedgerIndex {
    pub turns: HashMap<(String, String), RoutedTurn>,
    /// child session -> (parent session, prompt id, the attempt's tier and agent)
    pub children: HashMap<String, (String, String, Tier, String)>,
}

impl LedgerIndex {
    /// Reads `route`, `outcome` and `attempt` records from each ledger that exists.
    pub fn read(ledgers: &[PathBuf]) -> anyhow::Result<LedgerIndex> {
        let mut index = LedgerIndex::default();
        for path in ledgers {
            let file = match crate::fsutil::open_regular(path, crate::fsutil::Links::Follow)? {
                Some(file) => file,
                None => continue,
            };
            ledger::read(BufReader::with_capacity(1 << 20, file), |record| index.add(record))?;
        }
        Ok(index)
    }

    pub fn add(&mut self, record: ledger::Record) {
        let Some(prompt) = record.prompt_id else { return };
        match record.body {
            RecordBody::Route { mode, project, agent, tier, .. } => {
                let turn = self.turns.entry((record.session, prompt)).or_insert(RoutedTurn {
                    tier,
                    agent: agent.clone(),
                    mode,
                    project: project.clone(),
                    outcome: None,
                });
                (turn.tier, turn.agent, turn.mode, turn.project) = (tier, agent, mode, project);
            }
            RecordBody::Outcome { mode, project, recommended, tier, outcome, .. } => {
                let turn = self.turns.entry((record.session, prompt)).or_insert(RoutedTurn {
                    tier,
                    agent: recommended,
                    mode,
                    project,
                    outcome: None,
                });
                turn.outcome = Some(outcome);
            }
            RecordBody::Attempt { tier, agent, child_session: Some(child), .. } => {
                self.children.insert(child, (record.session, prompt, tier, agent));
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// Aggregation

/// Tokens, requests and cost of one slice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Bucket {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// API responses (each counted once).
    pub requests: u64,
    /// US dollars, over the responses whose model has a price.
    pub cost_usd: f64,
    /// Responses whose model has no price (their tokens are counted; their cost is not).
    pub unpriced_requests: u64,
}

impl Bucket {
    fn add(&mut self, tokens: &Tokens, cost: Option<f64>) {
        self.input_tokens = self.input_tokens.saturating_add(tokens.input);
        self.output_tokens = self.output_tokens.saturating_add(tokens.output);
        self.cache_creation_input_tokens =
            self.cache_creation_input_tokens.saturating_add(tokens.cache_creation);
        self.cache_read_input_tokens = self.cache_read_input_tokens.saturating_add(tokens.cache_read);
        self.requests += 1;
        match cost {
            Some(cost) => self.cost_usd += cost,
            None => self.unpriced_requests += 1,
        }
    }

    pub fn total_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_creation_input_tokens)
            .saturating_add(self.cache_read_input_tokens)
    }
}

/// Routed turns by outcome: what they cost, what the baseline would have, how many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OutcomeCost {
    pub turns: u64,
    pub actual_cost_usd: f64,
    pub baseline_cost_usd: f64,
    pub saved_usd: f64,
}

/// What routing saved: routed turns' cost against the same tokens on the baseline model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Savings {
    /// The model the same tokens are priced at: each session's main model when the transcript
    /// shows it, else the strong tier's model. Several: joined with ", ".
    pub baseline_model: String,
    pub baseline_cost_usd: f64,
    pub actual_cost_usd: f64,
    pub saved_usd: f64,
    /// saved / baseline; `None` when the baseline is 0.
    pub saved_fraction: Option<f64>,
    /// Routed turns by outcome (followed, deviated, ignored, interrupted, orchestrated, open).
    pub by_outcome: BTreeMap<String, OutcomeCost>,
    /// What deviated and ignored turns would have saved had they been followed (at the
    /// followed turns' saved fraction), per week of the period covered: what compliance is worth.
    pub missed_usd_per_week: Option<f64>,
}

/// The whole usage report (the CLI renders it; `--json` follows the schema in the README).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageReport {
    pub by_model: BTreeMap<String, Bucket>,
    pub by_tier: BTreeMap<String, Bucket>,
    pub by_agent: BTreeMap<String, Bucket>,
    pub by_outcome: BTreeMap<String, Bucket>,
    pub by_day: BTreeMap<String, Bucket>,
    pub by_project: BTreeMap<String, Bucket>,
    /// Day (UTC) -> tier -> cost: the report's chart.
    pub cost_by_day_and_tier: BTreeMap<String, BTreeMap<String, f64>>,
    pub total: Bucket,
    pub savings: Savings,
    /// First and last response counted.
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub files: u64,
    /// Lines that looked like usage but could not be read.
    pub unreadable_lines: u64,
    /// Duplicate lines of one response, counted once.
    pub duplicates: u64,
    /// Files that could not be read, with why.
    pub errors: Vec<String>,
}

/// Everything a report needs besides the transcripts.
pub struct UsageInputs<'a> {
    pub ledger: &'a LedgerIndex,
    pub prices: &'a PriceBook,
    /// The strong tier's model: the baseline when a session's main model is unknown.
    pub strong_model: &'a str,
    /// The period, session (its own work, its subagents' and its orchestrated children's) and
    /// project (the session's cwd, as recorded); the filter's `mode` does not apply to usage.
    pub filter: &'a Filter,
    pub threads: usize,
}

/// Reads the transcripts and builds the report.
pub fn usage_report(files: &[TranscriptFile], inputs: &UsageInputs) -> UsageReport {
    // Transcripts are appended in time order: a file last written before `since` holds nothing
    // after it, and is not read at all (the status line asks for today's figures every minute).
    let recent: Vec<TranscriptFile>;
    let files = match inputs.filter.since {
        Some(since) => {
            let since = std::time::SystemTime::from(since);
            recent = files
                .iter()
                .filter(|f| {
                    std::fs::metadata(&f.path).and_then(|m| m.modified()).map_or(true, |m| m >= since)
                })
                .cloned()
                .collect();
            &recent[..]
        }
        None => files,
    };
    let read = read_all(files, inputs.threads);
    aggregate(files, &read, inputs)
}

/// Where a response's work belongs.
struct Owner<'a> {
    session: &'a str,
    prompt: Option<&'a str>,
    turn: Option<&'a RoutedTurn>,
    /// From an orchestrated child: the attempt's tier and agent.
    child: Option<(Tier, &'a str)>,
}

fn aggregate(files: &[TranscriptFile], read: &[FileUsage], inputs: &UsageInputs) -> UsageReport {
    let mut report = UsageReport { files: files.len() as u64, ..UsageReport::default() };
    let kept = deduplicate(read, &mut report.duplicates);
    let main_models = main_models(files, read, &kept);
    let mut baselines: BTreeMap<String, ()> = BTreeMap::new();
    // Ordered, so that sums (floating point) come out the same on every run.
    let mut turn_costs: BTreeMap<(&str, &str), (f64, f64, &'static str)> = BTreeMap::new();
    for (f, (file, usage)) in files.iter().zip(read).enumerate() {
        report.unreadable_lines += usage.unreadable;
        if let Some(error) = &usage.error {
            report.errors.push(error.clone());
        }
        for (r, response) in usage.responses.iter().enumerate() {
            if !kept[f][r] {
                continue;
            }
            let at = response.at_ms.and_then(DateTime::<Utc>::from_timestamp_millis);
            if !in_period(at, inputs.filter) {
                continue;
            }
            let owner = owner_of(file, usage, response, inputs.ledger);
            let project = owner
                .turn
                .and_then(|t| t.project.as_deref())
                .or(response.cwd.map(|c| usage.cwds[c as usize].as_str()))
                .unwrap_or(file.project_slug.as_str());
            if inputs.filter.project.as_deref().is_some_and(|p| p != project) {
                continue;
            }
            if let Some(session) = &inputs.filter.session {
                if session != &file.session && session != owner.session {
                    continue;
                }
            }
            let model = usage.models[response.model as usize].as_str();
            let cost = inputs.prices.price(model).map(|p| response.tokens.cost(&p));
            let tier = match (owner.child, owner.turn) {
                (Some((tier, _)), _) => tier.as_str(),
                (None, Some(turn)) => turn.tier.as_str(),
                (None, None) => UNROUTED,
            };
            let agent = match (&owner.child, &file.kind) {
                (Some((_, agent)), _) => normalize_agent_name(agent),
                (None, FileKind::Subagent { agent_type: Some(t) }) => normalize_agent_name(t),
                (None, FileKind::Subagent { agent_type: None }) => "subagent",
                (None, FileKind::Main) => MAIN_AGENT,
            };
            let outcome = outcome_name(&owner);
            // UTC days, as `marshal report` counts them, so both charts of a page agree.
            let day = at.map(|at| at.format("%Y-%m-%d").to_string()).unwrap_or_default();
            for (map, key) in [
                (&mut report.by_model, model),
                (&mut report.by_tier, tier),
                (&mut report.by_agent, agent),
                (&mut report.by_outcome, outcome),
                (&mut report.by_project, project),
            ] {
                map.entry(key.to_string()).or_default().add(&response.tokens, cost);
            }
            if !day.is_empty() {
                report.by_day.entry(day.clone()).or_default().add(&response.tokens, cost);
                *report.cost_by_day_and_tier.entry(day).or_default().entry(tier.to_string()).or_default() +=
                    cost.unwrap_or(0.0);
            }
            report.total.add(&response.tokens, cost);
            if let Some(at) = at {
                report.first = Some(report.first.map_or(at, |first| first.min(at)));
                report.last = Some(report.last.map_or(at, |last| last.max(at)));
            }
            // Savings: only routed work, priced both ways.
            if tier != UNROUTED {
                let baseline_model =
                    main_models.get(owner.session).map(String::as_str).unwrap_or(inputs.strong_model);
                if let (Some(actual), Some(baseline)) = (cost, inputs.prices.price(baseline_model)) {
                    baselines.insert(baseline_model.to_string(), ());
                    let baseline = response.tokens.cost(&baseline);
                    let prompt = owner.prompt.unwrap_or("");
                    let entry = turn_costs.entry((owner.session, prompt)).or_insert((0.0, 0.0, outcome));
                    entry.0 += actual;
                    entry.1 += baseline;
                }
            }
        }
    }
    report.savings = savings(turn_costs, baselines, report.first, report.last);
    report
}

fn in_period(at: Option<DateTime<Utc>>, filter: &Filter) -> bool {
    if filter.since.is_none() && filter.until.is_none() {
        return true;
    }
    let Some(at) = at else { return false };
    filter.since.is_none_or(|since| at >= since) && filter.until.is_none_or(|until| at < until)
}

fn owner_of<'a>(
    file: &'a TranscriptFile,
    usage: &'a FileUsage,
    response: &Response,
    ledger: &'a LedgerIndex,
) -> Owner<'a> {
    if let Some((parent, prompt, tier, agent)) = ledger.children.get(&file.session) {
        return Owner {
            session: parent,
            prompt: Some(prompt),
            turn: ledger.turns.get(&(parent.clone(), prompt.clone())),
            child: Some((*tier, agent)),
        };
    }
    let prompt = response.prompt.map(|p| usage.prompts[p as usize].as_str());
    let turn = prompt.and_then(|p| ledger.turns.get(&(file.session.clone(), p.to_string())));
    Owner { session: &file.session, prompt, turn, child: None }
}

fn outcome_name(owner: &Owner) -> &'static str {
    if owner.child.is_some() {
        return ORCHESTRATED;
    }
    match owner.turn {
        None => UNROUTED,
        Some(turn) if turn.mode == Mode::Orchestrate => ORCHESTRATED,
        Some(RoutedTurn { outcome: None, .. }) => "open",
        Some(RoutedTurn { outcome: Some(outcome), .. }) => match outcome {
            Outcome::Followed => "followed",
            Outcome::Deviated => "deviated",
            Outcome::Ignored => "ignored",
            Outcome::Interrupted => "interrupted",
        },
    }
}

/// Marks which responses count: of the lines sharing a key, the one with the most tokens (then
/// the most output tokens; then the first), across all files.
fn deduplicate(read: &[FileUsage], duplicates: &mut u64) -> Vec<Vec<bool>> {
    let mut kept: Vec<Vec<bool>> = read.iter().map(|u| vec![true; u.responses.len()]).collect();
    let mut best: HashMap<u64, (usize, usize)> = HashMap::new();
    for (f, usage) in read.iter().enumerate() {
        for (r, response) in usage.responses.iter().enumerate() {
            let Some(key) = response.key else { continue };
            match best.get_mut(&key) {
                None => {
                    best.insert(key, (f, r));
                }
                Some(slot) => {
                    *duplicates += 1;
                    let held = read[slot.0].responses[slot.1].tokens;
                    let rank = |t: &Tokens| (t.total(), t.output);
                    if rank(&response.tokens) > rank(&held) {
                        kept[slot.0][slot.1] = false;
                        *slot = (f, r);
                    } else {
                        kept[f][r] = false;
                    }
                }
            }
        }
    }
    kept
}

/// Each session's main model: the model of most of its main-thread responses.
fn main_models(files: &[TranscriptFile], read: &[FileUsage], kept: &[Vec<bool>]) -> HashMap<String, String> {
    let mut counts: HashMap<&str, HashMap<&str, u64>> = HashMap::new();
    for (f, (file, usage)) in files.iter().zip(read).enumerate() {
        if file.kind != FileKind::Main {
            continue;
        }
        for (r, response) in usage.responses.iter().enumerate() {
            let model = usage.models[response.model as usize].as_str();
            if kept[f][r] && model != "<synthetic>" && model != "unknown" {
                *counts.entry(&file.session).or_default().entry(model).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .filter_map(|(session, models)| {
            let top = models.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))?;
            Some((session.to_string(), top.0.to_string()))
        })
        .collect()
}

fn savings(
    turn_costs: BTreeMap<(&str, &str), (f64, f64, &'static str)>,
    baselines: BTreeMap<String, ()>,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
) -> Savings {
    let mut savings = Savings {
        baseline_model: baselines.into_keys().collect::<Vec<_>>().join(", "),
        ..Savings::default()
    };
    for (actual, baseline, outcome) in turn_costs.into_values() {
        savings.actual_cost_usd += actual;
        savings.baseline_cost_usd += baseline;
        let slot = savings.by_outcome.entry(outcome.to_string()).or_default();
        slot.turns += 1;
        slot.actual_cost_usd += actual;
        slot.baseline_cost_usd += baseline;
        slot.saved_usd += baseline - actual;
    }
    savings.saved_usd = savings.baseline_cost_usd - savings.actual_cost_usd;
    savings.saved_fraction =
        (savings.baseline_cost_usd > 0.0).then(|| savings.saved_usd / savings.baseline_cost_usd);
    let followed = savings.by_outcome.get("followed").copied().unwrap_or_default();
    if followed.baseline_cost_usd > 0.0 {
        let fraction = followed.saved_usd / followed.baseline_cost_usd;
        let missed: f64 = ["deviated", "ignored"]
            .iter()
            .filter_map(|o| savings.by_outcome.get(*o))
            .map(|c| (c.baseline_cost_usd * fraction - c.saved_usd).max(0.0))
            .sum();
        // At least a day's span, so one busy hour is not extrapolated into a week.
        let span_days = match (first, last) {
            (Some(first), Some(last)) => ((last - first).num_seconds() as f64 / 86_400.0).max(1.0),
            _ => 1.0,
        };
        savings.missed_usd_per_week = Some(missed / span_days * 7.0);
    }
    savings
}

#[cfg(test)]
mod tests;
