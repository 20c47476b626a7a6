//! Workflow runs: one row per run (with the workflow's text as it was when the run started, so
//! a resume runs the same steps even if the file changed since) and one row per step, with its
//! status, route, attempts and output. Only the process running a run writes its rows.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use rusqlite::{params, OptionalExtension, Row};

use crate::Db;

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Being run (or its runner died: the CLI tells the two apart by the run's lock).
    Running,
    Succeeded,
    Failed,
    /// Stopped by a signal before it finished; `resume` carries on.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    fn parse(text: &str) -> Option<RunStatus> {
        [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed, RunStatus::Interrupted]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// How a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Not run: a step it depends on failed (and stops its dependants), or was skipped.
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Option<StepStatus> {
        [
            StepStatus::Pending,
            StepStatus::Running,
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::Skipped,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A run about to start.
pub struct NewRun<'a> {
    pub run_id: &'a str,
    pub name: &'a str,
    pub file: &'a str,
    /// The workflow file's text.
    pub source: &'a str,
    /// The `--var NAME=VALUE` overrides, as given.
    pub vars: &'a [String],
    /// The folder the steps run in.
    pub project: &'a str,
    pub concurrency: u32,
    pub started: &'a str,
    /// The step ids, in file order.
    pub steps: &'a [&'a str],
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub run_id: String,
    pub name: String,
    pub file: String,
    pub source: String,
    pub vars: Vec<String>,
    pub project: String,
    pub concurrency: u32,
    pub status: RunStatus,
    pub started: String,
    pub finished: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub step_id: String,
    pub status: StepStatus,
    pub tier: Option<String>,
    pub model: Option<String>,
    pub agent: Option<String>,
    /// Orchestration attempts, over every run of the step (a resume adds to them).
    pub attempts: u32,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub duration_ms: Option<u64>,
    pub output_file: Option<String>,
    pub error: Option<String>,
}

/// Who runs a step, set when it starts.
pub struct StepRoute<'a> {
    pub tier: &'a str,
    pub model: &'a str,
    pub agent: &'a str,
}

/// How a step ended.
pub struct StepEnd<'a> {
    pub status: StepStatus,
    /// Who ran the last attempt (escalation may have moved it up from the route it started with).
    pub route: StepRoute<'a>,
    pub attempts: u32,
    pub finished: &'a str,
    pub duration_ms: u64,
    pub output: Option<&'a str>,
    pub output_file: Option<&'a str>,
    pub error: Option<&'a str>,
}

const RUN_COLUMNS: &str = "run_id, name, file, source, vars, project, concurrency, status, started, finished";
const STEP_COLUMNS: &str =
    "step_id, status, tier, model, agent, attempts, started, finished, duration_ms, output_file, error";

