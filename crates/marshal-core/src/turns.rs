//! Turn bookkeeping: what each hook event does to the session state and the ledger.
//!
//! A routed turn opens at UserPromptSubmit, collects the main agent's Agent calls at
//! PreToolUse, and closes with a compliance outcome at Stop. Every change happens under the
//! store lock; nothing here prints.

use anyhow::Result;

use crate::agents::normalize_agent_name;
use crate::compliance::classify;
use crate::compliance::Outcome;
use crate::event::{AgentCall, Event, TurnKey};
use crate::history::{History, HISTORY_FILE};
use crate::ledger::{self, ClosedBy, Record, RecordBody};
use crate::mode::{Mode, ModeDecision};
use crate::routing::{self, Decision, Recommendation};
use crate::session::{self, JournalEntry, OpenTurn, SessionState, MAX_OPEN_TURNS};
use crate::store::Store;

/// What a hook tells Claude Code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookResponse {
    /// Print nothing: Claude Code carries on as if the hook were not there.
    Silent,
    /// UserPromptSubmit context for the model.
    AdditionalContext(String),
}

/// Problems worth a log line that did not stop the hook.
pub type Warnings = Vec<String>;

/// Handles one event. `now` is the RFC 3339 time stamped on records; `route` decides a prompt
/// (the caller loads the configuration it needs, and only for prompts).
pub fn handle(
    event: Event,
    mode: &ModeDecision,
    store: &Store,
    now: &str,
    route: &dyn Fn(&str) -> Decision,
) -> Result<(HookResponse, Warnings)> {
    if mode.mode == Mode::Off {
        return Ok((HookResponse::Silent, Vec::new()));
    }
    match event {
        Event::Prompt { key, prompt } => match route(&prompt) {
            Decision::Abstain(_) => Ok((HookResponse::Silent, Vec::new())),
            Decision::Route(rec) => {
                // The directive helps even when the turn cannot be recorded: inject it anyway.
                let chars = prompt.chars().count();
                let warnings = match open_turn(store, &key, &rec, mode.mode, chars, now) {
                    Ok(warnings) => warnings,
                    Err(err) => vec![format!("turn not recorded: {err:#}")],
                };
                Ok((HookResponse::AdditionalContext(routing::directive_text(&rec)), warnings))
            }
        },
        Event::AgentCall { key, call } => Ok((HookResponse::Silent, record_call(store, &key, &call, now)?)),
        Event::Stop { key, .. } => Ok((HookResponse::Silent, close_turns(store, &key, now)?)),
        Event::SessionEnd { key } => Ok((HookResponse::Silent, end_session(store, &key, now)?)),
        Event::SubagentStop { key, agent_id, agent_type } => {
            let _guard = store.lock()?;
            let body = RecordBody::SubagentStop { agent_id, agent_type };
            ledger::append(&store.ledger_path(), &[record(&key, now, body)])?;
            Ok((HookResponse::Silent, Vec::new()))
        }
        Event::Unhandled { .. } => Ok((HookResponse::Silent, Vec::new())),
    }
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

/// Loads a session's open turns. The flag asks for a clean rewrite: a journal with unreadable
/// lines (so the problem is logged once, not on every event) or one grown past its size.
fn load_session(store: &Store, session: &str, warnings: &mut Warnings) -> (SessionState, bool) {
    let loaded = session::load(&store.session_path(session));
    let rewrite = loaded.problem.is_some() || loaded.bytes > session::COMPACT_AFTER_BYTES;
    warnings.extend(loaded.problem);
    (loaded.state, rewrite)
}

fn open_turn(
    store: &Store,
    key: &TurnKey,
    rec: &Recommendation,
    mode: Mode,
    prompt_chars: usize,
    now: &str,
) -> Result<Warnings> {
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
    records.push(record(
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
            task: rec.task.clone(),
            score: rec.score,
            prompt_chars,
        },
    ));
    let turn = OpenTurn {
        task: rec.task.clone(),
        prompt_id: key.prompt_id.clone(),
        started: now.to_string(),
        mode,
        project: key.project.clone(),
        agent: rec.agent.clone(),
        tier: rec.tier,
        model: rec.model.clone(),
        calls: Vec::new(),
    };
    ledger::append(&store.ledger_path(), &records)?;
    if overflow || needs_rewrite {
        state.open_turns.push(turn);
        session::rewrite(&path, &state)?;
    } else {
        session::append(&path, JournalEntry::Open(turn))?;
    }
    Ok(warnings)
}

fn record_call(store: &Store, key: &TurnKey, call: &AgentCall, now: &str) -> Result<Warnings> {
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
    let turn_prompt_id = turn.map(|t| t.prompt_id.clone());
    let body = RecordBody::Call {
        subagent_type: call.subagent_type.clone(),
        agent: normalize_agent_name(&call.subagent_type).to_string(),
        model: call.model.clone(),
        tool_use_id: call.tool_use_id.clone(),
        inside_subagent: call.inside_subagent.clone(),
        routed_turn: turn_prompt_id.is_some(),
    };
    ledger::append(&store.ledger_path(), &[record(key, now, body)])?;
    if let Some(prompt_id) = turn_prompt_id {
        let entry = JournalEntry::Call { prompt_id, subagent_type: call.subagent_type.clone() };
        session::append(&path, entry)?;
    }
    Ok(warnings)
}

