//! The server's own state in SQLite (`server.db`, WAL): uploaded bundles and approvals, the job
//! queue, and the nonces of signed requests (replay protection that survives a restart).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS module_bundles (
    module_hash TEXT NOT NULL,
    manifest_hash TEXT NOT NULL,
    bundle TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    PRIMARY KEY (module_hash, manifest_hash)
);
CREATE TABLE IF NOT EXISTS approvals (digest TEXT PRIMARY KEY, module_hash TEXT NOT NULL, approval TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    module_hash TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    created_at INTEGER NOT NULL,
    run_after INTEGER NOT NULL,
    every_seconds INTEGER,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, run_after);
CREATE TABLE IF NOT EXISTS request_nonces (
    key TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (key, nonce)
);
CREATE INDEX IF NOT EXISTS request_nonces_age ON request_nonces (seen_at);
DROP TABLE IF EXISTS nonces;
CREATE TABLE IF NOT EXISTS revocation_high_water (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    serial INTEGER NOT NULL
);
";

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// Who submitted it.
    pub requester: String,
    /// The module to run.
    pub module_hash: String,
    /// Its parameters (JSON).
    pub params: String,
    /// queued, running, succeeded, failed or interrupted.
    pub status: String,
    /// Why it failed, if it did (never a data value).
    pub error: Option<String>,
    /// Submitted at (Unix seconds).
    pub created_at: i64,
    /// For recurring jobs: the interval.
    pub every_seconds: Option<i64>,
}

/// Storage errors.
#[derive(Debug, thiserror::Error)]
#[error("server storage failed: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// The server's database.
pub struct Store {
    conn: Mutex<Connection>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn job_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        requester: r.get(1)?,
        module_hash: r.get(2)?,
        params: r.get(3)?,
        status: r.get(4)?,
        error: r.get(5)?,
        created_at: r.get(6)?,
        every_seconds: r.get(7)?,
    })
}

const JOB_COLUMNS: &str =
    "id, requester, module_hash, params, status, error, created_at, every_seconds";

/// Stores a bundle row unless that component and manifest are stored already.
fn insert_bundle(
    conn: &Connection,
    module_hash: &str,
    manifest_hash: &str,
    json: &str,
    by: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO module_bundles (module_hash, manifest_hash, bundle, uploaded_by)
         VALUES (?1, ?2, ?3, ?4)",
        params![module_hash, manifest_hash, json, by],
    )?;
    Ok(())
}

/// Moves bundles from the table keyed by component hash alone (before manifests were part of
/// the key) into `module_bundles`.
fn migrate_bundles(conn: &Connection) -> Result<(), StoreError> {
    let old: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'bundles'",
        [],
        |r| r.get(0),
    )?;
    if !old {
        return Ok(());
    }
    let rows: Vec<(String, String, String)> = {
        let mut stmt = conn.prepare("SELECT module_hash, bundle, uploaded_by FROM bundles")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (module_hash, json, by) in rows {
        let Ok(bundle) = crate::bundle::Bundle::from_json(json.as_bytes()) else {
            continue;
        };
        let manifest_hash = hex::encode(bundle.manifest.hash());
        insert_bundle(conn, &module_hash, &manifest_hash, &json, &by)?;
    }
    conn.execute_batch("DROP TABLE bundles")?;
    Ok(())
}

