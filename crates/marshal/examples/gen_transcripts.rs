//! Writes a realistic synthetic Claude Code folder for usage benchmarks: projects of sessions,
//! each a main transcript of prompts, responses (some written as two lines, as streaming does),
//! tool results and attachments, with subagent transcripts and their meta files beside it. The
//! line shapes are those Claude Code 2.1.329 writes (see docs: ../shared/claude-code-contract.md).
//!
//! With `--ledger FILE`, it also writes the ledger marshal's hooks would have written for those
//! sessions: a route and an outcome record for four turns in five (the rest unrouted).
//!
//! cargo run --release --example gen_transcripts -- [--megabytes N] [--seed S] [--ledger FILE] OUT_DIR

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use marshal_core::agents::Tier;
use marshal_core::compliance::Outcome;
use marshal_core::ledger::{ClosedBy, Enforcement, Record, RecordBody};
use marshal_core::mode::Mode;
use serde_json::json;

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

const WORDS: &[&str] = &[
    "the", "handler", "returns", "config", "parse", "error", "test", "module", "function", "update", "fix",
    "cache", "request", "session", "value", "index", "build", "result", "because", "we", "should", "rename",
    "file", "line",
];

fn text(rng: &mut Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        out.push(if rng.below(12) == 0 { '\n' } else { ' ' });
    }
    out
}

const MODELS: &[&str] =
    &["claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"];

struct Writer<'a> {
    rng: &'a mut Rng,
    session: String,
    cwd: String,
    /// Seconds since the epoch of the next line.
    clock: i64,
}

impl Writer<'_> {
    fn ts(&mut self) -> String {
        self.clock += 1 + self.rng.below(20) as i64;
        chrono::DateTime::from_timestamp(self.clock, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }

    fn user(
        &mut self,
        out: &mut impl Write,
        prompt_id: &str,
        sidechain: bool,
        content: serde_json::Value,
    ) -> Result<()> {
        let line = json!({"parentUuid": self.rng.id(), "isSidechain": sidechain, "promptId": prompt_id, "type": "user",
            "message": {"role": "user", "content": content}, "uuid": self.rng.id(), "timestamp": self.ts(),
            "userType": "external", "entrypoint": "cli", "cwd": self.cwd, "sessionId": self.session, "version": "2.1.329"});
        writeln!(out, "{line}")?;
        Ok(())
    }

    /// One response; a third of them written as two lines (a text block, then a tool use).
    fn response(&mut self, out: &mut impl Write, model: &str, sidechain: bool) -> Result<()> {
        let (message_id, request_id) =
            (format!("msg_{:024x}", self.rng.next()), format!("req_{:024x}", self.rng.next()));
        // As the API reports it: cache writes in all, and split by lifetime.
        let (five_minutes, one_hour) =
            (self.rng.below(4000), if self.rng.below(5) == 0 { self.rng.below(2000) } else { 0 });
        let usage = json!({"input_tokens": 1 + self.rng.below(40), "output_tokens": 20 + self.rng.below(900),
            "cache_creation_input_tokens": five_minutes + one_hour, "cache_read_input_tokens": self.rng.below(60_000),
            "cache_creation": {"ephemeral_5m_input_tokens": five_minutes, "ephemeral_1h_input_tokens": one_hour},
            "service_tier": "standard"});
        let lines = if self.rng.below(3) == 0 { 2 } else { 1 };
        for _ in 0..lines {
            let body_len = 200 + self.rng.below(2500) as usize;
            let line = json!({"parentUuid": self.rng.id(), "isSidechain": sidechain, "type": "assistant", "requestId": request_id,
                "message": {"id": message_id, "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": text(self.rng, body_len)}], "stop_reason": "end_turn", "usage": usage},
                "uuid": self.rng.id(), "timestamp": self.ts(), "cwd": self.cwd, "sessionId": self.session, "version": "2.1.329"});
            writeln!(out, "{line}")?;
        }
        Ok(())
    }

    fn attachment(&mut self, out: &mut impl Write) -> Result<()> {
        let len = 500 + self.rng.below(3000) as usize;
        let line = json!({"type": "attachment", "attachment": {"type": "file", "content": text(self.rng, len)},
            "uuid": self.rng.id(), "timestamp": self.ts(), "cwd": self.cwd, "sessionId": self.session});
        writeln!(out, "{line}")?;
        Ok(())
    }
}

/// The route and outcome records of one routed turn.
fn routed_turn(rng: &mut Rng, session: &str, prompt: &str, cwd: &str, ts: &str) -> [Record; 2] {
    let tier = [Tier::Weak, Tier::Base, Tier::Strong][rng.below(3) as usize];
    let agent = format!("{}-general", ["haiku", "sonnet", "opus"][tier as usize]);
    let outcome =
        [Outcome::Followed, Outcome::Followed, Outcome::Followed, Outcome::Deviated, Outcome::Ignored]
            [rng.below(5) as usize];
    let record = |body| Record::new(ts.to_string(), session.to_string(), Some(prompt.to_string()), body);
    [
        record(RecordBody::Route {
            mode: Mode::Directive,
            project: Some(cwd.to_string()),
            agent: agent.clone(),
            subagent_type: format!("marshal:{agent}"),
            tier,
            model: tier.default_model().to_string(),
            confidence: 0.9,
            reasons: vec![],
            prompt_chars: 80,
            task: "general".into(),
            score: 5,
            mode_reason: String::new(),
            prompt: None,
        }),
        record(RecordBody::Outcome {
            mode: Mode::Directive,
            project: Some(cwd.to_string()),
            recommended: agent.clone(),
            tier,
            model: tier.default_model().to_string(),
            outcome,
            actual: (outcome == Outcome::Followed).then(|| agent.clone()),
            called: vec![],
            closed_by: ClosedBy::Stop,
            task: "general".into(),
            unenforced: Some(outcome),
            enforcement: Enforcement::default(),
            escalations: 0,
        }),
    ]
}

