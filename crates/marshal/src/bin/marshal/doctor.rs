//! `marshal doctor`: checks an installation and says how to fix what is wrong.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use marshal_core::context::{self, LoadedConfig};
use marshal_core::paths::{self, StateDirEnv};
use marshal_core::spawn::{self, is_executable, Spawn};
use marshal_core::store::Store;

#[derive(Args)]
pub struct DoctorArgs {
    /// The plugin folder to check (default: the one holding this binary).
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
}

const HOOK_BINARIES: &[&str] = &["marshal-prompt", "marshal-pretool", "marshal-stop", "marshal-orchestrate"];

/// One check's verdict.
struct Finding {
    ok: bool,
    what: String,
    fix: Option<String>,
}

fn pass(what: impl Into<String>) -> Finding {
    Finding { ok: true, what: what.into(), fix: None }
}

fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { ok: false, what: what.into(), fix: Some(fix.into()) }
}

pub fn run(args: DoctorArgs) -> Result<bool> {
    let root = match args.plugin_dir.clone().or_else(context::plugin_root) {
        Some(root) => root,
        None => {
            crate::write_stdout(
                "✘ no plugin folder found next to this binary\n    fix: run marshal doctor --plugin-dir <the folder with .claude-plugin/>\n",
            )?;
            return Ok(false);
        }
    };
    let mut findings = Vec::new();
    findings.extend(check_binaries(&root));
    findings.push(check_manifest(&root));
    findings.extend(check_hooks_json(&root));
    findings.push(check_registration());
    let state_dir = paths::state_dir_for_cli(&StateDirEnv::from_process());
    findings.extend(check_state_dir(state_dir.as_deref()));
    findings.push(check_config());
    findings.push(check_claude_cli());
    findings.extend(check_hooks_run(&root));

    let mut out = format!("marshal doctor: plugin folder {}\n", root.display());
    for finding in &findings {
        let _ = writeln!(out, "{} {}", if finding.ok { "✔" } else { "✘" }, finding.what);
        if let Some(fix) = &finding.fix {
            let _ = writeln!(out, "    fix: {fix}");
        }
    }
    let problems = findings.iter().filter(|f| !f.ok).count();
    let _ = writeln!(
        out,
        "{}",
        if problems == 0 {
            "All checks passed.".to_string()
        } else {
            format!("{problems} problem(s) found.")
        }
    );
    crate::write_stdout(&out)?;
    Ok(problems == 0)
}

fn check_binaries(root: &Path) -> Vec<Finding> {
    HOOK_BINARIES
        .iter()
        .map(|name| {
            let path = root.join("bin").join(name);
            if is_executable(&path) {
                pass(format!("{} is present and executable", path.display()))
            } else if path.exists() {
                fail(
                    format!("{} is not executable", path.display()),
                    format!("chmod 755 {}, or run ./install.sh", path.display()),
                )
            } else {
                fail(
                    format!("{} is missing", path.display()),
                    "run ./install.sh in the plugin folder to build and place it",
                )
            }
        })
        .collect()
}

fn check_manifest(root: &Path) -> Finding {
    let path = root.join(".claude-plugin").join("plugin.json");
    match read_json(&path) {
        Ok(value) if value["name"] == "marshal" => {
            pass(format!("{} names the plugin marshal", path.display()))
        }
        Ok(_) => fail(
            format!("{} does not name the plugin \"marshal\"", path.display()),
            "restore it: git checkout .claude-plugin/plugin.json",
        ),
        Err(err) => {
            fail(format!("{}: {err}", path.display()), "restore it: git checkout .claude-plugin/plugin.json")
        }
    }
}

/// Claude Code silently drops a whole plugin for one malformed hook entry, so every entry is
/// checked: a `type`, a command, and the binary the command names.
fn check_hooks_json(root: &Path) -> Vec<Finding> {
    let path = root.join("hooks").join("hooks.json");
    let fix = "restore it: git checkout hooks/hooks.json (or reinstall)";
    let value = match read_json(&path) {
        Ok(value) => value,
        Err(err) => return vec![fail(format!("{}: {err}", path.display()), fix)],
    };
    let Some(events) = value.get("hooks").and_then(|h| h.as_object()) else {
        return vec![fail(format!("{}: no \"hooks\" object", path.display()), fix)];
    };
    let mut findings = Vec::new();
    let mut entries = 0;
    for (event, groups) in events {
        for (g, group) in groups.as_array().into_iter().flatten().enumerate() {
            for (h, hook) in group.get("hooks").and_then(|h| h.as_array()).into_iter().flatten().enumerate() {
                entries += 1;
                let at = format!("{event}[{g}].hooks[{h}]");
                if hook.get("type").and_then(|t| t.as_str()) != Some("command") {
                    findings.push(fail(
                        format!("{}: {at} has no \"type\": \"command\" (Claude Code then ignores the whole plugin)", path.display()),
                        fix,
                    ));
                    continue;
                }
                let command = hook.get("command").and_then(|c| c.as_str()).unwrap_or("");
                let binary =
                    command.trim_matches('"').replace("${CLAUDE_PLUGIN_ROOT}", &root.display().to_string());
                if !is_executable(Path::new(&binary)) {
                    findings.push(fail(
                        format!("{}: {at} runs {binary}, which is missing", path.display()),
                        "run ./install.sh",
                    ));
                }
            }
        }
    }
    if entries == 0 {
        findings.push(fail(format!("{}: no hook entries", path.display()), fix));
    }
    if findings.is_empty() {
        findings.push(pass(format!(
            "{} is valid: {entries} hook entries, each runs an existing binary",
            path.display()
        )));
    }
    findings
}

