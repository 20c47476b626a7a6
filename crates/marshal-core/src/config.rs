//! Settings, layered in one place ([`load`]): compiled-in defaults, then the user file
//! `~/.claude/marshal.json`, then the project file `<project>/.claude/marshal.json`, then the file
//! named by `MARSHAL_CONFIG`, then `MARSHAL_*` variables. Later layers override earlier ones key by
//! key; rules merge by id.
//!
//! Unknown keys are warnings. A bad value is an error naming the file, the key and what was
//! expected; that key alone falls back (hooks log why, the CLI shows it). A project's file may
//! set routing preferences only: see [`USER_ONLY_KEYS`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::agents::Tier;
use crate::enforcement::Level;
use crate::mode::{Mode, ModeRules};
use crate::pricing::{Price, PriceBook};
use crate::prompt_text::Pattern;
use crate::{builtin, fsutil};

/// A routing rule: when any of its patterns occurs in the prompt, it votes for its task type.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    /// Whole words (`fix`), stems ending in `*` (`refactor*`), or phrases (`root cause*`).
    pub patterns: Vec<Pattern>,
    pub task: String,
    /// Votes per distinct matching pattern.
    pub weight: f64,
    /// Forces the tier when this rule decides the task type.
    pub tier: Option<Tier>,
    /// Routes to this agent (by name) when this rule decides the task type.
    pub agent: Option<String>,
}

/// Values per tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierTable {
    pub weak: String,
    pub base: String,
    pub strong: String,
}

impl TierTable {
    pub fn get(&self, tier: Tier) -> &str {
        match tier {
            Tier::Weak => &self.weak,
            Tier::Base => &self.base,
            Tier::Strong => &self.strong,
        }
    }

    fn set(&mut self, tier: Tier, value: String) {
        match tier {
            Tier::Weak => self.weak = value,
            Tier::Base => self.base = value,
            Tier::Strong => self.strong = value,
        }
    }
}

/// Complexity scores (1-10) from which the base and strong tiers start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Thresholds {
    pub base: u8,
    pub strong: u8,
}

impl Thresholds {
    pub fn tier(&self, score: u8) -> Tier {
        if score >= self.strong {
            Tier::Strong
        } else if score >= self.base {
            Tier::Base
        } else {
            Tier::Weak
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Model alias (or full id) per tier.
    pub models: TierTable,
    /// Default agent per tier (bare names of this plugin's agents).
    pub agents: TierTable,
    pub thresholds: Thresholds,
    /// Base complexity score of each task type.
    pub tasks: BTreeMap<String, u8>,
    /// Enabled rules, in the order they are consulted (user rules first).
    pub rules: Vec<Rule>,
    /// Look for user and project agents a rule or description can route to.
    pub agent_discovery: bool,
    /// Let the history of past turns raise the complexity score.
    pub history: bool,
    /// What to do when the main agent calls another agent than the routed one.
    pub enforce: Level,
    /// Stop a turn that ends without delegating, once; `None`: on with deny and rewrite.
    pub nudge: Option<bool>,
    /// Keep the prompt's text in route records (off: only its length is kept).
    pub store_prompts: bool,
    /// Session journals and orchestration outputs older than this are removed.
    pub retention_days: u32,
    /// Which mode each kind of session gets.
    pub modes: ModeRules,
    pub orchestration: Orchestration,
    /// Price overrides for `marshal usage` (the compiled-in table covers Anthropic's models).
    pub prices: PriceBook,
    /// Step work down one tier when the 5-hour window is at least this full (percent); `None`: never.
    pub budget_step_down_at: Option<f64>,
}

/// How orchestration runs its `claude -p` children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Orchestration {
    /// Time limit of one attempt.
    pub timeout: std::time::Duration,
    /// Attempts in all, across retries and escalations.
    pub max_attempts: u32,
    /// Retries of the same tier after a time-out or an API error.
    pub retries: u32,
    /// Move to the next stronger tier when a tier fails or its agent asks to.
    pub escalate: bool,
    /// The whole run, every attempt included, ends by then (inside a hook, also before the
    /// hook's own time limit).
    pub deadline: std::time::Duration,
}

impl Default for Orchestration {
    fn default() -> Self {
        Orchestration {
            timeout: std::time::Duration::from_secs(180),
            max_attempts: 3,
            retries: 1,
            escalate: true,
            deadline: std::time::Duration::from_secs(540),
        }
    }
}

impl Config {
    /// Whether the Stop nudge is on.
    pub fn nudge_enabled(&self) -> bool {
        self.nudge.unwrap_or(self.enforce.nudges_by_default())
    }
}

/// Where each layer came from, and what was odd about it: shown by `marshal route --explain`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provenance {
    pub layers: Vec<String>,
    pub warnings: Vec<String>,
    /// Values that were wrong; each dropped its own key, and the defaults (or an earlier layer)
    /// stand for it.
    pub errors: Vec<ConfigError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub key: String,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: key '{}': expected {}", self.source, self.key, self.expected)
    }
}

impl std::error::Error for ConfigError {}

/// The task type used when no rule fires.
pub const GENERAL_TASK: &str = "general";

const KNOWN_KEYS: &[&str] = &[
    "models",
    "agents",
    "thresholds",
    "tasks",
    "rules",
    "disable_rules",
    "agent_discovery",
    "history",
    "enforce",
    "nudge",
    "modes",
    "orchestrate",
    "store_prompts",
    "retention_days",
    "prices",
    "budget",
];

