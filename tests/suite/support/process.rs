//! Runs a child process with a time limit, so no test can hang the suite.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` to completion or kills it after `limit` and panics with what it printed.
pub fn run_with_limit(command: &mut Command, limit: Duration) -> Output {
    run_with_input(command, None, limit)
}

/// As [`run_with_limit`], with `input` written to the child's stdin (closed after it; `None`:
/// no stdin at all). A writer thread, so a child that stops reading early cannot block the test.
pub fn run_with_input(command: &mut Command, input: Option<&[u8]>, limit: Duration) -> Output {
    let mut child = command
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {command:?}: {e}"));
    let writer = child.stdin.take().zip(input.map(<[u8]>::to_vec)).map(|(mut pipe, bytes)| {
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&bytes);
        })
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{command:?} ran past {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// What a finished child did, with chainable checks that panic with its output.
pub struct Ran(pub Output);

impl Ran {
    /// Runs `command` with `input` on stdin (`None`: none) under `limit`.
    pub fn of(command: &mut Command, input: Option<&[u8]>, limit: Duration) -> Ran {
        Ran(run_with_input(command, input, limit))
    }

    fn describe(&self) -> String {
        format!(
            "status {:?}\nstdout: {}\nstderr: {}",
            self.0.status.code(),
            String::from_utf8_lossy(&self.0.stdout),
            String::from_utf8_lossy(&self.0.stderr)
        )
    }

    #[track_caller]
    pub fn success(self) -> Ran {
        assert!(self.0.status.success(), "expected success, got {}", self.describe());
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Ran {
        assert_eq!(self.0.status.code(), Some(code), "{}", self.describe());
        self
    }

    #[track_caller]
    pub fn stdout(self, expected: &str) -> Ran {
        assert_eq!(String::from_utf8_lossy(&self.0.stdout), expected, "{}", self.describe());
        self
    }

    #[track_caller]
    pub fn stderr(self, expected: &str) -> Ran {
        assert_eq!(String::from_utf8_lossy(&self.0.stderr), expected, "{}", self.describe());
        self
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
}
