//! Workflows: named steps, each a prompt for one routed agent, ordered by `depends_on`, with
//! prompt templates filled from variables and earlier steps' outputs. This module is the pure
//! part: the checked shape of a workflow, every problem in it (with the line it is on), the
//! waves of steps that can run together, and template filling. Reading YAML is the CLI's
//! (`marshal workflow`): no YAML parser may reach a hook binary.

use std::collections::{BTreeMap, BTreeSet};

use crate::agents::Tier;

/// What happens to a step's dependants when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Its dependants do not run (other branches finish).
    #[default]
    Stop,
    /// Its dependants run anyway, with an empty output in its place.
    Continue,
}

/// A line in the workflow file, for messages (`None`: not known).
pub type Line = Option<usize>;

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    pub line: Line,
    pub prompt: String,
    pub prompt_line: Line,
    /// Forces the tier; with neither `tier` nor `agent`, the step is routed like any prompt.
    pub tier: Option<Tier>,
    /// Runs this agent (by name).
    pub agent: Option<String>,
    /// The steps this one waits for, with the line each is named on.
    pub depends_on: Vec<(String, Line)>,
    pub on_failure: OnFailure,
    pub timeout_seconds: Option<u64>,
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workflow {
    pub name: String,
    pub vars: BTreeMap<String, String>,
    pub timeout_seconds: Option<u64>,
    pub retries: Option<u32>,
    pub steps: Vec<Step>,
}

/// One thing wrong with a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Line,
    pub message: String,
}

/// Whether a step id or variable name can be named in a placeholder: ASCII letters, digits, `_`
/// and `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A `{vars.NAME}` or `{steps.ID.output}` in a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    Var(String),
    Output(String),
    /// Looks like a placeholder (`{vars...}` or `{steps...}`) but is not one of the two forms.
    Malformed(String),
}

/// The placeholders of a template, in order. Only `{vars.…}` and `{steps.…}` are placeholders;
/// any other brace (JSON, code) is text, and `{{` is a literal `{`.
pub fn placeholders(template: &str) -> Vec<Placeholder> {
    placeholders_at(template).into_iter().map(|(p, _)| p).collect()
}

/// The placeholders with their byte offsets in the template.
pub fn placeholders_at(template: &str) -> Vec<(Placeholder, usize)> {
    let mut found = Vec::new();
    scan(template, |inner, offset| {
        found.push((classify(inner), offset));
        None
    });
    found
}

fn classify(inner: &str) -> Placeholder {
    let parts: Vec<&str> = inner.split('.').collect();
    match parts.as_slice() {
        ["vars", name] if valid_name(name) => Placeholder::Var(name.to_string()),
        ["steps", id, "output"] if valid_name(id) => Placeholder::Output(id.to_string()),
        _ => Placeholder::Malformed(inner.to_string()),
    }
}

/// Words that open a placeholder, or a likely misspelling of one (reported, never filled).
const OPENERS: &[&str] = &["vars", "steps", "var.", "step."];