impl Default for Config {
    fn default() -> Self {
        let table = |f: fn(Tier) -> &'static str| TierTable {
            weak: f(Tier::Weak).into(),
            base: f(Tier::Base).into(),
            strong: f(Tier::Strong).into(),
        };
        Config {
            models: table(Tier::default_model),
            agents: table(Tier::default_agent),
            thresholds: Thresholds { base: 4, strong: 7 },
            tasks: builtin::DEFAULT_TASKS.iter().map(|(task, score)| (task.to_string(), *score)).collect(),
            rules: builtin::default_rules(),
            agent_discovery: true,
            history: true,
            enforce: Level::default(),
            nudge: None,
            modes: ModeRules::default(),
            orchestration: Orchestration::default(),
            prices: PriceBook::default(),
            budget_step_down_at: Some(80.0),
            store_prompts: false,
            retention_days: 14,
        }
    }
}

/// The facts that decide which layers exist: read once, passed in.
#[derive(Debug, Clone, Default)]
pub struct ConfigEnv {
    pub home: Option<PathBuf>,
    pub project: Option<PathBuf>,
    pub vars: BTreeMap<String, String>,
}

impl ConfigEnv {
    /// From the process environment; `project` is the session's working directory.
    pub fn from_process(project: Option<&Path>) -> Self {
        let vars = crate::env::marshal_variables();
        ConfigEnv { home: crate::env::home(), project: project.map(Path::to_path_buf), vars }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }
}

/// Keys a project's `.claude/marshal.json` may not set: they touch privacy (`store_prompts`,
/// `retention_days`), spending or process spawning (`modes`, `orchestrate`), or what the user is
/// told things cost (`prices`). A cloned repository is untrusted input; these are honoured only
/// from the user's own files and the environment.
pub const USER_ONLY_KEYS: &[&str] =
    &["modes", "orchestrate", "store_prompts", "retention_days", "prices", "budget"];

/// Who wrote a layer, which decides what it may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// The user's own file, or one they named with `MARSHAL_CONFIG`.
    User,
    /// `<project>/.claude/marshal.json`: whatever repository was cloned.
    Project,
}

/// Builds the effective configuration, layer by layer. See the module docs for the order.
///
/// Never fails: a value that is wrong drops that key only (the error says which file, key and
/// what was expected, in `Provenance::errors`), and the rest of the layer still applies.
pub fn load(env: &ConfigEnv) -> (Config, Provenance) {
    let mut config = Config::default();
    let mut provenance = Provenance { layers: vec!["defaults".into()], ..Provenance::default() };
    let mut files: Vec<(PathBuf, Trust)> = Vec::new();
    if let Some(home) = &env.home {
        files.push((home.join(".claude").join("marshal.json"), Trust::User));
    }
    if let Some(project) = &env.project {
        let project_file = project.join(".claude").join("marshal.json");
        // In the home directory the project file is the user file: read it once.
        if !files.iter().any(|(f, _)| *f == project_file) {
            files.push((project_file, Trust::Project));
        }
    }
    for (path, trust) in &files {
        match read_layer(path, false) {
            Ok(Some(layer)) => {
                apply_layer(&mut config, &layer, &path.display().to_string(), *trust, &mut provenance);
                provenance.layers.push(path.display().to_string());
            }
            Ok(None) => {}
            Err(error) => provenance.errors.push(error),
        }
    }
    if let Some(path) = env.var("MARSHAL_CONFIG").filter(|path| {
        // Relative, it would be read from whatever folder the hook runs in: a cloned repository.
        let absolute = Path::new(path).is_absolute();
        if !absolute {
            provenance.errors.push(err(
                "MARSHAL_CONFIG",
                "MARSHAL_CONFIG",
                "an absolute path (a relative one is ignored)",
            ));
        }
        absolute
    }) {
        match read_layer(Path::new(path), true) {
            Ok(layer) => {
                apply_layer(&mut config, &layer.unwrap_or_default(), path, Trust::User, &mut provenance);
                provenance.layers.push(format!("MARSHAL_CONFIG={path}"));
            }
            Err(error) => provenance.errors.push(error),
        }
    }
    apply_env(&mut config, env, &mut provenance);
    let variables: Vec<&str> =
        env.vars.keys().map(String::as_str).filter(|k| crate::env::SETTING_VARIABLES.contains(k)).collect();
    if !variables.is_empty() {
        provenance.layers.push(variables.join(", "));
    }
    (config, provenance)
}

/// Reads one JSON object, bounded ([`fsutil::MAX_CONFIG_BYTES`], regular files only: a link to
/// `/dev/zero` or a FIFO in a cloned repository must not hang a hook). A missing file is no
/// layer, unless it was asked for by name.
fn read_layer(path: &Path, required: bool) -> Result<Option<Map<String, Value>>, ConfigError> {
    let source = path.display().to_string();
    let bytes = match fsutil::read_capped(path, fsutil::MAX_CONFIG_BYTES, fsutil::Links::Follow) {
        Ok(Some(bytes)) => bytes,
        Ok(None) if !required => return Ok(None),
        Ok(None) => {
            return Err(ConfigError { source, key: "(file)".into(), expected: "an existing file".into() })
        }
        Err(err) => {
            return Err(ConfigError {
                source,
                key: "(file)".into(),
                expected: format!("a readable regular file of at most 1 MiB ({err:#})"),
            })
        }
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(ConfigError { source, key: "(top level)".into(), expected: "a JSON object".into() }),
        Err(err) => {
            Err(ConfigError { source, key: "(file)".into(), expected: format!("valid JSON ({err})") })
        }
    }
}

fn err(source: &str, key: &str, expected: &str) -> ConfigError {
    ConfigError { source: source.into(), key: key.into(), expected: expected.into() }
}

