//! Everything the hooks and routing consult besides the event, loaded from disk and the
//! environment: the layered configuration, the discovered agents and the history summary.

use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigEnv, ConfigError, Provenance};
use crate::discovery::{self, AgentInfo};
use crate::history::{History, HISTORY_FILE};
use crate::routing::RouteInputs;

/// The layered configuration, or the defaults with the error that made them necessary. A
/// broken configuration never stops a hook.
pub struct LoadedConfig {
    pub config: Config,
    pub provenance: Provenance,
    pub config_error: Option<ConfigError>,
}

impl LoadedConfig {
    pub fn load(project: Option<&Path>) -> Self {
        match config::load(&ConfigEnv::from_process(project)) {
            Ok((config, provenance)) => LoadedConfig { config, provenance, config_error: None },
            Err(error) => LoadedConfig {
                config: Config::default(),
                provenance: Provenance { layers: vec!["defaults".into()], ..Default::default() },
                config_error: Some(error),
            },
        }
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

/// What routing consults: the configuration plus discovered agents and history.
pub struct RoutingContext {
    pub loaded: LoadedConfig,
    pub agents: Vec<AgentInfo>,
    pub history: History,
}

impl RoutingContext {
    pub fn load(state_dir: Option<&Path>, project: Option<&Path>, plugin_root: Option<&Path>) -> Self {
        Self::with_config(LoadedConfig::load(project), state_dir, project, plugin_root)
    }

    /// Adds discovered agents and history to an already loaded configuration.
    pub fn with_config(
        loaded: LoadedConfig,
        state_dir: Option<&Path>,
        project: Option<&Path>,
        plugin_root: Option<&Path>,
    ) -> Self {
        let config = &loaded.config;
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let agents = if config.agent_discovery {
            let dirs = discovery::agent_dirs(plugin_root, home.as_deref(), project);
            discovery::discover_cached(&dirs, state_dir)
        } else {
            Vec::new()
        };
        let history = match (config.history, state_dir) {
            (true, Some(dir)) => History::load(&dir.join(HISTORY_FILE)),
            _ => History::default(),
        };
        RoutingContext { loaded, agents, history }
    }

    pub fn config(&self) -> &Config {
        &self.loaded.config
    }

    pub fn inputs(&self) -> RouteInputs<'_> {
        RouteInputs { config: &self.loaded.config, agents: &self.agents, history: Some(&self.history) }
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
