//! Orchestration: marshal runs the routed agent itself as a `claude -p` child, on the real
//! client (the hand-off from the hook) and through `marshal-orchestrate` with stand-in CLIs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::claude::{claude_bin, Sandbox};
use crate::support::fake_api::{FakeApi, Reply};
use crate::support::of_kind;
use crate::support::process::run_with_limit;

const CHORE: &str = "rename the helper parse_cfg to parse_config in utils.py";
const CHILD_ANSWER: &str = "child: renamed parse_cfg to parse_config";

fn models(api: &FakeApi) -> Vec<String> {
    api.requests().iter().map(|r| r.model().to_string()).collect()
}

fn orchestrate_env(bin: &Path) -> Vec<(&'static str, String)> {
    vec![("MARSHAL_MODE", "orchestrate".into()), ("MARSHAL_CLAUDE_BIN", bin.display().to_string())]
}

fn claude_p(sandbox: &Sandbox, api: &FakeApi, env: &[(&str, String)]) -> serde_json::Value {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sandbox.claude_p(api, CHORE, &env).result()
}

#[test]
fn orchestrate_mode_answers_with_the_routed_model_and_never_calls_the_main_one() {
    let sandbox = Sandbox::installed();
    let api = FakeApi::start(|_| Reply::text(CHILD_ANSWER));
    let result = claude_p(&sandbox, &api, &orchestrate_env(&claude_bin()));

    // Every request came from the child, on haiku: the main model (opus) received nothing.
    let seen = models(&api);
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|m| m == "claude-haiku-5-5"), "{seen:?}");
    // claude -p printed the routed agent's answer (as the hook's block reason).
    let printed = result["result"].as_str().unwrap();
    assert!(printed.contains(CHILD_ANSWER), "{printed}");
    assert_eq!(result["num_turns"], 0);

    let ledger = sandbox.ledger();
    let routes = of_kind(&ledger, "route");
    assert_eq!(routes.len(), 1, "the child's own hooks never route again: {ledger:#?}");
    assert_eq!(
        (routes[0]["mode"].as_str(), routes[0]["mode_reason"].as_str()),
        (Some("orchestrate"), Some("MARSHAL_MODE=orchestrate"))
    );
    let attempts = of_kind(&ledger, "attempt");
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0]["status"].as_str(), attempts[0]["model"].as_str()),
        (Some("succeeded"), Some("haiku"))
    );
    let outcome = &of_kind(&ledger, "outcome")[0];
    assert_eq!(
        (outcome["mode"].as_str(), outcome["outcome"].as_str()),
        (Some("orchestrate"), Some("followed"))
    );
    assert_eq!(outcome["closed_by"], "orchestration");
}

