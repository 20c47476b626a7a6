//! `marshal statusline`: one compact line for Claude Code's `statusLine` setting. Claude Code
//! runs it after each message with the session's JSON on stdin (for subscribers with
//! `rate_limits`); it prints the last route of the session, today's compliance and savings, and
//! how full the 5-hour and weekly windows are, and saves the rate-limit snapshot that
//! budget-aware routing reads.
//!
//! It must never get in the way: bounded input, figures of the day recomputed at most once a
//! minute (cached in the state directory), and on any failure a plain `marshal` and exit 0.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Local, TimeZone, Utc};
use clap::Args;
use marshal_core::ledger::{Record, RecordBody};
use marshal_core::paths::{self, StateDirEnv};
use marshal_core::quota::RateLimits;
use marshal_core::report::{self, Filter};
use marshal_core::store::Store;
use serde::{Deserialize, Serialize};

#[derive(Args)]
pub struct StatuslineArgs {
    /// Set this command as Claude Code's status line in ~/.claude/settings.json (only when no
    /// status line is set: an existing one is never replaced).
    #[arg(long)]
    install: bool,
}

/// The most of stdin read: Claude Code's payload is a few kilobytes.
const MAX_INPUT_BYTES: u64 = 1 << 20;
/// The tail of the ledger searched for the session's last route.
const LEDGER_TAIL_BYTES: u64 = 256 * 1024;
/// How long the day's figures are reused before they are computed again.
const CACHE_SECONDS: i64 = 60;

pub fn run(args: StatuslineArgs) -> Result<()> {
    if args.install {
        return install();
    }
    let mut input = Vec::new();
    let _ = std::io::stdin().lock().take(MAX_INPUT_BYTES).read_to_end(&mut input);
    let payload: serde_json::Value = serde_json::from_slice(&input).unwrap_or(serde_json::Value::Null);
    let line = render(&payload, Utc::now()).unwrap_or_else(|_| "marshal".to_string());
    crate::write_stdout(&format!("{line}\n"))
}

/// The day's figures, cached between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Today {
    day: String,
    computed_at: i64,
    followed: u64,
    turns: u64,
    saved_usd: Option<f64>,
}

fn render(payload: &serde_json::Value, now: DateTime<Utc>) -> Result<String> {
    let dir = paths::state_dir_for_cli(&StateDirEnv::from_process()).context("no state directory")?;
    let store = Store::new(dir);
    let limits = RateLimits::from_status_line(payload, now.timestamp());
    if let Some(limits) = &limits {
        // Only into a directory marshal may use (the hooks' own trust rules).
        if marshal_core::fsutil::ensure_private_dir(store.dir()).is_ok()
            && Store::trusted(store.dir()).is_ok()
        {
            let _ = limits.save(&store.rate_limits_path());
        }
    }
    let session = payload.get("session_id").and_then(|s| s.as_str()).unwrap_or_default();
    let mut parts = vec![match last_route(&store.ledger_path(), session) {
        Some((tier, agent)) => format!("marshal: {tier} -> {agent}"),
        None => "marshal: no route yet".to_string(),
    }];
    let today = today(&store, now);
    if today.turns > 0 {
        let mut part = format!(
            "today {}/{} followed ({:.0}%)",
            today.followed,
            today.turns,
            today.followed as f64 * 100.0 / today.turns as f64
        );
        if let Some(saved) = today.saved_usd.filter(|s| *s > 0.0) {
            part.push_str(&format!(", saved {}", crate::usage::usd(saved)));
        }
        parts.push(part);
    }
    if let Some(limits) = limits {
        let mut windows = Vec::new();
        if let Some(w) = limits.five_hour {
            let resets =
                Local.timestamp_opt(w.resets_at, 0).single().map(|t| t.format(" (resets %H:%M)").to_string());
            windows.push(format!("5h {:.0}%{}", w.used_percentage, resets.unwrap_or_default()));
        }
        if let Some(w) = limits.seven_day {
            windows.push(format!("7d {:.0}%", w.used_percentage));
        }
        parts.push(windows.join(" · "));
    }
    Ok(parts.join(" | "))
}

/// The tier and agent of the session's last route, from the end of the ledger.
fn last_route(ledger: &Path, session: &str) -> Option<(String, String)> {
    use std::io::{Seek, SeekFrom};
    let mut file = marshal_core::fsutil::open_regular(ledger, marshal_core::fsutil::Links::Follow).ok()??;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(LEDGER_TAIL_BYTES))).ok()?;
    let mut tail = Vec::new();
    file.take(LEDGER_TAIL_BYTES).read_to_end(&mut tail).ok()?;
    tail.split(|b| *b == b'\n').rev().filter(|line| memchr_route(line)).find_map(|line| {
        let record: Record = serde_json::from_slice(line).ok()?;
        match record.body {
            RecordBody::Route { tier, agent, .. } if session.is_empty() || record.session == session => {
                Some((tier.as_str().to_string(), report::displayable(&agent).into_owned()))
            }
            _ => None,
        }
    })
}

/// Whether a ledger line is a route record (a byte search, before any parsing).
fn memchr_route(line: &[u8]) -> bool {
    const ROUTE: &[u8] = br#""kind":"route""#;
    line.windows(ROUTE.len()).any(|w| w == ROUTE)
}

