//! `marshal workflow run` and `resume`: carries a checked workflow out. Each step is one
//! orchestration from the same engine as `marshal-orchestrate` (a `claude -p` child with time
//! limit, retry and escalation), up to `--concurrency` at once, in the order
//! [`workflow::Schedule`] allows. Every change of state is written to the database as it
//! happens, so a runner killed at any point loses at most the steps it was running; each
//! step's orchestration is recorded in the ledger under the session `workflow-<run id>` with
//! the step id as its prompt id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use marshal_core::config::Config;
use marshal_core::context::RoutingContext;
use marshal_core::event::TurnKey;
use marshal_core::lock::LockGuard;
use marshal_core::orchestrate::{self, Job, Target};
use marshal_core::spawn;
use marshal_core::store::Store;
use marshal_core::turns;
use marshal_core::workflow::{self, Schedule, StepState, Workflow};
use marshal_db::workflows::{RunStatus, StepEnd, StepRoute, StepStatus};
use marshal_db::Db;

use super::progress::Progress;

/// Everything a run needs, for a new run and a resumed one alike.
pub(crate) struct Execution<'a> {
    pub store: &'a Store,
    pub db: &'a mut Db,
    pub run_id: &'a str,
    pub workflow: &'a Workflow,
    pub routing: &'a RoutingContext,
    pub project: &'a Path,
    pub claude: &'a Path,
    pub concurrency: usize,
    pub progress: &'a Progress,
}

/// How one step's orchestration ended, sent back by the thread that ran it.
struct Finished {
    step: usize,
    prompt: String,
    route: super::Route,
    run: orchestrate::Run,
    took: Duration,
}

/// The session a run's steps are recorded under in the ledger.
pub(crate) fn ledger_session(run_id: &str) -> String {
    format!("workflow-{run_id}")
}

/// Runs every step that can run; returns how the run ended (also written to the database).
pub(crate) fn execute(exec: Execution) -> Result<RunStatus> {
    let Execution { store, db, run_id, workflow, routing, project, claude, concurrency, progress } = exec;
    // Installs the SIGINT/SIGTERM watch before the first child, so a Ctrl-C between steps stops too.
    let _ = spawn::stop_requested();
    let states: Vec<StepState> = {
        let rows = db.steps(run_id)?;
        workflow
            .steps
            .iter()
            .map(|step| match rows.iter().find(|r| r.step_id == step.id).map(|r| r.status) {
                Some(StepStatus::Succeeded) => StepState::Succeeded,
                _ => StepState::Pending,
            })
            .collect()
    };
    progress.begin(workflow, &states);
    let mut schedule = Schedule::new(workflow, states);
    let mut outputs: BTreeMap<String, String> = db.outputs(run_id)?;
    let run_dir = store.workflow_run_dir(run_id);
    let runs_dir = store.runs_dir();
    let session = ledger_session(run_id);
    let config = routing.config();
    let (done_tx, done_rx) = mpsc::channel::<Finished>();
    let outcome: Result<()> = std::thread::scope(|scope| {
        loop {
            while schedule.running() < concurrency && !spawn::stop_requested() {
                let Some(index) = schedule.next_ready() else { break };
                let step = &workflow.steps[index];
                let prompt = workflow::render(&step.prompt, &workflow.vars, &outputs);
                let route = super::route_step(step, &prompt, routing);
                let now = marshal_db::now();
                db.step_started(run_id, &step.id, &step_route(&route.target), &now)?;
                progress.started(&step.id, &route.target);
                schedule.start(index);
                let settings = step_config(config, workflow, index);
                let attempt_stem =
                    orchestrate::run_id(&session, Some(&format!("{}-{}", step.id, compact(&now))));
                let done_tx = done_tx.clone();
                let runs_dir = runs_dir.clone();
                scope.spawn(move || {
                    let started = Instant::now();
                    // A panic here must still report back, or the runner would wait forever.
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        orchestrate::run(&Job {
                            prompt: &prompt,
                            cwd: project,
                            recommendation: &route.decision,
                            config: &settings,
                            claude,
                            runs_dir: &runs_dir,
                            run_id: &attempt_stem,
                            started,
                            deadline: started + orchestrate::unattended_deadline(&settings.orchestration),
                        })
                    }))
                    .unwrap_or_else(|_| orchestrate::Run::without_attempts());
                    let _ =
                        done_tx.send(Finished { step: index, prompt, route, run, took: started.elapsed() });
                });
            }
            if schedule.running() == 0 {
                return Ok(());
            }
            // Every step's thread sends its result, panic or not (see above).
            let finished = done_rx.recv().context("a step's thread ended without a result")?;
            settle(
                &finished,
                &mut schedule,
                &mut outputs,
                db,
                store,
                &run_dir,
                run_id,
                workflow,
                project,
                progress,
            )?;
        }
    });
    outcome?;
    let status = if schedule.all_succeeded() {
        RunStatus::Succeeded
    } else if spawn::stop_requested()
        || (0..workflow.steps.len()).any(|i| schedule.state(i) == StepState::Pending)
    {
        RunStatus::Interrupted
    } else {
        RunStatus::Failed
    };
    let finished = (status != RunStatus::Interrupted).then(marshal_db::now);
    db.set_run_status(run_id, status, finished.as_deref())?;
    progress.end();
    Ok(status)
}

