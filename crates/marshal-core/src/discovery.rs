//! Agent discovery: the agents a directive may name, from the plugin's `agents/`, the user's
//! `~/.claude/agents/` and the project's `.claude/agents/` (front matter `name`, `description`,
//! `model`).
//!
//! Reading every agent file on every prompt would cost a few hundred microseconds, so what was
//! found is cached in the state directory and reused while the folders' modification times
//! are unchanged (adding, removing or renaming an agent file changes them).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::{fsutil, PLUGIN_NAME};

const CACHE_VERSION: u32 = 1;
/// Agent files read from one folder, at most (a folder of thousands is somebody's mistake).
const MAX_AGENT_FILES: usize = 256;

/// Where an agent was found; it decides the `subagent_type` that addresses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentSource {
    Plugin,
    User,
    Project,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    pub description: String,
    /// `haiku`, `sonnet`, `opus`, `fable`, `inherit` or a full model id; `None` when unset.
    pub model: Option<String>,
    pub source: AgentSource,
}

impl AgentInfo {
    /// The exact `subagent_type` for the Agent tool: plugin agents are `marshal:<name>`, user
    /// and project agents their bare name.
    pub fn subagent_type(&self) -> String {
        match self.source {
            AgentSource::Plugin => format!("{PLUGIN_NAME}:{}", self.name),
            AgentSource::User | AgentSource::Project => self.name.clone(),
        }
    }
}

/// The folders to search, in precedence order (a project agent shadows a user agent of the
/// same name, as in Claude Code).
pub fn agent_dirs(
    plugin_root: Option<&Path>,
    home: Option<&Path>,
    project: Option<&Path>,
) -> Vec<(AgentSource, PathBuf)> {
    let mut dirs = Vec::new();
    if let Some(project) = project {
        dirs.push((AgentSource::Project, project.join(".claude").join("agents")));
    }
    if let Some(home) = home {
        let user = home.join(".claude").join("agents");
        if !dirs.iter().any(|(_, d)| *d == user) {
            dirs.push((AgentSource::User, user));
        }
    }
    if let Some(root) = plugin_root {
        dirs.push((AgentSource::Plugin, root.join("agents")));
    }
    dirs
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cache {
    v: u32,
    /// Each folder with its modification time in nanoseconds (`None`: the folder is absent).
    dirs: Vec<(PathBuf, Option<u128>)>,
    agents: Vec<AgentInfo>,
}

fn dir_stamp(dir: &Path) -> Option<u128> {
    let modified = std::fs::metadata(dir).ok()?.modified().ok()?;
    Some(modified.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0))
}

/// The agents in `dirs`, from the cache at `cache_path` when it is still valid, and the files
/// skipped while reading them (worth a log line each; with the cache, said once per change).
/// Writing the cache is best effort: a read-only state directory only costs speed.
pub fn discover_cached(
    dirs: &[(AgentSource, PathBuf)],
    cache_path: Option<&Path>,
) -> (Vec<AgentInfo>, Vec<String>) {
    let stamps: Vec<(PathBuf, Option<u128>)> = dirs.iter().map(|(_, d)| (d.clone(), dir_stamp(d))).collect();
    if stamps.iter().all(|(_, stamp)| stamp.is_none()) {
        return (Vec::new(), Vec::new());
    }
    if let Some(path) = cache_path {
        let cached = fsutil::read_capped(path, fsutil::MAX_STATE_FILE_BYTES, fsutil::Links::Refuse)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Cache>(&b).ok());
        if let Some(cache) = cached.filter(|c| c.v == CACHE_VERSION && c.dirs == stamps) {
            return (cache.agents, Vec::new());
        }
    }
    let (agents, skipped) = discover(dirs);
    if let Some(path) = cache_path {
        let cache = Cache { v: CACHE_VERSION, dirs: stamps, agents: agents.clone() };
        if let Ok(bytes) = serde_json::to_vec(&cache) {
            if path.parent().is_some_and(Path::is_dir) {
                let _ = fsutil::write_atomic(path, &bytes);
            }
        }
    }
    (agents, skipped)
}