/// Walks a template; `fill` gets each placeholder's body and its byte offset in the template,
/// and returns its text (or `None` to keep it as written). Returns the filled text. A `{` that
/// opens `vars.`/`steps.` (or `var.`/`step.`) but does not close on the same word is passed
/// whole, so that it is reported as malformed.
fn scan(template: &str, mut fill: impl FnMut(&str, usize) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut consumed = 0;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let offset = consumed + at;
        if let Some(stripped) = after.strip_prefix('{') {
            out.push('{');
            consumed += at + 2;
            rest = stripped;
            continue;
        }
        if !OPENERS.iter().any(|o| after.starts_with(o)) {
            out.push('{');
            consumed += at + 1;
            rest = after;
            continue;
        }
        let word_end = after.find(|c: char| c == '}' || c == '{' || c.is_whitespace()).unwrap_or(after.len());
        let closed = after[word_end..].starts_with('}');
        let inner = &after[..word_end];
        let shown = if closed { inner.to_string() } else { format!("{inner} (no closing brace)") };
        match fill(&shown, offset) {
            Some(text) => out.push_str(&text),
            None => {
                out.push('{');
                out.push_str(inner);
                if closed {
                    out.push('}');
                }
            }
        }
        let used = word_end + usize::from(closed);
        consumed += at + 1 + used;
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

/// Fills a template. Call after [`check`]: every placeholder is then known.
pub fn render(template: &str, vars: &BTreeMap<String, String>, outputs: &BTreeMap<String, String>) -> String {
    scan(template, |inner, _| match classify(inner) {
        Placeholder::Var(name) => vars.get(&name).cloned(),
        Placeholder::Output(id) => Some(outputs.get(&id).cloned().unwrap_or_default()),
        Placeholder::Malformed(_) => None,
    })
}

/// Every problem in a workflow, in file order: duplicate ids, unknown dependencies, cycles
/// (with their path), unknown or malformed placeholders, a step output used without depending
/// on that step, `tier` with `agent`. Keys the file should not have are the parser's to report.
pub fn check(workflow: &Workflow) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen: BTreeMap<&str, Line> = BTreeMap::new();
    if workflow.steps.is_empty() {
        problems.push(Problem { line: None, message: "the workflow has no steps".into() });
    }
    if workflow.name.trim().is_empty() {
        problems.push(Problem { line: None, message: "the workflow has no name".into() });
    }
    for step in &workflow.steps {
        if !valid_name(&step.id) {
            problems.push(Problem {
                line: step.line,
                message: format!("step id '{}' may hold only ASCII letters, digits, '_' and '-'", step.id),
            });
        }
        if step.prompt.trim().is_empty() {
            problems.push(Problem {
                line: step.prompt_line.or(step.line),
                message: format!("step '{}' has an empty prompt", step.id),
            });
        }
        let mut listed = BTreeSet::new();
        for (dep, line) in &step.depends_on {
            if !listed.insert(dep.as_str()) {
                problems.push(Problem {
                    line: line.or(step.line),
                    message: format!("step '{}' lists '{dep}' twice in depends_on", step.id),
                });
            }
        }
        if let Some(first) = seen.get(step.id.as_str()) {
            problems.push(Problem {
                line: step.line,
                message: format!("duplicate step id '{}' (first used{})", step.id, at_line(*first)),
            });
        } else {
            seen.insert(&step.id, step.line);
        }
        if step.tier.is_some() && step.agent.is_some() {
            problems.push(Problem {
                line: step.line,
                message: format!("step '{}' sets both tier and agent: keep one", step.id),
            });
        }
    }
    for step in &workflow.steps {
        for (dep, line) in &step.depends_on {
            if !seen.contains_key(dep.as_str()) {
                problems.push(Problem {
                    line: line.or(step.line),
                    message: format!(
                        "step '{}' depends on '{dep}', which is not a step{}",
                        step.id,
                        suggestion(dep, seen.keys())
                    ),
                });
            } else if dep == &step.id {
                problems.push(Problem {
                    line: line.or(step.line),
                    message: format!("step '{}' depends on itself", step.id),
                });
            }
        }
    }
    for cycle in find_cycles(workflow) {
        let first = workflow.steps.iter().find(|s| s.id == cycle[0]).and_then(|s| s.line);
        problems.push(Problem { line: first, message: format!("dependency cycle: {}", cycle.join(" -> ")) });
    }
    for step in &workflow.steps {
        let upstream = ancestors(workflow, &step.id);
        for (placeholder, offset) in placeholders_at(&step.prompt) {
            let message = match placeholder {
                Placeholder::Var(name) if !workflow.vars.contains_key(&name) => format!(
                    "step '{}' uses {{vars.{name}}}, but no such variable is set (add it under vars, or pass --var {name}=...)",
                    step.id
                ),
                Placeholder::Output(id) if id == step.id => {
                    format!("step '{}' uses its own output {{steps.{id}.output}}, which does not exist yet", step.id)
                }
                Placeholder::Output(id) if !seen.contains_key(id.as_str()) => {
                    format!("step '{}' uses {{steps.{id}.output}}, but there is no step '{id}'", step.id)
                }
                Placeholder::Output(id) if !upstream.contains(&id) => format!(
                    "step '{}' uses {{steps.{id}.output}} without depending on '{id}' (add it to depends_on)",
                    step.id
                ),
                Placeholder::Malformed(inner) => format!(
                    "step '{}' has a malformed placeholder {{{inner}}} (the forms are {{vars.NAME}} and {{steps.ID.output}}; write {{{{ for a literal brace)",
                    step.id
                ),
                _ => continue,
            };
            // The line of the placeholder itself, in a prompt that spans lines.
            let line =
                step.prompt_line.map(|l| l + step.prompt[..offset].matches('\n').count()).or(step.line);
            problems.push(Problem { line, message });
        }
    }
    problems.sort_by_key(|p| p.line.unwrap_or(0));
    problems
}

