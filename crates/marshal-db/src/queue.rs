//! The work queue: tasks (a prompt, optionally a tier or agent, a project folder) waiting to be
//! run unattended. A runner claims one task at a time in a `BEGIN IMMEDIATE` transaction with
//! `UPDATE ... RETURNING`, under a lease it renews while the task runs; a task whose runner died
//! goes back to being claimable when its lease runs out. So no task ever runs twice at once, and
//! none is lost.

use anyhow::{bail, Result};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use crate::Db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Done,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A task to add.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub prompt: String,
    pub tier: Option<String>,
    pub agent: Option<String>,
    pub project: String,
    pub priority: i64,
    /// Not claimed before this time (RFC 3339, UTC).
    pub not_before: Option<String>,
    /// Not claimed before this task is done.
    pub after: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: i64,
    pub status: TaskStatus,
    pub prompt: String,
    pub tier: Option<String>,
    pub agent: Option<String>,
    pub project: String,
    pub priority: i64,
    pub not_before: Option<String>,
    pub after: Option<i64>,
    /// Attempts that counted (a rate-limited one does not).
    pub attempts: u32,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub lease_until: Option<String>,
    pub runner: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
}

const TASK_COLUMNS: &str =
    "id, status, prompt, tier, agent, project, priority, not_before, after_id, attempts, \
                            created, started, finished, lease_until, runner, result, error";

pub(crate) const MIGRATION: &str = "CREATE TABLE queue_tasks (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled')),
        prompt      TEXT NOT NULL,
        tier        TEXT,
        agent       TEXT,
        project     TEXT NOT NULL,
        priority    INTEGER NOT NULL DEFAULT 0,
        not_before  TEXT,
        after_id    INTEGER REFERENCES queue_tasks (id),
        attempts    INTEGER NOT NULL DEFAULT 0,
        created     TEXT NOT NULL,
        started     TEXT,
        finished    TEXT,
        lease_until TEXT,
        runner      TEXT,
        result      TEXT,
        error       TEXT
    );
    CREATE INDEX queue_tasks_claim ON queue_tasks (status, priority DESC, id);";

impl Db {
    /// Adds a task; returns its id.
    pub fn add_task(&self, task: &NewTask, now: &str) -> Result<i64> {
        if let Some(after) = task.after {
            if self.task(after)?.is_none() {
                bail!("no task {after} to wait for");
            }
        }
        insert_task(self.conn(), task, now)
    }

    /// Adds several tasks in one transaction; returns their ids in order.
    pub fn add_tasks(&mut self, tasks: &[NewTask], now: &str) -> Result<Vec<i64>> {
        let tx = self.conn_mut().transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids = tasks.iter().map(|task| insert_task(&tx, task, now)).collect::<Result<_>>()?;
        tx.commit()?;
        Ok(ids)
    }

