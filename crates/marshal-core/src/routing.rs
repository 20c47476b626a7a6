//! The routing core: a deterministic decision from prompt text to a recommendation.
//!
//! First version: weighted keyword signals per tier plus size and path counts. No regex: the
//! prompt is split into lowercase ASCII words once and matched against small static tables, so
//! a decision costs microseconds and nothing is built per process.

use serde::Serialize;

use crate::agents::{plugin_subagent_type, Tier};

/// What marshal recommends for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// The agent's bare name, e.g. `haiku-general`.
    pub agent: String,
    /// The exact string to pass as the Agent tool's `subagent_type`, e.g. `marshal:haiku-general`.
    pub subagent_type: String,
    pub tier: Tier,
    pub model: String,
    /// 0.0 to 1.0: how clearly the signals pointed at this tier.
    pub confidence: f64,
    pub reasons: Vec<String>,
}

/// Why marshal stays out of a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbstainReason {
    Empty,
    ChitChat,
    SlashCommand,
    /// Claude Code's own notice that a background subagent finished; not a user request.
    TaskNotification,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Decision {
    Abstain(AbstainReason),
    Route(Recommendation),
}

/// Only the start of a very long prompt is scanned for keywords; its size still counts in full.
const SCAN_LIMIT_BYTES: usize = 64 * 1024;

/// Decides how to handle `prompt`.
pub fn route(prompt: &str) -> Decision {
    let trimmed = prompt.trim_start();
    if let Some(reason) = abstain_reason(trimmed) {
        return Decision::Abstain(reason);
    }
    let words = Words::new(prompt);
    if is_chit_chat(prompt, &words) {
        return Decision::Abstain(AbstainReason::ChitChat);
    }
    Decision::Route(recommend(&words))
}

fn abstain_reason(trimmed: &str) -> Option<AbstainReason> {
    if trimmed.is_empty() {
        Some(AbstainReason::Empty)
    } else if trimmed.starts_with("<task-notification>") {
        Some(AbstainReason::TaskNotification)
    } else if is_slash_command(trimmed) {
        Some(AbstainReason::SlashCommand)
    } else {
        None
    }
}

/// Top-level directories of a Unix file system: `/tmp is full` names a path, not a command.
const ROOT_DIRS: &[&str] = &[
    "bin",
    "boot",
    "dev",
    "etc",
    "home",
    "lib",
    "lib64",
    "media",
    "mnt",
    "opt",
    "proc",
    "root",
    "run",
    "sbin",
    "srv",
    "sys",
    "tmp",
    "usr",
    "var",
    "work",
    "workspace",
    "Users",
    "Volumes",
];

/// `/compact`, `/review 12`, `/plugin:cmd` are commands; `/etc/hosts is broken` and `/tmp is
/// full` are not.
fn is_slash_command(trimmed: &str) -> bool {
    let Some(rest) = trimmed.strip_prefix('/') else { return false };
    let command = rest.split_whitespace().next().unwrap_or("");
    if ROOT_DIRS.contains(&command) {
        return false;
    }
    command.starts_with(|c: char| c.is_ascii_alphabetic())
        && command.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'))
}

/// Words that, on their own, make a message social rather than a request.
const CHIT_CHAT_WORDS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "yo",
    "thanks",
    "thank",
    "you",
    "thx",
    "ty",
    "ok",
    "okay",
    "k",
    "cool",
    "great",
    "nice",
    "awesome",
    "perfect",
    "good",
    "morning",
    "afternoon",
    "evening",
    "night",
    "bye",
    "goodbye",
    "cheers",
    "yes",
    "yep",
    "yeah",
    "no",
    "nope",
    "sure",
    "lol",
    "np",
    "how",
    "are",
    "is",
    "it",
    "going",
    "so",
    "much",
    "very",
    "appreciate",
    "that",
    "works",
    "there",
    "again",
    "all",
    "well",
    "done",
    "wow",
    "sounds",
    "got",
    "love",
    "merci",
    "beaucoup",
    "danke",
    "gracias",
    "grazie",
    "obrigado",
    "ciao",
    "hola",
    "bonjour",
];

/// Up to this many characters, a prompt with no ASCII word at all ("👍", "谢谢", "?") is taken
/// as chit-chat; longer ones are requests in another script and are routed.
const WORDLESS_CHIT_CHAT_CHARS: usize = 12;

