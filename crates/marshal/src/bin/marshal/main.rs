//! `marshal`, the user's command line: compliance reports, how a prompt would be routed, and
//! where data lives.

mod render;
mod report;

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use marshal_core::paths::{self, StateDirEnv};
use marshal_core::routing::{self, Decision};
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
    /// Show how marshal would route a prompt (nothing is recorded).
    Route {
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
        /// The prompt text, or - to read it from stdin.
        prompt: String,
    },
    /// Show the compliance report: how often the model followed the routing.
    Report(report::ReportArgs),
    /// Print where marshal keeps its ledger, session journals and log.
    Paths,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Route { json, prompt } => route(json, &prompt),
        Command::Report(args) => report::run(args),
        Command::Paths => print_paths(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "marshal: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn route(json: bool, prompt: &str) -> Result<()> {
    let text = if prompt == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("could not read the prompt from stdin")?;
        text
    } else {
        prompt.to_string()
    };
    let decision = routing::route(&text);
    let out = if json { decision_json(&decision)? } else { decision_text(&decision) };
    write_stdout(&out)
}

/// Stable JSON: an abstention has `agent: null` and `tier: "none"`.
fn decision_json(decision: &Decision) -> Result<String> {
    let value = match decision {
        Decision::Route(rec) => serde_json::json!({
            "agent": rec.agent,
            "subagent_type": rec.subagent_type,
            "tier": rec.tier,
            "model": rec.model,
            "confidence": rec.confidence,
            "reasons": rec.reasons,
            "directive": routing::directive_text(rec),
        }),
        Decision::Abstain(reason) => serde_json::json!({
            "agent": null,
            "subagent_type": null,
            "tier": "none",
            "model": null,
            "confidence": 1.0,
            "reasons": [format!("abstain: {}", abstain_text(*reason))],
            "directive": null,
        }),
    };
    Ok(serde_json::to_string_pretty(&value)? + "\n")
}

fn decision_text(decision: &Decision) -> String {
    match decision {
        Decision::Route(rec) => {
            let mut out = format!(
                "agent:      {} (subagent_type \"{}\")\ntier:       {}\nmodel:      {}\nconfidence: {:.2}\n",
                rec.agent,
                rec.subagent_type,
                rec.tier.as_str(),
                rec.model,
                rec.confidence
            );
            for reason in &rec.reasons {
                out.push_str(&format!("because:    {reason}\n"));
            }
            out.push_str(&format!("directive:  {}\n", routing::directive_text(rec)));
            out
        }
        Decision::Abstain(reason) => format!("no routing: {}\n", abstain_text(*reason)),
    }
}

fn abstain_text(reason: routing::AbstainReason) -> &'static str {
    use routing::AbstainReason::*;
    match reason {
        Empty => "the prompt is empty",
        ChitChat => "chit-chat, not a request",
        SlashCommand => "a slash command",
        TaskNotification => "a background-task notification from Claude Code",
    }
}

fn print_paths() -> Result<()> {
    let dir = paths::state_dir_for_cli(&StateDirEnv::from_process())
        .context("no state directory: set MARSHAL_STATE_DIR or HOME")?;
    let store = Store::new(dir);
    write_stdout(&format!(
        "state dir: {}\nledger:    {}\nsessions:  {}\nlog:       {}\n",
        store.dir().display(),
        store.ledger_path().display(),
        store.dir().join("sessions").display(),
        store.dir().join(marshal_core::log::LOG_FILE).display()
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
