//! Per-session state: the routed turns of one Claude Code session that have not closed yet.
//!
//! One small JSON file per session under `sessions/`, replaced atomically under the store lock
//! and removed when no turn is open, so finished sessions leave nothing behind.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::agents::Tier;
use crate::fsutil;
use crate::mode::Mode;

/// The session-state format this build writes; other versions are reset.
pub const SESSION_STATE_VERSION: u32 = 1;
/// A session never keeps more open turns than this; the oldest is closed first.
pub const MAX_OPEN_TURNS: usize = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub v: u32,
    pub session: String,
    pub open_turns: Vec<OpenTurn>,
}

/// A routed turn waiting for its Stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenTurn {
    pub prompt_id: Option<String>,
    pub started: String,
    pub mode: Mode,
    pub project: Option<String>,
    pub agent: String,
    pub tier: Tier,
    pub model: String,
    /// `subagent_type` of every Agent call the main agent made in this turn, in order.
    pub calls: Vec<String>,
}

impl SessionState {
    pub fn empty(session: &str) -> Self {
        SessionState {
            v: SESSION_STATE_VERSION,
            session: session.to_string(),
            open_turns: Vec::new(),
        }
    }

    pub fn turn_mut(&mut self, prompt_id: Option<&str>) -> Option<&mut OpenTurn> {
        self.open_turns
            .iter_mut()
            .find(|t| t.prompt_id.as_deref() == prompt_id)
    }
}

/// What loading found, so a reset can be logged.
pub enum Loaded {
    Fresh(SessionState),
    Existing(SessionState),
    /// The file was unreadable, corrupt or of another version: started over (reason inside).
    Reset(SessionState, String),
}

impl Loaded {
    pub fn into_state(self) -> SessionState {
        match self {
            Loaded::Fresh(s) | Loaded::Existing(s) | Loaded::Reset(s, _) => s,
        }
    }
}

pub fn load(path: &Path, session: &str) -> Loaded {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Loaded::Fresh(SessionState::empty(session))
        }
        Err(err) => {
            return Loaded::Reset(
                SessionState::empty(session),
                format!("could not read {}: {err}", path.display()),
            )
        }
    };
    match serde_json::from_slice::<SessionState>(&bytes) {
        Ok(state) if state.v == SESSION_STATE_VERSION && state.session == session => {
            Loaded::Existing(state)
        }
        Ok(state) => Loaded::Reset(
            SessionState::empty(session),
            format!(
                "session state {} has version {} for session {:?}; reset",
                path.display(),
                state.v,
                state.session
            ),
        ),
        Err(err) => Loaded::Reset(
            SessionState::empty(session),
            format!("session state {} is corrupt ({err}); reset", path.display()),
        ),
    }
}

/// Writes the state, or removes the file when no turn is open.
pub fn save(path: &Path, state: &SessionState) -> Result<()> {
    if state.open_turns.is_empty() {
        return match std::fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(err).with_context(|| format!("could not remove {}", path.display()))
            }
            _ => Ok(()),
        };
    }
    let bytes = serde_json::to_vec(state).context("could not encode session state")?;
    fsutil::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(prompt_id: &str) -> OpenTurn {
        OpenTurn {
            prompt_id: Some(prompt_id.into()),
            started: "2026-11-21T05:00:00Z".into(),
            mode: Mode::Directive,
            project: Some("/w".into()),
            agent: "haiku-general".into(),
            tier: Tier::Weak,
            model: "haiku".into(),
            calls: vec![],
        }
    }

    #[test]
    fn save_load_and_remove_when_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s1.json");
        assert!(matches!(load(&path, "s1"), Loaded::Fresh(_)));
        let mut state = SessionState::empty("s1");
        state.open_turns.push(turn("p1"));
        save(&path, &state).unwrap();
        let Loaded::Existing(mut loaded) = load(&path, "s1") else {
            panic!("not loaded")
        };
        assert_eq!(loaded, state);
        loaded
            .turn_mut(Some("p1"))
            .unwrap()
            .calls
            .push("marshal:haiku-general".into());
        loaded.open_turns.clear();
        save(&path, &loaded).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn corrupt_or_foreign_state_is_reset() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s1.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(load(&path, "s1"), Loaded::Reset(s, _) if s.open_turns.is_empty()));
        let mut other = SessionState::empty("s2");
        other.open_turns.push(turn("p"));
        save(&path, &other).unwrap();
        assert!(matches!(load(&path, "s1"), Loaded::Reset(..)));
    }
}
