//! `marshal-mcp`: an MCP server over stdio for marshal's work queue, so an orchestrating agent
//! queues work as tasks (which `marshal queue run` then carries out) instead of writing a plan
//! that nobody executes. The same database as `marshal queue`. This is the one marshal binary
//! that links an async runtime (rmcp needs tokio); the hooks and the `marshal` CLI do not.

use std::path::PathBuf;

use marshal_core::agents::Tier;
use marshal_core::paths::{self, StateDirEnv};
use marshal_core::store::Store;
use marshal_db::queue::{NewTask, TaskStatus};
use marshal_db::Db;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData as McpError, ServerHandler, ServiceExt};
use serde::Deserialize;
use serde_json::json;

/// The most tasks one call may queue.
const MAX_TASKS_PER_CALL: usize = 100;
/// The longest prompt a task may have.
const MAX_PROMPT_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct TaskInput {
    /// What to do, as a self-contained request.
    prompt: String,
    /// Run it on this tier instead of routing it: weak (chores), base (everyday work), strong (hard work).
    tier: Option<String>,
    /// Run it on this agent instead of routing it.
    agent: Option<String>,
    /// The folder it runs in (default: the session's project folder).
    project: Option<String>,
    /// Higher runs first (default 0).
    priority: Option<i64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct QueueTasksInput {
    /// The tasks to queue, in order.
    tasks: Vec<TaskInput>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct CompleteTaskInput {
    /// The task's id.
    id: i64,
    /// What was done.
    result: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct RunWorkflowInput {
    /// The workflow file (YAML or JSON), absolute or relative to the project folder.
    file: String,
    /// Variables, each "NAME=VALUE": they override the file's `vars`.
    vars: Option<Vec<String>>,
    /// Steps run at once, at most (1 to 16; default 2).
    concurrency: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct WorkflowStatusInput {
    /// The run's id, as run_workflow returned it (default: the latest run).
    run_id: Option<String>,
}

#[derive(Clone)]
struct QueueServer {
    database: PathBuf,
    state_dir: PathBuf,
    project: PathBuf,
    tool_router: ToolRouter<Self>,
}

fn failure(message: impl Into<String>) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::error(vec![ContentBlock::text(message.into())]))
}

fn answer(value: serde_json::Value) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::success(vec![ContentBlock::text(value.to_string())]))
}

#[tool_router]
impl QueueServer {
    fn open(&self) -> Result<Db, CallToolResult> {
        Db::open(&self.database).map_err(|err| {
            CallToolResult::error(vec![ContentBlock::text(format!(
                "marshal's queue is not available: {err:#}"
            ))])
        })
    }

