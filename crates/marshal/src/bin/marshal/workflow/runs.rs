//! `marshal workflow run`, `resume`, `status` and `list`: the commands around the engine
//! (run.rs), and how a run is shown, as text or JSON.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use marshal_core::context::{self, RoutingContext};
use marshal_core::store::Store;
use marshal_db::workflows::{NewRun, RunRow, RunStatus, StepRow, StepStatus};
use marshal_db::Db;
use serde_json::{json, Value};

use super::progress::Progress;
use super::run::{self, Execution};

/// Every step succeeded (or, for `status`/`list`, the command worked).
pub const EXIT_SUCCEEDED: u8 = 0;
/// The run ended with a failed step (its dependants did not run; other branches finished).
pub const EXIT_FAILED: u8 = 1;
/// Nothing ran: bad usage, a file that does not parse or has problems, no such run.
pub const EXIT_NOT_STARTED: u8 = 2;
/// The Claude Code CLI was not found.
pub const EXIT_NO_CLI: u8 = 3;
/// Stopped by SIGINT, SIGTERM or SIGHUP: `marshal workflow resume RUN_ID` carries on.
pub const EXIT_INTERRUPTED: u8 = 4;

const EXIT_CODES: &str =
    "Exit codes: 0 every step succeeded; 1 a step failed (its dependants did not run unless it has on_failure:\n\
continue; other branches finished); 2 nothing ran (bad usage, a problem in the file, no such run); 3 the Claude Code CLI was not\n\
found (install it or set MARSHAL_CLAUDE_BIN); 4 interrupted (resume with marshal workflow resume RUN_ID).";

/// The most steps run at once.
const MAX_CONCURRENCY: u32 = 16;

#[derive(Args)]
#[command(after_help = EXIT_CODES)]
pub struct RunArgs {
    /// The workflow file (YAML or JSON).
    file: PathBuf,
    /// Set a variable (repeatable): overrides the file's `vars`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Steps run at once, at most.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=MAX_CONCURRENCY as i64))]
    concurrency: u32,
    /// Print JSON at the end: {run_id, name, file, status, started, finished, steps: [{id, status, tier, model, agent, attempts, duration_ms, output_file, error}]}
    /// (a file with problems: the `check` JSON).
    #[arg(long)]
    json: bool,
    /// Run nothing: check the file and print the plan in waves, each step with its route and why.
    #[arg(long, conflicts_with = "detach")]
    dry_run: bool,
    /// Run it in the background: print the run id once the run has started, and return. Its
    /// output goes to a log in the run's folder; `marshal workflow status RUN_ID` follows it.
    /// With --json: {run_id, name, file, status, pid, log}.
    #[arg(long)]
    detach: bool,
}

#[derive(Args)]
#[command(after_help = EXIT_CODES)]
pub struct ResumeArgs {
    /// The run to carry on (marshal workflow list shows them).
    run_id: String,
    /// Steps run at once, at most (default: as the run was started).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_CONCURRENCY as i64))]
    concurrency: Option<u32>,
    /// Print JSON at the end, as `run --json` does.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The run to show (default: the latest).
    run_id: Option<String>,
    /// Print JSON, as `run --json` does, with the run's file, start and end.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print JSON: [{run_id, name, status, started, finished}].
    #[arg(long)]
    json: bool,
}

pub fn run(args: RunArgs) -> Result<u8> {
    let check = super::CheckArgs { file: args.file.clone(), vars: args.vars.clone(), json: args.json };
    if args.dry_run {
        return Ok(if super::check(check)? { EXIT_SUCCEEDED } else { EXIT_NOT_STARTED });
    }
    let source = super::read_source(&args.file)?;
    let file = args.file.display().to_string();
    let workflow = match super::load_text(&source, &file, &args.vars) {
        Ok((workflow, problems)) if problems.is_empty() => workflow,
        // Shown exactly as `check` shows them; nothing runs.
        _ => {
            super::check(check)?;
            return Ok(EXIT_NOT_STARTED);
        }
    };
    let store = store()?;
    let Some(claude) = crate::find_claude() else { return Ok(EXIT_NO_CLI) };
    let project = std::env::current_dir().context("no current directory")?;
    let mut db = open_db(&store)?;
    let run_id = loop {
        let id = run::new_run_id();
        if db.run(&id)?.is_none() {
            break id;
        }
    };
    // Held until the run ends; a detached run's lock is taken by its background runner.
    let _lock = match args.detach {
        true => None,
        false => match run::lock_run(&store, &run_id)? {
            Some(lock) => Some(lock),
            None => bail!("run {run_id} is locked by another process"),
        },
    };
    // The file's full path, so `status` and `resume` name it wherever they are run.
    let file = args.file.canonicalize().map_or(file, |p| p.display().to_string());
    let step_ids: Vec<&str> = workflow.steps.iter().map(|s| s.id.as_str()).collect();
    db.create_run(&NewRun {
        run_id: &run_id,
        name: &workflow.name,
        file: &file,
        source: &source,
        vars: &args.vars,
        project: &project.display().to_string(),
        concurrency: args.concurrency,
        started: &marshal_db::now(),
        steps: &step_ids,
    })?;
    if args.detach {
        return detach(&store, &run_id, &workflow.name, &file, &project, args.concurrency, args.json);
    }
    eprintln!("marshal: workflow {} started as run {run_id}", workflow.name);
    execute(&store, &mut db, &run_id, &workflow, &project, &claude, args.concurrency, args.json)
}

