//! `marshal eval`: routing accuracy on labelled prompt sets, one report per file: per category,
//! severe misroutes, a confusion matrix, a reliability table (stated confidence against
//! observed accuracy) and the in-process cost of one decision. Floors make it a CI gate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use marshal_core::classifier::{self, Label, LABELS};
use marshal_core::config::Config;
use marshal_core::routing::{self, AbstainReason, Decision, RouteInputs};
use serde::{Deserialize, Serialize};

#[derive(Args)]
pub struct EvalArgs {
    /// JSON Lines files of {"id", "category", "tier", "prompt"} (tier: none, weak, base, strong),
    /// each reported on its own. Default: the corpus splits in evals/ (train, dev, test).
    files: Vec<PathBuf>,
    /// List every prompt routed to another tier than its label.
    #[arg(long)]
    misses: bool,
    /// Print the results as JSON (schema in evals/README.md).
    #[arg(long)]
    json: bool,
    /// Fail (exit 1) when a file's accuracy is below this fraction (0.9 for 90%).
    #[arg(long, value_name = "FRACTION", value_parser = threshold, allow_hyphen_values = true)]
    min_accuracy: Option<f64>,
    /// Fail when a category of a file is below this fraction (0.8 for 80%).
    #[arg(long, value_name = "FRACTION", value_parser = threshold, allow_hyphen_values = true)]
    min_category: Option<f64>,
    /// Fail when a file's severe misroutes (weak <-> strong, none -> strong) exceed this fraction
    /// (0.02 for 2%).
    #[arg(long, value_name = "FRACTION", value_parser = threshold, allow_hyphen_values = true)]
    max_severe: Option<f64>,
}

/// A gate's threshold: a fraction from 0 to 1. A bad one is a usage error (exit 2), which a
/// script can tell apart from a gate that failed (exit 1).
fn threshold(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        Ok(value) => Err(format!("a fraction from 0 to 1 (0.9 for 90%), not {value}")),
        Err(_) => Err(format!("a fraction from 0 to 1 (0.9 for 90%), not '{text}'")),
    }
}

#[derive(Deserialize)]
struct Case {
    id: String,
    category: String,
    tier: String,
    prompt: String,
}

const DEFAULT_SPLITS: [&str; 3] =
    ["evals/corpus-train.jsonl", "evals/corpus-dev.jsonl", "evals/corpus-test.jsonl"];
/// About this many decisions are timed per file.
const TIMED_DECISIONS: usize = 20_000;
/// Bins of stated confidence for the reliability table.
const CONFIDENCE_BINS: [f64; 7] = [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001];

#[derive(Serialize)]
struct Split {
    file: String,
    /// The compiled-in model learned from this file (the train and dev splits): its figures
    /// are no measure of prompts the model has not seen.
    learned_from: bool,
    prompts: usize,
    correct: usize,
    accuracy: f64,
    severe: usize,
    severe_rate: f64,
    categories: BTreeMap<String, Tally>,
    /// `confusion[labelled][routed]`.
    confusion: BTreeMap<&'static str, BTreeMap<&'static str, usize>>,
    reliability: Vec<Bin>,
    decision_us: f64,
    #[serde(skip)]
    misses: Vec<(String, Label, Label, String)>,
}

#[derive(Serialize, Default)]
struct Tally {
    prompts: usize,
    correct: usize,
    accuracy: f64,
}

