//! Faults, hostile input and concurrency against the real hook binaries. After each fault:
//! the hooks exit 0, nothing previously written is lost, and the report still reads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::mount::Tmpfs;
use crate::support::process::{run_with_input, run_with_limit};
use crate::support::{of_kind, read_jsonl};

const PROMPT: &str = "rename the helper parse_cfg to parse_config in utils.py";

/// Runs one hook with `stdin`, in a clean environment with `state` as the state directory.
fn hook(state: &Path, bin: &str, stdin: &[u8], extra_env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(bin_path(bin));
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MARSHAL_STATE_DIR", state)
        .env("HOME", state.with_extension("home"))
        .env("MARSHAL_MODE", "directive");
    for (key, value) in extra_env {
        command.env(key, value);
    }
    // A hook answers in milliseconds; 30 s only keeps a hang from stalling the suite.
    run_with_input(&mut command, Some(stdin), Duration::from_secs(30))
}

fn bin_path(bin: &str) -> PathBuf {
    crate::support::built_binaries_dir().join(bin)
}

fn event(kind: &str, session: &str, prompt_id: &str) -> Vec<u8> {
    let value = match kind {
        "prompt" => {
            json!({"hook_event_name":"UserPromptSubmit","session_id":session,"prompt_id":prompt_id,"cwd":"/w","prompt":PROMPT})
        }
        "call" => {
            json!({"hook_event_name":"PreToolUse","session_id":session,"prompt_id":prompt_id,"tool_name":"Agent",
            "tool_input":{"subagent_type":"marshal:haiku-general","prompt":"p","description":"d"}})
        }
        _ => {
            json!({"hook_event_name":"Stop","session_id":session,"prompt_id":prompt_id,"stop_hook_active":false})
        }
    };
    value.to_string().into_bytes()
}

/// A whole followed turn through the three hooks; every hook must exit 0.
fn turn(state: &Path, session: &str, prompt_id: &str) {
    for (bin, kind) in [("marshal-prompt", "prompt"), ("marshal-pretool", "call"), ("marshal-stop", "stop")] {
        let out = hook(state, bin, &event(kind, session, prompt_id), &[]);
        assert!(out.status.success(), "{bin}: {out:?}");
    }
}

fn report_json(ledger: &Path) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_marshal"));
    command.env_clear().arg("report").arg("--json").arg("--ledger").arg(ledger);
    let out = run_with_limit(&mut command, Duration::from_secs(30));
    assert!(out.status.success(), "the report must still read: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ledger_of(state: &Path) -> PathBuf {
    state.join("ledger.jsonl")
}