fn is_chit_chat(prompt: &str, words: &Words) -> bool {
    let count = words.list.len();
    if count == 0 {
        return prompt.trim().chars().count() <= WORDLESS_CHIT_CHAT_CHARS;
    }
    count <= 8 && words.list.iter().all(|w| CHIT_CHAT_WORDS.contains(&w.as_str()))
}

/// A keyword signal: a word stem (matches words that start with it) or a phrase of whole words.
struct Signal {
    tier: Tier,
    pattern: &'static str,
    weight: f32,
}

const fn signal(tier: Tier, pattern: &'static str, weight: f32) -> Signal {
    Signal { tier, pattern, weight }
}

/// A pattern is a whole word (`fix`), a stem ending in `*` that matches any word starting with
/// it (`refactor*` matches `refactoring`), or several words matched in sequence
/// (`root cause*`). A word right after a negation ("don't refactor", "no tests") does not count.
/// Weights: 1.0 clear, 0.5 suggestive; 1.5 for the clearest hard-task signals.
const SIGNALS: &[Signal] = &[
    // Chores: cheap and fast.
    signal(Tier::Weak, "rename*", 1.0),
    signal(Tier::Weak, "typo*", 1.0),
    signal(Tier::Weak, "spelling", 1.0),
    signal(Tier::Weak, "reformat*", 1.0),
    signal(Tier::Weak, "format*", 0.5),
    signal(Tier::Weak, "lint*", 1.0),
    signal(Tier::Weak, "whitespace", 1.0),
    signal(Tier::Weak, "indent*", 1.0),
    signal(Tier::Weak, "docstring*", 1.0),
    signal(Tier::Weak, "readme", 0.5),
    signal(Tier::Weak, "changelog", 1.0),
    signal(Tier::Weak, "bump*", 1.0),
    signal(Tier::Weak, "list", 0.5),
    signal(Tier::Weak, "grep*", 1.0),
    signal(Tier::Weak, "find", 0.5),
    signal(Tier::Weak, "locate", 0.5),
    signal(Tier::Weak, "count", 0.5),
    signal(Tier::Weak, "summari*", 0.5),
    signal(Tier::Weak, "translate", 0.5),
    signal(Tier::Weak, "sort", 0.5),
    signal(Tier::Weak, "unused", 1.0),
    signal(Tier::Weak, "comment", 0.5),
    signal(Tier::Weak, "comments", 0.5),
    signal(Tier::Weak, "where is", 1.0),
    signal(Tier::Weak, "what is", 0.5),
    signal(Tier::Weak, "show me", 1.0),
    signal(Tier::Weak, "quick", 0.5),
    signal(Tier::Weak, "simple", 0.5),
    signal(Tier::Weak, "just", 0.5),
    // Everyday engineering.
    signal(Tier::Base, "implement*", 1.0),
    signal(Tier::Base, "add", 0.5),
    signal(Tier::Base, "adding", 0.5),
    signal(Tier::Base, "write", 0.5),
    signal(Tier::Base, "create", 0.5),
    signal(Tier::Base, "build", 0.5),
    signal(Tier::Base, "fix", 1.0),
    signal(Tier::Base, "fixing", 1.0),
    signal(Tier::Base, "bug", 1.0),
    signal(Tier::Base, "bugs", 1.0),
    signal(Tier::Base, "test*", 1.0),
    signal(Tier::Base, "feature*", 1.0),
    signal(Tier::Base, "endpoint*", 1.0),
    signal(Tier::Base, "function*", 0.5),
    signal(Tier::Base, "debug*", 1.0),
    signal(Tier::Base, "error*", 0.5),
    signal(Tier::Base, "crash*", 1.0),
    signal(Tier::Base, "failing", 1.0),
    signal(Tier::Base, "update", 0.5),
    signal(Tier::Base, "explain*", 0.5),
    // Hard work: worth the strongest model.
    signal(Tier::Strong, "architect*", 1.5),
    signal(Tier::Strong, "design*", 1.0),
    signal(Tier::Strong, "redesign*", 1.5),
    signal(Tier::Strong, "refactor*", 1.0),
    signal(Tier::Strong, "rewrite*", 1.0),
    signal(Tier::Strong, "migrat*", 1.0),
    signal(Tier::Strong, "concurren*", 1.5),
    signal(Tier::Strong, "race condition*", 1.5),
    signal(Tier::Strong, "deadlock*", 1.5),
    signal(Tier::Strong, "security", 1.5),
    signal(Tier::Strong, "vulnerab*", 1.5),
    signal(Tier::Strong, "threat model*", 1.5),
    signal(Tier::Strong, "performance", 1.0),
    signal(Tier::Strong, "optimi*", 1.0),
    signal(Tier::Strong, "bottleneck*", 1.0),
    signal(Tier::Strong, "scalab*", 1.5),
    signal(Tier::Strong, "distributed", 1.5),
    signal(Tier::Strong, "consensus", 1.5),
    signal(Tier::Strong, "root cause*", 1.5),
    signal(Tier::Strong, "investigat*", 1.0),
    signal(Tier::Strong, "algorithm*", 1.0),
    signal(Tier::Strong, "trade off*", 1.0),
    signal(Tier::Strong, "tradeoff*", 1.0),
    signal(Tier::Strong, "memory leak*", 1.5),
    signal(Tier::Strong, "flaky", 1.0),
    signal(Tier::Strong, "intermittent*", 1.0),
    signal(Tier::Strong, "from scratch", 1.0),
    signal(Tier::Strong, "end to end", 0.5),
];

