//! `marshal queue`: tasks queued now and run unattended by `queue run`, each an orchestration on
//! its routed model (the real Claude Code CLI against the fake API), rate limits that put a task
//! back without failing it, a runner killed mid-task whose task returns after its lease, and many
//! writers and runners sharing one queue.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::claude::{claude_bin, Sandbox};
use crate::support::fake_api::{ApiRequest, FakeApi, Reply};
use crate::support::of_kind;
use crate::support::process::Ran;

fn queue(sandbox: &Sandbox, api: &FakeApi, args: &[&str]) -> Command {
    let mut command = sandbox.command(Path::new(env!("CARGO_BIN_EXE_marshal")), api);
    command.env("MARSHAL_CLAUDE_BIN", claude_bin()).arg("queue").args(args);
    command
}

fn ran(command: &mut Command) -> Ran {
    Ran::of(command, None, Duration::from_secs(180))
}

fn json(ran: &Ran) -> Value {
    serde_json::from_slice(&ran.0.stdout).unwrap_or_else(|e| panic!("{e}: {}", ran.stdout_text()))
}

/// The task a request is for: its `TASK-<n>` marker.
fn task_of(request: &ApiRequest) -> Option<String> {
    let text = request.message_text();
    let at = text.find("TASK-")? + "TASK-".len();
    Some(text[at..].chars().take_while(char::is_ascii_digit).collect())
}

fn add(sandbox: &Sandbox, api: &FakeApi, args: &[&str]) -> i64 {
    ran(&mut queue(sandbox, api, &[&["add"], args].concat())).success().stdout_text().trim().parse().unwrap()
}

#[test]
fn queued_tasks_run_on_their_routed_models_and_are_recorded() {
    let sandbox = Sandbox::installed();
    let api = FakeApi::start(|request| match task_of(request) {
        Some(n) => Reply::text(format!("ANSWER-{n}")),
        None => Reply::text("ok"),
    });
    let chore = add(&sandbox, &api, &["TASK-1: rename the helper parse_cfg to parse_config in utils.py"]);
    let hard = add(&sandbox, &api, &["--tier", "strong", "TASK-2: plan the split of the billing monolith"]);
    let routed = add(
        &sandbox,
        &api,
        &["--after", "1", "TASK-3: add a unit test for parse_config in tests/test_utils.py"],
    );
    let summary = json(&ran(&mut queue(&sandbox, &api, &["run", "--json"])).success());
    assert_eq!((summary["claimed"].as_u64(), summary["done"].as_u64()), (Some(3), Some(3)), "{summary}");

    let tasks = json(&ran(&mut queue(&sandbox, &api, &["list", "--json"])).success());
    assert!(
        tasks.as_array().unwrap().iter().all(|t| t["status"] == "done" && t["attempts"] == 1),
        "{tasks:#}"
    );
    let models: BTreeMap<String, String> =
        api.requests().iter().filter_map(|r| Some((task_of(r)?, r.model().to_string()))).collect();
    assert_eq!(models["1"], "claude-haiku-5-5", "a chore, routed to the weak tier");
    assert_eq!(models["2"], "claude-opus-5-5", "the tier the task set");
    let shown = json(&ran(&mut queue(&sandbox, &api, &["show", &routed.to_string(), "--json"])).success());
    assert_eq!(shown["result"], "ANSWER-3");
    // The ledger has each task's orchestration, keyed by its id.
    let ledger = sandbox.ledger();
    let outcomes: Vec<&Value> =
        of_kind(&ledger, "outcome").into_iter().filter(|r| r["session"] == "queue").collect();
    let mut keys: Vec<&str> = outcomes.iter().map(|r| r["prompt_id"].as_str().unwrap()).collect();
    keys.sort_unstable();
    assert_eq!(keys, [format!("task-{chore}-1"), format!("task-{hard}-1"), format!("task-{routed}-1")]);
    let route_models: Vec<&str> = of_kind(&ledger, "route")
        .iter()
        .filter(|r| r["prompt_id"] == format!("task-{chore}-1"))
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(route_models, ["haiku"]);
}

