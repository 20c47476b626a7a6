//! Turn bookkeeping: what each hook event does to the session state and the ledger.
//!
//! A routed turn opens at UserPromptSubmit, collects the main agent's Agent calls at
//! PreToolUse (enforcing the routing at the configured level), and closes with a compliance
//! outcome at Stop, unless the Stop nudge asks the model to delegate first. Every change to the
//! ledger, the session journals and the history happens under the store lock; closing turns is
//! a commit (see [`crate::session`]), so each turn gets exactly one outcome even when a hook is
//! killed half-way. Nothing here prints.

use anyhow::Result;

use crate::agents::normalize_agent_name;
use crate::compliance::{self, Outcome};
use crate::enforcement::{self, Action, Level, Routed, Verdict};
use crate::event::{AgentCall, Event, TurnKey};
use crate::history::History;
use crate::ledger::{self, ClosedBy, Enforcement, Record, RecordBody};
use crate::mode::{Mode, ModeDecision};
use crate::orchestrate;
use crate::routing::{self, Decision, Recommendation};
use crate::session::{self, Commit, JournalEntry, OpenTurn, SessionState, MAX_OPEN_TURNS};
use crate::store::Store;

/// What a hook tells Claude Code.
#[derive(Debug, Clone, PartialEq)]
pub enum HookResponse {
    /// Print nothing: Claude Code carries on as if the hook were not there.
    Silent,
    /// UserPromptSubmit context for the model.
    AdditionalContext(String),
    /// PreToolUse: allow the call, with this context for the model.
    ToolContext(String),
    /// PreToolUse: deny the call with this reason (the model sees it and can retry).
    DenyTool(String),
    /// PreToolUse: run the call with this complete input instead.
    RewriteTool(serde_json::Value),
    /// Stop: keep the model going, with this reason.
    BlockStop(String),
    /// UserPromptSubmit: no model call; `claude -p` prints this (the orchestrated answer).
    BlockPrompt(String),
}

/// Runs an orchestration for a routed prompt; `Err` says why it could not run at all (no CLI,
/// or the CLI could not be started), and the prompt is then given a directive instead.
pub type Orchestrator<'a> = dyn Fn(&str, &Recommendation, &TurnKey) -> Result<orchestrate::Run, String> + 'a;

/// Problems worth a log line that did not stop the hook.
pub type Warnings = Vec<String>;

/// What the bookkeeping needs from the configuration and the router.
pub struct TurnSettings<'a> {
    pub mode: &'a ModeDecision,
    pub enforce: Level,
    pub nudge: bool,
    /// Decides a prompt (the caller loads routing's inputs only when asked).
    pub route: &'a dyn Fn(&str) -> Decision,
    /// Carries a routed prompt out in orchestrate mode.
    pub orchestrate: &'a Orchestrator<'a>,
    /// Keep prompt texts in route records.
    pub store_prompts: bool,
    /// Session journals and orchestration outputs older than this are removed at session end.
    pub retention: std::time::Duration,
}

/// Handles one event. `now` is the RFC 3339 time stamped on records.
pub fn handle(
    event: Event,
    settings: &TurnSettings,
    store: &Store,
    now: &str,
) -> Result<(HookResponse, Warnings)> {
    if settings.mode.mode == Mode::Off {
        return Ok((HookResponse::Silent, Vec::new()));
    }
    match event {
        // A child marshal started records its calls, and never routes again.
        Event::Prompt { .. } if settings.mode.mode == Mode::Child => Ok((HookResponse::Silent, Vec::new())),
        Event::Prompt { key, prompt } => match (settings.route)(&prompt) {
            Decision::Abstain(_) => Ok((HookResponse::Silent, Vec::new())),
            Decision::Route(rec) => {
                let routed = RoutedPrompt {
                    key: &key,
                    rec: &rec,
                    prompt: &prompt,
                    mode_reason: &settings.mode.reason,
                    store_prompt: settings.store_prompts,
                };
                if settings.mode.mode != Mode::Orchestrate {
                    return Ok(directive(store, &routed, now));
                }
                match (settings.orchestrate)(&prompt, &rec, &key) {
                    Ok(run) => {
                        let warnings = record_orchestration(store, &routed, &run, now)
                            .unwrap_or_else(|err| vec![format!("orchestrated turn not recorded: {err:#}")]);
                        let answer = run.result.clone().unwrap_or_else(|| run.failure_text());
                        Ok((HookResponse::BlockPrompt(answer), warnings))
                    }
                    Err(reason) => {
                        let (response, mut warnings) =
                            directive(store, &RoutedPrompt { mode_reason: &reason, ..routed }, now);
                        warnings.insert(0, reason.clone());
                        Ok((response, warnings))
                    }
                }
            }
        },
        Event::AgentCall { key, call } => record_call(store, &key, &call, settings.enforce, now),
        Event::Stop { key, stop_hook_active } => {
            close_turns(store, &key, settings.nudge && !stop_hook_active, now)
        }
        Event::SessionEnd { key } => {
            let warnings = end_session(store, &key, now, settings.retention)?;
            Ok((HookResponse::Silent, warnings))
        }
        // Recorded whatever the turn was (routed or not): the report shows when the quota ran out.
        Event::StopFailure { key, error } => {
            let _guard = store.lock()?;
            ledger::append(&store.ledger_path(), &[record(&key, now, RecordBody::Failure { error })])?;
            Ok((HookResponse::Silent, Vec::new()))
        }
        Event::SubagentStop { key, agent_id, agent_type } => {
            let _guard = store.lock()?;
            let body = RecordBody::SubagentStop { agent_id, agent_type };
            ledger::append(&store.ledger_path(), &[record(&key, now, body)])?;
            Ok((HookResponse::Silent, Vec::new()))
        }
        Event::Unhandled { .. } => Ok((HookResponse::Silent, Vec::new())),
    }
}

