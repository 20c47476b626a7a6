//! The hook binaries as Claude Code runs them: event JSON on stdin, a state dir from the
//! environment, and whatever they print on stdout.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

use crate::support::process::Ran;
use crate::support::{of_kind, read_jsonl};

/// Far above any hook's run time: only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(30);

const HOOKS: [&str; 3] = ["marshal-prompt", "marshal-pretool", "marshal-stop"];

struct State {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl State {
    fn new() -> State {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        State { _tmp: tmp, dir }
    }

    fn hook(&self, bin: &str, stdin: impl Into<Vec<u8>>) -> Ran {
        hook_in(&self.dir, bin, stdin, &[])
    }

    fn ledger(&self) -> Vec<Value> {
        read_jsonl(&self.dir.join("ledger.jsonl"))
    }

    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("marshal.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn hook_in(dir: &Path, bin: &str, stdin: impl Into<Vec<u8>>, env: &[(&str, &str)]) -> Ran {
    let mut command = Command::new(crate::support::built_binaries_dir().join(bin));
    command.env_clear().env("MARSHAL_STATE_DIR", dir).env("HOME", dir.join("home"));
    for (key, value) in env {
        command.env(key, value);
    }
    let stdin: Vec<u8> = stdin.into();
    Ran::of(&mut command, Some(&stdin), LIMIT)
}

fn prompt_event(prompt_id: &str, prompt: &str) -> String {
    json!({"session_id":"s1","transcript_path":"/t.jsonl","cwd":"/work/project","prompt_id":prompt_id,
        "permission_mode":"default","hook_event_name":"UserPromptSubmit","prompt":prompt})
    .to_string()
}

fn agent_event(prompt_id: &str, subagent_type: &str) -> String {
    json!({"session_id":"s1","cwd":"/work/project","prompt_id":prompt_id,"hook_event_name":"PreToolUse",
        "tool_name":"Agent","tool_use_id":"toolu_1",
        "tool_input":{"description":"d","prompt":"p","subagent_type":subagent_type}})
    .to_string()
}

fn stop_event(prompt_id: &str) -> String {
    json!({"session_id":"s1","cwd":"/work/project","prompt_id":prompt_id,"hook_event_name":"Stop",
        "stop_hook_active":false,"last_assistant_message":"done","background_tasks":[]})
    .to_string()
}

/// The additionalContext a prompt hook printed.
fn directive_of(assert: &Ran) -> String {
    stdout_json(assert)["hookSpecificOutput"]["additionalContext"].as_str().unwrap_or_default().to_string()
}

fn stdout_json(assert: &Ran) -> Value {
    let stdout = &assert.0.stdout;
    serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(stdout)))
}

#[test]
fn prompt_hook_prints_the_directive_as_additional_context_and_records_the_route() {
    let state = State::new();
    let assert = state.hook("marshal-prompt", prompt_event("p1", "rename foo to bar")).success();
    let out = stdout_json(&assert);
    assert_eq!(out["hookSpecificOutput"]["hookEventName"], "UserPromptSubmit");
    let directive = out["hookSpecificOutput"]["additionalContext"].as_str().unwrap();
    assert!(directive.contains("subagent_type: \"marshal:haiku-general\""), "{directive}");
    assert_eq!(out.as_object().unwrap().len(), 1, "nothing else on stdout: {out}");

    let ledger = state.ledger();
    assert_eq!(ledger.len(), 1);
    let route = &ledger[0];
    assert_eq!((route["v"].as_u64(), route["kind"].as_str()), (Some(1), Some("route")));
    assert_eq!(route["session"], "s1");
    assert_eq!(route["prompt_id"], "p1");
    assert_eq!(route["project"], "/work/project");
    assert_eq!(route["subagent_type"], "marshal:haiku-general");
    assert_eq!(route["prompt_chars"], 17);
    assert!(
        !std::fs::read_to_string(state.dir.join("ledger.jsonl")).unwrap().contains("rename foo"),
        "the prompt text is not stored"
    );
}

