//! `marshal workflow check`: the shipped examples check clean and show their waves; a broken
//! file names each problem with its line and exits 1.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::process::Ran;
use crate::support::repo_root;

fn check(home: &std::path::Path, args: &[&str]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_marshal"));
    command.env_clear().env("HOME", home).current_dir(repo_root()).arg("workflow").arg("check").args(args);
    Ran::of(&mut command, None, Duration::from_secs(60))
}

#[test]
fn the_examples_check_clean_and_show_parallel_waves() {
    let home = tempfile::tempdir().unwrap();
    let ran = check(home.path(), &["examples/scout-plan-build.yaml", "--json"]).success();
    let plan: Value = serde_json::from_slice(&ran.0.stdout).unwrap();
    assert_eq!(plan["problems"], serde_json::json!([]));
    let waves: Vec<Vec<&str>> = plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect())
        .collect();
    assert_eq!(
        waves,
        vec![vec!["scout-code", "scout-risks"], vec!["plan"], vec!["build"], vec!["review", "docs"]]
    );
    let plan_step = &plan["waves"][1][0];
    assert_eq!((plan_step["tier"].as_str(), plan_step["model"].as_str()), (Some("strong"), Some("opus")));
    let text = check(home.path(), &["examples/research-analysis.yaml"]).success().stdout_text();
    assert!(
        text.starts_with(
            "workflow research-analysis (examples/research-analysis.yaml): 3 steps in 3 waves, no problems"
        ),
        "{text}"
    );
}

#[test]
fn a_broken_workflow_names_every_problem_with_its_line_and_runs_nothing() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("broken.yaml");
    std::fs::write(
        &file,
        "name: broken\nsteps:\n  - id: a\n    prompt: \"use {vars.missing}\"\n    depends_on: [b]\n  - id: b\n    prompt: y\n    depends_on: [a]\n  - id: a\n    prompt: z\n",
    )
    .unwrap();
    let shown = file.display().to_string();
    let text = check(home.path(), &[&shown]).code(1).stdout_text();
    for expected in [
        format!("{shown}:3: dependency cycle: a -> b -> a"),
        format!("{shown}:4: step 'a' uses {{vars.missing}}, but no such variable is set"),
        format!("{shown}:9: duplicate step id 'a' (first used on line 3)"),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    // A key the format does not have is an error with its line, before anything else.
    std::fs::write(&file, "name: x\nsteps:\n  - id: a\n    prompt: hi\n    teir: weak\n").unwrap();
    let ran = check(home.path(), &[&shown]).code(1);
    assert!(
        ran.stdout_text().starts_with(&format!("{shown}:5: unknown field `teir`")),
        "{}",
        ran.stdout_text()
    );
    let json: Value =
        serde_json::from_slice(&check(home.path(), &[&shown, "--json"]).code(1).0.stdout).unwrap();
    assert_eq!(json["problems"][0]["line"], 5, "{json}");
    assert_eq!(json["waves"], serde_json::json!([]));
}

// ---------------------------------------------------------------------------
// `marshal workflow run` and `resume`, end to end: the real Claude Code CLI as each step's
// child, the fake Messages API as every model.

mod runs {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use crate::support::claude::{claude_bin, Sandbox};
    use crate::support::fake_api::{ApiRequest, FakeApi, Reply};
    use crate::support::of_kind;
    use crate::support::process::Ran;

    /// Five steps, two branches after `root` (left -> left2, and right), joined by `join`.
    /// `join` has no tier: it is routed on its prompt, filled with the branches' answers.
    const DAG: &str = r#"
name: e2e-dag
steps:
  - id: root
    prompt: "TOKEN-root: list the source files of this project"
    tier: weak
  - id: left
    prompt: "TOKEN-left: summarise these files: {steps.root.output}"
    tier: weak
    depends_on: [root]
  - id: right
    prompt: "TOKEN-right: list the tests that cover {steps.root.output}"
    tier: weak
    depends_on: [root]
  - id: left2
    prompt: "TOKEN-left2: shorten this summary: {steps.left.output}"
    tier: weak
    depends_on: [left]
  - id: join
    prompt: "TOKEN-join: Design the architecture for splitting the billing monolith into services, with the migration plan and trade-offs, from {steps.left2.output} and {steps.right.output}"
    depends_on: [left2, right]
"#;