fn at_line(line: Line) -> String {
    line.map(|l| format!(" on line {l}")).unwrap_or_default()
}

/// " (did you mean 'x'?)" for a name one or two edits from a known one.
fn suggestion<'a>(name: &str, known: impl Iterator<Item = &'a &'a str>) -> String {
    known
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!(" (did you mean '{k}'?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = if ca == *cb { prev } else { prev + 1 };
            prev = row[j + 1];
            row[j + 1] = cost.min(row[j] + 1).min(prev + 1);
        }
    }
    row[b.len()]
}

/// Every step `id` waits for, directly or not (known steps only).
pub fn ancestors(workflow: &Workflow, id: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![id.to_string()];
    while let Some(current) = stack.pop() {
        let Some(step) = workflow.steps.iter().find(|s| s.id == current) else { continue };
        for (dep, _) in &step.depends_on {
            if found.insert(dep.clone()) {
                stack.push(dep.clone());
            }
        }
    }
    found
}

/// Each id's step; with a duplicate id (a problem of its own), the first one.
fn first_index(workflow: &Workflow) -> BTreeMap<&str, usize> {
    let mut index = BTreeMap::new();
    for (i, step) in workflow.steps.iter().enumerate() {
        index.entry(step.id.as_str()).or_insert(i);
    }
    index
}

/// Every dependency cycle, each as a path that ends where it starts (`a -> b -> a`): one per
/// dependency that closes a loop.
fn find_cycles(workflow: &Workflow) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    struct Walk<'a> {
        workflow: &'a Workflow,
        index: BTreeMap<&'a str, usize>,
        marks: Vec<Mark>,
        path: Vec<usize>,
        cycles: Vec<Vec<String>>,
    }
    fn visit(walk: &mut Walk, at: usize) {
        walk.marks[at] = Mark::Open;
        walk.path.push(at);
        for (dep, _) in &walk.workflow.steps[at].depends_on {
            let Some(&next) = walk.index.get(dep.as_str()) else { continue };
            if next == at {
                continue; // reported as "depends on itself"
            }
            match walk.marks[next] {
                Mark::Open => {
                    let from = walk.path.iter().position(|p| *p == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        walk.path[from..].iter().map(|i| walk.workflow.steps[*i].id.clone()).collect();
                    cycle.push(walk.workflow.steps[next].id.clone());
                    walk.cycles.push(cycle);
                }
                Mark::New => visit(walk, next),
                Mark::Done => {}
            }
        }
        walk.path.pop();
        walk.marks[at] = Mark::Done;
    }
    let mut walk = Walk {
        workflow,
        index: first_index(workflow),
        marks: vec![Mark::New; workflow.steps.len()],
        path: Vec::new(),
        cycles: Vec::new(),
    };
    for start in 0..workflow.steps.len() {
        if walk.marks[start] == Mark::New {
            visit(&mut walk, start);
        }
    }
    walk.cycles
}

