//! `marshal report`: read ledgers, aggregate (marshal_core::report), render.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::{Args, ValueEnum};
use marshal_core::mode::Mode;
use marshal_core::paths::{self, StateDirEnv};
use marshal_core::report::{self, Filter, Report};
use marshal_core::store::Store;

use crate::render;

/// Which period, session and project a command covers: shared by `report` and `usage`.
#[derive(Args)]
pub struct PeriodArgs {
    /// Only what happened at or after WHEN: a date (2026-11-01), a date-time
    /// (2026-11-01T09:00:00Z), a duration back from now (30m, 12h, 7d, 2w), today or yesterday
    /// (UTC days).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only what happened before WHEN (same forms as --since; a date includes that whole day).
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Only this Claude Code session id (for usage: with its subagents and orchestrated children).
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Only this project directory (exactly as recorded: the session's cwd).
    #[arg(long, value_name = "DIR")]
    project: Option<String>,
}

impl PeriodArgs {
    /// The filter these options describe (no mode).
    pub fn filter(&self, now: DateTime<Utc>) -> Result<Filter> {
        let when = |text: &Option<String>, which: When, option: &str| {
            text.as_deref()
                .map(|w| parse_when(w, now, which))
                .transpose()
                .with_context(|| format!("invalid {option}"))
        };
        Ok(Filter {
            since: when(&self.since, When::Since, "--since")?,
            until: when(&self.until, When::Until, "--until")?,
            session: self.session.clone(),
            project: self.project.clone(),
            mode: None,
        })
    }
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    period: PeriodArgs,
    /// Only turns in this mode.
    #[arg(long, value_enum, value_name = "MODE")]
    mode: Option<ModeArg>,
    /// A ledger to read (repeat to merge several machines' ledgers). Default: this machine's.
    #[arg(long = "ledger", value_name = "PATH")]
    ledgers: Vec<PathBuf>,
    /// Print JSON (schema in the README) instead of tables.
    #[arg(long, conflicts_with_all = ["csv", "html"])]
    json: bool,
    /// Print CSV: one row per slice (overall, mode, recommended, actual, day, project).
    #[arg(long, conflicts_with = "html")]
    csv: bool,
    /// Also write a self-contained HTML page (chart and tables) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Also read Claude Code's transcripts from DIR for cost and savings (repeatable; default as
    /// `marshal usage`: CLAUDE_CONFIG_DIR, else ~/.config/claude and ~/.claude).
    #[arg(long = "claude-dir", value_name = "DIR", conflicts_with = "no_usage")]
    claude_dirs: Vec<PathBuf>,
    /// Leave out cost and savings (read no transcripts).
    #[arg(long)]
    no_usage: bool,
    /// Colour the tables: auto (only on a terminal, and never with NO_COLOR), always, never.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

/// The modes a routed turn can be recorded in.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Directive,
    Orchestrate,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Mode {
        match mode {
            ModeArg::Directive => Mode::Directive,
            ModeArg::Orchestrate => Mode::Orchestrate,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let now = Utc::now();
    let filter = Filter { mode: args.mode.map(Mode::from), ..args.period.filter(now)? };
    // A ledger the user named must exist; only this machine's own may be missing (no turn yet).
    if let Some(missing) = args.ledgers.iter().find(|path| !path.exists()) {
        bail!("no ledger at {} (a file given with --ledger must exist)", missing.display());
    }
    if let Some(bad) = args.claude_dirs.iter().find(|dir| !dir.is_dir()) {
        bail!("{} is not a folder (a folder given with --claude-dir must exist)", bad.display());
    }
    let ledgers = if args.ledgers.is_empty() { vec![default_ledger()?] } else { distinct(&args.ledgers) };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let mut total = Report::default();
    let mut missing = Vec::new();
    for path in &ledgers {
        if !path.exists() {
            missing.push(path.clone());
            continue;
        }
        total.merge(report::read_ledger(path, &filter, threads)?);
    }
    if !missing.is_empty() && missing.len() == ledgers.len() && !args.json && !args.csv {
        return crate::write_stdout(&render::no_ledger_message(&missing));
    }
    let usage = if args.no_usage || args.csv {
        None
    } else {
        let claude_dirs = if args.claude_dirs.is_empty() {
            crate::usage::default_claude_dirs()
        } else {
            args.claude_dirs.clone()
        };
        let (usage, _) = crate::usage::compute(&claude_dirs, &ledgers, &filter)?;
        // No transcripts at all (another machine's ledger, or transcripts long deleted): no
        // cost section rather than a row of zeros.
        (usage.total.requests > 0).then_some(usage)
    };
    let context =
        render::Context { ledgers: &ledgers, missing: &missing, filter: &filter, usage: usage.as_ref() };
    if let Some(html_path) = &args.html {
        let page = render::html(&total, &context, now);
        marshal_core::fsutil::write_atomic(html_path, page.as_bytes())?;
    }
    let out = if args.json {
        render::json(&total, &context)?
    } else if args.csv {
        render::csv(&total)
    } else {
        let mut text = render::text(&total, &context, use_color(args.color));
        if let Some(html_path) = &args.html {
            text.push_str(&format!("\nHTML report written to {}\n", html_path.display()));
        }
        text
    };
    crate::write_stdout(&out)
}

/// The paths in order, each file once (the same ledger named twice would count every turn twice).
pub fn distinct(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for path in paths {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        if !seen.contains(&key) {
            seen.push(key);
            out.push(path.clone());
        }
    }
    out
}

/// This machine's ledger, in the state directory the CLI uses.
pub(crate) fn default_ledger() -> Result<PathBuf> {
    let dir = paths::state_dir_for_cli(&StateDirEnv::from_process())
        .context("no state directory: set MARSHAL_STATE_DIR or HOME, or pass --ledger PATH")?;
    Ok(Store::new(dir).ledger_path())
}

fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !marshal_core::env::no_color() && std::io::stdout().is_terminal(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    Since,
    Until,
}

/// Parses a --since/--until value. A plain date is the start of that day for --since and the
/// end of it (the next midnight, exclusive) for --until.
pub(crate) fn parse_when(text: &str, now: DateTime<Utc>, which: When) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Some(ago) = parse_duration(text) {
        // Years back, at most: a duration that reaches before the calendar marshal can print is
        // a typo, not a period.
        return now
            .checked_sub_signed(ago)
            .filter(|at| at.timestamp() >= 0 && ago >= Duration::zero())
            .with_context(|| format!("'{text}' reaches back before 1970"));
    }
    let today = now.date_naive();
    let named_day = match text {
        "today" => Some(today),
        "yesterday" => today.pred_opt(),
        _ => None,
    };
    if let Some(date) = named_day {
        let day = if which == When::Until { date.succ_opt().unwrap_or(date) } else { date };
        return Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if which == When::Until { date.succ_opt().unwrap_or(date) } else { date };
        return Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    bail!(
        "'{text}' is not a date (2026-11-01), a date-time (2026-11-01T09:00:00Z), a duration (30m, 12h, 7d, 2w), today or yesterday"
    )
}

fn parse_duration(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let amount: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    match unit {
        's' => Duration::try_seconds(amount),
        'm' => Duration::try_minutes(amount),
        'h' => Duration::try_hours(amount),
        'd' => Duration::try_days(amount),
        'w' => Duration::try_weeks(amount),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_forms() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(parse_when("7d", now, When::Since).unwrap(), at("2026-11-14T12:00:00Z"));
        assert_eq!(parse_when("90m", now, When::Since).unwrap(), at("2026-11-21T10:30:00Z"));
        assert_eq!(parse_when("2026-11-01", now, When::Since).unwrap(), at("2026-11-01T00:00:00Z"));
        assert_eq!(parse_when("2026-11-01", now, When::Until).unwrap(), at("2026-11-02T00:00:00Z"));
        assert_eq!(
            parse_when("2026-11-01T09:30:00+01:00", now, When::Since).unwrap(),
            at("2026-11-01T08:30:00Z")
        );
        assert_eq!(parse_when("today", now, When::Since).unwrap(), at("2026-11-21T00:00:00Z"));
        assert_eq!(parse_when("today", now, When::Until).unwrap(), at("2026-11-22T00:00:00Z"));
        assert_eq!(parse_when("yesterday", now, When::Since).unwrap(), at("2026-11-20T00:00:00Z"));
        let err = parse_when("last tuesday", now, When::Since).unwrap_err().to_string();
        assert!(err.contains("not a date"), "{err}");
        assert!(parse_when("7y", now, When::Since).is_err());
        for too_far in ["99999999999d", "300000w", "-5d"] {
            assert!(parse_when(too_far, now, When::Since).is_err(), "{too_far}");
        }
    }
}
