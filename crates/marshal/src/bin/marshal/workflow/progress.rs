//! What a running workflow shows on stderr: on a terminal, a bar of steps done and a spinner
//! per running step, with a line above them as each step ends; otherwise one plain, time-stamped
//! line per event. stdout is left to the summary (and `--json`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use marshal_core::orchestrate::Target;
use marshal_core::workflow::{StepState, Workflow};

pub(crate) enum Progress {
    Lines,
    Bars(Bars),
}

pub(crate) struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    running: RefCell<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// Bars when stderr is a terminal, else lines.
    pub fn for_stderr() -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines;
        }
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} steps  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress::Bars(Bars { multi, overall, running: RefCell::new(HashMap::new()) })
    }

    pub fn begin(&self, workflow: &Workflow, states: &[StepState]) {
        let done = states.iter().filter(|s| **s == StepState::Succeeded).count();
        match self {
            Progress::Lines => {
                let resumed = if done > 0 { format!(", {done} already done") } else { String::new() };
                line(&format!("workflow {}: {} steps{resumed}", workflow.name, workflow.steps.len()));
            }
            Progress::Bars(bars) => {
                bars.overall.set_length(workflow.steps.len() as u64);
                bars.overall.set_position(done as u64);
                bars.overall.enable_steady_tick(Duration::from_millis(200));
            }
        }
    }

    pub fn started(&self, step: &str, target: &Target) {
        let text = format!("{} tier, {} ({})", target.tier.as_str(), target.agent, target.model);
        match self {
            Progress::Lines => line(&format!("{step}: started on the {text}")),
            Progress::Bars(bars) => {
                let bar = bars.multi.insert_before(&bars.overall, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:.bold}  {msg}  {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(step.to_string());
                bar.set_message(text);
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.running.borrow_mut().insert(step.to_string(), bar);
            }
        }
    }

    pub fn succeeded(&self, step: &str, target: &Target, attempts: u32, took: Duration) {
        self.ended(step, &format!("succeeded in {} on {}", seconds(took), describe(target, attempts)), true);
    }

    pub fn failed(&self, step: &str, target: &Target, attempts: u32, took: Duration) {
        self.ended(
            step,
            &format!("FAILED after {} (last on {})", seconds(took), describe(target, attempts)),
            true,
        );
    }

    pub fn skipped(&self, step: &str, because: &str) {
        self.ended(step, &format!("skipped: step '{because}' failed"), true);
    }

    pub fn interrupted(&self, step: &str) {
        self.ended(step, "interrupted; it runs again on resume", false);
    }

    fn ended(&self, step: &str, text: &str, counts: bool) {
        match self {
            Progress::Lines => line(&format!("{step}: {text}")),
            Progress::Bars(bars) => {
                if let Some(bar) = bars.running.borrow_mut().remove(step) {
                    bar.finish_and_clear();
                    bars.multi.remove(&bar);
                }
                let _ = bars.multi.println(format!("{step}: {text}"));
                if counts {
                    bars.overall.inc(1);
                }
            }
        }
    }

    pub fn end(&self) {
        if let Progress::Bars(bars) = self {
            for (_, bar) in bars.running.borrow_mut().drain() {
                bar.finish_and_clear();
            }
            bars.overall.finish_and_clear();
        }
    }
}

fn describe(target: &Target, attempts: u32) -> String {
    format!(
        "the {} tier ({}), {attempts} attempt{}",
        target.tier.as_str(),
        target.model,
        if attempts == 1 { "" } else { "s" }
    )
}

fn seconds(took: Duration) -> String {
    format!("{:.1} s", took.as_secs_f64())
}

fn line(text: &str) {
    let stamp = chrono::Local::now().format("%H:%M:%S");
    let _ = writeln!(std::io::stderr(), "[{stamp}] {text}");
}