/// Reads every `*.md` agent file in `dirs` (later folders do not override earlier names), and
/// says which files were skipped. A project's folder comes from whatever repository was cloned:
/// each file is read bounded, and only if it is a regular file.
pub fn discover(dirs: &[(AgentSource, PathBuf)]) -> (Vec<AgentInfo>, Vec<String>) {
    let mut agents: Vec<AgentInfo> = Vec::new();
    let mut skipped = Vec::new();
    for (source, dir) in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .take(4 * MAX_AGENT_FILES)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        files.sort();
        if files.len() > MAX_AGENT_FILES {
            skipped.push(format!(
                "{}: more than {MAX_AGENT_FILES} agent files; only the first are read",
                dir.display()
            ));
            files.truncate(MAX_AGENT_FILES);
        }
        for file in files {
            let text = match fsutil::read_capped(&file, fsutil::MAX_AGENT_FILE_BYTES, fsutil::Links::Follow) {
                Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                Ok(None) => continue,
                Err(err) => {
                    skipped.push(format!("agent file {err:#}"));
                    continue;
                }
            };
            let fallback_name = file.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
            if let Some(agent) = parse_agent(&text, &fallback_name, *source) {
                if !agents.iter().any(|a| a.name == agent.name) {
                    agents.push(agent);
                }
            }
        }
    }
    (agents, skipped)
}

/// Parses the front matter of an agent file (`---` lines around `key: value` pairs; a `|` or
/// `>` value continues on the indented lines after it).
pub fn parse_agent(text: &str, fallback_name: &str, source: AgentSource) -> Option<AgentInfo> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "---" {
        return None;
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.trim() == "---" {
            break;
        }
        let continues = line.starts_with(' ') || line.starts_with('\t');
        match (continues, fields.last_mut()) {
            (true, Some((_, value))) => {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(line.trim());
            }
            _ => {
                if let Some((key, value)) = line.split_once(':') {
                    let value = value.trim();
                    let value = if matches!(value, "|" | ">" | "|-" | ">-") { "" } else { value };
                    fields.push((key.trim().to_string(), unquote(value).to_string()));
                }
            }
        }
    }
    let field =
        |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let name = field("name").unwrap_or_else(|| fallback_name.to_string());
    if name.is_empty() {
        return None;
    }
    Some(AgentInfo {
        name,
        description: field("description").unwrap_or_default(),
        model: field("model"),
        source,
    })
}

fn unquote(value: &str) -> &str {
    let stripped = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
    stripped.or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\''))).unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn front_matter_forms() {
        let agent = parse_agent(
            "---\nname: code-reviewer\ndescription: \"Reviews code: style, bugs\"\nmodel: sonnet\ntools: Read\n---\nbody",
            "file",
            AgentSource::User,
        )
        .unwrap();
        assert_eq!(agent.name, "code-reviewer");
        assert_eq!(agent.description, "Reviews code: style, bugs");
        assert_eq!(agent.model.as_deref(), Some("sonnet"));
        assert_eq!(agent.subagent_type(), "code-reviewer");
        let folded = parse_agent(
            "---\ndescription: |\n  Line one\n  line two\n---\n",
            "fallback",
            AgentSource::Plugin,
        )
        .unwrap();
        assert_eq!((folded.name.as_str(), folded.description.as_str()), ("fallback", "Line one line two"));
        assert_eq!(folded.subagent_type(), "marshal:fallback");
        assert!(parse_agent("no front matter", "x", AgentSource::User).is_none());
    }

    #[test]
    fn project_agents_shadow_user_agents_and_the_cache_follows_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let (home, project, state) =
            (tmp.path().join("home"), tmp.path().join("project"), tmp.path().join("state"));
        std::fs::create_dir_all(&state).unwrap();
        write(&home.join(".claude/agents/reviewer.md"), "---\nname: reviewer\ndescription: user one\n---\n");
        write(
            &project.join(".claude/agents/reviewer.md"),
            "---\nname: reviewer\ndescription: project one\n---\n",
        );
        let dirs = agent_dirs(None, Some(&home), Some(&project));
        let cache = state.join("agents-cache.json");
        let (found, _) = discover_cached(&dirs, Some(&cache));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].description.as_str(), found[0].source), ("project one", AgentSource::Project));
        assert!(cache.exists());

        // A new agent file changes the folder's time stamp: the cache is rebuilt.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(&home.join(".claude/agents/tester.md"), "---\nname: tester\nmodel: haiku\n---\n");
        let (found, _) = discover_cached(&dirs, Some(&cache));
        assert_eq!(found.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), vec!["reviewer", "tester"]);
        assert_eq!(discover_cached(&dirs, Some(&cache)).0, found, "served from the cache");
    }
}