/// Opens a directive-mode turn and returns the directive. The directive helps even when the turn
/// cannot be recorded, so it is injected anyway.
fn directive(store: &Store, routed: &RoutedPrompt, now: &str) -> (HookResponse, Warnings) {
    let warnings = match open_turn(store, routed, now) {
        Ok(warnings) => warnings,
        Err(err) => vec![format!("turn not recorded: {err:#}")],
    };
    (HookResponse::AdditionalContext(routing::directive_text(routed.rec)), warnings)
}

/// A prompt marshal routed, with what its records need.
#[derive(Clone, Copy)]
pub struct RoutedPrompt<'a> {
    pub key: &'a TurnKey,
    pub rec: &'a Recommendation,
    pub prompt: &'a str,
    pub mode_reason: &'a str,
    /// Keep the prompt's text in the route record (privacy: off by default).
    pub store_prompt: bool,
}

/// What to print when nothing can be recorded: the directive still helps the model.
pub fn respond_without_recording(event: &Event, route: &dyn Fn(&str) -> Decision) -> HookResponse {
    match event {
        Event::Prompt { prompt, .. } => match route(prompt) {
            Decision::Route(rec) => HookResponse::AdditionalContext(routing::directive_text(&rec)),
            Decision::Abstain(_) => HookResponse::Silent,
        },
        _ => HookResponse::Silent,
    }
}

fn record(key: &TurnKey, now: &str, body: RecordBody) -> Record {
    Record::new(now.to_string(), key.session.clone(), key.prompt_id.clone(), body)
}

/// Loads a session's open turns (the caller holds the lock), first finishing a close that a
/// killed hook left half done. The flag asks for a clean rewrite: a journal with unreadable
/// lines (so the problem is logged once, not on every event) or one grown past its size.
fn load_session(store: &Store, session: &str, warnings: &mut Warnings) -> (SessionState, bool) {
    let path = store.session_path(session);
    let mut loaded = session::load(&path);
    let rewrite = loaded.problem.is_some() || loaded.bytes > session::COMPACT_AFTER_BYTES;
    warnings.extend(loaded.problem);
    if let Some(commit) = loaded.state.pending.take() {
        match finish_commit(store, &commit, warnings) {
            Ok(()) => {
                if let Err(err) = session::append(&path, JournalEntry::Committed) {
                    warnings.push(format!("could not mark a finished close in the journal: {err:#}"));
                }
            }
            Err(err) => warnings.push(format!("a half-done close could not be finished yet: {err:#}")),
        }
    }
    (loaded.state, rewrite)
}

/// Appends `records`, which close the turns `closes`, as a commit: the journal says what is about
/// to be appended where, then the ledger is appended, then the history learns. The caller then
/// empties or rewrites the journal, which ends the commit.
fn commit_close(
    store: &Store,
    journal: &std::path::Path,
    records: &[Record],
    closes: Vec<Option<String>>,
    warnings: &mut Warnings,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let lines = ledger::encode(records)?;
    let ledger_path = store.ledger_path();
    let commit = Commit {
        ledger_offset: ledger::len(&ledger_path),
        lines: String::from_utf8(lines).map_err(|e| anyhow::anyhow!("a ledger record is not UTF-8: {e}"))?,
        closes,
    };
    session::append(journal, JournalEntry::Commit(commit.clone()))?;
    ledger::append_encoded(&ledger_path, commit.lines.as_bytes())?;
    update_history(store, records, warnings);
    Ok(())
}

/// Sees a commit a killed hook began through: its lines are appended unless the ledger already
/// holds them where the commit said.
fn finish_commit(store: &Store, commit: &Commit, warnings: &mut Warnings) -> Result<()> {
    let ledger_path = store.ledger_path();
    if ledger::holds_at(&ledger_path, commit.ledger_offset, commit.lines.as_bytes()) {
        return Ok(());
    }
    ledger::append_encoded(&ledger_path, commit.lines.as_bytes())?;
    let mut records = Vec::new();
    ledger::read(commit.lines.as_bytes(), |r| records.push(r))?;
    update_history(store, &records, warnings);
    warnings.push(format!(
        "finished closing {} turn(s) that a killed hook had begun to close",
        commit.closes.len()
    ));
    Ok(())
}