impl Store {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        crate::ledger::sqlite::durable(&conn)?;
        conn.execute_batch(SCHEMA)?;
        migrate_bundles(&conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a bundle under its component and manifest hashes (idempotent: the same bundle
    /// twice is one row; another manifest of the same component is another row).
    pub fn put_bundle(
        &self,
        module_hash: &str,
        manifest_hash: &str,
        json: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        insert_bundle(&self.conn(), module_hash, manifest_hash, json, by)
    }

    /// Every stored bundle of a component (one per manifest), oldest first.
    pub fn bundles(&self, module_hash: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT bundle FROM module_bundles WHERE module_hash = ?1 ORDER BY rowid")?;
        let rows = stmt.query_map(params![module_hash], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored bundle of a component with a given manifest.
    pub fn bundle(
        &self,
        module_hash: &str,
        manifest_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT bundle FROM module_bundles WHERE module_hash = ?1 AND manifest_hash = ?2",
                params![module_hash, manifest_hash],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores the approval with `digest`: `merge` gets the stored one (if any) and returns
    /// what to store, atomically (no upload can interleave between the read and the write).
    pub fn merge_approval(
        &self,
        digest: &str,
        module_hash: &str,
        merge: impl FnOnce(Option<&str>) -> String,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let stored: Option<String> = tx
            .query_row(
                "SELECT approval FROM approvals WHERE digest = ?1",
                params![digest],
                |r| r.get(0),
            )
            .optional()?;
        let json = merge(stored.as_deref());
        tx.execute(
            "INSERT INTO approvals (digest, module_hash, approval) VALUES (?1, ?2, ?3)
             ON CONFLICT(digest) DO UPDATE SET approval = excluded.approval",
            params![digest, module_hash, json],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Approvals stored for a module.
    pub fn approvals(&self, module_hash: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT approval FROM approvals WHERE module_hash = ?1")?;
        let rows = stmt.query_map(params![module_hash], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Module hashes that have at least one bundle and one approval stored.
    pub fn approved_modules(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT DISTINCT b.module_hash FROM module_bundles b JOIN approvals a ON a.module_hash = b.module_hash ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Queues a job.
    pub fn enqueue(
        &self,
        id: &str,
        requester: &str,
        module_hash: &str,
        params: &str,
        run_after: i64,
        every_seconds: Option<i64>,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO jobs (id, requester, module_hash, params, status, created_at, run_after, every_seconds)
             VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7)",
            params![id, requester, module_hash, params, now(), run_after, every_seconds],
        )?;
        Ok(())
    }

    /// Takes the oldest due queued job and marks it running.
    pub fn claim(&self) -> Result<Option<Job>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!(
                    "UPDATE jobs SET status = 'running' WHERE id = (
                        SELECT id FROM jobs WHERE status = 'queued' AND run_after <= ?1
                        ORDER BY run_after, created_at LIMIT 1)
                     RETURNING {JOB_COLUMNS}"
                ),
                params![now()],
                job_from_row,
            )
            .optional()?)
    }

    /// Records how a job ended.
    pub fn finish(&self, id: &str, status: &str, error: Option<&str>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET status = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
            params![id, status, error, now()],
        )?;
        Ok(())
    }

    /// Stops `requester`'s job `id` from recurring, and cancels it if it is still queued
    /// (a running job finishes). Returns its status, or `None` if no such job is theirs.
    pub fn cancel(&self, id: &str, requester: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "UPDATE jobs SET every_seconds = NULL,
                    finished_at = CASE WHEN status = 'queued' THEN ?3 ELSE finished_at END,
                    status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END
                 WHERE id = ?1 AND requester = ?2 RETURNING status",
                params![id, requester, now()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// A job.
    pub fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                params![id],
                job_from_row,
            )
            .optional()?)
    }

    /// The newest `limit` jobs of `requester` (all of them when `requester` is `None`), newest
    /// first.
    pub fn recent_jobs(
        &self,
        requester: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let conn = self.conn();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE ?1 IS NULL OR requester = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![requester, limit], job_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// All jobs in `status`, oldest first.
    pub fn jobs_with_status(&self, status: &str) -> Result<Vec<Job>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status = ?1 ORDER BY created_at"
        ))?;
        let rows = stmt.query_map(params![status], job_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many jobs are in each state, by state name.
    pub fn jobs_by_state(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Jobs `requester` submitted since `since` (Unix seconds).
    pub fn submitted_since(&self, requester: &str, since: i64) -> Result<u64, StoreError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM jobs WHERE requester = ?1 AND created_at >= ?2",
            params![requester, since],
            |r| r.get(0),
        )?)
    }

    /// After a crash: jobs left running are marked interrupted; returns their ids.
    pub fn interrupt_running(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let ids: Vec<String> = {
            let mut stmt = conn.prepare("SELECT id FROM jobs WHERE status = 'running'")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        conn.execute(
            "UPDATE jobs SET status = 'interrupted', error = 'the server stopped during the run; charges for answers the module had received stand, the rest were refunded', finished_at = ?1 WHERE status = 'running'",
            params![now()],
        )?;
        Ok(ids)
    }

    /// The highest revocation-list serial ever installed here (0 if none).
    pub fn revocation_serial(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT serial FROM revocation_high_water WHERE id = 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map_or(0, |s| s.max(0) as u64))
    }

    /// Raises the recorded highest revocation-list serial to `serial` (never lowers it).
    pub fn record_revocation_serial(&self, serial: u64) -> Result<(), StoreError> {
        let serial = i64::try_from(serial).unwrap_or(i64::MAX);
        self.conn().execute(
            "INSERT INTO revocation_high_water (id, serial) VALUES (1, ?1)
             ON CONFLICT(id) DO UPDATE SET serial = MAX(serial, excluded.serial)",
            params![serial],
        )?;
        Ok(())
    }

    /// Records a nonce of requester `key`; false if that key used it before (a replay).
    /// Nonces older than `keep_seconds` are forgotten (requests that old fail the time window
    /// anyway), so the table holds at most what the per-key rate limit lets in per window.
    pub fn fresh_nonce(
        &self,
        key: &str,
        nonce: &str,
        keep_seconds: i64,
    ) -> Result<bool, StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM request_nonces WHERE seen_at < ?1",
            params![now() - keep_seconds],
        )?;
        let n = conn.execute(
            "INSERT OR IGNORE INTO request_nonces (key, nonce, seen_at) VALUES (?1, ?2, ?3)",
            params![key, nonce, now()],
        )?;
        Ok(n == 1)
    }
}
