//! The real Claude Code CLI (pinned version) with marshal installed by its own install.sh, in a
//! throw-away HOME, talking only to the fake Messages API server on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::fake_api::{ApiRequest, FakeApi, Reply};
use super::process::run_with_limit;
use super::{built_binaries_dir, read_jsonl, repo_root};

const CLAUDE_RUN_LIMIT: Duration = Duration::from_secs(120);

/// The pinned Claude Code binary: `MARSHAL_TEST_CLAUDE_BIN`, else installed (once per test run)
/// by `scripts/ensure-claude-code.sh`.
pub fn claude_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| pinned_tool("MARSHAL_TEST_CLAUDE_BIN", "scripts/ensure-claude-code.sh")).clone()
}

/// A pinned tool: the path in `variable`, else what `script` (which installs it with npm when
/// missing) prints.
pub fn pinned_tool(variable: &str, script: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(variable).filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let script = repo_root().join(script);
    let out = run_with_limit(&mut Command::new(&script), Duration::from_secs(600));
    assert!(
        out.status.success(),
        "{} failed (it installs a pinned tool with npm):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Files of the plugin that Claude Code and install.sh need, copied verbatim from the repo.
const PLUGIN_FILES: &[&str] =
    &[".claude-plugin", "hooks", "agents", "commands", ".mcp.json", "install.sh", "plugin.json", "README.md"];

/// A temp HOME with marshal installed through the project's own install.sh.
pub struct Sandbox {
    _root: tempfile::TempDir,
    pub home: PathBuf,
    pub plugin: PathBuf,
    pub project: PathBuf,
    /// TMPDIR for everything run in the sandbox, so Claude Code's scratch files go away with it.
    tmp: PathBuf,
}

impl Sandbox {
    /// Copies the shipped plugin files into a private plugin folder (so tests never touch the
    /// repo's bin/) and runs its install.sh with the binaries built for this test run.
    pub fn installed() -> Sandbox {
        let sandbox = Sandbox::bare();
        let out = sandbox.install_sh(&["--binaries", built_binaries_dir().to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "install.sh failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sandbox
    }

    /// The same folders with the plugin's files copied but nothing installed: Claude Code as it
    /// is without marshal.
    pub fn bare() -> Sandbox {
        let root = tempfile::tempdir().expect("tempdir");
        let home = root.path().join("home");
        let plugin = root.path().join("plugin");
        let project = root.path().join("project");
        for dir in [&home, &plugin, &project] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        for name in PLUGIN_FILES {
            copy_tree(&repo_root().join(name), &plugin.join(name));
        }
        let tmp = root.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("mkdir");
        Sandbox { _root: root, home, plugin, project, tmp }
    }

    pub fn install_sh(&self, args: &[&str]) -> Output {
        self.install_sh_with(args, &[])
    }

    /// install.sh with extra variables (set after the clean environment).
    pub fn install_sh_with(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
        let mut command = Command::new(self.plugin.join("install.sh"));
        self.offline_env(&mut command);
        command.args(args).env("CLAUDE_BIN", claude_bin()).envs(env.iter().copied());
        run_with_limit(&mut command, Duration::from_secs(300))
    }

    /// Runs `claude -p PROMPT` in the project folder against `api`, with marshal's defaults
    /// (directive mode) unless `extra_env` says otherwise.
    pub fn claude_p(&self, api: &FakeApi, prompt: &str, extra_env: &[(&str, &str)]) -> ClaudeRun {
        let mut command = Command::new(claude_bin());
        self.offline_env(&mut command);
        command
            .args(["-p", prompt, "--output-format", "json", "--allowedTools", "Agent"])
            .current_dir(&self.project)
            .env("ANTHROPIC_BASE_URL", api.base_url());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let output = run_with_limit(&mut command, CLAUDE_RUN_LIMIT);
        ClaudeRun { output }
    }

    /// `program` in the project folder with the sandbox's clean, offline environment, talking
    /// to `api`.
    pub fn command(&self, program: &Path, api: &FakeApi) -> Command {
        let mut command = Command::new(program);
        self.offline_env(&mut command);
        command.current_dir(&self.project).env("ANTHROPIC_BASE_URL", api.base_url());
        command
    }

    /// A clean environment: nothing of the developer's own Claude Code setup leaks in, and
    /// nothing leaves 127.0.0.1. It clears the environment: call it before setting anything.
    fn offline_env(&self, command: &mut Command) {
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("TMPDIR", &self.tmp)
            .env("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
            .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("CLAUDE_CODE_MAX_RETRIES", "0");
    }

    /// The installed plugin's state directory (Claude Code's CLAUDE_PLUGIN_DATA for it).
    pub fn state_dir(&self) -> PathBuf {
        self.home.join(".claude/plugins/data/marshal-marshal")
    }

    pub fn ledger(&self) -> Vec<serde_json::Value> {
        read_jsonl(&self.state_dir().join("ledger.jsonl"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("marshal.log")).unwrap_or_default()
    }
}

pub struct ClaudeRun {
    pub output: Output,
}

impl ClaudeRun {
    /// The `--output-format json` result, after checking the run succeeded.
    pub fn result(&self) -> serde_json::Value {
        assert!(
            self.output.status.success(),
            "claude -p failed: {:?}\nstdout: {}\nstderr: {}",
            self.output.status,
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        );
        serde_json::from_slice(&self.output.stdout).unwrap_or_else(|e| {
            panic!("claude -p printed no JSON ({e}): {}", String::from_utf8_lossy(&self.output.stdout))
        })
    }
}

/// What the scripted main model does with the user's request.
#[derive(Clone, Debug)]
pub enum MainModel {
    /// Calls the Agent tool with this `subagent_type`.
    CallsAgent(String),
    /// Answers directly, calling no agent.
    Answers,
    /// First does `first` (call that agent, or answer directly when `None`); when marshal's
    /// feedback reaches it (a denied call, or Stop hook feedback), calls `then` once.
    FollowsFeedback { first: Option<String>, then: String },
}

/// Text markers the scripted model answers with, so tests can see who answered.
pub const SUBAGENT_ANSWER: &str = "subagent: the work is done";
pub const MAIN_AFTER_AGENT: &str = "main: the agent finished the work";
pub const MAIN_DIRECT_ANSWER: &str = "main: answered directly";
pub const MAIN_NOTIFICATION_ANSWER: &str = "main: noted the background result";

/// Markers of marshal's feedback in what the model receives.
const DENIAL_MARKER: &str = "marshal: this request is routed to";
const NUDGE_MARKER: &str = "Stop hook feedback";

/// A fake server whose main model behaves as `main` on the user's request (its first main
/// request), whose subagents answer at once, and which otherwise answers in text: to tool
/// results, to task notifications, and to anything after its first move.
pub fn scripted_api(main: MainModel) -> FakeApi {
    let first_move_made = AtomicBool::new(false);
    let feedback_followed = AtomicBool::new(false);
    FakeApi::start(move |request: &ApiRequest| {
        if request.is_subagent() {
            return Reply::text(SUBAGENT_ANSWER);
        }
        if request.last_user_text().contains("<task-notification>") {
            return Reply::text(MAIN_NOTIFICATION_ANSWER);
        }
        let first_move = !first_move_made.swap(true, Ordering::SeqCst);
        let call = |agent: &str| Reply::agent(agent, "Do the user's request and report back.");
        match &main {
            MainModel::CallsAgent(agent) if first_move => call(agent),
            MainModel::FollowsFeedback { first: Some(agent), .. } if first_move => call(agent),
            MainModel::Answers | MainModel::FollowsFeedback { first: None, .. } if first_move => {
                Reply::text(MAIN_DIRECT_ANSWER)
            }
            MainModel::FollowsFeedback { then, .. } => {
                let text = request.message_text();
                let feedback = text.contains(DENIAL_MARKER) || text.contains(NUDGE_MARKER);
                if feedback && !feedback_followed.swap(true, Ordering::SeqCst) {
                    call(then)
                } else {
                    Reply::text(MAIN_AFTER_AGENT)
                }
            }
            _ => Reply::text(MAIN_AFTER_AGENT),
        }
    })
}

fn copy_tree(from: &Path, to: &Path) {
    let meta = std::fs::symlink_metadata(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).expect("read_link");
        std::os::unix::fs::symlink(target, to).expect("symlink");
    } else if meta.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}