/// The route record of a turn; the prompt's text only with `store_prompt` (privacy).
fn route_record(routed: &RoutedPrompt, mode: Mode, now: &str) -> Record {
    let RoutedPrompt { key, rec, prompt, mode_reason, store_prompt } = *routed;
    record(
        key,
        now,
        RecordBody::Route {
            mode,
            project: key.project.clone(),
            agent: rec.agent.clone(),
            subagent_type: rec.subagent_type.clone(),
            tier: rec.tier,
            model: rec.model.clone(),
            confidence: rec.confidence,
            reasons: rec.reasons.clone(),
            prompt_chars: prompt.chars().count(),
            task: rec.task.clone(),
            score: rec.score,
            mode_reason: mode_reason.to_string(),
            prompt: store_prompt.then(|| prompt.to_string()),
        },
    )
}

fn open_turn(store: &Store, routed: &RoutedPrompt, now: &str) -> Result<Warnings> {
    let (key, rec, mode) = (routed.key, routed.rec, Mode::Directive);
    let mut warnings = Vec::new();
    let path = store.session_path(&key.session);
    let _guard = store.lock()?;
    let (mut state, needs_rewrite) = load_session(store, &key.session, &mut warnings);
    let mut records = Vec::new();
    // A repeated prompt id replaces its turn; beyond the cap the oldest turn is closed.
    state.open_turns.retain(|t| t.prompt_id != key.prompt_id);
    let overflow = state.open_turns.len() >= MAX_OPEN_TURNS;
    while state.open_turns.len() >= MAX_OPEN_TURNS {
        let oldest = state.open_turns.remove(0);
        records.push(outcome_record(key, &oldest, ClosedBy::Overflow, now));
    }
    let closes: Vec<Option<String>> = records.iter().map(|r| r.prompt_id.clone()).collect();
    let route = route_record(routed, mode, now);
    let turn = OpenTurn {
        prompt_id: key.prompt_id.clone(),
        task: rec.task.clone(),
        started: now.to_string(),
        mode,
        project: key.project.clone(),
        agent: rec.agent.clone(),
        subagent_type: rec.subagent_type.clone(),
        tier: rec.tier,
        model: rec.model.clone(),
        user_named: rec.user_named.clone(),
        calls: Vec::new(),
        nudged: false,
    };
    // Overflowed turns close as a commit; the new turn is in the journal before its route
    // record is in the ledger, so a hook killed in between costs a route record, never an outcome.
    commit_close(store, &path, &records, closes, &mut warnings)?;
    if overflow || needs_rewrite {
        state.open_turns.push(turn);
        session::rewrite(&path, &state)?;
    } else {
        session::append(&path, JournalEntry::Open(turn))?;
    }
    ledger::append(&store.ledger_path(), &[route])?;
    Ok(warnings)
}

fn record_call(
    store: &Store,
    key: &TurnKey,
    call: &AgentCall,
    level: Level,
    now: &str,
) -> Result<(HookResponse, Warnings)> {
    let mut warnings = Vec::new();
    let path = store.session_path(&key.session);
    let _guard = store.lock()?;
    let (mut state, _) = load_session(store, &key.session, &mut warnings);
    let turn = match (&call.inside_subagent, key.prompt_id.as_deref()) {
        (Some(_), _) => None,
        (None, Some(prompt_id)) => state.turn_mut(Some(prompt_id)),
        // Without a prompt id (older Claude Code) the latest open turn is the current one.
        (None, None) => state.open_turns.last_mut(),
    };
    let verdict = match &turn {
        Some(turn) => {
            let routed = Routed {
                agent: &turn.agent,
                subagent_type: &turn.subagent_type,
                model: &turn.model,
                tier: turn.tier,
                user_named: &turn.user_named,
                denials: turn.denials(),
            };
            enforcement::decide(level, &routed, &call.subagent_type, &call.tool_input)
        }
        None => Verdict::Allow(Action::None),
    };
    let action = verdict.action();
    let effective = match (action, turn.as_deref()) {
        (Action::Rewritten, Some(turn)) => turn.subagent_type.clone(),
        _ => call.subagent_type.clone(),
    };
    let original = (effective != call.subagent_type).then(|| call.subagent_type.clone());
    let turn_prompt_id = turn.map(|t| t.prompt_id.clone());
    let body = RecordBody::Call {
        subagent_type: effective.clone(),
        agent: normalize_agent_name(&effective).to_string(),
        model: call.model.clone(),
        tool_use_id: call.tool_use_id.clone(),
        inside_subagent: call.inside_subagent.clone(),
        routed_turn: turn_prompt_id.is_some(),
        original: original.clone(),
        action,
    };
    // The journal decides the outcome, so it learns of the call first.
    if let Some(prompt_id) = turn_prompt_id {
        session::append(&path, JournalEntry::Call { prompt_id, subagent_type: effective, original, action })?;
    }
    ledger::append(&store.ledger_path(), &[record(key, now, body)])?;
    let response = match verdict {
        Verdict::Allow(_) => HookResponse::Silent,
        Verdict::Warn(text) => HookResponse::ToolContext(text),
        Verdict::Deny(reason) => HookResponse::DenyTool(reason),
        Verdict::Rewrite(input) => HookResponse::RewriteTool(input),
    };
    Ok((response, warnings))
}

