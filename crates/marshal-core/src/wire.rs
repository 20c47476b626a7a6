//! The exact JSON Claude Code exchanges with hooks (verified on 2.1.329 by the end-to-end tests).
//!
//! Every field is optional, unknown fields are ignored, and a field of an unexpected type is
//! read as absent, so a newer Claude Code that adds, drops or retypes a field cannot make an
//! event unreadable. Domain code never sees these types: see [`crate::event`].

use serde::{Deserialize, Deserializer, Serialize};

/// One hook event as it arrives on stdin. Fields of all events we handle, flattened.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HookInput {
    #[serde(deserialize_with = "lenient_string")]
    pub hook_event_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub session_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub cwd: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub prompt_id: Option<String>,
    /// UserPromptSubmit.
    #[serde(deserialize_with = "lenient_string")]
    pub prompt: Option<String>,
    /// PreToolUse.
    #[serde(deserialize_with = "lenient_string")]
    pub tool_name: Option<String>,
    pub tool_input: Option<serde_json::Value>,
    #[serde(deserialize_with = "lenient_string")]
    pub tool_use_id: Option<String>,
    /// Present on every event fired inside a subagent: the reliable "this is a subagent" signal.
    #[serde(deserialize_with = "lenient_string")]
    pub agent_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub agent_type: Option<String>,
    /// Stop and SubagentStop.
    #[serde(deserialize_with = "lenient_bool")]
    pub stop_hook_active: Option<bool>,
    /// StopFailure: the kind of API failure (`rate_limit`, `server_error`, ...).
    #[serde(deserialize_with = "lenient_string")]
    pub error: Option<String>,
}

/// Reads a string field; any other JSON type counts as absent rather than failing the event.
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    })
}

/// Reads a boolean field; any other JSON type counts as absent.
fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    Ok(serde_json::Value::deserialize(deserializer)?.as_bool())
}

/// What a UserPromptSubmit hook prints to add context for the model.
#[derive(Debug, Serialize)]
pub struct AdditionalContextOutput<'a> {
    #[serde(rename = "hookSpecificOutput")]
    pub hook_specific_output: AdditionalContext<'a>,
}

#[derive(Debug, Serialize)]
pub struct AdditionalContext<'a> {
    #[serde(rename = "hookEventName")]
    pub hook_event_name: &'a str,
    #[serde(rename = "additionalContext")]
    pub additional_context: &'a str,
}

impl<'a> AdditionalContextOutput<'a> {
    pub fn user_prompt_submit(text: &'a str) -> Self {
        AdditionalContextOutput {
            hook_specific_output: AdditionalContext {
                hook_event_name: "UserPromptSubmit",
                additional_context: text,
            },
        }
    }
}

/// PreToolUse: allow the call as usual, and add `text` to the model's context.
pub fn pre_tool_context(text: &str) -> serde_json::Value {
    serde_json::json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "additionalContext": text}})
}

/// PreToolUse: refuse the call; the model receives `reason` as the tool's error and can retry.
pub fn pre_tool_deny(reason: &str) -> serde_json::Value {
    serde_json::json!({"hookSpecificOutput": {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": reason,
    }})
}

/// PreToolUse: run the tool with `input` instead. Claude Code replaces the whole input, so it
/// must be complete.
pub fn pre_tool_rewrite(input: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "updatedInput": input}})
}

/// Stop: block, with `reason` for the model.
pub fn block(reason: &str) -> serde_json::Value {
    serde_json::json!({"decision": "block", "reason": reason})
}

/// UserPromptSubmit: no model call; Claude Code shows `answer` (the orchestrated result) as the
/// block message, without the "Original prompt:" suffix it would otherwise add.
pub fn block_prompt(answer: &str) -> serde_json::Value {
    serde_json::json!({
        "decision": "block",
        "reason": answer,
        "hookSpecificOutput": {"hookEventName": "UserPromptSubmit", "suppressOriginalPrompt": true},
    })
}

/// Parses a hook event. JavaScript may emit lone UTF-16 surrogates (`"\ud83d"`), which strict
/// JSON parsers reject; rather than lose the event, those escapes are replaced by U+FFFD.
pub fn parse_hook_input(bytes: &[u8]) -> serde_json::Result<HookInput> {
    let first_error = match serde_json::from_slice(bytes) {
        Ok(input) => return Ok(input),
        Err(err) => err,
    };
    // Invalid UTF-8 (a paste from a binary file, a cut multi-byte character): keep the event,
    // with U+FFFD for the bad bytes.
    let text = String::from_utf8_lossy(bytes);
    let repaired = replace_lone_surrogates(text.as_bytes());
    match (&text, repaired) {
        (_, Some(repaired)) => serde_json::from_slice(&repaired),
        (std::borrow::Cow::Owned(lossy), None) => serde_json::from_str(lossy),
        (std::borrow::Cow::Borrowed(_), None) => Err(first_error),
    }
}