/// Applies one file's keys. Each key is applied to a copy of its own setting and kept only if it
/// is valid, so one bad value costs that key alone (a bad rule, that rule alone). `tasks` goes
/// before `rules`, which may name new task types.
fn apply_layer(
    config: &mut Config,
    layer: &Map<String, Value>,
    source: &str,
    trust: Trust,
    provenance: &mut Provenance,
) {
    let mut unknown = Vec::new();
    let mut keys: Vec<&String> = layer.keys().collect();
    keys.sort_by_key(|k| k.as_str() != "tasks");
    for key in keys {
        let value = &layer[key];
        if key.starts_with('$') || key.starts_with("//") {
            // "$schema" and "//" comments are welcome in a JSON config.
            continue;
        }
        if !KNOWN_KEYS.contains(&key.as_str()) {
            unknown.push(key.as_str());
            continue;
        }
        if trust == Trust::Project && USER_ONLY_KEYS.contains(&key.as_str()) {
            provenance.warnings.push(format!(
                "{source}: key '{key}' is ignored in a project's configuration (it touches privacy, spending, \
                 process spawning or what you are told things cost); set it in ~/.claude/marshal.json"
            ));
            continue;
        }
        if let Err(error) = apply_key(config, key, value, source, provenance) {
            provenance.errors.push(error);
        }
    }
    if !unknown.is_empty() {
        const SHOWN: usize = 10;
        let named: Vec<String> = unknown.iter().take(SHOWN).map(|k| format!("'{k}'")).collect();
        let more = unknown.len().saturating_sub(SHOWN);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        provenance.warnings.push(format!(
            "{source}: unknown key {}{more} ignored (known keys: {})",
            named.join(", "),
            KNOWN_KEYS.join(", ")
        ));
    }
}

fn apply_key(
    config: &mut Config,
    key: &str,
    value: &Value,
    source: &str,
    provenance: &mut Provenance,
) -> Result<(), ConfigError> {
    let warnings = &mut provenance.warnings;
    // Each arm changes its setting only once the whole value has been read without error.
    match key {
        "models" => config.models = with_tier_table(&config.models, value, source, "models")?,
        "agents" => config.agents = with_tier_table(&config.agents, value, source, "agents")?,
        "thresholds" => {
            let mut thresholds = config.thresholds;
            apply_thresholds(&mut thresholds, value, source)?;
            if thresholds.base > thresholds.strong {
                return Err(err(source, "thresholds", "base not above strong"));
            }
            config.thresholds = thresholds;
        }
        "tasks" => {
            let mut tasks = config.tasks.clone();
            apply_tasks(&mut tasks, value, source)?;
            config.tasks = tasks;
        }
        "rules" => apply_rules(config, value, source, provenance)?,
        "disable_rules" => {
            let ids = string_list(value).ok_or_else(|| err(source, key, "a list of rule ids"))?;
            disable_rules(&mut config.rules, &ids, source, warnings);
        }
        "agent_discovery" => {
            config.agent_discovery = value.as_bool().ok_or_else(|| err(source, key, "true or false"))?
        }
        "history" => config.history = value.as_bool().ok_or_else(|| err(source, key, "true or false"))?,
        "enforce" => {
            config.enforce = value
                .as_str()
                .and_then(Level::parse)
                .ok_or_else(|| err(source, key, "one of off, warn, deny, rewrite"))?
        }
        "nudge" => config.nudge = Some(value.as_bool().ok_or_else(|| err(source, key, "true or false"))?),
        "modes" => {
            let mut modes = config.modes;
            apply_modes(&mut modes, value, source)?;
            config.modes = modes;
        }
        "store_prompts" => {
            config.store_prompts = value.as_bool().ok_or_else(|| err(source, key, "true or false"))?
        }
        "retention_days" => {
            config.retention_days = value
                .as_u64()
                .filter(|d| (1..=3650).contains(d))
                .ok_or_else(|| err(source, key, "a whole number of days from 1 to 3650"))?
                as u32
        }
        "prices" => config.prices = with_prices(&config.prices, value, source)?,
        "budget" => config.budget_step_down_at = budget_step_down(value, source)?,
        "orchestrate" => {
            let mut orchestration = config.orchestration;
            apply_orchestration(&mut orchestration, value, source)?;
            config.orchestration = orchestration;
        }
        _ => {}
    }
    Ok(())
}

fn with_tier_table(
    table: &TierTable,
    value: &Value,
    source: &str,
    key: &str,
) -> Result<TierTable, ConfigError> {
    let mut table = table.clone();
    apply_tier_table(&mut table, value, source, key)?;
    Ok(table)
}

fn apply_tier_table(
    table: &mut TierTable,
    value: &Value,
    source: &str,
    key: &str,
) -> Result<(), ConfigError> {
    let map = value.as_object().ok_or_else(|| err(source, key, "an object with weak, base and/or strong"))?;
    for (tier_name, v) in map {
        let tier = Tier::parse(tier_name).ok_or_else(|| {
            err(source, &format!("{key}.{tier_name}"), "one of the tiers weak, base, strong")
        })?;
        let text = v
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| err(source, &format!("{key}.{tier_name}"), "a non-empty string"))?;
        table.set(tier, text.trim().to_string());
    }
    Ok(())
}

