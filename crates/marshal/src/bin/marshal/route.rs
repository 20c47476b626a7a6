//! `marshal route`: how a prompt would be routed, and why (nothing is recorded).

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use marshal_core::classifier::{self, Verdict};
use marshal_core::config::Config;
use marshal_core::context::{self, RoutingContext};
use marshal_core::paths::{self, StateDirEnv};
use marshal_core::routing::{self, AbstainReason, Decision, Recommendation, RouteInputs};
use serde_json::json;

#[derive(Args)]
pub struct RouteArgs {
    /// Print the decision as JSON (schema in the README); with --explain, include every step.
    #[arg(long)]
    json: bool,
    /// Show every rule that fired, the classifier's probabilities and the features that weighed
    /// most (or, when a rule of yours decided, the complexity score), and why the tier and the
    /// agent were chosen.
    #[arg(long)]
    explain: bool,
    /// Use only the compiled-in defaults: no configuration files, discovered agents or history.
    #[arg(long)]
    defaults: bool,
    /// The project whose .claude/marshal.json and .claude/agents/ apply (default: the current
    /// directory).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// The prompt text, or - to read it from stdin.
    prompt: String,
}

pub fn run(args: RouteArgs) -> Result<()> {
    let text = if args.prompt == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("could not read the prompt from stdin")?;
        text
    } else {
        args.prompt.clone()
    };
    let project = match &args.project {
        Some(dir) => Some(dir.clone()),
        None => std::env::current_dir().ok(),
    };
    let context = if args.defaults {
        None
    } else {
        let state_dir = paths::state_dir_for_cli(&StateDirEnv::from_process());
        let context =
            RoutingContext::load(state_dir.as_deref(), project.as_deref(), context::plugin_root().as_deref());
        // The CLI is where a user fixes a configuration: say it plainly (stderr, so --json stays
        // clean), then carry on as the hooks do, without the keys that are wrong.
        for error in &context.loaded.provenance.errors {
            eprintln!("marshal: configuration error: {error}\nmarshal: that key is ignored; an earlier layer's value or the default stands");
        }
        for warning in &context.loaded.provenance.warnings {
            eprintln!("marshal: configuration warning: {warning}");
        }
        Some(context)
    };
    let defaults = Config::default();
    let inputs = match &context {
        Some(context) => context.inputs(),
        None => RouteInputs { config: &defaults, agents: &[], history: None, five_hour_used: None },
    };
    let decision = routing::route(&text, &inputs);
    let out = if args.json {
        serde_json::to_string_pretty(&decision_json(&decision, args.explain, &text))? + "\n"
    } else {
        let mut out = decision_text(&decision);
        if args.explain {
            match &decision {
                Decision::Route(rec) => out.push_str(&explanation_text(rec, &text)),
                Decision::Abstain(AbstainReason::NotARequest) => out.push_str(&abstention_text(&text)),
                Decision::Abstain(_) => {}
            }
            out.push_str(&sources_text(context.as_ref()));
        }
        out
    };
    crate::write_stdout(&out)
}

/// The stable JSON schema: an abstention has `agent: null` and `tier: "none"`.
fn decision_json(decision: &Decision, explain: bool, prompt: &str) -> serde_json::Value {
    match decision {
        Decision::Route(rec) => {
            let mut value = json!({
                "agent": rec.agent,
                "subagent_type": rec.subagent_type,
                "tier": rec.tier,
                "model": rec.model,
                "confidence": rec.confidence,
                "task": rec.task,
                "score": rec.score,
                "reasons": rec.reasons,
                "directive": routing::directive_text(rec),
            });
            if explain {
                value["explanation"] = json!(rec.explanation);
                if let Some(verdict) = &rec.explanation.classifier {
                    value["explanation"]["features"] =
                        json!(classifier::strongest_pulls(prompt, verdict.label, EXPLAINED_FEATURES));
                }
            }
            value
        }
        Decision::Abstain(reason) => {
            // The classifier's own abstention states its probability; the others are certain.
            let verdict =
                (*reason == AbstainReason::NotARequest).then(|| classifier::classify_prompt(prompt));
            let mut value = json!({
                "agent": null,
                "subagent_type": null,
                "tier": "none",
                "model": null,
                "confidence": verdict.as_ref().map_or(1.0, Verdict::stated_confidence),
                "task": null,
                "score": null,
                "reasons": [format!("abstain: {}", reason.describe())],
                "directive": null,
            });
            if let (true, Some(verdict)) = (explain, verdict) {
                value["explanation"] = json!({
                    "classifier": verdict,
                    "features": classifier::strongest_pulls(prompt, verdict.label, EXPLAINED_FEATURES),
                });
            }
            value
        }
    }
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
                let _ = writeln!(out, "because:    {reason}");
            }
            let _ = writeln!(out, "directive:  {}", routing::directive_text(rec));
            out
        }
        Decision::Abstain(reason) => format!("no routing: {}\n", reason.describe()),
    }
}

