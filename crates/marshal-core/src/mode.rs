//! Execution-context detection: which mode marshal runs in for this process, and why. One
//! function, [`detect`], over facts read once from the environment and the configuration.
//!
//! Advise by default, orchestrate on request. `MARSHAL_MODE` overrides everything; inside a
//! child that marshal itself started, record only; then `MARSHAL_BATCH`, the overnight window
//! (when the user configured one) and the kind of session decide, by the user's `modes` table.
//! Every kind of session is advised (directive mode) unless that table says otherwise: installing
//! marshal must never change what a script parses or an IDE shows.

use serde::{Deserialize, Serialize};

use crate::env;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Route, inject a short directive, and record what the model did.
    Directive,
    /// Carry the routing out: run the routed agent as a `claude -p` child and answer with its
    /// result; the main model is never called.
    Orchestrate,
    /// A child marshal started: record its Agent calls, never route or orchestrate again.
    Child,
    /// Do nothing at all: no directive, no records.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Directive => "directive",
            Mode::Orchestrate => "orchestrate",
            Mode::Child => "child",
            Mode::Off => "off",
        }
    }

    /// A mode a user or a setting may ask for (`child` is marshal's own).
    pub fn parse(text: &str) -> Option<Mode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "directive" => Some(Mode::Directive),
            "orchestrate" => Some(Mode::Orchestrate),
            "off" => Some(Mode::Off),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeDecision {
    pub mode: Mode,
    pub reason: String,
    /// Set when the environment asked for something marshal cannot honour; worth one log line.
    pub warning: Option<String>,
}

/// The environment facts mode detection reads.
#[derive(Debug, Clone, Default)]
pub struct ModeEnv {
    pub marshal_mode: Option<String>,
    /// `MARSHAL_ORCHESTRATED` is set: this process runs inside a child marshal started.
    pub orchestrated_child: bool,
    /// `CLAUDE_CODE_ENTRYPOINT`: `cli` for an interactive session, `sdk-cli` for `claude -p`,
    /// and many more (IDE extensions, the desktop app, Agent SDK programs).
    pub entrypoint: Option<String>,
    /// `CLAUDE_CODE_SESSION_ATTENDED`: `1` when a person is at the keyboard, `0` when not.
    pub attended: Option<String>,
    /// `MARSHAL_BATCH` is set to something true.
    pub batch: bool,
    /// Local time of day, minutes since midnight, for the overnight window.
    pub minute_of_day: Option<u16>,
}

impl ModeEnv {
    pub fn from_process() -> Self {
        ModeEnv {
            marshal_mode: env::marshal_mode(),
            orchestrated_child: env::orchestrated_child(),
            entrypoint: env::entrypoint(),
            attended: env::session_attended(),
            batch: env::batch(),
            minute_of_day: None,
        }
    }

    /// `MARSHAL_MODE=off`: marshal does nothing at all, not even read its configuration.
    pub fn is_off(&self) -> bool {
        self.marshal_mode.as_deref().is_some_and(|m| m.trim().eq_ignore_ascii_case("off"))
    }

    /// Adds the local time of day (only needed when an overnight window is configured).
    pub fn with_local_time(mut self) -> Self {
        use chrono::Timelike;
        let now = chrono::Local::now();
        self.minute_of_day = Some((now.hour() * 60 + now.minute()) as u16);
        self
    }
}

/// Which mode each kind of context gets (configuration key `modes`, honoured only from the
/// user's own files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeRules {
    /// A person is at the keyboard: the terminal, an IDE, the desktop app.
    pub attended: Mode,
    /// No one is: `claude -p`, Agent SDK programs, CI.
    pub unattended: Mode,
    pub batch: Mode,
    /// `[from, to)` in minutes since local midnight; may wrap past midnight.
    pub overnight: Option<(u16, u16)>,
    pub overnight_mode: Mode,
}

impl Default for ModeRules {
    fn default() -> Self {
        ModeRules {
            attended: Mode::Directive,
            unattended: Mode::Directive,
            batch: Mode::Orchestrate,
            overnight: None,
            overnight_mode: Mode::Orchestrate,
        }
    }
}

