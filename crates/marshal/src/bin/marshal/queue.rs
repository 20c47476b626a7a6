//! `marshal queue`: a durable work queue in marshal's database. `add` queues a prompt (with a
//! tier or agent, a project folder, a priority, a time before which it waits, a task it waits
//! for); `run` works through the queue unattended, each task one orchestration from the same
//! engine as `marshal-orchestrate`, claimed under a lease it renews while the task runs.
//! A rate limit (429) puts the task back without counting the attempt and pauses the runner
//! until the quota resets (or `--until` has passed).

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use marshal_core::agents::Tier;
use marshal_core::context::{self, RoutingContext};
use marshal_core::event::TurnKey;
use marshal_core::orchestrate::{self, Job};
use marshal_core::spawn;
use marshal_core::store::Store;
use marshal_core::turns;
use marshal_db::queue::{NewTask, Task, TaskStatus};
use marshal_db::Db;
use serde_json::{json, Value};

#[derive(Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Queue a prompt; prints the new task's id.
    Add(AddArgs),
    /// List the tasks, oldest first.
    List(ListArgs),
    /// Show one task, with its answer or error.
    Show(ShowArgs),
    /// Cancel a pending task.
    Cancel(IdArgs),
    /// Put a failed or cancelled task back in the queue.
    Retry(IdArgs),
    /// Run queued tasks unattended until the queue is empty, --max tasks have run or --until.
    Run(RunArgs),
}

#[derive(Args)]
struct AddArgs {
    /// What to do, as you would type it to Claude Code.
    prompt: String,
    /// Run it on this tier (weak, base or strong) instead of routing it.
    #[arg(long, value_name = "TIER", conflicts_with = "agent")]
    tier: Option<String>,
    /// Run it on this agent instead of routing it.
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// The folder it runs in (default: the current one).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Higher runs first (default 0).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i64,
    /// Not before this time: HH:MM (the next one), +30m / +2h / +1d, or an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    not_before: Option<String>,
    /// Not before task ID is done.
    #[arg(long, value_name = "ID")]
    after: Option<i64>,
    /// Print {"id": N}.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ListArgs {
    /// Only tasks with this status: pending, running, done, failed or cancelled.
    #[arg(long)]
    status: Option<String>,
    /// Print JSON: [{id, status, prompt, tier, agent, project, attempts, created, finished}].
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ShowArgs {
    id: i64,
    /// Print every field as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct IdArgs {
    id: i64,
}

#[derive(Args)]
#[command(
    after_help = "Exit codes: 0 the queue was worked through (or --max/--until reached); 1 a task failed;\n\
2 bad usage; 3 the Claude Code CLI was not found; 4 stopped by a signal; 5 paused by a rate limit\n\
past --until (the message says when the quota resets)."
)]
struct RunArgs {
    /// Stop claiming at this time: HH:MM, +DURATION (+8h) or RFC 3339. Without it, the runner stops
    /// when nothing is ready to run.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Run at most N tasks.
    #[arg(long, value_name = "N")]
    max: Option<u64>,
    /// Tasks run at once, at most.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    concurrency: u32,
    /// How long a claim holds without renewal: a task whose runner died is claimable again after it.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(2..=86_400))]
    lease_seconds: u64,
    /// After a rate limit whose message names no reset time (an API key's 429 does not; a
    /// subscription's "resets 7pm" does), wait this long before claiming again.
    #[arg(long, value_name = "SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    backoff_seconds: u64,
    /// Print a JSON summary at the end: {claimed, done, failed, rate_limited, resumes_at}.
    #[arg(long)]
    json: bool,
}

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NO_CLI: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 4;
pub const EXIT_RATE_LIMITED: u8 = 5;

pub fn run(args: QueueArgs) -> Result<u8> {
    let store = crate::user_store("the queue")?;
    let mut db = Db::open(&store.database_path())?;
    match args.command {
        QueueCommand::Add(args) => add(&db, args),
        QueueCommand::List(args) => list(&db, args),
        QueueCommand::Show(args) => show(&db, args),
        QueueCommand::Cancel(args) => {
            if db.cancel_task(args.id, &marshal_db::now())? {
                crate::write_stdout(&format!("task {} cancelled\n", args.id))?;
                Ok(0)
            } else {
                bail!(
                    "task {} is {}: only a pending task can be cancelled",
                    args.id,
                    status_of(&db, args.id)?
                )
            }
        }
        QueueCommand::Retry(args) => {
            if db.retry_task(args.id)? {
                crate::write_stdout(&format!("task {} is pending again\n", args.id))?;
                Ok(0)
            } else {
                bail!(
                    "task {} is {}: only a failed or cancelled task can be retried",
                    args.id,
                    status_of(&db, args.id)?
                )
            }
        }
        QueueCommand::Run(args) => run_queue(&store, &mut db, args),
    }
}

