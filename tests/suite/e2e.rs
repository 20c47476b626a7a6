//! End to end: the real Claude Code CLI, marshal installed by install.sh, a scripted model.
//!
//! Every assertion is on what the user or the model would see: what the server received, what
//! `claude -p` printed, and what the ledger holds.

use crate::support::claude::{scripted_api, MainModel, Sandbox, MAIN_DIRECT_ANSWER, SUBAGENT_ANSWER};
use crate::support::fake_api::{ApiRequest, FakeApi};
use crate::support::of_kind;

const CHORE: &str = "rename the helper parse_cfg to parse_config in utils.py";
const DIRECTIVE_FOR_CHORE: &str = "subagent_type: \"marshal:haiku-general\"";

/// Every request of the main agent (not of a subagent), in order.
fn main_requests(api: &FakeApi) -> Vec<ApiRequest> {
    api.requests().into_iter().filter(|r| !r.is_subagent()).collect()
}

#[test]
fn followed_directive_reaches_the_model_and_the_routed_agent_runs_on_haiku() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::CallsAgent("marshal:haiku-general".into()));
    let result = sandbox.claude_p(&api, CHORE, &[]).result();

    // The directive reached the main model, naming the exact subagent_type.
    let first = &main_requests(&api)[0];
    let text = first.message_text();
    assert!(text.contains("UserPromptSubmit hook additional context: marshal routing"), "{text}");
    assert!(text.contains(DIRECTIVE_FOR_CHORE), "{text}");

    // The recommended agent really ran, on the haiku model from its front matter.
    assert_eq!(api.subagent_models(), ["claude-haiku-5-5"]);
    assert!(
        api.requests().iter().any(|r| r.message_text().contains(SUBAGENT_ANSWER)),
        "the subagent's answer reached the main model"
    );

    // The ledger: one route, one call, one outcome: followed.
    let ledger = sandbox.ledger();
    let routes = of_kind(&ledger, "route");
    assert_eq!(routes.len(), 1, "{ledger:#?}");
    assert_eq!(routes[0]["agent"], "haiku-general");
    assert_eq!(routes[0]["tier"], "weak");
    assert_eq!(routes[0]["session"], result["session_id"]);
    let calls = of_kind(&ledger, "call");
    assert_eq!(calls.len(), 1, "{ledger:#?}");
    assert_eq!(calls[0]["subagent_type"], "marshal:haiku-general");
    assert_eq!(calls[0]["routed_turn"], true);
    let outcomes = of_kind(&ledger, "outcome");
    assert_eq!(outcomes.len(), 1, "{ledger:#?}");
    assert_eq!(outcomes[0]["outcome"], "followed");
    assert_eq!(outcomes[0]["actual"], "haiku-general");
    assert_eq!(outcomes[0]["prompt_id"], routes[0]["prompt_id"]);
    assert!(sandbox.log().is_empty(), "unexpected log lines: {}", sandbox.log());
    // Claude Code created the plugin's data folder 0755; marshal narrowed it on first use.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sandbox.state_dir()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn the_task_notification_turn_is_neither_routed_nor_counted() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::CallsAgent("marshal:haiku-general".into()));
    sandbox.claude_p(&api, CHORE, &[]).result();

    // The background agent's completion started a second main turn...
    let notification_turns: Vec<_> = main_requests(&api)
        .into_iter()
        .filter(|r| r.last_user_text().contains("<task-notification>"))
        .collect();
    assert!(!notification_turns.is_empty(), "no task-notification turn happened");
    // ...which carried no directive of its own...
    for request in &notification_turns {
        assert!(!request.last_user_text().contains("marshal routing"));
    }
    // ...and the ledger still holds exactly one routed turn and one outcome.
    let ledger = sandbox.ledger();
    assert_eq!(of_kind(&ledger, "route").len(), 1, "{ledger:#?}");
    assert_eq!(of_kind(&ledger, "outcome").len(), 1, "{ledger:#?}");
    // No turn is left open: every session journal is empty.
    for journal in sandbox.state_dir().join("sessions").read_dir().unwrap() {
        let journal = journal.unwrap().path();
        assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0, "{}", journal.display());
    }
}

