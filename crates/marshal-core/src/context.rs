//! Everything routing consults besides the prompt, loaded from disk and the environment:
//! the layered configuration, the discovered agents and the history summary.

use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigEnv, ConfigError, Provenance};
use crate::discovery::{self, AgentInfo};
use crate::history::{History, HISTORY_FILE};
use crate::routing::RouteInputs;

pub struct RoutingContext {
    pub config: Config,
    pub provenance: Provenance,
    /// Set when the configuration was broken and the defaults are in use instead.
    pub config_error: Option<ConfigError>,
    pub agents: Vec<AgentInfo>,
    pub history: History,
}

impl RoutingContext {
    /// Loads what routing needs. A broken configuration never stops routing: the defaults are
    /// used and the error is kept for the caller to report.
    pub fn load(state_dir: Option<&Path>, project: Option<&Path>, plugin_root: Option<&Path>) -> Self {
        let env = ConfigEnv::from_process(project);
        let (config, provenance, config_error) = match config::load(&env) {
            Ok((config, provenance)) => (config, provenance, None),
            Err(error) => (
                Config::default(),
                Provenance { layers: vec!["defaults".into()], ..Default::default() },
                Some(error),
            ),
        };
        let agents = if config.agent_discovery {
            let dirs = discovery::agent_dirs(plugin_root, env.home.as_deref(), project);
            discovery::discover_cached(&dirs, state_dir)
        } else {
            Vec::new()
        };
        let history = match (config.history, state_dir) {
            (true, Some(dir)) => History::load(&dir.join(HISTORY_FILE)),
            _ => History::default(),
        };
        RoutingContext { config, provenance, config_error, agents, history }
    }

    pub fn inputs(&self) -> RouteInputs<'_> {
        RouteInputs { config: &self.config, agents: &self.agents, history: Some(&self.history) }
    }

    /// Lines worth logging: a configuration error, then any warnings.
    pub fn problems(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(error) = &self.config_error {
            lines.push(format!("configuration error, using the defaults: {error}"));
        }
        lines.extend(self.provenance.warnings.iter().map(|w| format!("configuration: {w}")));
        lines
    }
}

/// The plugin folder a hook runs from (`CLAUDE_PLUGIN_ROOT`), or the one holding this binary
/// (`<plugin>/bin/<binary>`) when run by hand.
pub fn plugin_root() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("CLAUDE_PLUGIN_ROOT").filter(|r| !r.is_empty()) {
        return Some(PathBuf::from(root));
    }
    let exe = std::env::current_exe().ok()?;
    let root = exe.parent()?.parent()?;
    root.join("agents").is_dir().then(|| root.to_path_buf())
}
