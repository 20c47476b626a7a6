//! The one way marshal starts a child process: resolved path, no shell, stdin from `/dev/null`
//! (or a file), output captured to private files with a size cap, a session of its own, and a
//! time limit.
//!
//! Nothing a child starts outlives it. The child dies with marshal (Linux `PR_SET_PDEATHSIG`,
//! for a `kill -9` of the hook); a SIGTERM, SIGINT or SIGHUP to marshal (Claude Code ending the
//! hook, the user pressing Ctrl-C) ends the child before marshal goes, and no other attempt starts;
//! and after every attempt, however it ended, its process group is killed and so is any descendant
//! that left the group (`setsid`): marshal is a child subreaper, so such orphans become its
//! children and are found.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::fsutil;

/// What is kept of one output stream, at most: the start, a line saying how much was cut, and
/// the last [`TAIL_BYTES`] (where `claude -p --output-format json` puts its result).
pub const MAX_STREAM_BYTES: u64 = 16 * 1024 * 1024;
const TAIL_BYTES: usize = 1024 * 1024;

/// A child to run.
pub struct Spawn<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub cwd: &'a Path,
    /// Variables removed from the inherited environment.
    pub remove_env: &'a [&'a str],
    pub set_env: &'a [(&'a str, &'a str)],
    pub timeout: Duration,
    /// A file to read stdin from; `None` gives it `/dev/null`.
    pub stdin: Option<&'a Path>,
    pub stdout: &'a Path,
    pub stderr: &'a Path,
}

/// How a child's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself.
    Exited,
    /// It was killed at its time limit.
    TimedOut,
    /// marshal was asked to stop (SIGTERM, SIGINT, SIGHUP) and killed it first.
    Interrupted,
}

#[derive(Debug)]
pub struct Finished {
    /// `None` when the child was killed.
    pub status: Option<ExitStatus>,
    pub ended: Ended,
    pub duration: Duration,
    /// When the child had been started, measured from `since`.
    pub spawned_after: Duration,
}

/// Runs the child to its end or its time limit. `since` is the caller's start, so the cost of
/// getting to the spawn can be measured.
pub fn run(spawn: &Spawn, since: Instant) -> Result<Finished> {
    let stop = watch_for_stop();
    let stdout = fsutil::create_private(spawn.stdout)?;
    let stderr = fsutil::create_private(spawn.stderr)?;
    let stdin = match spawn.stdin {
        Some(path) => Stdio::from(
            fsutil::open_regular(path, fsutil::Links::Refuse)?
                .with_context(|| format!("no stdin file {}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    #[allow(clippy::disallowed_methods)] // the one place a child is started
    let mut command = Command::new(spawn.program);
    command
        .args(spawn.args)
        .current_dir(spawn.cwd)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in spawn.remove_env {
        command.env_remove(name);
    }
    for (name, value) in spawn.set_env {
        command.env(name, value);
    }
    isolate(&mut command);
    let started = Instant::now();
    // Held from the spawn until the child is on the list: another thread's orphan sweep
    // (which holds it too) must never take this child for an orphan and reap it.
    let mut live = live_attempts().lock().unwrap_or_else(PoisonError::into_inner);
    let mut child =
        command.spawn().with_context(|| format!("could not start {}", spawn.program.display()))?;
    let spawned_after = since.elapsed();
    let pid = child.id();
    live.push(pid);
    drop(live);
    let captures = [
        child.stdout.take().map(|pipe| capture(pipe, stdout)),
        child.stderr.take().map(|pipe| capture(pipe, stderr)),
    ];
    let deadline = started + spawn.timeout;
    // Short first pauses: a quick child (a stand-in, an instant refusal) is noticed within a
    // fraction of a millisecond; a long one costs a wake-up every 50 ms.
    let mut pause = Duration::from_micros(200);
    let (status, ended) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (Some(status), Ended::Exited),
            Ok(None) => {}
            Err(err) => {
                end_attempt(&mut child, pid);
                return Err(err).context("could not wait for the child");
            }
        }
        let ended = if stop.load(Ordering::SeqCst) {
            Ended::Interrupted
        } else if Instant::now() >= deadline {
            Ended::TimedOut
        } else {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
            continue;
        };
        break (None, ended);
    };
    end_attempt(&mut child, pid);
    // The pipes close once every holder is gone; a writer that escaped everything above only
    // costs its output, never a hang.
    for capture in captures.into_iter().flatten() {
        let _ = capture.recv_timeout(Duration::from_secs(2));
    }
    Ok(Finished { status, ended, duration: started.elapsed(), spawned_after })
}

/// Kills the attempt's process group (success included: a child that exits normally may leave
/// grandchildren behind), reaps the child, and then every orphan that came to marshal.
fn end_attempt(child: &mut std::process::Child, pid: u32) {
    kill_group(pid);
    let _ = child.kill();
    let _ = child.wait();
    live_attempts().lock().unwrap_or_else(PoisonError::into_inner).retain(|p| *p != pid);
    reap_orphans(pid);
}

/// Attempts running now in this process: their groups are theirs, not orphans to reap.
fn live_attempts() -> &'static Mutex<Vec<u32>> {
    static LIVE: OnceLock<Mutex<Vec<u32>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(Vec::new()))
}

