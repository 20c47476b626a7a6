//! Orchestration: marshal carries the routing out itself. The routed agent runs as a
//! `claude -p` child (no shell, stdin closed, in the project folder, marked so its own hooks
//! record but never route again), with a time limit per attempt, a retry after a time-out or an
//! API error, and escalation to the next stronger tier when a tier fails or its agent asks.
//! Compliance is 100% by construction: the main model never gets the request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::agents::{plugin_subagent_type, Tier};
use crate::config::Config;
use crate::routing::Recommendation;
use crate::spawn::{self, Spawn};

/// An agent that finds a task beyond it answers with this marker to ask for a stronger tier.
pub const ESCALATE_MARKER: &str = "marshal:escalate";
/// An attempt needs at least this much of the run's time left to be worth starting.
const MIN_ATTEMPT_TIME: Duration = Duration::from_secs(1);

/// Claude Code's variables that describe the parent session; a child must not inherit them.
const PARENT_SESSION_VARS: &[&str] = &[
    "CLAUDECODE",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_SESSION_ATTENDED",
    "CLAUDE_CODE_CHILD_NOTES_DIR",
    "CLAUDE_CODE_CHILD_SESSION",
    "CLAUDE_CODE_MESSAGING_SOCKET",
    "CLAUDE_CODE_MESSAGING_TOKEN",
    "CLAUDE_ENV_FILE",
    "CLAUDE_EFFORT",
    "CLAUDE_PID",
    "CLAUDE_PLUGIN_ROOT",
    "CLAUDE_PLUGIN_DATA",
    "CLAUDE_PROJECT_DIR",
];

/// A file-name stem for one turn's attempts.
pub fn run_id(session: &str, prompt_id: Option<&str>) -> String {
    let turn =
        prompt_id.map_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f").to_string(), str::to_string);
    format!("{}-{}", crate::paths::safe_file_stem(session), crate::paths::safe_file_stem(&turn))
}

/// The Claude Code CLI: `MARSHAL_CLAUDE_BIN`, else `claude` on `PATH`.
pub fn find_claude() -> Option<PathBuf> {
    spawn::resolve_program(crate::env::claude_bin().as_deref(), "claude")
}

/// What to tell a user when [`find_claude`] finds nothing.
pub fn missing_cli_message() -> String {
    format!(
        "the Claude Code CLI was not found; install it (npm install -g @anthropic-ai/claude-code@2.1.329, the version marshal is tested with) or set {}",
        crate::env::CLAUDE_BIN
    )
}

/// The deadline of a run nobody waits on (a workflow step, a queued task): every attempt gets its
/// whole time limit. A hook's run has a shorter one, for the hook's own time limit.
pub fn unattended_deadline(settings: &crate::config::Orchestration) -> Duration {
    settings.timeout * settings.max_attempts.max(1) + Duration::from_secs(5)
}

/// Who runs one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub tier: Tier,
    pub agent: String,
    pub subagent_type: String,
    /// An alias or model id; `inherit` leaves the child's default.
    pub model: String,
}

impl Target {
    pub fn from_recommendation(rec: &Recommendation) -> Target {
        Target {
            tier: rec.tier,
            agent: rec.agent.clone(),
            subagent_type: rec.subagent_type.clone(),
            model: rec.model.clone(),
        }
    }

    /// A decision made by the caller (a workflow step's `tier` or `agent`), in the shape the
    /// ledger records: full confidence, the reason given, no classifier trace.
    pub fn assigned(&self, task: &str, reason: &str, config: &Config) -> Recommendation {
        Recommendation {
            agent: self.agent.clone(),
            subagent_type: self.subagent_type.clone(),
            tier: self.tier,
            model: self.model.clone(),
            confidence: 1.0,
            reasons: vec![reason.to_string()],
            task: task.to_string(),
            score: 0,
            user_named: Vec::new(),
            explanation: crate::routing::Explanation {
                rules: Vec::new(),
                votes: Vec::new(),
                instruction: Some(reason.to_string()),
                classifier: None,
                factors: Vec::new(),
                thresholds: config.thresholds,
                tier_reason: reason.to_string(),
                agent_reason: reason.to_string(),
            },
        }
    }

