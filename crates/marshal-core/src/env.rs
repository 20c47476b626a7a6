//! Every environment variable marshal reads, one small function each. No other module calls
//! `std::env::var`: what a variable means, and how it is spelled, is here.
//!
//! Values are read, never evaluated. A `MARSHAL_*` name marshal does not know (a typo such as
//! `MARSHAL_ENFORC`) is reported by [`unknown_marshal_variables`] instead of being ignored.

#![allow(clippy::disallowed_methods)] // the one module that reads the environment

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// The `MARSHAL_*` variables that are settings: the configuration's last layer
/// ([`crate::config`]) reads them.
pub const SETTING_VARIABLES: &[&str] = &[
    "MARSHAL_MODEL_WEAK",
    "MARSHAL_MODEL_BASE",
    "MARSHAL_MODEL_STRONG",
    "MARSHAL_DISABLE_RULES",
    "MARSHAL_AGENT_DISCOVERY",
    "MARSHAL_HISTORY",
    "MARSHAL_ENFORCE",
    "MARSHAL_NUDGE",
    "MARSHAL_TIMEOUT",
    "MARSHAL_STORE_PROMPTS",
];

/// The other `MARSHAL_*` variables marshal, its scripts or its tests read.
const OTHER_VARIABLES: &[&str] = &[
    "MARSHAL_MODE",
    "MARSHAL_BATCH",
    "MARSHAL_ORCHESTRATED",
    "MARSHAL_CLAUDE_BIN",
    "MARSHAL_STATE_DIR",
    "MARSHAL_CONFIG",
    // Read by scripts/ and the test suite, not by the binaries.
    "MARSHAL_CACHE_DIR",
    "MARSHAL_TEST_CLAUDE_BIN",
    "MARSHAL_TEST_CCUSAGE_BIN",
    "MARSHAL_STRESS_TURNS",
];

fn known_variables() -> impl Iterator<Item = &'static str> {
    OTHER_VARIABLES.iter().chain(SETTING_VARIABLES).copied()
}

/// The variable marshal sets on the `claude -p` children it starts.
pub const ORCHESTRATED: &str = "MARSHAL_ORCHESTRATED";
/// The variable naming the Claude Code CLI to run (default: `claude` on `PATH`).
pub const CLAUDE_BIN: &str = "MARSHAL_CLAUDE_BIN";

