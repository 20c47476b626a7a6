//! `marshal eval`: routing accuracy on a labelled prompt set, with a confusion matrix and the
//! in-process cost of one decision.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use marshal_core::config::Config;
use marshal_core::routing::{self, Decision, RouteInputs};
use serde::Deserialize;

#[derive(Args)]
pub struct EvalArgs {
    /// A JSON Lines file of {"id", "category", "tier", "prompt"} (tier: none, weak, base, strong).
    #[arg(default_value = "evals/routing.jsonl")]
    file: PathBuf,
    /// List every prompt routed to another tier than its label.
    #[arg(long)]
    misses: bool,
    /// Exit with status 1 when overall accuracy is below this fraction (for CI).
    #[arg(long, value_name = "FRACTION")]
    min_accuracy: Option<f64>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    category: String,
    tier: String,
    prompt: String,
}

const TIERS: [&str; 4] = ["none", "weak", "base", "strong"];
/// How many times the whole set is routed to time one decision.
const TIMING_ROUNDS: usize = 50;

pub fn run(args: EvalArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("could not read {}", args.file.display()))?;
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let case: Case = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not an eval case", args.file.display(), n + 1))?;
        if !TIERS.contains(&case.tier.as_str()) {
            bail!(
                "{}:{}: tier '{}' is not one of {}",
                args.file.display(),
                n + 1,
                case.tier,
                TIERS.join(", ")
            );
        }
        cases.push(case);
    }
    if cases.is_empty() {
        bail!("{} holds no eval cases", args.file.display());
    }
    // The compiled-in defaults only, so results do not depend on this machine's configuration.
    let config = Config::default();
    let inputs = RouteInputs { config: &config, agents: &[], history: None };
    let predict = |prompt: &str| match routing::route(prompt, &inputs) {
        Decision::Abstain(_) => "none",
        Decision::Route(rec) => rec.tier.as_str(),
    };
    let predictions: Vec<&str> = cases.iter().map(|c| predict(&c.prompt)).collect();

    let started = Instant::now();
    for _ in 0..TIMING_ROUNDS {
        for case in &cases {
            std::hint::black_box(routing::route(std::hint::black_box(&case.prompt), &inputs));
        }
    }
    let per_decision = started.elapsed().as_secs_f64() * 1e6 / (TIMING_ROUNDS * cases.len()) as f64;

    let out = summary(&cases, &predictions, per_decision, args.misses);
    crate::write_stdout(&out)?;
    let correct = cases.iter().zip(&predictions).filter(|(c, p)| c.tier == **p).count();
    let accuracy = correct as f64 / cases.len() as f64;
    if let Some(minimum) = args.min_accuracy {
        if accuracy < minimum {
            bail!("accuracy {:.1}% is below the required {:.1}%", accuracy * 100.0, minimum * 100.0);
        }
    }
    Ok(())
}

fn summary(cases: &[Case], predictions: &[&str], per_decision_us: f64, misses: bool) -> String {
    let correct = cases.iter().zip(predictions).filter(|(c, p)| c.tier == **p).count();
    let mut out = format!(
        "routing eval: {} prompts, {} routed to the labelled tier: {:.1}% accuracy\n\n",
        cases.len(),
        correct,
        percent(correct, cases.len())
    );
    let mut categories: Vec<&str> = cases.iter().map(|c| c.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    let _ = writeln!(out, "  {:<16} {:>7} {:>8} {:>9}", "category", "prompts", "correct", "accuracy");
    for category in categories {
        let rows: Vec<usize> = (0..cases.len()).filter(|&i| cases[i].category == category).collect();
        let right = rows.iter().filter(|&&i| cases[i].tier == predictions[i]).count();
        let _ = writeln!(
            out,
            "  {:<16} {:>7} {:>8} {:>8.1}%",
            category,
            rows.len(),
            right,
            percent(right, rows.len())
        );
    }
    out.push_str("\nConfusion matrix (rows: labelled tier, columns: routed tier)\n");
    let _ = write!(out, "  {:<10}", "");
    for tier in TIERS {
        let _ = write!(out, "{tier:>8}");
    }
    out.push('\n');
    for expected in TIERS {
        let _ = write!(out, "  {expected:<10}");
        for predicted in TIERS {
            let n = (0..cases.len())
                .filter(|&i| cases[i].tier == expected && predictions[i] == predicted)
                .count();
            let _ = write!(out, "{n:>8}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "\nOne decision takes {per_decision_us:.1} µs on average (in process, {TIMING_ROUNDS} rounds of the set).");
    if misses {
        out.push_str("\nMisses:\n");
        for (case, predicted) in cases.iter().zip(predictions).filter(|(c, p)| c.tier != **p) {
            let prompt: String = case.prompt.chars().take(90).collect::<String>().replace('\n', " ");
            let _ = writeln!(out, "  {:<18} {:>6} -> {:<6} {prompt}", case.id, case.tier, predicted);
        }
    }
    out
}

fn percent(n: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}