    pub fn task(&self, id: i64) -> Result<Option<Task>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM queue_tasks WHERE id = ?1");
        Ok(self.conn().query_row(&sql, [id], task_row).optional()?)
    }

    /// Every task, oldest first (optionally only those with one status).
    pub fn tasks(&self, status: Option<TaskStatus>) -> Result<Vec<Task>> {
        let sql =
            format!("SELECT {TASK_COLUMNS} FROM queue_tasks WHERE ?1 IS NULL OR status = ?1 ORDER BY id");
        let mut statement = self.conn().prepare(&sql)?;
        let rows = statement.query_map([status.map(TaskStatus::as_str)], task_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many tasks have each status (every status listed, zeros included).
    pub fn task_counts(&self) -> Result<Vec<(TaskStatus, u64)>> {
        let mut statement =
            self.conn().prepare("SELECT status, count(*) FROM queue_tasks GROUP BY status")?;
        let found: Vec<(String, i64)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(TaskStatus::ALL
            .into_iter()
            .map(|status| {
                (
                    status,
                    found.iter().find(|(s, _)| s == status.as_str()).map_or(0, |(_, n)| (*n).max(0) as u64),
                )
            })
            .collect())
    }

    /// Claims the next task that may run now: pending (or running under a lease that ran out),
    /// past its `not_before`, its `after` task done; highest priority first, then oldest. The
    /// claim is one statement in an immediate transaction, so two runners never get one task.
    pub fn claim_task(&mut self, runner: &str, now: &str, lease_until: &str) -> Result<Option<Task>> {
        let tx = self.conn_mut().transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sql = format!(
            "UPDATE queue_tasks
             SET status = 'running', runner = ?1, lease_until = ?3, started = ?2, attempts = attempts + 1,
                 error = NULL
             WHERE id = (
                 SELECT id FROM queue_tasks AS t
                 WHERE (t.status = 'pending' OR (t.status = 'running' AND t.lease_until < ?2))
                   AND (t.not_before IS NULL OR t.not_before <= ?2)
                   AND (t.after_id IS NULL
                        OR EXISTS (SELECT 1 FROM queue_tasks AS d WHERE d.id = t.after_id AND d.status = 'done'))
                 ORDER BY t.priority DESC, t.id
                 LIMIT 1)
             RETURNING {TASK_COLUMNS}"
        );
        let task = tx.query_row(&sql, params![runner, now, lease_until], task_row).optional()?;
        tx.commit()?;
        Ok(task)
    }

    /// The earliest time a pending task waits for (after `now`), and whether it waits for a
    /// rate limit to reset (its note says so).
    pub fn next_wait(&self, now: &str) -> Result<Option<(String, bool)>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT not_before, coalesce(error, '') LIKE 'rate limited%' FROM queue_tasks
                 WHERE status = 'pending' AND not_before > ?1 ORDER BY not_before LIMIT 1",
                [now],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
    }

    /// Extends the lease of a task this runner holds; false if it no longer holds it.
    pub fn renew_lease(&self, id: i64, runner: &str, lease_until: &str) -> Result<bool> {
        let changed = self.conn().execute(
            "UPDATE queue_tasks SET lease_until = ?3 WHERE id = ?1 AND runner = ?2 AND status = 'running'",
            params![id, runner, lease_until],
        )?;
        Ok(changed == 1)
    }

    /// Ends a task this runner holds, as done or failed; false if it no longer holds it (its
    /// lease ran out and another runner took it, or it was cancelled).
    pub fn finish_task(
        &self,
        id: i64,
        runner: &str,
        status: TaskStatus,
        result: Option<&str>,
        error: Option<&str>,
        now: &str,
    ) -> Result<bool> {
        let changed = self.conn().execute(
            "UPDATE queue_tasks SET status = ?3, result = ?4, error = ?5, finished = ?6, lease_until = NULL
             WHERE id = ?1 AND runner = ?2 AND status = 'running'",
            params![id, runner, status.as_str(), result, error, now],
        )?;
        Ok(changed == 1)
    }

    /// Puts a task this runner holds back to pending (a rate limit, a stop): the attempt does
    /// not count, and it is not claimed again before `not_before`, when given.
    pub fn release_task(&self, id: i64, runner: &str, not_before: Option<&str>, note: &str) -> Result<bool> {
        let changed = self.conn().execute(
            "UPDATE queue_tasks
             SET status = 'pending', attempts = max(attempts - 1, 0), lease_until = NULL, runner = NULL,
                 not_before = coalesce(?3, not_before), error = ?4
             WHERE id = ?1 AND runner = ?2 AND status = 'running'",
            params![id, runner, not_before, note],
        )?;
        Ok(changed == 1)
    }

    /// Marks a task done from outside a runner (an agent that did the work itself, through the
    /// MCP server): a pending or running task only.
    pub fn complete_task(&self, id: i64, result: Option<&str>, now: &str) -> Result<bool> {
        let changed = self.conn().execute(
            "UPDATE queue_tasks SET status = 'done', result = ?2, finished = ?3, lease_until = NULL
             WHERE id = ?1 AND status IN ('pending', 'running')",
            params![id, result, now],
        )?;
        Ok(changed == 1)
    }

    /// Cancels a pending task (a running one is left to its runner); false if it was not pending.
    pub fn cancel_task(&self, id: i64, now: &str) -> Result<bool> {
        let changed = self.conn().execute(
            "UPDATE queue_tasks SET status = 'cancelled', finished = ?2 WHERE id = ?1 AND status = 'pending'",
            params![id, now],
        )?;
        Ok(changed == 1)
    }

    /// Puts a failed or cancelled task back to pending, with its attempts reset.
    pub fn retry_task(&self, id: i64) -> Result<bool> {
        let changed = self.conn().execute(
            "UPDATE queue_tasks
             SET status = 'pending', attempts = 0, error = NULL, result = NULL, finished = NULL, started = NULL
             WHERE id = ?1 AND status IN ('failed', 'cancelled')",
            [id],
        )?;
        Ok(changed == 1)
    }
}

