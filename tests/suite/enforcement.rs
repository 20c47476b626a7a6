//! Enforcement on the real client: a scripted model that deviates first and follows marshal's
//! feedback, under each enforcement level.

use crate::support::claude::{scripted_api, MainModel, Sandbox};
use crate::support::of_kind;

const CHORE: &str = "rename the helper parse_cfg to parse_config in utils.py";
const ROUTED: &str = "marshal:haiku-general";

fn single_outcome(sandbox: &Sandbox) -> serde_json::Value {
    let ledger = sandbox.ledger();
    let outcomes = of_kind(&ledger, "outcome");
    assert_eq!(outcomes.len(), 1, "{ledger:#?}");
    outcomes[0].clone()
}

fn deviates_then_follows() -> MainModel {
    MainModel::FollowsFeedback { first: Some("general-purpose".into()), then: ROUTED.into() }
}

#[test]
fn deny_makes_a_deviating_model_retry_with_the_routed_agent() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(deviates_then_follows());
    sandbox.claude_p(&api, CHORE, &[("MARSHAL_ENFORCE", "deny")]).result();

    // The model saw the denial, naming the exact subagent_type, as the tool's error.
    let denial = api
        .requests()
        .iter()
        .flat_map(|r| r.tool_result_texts())
        .find(|t| t.contains("marshal: this request is routed to"))
        .expect("the denial reached the model");
    assert!(denial.contains("subagent_type: \"marshal:haiku-general\""), "{denial}");
    // Only the routed agent ran.
    assert_eq!(api.subagent_models(), ["claude-haiku-5-5"]);
    let outcome = single_outcome(&sandbox);
    assert_eq!(outcome["outcome"], "followed");
    assert_eq!(outcome["unenforced"], "deviated");
    assert_eq!(outcome["enforcement"]["denied"], 1);
}

#[test]
fn rewrite_sends_the_routed_agent_and_model_to_the_server() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::CallsAgent("general-purpose".into()));
    sandbox.claude_p(&api, CHORE, &[("MARSHAL_ENFORCE", "rewrite")]).result();
    // general-purpose would have inherited the main model (opus); the rewrite ran haiku.
    assert_eq!(api.subagent_models(), ["claude-haiku-5-5"]);
    let outcome = single_outcome(&sandbox);
    assert_eq!(
        (outcome["outcome"].as_str(), outcome["unenforced"].as_str()),
        (Some("followed"), Some("deviated"))
    );
    assert_eq!(outcome["enforcement"]["rewritten"], 1);
    let calls = of_kind(&sandbox.ledger(), "call").into_iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        (calls[0]["subagent_type"].as_str(), calls[0]["original"].as_str()),
        (Some(ROUTED), Some("general-purpose"))
    );
}

#[test]
fn the_stop_nudge_makes_an_ignoring_model_delegate_on_its_second_turn() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::FollowsFeedback { first: None, then: ROUTED.into() });
    sandbox.claude_p(&api, CHORE, &[("MARSHAL_ENFORCE", "deny")]).result();
    let nudge = api
        .requests()
        .iter()
        .map(|r| r.last_user_text())
        .find(|t| t.contains("Stop hook feedback"))
        .expect("the nudge reached the model");
    assert!(nudge.contains("subagent_type: \"marshal:haiku-general\""), "{nudge}");
    assert_eq!(api.subagent_models(), ["claude-haiku-5-5"]);
    let outcome = single_outcome(&sandbox);
    assert_eq!(
        (outcome["outcome"].as_str(), outcome["unenforced"].as_str()),
        (Some("followed"), Some("ignored"))
    );
    assert_eq!(outcome["enforcement"]["nudged"], true);
}

#[test]
fn warn_tells_the_model_and_lets_the_call_run() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(MainModel::CallsAgent("general-purpose".into()));
    sandbox.claude_p(&api, CHORE, &[]).result();
    assert!(api.requests().iter().any(|r| r
        .message_text()
        .contains("PreToolUse:Agent hook additional context: marshal: this request was routed")));
    assert_eq!(api.subagent_models(), ["claude-opus-5-5"], "the model's own choice ran");
    let outcome = single_outcome(&sandbox);
    assert_eq!(
        (outcome["outcome"].as_str(), outcome["enforcement"]["warned"].as_u64()),
        (Some("deviated"), Some(1))
    );
}

#[test]
fn off_changes_nothing() {
    let sandbox = Sandbox::installed();
    let api = scripted_api(deviates_then_follows());
    sandbox.claude_p(&api, CHORE, &[("MARSHAL_ENFORCE", "off")]).result();
    assert!(api.requests().iter().all(|r| !r.message_text().contains("marshal: this request")));
    assert_eq!(api.subagent_models(), ["claude-opus-5-5"]);
    let outcome = single_outcome(&sandbox);
    assert_eq!(
        (outcome["outcome"].as_str(), outcome["unenforced"].as_str()),
        (Some("deviated"), Some("deviated"))
    );
    assert_eq!(
        outcome["enforcement"],
        serde_json::json!({"warned":0,"denied":0,"rewritten":0,"nudged":false})
    );
}

/// 50 turns with a known behaviour: 2 in 5 deviate, 1 in 5 ignores the directive, 2 in 5
/// follow it. Under deny (with its nudge) every turn ends followed, and the report shows the
/// rate both ways.
#[test]
fn fifty_scripted_turns_report_compliance_before_and_after_enforcement() {
    const TURNS: usize = 50;
    let sandbox = Sandbox::installed();
    let model_for = |i: usize| match i % 5 {
        0 | 1 => deviates_then_follows(),
        2 => MainModel::FollowsFeedback { first: None, then: ROUTED.into() },
        _ => MainModel::CallsAgent(ROUTED.into()),
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= TURNS {
                    break;
                }
                let api = scripted_api(model_for(i));
                sandbox.claude_p(&api, CHORE, &[("MARSHAL_ENFORCE", "deny")]).result();
            });
        }
    });

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_marshal"));
    command.env_clear().env("HOME", &sandbox.home).args(["report", "--json"]);
    let out = crate::support::process::run_with_limit(&mut command, std::time::Duration::from_secs(30));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["turns"], TURNS);
    assert_eq!(report["compliance_rate"], 1.0);
    assert_eq!(report["before_enforcement"]["followed"], 20);
    assert_eq!(report["before_enforcement"]["deviated"], 20);
    assert_eq!(report["before_enforcement"]["ignored"], 10);
    assert_eq!(report["before_enforcement"]["compliance_rate"], 0.4);
    assert_eq!(report["enforcement"], serde_json::json!({"warned":0,"denied":20,"rewritten":0,"nudged":10}));

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_marshal"));
    command.env_clear().env("HOME", &sandbox.home).args(["report", "--color", "never"]);
    let out = crate::support::process::run_with_limit(&mut command, std::time::Duration::from_secs(30));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("Compliance: 100.0%"), "{table}");
    assert!(
        table.contains("Enforcement: 20 denied, 0 rewritten, 0 warned, 10 nudged; compliance without enforcement 40.0% (20 of 50 turns followed)"),
        "{table}"
    );
}