    /// The configured agent and model of a tier.
    pub fn for_tier(tier: Tier, config: &Config) -> Target {
        let agent = config.agents.get(tier).to_string();
        Target {
            tier,
            subagent_type: plugin_subagent_type(&agent),
            agent,
            model: config.models.get(tier).to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Succeeded,
    /// The agent answered with the escalation marker.
    EscalationRequested,
    TimedOut,
    /// marshal was asked to stop (the hook was ended, Ctrl-C) and ended the child.
    Interrupted,
    /// `is_error` with an API error status: worth a retry.
    ApiError,
    /// `is_error` with status 429: the account's quota is used up. Neither a retry nor another
    /// tier helps until it resets, so the run stops there.
    RateLimited,
    Failed,
    /// The CLI could not be started at all.
    SpawnFailed,
}

impl AttemptStatus {
    fn transient(self) -> bool {
        matches!(self, AttemptStatus::TimedOut | AttemptStatus::ApiError)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub number: u32,
    pub target: Target,
    pub status: AttemptStatus,
    pub exit_code: Option<i32>,
    pub api_error_status: Option<u64>,
    pub duration_ms: u64,
    /// From the start of the marshal process to this child's spawn.
    pub spawned_after_us: u64,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The child's answer, when it gave one.
    #[serde(skip)]
    pub result: Option<String>,
    /// The child's Claude Code session id, from its JSON result.
    pub child_session: Option<String>,
    /// Why the CLI could not be started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawn_error: Option<String>,
}

/// A whole orchestration.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub attempts: Vec<Attempt>,
    /// The answer of the attempt that succeeded.
    pub result: Option<String>,
    pub escalations: u32,
    /// The run's deadline ended it (attempts were cut short or not started).
    pub deadline_reached: bool,
}

impl Run {
    /// A run that ended inside marshal before any attempt was recorded (its thread panicked).
    pub fn without_attempts() -> Run {
        Run { attempts: Vec::new(), result: None, escalations: 0, deadline_reached: false }
    }

    /// The run was stopped by a signal (SIGINT, SIGTERM) rather than failing: no answer, and
    /// marshal was asked to stop or its last attempt was ended for it.
    pub fn interrupted(&self) -> bool {
        self.result.is_none()
            && (spawn::stop_requested()
                || self.attempts.last().is_some_and(|a| a.status == AttemptStatus::Interrupted))
    }

    /// The run ended on a rate limit (429).
    pub fn rate_limited(&self) -> bool {
        self.attempts.last().is_some_and(|a| a.status == AttemptStatus::RateLimited)
    }

    /// What Claude Code said when the run stopped at a rate limit ("You've hit your 5-hour
    /// limit · resets 7pm (UTC)" for a subscription).
    pub fn rate_limit_message(&self) -> Option<&str> {
        self.attempts.last().filter(|a| a.status == AttemptStatus::RateLimited)?.result.as_deref()
    }

    pub fn succeeded(&self) -> Option<&Attempt> {
        self.attempts.iter().find(|a| a.status == AttemptStatus::Succeeded)
    }

    /// A clear account of a failed run: each attempt, and where the last one's output is.
    pub fn failure_text(&self) -> String {
        let mut text = format!("marshal: orchestration failed after {} attempt(s):", self.attempts.len());
        for attempt in &self.attempts {
            text.push_str(&format!(
                "\n  attempt {} ({} tier, {}, model {}): {}",
                attempt.number,
                attempt.target.tier.as_str(),
                attempt.target.subagent_type,
                attempt.target.model,
                describe(attempt)
            ));
        }
        if self.deadline_reached {
            text.push_str("\nThe run's deadline was reached (orchestrate.deadline_seconds; inside a hook, also the hook's own time limit).");
        }
        if let Some(last) = self.attempts.last() {
            text.push_str(&format!(
                "\nThe last attempt's output is in {} (errors: {}).",
                last.stdout.display(),
                last.stderr.display()
            ));
        }
        text
    }
}

fn describe(attempt: &Attempt) -> String {
    match attempt.status {
        AttemptStatus::Succeeded => "succeeded".into(),
        AttemptStatus::EscalationRequested => "the agent asked for a stronger tier".into(),
        AttemptStatus::TimedOut => format!("timed out after {} s", attempt.duration_ms / 1000),
        AttemptStatus::Interrupted => "interrupted: marshal was asked to stop".into(),
        AttemptStatus::RateLimited => "rate limited (429): the quota is used up until it resets".into(),
        AttemptStatus::ApiError => {
            format!("API error {}", attempt.api_error_status.map_or("(no status)".into(), |s| s.to_string()))
        }
        AttemptStatus::Failed if attempt.exit_code == Some(0) => {
            "exited with status 0 but printed no readable JSON result".into()
        }
        AttemptStatus::Failed => {
            format!("exited with status {}", attempt.exit_code.map_or("?".into(), |c| c.to_string()))
        }
        AttemptStatus::SpawnFailed => match &attempt.spawn_error {
            Some(why) => format!("could not be started: {why}"),
            None => "could not be started".into(),
        },
    }
}

/// One orchestration to carry out.
pub struct Job<'a> {
    pub prompt: &'a str,
    pub cwd: &'a Path,
    pub recommendation: &'a Recommendation,
    pub config: &'a Config,
    pub claude: &'a Path,
    /// Where each attempt's output goes (created if needed).
    pub runs_dir: &'a Path,
    /// A name for this run's files.
    pub run_id: &'a str,
    /// When the marshal process started (for the spawn overhead).
    pub started: Instant,
    /// The whole run ends by then, every attempt included.
    pub deadline: Instant,
}

/// Runs the attempts: the routed target first; after a time-out or an API error the same
/// target again (up to `retries` times); after any other failure, or when the agent asks, the
/// next stronger tier; never more than `max_attempts`, and never past the job's deadline (each
/// attempt gets at most what remains of it).
pub fn run(job: &Job) -> Run {
    let settings = job.config.orchestration;
    let mut target = Target::from_recommendation(job.recommendation);
    let mut retries_left = settings.retries;
    let mut run = Run { attempts: Vec::new(), result: None, escalations: 0, deadline_reached: false };
    let _ = crate::fsutil::ensure_private_dir(job.runs_dir);
    for number in 1..=settings.max_attempts.max(1) {
        // Asked to stop (SIGTERM, Ctrl-C) between attempts: start no other.
        if spawn::stop_requested() {
            break;
        }
        let remaining = job.deadline.saturating_duration_since(Instant::now());
        if remaining < MIN_ATTEMPT_TIME {
            run.deadline_reached = true;
            break;
        }
        let attempt = run_attempt(job, &target, number, settings.timeout.min(remaining));
        let status = attempt.status;
        if status == AttemptStatus::Succeeded {
            run.result = attempt.result.clone();
            run.attempts.push(attempt);
            return run;
        }
        run.attempts.push(attempt);
        if matches!(
            status,
            AttemptStatus::SpawnFailed | AttemptStatus::Interrupted | AttemptStatus::RateLimited
        ) {
            break;
        }
        if status == AttemptStatus::TimedOut && Instant::now() >= job.deadline {
            run.deadline_reached = true;
            break;
        }
        if status.transient() && retries_left > 0 {
            retries_left -= 1;
            continue;
        }
        match target.tier.stronger().filter(|_| settings.escalate) {
            Some(next) => {
                target = Target::for_tier(next, job.config);
                retries_left = settings.retries;
                run.escalations += 1;
            }
            None => break,
        }
    }
    run
}

/// Options first, then `--`, then the prompt: a request that starts with `--` is never read as
/// an option (the real CLI takes `claude -p [options] -- PROMPT`, verified on 2.1.329).
/// A prompt longer than this goes to the child on stdin: Linux refuses a single argument over
/// 128 KiB (`MAX_ARG_STRLEN`), and a workflow step's prompt carries earlier answers.
const LONGEST_PROMPT_ARGUMENT: usize = 96 * 1024;

/// Whether the prompt is passed on stdin rather than as the last argument (an argument cannot
/// hold a NUL byte either).
fn prompt_on_stdin(prompt: &str) -> bool {
    prompt.len() > LONGEST_PROMPT_ARGUMENT || prompt.contains('\0')
}

fn child_args(prompt: &str, target: &Target) -> Vec<String> {
    let mut args = vec!["-p".to_string(), "--output-format".into(), "json".into()];
    if target.model != crate::agents::INHERIT_MODEL {
        args.extend(["--model".to_string(), target.model.clone()]);
    }
    args.extend(["--agent".to_string(), target.subagent_type.clone()]);
    if !prompt_on_stdin(prompt) {
        args.extend(["--".to_string(), prompt.to_string()]);
    }
    args
}

fn run_attempt(job: &Job, target: &Target, number: u32, timeout: Duration) -> Attempt {
    let stem = format!("{}-{number}", job.run_id);
    let stdout = job.runs_dir.join(format!("{stem}.out"));
    let stderr = job.runs_dir.join(format!("{stem}.err"));
    let args = child_args(job.prompt, target);
    // `claude -p` with no prompt argument reads it from stdin (verified on 2.1.329).
    let stdin = prompt_on_stdin(job.prompt).then(|| job.runs_dir.join(format!("{stem}.in")));
    if let Some(path) = &stdin {
        let written = crate::fsutil::create_private(path).and_then(|mut file| {
            std::io::Write::write_all(&mut file, job.prompt.as_bytes()).map_err(Into::into)
        });
        if let Err(err) = written {
            let _ = std::fs::write(
                &stderr,
                format!("marshal: could not write the prompt file {}: {err:#}\n", path.display()),
            );
        }
    }
    let spawned = spawn::run(
        &Spawn {
            program: job.claude,
            args: &args,
            cwd: job.cwd,
            remove_env: PARENT_SESSION_VARS,
            set_env: &[(crate::env::ORCHESTRATED, "1")],
            timeout,
            stdin: stdin.as_deref(),
            stdout: &stdout,
            stderr: &stderr,
        },
        job.started,
    );
    if let Some(path) = &stdin {
        let _ = std::fs::remove_file(path);
    }
    let mut attempt = Attempt {
        number,
        target: target.clone(),
        status: AttemptStatus::SpawnFailed,
        exit_code: None,
        api_error_status: None,
        duration_ms: 0,
        spawned_after_us: 0,
        stdout,
        stderr,
        result: None,
        child_session: None,
        spawn_error: None,
    };
    let finished = match spawned {
        Ok(finished) => finished,
        Err(err) => {
            // The cause goes where the attempt's errors are looked for.
            let _ = std::fs::write(&attempt.stderr, format!("marshal: {err:#}\n"));
            attempt.spawn_error = Some(format!("{err:#}"));
            return attempt;
        }
    };
    attempt.duration_ms = finished.duration.as_millis() as u64;
    attempt.spawned_after_us = finished.spawned_after.as_micros() as u64;
    attempt.exit_code = finished.status.and_then(|s| s.code());
    match finished.ended {
        spawn::Ended::Exited => {}
        spawn::Ended::TimedOut => {
            attempt.status = AttemptStatus::TimedOut;
            return attempt;
        }
        spawn::Ended::Interrupted => {
            attempt.status = AttemptStatus::Interrupted;
            return attempt;
        }
    }
    let report = read_child_report(&attempt.stdout);
    attempt.api_error_status = report.api_error_status;
    attempt.status = match (&report, attempt.exit_code) {
        (r, Some(0)) if !r.is_error && r.result.is_some() => {
            if r.result.as_deref().is_some_and(|t| t.contains(ESCALATE_MARKER)) {
                AttemptStatus::EscalationRequested
            } else {
                AttemptStatus::Succeeded
            }
        }
        (r, _) if r.is_error && r.api_error_status == Some(429) => AttemptStatus::RateLimited,
        (r, _) if r.is_error && r.api_error_status.is_some() => AttemptStatus::ApiError,
        _ => AttemptStatus::Failed,
    };
    attempt.result = report.result;
    attempt.child_session = report.session_id;
    attempt
}

/// The fields of `claude -p --output-format json` marshal reads.
#[derive(Debug, Default)]
struct ChildReport {
    is_error: bool,
    result: Option<String>,
    api_error_status: Option<u64>,
    session_id: Option<String>,
}

fn read_child_report(path: &Path) -> ChildReport {
    // The spawn helper keeps at most MAX_STREAM_BYTES and a line saying what it cut.
    let cap = spawn::MAX_STREAM_BYTES + 4096;
    let Ok(Some(bytes)) = crate::fsutil::read_capped(path, cap, crate::fsutil::Links::Refuse) else {
        return ChildReport::default();
    };
    // The JSON result is the last line that parses as an object.
    let value = bytes
        .split(|b| *b == b'\n')
        .rev()
        .find_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok().filter(|v| v.is_object()));
    let Some(value) = value else { return ChildReport::default() };
    ChildReport {
        is_error: value.get("is_error").and_then(serde_json::Value::as_bool).unwrap_or(false),
        result: value.get("result").and_then(serde_json::Value::as_str).map(str::to_string),
        api_error_status: value.get("api_error_status").and_then(serde_json::Value::as_u64),
        // An id is short; anything else is not one (the ledger must stay small).
        session_id: value
            .get("session_id")
            .and_then(serde_json::Value::as_str)
            .filter(|id| !id.is_empty() && id.len() <= 128)
            .map(str::to_string),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::routing::{route, Decision, RouteInputs};

    /// A stand-in for the Claude Code CLI: a script that answers by the model it was given.
    fn fake_claude(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("claude");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn chore(config: &Config) -> Recommendation {
        let Decision::Route(rec) = route(
            "rename foo to bar in utils.py",
            &RouteInputs { config, agents: &[], history: None, five_hour_used: None },
        ) else {
            panic!()
        };
        *rec
    }

    fn run_with(script: &str, config: &Config) -> (Run, tempfile::TempDir) {
        let tmp = tempfile::tempdir().unwrap();
        let claude = fake_claude(tmp.path(), script);
        let rec = chore(config);
        let runs_dir = tmp.path().join("runs");
        let job = Job {
            prompt: "rename foo to bar in utils.py",
            cwd: tmp.path(),
            recommendation: &rec,
            config,
            claude: &claude,
            runs_dir: &runs_dir,
            run_id: "s1-p1",
            started: Instant::now(),
            deadline: Instant::now() + config.orchestration.deadline,
        };
        (run(&job), tmp)
    }

    const ANSWER_BY_MODEL: &str = r#"
model=""; agent=""
while [ $# -gt 0 ]; do case "$1" in --model) model="$2"; shift;; --agent) agent="$2"; shift;; esac; shift; done
[ "$MARSHAL_ORCHESTRATED" = 1 ] || { echo "not marked" >&2; exit 9; }
case "$model" in
  haiku) echo '{"type":"result","is_error":true,"api_error_status":529,"result":"Overloaded"}'; exit 1;;
  sonnet) echo '{"type":"result","is_error":false,"result":"done by '"$agent"'"}';;
esac"#;

    #[test]
    fn the_routed_tier_answers() {
        let (run, _tmp) =
            run_with(r#"echo '{"type":"result","is_error":false,"result":"renamed"}'"#, &Config::default());
        assert_eq!(run.result.as_deref(), Some("renamed"));
        assert_eq!(run.attempts.len(), 1);
        assert_eq!(run.attempts[0].target.subagent_type, "marshal:haiku-general");
        assert!(run.attempts[0].spawned_after_us > 0);
    }

    #[test]
    fn api_errors_retry_once_then_escalate() {
        let (run, _tmp) = run_with(ANSWER_BY_MODEL, &Config::default());
        let steps: Vec<(&str, AttemptStatus)> =
            run.attempts.iter().map(|a| (a.target.model.as_str(), a.status)).collect();
        assert_eq!(
            steps,
            [
                ("haiku", AttemptStatus::ApiError),
                ("haiku", AttemptStatus::ApiError),
                ("sonnet", AttemptStatus::Succeeded)
            ]
        );
        assert_eq!(run.result.as_deref(), Some("done by marshal:sonnet-general"));
        assert_eq!((run.escalations, run.attempts[0].api_error_status), (1, Some(529)));
    }

    #[test]
    fn the_escalation_marker_moves_up_a_tier_and_attempts_are_capped() {
        let script =
            r#"echo '{"type":"result","is_error":false,"result":"marshal:escalate: needs design work"}'"#;
        let (run, _tmp) = run_with(script, &Config::default());
        assert_eq!(run.result, None);
        let tiers: Vec<Tier> = run.attempts.iter().map(|a| a.target.tier).collect();
        assert_eq!(tiers, [Tier::Weak, Tier::Base, Tier::Strong]);
        assert!(run.failure_text().contains("the agent asked for a stronger tier"), "{}", run.failure_text());
    }

    #[test]
    fn a_time_out_is_retried_once_and_the_failure_says_where_the_output_is() {
        let mut config = Config::default();
        config.orchestration.timeout = Duration::from_millis(300);
        config.orchestration.escalate = false;
        let (run, _tmp) = run_with("echo started; sleep 30", &config);
        let statuses: Vec<AttemptStatus> = run.attempts.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [AttemptStatus::TimedOut, AttemptStatus::TimedOut]);
        let text = run.failure_text();
        assert!(
            text.contains("attempt 2 (weak tier, marshal:haiku-general, model haiku): timed out"),
            "{text}"
        );
        assert!(text.contains("s1-p1-2.out"), "{text}");
        assert_eq!(std::fs::read_to_string(&run.attempts[1].stdout).unwrap(), "started\n");
    }

    #[test]
    fn a_rate_limit_ends_the_run_at_once() {
        let script = r#"echo '{"type":"result","is_error":true,"api_error_status":429,"result":"rate limited"}'; exit 1"#;
        let (run, _tmp) = run_with(script, &Config::default());
        let statuses: Vec<AttemptStatus> = run.attempts.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [AttemptStatus::RateLimited]);
        assert!(run.rate_limited() && run.result.is_none());
        assert!(run.failure_text().contains("rate limited (429)"), "{}", run.failure_text());
    }
}