/// Rewrites `\uD800`-`\uDFFF` escapes that are not part of a valid pair into `\uFFFD`.
/// Returns `None` when there was nothing to replace.
pub(crate) fn replace_lone_surrogates(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            if bytes[i + 1] == b'u' {
                if let Some(unit) = hex_unit(bytes, i + 2) {
                    let is_high = (0xD800..0xDC00).contains(&unit);
                    let is_low = (0xDC00..0xE000).contains(&unit);
                    let pairs_with_next = is_high
                        && bytes.get(i + 6) == Some(&b'\\')
                        && bytes.get(i + 7) == Some(&b'u')
                        && hex_unit(bytes, i + 8).is_some_and(|n| (0xDC00..0xE000).contains(&n));
                    if pairs_with_next {
                        out.extend_from_slice(&bytes[i..i + 12]);
                        i += 12;
                        continue;
                    }
                    if is_high || is_low {
                        out.extend_from_slice(b"\\uFFFD");
                        changed = true;
                        i += 6;
                        continue;
                    }
                }
            }
            // Any other escape: copy both bytes so an escaped backslash is never re-read.
            out.extend_from_slice(&bytes[i..i + 2]);
            i += 2;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    changed.then_some(out)
}

fn hex_unit(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_user_prompt_submit_payload() {
        let raw = br#"{"session_id":"71067479-796b-472a-9867-6e6c555b3315","transcript_path":"/t.jsonl","cwd":"/tmp/proj","prompt_id":"afd1254e","permission_mode":"default","hook_event_name":"UserPromptSubmit","prompt":"rename foo"}"#;
        let input = parse_hook_input(raw).unwrap();
        assert_eq!(input.hook_event_name.as_deref(), Some("UserPromptSubmit"));
        assert_eq!(input.prompt.as_deref(), Some("rename foo"));
        assert_eq!(input.prompt_id.as_deref(), Some("afd1254e"));
    }

    #[test]
    fn tolerates_nulls_and_unknown_fields() {
        let raw = br#"{"hook_event_name":"Stop","session_id":null,"brand_new_field":[1,2],"stop_hook_active":false}"#;
        let input = parse_hook_input(raw).unwrap();
        assert_eq!(input.session_id, None);
        assert_eq!(input.stop_hook_active, Some(false));
    }

    #[test]
    fn wrong_typed_fields_read_as_absent() {
        let raw = br#"{"hook_event_name":"Stop","session_id":42,"prompt_id":["x"],"stop_hook_active":"no"}"#;
        let input = parse_hook_input(raw).unwrap();
        assert_eq!(input.hook_event_name.as_deref(), Some("Stop"));
        assert_eq!((input.session_id, input.prompt_id, input.stop_hook_active), (None, None, None));
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let raw = br#"{"hook_event_name":"UserPromptSubmit","prompt":"a\ud83d b \ud83d\ude00 c\\ud83d"}"#;
        let input = parse_hook_input(raw).unwrap();
        assert_eq!(input.prompt.as_deref(), Some("a\u{FFFD} b \u{1F600} c\\ud83d"));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_lost() {
        let mut raw = br#"{"hook_event_name":"UserPromptSubmit","prompt":"caf"#.to_vec();
        raw.extend_from_slice(&[0xE9, 0xFF]);
        raw.extend_from_slice(br#" \ud83d ok"}"#);
        let input = parse_hook_input(&raw).unwrap();
        assert_eq!(input.prompt.as_deref(), Some("caf\u{FFFD}\u{FFFD} \u{FFFD} ok"));
    }

    #[test]
    fn deeply_nested_json_is_an_error_not_a_crash() {
        let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_hook_input(nested.as_bytes()).is_err());
        let inside =
            format!(r#"{{"hook_event_name":"Stop","tool_input":{}1{}}}"#, "[".repeat(5000), "]".repeat(5000));
        assert!(parse_hook_input(inside.as_bytes()).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_hook_input(b"not json").is_err());
        assert!(parse_hook_input(b"").is_err());
    }

    #[test]
    fn additional_context_output_matches_claude_code_schema() {
        let json = serde_json::to_string(&AdditionalContextOutput::user_prompt_submit("hi")).unwrap();
        assert_eq!(
            json,
            r#"{"hookSpecificOutput":{"hookEventName":"UserPromptSubmit","additionalContext":"hi"}}"#
        );
    }
}