/// Records how a step ended: the database, its answer's file, the ledger, the schedule.
#[allow(clippy::too_many_arguments)]
fn settle(
    finished: &Finished,
    schedule: &mut Schedule,
    outputs: &mut BTreeMap<String, String>,
    db: &Db,
    store: &Store,
    run_dir: &Path,
    run_id: &str,
    workflow: &Workflow,
    project: &Path,
    progress: &Progress,
) -> Result<()> {
    let step = &workflow.steps[finished.step];
    let run = &finished.run;
    let now = marshal_db::now();
    record_in_ledger(store, run_id, &step.id, finished, project, &now);
    let last = run.attempts.last();
    let ran_on = last.map_or(&finished.route.target, |a| &a.target);
    if run.interrupted() {
        // Not the step's failure: it runs again on resume.
        db.set_step_status(run_id, &step.id, StepStatus::Pending, Some("interrupted"))?;
        schedule.put_back(finished.step);
        progress.interrupted(&step.id);
        return Ok(());
    }
    let attempts = run.attempts.len() as u32;
    let duration_ms = finished.took.as_millis() as u64;
    let route = step_route(ran_on);
    match &run.result {
        Some(answer) => {
            let output_file = run_dir.join(format!("{}.txt", step.id));
            marshal_core::fsutil::write_atomic(&output_file, answer.as_bytes())
                .with_context(|| format!("could not save step {}'s answer", step.id))?;
            let output_file = output_file.display().to_string();
            db.step_ended(
                run_id,
                &step.id,
                &StepEnd {
                    status: StepStatus::Succeeded,
                    route,
                    attempts,
                    finished: &now,
                    duration_ms,
                    output: Some(answer),
                    output_file: Some(&output_file),
                    error: None,
                },
            )?;
            outputs.insert(step.id.clone(), answer.clone());
            schedule.finish(finished.step, true);
            progress.succeeded(&step.id, ran_on, attempts, finished.took);
        }
        None => {
            let error = run.failure_text();
            db.step_ended(
                run_id,
                &step.id,
                &StepEnd {
                    status: StepStatus::Failed,
                    route,
                    attempts,
                    finished: &now,
                    duration_ms,
                    output: None,
                    output_file: None,
                    error: Some(&error),
                },
            )?;
            progress.failed(&step.id, ran_on, attempts, finished.took);
            for (skipped, because) in schedule.finish(finished.step, false) {
                let (id, cause) = (&workflow.steps[skipped].id, &workflow.steps[because].id);
                let why = format!("not run: step '{cause}' failed");
                db.set_step_status(run_id, id, StepStatus::Skipped, Some(&why))?;
                progress.skipped(id, cause);
            }
        }
    }
    Ok(())
}

/// The step's orchestration in the ledger, like any other orchestrated turn. A ledger that
/// cannot be written does not stop the run: the database holds its state.
fn record_in_ledger(
    store: &Store,
    run_id: &str,
    step_id: &str,
    finished: &Finished,
    project: &Path,
    now: &str,
) {
    let key = TurnKey {
        session: ledger_session(run_id),
        prompt_id: Some(step_id.to_string()),
        project: Some(project.display().to_string()),
    };
    let mode_reason = format!("workflow run {run_id}, step {step_id}");
    let routed = turns::RoutedPrompt {
        key: &key,
        rec: &finished.route.decision,
        prompt: &finished.prompt,
        mode_reason: &mode_reason,
        store_prompt: false,
    };
    if let Err(err) = turns::record_orchestration(store, &routed, &finished.run, now) {
        eprintln!("marshal: step {step_id} was not recorded in the ledger: {err:#}");
    }
}

fn step_route(target: &Target) -> StepRoute<'_> {
    StepRoute { tier: target.tier.as_str(), model: &target.model, agent: &target.agent }
}

/// The orchestration settings of one step: its own time limit and retries, else the
/// workflow's defaults, else the configuration's.
fn step_config(config: &Config, workflow: &Workflow, index: usize) -> Config {
    let step = &workflow.steps[index];
    let mut settings = config.clone();
    if let Some(seconds) = step.timeout_seconds.or(workflow.timeout_seconds) {
        settings.orchestration.timeout = Duration::from_secs(seconds);
    }
    if let Some(retries) = step.retries.or(workflow.retries) {
        settings.orchestration.retries = retries;
    }
    settings
}

/// `2026-11-21T10:00:00.123Z` as `100000123`, for file names.
fn compact(timestamp: &str) -> String {
    timestamp.get(11..).unwrap_or_default().chars().filter(char::is_ascii_digit).collect()
}

/// A new run's id: its start time and four random hex digits, e.g. `20261121-143012-a3f9`.
pub(crate) fn new_run_id() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let noise = (nanos ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{}-{noise:04x}", chrono::Utc::now().format("%Y%m%d-%H%M%S"))
}

/// The run's lock, held by the process running it: a second `resume` of a live run is refused,
/// and a run marked running whose lock is free had its runner die (it shows as interrupted).
pub(crate) fn lock_run(store: &Store, run_id: &str) -> Result<Option<LockGuard>> {
    let dir = store.workflow_run_dir(run_id);
    marshal_core::fsutil::ensure_private_dir(&dir)?;
    Ok(marshal_core::lock::lock_exclusive(&run_lock_path(&dir), Duration::ZERO).ok())
}

pub(crate) fn run_lock_path(run_dir: &Path) -> PathBuf {
    run_dir.join("run.lock")
}

/// Whether a run marked running still has its runner.
pub(crate) fn is_live(store: &Store, run_id: &str) -> bool {
    let path = run_lock_path(&store.workflow_run_dir(run_id));
    path.exists() && marshal_core::lock::lock_exclusive(&path, Duration::ZERO).is_err()
}
