//! What routing reads from a prompt: its words (lowercase ASCII, quoted text left out), its size,
//! the files and paths it names, and whether it is a request at all.
//!
//! Plain string scanning, no regex: this runs inside a hook on every prompt.

/// Only the start of a very long prompt is scanned for words; its size still counts in full.
const SCAN_LIMIT_BYTES: usize = 64 * 1024;

/// Why a prompt is not a request marshal should route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbstainReason {
    Empty,
    /// Chit-chat, off-topic or too vague to act on, as the classifier reads it.
    NotARequest,
    SlashCommand,
    /// Claude Code's own notice that a background subagent finished; not a user request.
    TaskNotification,
}

impl AbstainReason {
    pub fn describe(self) -> &'static str {
        match self {
            AbstainReason::Empty => "the prompt is empty",
            AbstainReason::NotARequest => "not a request to route (chit-chat, off-topic or too vague)",
            AbstainReason::SlashCommand => "a slash command",
            AbstainReason::TaskNotification => "a background-task notification from Claude Code",
        }
    }
}

/// A rule pattern, parsed once: a word (`fix`), a stem ending in `*` (`refactor*` matches
/// `refactoring`), or words in sequence (`root cause*`); a leading `^` anchors it to the
/// prompt's first word (`^what`). Words are lowercase letters and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The pattern as written, normalised (lowercase, single spaces). Built-in patterns borrow
    /// their text: a hook builds the built-in rules on every run, so they cost no allocation.
    text: std::borrow::Cow<'static, str>,
    stem: bool,
    anchored: bool,
}

