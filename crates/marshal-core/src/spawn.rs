//! The one way marshal starts a child process: resolved path, no shell, stdin closed, output to
//! files, its own process group, and a time limit that kills the whole group.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// A child to run.
pub struct Spawn<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub cwd: &'a Path,
    /// Variables removed from the inherited environment.
    pub remove_env: &'a [&'a str],
    pub set_env: &'a [(&'a str, &'a str)],
    pub timeout: Duration,
    pub stdout: &'a Path,
    pub stderr: &'a Path,
}

#[derive(Debug)]
pub struct Finished {
    /// `None` when the child was killed at the time limit.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub duration: Duration,
    /// When the child had been started, measured from `since`.
    pub spawned_after: Duration,
}

/// Runs the child to its end or its time limit. `since` is the caller's start, so the cost of
/// getting to the spawn can be measured.
pub fn run(spawn: &Spawn, since: Instant) -> Result<Finished> {
    let stdout =
        File::create(spawn.stdout).with_context(|| format!("could not create {}", spawn.stdout.display()))?;
    let stderr =
        File::create(spawn.stderr).with_context(|| format!("could not create {}", spawn.stderr.display()))?;
    let mut command = Command::new(spawn.program);
    command.args(spawn.args).current_dir(spawn.cwd).stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    for name in spawn.remove_env {
        command.env_remove(name);
    }
    for (name, value) in spawn.set_env {
        command.env(name, value);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Its own group, so a time-out can end the child and everything it started.
        command.process_group(0);
    }
    let started = Instant::now();
    let mut child =
        command.spawn().with_context(|| format!("could not start {}", spawn.program.display()))?;
    let spawned_after = since.elapsed();
    let deadline = started + spawn.timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait().context("could not wait for the child")? {
            return Ok(Finished {
                status: Some(status),
                timed_out: false,
                duration: started.elapsed(),
                spawned_after,
            });
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Finished {
                status: None,
                timed_out: true,
                duration: started.elapsed(),
                spawned_after,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(unix)]
fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: u32) {}

/// Finds a program: an explicit path, or the first match on `PATH`.
pub fn resolve_program(explicit: Option<&str>, name: &str) -> Option<PathBuf> {
    if let Some(path) = explicit.filter(|p| !p.trim().is_empty()) {
        let path = PathBuf::from(path);
        return is_executable(&path).then_some(path);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| is_executable(p))
}

/// A regular file with an execute bit (on Unix); any file elsewhere.
pub fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn output_goes_to_files_and_the_environment_is_adjusted() {
        let tmp = tempfile::tempdir().unwrap();
        let program = script(
            tmp.path(),
            "child",
            "echo \"out $MARSHAL_ORCHESTRATED ${CLAUDECODE:-unset}\"; read line || echo 'stdin closed' >&2",
        );
        let (out, err) = (tmp.path().join("o"), tmp.path().join("e"));
        let finished = run(
            &Spawn {
                program: &program,
                args: &[],
                cwd: tmp.path(),
                remove_env: &["CLAUDECODE"],
                set_env: &[("MARSHAL_ORCHESTRATED", "1")],
                timeout: Duration::from_secs(10),
                stdout: &out,
                stderr: &err,
            },
            Instant::now(),
        )
        .unwrap();
        assert!(finished.status.unwrap().success());
        assert_eq!(std::fs::read_to_string(out).unwrap(), "out 1 unset\n");
        assert_eq!(std::fs::read_to_string(err).unwrap(), "stdin closed\n");
    }

    #[test]
    fn a_time_out_kills_the_whole_process_group() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("grandchild-survived");
        let program =
            script(tmp.path(), "slow", &format!("(sleep 2; touch {}) &\nsleep 30", marker.display()));
        let started = Instant::now();
        let finished = run(
            &Spawn {
                program: &program,
                args: &[],
                cwd: tmp.path(),
                remove_env: &[],
                set_env: &[],
                timeout: Duration::from_millis(300),
                stdout: &tmp.path().join("o"),
                stderr: &tmp.path().join("e"),
            },
            started,
        )
        .unwrap();
        assert!(finished.timed_out && finished.status.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild was killed with its group");
    }

    #[test]
    fn programs_resolve_from_an_explicit_path_or_path() {
        let tmp = tempfile::tempdir().unwrap();
        let program = script(tmp.path(), "claude", "true");
        assert_eq!(resolve_program(Some(program.to_str().unwrap()), "claude"), Some(program));
        assert_eq!(resolve_program(Some("/nonexistent/claude"), "claude"), None);
        assert!(resolve_program(None, "sh").is_some());
        assert_eq!(resolve_program(None, "surely-not-a-program-here"), None);
    }
}
