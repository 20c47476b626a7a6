//! Property tests (the fuzzing of this project): the event parser, the ledger reader, the report
//! reader and the router never panic, whatever bytes they get, and keep their invariants.
//!
//! Bounded by default (256 cases each); `scripts/fuzz.sh` runs many more.

use marshal_core::config::Config;
use marshal_core::event::Event;
use marshal_core::ledger;
use marshal_core::report::{self, Filter};
use marshal_core::routing::{route, Decision, RouteInputs};
use marshal_core::wire::parse_hook_input;
use proptest::prelude::*;

/// Bytes that look like hook events: JSON fragments, escapes, surrogates, invalid UTF-8.
fn event_like() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        r#"{"hook_event_name":"UserPromptSubmit","#.as_bytes().to_vec(),
        br#""prompt":""#.to_vec(),
        br#""session_id":"../x","#.to_vec(),
        br#""tool_input":{"subagent_type":"#.to_vec(),
        br#"\ud83d"#.to_vec(),
        br#"\\"#.to_vec(),
        br#"\u0000"#.to_vec(),
        vec![0xFF, 0xC3],
        b"[[[[".to_vec(),
        b"}".to_vec(),
        b"\"".to_vec(),
        b",".to_vec(),
        b"null".to_vec(),
    ]);
    (prop::collection::vec(pieces, 0..24), prop::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(pieces, noise)| pieces.concat().into_iter().chain(noise).collect())
}

proptest! {
    #[test]
    fn the_event_parser_never_panics(bytes in event_like()) {
        if let Ok(input) = parse_hook_input(&bytes) {
            let _ = Event::from_wire(input);
        }
    }

    #[test]
    fn any_string_prompt_round_trips_through_the_parser(prompt in any::<String>()) {
        let json = serde_json::json!({"hook_event_name": "UserPromptSubmit", "prompt": prompt}).to_string();
        let input = parse_hook_input(json.as_bytes()).unwrap();
        prop_assert_eq!(input.prompt.as_deref(), Some(prompt.as_str()));
    }

    #[test]
    fn the_router_never_panics_and_names_a_plugin_or_known_agent(prompt in any::<String>()) {
        let config = Config::default();
        if let Decision::Route(rec) = route(&prompt, &RouteInputs { config: &config, agents: &[], history: None, five_hour_used: None }) {
            prop_assert!(rec.subagent_type.starts_with("marshal:"));
            prop_assert!((1..=10).contains(&rec.score));
            prop_assert!((0.0..=1.0).contains(&rec.confidence));
        }
    }

    #[test]
    fn the_ledger_reader_counts_every_line_once(lines in prop::collection::vec(event_like(), 0..40)) {
        let mut text = Vec::new();
        for line in &lines {
            text.extend(line.iter().filter(|b| **b != b'\n'));
            text.push(b'\n');
        }
        let mut records = 0;
        let stats = ledger::read(&text[..], |_| records += 1).unwrap();
        prop_assert_eq!(stats.records, records);
        let non_blank = text.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).count() as u64;
        prop_assert_eq!(stats.records + stats.corrupt + stats.newer_version, non_blank);
        let report = report::read_ledger_from(&text[..], &Filter::default()).unwrap();
        prop_assert!(report.overall.turns() <= non_blank);
    }
}