/// Records an orchestrated turn: its route, every attempt, and its outcome (followed by
/// construction when an attempt answered; interrupted when none did).
pub fn record_orchestration(
    store: &Store,
    routed: &RoutedPrompt,
    run: &orchestrate::Run,
    now: &str,
) -> Result<Warnings> {
    let (key, rec) = (routed.key, routed.rec);
    let mut warnings = Vec::new();
    let mut records = vec![route_record(routed, Mode::Orchestrate, now)];
    for attempt in &run.attempts {
        let body = RecordBody::Attempt {
            number: attempt.number,
            tier: attempt.target.tier,
            agent: attempt.target.agent.clone(),
            subagent_type: attempt.target.subagent_type.clone(),
            model: attempt.target.model.clone(),
            status: attempt.status,
            exit_code: attempt.exit_code,
            api_error_status: attempt.api_error_status,
            duration_ms: attempt.duration_ms,
            spawned_after_us: attempt.spawned_after_us,
            output: attempt.stdout.display().to_string(),
            child_session: attempt.child_session.clone(),
        };
        records.push(record(key, now, body));
    }
    let answered = run.succeeded();
    let outcome = if answered.is_some() { Outcome::Followed } else { Outcome::Interrupted };
    let body = RecordBody::Outcome {
        mode: Mode::Orchestrate,
        project: key.project.clone(),
        recommended: rec.agent.clone(),
        tier: rec.tier,
        model: rec.model.clone(),
        outcome,
        actual: answered.map(|a| a.target.agent.clone()),
        called: run.attempts.iter().map(|a| a.target.agent.clone()).collect(),
        closed_by: ClosedBy::Orchestration,
        task: rec.task.clone(),
        unenforced: Some(outcome),
        enforcement: Enforcement::default(),
        escalations: run.escalations,
    };
    records.push(record(key, now, body));
    let _guard = store.lock()?;
    ledger::append(&store.ledger_path(), &records)?;
    update_history(store, &records, &mut warnings);
    Ok(warnings)
}

/// A Stop means the main agent is idle: every open turn of the session is over. The turn with
/// the Stop's own prompt id closed normally; any older one never got its Stop. With the nudge
/// on, a turn that was routed but delegated nothing is kept open once and the Stop is blocked.
fn close_turns(store: &Store, key: &TurnKey, nudge: bool, now: &str) -> Result<(HookResponse, Warnings)> {
    let mut warnings = Vec::new();
    let path = store.session_path(&key.session);
    if !session::has_entries(&path) {
        // Nothing open (an abstained or already closed turn): no lock, no write.
        return Ok((HookResponse::Silent, warnings));
    }
    let _guard = store.lock()?;
    let (state, _) = load_session(store, &key.session, &mut warnings);
    let own = |turn: &OpenTurn| key.prompt_id.is_none() || turn.prompt_id == key.prompt_id;
    let to_nudge = state.open_turns.iter().find(|turn| {
        nudge && own(turn) && !turn.nudged && turn.calls.iter().all(|c| c.action == Action::Denied)
    });
    let closing: Vec<&OpenTurn> = state.open_turns.iter().filter(|turn| Some(*turn) != to_nudge).collect();
    let records: Vec<Record> = closing
        .iter()
        .map(|turn| {
            outcome_record(key, turn, if own(turn) { ClosedBy::Stop } else { ClosedBy::LaterStop }, now)
        })
        .collect();
    let closes = closing.iter().map(|turn| turn.prompt_id.clone()).collect();
    commit_close(store, &path, &records, closes, &mut warnings)?;
    match to_nudge {
        Some(turn) => {
            let kept = SessionState { open_turns: vec![turn.clone()], pending: None };
            session::rewrite(&path, &kept)?;
            session::append(&path, JournalEntry::Nudge { prompt_id: turn.prompt_id.clone() })?;
            Ok((HookResponse::BlockStop(enforcement::nudge_text(&turn.subagent_type, turn.tier)), warnings))
        }
        None => {
            session::clear(&path)?;
            Ok((HookResponse::Silent, warnings))
        }
    }
}

/// The session is over: turns still open never got their Stop. They are closed (outcome from
/// their calls, else `interrupted`), the session's journal is removed, and old files are cleaned up.
fn end_session(store: &Store, key: &TurnKey, now: &str, retention: std::time::Duration) -> Result<Warnings> {
    let mut warnings = Vec::new();
    let path = store.session_path(&key.session);
    let journal_exists = std::fs::symlink_metadata(&path).is_ok();
    if !journal_exists && clean_up_is_recent(store) {
        return Ok(warnings);
    }
    let _guard = store.lock()?;
    if journal_exists {
        let (state, _) = load_session(store, &key.session, &mut warnings);
        let records: Vec<Record> = state
            .open_turns
            .iter()
            .map(|turn| outcome_record(key, turn, ClosedBy::SessionEnd, now))
            .collect();
        let closes = state.open_turns.iter().map(|turn| turn.prompt_id.clone()).collect();
        commit_close(store, &path, &records, closes, &mut warnings)?;
        session::remove(&path)?;
    }
    warnings.extend(clean_up(store, retention));
    Ok(warnings)
}