#[test]
fn kill_9_at_any_moment_never_damages_what_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    for i in 0..10 {
        turn(&state, "before", &format!("p{i}"));
    }
    let before = std::fs::read(ledger_of(&state)).unwrap();

    // 60 prompt hooks, each killed with SIGKILL at a different moment of its life.
    for i in 0..60u64 {
        let mut child = Command::new(bin_path("marshal-prompt"))
            .env_clear()
            .env("MARSHAL_STATE_DIR", &state)
            .env("MARSHAL_MODE", "directive")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(&event("prompt", &format!("killed-{i}"), "p"));
        std::thread::sleep(Duration::from_micros(i * 50));
        let _ = child.kill();
        let _ = child.wait();
    }
    // A record cut off in the middle, as a crash during a large write leaves it.
    std::fs::OpenOptions::new()
        .append(true)
        .open(ledger_of(&state))
        .unwrap()
        .write_all(br#"{"v":1,"ts":"2026-11-2"#)
        .unwrap();
    for i in 0..5 {
        turn(&state, "after", &format!("p{i}"));
    }

    let after = std::fs::read(ledger_of(&state)).unwrap();
    assert!(after.starts_with(&before), "nothing previously written changed");
    let text = String::from_utf8(after).unwrap();
    let unreadable: Vec<&str> = text.lines().filter(|l| serde_json::from_str::<Value>(l).is_err()).collect();
    assert_eq!(
        unreadable,
        [r#"{"v":1,"ts":"2026-11-2"#],
        "only the cut record is unreadable, on a line of its own"
    );
    let report = report_json(&ledger_of(&state));
    assert_eq!(report["followed"], 15, "{report}");
    assert_eq!(report["skipped"]["corrupt"], 1);
}

#[test]
fn a_full_disk_leaves_the_ledger_exactly_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let _mount = Tmpfs::mount(&state, "64k");
    for i in 0..3 {
        turn(&state, "s", &format!("p{i}"));
    }
    // Pad the ledger to a page boundary (a blank line readers skip), then fill the disk, so the
    // next append needs a page the disk does not have.
    let ledger = ledger_of(&state);
    let len = std::fs::metadata(&ledger).unwrap().len() as usize;
    let pad = (4096 - (len + 1) % 4096) % 4096;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&ledger)
        .unwrap()
        .write_all(format!("{}\n", " ".repeat(pad)).as_bytes())
        .unwrap();
    let mut filler = std::fs::File::create(state.join("filler")).unwrap();
    while filler.write_all(&[0u8; 1024]).is_ok() {}
    while filler.write_all(&[0u8; 1]).is_ok() {}
    drop(filler);
    let before = std::fs::read(&ledger).unwrap();

    let out = hook(&state, "marshal-prompt", &event("prompt", "s", "full"), &[]);
    assert!(out.status.success());
    let stdout: Value = serde_json::from_slice(&out.stdout).expect("the directive is still injected");
    assert!(stdout["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap()
        .contains("marshal:haiku-general"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No space left"),
        "the one line goes to stderr: {out:?}"
    );
    for bin in ["marshal-pretool", "marshal-stop"] {
        assert!(hook(
            &state,
            bin,
            &event(if bin == "marshal-stop" { "stop" } else { "call" }, "s", "full"),
            &[]
        )
        .status
        .success());
    }
    assert_eq!(std::fs::read(&ledger).unwrap(), before, "no partial record after the last good one");
    assert_eq!(report_json(&ledger)["followed"], 3);

    // With space again, recording resumes.
    std::fs::remove_file(state.join("filler")).unwrap();
    turn(&state, "s", "again");
    assert_eq!(report_json(&ledger)["followed"], 4);
}

#[test]
fn a_read_only_state_directory_breaks_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mount = Tmpfs::mount(&state, "1m");
    turn(&state, "s", "p1");
    let before = std::fs::read(ledger_of(&state)).unwrap();
    mount.remount_read_only();

    let out = hook(&state, "marshal-prompt", &event("prompt", "s", "p2"), &[]);
    assert!(out.status.success());
    let stdout: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(stdout["hookSpecificOutput"]["additionalContext"].is_string(), "still routed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"), "{out:?}");
    for (bin, kind) in [("marshal-pretool", "call"), ("marshal-stop", "stop")] {
        let out = hook(&state, bin, &event(kind, "s", "p2"), &[]);
        assert!(out.status.success() && out.stdout.is_empty(), "{bin}: {out:?}");
    }
    assert_eq!(std::fs::read(ledger_of(&state)).unwrap(), before);
    assert_eq!(report_json(&ledger_of(&state))["followed"], 1);
}

#[test]
fn garbage_in_every_state_file_is_survived_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    turn(&state, "s", "p1");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::OpenOptions::new().append(true).open(ledger_of(&state)).unwrap().write_all(&garbage).unwrap();
    for file in ["sessions/s.jsonl", "history.json", "agents-cache.json"] {
        std::fs::write(state.join(file), &garbage).unwrap();
    }
    let config_home = state.with_extension("home").join(".claude");
    std::fs::create_dir_all(&config_home).unwrap();
    std::fs::write(config_home.join("marshal.json"), &garbage).unwrap();

    turn(&state, "s", "p2");
    let ledger = std::fs::read(ledger_of(&state)).unwrap();
    assert!(
        ledger.windows(garbage.len()).any(|w| w == garbage.as_slice()),
        "the garbage is kept, not truncated"
    );
    let report = report_json(&ledger_of(&state));
    assert_eq!(report["followed"], 2, "{report}");
    assert!(report["skipped"]["corrupt"].as_u64().unwrap() >= 1);
    let log = std::fs::read_to_string(state.join("marshal.log")).unwrap();
    assert!(log.contains("configuration error, that key is ignored"), "{log}");
    assert!(log.contains("session journal"), "{log}");
}

#[test]
fn the_clock_going_backwards_changes_no_outcome() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let faketime = marshal_core::spawn::resolve_program(None, "faketime")
        .expect("faketime (Debian package faketime; scripts/test.sh installs it)");
    // The prompt at a time in the future, the call and the stop "earlier", back at today.
    let out = Command::new(&faketime)
        .arg("2031-06-01 12:00:00")
        .arg(bin_path("marshal-prompt"))
        .env_clear()
        .env("MARSHAL_STATE_DIR", &state)
        .env("MARSHAL_MODE", "directive")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(&event("prompt", "s", "p1"))?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    for (bin, kind) in [("marshal-pretool", "call"), ("marshal-stop", "stop")] {
        assert!(hook(&state, bin, &event(kind, "s", "p1"), &[]).status.success());
    }
    let ledger = read_jsonl(&ledger_of(&state));
    assert!(of_kind(&ledger, "route")[0]["ts"].as_str().unwrap().starts_with("2031-06-01"));
    let outcome = of_kind(&ledger, "outcome")[0].clone();
    assert_eq!(outcome["outcome"], "followed");
    assert!(outcome["ts"].as_str().unwrap() < "2031");
    assert_eq!(report_json(&ledger_of(&state))["followed"], 1);
}