#[test]
fn a_rate_limited_task_goes_back_to_the_queue_and_is_answered_once() {
    let sandbox = Sandbox::installed();
    let limited = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicUsize::new(0));
    let (limit, count) = (Arc::clone(&limited), Arc::clone(&answered));
    let api = FakeApi::start(move |request| {
        if task_of(request).is_none() {
            return Reply::text("ok");
        }
        if limit.load(Ordering::SeqCst) {
            return Reply::Error { status: 429, message: "rate limited".into() };
        }
        count.fetch_add(1, Ordering::SeqCst);
        Reply::text("ANSWER")
    });
    let id = add(&sandbox, &api, &["--tier", "weak", "TASK-7: list the files in src"]);
    let run =
        ran(&mut queue(&sandbox, &api, &["run", "--until", "+1m", "--backoff-seconds", "3600", "--json"]));
    let run = run.code(5);
    let summary = json(&run);
    assert_eq!(
        (summary["rate_limited"].as_u64(), summary["failed"].as_u64()),
        (Some(1), Some(0)),
        "{summary}"
    );
    assert!(run.stdout_text().contains("resumes_at"), "{}", run.stdout_text());
    let task = json(&ran(&mut queue(&sandbox, &api, &["show", &id.to_string(), "--json"])).success());
    assert_eq!((task["status"].as_str(), task["attempts"].as_u64()), (Some("pending"), Some(0)), "{task:#}");
    // One request on the weak model, no retry and no escalation: the quota is shared.
    let models: Vec<String> =
        api.requests().iter().filter(|r| task_of(r).is_some()).map(|r| r.model().to_string()).collect();
    assert_eq!(models, ["claude-haiku-5-5"]);

    // The text form says when it resumes.
    let text = ran(&mut queue(&sandbox, &api, &["run", "--until", "+1s"])).code(5).stdout_text();
    assert!(text.contains("resumes at"), "{text}");

    // After the reset (here: the not-before time moved), the task runs and is answered once.
    limited.store(false, Ordering::SeqCst);
    let db_task = json(&ran(&mut queue(&sandbox, &api, &["list", "--json"])).success());
    assert_eq!(db_task[0]["status"], "pending");
    let retried = ran(&mut queue(&sandbox, &api, &["run", "--until", "+1s", "--json"])).code(5);
    assert_eq!(json(&retried)["claimed"], 0, "it waits for the reset time: {}", retried.stdout_text());
    force_ready(&sandbox, id);
    let done = json(&ran(&mut queue(&sandbox, &api, &["run", "--json"])).success());
    assert_eq!(done["done"], 1);
    assert_eq!(answered.load(Ordering::SeqCst), 1);
    let task = json(&ran(&mut queue(&sandbox, &api, &["show", &id.to_string(), "--json"])).success());
    assert_eq!((task["status"].as_str(), task["attempts"].as_u64()), (Some("done"), Some(1)));
}

#[test]
fn a_subscription_limit_pauses_the_queue_until_the_reset_claude_code_names() {
    let sandbox = Sandbox::installed();
    // Two hours and a quarter from now, on the minute (Claude Code shows minutes, not seconds).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let resets_at = (now + 2 * 3600 + 15 * 60) / 60 * 60;
    let api = FakeApi::start(move |request| match task_of(request) {
        Some(_) => Reply::QuotaExhausted { resets_at },
        None => Reply::text("ok"),
    });
    let id = add(&sandbox, &api, &["--tier", "weak", "TASK-8: list the files in src"]);
    // Logged in with a subscription, Claude Code's error says when the window resets.
    let mut run = queue(&sandbox, &api, &["run", "--until", "+1s", "--backoff-seconds", "60", "--json"]);
    run.env_remove("ANTHROPIC_API_KEY").env("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-suite-not-real");
    let run = ran(&mut run).code(5);
    let summary = json(&run);
    assert_eq!(summary["rate_limited"], 1, "{summary}");
    let resumes = chrono::DateTime::parse_from_rfc3339(summary["resumes_at"].as_str().unwrap()).unwrap();
    // The minute after the reset (the time shown is cut to the minute), not the 60 s backoff.
    assert_eq!(resumes.timestamp(), resets_at + 60, "{summary}");
    let task = json(&ran(&mut queue(&sandbox, &api, &["show", &id.to_string(), "--json"])).success());
    assert_eq!((task["status"].as_str(), task["attempts"].as_u64()), (Some("pending"), Some(0)), "{task:#}");
    let shown = task.to_string();
    assert!(shown.contains("the quota resets at"), "{task:#}");
}