#[test]
fn calling_another_agent_is_recorded_as_deviated_with_the_actual_agent() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::CallsAgent("general-purpose".into()));
    sandbox.claude_p(&api, CHORE, &[]).result();
    // The other agent really ran: general-purpose inherits the main model.
    assert_eq!(api.subagent_models(), ["claude-opus-5-5"]);

    let ledger = sandbox.ledger();
    let outcomes = of_kind(&ledger, "outcome");
    assert_eq!(outcomes.len(), 1, "{ledger:#?}");
    assert_eq!(outcomes[0]["outcome"], "deviated");
    assert_eq!(outcomes[0]["recommended"], "haiku-general");
    assert_eq!(outcomes[0]["actual"], "general-purpose");
}

#[test]
fn answering_directly_is_recorded_as_ignored() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::Answers);
    let result = sandbox.claude_p(&api, CHORE, &[]).result();
    assert_eq!(result["result"], MAIN_DIRECT_ANSWER);
    assert!(main_requests(&api)[0].message_text().contains(DIRECTIVE_FOR_CHORE));

    let ledger = sandbox.ledger();
    let outcomes = of_kind(&ledger, "outcome");
    assert_eq!(outcomes.len(), 1, "{ledger:#?}");
    assert_eq!(outcomes[0]["outcome"], "ignored");
    assert_eq!(outcomes[0]["actual"], serde_json::Value::Null);
    assert!(of_kind(&ledger, "call").is_empty());
}

#[test]
fn a_hard_request_is_routed_to_the_strong_tier() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::CallsAgent("marshal:opus-general".into()));
    sandbox
        .claude_p(&api, "find the root cause of the deadlock in our distributed job scheduler", &[])
        .result();
    assert!(main_requests(&api)[0].message_text().contains("subagent_type: \"marshal:opus-general\""));
    assert_eq!(api.subagent_models(), ["claude-opus-5-5"]);
    let ledger = sandbox.ledger();
    assert_eq!(of_kind(&ledger, "outcome")[0]["outcome"], "followed");
    assert_eq!(of_kind(&ledger, "route")[0]["tier"], "strong");
}

#[test]
fn chit_chat_gets_no_directive_and_no_record() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::Answers);
    sandbox.claude_p(&api, "thanks, that works!", &[]).result();
    assert!(!main_requests(&api)[0].message_text().contains("marshal routing"));
    assert!(sandbox.ledger().is_empty(), "{:#?}", sandbox.ledger());
}

#[test]
fn marshal_mode_off_injects_nothing_and_records_nothing() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::CallsAgent("marshal:haiku-general".into()));
    sandbox.claude_p(&api, CHORE, &[("MARSHAL_MODE", "off")]).result();
    assert!(api.requests().len() >= 2, "the session ran: {} requests", api.requests().len());
    for request in api.requests() {
        assert!(!request.message_text().contains("marshal routing"));
    }
    assert!(!sandbox.state_dir().join("ledger.jsonl").exists(), "{:#?}", sandbox.ledger());
}