/// Today's compliance and savings, from the cache when it is fresh.
fn today(store: &Store, now: DateTime<Utc>) -> Today {
    let local_midnight = Local
        .from_local_datetime(&now.with_timezone(&Local).date_naive().and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .map_or(now, |t| t.with_timezone(&Utc));
    let day = now.with_timezone(&Local).format("%Y-%m-%d").to_string();
    let cache_path = store.statusline_cache_path();
    let cached = marshal_core::fsutil::read_capped(&cache_path, 4096, marshal_core::fsutil::Links::Refuse)
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice::<Today>(&bytes).ok());
    if let Some(cached) = cached.filter(|c| c.day == day && now.timestamp() - c.computed_at < CACHE_SECONDS) {
        return cached;
    }
    let mut today = Today { day, computed_at: now.timestamp(), ..Today::default() };
    let filter = Filter { since: Some(local_midnight), ..Filter::default() };
    if let Ok(report) = report::read_ledger(&store.ledger_path(), &filter, 1) {
        today.followed = report.overall.followed;
        today.turns = report.overall.turns();
    }
    if let Ok((usage, _)) =
        crate::usage::compute(&crate::usage::default_claude_dirs(), &[store.ledger_path()], &filter)
    {
        today.saved_usd = Some(usage.savings.saved_usd);
    }
    if Store::trusted(store.dir()).is_ok() {
        if let Ok(text) = serde_json::to_string(&today) {
            let _ = marshal_core::fsutil::write_atomic(&cache_path, text.as_bytes());
        }
    }
    today
}

/// Adds `"statusLine": {"type": "command", "command": "<this marshal> statusline"}` to
/// ~/.claude/settings.json, unless a status line is set. The file is edited as text (the new
/// key goes first), so the user's own formatting and key order are kept.
fn install() -> Result<()> {
    let home = marshal_core::env::home().context("HOME is not set")?;
    let dir =
        marshal_core::env::claude_config_dirs().into_iter().next().unwrap_or_else(|| home.join(".claude"));
    let settings = dir.join("settings.json");
    let exe = std::env::current_exe().context("could not find this marshal binary")?;
    let message = install_into(&settings, &exe)?;
    crate::write_stdout(&format!("{message}\n"))
}

fn install_into(settings: &Path, exe: &Path) -> Result<String> {
    let command = format!("{} statusline", shell_quote(&exe.display().to_string()));
    let entry = serde_json::json!({"type": "command", "command": command, "padding": 0});
    let text = match std::fs::read_to_string(settings) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("could not read {}", settings.display())),
    };
    let new_text = if text.trim().is_empty() {
        format!("{{\n  \"statusLine\": {entry}\n}}\n")
    } else {
        let parsed: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON; fix it first", settings.display()))?;
        let Some(object) = parsed.as_object() else { bail!("{} is not a JSON object", settings.display()) };
        if let Some(existing) = object.get("statusLine") {
            return Ok(format!(
                "A status line is already set in {} ({}); it was left alone. To use marshal's, set its command to: {command}",
                settings.display(),
                existing.get("command").and_then(|c| c.as_str()).unwrap_or("not a command")
            ));
        }
        let open = text.find('{').context("no opening brace")?;
        let rest = &text[open + 1..];
        let separator = if object.is_empty() { "" } else { "," };
        format!("{}{{\n  \"statusLine\": {entry}{separator}{rest}", &text[..open])
    };
    serde_json::from_str::<serde_json::Value>(&new_text)
        .context("the edited settings would not be valid JSON")?;
    if let Some(parent) = settings.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("could not create {}", parent.display()))?;
    }
    marshal_core::fsutil::write_atomic(settings, new_text.as_bytes())?;
    Ok(format!("Status line set in {}: {command}", settings.display()))
}

/// Single quotes for a shell, only when needed.
fn shell_quote(text: &str) -> String {
    if text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_adds_the_status_line_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let settings = dir.path().join(".claude/settings.json");
        let exe = Path::new("/opt/my plugins/bin/marshal");
        // No file yet.
        let said = install_into(&settings, exe).unwrap();
        assert!(said.starts_with("Status line set"), "{said}");
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
        assert_eq!(value["statusLine"]["command"], "'/opt/my plugins/bin/marshal' statusline");
        // An existing file keeps its keys and formatting.
        std::fs::write(&settings, "{\n    \"model\": \"opus\",\n    \"env\": {\"A\": \"1\"}\n}\n").unwrap();
        install_into(&settings, exe).unwrap();
        let text = std::fs::read_to_string(&settings).unwrap();
        assert!(text.contains("    \"model\": \"opus\",\n    \"env\": {\"A\": \"1\"}"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (value["model"].as_str(), value["statusLine"]["type"].as_str()),
            (Some("opus"), Some("command"))
        );
        // A status line of the user's own is left alone.
        let before = std::fs::read_to_string(&settings).unwrap().replace("marshal' statusline", "mine");
        std::fs::write(&settings, &before).unwrap();
        let said = install_into(&settings, exe).unwrap();
        assert!(said.contains("already set") && said.contains("left alone"), "{said}");
        assert_eq!(std::fs::read_to_string(&settings).unwrap(), before);
        // Broken JSON is not touched.
        std::fs::write(&settings, "{ nope").unwrap();
        assert!(install_into(&settings, exe).is_err());
        assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{ nope");
        // An empty object.
        std::fs::write(&settings, "{}").unwrap();
        install_into(&settings, exe).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
        assert!(value["statusLine"].is_object());
    }
}