fn status_of(db: &Db, id: i64) -> Result<&'static str> {
    Ok(db.task(id)?.with_context(|| format!("no task {id} (marshal queue list shows them)"))?.status.as_str())
}

fn add(db: &Db, args: AddArgs) -> Result<u8> {
    if args.prompt.trim().is_empty() {
        bail!("the prompt is empty");
    }
    let tier = match &args.tier {
        Some(text) => Some(
            Tier::parse(text.trim())
                .with_context(|| format!("--tier {text}: expected weak, base or strong"))?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    let project = match &args.project {
        Some(dir) => {
            dir.canonicalize().with_context(|| format!("--project {}: no such folder", dir.display()))?
        }
        None => std::env::current_dir().context("no current directory")?,
    };
    let not_before =
        args.not_before.as_deref().map(parse_time).transpose()?.map(|t| marshal_db::timestamp(&t));
    let id = db.add_task(
        &NewTask {
            prompt: args.prompt,
            tier,
            agent: args.agent.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()),
            project: project.display().to_string(),
            priority: args.priority,
            not_before,
            after: args.after,
        },
        &marshal_db::now(),
    )?;
    crate::write_stdout(&if args.json { format!("{}\n", json!({ "id": id })) } else { format!("{id}\n") })?;
    Ok(0)
}

fn list(db: &Db, args: ListArgs) -> Result<u8> {
    let status = match &args.status {
        Some(text) => {
            Some(TaskStatus::ALL.into_iter().find(|s| s.as_str() == text.trim()).with_context(|| {
                format!("--status {text}: expected pending, running, done, failed or cancelled")
            })?)
        }
        None => None,
    };
    let tasks = db.tasks(status)?;
    if args.json {
        let rows: Vec<Value> = tasks
            .iter()
            .map(|t| {
                json!({"id": t.id, "status": t.status.as_str(), "prompt": t.prompt, "tier": t.tier, "agent": t.agent,
                       "project": t.project, "attempts": t.attempts, "created": t.created, "finished": t.finished})
            })
            .collect();
        crate::write_stdout(&(serde_json::to_string_pretty(&rows)? + "\n"))?;
    } else if tasks.is_empty() {
        crate::write_stdout("The queue is empty.\n")?;
    } else {
        let rows: Vec<Vec<String>> = tasks
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.status.as_str().to_string(),
                    t.tier.clone().or_else(|| t.agent.clone()).unwrap_or_else(|| "routed".into()),
                    t.attempts.to_string(),
                    t.created.clone(),
                    shorten(&t.prompt, 60),
                ]
            })
            .collect();
        crate::write_stdout(&crate::workflow::left_table(
            &["id", "status", "tier/agent", "attempts", "created", "prompt"],
            &rows,
        ))?;
    }
    Ok(0)
}

