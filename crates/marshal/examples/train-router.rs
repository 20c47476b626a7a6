//! Trains the router's linear classifier (`marshal_core::classifier`) and writes the compiled-in
//! model. Run it through `scripts/train-router.sh`, which documents the arguments.
//!
//! Multinomial logistic regression, AdaGrad with L2 on the weights a prompt touches, a fixed
//! seed: the same corpus gives the same model byte for byte. Weights are stored as `i8`
//! scaled by the largest weight (on the dev split, as accurate as `i16` at half the size), and
//! every figure printed here is measured with those stored weights, as the hooks will use them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use marshal_core::classifier::{is_severe, verdict_of, Hashed, Label, BUCKETS, LABELS};
use marshal_core::prompt_text::PromptText;

struct Example {
    features: Hashed,
    label: Label,
    category: String,
    prompt: String,
}

struct Settings {
    train: Vec<PathBuf>,
    check: Vec<PathBuf>,
    out: Option<PathBuf>,
    epochs: usize,
    l2: f32,
    rate: f32,
    misses: bool,
}

fn main() -> Result<()> {
    let settings = parse_args()?;
    let train = load(&settings.train)?;
    let check = load(&settings.check)?;
    eprintln!("training on {} prompts; checking on {}", train.len(), check.len());
    let model = train_model(&train, &settings);
    let (scale, weights) = quantise(&model.weights);
    for (name, set) in [("train", &train), ("check", &check)] {
        if !set.is_empty() {
            print_scores(name, set, &weights, scale, &model.bias, settings.misses && name == "check");
        }
    }
    if let Some(out) = &settings.out {
        write_model(out, scale, &model.bias, &weights)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

fn parse_args() -> Result<Settings> {
    let mut settings = Settings {
        train: Vec::new(),
        check: Vec::new(),
        out: None,
        epochs: 30,
        l2: 1e-4,
        rate: 0.1,
        misses: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--train" => settings.train.push(value()?.into()),
            "--check" => settings.check.push(value()?.into()),
            "--out" => settings.out = Some(value()?.into()),
            "--epochs" => settings.epochs = value()?.parse()?,
            "--l2" => settings.l2 = value()?.parse()?,
            "--rate" => settings.rate = value()?.parse()?,
            "--misses" => settings.misses = true,
            other => bail!("unknown argument {other}; see scripts/train-router.sh"),
        }
    }
    if settings.train.is_empty() {
        bail!("give at least one --train FILE");
    }
    Ok(settings)
}

fn load(files: &[PathBuf]) -> Result<Vec<Example>> {
    let mut examples = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", file.display(), number + 1))?;
            let field = |name: &str| row.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let label = Label::parse(&field("tier"))
                .with_context(|| format!("{}:{}: no valid tier", file.display(), number + 1))?;
            let prompt = field("prompt");
            let text = PromptText::new(&prompt);
            let features = Hashed::of(&prompt, &text, &marshal_core::classifier::builtin_hits(&text));
            examples.push(Example { features, label, category: field("category"), prompt });
        }
    }
    Ok(examples)
}

struct Model {
    weights: Vec<f32>,
    bias: [f32; 4],
}

fn train_model(examples: &[Example], settings: &Settings) -> Model {
    let mut weights = vec![0.0f32; BUCKETS * 4];
    let mut squared = vec![1e-6f32; BUCKETS * 4];
    let mut bias = [0.0f32; 4];
    let mut bias_squared = [1e-6f32; 4];
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut seed: u64 = 0x6d61_7273_6861_6c21;
    for _ in 0..settings.epochs {
        shuffle(&mut order, &mut seed);
        for &i in &order {
            let example = &examples[i];
            let mut scores = bias;
            for (bucket, value) in &example.features.0 {
                let row = *bucket as usize * 4;
                for (label, score) in scores.iter_mut().enumerate() {
                    *score += weights[row + label] * value;
                }
            }
            let probabilities = marshal_core::classifier::softmax(scores);
            for label in 0..4 {
                let target = if label == example.label.index() { 1.0 } else { 0.0 };
                let error = probabilities[label] - target;
                bias_squared[label] += error * error;
                bias[label] -= settings.rate * error / bias_squared[label].sqrt();
                for (bucket, value) in &example.features.0 {
                    let at = *bucket as usize * 4 + label;
                    let gradient = error * value + settings.l2 * weights[at];
                    squared[at] += gradient * gradient;
                    weights[at] -= settings.rate * gradient / squared[at].sqrt();
                }
            }
        }
    }
    Model { weights, bias }
}