#[test]
fn a_full_turn_through_the_three_hooks_is_followed_deviated_or_ignored() {
    let state = State::new();
    let cases = [
        ("p1", Some("marshal:haiku-general"), "followed"),
        ("p2", Some("Explore"), "deviated"),
        ("p3", None, "ignored"),
    ];
    for (prompt_id, called, _) in cases {
        state.hook("marshal-prompt", prompt_event(prompt_id, "fix the typo in the README")).success();
        if let Some(agent) = called {
            let assert = state.hook("marshal-pretool", agent_event(prompt_id, agent)).success();
            let stdout = &assert.0.stdout;
            if agent.starts_with("marshal:") {
                assert!(stdout.is_empty(), "the routed agent passes silently");
            } else {
                // The default level, warn: allowed, with a note for the model.
                let out = stdout_json(&assert);
                assert_eq!(out["hookSpecificOutput"]["hookEventName"], "PreToolUse");
                assert!(out["hookSpecificOutput"]["additionalContext"]
                    .as_str()
                    .unwrap()
                    .contains("you called \"Explore\""));
                assert!(out["hookSpecificOutput"].get("permissionDecision").is_none(), "warn never decides");
            }
        }
        state.hook("marshal-stop", stop_event(prompt_id)).success().stdout("");
    }
    let ledger = state.ledger();
    let outcomes: Vec<(&str, &str)> = of_kind(&ledger, "outcome")
        .iter()
        .map(|o| (o["prompt_id"].as_str().unwrap(), o["outcome"].as_str().unwrap()))
        .collect();
    let expected: Vec<(&str, &str)> = cases.iter().map(|(p, _, o)| (*p, *o)).collect();
    assert_eq!(outcomes, expected);
    assert_eq!(of_kind(&ledger, "outcome")[1]["actual"], "Explore");
    assert!(state.log_lines().is_empty(), "{:?}", state.log_lines());
}

#[test]
fn state_files_are_private() {
    let state = State::new();
    state.hook("marshal-prompt", prompt_event("p1", "rename foo")).success();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.dir), 0o700);
    assert_eq!(mode(&state.dir.join("sessions")), 0o700);
    assert_eq!(mode(&state.dir.join("ledger.jsonl")), 0o600);
    assert_eq!(mode(&state.dir.join("sessions/s1.jsonl")), 0o600);
}

#[test]
fn garbage_on_stdin_exits_zero_prints_nothing_and_logs_one_line() {
    for bin in HOOKS {
        let state = State::new();
        state.hook(bin, "this is not json {").success().stdout("").stderr("");
        let log = state.log_lines();
        assert_eq!(log.len(), 1, "{bin}: {log:?}");
        assert!(
            log[0].contains(&format!("{bin}: error: could not parse the hook event on stdin")),
            "{}",
            log[0]
        );
        assert!(state.ledger().is_empty());
    }
}

#[test]
fn unknown_events_are_silent_no_ops_and_empty_stdin_is_one_log_line() {
    for bin in HOOKS {
        let state = State::new();
        state.hook(bin, r#"{"hook_event_name":"SessionStart","session_id":"s1"}"#).success().stdout("");
        state
            .hook(bin, r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{}}"#)
            .success()
            .stdout("");
        assert!(state.log_lines().is_empty(), "{bin}: {:?}", state.log_lines());
        state.hook(bin, "").success().stdout("").stderr("");
        let log = state.log_lines();
        assert_eq!(log.len(), 1, "{bin}: {log:?}");
        assert!(log[0].contains("could not parse the hook event"), "{}", log[0]);
        assert!(state.ledger().is_empty(), "{bin}");
    }
}

#[test]
fn an_oversized_event_is_ignored_without_buffering_it_all() {
    let state = State::new();
    let huge = format!(
        r#"{{"hook_event_name":"UserPromptSubmit","session_id":"s1","prompt_id":"p1","prompt":"rename foo {}"}}"#,
        "a".repeat(9 * 1024 * 1024)
    );
    // Routable as it stands, were it read: nothing printed and nothing recorded shows it was not.
    state.hook("marshal-prompt", huge).success().stdout("");
    assert!(state.ledger().is_empty(), "an oversized event was recorded");
    assert!(!state.dir.join("sessions/s1.jsonl").exists(), "an oversized event opened a turn");
    let log = state.log_lines();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].contains("larger than 8388608 bytes"), "{log:?}");
}

#[test]
fn marshal_mode_off_prints_nothing_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    hook_in(&dir, "marshal-prompt", prompt_event("p1", "rename foo"), &[("MARSHAL_MODE", "off")])
        .success()
        .stdout("");
    hook_in(&dir, "marshal-pretool", agent_event("p1", "x"), &[("MARSHAL_MODE", "off")]).success().stdout("");
    hook_in(&dir, "marshal-stop", stop_event("p1"), &[("MARSHAL_MODE", "off")]).success().stdout("");
    assert!(!dir.exists());
}

