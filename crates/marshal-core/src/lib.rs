//! marshal's domain: hook events, routing, context detection, the ledger and compliance.
//!
//! The hook binaries in the `marshal` crate are thin: they read stdin, call into [`hook`], and
//! print what it returns. Everything that decides something lives here as a pure function.

pub mod agents;
pub mod builtin;
pub mod classifier;
pub mod compliance;
pub mod config;
pub mod context;
pub mod discovery;
pub mod enforcement;
pub mod env;
pub mod event;
pub mod fsutil;
pub mod history;
pub mod hook;
pub mod ledger;
pub mod lock;
pub mod log;
pub mod mode;
pub mod orchestrate;
pub mod paths;
pub mod pricing;
pub mod prompt_text;
pub mod quota;
pub mod report;
pub mod routing;
pub mod session;
pub mod spawn;
pub mod store;
pub mod turns;
pub mod usage;
pub mod wire;
pub mod workflow;

/// The plugin's name, as Claude Code knows it: plugin agents are addressed as `marshal:<agent>`.
pub const PLUGIN_NAME: &str = "marshal";
