use super::*;

use serde_json::json;

/// A Claude Code folder in a temp dir, written line by line.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("claude");
        Fixture { _tmp: tmp, dir }
    }

    fn append(&self, relative: &str, lines: &[serde_json::Value]) {
        let path = self.dir.join("projects").join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }

    fn write_raw(&self, relative: &str, text: &str) {
        let path = self.dir.join("projects").join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn report(&self, ledger: &LedgerIndex, filter: &Filter) -> UsageReport {
        let (files, missing) = find_transcripts(std::slice::from_ref(&self.dir));
        assert!(missing.is_empty());
        let prices = PriceBook::default();
        usage_report(
            &files,
            &UsageInputs { ledger, prices: &prices, strong_model: "opus", filter, threads: 2 },
        )
    }
}

fn user(prompt: &str, content: &str, ts: &str) -> serde_json::Value {
    json!({"type":"user","promptId":prompt,"sessionId":"s1","cwd":"/work/p","timestamp":ts,
        "message":{"role":"user","content":content}})
}

fn response(
    id: Option<&str>,
    request: Option<&str>,
    model: &str,
    ts: &str,
    input: u64,
    output: u64,
) -> serde_json::Value {
    let mut line = json!({"type":"assistant","sessionId":"s1","cwd":"/work/p","timestamp":ts,
        "message":{"model":model,"content":[{"type":"text","text":"ok"}],
            "usage":{"input_tokens":input,"output_tokens":output}}});
    if let Some(id) = id {
        line["message"]["id"] = json!(id);
    }
    if let Some(request) = request {
        line["requestId"] = json!(request);
    }
    line
}

const T0: &str = "2026-11-20T10:00:00.000Z";
const T1: &str = "2026-11-20T10:00:01.000Z";
const T2: &str = "2026-11-20T10:00:02.000Z";

fn tokens_of(bucket: Option<&Bucket>) -> (u64, u64, u64) {
    bucket.map_or((0, 0, 0), |b| (b.input_tokens, b.output_tokens, b.requests))
}

#[test]
fn duplicates_count_once_as_their_fullest_line_as_ccusage_counts_them() {
    let fx = Fixture::new();
    let opus = "claude-opus-4-5";
    fx.append(
        "-work-p/s1.jsonl",
        &[
            // Same id and requestId: one response, its line with the most tokens.
            response(Some("m1"), Some("r1"), opus, T0, 100, 1),
            response(Some("m1"), Some("r1"), opus, T1, 100, 20),
            response(Some("m1"), Some("r1"), opus, T2, 100, 3),
            // No requestId: same id and timestamp is one response, another timestamp another.
            response(Some("m2"), None, opus, T0, 1000, 2),
            response(Some("m2"), None, opus, T0, 1000, 2),
            response(Some("m2"), None, opus, T1, 1000, 2),
            // Same id, another requestId: two responses.
            response(Some("m3"), Some("r3"), opus, T0, 10_000, 0),
            response(Some("m3"), Some("r4"), opus, T0, 10_000, 0),
            // No id at all: always counted.
            response(None, Some("r5"), opus, T0, 100_000, 0),
            response(None, Some("r5"), opus, T0, 100_000, 0),
        ],
    );
    // The same response in a subagent's transcript, fuller there: that line wins.
    fx.append("-work-p/s1/subagents/agent-a1.jsonl", &[response(Some("m1"), Some("r1"), opus, T2, 100, 50)]);
    let report = fx.report(&LedgerIndex::default(), &Filter::default());
    assert_eq!(tokens_of(report.by_model.get(opus)), (222_100, 54, 7));
    assert_eq!(report.duplicates, 4);
    assert_eq!(report.files, 2);
}

