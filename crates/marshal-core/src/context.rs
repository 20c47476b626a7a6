//! Everything the hooks and routing consult besides the event, loaded from disk and the
//! environment: the layered configuration, the discovered agents and the history summary.

use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigEnv, Provenance};
use crate::discovery::{self, AgentInfo};
use crate::history::History;
use crate::routing::RouteInputs;
use crate::store::Store;

/// The layered configuration, with what was wrong in it. A broken value costs only its own key,
/// and never stops a hook.
pub struct LoadedConfig {
    pub config: Config,
    pub provenance: Provenance,
}

impl LoadedConfig {
    pub fn load(project: Option<&Path>) -> Self {
        let (config, provenance) = config::load(&ConfigEnv::from_process(project));
        LoadedConfig { config, provenance }
    }

    /// Lines worth logging: errors (each key that fell back), then warnings.
    pub fn problems(&self) -> Vec<String> {
        let errors =
            self.provenance.errors.iter().map(|e| format!("configuration error, that key is ignored: {e}"));
        let warnings = self.provenance.warnings.iter().map(|w| format!("configuration: {w}"));
        errors.chain(warnings).collect()
    }

    /// The files the configuration was read from (their changes decide when problems are logged
    /// again).
    pub fn files(&self) -> Vec<&Path> {
        let named = self.provenance.layers.iter().map(|l| l.strip_prefix("MARSHAL_CONFIG=").unwrap_or(l));
        let errors = self.provenance.errors.iter().map(|e| e.source.as_str());
        named.chain(errors).map(Path::new).filter(|p| p.is_absolute()).collect()
    }
}

/// What routing consults: the configuration plus discovered agents and history.
pub struct RoutingContext {
    pub loaded: LoadedConfig,
    pub agents: Vec<AgentInfo>,
    /// Agent files that were skipped (not regular files, too large): worth a log line each.
    pub skipped_agents: Vec<String>,
    pub history: History,
    /// The 5-hour window's use from the last status-line snapshot, while that window is current.
    pub five_hour_used: Option<f64>,
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
        let home = crate::env::home();
        let store = state_dir.map(Store::new);
        let (agents, skipped_agents) = if config.agent_discovery {
            let dirs = discovery::agent_dirs(plugin_root, home.as_deref(), project);
            let cache = store.as_ref().map(Store::agents_cache_path);
            discovery::discover_cached(&dirs, cache.as_deref())
        } else {
            (Vec::new(), Vec::new())
        };
        let history = match (config.history, &store) {
            (true, Some(store)) => History::load(&store.history_path()),
            _ => History::default(),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let five_hour_used = store
            .as_ref()
            .filter(|_| config.budget_step_down_at.is_some())
            .and_then(|store| crate::quota::RateLimits::load(&store.rate_limits_path()))
            .and_then(|limits| limits.five_hour_used(now));
        RoutingContext { loaded, agents, skipped_agents, history, five_hour_used }
    }

    pub fn config(&self) -> &Config {
        &self.loaded.config
    }

    pub fn inputs(&self) -> RouteInputs<'_> {
        RouteInputs {
            config: &self.loaded.config,
            agents: &self.agents,
            history: Some(&self.history),
            five_hour_used: self.five_hour_used,
        }
    }
}

/// The plugin folder a hook runs from (`CLAUDE_PLUGIN_ROOT`), or the one holding this binary
/// (`<plugin>/bin/<binary>`) when run by hand.
pub fn plugin_root() -> Option<PathBuf> {
    if let Some(root) = crate::env::claude_plugin_root() {
        return Some(root);
    }
    let exe = std::env::current_exe().ok()?;
    let root = exe.parent()?.parent()?;
    root.join("agents").is_dir().then(|| root.to_path_buf())
}