#[test]
fn an_unwritable_state_dir_still_routes_and_never_fails_the_hook() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let dir = file.join("state"); // cannot be created, even by root
    let assert = hook_in(&dir, "marshal-prompt", prompt_event("p1", "rename foo"), &[]).success();
    assert!(directive_of(&assert).contains("marshal:haiku-general"));
    // With no state dir to log into, the one line goes to stderr (Claude Code ignores it).
    let stderr = assert.stderr_text();
    assert!(
        stderr.contains("marshal-prompt: turn not recorded: could not create state directory"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    hook_in(&dir, "marshal-pretool", agent_event("p1", "x"), &[]).success().stdout("");
    hook_in(&dir, "marshal-stop", stop_event("p1"), &[]).success().stdout("");
}

#[test]
fn with_no_state_dir_at_all_the_prompt_hook_still_routes() {
    let mut command = Command::new(crate::support::built_binaries_dir().join("marshal-prompt"));
    command.env_clear();
    let assert = Ran::of(&mut command, Some(prompt_event("p1", "rename foo").as_bytes()), LIMIT).success();
    assert!(directive_of(&assert).contains("marshal:haiku-general"));
    let stderr = assert.stderr_text();
    assert!(stderr.contains("no state directory"), "{stderr}");
}

#[test]
fn a_closed_stdout_does_not_crash_the_hook() {
    let state = State::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = std::process::Command::new(crate::support::built_binaries_dir().join("marshal-prompt"))
        .env_clear()
        .env("MARSHAL_STATE_DIR", &state.dir)
        .stdin(std::process::Stdio::piped())
        .stdout(writer)
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(prompt_event("p1", "rename foo").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(of_kind(&state.ledger(), "route").len(), 1);
}

#[test]
fn lone_surrogates_from_javascript_do_not_lose_the_event() {
    let state = State::new();
    let raw = r#"{"hook_event_name":"UserPromptSubmit","session_id":"s1","prompt_id":"p1","prompt":"rename \ud83d foo"}"#;
    let assert = state.hook("marshal-prompt", raw).success();
    assert!(stdout_json(&assert)["hookSpecificOutput"]["additionalContext"].is_string());
    assert_eq!(of_kind(&state.ledger(), "route").len(), 1);
}

#[test]
fn hostile_session_ids_never_leave_the_state_dir() {
    let state = State::new();
    let raw = json!({"hook_event_name":"UserPromptSubmit","session_id":"../../escape\n\u{0}","prompt_id":"p1","prompt":"rename foo"});
    state.hook("marshal-prompt", raw.to_string()).success();
    let sessions: Vec<_> =
        std::fs::read_dir(state.dir.join("sessions")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].to_str().unwrap().starts_with('h'), "{sessions:?}");
    // Nothing at all was created outside the state dir.
    let root = state.dir.parent().unwrap();
    let outside: Vec<_> =
        std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).filter(|p| *p != state.dir).collect();
    assert!(outside.is_empty(), "{outside:?}");
}

#[test]
fn marshal_route_prints_the_decision_and_stable_json() {
    let home = tempfile::tempdir().unwrap();
    let marshal = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_marshal"));
        command.env_clear().env("HOME", home.path()).current_dir(home.path());
        command
    };
    let run = |args: &[&str], input: Option<&[u8]>| Ran::of(marshal().args(args), input, LIMIT);
    let text = run(&["route", "rename foo to bar"], None).success().stdout_text();
    assert!(text.contains("agent:      haiku-general (subagent_type \"marshal:haiku-general\")"), "{text}");
    assert!(text.contains("because:    task chore: rename (builtin.chore)"), "{text}");

    let out = run(&["route", "--json", "-"], Some(b"thanks!")).success();
    let json = stdout_json(&out);
    assert_eq!((json["agent"].clone(), json["tier"].clone()), (Value::Null, json!("none")));

    // An abstention the classifier chose states its probability and, with --explain, why.
    let out = run(&["route", "--json", "--explain", "-"], Some(b"thanks!")).success();
    let json = stdout_json(&out);
    let stated = json["explanation"]["classifier"]["probabilities"]["none"].as_f64().unwrap();
    assert_eq!(json["confidence"].as_f64(), Some((stated * 100.0).round() / 100.0), "{json}");
    let features = json["explanation"]["features"].as_array().unwrap();
    assert!(features.iter().all(|f| f["feature"].is_string() && f["means"].is_string()), "{json}");
    assert_eq!(json["explanation"]["classifier"]["label"], "none", "{json}");
    assert!(json["explanation"]["features"].as_array().is_some_and(|f| !f.is_empty()), "{json}");
    let text = run(&["route", "--explain", "--defaults", "thanks!"], None).success().stdout_text();
    assert!(text.contains("Why no agent?\n  Classifier: none "), "{text}");
    // A slash command is no request by construction: certain, and nothing to explain.
    let out = run(&["route", "--json", "--explain", "/help"], None).success();
    let json = stdout_json(&out);
    assert_eq!((json["confidence"].as_f64(), json.get("explanation")), (Some(1.0), None), "{json}");

    let out = run(&["route", "--json", "design the architecture for multi-region failover"], None).success();
    let json = stdout_json(&out);
    for field in
        ["agent", "subagent_type", "tier", "model", "confidence", "task", "score", "reasons", "directive"]
    {
        assert!(json.get(field).is_some(), "{field} missing: {json}");
    }
    assert_eq!(
        (json["tier"].as_str(), json["confidence"].as_f64().map(|c| c * 100.0 % 1.0 == 0.0)),
        (Some("strong"), Some(true))
    );

    run(&["--help"], None).success();
    run(&["bogus"], None).code(2);
}