fn show(db: &Db, args: ShowArgs) -> Result<u8> {
    let task =
        db.task(args.id)?.with_context(|| format!("no task {} (marshal queue list shows them)", args.id))?;
    let value = task_json(&task);
    if args.json {
        crate::write_stdout(&(serde_json::to_string_pretty(&value)? + "\n"))?;
    } else {
        let mut text = String::new();
        for key in [
            "id",
            "status",
            "tier",
            "agent",
            "project",
            "priority",
            "not_before",
            "after",
            "attempts",
            "created",
            "started",
            "finished",
            "error",
        ] {
            let shown = match &value[key] {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.push_str(&format!("{key:<11} {shown}\n"));
        }
        text.push_str(&format!("prompt:\n{}\n", task.prompt));
        if let Some(result) = &task.result {
            text.push_str(&format!("answer:\n{result}\n"));
        }
        crate::write_stdout(&text)?;
    }
    Ok(0)
}

fn task_json(t: &Task) -> Value {
    json!({
        "id": t.id, "status": t.status.as_str(), "prompt": t.prompt, "tier": t.tier, "agent": t.agent,
        "project": t.project, "priority": t.priority, "not_before": t.not_before, "after": t.after,
        "attempts": t.attempts, "created": t.created, "started": t.started, "finished": t.finished,
        "runner": t.runner, "result": t.result, "error": t.error,
    })
}

/// What the runner did, for its summary.
#[derive(Default)]
struct Tally {
    claimed: u64,
    done: u64,
    failed: u64,
    rate_limited: u64,
    resumes_at: Option<chrono::DateTime<chrono::Utc>>,
}

struct Finished {
    task: Task,
    run: orchestrate::Run,
    prompt_key: String,
    decision: marshal_core::routing::Recommendation,
}

fn run_queue(store: &Store, db: &mut Db, args: RunArgs) -> Result<u8> {
    let until = args.until.as_deref().map(parse_time).transpose()?;
    let Some(claude) = crate::find_claude() else { return Ok(EXIT_NO_CLI) };
    let _ = spawn::stop_requested(); // watch for SIGINT/SIGTERM from the start
    let runner = format!("runner-{}-{}", std::process::id(), chrono::Utc::now().format("%H%M%S%3f"));
    let lease = Duration::from_secs(args.lease_seconds);
    let renew_every = lease / 3;
    let runs_dir = store.runs_dir();
    let mut tally = Tally::default();
    let mut running: Vec<Task> = Vec::new();
    let mut last_renewal = Instant::now();
    let (done_tx, done_rx) = mpsc::channel::<Finished>();
    let concurrency = args.concurrency as usize;
    let max = args.max.unwrap_or(u64::MAX);
    eprintln!("marshal: queue runner {runner} started");
    std::thread::scope(|scope| -> Result<()> {
        loop {
            let now_time = chrono::Utc::now();
            let paused = tally.resumes_at.is_some_and(|at| at > now_time);
            let past_until = until.is_some_and(|u| now_time >= u);
            let may_claim = !spawn::stop_requested() && !paused && !past_until && tally.claimed < max;
            while may_claim && running.len() < concurrency && tally.claimed < max {
                let Some(task) = db.claim_task(
                    &runner,
                    &marshal_db::now(),
                    &marshal_db::timestamp(&(now_time + lease_delta(lease))),
                )?
                else {
                    break;
                };
                tally.claimed += 1;
                let project = PathBuf::from(&task.project);
                let routing = RoutingContext::load(
                    Some(store.dir()),
                    Some(&project),
                    context::plugin_root().as_deref(),
                );
                let tier = task.tier.as_deref().and_then(Tier::parse);
                let route = crate::workflow::route_work(
                    tier,
                    task.agent.as_deref(),
                    &task.prompt,
                    &routing,
                    "the task",
                );
                eprintln!(
                    "[{}] task {}: started on the {} tier, {} ({})",
                    chrono::Local::now().format("%H:%M:%S"),
                    task.id,
                    route.target.tier.as_str(),
                    route.target.agent,
                    route.target.model
                );
                let config = routing.config().clone();
                let prompt_key = format!("task-{}-{}", task.id, task.attempts);
                let attempt_stem = orchestrate::run_id("queue", Some(&prompt_key));
                let done_tx = done_tx.clone();
                let (claude, runs_dir) = (&claude, &runs_dir);
                running.push(task.clone());
                scope.spawn(move || {
                    let started = Instant::now();
                    let deadline = started + orchestrate::unattended_deadline(&config.orchestration);
                    // A panic here must still report back, or the runner would wait forever.
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        orchestrate::run(&Job {
                            prompt: &task.prompt,
                            cwd: &project,
                            recommendation: &route.decision,
                            config: &config,
                            claude,
                            runs_dir,
                            run_id: &attempt_stem,
                            started,
                            deadline,
                        })
                    }))
                    .unwrap_or_else(|_| orchestrate::Run::without_attempts());
                    let _ = done_tx.send(Finished { task, run, prompt_key, decision: route.decision });
                });
            }
            if running.is_empty() {
                if spawn::stop_requested() {
                    return Ok(());
                }
                if tally.claimed >= max || past_until {
                    return Ok(());
                }
                // Nothing ready. A rate limit's reset is waited for (a task waiting for it says
                // so, even one another runner put back); with --until, new and later tasks are
                // looked for every few seconds until then; otherwise the queue is done.
                let reset = quota_reset(db, &tally)?;
                let wake = match (reset, until) {
                    // The quota is shared: nothing can run before it resets.
                    (Some(at), Some(u)) if at >= u => None,
                    (Some(at), _) => Some(at),
                    (None, Some(_)) => Some(now_time + chrono::Duration::seconds(5)),
                    (None, None) => None,
                };
                let Some(wake) = wake else { return Ok(()) };
                let wake = until.map_or(wake, |u| wake.min(u));
                if until.is_some_and(|u| now_time >= u) {
                    return Ok(());
                }
                sleep_until(wake);
                continue;
            }
            match done_rx.recv_timeout(
                renew_every.saturating_sub(last_renewal.elapsed()).max(Duration::from_millis(10)),
            ) {
                Ok(finished) => {
                    running.retain(|t| t.id != finished.task.id);
                    settle(store, db, &runner, &finished, &mut tally, args.backoff_seconds)?;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("a task's thread ended without a result"),
            }
            if last_renewal.elapsed() >= renew_every {
                let lease_until = marshal_db::timestamp(&(chrono::Utc::now() + lease_delta(lease)));
                for task in &running {
                    if !db.renew_lease(task.id, &runner, &lease_until)? {
                        eprintln!(
                            "marshal: task {}: the lease was lost (cancelled, or taken after it ran out)",
                            task.id
                        );
                    }
                }
                last_renewal = Instant::now();
            }
        }
    })?;
    let resumes = quota_reset(db, &tally)?;
    let summary = json!({
        "runner": runner,
        "claimed": tally.claimed,
        "done": tally.done,
        "failed": tally.failed,
        "rate_limited": tally.rate_limited,
        "resumes_at": resumes.map(|t| marshal_db::timestamp(&t)),
    });
    if args.json {
        crate::write_stdout(&(serde_json::to_string_pretty(&summary)? + "\n"))?;
    } else {
        let mut text = format!("{} task(s) run: {} done, {} failed", tally.claimed, tally.done, tally.failed);
        if tally.rate_limited > 0 {
            text.push_str(&format!(", {} put back after a rate limit", tally.rate_limited));
        }
        text.push('\n');
        if let Some(at) = resumes {
            text.push_str(&format!(
                "The quota is used up: resumes at {} (run marshal queue run again then).\n",
                at.with_timezone(&chrono::Local).format("%H:%M")
            ));
        }
        crate::write_stdout(&text)?;
    }
    Ok(if spawn::stop_requested() {
        EXIT_INTERRUPTED
    } else if resumes.is_some() {
        EXIT_RATE_LIMITED
    } else if tally.failed > 0 {
        EXIT_FAILED
    } else {
        0
    })
}

