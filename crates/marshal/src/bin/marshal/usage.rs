//! `marshal usage`: tokens, cost and savings from Claude Code's transcripts, joined to the
//! ledger (marshal_core::usage), rendered as tables or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use marshal_core::config::{self, ConfigEnv};
use marshal_core::report::Filter;
use marshal_core::usage::{self, Bucket, LedgerIndex, UsageInputs, UsageReport};
use serde_json::{json, Value};

use crate::render::table;
use crate::report::PeriodArgs;

#[derive(Args)]
pub struct UsageArgs {
    #[command(flatten)]
    period: PeriodArgs,
    /// A Claude Code folder holding projects/ (repeatable). Default: CLAUDE_CONFIG_DIR (commas
    /// separate several), else ~/.config/claude and ~/.claude.
    #[arg(long = "claude-dir", value_name = "DIR")]
    claude_dirs: Vec<PathBuf>,
    /// A marshal ledger to join (repeatable). Default: this machine's.
    #[arg(long = "ledger", value_name = "PATH")]
    ledgers: Vec<PathBuf>,
    /// Print JSON (schema in the README) instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(args: UsageArgs) -> Result<()> {
    let now = Utc::now();
    let filter = args.period.filter(now)?;
    if let Some(missing) = args.claude_dirs.iter().find(|dir| !dir.is_dir()) {
        bail!("{} is not a folder (a folder given with --claude-dir must exist)", missing.display());
    }
    if let Some(missing) = args.ledgers.iter().find(|path| !path.exists()) {
        bail!("no ledger at {} (a file given with --ledger must exist)", missing.display());
    }
    let claude_dirs =
        if args.claude_dirs.is_empty() { default_claude_dirs() } else { args.claude_dirs.clone() };
    if claude_dirs.is_empty() {
        bail!("no Claude Code folder: set HOME or CLAUDE_CONFIG_DIR, or pass --claude-dir DIR");
    }
    let ledgers = if args.ledgers.is_empty() {
        crate::report::default_ledger().into_iter().collect()
    } else {
        args.ledgers.clone()
    };
    let (report, missing) = compute(&claude_dirs, &ledgers, &filter)?;
    let source = Source { claude_dirs: &claude_dirs, missing: &missing, ledgers: &ledgers };
    let out = if args.json {
        let mut text = serde_json::to_string_pretty(&json_value(&report, &source))?;
        text.push('\n');
        text
    } else {
        text(&report, &source)
    };
    crate::write_stdout(&out)
}

/// Reads the transcripts under `claude_dirs`, joined to `ledgers`; also names the folders that
/// had no `projects/`.
pub fn compute(
    claude_dirs: &[PathBuf],
    ledgers: &[PathBuf],
    filter: &Filter,
) -> Result<(UsageReport, Vec<PathBuf>)> {
    let ledger = LedgerIndex::read(ledgers)?;
    // The user's own settings only: prices and the strong tier's model are not a project's to set.
    let (config, _) = config::load(&ConfigEnv::from_process(None));
    let strong_model = config.models.get(marshal_core::agents::Tier::Strong).to_string();
    let (files, missing) = usage::find_transcripts(claude_dirs);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let inputs =
        UsageInputs { ledger: &ledger, prices: &config.prices, strong_model: &strong_model, filter, threads };
    Ok((usage::usage_report(&files, &inputs), missing))
}

/// `CLAUDE_CONFIG_DIR`, else the folders Claude Code uses by default that exist (`~/.claude`
/// named even when it does not, so the "nothing found" message can say where it looked).
pub fn default_claude_dirs() -> Vec<PathBuf> {
    let configured = marshal_core::env::claude_config_dirs();
    if !configured.is_empty() {
        return configured;
    }
    let Some(home) = marshal_core::env::home() else { return Vec::new() };
    let xdg = home.join(".config").join("claude");
    let mut dirs = Vec::new();
    if xdg.join("projects").is_dir() {
        dirs.push(xdg);
    }
    dirs.push(home.join(".claude"));
    dirs
}

struct Source<'a> {
    claude_dirs: &'a [PathBuf],
    missing: &'a [PathBuf],
    ledgers: &'a [PathBuf],
}

pub fn bucket_json(b: &Bucket) -> Value {
    json!({
        "input_tokens": b.input_tokens,
        "output_tokens": b.output_tokens,
        "cache_creation_input_tokens": b.cache_creation_input_tokens,
        "cache_read_input_tokens": b.cache_read_input_tokens,
        "requests": b.requests,
        "cost_usd": round_usd(b.cost_usd),
        "unpriced_requests": b.unpriced_requests,
    })
}