/// How many of the classifier's features `--explain` lists.
const EXPLAINED_FEATURES: usize = 8;

fn explanation_text(rec: &Recommendation, prompt: &str) -> String {
    let e = &rec.explanation;
    let mut out = String::from("\nWhy this agent?\n");
    if e.rules.is_empty() {
        out.push_str("  No rule fired: the task type is 'general'.\n");
    } else {
        out.push_str("  Rules that fired, in the order consulted:\n");
        let id_width = e.rules.iter().map(|r| r.id.len()).max().unwrap_or(0);
        let task_width = e.rules.iter().map(|r| r.task.len()).max().unwrap_or(0);
        for hit in &e.rules {
            let _ = writeln!(
                out,
                "    {:id_width$}  {:task_width$}  +{:<4}  {}",
                hit.id,
                hit.task,
                trim_float(hit.votes),
                hit.matched.join(", ")
            );
        }
        let votes: Vec<String> =
            e.votes.iter().map(|(task, v)| format!("{task} {}", trim_float(*v))).collect();
        match &e.instruction {
            Some(id) => {
                let _ = writeln!(
                    out,
                    "  Task type: {}, set by rule {id} (it sets a tier or an agent, so it decides)",
                    rec.task
                );
            }
            None => {
                let _ = writeln!(out, "  Task type: {} (votes: {})", rec.task, votes.join(", "));
            }
        }
    }
    match &e.classifier {
        Some(verdict) => {
            let _ = writeln!(out, "\n  Classifier: {}", routing::verdict_summary(verdict));
            out.push_str(&features_text(prompt, verdict));
            for factor in &e.factors {
                let _ = writeln!(out, "  {}: {}", factor.name, factor.detail);
            }
        }
        None => {
            out.push_str("\n  Complexity score:\n");
            for factor in &e.factors {
                let _ = writeln!(out, "    {:<10} {:<44} {:+}", factor.name, factor.detail, factor.points);
            }
            let _ = writeln!(out, "    {:<10} {:<44} {}", "score", "the sum, kept within 1..10", rec.score);
        }
    }
    let _ = writeln!(out, "\n  Tier:  {} ({})", rec.tier.as_str(), e.tier_reason);
    let _ = writeln!(out, "  Agent: {}", e.agent_reason);
    out
}

/// Why the classifier read the prompt as no request: its probabilities and strongest features.
fn abstention_text(prompt: &str) -> String {
    let verdict = classifier::classify_prompt(prompt);
    let mut out = format!("\nWhy no agent?\n  Classifier: {}\n", routing::verdict_summary(&verdict));
    out.push_str(&features_text(prompt, &verdict));
    out
}

/// The features that pulled hardest towards or away from the verdict's label, in words.
fn features_text(prompt: &str, verdict: &Verdict) -> String {
    let mut out = String::from("  Features that weighed most (+ towards that label, - away from it):\n");
    for pull in classifier::strongest_pulls(prompt, verdict.label, EXPLAINED_FEATURES) {
        let _ = writeln!(out, "    {:+.2}  {}", pull.weight, pull.means);
    }
    out
}

fn sources_text(context: Option<&RoutingContext>) -> String {
    let Some(context) = context else {
        return "\nConfiguration: compiled-in defaults only (--defaults)\n".to_string();
    };
    let mut out = format!("\nConfiguration: {}\n", context.loaded.provenance.layers.join(" + "));
    let modes = &context.config().modes;
    let env = marshal_core::mode::ModeEnv::from_process();
    let env = if modes.overnight.is_some() { env.with_local_time() } else { env };
    let mode = marshal_core::mode::detect(&env, modes);
    let _ = writeln!(out, "Mode here: {} ({})", mode.mode.as_str(), mode.reason);
    for warning in &context.loaded.provenance.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
    if context.agents.is_empty() {
        out.push_str("Agents found: none besides the tier agents\n");
    } else {
        let names: Vec<String> = context
            .agents
            .iter()
            .map(|a| format!("{} ({:?})", a.subagent_type(), a.source).to_lowercase())
            .collect();
        let _ = writeln!(out, "Agents found: {}", names.join(", "));
    }
    out
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
