//! `marshal`, the user's command line: compliance reports, how a prompt would be routed, and
//! where data lives.

mod doctor;
mod eval;
mod queue;
mod render;
mod report;
mod route;
mod statusline;
mod usage;
mod workflow;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use marshal_core::paths::{self, StateDirEnv};
use marshal_core::store::Store;

#[derive(Parser)]
#[command(
    name = "marshal",
    version,
    about = "Routes each Claude Code request to the right agent and model tier, and records whether it happened.",
    after_help = "The hooks (marshal-prompt, marshal-pretool, marshal-stop) are run by Claude Code, not by hand.\nDocs: README.md in the plugin folder."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show how marshal would route a prompt, and why (nothing is recorded).
    Route(route::RouteArgs),
    /// Measure routing accuracy on a labelled prompt set (compiled-in defaults only).
    Eval(eval::EvalArgs),
    /// Show the compliance report: how often the model followed the routing.
    Report(report::ReportArgs),
    /// Show tokens, cost and what routing saved, from Claude Code's transcripts.
    Usage(usage::UsageArgs),
    /// One line for Claude Code's status line: last route, today's compliance and savings,
    /// rate-limit windows (reads Claude Code's JSON on stdin). `--install` sets it up.
    Statusline(statusline::StatuslineArgs),
    /// Routed, parallel, resumable multi-step work: check, run, resume, status, list.
    Workflow(workflow::WorkflowArgs),
    /// A durable work queue: add prompts now, run them unattended later (quota-aware).
    Queue(queue::QueueArgs),
    /// Serve the work queue to Claude Code over MCP (stdio): what the plugin's .mcp.json starts.
    Mcp,
    /// Print where marshal keeps its ledger, session journals and log.
    Paths,
    /// Check the installation and say how to fix what is wrong (exit status 1 if anything is).
    Doctor(doctor::DoctorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Route(args) => route::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Report(args) => report::run(args),
        Command::Usage(args) => usage::run(args),
        Command::Statusline(args) => statusline::run(args),
        Command::Workflow(args) => match workflow::run(args) {
            Ok(code) => return ExitCode::from(code),
            Err(err) => {
                let _ = writeln!(std::io::stderr(), "marshal: {err:#}");
                return ExitCode::from(workflow::EXIT_NOT_STARTED);
            }
        },
        Command::Queue(args) => match queue::run(args) {
            Ok(code) => return ExitCode::from(code),
            Err(err) => {
                let _ = writeln!(std::io::stderr(), "marshal: {err:#}");
                return ExitCode::from(queue::EXIT_USAGE);
            }
        },
        Command::Mcp => serve_mcp(),
        Command::Paths => print_paths(),
        Command::Doctor(args) => match doctor::run(args) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(err) => Err(err),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "marshal: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Becomes `marshal-mcp` (installed beside this binary): the MCP server is a program of its own,
/// the one that links an async runtime, so this CLI stays free of it.
fn serve_mcp() -> Result<()> {
    use std::os::unix::process::CommandExt;
    let server = marshal_core::spawn::beside_this_program("marshal-mcp")
        .context("cannot find this program's folder")?;
    if !server.is_file() {
        anyhow::bail!("{} is missing: run ./install.sh", server.display());
    }
    // Not a child (the spawn helper's job) but a replacement of this process: exec returns
    // only on failure.
    #[allow(clippy::disallowed_methods)]
    let err = std::process::Command::new(&server).exec();
    Err(err).with_context(|| format!("could not start {}", server.display()))
}

/// The user's state directory, created if needed and trusted, for a command that keeps its
/// state there (`what`: "workflow runs", "the queue").
pub(crate) fn user_store(what: &str) -> Result<Store> {
    let dir = paths::state_dir_for_cli(&StateDirEnv::from_process())
        .with_context(|| format!("no state directory for {what}: set MARSHAL_STATE_DIR or HOME"))?;
    marshal_core::fsutil::ensure_private_dir(&dir)?;
    Store::trusted(&dir)
}

/// [`orchestrate::find_claude`], saying what to do when it finds nothing.
pub(crate) fn find_claude() -> Option<std::path::PathBuf> {
    let found = marshal_core::orchestrate::find_claude();
    if found.is_none() {
        eprintln!("marshal: {}", marshal_core::orchestrate::missing_cli_message());
    }
    found
}

fn print_paths() -> Result<()> {
    let dir = paths::state_dir_for_cli(&StateDirEnv::from_process())
        .context("no state directory: set MARSHAL_STATE_DIR or HOME")?;
    let store = Store::new(dir);
    write_stdout(&format!(
        "state dir: {}\nledger:    {}\nsessions:  {}\nlog:       {}\n",
        store.dir().display(),
        store.ledger_path().display(),
        store.sessions_dir().display(),
        store.log_path().display()
    ))
}

pub(crate) fn write_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        // A closed pipe (`marshal route x | head -0`) is not an error worth reporting.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("could not write to stdout"),
    }
}