/// The quota "resets" now: the task's wait is cleared in the database (with Python's sqlite3,
/// so the test needs no hour-long wait).
fn force_ready(sandbox: &Sandbox, id: i64) {
    let db = sandbox.state_dir().join("marshal.db");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('UPDATE queue_tasks SET not_before=NULL WHERE id=?', (int(sys.argv[2]),)); c.commit()",
            &db.display().to_string(),
            &id.to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_task_whose_runner_was_killed_runs_again_after_its_lease() {
    let sandbox = Sandbox::installed();
    let hold = Arc::new(AtomicBool::new(true));
    let holding = Arc::clone(&hold);
    let api = FakeApi::start(move |request| {
        let Some(n) = task_of(request) else { return Reply::text("ok") };
        let held = Instant::now();
        while holding.load(Ordering::SeqCst) && held.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
        }
        Reply::text(format!("ANSWER-{n}"))
    });
    let id = add(&sandbox, &api, &["--tier", "weak", "TASK-9: list the files in src"]);
    let mut runner = queue(&sandbox, &api, &["run", "--lease-seconds", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let waited = Instant::now();
    while !api.requests().iter().any(|r| task_of(r).is_some()) {
        assert!(waited.elapsed() < Duration::from_secs(120), "the task never reached the server");
        std::thread::sleep(Duration::from_millis(100));
    }
    runner.kill().unwrap();
    runner.wait().unwrap();
    hold.store(false, Ordering::SeqCst);
    let task = json(&ran(&mut queue(&sandbox, &api, &["show", &id.to_string(), "--json"])).success());
    assert_eq!(task["status"], "running", "held by the dead runner until its lease ends");
    // Within the lease nothing is claimable; after it, the next runner takes the task.
    let early = json(&ran(&mut queue(&sandbox, &api, &["run", "--json"])).success());
    assert_eq!(early["claimed"], 0);
    std::thread::sleep(Duration::from_millis(2200));
    let later = json(&ran(&mut queue(&sandbox, &api, &["run", "--json"])).success());
    assert_eq!((later["claimed"].as_u64(), later["done"].as_u64()), (Some(1), Some(1)));
    let task = json(&ran(&mut queue(&sandbox, &api, &["show", &id.to_string(), "--json"])).success());
    assert_eq!((task["status"].as_str(), task["attempts"].as_u64()), (Some("done"), Some(2)));
}

/// A stand-in CLI that logs each prompt it answers.
fn stub(dir: &Path) -> PathBuf {
    let path = dir.join("claude");
    std::fs::write(
        &path,
        "#!/bin/sh\nfor last; do :; done\necho \"$last\" >> \"$STUB_LOG\"\necho '{\"type\":\"result\",\"is_error\":false,\"result\":\"ok\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn thirty_two_writers_and_four_runners_do_every_task_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = stub(tmp.path());
    let log = tmp.path().join("calls.log");
    let command = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_marshal"));
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", tmp.path().join("home"))
            .env("MARSHAL_STATE_DIR", tmp.path().join("state"))
            .env("MARSHAL_CLAUDE_BIN", &cli)
            .env("STUB_LOG", &log)
            .current_dir(tmp.path())
            .arg("queue")
            .args(args);
        command
    };
    let writers: Vec<std::process::Child> = (0..32)
        .map(|n| {
            command(&["add", "--tier", "weak", &format!("job {n}")]).stdout(Stdio::null()).spawn().unwrap()
        })
        .collect();
    for mut writer in writers {
        assert!(writer.wait().unwrap().success());
    }
    let runners: Vec<std::process::Child> = (0..4)
        .map(|_| command(&["run", "--json"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap())
        .collect();
    let mut claimed = 0;
    for runner in runners {
        let out = runner.wait_with_output().unwrap();
        assert!(out.status.success());
        claimed += serde_json::from_slice::<Value>(&out.stdout).unwrap()["claimed"].as_u64().unwrap();
    }
    assert_eq!(claimed, 32, "the runners claimed each task once between them");
    let mut calls: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    calls.sort();
    let mut expected: Vec<String> = (0..32).map(|n| format!("job {n}")).collect();
    expected.sort();
    assert_eq!(calls, expected, "every task ran exactly once");
    let list: Value = serde_json::from_slice(
        &Ran::of(&mut command(&["list", "--json"]), None, Duration::from_secs(30)).success().0.stdout,
    )
    .unwrap();
    assert!(list.as_array().unwrap().iter().all(|t| t["status"] == "done" && t["attempts"] == 1));
}

// ---------------------------------------------------------------------------
// The MCP server over the same queue.

/// An MCP client over a server's stdio, one JSON-RPC message per line.
struct McpClient {
    server: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    next_id: u64,
}

impl McpClient {
    /// Starts the server and completes the `initialize` handshake.
    fn start(command: &mut Command) -> McpClient {
        let mut server =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let input = server.stdin.take().unwrap();
        let output = std::io::BufReader::new(server.stdout.take().unwrap());
        let mut client = McpClient { server, input, output, next_id: 1 };
        let init = client.request(
            "initialize",
            serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "suite", "version": "1"}}),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "marshal", "{init}");
        client.send(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        client
    }

    fn send(&mut self, message: &Value) {
        use std::io::Write;
        writeln!(self.input, "{message}").unwrap();
        self.input.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        use std::io::BufRead;
        let id = self.next_id;
        self.next_id += 1;
        self.send(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        let reply: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(reply["id"], id, "{reply}");
        reply
    }

    /// A tool's answer: whether it is an error, and its text.
    fn call(&mut self, tool: &str, arguments: Value) -> (bool, String) {
        let reply = self.request("tools/call", serde_json::json!({"name": tool, "arguments": arguments}));
        let result = &reply["result"];
        (result["isError"] == true, result["content"][0]["text"].as_str().unwrap_or_default().to_string())
    }

    /// Closes stdin; the server ends.
    fn close(self) -> std::process::ExitStatus {
        let McpClient { mut server, input, .. } = self;
        drop(input);
        server.wait().unwrap()
    }
}

#[test]
fn an_mcp_round_trip_over_stdio_queues_tasks_that_marshal_queue_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut client = McpClient::start(
        Command::new(crate::support::built_binaries_dir().join("marshal-mcp"))
            .env_clear()
            .env("HOME", tmp.path())
            .env("MARSHAL_STATE_DIR", &state)
            .current_dir(tmp.path()),
    );
    let tools = client.request("tools/list", serde_json::json!({}));
    let mut names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "complete_task",
            "get_pending_tasks",
            "get_queue_status",
            "get_workflow_status",
            "queue_tasks",
            "run_workflow"
        ]
    );
    let (failed, ids) = client.call(
        "queue_tasks",
        serde_json::json!({"tasks": [
            {"prompt": "rename foo to bar in utils.py", "tier": "weak"},
            {"prompt": "plan the billing split", "priority": 2}]}),
    );
    assert!(!failed, "{ids}");
    assert_eq!(serde_json::from_str::<Value>(&ids).unwrap(), serde_json::json!({"ids": [1, 2]}));
    let (failed, said) =
        client.call("queue_tasks", serde_json::json!({"tasks": [{"prompt": "x", "tier": "huge"}]}));
    assert!(failed && said.contains("not weak, base or strong"), "{said}");
    let (failed, said) =
        client.call("complete_task", serde_json::json!({"id": 1, "result": "renamed by hand"}));
    assert!(!failed, "{said}");
    let (_, counts) = client.call("get_queue_status", serde_json::json!({}));
    let counts: Value = serde_json::from_str(&counts).unwrap();
    assert_eq!((counts["pending"].as_u64(), counts["done"].as_u64()), (Some(1), Some(1)));
    assert!(client.close().success(), "the server ends when its stdin closes");

    // The CLI sees the same queue.
    let mut list = Command::new(env!("CARGO_BIN_EXE_marshal"));
    list.env_clear()
        .env("HOME", tmp.path())
        .env("MARSHAL_STATE_DIR", &state)
        .args(["queue", "list", "--json"]);
    let list = json(&Ran::of(&mut list, None, Duration::from_secs(30)).success());
    let rows: Vec<(i64, String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_i64().unwrap(),
                t["status"].as_str().unwrap().into(),
                t["prompt"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (1, "done".into(), "rename foo to bar in utils.py".into()),
            (2, "pending".into(), "plan the billing split".into())
        ]
    );
}

