//! Writes a realistic synthetic ledger for benchmarks: sessions of turns over 30 days, each
//! turn a `route`, its Agent `call`s, an `outcome` and sometimes a `subagent_stop`, using the
//! real record types so the format is exactly what the hooks write.
//!
//! cargo run --release --example gen_ledger -- [--records N] [--seed S] OUT

use std::io::{BufWriter, Write};

use anyhow::{bail, Context, Result};
use marshal_core::agents::Tier;
use marshal_core::compliance::Outcome;
use marshal_core::enforcement::Action;
use marshal_core::ledger::{ClosedBy, Enforcement, Record, RecordBody};
use marshal_core::mode::Mode;

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

const PROJECTS: &[&str] = &[
    "/home/dev/src/shop",
    "/home/dev/src/billing",
    "/home/dev/src/infra",
    "/home/dev/src/mobile-app",
    "/home/dev/src/data-pipeline",
    "/home/dev/src/website",
    "/home/dev/src/auth-service",
    "/home/dev/src/ml-models",
];
const OTHER_AGENTS: &[&str] = &["general-purpose", "Explore", "Plan", "code-reviewer"];

fn main() -> Result<()> {
    let mut records_wanted: u64 = 1_000_000;
    let mut seed: u64 = 0x5eed;
    let mut out_path = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--records" => records_wanted = args.next().context("--records needs a number")?.parse()?,
            "--seed" => seed = args.next().context("--seed needs a number")?.parse()?,
            "-h" | "--help" => {
                println!("usage: gen_ledger [--records N] [--seed S] OUT");
                return Ok(());
            }
            path if out_path.is_none() => out_path = Some(path.to_string()),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let out_path = out_path.context("usage: gen_ledger [--records N] [--seed S] OUT")?;
    let file = std::fs::File::create(&out_path).with_context(|| format!("could not create {out_path}"))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(seed.max(1));
    let start = chrono::DateTime::parse_from_rfc3339("2026-10-22T08:00:00Z")?.with_timezone(&chrono::Utc);
    let mut written = 0u64;
    let mut session_no = 0u64;
    let mut line = Vec::with_capacity(512);
    let mut emit = |record: &Record, out: &mut BufWriter<std::fs::File>, written: &mut u64| -> Result<()> {
        line.clear();
        serde_json::to_writer(&mut line, record)?;
        line.push(b'\n');
        out.write_all(&line)?;
        *written += 1;
        Ok(())
    };
    while written < records_wanted {
        session_no += 1;
        let session = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            rng.next() as u32,
            rng.below(1 << 16),
            rng.below(1 << 12),
            rng.below(1 << 12),
            rng.next() & 0xffff_ffff_ffff
        );
        let project = PROJECTS[rng.below(PROJECTS.len() as u64) as usize].to_string();
        let mut at = start + chrono::Duration::seconds(rng.below(30 * 24 * 3600) as i64);
        for turn in 0..(3 + rng.below(25)) {
            if written >= records_wanted {
                break;
            }
            at += chrono::Duration::seconds(20 + rng.below(600) as i64);
            let ts = |offset_ms: i64| {
                (at + chrono::Duration::milliseconds(offset_ms))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            };
            let prompt_id = Some(format!("{session_no:x}-{turn:x}-{:x}", rng.next() & 0xffff_ffff));
            let tier = [Tier::Weak, Tier::Base, Tier::Strong][rng.weighted(&[45, 40, 15])];
            let agent = tier.default_agent().to_string();
            // One turn in five runs unattended (orchestrate mode): followed by construction.
            let mode = if rng.below(5) == 0 { Mode::Orchestrate } else { Mode::Directive };
            let body = RecordBody::Route {
                mode,
                mode_reason: if mode == Mode::Orchestrate {
                    "an unattended run".into()
                } else {
                    "an interactive session".into()
                },
                project: Some(project.clone()),
                agent: agent.clone(),
                subagent_type: format!("marshal:{agent}"),
                tier,
                model: tier.default_model().to_string(),
                confidence: 0.5 + (rng.below(45) as f64) / 100.0,
                reasons: vec![format!(
                    "{} keywords: rename",
                    ["chore", "everyday", "hard-task"][rng.below(3) as usize]
                )],
                prompt_chars: 20 + rng.below(2000) as usize,
                prompt: None,
                task: ["chore", "implementation", "architecture"][tier as usize].to_string(),
                score: [2, 5, 8][tier as usize],
            };
            emit(&Record::new(ts(0), session.clone(), prompt_id.clone(), body), &mut out, &mut written)?;
            let outcome = [Outcome::Followed, Outcome::Deviated, Outcome::Ignored, Outcome::Interrupted]
                [rng.weighted(&[65, 20, 13, 2])];
            let called: Vec<String> = match outcome {
                Outcome::Followed => vec![agent.clone()],
                Outcome::Deviated => {
                    vec![OTHER_AGENTS[rng.below(OTHER_AGENTS.len() as u64) as usize].to_string()]
                }
                _ => vec![],
            };
            for (i, agent_called) in called.iter().enumerate() {
                let body = RecordBody::Call {
                    subagent_type: if agent_called.contains('-') && agent_called.ends_with("general") {
                        format!("marshal:{agent_called}")
                    } else {
                        agent_called.clone()
                    },
                    agent: agent_called.clone(),
                    model: None,
                    tool_use_id: Some(format!("toolu_{:016x}", rng.next())),
                    inside_subagent: None,
                    routed_turn: true,
                    original: None,
                    action: Action::None,
                };
                emit(
                    &Record::new(ts(900 + i as i64), session.clone(), prompt_id.clone(), body),
                    &mut out,
                    &mut written,
                )?;
            }
            let body = RecordBody::Outcome {
                mode,
                escalations: u32::from(mode == Mode::Orchestrate && rng.below(10) == 0),
                project: Some(project.clone()),
                recommended: agent.clone(),
                tier,
                model: tier.default_model().to_string(),
                outcome,
                actual: called.first().cloned(),
                called: called.clone(),
                closed_by: if outcome == Outcome::Interrupted { ClosedBy::LaterStop } else { ClosedBy::Stop },
                task: ["chore", "implementation", "architecture"][tier as usize].to_string(),
                unenforced: Some(outcome),
                enforcement: Enforcement::default(),
            };
            emit(&Record::new(ts(30_000), session.clone(), prompt_id.clone(), body), &mut out, &mut written)?;
            if !called.is_empty() {
                let body = RecordBody::SubagentStop {
                    agent_id: format!("a{:016x}", rng.next()),
                    agent_type: Some(called[0].clone()),
                };
                emit(&Record::new(ts(45_000), session.clone(), prompt_id, body), &mut out, &mut written)?;
            }
        }
    }
    out.flush()?;
    eprintln!("wrote {written} records to {out_path}");
    Ok(())
}