/// Copies a child's output into `file` on a thread, keeping at most [`MAX_STREAM_BYTES`]. The
/// receiver hears when the stream has ended.
fn capture(mut pipe: impl Read + Send + 'static, mut file: File) -> std::sync::mpsc::Receiver<()> {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let head_limit = MAX_STREAM_BYTES - TAIL_BYTES as u64;
        let mut head_written = 0u64;
        let mut tail: VecDeque<u8> = VecDeque::new();
        let mut cut = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut chunk = &buf[..n];
            if head_written < head_limit {
                let take = chunk.len().min((head_limit - head_written) as usize);
                if file.write_all(&chunk[..take]).is_err() {
                    break;
                }
                head_written += take as u64;
                chunk = &chunk[take..];
            }
            tail.extend(chunk);
            if tail.len() > TAIL_BYTES {
                let excess = tail.len() - TAIL_BYTES;
                tail.drain(..excess);
                cut += excess as u64;
            }
        }
        if cut > 0 {
            let _ = write!(file, "\n[marshal: {cut} bytes of output cut here]\n");
        }
        let (front, back) = tail.as_slices();
        let _ = file.write_all(front).and_then(|()| file.write_all(back));
        let _ = done.send(());
    });
    finished
}

/// Set once SIGTERM, SIGINT or SIGHUP arrives: the running attempt is ended and no other starts.
/// The handlers are installed (and marshal made a child subreaper) on the first spawn only, so
/// hooks that spawn nothing behave as before.
fn watch_for_stop() -> Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        #[cfg(unix)]
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGHUP]
        {
            let _ = signal_hook::flag::register(signal, Arc::clone(&flag));
        }
        #[cfg(target_os = "linux")]
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
        flag
    })
    .clone()
}

/// Whether marshal was asked to stop while a child ran.
pub fn stop_requested() -> bool {
    watch_for_stop().load(Ordering::SeqCst)
}

/// The child leads a session of its own, so it and everything it starts can be ended together
/// (and nothing it starts can join marshal's process group: that only works within a session),
/// and it gets SIGKILL when marshal dies, even by SIGKILL.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn isolate(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // work is allowed: it makes three system calls (setsid, prctl, getppid) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            rustix::process::setsid()?;
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            // marshal died before the prctl: nothing would ever deliver the signal.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::from(std::io::ErrorKind::Interrupted));
            }
            Ok(())
        });
    }
}

/// Elsewhere: its own process group, so the child and what it starts can be ended together.
#[cfg(all(unix, not(target_os = "linux")))]
fn isolate(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
}

#[cfg(not(unix))]
fn isolate(_command: &mut Command) {}

#[cfg(unix)]
fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: u32) {}

/// Kills and reaps marshal's children that left its process group and belong to no running
/// attempt: descendants of the attempt `group` orphaned by its end (marshal is their subreaper),
/// however they detached. Children marshal started some other way share its group and are left
/// alone. Waits (at most a second) until the attempt's group is gone, since its members hand
/// their own children over to marshal only as they die.
#[cfg(target_os = "linux")]
fn reap_orphans(group: u32) {
    use rustix::process::{kill_process, kill_process_group, test_kill_process_group, waitpid};
    use rustix::process::{Pid, Signal, WaitOptions};
    let me = rustix::process::getpid().as_raw_nonzero().get();
    // From /proc, not getpgrp(): in a container whose group leader lives outside the PID
    // namespace the group id reads 0, which rustix's Pid cannot hold (it asserts, or worse).
    let Some((_, my_group)) = parent_and_group("/proc/self/stat") else { return };
    let attempt_group = i32::try_from(group).ok().and_then(Pid::from_raw);
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        // The list stays locked while the children are listed and killed, so no attempt can
        // start in between and be taken for an orphan (see `run`).
        let live_guard = live_attempts().lock().unwrap_or_else(PoisonError::into_inner);
        let live: Vec<i32> = live_guard.iter().map(|p| *p as i32).collect();
        let orphans: Vec<(i32, i32)> = children_of(me)
            .into_iter()
            .filter(|(pid, group)| *group != my_group && !live.contains(pid) && !live.contains(group))
            .collect();
        for (pid, group) in &orphans {
            if let Some(pid) = Pid::from_raw(*pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
            if let Some(group) = Pid::from_raw(*group) {
                let _ = kill_process_group(group, Signal::KILL);
            }
        }
        drop(live_guard);
        for (pid, _) in &orphans {
            if let Some(pid) = Pid::from_raw(*pid) {
                let _ = waitpid(Some(pid), WaitOptions::empty());
            }
        }
        let group_gone = attempt_group.is_none_or(|g| test_kill_process_group(g).is_err());
        if (orphans.is_empty() && group_gone) || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(not(target_os = "linux"))]
fn reap_orphans(_group: u32) {}

/// `(pid, process group)` of every process whose parent is `parent`, from `/proc`.
#[cfg(target_os = "linux")]
fn children_of(parent: i32) -> Vec<(i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let (ppid, group) = parent_and_group(entry.path().join("stat"))?;
            (ppid == parent).then_some((pid, group))
        })
        .collect()
}