impl Pattern {
    /// `None` when `text` is not a pattern (empty, or a word with other characters).
    pub fn parse(text: &str) -> Option<Pattern> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        Pattern::checked(std::borrow::Cow::Owned(text))
    }

    /// A compiled-in pattern, already normalised (a test checks every one).
    pub fn builtin(text: &'static str) -> Pattern {
        let (anchored, stem) = (text.starts_with('^'), text.ends_with('*'));
        Pattern { text: std::borrow::Cow::Borrowed(text), stem, anchored }
    }

    fn checked(text: std::borrow::Cow<'static, str>) -> Option<Pattern> {
        let (anchored, stem) = (text.starts_with('^'), text.ends_with('*'));
        let pattern = Pattern { text, stem, anchored };
        let body = pattern.body();
        let valid = !body.is_empty()
            && body.split(' ').all(|w| !w.is_empty() && w.chars().all(char::is_alphanumeric));
        valid.then_some(pattern)
    }

    /// The words, without the `^` and `*` marks.
    fn body(&self) -> &str {
        let text: &str = &self.text;
        let text = text.strip_prefix('^').unwrap_or(text);
        text.strip_suffix('*').unwrap_or(text)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern as an explanation shows what matched (without the stem's `*`).
    pub fn label(&self) -> &str {
        self.text.trim_end_matches('*')
    }
}

/// The analysed prompt.
#[derive(Debug, Clone)]
pub struct PromptText {
    /// Lowercase ASCII words outside quotes, code and file paths, in order.
    pub words: Vec<String>,
    /// Indices into `words`, sorted by the word: exact and prefix look-ups by binary search.
    sorted: Vec<u32>,
    /// The words' first two bytes, as bits: most patterns are absent from a prompt, and this
    /// tells so without a search (routing tries some 170 patterns per prompt).
    starts: StartFilter,
    /// Words of prose (outside code fences), quotes included.
    pub prose_words: usize,
    /// Lines inside ``` fences: pasted code, logs, traces.
    pub pasted_lines: usize,
    /// Distinct tokens that look like files or paths (`src/api.rs`, `./x`, `Cargo.toml`).
    pub paths: usize,
}

impl PromptText {
    pub fn new(prompt: &str) -> PromptText {
        let scanned = truncate_at_char_boundary(prompt, SCAN_LIMIT_BYTES);
        let (prose, pasted_lines) = split_code_fences(scanned);
        let prose_words = prose.split_whitespace().count();
        // A path names a file, not the task: "update SECURITY.md" is not a security review.
        let without_paths: String = prose
            .split_inclusive(char::is_whitespace)
            .map(|token| if looks_like_path(trim_token(token.trim_end())) { " " } else { token })
            .collect();
        let words = words_of(&strip_quoted(&without_paths));
        let mut sorted: Vec<u32> = (0..words.len() as u32).collect();
        sorted.sort_unstable_by(|a, b| words[*a as usize].cmp(&words[*b as usize]));
        let mut starts = StartFilter::default();
        for word in &words {
            starts.insert(word);
        }
        let mut paths: Vec<&str> =
            prompt.split_whitespace().map(trim_token).filter(|t| looks_like_path(t)).collect();
        paths.sort_unstable();
        paths.dedup();
        PromptText { words, sorted, starts, prose_words, pasted_lines, paths: paths.len() }
    }

    /// Whether `pattern` occurs, not right after a negation.
    pub fn matches(&self, pattern: &Pattern) -> bool {
        let (anchored, stem) = (pattern.anchored, pattern.stem);
        let mut words = pattern.body().split(' ');
        let Some(first) = words.next() else { return false };
        // At most a few words: a small stack of slices, no allocation for one-word patterns.
        let rest: Vec<&str> = words.collect();
        let word_matches = |word: &str, part: &str, is_last: bool| {
            if is_last && stem {
                word.starts_with(part)
            } else {
                word == part
            }
        };
        let first_is_stem = stem && rest.is_empty();
        self.positions_of(first, first_is_stem).any(|at| {
            (!anchored || at == 0)
                && rest.iter().enumerate().all(|(i, part)| {
                    self.words.get(at + 1 + i).is_some_and(|w| word_matches(w, part, i + 1 == rest.len()))
                })
                && !self.negated_before(at)
        })
    }

    /// Positions of `word` (or of words starting with it, for a stem), by binary search.
    fn positions_of<'a>(&'a self, word: &'a str, stem: bool) -> impl Iterator<Item = usize> + 'a {
        let key = |i: &u32| self.words[*i as usize].as_str();
        let absent = !self.starts.may_hold(word, stem);
        let start = if absent { self.sorted.len() } else { self.sorted.partition_point(|i| key(i) < word) };
        self.sorted[start..]
            .iter()
            .take_while(move |i| if stem { key(i).starts_with(word) } else { key(i) == word })
            .map(|i| *i as usize)
    }

    /// "don't X", "do not X", "no X", "never X", "without X", "avoid X", "skip X", also with an
    /// article between ("not the tests").
    fn negated_before(&self, at: usize) -> bool {
        let word = |back: usize| at.checked_sub(back).map(|i| self.words[i].as_str());
        let article = matches!(word(1), Some("the" | "a" | "an" | "any"));
        let (near, far) = if article { (2, 3) } else { (1, 2) };
        matches!(word(near), Some("not" | "no" | "never" | "without" | "avoid" | "skip" | "dont"))
            || (word(far) == Some("don") && word(near) == Some("t"))
    }
}

/// A 1,024-bit set of the words' first two bytes (one byte for one-letter words).
#[derive(Debug, Clone, Default)]
struct StartFilter([u64; 16]);

impl StartFilter {
    fn bit(start: &[u8]) -> usize {
        let pair = u32::from(start[0]) << 8 | start.get(1).map_or(0, |b| u32::from(*b));
        // Fibonacci hashing: the top 10 bits of the product spread neighbouring pairs apart.
        (pair.wrapping_mul(0x9E37_79B1) >> 22) as usize
    }

    fn insert(&mut self, word: &str) {
        if !word.is_empty() {
            let bit = StartFilter::bit(word.as_bytes());
            self.0[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// False only when no word is `word` (or, for a stem, starts with it).
    fn may_hold(&self, word: &str, stem: bool) -> bool {
        // A one-letter stem ("a*") is shared by words of any second letter.
        if word.is_empty() || (stem && word.len() < 2) {
            return true;
        }
        let bit = StartFilter::bit(word.as_bytes());
        self.0[bit / 64] & (1 << (bit % 64)) != 0
    }
}

/// Whether the prompt is plainly not a request (empty, a notification, a slash command).
/// Chit-chat, off-topic and vague prompts are the classifier's to judge.
pub fn abstain_reason(prompt: &str) -> Option<AbstainReason> {
    let trimmed = prompt.trim_start();
    if trimmed.trim_end().is_empty() {
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
    !ROOT_DIRS.contains(&command)
        && command.starts_with(|c: char| c.is_ascii_alphabetic())
        && command.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'))
}

pub(crate) fn truncate_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Separates prose from ``` fenced blocks; returns the prose and the number of fenced lines.
pub(crate) fn split_code_fences(text: &str) -> (String, usize) {
    let mut prose = String::with_capacity(text.len());
    let mut fenced = 0;
    let mut inside = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
        } else if inside {
            fenced += 1;
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    (prose, fenced)
}

/// Leaves out text in double quotes, backticks and 'single quotes' (a quote at a word
/// boundary, closed within 60 characters): quoted text is data ("fix the typo in the word
/// 'architecture'"), not what the user asks for. Apostrophes inside words are kept.
pub(crate) fn strip_quoted(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opens =
            matches!(c, '"' | '`' | '\u{201c}') || (c == '\'' && (i == 0 || !chars[i - 1].is_alphanumeric()));
        if opens {
            let close = match c {
                '\u{201c}' => '\u{201d}',
                other => other,
            };
            let end = chars[i + 1..].iter().take(60).position(|&d| d == close).map(|p| i + 1 + p);
            let closes_at_boundary =
                |e: usize| close != '\'' || chars.get(e + 1).is_none_or(|n| !n.is_alphanumeric());
            if let Some(end) = end.filter(|&e| e > i + 1 && closes_at_boundary(e)) {
                out.push(' ');
                i = end + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Lowercase ASCII words of `text`, in order.
pub fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn trim_token(token: &str) -> &str {
    token
        .trim_matches(|c: char| matches!(c, '`' | '"' | '\'' | ',' | ')' | '(' | ':' | ';' | '.' | '?' | '!'))
}

/// `src/main.rs`, `./x`, `Cargo.toml`: a token with a slash, or a dotted name with a short
/// alphabetic extension.
fn looks_like_path(token: &str) -> bool {
    if token.contains("://") || token.len() < 3 || token.chars().all(|c| c == '/' || c == '.') {
        return false;
    }
    if token.contains('/') {
        return token.chars().any(|c| c.is_alphanumeric());
    }
    match token.rsplit_once('.') {
        Some((stem, ext)) => {
            !stem.is_empty()
                && stem.chars().any(|c| c.is_alphabetic())
                && (1..=5).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &PromptText, pattern: &str) -> bool {
        text.matches(&Pattern::parse(pattern).unwrap_or_else(|| panic!("not a pattern: {pattern}")))
    }

    #[test]
    fn every_builtin_pattern_is_a_normalised_pattern() {
        for (id, _, _, patterns) in crate::builtin::DEFAULT_RULES {
            for text in *patterns {
                let parsed =
                    Pattern::parse(text).unwrap_or_else(|| panic!("{id}: {text:?} is not a pattern"));
                assert_eq!(parsed, Pattern::builtin(text), "{id}: {text:?} is not normalised");
            }
        }
    }

    #[test]
    fn patterns_parse_once_and_reject_what_is_not_a_word() {
        let p = Pattern::parse("  Root   Cause* ").unwrap();
        assert_eq!((p.as_str(), p.label()), ("root cause*", "root cause"));
        assert_eq!(Pattern::parse("^what").unwrap().as_str(), "^what");
        for bad in ["", "*", "^", "a.b", "c++", "a  *"] {
            assert!(Pattern::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn quoted_text_and_code_are_not_words() {
        let text = PromptText::new(
            "fix the typo in the word 'architecture' and \"race condition\" in `deadlock_guard`",
        );
        assert!(!m(&text, "architect*") && !m(&text, "race condition") && !m(&text, "deadlock*"));
        assert!(m(&text, "typo*") && m(&text, "fix"));
        let fenced = PromptText::new("why does this fail?\n```\nthread panicked: deadlock detected\n```\n");
        assert!(!m(&fenced, "deadlock*"));
        assert_eq!((fenced.pasted_lines, fenced.prose_words), (1, 4));
        let apostrophes = PromptText::new("don't touch the user's design");
        assert!(!m(&apostrophes, "touch"), "negated");
        assert!(m(&apostrophes, "design*"));
    }

    #[test]
    fn patterns_words_stems_phrases_and_negation() {
        let text = PromptText::new("Refactoring the address table; find the root causes, not the tests");
        assert!(m(&text, "refactor*"));
        assert!(!m(&text, "add"), "address is not add");
        assert!(m(&text, "root cause*"));
        assert!(!m(&text, "test*"), "negated by 'not'");
    }

    #[test]
    fn abstentions() {
        let abstain = abstain_reason;
        assert_eq!(abstain(""), Some(AbstainReason::Empty));
        assert_eq!(abstain("  \n"), Some(AbstainReason::Empty));
        for command in ["/compact", "/review 123", "/plugin:cmd arg"] {
            assert_eq!(abstain(command), Some(AbstainReason::SlashCommand), "{command}");
        }
        assert_eq!(
            abstain("<task-notification>\n<task-id>a</task-id>"),
            Some(AbstainReason::TaskNotification)
        );
        for request in [
            "/etc/hosts is broken, fix it",
            "/tmp is full, clean it up",
            "修复登录页面的崩溃问题并补充测试用例",
        ] {
            assert_eq!(abstain(request), None, "{request}");
        }
    }

    #[test]
    fn paths_are_counted_once_each() {
        let text = PromptText::new(
            "compare src/a.rs, src/b.rs and Cargo.toml with src/a.rs. Version 1.2 is out; see https://x.io/y",
        );
        assert_eq!(text.paths, 3);
    }

    #[test]
    fn huge_and_non_ascii_prompts_are_safe() {
        let huge = "é".repeat(SCAN_LIMIT_BYTES);
        assert!(PromptText::new(&huge).words.is_empty());
        assert_eq!(strip_quoted("it's \"unclosed"), "it's \"unclosed");
    }
}
