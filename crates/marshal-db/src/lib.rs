//! marshal's SQLite database (`marshal.db` in the state directory): the state of workflow runs,
//! and the work queue. This crate owns the schema and its migrations; the user CLI
//! and the MCP server link it, a hook never does (`scripts/check-hook-deps.sh`).
//!
//! Every connection waits for a busy database (bounded, [`BUSY_TIMEOUT`]) rather than failing,
//! uses write-ahead logging so readers never block the one writer, and brings the schema up to
//! date in one `BEGIN IMMEDIATE` transaction, so two processes opening a new database at once
//! cannot both migrate it.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, TransactionBehavior};

pub mod queue;
pub mod workflows;

/// How long a statement waits for another process's write to finish before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema, one migration per version, applied in order. Never edit one that has shipped:
/// add the next.
const MIGRATIONS: &[&str] = &[
    // 1: workflow runs and their steps.
    "CREATE TABLE workflow_runs (
        run_id      TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        file        TEXT NOT NULL,
        source      TEXT NOT NULL,
        vars        TEXT NOT NULL,
        project     TEXT NOT NULL,
        concurrency INTEGER NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
        started     TEXT NOT NULL,
        finished    TEXT
    );
    CREATE INDEX workflow_runs_started ON workflow_runs (started);
    CREATE TABLE workflow_steps (
        run_id      TEXT NOT NULL REFERENCES workflow_runs (run_id) ON DELETE CASCADE,
        step_id     TEXT NOT NULL,
        position    INTEGER NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
        tier        TEXT,
        model       TEXT,
        agent       TEXT,
        attempts    INTEGER NOT NULL DEFAULT 0,
        started     TEXT,
        finished    TEXT,
        duration_ms INTEGER,
        output      TEXT,
        output_file TEXT,
        error       TEXT,
        PRIMARY KEY (run_id, step_id)
    );",
    // 2: the work queue.
    queue::MIGRATION,
];

/// A time as the database stores it: UTC, milliseconds, `Z`, so that times sort as text (the
/// queue's claim compares them in SQL).
pub fn timestamp(time: &chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now, as [`timestamp`] writes it.
pub fn now() -> String {
    timestamp(&chrono::Utc::now())
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// An open database.
pub struct Db {
    conn: Connection,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Db> {
        // Many processes opening a new database at once can meet a lock that SQLite reports at
        // once instead of waiting on (switching the journal mode needs the file to itself): try
        // again, within the same bound as any other wait.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        // The database holds prompts and answers: created private, as every state file is
        // (SQLite gives its -wal and -shm files the same mode).
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
            if let Err(err) = created {
                if err.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(err).with_context(|| format!("could not create {}", path.display()));
                }
            }
        }
        loop {
            let conn =
                Connection::open(path).with_context(|| format!("could not open {}", path.display()))?;
            match Db::prepare(conn) {
                Ok(db) => return Ok(db),
                Err(err) if is_busy(&err) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("could not use the database {}", path.display()))
                }
            }
        }
    }

    /// A private database in memory, for tests.
    pub fn in_memory() -> Result<Db> {
        Db::prepare(Connection::open_in_memory()?)
    }

    fn prepare(mut conn: Connection) -> Result<Db> {
        // First the wait: switching the journal mode itself needs the lock another process may hold.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL is a property of the file: once set, later opens only read it.
        let mut mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        if mode != "wal" && mode != "memory" {
            mode = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        }
        // A database in memory answers "memory"; anything else on disk cannot share safely.
        if mode != "wal" && mode != "memory" {
            bail!("the database would not switch to write-ahead logging (journal mode {mode})");
        }
        // In WAL mode NORMAL loses no committed transaction on a crash of marshal, only on a
        // power cut, and saves an fsync per commit.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(Db { conn })
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }
}

/// SQLite's "busy" or "locked", anywhere in the error's chain.
fn is_busy(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<rusqlite::Error>().is_some_and(|e| {
            matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            )
        })
    })
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: u32 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        bail!(
            "it was written by a newer marshal (schema {version}, this one knows up to {SCHEMA_VERSION}); \
             upgrade marshal"
        );
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).with_context(|| format!("migration {} failed", n + 1))?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_gets_the_whole_schema_in_wal_mode_and_reopening_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marshal.db");
        let db = Db::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let mode: String = db.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(db);
        let db = Db::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_database_from_a_newer_marshal_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marshal.db");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        let err = format!("{:#}", Db::open(&path).err().unwrap());
        assert!(err.contains("written by a newer marshal"), "{err}");
        let version: u32 =
            Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION + 1);
    }

    #[test]
    fn a_version_1_database_is_migrated_and_keeps_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marshal.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute(
                "INSERT INTO workflow_runs VALUES ('r', 'n', 'f', 's', '[]', '/p', 2, 'succeeded', 't', NULL)",
                [],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(db.runs().unwrap().len(), 1);
        assert_eq!(db.tasks(None).unwrap(), Vec::new());
    }

    #[test]
    fn many_connections_opening_a_new_database_at_once_all_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marshal.db");
        std::thread::scope(|scope| {
            for _ in 0..16 {
                scope.spawn(|| Db::open(&path).unwrap().schema_version().unwrap());
            }
        });
        assert_eq!(Db::open(&path).unwrap().schema_version().unwrap(), SCHEMA_VERSION);
    }
}