fn check_registration() -> Finding {
    let Some(home) = marshal_core::env::home() else {
        return fail("HOME is not set: cannot find Claude Code's plugin registry", "set HOME");
    };
    let registry = home.join(".claude/plugins/installed_plugins.json");
    let installed = std::fs::read_to_string(&registry).is_ok_and(|t| t.contains("\"marshal@marshal\""));
    let settings = std::fs::read_to_string(home.join(".claude/settings.json")).unwrap_or_default();
    let enabled = serde_json::from_str::<serde_json::Value>(&settings)
        .ok()
        .and_then(|v| v["enabledPlugins"]["marshal@marshal"].as_bool())
        .unwrap_or(false);
    match (installed, enabled) {
        (true, true) => pass("the plugin marshal@marshal is installed and enabled in Claude Code"),
        (true, false) => {
            fail("marshal@marshal is installed but not enabled", "claude plugin enable marshal@marshal")
        }
        _ => fail(
            "marshal@marshal is not installed in Claude Code",
            "run ./install.sh (it registers the plugin)",
        ),
    }
}

fn check_state_dir(dir: Option<&Path>) -> Vec<Finding> {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = dir else {
        return vec![fail("no state directory can be resolved", "set MARSHAL_STATE_DIR or HOME")];
    };
    let mut findings = Vec::new();
    if !dir.exists() {
        findings.push(pass(format!(
            "state directory {} does not exist yet (created at the first prompt)",
            dir.display()
        )));
        return findings;
    }
    // A fresh name, created exclusively and never through a link: a planted file is never written.
    match marshal_core::fsutil::create_new_private(dir, ".doctor-probe-") {
        Ok((probe, _)) => {
            let _ = std::fs::remove_file(&probe);
            findings.push(pass(format!("state directory {} is writable", dir.display())));
        }
        Err(err) => findings.push(fail(
            format!("state directory {} is not writable ({err}): hooks cannot record turns", dir.display()),
            format!("make it writable (chmod u+w {0}; a read-only mount needs remounting), or point MARSHAL_STATE_DIR elsewhere", dir.display()),
        )),
    }
    let mode = std::fs::metadata(dir).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    if mode & 0o077 != 0 {
        findings.push(fail(
            format!("state directory {} has mode {mode:o}: others can read the ledger", dir.display()),
            format!("chmod 700 {}", dir.display()),
        ));
    }
    if let Err(err) = Store::trusted(dir) {
        findings.push(fail(
            format!("{err:#}"),
            format!(
                "chown $USER {0} && chmod 700 {0}, or point MARSHAL_STATE_DIR at a private directory",
                dir.display()
            ),
        ));
    }
    let ledger = Store::new(dir).ledger_path();
    if let Ok(meta) = std::fs::metadata(&ledger) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            findings.push(fail(
                format!("{} has mode {mode:o}", ledger.display()),
                format!("chmod 600 {}", ledger.display()),
            ));
        }
    }
    findings
}

fn check_config() -> Finding {
    let project = std::env::current_dir().ok();
    let loaded = LoadedConfig::load(project.as_deref());
    let errors = &loaded.provenance.errors;
    match (errors.first(), loaded.provenance.warnings.is_empty()) {
        (Some(_), _) => fail(
            format!(
                "configuration errors: {}",
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ),
            "fix those keys in those files; until then hooks ignore them (defaults stand in)",
        ),
        (None, false) => fail(
            format!("configuration warnings: {}", loaded.provenance.warnings.join("; ")),
            "remove or correct the keys named",
        ),
        (None, true) => pass(format!("configuration parses ({})", loaded.provenance.layers.join(" + "))),
    }
}