/// `(parent, process group)` from a `/proc/PID/stat` file. Either may be 0: a process whose
/// parent or group leader is outside its PID namespace sees 0 there.
#[cfg(target_os = "linux")]
fn parent_and_group(stat: impl AsRef<Path>) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(stat).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    let mut fields = stat.rsplit_once(") ")?.1.split(' ');
    let (_state, ppid, group) = (fields.next()?, fields.next()?, fields.next()?);
    Some((ppid.parse().ok()?, group.parse().ok()?))
}

/// Starts `program` to run on after marshal exits (a background workflow run): a session of
/// its own, so the terminal's Ctrl-C and hang-up do not reach it; stdin from `/dev/null`;
/// stdout and stderr appended to `log`. Unlike [`run`], nothing ties it to marshal's life, and
/// the caller owns the returned child (wait on it or let it go).
pub fn detach(program: &Path, args: &[String], cwd: &Path, log: &Path) -> Result<std::process::Child> {
    let out = fsutil::open_append(log)?;
    let err = out.try_clone().context("could not share the log file")?;
    #[allow(clippy::disallowed_methods)] // meant to outlive marshal, so not through run()
    let mut command = Command::new(program);
    command.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(out).stderr(err);
    new_session(&mut command);
    command.spawn().with_context(|| format!("could not start {}", program.display()))
}