#[derive(Serialize)]
struct Bin {
    from: f64,
    to: f64,
    prompts: usize,
    stated: f64,
    observed: f64,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let files: Vec<PathBuf> = if args.files.is_empty() {
        let found: Vec<PathBuf> = DEFAULT_SPLITS.iter().map(PathBuf::from).filter(|p| p.exists()).collect();
        if found.is_empty() {
            bail!("no file given, and no corpus splits in ./evals: run it from marshal's repository, or name a file");
        }
        found
    } else {
        args.files.clone()
    };
    // The compiled-in defaults only, so results do not depend on this machine's configuration.
    let config = Config::default();
    let inputs = RouteInputs { config: &config, agents: &[], history: None, five_hour_used: None };
    let mut splits = Vec::new();
    for file in &files {
        splits.push(evaluate(file, &load(file)?, &inputs));
    }
    let out = if args.json {
        serde_json::to_string_pretty(&serde_json::json!({ "schema": 1, "splits": splits }))? + "\n"
    } else {
        splits.iter().map(|s| split_text(s, args.misses)).collect::<Vec<_>>().join("\n")
    };
    crate::write_stdout(&out)?;
    let failures = floor_failures(&splits, &args);
    if !failures.is_empty() {
        bail!("below the floor:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

fn load(file: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("could not read {}", file.display()))?;
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let case: Case = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not an eval case", file.display(), n + 1))?;
        if Label::parse(&case.tier).is_none() {
            bail!(
                "{}:{}: tier '{}' is not one of none, weak, base, strong",
                file.display(),
                n + 1,
                case.tier
            );
        }
        cases.push(case);
    }
    if cases.is_empty() {
        bail!("{} holds no eval cases", file.display());
    }
    Ok(cases)
}

/// The routed label and the confidence stated for it.
fn decide(prompt: &str, inputs: &RouteInputs) -> (Label, f64) {
    match routing::route(prompt, inputs) {
        Decision::Route(rec) => (Label::from(rec.tier), rec.confidence),
        // The classifier's own abstention states its probability; the others are certain.
        Decision::Abstain(AbstainReason::NotARequest) => {
            (Label::None, f64::from(classifier::classify_prompt(prompt).confidence()))
        }
        Decision::Abstain(_) => (Label::None, 1.0),
    }
}

fn evaluate(file: &Path, cases: &[Case], inputs: &RouteInputs) -> Split {
    let decided: Vec<(Label, f64)> = cases.iter().map(|c| decide(&c.prompt, inputs)).collect();
    let labelled: Vec<Label> = cases.iter().map(|c| Label::parse(&c.tier).unwrap_or(Label::None)).collect();

    let rounds = (TIMED_DECISIONS / cases.len()).max(1);
    let started = Instant::now();
    for _ in 0..rounds {
        for case in cases {
            std::hint::black_box(routing::route(std::hint::black_box(&case.prompt), inputs));
        }
    }
    let decision_us = started.elapsed().as_secs_f64() * 1e6 / (rounds * cases.len()) as f64;

    let mut split = Split {
        file: file.display().to_string(),
        learned_from: learned_from(&file.display().to_string()),
        prompts: cases.len(),
        correct: 0,
        accuracy: 0.0,
        severe: 0,
        severe_rate: 0.0,
        categories: BTreeMap::new(),
        confusion: LABELS
            .iter()
            .map(|l| (l.as_str(), LABELS.iter().map(|r| (r.as_str(), 0)).collect()))
            .collect(),
        reliability: Vec::new(),
        decision_us,
        misses: Vec::new(),
    };
    for ((case, &(routed, _)), &truth) in cases.iter().zip(&decided).zip(&labelled) {
        let right = routed == truth;
        split.correct += usize::from(right);
        split.severe += usize::from(classifier::is_severe(truth, routed));
        *split.confusion.entry(truth.as_str()).or_default().entry(routed.as_str()).or_default() += 1;
        let tally = split.categories.entry(case.category.clone()).or_default();
        tally.prompts += 1;
        tally.correct += usize::from(right);
        if !right {
            split.misses.push((case.id.clone(), truth, routed, case.prompt.clone()));
        }
    }
    for tally in split.categories.values_mut() {
        tally.accuracy = fraction(tally.correct, tally.prompts);
    }
    split.accuracy = fraction(split.correct, split.prompts);
    split.severe_rate = fraction(split.severe, split.prompts);
    for bounds in CONFIDENCE_BINS.windows(2) {
        let inside: Vec<usize> =
            (0..cases.len()).filter(|&i| decided[i].1 >= bounds[0] && decided[i].1 < bounds[1]).collect();
        if inside.is_empty() {
            continue;
        }
        let stated = inside.iter().map(|&i| decided[i].1).sum::<f64>() / inside.len() as f64;
        let right = inside.iter().filter(|&&i| decided[i].0 == labelled[i]).count();
        split.reliability.push(Bin {
            from: bounds[0],
            to: bounds[1].min(1.0),
            prompts: inside.len(),
            stated,
            observed: fraction(right, inside.len()),
        });
    }
    split
}

fn fraction(n: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 / total as f64
    }
}