#[test]
fn uninstall_removes_the_plugin_from_claude_code_but_keeps_the_ledger() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::Answers);
    sandbox.claude_p(&api, CHORE, &[]).result();
    let ledger_before = sandbox.ledger();
    assert_eq!(of_kind(&ledger_before, "outcome").len(), 1);

    // A broken CLAUDE_BIN stops the uninstall before anything is removed: deleting bin/ while
    // the plugin stays enabled would make every hook fail.
    let mut broken = std::process::Command::new(sandbox.plugin.join("install.sh"));
    broken.arg("--uninstall").env("HOME", &sandbox.home).env("CLAUDE_BIN", "/nonexistent/claude");
    let out = crate::support::process::run_with_limit(&mut broken, std::time::Duration::from_secs(60));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CLAUDE_BIN=/nonexistent/claude"));
    assert!(sandbox.plugin.join("bin/marshal-prompt").exists());

    let out = sandbox.install_sh(&["--uninstall"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!sandbox.plugin.join("bin").exists());
    let settings = std::fs::read_to_string(sandbox.home.join(".claude/settings.json")).unwrap_or_default();
    assert!(!settings.contains("\"marshal@marshal\": true"), "{settings}");
    // The user's data stays.
    assert_eq!(sandbox.ledger(), ledger_before);

    // The hooks are gone: a session gets no directive and records nothing.
    let api = scripted_api(MainModel::Answers);
    sandbox.claude_p(&api, CHORE, &[]).result();
    assert!(!main_requests(&api)[0].message_text().contains("marshal routing"));
    assert_eq!(sandbox.ledger(), ledger_before);

    // Uninstalling twice is fine, and installing again after an uninstall works.
    let twice = sandbox.install_sh(&["--uninstall"]);
    assert!(twice.status.success(), "{}", String::from_utf8_lossy(&twice.stderr));
    assert!(String::from_utf8_lossy(&twice.stdout).contains("was not installed"));
    let again = sandbox.install_sh(&["--binaries", crate::support::built_binaries_dir().to_str().unwrap()]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}

#[test]
fn install_links_the_user_commands_into_local_bin_when_it_is_on_path() {
    let sandbox = Sandbox::bare();
    let local_bin = sandbox.home.join(".local/bin");
    std::fs::create_dir_all(&local_bin).unwrap();
    std::fs::write(local_bin.join("marshal-orchestrate"), "#!/bin/sh\necho someone else's\n").unwrap();
    let path = std::env::join_paths(
        std::iter::once(local_bin.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let binaries = crate::support::built_binaries_dir();
    let args = ["--binaries", binaries.to_str().unwrap(), "--no-register"];
    for _ in 0..2 {
        let out = sandbox.install_sh_with(&args, &[("PATH", &path)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("linked marshal marshal-orchestrate into"), "{stdout}");
        assert!(stdout.contains("is not marshal's link; left alone"), "{stdout}");
    }
    assert_eq!(std::fs::read_link(local_bin.join("marshal")).unwrap(), sandbox.plugin.join("bin/marshal"));
    let theirs = std::fs::read_to_string(local_bin.join("marshal-orchestrate")).unwrap();
    assert!(theirs.contains("someone else's"), "a file that was not ours was replaced");

    // Without ~/.local/bin on PATH, nothing is linked and the user is told how to run it.
    let elsewhere = Sandbox::bare();
    let out = elsewhere.install_sh(&args);
    assert!(String::from_utf8_lossy(&out.stdout).contains("add"), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!elsewhere.home.join(".local/bin/marshal").exists());
}

#[test]
fn marshal_report_counts_real_sessions_and_json_matches_the_table() {
    let sandbox = Sandbox::installed();
    let sessions = [
        (MainModel::CallsAgent("marshal:haiku-general".into()), CHORE),
        (MainModel::CallsAgent("general-purpose".into()), CHORE),
        (MainModel::Answers, CHORE),
        (
            MainModel::CallsAgent("marshal:opus-general".into()),
            "design the architecture for multi-region failover",
        ),
    ];
    for (model, prompt) in sessions {
        let api = scripted_api(model);
        sandbox.claude_p(&api, prompt, &[]).result();
    }

    // Run as the user would: from a shell with only HOME set, so the CLI finds the installed
    // plugin's data directory by itself.
    let report = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_marshal"));
        command.env_clear().env("HOME", &sandbox.home).arg("report").args(args);
        let out = crate::support::process::run_with_limit(&mut command, std::time::Duration::from_secs(30));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let table = report(&["--color", "never"]);
    assert!(table.contains("marshal compliance report: 4 routed turns"), "{table}");
    assert!(
        table.contains("Compliance: 50.0%  (followed 2, deviated 1, ignored 1; 0 interrupted, not counted)"),
        "{table}"
    );
    assert!(table.contains("haiku-general -> general-purpose"), "{table}");

    let json: serde_json::Value = serde_json::from_str(&report(&["--json"])).unwrap();
    assert_eq!(json["turns"], 4);
    assert_eq!(
        (json["followed"].clone(), json["deviated"].clone(), json["ignored"].clone()),
        (2.into(), 1.into(), 1.into())
    );
    assert_eq!(json["compliance_rate"], 0.5);
    assert_eq!(json["by_mode"]["directive"]["turns"], 4);
    assert_eq!(json["by_recommended"]["haiku-general"]["followed"], 1);
    assert_eq!(json["by_recommended"]["opus-general"]["followed"], 1);
    assert_eq!(json["tiers"]["weak"], 3);
    // The JSON and the table tell the same story, row by row.
    for (agent, tally) in json["by_recommended"].as_object().unwrap() {
        let row = table.lines().find(|l| l.trim_start().starts_with(agent.as_str())).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], tally["turns"].to_string(), "{row}");
        assert_eq!(cells[2], tally["followed"].to_string(), "{row}");
    }

    let csv = report(&["--csv"]);
    assert!(csv.lines().any(|l| l == "overall,all,4,2,1,1,0,0.5000"), "{csv}");
}

#[test]
fn a_turn_cut_short_by_an_api_error_is_closed_as_interrupted_at_session_end() {
    let sandbox = Sandbox::installed();
    let api = crate::support::fake_api::FakeApi::start(|_| crate::support::fake_api::Reply::Error {
        status: 400,
        message: "scripted failure".into(),
    });
    let run = sandbox.claude_p(&api, CHORE, &[]);
    assert!(!run.output.status.success(), "the session failed as scripted");

    let ledger = sandbox.ledger();
    assert_eq!(of_kind(&ledger, "route").len(), 1, "{ledger:#?}");
    let outcomes = of_kind(&ledger, "outcome");
    assert_eq!(outcomes.len(), 1, "{ledger:#?}");
    assert_eq!(outcomes[0]["outcome"], "interrupted");
    assert_eq!(outcomes[0]["closed_by"], "session_end");
    // The session's journal is gone with the session.
    assert_eq!(sandbox.state_dir().join("sessions").read_dir().unwrap().count(), 0);
}

#[test]
fn a_user_rule_and_a_user_agent_change_the_routing_of_a_real_session() {
    let sandbox = Sandbox::installed();
    // Without configuration, a changelog entry is a chore for haiku.
    let api = scripted_api(MainModel::Answers);
    sandbox.claude_p(&api, "add a changelog entry for the 2.0 release", &[]).result();
    assert!(main_requests(&api)[0].message_text().contains("subagent_type: \"marshal:haiku-general\""));

    // The user's own rules: changelogs go to the strong tier; reviews go to their agent.
    let claude_dir = sandbox.home.join(".claude");
    std::fs::write(
        claude_dir.join("marshal.json"),
        r#"{"rules": [
            {"id": "me.release-notes", "match": ["changelog"], "task": "docs", "tier": "strong"},
            {"id": "me.review", "match": ["review*"], "task": "review", "agent": "code-reviewer"}
        ]}"#,
    )
    .unwrap();
    std::fs::create_dir_all(claude_dir.join("agents")).unwrap();
    std::fs::write(
        claude_dir.join("agents/code-reviewer.md"),
        "---\nname: code-reviewer\ndescription: Reviews diffs for bugs and style.\nmodel: sonnet\n---\nReview the diff.\n",
    )
    .unwrap();

    let api = scripted_api(MainModel::CallsAgent("marshal:opus-general".into()));
    sandbox.claude_p(&api, "add a changelog entry for the 2.0 release", &[]).result();
    assert!(main_requests(&api)[0].message_text().contains("subagent_type: \"marshal:opus-general\""));
    assert_eq!(api.subagent_models(), ["claude-opus-5-5"]);

    let api = scripted_api(MainModel::CallsAgent("code-reviewer".into()));
    sandbox.claude_p(&api, "review the diff on this branch before I merge it", &[]).result();
    assert!(main_requests(&api)[0].message_text().contains("subagent_type: \"code-reviewer\""));
    assert_eq!(api.subagent_models(), ["claude-sonnet-5-5"], "the user's agent ran on its own model");

    let ledger = sandbox.ledger();
    let routes = of_kind(&ledger, "route");
    assert_eq!(routes.len(), 3, "{ledger:#?}");
    assert_eq!((routes[1]["tier"].as_str(), routes[1]["task"].as_str()), (Some("strong"), Some("docs")));
    assert!(routes[1]["reasons"][0].as_str().unwrap().contains("me.release-notes"), "{}", routes[1]);
    assert_eq!(routes[2]["subagent_type"], "code-reviewer");
    let outcomes = of_kind(&ledger, "outcome");
    assert_eq!(
        outcomes.iter().map(|o| o["outcome"].as_str().unwrap()).collect::<Vec<_>>(),
        ["ignored", "followed", "followed"]
    );
    assert!(sandbox.log().is_empty(), "{}", sandbox.log());
}