/// Runs marshal's own CLI (`program` is the `marshal` binary) and returns its output, for the
/// MCP server: those commands bound their own waits, and unlike [`run`] this installs no signal
/// handlers, so a server asked to stop still stops.
pub fn marshal_output(
    program: &Path,
    args: &[String],
    cwd: &Path,
    set_env: &[(&str, &Path)],
) -> Result<std::process::Output> {
    #[allow(clippy::disallowed_methods)] // see above
    let mut command = Command::new(program);
    command.args(args).current_dir(cwd).stdin(Stdio::null());
    for (key, value) in set_env {
        command.env(key, value);
    }
    command.output().with_context(|| format!("could not run {}", program.display()))
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn new_session(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure makes one system call and allocates nothing.
    unsafe {
        command.pre_exec(|| rustix::process::setsid().map(|_| ()).map_err(Into::into));
    }
}

#[cfg(not(unix))]
fn new_session(_command: &mut Command) {}

/// Where a program installed beside this one would be (marshal's binaries ship together in the
/// plugin's `bin/`); whether it is there is the caller's check.
pub fn beside_this_program(name: &str) -> Option<PathBuf> {
    Some(std::env::current_exe().ok()?.with_file_name(name))
}

/// Finds a program: an explicit path, or the first match on `PATH`.
pub fn resolve_program(explicit: Option<&str>, name: &str) -> Option<PathBuf> {
    if let Some(path) = explicit.filter(|p| !p.trim().is_empty()) {
        let path = PathBuf::from(path);
        return is_executable(&path).then_some(path);
    }
    std::env::split_paths(&crate::env::path()?).map(|dir| dir.join(name)).find(|p| is_executable(p))
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

    fn run_script(dir: &Path, body: &str, timeout: Duration) -> (Finished, PathBuf, PathBuf) {
        let program = script(dir, "child", body);
        let (out, err) = (dir.join("o"), dir.join("e"));
        let finished = run(
            &Spawn {
                program: &program,
                args: &[],
                cwd: dir,
                remove_env: &["CLAUDECODE"],
                set_env: &[("MARSHAL_ORCHESTRATED", "1")],
                timeout,
                stdin: None,
                stdout: &out,
                stderr: &err,
            },
            Instant::now(),
        )
        .unwrap();
        (finished, out, err)
    }

    #[test]
    fn output_goes_to_private_files_and_the_environment_is_adjusted() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let (finished, out, err) = run_script(
            tmp.path(),
            "echo \"out $MARSHAL_ORCHESTRATED ${CLAUDECODE:-unset}\"; read line || echo 'stdin closed' >&2",
            Duration::from_secs(10),
        );
        assert!(finished.status.unwrap().success());
        assert_eq!(finished.ended, Ended::Exited);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "out 1 unset\n");
        assert_eq!(std::fs::read_to_string(&err).unwrap(), "stdin closed\n");
        for file in [out, err] {
            assert_eq!(std::fs::metadata(file).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_time_out_kills_the_whole_process_group() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("grandchild-survived");
        let started = Instant::now();
        let (finished, _, _) = run_script(
            tmp.path(),
            &format!("(sleep 2; touch {}) &\nsleep 30", marker.display()),
            Duration::from_millis(300),
        );
        assert!(finished.ended == Ended::TimedOut && finished.status.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild was killed with its group");
    }

    #[test]
    fn output_past_the_cap_keeps_its_start_and_its_end() {
        let tmp = tempfile::tempdir().unwrap();
        let (finished, out, _) = run_script(
            tmp.path(),
            "echo first; head -c 20000000 /dev/zero | tr '\\0' x; echo; echo last",
            Duration::from_secs(30),
        );
        assert!(finished.status.unwrap().success());
        let text = std::fs::read(&out).unwrap();
        assert!(text.len() as u64 <= MAX_STREAM_BYTES + 100, "{} bytes", text.len());
        assert!(text.starts_with(b"first\n") && text.ends_with(b"\nlast\n"));
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("bytes of output cut here"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_child_leads_a_session_of_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        // Field 6 of /proc/PID/stat is the session; sh's comm has no spaces.
        let (finished, out, _) =
            run_script(tmp.path(), "echo $$ $(cut -d' ' -f6 /proc/$$/stat)", Duration::from_secs(10));
        assert!(finished.status.unwrap().success());
        let text = std::fs::read_to_string(out).unwrap();
        let (pid, session) = text.trim().split_once(' ').unwrap();
        assert_eq!(pid, session, "the child is its session's leader");
        // Read from /proc, not getsid(): in a container whose session leader lives outside
        // the PID namespace the session id is 0, which rustix's getsid cannot represent.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let ours = after_comm.split(' ').nth(3).unwrap();
        assert_ne!(session, ours);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_stat_is_read_past_odd_names_and_zero_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let stat = tmp.path().join("stat");
        // A container's first process: parent and group leader outside its namespace read 0.
        std::fs::write(&stat, "1 (sh) S 0 0 0 34816 1 4194560 700").unwrap();
        assert_eq!(parent_and_group(&stat), Some((0, 0)));
        std::fs::write(&stat, "4242 (a) b (c) R 17 4242 17 0 -1").unwrap();
        assert_eq!(parent_and_group(&stat), Some((17, 4242)));
        std::fs::write(&stat, "4242 (cut off").unwrap();
        assert_eq!(parent_and_group(&stat), None);
        let (_, ours) = parent_and_group("/proc/self/stat").unwrap();
        assert!(ours >= 0);
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

    #[test]
    fn attempts_on_many_threads_never_reap_each_others_children() {
        // One thread's orphan sweep once took another's newly started child for an orphan.
        let tmp = tempfile::tempdir().unwrap();
        let program = script(tmp.path(), "quick", "echo done");
        std::thread::scope(|scope| {
            for thread in 0..6 {
                let (program, dir) = (&program, tmp.path());
                scope.spawn(move || {
                    for n in 0..15 {
                        let (out, err) =
                            (dir.join(format!("{thread}-{n}.o")), dir.join(format!("{thread}-{n}.e")));
                        let finished = run(
                            &Spawn {
                                program,
                                args: &[],
                                cwd: dir,
                                remove_env: &[],
                                set_env: &[],
                                timeout: Duration::from_secs(30),
                                stdin: None,
                                stdout: &out,
                                stderr: &err,
                            },
                            Instant::now(),
                        )
                        .unwrap_or_else(|e| panic!("thread {thread}, run {n}: {e:#}"));
                        assert_eq!(finished.ended, Ended::Exited);
                        assert_eq!(std::fs::read_to_string(&out).unwrap(), "done\n");
                    }
                });
            }
        });
    }
}