/// The steps in waves: each wave's steps depend only on earlier waves, so they can run
/// together. File order within a wave. Call after [`check`] found nothing.
pub fn waves(workflow: &Workflow) -> Vec<Vec<usize>> {
    let mut wave_of: Vec<Option<usize>> = vec![None; workflow.steps.len()];
    let index = first_index(workflow);
    let mut placed = 0;
    let mut round = 0;
    while placed < workflow.steps.len() && round <= workflow.steps.len() {
        let ready: Vec<usize> = (0..workflow.steps.len())
            .filter(|&i| wave_of[i].is_none())
            .filter(|&i| {
                workflow.steps[i].depends_on.iter().all(|(dep, _)| {
                    index.get(dep.as_str()).is_some_and(|&d| wave_of[d].is_some_and(|w| w < round))
                })
            })
            .collect();
        for i in &ready {
            wave_of[*i] = Some(round);
        }
        placed += ready.len();
        round += 1;
    }
    let mut waves: Vec<Vec<usize>> = vec![Vec::new(); round];
    for (i, wave) in wave_of.iter().enumerate() {
        if let Some(w) = wave {
            waves[*w].push(i);
        }
    }
    waves.retain(|w| !w.is_empty());
    waves
}

/// Where a step stands while a workflow runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Will not run: a step it depends on failed and stops its dependants, or was skipped.
    Skipped,
}

/// The order a run takes: which steps can start, and what a failure stops. Pure: the runner
/// starts what [`Schedule::next_ready`] gives and reports back with [`Schedule::finish`].
#[derive(Debug, Clone)]
pub struct Schedule<'a> {
    workflow: &'a Workflow,
    index: BTreeMap<&'a str, usize>,
    states: Vec<StepState>,
}