/// The prompt as lowercase ASCII words (letters and digits), scanned once.
struct Words {
    list: Vec<String>,
    total_words: usize,
    paths: usize,
}

impl Words {
    fn new(prompt: &str) -> Words {
        let scanned = truncate_at_char_boundary(prompt, SCAN_LIMIT_BYTES);
        let list: Vec<String> = scanned
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        let paths = prompt.split_whitespace().filter(|t| looks_like_path(t)).count();
        let total_words = prompt.split_whitespace().count();
        Words { list, total_words, paths }
    }

    /// Whether `pattern` (see [`SIGNALS`]) occurs, not right after a negation.
    fn matches(&self, pattern: &str) -> bool {
        let (body, stem) = match pattern.strip_suffix('*') {
            Some(body) => (body, true),
            None => (pattern, false),
        };
        let parts: Vec<&str> = body.split(' ').collect();
        let last = parts.len() - 1;
        self.list.windows(parts.len()).enumerate().any(|(at, window)| {
            let hit = window.iter().zip(&parts).enumerate().all(|(i, (word, part))| {
                if i == last && stem {
                    word.starts_with(part)
                } else {
                    word == part
                }
            });
            hit && !self.negated_before(at)
        })
    }

    /// "don't X", "do not X", "no X", "never X", "without X", "avoid X", "skip X".
    fn negated_before(&self, at: usize) -> bool {
        let word = |back: usize| at.checked_sub(back).map(|i| self.list[i].as_str());
        matches!(word(1), Some("not" | "no" | "never" | "without" | "avoid" | "skip" | "dont"))
            || (word(2) == Some("don") && word(1) == Some("t"))
    }
}

