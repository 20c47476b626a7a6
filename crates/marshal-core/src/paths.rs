//! Where marshal keeps its files, and how untrusted ids become safe file names.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The environment facts that decide where state lives; read once, passed around.
#[derive(Debug, Clone, Default)]
pub struct StateDirEnv {
    pub marshal_state_dir: Option<OsString>,
    pub claude_plugin_data: Option<OsString>,
    pub home: Option<OsString>,
}

impl StateDirEnv {
    pub fn from_process() -> Self {
        StateDirEnv {
            marshal_state_dir: crate::env::state_dir(),
            claude_plugin_data: crate::env::claude_plugin_data(),
            home: crate::env::home_raw(),
        }
    }
}

/// The state directory: `MARSHAL_STATE_DIR`, else `CLAUDE_PLUGIN_DATA`, else `~/.claude/marshal`.
/// Empty and relative values count as unset. `None` when not even `HOME` is known.
pub fn state_dir(env: &StateDirEnv) -> Option<PathBuf> {
    // A relative path would put state wherever the hook happens to run: not accepted.
    let non_empty = |v: &Option<OsString>| v.as_ref().map(PathBuf::from).filter(|p| p.is_absolute());
    non_empty(&env.marshal_state_dir)
        .or_else(|| non_empty(&env.claude_plugin_data))
        .or_else(|| non_empty(&env.home).map(|h| h.join(".claude").join("marshal")))
}

/// Where the installed plugin keeps its data: Claude Code's `CLAUDE_PLUGIN_DATA` for the
/// `marshal` plugin from the `marshal` marketplace.
pub fn installed_plugin_data_dir(home: &Path) -> PathBuf {
    home.join(".claude").join("plugins").join("data").join("marshal-marshal")
}

/// The state directory as the `marshal` command sees it. A shell has no `CLAUDE_PLUGIN_DATA`,
/// so after the two variables it uses the installed plugin's data directory when the plugin is
/// installed (or its directory exists), before falling back to `~/.claude/marshal`.
pub fn state_dir_for_cli(env: &StateDirEnv) -> Option<PathBuf> {
    let set = |v: &Option<OsString>| v.as_ref().is_some_and(|s| !s.is_empty());
    if set(&env.marshal_state_dir) || set(&env.claude_plugin_data) {
        return state_dir(env);
    }
    let home = PathBuf::from(env.home.as_ref().filter(|h| !h.is_empty())?);
    let installed = installed_plugin_data_dir(&home);
    if installed.is_dir() || plugin_is_installed(&home) {
        Some(installed)
    } else {
        state_dir(env)
    }
}

/// Whether Claude Code's plugin registry lists marshal (right after install, before any hook
/// has run, the data directory does not exist yet).
fn plugin_is_installed(home: &Path) -> bool {
    let registry = home.join(".claude").join("plugins").join("installed_plugins.json");
    crate::fsutil::read_capped(&registry, 4 * 1024 * 1024, crate::fsutil::Links::Follow)
        .ok()
        .flatten()
        .is_some_and(|bytes| String::from_utf8_lossy(&bytes).contains("\"marshal@marshal\""))
}

/// Turns an id that came from outside (a session id, say) into a file-name stem that can never
/// leave its directory: plain ids are kept readable, anything else is replaced by a hash.
pub fn safe_file_stem(id: &str) -> String {
    let plain = !id.is_empty()
        && id.len() <= 96
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if plain {
        id.to_string()
    } else {
        format!("h{:016x}", fnv1a(id.as_bytes()))
    }
}

/// FNV-1a: a tiny stable hash; collisions only merge two hostile ids' session files.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(state: Option<&str>, data: Option<&str>, home: Option<&str>) -> StateDirEnv {
        StateDirEnv {
            marshal_state_dir: state.map(Into::into),
            claude_plugin_data: data.map(Into::into),
            home: home.map(Into::into),
        }
    }

    #[test]
    fn state_dir_precedence() {
        assert_eq!(state_dir(&env(Some("/s"), Some("/d"), Some("/h"))), Some("/s".into()));
        assert_eq!(state_dir(&env(None, Some("/d"), Some("/h"))), Some("/d".into()));
        assert_eq!(state_dir(&env(Some(""), Some(""), Some("/h"))), Some("/h/.claude/marshal".into()));
        assert_eq!(state_dir(&env(None, None, None)), None);
        let relative = env(Some("rel/dir"), None, Some("/h"));
        assert_eq!(state_dir(&relative), Some("/h/.claude/marshal".into()));
    }

    #[test]
    fn cli_prefers_the_installed_plugin_data_dir_when_no_variable_is_set() {
        let home = tempfile::tempdir().unwrap();
        let home_str = home.path().to_str().unwrap();
        let fallback = home.path().join(".claude/marshal");
        assert_eq!(state_dir_for_cli(&env(None, None, Some(home_str))), Some(fallback));
        let registry = home.path().join(".claude/plugins/installed_plugins.json");
        std::fs::create_dir_all(registry.parent().unwrap()).unwrap();
        std::fs::write(&registry, r#"{"version":2,"plugins":{"marshal@marshal":[]}}"#).unwrap();
        assert_eq!(
            state_dir_for_cli(&env(None, None, Some(home_str))),
            Some(installed_plugin_data_dir(home.path()))
        );
        std::fs::remove_file(&registry).unwrap();
        std::fs::create_dir_all(installed_plugin_data_dir(home.path())).unwrap();
        assert_eq!(
            state_dir_for_cli(&env(None, None, Some(home_str))),
            Some(installed_plugin_data_dir(home.path()))
        );
        assert_eq!(state_dir_for_cli(&env(Some("/s"), None, Some(home_str))), Some("/s".into()));
    }

    #[test]
    fn safe_file_stem_keeps_uuids_and_hashes_the_rest() {
        let uuid = "71067479-796b-472a-9867-6e6c555b3315";
        assert_eq!(safe_file_stem(uuid), uuid);
        for hostile in ["../../etc/passwd", "a/b", "..", ".hidden", "a\0b", "x\ny", ""] {
            let stem = safe_file_stem(hostile);
            assert!(stem.starts_with('h') && stem.len() == 17, "{hostile:?} -> {stem}");
        }
        assert_ne!(safe_file_stem("a/b"), safe_file_stem("a/c"));
    }
}