/// CI's floor on the frozen test split (and on marshal 0.1's own set): overall accuracy and
/// severe misroutes. Raise it as the router improves; never lower it to make a change pass.
#[test]
fn the_test_split_stays_above_its_accuracy_floor() {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_marshal"));
    command
        .arg("eval")
        .arg(crate::support::repo_root().join("evals/corpus-test.jsonl"))
        // Issue #15's bar: 90% overall, every category at 80%, severe misroutes at 2% at most.
        .args(["--min-accuracy", "0.90", "--min-category", "0.80", "--max-severe", "0.02"]);
    let out = crate::support::process::run_with_limit(&mut command, std::time::Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let test_split =
        std::fs::read_to_string(crate::support::repo_root().join("evals/corpus-test.jsonl")).unwrap();
    let prompts = test_split.lines().filter(|line| !line.trim().is_empty()).count();
    assert!(prompts >= 1053, "the frozen test split only grows: {prompts}");
    assert!(stdout.contains(&format!("corpus-test.jsonl: {prompts} prompts")), "{stdout}");
    assert!(stdout.contains("Reliability"), "{stdout}");

    // A floor above what the router reaches fails, naming what fell short.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_marshal"));
    command.arg("eval").arg(crate::support::repo_root().join("evals/routing.jsonl")).args([
        "--min-accuracy",
        "0.999",
        "--json",
    ]);
    let out = crate::support::process::run_with_limit(&mut command, std::time::Duration::from_secs(300));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("routing.jsonl: accuracy"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["splits"][0]["prompts"], 170);
    assert_eq!(json["splits"][0]["learned_from"], false);

    // A threshold outside 0..1 is a usage error (2), not a failed gate (1).
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_marshal"));
    command
        .arg("eval")
        .arg(crate::support::repo_root().join("evals/routing.jsonl"))
        .args(["--min-accuracy", "2"]);
    let out = crate::support::process::run_with_limit(&mut command, std::time::Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a fraction from 0 to 1"));
}

#[test]
fn marshal_doctor_names_each_problem_of_a_broken_install_and_its_fix() {
    let sandbox = Sandbox::installed();
    let doctor = || {
        let mut command = std::process::Command::new(sandbox.plugin.join("bin/marshal"));
        command
            .env_clear()
            .env("HOME", &sandbox.home)
            .env("PATH", "/usr/bin:/bin")
            .env("MARSHAL_CLAUDE_BIN", crate::support::claude::claude_bin())
            .current_dir(&sandbox.project)
            .arg("doctor");
        crate::support::process::run_with_limit(&mut command, std::time::Duration::from_secs(60))
    };
    let healthy = doctor();
    let text = String::from_utf8_lossy(&healthy.stdout).to_string();
    assert!(healthy.status.success(), "{text}");
    assert!(text.contains("All checks passed."), "{text}");
    assert!(text.contains("marshal-prompt handled a prompt in"), "{text}");

    // Break it three ways.
    std::fs::remove_file(sandbox.plugin.join("bin/marshal-pretool")).unwrap();
    let hooks_path = sandbox.plugin.join("hooks/hooks.json");
    let hooks = std::fs::read_to_string(&hooks_path).unwrap().replacen(r#""type": "command", "#, "", 1);
    std::fs::write(&hooks_path, hooks).unwrap();
    let state = sandbox.state_dir();
    let mount = crate::support::mount::Tmpfs::mount(&state, "1m");
    mount.remount_read_only();

    let broken = doctor();
    let text = String::from_utf8_lossy(&broken.stdout).to_string();
    assert_eq!(broken.status.code(), Some(1), "{text}");
    let expect = [
        ("marshal-pretool is missing", "fix: run ./install.sh"),
        ("has no \"type\": \"command\"", "fix: restore it: git checkout hooks/hooks.json"),
        ("is not writable", "fix: make it writable"),
    ];
    for (problem, fix) in expect {
        let at = text.find(problem).unwrap_or_else(|| panic!("{problem:?} not named:\n{text}"));
        assert!(
            text[at..].lines().nth(1).is_some_and(|l| l.contains(fix)),
            "{problem:?} without {fix:?}:\n{text}"
        );
    }
    assert!(text.contains("problem(s) found."), "{text}");
}