    #[tool(
        description = "Queue tasks for marshal to run unattended (marshal queue run), each on the right model tier. \
                          Returns their ids. Use it instead of writing a plan: each task is a self-contained request."
    )]
    async fn queue_tasks(
        &self,
        Parameters(input): Parameters<QueueTasksInput>,
    ) -> Result<CallToolResult, McpError> {
        if input.tasks.is_empty() || input.tasks.len() > MAX_TASKS_PER_CALL {
            return failure(format!("give 1 to {MAX_TASKS_PER_CALL} tasks"));
        }
        let mut tasks = Vec::with_capacity(input.tasks.len());
        for (n, task) in input.tasks.into_iter().enumerate() {
            if task.prompt.trim().is_empty() || task.prompt.len() > MAX_PROMPT_BYTES {
                return failure(format!("task {n}: the prompt must be 1 to {MAX_PROMPT_BYTES} bytes"));
            }
            let tier = match task.tier.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                Some(text) => match Tier::parse(text) {
                    Some(tier) => Some(tier.as_str().to_string()),
                    None => return failure(format!("task {n}: tier '{text}' is not weak, base or strong")),
                },
                None => None,
            };
            let project = match task.project.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
                Some(dir) => match std::fs::canonicalize(dir) {
                    Ok(path) if path.is_dir() => path,
                    _ => return failure(format!("task {n}: project '{dir}' is not a folder")),
                },
                None => self.project.clone(),
            };
            tasks.push(NewTask {
                prompt: task.prompt,
                tier,
                agent: task.agent.map(|a| a.trim().to_string()).filter(|a| !a.is_empty()),
                project: project.display().to_string(),
                priority: task.priority.unwrap_or(0),
                not_before: None,
                after: None,
            });
        }
        let mut db = match self.open() {
            Ok(db) => db,
            Err(err) => return Ok(err),
        };
        match db.add_tasks(&tasks, &marshal_db::now()) {
            Ok(ids) => answer(json!({ "ids": ids })),
            Err(err) => failure(format!("could not queue the tasks: {err:#}")),
        }
    }

    #[tool(
        description = "Start a marshal workflow (a file of routed steps, run side by side where they do not depend \
                       on each other) in the background. Returns {run_id, name, file, status, pid, log} once it runs; \
                       follow it with get_workflow_status. A file with problems is not started: the problems are returned."
    )]
    async fn run_workflow(
        &self,
        Parameters(input): Parameters<RunWorkflowInput>,
    ) -> Result<CallToolResult, McpError> {
        let file = input.file.trim();
        if file.is_empty() {
            return failure("give the workflow file");
        }
        let path = self.project.join(file);
        if !path.is_file() {
            return failure(format!("no workflow file {}", path.display()));
        }
        let mut args = vec!["workflow".to_string(), "run".into(), path.display().to_string()];
        for var in input.vars.unwrap_or_default() {
            if !var.contains('=') {
                return failure(format!("variable '{var}' is not NAME=VALUE"));
            }
            args.extend(["--var".into(), var]);
        }
        if let Some(n) = input.concurrency {
            args.extend(["--concurrency".into(), n.to_string()]);
        }
        args.extend(["--detach".into(), "--json".into()]);
        self.marshal_cli(args).await
    }

    #[tool(
        description = "Show a marshal workflow run: {run_id, name, file, status, started, finished, steps: [{id, \
                       status, tier, model, agent, attempts, duration_ms, output_file, error}]}. Status is running, \
                       succeeded, failed or interrupted; each step's answer is in its output_file."
    )]
    async fn get_workflow_status(
        &self,
        Parameters(input): Parameters<WorkflowStatusInput>,
    ) -> Result<CallToolResult, McpError> {
        let mut args = vec!["workflow".to_string(), "status".into(), "--json".into()];
        if let Some(run) = input.run_id.map(|r| r.trim().to_string()).filter(|r| !r.is_empty()) {
            args.push(run);
        }
        self.marshal_cli(args).await
    }

    #[tool(description = "List the tasks waiting in marshal's queue, oldest first.")]
    async fn get_pending_tasks(&self) -> Result<CallToolResult, McpError> {
        let db = match self.open() {
            Ok(db) => db,
            Err(err) => return Ok(err),
        };
        match db.tasks(Some(TaskStatus::Pending)) {
            Ok(tasks) => answer(json!(tasks
                .iter()
                .map(|t| json!({"id": t.id, "prompt": t.prompt, "tier": t.tier, "agent": t.agent,
                                "project": t.project, "priority": t.priority, "created": t.created}))
                .collect::<Vec<_>>())),
            Err(err) => failure(format!("could not read the queue: {err:#}")),
        }
    }

    #[tool(description = "Mark a queued task done (for work done another way), with what was done.")]
    async fn complete_task(
        &self,
        Parameters(input): Parameters<CompleteTaskInput>,
    ) -> Result<CallToolResult, McpError> {
        let db = match self.open() {
            Ok(db) => db,
            Err(err) => return Ok(err),
        };
        match db.complete_task(input.id, input.result.as_deref(), &marshal_db::now()) {
            Ok(true) => answer(json!({"id": input.id, "status": "done"})),
            Ok(false) => match db.task(input.id) {
                Ok(Some(task)) => failure(format!(
                    "task {} is {}: only a pending or running task can be completed",
                    task.id,
                    task.status.as_str()
                )),
                _ => failure(format!("no task {}", input.id)),
            },
            Err(err) => failure(format!("could not complete task {}: {err:#}", input.id)),
        }
    }

    #[tool(
        description = "Count marshal's queued tasks by status: pending, running, done, failed, cancelled."
    )]
    async fn get_queue_status(&self) -> Result<CallToolResult, McpError> {
        let db = match self.open() {
            Ok(db) => db,
            Err(err) => return Ok(err),
        };
        match db.task_counts() {
            Ok(counts) => answer(serde_json::Value::Object(
                counts.into_iter().map(|(status, n)| (status.as_str().to_string(), json!(n))).collect(),
            )),
            Err(err) => failure(format!("could not read the queue: {err:#}")),
        }
    }
}