    /// The step a request is for (its `TOKEN-<step>` marker), if any.
    fn step_of(request: &ApiRequest) -> Option<String> {
        let text = request.message_text();
        let at = text.find("TOKEN-")? + "TOKEN-".len();
        Some(text[at..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect())
    }

    /// When each step's request came in and was answered, in order of arrival.
    type Timeline = Arc<Mutex<Vec<(String, String, Instant, Instant)>>>;

    fn requests_for(api: &FakeApi, step: &str) -> Vec<ApiRequest> {
        api.requests().into_iter().filter(|r| step_of(r).as_deref() == Some(step)).collect()
    }

    fn marshal(sandbox: &Sandbox, api: &FakeApi, args: &[&str]) -> Command {
        let mut command = sandbox.command(Path::new(env!("CARGO_BIN_EXE_marshal")), api);
        command.env("MARSHAL_CLAUDE_BIN", claude_bin()).arg("workflow").args(args);
        command
    }

    fn write_dag(sandbox: &Sandbox) -> String {
        let file = sandbox.project.join("dag.yaml");
        std::fs::write(&file, DAG).unwrap();
        file.display().to_string()
    }

    #[test]
    fn a_dag_runs_each_step_on_its_model_with_branches_side_by_side_and_escalates_a_failing_step() {
        let sandbox = Sandbox::installed();
        let timeline: Timeline = Arc::default();
        let seen = Arc::clone(&timeline);
        let api = FakeApi::start(move |request| {
            let Some(step) = step_of(request) else { return Reply::text("ok") };
            let arrived = Instant::now();
            // left2 fails on the weak tier's model: retried once, then escalated.
            if step == "left2" && request.model().contains("haiku") {
                return Reply::Error { status: 529, message: "Overloaded".into() };
            }
            // The branches take a while, so running them side by side shows.
            if step == "left" || step == "right" {
                std::thread::sleep(Duration::from_millis(2500));
            }
            seen.lock().unwrap().push((step.clone(), request.model().to_string(), arrived, Instant::now()));
            Reply::text(format!("OUT-{step}"))
        });
        let file = write_dag(&sandbox);
        let ran =
            Ran::of(&mut marshal(&sandbox, &api, &["run", &file, "--json"]), None, Duration::from_secs(240));
        let ran = ran.success();
        let summary: Value = serde_json::from_slice(&ran.0.stdout).unwrap();
        assert_eq!(summary["status"], "succeeded", "{summary:#}\n{}", ran.stderr_text());
        let steps: BTreeMap<&str, &Value> =
            summary["steps"].as_array().unwrap().iter().map(|s| (s["id"].as_str().unwrap(), s)).collect();
        assert!(steps.values().all(|s| s["status"] == "succeeded"), "{summary:#}");

        // Each step's request reached the server on the model marshal says it ran on.
        let full_model = |alias: &str| format!("claude-{alias}-5-5");
        for (id, step) in &steps {
            let requests = requests_for(&api, id);
            let last = requests.last().unwrap_or_else(|| panic!("no request for step {id}"));
            assert_eq!(last.model(), full_model(step["model"].as_str().unwrap()), "step {id}");
            let answer = std::fs::read_to_string(step["output_file"].as_str().unwrap()).unwrap();
            assert_eq!(answer, format!("OUT-{id}"));
        }
        assert_eq!(steps["root"]["tier"], "weak");
        // join was routed on its filled prompt: architecture work goes to the strong tier.
        assert_eq!(
            (steps["join"]["tier"].as_str(), steps["join"]["model"].as_str()),
            (Some("strong"), Some("opus"))
        );

        // The failing step: weak twice (a retry), then the next tier up, which answered.
        let left2_models: Vec<String> =
            requests_for(&api, "left2").iter().map(|r| r.model().to_string()).collect();
        assert_eq!(left2_models, ["claude-haiku-5-5", "claude-haiku-5-5", "claude-sonnet-5-5"]);
        assert_eq!(
            (steps["left2"]["attempts"].as_u64(), steps["left2"]["model"].as_str()),
            (Some(3), Some("sonnet"))
        );

        // Each prompt carried its dependencies' answers.
        let prompt_of = |id: &str| requests_for(&api, id)[0].message_text();
        assert!(prompt_of("left").contains("summarise these files: OUT-root"));
        assert!(prompt_of("right").contains("OUT-root"));
        assert!(prompt_of("left2").contains("OUT-left"));
        let join = prompt_of("join");
        assert!(join.contains("from OUT-left2 and OUT-right"), "{join}");

        // The two branches overlapped in time.
        let timeline = timeline.lock().unwrap().clone();
        let span = |id: &str| timeline.iter().find(|(s, ..)| s == id).map(|(_, _, a, b)| (*a, *b)).unwrap();
        let ((left_in, left_out), (right_in, right_out)) = (span("left"), span("right"));
        assert!(left_in < right_out && right_in < left_out, "left and right ran one after the other");

        // The ledger holds each step's orchestration under the run's session, by step id.
        let run_id = summary["run_id"].as_str().unwrap();
        let ledger = sandbox.ledger();
        let outcomes: Vec<&Value> = of_kind(&ledger, "outcome")
            .into_iter()
            .filter(|r| r["session"] == format!("workflow-{run_id}"))
            .collect();
        let mut ids: Vec<&str> = outcomes.iter().map(|r| r["prompt_id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["join", "left", "left2", "right", "root"]);
        assert!(outcomes.iter().all(|r| r["outcome"] == "followed" && r["mode"] == "orchestrate"));
        let attempts: Vec<&str> = of_kind(&ledger, "attempt")
            .iter()
            .filter(|r| r["prompt_id"] == "left2")
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(attempts, ["api_error", "api_error", "succeeded"]);

        // status and list agree with the run's own summary.
        let status: Value = serde_json::from_slice(
            &Ran::of(
                &mut marshal(&sandbox, &api, &["status", run_id, "--json"]),
                None,
                Duration::from_secs(30),
            )
            .success()
            .0
            .stdout,
        )
        .unwrap();
        assert_eq!(status["steps"], summary["steps"]);
        let list: Value = serde_json::from_slice(
            &Ran::of(&mut marshal(&sandbox, &api, &["list", "--json"]), None, Duration::from_secs(30))
                .success()
                .0
                .stdout,
        )
        .unwrap();
        assert_eq!(list[0]["run_id"], run_id);
        assert_eq!(list[0]["status"], "succeeded");
    }

    #[test]
    fn after_kill_9_resume_runs_only_the_steps_that_had_not_finished() {
        let sandbox = Sandbox::installed();
        let hold_join = Arc::new(AtomicBool::new(true));
        let holding = Arc::clone(&hold_join);
        let api = FakeApi::start(move |request| {
            let Some(step) = step_of(request) else { return Reply::text("ok") };
            // The first run is killed while join waits here for its answer.
            let held = Instant::now();
            while step == "join" && holding.load(Ordering::SeqCst) && held.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Reply::text(format!("OUT-{step}"))
        });
        let file = write_dag(&sandbox);
        let mut runner = marshal(&sandbox, &api, &["run", &file])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let waited = Instant::now();
        while requests_for(&api, "join").is_empty() {
            assert!(waited.elapsed() < Duration::from_secs(180), "join never reached the server");
            assert!(runner.try_wait().unwrap().is_none(), "the runner ended before join started");
            std::thread::sleep(Duration::from_millis(100));
        }
        runner.kill().unwrap(); // SIGKILL
        runner.wait().unwrap();
        hold_join.store(false, Ordering::SeqCst);

        let list: Value = serde_json::from_slice(
            &Ran::of(&mut marshal(&sandbox, &api, &["list", "--json"]), None, Duration::from_secs(30))
                .success()
                .0
                .stdout,
        )
        .unwrap();
        let run_id = list[0]["run_id"].as_str().unwrap().to_string();
        assert_eq!(list[0]["status"], "interrupted", "a run whose runner died shows as interrupted");

        let ran = Ran::of(
            &mut marshal(&sandbox, &api, &["resume", &run_id, "--json"]),
            None,
            Duration::from_secs(180),
        );
        let summary: Value = serde_json::from_slice(&ran.success().0.stdout).unwrap();
        assert_eq!(summary["status"], "succeeded", "{summary:#}");
        for step in ["root", "left", "right", "left2"] {
            assert_eq!(requests_for(&api, step).len(), 1, "step {step} was requested again after resume");
        }
        assert_eq!(requests_for(&api, "join").len(), 2, "join: the killed request, then the resumed one");
        let join = summary["steps"].as_array().unwrap().iter().find(|s| s["id"] == "join").unwrap();
        let answer = std::fs::read_to_string(join["output_file"].as_str().unwrap()).unwrap();
        assert_eq!(answer, "OUT-join");

        // A finished run has nothing to resume; an unknown one is a clear error.
        let again =
            Ran::of(&mut marshal(&sandbox, &api, &["resume", &run_id]), None, Duration::from_secs(30))
                .success();
        assert!(
            again.stderr_text().contains("already succeeded: nothing to resume"),
            "{}",
            again.stderr_text()
        );
        let unknown =
            Ran::of(&mut marshal(&sandbox, &api, &["resume", "no-such-run"]), None, Duration::from_secs(30))
                .code(2);
        assert!(unknown.stderr_text().contains("no workflow run 'no-such-run'"), "{}", unknown.stderr_text());
    }
}

// ---------------------------------------------------------------------------
// The runner's own behaviour, with a stand-in CLI (a shell script) instead of Claude Code.

mod runner {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use crate::support::process::Ran;

    /// A stand-in CLI: logs "<model> <prompt>" per call, fails (exit 7) on a prompt holding
    /// FAIL, sleeps on one holding SLOW, else answers "answer:<first word of the prompt>".
    const STUB: &str = r#"#!/bin/sh
model=""; prompt=""
while [ $# -gt 0 ]; do case "$1" in --model) model="$2"; shift;; --) shift; prompt="$1";; esac; shift; done
echo "$model $prompt" >> "$STUB_LOG"
case "$prompt" in *FAIL*) echo "boom" >&2; exit 7;; esac
case "$prompt" in *SLOW*) sleep 30;; esac
word="${prompt%% *}"
printf '{"type":"result","is_error":false,"result":"answer:%s {vars.x} {steps.a.output}","session_id":"s"}\n' "$word"
"#;

    struct Bench {
        dir: tempfile::TempDir,
    }

    impl Bench {
        fn new() -> Bench {
            let dir = tempfile::tempdir().unwrap();
            let stub = dir.path().join("claude");
            std::fs::write(&stub, STUB).unwrap();
            std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
            Bench { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn write(&self, name: &str, text: &str) -> String {
            std::fs::write(self.path(name), text).unwrap();
            self.path(name).display().to_string()
        }

        fn command(&self, args: &[&str]) -> Command {
            let mut command = Command::new(env!("CARGO_BIN_EXE_marshal"));
            command
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HOME", self.path("home"))
                .env("MARSHAL_STATE_DIR", self.path("state"))
                .env("MARSHAL_CLAUDE_BIN", self.path("claude"))
                .env("STUB_LOG", self.path("calls.log"))
                .current_dir(self.dir.path())
                .arg("workflow")
                .args(args);
            command
        }

        fn run(&self, args: &[&str]) -> Ran {
            Ran::of(&mut self.command(args), None, Duration::from_secs(120))
        }

        fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(self.path("calls.log"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    fn json(ran: &Ran) -> Value {
        serde_json::from_slice(&ran.0.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout_text()))
    }

    fn statuses(summary: &Value) -> Vec<(String, String)> {
        summary["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
            .collect()
    }

    const BRANCHES: &str = r#"
name: branches
steps:
  - id: a
    prompt: "a: list the files"
    tier: weak
  - id: bad
    prompt: "bad: FAIL {steps.a.output}"
    tier: weak
    depends_on: [a]
  - id: after-bad
    prompt: "after-bad: {steps.bad.output}"
    tier: weak
    depends_on: [bad]
  - id: good
    prompt: "good: {steps.a.output}"
    tier: weak
    depends_on: [a]
  - id: soft
    prompt: "soft: FAIL"
    tier: weak
    on_failure: continue
  - id: after-soft
    prompt: "after-soft: [{steps.soft.output}]"
    tier: weak
    depends_on: [soft]
"#;

    #[test]
    fn a_failed_step_skips_its_dependants_while_other_branches_finish_and_resume_retries_it() {
        let bench = Bench::new();
        let file = bench.write("wf.yaml", BRANCHES);
        let ran = bench.run(&["run", &file, "--json"]).code(1);
        let summary = json(&ran);
        assert_eq!(summary["status"], "failed");
        let expected: Vec<(String, String)> = [
            ("a", "succeeded"),
            ("bad", "failed"),
            ("after-bad", "skipped"),
            ("good", "succeeded"),
            ("soft", "failed"),
            ("after-soft", "succeeded"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(statuses(&summary), expected);
        let bad = &summary["steps"][1];
        // weak, weak again (no retry for a plain failure: it escalates), base, strong.
        assert_eq!(bad["attempts"], 3, "{bad}");
        assert!(bad["error"].as_str().unwrap().contains("exited with status 7"), "{bad}");
        assert_eq!(summary["steps"][2]["error"], "not run: step 'bad' failed");
        // An answer is text: placeholders in it are not filled again in a dependant's prompt.
        let calls = bench.calls();
        assert!(calls.iter().any(|c| c == "haiku good: answer:a: {vars.x} {steps.a.output}"), "{calls:#?}");
        // A step that failed with on_failure: continue leaves an empty output to its dependants.
        assert!(calls.iter().any(|c| c == "haiku after-soft: []"), "{calls:#?}");

        // The text summary says what failed and how to carry on.
        let run_id = summary["run_id"].as_str().unwrap().to_string();
        let text = bench.run(&["status", &run_id]).success().stdout_text();
        assert!(text.contains(&format!("run {run_id} (workflow branches): failed")), "{text}");
        assert!(text.contains("step bad: orchestration failed after 3 attempt(s)"), "{text}");
        assert!(text.contains(&format!("Resume with: marshal workflow resume {run_id}")), "{text}");

        // Fix the cause and resume: only what had not succeeded runs again.
        let before = bench.calls().len();
        std::fs::write(bench.path("claude"), STUB.replace("*FAIL*) echo", "*NEVER*) echo")).unwrap();
        let resumed = json(&bench.run(&["resume", &run_id, "--json"]).success());
        assert_eq!(resumed["status"], "succeeded");
        let mut again: Vec<String> =
            bench.calls()[before..].iter().map(|c| c.split(':').next().unwrap().to_string()).collect();
        again.sort_unstable();
        // after-soft had succeeded (on an empty stand-in for soft): it is not run again.
        assert_eq!(again, ["haiku after-bad", "haiku bad", "haiku soft"]);
    }

    #[test]
    fn sigint_stops_the_run_as_interrupted_and_resume_finishes_it() {
        let bench = Bench::new();
        let file = bench.write(
            "wf.yaml",
            "name: slow\nsteps:\n  - id: quick\n    prompt: \"quick: go\"\n    tier: weak\n  - id: slow\n    prompt: \"slow: SLOW {steps.quick.output}\"\n    tier: weak\n    depends_on: [quick]\n",
        );
        let runner =
            bench.command(&["run", &file]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let started = Instant::now();
        while !bench.calls().iter().any(|c| c.contains("slow:")) {
            assert!(started.elapsed() < Duration::from_secs(60), "the slow step never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        let signalled = Command::new("kill").args(["-INT", &runner.id().to_string()]).status().unwrap();
        assert!(signalled.success());
        let out = runner.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(25), "the stand-in's sleep was not cut short");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("interrupted") && text.contains("Resume with: marshal workflow resume"),
            "{text}"
        );
        let status = json(&bench.run(&["status", "--json"]).success());
        assert_eq!(status["status"], "interrupted");
        assert_eq!(statuses(&status)[1], ("slow".to_string(), "pending".to_string()));

        std::fs::write(bench.path("claude"), STUB.replace("sleep 30", "true")).unwrap();
        let run_id = status["run_id"].as_str().unwrap().to_string();
        assert_eq!(json(&bench.run(&["resume", &run_id, "--json"]).success())["status"], "succeeded");
        assert_eq!(bench.calls().iter().filter(|c| c.contains("quick: go")).count(), 1);
    }

    #[test]
    fn two_runs_at_once_keep_apart_and_a_live_run_cannot_be_resumed_twice() {
        let bench = Bench::new();
        let slow = bench
            .write("slow.yaml", "name: one\nsteps:\n  - id: s\n    prompt: \"s: SLOW\"\n    tier: weak\n");
        let other = bench
            .write("other.yaml", "name: two\nsteps:\n  - id: t\n    prompt: \"t: go\"\n    tier: weak\n");
        let mut first =
            bench.command(&["run", &slow]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let started = Instant::now();
        while !bench.calls().iter().any(|c| c.contains("s: SLOW")) {
            assert!(started.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(50));
        }
        let second = json(&bench.run(&["run", &other, "--json"]).success());
        assert_eq!(second["status"], "succeeded");
        let list = json(&bench.run(&["list", "--json"]).success());
        let by_name: Vec<(String, String)> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_string(), r["status"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            by_name,
            [("one".to_string(), "running".to_string()), ("two".to_string(), "succeeded".to_string())]
        );
        let live = list[0]["run_id"].as_str().unwrap().to_string();
        let refused = bench.run(&["resume", &live]).code(2);
        assert!(
            refused.stderr_text().contains("is running in another marshal process"),
            "{}",
            refused.stderr_text()
        );
        first.kill().unwrap();
        first.wait().unwrap();
    }

    #[test]
    fn exit_codes_for_a_bad_file_a_missing_cli_bad_usage_and_a_dry_run() {
        let bench = Bench::new();
        let broken =
            bench.write("broken.yaml", "name: b\nsteps:\n  - id: a\n    prompt: \"{steps.nope.output}\"\n");
        let ran = bench.run(&["run", &broken]).code(2);
        assert!(ran.stdout_text().contains("broken.yaml:4:"), "{}", ran.stdout_text());
        assert!(bench.calls().is_empty(), "nothing ran");
        let good =
            bench.write("good.yaml", "name: g\nsteps:\n  - id: a\n    prompt: \"a: go\"\n    tier: base\n");
        let plan = json(&bench.run(&["run", &good, "--dry-run", "--json"]).success());
        assert_eq!(plan["waves"][0][0]["model"], "sonnet");
        assert!(bench.calls().is_empty(), "a dry run runs nothing");
        assert!(!bench.path("state/marshal.db").exists(), "a dry run records nothing");
        bench.run(&["run", &good, "--concurrency", "0"]).code(2);
        let mut no_cli = bench.command(&["run", &good]);
        no_cli.env("MARSHAL_CLAUDE_BIN", "/nonexistent/claude");
        let ran = Ran::of(&mut no_cli, None, Duration::from_secs(60)).code(3);
        assert!(ran.stderr_text().contains("the Claude Code CLI was not found"), "{}", ran.stderr_text());
        assert_eq!(
            json(&bench.run(&["list", "--json"]).success()),
            serde_json::json!([]),
            "nothing was started"
        );
        let ran = bench.run(&["status", "nope"]).code(2);
        assert!(ran.stderr_text().contains("no workflow run 'nope'"), "{}", ran.stderr_text());
    }
}
