//! marshal's one integration-test binary: hook binaries as processes, and the real Claude Code
//! CLI end to end against a scripted fake Messages API server.

// Tests start marshal's binaries and tools (mount, mkfifo, kill) as a user would, with their own
// time limits (support::process), and read the variables the test run was given.
#![allow(clippy::disallowed_methods)]

mod e2e;
mod enforcement;
mod hooks;
mod host_safety;
mod orchestration;
mod queue;
mod reliability;
mod support;
mod usage;
mod workflow;