/// Decides the mode, and why.
pub fn detect(env: &ModeEnv, rules: &ModeRules) -> ModeDecision {
    let decided = |mode, reason: String| ModeDecision { mode, reason, warning: None };
    let requested = env.marshal_mode.as_deref().map(str::trim).unwrap_or("");
    let mut warning = None;
    if !requested.is_empty() && !requested.eq_ignore_ascii_case("auto") {
        match Mode::parse(requested) {
            // A child never re-routes, even when MARSHAL_MODE was inherited from its parent.
            Some(mode) if !(env.orchestrated_child && mode != Mode::Off) => {
                return decided(mode, format!("MARSHAL_MODE={}", mode.as_str()))
            }
            Some(_) => {}
            None => {
                warning = Some(format!(
                    "MARSHAL_MODE={requested:?} is not a mode (auto, directive, orchestrate, off); detecting the mode instead"
                ))
            }
        }
    }
    let mut decision = if env.orchestrated_child {
        decided(Mode::Child, format!("{} is set: a child marshal started records only", env::ORCHESTRATED))
    } else if env.batch {
        decided(rules.batch, "MARSHAL_BATCH is set: a batch run".to_string())
    } else if let (Some(window), Some(minute)) = (rules.overnight, env.minute_of_day) {
        if in_window(window, minute) {
            decided(rules.overnight_mode, format!("inside the overnight window {}", window_text(window)))
        } else {
            by_entrypoint(env, rules)
        }
    } else {
        by_entrypoint(env, rules)
    };
    decision.warning = warning;
    decision
}

/// Entrypoints where a person is typing. Anything unknown counts as attended too: taking over a
/// session someone is watching is the worse mistake.
const UNATTENDED_ENTRYPOINTS: &[&str] = &["sdk-cli", "sdk-ts", "sdk-py", "claude-code-github-action", "mcp"];

/// Whether a person is at the keyboard, and why marshal thinks so: `CLAUDE_CODE_SESSION_ATTENDED`
/// when it is set, else the entrypoint.
pub fn session_kind(env: &ModeEnv) -> (bool, String) {
    match env.attended.as_deref().map(str::trim) {
        Some("1") => return (true, "an attended session (CLAUDE_CODE_SESSION_ATTENDED=1)".into()),
        Some("0") => return (false, "an unattended session (CLAUDE_CODE_SESSION_ATTENDED=0)".into()),
        _ => {}
    }
    match env.entrypoint.as_deref().filter(|e| !e.is_empty()) {
        Some(entry) if UNATTENDED_ENTRYPOINTS.contains(&entry) => {
            (false, format!("an unattended session (CLAUDE_CODE_ENTRYPOINT={entry})"))
        }
        Some(entry) => (true, format!("an attended session (CLAUDE_CODE_ENTRYPOINT={entry})")),
        None => (true, "no session kind known: treated as attended".into()),
    }
}

fn by_entrypoint(env: &ModeEnv, rules: &ModeRules) -> ModeDecision {
    let (attended, why) = session_kind(env);
    let mode = if attended { rules.attended } else { rules.unattended };
    let how = if mode == Mode::Directive { "advised by default" } else { "as the modes table asks" };
    ModeDecision { mode, reason: format!("{why}: {how}"), warning: None }
}

fn in_window((from, to): (u16, u16), minute: u16) -> bool {
    if from <= to {
        (from..to).contains(&minute)
    } else {
        minute >= from || minute < to
    }
}

fn window_text((from, to): (u16, u16)) -> String {
    format!("{:02}:{:02}-{:02}:{:02}", from / 60, from % 60, to / 60, to % 60)
}

