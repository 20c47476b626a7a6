//! The hook runner shared by every hook binary: never breaks the host.
//!
//! Bounded stdin, no panic escapes, stdout holds valid JSON or nothing, and the exit code is
//! always 0. Whatever goes wrong becomes one line in the state directory's log.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::context::{self, LoadedConfig, RoutingContext};
use crate::event::{Event, TurnKey};
use crate::log::{log_line, log_problems_once};
use crate::mode::{self, Mode, ModeEnv};
use crate::orchestrate;
use crate::paths::{self, StateDirEnv};
use crate::routing;
use crate::routing::Recommendation;
use crate::store::Store;
use crate::turns::{self, HookResponse, TurnSettings};
use crate::wire::{self, AdditionalContextOutput};

/// The largest event read from stdin; larger ones are ignored (and logged), never buffered.
pub const MAX_EVENT_BYTES: u64 = 8 * 1024 * 1024;

/// How long an orchestration inside the prompt hook may run in all: below the UserPromptSubmit
/// timeout in `hooks/hooks.json` (600 s), so marshal ends its children before Claude Code ends
/// the hook.
pub const HOOK_RUN_BUDGET: std::time::Duration = std::time::Duration::from_secs(570);

/// The whole life of a hook process. `source` names the binary in log lines.
pub fn main(source: &str) -> ExitCode {
    let started = Instant::now();
    // A state directory others can write to (or that is not ours) is not used at all: the hook
    // routes, records nothing, and says so on stderr.
    // With MARSHAL_MODE=off nothing is checked or touched (the trust check may narrow a mode).
    let env = ModeEnv::from_process();
    let off = env.is_off();
    let state_dir = paths::state_dir(&StateDirEnv::from_process()).filter(|_| !off).filter(|dir| {
        match Store::trusted(dir) {
            Ok(_) => true,
            Err(err) => {
                log_line(None, source, &format!("{err:#}"));
                false
            }
        }
    });
    // The default panic hook prints to stderr; the payload is logged below instead.
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| run(source, env, state_dir.as_deref(), started));
    match outcome {
        Ok(Ok(response)) => print_response(&response),
        Ok(Err(err)) => log_line(state_dir.as_deref(), source, &format!("error: {err:#}")),
        Err(panic) => log_line(
            state_dir.as_deref(),
            source,
            &format!("internal error (please report): {}", panic_message(&*panic)),
        ),
    }
    ExitCode::SUCCESS
}