/// How often, at most, session ends look for old files.
const CLEAN_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether the last clean-up was within [`CLEAN_UP_EVERY`] (the marker file's age says).
fn clean_up_is_recent(store: &Store) -> bool {
    std::fs::symlink_metadata(store.clean_up_marker())
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < CLEAN_UP_EVERY))
}

/// Removes session journals left by sessions that crashed, and orchestration outputs, older
/// than `retention`. At most once an hour. The caller holds the store lock.
fn clean_up(store: &Store, retention: std::time::Duration) -> Option<String> {
    if clean_up_is_recent(store) {
        return None;
    }
    if let Err(err) = crate::fsutil::create_private(&store.clean_up_marker()) {
        return Some(format!("clean-up skipped: {err:#}"));
    }
    let sessions = crate::fsutil::remove_older_than(&store.sessions_dir(), &[".jsonl"], retention);
    let runs = crate::fsutil::remove_older_than(&store.runs_dir(), &[".out", ".err"], retention);
    (sessions + runs > 0).then(|| {
        format!("clean-up: removed {sessions} session journal(s) and {runs} orchestration output(s) older than {} days", retention.as_secs() / 86_400)
    })
}

/// Adds closed turns to the per-task summary routing reads. Best effort: losing history only
/// loses a hint, so a failure is a warning. History learns from what the model did unprompted.
fn update_history(store: &Store, records: &[Record], warnings: &mut Warnings) {
    let closed: Vec<(&str, Outcome, u32)> = records
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Outcome { task, outcome, unenforced, escalations, .. } => {
                Some((task.as_str(), unenforced.unwrap_or(*outcome), *escalations))
            }
            _ => None,
        })
        .collect();
    if closed.is_empty() {
        return;
    }
    let path = store.history_path();
    let mut history = History::load(&path);
    for (task, outcome, escalations) in closed {
        history.record(task, outcome);
        if escalations > 0 {
            history.record_escalation(task);
        }
    }
    if let Err(err) = history.save(&path) {
        warnings.push(format!("history not updated: {err:#}"));
    }
}

