//! `marshal workflow`: reads a workflow file (YAML, or JSON, which is YAML too) with its line
//! numbers, checks all of it (marshal_core::workflow), and shows the plan: the waves of steps
//! that can run together, and where each step is routed and why. `run`, `resume`, `status` and
//! `list` (runs.rs) carry plans out, with their state in marshal's database.

mod progress;
mod run;
mod runs;

pub use runs::EXIT_NOT_STARTED;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use marshal_core::agents::Tier;
use marshal_core::context::{self, RoutingContext};
use marshal_core::orchestrate::Target;
use marshal_core::paths::{self, StateDirEnv};
use marshal_core::routing::{self, Decision, Recommendation};
use marshal_core::workflow::{self, OnFailure, Problem, Step, Workflow};
use serde::Deserialize;
use serde_json::{json, Value};
use serde_saphyr::Spanned;

#[derive(Args)]
pub struct WorkflowArgs {
    #[command(subcommand)]
    command: WorkflowCommand,
}

#[derive(Subcommand)]
enum WorkflowCommand {
    /// Check a workflow file and show its plan: the steps in waves (a wave's steps can run
    /// together), with each step's route and the reason. Exit status 1 when the file has problems.
    Check(CheckArgs),
    /// Run a workflow: each step on its routed agent and model as a claude -p child, independent
    /// steps side by side. Prints the run id first; see the exit codes below.
    Run(runs::RunArgs),
    /// Carry on with a run that was interrupted or failed: steps that succeeded are not run again.
    Resume(runs::ResumeArgs),
    /// Show a run and its steps (default: the latest run).
    Status(runs::StatusArgs),
    /// List every workflow run, oldest first.
    List(runs::ListArgs),
}

#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The workflow file (YAML or JSON).
    pub file: PathBuf,
    /// Set a variable (repeatable): overrides the file's `vars`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Print JSON: {name, file, problems: [{line, message}], waves: [[{id, tier, agent, model, reason, depends_on, on_failure}]]}.
    #[arg(long)]
    pub json: bool,
}

/// The exit status of `marshal workflow`.
pub fn run(args: WorkflowArgs) -> Result<u8> {
    match args.command {
        WorkflowCommand::Check(args) => Ok(if check(args)? { 0 } else { 1 }),
        WorkflowCommand::Run(args) => runs::run(args),
        WorkflowCommand::Resume(args) => runs::resume(args),
        WorkflowCommand::Status(args) => runs::status(args),
        WorkflowCommand::List(args) => runs::list(args),
    }
}

/// The largest workflow file read: a workflow is a page of YAML, not a data set.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    name: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    defaults: RawDefaults,
    steps: Vec<RawStep>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    timeout_seconds: Option<u64>,
    retries: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    prompt: Spanned<String>,
    tier: Option<Spanned<String>>,
    agent: Option<String>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    on_failure: Option<Spanned<String>>,
    timeout_seconds: Option<u64>,
    retries: Option<u32>,
}