fn run(source: &str, env: ModeEnv, state_dir: Option<&Path>, started: Instant) -> Result<HookResponse> {
    let input = read_bounded(std::io::stdin().lock(), MAX_EVENT_BYTES)?;
    // MARSHAL_MODE=off: nothing at all, not even reading the configuration.
    if env.is_off() {
        return Ok(HookResponse::Silent);
    }
    let parsed = wire::parse_hook_input(&input).context("could not parse the hook event on stdin")?;
    let event = Event::from_wire(parsed);
    if matches!(event, Event::Unhandled { .. }) {
        return Ok(HookResponse::Silent);
    }
    let project = event_project(&event);
    let loaded = LoadedConfig::load(project.as_deref());
    let config = &loaded.config;
    let env = if config.modes.overnight.is_some() { env.with_local_time() } else { env };
    let mode = mode::detect(&env, &config.modes);
    // Each problem once per change, not on every run: a broken file would rotate the log away.
    let mut problems = loaded.problems();
    problems.extend(mode.warning.clone());
    log_problems_once(state_dir, source, &problems, &loaded.files());
    if mode.mode == Mode::Off {
        return Ok(HookResponse::Silent);
    }
    // Agents and history are read only for a prompt, and only once.
    let route = |prompt: &str| {
        let loaded = LoadedConfig { config: config.clone(), provenance: Default::default() };
        let context = RoutingContext::with_config(
            loaded,
            state_dir,
            project.as_deref(),
            context::plugin_root().as_deref(),
        );
        for skipped in &context.skipped_agents {
            log_line(state_dir, source, skipped);
        }
        routing::route(prompt, &context.inputs())
    };
    let orchestrate = |prompt: &str, rec: &Recommendation, key: &TurnKey| {
        let Some(claude) = orchestrate::find_claude() else {
            return Err("orchestrate mode, but the Claude Code CLI was not found (set MARSHAL_CLAUDE_BIN or put claude on PATH): directive mode instead".to_string());
        };
        let cwd =
            project.clone().or_else(|| std::env::current_dir().ok()).unwrap_or_else(|| PathBuf::from("."));
        let runs_dir = match state_dir {
            Some(dir) => Store::new(dir).runs_dir(),
            None => crate::fsutil::private_temp_dir("marshal-runs").map_err(|err| {
                format!("orchestrate mode, but no place for its outputs ({err:#}): directive mode instead")
            })?,
        };
        let run_id = orchestrate::run_id(&key.session, key.prompt_id.as_deref());
        let job = orchestrate::Job {
            prompt,
            cwd: &cwd,
            recommendation: rec,
            config,
            claude: &claude,
            runs_dir: &runs_dir,
            run_id: &run_id,
            started,
            deadline: started + config.orchestration.deadline.min(HOOK_RUN_BUDGET),
        };
        let run = orchestrate::run(&job);
        // Not even started (a project folder that is gone, a CLI that cannot run): advise instead
        // of blocking the prompt with nothing.
        if !run.attempts.is_empty()
            && run.attempts.iter().all(|a| a.status == orchestrate::AttemptStatus::SpawnFailed)
        {
            return Err(format!(
                "orchestrate mode, but {} could not be started in {}: directive mode instead",
                claude.display(),
                cwd.display()
            ));
        }
        Ok(run)
    };
    let Some(dir) = state_dir.map(PathBuf::from) else {
        log_line(
            None,
            source,
            "no state directory (set MARSHAL_STATE_DIR, CLAUDE_PLUGIN_DATA or HOME): routing without recording",
        );
        return Ok(turns::respond_without_recording(&event, &route));
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let settings = TurnSettings {
        mode: &mode,
        enforce: config.enforce,
        nudge: config.nudge_enabled(),
        route: &route,
        orchestrate: &orchestrate,
        store_prompts: config.store_prompts,
        retention: std::time::Duration::from_secs(u64::from(config.retention_days) * 86_400),
    };
    let (response, warnings) = turns::handle(event, &settings, &Store::new(dir), &now)?;
    for warning in warnings {
        log_line(state_dir, source, &warning);
    }
    Ok(response)
}

/// The project a prompt belongs to: the session's working directory, else Claude Code's
/// `CLAUDE_PROJECT_DIR`.
fn event_project(event: &Event) -> Option<PathBuf> {
    let from_event = match event {
        Event::Prompt { key, .. } => key.project.clone(),
        _ => None,
    };
    from_event.map(PathBuf::from).or_else(crate::env::claude_project_dir)
}

/// Reads at most `limit` bytes; more than that is an error, not a truncated event.
pub fn read_bounded(reader: impl Read, limit: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader.take(limit + 1).read_to_end(&mut buf).context("could not read the hook event from stdin")?;
    if buf.len() as u64 > limit {
        bail!("the hook event is larger than {limit} bytes; ignored");
    }
    Ok(buf)
}

fn print_response(response: &HookResponse) {
    let json = match response {
        HookResponse::Silent => return,
        HookResponse::AdditionalContext(text) => {
            serde_json::to_string(&AdditionalContextOutput::user_prompt_submit(text))
        }
        HookResponse::ToolContext(text) => serde_json::to_string(&wire::pre_tool_context(text)),
        HookResponse::DenyTool(reason) => serde_json::to_string(&wire::pre_tool_deny(reason)),
        HookResponse::RewriteTool(input) => serde_json::to_string(&wire::pre_tool_rewrite(input)),
        HookResponse::BlockStop(reason) => serde_json::to_string(&wire::block(reason)),
        HookResponse::BlockPrompt(answer) => serde_json::to_string(&wire::block_prompt(answer)),
    };
    if let Ok(json) = json {
        // A closed stdout must not panic (println! would): the error is ignored.
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{json}").and_then(|()| stdout.flush());
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_budget_ends_before_claude_code_ends_the_prompt_hook() {
        let hooks: serde_json::Value =
            serde_json::from_str(include_str!("../../../hooks/hooks.json")).unwrap();
        let timeout = hooks["hooks"]["UserPromptSubmit"][0]["hooks"][0]["timeout"].as_u64().unwrap();
        assert!(HOOK_RUN_BUDGET.as_secs() + 15 <= timeout, "{HOOK_RUN_BUDGET:?} vs hooks.json {timeout} s");
    }

    #[test]
    fn read_bounded_accepts_up_to_the_limit_and_rejects_more() {
        assert_eq!(read_bounded(&b"abcd"[..], 4).unwrap(), b"abcd");
        let err = read_bounded(&b"abcde"[..], 4).unwrap_err();
        assert!(err.to_string().contains("larger than 4 bytes"), "{err}");
    }
}