/// How long `run --detach` waits for the background runner to take the run's lock.
const DETACH_START_LIMIT: Duration = Duration::from_secs(15);

/// Starts the run just created as `marshal workflow resume RUN_ID` in a session of its own, and
/// returns once that runner holds the run's lock, so `status` shows it running from then on. A
/// runner that dies first (its log says why) leaves the run interrupted and the command failed.
fn detach(
    store: &Store,
    run_id: &str,
    name: &str,
    file: &str,
    project: &Path,
    concurrency: u32,
    json: bool,
) -> Result<u8> {
    let dir = store.workflow_run_dir(run_id);
    marshal_core::fsutil::ensure_private_dir(&dir)?;
    let log = dir.join("runner.log");
    let program = std::env::current_exe().context("could not find the marshal binary")?;
    let args: Vec<String> =
        ["workflow", "resume", run_id, "--concurrency", &concurrency.to_string()].map(String::from).into();
    let mut runner = marshal_core::spawn::detach(&program, &args, project, &log)?;
    let started = Instant::now();
    while !run::is_live(store, run_id) {
        if let Some(status) = runner.try_wait()? {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let last = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
            bail!("the background runner for run {run_id} stopped before it started ({status}): {last}");
        }
        if started.elapsed() > DETACH_START_LIMIT {
            bail!(
                "the background runner for run {run_id} did not start within {} s; see {}",
                DETACH_START_LIMIT.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = runner.id();
    let text = if json {
        serde_json::to_string_pretty(&json!({
            "run_id": run_id, "name": name, "file": file, "status": "running",
            "pid": pid, "log": log.display().to_string(),
        }))? + "\n"
    } else {
        format!(
            "run {run_id} of workflow {name} started in the background (pid {pid})\n  \
             follow it: marshal workflow status {run_id}\n  log: {}\n",
            log.display()
        )
    };
    crate::write_stdout(&text)?;
    Ok(EXIT_SUCCEEDED)
}

pub fn resume(args: ResumeArgs) -> Result<u8> {
    let store = store()?;
    let mut db = open_db(&store)?;
    let run = find_run(&db, &args.run_id)?;
    let Some(_lock) = run::lock_run(&store, &run.run_id)? else {
        bail!(
            "run {} is running in another marshal process; wait for it, or stop that process first",
            run.run_id
        )
    };
    if run.status == RunStatus::Succeeded {
        eprintln!("marshal: run {} already succeeded: nothing to resume", run.run_id);
        return show(&db, &run, RunStatus::Succeeded, args.json).map(|()| EXIT_SUCCEEDED);
    }
    let (workflow, problems) = super::load_text(&run.source, &run.file, &run.vars)?;
    if let Some(problem) = problems.first() {
        bail!("the workflow saved with run {} no longer checks: {}", run.run_id, problem.message);
    }
    let project = PathBuf::from(&run.project);
    if !project.is_dir() {
        bail!("run {} ran in {}, which is gone", run.run_id, project.display());
    }
    let Some(claude) = crate::find_claude() else { return Ok(EXIT_NO_CLI) };
    db.reopen_run(&run.run_id)?;
    eprintln!("marshal: resuming run {} of workflow {}", run.run_id, workflow.name);
    let concurrency = args.concurrency.unwrap_or(run.concurrency).clamp(1, MAX_CONCURRENCY);
    execute(&store, &mut db, &run.run_id, &workflow, &project, &claude, concurrency, args.json)
}

#[allow(clippy::too_many_arguments)]
fn execute(
    store: &Store,
    db: &mut Db,
    run_id: &str,
    workflow: &marshal_core::workflow::Workflow,
    project: &Path,
    claude: &Path,
    concurrency: u32,
    json: bool,
) -> Result<u8> {
    let routing = RoutingContext::load(Some(store.dir()), Some(project), context::plugin_root().as_deref());
    for error in &routing.loaded.provenance.errors {
        eprintln!("marshal: configuration error, that key is ignored: {error}");
    }
    let progress = Progress::for_stderr();
    let status = run::execute(Execution {
        store,
        db,
        run_id,
        workflow,
        routing: &routing,
        project,
        claude,
        concurrency: concurrency as usize,
        progress: &progress,
    })?;
    let row = find_run(db, run_id)?;
    show(db, &row, status, json)?;
    Ok(match status {
        RunStatus::Succeeded => EXIT_SUCCEEDED,
        RunStatus::Failed => EXIT_FAILED,
        RunStatus::Interrupted | RunStatus::Running => EXIT_INTERRUPTED,
    })
}

pub fn status(args: StatusArgs) -> Result<u8> {
    let store = store()?;
    let db = open_db(&store)?;
    let run = match &args.run_id {
        Some(id) => find_run(&db, id)?,
        None => match db.runs()?.pop() {
            Some(run) => run,
            None => {
                crate::write_stdout(if args.json { "null\n" } else { "No workflow runs yet.\n" })?;
                return Ok(EXIT_SUCCEEDED);
            }
        },
    };
    let shown = shown_status(&store, &run);
    show(&db, &run, shown, args.json)?;
    Ok(EXIT_SUCCEEDED)
}

pub fn list(args: ListArgs) -> Result<u8> {
    let store = store()?;
    let db = open_db(&store)?;
    let runs = db.runs()?;
    let rows: Vec<(RunRow, RunStatus)> = runs
        .into_iter()
        .map(|run| {
            let status = shown_status(&store, &run);
            (run, status)
        })
        .collect();
    if args.json {
        let list: Vec<Value> = rows
            .iter()
            .map(|(run, status)| {
                json!({"run_id": run.run_id, "name": run.name, "status": status.as_str(), "started": run.started, "finished": run.finished})
            })
            .collect();
        crate::write_stdout(&(serde_json::to_string_pretty(&list)? + "\n"))?;
    } else if rows.is_empty() {
        crate::write_stdout("No workflow runs yet.\n")?;
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|(run, status)| {
                vec![
                    run.run_id.clone(),
                    run.name.clone(),
                    status.as_str().to_string(),
                    run.started.clone(),
                    run.finished.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        crate::write_stdout(&super::left_table(
            &["run", "workflow", "status", "started", "finished"],
            &table,
        ))?;
    }
    Ok(EXIT_SUCCEEDED)
}

/// A run marked running whose runner is gone (killed, or the machine restarted) shows as
/// interrupted: that is what it is, and `resume` carries it on.
fn shown_status(store: &Store, run: &RunRow) -> RunStatus {
    if run.status == RunStatus::Running && !run::is_live(store, &run.run_id) {
        RunStatus::Interrupted
    } else {
        run.status
    }
}

fn show(db: &Db, run: &RunRow, status: RunStatus, json: bool) -> Result<()> {
    let steps = db.steps(&run.run_id)?;
    let text = if json {
        serde_json::to_string_pretty(&summary_json(run, status, &steps))? + "\n"
    } else {
        summary_text(run, status, &steps)
    };
    crate::write_stdout(&text)
}

fn summary_json(run: &RunRow, status: RunStatus, steps: &[StepRow]) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| {
            json!({
                "id": s.step_id,
                "status": s.status.as_str(),
                "tier": s.tier,
                "model": s.model,
                "agent": s.agent,
                "attempts": s.attempts,
                "duration_ms": s.duration_ms,
                "output_file": s.output_file,
                "error": s.error,
            })
        })
        .collect();
    json!({
        "run_id": run.run_id,
        "name": run.name,
        "file": run.file,
        "status": status.as_str(),
        "started": run.started,
        "finished": run.finished,
        "steps": steps,
    })
}

fn summary_text(run: &RunRow, status: RunStatus, steps: &[StepRow]) -> String {
    let took = run
        .finished
        .as_deref()
        .and_then(|end| Some((parse_time(end)? - parse_time(&run.started)?).num_milliseconds()))
        .map(|ms| format!(" in {:.1} s", ms as f64 / 1000.0))
        .unwrap_or_default();
    let mut text = format!("run {} (workflow {}): {}{took}\n", run.run_id, run.name, status.as_str());
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                s.step_id.clone(),
                s.status.as_str().to_string(),
                s.tier.clone().unwrap_or_else(|| "-".into()),
                s.model.clone().unwrap_or_else(|| "-".into()),
                s.attempts.to_string(),
                s.duration_ms.map_or_else(|| "-".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0)),
                s.output_file.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    text.push_str(&super::left_table(
        &["step", "status", "tier", "model", "attempts", "time", "answer"],
        &rows,
    ));
    for step in steps.iter().filter(|s| s.status == StepStatus::Failed) {
        let error = step.error.as_deref().unwrap_or("failed").trim_start_matches("marshal: ");
        text.push_str(&format!(
            "\nstep {}: {}\n",
            step.step_id,
            error.lines().collect::<Vec<_>>().join("\n  ")
        ));
    }
    if matches!(status, RunStatus::Failed | RunStatus::Interrupted) {
        text.push_str(&format!(
            "\nResume with: marshal workflow resume {} (steps that succeeded are not run again)\n",
            run.run_id
        ));
    }
    text
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text).ok()
}

/// The user's state directory: workflows keep their runs there, so one is needed.
fn store() -> Result<Store> {
    crate::user_store("workflow runs")
}

fn open_db(store: &Store) -> Result<Db> {
    Db::open(&store.database_path())
}

fn find_run(db: &Db, run_id: &str) -> Result<RunRow> {
    db.run(run_id)?.with_context(|| format!("no workflow run '{run_id}' (marshal workflow list shows them)"))
}