fn text(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Set and not empty.
fn os_value(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

fn flag(name: &str) -> bool {
    text(name).as_deref().and_then(parse_flag) == Some(true)
}

/// Reads an on/off value as every `MARSHAL_*` switch spells it: 1/true/yes/on, 0/false/no/off.
pub fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `MARSHAL_MODE`: `auto`, `directive`, `orchestrate` or `off`.
pub fn marshal_mode() -> Option<String> {
    text("MARSHAL_MODE")
}

/// `MARSHAL_BATCH` is on: a batch run.
pub fn batch() -> bool {
    flag("MARSHAL_BATCH")
}

/// [`ORCHESTRATED`] is on: this process runs inside a child marshal started.
pub fn orchestrated_child() -> bool {
    flag(ORCHESTRATED)
}

/// [`CLAUDE_BIN`]: the Claude Code CLI orchestration runs.
pub fn claude_bin() -> Option<String> {
    text(CLAUDE_BIN)
}

/// `MARSHAL_STATE_DIR`: where state lives, over everything else.
pub fn state_dir() -> Option<OsString> {
    std::env::var_os("MARSHAL_STATE_DIR")
}

/// `CLAUDE_PLUGIN_DATA`: set by Claude Code for plugin hooks, the plugin's data folder.
pub fn claude_plugin_data() -> Option<OsString> {
    std::env::var_os("CLAUDE_PLUGIN_DATA")
}

/// `CLAUDE_PLUGIN_ROOT`: set by Claude Code for plugin hooks, the plugin's folder.
pub fn claude_plugin_root() -> Option<PathBuf> {
    os_value("CLAUDE_PLUGIN_ROOT").map(PathBuf::from)
}

/// `CLAUDE_PROJECT_DIR`: set by Claude Code for hooks, the session's project.
pub fn claude_project_dir() -> Option<PathBuf> {
    os_value("CLAUDE_PROJECT_DIR").map(PathBuf::from)
}

/// `CLAUDE_CONFIG_DIR`: where Claude Code keeps its settings and transcripts instead of
/// `~/.claude`. Several folders may be given, separated by commas (as ccusage reads it).
pub fn claude_config_dirs() -> Vec<PathBuf> {
    text("CLAUDE_CONFIG_DIR")
        .map(|value| value.split(',').map(str::trim).filter(|d| !d.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default()
}

/// `HOME`, when set and not empty.
pub fn home() -> Option<PathBuf> {
    os_value("HOME").map(PathBuf::from)
}

/// `HOME` as it is (the state-directory rules treat empty and relative values themselves).
pub fn home_raw() -> Option<OsString> {
    std::env::var_os("HOME")
}

/// `CLAUDE_CODE_ENTRYPOINT`: which client runs the session (`cli`, `sdk-cli`, `claude-vscode`, ...).
pub fn entrypoint() -> Option<String> {
    text("CLAUDE_CODE_ENTRYPOINT")
}

/// `CLAUDE_CODE_SESSION_ATTENDED`: `1` when a person is at the keyboard, `0` when not.
pub fn session_attended() -> Option<String> {
    text("CLAUDE_CODE_SESSION_ATTENDED")
}

/// `NO_COLOR` is set to something (<https://no-color.org>).
pub fn no_color() -> bool {
    os_value("NO_COLOR").is_some()
}

/// `PATH`, for finding programs.
pub fn path() -> Option<OsString> {
    std::env::var_os("PATH")
}

/// Every `MARSHAL_*` variable with its value: the configuration's last layer reads its settings
/// from these.
pub fn marshal_variables() -> BTreeMap<String, String> {
    std::env::vars().filter(|(name, _)| name.starts_with("MARSHAL_")).collect()
}

/// `MARSHAL_*` names that marshal does not know: most likely typos, worth one warning each.
pub fn unknown_marshal_variables(variables: &BTreeMap<String, String>) -> Vec<String> {
    variables
        .keys()
        .filter(|name| !known_variables().any(|known| known == name.as_str()))
        .map(|name| match known_variables().find(|known| close(name, known)) {
            Some(known) => format!("unknown variable {name} ignored; did you mean {known}?"),
            None => format!(
                "unknown variable {name} ignored (known: {})",
                known_variables().take(16).collect::<Vec<_>>().join(", ")
            ),
        })
        .collect()
}

/// Whether two names differ by at most two edits (a typo).
fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 {
        return false;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current.push((previous[j] + cost).min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()] <= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_every_spelling_and_nothing_else() {
        for on in ["1", "true", " YES ", "On"] {
            assert_eq!(parse_flag(on), Some(true), "{on}");
        }
        for off in ["0", "false", "no", "OFF"] {
            assert_eq!(parse_flag(off), Some(false), "{off}");
        }
        assert_eq!(parse_flag("maybe"), None);
        assert_eq!(parse_flag(""), None);
    }

    #[test]
    fn unknown_marshal_variables_are_named_with_the_likely_intent() {
        let vars: BTreeMap<String, String> =
            [("MARSHAL_ENFORC", "deny"), ("MARSHAL_MODE", "off"), ("MARSHAL_WHATEVER", "1")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let warnings = unknown_marshal_variables(&vars);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("MARSHAL_ENFORC") && warnings[0].contains("did you mean MARSHAL_ENFORCE")
        );
        assert!(warnings[1].contains("MARSHAL_WHATEVER") && warnings[1].contains("known:"));
    }
}