/// A file that does not parse: the parser stops at its first error.
#[derive(Debug)]
pub struct ParseError {
    pub line: Option<usize>,
    pub message: String,
    pub file: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = self.line.map(|l| format!(":{l}")).unwrap_or_default();
        write!(f, "{}{line}: {}", self.file, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Reads and converts a workflow file. `Err` is a file that cannot be read or parsed (one
/// message with its line); the problems of a file that parses come from [`workflow::check`].
pub fn load(path: &Path, overrides: &[String]) -> Result<(Workflow, Vec<Problem>)> {
    load_text(&read_source(path)?, &path.display().to_string(), overrides)
}

/// A workflow file's text (at most [`MAX_FILE_BYTES`]).
pub fn read_source(path: &Path) -> Result<String> {
    let bytes = marshal_core::fsutil::read_capped(path, MAX_FILE_BYTES, marshal_core::fsutil::Links::Follow)?
        .with_context(|| format!("no workflow file at {}", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// [`load`] on text already read (a resumed run reads the text saved when it started); `file`
/// names it in messages.
pub fn load_text(text: &str, file: &str, overrides: &[String]) -> Result<(Workflow, Vec<Problem>)> {
    let raw: RawWorkflow = serde_saphyr::from_str(text.trim_start_matches('\u{feff}')).map_err(|err| {
        let line = err.location().map(|l| l.line() as usize);
        // The parser's first line says it all; the rest is its own source excerpt.
        let message = err.to_string();
        let first = message.lines().next().unwrap_or("not a workflow").trim_start_matches("error: ");
        // Its "line L column C: " prefix is said once, as file:line.
        let first = first
            .split_once(": ")
            .filter(|(head, _)| head.starts_with("line "))
            .map_or(first, |(_, rest)| rest);
        ParseError { line, message: plain_parser_message(first), file: file.to_string() }
    })?;
    let mut problems = Vec::new();
    let mut vars = raw.vars;
    let declared: Vec<String> = vars.keys().cloned().collect();
    let used: Vec<String> = raw
        .steps
        .iter()
        .flat_map(|s| workflow::placeholders(&s.prompt.value))
        .filter_map(|p| match p {
            workflow::Placeholder::Var(name) => Some(name),
            _ => None,
        })
        .collect();
    for pair in overrides {
        let Some((name, value)) = pair.split_once('=').filter(|(name, _)| !name.trim().is_empty()) else {
            bail!("--var {pair}: expected NAME=VALUE");
        };
        let name = name.trim();
        if !declared.iter().chain(&used).any(|known| known == name) {
            let known: BTreeSet<&str> = declared.iter().chain(&used).map(String::as_str).collect();
            problems.push(Problem {
                line: None,
                message: format!(
                    "--var {name}: the workflow has no variable '{name}' ({})",
                    if known.is_empty() {
                        "it uses none".to_string()
                    } else {
                        format!("it has {}", known.into_iter().collect::<Vec<_>>().join(", "))
                    }
                ),
            });
        }
        vars.insert(name.to_string(), value.to_string());
    }
    let steps = raw
        .steps
        .into_iter()
        .map(|raw| {
            let line = Some(raw.id.referenced.line() as usize);
            let tier = raw.tier.as_ref().and_then(|t| match Tier::parse(t.value.trim()) {
                Some(tier) => Some(tier),
                None => {
                    problems.push(Problem {
                        line: Some(t.referenced.line() as usize),
                        message: format!(
                            "step '{}': tier '{}' is not weak, base or strong",
                            raw.id.value, t.value
                        ),
                    });
                    None
                }
            });
            // Any case, as for `tier`.
            let on_failure = match raw
                .on_failure
                .as_ref()
                .map(|f| (f.value.trim().to_ascii_lowercase(), f.referenced.line() as usize))
            {
                None => OnFailure::Stop,
                Some((value, _)) if value == "stop" => OnFailure::Stop,
                Some((value, _)) if value == "continue" => OnFailure::Continue,
                Some((other, line)) => {
                    problems.push(Problem {
                        line: Some(line),
                        message: format!(
                            "step '{}': on_failure '{other}' is not stop or continue",
                            raw.id.value
                        ),
                    });
                    OnFailure::Stop
                }
            };
            for (what, bad) in [
                ("timeout_seconds", raw.timeout_seconds.is_some_and(|t| !(1..=86_400).contains(&t))),
                ("retries", raw.retries.is_some_and(|r| r > 5)),
            ] {
                if bad {
                    problems.push(Problem {
                        line,
                        message: format!(
                            "step '{}': {what} must be {}",
                            raw.id.value,
                            if what == "retries" { "from 0 to 5" } else { "whole seconds from 1 to 86400" }
                        ),
                    });
                }
            }
            Step {
                id: raw.id.value.trim().to_string(),
                line,
                prompt: raw.prompt.value,
                prompt_line: Some(raw.prompt.referenced.line() as usize),
                tier,
                agent: raw.agent.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()),
                depends_on: raw
                    .depends_on
                    .into_iter()
                    .map(|d| (d.value.trim().to_string(), Some(d.referenced.line() as usize)))
                    .collect(),
                on_failure,
                timeout_seconds: raw.timeout_seconds,
                retries: raw.retries,
            }
        })
        .collect();
    if raw.defaults.timeout_seconds.is_some_and(|t| !(1..=86_400).contains(&t)) {
        problems.push(Problem {
            line: None,
            message: "defaults.timeout_seconds must be whole seconds from 1 to 86400".into(),
        });
    }
    if raw.defaults.retries.is_some_and(|r| r > 5) {
        problems.push(Problem { line: None, message: "defaults.retries must be from 0 to 5".into() });
    }
    let workflow = Workflow {
        name: raw.name,
        vars,
        timeout_seconds: raw.defaults.timeout_seconds,
        retries: raw.defaults.retries,
        steps,
    };
    problems.extend(workflow::check(&workflow));
    problems.sort_by_key(|p| p.line.unwrap_or(0));
    Ok((workflow, problems))
}

/// The parser's wording, minus what only a Rust programmer would read.
fn plain_parser_message(message: &str) -> String {
    let message = message.split(", set DuplicateKeyPolicy").next().unwrap_or(message);
    let message = message.split("; use Option<").next().unwrap_or(message);
    message
        .replace("expected mapping start", "expected a mapping (key: value lines)")
        .replace("expected sequence start", "expected a list ([a, b] or - lines)")
        .replace("invalid u64", "expected a whole number of 0 or more")
        .replace("cannot deserialize null into string", "expected text, found nothing")
        .replace("unexpected end of input", "the file is empty or ends too soon")
        .split(" at line ")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Where a step goes (the same target an orchestration runs), why, and the decision the ledger
/// records.
pub(crate) struct Route {
    pub target: Target,
    pub reason: String,
    pub decision: Recommendation,
}

/// The task name recorded for a step whose tier or agent the workflow sets.
const ASSIGNED_TASK: &str = "workflow";

/// Routes a step whose prompt reads `prompt` (filled as far as it is known).
pub(crate) fn route_step(step: &Step, prompt: &str, routing: &RoutingContext) -> Route {
    route_work(step.tier, step.agent.as_deref(), prompt, routing, "the workflow")
}

/// Where a piece of work goes: the tier or agent it names (`set_in` says where: "the workflow",
/// "the task"), else its route on `prompt`, else the base tier.
pub(crate) fn route_work(
    tier: Option<Tier>,
    agent: Option<&str>,
    prompt: &str,
    routing: &RoutingContext,
    set_in: &str,
) -> Route {
    let config = routing.config();
    let assigned = |target: Target, reason: &str| Route {
        decision: target.assigned(ASSIGNED_TASK, reason, config),
        target,
        reason: reason.into(),
    };
    if let Some(tier) = tier {
        return assigned(Target::for_tier(tier, config), &format!("tier set in {set_in}"));
    }
    if let Some(agent) = agent {
        let bare = marshal_core::agents::normalize_agent_name(agent);
        // One of the tier agents (the plugin's own): that tier, that model.
        if let Some(tier) = Tier::ALL.into_iter().find(|t| config.agents.get(*t) == bare) {
            return assigned(Target::for_tier(tier, config), &format!("agent named in {set_in}"));
        }
        let found = routing.agents.iter().find(|a| a.name == bare);
        let model =
            found.and_then(|a| a.model.clone()).unwrap_or_else(|| marshal_core::agents::INHERIT_MODEL.into());
        let target = Target {
            tier: Tier::of_model(&model).unwrap_or(Tier::Base),
            agent: agent.to_string(),
            subagent_type: found.map_or_else(|| agent.to_string(), |a| a.subagent_type()),
            model,
        };
        let reason = if found.is_some() {
            format!("agent named in {set_in}")
        } else {
            format!("agent named in {set_in} (not found among your agents)")
        };
        return assigned(target, &reason);
    }
    match routing::route(prompt, &routing.inputs()) {
        Decision::Route(rec) => Route {
            target: Target::from_recommendation(&rec),
            reason: format!("routed: {}", rec.explanation.tier_reason),
            decision: *rec,
        },
        // A step is work by definition: where routing would stay out (a short template such as
        // "Critique: {steps.x.output}" says little on its own), the base tier runs it.
        Decision::Abstain(_) => assigned(
            Target::for_tier(Tier::Base, config),
            "no route from the prompt alone; the base tier by default",
        ),
    }
}

pub(crate) fn check(args: CheckArgs) -> Result<bool> {
    let (workflow, problems) = match load(&args.file, &args.vars) {
        Ok(loaded) => loaded,
        Err(err) => match err.downcast::<ParseError>() {
            Ok(parse) if args.json => {
                let json = json!({"name": null, "file": parse.file, "problems": [{"line": parse.line, "message": parse.message}], "waves": []});
                crate::write_stdout(&(serde_json::to_string_pretty(&json)? + "\n"))?;
                return Ok(false);
            }
            Ok(parse) => {
                crate::write_stdout(&format!(
                    "{parse}\n(the parser stops at its first error: fix it and check again)\n"
                ))?;
                return Ok(false);
            }
            Err(err) => return Err(err),
        },
    };
    let state_dir = paths::state_dir_for_cli(&StateDirEnv::from_process());
    let project = std::env::current_dir().ok();
    let routing =
        RoutingContext::load(state_dir.as_deref(), project.as_deref(), context::plugin_root().as_deref());
    let waves = if problems.is_empty() { workflow::waves(&workflow) } else { Vec::new() };
    // Routed on each prompt as far as it is known before the run: variables filled, earlier
    // outputs left as their placeholders.
    let routes: BTreeMap<usize, Route> = waves
        .iter()
        .flatten()
        .map(|&i| {
            let step = &workflow.steps[i];
            let known = workflow::render(&step.prompt, &workflow.vars, &BTreeMap::new());
            (i, route_step(step, &known, &routing))
        })
        .collect();
    let file = args.file.display().to_string();
    let out = if args.json {
        let waves_json: Vec<Value> = waves
            .iter()
            .map(|wave| {
                Value::Array(
                    wave.iter()
                        .map(|&i| {
                            let (step, route) = (&workflow.steps[i], &routes[&i]);
                            json!({
                                "id": step.id,
                                "tier": route.target.tier.as_str(),
                                "agent": route.target.agent,
                                "subagent_type": route.target.subagent_type,
                                "model": route.target.model,
                                "reason": route.reason,
                                "depends_on": step.depends_on.iter().map(|(d, _)| d).collect::<Vec<_>>(),
                                "on_failure": if step.on_failure == OnFailure::Continue { "continue" } else { "stop" },
                            })
                        })
                        .collect(),
                )
            })
            .collect();
        let problems_json: Vec<Value> =
            problems.iter().map(|p| json!({"line": p.line, "message": p.message})).collect();
        serde_json::to_string_pretty(
            &json!({"name": workflow.name, "file": file, "problems": problems_json, "waves": waves_json}),
        )? + "\n"
    } else if !problems.is_empty() {
        let mut text = String::new();
        for p in &problems {
            text.push_str(&format!(
                "{file}{}: {}\n",
                p.line.map(|l| format!(":{l}")).unwrap_or_default(),
                p.message
            ));
        }
        text.push_str(&format!(
            "{} problem{} in {file}: nothing would run.\n",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ));
        text
    } else {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let mut text = format!(
            "workflow {} ({file}): {} in {}, no problems\n\n",
            workflow.name,
            plural(workflow.steps.len(), "step"),
            plural(waves.len(), "wave")
        );
        // Steps of one wave can run together; each wave waits for the ones before it.
        let rows: Vec<Vec<String>> = waves
            .iter()
            .enumerate()
            .flat_map(|(n, wave)| wave.iter().map(move |&i| (n, i)))
            .map(|(n, i)| {
                let (step, route) = (&workflow.steps[i], &routes[&i]);
                let after: Vec<&str> = step.depends_on.iter().map(|(d, _)| d.as_str()).collect();
                vec![
                    (n + 1).to_string(),
                    step.id.clone(),
                    route.target.tier.as_str().to_string(),
                    format!("{} ({})", route.target.agent, route.target.model),
                    if after.is_empty() { "-".to_string() } else { after.join(", ") },
                    route.reason.clone(),
                ]
            })
            .collect();
        text.push_str(&left_table(&["wave", "step", "tier", "agent (model)", "after", "why"], &rows));
        text.push_str("\nSteps in the same wave can run together. A step with neither tier nor agent is routed here on its\nprompt with the variables filled in and earlier steps' outputs still as placeholders.\n");
        text
    };
    crate::write_stdout(&out)?;
    Ok(problems.is_empty())
}

/// A table of text columns, all left-aligned, the last one unpadded.
pub(crate) fn left_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == last { c.to_string() } else { format!("{c:<width$}", width = widths[i]) })
            .collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_file_parses_with_the_lines_of_its_steps_and_problems() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "wf.yaml",
            "name: demo\nvars: { topic: caching }\nsteps:\n  - id: search\n    prompt: \"Find papers on {vars.topic}\"\n    tier: weak\n  - id: summary\n    prompt: \"Sum up {steps.search.output}\"\n    depends_on: [serch]\n    on_failure: maybe\n",
        );
        let (workflow, problems) = load(&path, &["topic=queues".into()]).unwrap();
        assert_eq!(workflow.vars["topic"], "queues", "--var overrides the file");
        assert_eq!((workflow.steps[0].line, workflow.steps[1].line), (Some(4), Some(7)));
        let found: Vec<(Option<usize>, &str)> =
            problems.iter().map(|p| (p.line, p.message.as_str())).collect();
        assert!(
            found.contains(&(
                Some(9),
                "step 'summary' depends on 'serch', which is not a step (did you mean 'search'?)"
            )),
            "{found:#?}"
        );
        assert!(
            found.contains(&(Some(10), "step 'summary': on_failure 'maybe' is not stop or continue")),
            "{found:#?}"
        );
        assert!(
            found.iter().any(|(l, m)| *l == Some(8) && m.contains("without depending on 'search'")),
            "{found:#?}"
        );
    }

    #[test]
    fn an_unknown_key_or_broken_yaml_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "wf.yaml", "name: demo\nsteps:\n  - id: a\n    promt: hi\n");
        let err = load(&path, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:4: ", path.display())) && err.contains("unknown field `promt`"),
            "{err}"
        );
        let json = write(dir.path(), "wf.json", r#"{"name": "j", "steps": [{"id": "a", "prompt": "hi"}]}"#);
        let (workflow, problems) = load(&json, &[]).unwrap();
        assert_eq!((workflow.steps.len(), problems.len()), (1, 0), "JSON is read too");
        assert!(load(&json, &["novalue".into()]).unwrap_err().to_string().contains("expected NAME=VALUE"));
    }
}