impl<'a> Schedule<'a> {
    /// A schedule from the steps' states (all pending for a new run; a resumed run keeps the
    /// steps that succeeded). Call after [`check`] found nothing.
    pub fn new(workflow: &'a Workflow, states: Vec<StepState>) -> Schedule<'a> {
        assert_eq!(states.len(), workflow.steps.len(), "one state per step");
        Schedule { workflow, index: first_index(workflow), states }
    }

    pub fn state(&self, step: usize) -> StepState {
        self.states[step]
    }

    /// The first pending step (in file order) whose dependencies are all over: succeeded, or
    /// failed with `on_failure: continue`.
    pub fn next_ready(&self) -> Option<usize> {
        (0..self.states.len()).find(|&i| {
            self.states[i] == StepState::Pending
                && self.workflow.steps[i].depends_on.iter().all(|(dep, _)| {
                    self.index.get(dep.as_str()).is_some_and(|&d| match self.states[d] {
                        StepState::Succeeded => true,
                        StepState::Failed => self.workflow.steps[d].on_failure == OnFailure::Continue,
                        _ => false,
                    })
                })
        })
    }

    pub fn start(&mut self, step: usize) {
        self.states[step] = StepState::Running;
    }

    /// A step ended. A failure that stops its dependants skips them, and theirs in turn; returns
    /// the steps newly skipped, each with the step whose failure stopped it.
    pub fn finish(&mut self, step: usize, succeeded: bool) -> Vec<(usize, usize)> {
        self.states[step] = if succeeded { StepState::Succeeded } else { StepState::Failed };
        let mut skipped = Vec::new();
        if succeeded || self.workflow.steps[step].on_failure == OnFailure::Continue {
            return skipped;
        }
        let mut stack = vec![step];
        while let Some(stopped) = stack.pop() {
            let id = self.workflow.steps[stopped].id.as_str();
            for (i, other) in self.workflow.steps.iter().enumerate() {
                if self.states[i] == StepState::Pending && other.depends_on.iter().any(|(d, _)| d == id) {
                    self.states[i] = StepState::Skipped;
                    skipped.push((i, step));
                    stack.push(i);
                }
            }
        }
        skipped
    }

    /// A running step goes back to waiting (its runner was asked to stop).
    pub fn put_back(&mut self, step: usize) {
        self.states[step] = StepState::Pending;
    }

    pub fn running(&self) -> usize {
        self.states.iter().filter(|s| **s == StepState::Running).count()
    }

    /// Whether every step has succeeded.
    pub fn all_succeeded(&self) -> bool {
        self.states.iter().all(|s| *s == StepState::Succeeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, line: usize, prompt: &str, deps: &[&str]) -> Step {
        Step {
            id: id.into(),
            line: Some(line),
            prompt: prompt.into(),
            prompt_line: Some(line + 1),
            tier: None,
            agent: None,
            depends_on: deps.iter().map(|d| (d.to_string(), Some(line + 2))).collect(),
            on_failure: OnFailure::Stop,
            timeout_seconds: None,
            retries: None,
        }
    }

    fn research() -> Workflow {
        Workflow {
            name: "research".into(),
            vars: [("topic".to_string(), "retry policies".to_string())].into_iter().collect(),
            steps: vec![
                step("search", 5, "Find three papers on {vars.topic}", &[]),
                step("critique", 9, "Critique: {steps.search.output}", &["search"]),
                step(
                    "summary",
                    13,
                    "Summarise {steps.search.output} and {steps.critique.output}",
                    &["search", "critique"],
                ),
            ],
            ..Workflow::default()
        }
    }

    #[test]
    fn a_good_workflow_has_no_problems_and_runs_in_waves() {
        let wf = research();
        assert_eq!(check(&wf), vec![]);
        assert_eq!(waves(&wf), vec![vec![0], vec![1], vec![2]]);
        let mut diamond = research();
        diamond.steps[2].depends_on = vec![("search".into(), None)];
        diamond.steps[2].prompt = "Summarise {steps.search.output}".into();
        assert_eq!(waves(&diamond), vec![vec![0], vec![1, 2]], "independent steps share a wave");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let mut wf = research();
        wf.steps.push(step("search", 20, "again", &[]));
        wf.steps.push(step("loop-a", 24, "x", &["loop-b"]));
        wf.steps.push(step("loop-b", 28, "y", &["loop-a"]));
        wf.steps.push(step(
            "typo",
            32,
            "z {vars.topc} {steps.critique.output} {steps.nope.output} {vars}",
            &["serch"],
        ));
        wf.steps.push(Step {
            tier: Some(Tier::Weak),
            agent: Some("x".into()),
            ..step("both", 36, "ok", &[])
        });
        let problems = check(&wf);
        let lines: Vec<(usize, &str)> =
            problems.iter().map(|p| (p.line.unwrap(), p.message.as_str())).collect();
        assert!(lines.contains(&(20, "duplicate step id 'search' (first used on line 5)")), "{lines:#?}");
        assert!(lines.contains(&(24, "dependency cycle: loop-a -> loop-b -> loop-a")), "{lines:#?}");
        assert!(
            lines.contains(&(
                34,
                "step 'typo' depends on 'serch', which is not a step (did you mean 'search'?)"
            )),
            "{lines:#?}"
        );
        let typo: Vec<&str> = lines.iter().filter(|(l, _)| *l == 33).map(|(_, m)| *m).collect();
        assert_eq!(typo.len(), 4, "{typo:#?}");
        assert!(typo[0].contains("{vars.topc}") && typo[0].contains("--var topc="), "{}", typo[0]);
        assert!(typo[1].contains("without depending on 'critique'"), "{}", typo[1]);
        assert!(typo[2].contains("there is no step 'nope'"), "{}", typo[2]);
        assert!(typo[3].contains("malformed placeholder {vars}"), "{}", typo[3]);
        assert!(lines.contains(&(36, "step 'both' sets both tier and agent: keep one")), "{lines:#?}");
        assert_eq!(check(&Workflow::default())[0].message, "the workflow has no steps");
    }

    #[test]
    fn every_cycle_bad_ids_and_lines_inside_a_long_prompt() {
        let mut wf = research();
        wf.steps.push(step("x", 20, "1", &["y"]));
        wf.steps.push(step("y", 24, "2", &["x", "z"]));
        wf.steps.push(step("z", 28, "3", &["y"]));
        wf.steps.push(step("a.b", 32, "4", &[]));
        wf.steps.push(step(
            "d",
            36,
            "line one\nline two {vars.nope}\nthree {steps.d.output} {steps.search.output",
            &["search", "search"],
        ));
        let messages: Vec<(usize, String)> =
            check(&wf).into_iter().map(|p| (p.line.unwrap(), p.message)).collect();
        let has = |line: usize, text: &str| messages.iter().any(|(l, m)| *l == line && m.contains(text));
        assert!(has(20, "dependency cycle: x -> y -> x"), "{messages:#?}");
        assert!(has(24, "dependency cycle: y -> z -> y"), "{messages:#?}");
        assert!(has(32, "step id 'a.b' may hold only"), "{messages:#?}");
        assert!(has(38, "lists 'search' twice"), "{messages:#?}");
        assert!(has(38, "{vars.nope}"), "on the prompt's second line: {messages:#?}");
        assert!(has(39, "its own output"), "{messages:#?}");
        assert!(has(39, "malformed placeholder {steps.search.output (no closing brace)}"), "{messages:#?}");
    }

    #[test]
    fn templates_fill_only_their_two_forms() {
        let vars: BTreeMap<String, String> =
            [("topic".to_string(), "caching".to_string())].into_iter().collect();
        let outputs: BTreeMap<String, String> =
            [("search".to_string(), "three papers".to_string())].into_iter().collect();
        let template = r#"On {vars.topic}: {steps.search.output}. JSON stays: {"a": {"b": 1}} and {{vars.topic}} is literal; {unrelated} too"#;
        assert_eq!(
            render(template, &vars, &outputs),
            r#"On caching: three papers. JSON stays: {"a": {"b": 1}} and {vars.topic}} is literal; {unrelated} too"#
        );
        assert_eq!(
            placeholders(template),
            vec![Placeholder::Var("topic".into()), Placeholder::Output("search".into())]
        );
    }

    #[test]
    fn the_schedule_runs_branches_side_by_side_and_a_failure_stops_only_its_dependants() {
        // a -> {b, c}; b -> d; c -> e; e has on_failure: continue, f after e.
        let mut workflow = Workflow {
            name: "t".into(),
            steps: vec![
                step("a", 1, "x", &[]),
                step("b", 4, "x", &["a"]),
                step("c", 7, "x", &["a"]),
                step("d", 10, "x", &["b"]),
                step("e", 13, "x", &["c"]),
                step("f", 16, "x", &["e"]),
            ],
            ..Workflow::default()
        };
        workflow.steps[4].on_failure = OnFailure::Continue;
        let mut schedule = Schedule::new(&workflow, vec![StepState::Pending; 6]);
        assert_eq!(schedule.next_ready(), Some(0));
        schedule.start(0);
        assert_eq!(schedule.next_ready(), None, "b and c wait for a");
        assert!(schedule.finish(0, true).is_empty());
        schedule.start(1);
        assert_eq!(schedule.next_ready(), Some(2), "c runs beside b");
        schedule.start(2);
        assert_eq!(schedule.running(), 2);
        assert_eq!(schedule.finish(1, false), [(3, 1)], "b's failure skips d");
        assert_eq!(schedule.state(3), StepState::Skipped);
        assert!(schedule.finish(2, true).is_empty());
        schedule.start(4);
        assert!(schedule.finish(4, false).is_empty(), "e continues on failure");
        assert_eq!(schedule.next_ready(), Some(5), "f runs after e failed");
        schedule.start(5);
        schedule.put_back(5);
        assert_eq!(schedule.next_ready(), Some(5));
        assert!(!schedule.all_succeeded());
    }

    #[test]
    fn a_failure_skips_dependants_of_dependants_and_a_resume_starts_after_what_succeeded() {
        let workflow = Workflow {
            name: "chain".into(),
            steps: vec![step("a", 1, "x", &[]), step("b", 4, "x", &["a"]), step("c", 7, "x", &["b"])],
            ..Workflow::default()
        };
        let mut schedule = Schedule::new(&workflow, vec![StepState::Pending; 3]);
        schedule.start(0);
        assert_eq!(schedule.finish(0, false), [(1, 0), (2, 0)]);
        assert_eq!(schedule.next_ready(), None);
        let resumed =
            Schedule::new(&workflow, vec![StepState::Succeeded, StepState::Pending, StepState::Pending]);
        assert_eq!(resumed.next_ready(), Some(1));
    }
}