fn floor_failures(splits: &[Split], args: &EvalArgs) -> Vec<String> {
    let mut failures = Vec::new();
    for split in splits {
        if let Some(min) = args.min_accuracy.filter(|min| split.accuracy < *min) {
            failures.push(format!(
                "{}: accuracy {:.1}% < {:.1}%",
                split.file,
                split.accuracy * 100.0,
                min * 100.0
            ));
        }
        if let Some(max) = args.max_severe.filter(|max| split.severe_rate > *max) {
            failures.push(format!(
                "{}: severe misroutes {:.1}% > {:.1}%",
                split.file,
                split.severe_rate * 100.0,
                max * 100.0
            ));
        }
        if let Some(min) = args.min_category {
            for (category, tally) in split.categories.iter().filter(|(_, t)| t.accuracy < min) {
                failures.push(format!(
                    "{}: category {category} {:.1}% < {:.1}%",
                    split.file,
                    tally.accuracy * 100.0,
                    min * 100.0
                ));
            }
        }
    }
    failures
}

/// The corpus splits the shipped model is trained on (`scripts/train-router.sh`).
fn learned_from(file: &str) -> bool {
    file.ends_with("corpus-train.jsonl") || file.ends_with("corpus-dev.jsonl")
}

fn split_text(split: &Split, misses: bool) -> String {
    let mut out = format!(
        "{}: {} prompts, {} routed to the labelled tier: {:.1}% accuracy; severe misroutes {} ({:.1}%)\n\n",
        split.file,
        split.prompts,
        split.correct,
        split.accuracy * 100.0,
        split.severe,
        split.severe_rate * 100.0
    );
    if split.learned_from {
        out.insert_str(
            out.len() - 1,
            "  The compiled-in model learned from this split, so this is not a measure of it;
  \
             scripts/train-router.sh --dry-run scores dev with a model trained on train alone.\n",
        );
    }
    let _ = writeln!(out, "  {:<16} {:>7} {:>8} {:>9}", "category", "prompts", "correct", "accuracy");
    for (category, tally) in &split.categories {
        let _ = writeln!(
            out,
            "  {:<16} {:>7} {:>8} {:>8.1}%",
            category,
            tally.prompts,
            tally.correct,
            tally.accuracy * 100.0
        );
    }
    out.push_str("\n  Confusion matrix (rows: labelled tier, columns: routed tier)\n");
    let _ = write!(out, "  {:<10}", "");
    for label in LABELS {
        let _ = write!(out, "{:>8}", label.as_str());
    }
    out.push('\n');
    for (labelled, row) in LABELS.iter().map(|l| (l.as_str(), &split.confusion[l.as_str()])) {
        let _ = write!(out, "  {labelled:<10}");
        for routed in LABELS {
            let _ = write!(out, "{:>8}", row[routed.as_str()]);
        }
        out.push('\n');
    }
    out.push_str("\n  Reliability (stated confidence against observed accuracy)\n");
    let _ = writeln!(out, "  {:<12} {:>7} {:>7} {:>9}", "confidence", "prompts", "stated", "observed");
    for bin in &split.reliability {
        let _ = writeln!(
            out,
            "  {:<12} {:>7} {:>6.0}% {:>8.0}%",
            format!("{:.1}-{:.1}", bin.from, bin.to),
            bin.prompts,
            bin.stated * 100.0,
            bin.observed * 100.0
        );
    }
    let _ = writeln!(out, "\n  One decision takes {:.1} µs on average (in process).", split.decision_us);
    if misses {
        out.push_str("\n  Misses:\n");
        for (id, truth, routed, prompt) in &split.misses {
            let prompt: String = prompt.chars().take(90).collect::<String>().replace('\n', " ");
            let _ = writeln!(out, "  {id:<18} {:>6} -> {:<6} {prompt}", truth.as_str(), routed.as_str());
        }
    }
    out
}
