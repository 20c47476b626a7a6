//! Tiers and the agents marshal ships for them (`agents/*.md` in the plugin).

use serde::{Deserialize, Serialize};

use crate::PLUGIN_NAME;

/// How much model a request deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Cheap and fast: chores.
    Weak,
    /// The everyday default.
    Base,
    /// Hard work: design, deep debugging, risky changes.
    Strong,
}

impl Tier {
    /// Every tier, weakest first.
    pub const ALL: [Tier; 3] = [Tier::Weak, Tier::Base, Tier::Strong];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Weak => "weak",
            Tier::Base => "base",
            Tier::Strong => "strong",
        }
    }

    /// A tier by name (`weak`, `base`, `strong`; any case, spaces around ignored).
    pub fn parse(name: &str) -> Option<Tier> {
        match name.trim().to_ascii_lowercase().as_str() {
            "weak" => Some(Tier::Weak),
            "base" => Some(Tier::Base),
            "strong" => Some(Tier::Strong),
            _ => None,
        }
    }

    /// The next stronger tier, if any.
    pub fn stronger(self) -> Option<Tier> {
        match self {
            Tier::Weak => Some(Tier::Base),
            Tier::Base => Some(Tier::Strong),
            Tier::Strong => None,
        }
    }

    /// The agent shipped for this tier, by its bare name.
    pub fn default_agent(self) -> &'static str {
        match self {
            Tier::Weak => "haiku-general",
            Tier::Base => "sonnet-general",
            Tier::Strong => "opus-general",
        }
    }

    /// The model alias the tier's agent runs on (Claude Code resolves the alias).
    pub fn default_model(self) -> &'static str {
        match self {
            Tier::Weak => "haiku",
            Tier::Base => "sonnet",
            Tier::Strong => "opus",
        }
    }
}

/// The model an agent runs on when it names none: the parent session's (agent front matter
/// `model: inherit`, or no model at all).
pub const INHERIT_MODEL: &str = "inherit";

impl Tier {
    /// The tier a model alias or id belongs to; `None` for [`INHERIT_MODEL`] or an unknown id.
    pub fn of_model(model: &str) -> Option<Tier> {
        let model = model.to_ascii_lowercase();
        if model.contains("haiku") {
            Some(Tier::Weak)
        } else if model.contains("sonnet") {
            Some(Tier::Base)
        } else if model.contains("opus") || model.contains("fable") {
            Some(Tier::Strong)
        } else {
            None
        }
    }
}

/// The exact `subagent_type` the Agent tool needs for one of our plugin's agents.
pub fn plugin_subagent_type(agent: &str) -> String {
    format!("{PLUGIN_NAME}:{agent}")
}

/// Reduces a `subagent_type` to the agent's bare name for comparison:
/// `marshal:haiku-general` and `haiku-general` name the same agent.
pub fn normalize_agent_name(subagent_type: &str) -> &str {
    let trimmed = subagent_type.trim();
    trimmed.strip_prefix(PLUGIN_NAME).and_then(|rest| rest.strip_prefix(':')).unwrap_or(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_strips_only_our_plugin_prefix() {
        assert_eq!(normalize_agent_name("marshal:haiku-general"), "haiku-general");
        assert_eq!(normalize_agent_name(" haiku-general "), "haiku-general");
        assert_eq!(normalize_agent_name("other:haiku-general"), "other:haiku-general");
        assert_eq!(normalize_agent_name("marshalx:haiku-general"), "marshalx:haiku-general");
    }

    #[test]
    fn each_tier_routes_to_a_shipped_agent_on_the_tiers_model() {
        let agents = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agents");
        for tier in Tier::ALL {
            let file = agents.join(format!("{}.md", tier.default_agent()));
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let agent =
                crate::discovery::parse_agent(&text, "", crate::discovery::AgentSource::Plugin).unwrap();
            assert_eq!(agent.name, tier.default_agent(), "{}", file.display());
            assert_eq!(agent.model.as_deref(), Some(tier.default_model()), "{}", file.display());
            assert_eq!(agent.subagent_type(), plugin_subagent_type(tier.default_agent()));
        }
    }
}
