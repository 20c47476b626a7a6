//! `marshal usage` on real Claude Code transcripts: sessions run by the pinned CLI against the
//! fake server, which reports different usage per model; totals are checked against what the
//! server sent and against ccusage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::support::claude::{claude_bin, pinned_tool, scripted_api, MainModel, Sandbox};
use crate::support::fake_api::{usage_for, FakeApi, Reply};
use crate::support::process::run_with_limit;

const CHORE: &str = "rename the helper parse_cfg to parse_config in utils.py";

/// input, output, cache writes, cache reads
type Totals = [u64; 4];

/// What the server sent, per model: one response per request.
fn sent(apis: &[&FakeApi]) -> BTreeMap<String, Totals> {
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    for api in apis {
        for request in api.requests() {
            let usage = usage_for(request.model());
            let slot = totals.entry(request.model().to_string()).or_default();
            slot[0] += usage.input;
            slot[1] += usage.output;
            slot[2] += usage.cache_write_5m + usage.cache_write_1h;
            slot[3] += usage.cache_read;
        }
    }
    totals
}

/// `marshal ARGS` as the sandbox's user, in UTC.
fn marshal(sandbox: &Sandbox, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_marshal"));
    command
        .env_clear()
        .env("HOME", &sandbox.home)
        .env("TZ", "UTC")
        .env("MARSHAL_STATE_DIR", sandbox.state_dir())
        .args(args);
    command
}

fn marshal_usage(sandbox: &Sandbox, extra: &[&str]) -> Value {
    let out = run_with_limit(marshal(sandbox, &["usage", "--json"]).args(extra), Duration::from_secs(60));
    assert!(out.status.success(), "marshal usage failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn by_model(json: &Value) -> BTreeMap<String, Totals> {
    json["by_model"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(model, b)| {
            let n = |k: &str| b[k].as_u64().unwrap();
            (
                model.clone(),
                [
                    n("input_tokens"),
                    n("output_tokens"),
                    n("cache_creation_input_tokens"),
                    n("cache_read_input_tokens"),
                ],
            )
        })
        .collect()
}

/// The pinned ccusage: `MARSHAL_TEST_CCUSAGE_BIN`, else installed once by scripts/ensure-ccusage.sh.
fn ccusage_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| pinned_tool("MARSHAL_TEST_CCUSAGE_BIN", "scripts/ensure-ccusage.sh")).clone()
}

