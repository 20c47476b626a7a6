//! Compliance: did the main agent delegate to the agent marshal recommended?
//!
//! The rules, in order (also in the README):
//! 1. Only Agent calls the main agent made during the turn count; calls made inside subagents
//!    are recorded but never decide an outcome.
//! 2. `followed`: at least one call named the recommended agent. `marshal:haiku-general` and
//!    `haiku-general` are the same agent; other plugins' prefixes are kept.
//! 3. `deviated`: agents were called, none of them the recommended one; the first is recorded.
//! 4. `ignored`: no agent was called and the turn ended normally (its own Stop).
//! 5. `interrupted`: no agent was called and the turn never saw its own Stop (an API error or a
//!    cancel); it is closed when a later turn of the session stops, or when the session ends.
//!    Not part of the rate.

use serde::{Deserialize, Serialize};

use crate::agents::normalize_agent_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Followed,
    Deviated,
    Ignored,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    /// The agent that decided the outcome, bare name: the recommended one when followed, the
    /// first other one when deviated, none otherwise.
    pub actual: Option<String>,
}

/// Classifies a closed turn from the agents the main agent called (`subagent_type` as passed)
/// and whether the turn ended with its own Stop.
pub fn classify(recommended_agent: &str, called: &[&str], own_stop: bool) -> Verdict {
    let recommended = normalize_agent_name(recommended_agent);
    let mut names = called.iter().map(|name| normalize_agent_name(name));
    if names.clone().any(|name| name == recommended) {
        return Verdict { outcome: Outcome::Followed, actual: Some(recommended.to_string()) };
    }
    match names.next() {
        Some(first) => Verdict { outcome: Outcome::Deviated, actual: Some(first.to_string()) },
        None if own_stop => Verdict { outcome: Outcome::Ignored, actual: None },
        None => Verdict { outcome: Outcome::Interrupted, actual: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// recommended, called, own stop, expected outcome, expected actual agent.
    type Row<'a> = (&'a str, &'a [&'a str], bool, Outcome, Option<&'a str>);

    #[test]
    fn outcome_table() {
        let rows: &[Row] = &[
            ("haiku-general", &["marshal:haiku-general"], true, Outcome::Followed, Some("haiku-general")),
            ("marshal:haiku-general", &["haiku-general"], true, Outcome::Followed, Some("haiku-general")),
            (
                "haiku-general",
                &["Explore", "marshal:haiku-general"],
                true,
                Outcome::Followed,
                Some("haiku-general"),
            ),
            ("haiku-general", &["marshal:opus-general"], true, Outcome::Deviated, Some("opus-general")),
            (
                "haiku-general",
                &["general-purpose", "Explore"],
                true,
                Outcome::Deviated,
                Some("general-purpose"),
            ),
            ("haiku-general", &["other:haiku-general"], true, Outcome::Deviated, Some("other:haiku-general")),
            ("haiku-general", &[], true, Outcome::Ignored, None),
            ("haiku-general", &[], false, Outcome::Interrupted, None),
            ("haiku-general", &["marshal:haiku-general"], false, Outcome::Followed, Some("haiku-general")),
        ];
        for (recommended, called, own_stop, outcome, actual) in rows {
            let verdict = classify(recommended, called, *own_stop);
            assert_eq!(verdict.outcome, *outcome, "{recommended} {called:?}");
            assert_eq!(verdict.actual.as_deref(), *actual, "{recommended} {called:?}");
        }
    }
}
