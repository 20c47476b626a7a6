//! `marshal statusline`: one compact line for Claude Code's `statusLine` setting. Claude Code
//! runs it after each message with the session's JSON on stdin (for subscribers with
//! `rate_limits`); it prints the last route of the session, today's compliance and savings, and
//! how full the 5-hour and weekly windows are, and saves the rate-limit snapshot that
//! budget-aware routing reads.
//!
//! It must never get in the way: bounded input, figures of the day recomputed at most once a
//! minute (cached in the state directory), and on any failure a plain `marshal` and exit 0.

use std::io::Read;
use std::path::{Path, PathBuf};

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
    #[arg(long, conflicts_with = "uninstall")]
    install: bool,
    /// Remove the status line `--install` added (a status line of your own is left alone).
    #[arg(long)]
    uninstall: bool,
}

/// The most of stdin read: Claude Code's payload is a few kilobytes.
const MAX_INPUT_BYTES: u64 = 1 << 20;
/// The tail of the ledger searched for the session's last route.
const LEDGER_TAIL_BYTES: u64 = 256 * 1024;
/// How long the day's figures are reused before they are computed again.
const CACHE_SECONDS: i64 = 60;

pub fn run(args: StatuslineArgs) -> Result<()> {
    if args.install || args.uninstall {
        let settings = settings_path()?;
        let exe = std::env::current_exe().context("could not find this marshal binary")?;
        let message =
            if args.install { install_into(&settings, &exe)? } else { uninstall_from(&settings, &exe)? };
        return crate::write_stdout(&format!("{message}\n"));
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
        // A window that has already reset says nothing about now.
        let current = |w: &marshal_core::quota::Window| w.resets_at > now.timestamp();
        if let Some(w) = limits.five_hour.filter(current) {
            let resets =
                Local.timestamp_opt(w.resets_at, 0).single().map(|t| t.format(" (resets %H:%M)").to_string());
            windows.push(format!("5h {:.0}%{}", w.used_percentage, resets.unwrap_or_default()));
        }
        if let Some(w) = limits.seven_day.filter(current) {
            windows.push(format!("7d {:.0}%", w.used_percentage));
        }
        if !windows.is_empty() {
            parts.push(windows.join(" · "));
        }
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

fn settings_path() -> Result<PathBuf> {
    let home = marshal_core::env::home().context("HOME is not set")?;
    let dir =
        marshal_core::env::claude_config_dirs().into_iter().next().unwrap_or_else(|| home.join(".claude"));
    Ok(dir.join("settings.json"))
}

/// The status line entry `--install` writes, exactly (so that `--uninstall` can find it).
fn entry_for(exe: &Path) -> (String, String) {
    let command = format!("{} statusline", shell_quote(&exe.display().to_string()));
    let entry = serde_json::json!({"type": "command", "command": command, "padding": 0});
    (command, format!("\"statusLine\": {entry}"))
}

/// Adds `"statusLine": {"type": "command", "command": "<this marshal> statusline"}` to
/// settings.json, unless a status line is set. The file is edited as text (the new key goes
/// first), so the user's own formatting and key order are kept; a link is written through, and
/// the file keeps its permissions.
fn install_into(settings: &Path, exe: &Path) -> Result<String> {
    let (command, entry) = entry_for(exe);
    let text = read_settings(settings)?;
    let new_text = if text.trim().is_empty() {
        format!("{{\n  {entry}\n}}\n")
    } else {
        let parsed: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON; fix it first", settings.display()))?;
        let Some(object) = parsed.as_object() else { bail!("{} is not a JSON object", settings.display()) };
        if let Some(existing) = object.get("statusLine") {
            let theirs = existing.get("command").and_then(|c| c.as_str()).unwrap_or("not a command");
            if theirs.ends_with(" statusline") && theirs.contains("marshal") {
                return Ok(format!(
                    "marshal's status line is already set in {} ({theirs}).",
                    settings.display()
                ));
            }
            return Ok(format!(
                "A status line is already set in {} ({theirs}); it was left alone. To use marshal's, set its command to: {command}",
                settings.display()
            ));
        }
        let open = text.find('{').context("no opening brace")?;
        let rest = &text[open + 1..];
        let separator = if object.is_empty() { "" } else { "," };
        format!("{}{{\n  {entry}{separator}{rest}", &text[..open])
    };
    write_settings(settings, &new_text)?;
    Ok(format!("Status line set in {}: {command}", settings.display()))
}

/// Removes the status line [`install_into`] added: the top-level `statusLine` whose command is
/// this marshal's, cut out of the text (Claude Code may have reformatted the file since), so
/// everything else stays as it is.
fn uninstall_from(settings: &Path, exe: &Path) -> Result<String> {
    let (command, _) = entry_for(exe);
    let text = read_settings(settings)?;
    let parsed: serde_json::Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(_) if text.trim().is_empty() => {
            return Ok(format!("No marshal status line in {}.", settings.display()))
        }
        Err(_) => bail!("{} is not valid JSON; remove marshal's \"statusLine\" yourself", settings.display()),
    };
    let ours =
        parsed.get("statusLine").and_then(|s| s.get("command")).and_then(|c| c.as_str()) == Some(&command);
    if !ours {
        return Ok(format!("No marshal status line in {}.", settings.display()));
    }
    let (start, end) =
        top_level_member(&text, "statusLine").context("could not find \"statusLine\" in the text")?;
    let new_text = format!("{}{}", &text[..start], &text[end..]);
    let mut expected = parsed.clone();
    if let Some(object) = expected.as_object_mut() {
        object.remove("statusLine");
    }
    if serde_json::from_str::<serde_json::Value>(&new_text).ok() != Some(expected) {
        bail!(
            "removing the status line from {} would change more than it; remove \"statusLine\" yourself",
            settings.display()
        );
    }
    write_settings(settings, &new_text)?;
    Ok(format!("Status line removed from {}.", settings.display()))
}

/// The byte range of a top-level member `"key": value` of a JSON object, with the comma that
/// separates it from its neighbour (the one after it, or for the last member the one before).
fn top_level_member(text: &str, key: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    let mut member_start = None;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let end = string_end(bytes, i)?;
                if depth == 1 && member_start.is_none() && &text[i + 1..end] == key {
                    let after = text[end + 1..].trim_start();
                    if after.starts_with(':') {
                        member_start = Some(i);
                    }
                }
                i = end;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                if depth == 1 {
                    if let Some(start) = member_start {
                        // The last member: take the comma before it instead.
                        let before = text[..start].trim_end();
                        // (Alone in the object: the space before it too, leaving `{}`.)
                        let start = if before.ends_with(',') { before.len() - 1 } else { before.len() };
                        let end = text[..i].trim_end().len();
                        return Some((start, end));
                    }
                }
                depth = depth.checked_sub(1)?;
            }
            b',' if depth == 1 => {
                if let Some(start) = member_start {
                    // Up to the next member, so its indentation takes the removed one's place.
                    let next = i + 1 + (text[i + 1..].len() - text[i + 1..].trim_start().len());
                    return Some((start, next));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the quote that closes the string opening at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn read_settings(settings: &Path) -> Result<String> {
    match std::fs::read_to_string(settings) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(err) => Err(err).with_context(|| format!("could not read {}", settings.display())),
    }
}

/// Writes through a link (dotfiles often link settings.json), keeping the file's permissions.
fn write_settings(settings: &Path, text: &str) -> Result<()> {
    serde_json::from_str::<serde_json::Value>(text).context("the edited settings would not be valid JSON")?;
    let target = std::fs::canonicalize(settings).unwrap_or_else(|_| settings.to_path_buf());
    let mode = std::fs::metadata(&target).ok().map(|m| m.permissions());
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("could not create {}", parent.display()))?;
    }
    marshal_core::fsutil::write_atomic(&target, text.as_bytes())?;
    if let Some(mode) = mode {
        std::fs::set_permissions(&target, mode)
            .with_context(|| format!("could not keep the permissions of {}", target.display()))?;
    }
    Ok(())
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
        // An empty object; a second run knows it is marshal's; uninstall gives the file back.
        std::fs::write(&settings, "{}").unwrap();
        install_into(&settings, exe).unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
        assert!(value["statusLine"].is_object());
        assert!(install_into(&settings, exe).unwrap().starts_with("marshal's status line is already set"));
        uninstall_from(&settings, exe).unwrap();
        assert_eq!(std::fs::read_to_string(&settings).unwrap().trim(), "{}");
    }

    #[test]
    fn install_writes_through_a_link_keeps_permissions_and_uninstall_restores_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles/settings.json");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        let original = "{\n  \"model\": \"opus\"\n}\n";
        std::fs::write(&real, original).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join(".claude/settings.json");
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let exe = Path::new("/opt/marshal/bin/marshal");
        install_into(&link, exe).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert!(std::fs::read_to_string(&real).unwrap().contains("\"statusLine\""));
        assert_eq!(std::fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(
            uninstall_from(&link, exe).unwrap(),
            format!("Status line removed from {}.", link.display())
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), original);
        assert!(uninstall_from(&link, exe).unwrap().starts_with("No marshal status line"));
    }

    #[test]
    fn uninstall_finds_the_status_line_however_the_file_was_reformatted() {
        let dir = tempfile::tempdir().unwrap();
        let settings = dir.path().join("settings.json");
        let exe = Path::new("/opt/marshal/bin/marshal");
        let ours = r#"{"type": "command", "command": "/opt/marshal/bin/marshal statusline", "padding": 0}"#;
        for (before, after) in [
            // First, middle and last member; Claude Code's own two-space layout; strings holding braces.
            (
                format!("{{\n  \"statusLine\": {ours},\n  \"model\": \"opus\"\n}}\n"),
                "{\n  \"model\": \"opus\"\n}\n",
            ),
            (
                format!("{{\n  \"a\": \"x}}\",\n  \"statusLine\": {ours},\n  \"b\": [1, {{\"c\": 2}}]\n}}"),
                "{\n  \"a\": \"x}\",\n  \"b\": [1, {\"c\": 2}]\n}",
            ),
            (
                format!("{{\n  \"model\": \"opus\",\n  \"statusLine\": {ours}\n}}"),
                "{\n  \"model\": \"opus\"\n}",
            ),
            (format!("{{\"statusLine\":{ours}}}"), "{}"),
        ] {
            std::fs::write(&settings, &before).unwrap();
            uninstall_from(&settings, exe).unwrap();
            assert_eq!(std::fs::read_to_string(&settings).unwrap(), after, "from {before}");
        }
        // Someone else's status line stays.
        let theirs = r#"{"statusLine": {"type": "command", "command": "starship statusline"}}"#;
        std::fs::write(&settings, theirs).unwrap();
        assert!(uninstall_from(&settings, exe).unwrap().starts_with("No marshal status line"));
        assert_eq!(std::fs::read_to_string(&settings).unwrap(), theirs);
    }
}