/// `ccusage daily --json --offline` over `claude_dir`, per model, summed over days.
fn ccusage_by_model(claude_dir: &Path) -> BTreeMap<String, Totals> {
    let mut command = Command::new(ccusage_bin());
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", claude_dir)
        .env("TZ", "UTC")
        .env("CLAUDE_CONFIG_DIR", claude_dir)
        .args(["daily", "--json", "--offline"]);
    let out = run_with_limit(&mut command, Duration::from_secs(120));
    assert!(out.status.success(), "ccusage failed: {}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("ccusage JSON");
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    for day in json["daily"].as_array().unwrap() {
        for model in day["modelBreakdowns"].as_array().unwrap() {
            let n = |k: &str| model[k].as_u64().unwrap();
            let slot = totals.entry(model["modelName"].as_str().unwrap().to_string()).or_default();
            for (i, key) in
                ["inputTokens", "outputTokens", "cacheCreationTokens", "cacheReadTokens"].iter().enumerate()
            {
                slot[i] += n(key);
            }
        }
    }
    totals
}

#[test]
fn token_totals_per_model_equal_what_the_server_sent_and_what_ccusage_counts() {
    let sandbox = Sandbox::installed();
    // A followed turn (the main model delegates to the haiku agent), an ignored one (it
    // answers itself), and an orchestrated one (marshal runs the agent as a child session).
    let followed = scripted_api(MainModel::CallsAgent("marshal:haiku-general".into()));
    sandbox.claude_p(&followed, CHORE, &[]).result();
    let ignored = scripted_api(MainModel::Answers);
    sandbox.claude_p(&ignored, "fix the typo in the README heading", &[]).result();
    let orchestrated = FakeApi::start(|_| Reply::text("child: done"));
    let child_bin = claude_bin().display().to_string();
    sandbox
        .claude_p(
            &orchestrated,
            CHORE,
            &[("MARSHAL_MODE", "orchestrate"), ("MARSHAL_CLAUDE_BIN", &child_bin)],
        )
        .result();

    let expected = sent(&[&followed, &ignored, &orchestrated]);
    assert!(expected.len() >= 2, "both models answered: {expected:?}");
    let json = marshal_usage(&sandbox, &[]);
    assert_eq!(by_model(&json), expected, "marshal usage vs the server");
    assert_eq!(ccusage_by_model(&sandbox.home.join(".claude")), expected, "ccusage vs the server");

    // Who did the work: the routed turns by outcome, the agents, the tiers.
    let requests = |section: &str, key: &str| json[section][key]["requests"].as_u64().unwrap_or(0);
    let opus_requests =
        |api: &FakeApi| api.requests().iter().filter(|r| r.model().contains("opus")).count() as u64;
    let haiku_requests =
        |api: &FakeApi| api.requests().iter().filter(|r| r.model().contains("haiku")).count() as u64;
    assert_eq!(requests("by_outcome", "followed"), opus_requests(&followed) + haiku_requests(&followed));
    assert_eq!(requests("by_outcome", "ignored"), opus_requests(&ignored));
    assert_eq!(requests("by_outcome", "orchestrated"), orchestrated.requests().len() as u64);
    assert_eq!(
        requests("by_agent", "haiku-general"),
        haiku_requests(&followed) + orchestrated.requests().len() as u64
    );
    assert_eq!(requests("by_tier", "weak"), json["total"]["requests"].as_u64().unwrap(), "all three chores");

    // Savings: the haiku work priced at the session's main model (opus 5.5: $5 in, $25 out,
    // $6.25 5-minute and $10 1-hour cache writes, $0.50 reads per million) against haiku's
    // ($1, $5, $1.25, $2, $0.10).
    let savings = &json["savings"];
    let haiku = usage_for("claude-haiku-5-5");
    let at = |p: [f64; 5]| {
        (haiku.input as f64 * p[0]
            + haiku.output as f64 * p[1]
            + haiku.cache_write_5m as f64 * p[2]
            + haiku.cache_write_1h as f64 * p[3]
            + haiku.cache_read as f64 * p[4])
            / 1e6
    };
    let per_haiku_response = at([5.0, 25.0, 6.25, 10.0, 0.5]) - at([1.0, 5.0, 1.25, 2.0, 0.1]);
    let haiku_responses = (haiku_requests(&followed) + orchestrated.requests().len() as u64) as f64;
    let saved = savings["saved_usd"].as_f64().unwrap();
    assert!((saved - per_haiku_response * haiku_responses).abs() < 2e-6, "{savings}");
    assert_eq!(savings["by_outcome"]["ignored"]["saved_usd"].as_f64(), Some(0.0));
    assert!(savings["baseline_model"].as_str().unwrap().contains("claude-opus-5-5"), "{savings}");

    // `marshal report` shows the same savings beside compliance.
    let out = run_with_limit(&mut marshal(&sandbox, &["report", "--json"]), Duration::from_secs(60));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["usage"]["savings"], json["savings"]);
    assert_eq!(report["usage"]["total"], json["total"]);

    // A filter: one session only.
    let session =
        sandbox.ledger().iter().find(|r| r["kind"] == "outcome" && r["outcome"] == "ignored").unwrap()
            ["session"]
            .as_str()
            .unwrap()
            .to_string();
    let one = marshal_usage(&sandbox, &["--session", &session]);
    assert_eq!(one["total"]["requests"].as_u64(), Some(opus_requests(&ignored)));
}

#[test]
fn a_rate_limited_turn_is_recorded_and_the_report_says_when_the_quota_ran_out() {
    let sandbox = Sandbox::installed();
    let limited = FakeApi::start(|_| Reply::Error { status: 429, message: "rate limited".into() });
    let run = sandbox.claude_p(&limited, CHORE, &[]);
    assert!(!run.output.status.success(), "claude -p fails on a 429");
    let ledger = sandbox.ledger();
    let failures = crate::support::of_kind(&ledger, "failure");
    assert_eq!(failures.len(), 1, "{ledger:#?}");
    assert_eq!(failures[0]["error"], "rate_limit");
    let route = &crate::support::of_kind(&ledger, "route")[0];
    assert_eq!(
        (&failures[0]["session"], &failures[0]["prompt_id"]),
        (&route["session"], &route["prompt_id"])
    );

    let mut command = marshal(&sandbox, &["report", "--no-usage"]);
    let text = run_with_limit(&mut command, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains(
            "API failures: 1 turns ended on an API error (1 rate limit); the quota last ran out at "
        ),
        "{text}"
    );
    let json = run_with_limit(command.arg("--json"), Duration::from_secs(60));
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["last_rate_limit"], failures[0]["ts"]);
}