/// `"modes": {"attended": "directive", "unattended": "directive", "batch": "orchestrate",
/// "overnight": {"from": "22:00", "to": "06:00", "mode": "orchestrate"}}` (`interactive` is an
/// older name for `attended`).
fn apply_modes(rules: &mut ModeRules, value: &Value, source: &str) -> Result<(), ConfigError> {
    let map = value.as_object().ok_or_else(|| err(source, "modes", "an object"))?;
    let mode_of = |v: &Value, key: &str| {
        v.as_str().and_then(Mode::parse).ok_or_else(|| err(source, key, "one of directive, orchestrate, off"))
    };
    for (name, v) in map {
        let key = format!("modes.{name}");
        match name.as_str() {
            "attended" | "interactive" => rules.attended = mode_of(v, &key)?,
            "unattended" => rules.unattended = mode_of(v, &key)?,
            "batch" => rules.batch = mode_of(v, &key)?,
            "overnight" if v.is_null() => rules.overnight = None,
            "overnight" => {
                let clock = |field: &str| {
                    v.get(field)
                        .and_then(Value::as_str)
                        .and_then(crate::mode::parse_clock)
                        .ok_or_else(|| err(source, &format!("{key}.{field}"), "a time of day as HH:MM"))
                };
                rules.overnight = Some((clock("from")?, clock("to")?));
                if let Some(mode) = v.get("mode") {
                    rules.overnight_mode = mode_of(mode, &format!("{key}.mode"))?;
                }
            }
            _ => return Err(err(source, &key, "attended, unattended, batch or overnight")),
        }
    }
    Ok(())
}

/// `"budget": {"step_down_at": 80}` (percent of the 5-hour window; `false` there, or `"budget":
/// false`: never).
fn budget_step_down(value: &Value, source: &str) -> Result<Option<f64>, ConfigError> {
    if matches!(value, Value::Bool(false) | Value::Null) {
        return Ok(None);
    }
    let map =
        value.as_object().ok_or_else(|| err(source, "budget", "an object such as {\"step_down_at\": 80}"))?;
    let mut step_down_at = Some(80.0);
    for (name, v) in map {
        let key = format!("budget.{name}");
        match name.as_str() {
            "step_down_at" => {
                step_down_at = match v {
                    Value::Null | Value::Bool(false) => None,
                    _ => Some(
                        v.as_f64()
                            .filter(|p| (1.0..=100.0).contains(p))
                            .ok_or_else(|| err(source, &key, "a percentage from 1 to 100, or false"))?,
                    ),
                }
            }
            _ => return Err(err(source, &key, "step_down_at")),
        }
    }
    Ok(step_down_at)
}

/// `"orchestrate": {"timeout_seconds": 180, "deadline_seconds": 540, "max_attempts": 3,
/// "retries": 1, "escalate": true}`
fn apply_orchestration(settings: &mut Orchestration, value: &Value, source: &str) -> Result<(), ConfigError> {
    let map = value.as_object().ok_or_else(|| err(source, "orchestrate", "an object"))?;
    for (name, v) in map {
        let key = format!("orchestrate.{name}");
        let whole = |max: u64| v.as_u64().filter(|n| (1..=max).contains(n));
        match name.as_str() {
            "timeout_seconds" => {
                let seconds =
                    whole(86_400).ok_or_else(|| err(source, &key, "whole seconds from 1 to 86400"))?;
                settings.timeout = std::time::Duration::from_secs(seconds);
            }
            "max_attempts" => {
                settings.max_attempts =
                    whole(10).ok_or_else(|| err(source, &key, "a whole number from 1 to 10"))? as u32
            }
            "retries" => {
                settings.retries = v
                    .as_u64()
                    .filter(|n| *n <= 5)
                    .ok_or_else(|| err(source, &key, "a whole number from 0 to 5"))?
                    as u32
            }
            "escalate" => {
                settings.escalate = v.as_bool().ok_or_else(|| err(source, &key, "true or false"))?
            }
            "deadline_seconds" => {
                let seconds =
                    whole(86_400).ok_or_else(|| err(source, &key, "whole seconds from 1 to 86400"))?;
                settings.deadline = std::time::Duration::from_secs(seconds);
            }
            _ => {
                return Err(err(
                    source,
                    &key,
                    "timeout_seconds, deadline_seconds, max_attempts, retries or escalate",
                ))
            }
        }
    }
    Ok(())
}

/// `"prices": {"claude-opus-4-5": {"input": 5, "output": 25, "cache_write_5m": 6.25,
/// "cache_write_1h": 10, "cache_read": 0.5}}`: US dollars per million tokens, by model id or id
/// prefix. Cache prices left out follow from `input` (1.25x, 2x, 0.1x).
fn with_prices(book: &PriceBook, value: &Value, source: &str) -> Result<PriceBook, ConfigError> {
    let map = value.as_object().ok_or_else(|| err(source, "prices", "an object of model id to prices"))?;
    let mut book = book.clone();
    for (model, v) in map {
        let key = format!("prices.{model}");
        let fields = v.as_object().ok_or_else(|| err(source, &key, "an object with input and output"))?;
        let amount = |name: &str| -> Result<Option<f64>, ConfigError> {
            fields
                .get(name)
                .map(|v| {
                    v.as_f64().filter(|n| n.is_finite() && *n >= 0.0).ok_or_else(|| {
                        err(source, &format!("{key}.{name}"), "US dollars per million tokens (0 or more)")
                    })
                })
                .transpose()
        };
        if let Some(unknown) = fields.keys().find(|k| {
            !["input", "output", "cache_write_5m", "cache_write_1h", "cache_read"].contains(&k.as_str())
        }) {
            return Err(err(
                source,
                &format!("{key}.{unknown}"),
                "input, output, cache_write_5m, cache_write_1h or cache_read",
            ));
        }
        let (Some(input), Some(output)) = (amount("input")?, amount("output")?) else {
            return Err(err(source, &key, "both input and output (US dollars per million tokens)"));
        };
        let price = Price {
            input,
            output,
            cache_write_5m: amount("cache_write_5m")?.unwrap_or(input * 1.25),
            cache_write_1h: amount("cache_write_1h")?.unwrap_or(input * 2.0),
            cache_read: amount("cache_read")?.unwrap_or(input / 10.0),
        };
        book.overrides.insert(model.trim().to_string(), price);
    }
    Ok(book)
}