fn insert_task(conn: &rusqlite::Connection, task: &NewTask, now: &str) -> Result<i64> {
    conn.execute(
        "INSERT INTO queue_tasks (status, prompt, tier, agent, project, priority, not_before, after_id, created)
         VALUES ('pending', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![task.prompt, task.tier, task.agent, task.project, task.priority, task.not_before, task.after, now],
    )?;
    Ok(conn.last_insert_rowid())
}

fn task_row(row: &Row) -> rusqlite::Result<Task> {
    let status: String = row.get(1)?;
    Ok(Task {
        id: row.get(0)?,
        status: TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed),
        prompt: row.get(2)?,
        tier: row.get(3)?,
        agent: row.get(4)?,
        project: row.get(5)?,
        priority: row.get(6)?,
        not_before: row.get(7)?,
        after: row.get(8)?,
        attempts: row.get(9)?,
        created: row.get(10)?,
        started: row.get(11)?,
        finished: row.get(12)?,
        lease_until: row.get(13)?,
        runner: row.get(14)?,
        result: row.get(15)?,
        error: row.get(16)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(prompt: &str) -> NewTask {
        NewTask { prompt: prompt.into(), project: "/p".into(), ..NewTask::default() }
    }

    const T0: &str = "2026-11-21T10:00:00.000Z";
    const T1: &str = "2026-11-21T10:05:00.000Z";
    const T2: &str = "2026-11-21T10:20:00.000Z";

    #[test]
    fn claims_go_by_priority_then_age_and_respect_not_before_and_after() {
        let mut db = Db::in_memory().unwrap();
        let first = db.add_task(&task("first"), T0).unwrap();
        let urgent = db.add_task(&NewTask { priority: 5, ..task("urgent") }, T0).unwrap();
        let later =
            db.add_task(&NewTask { not_before: Some(T2.into()), priority: 9, ..task("later") }, T0).unwrap();
        let then = db.add_task(&NewTask { after: Some(first), priority: 9, ..task("then") }, T0).unwrap();
        let claim = |db: &mut Db, now: &str| db.claim_task("r1", now, T2).unwrap().map(|t| t.id);
        assert_eq!(claim(&mut db, T0), Some(urgent));
        assert_eq!(claim(&mut db, T0), Some(first));
        assert_eq!(claim(&mut db, T0), None, "then waits for first; later waits for its time");
        assert!(db.finish_task(first, "r1", TaskStatus::Done, Some("ok"), None, T1).unwrap());
        assert_eq!(claim(&mut db, T1), Some(then));
        assert_eq!(claim(&mut db, T2), Some(later));
        assert!(db.add_task(&NewTask { after: Some(99), ..task("x") }, T0).is_err());
    }

    #[test]
    fn an_expired_lease_returns_the_task_and_the_old_runner_can_no_longer_finish_it() {
        let mut db = Db::in_memory().unwrap();
        let id = db.add_task(&task("work"), T0).unwrap();
        let claimed = db.claim_task("dead", T0, T1).unwrap().unwrap();
        assert_eq!((claimed.id, claimed.status, claimed.attempts), (id, TaskStatus::Running, 1));
        assert!(db.claim_task("r2", T0, T1).unwrap().is_none(), "held under its lease");
        let taken = db.claim_task("r2", T2, "2026-11-21T10:30:00.000Z").unwrap().unwrap();
        assert_eq!((taken.id, taken.runner.as_deref(), taken.attempts), (id, Some("r2"), 2));
        assert!(!db.finish_task(id, "dead", TaskStatus::Done, Some("late"), None, T2).unwrap());
        assert!(!db.renew_lease(id, "dead", T2).unwrap());
        assert!(db.finish_task(id, "r2", TaskStatus::Done, Some("ok"), None, T2).unwrap());
        assert_eq!(db.task(id).unwrap().unwrap().result.as_deref(), Some("ok"));
    }

    #[test]
    fn a_released_task_is_pending_again_without_the_attempt_and_waits_for_its_time() {
        let mut db = Db::in_memory().unwrap();
        let id = db.add_task(&task("work"), T0).unwrap();
        db.claim_task("r1", T0, T2).unwrap().unwrap();
        assert!(db.release_task(id, "r1", Some(T1), "rate limited").unwrap());
        let task = db.task(id).unwrap().unwrap();
        assert_eq!(
            (task.status, task.attempts, task.not_before.as_deref()),
            (TaskStatus::Pending, 0, Some(T1))
        );
        assert!(db.claim_task("r1", T0, T2).unwrap().is_none());
        assert!(db.claim_task("r1", T1, T2).unwrap().is_some());
    }

    #[test]
    fn cancel_retry_complete_and_counts() {
        let db = Db::in_memory().unwrap();
        let a = db.add_task(&task("a"), T0).unwrap();
        let b = db.add_task(&task("b"), T0).unwrap();
        assert!(db.cancel_task(a, T1).unwrap());
        assert!(!db.cancel_task(a, T1).unwrap(), "already cancelled");
        assert!(db.retry_task(a).unwrap());
        assert!(!db.retry_task(b).unwrap(), "a pending task needs no retry");
        assert!(db.complete_task(b, Some("done by hand"), T1).unwrap());
        let counts = db.task_counts().unwrap();
        assert_eq!(counts[0], (TaskStatus::Pending, 1));
        assert_eq!(counts[2], (TaskStatus::Done, 1));
        assert_eq!(db.tasks(Some(TaskStatus::Done)).unwrap()[0].id, b);
    }
}
