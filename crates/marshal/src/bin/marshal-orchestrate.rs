//! `marshal-orchestrate`: route a request and carry it out, running the routed agent as a
//! `claude -p` child (retries, escalation, time limits), so the routing is followed by
//! construction. The same engine runs inside `marshal-prompt` in orchestrate mode.
//!
//! Exit codes: 0 the answer was printed; 1 every attempt failed; 2 bad usage; 3 the Claude Code
//! CLI was not found.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use marshal_core::context::{self, RoutingContext};
use marshal_core::event::TurnKey;
use marshal_core::orchestrate::{self, Job};
use marshal_core::paths::{self, StateDirEnv};
use marshal_core::routing::{self, Decision};
use marshal_core::store::Store;
use marshal_core::turns;

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_NO_CLI: u8 = 3;

#[derive(Parser)]
#[command(
    name = "marshal-orchestrate",
    version,
    about = "Route a request and run it on the routed agent and model as a claude -p child.",
    after_help = "Exit codes: 0 answered, 1 every attempt failed, 2 bad usage, 3 Claude Code CLI not found.\n\
                  The CLI is MARSHAL_CLAUDE_BIN, else claude on PATH. Settings (time limit, attempts, retries,\n\
                  escalation) come from the \"orchestrate\" configuration key; see README.md."
)]
struct Args {
    /// The request. Omit it with --interactive to read it from stdin.
    request: Option<String>,
    /// Read the request from stdin.
    #[arg(long)]
    interactive: bool,
    /// The session id to record the turn under (default: a new one).
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// The project directory the child runs in (default: the current directory).
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Print the decision, every attempt and the result as JSON.
    #[arg(long)]
    json: bool,
    /// Time limit of one attempt, in seconds (overrides the configuration).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match run(args, started) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "marshal-orchestrate: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(args: Args, started: Instant) -> Result<u8> {
    let request = match (&args.request, args.interactive) {
        (Some(text), false) => text.clone(),
        (None, true) => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("could not read the request from stdin")?;
            text
        }
        (Some(_), true) => bail!("give the request as an argument or with --interactive on stdin, not both"),
        (None, false) => {
            bail!("no request: give it as an argument, or pass --interactive and write it to stdin")
        }
    };
    let cwd = match &args.cwd {
        Some(dir) => dir.canonicalize().with_context(|| format!("no such directory {}", dir.display()))?,
        None => std::env::current_dir().context("no current directory")?,
    };
    // As in the hooks: a state directory that is not the user's alone is not used.
    let state_dir =
        paths::state_dir_for_cli(&StateDirEnv::from_process()).filter(|dir| match Store::trusted(dir) {
            Ok(_) => true,
            Err(err) => {
                eprintln!("marshal-orchestrate: {err:#}");
                false
            }
        });
    let context = RoutingContext::load(state_dir.as_deref(), Some(&cwd), context::plugin_root().as_deref());
    for error in &context.loaded.provenance.errors {
        eprintln!("marshal-orchestrate: configuration error, that key is ignored: {error}");
    }
    let decision = routing::route(&request, &context.inputs());
    let Decision::Route(rec) = decision else {
        bail!("nothing to route: the request is empty, chit-chat or a command");
    };
    let Some(claude) = orchestrate::find_claude() else {
        eprintln!("marshal-orchestrate: {}", orchestrate::missing_cli_message());
        return Ok(EXIT_NO_CLI);
    };
    let mut config = context.config().clone();
    if let Some(seconds) = args.timeout {
        config.orchestration.timeout = std::time::Duration::from_secs(seconds.max(1));
    }
    let session = args.session.clone().unwrap_or_else(|| {
        format!("orchestrate-{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S"), std::process::id())
    });
    let key = TurnKey { session, prompt_id: None, project: Some(cwd.display().to_string()) };
    let runs_dir = match &state_dir {
        Some(dir) => Store::new(dir).runs_dir(),
        // No state directory: a fresh private one, so the outputs are never readable by others.
        None => marshal_core::fsutil::private_temp_dir("marshal-runs")?,
    };
    let run_id = orchestrate::run_id(&key.session, None);
    let run = orchestrate::run(&Job {
        prompt: &request,
        cwd: &cwd,
        recommendation: &rec,
        config: &config,
        claude: &claude,
        runs_dir: &runs_dir,
        run_id: &run_id,
        started,
        deadline: started + config.orchestration.deadline,
    });
    if let Some(dir) = &state_dir {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if let Err(err) = turns::record_orchestration(
            &Store::new(dir),
            &turns::RoutedPrompt {
                key: &key,
                rec: &rec,
                prompt: &request,
                mode_reason: "marshal-orchestrate",
                store_prompt: config.store_prompts,
            },
            &run,
            &now,
        ) {
            eprintln!("marshal-orchestrate: the turn was not recorded: {err:#}");
        }
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "decision": {
                "agent": rec.agent, "subagent_type": rec.subagent_type, "tier": rec.tier, "model": rec.model,
                "confidence": rec.confidence, "task": rec.task, "score": rec.score, "reasons": rec.reasons,
            },
            "attempts": run.attempts,
            "escalations": run.escalations,
            "result": run.result,
            "error": run.result.is_none().then(|| run.failure_text()),
        });
        let _ = writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?);
    } else if let Some(result) = &run.result {
        let _ = writeln!(stdout, "{result}");
    }
    if run.result.is_some() {
        Ok(0)
    } else {
        if !args.json {
            eprintln!("{}", run.failure_text());
        }
        Ok(EXIT_FAILED)
    }
}