impl QueueServer {
    /// Workflows belong to the `marshal` CLI (its engine and run locks): the tools run it, with
    /// this server's state directory and project, and return what it prints.
    async fn marshal_cli(&self, args: Vec<String>) -> Result<CallToolResult, McpError> {
        let Some(program) = marshal_binary() else {
            return failure("the marshal CLI was not found next to marshal-mcp or on PATH");
        };
        let (project, state_dir) = (self.project.clone(), self.state_dir.clone());
        let cli_args = args.clone();
        let run = move || {
            marshal_core::spawn::marshal_output(
                &program,
                &cli_args,
                &project,
                &[("MARSHAL_STATE_DIR", state_dir.as_path())],
            )
        };
        let output = match tokio::task::spawn_blocking(run).await {
            Ok(Ok(output)) => output,
            Ok(Err(err)) => return failure(format!("{err:#}")),
            Err(err) => return failure(format!("could not run marshal: {err}")),
        };
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if output.status.success() {
            return Ok(CallToolResult::success(vec![ContentBlock::text(stdout)]));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said: Vec<&str> =
            [stdout.as_str(), stderr.trim()].into_iter().filter(|t| !t.is_empty()).collect();
        failure(format!("marshal {} failed ({}): {}", args[..2].join(" "), output.status, said.join("\n")))
    }
}

/// The `marshal` CLI installed beside this binary (the plugin's bin folder), else on PATH.
fn marshal_binary() -> Option<PathBuf> {
    marshal_core::spawn::beside_this_program("marshal")
        .filter(|path| marshal_core::spawn::is_executable(path))
        .or_else(|| marshal_core::spawn::resolve_program(None, "marshal"))
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for QueueServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("marshal", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "marshal's work queue: queue_tasks queues self-contained requests that `marshal queue run` \
                 carries out unattended, each on the cheapest adequate model tier. run_workflow starts a \
                 workflow file in the background; get_workflow_status follows it.",
            )
    }
}

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).is_some_and(|a| a == "--help" || a == "-h") {
        println!(
            "marshal-mcp: an MCP server (stdio) over marshal's work queue.\n\
             Tools: queue_tasks, get_pending_tasks, complete_task, get_queue_status, run_workflow,\n\
             get_workflow_status.\n\
             Claude Code starts it from the plugin's .mcp.json; by hand: marshal mcp."
        );
        return std::process::ExitCode::SUCCESS;
    }
    let Some(dir) = paths::state_dir_for_cli(&StateDirEnv::from_process()) else {
        eprintln!("marshal-mcp: no state directory: set MARSHAL_STATE_DIR or HOME");
        return std::process::ExitCode::from(2);
    };
    if let Err(err) =
        marshal_core::fsutil::ensure_private_dir(&dir).and_then(|()| Store::trusted(&dir).map(|_| ()))
    {
        eprintln!("marshal-mcp: {err:#}");
        return std::process::ExitCode::from(2);
    }
    let server = QueueServer {
        database: Store::new(&dir).database_path(),
        state_dir: dir.clone(),
        project: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        tool_router: QueueServer::tool_router(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("marshal-mcp: could not start: {err}");
            return std::process::ExitCode::from(1);
        }
    };
    let served = runtime.block_on(async {
        let service = server.serve(rmcp::transport::stdio()).await?;
        service.waiting().await?;
        anyhow::Ok(())
    });
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("marshal-mcp: {err:#}");
            std::process::ExitCode::from(1)
        }
    }
}
