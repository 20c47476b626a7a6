//! The rules and task types routing starts from, compiled in. A user's configuration adds rules
//! before these, overrides them by id, or disables them (see [`crate::config`]).

use crate::config::{Rule, GENERAL_TASK};
use crate::prompt_text::Pattern;

/// Task types and their base complexity (1-10).
pub const DEFAULT_TASKS: &[(&str, u8)] = &[
    ("chore", 2),
    ("lookup", 2),
    ("docs", 3),
    ("explain", 3),
    (GENERAL_TASK, 5),
    ("implementation", 5),
    ("testing", 5),
    ("debugging", 5),
    ("review", 5),
    ("research", 6),
    ("refactor", 7),
    ("performance", 7),
    ("hard-debugging", 8),
    ("architecture", 8),
    ("security", 8),
];

/// The compiled-in rules: (id, task, weight, patterns). Specific signals (a typo, a deadlock)
/// weigh more than generic verbs (fix, add), so "fix the typo" is a chore.
pub const DEFAULT_RULES: &[(&str, &str, f64, &[&str])] = &[
    (
        "builtin.chore",
        "chore",
        1.5,
        &[
            "rename*",
            "typo*",
            "spelling",
            "misspel*",
            "reformat*",
            "lint*",
            "whitespace",
            "indent*",
            "changelog",
            "bump*",
            "unused",
            "imports",
            "gitignore",
            "fmt",
            "prettier",
            "eslint",
            "isort",
            "gofmt",
            "clippy",
            "alphabeti*",
            "commented out",
            "dead code",
            "type hints",
            "copyright",
            "nvmrc",
            "trailing",
        ],
    ),
    (
        "builtin.chore-soft",
        "chore",
        0.5,
        &["format*", "replace", "move", "delete", "remove", "one liner", "one line"],
    ),
    (
        "builtin.small",
        "chore",
        0.5,
        &[
            "quick",
            "quickly",
            "simple",
            "just",
            "small",
            "tiny",
            "minor",
            "trivial",
            "one sentence",
            "briefly",
        ],
    ),
    (
        "builtin.lookup",
        "lookup",
        1.0,
        &[
            "where is",
            "where are",
            "show me",
            "grep*",
            "which file*",
            "how many",
            "^what",
            "^which",
            "^where",
            "^does",
            "^is",
            "^are",
            "^do",
        ],
    ),
    (
        "builtin.lookup-soft",
        "lookup",
        0.5,
        &["find", "locate", "list", "count", "summari*", "version", "default"],
    ),
    ("builtin.docs", "docs", 1.0, &["readme", "docstring*", "documentation", "docs", "comment", "comments"]),
    (
        "builtin.explain",
        "explain",
        1.0,
        &["explain*", "how does", "what does", "walk me through", "^explain", "^why"],
    ),
    (
        "builtin.implementation",
        "implementation",
        1.0,
        &[
            "implement*",
            "feature*",
            "endpoint*",
            "integrat*",
            "support for",
            "add support",
            "migration",
            "migrations",
            "validation",
            "component",
            "screen",
            "page",
            "form",
            "api",
            "driver",
        ],
    ),
    (
        "builtin.implementation-soft",
        "implementation",
        0.5,
        &["add", "adding", "write", "create", "build", "function*", "make", "update", "change"],
    ),
    ("builtin.testing", "testing", 1.0, &["test*", "coverage", "unit test*"]),
    (
        "builtin.debugging",
        "debugging",
        1.0,
        &[
            "bug",
            "bugs",
            "debug*",
            "crash*",
            "failing",
            "fails",
            "broken",
            "exception*",
            "traceback",
            "500",
            "404",
        ],
    ),
    (
        "builtin.debugging-soft",
        "debugging",
        0.5,
        &["fix", "fixing", "error*", "issue", "wrong", "doesn", "isn"],
    ),
    ("builtin.review", "review", 1.0, &["review*", "code review*", "pull request", "diff"]),
    (
        "builtin.research",
        "research",
        1.0,
        &[
            "investigat*",
            "research*",
            "compare",
            "comparison",
            "evaluate",
            "pros and cons",
            "alternatives",
            "options",
        ],
    ),
    (
        "builtin.refactor",
        "refactor",
        1.0,
        &["refactor*", "rewrite*", "restructur*", "migrate", "migrating", "modulari*", "decouple*"],
    ),
    (
        "builtin.performance",
        "performance",
        1.5,
        &["performance", "optimi*", "bottleneck*", "latency", "throughput", "profil*", "p99", "p95"],
    ),
    (
        "builtin.hard-debugging",
        "hard-debugging",
        1.5,
        &[
            "race condition*",
            "deadlock*",
            "memory leak*",
            "flaky",
            "intermittent*",
            "heisenbug*",
            "corrupt*",
            "root cause*",
            "segfault*",
            "use after free",
            "livelock*",
            "data race*",
            "hard fault*",
            "oom*",
            "out of memory",
            "at random",
            "randomly",
            "never locally",
            "only in ci",
            "once every",
            "stall*",
            "hangs",
            "hanging",
            "nan",
        ],
    ),
    ("builtin.hard-debugging-soft", "hard-debugging", 1.0, &["sometimes", "twice", "only on", "memory"]),
    (
        "builtin.architecture",
        "architecture",
        1.5,
        &[
            "architect*",
            "design*",
            "redesign*",
            "scalab*",
            "distributed",
            "consensus",
            "replication",
            "shard*",
            "trade off*",
            "tradeoff*",
            "from scratch",
            "microservice*",
            "concurren*",
            "strategy",
            "multi region",
            "event driven",
            "offline sync",
        ],
    ),
    (
        "builtin.security",
        "security",
        1.5,
        &["security", "vulnerab*", "threat model*", "exploit*", "cve", "injection", "xss", "csrf", "jwt"],
    ),
];

pub fn default_rules() -> Vec<Rule> {
    DEFAULT_RULES
        .iter()
        .map(|(id, task, weight, patterns)| Rule {
            id: id.to_string(),
            patterns: patterns.iter().map(|p| Pattern::builtin(p)).collect(),
            task: task.to_string(),
            weight: *weight,
            tier: None,
            agent: None,
        })
        .collect()
}

/// Whether `rule` is one of [`DEFAULT_RULES`] exactly as compiled in (not changed by the user).
pub fn is_builtin(rule: &Rule) -> bool {
    DEFAULT_RULES.iter().any(|(id, task, weight, patterns)| {
        rule.id == *id
            && rule.task == *task
            && rule.weight == *weight
            && rule.tier.is_none()
            && rule.agent.is_none()
            && rule.patterns.len() == patterns.len()
            && rule.patterns.iter().zip(patterns.iter()).all(|(a, b)| a.as_str() == *b)
    })
}