#[test]
fn a_claude_code_session_queues_work_through_the_plugins_mcp_tool() {
    let sandbox = Sandbox::installed();
    let api = FakeApi::start(|request| {
        if request.ends_with_tool_result() {
            return Reply::text("queued them");
        }
        if request.is_subagent() {
            return Reply::text("ok");
        }
        Reply::ToolUse {
            name: "mcp__plugin_marshal_queue__queue_tasks".into(),
            input: serde_json::json!({"tasks": [
                {"prompt": "TASK-1: add type hints to utils.py", "tier": "weak"},
                {"prompt": "TASK-2: write tests for the parser"}]}),
        }
    });
    // MCP tools are listed to the model directly only without tool search (contract, 2.1.329).
    let mut claude = sandbox.command(&claude_bin(), &api);
    claude.env("ENABLE_TOOL_SEARCH", "false").args([
        "-p",
        "queue the two follow-ups for tonight",
        "--output-format",
        "json",
        "--allowedTools",
        "mcp__plugin_marshal_queue",
    ]);
    let answer = json(&ran(&mut claude).success());
    assert_eq!(answer["result"], "queued them");
    let tasks = json(&ran(&mut queue(&sandbox, &api, &["list", "--json"])).success());
    let prompts: Vec<&str> =
        tasks.as_array().unwrap().iter().map(|t| t["prompt"].as_str().unwrap()).collect();
    assert_eq!(
        prompts,
        ["TASK-1: add type hints to utils.py", "TASK-2: write tests for the parser"],
        "{tasks:#}"
    );
    assert_eq!(tasks[0]["tier"], "weak");
    // The tool result the model got back carries the ids.
    let results: Vec<String> = api.requests().iter().flat_map(|r| r.tool_result_texts()).collect();
    assert!(results.iter().any(|t| t.contains("\"ids\":[1,2]")), "{results:#?}");
}