fn apply_thresholds(thresholds: &mut Thresholds, value: &Value, source: &str) -> Result<(), ConfigError> {
    let map =
        value.as_object().ok_or_else(|| err(source, "thresholds", "an object with base and/or strong"))?;
    for (name, v) in map {
        let key = format!("thresholds.{name}");
        let score = score_value(v).ok_or_else(|| err(source, &key, "a whole number from 1 to 10"))?;
        match name.as_str() {
            "base" => thresholds.base = score,
            "strong" => thresholds.strong = score,
            _ => return Err(err(source, &key, "base or strong")),
        }
    }
    Ok(())
}

fn apply_tasks(tasks: &mut BTreeMap<String, u8>, value: &Value, source: &str) -> Result<(), ConfigError> {
    let map = value.as_object().ok_or_else(|| err(source, "tasks", "an object of task type to score"))?;
    for (task, v) in map {
        let score = score_value(v)
            .ok_or_else(|| err(source, &format!("tasks.{task}"), "a whole number from 1 to 10"))?;
        tasks.insert(task.clone(), score);
    }
    Ok(())
}

/// User rules come first (in file order), then the rules already configured. A rule whose id
/// exists replaces it in place; `"enabled": false` removes it.
/// A rule that is wrong is dropped alone (its error is recorded); the others apply.
fn apply_rules(
    config: &mut Config,
    value: &Value,
    source: &str,
    provenance: &mut Provenance,
) -> Result<(), ConfigError> {
    let list = value.as_array().ok_or_else(|| err(source, "rules", "a list of rule objects"))?;
    let mut added = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let key = format!("rules[{i}]");
        let parsed = item.as_object().ok_or_else(|| err(source, &key, "a rule object")).and_then(|object| {
            let id = object
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| err(source, &format!("{key}.id"), "a non-empty string"))?
                .to_string();
            if object.get("enabled") == Some(&Value::Bool(false)) {
                return Ok((id, None));
            }
            let rule = parse_rule(object, id.clone(), source, &key, &mut provenance.warnings)?;
            check_task(&rule, &config.tasks, source)?;
            Ok((id, Some(rule)))
        });
        let rules = &mut config.rules;
        let rule = match parsed {
            Ok((id, None)) => {
                disable_rules(rules, std::slice::from_ref(&id), source, &mut provenance.warnings);
                continue;
            }
            Ok((_, Some(rule))) => rule,
            Err(error) => {
                provenance.errors.push(error);
                continue;
            }
        };
        match rules.iter_mut().find(|r| r.id == rule.id) {
            Some(existing) => *existing = rule,
            None => added.push(rule),
        }
    }
    added.append(&mut config.rules);
    config.rules = added;
    Ok(())
}

/// A rule's task type must be known (or added under "tasks" in the same or an earlier layer).
fn check_task(rule: &Rule, tasks: &BTreeMap<String, u8>, source: &str) -> Result<(), ConfigError> {
    if tasks.contains_key(&rule.task) {
        return Ok(());
    }
    Err(err(
        source,
        &format!("rule '{}'.task", rule.id),
        &format!(
            "a known task type ({}), or add '{}' under \"tasks\" with its score",
            tasks.keys().cloned().collect::<Vec<_>>().join(", "),
            rule.task
        ),
    ))
}

fn parse_rule(
    object: &Map<String, Value>,
    id: String,
    source: &str,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<Rule, ConfigError> {
    let patterns: Vec<Pattern> = object
        .get("match")
        .and_then(string_list)
        .filter(|list| !list.is_empty())
        .and_then(|list| list.iter().map(|p| Pattern::parse(p)).collect())
        .ok_or_else(|| {
            err(source, &format!("{key}.match"), "a non-empty list of words, stems (word*) or phrases")
        })?;
    let task = object
        .get("task")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            err(source, &format!("{key}.task"), "a task type such as chore, implementation, architecture")
        })?
        .trim()
        .to_string();
    let weight = match object.get("weight") {
        None => 1.0,
        Some(v) => v
            .as_f64()
            .filter(|w| (0.0..=10.0).contains(w))
            .ok_or_else(|| err(source, &format!("{key}.weight"), "a number from 0 to 10"))?,
    };
    let tier = match object.get("tier") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .and_then(Tier::parse)
                .ok_or_else(|| err(source, &format!("{key}.tier"), "weak, base or strong"))?,
        ),
    };
    let agent = match object.get("agent") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| err(source, &format!("{key}.agent"), "an agent name"))?
                .trim()
                .to_string(),
        ),
    };
    for unknown in object.keys().filter(|k| !RULE_KEYS.contains(&k.as_str())) {
        warnings.push(format!(
            "{source}: {key}: unknown key '{unknown}' ignored (known: {})",
            RULE_KEYS.join(", ")
        ));
    }
    Ok(Rule { id, patterns, task, weight, tier, agent })
}

const RULE_KEYS: &[&str] = &["id", "match", "task", "weight", "tier", "agent", "enabled"];

fn disable_rules(rules: &mut Vec<Rule>, ids: &[String], source: &str, warnings: &mut Vec<String>) {
    for id in ids {
        let before = rules.len();
        rules.retain(|r| &r.id != id);
        if rules.len() == before {
            warnings.push(format!("{source}: no rule '{id}' to disable"));
        }
    }
}

