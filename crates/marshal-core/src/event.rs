//! Hook events reduced to what marshal acts on. Anything else is [`Event::Unhandled`], a no-op.

use crate::wire::HookInput;

/// The ids that place an event: which session, which prompt (turn), which project.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TurnKey {
    pub session: String,
    /// Claude Code's id for the user prompt that started the turn; carried by every event of it.
    pub prompt_id: Option<String>,
    pub project: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The user submitted a prompt (UserPromptSubmit).
    Prompt { key: TurnKey, prompt: String },
    /// The model called the subagent tool (PreToolUse on `Agent`, or `Task` on older versions).
    AgentCall { key: TurnKey, call: AgentCall },
    /// The main agent finished its turn (Stop).
    Stop { key: TurnKey, stop_hook_active: bool },
    /// The session ended (SessionEnd): nothing more can happen to its open turns.
    SessionEnd { key: TurnKey },
    /// A turn ended on an API error (StopFailure): `error` is Claude Code's kind of failure
    /// (`rate_limit` when the quota ran out).
    StopFailure { key: TurnKey, error: String },
    /// A subagent finished (SubagentStop).
    SubagentStop { key: TurnKey, agent_id: String, agent_type: Option<String> },
    /// Any other event or tool: marshal does nothing with it.
    Unhandled { event_name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCall {
    /// `subagent_type` exactly as the model passed it; Claude Code's default when absent.
    pub subagent_type: String,
    pub model: Option<String>,
    pub tool_use_id: Option<String>,
    /// Set when the call was made inside a subagent rather than by the main agent.
    pub inside_subagent: Option<String>,
    /// The complete tool input, as the model sent it (a rewrite must send all of it back).
    pub tool_input: serde_json::Value,
}

/// The agent Claude Code runs when `subagent_type` is left out.
pub const DEFAULT_SUBAGENT_TYPE: &str = "general-purpose";

/// The longest id or name kept from an event (ids, agent names, models); longer values are cut.
/// Every such value ends up in the session journal and the ledger, so their size is bounded here,
/// at the edge, and no one field can grow a journal past what is read back.
pub const MAX_NAME_BYTES: usize = 256;
/// The longest working directory kept.
pub const MAX_PATH_BYTES: usize = 4096;

/// Cuts `text` to at most `max` bytes, on a character boundary, marking the cut with `…`.
pub fn capped(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

fn capped_name(text: Option<String>) -> Option<String> {
    text.map(|t| capped(t, MAX_NAME_BYTES))
}

impl Event {
    pub fn from_wire(input: HookInput) -> Event {
        let event_name = capped(input.hook_event_name.clone().unwrap_or_default(), MAX_NAME_BYTES);
        let key = TurnKey {
            session: capped(input.session_id.clone().unwrap_or_default(), MAX_NAME_BYTES),
            prompt_id: capped_name(input.prompt_id.clone()),
            project: input.cwd.clone().map(|cwd| capped(cwd, MAX_PATH_BYTES)),
        };
        match event_name.as_str() {
            "UserPromptSubmit" => Event::Prompt { key, prompt: input.prompt.unwrap_or_default() },
            "PreToolUse" if is_subagent_tool(input.tool_name.as_deref()) => {
                Event::AgentCall { key, call: agent_call(&input) }
            }
            "Stop" => Event::Stop { key, stop_hook_active: input.stop_hook_active.unwrap_or(false) },
            "SessionEnd" => Event::SessionEnd { key },
            "StopFailure" => Event::StopFailure {
                key,
                error: capped(input.error.unwrap_or_else(|| "unknown".into()), MAX_NAME_BYTES),
            },
            "SubagentStop" => Event::SubagentStop {
                key,
                agent_id: capped(input.agent_id.unwrap_or_default(), MAX_NAME_BYTES),
                agent_type: capped_name(input.agent_type),
            },
            _ => Event::Unhandled { event_name },
        }
    }
}

fn is_subagent_tool(tool_name: Option<&str>) -> bool {
    matches!(tool_name, Some("Agent" | "Task"))
}

fn agent_call(input: &HookInput) -> AgentCall {
    let field = |name: &str| {
        input
            .tool_input
            .as_ref()
            .and_then(|tool_input| tool_input.get(name))
            .and_then(|value| value.as_str())
            .filter(|value| !value.trim().is_empty())
            .map(|value| capped(value.to_string(), MAX_NAME_BYTES))
    };
    AgentCall {
        subagent_type: field("subagent_type").unwrap_or_else(|| DEFAULT_SUBAGENT_TYPE.to_string()),
        model: field("model"),
        tool_use_id: capped_name(input.tool_use_id.clone()),
        inside_subagent: capped_name(input.agent_id.clone().filter(|id| !id.is_empty())),
        tool_input: input.tool_input.clone().unwrap_or(serde_json::Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_hook_input;

    fn event(raw: &str) -> Event {
        Event::from_wire(parse_hook_input(raw.as_bytes()).unwrap())
    }

    #[test]
    fn agent_call_from_main_agent() {
        let e = event(
            r#"{"session_id":"s","prompt_id":"p","cwd":"/w","hook_event_name":"PreToolUse","tool_name":"Agent","tool_input":{"description":"d","prompt":"x","subagent_type":"marshal:haiku-general","model":"haiku"},"tool_use_id":"toolu_1"}"#,
        );
        let Event::AgentCall { key, call } = e else { panic!("{e:?}") };
        assert_eq!(key.prompt_id.as_deref(), Some("p"));
        assert_eq!(call.subagent_type, "marshal:haiku-general");
        assert_eq!(call.model.as_deref(), Some("haiku"));
        assert_eq!(call.inside_subagent, None);
    }

    #[test]
    fn agent_call_inside_subagent_and_legacy_task_name() {
        let e = event(
            r#"{"session_id":"s","hook_event_name":"PreToolUse","tool_name":"Task","agent_id":"a1","agent_type":"x","tool_input":{}}"#,
        );
        let Event::AgentCall { call, .. } = e else { panic!("{e:?}") };
        assert_eq!(call.subagent_type, DEFAULT_SUBAGENT_TYPE);
        assert_eq!(call.inside_subagent.as_deref(), Some("a1"));
    }

    #[test]
    fn other_tools_and_events_are_unhandled() {
        assert!(matches!(
            event(r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{}}"#),
            Event::Unhandled { .. }
        ));
        assert!(matches!(event(r#"{"hook_event_name":"SessionStart"}"#), Event::Unhandled { .. }));
        assert!(matches!(
            event(r#"{"hook_event_name":"SessionEnd","session_id":"s"}"#),
            Event::SessionEnd { .. }
        ));
        assert!(matches!(event(r#"{}"#), Event::Unhandled { .. }));
    }

    #[test]
    fn long_names_and_ids_are_cut_at_the_edge() {
        let huge = "é".repeat(300_000);
        let raw = serde_json::json!({"hook_event_name":"PreToolUse","session_id":huge,"prompt_id":huge,
            "tool_name":"Agent","tool_use_id":huge,"tool_input":{"subagent_type":huge,"model":huge}});
        let Event::AgentCall { key, call } = event(&raw.to_string()) else { panic!() };
        for text in
            [&key.session, key.prompt_id.as_ref().unwrap(), &call.subagent_type, call.model.as_ref().unwrap()]
        {
            assert!(text.len() <= MAX_NAME_BYTES && text.ends_with('…'), "{} bytes", text.len());
        }
        assert_eq!(capped("short".into(), 10), "short");
        assert_eq!(capped("abcdef".into(), 5), "ab…");
    }

    #[test]
    fn stop_and_subagent_stop() {
        assert!(matches!(
            event(r#"{"hook_event_name":"Stop","session_id":"s","stop_hook_active":true}"#),
            Event::Stop { stop_hook_active: true, .. }
        ));
        let e = event(
            r#"{"hook_event_name":"SubagentStop","session_id":"s","agent_id":"a9","agent_type":"marshal:haiku-general"}"#,
        );
        assert!(matches!(e, Event::SubagentStop { ref agent_id, .. } if agent_id == "a9"));
        let e = event(
            r#"{"hook_event_name":"StopFailure","session_id":"s","prompt_id":"p","error":"rate_limit"}"#,
        );
        assert!(matches!(e, Event::StopFailure { ref error, .. } if error == "rate_limit"), "{e:?}");
        let e = event(r#"{"hook_event_name":"StopFailure","session_id":"s","error":7}"#);
        assert!(matches!(e, Event::StopFailure { ref error, .. } if error == "unknown"), "{e:?}");
    }
}