impl Db {
    /// Records a new run and its steps, all pending, in one transaction.
    pub fn create_run(&mut self, run: &NewRun) -> Result<()> {
        let tx = self.conn_mut().transaction()?;
        tx.execute(
            "INSERT INTO workflow_runs (run_id, name, file, source, vars, project, concurrency, status, started)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8)",
            params![
                run.run_id,
                run.name,
                run.file,
                run.source,
                serde_json::to_string(run.vars)?,
                run.project,
                run.concurrency,
                run.started
            ],
        )
        .with_context(|| format!("could not record run {}", run.run_id))?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO workflow_steps (run_id, step_id, position, status) VALUES (?1, ?2, ?3, 'pending')",
            )?;
            for (position, step) in run.steps.iter().enumerate() {
                insert.execute(params![run.run_id, step, position as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn run(&self, run_id: &str) -> Result<Option<RunRow>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE run_id = ?1");
        Ok(self.conn().query_row(&sql, [run_id], run_row).optional()?)
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRow>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM workflow_runs ORDER BY started, run_id");
        let mut statement = self.conn().prepare(&sql)?;
        let rows = statement.query_map([], run_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The steps of a run, in file order.
    pub fn steps(&self, run_id: &str) -> Result<Vec<StepRow>> {
        let sql = format!("SELECT {STEP_COLUMNS} FROM workflow_steps WHERE run_id = ?1 ORDER BY position");
        let mut statement = self.conn().prepare(&sql)?;
        let rows = statement.query_map([run_id], step_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// What each step that has succeeded answered.
    pub fn outputs(&self, run_id: &str) -> Result<BTreeMap<String, String>> {
        let mut statement = self.conn().prepare(
            "SELECT step_id, coalesce(output, '') FROM workflow_steps WHERE run_id = ?1 AND status = 'succeeded'",
        )?;
        let rows = statement.query_map([run_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn set_run_status(&self, run_id: &str, status: RunStatus, finished: Option<&str>) -> Result<()> {
        let changed = self.conn().execute(
            "UPDATE workflow_runs SET status = ?2, finished = ?3 WHERE run_id = ?1",
            params![run_id, status.as_str(), finished],
        )?;
        if changed == 0 {
            bail!("no workflow run {run_id}");
        }
        Ok(())
    }

    /// A resume: every step that has not succeeded is pending again (a step left `running` by a
    /// runner that died is re-run, a failed or skipped one gets another chance); the run is
    /// running again.
    pub fn reopen_run(&mut self, run_id: &str) -> Result<()> {
        let tx = self.conn_mut().transaction()?;
        tx.execute(
            "UPDATE workflow_steps SET status = 'pending', error = NULL
             WHERE run_id = ?1 AND status != 'succeeded'",
            [run_id],
        )?;
        tx.execute(
            "UPDATE workflow_runs SET status = 'running', finished = NULL WHERE run_id = ?1",
            [run_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn step_started(&self, run_id: &str, step_id: &str, route: &StepRoute, started: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE workflow_steps SET status = 'running', tier = ?3, model = ?4, agent = ?5, started = ?6,
                 finished = NULL, duration_ms = NULL, error = NULL
             WHERE run_id = ?1 AND step_id = ?2",
            params![run_id, step_id, route.tier, route.model, route.agent, started],
        )?;
        Ok(())
    }

    pub fn step_ended(&self, run_id: &str, step_id: &str, end: &StepEnd) -> Result<()> {
        self.conn().execute(
            "UPDATE workflow_steps SET status = ?3, tier = ?4, model = ?5, agent = ?6, attempts = attempts + ?7,
                 finished = ?8, duration_ms = ?9, output = ?10, output_file = ?11, error = ?12
             WHERE run_id = ?1 AND step_id = ?2",
            params![
                run_id,
                step_id,
                end.status.as_str(),
                end.route.tier,
                end.route.model,
                end.route.agent,
                end.attempts,
                end.finished,
                end.duration_ms as i64,
                end.output,
                end.output_file,
                end.error
            ],
        )?;
        Ok(())
    }

    /// A step that will not run, or that goes back to waiting (its runner was stopped).
    pub fn set_step_status(
        &self,
        run_id: &str,
        step_id: &str,
        status: StepStatus,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE workflow_steps SET status = ?3, error = ?4 WHERE run_id = ?1 AND step_id = ?2",
            params![run_id, step_id, status.as_str(), error],
        )?;
        Ok(())
    }
}

fn run_row(row: &Row) -> rusqlite::Result<RunRow> {
    let vars: String = row.get(4)?;
    let status: String = row.get(7)?;
    Ok(RunRow {
        run_id: row.get(0)?,
        name: row.get(1)?,
        file: row.get(2)?,
        source: row.get(3)?,
        vars: serde_json::from_str(&vars).unwrap_or_default(),
        project: row.get(5)?,
        concurrency: row.get(6)?,
        // The CHECK constraint admits only known values.
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        started: row.get(8)?,
        finished: row.get(9)?,
    })
}

fn step_row(row: &Row) -> rusqlite::Result<StepRow> {
    let status: String = row.get(1)?;
    let duration: Option<i64> = row.get(8)?;
    Ok(StepRow {
        step_id: row.get(0)?,
        status: StepStatus::parse(&status).unwrap_or(StepStatus::Failed),
        tier: row.get(2)?,
        model: row.get(3)?,
        agent: row.get(4)?,
        attempts: row.get(5)?,
        started: row.get(6)?,
        finished: row.get(7)?,
        duration_ms: duration.map(|d| d.max(0) as u64),
        output_file: row.get(9)?,
        error: row.get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run(db: &mut Db, run_id: &str, started: &str) {
        db.create_run(&NewRun {
            run_id,
            name: "demo",
            file: "wf.yaml",
            source: "name: demo",
            vars: &["topic=queues".to_string()],
            project: "/tmp",
            concurrency: 2,
            started,
            steps: &["search", "critique", "summary"],
        })
        .unwrap();
    }

    const ROUTE: StepRoute = StepRoute { tier: "weak", model: "haiku", agent: "haiku-general" };

    #[test]
    fn a_run_records_its_steps_in_order_and_keeps_outputs_of_succeeded_steps_only() {
        let mut db = Db::in_memory().unwrap();
        new_run(&mut db, "r1", "2026-11-21T10:00:00Z");
        let run = db.run("r1").unwrap().unwrap();
        assert_eq!(
            (run.status, run.vars.clone(), run.concurrency),
            (RunStatus::Running, vec!["topic=queues".into()], 2)
        );
        db.step_started("r1", "search", &ROUTE, "t1").unwrap();
        let end = |status, output| StepEnd {
            status,
            route: StepRoute { tier: "base", model: "sonnet", agent: "sonnet-general" },
            attempts: 2,
            finished: "t2",
            duration_ms: 1500,
            output,
            output_file: Some("/x/search.txt"),
            error: None,
        };
        db.step_ended("r1", "search", &end(StepStatus::Succeeded, Some("three papers"))).unwrap();
        db.step_ended("r1", "critique", &end(StepStatus::Failed, Some("partial"))).unwrap();
        db.set_step_status("r1", "summary", StepStatus::Skipped, Some("critique failed")).unwrap();
        let steps = db.steps("r1").unwrap();
        let seen: Vec<(&str, StepStatus)> = steps.iter().map(|s| (s.step_id.as_str(), s.status)).collect();
        assert_eq!(
            seen,
            [
                ("search", StepStatus::Succeeded),
                ("critique", StepStatus::Failed),
                ("summary", StepStatus::Skipped)
            ]
        );
        assert_eq!(
            (steps[0].model.as_deref(), steps[0].attempts, steps[0].duration_ms),
            (Some("sonnet"), 2, Some(1500))
        );
        assert_eq!(
            db.outputs("r1").unwrap(),
            BTreeMap::from([("search".to_string(), "three papers".to_string())])
        );

        db.reopen_run("r1").unwrap();
        let statuses: Vec<StepStatus> = db.steps("r1").unwrap().iter().map(|s| s.status).collect();
        assert_eq!(statuses, [StepStatus::Succeeded, StepStatus::Pending, StepStatus::Pending]);
        db.step_ended("r1", "critique", &end(StepStatus::Succeeded, Some("fine"))).unwrap();
        assert_eq!(db.steps("r1").unwrap()[1].attempts, 4, "a resume adds to the attempts");
    }

    #[test]
    fn runs_are_listed_oldest_first_and_an_unknown_run_is_none() {
        let mut db = Db::in_memory().unwrap();
        new_run(&mut db, "later", "2026-11-21T11:00:00Z");
        new_run(&mut db, "earlier", "2026-11-21T09:00:00Z");
        db.set_run_status("earlier", RunStatus::Succeeded, Some("2026-11-21T09:05:00Z")).unwrap();
        let runs: Vec<(String, RunStatus)> =
            db.runs().unwrap().into_iter().map(|r| (r.run_id, r.status)).collect();
        assert_eq!(runs, [("earlier".into(), RunStatus::Succeeded), ("later".into(), RunStatus::Running)]);
        assert_eq!(db.run("nope").unwrap(), None);
        assert!(db.set_run_status("nope", RunStatus::Failed, None).is_err());
    }

    #[test]
    fn two_connections_see_each_others_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marshal.db");
        let mut first = Db::open(&path).unwrap();
        let mut second = Db::open(&path).unwrap();
        new_run(&mut first, "a", "2026-11-21T10:00:00Z");
        new_run(&mut second, "b", "2026-11-21T10:00:01Z");
        assert_eq!(first.runs().unwrap().len(), 2);
    }
}
