//! Execution-context detection: which mode marshal runs in for this process, and why.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Route, inject a short directive, and record what the model did.
    Directive,
    /// Do nothing at all: no directive, no records.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Directive => "directive",
            Mode::Off => "off",
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
}

impl ModeEnv {
    pub fn from_process() -> Self {
        ModeEnv { marshal_mode: std::env::var("MARSHAL_MODE").ok() }
    }
}

/// Decides the mode. `MARSHAL_MODE` (`directive` or `off`) overrides; the default is directive.
pub fn detect(env: &ModeEnv) -> ModeDecision {
    let requested = env.marshal_mode.as_deref().map(str::trim).unwrap_or("");
    let decided = |mode, reason: &str| ModeDecision { mode, reason: reason.to_string(), warning: None };
    match requested.to_ascii_lowercase().as_str() {
        "" => decided(Mode::Directive, "default"),
        "directive" => decided(Mode::Directive, "MARSHAL_MODE=directive"),
        "off" => decided(Mode::Off, "MARSHAL_MODE=off"),
        "auto" => decided(Mode::Directive, "MARSHAL_MODE=auto"),
        other => ModeDecision {
            mode: Mode::Directive,
            reason: "default".to_string(),
            warning: Some(format!(
                "MARSHAL_MODE={other:?} is not a mode this version knows (directive, off, auto); using directive"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_for(value: Option<&str>) -> ModeDecision {
        detect(&ModeEnv { marshal_mode: value.map(str::to_string) })
    }

    #[test]
    fn mode_table() {
        assert_eq!(mode_for(None).mode, Mode::Directive);
        assert_eq!(mode_for(Some("")).mode, Mode::Directive);
        assert_eq!(mode_for(Some("off")).mode, Mode::Off);
        assert_eq!(mode_for(Some(" OFF ")).mode, Mode::Off);
        assert_eq!(mode_for(Some("directive")).reason, "MARSHAL_MODE=directive");
        let odd = mode_for(Some("sideways"));
        assert_eq!(odd.mode, Mode::Directive);
        assert!(odd.warning.unwrap().contains("sideways"));
    }
}