fn score_value(value: &Value) -> Option<u8> {
    value.as_u64().filter(|n| (1..=10).contains(n)).map(|n| n as u8)
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    value.as_array()?.iter().map(|v| v.as_str().map(str::to_string)).collect()
}

/// The last layer: one small function per variable. A bad value drops that variable alone.
fn apply_env(config: &mut Config, env: &ConfigEnv, provenance: &mut Provenance) {
    provenance.warnings.extend(crate::env::unknown_marshal_variables(&env.vars));
    let mut report = |result: Result<(), ConfigError>| {
        if let Err(error) = result {
            provenance.errors.push(error);
        }
    };
    for (tier, name) in [
        (Tier::Weak, "MARSHAL_MODEL_WEAK"),
        (Tier::Base, "MARSHAL_MODEL_BASE"),
        (Tier::Strong, "MARSHAL_MODEL_STRONG"),
    ] {
        if let Some(model) = env.var(name) {
            config.models.set(tier, model.trim().to_string());
        }
    }
    if let Some(list) = env.var("MARSHAL_DISABLE_RULES") {
        let ids: Vec<String> =
            list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        disable_rules(&mut config.rules, &ids, "MARSHAL_DISABLE_RULES", &mut provenance.warnings);
    }
    if let Some(value) = env.var("MARSHAL_AGENT_DISCOVERY") {
        report(env_bool("MARSHAL_AGENT_DISCOVERY", value).map(|on| config.agent_discovery = on));
    }
    if let Some(value) = env.var("MARSHAL_HISTORY") {
        report(env_bool("MARSHAL_HISTORY", value).map(|on| config.history = on));
    }
    if let Some(value) = env.var("MARSHAL_ENFORCE") {
        report(
            Level::parse(value)
                .map(|level| config.enforce = level)
                .ok_or_else(|| err("MARSHAL_ENFORCE", "MARSHAL_ENFORCE", "one of off, warn, deny, rewrite")),
        );
    }
    if let Some(value) = env.var("MARSHAL_NUDGE") {
        report(env_bool("MARSHAL_NUDGE", value).map(|on| config.nudge = Some(on)));
    }
    if let Some(value) = env.var("MARSHAL_STORE_PROMPTS") {
        report(env_bool("MARSHAL_STORE_PROMPTS", value).map(|on| config.store_prompts = on));
    }
    if let Some(value) = env.var("MARSHAL_TIMEOUT") {
        let seconds = value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=86_400).contains(s))
            .ok_or_else(|| err("MARSHAL_TIMEOUT", "MARSHAL_TIMEOUT", "whole seconds from 1 to 86400"));
        report(seconds.map(|s| config.orchestration.timeout = std::time::Duration::from_secs(s)));
    }
}