fn session(
    dir: &Path,
    rng: &mut Rng,
    cwd: &str,
    start: i64,
    ledger: &mut Option<BufWriter<std::fs::File>>,
) -> Result<u64> {
    let session = rng.id();
    let path = dir.join(format!("{session}.jsonl"));
    let mut out = BufWriter::new(std::fs::File::create(&path).with_context(|| path.display().to_string())?);
    let mut w = Writer { rng, session: session.clone(), cwd: cwd.to_string(), clock: start };
    let main_model = MODELS[w.rng.below(2) as usize];
    let turns = 5 + w.rng.below(30);
    let mut bytes = 0u64;
    for _ in 0..turns {
        let prompt = w.rng.id();
        let words = 10 + w.rng.below(200) as usize;
        let prompt_text = text(w.rng, words);
        let prompt_ts = chrono::DateTime::from_timestamp(w.clock, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        w.user(&mut out, &prompt, false, json!(prompt_text))?;
        if let Some(ledger) = ledger.as_mut().filter(|_| w.rng.below(5) != 0) {
            for record in routed_turn(w.rng, &session, &prompt, cwd, &prompt_ts) {
                writeln!(ledger, "{}", serde_json::to_string(&record)?)?;
            }
        }
        for _ in 0..w.rng.below(3) {
            w.attachment(&mut out)?;
        }
        for _ in 0..1 + w.rng.below(6) {
            w.response(&mut out, main_model, false)?;
            let result_len = 300 + w.rng.below(12_000) as usize;
            let result = json!([{"tool_use_id": format!("toolu_{:x}", w.rng.next()), "type": "tool_result", "content": text(w.rng, result_len)}]);
            w.user(&mut out, &prompt, false, result)?;
        }
        w.response(&mut out, main_model, false)?;
        if w.rng.below(3) == 0 {
            let agent = format!("a{:016x}", w.rng.next());
            let sub_dir = dir.join(&session).join("subagents");
            std::fs::create_dir_all(&sub_dir)?;
            let agent_type =
                ["marshal:haiku-general", "marshal:sonnet-general", "Explore"][w.rng.below(3) as usize];
            let model = MODELS[w.rng.below(3) as usize];
            std::fs::write(
                sub_dir.join(format!("agent-{agent}.meta.json")),
                json!({"agentType": agent_type, "model": model}).to_string(),
            )?;
            let sub_path = sub_dir.join(format!("agent-{agent}.jsonl"));
            let mut sub = BufWriter::new(std::fs::File::create(&sub_path)?);
            w.user(&mut sub, &prompt, true, json!("Do the user's request and report back."))?;
            for _ in 0..1 + w.rng.below(8) {
                w.response(&mut sub, model, true)?;
                let result_len = 300 + w.rng.below(8000) as usize;
                let result = json!([{"type": "tool_result", "content": text(w.rng, result_len)}]);
                w.user(&mut sub, &prompt, true, result)?;
            }
            w.response(&mut sub, model, true)?;
            sub.flush()?;
            drop(sub);
            bytes += std::fs::metadata(&sub_path)?.len();
        }
    }
    out.flush()?;
    drop(out);
    Ok(bytes + std::fs::metadata(&path)?.len())
}

fn main() -> Result<()> {
    let mut megabytes = 1024u64;
    let mut seed = 42u64;
    let mut out = None;
    let mut ledger_path = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--megabytes" => megabytes = args.next().context("--megabytes N")?.parse()?,
            "--seed" => seed = args.next().context("--seed S")?.parse()?,
            "--ledger" => ledger_path = Some(args.next().context("--ledger FILE")?),
            "-h" | "--help" => {
                println!("gen_transcripts [--megabytes N] [--seed S] [--ledger FILE] OUT_DIR");
                return Ok(());
            }
            _ if out.is_none() => out = Some(arg),
            _ => bail!("unexpected argument {arg}"),
        }
    }
    let out = out.context("OUT_DIR is required")?;
    let projects = Path::new(&out).join("projects");
    let mut rng = Rng(seed | 1);
    let target = megabytes * 1024 * 1024;
    let mut written = 0u64;
    let mut clock = 1_793_000_000i64; // late October 2026
    let mut n = 0;
    let mut ledger = match &ledger_path {
        Some(path) => {
            if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            Some(BufWriter::new(std::fs::File::create(path).with_context(|| path.clone())?))
        }
        None => None,
    };
    while written < target {
        let project = format!("/home/dev/src/project-{}", n % 12);
        let dir = projects.join(project.replace(['/', '.'], "-"));
        std::fs::create_dir_all(&dir)?;
        clock += 600 + rng.below(20_000) as i64;
        written += session(&dir, &mut rng, &project, clock, &mut ledger)?;
        n += 1;
    }
    if let Some(ledger) = ledger.as_mut() {
        ledger.flush()?;
    }
    let total: u64 = walk(&projects)?;
    eprintln!("gen_transcripts: {n} sessions, {} MB in {}", total / 1024 / 1024, projects.display());
    Ok(())
}

fn walk(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { walk(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}