/// Cents are not enough for one request (a haiku call costs a hundredth of a cent): keep
/// micro-dollars, and drop float noise beyond them.
pub fn round_usd(usd: f64) -> f64 {
    (usd * 1e6).round() / 1e6
}

pub fn buckets_json(map: &BTreeMap<String, Bucket>) -> Value {
    Value::Object(map.iter().map(|(k, b)| (k.clone(), bucket_json(b))).collect())
}

fn time_json(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |at| json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

pub fn savings_json(s: &usage::Savings) -> Value {
    let by_outcome: serde_json::Map<String, Value> = s
        .by_outcome
        .iter()
        .map(|(outcome, c)| {
            (
                outcome.clone(),
                json!({
                    "turns": c.turns,
                    "actual_cost_usd": round_usd(c.actual_cost_usd),
                    "baseline_cost_usd": round_usd(c.baseline_cost_usd),
                    "saved_usd": round_usd(c.saved_usd),
                }),
            )
        })
        .collect();
    json!({
        "baseline_model": s.baseline_model,
        "baseline_cost_usd": round_usd(s.baseline_cost_usd),
        "actual_cost_usd": round_usd(s.actual_cost_usd),
        "saved_usd": round_usd(s.saved_usd),
        "saved_fraction": s.saved_fraction.map(|f| (f * 1e6).round() / 1e6),
        "by_outcome": by_outcome,
        "missed_usd_per_week": s.missed_usd_per_week.map(round_usd),
    })
}

fn json_value(report: &UsageReport, source: &Source) -> Value {
    json!({
        "schema": 1,
        "claude_dirs": source.claude_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "ledgers": source.ledgers.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "files": report.files,
        "first": time_json(report.first),
        "last": time_json(report.last),
        "by_model": buckets_json(&report.by_model),
        "by_tier": buckets_json(&report.by_tier),
        "by_agent": buckets_json(&report.by_agent),
        "by_outcome": buckets_json(&report.by_outcome),
        "by_day": buckets_json(&report.by_day),
        "by_project": buckets_json(&report.by_project),
        "total": bucket_json(&report.total),
        "savings": savings_json(&report.savings),
        "duplicates": report.duplicates,
        "unreadable_lines": report.unreadable_lines,
        "errors": report.errors,
    })
}

/// `$12.34`; below a dollar four decimals (`$0.0042`: one request costs a fraction of a cent).
pub fn usd(amount: f64) -> String {
    if amount == 0.0 {
        "$0".to_string()
    } else if amount.abs() >= 1.0 {
        format!("${amount:.2}")
    } else {
        format!("${amount:.4}")
    }
}

/// 1234567 -> "1,234,567".
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bucket_row(name: &str, b: &Bucket) -> Vec<String> {
    let cost = if b.unpriced_requests > 0 { format!("{} *", usd(b.cost_usd)) } else { usd(b.cost_usd) };
    vec![
        name.to_string(),
        count(b.requests),
        count(b.input_tokens),
        count(b.output_tokens),
        count(b.cache_creation_input_tokens),
        count(b.cache_read_input_tokens),
        cost,
    ]
}

const HEADERS: [&str; 7] = ["", "requests", "input", "output", "cache write", "cache read", "cost"];
/// Rows shown per table before the rest is summed into one line.
const SHOWN: usize = 12;

fn bucket_table(out: &mut String, heading: &str, map: &BTreeMap<String, Bucket>, newest_first: bool) {
    let _ = writeln!(out, "\n{heading}");
    let mut entries: Vec<(&String, &Bucket)> = map.iter().collect();
    if newest_first {
        entries.reverse();
    } else {
        entries.sort_by(|a, b| {
            b.1.cost_usd.total_cmp(&a.1.cost_usd).then(b.1.total_tokens().cmp(&a.1.total_tokens()))
        });
    }
    let mut rows: Vec<Vec<String>> = entries.iter().take(SHOWN).map(|(k, b)| bucket_row(k, b)).collect();
    if entries.len() > SHOWN {
        let mut rest = Bucket::default();
        for (_, b) in &entries[SHOWN..] {
            rest.input_tokens += b.input_tokens;
            rest.output_tokens += b.output_tokens;
            rest.cache_creation_input_tokens += b.cache_creation_input_tokens;
            rest.cache_read_input_tokens += b.cache_read_input_tokens;
            rest.requests += b.requests;
            rest.cost_usd += b.cost_usd;
            rest.unpriced_requests += b.unpriced_requests;
        }
        rows.push(bucket_row(&format!("({} more)", entries.len() - SHOWN), &rest));
    }
    let mut headers = HEADERS;
    headers[0] = heading.trim_start_matches("by ");
    out.push_str(&table(&headers, &rows));
}

fn text(report: &UsageReport, source: &Source) -> String {
    let mut out = String::new();
    let dirs: Vec<String> = source.claude_dirs.iter().map(|d| d.display().to_string()).collect();
    let files = if report.files == 1 {
        "1 transcript file".to_string()
    } else {
        format!("{} transcript files", report.files)
    };
    let _ = writeln!(out, "marshal usage: {files} in {}", dirs.join(", "));
    for dir in source.missing {
        let _ = writeln!(out, "  (no projects/ folder in {})", dir.display());
    }
    if report.total.requests == 0 {
        out.push_str("\nNo API responses match.\n");
        return out;
    }
    if let (Some(first), Some(last)) = (report.first, report.last) {
        let _ = writeln!(
            out,
            "period: {} to {} (UTC)",
            first.format("%Y-%m-%d %H:%M"),
            last.format("%Y-%m-%d %H:%M")
        );
    }
    out.push('\n');
    out.push_str(&table(&HEADERS, &[bucket_row("total", &report.total)]));
    bucket_table(&mut out, "by tier", &report.by_tier, false);
    bucket_table(&mut out, "by model", &report.by_model, false);
    bucket_table(&mut out, "by agent", &report.by_agent, false);
    bucket_table(&mut out, "by outcome", &report.by_outcome, false);
    bucket_table(&mut out, "by project", &report.by_project, false);
    bucket_table(&mut out, "by day", &report.by_day, true);
    out.push_str(&savings_text(report));
    if report.total.unpriced_requests > 0 {
        out.push_str("\n* some responses are from models with no known price: their tokens are counted, their cost is not (add them under \"prices\" in ~/.claude/marshal.json).\n");
    }
    if report.duplicates > 0 {
        let _ = writeln!(
            out,
            "\nCounted once: {} duplicate lines of a response already counted.",
            count(report.duplicates)
        );
    }
    if report.unreadable_lines > 0 {
        let _ = writeln!(
            out,
            "Skipped: {} usage lines that could not be read (or had no time stamp).",
            count(report.unreadable_lines)
        );
    }
    if !report.errors.is_empty() {
        for error in &report.errors {
            let _ = writeln!(out, "  could not read {error}");
        }
    }
    out
}

pub fn savings_text(report: &UsageReport) -> String {
    let s = &report.savings;
    let mut out = String::from("\nSavings\n");
    if s.by_outcome.is_empty() {
        out.push_str("  No routed turn in these transcripts (is marshal installed, and is its ledger the one read?).\n");
        return out;
    }
    let fraction = s.saved_fraction.map(|f| format!(" ({:.1}%)", f * 100.0)).unwrap_or_default();
    let baseline = if s.baseline_model.contains(", ") {
        format!("each session's main model ({})", s.baseline_model)
    } else {
        s.baseline_model.clone()
    };
    let _ = writeln!(
        out,
        "  Routed turns cost {}; the same tokens on {} would have cost {}: saved {}{}.",
        usd(s.actual_cost_usd),
        baseline,
        usd(s.baseline_cost_usd),
        usd(s.saved_usd),
        fraction
    );
    let rows: Vec<Vec<String>> = s
        .by_outcome
        .iter()
        .map(|(outcome, c)| {
            vec![
                outcome.clone(),
                count(c.turns),
                usd(c.actual_cost_usd),
                usd(c.baseline_cost_usd),
                usd(c.saved_usd),
                if c.turns > 0 { usd(c.actual_cost_usd / c.turns as f64) } else { String::new() },
            ]
        })
        .collect();
    out.push_str(&table(&["outcome", "turns", "cost", "baseline", "saved", "cost per turn"], &rows));
    if let Some(missed) = s.missed_usd_per_week {
        let _ = writeln!(
            out,
            "  What compliance is worth: deviated and ignored turns, had they been followed, would have saved about {} per week more.",
            usd(missed)
        );
    }
    out
}