/// The outcome of `turn`; the session comes from `key`, the prompt id from the turn itself.
/// Also what the outcome would have been without enforcement.
fn outcome_record(key: &TurnKey, turn: &OpenTurn, closed_by: ClosedBy, now: &str) -> Record {
    let own_stop = matches!(closed_by, ClosedBy::Stop);
    let calls: Vec<compliance::Call> = turn
        .calls
        .iter()
        .map(|c| compliance::Call {
            ran: &c.subagent_type,
            asked: c.original.as_deref().unwrap_or(&c.subagent_type),
            action: c.action,
            after_nudge: c.after_nudge,
        })
        .collect();
    let (verdict, unenforced) = compliance::judge(&turn.agent, &calls, own_stop, turn.nudged);
    let count = |action: Action| turn.calls.iter().filter(|c| c.action == action).count() as u64;
    let body = RecordBody::Outcome {
        mode: turn.mode,
        project: turn.project.clone(),
        recommended: turn.agent.clone(),
        tier: turn.tier,
        model: turn.model.clone(),
        outcome: verdict.outcome,
        actual: verdict.actual,
        called: turn
            .calls
            .iter()
            .filter(|c| c.action != Action::Denied)
            .map(|c| normalize_agent_name(&c.subagent_type).to_string())
            .collect(),
        closed_by,
        task: turn.task.clone(),
        unenforced: Some(unenforced),
        escalations: 0,
        enforcement: Enforcement {
            warned: count(Action::Warned),
            denied: count(Action::Denied),
            rewritten: count(Action::Rewritten),
            nudged: turn.nudged,
        },
    };
    Record::new(now.to_string(), key.session.clone(), turn.prompt_id.clone(), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::Outcome;
    use crate::wire::parse_hook_input;

    struct Harness {
        _tmp: tempfile::TempDir,
        store: Store,
        mode: ModeDecision,
        enforce: Level,
        nudge: bool,
    }

    impl Harness {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let store = Store::new(tmp.path().join("state"));
            let mode = crate::mode::detect(&Default::default(), &Default::default());
            Harness { _tmp: tmp, store, mode, enforce: Level::Warn, nudge: false }
        }

        fn send(&self, json: serde_json::Value) -> HookResponse {
            let event = Event::from_wire(parse_hook_input(json.to_string().as_bytes()).unwrap());
            let config = crate::config::Config::default();
            let route = |prompt: &str| {
                routing::route(
                    prompt,
                    &routing::RouteInputs {
                        config: &config,
                        agents: &[],
                        history: None,
                        five_hour_used: None,
                    },
                )
            };
            let settings = TurnSettings {
                mode: &self.mode,
                enforce: self.enforce,
                nudge: self.nudge,
                route: &route,
                orchestrate: &|_, _, _| Err("orchestrate mode, but the Claude Code CLI was not found".into()),
                store_prompts: false,
                retention: std::time::Duration::from_secs(14 * 86_400),
            };
            handle(event, &settings, &self.store, "2026-11-21T05:00:00.000Z").unwrap().0
        }

        fn prompt(&self, prompt_id: &str, prompt: &str) -> HookResponse {
            self.send(serde_json::json!({"hook_event_name":"UserPromptSubmit","session_id":"s1",
                "prompt_id":prompt_id,"cwd":"/w","prompt":prompt}))
        }

        fn call(&self, prompt_id: &str, subagent_type: &str, agent_id: Option<&str>) -> HookResponse {
            self.send(serde_json::json!({"hook_event_name":"PreToolUse","session_id":"s1",
                "prompt_id":prompt_id,"tool_name":"Agent","agent_id":agent_id,
                "tool_input":{"prompt":"x","description":"d","subagent_type":subagent_type}}))
        }

        fn stop_again(&self, prompt_id: &str) -> HookResponse {
            self.send(serde_json::json!({"hook_event_name":"Stop","session_id":"s1",
                "prompt_id":prompt_id,"stop_hook_active":true}))
        }

        /// (outcome, unenforced outcome, enforcement) of each closed turn.
        fn enforced(&self) -> Vec<(Outcome, Option<Outcome>, Enforcement)> {
            let (records, _) = ledger::read_file(&self.store.ledger_path()).unwrap_or_default();
            records
                .into_iter()
                .filter_map(|r| match r.body {
                    RecordBody::Outcome { outcome, unenforced, enforcement, .. } => {
                        Some((outcome, unenforced, enforcement))
                    }
                    _ => None,
                })
                .collect()
        }

        fn session_end(&self) {
            self.send(serde_json::json!({"hook_event_name":"SessionEnd","session_id":"s1","reason":"other"}));
        }

        fn stop(&self, prompt_id: &str) -> HookResponse {
            self.send(serde_json::json!({"hook_event_name":"Stop","session_id":"s1",
                "prompt_id":prompt_id,"stop_hook_active":false}))
        }

        fn outcomes(&self) -> Vec<(Option<String>, Outcome, Option<String>, ClosedBy)> {
            let (records, _) = ledger::read_file(&self.store.ledger_path()).unwrap_or_default();
            records
                .into_iter()
                .filter_map(|r| match r.body {
                    RecordBody::Outcome { outcome, actual, closed_by, .. } => {
                        Some((r.prompt_id, outcome, actual, closed_by))
                    }
                    _ => None,
                })
                .collect()
        }
    }

    fn p(id: &str) -> Option<String> {
        Some(id.to_string())
    }

    #[test]
    fn followed_deviated_ignored() {
        let h = Harness::new();
        let response = h.prompt("p1", "rename foo to bar");
        assert!(
            matches!(response, HookResponse::AdditionalContext(ref t) if t.contains("marshal:haiku-general"))
        );
        h.call("p1", "marshal:haiku-general", None);
        h.stop("p1");
        h.prompt("p2", "rename baz to qux");
        h.call("p2", "general-purpose", None);
        h.stop("p2");
        h.prompt("p3", "rename a to b");
        h.stop("p3");
        assert_eq!(
            h.outcomes(),
            vec![
                (p("p1"), Outcome::Followed, p("haiku-general"), ClosedBy::Stop),
                (p("p2"), Outcome::Deviated, p("general-purpose"), ClosedBy::Stop),
                (p("p3"), Outcome::Ignored, None, ClosedBy::Stop),
            ]
        );
        assert!(!session::has_entries(&h.store.session_path("s1")), "closed sessions leave no open turn");
    }

    #[test]
    fn abstained_prompts_and_task_notifications_record_nothing() {
        let h = Harness::new();
        assert_eq!(h.prompt("p1", "thanks!"), HookResponse::Silent);
        assert_eq!(h.prompt("p2", "<task-notification>\n<task-id>a</task-id>"), HookResponse::Silent);
        h.stop("p2");
        assert!(!h.store.ledger_path().exists());
    }

    #[test]
    fn calls_inside_subagents_do_not_decide_the_turn() {
        let h = Harness::new();
        h.prompt("p1", "rename foo");
        h.call("p1", "marshal:opus-general", Some("agent-7"));
        h.stop("p1");
        assert_eq!(h.outcomes(), vec![(p("p1"), Outcome::Ignored, None, ClosedBy::Stop)]);
    }

    #[test]
    fn a_turn_without_its_own_stop_is_closed_by_the_next_stop() {
        let h = Harness::new();
        h.prompt("p1", "rename foo");
        h.prompt("p2", "rename bar");
        h.call("p2", "haiku-general", None);
        h.stop("p2");
        assert_eq!(
            h.outcomes(),
            vec![
                (p("p1"), Outcome::Interrupted, None, ClosedBy::LaterStop),
                (p("p2"), Outcome::Followed, p("haiku-general"), ClosedBy::Stop),
            ]
        );
    }

    #[test]
    fn background_agent_then_task_notification_turn() {
        let h = Harness::new();
        h.prompt("p1", "rename foo");
        h.call("p1", "marshal:haiku-general", None);
        h.stop("p1");
        h.prompt("p2", "<task-notification>\n<task-id>a</task-id>\n</task-notification>");
        h.stop("p2");
        assert_eq!(h.outcomes(), vec![(p("p1"), Outcome::Followed, p("haiku-general"), ClosedBy::Stop)]);
    }

    #[test]
    fn off_mode_records_nothing() {
        let mut h = Harness::new();
        let off = crate::mode::ModeEnv { marshal_mode: Some("off".into()), ..Default::default() };
        h.mode = crate::mode::detect(&off, &Default::default());
        assert_eq!(h.prompt("p1", "rename foo"), HookResponse::Silent);
        h.call("p1", "marshal:haiku-general", None);
        h.stop("p1");
        assert!(!h.store.dir().exists());
    }

    #[test]
    fn a_journal_of_resent_prompts_is_compacted() {
        let h = Harness::new();
        for _ in 0..200 {
            h.prompt("p1", "rename foo");
        }
        let path = h.store.session_path("s1");
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= session::COMPACT_AFTER_BYTES + 1024, "{size} bytes");
        assert_eq!(session::load(&path).state.open_turns.len(), 1);
    }

    #[test]
    fn session_end_closes_what_no_stop_closed_and_removes_the_journal() {
        let h = Harness::new();
        h.prompt("p1", "rename foo");
        h.prompt("p2", "rename bar");
        h.call("p2", "marshal:haiku-general", None);
        h.session_end();
        assert_eq!(
            h.outcomes(),
            vec![
                (p("p1"), Outcome::Interrupted, None, ClosedBy::SessionEnd),
                (p("p2"), Outcome::Followed, p("haiku-general"), ClosedBy::SessionEnd),
            ]
        );
        assert!(!h.store.session_path("s1").exists());
        h.session_end(); // a second SessionEnd finds nothing to do
        assert_eq!(h.outcomes().len(), 2);
    }

    #[test]
    fn deny_refuses_the_wrong_agent_then_the_routed_call_is_followed() {
        let mut h = Harness::new();
        h.enforce = Level::Deny;
        h.prompt("p1", "rename foo to bar");
        let HookResponse::DenyTool(reason) = h.call("p1", "general-purpose", None) else { panic!() };
        assert!(reason.contains("subagent_type: \"marshal:haiku-general\""), "{reason}");
        assert_eq!(h.call("p1", "marshal:haiku-general", None), HookResponse::Silent);
        h.stop("p1");
        let denied_once = Enforcement { denied: 1, ..Default::default() };
        assert_eq!(h.enforced(), vec![(Outcome::Followed, Some(Outcome::Deviated), denied_once)]);
    }

    #[test]
    fn rewrite_sends_the_complete_input_with_the_routed_agent() {
        let mut h = Harness::new();
        h.enforce = Level::Rewrite;
        h.prompt("p1", "rename foo to bar");
        let HookResponse::RewriteTool(input) = h.call("p1", "general-purpose", None) else { panic!() };
        assert_eq!(
            input,
            serde_json::json!({"prompt":"x","description":"d","subagent_type":"marshal:haiku-general","model":"haiku"})
        );
        h.stop("p1");
        let rewritten = Enforcement { rewritten: 1, ..Default::default() };
        assert_eq!(h.enforced(), vec![(Outcome::Followed, Some(Outcome::Deviated), rewritten)]);
    }

    #[test]
    fn warn_allows_with_a_note_and_the_user_named_agent_is_respected() {
        let h = Harness::new();
        h.prompt("p1", "rename foo to bar");
        assert!(
            matches!(h.call("p1", "general-purpose", None), HookResponse::ToolContext(t) if t.contains("you called"))
        );
        h.stop("p1");
        h.prompt("p2", "use the Explore agent to find where the config is loaded");
        assert_eq!(h.call("p2", "Explore", None), HookResponse::Silent);
        h.stop("p2");
        let warned = Enforcement { warned: 1, ..Default::default() };
        assert_eq!(
            h.enforced(),
            vec![
                (Outcome::Deviated, Some(Outcome::Deviated), warned),
                (Outcome::Followed, Some(Outcome::Followed), Enforcement::default())
            ]
        );
    }

    #[test]
    fn the_nudge_stops_an_ignoring_turn_once_then_lets_it_close() {
        let mut h = Harness::new();
        h.nudge = true;
        h.prompt("p1", "rename foo to bar");
        let HookResponse::BlockStop(reason) = h.stop("p1") else { panic!("no nudge") };
        assert!(reason.contains("marshal:haiku-general"), "{reason}");
        h.call("p1", "marshal:haiku-general", None);
        assert_eq!(h.stop_again("p1"), HookResponse::Silent);
        let nudged = Enforcement { nudged: true, ..Default::default() };
        assert_eq!(h.enforced(), vec![(Outcome::Followed, Some(Outcome::Ignored), nudged)]);

        // Never twice: a model that still does not delegate ends the turn ignored.
        h.prompt("p2", "rename a to b");
        assert!(matches!(h.stop("p2"), HookResponse::BlockStop(_)));
        assert_eq!(h.stop("p2"), HookResponse::Silent, "a second plain Stop is not nudged again");
        assert_eq!(h.enforced()[1].0, Outcome::Ignored);
        // Never for an abstained turn, never when stop_hook_active.
        h.prompt("p3", "thanks!");
        assert_eq!(h.stop("p3"), HookResponse::Silent);
        h.prompt("p4", "rename c to d");
        assert_eq!(h.stop_again("p4"), HookResponse::Silent);
    }

    #[test]
    fn a_child_marshal_started_records_calls_but_never_routes() {
        let mut h = Harness::new();
        let child = crate::mode::ModeEnv { orchestrated_child: true, ..Default::default() };
        h.mode = crate::mode::detect(&child, &Default::default());
        assert_eq!(h.prompt("p1", "rename foo to bar"), HookResponse::Silent);
        assert_eq!(h.call("p1", "general-purpose", None), HookResponse::Silent, "no enforcement either");
        h.stop("p1");
        let (records, _) = ledger::read_file(&h.store.ledger_path()).unwrap();
        let kinds: Vec<bool> =
            records.iter().map(|r| matches!(r.body, RecordBody::Call { routed_turn: false, .. })).collect();
        assert_eq!(kinds, [true]);
    }

    #[test]
    fn orchestrate_mode_without_a_cli_falls_back_to_the_directive() {
        let mut h = Harness::new();
        let asked = crate::mode::ModeEnv { marshal_mode: Some("orchestrate".into()), ..Default::default() };
        h.mode = crate::mode::detect(&asked, &Default::default());
        assert_eq!(h.mode.mode, Mode::Orchestrate);
        let HookResponse::AdditionalContext(directive) = h.prompt("p1", "rename foo to bar") else {
            panic!()
        };
        assert!(directive.contains("marshal:haiku-general"));
        let (records, _) = ledger::read_file(&h.store.ledger_path()).unwrap();
        let RecordBody::Route { mode, mode_reason, .. } = &records[0].body else { panic!() };
        assert_eq!(*mode, Mode::Directive);
        assert!(mode_reason.contains("Claude Code CLI was not found"), "{mode_reason}");
    }

    /// A followed turn p1, and the outcome record its Stop would append.
    fn a_turn_about_to_close() -> (Harness, std::path::PathBuf, Record) {
        let h = Harness::new();
        h.prompt("p1", "rename foo to bar");
        h.call("p1", "marshal:haiku-general", None);
        let key = TurnKey { session: "s1".into(), prompt_id: Some("p1".into()), project: None };
        let journal = h.store.session_path("s1");
        let (state, _) = load_session(&h.store, "s1", &mut Vec::new());
        let record = outcome_record(&key, &state.open_turns[0], ClosedBy::Stop, "2026-11-21T05:00:01.000Z");
        (h, journal, record)
    }

    #[test]
    fn a_stop_killed_after_its_ledger_append_closes_nothing_twice() {
        // A Stop killed right after appending its outcome, before emptying the journal.
        let (h, journal, record) = a_turn_about_to_close();
        commit_close(&h.store, &journal, &[record], vec![Some("p1".into())], &mut Vec::new()).unwrap();
        h.stop("p1");
        h.session_end();
        assert_eq!(h.outcomes(), vec![(p("p1"), Outcome::Followed, p("haiku-general"), ClosedBy::Stop)]);
    }

    #[test]
    fn a_stop_killed_before_its_ledger_append_still_closes_its_turn_once() {
        // Killed after the journal's commit line, before the ledger append.
        let (h, journal, record) = a_turn_about_to_close();
        let lines = String::from_utf8(ledger::encode(&[record]).unwrap()).unwrap();
        let offset = ledger::len(&h.store.ledger_path());
        let commit = Commit { ledger_offset: offset, lines, closes: vec![Some("p1".into())] };
        session::append(&journal, JournalEntry::Commit(commit)).unwrap();
        // Any later hook of the session finishes it, once.
        h.prompt("p2", "rename a to b");
        h.stop("p2");
        h.session_end();
        let closed: Vec<_> = h.outcomes().into_iter().map(|o| o.0).collect();
        assert_eq!(closed, vec![p("p1"), p("p2")]);
    }

    #[test]
    fn open_turns_are_capped() {
        let h = Harness::new();
        for i in 0..MAX_OPEN_TURNS + 2 {
            h.prompt(&format!("p{i}"), "rename foo");
        }
        let overflowed: Vec<_> = h.outcomes().into_iter().map(|o| (o.0, o.3)).collect();
        assert_eq!(overflowed, vec![(p("p0"), ClosedBy::Overflow), (p("p1"), ClosedBy::Overflow)]);
        let state = session::load(&h.store.session_path("s1")).state;
        assert_eq!(state.open_turns.len(), MAX_OPEN_TURNS);
    }
}
