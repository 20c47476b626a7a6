//! Never hijack the host: each defect found by trying marshal as a new user and as an attacker
//! (issue #10), as a test against the real binaries. Every test here failed on marshal 0.1.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::claude::{claude_bin, Sandbox};
use crate::support::fake_api::{FakeApi, Reply};
use crate::support::process::{run_with_input, run_with_limit};
use crate::support::{built_binaries_dir, of_kind, read_jsonl};

const CHORE: &str = "rename userId to accountId in auth.ts";

/// A state directory, a home and a project folder of one test's own.
struct Dirs {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    home: PathBuf,
    project: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let (state, home, project) = (root.join("state"), root.join("home"), root.join("project"));
        for dir in [&home, &project] {
            std::fs::create_dir_all(dir).unwrap();
        }
        Dirs { _tmp: tmp, root, state, home, project }
    }

    /// A command for one of marshal's binaries in a clean environment pointing at these folders.
    fn command(&self, bin: &str) -> Command {
        let mut command = Command::new(built_binaries_dir().join(bin));
        command
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("MARSHAL_STATE_DIR", &self.state)
            .env("TMPDIR", &self.root)
            .current_dir(&self.project);
        command
    }

    /// Runs a hook with `event` on stdin; it must exit 0 within 5 s whatever happens.
    fn hook(&self, bin: &str, event: &Value, env: &[(&str, &str)]) -> Output {
        let mut command = self.command(bin);
        command.envs(env.iter().copied());
        let out = run_with_input(&mut command, Some(event.to_string().as_bytes()), Duration::from_secs(5));
        assert!(
            out.status.success(),
            "{bin} exited {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn prompt(&self, prompt_id: &str, prompt: &str, env: &[(&str, &str)]) -> Output {
        let event = json!({"hook_event_name":"UserPromptSubmit","session_id":"s1","prompt_id":prompt_id,
            "cwd":self.project,"prompt":prompt});
        self.hook("marshal-prompt", &event, env)
    }

    fn call(&self, prompt_id: &str, subagent_type: &str) -> Output {
        let event = json!({"hook_event_name":"PreToolUse","session_id":"s1","prompt_id":prompt_id,
            "cwd":self.project,"tool_name":"Agent",
            "tool_input":{"subagent_type":subagent_type,"prompt":"p","description":"d"}});
        self.hook("marshal-pretool", &event, &[])
    }

    fn stop_event(prompt_id: &str) -> Value {
        json!({"hook_event_name":"Stop","session_id":"s1","prompt_id":prompt_id,"stop_hook_active":false})
    }

    fn stop(&self, prompt_id: &str) -> Output {
        self.hook("marshal-stop", &Dirs::stop_event(prompt_id), &[])
    }

    fn session_end(&self) -> Output {
        self.hook(
            "marshal-stop",
            &json!({"hook_event_name":"SessionEnd","session_id":"s1","reason":"other"}),
            &[],
        )
    }

    fn ledger(&self) -> Vec<Value> {
        read_jsonl(&self.state.join("ledger.jsonl"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("marshal.log")).unwrap_or_default()
    }

    /// The user's own configuration file.
    fn user_config(&self, value: &Value) {
        write(&self.home.join(".claude/marshal.json"), &value.to_string());
    }

    /// A stand-in Claude Code CLI for orchestration.
    fn stub_claude(&self, body: &str) -> PathBuf {
        let path = self.root.join("claude-stub");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn directive(out: &Output) -> String {
    stdout_json(out)["hookSpecificOutput"]["additionalContext"].as_str().unwrap_or_default().to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

/// Whether a process is still alive (a zombie counts as gone).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

fn wait_for_file(path: &Path, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The default mode advises; it never takes over a session.

#[test]
fn claude_p_with_the_plugin_prints_exactly_what_it_prints_without_it() {
    let api = FakeApi::start(|_| Reply::text("renamed userId to accountId in auth.ts"));
    let without = Sandbox::bare().claude_p(&api, CHORE, &[]).result();
    let sandbox = Sandbox::installed();
    let with = sandbox.claude_p(&api, CHORE, &[]).result();

    for field in ["result", "is_error", "num_turns", "subtype"] {
        assert_eq!(with[field], without[field], "{field}: with {with:#} without {without:#}");
    }
    assert!(with["num_turns"].as_u64().unwrap() >= 1, "the main model answered: {with:#}");
    // Both sessions called the main model, and only it.
    let models: Vec<String> = api.requests().iter().map(|r| r.model().to_string()).collect();
    assert!(models.len() >= 2 && models.iter().all(|m| m == "claude-opus-5-5"), "{models:?}");
    // marshal advised and recorded why it only advised.
    let ledger = sandbox.ledger();
    let route = &of_kind(&ledger, "route")[0];
    assert_eq!(route["mode"], "directive");
    let reason = route["mode_reason"].as_str().unwrap();
    assert!(reason.contains("unattended") && reason.contains("CLAUDE_CODE_SESSION_ATTENDED=0"), "{reason}");
}

#[test]
fn a_hand_off_answers_without_the_original_prompt_trailing_it() {
    let sandbox = Sandbox::installed();
    let api = FakeApi::start(|_| Reply::text("child: renamed it"));
    let claude = claude_bin();
    let env = [("MARSHAL_MODE", "orchestrate"), ("MARSHAL_CLAUDE_BIN", claude.to_str().unwrap())];
    let result = sandbox.claude_p(&api, CHORE, &env).result();
    let printed = result["result"].as_str().unwrap();
    assert!(printed.contains("child: renamed it"), "{printed}");
    assert!(!printed.contains("Original prompt"), "{printed}");
}

#[test]
fn sdk_and_ide_sessions_are_advised_not_orchestrated() {
    let dirs = Dirs::new();
    let stub = dirs.stub_claude("echo '{\"type\":\"result\",\"is_error\":false,\"result\":\"stub\"}'");
    let stub = stub.to_str().unwrap();
    for entry in ["sdk-cli", "sdk-ts", "sdk-py", "claude-vscode", "claude-desktop", "mcp", "remote_mobile"] {
        let out =
            dirs.prompt(entry, CHORE, &[("CLAUDE_CODE_ENTRYPOINT", entry), ("MARSHAL_CLAUDE_BIN", stub)]);
        assert!(
            directive(&out).contains("marshal:haiku-general"),
            "{entry}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // Asking for it still works: the environment, and the user's own modes table.
    let out = dirs.prompt("batch", CHORE, &[("MARSHAL_BATCH", "1"), ("MARSHAL_CLAUDE_BIN", stub)]);
    assert_eq!(stdout_json(&out)["decision"], "block", "MARSHAL_BATCH=1 orchestrates");
    dirs.user_config(&json!({"modes": {"unattended": "orchestrate"}}));
    let env = [("CLAUDE_CODE_ENTRYPOINT", "sdk-ts"), ("MARSHAL_CLAUDE_BIN", stub)];
    assert_eq!(stdout_json(&dirs.prompt("modes", CHORE, &env))["decision"], "block");
}

// ---------------------------------------------------------------------------------------------
// 2. A cloned repository's .claude/ folder is untrusted input.

#[test]
fn a_cloned_repository_cannot_hang_a_hook() {
    let dirs = Dirs::new();
    let config = dirs.project.join(".claude/marshal.json");
    let agent = dirs.project.join(".claude/agents/evil.md");
    std::fs::create_dir_all(agent.parent().unwrap()).unwrap();

    // A config that is an endless device, then a FIFO nobody writes, then an agent file that is
    // an endless device: each hook still answers at once (run_with_input's 5 s limit).
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    assert!(directive(&dirs.prompt("p1", CHORE, &[])).contains("marshal:haiku-general"));
    std::fs::remove_file(&config).unwrap();
    assert!(Command::new("mkfifo").arg(&config).status().unwrap().success());
    assert!(directive(&dirs.prompt("p2", CHORE, &[])).contains("marshal:haiku-general"));
    dirs.stop("p2");
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &agent).unwrap();
    assert!(directive(&dirs.prompt("p3", CHORE, &[])).contains("marshal:haiku-general"));
    std::fs::remove_file(&agent).unwrap();
    // A config over the size cap is skipped, not parsed.
    write(&config, &format!("{{\"models\":{{\"weak\":\"sonnet\"}},\"//\":\"{}\"}}", "x".repeat(2 << 20)));
    let out = dirs.prompt("p4", CHORE, &[]);
    assert!(directive(&out).contains("haiku model"), "{}", directive(&out));

    let log = dirs.log();
    for skipped in ["marshal.json", "evil.md"] {
        assert!(log.lines().any(|l| l.contains(skipped) && l.contains("skipped")), "{skipped}: {log}");
    }
}

#[test]
fn a_cloned_repository_cannot_change_privacy_spending_or_modes() {
    let dirs = Dirs::new();
    write(
        &dirs.project.join(".claude/marshal.json"),
        &json!({"store_prompts": true, "retention_days": 3650, "modes": {"interactive": "orchestrate"},
            "orchestrate": {"timeout_seconds": 86400, "max_attempts": 10},
            "models": {"weak": "sonnet"}})
        .to_string(),
    );
    let out = dirs.prompt("p1", "rename foo to bar in utils.py", &[("CLAUDE_CODE_ENTRYPOINT", "cli")]);
    // Routing preferences from the project apply; the rest does not.
    let text = directive(&out);
    assert!(text.contains("sonnet model"), "{text}");
    let ledger = dirs.ledger();
    let route = &of_kind(&ledger, "route")[0];
    assert_eq!(route["mode"], "directive");
    assert!(route.get("prompt").is_none(), "the prompt was stored: {route}");
    // One warning per key, naming it, however many hooks run.
    dirs.prompt("p2", "rename a to b", &[("CLAUDE_CODE_ENTRYPOINT", "cli")]);
    let log = dirs.log();
    for key in ["store_prompts", "retention_days", "modes", "orchestrate"] {
        let lines = log.lines().filter(|l| l.contains(&format!("'{key}'")) && l.contains("project")).count();
        assert_eq!(lines, 1, "{key}: {log}");
    }
    // doctor lists them.
    let mut doctor = dirs.command("marshal");
    doctor.arg("doctor").arg("--plugin-dir").arg(&dirs.root);
    let out = run_with_limit(&mut doctor, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("store_prompts") && text.contains("ignored"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// 3. Orchestration never outlives its hook, and nothing it starts outlives an attempt.

#[test]
fn an_orchestrating_hook_killed_by_claude_code_takes_its_child_with_it() {
    for signal in ["TERM", "KILL"] {
        let dirs = Dirs::new();
        let pid_file = dirs.root.join("child.pid");
        let stub = dirs.stub_claude(&format!("echo $$ > {}\nsleep 30", pid_file.display()));
        let event = json!({"hook_event_name":"UserPromptSubmit","session_id":"s1","prompt_id":"p1",
            "cwd":dirs.project,"prompt":CHORE});
        let mut hook = dirs
            .command("marshal-prompt")
            .env("MARSHAL_MODE", "orchestrate")
            .env("MARSHAL_CLAUDE_BIN", &stub)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        hook.stdin.take().unwrap().write_all(event.to_string().as_bytes()).unwrap();
        let child: i32 = wait_for_file(&pid_file, Duration::from_secs(10)).trim().parse().unwrap();
        assert!(alive(child));
        Command::new("kill").arg(format!("-{signal}")).arg(hook.id().to_string()).status().unwrap();
        let _ = hook.wait();
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive(child) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let survived = alive(child);
        if survived {
            let _ = Command::new("kill").arg("-KILL").arg(child.to_string()).status();
        }
        assert!(!survived, "SIG{signal}: the claude -p child outlived the hook");
    }
}

#[test]
fn no_descendant_outlives_an_attempt_even_one_that_calls_setsid() {
    let dirs = Dirs::new();
    let (plain, detached) = (dirs.root.join("plain"), dirs.root.join("detached"));
    let stub = dirs.stub_claude(&format!(
        "(sleep 1; touch {}) &\nsetsid sh -c 'sleep 1; touch {}' &\necho '{{\"type\":\"result\",\"is_error\":false,\"result\":\"done\"}}'",
        plain.display(),
        detached.display()
    ));
    let mut command = dirs.command("marshal-orchestrate");
    command.env("MARSHAL_CLAUDE_BIN", &stub).arg(CHORE);
    let out = run_with_limit(&mut command, Duration::from_secs(30));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n", "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!plain.exists(), "a grandchild outlived a successful attempt");
    assert!(!detached.exists(), "a grandchild that called setsid outlived the attempt");
}

#[test]
fn the_whole_run_has_a_deadline_whatever_the_attempts_add_up_to() {
    let dirs = Dirs::new();
    dirs.user_config(&json!({"orchestrate": {"timeout_seconds": 60, "max_attempts": 10, "retries": 5,
        "deadline_seconds": 2}}));
    let stub = dirs.stub_claude("sleep 60");
    let mut command = dirs.command("marshal-orchestrate");
    command.env("MARSHAL_CLAUDE_BIN", &stub).arg(CHORE);
    let started = Instant::now();
    let out = run_with_limit(&mut command, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("deadline"), "{stderr}");
}

#[test]
fn a_flood_of_child_output_is_capped_and_the_result_still_read() {
    let dirs = Dirs::new();
    let stub = dirs.stub_claude(
        "head -c 20971520 /dev/zero | tr '\\0' x\necho\necho '{\"type\":\"result\",\"is_error\":false,\"result\":\"after the flood\"}'",
    );
    let mut command = dirs.command("marshal-orchestrate");
    command.env("MARSHAL_CLAUDE_BIN", &stub).arg(CHORE);
    let out = run_with_limit(&mut command, Duration::from_secs(60));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "after the flood\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<PathBuf> =
        std::fs::read_dir(dirs.state.join("runs")).unwrap().map(|e| e.unwrap().path()).collect();
    let stored = runs.iter().find(|p| p.extension().is_some_and(|e| e == "out")).unwrap();
    let size = std::fs::metadata(stored).unwrap().len();
    assert!(size <= 16 * 1024 * 1024 + 4096, "{} holds {size} bytes", stored.display());
}

// ---------------------------------------------------------------------------------------------
// 4. The state directory trusts nothing that is in it.

#[test]
fn a_state_dir_others_can_write_or_do_not_own_is_refused() {
    for (setup, what) in [(0, "writable by others"), (1, "owned by another user")] {
        let dirs = Dirs::new();
        let victim = dirs.root.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::fs::create_dir_all(&dirs.state).unwrap();
        std::os::unix::fs::symlink(&victim, dirs.state.join("history.json")).unwrap();
        if setup == 0 {
            std::fs::set_permissions(&dirs.state, std::fs::Permissions::from_mode(0o777)).unwrap();
        } else {
            assert!(Command::new("chown").arg("65534").arg(&dirs.state).status().unwrap().success());
        }
        let out = dirs.prompt("p1", CHORE, &[]);
        assert!(directive(&out).contains("marshal:haiku-general"), "{what}: still routes");
        dirs.stop("p1");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "{what}");
        assert!(!dirs.state.join("ledger.jsonl").exists(), "{what}: recorded in an untrusted directory");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not recording"), "{what}: {stderr}");
        // marshal-orchestrate refuses it too.
        let stub = dirs.stub_claude("echo '{\"type\":\"result\",\"is_error\":false,\"result\":\"ok\"}'");
        let mut command = dirs.command("marshal-orchestrate");
        command.env("MARSHAL_CLAUDE_BIN", &stub).arg(CHORE);
        let out = run_with_limit(&mut command, Duration::from_secs(30));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n", "{what}");
        assert!(!dirs.state.join("ledger.jsonl").exists() && !dirs.state.join("runs").exists(), "{what}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "{what}");
    }
}

#[test]
fn a_link_planted_at_the_state_path_or_its_folders_is_refused() {
    let dirs = Dirs::new();
    // Someone else's link to a directory of ours, and runs/ planted as a link in a good one.
    let ours = dirs.root.join("ours");
    std::fs::create_dir(&ours).unwrap();
    std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o700)).unwrap();
    let theirs = dirs.root.join("theirs");
    std::os::unix::fs::symlink(&ours, &theirs).unwrap();
    std::os::unix::fs::lchown(&theirs, Some(65534), None).unwrap();
    let out = run_with_input(
        dirs.command("marshal-prompt").env("MARSHAL_STATE_DIR", &theirs),
        Some(
            json!({"hook_event_name":"UserPromptSubmit","session_id":"s1","prompt_id":"p1","prompt":CHORE})
                .to_string()
                .as_bytes(),
        ),
        Duration::from_secs(5),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("link owned by user 65534"));
    assert_eq!(std::fs::read_dir(&ours).unwrap().count(), 0, "nothing written through their link");

    let elsewhere = dirs.root.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::create_dir_all(&dirs.state).unwrap();
    std::fs::set_permissions(&dirs.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dirs.state.join("runs")).unwrap();
    let out = dirs.prompt("p1", CHORE, &[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("runs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn a_fifo_planted_at_a_state_file_never_hangs_a_hook() {
    let dirs = Dirs::new();
    std::fs::create_dir_all(&dirs.state).unwrap();
    std::fs::set_permissions(&dirs.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(Command::new("mkfifo").arg(dirs.state.join("logged-problems")).status().unwrap().success());
    dirs.user_config(&json!({"typo": 1}));
    // run_with_input's 5 s limit is the assertion: a hook with a problem to log returns.
    assert!(directive(&dirs.prompt("p1", CHORE, &[])).contains("marshal:haiku-general"));
}

#[test]
fn an_orchestration_that_cannot_even_start_advises_instead() {
    let dirs = Dirs::new();
    let stub = dirs.stub_claude("echo '{\"type\":\"result\",\"is_error\":false,\"result\":\"ok\"}'");
    let event = json!({"hook_event_name":"UserPromptSubmit","session_id":"s1","prompt_id":"p1",
        "cwd":"/nonexistent/project","prompt":CHORE});
    let out = dirs.hook(
        "marshal-prompt",
        &event,
        &[("MARSHAL_MODE", "orchestrate"), ("MARSHAL_CLAUDE_BIN", stub.to_str().unwrap())],
    );
    assert!(directive(&out).contains("marshal:haiku-general"), "{}", String::from_utf8_lossy(&out.stdout));
    let ledger = dirs.ledger();
    let reason = of_kind(&ledger, "route")[0]["mode_reason"].as_str().unwrap().to_string();
    assert!(reason.contains("could not be started in /nonexistent/project"), "{reason}");
}

#[test]
fn symlinks_planted_in_the_state_dir_are_never_followed() {
    let dirs = Dirs::new();
    std::fs::create_dir_all(dirs.state.join("sessions")).unwrap();
    std::fs::set_permissions(&dirs.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let names = [
        "history.json",
        "sessions/s1.jsonl",
        "last-clean-up",
        "ledger.jsonl",
        "marshal.log",
        "agents-cache.json",
    ];
    let victims: Vec<PathBuf> = (0..names.len()).map(|i| dirs.root.join(format!("victim-{i}"))).collect();
    for (name, victim) in names.iter().zip(&victims) {
        std::fs::write(victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(victim, dirs.state.join(name)).unwrap();
    }
    std::fs::create_dir_all(dirs.project.join(".claude/agents")).unwrap();
    write(&dirs.project.join(".claude/agents/reviewer.md"), "---\nname: reviewer\n---\n");
    dirs.prompt("p1", CHORE, &[]);
    dirs.call("p1", "marshal:haiku-general");
    dirs.stop("p1");
    dirs.session_end();
    for (name, victim) in names.iter().zip(&victims) {
        assert_eq!(std::fs::read_to_string(victim).unwrap(), "precious\n", "written through {name}");
    }
}

#[test]
fn every_file_marshal_creates_is_private() {
    let dirs = Dirs::new();
    let stub =
        dirs.stub_claude("echo oops >&2; echo '{\"type\":\"result\",\"is_error\":false,\"result\":\"ok\"}'");
    let out = dirs.prompt(
        "p1",
        CHORE,
        &[("MARSHAL_MODE", "orchestrate"), ("MARSHAL_CLAUDE_BIN", stub.to_str().unwrap())],
    );
    assert_eq!(stdout_json(&out)["decision"], "block");
    dirs.session_end();
    let mut files = Vec::new();
    let mut stack = vec![dirs.state.clone()];
    while let Some(dir) = stack.pop() {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path)
            } else {
                files.push(path)
            }
        }
    }
    assert!(files.iter().any(|f| f.ends_with("last-clean-up")), "{files:?}");
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "err")), "{files:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    // With no state directory at all, marshal-orchestrate keeps its outputs private too.
    let mut command = dirs.command("marshal-orchestrate");
    command.env_remove("MARSHAL_STATE_DIR").env_remove("HOME").env("MARSHAL_CLAUDE_BIN", &stub).arg(CHORE);
    let out = run_with_limit(&mut command, Duration::from_secs(30));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    for entry in std::fs::read_dir(&dirs.root).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("marshal") {
            assert_eq!(mode(&path), 0o700, "{}", path.display());
            for inner in std::fs::read_dir(&path).unwrap() {
                assert_eq!(mode(&inner.unwrap().path()), 0o600);
            }
        } else {
            assert!(["state", "home", "project", "claude-stub"].contains(&name.as_str()), "{name} in TMPDIR");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. A ledger is untrusted input to the report.

fn outcome_line(ts: &str, recommended: &str, actual: &str) -> String {
    // In the order marshal writes its records (`v` first), so the fast reader takes it.
    let quoted = |s: &str| Value::from(s).to_string();
    format!(
        r#"{{"v":1,"ts":{},"session":"s","prompt_id":"p","kind":"outcome","mode":"directive","project":"/w","recommended":{},"tier":"weak","model":"haiku","outcome":"deviated","actual":{},"called":[],"closed_by":"stop"}}"#,
        quoted(ts),
        quoted(recommended),
        quoted(actual)
    )
}

fn report(dirs: &Dirs, ledger: &str, args: &[&str]) -> Output {
    let path = dirs.root.join("merged.jsonl");
    std::fs::write(&path, ledger).unwrap();
    let mut command = dirs.command("marshal");
    command.arg("report").arg("--ledger").arg(&path).args(args);
    run_with_limit(&mut command, Duration::from_secs(60))
}

#[test]
fn ledger_strings_cannot_drive_the_terminal_the_page_or_the_spreadsheet() {
    let dirs = Dirs::new();
    let forged = "\u{1b}[2J\u{1b}[H\u{1b}]0;x\u{7}Compliance: 100.0%";
    let ledger = [
        outcome_line("2026-11-01T10:00:00Z", "haiku-general", forged),
        outcome_line("2026-11-0\u{e9}<img src=x onerror=alert(1)>", "=cmd|'/c calc'!A1", "@SUM(1)"),
    ]
    .join("\n")
        + "\n";
    let text = report(&dirs, &ledger, &["--color", "never"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(!stdout.contains(['\u{1b}', '\u{7}']), "{stdout:?}");
    assert!(!stdout.lines().any(|l| l.starts_with("Compliance: 100.0%")), "a forged line: {stdout}");

    let csv = String::from_utf8_lossy(&report(&dirs, &ledger, &["--csv"]).stdout).to_string();
    for cell in csv.lines().flat_map(|l| l.split(',')) {
        let cell = cell.trim_start_matches('"');
        assert!(!cell.starts_with(['=', '+', '-', '@']), "{cell} in {csv}");
    }

    let page = dirs.root.join("report.html");
    report(&dirs, &ledger, &["--html", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<img"), "live markup in the page");
}

#[test]
fn a_report_over_many_distinct_agents_stays_linear() {
    let dirs = Dirs::new();
    let ledger: String = (0..2000)
        .map(|i| outcome_line("2026-11-01T10:00:00Z", &format!("rec-{i}"), &format!("act-{i}")) + "\n")
        .collect();
    let out = report(&dirs, &ledger, &["--color", "never"]);
    assert!(out.status.success());
    // 2,000 rows per table is linear; a dense 2,000 x 2,000 matrix is not.
    assert!(out.stdout.len() < 2 << 20, "{} bytes of output", out.stdout.len());
}

#[test]
fn a_ledger_line_with_ordinary_json_spacing_is_a_record() {
    let dirs = Dirs::new();
    let spaced = serde_json::to_string_pretty(
        &serde_json::from_str::<Value>(&outcome_line(
            "2026-11-01T10:00:00Z",
            "haiku-general",
            "general-purpose",
        ))
        .unwrap(),
    )
    .unwrap()
    .replace('\n', " ");
    let out = report(&dirs, &format!("{spaced}\n"), &["--json"]);
    let json = stdout_json(&out);
    assert_eq!(
        (json["deviated"].as_u64(), json["skipped"]["corrupt"].as_u64()),
        (Some(1), Some(0)),
        "{json:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Exactly one outcome per turn.

#[test]
fn a_stop_killed_at_any_moment_closes_its_turn_exactly_once() {
    let dirs = Dirs::new();
    for i in 0..150u64 {
        let id = format!("p{i}");
        dirs.prompt(&id, CHORE, &[]);
        dirs.call(&id, "marshal:haiku-general");
        let mut stop = dirs
            .command("marshal-stop")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        let _ = stop.stdin.take().unwrap().write_all(Dirs::stop_event(&id).to_string().as_bytes());
        std::thread::sleep(Duration::from_micros((i * 37) % 1500));
        let _ = stop.kill();
        let _ = stop.wait();
        dirs.stop(&id);
    }
    dirs.session_end();
    let ledger = dirs.ledger();
    let mut closed: Vec<&str> =
        of_kind(&ledger, "outcome").iter().map(|o| o["prompt_id"].as_str().unwrap()).collect();
    closed.sort_unstable();
    let total = closed.len();
    closed.dedup();
    assert_eq!((closed.len(), total), (150, 150), "every turn closed exactly once");
}

#[test]
fn huge_field_values_never_cost_a_turn_its_outcome() {
    let dirs = Dirs::new();
    dirs.prompt("p1", CHORE, &[]);
    let huge = "x".repeat(600 * 1024);
    dirs.call("p1", &huge);
    dirs.call("p1", &huge);
    dirs.stop("p1");
    let ledger = dirs.ledger();
    let outcomes = of_kind(&ledger, "outcome");
    assert_eq!(outcomes.len(), 1, "{}", dirs.log());
    assert_eq!(outcomes[0]["outcome"], "deviated");
    assert!(std::fs::metadata(dirs.state.join("ledger.jsonl")).unwrap().len() < 64 * 1024);
}

// ---------------------------------------------------------------------------------------------
// 7. Smaller things.

#[test]
fn one_bad_value_drops_only_that_key() {
    let dirs = Dirs::new();
    dirs.user_config(&json!({"models": {"weak": "sonnet"}, "thresholds": {"strong": 11}}));
    let out = dirs.prompt("p1", "rename foo to bar in utils.py", &[]);
    assert!(directive(&out).contains("sonnet model"), "{}", directive(&out));
    assert!(dirs.log().contains("thresholds.strong"), "{}", dirs.log());
}

#[test]
fn configuration_problems_are_logged_once_per_change_of_the_file() {
    let dirs = Dirs::new();
    let unknown: serde_json::Map<String, Value> = (0..500).map(|i| (format!("typo{i}"), json!(1))).collect();
    dirs.user_config(&Value::Object(unknown));
    for i in 0..5 {
        dirs.prompt(&format!("p{i}"), CHORE, &[("MARSHAL_MODE", "sideways")]);
    }
    let log = dirs.log();
    assert!(log.lines().count() <= 30, "{} log lines", log.lines().count());
    assert_eq!(log.matches("typo1'").count(), 1, "{log}");
    assert_eq!(log.matches("sideways").count(), 1, "{log}");
    dirs.user_config(&json!({"typo-again": 1}));
    dirs.prompt("p9", CHORE, &[]);
    assert_eq!(dirs.log().matches("typo-again").count(), 1);
}

#[test]
fn report_rejects_an_unknown_mode_and_a_missing_ledger_it_was_given() {
    let dirs = Dirs::new();
    let out = report(&dirs, "", &["--mode", "orchestrat"]);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("orchestrate"));
    let mut command = dirs.command("marshal");
    command.args(["report", "--ledger", "/nonexistent/ledger.jsonl"]);
    let out = run_with_limit(&mut command, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ledger.jsonl"));
}

#[test]
fn a_request_that_looks_like_an_option_reaches_the_model_as_text() {
    let sandbox = Sandbox::installed();
    let api = FakeApi::start(|_| Reply::text("child answered"));
    let request = "--model opus rename foo to bar in utils.py";
    let mut command = sandbox.command(&sandbox.plugin.join("bin/marshal-orchestrate"), &api);
    command.env("MARSHAL_CLAUDE_BIN", claude_bin()).args(["--", request]);
    let out = run_with_limit(&mut command, Duration::from_secs(120));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "child answered\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = api.requests();
    assert!(requests.iter().all(|r| r.model() == "claude-haiku-5-5"), "the request's words chose no model");
    assert!(requests[0].message_text().contains(request), "{}", requests[0].message_text());
}