fn check_claude_cli() -> Finding {
    let Some(claude) = marshal_core::orchestrate::find_claude() else {
        return fail(
            "the Claude Code CLI was not found (orchestrate mode falls back to directives without it)",
            "npm install -g @anthropic-ai/claude-code@2.1.329, or set MARSHAL_CLAUDE_BIN",
        );
    };
    let Ok(scratch) = tempfile::tempdir() else {
        return fail(
            "could not create a scratch directory",
            "check that the temporary directory is writable",
        );
    };
    match run_with_stdin(&claude, &["--version"], b"", &[], scratch.path()) {
        Ok((true, stdout, _)) => pass(format!("Claude Code CLI {} ({})", stdout.trim(), claude.display())),
        _ => fail(format!("{} --version failed", claude.display()), "reinstall Claude Code"),
    }
}

/// Sends a synthetic event through each hook in a throw-away state directory and times it.
fn check_hooks_run(root: &Path) -> Vec<Finding> {
    // A fresh private directory (random name, 0700, created exclusively), removed when dropped.
    let Ok(scratch) = tempfile::tempdir() else {
        return vec![fail(
            "could not create a scratch directory for the hook check",
            "check that the temporary directory is writable",
        )];
    };
    let scratch_dir = scratch.path().join("state");
    let state = scratch_dir.display().to_string();
    let env = [("MARSHAL_STATE_DIR", state.as_str()), ("MARSHAL_MODE", "directive")];
    let events: [(&str, &str, &[u8]); 3] = [
        ("marshal-prompt", "a prompt", br#"{"hook_event_name":"UserPromptSubmit","session_id":"doctor","prompt_id":"p1","cwd":"/","prompt":"rename foo to bar"}"#),
        ("marshal-pretool", "an Agent call", br#"{"hook_event_name":"PreToolUse","session_id":"doctor","prompt_id":"p1","tool_name":"Agent","tool_input":{"subagent_type":"marshal:haiku-general","prompt":"x","description":"d"}}"#),
        ("marshal-stop", "a Stop", br#"{"hook_event_name":"Stop","session_id":"doctor","prompt_id":"p1","stop_hook_active":false}"#),
    ];
    let mut findings = Vec::new();
    for (name, what, event) in events {
        let binary = root.join("bin").join(name);
        if !is_executable(&binary) {
            continue; // already reported as missing
        }
        let started = Instant::now();
        match run_with_stdin(&binary, &[], event, &env, scratch.path()) {
            Ok((true, stdout, _))
                if stdout.is_empty() || serde_json::from_str::<serde_json::Value>(&stdout).is_ok() =>
            {
                findings.push(pass(format!(
                    "{name} handled {what} in {:.1} ms",
                    started.elapsed().as_secs_f64() * 1000.0
                )))
            }
            Ok((_, stdout, stderr)) => findings.push(fail(
                format!("{name} answered {what} wrongly: stdout {stdout:?}, stderr {stderr:?}"),
                "rebuild with ./install.sh; if it persists, report it with the log in the state directory",
            )),
            Err(err) => {
                findings.push(fail(format!("{name} could not run: {err:#}"), "rebuild with ./install.sh"))
            }
        }
    }
    let recorded = std::fs::read_to_string(Store::new(&scratch_dir).ledger_path()).unwrap_or_default();
    let all_ran = findings.len() == events.len() && findings.iter().all(|f| f.ok);
    if all_ran && !recorded.contains("\"outcome\":\"followed\"") {
        findings.push(fail(
            "the synthetic turn was not recorded as followed",
            "report it, with the log in the state directory",
        ));
    }
    findings
}

/// Runs a program with `input` on stdin and the given variables, within 10 seconds, through
/// marshal's one spawn helper (files for its streams in `scratch`).
fn run_with_stdin(
    program: &Path,
    args: &[&str],
    input: &[u8],
    env: &[(&str, &str)],
    scratch: &Path,
) -> Result<(bool, String, String)> {
    let name = program.file_name().and_then(|n| n.to_str()).unwrap_or("child");
    let (stdin, stdout, stderr) = (
        scratch.join(format!("{name}.in")),
        scratch.join(format!("{name}.out")),
        scratch.join(format!("{name}.err")),
    );
    std::fs::write(&stdin, input).with_context(|| format!("could not write {}", stdin.display()))?;
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let finished = spawn::run(
        &Spawn {
            program,
            args: &args,
            cwd: scratch,
            remove_env: &[],
            set_env: env,
            timeout: Duration::from_secs(10),
            stdin: Some(&stdin),
            stdout: &stdout,
            stderr: &stderr,
        },
        Instant::now(),
    )?;
    if finished.ended != spawn::Ended::Exited {
        anyhow::bail!("{} took more than 10 s", program.display());
    }
    let read = |path: &Path| String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
    Ok((finished.status.is_some_and(|s| s.success()), read(&stdout), read(&stderr)))
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read ({e})"))?;
    serde_json::from_str(&text).map_err(|e| format!("is not valid JSON ({e})"))
}