/// Records how a task's orchestration ended: the queue, the ledger, the tally.
fn settle(
    store: &Store,
    db: &Db,
    runner: &str,
    finished: &Finished,
    tally: &mut Tally,
    backoff: u64,
) -> Result<()> {
    let (task, run) = (&finished.task, &finished.run);
    let stamp_now = marshal_db::now();
    let key = TurnKey {
        session: "queue".into(),
        prompt_id: Some(finished.prompt_key.clone()),
        project: Some(task.project.clone()),
    };
    let mode_reason = format!("queue task {}", task.id);
    let routed = turns::RoutedPrompt {
        key: &key,
        rec: &finished.decision,
        prompt: &task.prompt,
        mode_reason: &mode_reason,
        store_prompt: false,
    };
    if let Err(err) = turns::record_orchestration(store, &routed, run, &stamp_now) {
        eprintln!("marshal: task {} was not recorded in the ledger: {err:#}", task.id);
    }
    let stamp_time = chrono::Local::now().format("%H:%M:%S");
    if run.rate_limited() {
        let named = limit_reset(run);
        let resumes = named.unwrap_or_else(|| chrono::Utc::now() + chrono::Duration::seconds(backoff as i64));
        let until = chrono::DateTime::<chrono::Local>::from(resumes).format("%H:%M");
        let why = if named.is_some() { "the quota resets" } else { "backing off" };
        db.release_task(
            task.id,
            runner,
            Some(&marshal_db::timestamp(&resumes)),
            &format!("rate limited: waiting for the quota ({why} at {until})"),
        )?;
        tally.rate_limited += 1;
        tally.resumes_at = Some(tally.resumes_at.map_or(resumes, |at| at.max(resumes)));
        eprintln!(
            "[{stamp_time}] task {}: rate limited; back in the queue, claiming paused until {until} ({why})",
            task.id
        );
    } else if run.interrupted() {
        db.release_task(task.id, runner, None, "interrupted: the runner was stopped")?;
        eprintln!("[{stamp_time}] task {}: interrupted; back in the queue", task.id);
    } else if let Some(answer) = &run.result {
        if db.finish_task(task.id, runner, TaskStatus::Done, Some(answer), None, &stamp_now)? {
            tally.done += 1;
            eprintln!("[{stamp_time}] task {}: done", task.id);
        } else {
            eprintln!("[{stamp_time}] task {}: done, but the task was no longer this runner's", task.id);
        }
    } else {
        db.finish_task(task.id, runner, TaskStatus::Failed, None, Some(&run.failure_text()), &stamp_now)?;
        tally.failed += 1;
        eprintln!("[{stamp_time}] task {}: FAILED (marshal queue show {})", task.id, task.id);
    }
    Ok(())
}