fn env_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    crate::env::parse_flag(value).ok_or_else(|| err(name, name, "1/true/yes/on or 0/false/no/off"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(home: &Path, project: Option<&Path>, vars: &[(&str, &str)]) -> ConfigEnv {
        ConfigEnv {
            home: Some(home.to_path_buf()),
            project: project.map(Path::to_path_buf),
            vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn defaults_without_any_file() {
        let home = tempfile::tempdir().unwrap();
        let (config, provenance) = load(&env_with(home.path(), None, &[]));
        assert_eq!(config, Config::default());
        assert_eq!(provenance.layers, vec!["defaults".to_string()]);
        assert_eq!(config.models.get(Tier::Strong), "opus");
    }

    #[test]
    fn layers_apply_in_order_user_project_named_file_then_variables() {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        write(
            &home.path().join(".claude/marshal.json"),
            r#"{"models":{"weak":"sonnet","strong":"fable"},"thresholds":{"strong":8}}"#,
        );
        write(&project.path().join(".claude/marshal.json"), r#"{"models":{"weak":"haiku"},"history":false}"#);
        let named = project.path().join("named.json");
        write(&named, r#"{"thresholds":{"base":3}}"#);
        let vars = [("MARSHAL_CONFIG", named.to_str().unwrap()), ("MARSHAL_MODEL_BASE", "opus")];
        let (config, provenance) = load(&env_with(home.path(), Some(project.path()), &vars));
        assert_eq!(
            config.models,
            TierTable { weak: "haiku".into(), base: "opus".into(), strong: "fable".into() }
        );
        assert_eq!(config.thresholds, Thresholds { base: 3, strong: 8 });
        assert!(!config.history);
        assert_eq!(provenance.layers.len(), 5, "{:?}", provenance.layers);
    }

    #[test]
    fn rules_are_added_first_overridden_in_place_and_disabled_by_id() {
        let home = tempfile::tempdir().unwrap();
        write(
            &home.path().join(".claude/marshal.json"),
            r#"{"rules":[
                {"id":"team.review","match":["code review*","pr"],"task":"review","agent":"code-reviewer"},
                {"id":"builtin.small","match":["tiny"],"task":"chore","weight":0.25},
                {"id":"builtin.docs","enabled":false}
              ],
              "disable_rules":["builtin.explain"]}"#,
        );
        let (config, _) =
            load(&env_with(home.path(), None, &[("MARSHAL_DISABLE_RULES", "builtin.security")]));
        assert_eq!(config.rules[0].id, "team.review");
        assert_eq!(config.rules[0].agent.as_deref(), Some("code-reviewer"));
        let small = config.rules.iter().find(|r| r.id == "builtin.small").unwrap();
        let patterns: Vec<&str> = small.patterns.iter().map(Pattern::as_str).collect();
        assert_eq!((patterns, small.weight), (vec!["tiny"], 0.25));
        for gone in ["builtin.docs", "builtin.explain", "builtin.security"] {
            assert!(config.rules.iter().all(|r| r.id != gone), "{gone}");
        }
        let position = |id: &str| config.rules.iter().position(|r| r.id == id).unwrap();
        assert!(position("builtin.chore") < position("builtin.small"), "an override keeps its place");
    }

    #[test]
    fn unknown_keys_warn_and_bad_values_name_file_key_and_expectation() {
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join(".claude/marshal.json");
        write(&file, r#"{"modles":{},"rules":[{"id":"x","match":["a"],"task":"chore","colour":"red"}]}"#);
        let (_, provenance) = load(&env_with(home.path(), None, &[]));
        for unknown in ["unknown key 'modles'", "unknown key 'colour'"] {
            assert!(provenance.warnings.iter().any(|w| w.contains(unknown)), "{:?}", provenance.warnings);
        }

        let cases = [
            (r#"{"thresholds":{"strong":11}}"#, "thresholds.strong", "a whole number from 1 to 10"),
            (r#"{"models":{"mega":"opus"}}"#, "models.mega", "one of the tiers"),
            (r#"{"rules":[{"id":"r","match":[],"task":"chore"}]}"#, "rules[0].match", "non-empty list"),
            (r#"{"rules":[{"id":"r","match":["a.b"],"task":"chore"}]}"#, "rules[0].match", "non-empty list"),
            (r#"{"rules":[{"id":"r","match":["a"],"task":"dance"}]}"#, "rule 'r'.task", "known task type"),
            (r#"{"agent_discovery":"yes"}"#, "agent_discovery", "true or false"),
            (r#"[1,2]"#, "(top level)", "a JSON object"),
            (r#"{"models":"#, "(file)", "valid JSON"),
        ];
        for (text, key, expected) in cases {
            write(&file, text);
            let error = load(&env_with(home.path(), None, &[])).1.errors[0].clone();
            assert_eq!(error.source, file.display().to_string(), "{text}");
            assert_eq!(error.key, key, "{text}");
            assert!(error.expected.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_bad_value_drops_its_own_key_and_the_rest_of_the_layer_applies() {
        let home = tempfile::tempdir().unwrap();
        write(
            &home.path().join(".claude/marshal.json"),
            r#"{"models":{"weak":"sonnet"},"thresholds":{"strong":11},"history":false,
                "rules":[{"id":"ok","match":["zap"],"task":"chore"}],"enforce":"always"}"#,
        );
        let (config, provenance) = load(&env_with(home.path(), None, &[("MARSHAL_HISTORY", "maybe")]));
        assert_eq!(config.models.weak, "sonnet");
        assert!(!config.history, "the file's good value stands; the bad variable is dropped");
        assert_eq!(config.rules[0].id, "ok");
        assert_eq!((config.thresholds, config.enforce), (Config::default().thresholds, Level::Warn));
        let keys: Vec<&str> = provenance.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["enforce", "thresholds.strong", "MARSHAL_HISTORY"]);
    }

    #[test]
    fn a_project_file_sets_routing_but_not_privacy_spending_or_modes() {
        let home = tempfile::tempdir().unwrap();
        let project = tempfile::tempdir().unwrap();
        write(
            &project.path().join(".claude/marshal.json"),
            r#"{"models":{"weak":"sonnet"},"store_prompts":true,"retention_days":3650,
                "modes":{"attended":"orchestrate"},"orchestrate":{"max_attempts":10},
                "prices":{"claude-haiku":{"input":100,"output":100}},"budget":{"step_down_at":false}}"#,
        );
        let (config, provenance) = load(&env_with(home.path(), Some(project.path()), &[]));
        assert_eq!(config.models.weak, "sonnet");
        assert!(config.prices.overrides.is_empty(), "a cloned repository cannot change what things cost");
        assert_eq!(config.budget_step_down_at, Some(80.0), "nor turn off the budget guard");
        let defaults = Config::default();
        assert_eq!(
            (config.store_prompts, config.retention_days, config.modes, config.orchestration),
            (false, 14, defaults.modes, defaults.orchestration)
        );
        for key in USER_ONLY_KEYS {
            let named =
                provenance.warnings.iter().filter(|w| w.contains(&format!("'{key}' is ignored"))).count();
            assert_eq!(named, 1, "{key}: {:?}", provenance.warnings);
        }
        // The same keys in the user's own file apply.
        write(
            &home.path().join(".claude/marshal.json"),
            r#"{"store_prompts":true,"modes":{"unattended":"orchestrate"}}"#,
        );
        let (config, _) = load(&env_with(home.path(), Some(project.path()), &[]));
        assert!(config.store_prompts);
        assert_eq!(config.modes.unattended, Mode::Orchestrate);
    }

    #[test]
    fn prices_override_by_model_with_cache_prices_from_input() {
        let home = tempfile::tempdir().unwrap();
        write(
            &home.path().join(".claude/marshal.json"),
            r#"{"prices":{"claude-opus-4-5":{"input":4,"output":20,"cache_read":0.3},
                          "bad":{"input":-1,"output":2}}}"#,
        );
        let (config, provenance) = load(&env_with(home.path(), None, &[]));
        let keys: Vec<&str> = provenance.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["prices.bad.input"]);
        // The bad entry drops the whole key, as any bad value does: nothing half-applied.
        assert!(config.prices.overrides.is_empty());
        write(
            &home.path().join(".claude/marshal.json"),
            r#"{"prices":{"claude-opus-4-5":{"input":4,"output":20,"cache_read":0.3}}}"#,
        );
        let (config, provenance) = load(&env_with(home.path(), None, &[]));
        assert!(provenance.errors.is_empty(), "{:?}", provenance.errors);
        let price = config.prices.price("claude-opus-4-5-20251101").unwrap();
        assert_eq!(
            (price.input, price.output, price.cache_write_5m, price.cache_write_1h, price.cache_read),
            (4.0, 20.0, 5.0, 8.0, 0.3)
        );
    }

    #[test]
    fn the_budget_threshold_is_a_percentage_or_off() {
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join(".claude/marshal.json");
        for (text, expected, error) in [
            (r#"{"budget":{"step_down_at":90}}"#, Some(90.0), None),
            (r#"{"budget":{"step_down_at":false}}"#, None, None),
            (r#"{"budget":{"step_down_at":null}}"#, None, None),
            (r#"{"budget":false}"#, None, None),
            (r#"{"budget":{"step_down_at":0}}"#, Some(80.0), Some("budget.step_down_at")),
            (r#"{"budget":{"stepdown":70}}"#, Some(80.0), Some("budget.stepdown")),
        ] {
            write(&file, text);
            let (config, provenance) = load(&env_with(home.path(), None, &[]));
            assert_eq!(config.budget_step_down_at, expected, "{text}");
            assert_eq!(provenance.errors.first().map(|e| e.key.as_str()), error, "{text}");
        }
    }

    #[test]
    fn enforcement_settings_and_the_nudge_default() {
        let home = tempfile::tempdir().unwrap();
        let (config, _) = load(&env_with(home.path(), None, &[]));
        assert_eq!((config.enforce, config.nudge_enabled()), (Level::Warn, false));
        write(&home.path().join(".claude/marshal.json"), r#"{"enforce":"deny"}"#);
        let (config, _) = load(&env_with(home.path(), None, &[]));
        assert_eq!((config.enforce, config.nudge_enabled()), (Level::Deny, true));
        let (config, _) =
            load(&env_with(home.path(), None, &[("MARSHAL_ENFORCE", "rewrite"), ("MARSHAL_NUDGE", "0")]));
        assert_eq!((config.enforce, config.nudge_enabled()), (Level::Rewrite, false));
        write(&home.path().join(".claude/marshal.json"), r#"{"enforce":"always"}"#);
        assert!(load(&env_with(home.path(), None, &[])).1.errors[0]
            .clone()
            .expected
            .contains("off, warn, deny, rewrite"));
    }

    #[test]
    fn modes_and_orchestration_settings() {
        let home = tempfile::tempdir().unwrap();
        write(
            &home.path().join(".claude/marshal.json"),
            r#"{"modes":{"unattended":"directive","overnight":{"from":"22:00","to":"06:30","mode":"orchestrate"}},
                "orchestrate":{"timeout_seconds":60,"max_attempts":4,"retries":0,"escalate":false}}"#,
        );
        let (config, _) = load(&env_with(home.path(), None, &[("MARSHAL_TIMEOUT", "30")]));
        assert_eq!(config.modes.unattended, Mode::Directive);
        assert_eq!(config.modes.overnight, Some((22 * 60, 6 * 60 + 30)));
        assert_eq!(
            config.orchestration,
            Orchestration {
                timeout: std::time::Duration::from_secs(30),
                max_attempts: 4,
                retries: 0,
                escalate: false,
                deadline: std::time::Duration::from_secs(540),
            }
        );
        write(
            &home.path().join(".claude/marshal.json"),
            r#"{"modes":{"overnight":{"from":"25:00","to":"06:00"}}}"#,
        );
        assert_eq!(load(&env_with(home.path(), None, &[])).1.errors[0].clone().key, "modes.overnight.from");
    }

    #[test]
    fn one_bad_rule_is_dropped_alone_and_a_relative_named_config_is_refused() {
        let home = tempfile::tempdir().unwrap();
        write(
            &home.path().join(".claude/marshal.json"),
            r#"{"rules":[{"id":"good","match":["zap"],"task":"chore"},{"id":"bad","match":["x-y"],"task":"chore"},
                {"id":"odd","match":["zip"],"task":"dance"}]}"#,
        );
        let (config, provenance) = load(&env_with(home.path(), None, &[("MARSHAL_CONFIG", "team.json")]));
        assert_eq!(config.rules[0].id, "good");
        assert!(config.rules.iter().all(|r| r.id != "bad" && r.id != "odd"));
        let keys: Vec<&str> = provenance.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["rules[1].match", "rule 'odd'.task", "MARSHAL_CONFIG"]);
    }

    #[test]
    fn a_misspelt_variable_is_a_warning_not_silence() {
        let home = tempfile::tempdir().unwrap();
        let (config, provenance) = load(&env_with(home.path(), None, &[("MARSHAL_ENFORC", "deny")]));
        assert_eq!(config.enforce, Level::Warn);
        assert!(
            provenance.warnings.iter().any(|w| w.contains("did you mean MARSHAL_ENFORCE")),
            "{provenance:?}"
        );
    }

    #[test]
    fn a_named_config_must_exist_and_variables_are_validated() {
        let home = tempfile::tempdir().unwrap();
        let error = load(&env_with(home.path(), None, &[("MARSHAL_CONFIG", "/nonexistent/marshal.json")]))
            .1
            .errors[0]
            .clone();
        assert_eq!(error.source, "/nonexistent/marshal.json");
        let error = load(&env_with(home.path(), None, &[("MARSHAL_HISTORY", "maybe")])).1.errors[0].clone();
        assert_eq!(
            error.to_string(),
            "MARSHAL_HISTORY: key 'MARSHAL_HISTORY': expected 1/true/yes/on or 0/false/no/off"
        );
    }
}
