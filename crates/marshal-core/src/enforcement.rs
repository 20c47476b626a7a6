//! Enforcement: what marshal does when the main agent calls another agent than the routed one,
//! or calls none at all. Pure decisions; the hooks carry them out.
//!
//! | level     | a call to another agent                                     |
//! |-----------|-------------------------------------------------------------|
//! | `off`     | recorded                                                    |
//! | `warn`    | allowed, and the model is told it deviated (default)        |
//! | `deny`    | denied with a reason naming the exact `subagent_type`       |
//! | `rewrite` | rewritten to the routed agent and model                     |
//!
//! An agent the user named in the prompt ("use the Explore agent") is always respected. With
//! `deny` and `rewrite` (or `nudge: true`), a turn that ends without delegating is stopped once
//! and told which agent to use.

use serde::{Deserialize, Serialize};

use crate::agents::{normalize_agent_name, Tier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Off,
    #[default]
    Warn,
    Deny,
    Rewrite,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" => Some(Level::Off),
            "warn" => Some(Level::Warn),
            "deny" => Some(Level::Deny),
            "rewrite" => Some(Level::Rewrite),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Warn => "warn",
            Level::Deny => "deny",
            Level::Rewrite => "rewrite",
        }
    }

    /// Whether the Stop nudge is on when the configuration does not say.
    pub fn nudges_by_default(self) -> bool {
        matches!(self, Level::Deny | Level::Rewrite)
    }
}

/// What enforcement did to one Agent call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The routed agent, or enforcement is off: nothing to do.
    #[default]
    None,
    /// Allowed, with a note to the model.
    Warned,
    /// Refused: the call did not run.
    Denied,
    /// Changed to the routed agent before it ran.
    Rewritten,
    /// Another agent, but one the user asked for by name.
    Respected,
}

/// The routed turn as enforcement sees it.
pub struct Routed<'a> {
    pub agent: &'a str,
    pub subagent_type: &'a str,
    pub model: &'a str,
    pub tier: Tier,
    /// Agents the user named in the prompt (bare, lowercase).
    pub user_named: &'a [String],
    /// Calls already denied in this turn.
    pub denials: usize,
}

/// After this many denials in one turn, further calls are allowed (and warned), so a model
/// that insists can never be stuck in a loop.
pub const MAX_DENIALS_PER_TURN: usize = 2;

/// The decision for one call, with what to tell Claude Code.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow(Action),
    /// Allowed; this text reaches the model as context.
    Warn(String),
    /// Denied; this reason reaches the model as the tool's error.
    Deny(String),
    /// The complete tool input to run instead.
    Rewrite(serde_json::Value),
}

impl Verdict {
    pub fn action(&self) -> Action {
        match self {
            Verdict::Allow(action) => *action,
            Verdict::Warn(_) => Action::Warned,
            Verdict::Deny(_) => Action::Denied,
            Verdict::Rewrite(_) => Action::Rewritten,
        }
    }
}

/// Model aliases the Agent tool's `model` parameter accepts.
const MODEL_ALIASES: &[&str] = &["haiku", "sonnet", "opus", "fable"];

/// Decides what to do with a call to `called` (its `subagent_type` as given), whose complete
/// tool input is `tool_input`.
pub fn decide(level: Level, routed: &Routed, called: &str, tool_input: &serde_json::Value) -> Verdict {
    let called_name = normalize_agent_name(called);
    if called_name.eq_ignore_ascii_case(normalize_agent_name(routed.agent)) {
        return Verdict::Allow(Action::None);
    }
    if routed.user_named.iter().any(|named| named.eq_ignore_ascii_case(called_name)) {
        return Verdict::Allow(Action::Respected);
    }
    match level {
        Level::Off => Verdict::Allow(Action::None),
        Level::Warn => Verdict::Warn(warning_text(routed, called)),
        Level::Deny if routed.denials < MAX_DENIALS_PER_TURN => Verdict::Deny(denial_text(routed, called)),
        Level::Deny => Verdict::Warn(warning_text(routed, called)),
        Level::Rewrite => Verdict::Rewrite(rewritten_input(routed, tool_input)),
    }
}

fn warning_text(routed: &Routed, called: &str) -> String {
    format!(
        "marshal: this request was routed to subagent_type \"{}\" ({} tier); you called \"{called}\". \
         Use the routed agent for this kind of work unless the user asked otherwise.",
        routed.subagent_type,
        routed.tier.as_str()
    )
}

fn denial_text(routed: &Routed, called: &str) -> String {
    format!(
        "marshal: this request is routed to subagent_type \"{}\" ({} tier), not \"{called}\". \
         Call the Agent tool again with subagent_type: \"{}\" and the same prompt.",
        routed.subagent_type,
        routed.tier.as_str(),
        routed.subagent_type
    )
}