#[test]
fn claude_p_is_orchestrated_when_the_users_modes_table_asks() {
    let sandbox = Sandbox::installed();
    let config = sandbox.home.join(".claude/marshal.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"modes": {"unattended": "orchestrate"}}"#).unwrap();
    let api = FakeApi::start(|_| Reply::text(CHILD_ANSWER));
    let env = [("MARSHAL_CLAUDE_BIN", claude_bin().display().to_string())];
    let result = claude_p(&sandbox, &api, &env);
    assert!(result["result"].as_str().unwrap().contains(CHILD_ANSWER));
    assert!(models(&api).iter().all(|m| m == "claude-haiku-5-5"), "{:?}", models(&api));
    let ledger = sandbox.ledger();
    let reason = of_kind(&ledger, "route")[0]["mode_reason"].as_str().unwrap().to_string();
    assert!(reason.contains("CLAUDE_CODE_SESSION_ATTENDED=0") && reason.contains("modes table"), "{reason}");
}

#[test]
fn a_failing_first_model_is_retried_once_then_escalated_to_the_next_tier() {
    let sandbox = Sandbox::installed();
    let api = FakeApi::start(|request| match request.model() {
        "claude-haiku-5-5" => Reply::Error { status: 529, message: "Overloaded".into() },
        _ => Reply::text(CHILD_ANSWER),
    });
    let result = claude_p(&sandbox, &api, &orchestrate_env(&claude_bin()));
    assert!(result["result"].as_str().unwrap().contains(CHILD_ANSWER));
    assert_eq!(models(&api), ["claude-haiku-5-5", "claude-haiku-5-5", "claude-sonnet-5-5"]);
    let ledger = sandbox.ledger();
    let attempts: Vec<(String, String)> = of_kind(&ledger, "attempt")
        .iter()
        .map(|a| (a["model"].as_str().unwrap().to_string(), a["status"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        attempts,
        [
            ("haiku".into(), "api_error".into()),
            ("haiku".into(), "api_error".into()),
            ("sonnet".into(), "succeeded".into())
        ]
    );
    let outcome = &of_kind(&ledger, "outcome")[0];
    assert_eq!(
        (outcome["outcome"].as_str(), outcome["actual"].as_str()),
        (Some("followed"), Some("sonnet-general"))
    );
    assert_eq!(outcome["escalations"], 1);
}

#[test]
fn a_missing_cli_falls_back_to_the_directive() {
    let sandbox = Sandbox::installed();
    let api = FakeApi::start(|_| Reply::text("main: answered"));
    claude_p(&sandbox, &api, &orchestrate_env(Path::new("/nonexistent/claude")));
    let first = &api.requests()[0];
    assert_eq!(first.model(), "claude-opus-5-5", "the main model got the request");
    assert!(first.message_text().contains("subagent_type: \"marshal:haiku-general\""));
    let ledger = sandbox.ledger();
    let route = of_kind(&ledger, "route")[0].clone();
    assert_eq!(route["mode"], "directive");
    assert!(route["mode_reason"].as_str().unwrap().contains("Claude Code CLI was not found"));
    assert!(sandbox.log().contains("Claude Code CLI was not found"), "{}", sandbox.log());
}

/// A stand-in Claude Code CLI for marshal-orchestrate.
fn stub_cli(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("claude");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn orchestrate(state: &Path, cli: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_marshal-orchestrate"));
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", state.join("home"))
        .env("MARSHAL_STATE_DIR", state)
        .env("MARSHAL_CLAUDE_BIN", cli.map_or("/nonexistent/claude".into(), |c| c.display().to_string()))
        .current_dir(state)
        .args(args);
    run_with_limit(&mut command, Duration::from_secs(60))
}

#[test]
fn marshal_orchestrate_prints_the_answer_and_documents_its_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let argv_log = tmp.path().join("argv");
    let cli = stub_cli(
        tmp.path(),
        &format!(
            "printf '%s\\n' \"$@\" > {}\necho '{{\"type\":\"result\",\"is_error\":false,\"result\":\"stub answer\"}}'",
            argv_log.display()
        ),
    );
    let out = orchestrate(tmp.path(), Some(&cli), &[CHORE]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stub answer\n");
    let argv = std::fs::read_to_string(&argv_log).unwrap();
    assert_eq!(
        argv,
        format!("-p\n--output-format\njson\n--model\nhaiku\n--agent\nmarshal:haiku-general\n--\n{CHORE}\n")
    );
    let ledger = crate::support::read_jsonl(&tmp.path().join("ledger.jsonl"));
    assert_eq!(of_kind(&ledger, "outcome")[0]["outcome"], "followed");

    // --json carries the decision, the attempts (with the spawn overhead) and the result.
    let out = orchestrate(tmp.path(), Some(&cli), &["--json", CHORE]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["decision"]["tier"].as_str(), json["result"].as_str()),
        (Some("weak"), Some("stub answer"))
    );
    assert!(json["attempts"][0]["spawned_after_us"].as_u64().unwrap() > 0);

    assert_eq!(orchestrate(tmp.path(), None, &[CHORE]).status.code(), Some(3), "no CLI");
    assert_eq!(orchestrate(tmp.path(), Some(&cli), &[]).status.code(), Some(2), "no request");
    let failing_dir = tmp.path().join("failing");
    std::fs::create_dir_all(&failing_dir).unwrap();
    let failing = stub_cli(&failing_dir, "echo 'boom' >&2; exit 7");
    let out = orchestrate(tmp.path(), Some(&failing), &[CHORE]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("orchestration failed after 3 attempt(s)"), "{stderr}");
    assert!(
        stderr.contains("attempt 3 (strong tier, marshal:opus-general, model opus): exited with status 7"),
        "{stderr}"
    );
    assert!(stderr.contains("The last attempt's output is in"), "{stderr}");
}

#[test]
fn a_prompt_too_long_for_an_argument_reaches_the_model_through_stdin() {
    // Linux refuses one argument over 128 KiB; workflow steps carry earlier answers.
    let sandbox = Sandbox::installed();
    let api = FakeApi::start(|request| {
        if request.last_user_text().contains("END-OF-LONG-PROMPT") {
            Reply::text("LONG-OK")
        } else {
            Reply::text("the prompt did not arrive whole")
        }
    });
    let prompt = format!(
        "rename parse_cfg to parse_config in these files: {} END-OF-LONG-PROMPT",
        "src/a.py ".repeat(20_000)
    );
    assert!(prompt.len() > 150_000);
    let mut command = sandbox.command(Path::new(env!("CARGO_BIN_EXE_marshal-orchestrate")), &api);
    command.env("MARSHAL_CLAUDE_BIN", claude_bin()).arg("--interactive");
    let ran =
        crate::support::process::Ran::of(&mut command, Some(prompt.as_bytes()), Duration::from_secs(120));
    let ran = ran.success();
    assert_eq!(ran.stdout_text(), "LONG-OK\n");
    assert!(api.requests().iter().any(|r| r.last_user_text().len() > 150_000));
}