#[test]
fn hostile_input_gets_a_defined_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");

    // 200 MB on stdin: read to 8 MiB, then ignored, quickly.
    let started = std::time::Instant::now();
    let huge = vec![b'a'; 200 * 1024 * 1024];
    let out = hook(&state, "marshal-prompt", &huge, &[]);
    assert!(out.status.success() && out.stdout.is_empty());
    assert!(started.elapsed() < Duration::from_secs(20));

    // Invalid UTF-8 inside the prompt: routed and recorded, bad bytes replaced.
    let mut invalid =
        br#"{"hook_event_name":"UserPromptSubmit","session_id":"u","prompt_id":"p","prompt":"rename foo "#
            .to_vec();
    invalid.extend_from_slice(&[0xC3, 0x28, 0xFF]);
    invalid.extend_from_slice(br#" to bar"}"#);
    let out = hook(&state, "marshal-prompt", &invalid, &[]);
    assert!(serde_json::from_slice::<Value>(&out.stdout).is_ok(), "{out:?}");

    // Deeply nested JSON: not an event; exit 0, nothing printed, one log line.
    let nested = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let out = hook(&state, "marshal-stop", nested.as_bytes(), &[]);
    assert!(out.status.success() && out.stdout.is_empty());

    // Agent names with newlines and NUL stay inside one JSON line each.
    turn(&state, "n", "p");
    let nasty = json!({"hook_event_name":"PreToolUse","session_id":"n\n../x","prompt_id":"p","tool_name":"Agent",
        "tool_input":{"subagent_type":"evil\nagent\u{0}/../../x","prompt":"p"}});
    assert!(hook(&state, "marshal-pretool", nasty.to_string().as_bytes(), &[]).status.success());

    let text = std::fs::read_to_string(ledger_of(&state)).unwrap();
    assert!(text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "every line is one record");
    let ledger = read_jsonl(&ledger_of(&state));
    assert_eq!(of_kind(&ledger, "route").len(), 2, "the invalid-UTF-8 prompt and the turn");
    assert!(of_kind(&ledger, "call").iter().any(|c| c["subagent_type"] == "evil\nagent\u{0}/../../x"));
    let log = std::fs::read_to_string(state.join("marshal.log")).unwrap();
    assert!(log.contains("larger than"), "{log}");
    assert!(log.contains("could not parse the hook event"), "{log}");
    let escaped: Vec<_> = walk(tmp.path())
        .into_iter()
        .filter(|p| !p.starts_with(&state) && !p.starts_with(state.with_extension("home")))
        .collect();
    assert!(escaped.is_empty(), "files outside the state dir: {escaped:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// 32 concurrent writers, each running 1,000 turns through the real hook binaries (prompt and
/// stop, 64,000 processes): every record is present exactly once and every line parses.
/// Minutes of work, so `scripts/test.sh` runs it explicitly (`MARSHAL_STRESS_TURNS` shortens it).
#[test]
#[ignore = "stress test: scripts/test.sh runs it with --ignored"]
fn thirty_two_concurrent_writers_lose_and_duplicate_nothing() {
    const WRITERS: usize = 32;
    let turns: usize =
        std::env::var("MARSHAL_STRESS_TURNS").ok().and_then(|t| t.parse().ok()).unwrap_or(1000);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let state = &state;
            scope.spawn(move || {
                for i in 0..turns {
                    let session = format!("writer-{writer}");
                    let prompt_id = format!("p{i}");
                    for (bin, kind) in [("marshal-prompt", "prompt"), ("marshal-stop", "stop")] {
                        let out = hook(state, bin, &event(kind, &session, &prompt_id), &[]);
                        assert!(out.status.success(), "{bin}: {out:?}");
                    }
                }
            });
        }
    });
    let text = std::fs::read_to_string(ledger_of(&state)).unwrap();
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
        let key = (
            record["kind"].as_str().unwrap().to_string(),
            record["session"].as_str().unwrap().to_string(),
            record["prompt_id"].as_str().unwrap().to_string(),
        );
        assert!(seen.insert(key.clone()), "duplicate record {key:?}");
    }
    assert_eq!(seen.len(), WRITERS * turns * 2, "a route and an outcome for every turn");
    let log = std::fs::read_to_string(state.join("marshal.log")).unwrap_or_default();
    assert!(log.is_empty(), "{log}");
}
