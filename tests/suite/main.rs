//! marshal's one integration-test binary: hook binaries as processes, and the real Claude Code
//! CLI end to end against a scripted fake Messages API server.

mod e2e;
mod enforcement;
mod hooks;
mod host_safety;
mod orchestration;
mod reliability;
mod support;
