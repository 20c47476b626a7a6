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
use crate::enforcement::Action;

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

/// One Agent call of a turn, as the outcome rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The agent that ran (after a rewrite, the routed one); for a denied call, the one asked for.
    pub ran: &'a str,
    /// What the model asked for (differs from `ran` only after a rewrite).
    pub asked: &'a str,
    pub action: Action,
    /// Made after the Stop nudge (it would not have happened without it).
    pub after_nudge: bool,
}

/// A turn's outcome, and the outcome it would have had if marshal had enforced nothing.
///
/// With enforcement, the calls that ran decide (denied calls did not run), and an agent the user
/// named counts as following. Without it, the model would have made its calls as it asked for
/// them, up to the first one enforcement changed, and none of those after the nudge; a nudged
/// turn had its own Stop (the first one).
pub fn judge(recommended: &str, calls: &[Call], own_stop: bool, nudged: bool) -> (Verdict, Outcome) {
    let ran = calls.iter().filter(|c| c.action != Action::Denied).map(|c| (c.ran, c.action));
    let verdict = classify_respecting_the_user(recommended, ran, own_stop);
    let first_changed = calls.iter().position(|c| matches!(c.action, Action::Denied | Action::Rewritten));
    let unprompted = calls
        .iter()
        .take(first_changed.map_or(usize::MAX, |i| i + 1))
        .filter(|c| !c.after_nudge)
        .map(|c| (c.asked, c.action));
    let unenforced = classify_respecting_the_user(recommended, unprompted, own_stop || nudged).outcome;
    (verdict, unenforced)
}

/// [`classify`], where a call to an agent the user named follows the routing.
fn classify_respecting_the_user<'a>(
    recommended: &str,
    calls: impl Iterator<Item = (&'a str, Action)>,
    own_stop: bool,
) -> Verdict {
    let calls: Vec<(&str, Action)> = calls.collect();
    let agents: Vec<&str> = calls.iter().map(|(agent, _)| *agent).collect();
    let verdict = classify(recommended, &agents, own_stop);
    match calls.iter().find(|(_, action)| *action == Action::Respected) {
        Some((agent, _)) if verdict.outcome != Outcome::Followed => {
            Verdict { outcome: Outcome::Followed, actual: Some(normalize_agent_name(agent).to_string()) }
        }
        _ => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(ran: &'a str, asked: &'a str, action: Action, after_nudge: bool) -> Call<'a> {
        Call { ran, asked, action, after_nudge }
    }

    /// (calls, own stop, nudged) -> (outcome, actual, outcome without enforcement)
    type JudgeRow<'a> = (Vec<Call<'a>>, bool, bool, Outcome, Option<&'a str>, Outcome);

    #[test]
    fn outcomes_with_and_without_enforcement() {
        use Action::*;
        use Outcome::*;
        let routed = "marshal:haiku-general";
        let rows: Vec<JudgeRow> = vec![
            (vec![call(routed, routed, None, false)], true, false, Followed, Some("haiku-general"), Followed),
            (
                vec![call("Explore", "Explore", Warned, false)],
                true,
                false,
                Deviated,
                Some("Explore"),
                Deviated,
            ),
            (
                vec![
                    call("general-purpose", "general-purpose", Denied, false),
                    call(routed, routed, None, false),
                ],
                true,
                false,
                Followed,
                Some("haiku-general"),
                Deviated,
            ),
            (
                vec![call(routed, "general-purpose", Rewritten, false)],
                true,
                false,
                Followed,
                Some("haiku-general"),
                Deviated,
            ),
            (vec![call(routed, routed, None, true)], true, true, Followed, Some("haiku-general"), Ignored),
            (
                vec![call("Explore", "Explore", Respected, false)],
                true,
                false,
                Followed,
                Some("Explore"),
                Followed,
            ),
            (vec![], true, false, Ignored, Option::None, Ignored),
            (vec![], false, false, Interrupted, Option::None, Interrupted),
            (vec![], false, true, Interrupted, Option::None, Ignored),
        ];
        for (calls, own_stop, nudged, outcome, actual, unenforced) in rows {
            let (verdict, without) = judge(routed, &calls, own_stop, nudged);
            assert_eq!(
                (verdict.outcome, verdict.actual.as_deref(), without),
                (outcome, actual, unenforced),
                "{calls:?} own_stop={own_stop} nudged={nudged}"
            );
        }
    }

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