#[test]
fn an_mcp_client_starts_a_workflow_in_the_background_and_follows_it_to_its_end() {
    let sandbox = Sandbox::installed();
    let api = FakeApi::start(|request| {
        let text = request.message_text();
        let Some(at) = text.find("STEP-") else { return Reply::text("ok") };
        let step: String = text[at + 5..].chars().take_while(char::is_ascii_alphanumeric).collect();
        if step == "scan" {
            // Long enough that the run is seen running before it ends.
            std::thread::sleep(Duration::from_millis(1500));
        }
        Reply::text(format!("OUT-{step}"))
    });
    std::fs::write(
        sandbox.project.join("review.yaml"),
        "name: review\nsteps:\n  - id: scan\n    prompt: \"STEP-scan: list the source files\"\n    tier: weak\n\
         \x20 - id: judge\n    prompt: \"STEP-judge: review {steps.scan.output}\"\n    tier: strong\n    depends_on: [scan]\n",
    )
    .unwrap();
    std::fs::write(
        sandbox.project.join("broken.yaml"),
        "name: broken\nsteps:\n  - id: a\n    prompt: \"{vars.nope}\"\n",
    )
    .unwrap();
    let mut server = sandbox.command(&crate::support::built_binaries_dir().join("marshal-mcp"), &api);
    server.env("MARSHAL_CLAUDE_BIN", claude_bin());
    let mut client = McpClient::start(&mut server);

    let (failed, said) = client.call("run_workflow", serde_json::json!({"file": "broken.yaml"}));
    assert!(failed && said.contains("no such variable"), "a file with problems is not started: {said}");
    let (failed, said) = client.call("run_workflow", serde_json::json!({"file": "review.yaml"}));
    assert!(!failed, "{said}");
    let started: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(started["status"], "running", "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    // The tool returned while the run goes on: its first step is still being answered.
    let (_, now) = client.call("get_workflow_status", serde_json::json!({"run_id": run_id}));
    assert_eq!(serde_json::from_str::<Value>(&now).unwrap()["status"], "running", "{now}");

    let deadline = Instant::now() + Duration::from_secs(180);
    let finished = loop {
        let (failed, said) = client.call("get_workflow_status", serde_json::json!({"run_id": run_id}));
        assert!(!failed, "{said}");
        let status: Value = serde_json::from_str(&said).unwrap();
        if status["status"] != "running" {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not end: {status:#}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(client.close().success());
    assert_eq!(finished["status"], "succeeded", "{finished:#}");
    let steps: BTreeMap<&str, &Value> =
        finished["steps"].as_array().unwrap().iter().map(|s| (s["id"].as_str().unwrap(), s)).collect();
    assert_eq!(
        (steps["scan"]["model"].as_str(), steps["judge"]["model"].as_str()),
        (Some("haiku"), Some("opus"))
    );
    let answer = std::fs::read_to_string(steps["judge"]["output_file"].as_str().unwrap()).unwrap();
    assert_eq!(answer, "OUT-judge");
    let judged = api.requests().into_iter().find(|r| r.message_text().contains("STEP-judge")).unwrap();
    assert!(judged.message_text().contains("review OUT-scan"), "the second step got the first one's answer");
    assert_eq!(judged.model(), "claude-opus-5-5");
    // The same run, as the CLI shows it; and the background runner's log.
    let mut status = sandbox.command(Path::new(env!("CARGO_BIN_EXE_marshal")), &api);
    let shown = json(&ran(status.args(["workflow", "status", &run_id, "--json"])).success());
    assert_eq!(shown["status"], "succeeded");
    let log = std::fs::read_to_string(started["log"].as_str().unwrap()).unwrap();
    assert!(log.contains(&format!("run {run_id} (workflow review): succeeded")), "{log}");
}