fn shuffle(order: &mut [usize], seed: &mut u64) {
    for i in (1..order.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        order.swap(i, (*seed % (i as u64 + 1)) as usize);
    }
}

/// `i8` bytes and the scale that turns them back into weights.
fn quantise(weights: &[f32]) -> (f32, Vec<u8>) {
    let largest = weights.iter().fold(0.0f32, |m, w| m.max(w.abs())).max(1e-9);
    let scale = largest / f32::from(i8::MAX);
    let bytes = weights.iter().map(|w| (w / scale).round() as i8 as u8).collect();
    (scale, bytes)
}

fn print_scores(name: &str, set: &[Example], weights: &[u8], scale: f32, bias: &[f32; 4], misses: bool) {
    let mut right = 0;
    let mut severe = 0;
    let mut per_category: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut confusion = [[0usize; 4]; 4];
    for example in set {
        let verdict = verdict_of(&example.features, weights, scale, bias);
        let ok = verdict.label == example.label;
        if misses && !ok {
            let shown: String = example.prompt.chars().take(160).collect::<String>().replace('\n', " / ");
            println!(
                "  MISS {} -> {} ({:.2}) [{}] {shown}",
                example.label.as_str(),
                verdict.label.as_str(),
                verdict.confidence(),
                example.category
            );
        }
        right += usize::from(ok);
        severe += usize::from(is_severe(example.label, verdict.label));
        confusion[example.label.index()][verdict.label.index()] += 1;
        let entry = per_category.entry(&example.category).or_default();
        entry.0 += usize::from(ok);
        entry.1 += 1;
    }
    let percent = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    println!(
        "{name}: {:.1}% right ({right}/{}), severe {:.1}% ({severe})",
        percent(right, set.len()),
        set.len(),
        percent(severe, set.len())
    );
    let worst: Vec<String> = per_category
        .iter()
        .filter(|(_, (r, n))| percent(*r, *n) < 85.0)
        .map(|(c, (r, n))| format!("{c} {:.0}% ({r}/{n})", percent(*r, *n)))
        .collect();
    if !worst.is_empty() {
        println!("  below 85%: {}", worst.join(", "));
    }
    println!("  truth\\chosen  none weak base strong");
    for label in LABELS {
        let row = confusion[label.index()];
        println!("  {:>12} {:>5} {:>4} {:>4} {:>6}", label.as_str(), row[0], row[1], row[2], row[3]);
    }
}

/// Writes `router-model.bin` and `router_model.rs` beside each other in `dir`.
fn write_model(dir: &Path, scale: f32, bias: &[f32; 4], weights: &[u8]) -> Result<()> {
    std::fs::write(dir.join("router-model.bin"), weights)?;
    let source = format!(
        "// Written by scripts/train-router.sh: do not edit. The weights are in router-model.bin.\n\
         pub const SCALE: f32 = {scale:e};\n\
         pub const BIAS: [f32; 4] = [{:e}, {:e}, {:e}, {:e}];\n\
         pub static WEIGHTS: [u8; super::BUCKETS * 4] = *include_bytes!(\"router-model.bin\");\n",
        bias[0], bias[1], bias[2], bias[3]
    );
    std::fs::write(dir.join("router_model.rs"), source)?;
    Ok(())
}