fn truncate_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `src/main.rs`, `./x`, `Cargo.toml`: a token with a slash, or a dotted name with a short
/// alphabetic extension.
fn looks_like_path(token: &str) -> bool {
    let token = token.trim_matches(|c: char| matches!(c, '`' | '"' | '\'' | ',' | ')' | '(' | ':'));
    if token.contains("://") || token.len() < 3 {
        return false;
    }
    if token.contains('/') {
        return true;
    }
    match token.rsplit_once('.') {
        Some((stem, ext)) => {
            !stem.is_empty() && (1..=5).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

#[derive(Default, Clone, Copy)]
struct Scores {
    weak: f32,
    base: f32,
    strong: f32,
}

impl Scores {
    fn add(&mut self, tier: Tier, weight: f32) {
        match tier {
            Tier::Weak => self.weak += weight,
            Tier::Base => self.base += weight,
            Tier::Strong => self.strong += weight,
        }
    }
}

const LONG_REQUEST_WORDS: usize = 300;
const MEDIUM_REQUEST_WORDS: usize = 120;
const SHORT_REQUEST_WORDS: usize = 60;
const MANY_PATHS: usize = 4;

fn recommend(words: &Words) -> Recommendation {
    let mut scores = Scores::default();
    let mut reasons = Vec::new();
    for tier in [Tier::Weak, Tier::Base, Tier::Strong] {
        let hits: Vec<&str> = SIGNALS
            .iter()
            .filter(|s| s.tier == tier && words.matches(s.pattern))
            .map(|s| {
                scores.add(tier, s.weight);
                s.pattern.trim_end_matches('*')
            })
            .collect();
        if !hits.is_empty() {
            reasons.push(format!("{} keywords: {}", tier_label(tier), hits.join(", ")));
        }
    }
    if words.total_words > LONG_REQUEST_WORDS {
        scores.add(Tier::Strong, 1.0);
        reasons.push(format!("long request ({} words)", words.total_words));
    } else if words.total_words > MEDIUM_REQUEST_WORDS {
        scores.add(Tier::Base, 1.0);
        reasons.push(format!("medium-length request ({} words)", words.total_words));
    }
    if words.paths >= MANY_PATHS {
        scores.add(Tier::Strong, 1.0);
        reasons.push(format!("names {} files or paths", words.paths));
    }

    let (tier, margin) = choose_tier(&scores, words.total_words);
    if scores.weak + scores.base + scores.strong == 0.0 {
        reasons.push("no clear signal: everyday default".to_string());
    }
    let agent = tier.default_agent();
    Recommendation {
        agent: agent.to_string(),
        subagent_type: plugin_subagent_type(agent),
        tier,
        model: tier.default_model().to_string(),
        confidence: confidence(margin),
        reasons,
    }
}

fn tier_label(tier: Tier) -> &'static str {
    match tier {
        Tier::Weak => "chore",
        Tier::Base => "everyday",
        Tier::Strong => "hard-task",
    }
}

/// Strong wins any tie it is part of (under-powering hard work costs more than over-powering);
/// weak needs to lead outright on a short request; everything else is base.
/// Returns the tier and its lead over the runner-up.
fn choose_tier(scores: &Scores, total_words: usize) -> (Tier, f32) {
    let Scores { weak, base, strong } = *scores;
    if strong > 0.0 && strong >= weak && strong >= base {
        (Tier::Strong, strong - weak.max(base))
    } else if weak > base && weak > strong && total_words <= SHORT_REQUEST_WORDS {
        (Tier::Weak, weak - base.max(strong))
    } else {
        (Tier::Base, base - weak.max(strong))
    }
}

fn confidence(margin: f32) -> f64 {
    let raw = 0.5 + 0.15 * f64::from(margin);
    (raw.clamp(0.4, 0.95) * 100.0).round() / 100.0
}

/// The short directive injected for the main model (aim: under 60 tokens).
pub fn directive_text(rec: &Recommendation) -> String {
    format!(
        "marshal routing: delegate this request with the Agent tool, subagent_type: \"{}\" \
         ({} tier, {} model). Do not do the work yourself; pass the full request in the prompt.",
        rec.subagent_type,
        rec.tier.as_str(),
        rec.model
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier_of(prompt: &str) -> Tier {
        match route(prompt) {
            Decision::Route(rec) => rec.tier,
            Decision::Abstain(reason) => panic!("{prompt:?} abstained: {reason:?}"),
        }
    }

    fn abstains(prompt: &str) -> AbstainReason {
        match route(prompt) {
            Decision::Abstain(reason) => reason,
            Decision::Route(rec) => panic!("{prompt:?} routed to {}", rec.agent),
        }
    }

    #[test]
    fn abstentions() {
        assert_eq!(abstains(""), AbstainReason::Empty);
        assert_eq!(abstains("   \n"), AbstainReason::Empty);
        assert_eq!(abstains("thanks!"), AbstainReason::ChitChat);
        assert_eq!(abstains("Hi there, how are you?"), AbstainReason::ChitChat);
        assert_eq!(abstains("ok"), AbstainReason::ChitChat);
        assert_eq!(abstains("/compact"), AbstainReason::SlashCommand);
        assert_eq!(abstains("/review 123"), AbstainReason::SlashCommand);
        assert_eq!(abstains("/plugin:cmd arg"), AbstainReason::SlashCommand);
        assert_eq!(
            abstains("<task-notification>\n<task-id>a1</task-id>\n</task-notification>"),
            AbstainReason::TaskNotification
        );
    }

    #[test]
    fn a_path_is_not_a_slash_command() {
        assert_eq!(tier_of("/etc/hosts is broken, fix it"), Tier::Base);
        assert_eq!(tier_of("/tmp is full, clean it up"), Tier::Base);
    }

    #[test]
    fn wordless_short_prompts_and_other_languages_thanks_are_chit_chat() {
        for prompt in ["👍", "谢谢", "?", "merci beaucoup", "danke!"] {
            assert_eq!(abstains(prompt), AbstainReason::ChitChat, "{prompt}");
        }
        assert_eq!(tier_of("请帮我修复登录页面在密码为空时崩溃的问题，并补充测试用例"), Tier::Base);
    }

    #[test]
    fn negated_keywords_do_not_count() {
        assert_eq!(tier_of("don't refactor anything, just fix the typo"), Tier::Weak);
        assert_eq!(tier_of("rename foo, no redesign please"), Tier::Weak);
    }

    #[test]
    fn whole_words_only_unless_a_stem() {
        // "address" is not "add", "country" is not "count".
        let Decision::Route(rec) = route("the address field in the country table") else { panic!() };
        assert!(rec.reasons.iter().all(|r| !r.contains("add") && !r.contains("count")), "{:?}", rec.reasons);
        let Decision::Route(rec) = route("refactoring the parser") else { panic!() };
        assert_eq!(rec.tier, Tier::Strong);
    }

    #[test]
    fn tiers_for_typical_requests() {
        let table = [
            ("rename foo to bar in utils.py", Tier::Weak),
            ("fix the typo in the README", Tier::Weak),
            ("where is the config loaded?", Tier::Weak),
            ("bump the version to 1.2.0 and update the changelog", Tier::Weak),
            ("implement a REST endpoint that returns the user's orders", Tier::Base),
            ("add tests for the parser", Tier::Base),
            ("the login page crashes when the password is empty, fix it", Tier::Base),
            ("design the architecture for multi-region failover", Tier::Strong),
            ("quick question about our distributed consensus design", Tier::Strong),
            ("find the root cause of the deadlock in the job scheduler", Tier::Strong),
            ("refactor the storage layer to support pluggable backends", Tier::Strong),
        ];
        for (prompt, tier) in table {
            assert_eq!(tier_of(prompt), tier, "{prompt}");
        }
    }

    #[test]
    fn size_and_paths_raise_the_tier() {
        let many_paths = "look at src/a.rs src/b.rs src/c.rs src/d.rs and tell me";
        assert_eq!(tier_of(many_paths), Tier::Strong);
        let long = "please handle this ".repeat(120);
        assert_eq!(tier_of(&long), Tier::Strong);
    }

    #[test]
    fn recommendation_carries_agent_model_and_reasons() {
        let Decision::Route(rec) = route("rename foo to bar") else { panic!() };
        assert_eq!(rec.agent, "haiku-general");
        assert_eq!(rec.subagent_type, "marshal:haiku-general");
        assert_eq!(rec.model, "haiku");
        assert!(rec.confidence > 0.5 && rec.confidence <= 0.95);
        assert_eq!(rec.reasons, vec!["chore keywords: rename".to_string()]);
    }

    #[test]
    fn no_signal_defaults_to_base_with_low_confidence() {
        let Decision::Route(rec) = route("the quarterly numbers for the widget team") else { panic!() };
        assert_eq!(rec.tier, Tier::Base);
        assert_eq!(rec.confidence, 0.5);
        assert!(rec.reasons.iter().any(|r| r.contains("no clear signal")));
    }

    #[test]
    fn routing_is_deterministic_and_handles_non_ascii() {
        let prompt = "Renommer la fonction — rename the función ünïcödé 🚀 please";
        assert_eq!(route(prompt), route(prompt));
        let huge = "é".repeat(SCAN_LIMIT_BYTES);
        assert!(matches!(route(&huge), Decision::Route(_)));
    }

    #[test]
    fn directive_is_short_and_names_the_exact_subagent_type() {
        let Decision::Route(rec) = route("rename foo") else { panic!() };
        let text = directive_text(&rec);
        assert!(text.contains("subagent_type: \"marshal:haiku-general\""), "{text}");
        // Rough token estimate: about four characters per token.
        assert!(text.len() / 4 < 60, "{} chars", text.len());
    }
}