/// A Stop means the main agent is idle: every open turn of the session is over. The turn with
/// the Stop's own prompt id closed normally; any older one never got its Stop.
fn close_turns(store: &Store, key: &TurnKey, now: &str) -> Result<Warnings> {
    let mut warnings = Vec::new();
    let path = store.session_path(&key.session);
    if !session::has_entries(&path) {
        // Nothing open (an abstained or already closed turn): no lock, no write.
        return Ok(warnings);
    }
    let _guard = store.lock()?;
    let (state, _) = load_session(store, &key.session, &mut warnings);
    let records: Vec<Record> = state
        .open_turns
        .iter()
        .map(|turn| {
            let own = key.prompt_id.is_none() || turn.prompt_id == key.prompt_id;
            let closed_by = if own { ClosedBy::Stop } else { ClosedBy::LaterStop };
            outcome_record(key, turn, closed_by, now)
        })
        .collect();
    ledger::append(&store.ledger_path(), &records)?;
    update_history(store, &records, &mut warnings);
    session::clear(&path)?;
    Ok(warnings)
}

/// The session is over: turns still open never got their Stop. They are closed (outcome from
/// their calls, else `interrupted`) and the session's journal is removed.
fn end_session(store: &Store, key: &TurnKey, now: &str) -> Result<Warnings> {
    let mut warnings = Vec::new();
    let path = store.session_path(&key.session);
    if !path.exists() {
        return Ok(warnings);
    }
    let _guard = store.lock()?;
    let (state, _) = load_session(store, &key.session, &mut warnings);
    let records: Vec<Record> =
        state.open_turns.iter().map(|turn| outcome_record(key, turn, ClosedBy::SessionEnd, now)).collect();
    ledger::append(&store.ledger_path(), &records)?;
    update_history(store, &records, &mut warnings);
    session::remove(&path)?;
    Ok(warnings)
}

/// Adds closed turns to the per-task summary routing reads. Best effort: losing history only
/// loses a hint, so a failure is a warning.
fn update_history(store: &Store, records: &[Record], warnings: &mut Warnings) {
    let closed: Vec<(&str, Outcome)> = records
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Outcome { task, outcome, .. } => Some((task.as_str(), *outcome)),
            _ => None,
        })
        .collect();
    if closed.is_empty() {
        return;
    }
    let path = store.dir().join(HISTORY_FILE);
    let mut history = History::load(&path);
    for (task, outcome) in closed {
        history.record(task, outcome);
    }
    if let Err(err) = history.save(&path) {
        warnings.push(format!("history not updated: {err:#}"));
    }
}

/// The outcome of `turn`; the session comes from `key`, the prompt id from the turn itself.
fn outcome_record(key: &TurnKey, turn: &OpenTurn, closed_by: ClosedBy, now: &str) -> Record {
    let calls: Vec<&str> = turn.calls.iter().map(String::as_str).collect();
    let verdict = classify(&turn.agent, &calls, closed_by == ClosedBy::Stop);
    let body = RecordBody::Outcome {
        mode: turn.mode,
        project: turn.project.clone(),
        recommended: turn.agent.clone(),
        tier: turn.tier,
        model: turn.model.clone(),
        outcome: verdict.outcome,
        actual: verdict.actual,
        called: calls.iter().map(|c| normalize_agent_name(c).to_string()).collect(),
        task: turn.task.clone(),
        closed_by,
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
    }

    impl Harness {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let store = Store::new(tmp.path().join("state"));
            let mode = crate::mode::detect(&Default::default());
            Harness { _tmp: tmp, store, mode }
        }

        fn send(&self, json: serde_json::Value) -> HookResponse {
            let event = Event::from_wire(parse_hook_input(json.to_string().as_bytes()).unwrap());
            let config = crate::config::Config::default();
            let route = |prompt: &str| {
                routing::route(prompt, &routing::RouteInputs { config: &config, agents: &[], history: None })
            };
            handle(event, &self.mode, &self.store, "2026-11-21T05:00:00.000Z", &route).unwrap().0
        }

        fn prompt(&self, prompt_id: &str, prompt: &str) -> HookResponse {
            self.send(serde_json::json!({"hook_event_name":"UserPromptSubmit","session_id":"s1",
                "prompt_id":prompt_id,"cwd":"/w","prompt":prompt}))
        }

        fn call(&self, prompt_id: &str, subagent_type: &str, agent_id: Option<&str>) {
            self.send(serde_json::json!({"hook_event_name":"PreToolUse","session_id":"s1",
                "prompt_id":prompt_id,"tool_name":"Agent","agent_id":agent_id,
                "tool_input":{"prompt":"x","description":"d","subagent_type":subagent_type}}));
        }

        fn session_end(&self) {
            self.send(serde_json::json!({"hook_event_name":"SessionEnd","session_id":"s1","reason":"other"}));
        }

        fn stop(&self, prompt_id: &str) {
            self.send(serde_json::json!({"hook_event_name":"Stop","session_id":"s1",
                "prompt_id":prompt_id,"stop_hook_active":false}));
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
        h.mode = crate::mode::detect(&crate::mode::ModeEnv { marshal_mode: Some("off".into()) });
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