#[test]
fn work_belongs_to_its_prompt_its_agent_and_the_routed_turn() {
    let fx = Fixture::new();
    fx.append(
        "-work-p/s1.jsonl",
        &[
            user("p1", "rename foo", T0),
            response(Some("m1"), Some("r1"), "claude-opus-4-5", T0, 100, 10),
            // A background agent's notification is part of the turn that started the agent.
            user("p2", "<task-notification>\n<task-id>a1</task-id>", T1),
            response(Some("m2"), Some("r2"), "claude-opus-4-5", T1, 100, 10),
            user("p3", "what time is it", T2),
            response(Some("m3"), Some("r3"), "claude-opus-4-5", T2, 100, 10),
        ],
    );
    fx.append(
        "-work-p/s1/subagents/agent-a1.jsonl",
        &[user("p1", "do it", T0), response(Some("m4"), Some("r4"), "claude-haiku-4-5", T1, 1000, 100)],
    );
    fx.write_raw("-work-p/s1/subagents/agent-a1.meta.json", r#"{"agentType":"marshal:haiku-general"}"#);
    let mut ledger = LedgerIndex::default();
    ledger.add(ledger::Record::new(
        T0.into(),
        "s1".into(),
        Some("p1".into()),
        RecordBody::Route {
            mode: Mode::Directive,
            project: Some("/work/p".into()),
            agent: "haiku-general".into(),
            subagent_type: "marshal:haiku-general".into(),
            tier: Tier::Weak,
            model: "haiku".into(),
            confidence: 0.9,
            reasons: vec![],
            prompt_chars: 10,
            task: "chore".into(),
            score: 2,
            mode_reason: String::new(),
            prompt: None,
        },
    ));
    let report = fx.report(&ledger, &Filter::default());
    assert_eq!(tokens_of(report.by_agent.get("main")), (300, 30, 3));
    assert_eq!(tokens_of(report.by_agent.get("haiku-general")), (1000, 100, 1));
    // p1's own response, the notification turn's and the subagent's are the routed turn's.
    assert_eq!(tokens_of(report.by_tier.get("weak")), (1200, 120, 3));
    assert_eq!(tokens_of(report.by_tier.get("unrouted")), (100, 10, 1));
    assert_eq!(tokens_of(report.by_outcome.get("open")), (1200, 120, 3), "no outcome record yet");
    assert_eq!(tokens_of(report.by_project.get("/work/p")), (1300, 130, 4));
    assert_eq!(report.by_day.keys().count(), 1);
    assert_eq!(tokens_of(Some(&report.total)), (1300, 130, 4));

    // Savings: the routed turn on its session's main model (opus 4.5: $5 in, $25 out per
    // million) against what it cost (the subagent on haiku 4.5: $1 in, $5 out).
    let actual = (200.0 * 5.0 + 20.0 * 25.0 + 1000.0 * 1.0 + 100.0 * 5.0) / 1e6;
    let baseline = (1200.0 * 5.0 + 120.0 * 25.0) / 1e6;
    let savings = &report.savings;
    assert_eq!(savings.baseline_model, "claude-opus-4-5");
    assert!((savings.actual_cost_usd - actual).abs() < 1e-12, "{savings:?}");
    assert!((savings.baseline_cost_usd - baseline).abs() < 1e-12, "{savings:?}");
    assert!((savings.saved_usd - (baseline - actual)).abs() < 1e-12);
    assert_eq!(savings.by_outcome["open"].turns, 1);
}

fn outcome_record(session: &str, prompt: &str, tier: Tier, outcome: Outcome, mode: Mode) -> ledger::Record {
    ledger::Record::new(
        T0.into(),
        session.into(),
        Some(prompt.into()),
        RecordBody::Outcome {
            mode,
            project: None,
            recommended: "haiku-general".into(),
            tier,
            model: "haiku".into(),
            outcome,
            actual: None,
            called: vec![],
            closed_by: ledger::ClosedBy::Stop,
            task: String::new(),
            unenforced: None,
            enforcement: ledger::Enforcement::default(),
            escalations: 0,
        },
    )
}

#[test]
fn orchestrated_children_join_their_turn_through_the_ledger() {
    let fx = Fixture::new();
    // The child's own session: a main transcript of its own, in the project's folder.
    fx.append("-work-p/child-1.jsonl", &[response(Some("m1"), Some("r1"), "claude-sonnet-4-5", T0, 50, 5)]);
    let mut ledger = LedgerIndex::default();
    ledger.add(ledger::Record::new(
        T0.into(),
        "parent".into(),
        Some("p9".into()),
        RecordBody::Attempt {
            number: 1,
            tier: Tier::Base,
            agent: "sonnet-general".into(),
            subagent_type: "marshal:sonnet-general".into(),
            model: "sonnet".into(),
            status: crate::orchestrate::AttemptStatus::Succeeded,
            exit_code: Some(0),
            api_error_status: None,
            duration_ms: 10,
            spawned_after_us: 1,
            output: "x".into(),
            child_session: Some("child-1".into()),
        },
    ));
    ledger.add(outcome_record("parent", "p9", Tier::Base, Outcome::Followed, Mode::Orchestrate));
    let report = fx.report(&ledger, &Filter::default());
    assert_eq!(tokens_of(report.by_outcome.get("orchestrated")), (50, 5, 1));
    assert_eq!(tokens_of(report.by_tier.get("base")), (50, 5, 1));
    assert_eq!(tokens_of(report.by_agent.get("sonnet-general")), (50, 5, 1));
    // --session names the parent session: its children's work is part of it.
    let parent = Filter { session: Some("parent".into()), ..Filter::default() };
    assert_eq!(fx.report(&ledger, &parent).total.requests, 1);
    let other = Filter { session: Some("other".into()), ..Filter::default() };
    assert_eq!(fx.report(&ledger, &other).total.requests, 0);
    // No main model is known for the parent (it never answered): the strong tier's model is
    // the baseline.
    assert_eq!(report.savings.baseline_model, "opus");
}

#[test]
fn what_compliance_is_worth_compares_deviated_turns_with_followed_ones() {
    let fx = Fixture::new();
    // Two turns of one session over two days: one followed (work on haiku), one deviated
    // (work on opus, like the main model).
    fx.append(
        "-work-p/s1.jsonl",
        &[
            user("p1", "rename foo", "2026-11-18T10:00:00Z"),
            response(Some("m1"), Some("r1"), "claude-opus-4-5", "2026-11-18T10:00:00Z", 1_000_000, 0),
            user("p2", "rename bar", "2026-11-20T10:00:00Z"),
            response(Some("m2"), Some("r2"), "claude-opus-4-5", "2026-11-20T10:00:00Z", 1_000_000, 0),
        ],
    );
    fx.append(
        "-work-p/s1/subagents/agent-a.jsonl",
        &[
            user("p1", "x", "2026-11-18T10:00:01Z"),
            response(Some("m3"), Some("r3"), "claude-haiku-4-5", "2026-11-18T10:00:01Z", 1_000_000, 0),
        ],
    );
    fx.append(
        "-work-p/s1/subagents/agent-b.jsonl",
        &[
            user("p2", "x", "2026-11-20T10:00:01Z"),
            response(Some("m4"), Some("r4"), "claude-opus-4-5", "2026-11-20T10:00:01Z", 1_000_000, 0),
        ],
    );
    let mut ledger = LedgerIndex::default();
    ledger.add(outcome_record("s1", "p1", Tier::Weak, Outcome::Followed, Mode::Directive));
    ledger.add(outcome_record("s1", "p2", Tier::Weak, Outcome::Deviated, Mode::Directive));
    let report = fx.report(&ledger, &Filter::default());
    let s = &report.savings;
    // Followed: $5 + $1 against $10 baseline, 40% saved. Deviated: $10 against $10, nothing.
    let followed = s.by_outcome["followed"];
    assert!(
        (followed.actual_cost_usd - 6.0).abs() < 1e-9 && (followed.baseline_cost_usd - 10.0).abs() < 1e-9
    );
    assert!((s.by_outcome["deviated"].saved_usd).abs() < 1e-9);
    assert!((s.saved_fraction.unwrap() - 0.2).abs() < 1e-9);
    // Had the deviated turn been followed it would have saved 40% of $10 = $4, over a span of
    // 2 days and 1 second: per week, 4 / 2.0000116 * 7.
    let span_days = (2.0 * 86_400.0 + 1.0) / 86_400.0;
    assert!((s.missed_usd_per_week.unwrap() - 4.0 / span_days * 7.0).abs() < 1e-9, "{s:?}");
    // A period filter keeps only the second day.
    let since = Filter { since: Some("2026-11-19T00:00:00Z".parse().unwrap()), ..Filter::default() };
    let later = fx.report(&ledger, &since);
    assert_eq!(later.total.requests, 2);
    assert!(later.savings.missed_usd_per_week.is_none(), "no followed turn in the period to compare with");
}

#[test]
fn unreadable_lines_are_counted_and_lone_surrogates_do_not_lose_a_response() {
    let fx = Fixture::new();
    let good = response(Some("m1"), Some("r1"), "claude-haiku-4-5", T0, 7, 3).to_string();
    let surrogate = good.replace("\"ok\"", "\"\\ud83d ok\"").replace("m1", "m2").replace("r1", "r2");
    let text = format!(
        "{good}\n{surrogate}\n{{\"message\":{{\"usage\":{{\"input_tokens\":\"many\"}}}}}}\nnot json at all\n{}",
        // A torn last line, cut by a crash: never counted.
        &good[..good.len() - 5]
    );
    fx.write_raw("-work-p/s1.jsonl", &text);
    let report = fx.report(&LedgerIndex::default(), &Filter::default());
    assert_eq!(tokens_of(report.by_model.get("claude-haiku-4-5")), (14, 6, 2));
    assert_eq!(report.unreadable_lines, 2, "the bad usage line and the torn one");
}

#[test]
fn a_model_without_a_price_keeps_its_tokens_and_costs_nothing() {
    let fx = Fixture::new();
    fx.append("-work-p/s1.jsonl", &[response(Some("m1"), Some("r1"), "mystery-1", T0, 5, 5)]);
    let report = fx.report(&LedgerIndex::default(), &Filter::default());
    let bucket = report.by_model["mystery-1"];
    assert_eq!((bucket.input_tokens, bucket.unpriced_requests, bucket.cost_usd), (5, 1, 0.0));
}

#[test]
fn missing_folders_are_named_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let (files, missing) = find_transcripts(&[tmp.path().join("nope")]);
    assert!(files.is_empty());
    assert_eq!(missing, vec![tmp.path().join("nope")]);
}