/// Parses `HH:MM` into minutes since midnight.
pub fn parse_clock(text: &str) -> Option<u16> {
    let (hours, minutes) = text.trim().split_once(':')?;
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(
        mode: Option<&str>,
        child: bool,
        entry: Option<&str>,
        batch: bool,
        minute: Option<u16>,
    ) -> ModeEnv {
        ModeEnv {
            marshal_mode: mode.map(str::to_string),
            orchestrated_child: child,
            entrypoint: entry.map(str::to_string),
            attended: None,
            batch,
            minute_of_day: minute,
        }
    }

    #[test]
    fn mode_table() {
        let rules = ModeRules::default();
        let mode = |e: ModeEnv| detect(&e, &rules).mode;
        // Advise by default, whatever the session.
        for entry in [None, Some("cli"), Some("sdk-cli"), Some("sdk-ts"), Some("claude-vscode"), Some("mcp")]
        {
            assert_eq!(mode(env(None, false, entry, false, None)), Mode::Directive, "{entry:?}");
            assert_eq!(mode(env(Some("auto"), false, entry, false, None)), Mode::Directive, "{entry:?}");
        }
        // Orchestrate on request.
        assert_eq!(mode(env(None, false, Some("cli"), true, None)), Mode::Orchestrate, "batch");
        assert_eq!(mode(env(Some("orchestrate"), false, Some("cli"), false, None)), Mode::Orchestrate);
        assert_eq!(
            mode(env(Some("directive"), false, Some("sdk-cli"), true, None)),
            Mode::Directive,
            "override"
        );
        assert_eq!(mode(env(Some(" OFF "), true, Some("cli"), false, None)), Mode::Off);
        assert_eq!(mode(env(None, true, Some("sdk-cli"), false, None)), Mode::Child);
        assert_eq!(
            mode(env(Some("orchestrate"), true, Some("sdk-cli"), false, None)),
            Mode::Child,
            "inherited"
        );
        let odd = detect(&env(Some("sideways"), false, Some("cli"), false, None), &rules);
        assert_eq!(odd.mode, Mode::Directive);
        assert!(odd.warning.unwrap().contains("sideways"));
        // The user's own modes table can orchestrate unattended sessions.
        let asked = ModeRules { unattended: Mode::Orchestrate, ..rules };
        let decision = detect(&env(None, false, Some("sdk-py"), false, None), &asked);
        assert_eq!(decision.mode, Mode::Orchestrate);
        assert!(decision.reason.contains("as the modes table asks"), "{}", decision.reason);
        assert_eq!(
            detect(&env(None, false, Some("claude-desktop"), false, None), &asked).mode,
            Mode::Directive
        );
    }

    #[test]
    fn attended_or_not_by_the_variable_then_the_entrypoint() {
        let kind = |attended: Option<&str>, entry: Option<&str>| {
            let mut e = env(None, false, entry, false, None);
            e.attended = attended.map(str::to_string);
            session_kind(&e)
        };
        let attended = [
            "cli",
            "claude-vscode",
            "claude-desktop",
            "claude-desktop-3p",
            "local-agent",
            "remote",
            "remote_mobile",
            "something-new",
        ];
        for entry in attended {
            assert!(kind(None, Some(entry)).0, "{entry}");
        }
        for entry in ["sdk-cli", "sdk-ts", "sdk-py", "claude-code-github-action", "mcp"] {
            let (is_attended, why) = kind(None, Some(entry));
            assert!(!is_attended && why.contains(entry), "{entry}: {why}");
        }
        assert!(kind(None, None).0);
        let (is_attended, why) = kind(Some("0"), Some("cli"));
        assert!(!is_attended && why.contains("CLAUDE_CODE_SESSION_ATTENDED=0"), "{why}");
        assert!(kind(Some("1"), Some("sdk-cli")).0, "the variable wins");
        assert!(!kind(Some("maybe"), Some("sdk-ts")).0, "an odd value falls back to the entrypoint");
    }

    #[test]
    fn the_overnight_window_wraps_midnight() {
        let rules = ModeRules { overnight: Some((22 * 60, 6 * 60)), ..ModeRules::default() };
        let at = |minute| detect(&env(None, false, Some("cli"), false, Some(minute)), &rules);
        assert_eq!(at(23 * 60).mode, Mode::Orchestrate);
        assert!(at(23 * 60).reason.contains("22:00-06:00"));
        assert_eq!(at(5 * 60 + 59).mode, Mode::Orchestrate);
        assert_eq!(at(6 * 60).mode, Mode::Directive);
        assert_eq!(at(12 * 60).mode, Mode::Directive);
        assert_eq!(parse_clock("22:30"), Some(1350));
        assert_eq!(parse_clock("24:00"), None);
    }
}