/// The reset time the rate-limited run's message names ("You've hit your 5-hour limit · resets
/// 7pm (Europe/Berlin)"), if it is in the next eight days.
fn limit_reset(run: &orchestrate::Run) -> Option<chrono::DateTime<chrono::Utc>> {
    let now = chrono::Local::now();
    let reset = marshal_core::quota::reset_named_in(run.rate_limit_message()?, &now)?;
    (reset > now && reset < now + chrono::Duration::days(8)).then(|| reset.with_timezone(&chrono::Utc))
}

/// When the quota resets, if a rate limit holds tasks back: this runner's own, or one that a
/// task put back by another runner waits for.
fn quota_reset(db: &Db, tally: &Tally) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    let now_time = chrono::Utc::now();
    let waiting = db
        .next_wait(&marshal_db::timestamp(&now_time))?
        .filter(|(_, rate_limited)| *rate_limited)
        .and_then(|(at, _)| chrono::DateTime::parse_from_rfc3339(&at).ok())
        .map(|at| at.with_timezone(&chrono::Utc));
    Ok(tally.resumes_at.filter(|at| *at > now_time).or(waiting))
}

fn lease_delta(lease: Duration) -> chrono::Duration {
    chrono::Duration::milliseconds(lease.as_millis() as i64)
}

/// Sleeps until `at`, waking early when asked to stop.
fn sleep_until(at: chrono::DateTime<chrono::Utc>) {
    while !spawn::stop_requested() {
        let left = (at - chrono::Utc::now()).to_std().unwrap_or_default();
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(250)));
    }
}

/// `HH:MM` (the next such local time), `+N[smhd]`, or RFC 3339.
fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let text = text.trim();
    if let Some(amount) = text.strip_prefix('+') {
        let (digits, unit) =
            amount.split_at(amount.find(|c: char| !c.is_ascii_digit()).unwrap_or(amount.len()));
        let n: i64 =
            digits.parse().with_context(|| format!("{text}: expected +N followed by s, m, h or d"))?;
        let seconds = match unit {
            "s" => n,
            "m" | "" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => bail!("{text}: expected +N followed by s, m, h or d"),
        };
        if !(0..=366 * 86_400).contains(&seconds) {
            bail!("{text}: at most a year ahead");
        }
        return Ok(chrono::Utc::now() + chrono::Duration::seconds(seconds));
    }
    if let Ok(time) = chrono::NaiveTime::parse_from_str(text, "%H:%M") {
        let local = chrono::Local::now();
        let today = local.date_naive().and_time(time);
        let candidate = today
            .and_local_timezone(chrono::Local)
            .earliest()
            .with_context(|| format!("{text}: not a local time today"))?;
        let next = if candidate > local { candidate } else { candidate + chrono::Duration::days(1) };
        return Ok(next.with_timezone(&chrono::Utc));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .with_context(|| format!("{text}: expected HH:MM, +30m / +2h / +1d, or an RFC 3339 time"))
}

fn shorten(text: &str, chars: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > chars || text.lines().nth(1).is_some() {
        format!("{}...", line.chars().take(chars).collect::<String>())
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_durations_clock_times_and_rfc3339() {
        let now = chrono::Utc::now();
        let in_two_hours = parse_time("+2h").unwrap();
        assert!((in_two_hours - now - chrono::Duration::hours(2)).num_seconds().abs() <= 1);
        let next = parse_time("03:00").unwrap();
        assert!(next > now && next - now <= chrono::Duration::hours(25));
        assert_eq!(
            marshal_db::timestamp(&parse_time("2026-11-21T22:00:00+01:00").unwrap()),
            "2026-11-21T21:00:00.000Z"
        );
        for bad in ["+2w", "tomorrow", "+", "25:00"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