/// The whole input with the routed agent (and its model, when it is an alias) in place: Claude
/// Code replaces the input wholesale, so nothing of the original may be dropped.
fn rewritten_input(routed: &Routed, tool_input: &serde_json::Value) -> serde_json::Value {
    let mut input = match tool_input {
        serde_json::Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    input.insert("subagent_type".into(), routed.subagent_type.into());
    if MODEL_ALIASES.contains(&routed.model) {
        input.insert("model".into(), routed.model.into());
    } else {
        input.remove("model");
    }
    serde_json::Value::Object(input)
}

/// The Stop hook's reason when a turn ends without delegating.
pub fn nudge_text(subagent_type: &str, tier: Tier) -> String {
    let tier = tier.as_str();
    format!(
        "marshal: this request was routed to subagent_type \"{subagent_type}\" ({tier} tier) and no agent was \
         called. Delegate it now with the Agent tool, subagent_type: \"{subagent_type}\", passing the full request."
    )
}

/// Agents a prompt names explicitly: "use the Explore agent", "with agent code-reviewer",
/// "subagent general-purpose". `candidates` are bare names; matching ignores case.
pub fn agents_named_in(words: &[String], candidates: &[String]) -> Vec<String> {
    let mut named = Vec::new();
    for candidate in candidates {
        let parts: Vec<String> = candidate
            .to_ascii_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        if parts.is_empty() {
            continue;
        }
        let found = (0..words.len()).any(|at| {
            let fits = parts.iter().enumerate().all(|(i, p)| words.get(at + i) == Some(p));
            let after = words.get(at + parts.len()).map(String::as_str);
            let before = at.checked_sub(1).map(|i| words[i].as_str());
            fits && (matches!(after, Some("agent" | "subagent" | "agents"))
                || matches!(before, Some("agent" | "subagent")))
        });
        if found {
            named.push(candidate.to_ascii_lowercase());
        }
    }
    named
}

/// Agents that ship with Claude Code: a user may name them without any agent file.
pub const BUILT_IN_AGENTS: &[&str] =
    &["general-purpose", "Explore", "Plan", "statusline-setup", "output-style-setup"];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn routed(user_named: &[String], denials: usize) -> Routed<'_> {
        Routed {
            agent: "haiku-general",
            subagent_type: "marshal:haiku-general",
            model: "haiku",
            tier: Tier::Weak,
            user_named,
            denials,
        }
    }

    #[test]
    fn decisions_by_level() {
        let input = json!({"description":"d","prompt":"p","subagent_type":"general-purpose","run_in_background":true});
        let none: Vec<String> = vec![];
        assert_eq!(
            decide(Level::Deny, &routed(&none, 0), "marshal:haiku-general", &input),
            Verdict::Allow(Action::None)
        );
        assert_eq!(
            decide(Level::Deny, &routed(&none, 0), "haiku-general", &input),
            Verdict::Allow(Action::None)
        );
        assert_eq!(
            decide(Level::Off, &routed(&none, 0), "general-purpose", &input),
            Verdict::Allow(Action::None)
        );
        assert!(
            matches!(decide(Level::Warn, &routed(&none, 0), "general-purpose", &input), Verdict::Warn(t) if t.contains("\"marshal:haiku-general\""))
        );
        let Verdict::Deny(reason) = decide(Level::Deny, &routed(&none, 0), "general-purpose", &input) else {
            panic!()
        };
        assert!(reason.contains("subagent_type: \"marshal:haiku-general\""), "{reason}");
        assert!(matches!(
            decide(Level::Deny, &routed(&none, MAX_DENIALS_PER_TURN), "general-purpose", &input),
            Verdict::Warn(_)
        ));
        let Verdict::Rewrite(new) = decide(Level::Rewrite, &routed(&none, 0), "general-purpose", &input)
        else {
            panic!()
        };
        assert_eq!(
            new,
            json!({"description":"d","prompt":"p","subagent_type":"marshal:haiku-general","run_in_background":true,"model":"haiku"})
        );
    }

    #[test]
    fn agents_the_user_named_are_respected() {
        let words: Vec<String> =
            "please use the explore agent to find where config loads".split(' ').map(String::from).collect();
        let candidates: Vec<String> = BUILT_IN_AGENTS.iter().map(|s| s.to_string()).collect();
        let named = agents_named_in(&words, &candidates);
        assert_eq!(named, vec!["explore".to_string()]);
        let input = json!({"subagent_type":"Explore"});
        assert_eq!(
            decide(Level::Deny, &routed(&named, 0), "Explore", &input),
            Verdict::Allow(Action::Respected)
        );
        // "explore the codebase" names no agent.
        let words: Vec<String> = "explore the codebase and plan a fix".split(' ').map(String::from).collect();
        assert!(agents_named_in(&words, &candidates).is_empty());
        let words: Vec<String> =
            "run it with the general purpose agent".split(' ').map(String::from).collect();
        assert_eq!(agents_named_in(&words, &candidates), vec!["general-purpose".to_string()]);
    }
}