/// `marshal statusline` with Claude Code's status-line JSON on stdin.
fn statusline(sandbox: &Sandbox, payload: &Value) -> String {
    let mut command = marshal(sandbox, &["statusline"]);
    let out = crate::support::process::run_with_input(
        &mut command,
        Some(payload.to_string().as_bytes()),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn the_status_line_shows_route_compliance_and_windows_and_a_full_window_steps_work_down() {
    let sandbox = Sandbox::installed();
    let followed = scripted_api(MainModel::CallsAgent("marshal:haiku-general".into()));
    let session =
        sandbox.claude_p(&followed, CHORE, &[]).result()["session_id"].as_str().unwrap().to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let payload = serde_json::json!({"session_id": session, "model": {"id": "claude-opus-5-5"},
        "rate_limits": {"five_hour": {"used_percentage": 91.2, "resets_at": now + 3600},
                        "seven_day": {"used_percentage": 33, "resets_at": now + 86_400}}});
    let line = statusline(&sandbox, &payload);
    assert!(
        line.starts_with("marshal: weak -> haiku-general | today 1/1 followed (100%), saved $"),
        "{line}"
    );
    assert!(line.contains(" | 5h 91% (resets ") && line.ends_with(" · 7d 33%"), "{line}");
    let snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(sandbox.state_dir().join("rate-limits.json")).unwrap())
            .unwrap();
    assert_eq!(snapshot["five_hour"]["used_percentage"], 91.2);
    // Without rate limits (an API-key session) the windows are left out; garbage in, a plain line out.
    assert!(!statusline(&sandbox, &serde_json::json!({"session_id": session})).contains("5h"));
    let garbage = statusline(&sandbox, &serde_json::json!("not an object"));
    assert!(garbage.starts_with("marshal: weak -> haiku-general | today 1/1"), "{garbage}");

    // The next hard prompt, with the 5-hour window at 91%, is routed a tier down; one marked
    // #critical keeps its tier.
    const HARD: &str = "design the architecture for multi-region failover of the payments service";
    let api = scripted_api(MainModel::Answers);
    sandbox.claude_p(&api, HARD, &[]).result();
    let text = api.requests()[0].message_text();
    assert!(text.contains("subagent_type: \"marshal:sonnet-general\" (base tier"), "{text}");
    let critical = scripted_api(MainModel::Answers);
    sandbox.claude_p(&critical, &format!("{HARD} #critical"), &[]).result();
    assert!(critical.requests()[0]
        .message_text()
        .contains("subagent_type: \"marshal:opus-general\" (strong tier"));
    let routes = crate::support::of_kind(&sandbox.ledger(), "route").into_iter().cloned().collect::<Vec<_>>();
    let stepped = &routes[routes.len() - 2];
    assert_eq!(stepped["tier"], "base");
    assert!(
        stepped["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("budget: the 5-hour window is 91% used")),
        "{stepped}"
    );
}

#[test]
fn install_offers_the_status_line_and_never_replaces_one() {
    let sandbox = Sandbox::installed();
    let settings_path = sandbox.home.join(".claude/settings.json");
    let binaries = crate::support::built_binaries_dir();
    let out = sandbox.install_sh(&["--binaries", binaries.to_str().unwrap(), "--statusline"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("Status line set in"), "{said}");
    let settings: Value = serde_json::from_str(&std::fs::read_to_string(&settings_path).unwrap()).unwrap();
    let command = settings["statusLine"]["command"].as_str().unwrap().to_string();
    assert!(
        command.ends_with("/bin/marshal statusline") && command.starts_with(sandbox.plugin.to_str().unwrap()),
        "{command}"
    );
    assert!(settings["enabledPlugins"].is_object(), "Claude Code's own keys are kept: {settings}");
    // Claude Code still reads the settings.
    let api = scripted_api(MainModel::Answers);
    sandbox.claude_p(&api, CHORE, &[]).result();

    // A status line of the user's own is never replaced.
    let mine = std::fs::read_to_string(&settings_path).unwrap().replace(&command, "my-own-status");
    std::fs::write(&settings_path, &mine).unwrap();
    let out = sandbox.install_sh(&["--binaries", binaries.to_str().unwrap(), "--statusline"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already set"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&settings_path).unwrap()).unwrap();
    assert_eq!(after["statusLine"]["command"], "my-own-status");
    // Without the option, install only mentions it.
    let out = sandbox.install_sh(&["--binaries", binaries.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Optional: ./install.sh --statusline"));

    // Uninstall removes marshal's status line, not one of the user's.
    std::fs::write(
        &settings_path,
        std::fs::read_to_string(&settings_path).unwrap().replace("my-own-status", &command),
    )
    .unwrap();
    let out = sandbox.install_sh(&["--uninstall"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Status line removed from"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&settings_path).unwrap()).unwrap();
    assert!(after.get("statusLine").is_none(), "{after}");
}

#[test]
fn the_today_command_brings_compliance_and_savings_into_the_session() {
    let sandbox = Sandbox::installed();
    let followed = scripted_api(MainModel::CallsAgent("marshal:haiku-general".into()));
    sandbox.claude_p(&followed, CHORE, &[]).result();
    let api = scripted_api(MainModel::Answers);
    sandbox.claude_p(&api, "/marshal:today", &[]).result();
    let text = api.requests()[0].message_text();
    assert!(text.contains("marshal compliance report: 1 routed turns"), "{text}");
    assert!(text.contains("Compliance: 100.0%  (followed 1, deviated 0, ignored 0"), "{text}");
    assert!(text.contains("Savings") && text.contains("saved $"), "{text}");
    assert!(!text.contains("marshal routing: delegate"), "a slash command is never routed: {text}");
}
