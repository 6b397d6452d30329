//! The SQLite ledger: one file in WAL mode with `synchronous = FULL`, so a committed charge
//! survives a killed process or a power cut, and readers never block the writer.

use super::{Account, ChargeId, Ledger, LedgerError, Recovery, RunStatus, SLACK};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    epsilon REAL NOT NULL CHECK (epsilon > 0),
    at INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'settled', 'refunded'))
);
CREATE TABLE IF NOT EXISTS reservation_accounts (
    reservation INTEGER NOT NULL REFERENCES reservations(id),
    account TEXT NOT NULL,
    PRIMARY KEY (account, reservation)
);
CREATE TABLE IF NOT EXISTS runs (
    job_id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    module_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE TABLE IF NOT EXISTS releases (
    key TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    release TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS release_files (
    key TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
";

/// The persistent ledger.
///
/// Releases kept for reuse (see [`Ledger::store_release`]) are files in `PATH.releases/`, named
/// by their SHA-256; the database holds only the key, the job and the digest, so it stays small
/// whatever the releases weigh.
pub struct SqliteLedger {
    conn: Mutex<Connection>,
    /// Held for the ledger's life when opened with [`SqliteLedger::open`].
    _lock: Option<std::fs::File>,
    /// Where reusable releases are kept (`None` in memory: they stay in the database).
    release_store: Option<std::path::PathBuf>,
}

impl SqliteLedger {
    /// Opens (creating if needed) the ledger at `path` for this process alone: an exclusive lock
    /// on `PATH.lock` makes a second host on the same ledger fail with a clear error, which is
    /// what makes [`Ledger::recover`] safe to call right after opening.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let lock_path = path.with_extension("lock");
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                LedgerError::Storage(format!("cannot create {}: {e}", lock_path.display()))
            })?;
        lock.try_lock().map_err(|_| {
            LedgerError::Storage(format!(
                "{} is in use by another OAR process; stop it or use another ledger file",
                path.display()
            ))
        })?;
        let mut ledger = Self::open_shared(path)?;
        ledger._lock = Some(lock);
        Ok(ledger)
    }

    /// Opens the ledger without the process lock: several connections (threads or processes)
    /// may charge it concurrently and never overspend, but none of them may call
    /// [`Ledger::recover`], which would refund the others' in-flight reservations.
    pub fn open_shared(path: &Path) -> Result<Self, LedgerError> {
        let conn = Connection::open(path)
            .map_err(|e| LedgerError::Storage(format!("cannot open {}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let mut ledger = Self::init(conn)?;
        let mut store = path.as_os_str().to_owned();
        store.push(".releases");
        ledger.release_store = Some(store.into());
        Ok(ledger)
    }

    /// A ledger that lives in memory for this process only (tests, demos, dry runs).
    pub fn in_memory() -> Self {
        Self::init(Connection::open_in_memory().expect("in-memory SQLite opens"))
            .expect("in-memory schema")
    }

    fn init(conn: Connection) -> Result<Self, LedgerError> {
        durable(&conn)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteLedger {
            conn: Mutex::new(conn),
            _lock: None,
            release_store: None,
        })
    }

    /// Moves a pending reservation to `state` (settled or refunded); anything else is an error.
    fn close_reservation(&self, charge: ChargeId, state: &str) -> Result<(), LedgerError> {
        let n = self.conn().execute(
            "UPDATE reservations SET state = ?2 WHERE id = ?1 AND state = 'reserved'",
            params![charge.0, state],
        )?;
        if n == 1 {
            Ok(())
        } else {
            Err(LedgerError::NotReserved(charge.0))
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The settings every OAR database uses: a commit is on disk when it returns
/// (`synchronous = FULL`), and a writer waits up to 10 s for another connection's lock.
pub(crate) fn durable(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(Duration::from_secs(10))
}

fn spent_since(conn: &Connection, key: &str, since: i64) -> rusqlite::Result<f64> {
    conn.query_row(
        "SELECT COALESCE(SUM(r.epsilon), 0) FROM reservation_accounts a
         JOIN reservations r ON r.id = a.reservation
         WHERE a.account = ?1 AND r.state != 'refunded' AND r.at >= ?2",
        params![key, since],
        |row| row.get(0),
    )
}

/// Room left on `account` at `now`, and the label and budget of the binding limit.
fn room(
    conn: &Connection,
    account: &Account,
    now: DateTime<Utc>,
) -> rusqlite::Result<(f64, String, f64)> {
    let total_left = account.total - spent_since(conn, &account.key, i64::MIN)?;
    let mut binding = (total_left, account.label.clone(), account.total);
    if let Some(cap) = account.per_period {
        let start = cap.period.start(now).timestamp();
        let period_left = cap.epsilon - spent_since(conn, &account.key, start)?;
        if period_left < binding.0 {
            binding = (
                period_left,
                format!("{} this {}", account.label, cap.period.name()),
                cap.epsilon,
            );
        }
    }
    Ok(binding)
}

impl Ledger for SqliteLedger {
    fn reserve(
        &self,
        job_id: &str,
        accounts: &[Account],
        epsilon: f64,
        now: DateTime<Utc>,
    ) -> Result<ChargeId, LedgerError> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(LedgerError::InvalidAmount(epsilon));
        }
        let mut conn = self.conn();
        // IMMEDIATE takes the write lock first, so no other connection can charge between our
        // check and our insert.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for a in accounts {
            let (left, label, total) = room(&tx, a, now)?;
            if epsilon > left + SLACK {
                return Err(LedgerError::Exhausted {
                    label,
                    remaining: left.max(0.0),
                    total,
                    requested: epsilon,
                });
            }
        }
        tx.execute(
            "INSERT INTO reservations (job_id, epsilon, at, state) VALUES (?1, ?2, ?3, 'reserved')",
            params![job_id, epsilon, now.timestamp()],
        )?;
        let id = tx.last_insert_rowid();
        for a in accounts {
            tx.execute(
                "INSERT INTO reservation_accounts (reservation, account) VALUES (?1, ?2)",
                params![id, a.key],
            )?;
        }
        tx.commit()?;
        Ok(ChargeId(id))
    }

    fn settle(&self, charge: ChargeId) -> Result<(), LedgerError> {
        self.close_reservation(charge, "settled")
    }

    fn refund(&self, charge: ChargeId) -> Result<(), LedgerError> {
        self.close_reservation(charge, "refunded")
    }

    fn spent(&self, key: &str) -> Result<f64, LedgerError> {
        Ok(spent_since(&self.conn(), key, i64::MIN)?)
    }

    fn remaining(&self, account: &Account, now: DateTime<Utc>) -> Result<f64, LedgerError> {
        Ok(room(&self.conn(), account, now)?.0.max(0.0))
    }

    fn begin_run(
        &self,
        job_id: &str,
        requester: &str,
        module_hash: &str,
    ) -> Result<(), LedgerError> {
        self.conn().execute(
            "INSERT INTO runs (job_id, requester, module_hash, status, started_at)
             VALUES (?1, ?2, ?3, 'running', ?4)",
            params![job_id, requester, module_hash, Utc::now().timestamp()],
        )?;
        Ok(())
    }

    fn finish_run(&self, job_id: &str, status: RunStatus) -> Result<(), LedgerError> {
        self.conn().execute(
            "UPDATE runs SET status = ?2, finished_at = ?3 WHERE job_id = ?1",
            params![job_id, status.as_str(), Utc::now().timestamp()],
        )?;
        Ok(())
    }

    fn run_status(&self, job_id: &str) -> Result<Option<RunStatus>, LedgerError> {
        let status: Option<String> = self
            .conn()
            .query_row(
                "SELECT status FROM runs WHERE job_id = ?1",
                params![job_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(status.as_deref().and_then(RunStatus::parse))
    }

    fn recover(&self) -> Result<Recovery, LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let failed_runs: Vec<String> = {
            let mut stmt = tx.prepare("SELECT job_id FROM runs WHERE status = 'running'")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        tx.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?1 WHERE status = 'running'",
            params![Utc::now().timestamp()],
        )?;
        let refunded = tx.execute(
            "UPDATE reservations SET state = 'refunded' WHERE state = 'reserved'",
            [],
        )?;
        tx.commit()?;
        Ok(Recovery {
            failed_runs,
            refunded,
        })
    }

    fn cached_release(&self, key: &str) -> Result<Option<String>, LedgerError> {
        let indexed: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT job_id, sha256 FROM release_files WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let (Some((job_id, sha256)), Some(store)) = (indexed, &self.release_store) {
            let path = store.join(format!("{sha256}.json"));
            // A reusable release that cannot be read back intact fails the run: running again
            // would draw fresh noise for a question already answered.
            let lost = |why: &str| {
                LedgerError::Storage(format!(
                    "the release of the identical earlier run {job_id} is {why} ({}); restore it from a backup, or change the run's parameters",
                    path.display()
                ))
            };
            let bytes = std::fs::read(&path).map_err(|_| lost("missing"))?;
            if hex::encode(crate::keys::sha256(&bytes)) != sha256 {
                return Err(lost("altered"));
            }
            return String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| lost("altered"));
        }
        // Releases stored before they were kept as files (and in-memory ledgers).
        Ok(self
            .conn()
            .query_row(
                "SELECT release FROM releases WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn store_release(
        &self,
        key: &str,
        job_id: &str,
        release_json: &str,
    ) -> Result<(), LedgerError> {
        let Some(store) = &self.release_store else {
            self.conn().execute(
                "INSERT OR IGNORE INTO releases (key, job_id, release, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![key, job_id, release_json, Utc::now().timestamp()],
            )?;
            return Ok(());
        };
        let sha256 = hex::encode(crate::keys::sha256(release_json.as_bytes()));
        let io = |e: std::io::Error| {
            LedgerError::Storage(format!("keeping the release in {}: {e}", store.display()))
        };
        std::fs::create_dir_all(store).map_err(io)?;
        let path = store.join(format!("{sha256}.json"));
        if !path.exists() {
            let tmp = store.join(format!(".{sha256}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, release_json)
                .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(io)?;
        }
        self.conn().execute(
            "INSERT OR IGNORE INTO release_files (key, job_id, sha256, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![key, job_id, sha256, Utc::now().timestamp()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Period, PeriodCap};
    use chrono::TimeZone;

    fn acct(r: &str, d: &str, total: f64) -> Account {
        Account::requester(r, d, total)
    }

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    fn charge(l: &SqliteLedger, accounts: &[Account], eps: f64) -> Result<(), LedgerError> {
        let id = l.reserve("job", accounts, eps, now())?;
        l.settle(id)
    }

    #[test]
    fn charge_past_budget_is_refused_and_changes_nothing() {
        let l = SqliteLedger::in_memory();
        let a = acct("r", "d", 1.0);
        charge(&l, std::slice::from_ref(&a), 0.6).unwrap();
        let err = charge(&l, std::slice::from_ref(&a), 0.5).unwrap_err();
        assert!(matches!(err, LedgerError::Exhausted { .. }));
        assert!((l.spent(&a.key).unwrap() - 0.6).abs() < 1e-12);
        charge(&l, std::slice::from_ref(&a), 0.4).unwrap();
        assert!(l.remaining(&a, now()).unwrap() < 1e-9);
    }

    #[test]
    fn a_charge_to_several_accounts_is_all_or_nothing() {
        let l = SqliteLedger::in_memory();
        let requester = acct("r", "d", 10.0);
        let approval = Account::approval("abcdef", 1.0);
        charge(&l, &[requester.clone(), approval.clone()], 0.8).unwrap();
        let err = charge(&l, &[requester.clone(), approval.clone()], 0.5).unwrap_err();
        assert!(err.to_string().contains("approval"), "{err}");
        assert!(
            (l.spent(&requester.key).unwrap() - 0.8).abs() < 1e-12,
            "the requester was charged anyway"
        );
    }

    #[test]
    fn budgets_are_per_requester_and_dataset() {
        let l = SqliteLedger::in_memory();
        charge(&l, &[acct("a", "d", 1.0)], 1.0).unwrap();
        charge(&l, &[acct("b", "d", 1.0)], 1.0).unwrap();
        charge(&l, &[acct("a", "e", 1.0)], 1.0).unwrap();
        assert!(charge(&l, &[acct("a", "d", 1.0)], 0.1).is_err());
    }

    #[test]
    fn refunds_give_budget_back_and_settled_charges_cannot_be_refunded() {
        let l = SqliteLedger::in_memory();
        let a = acct("r", "d", 1.0);
        let id = l
            .reserve("j", std::slice::from_ref(&a), 0.7, now())
            .unwrap();
        assert!(l
            .reserve("j", std::slice::from_ref(&a), 0.7, now())
            .is_err());
        l.refund(id).unwrap();
        assert_eq!(l.spent(&a.key).unwrap(), 0.0);
        let id = l
            .reserve("j", std::slice::from_ref(&a), 0.7, now())
            .unwrap();
        l.settle(id).unwrap();
        assert_eq!(l.refund(id), Err(LedgerError::NotReserved(id.0)));
        assert!((l.spent(&a.key).unwrap() - 0.7).abs() < 1e-12);
    }

    #[test]
    fn period_caps_renew_each_period_but_the_total_does_not() {
        let l = SqliteLedger::in_memory();
        let a = acct("r", "d", 1.5).with_period(Some(PeriodCap {
            period: Period::Month,
            epsilon: 1.0,
        }));
        let march = Utc.with_ymd_and_hms(2026, 3, 20, 12, 0, 0).unwrap();
        let april = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
        l.reserve("j", std::slice::from_ref(&a), 0.8, march)
            .unwrap();
        let err = l
            .reserve("j", std::slice::from_ref(&a), 0.3, march)
            .unwrap_err();
        assert!(err.to_string().contains("this month"), "{err}");
        assert!((l.remaining(&a, april).unwrap() - 0.7).abs() < 1e-12);
        l.reserve("j", std::slice::from_ref(&a), 0.7, april)
            .unwrap();
        assert!(l
            .reserve("j", std::slice::from_ref(&a), 0.1, april)
            .is_err());
    }

    #[test]
    fn recovery_fails_running_runs_and_refunds_only_unsettled_reservations() {
        let l = SqliteLedger::in_memory();
        let a = acct("r", "d", 10.0);
        l.begin_run("crashed", "r", "m").unwrap();
        l.begin_run("done", "r", "m").unwrap();
        let seen = l
            .reserve("crashed", std::slice::from_ref(&a), 1.0, now())
            .unwrap();
        l.settle(seen).unwrap();
        l.reserve("crashed", std::slice::from_ref(&a), 2.0, now())
            .unwrap();
        l.finish_run("done", RunStatus::Succeeded).unwrap();
        let r = l.recover().unwrap();
        assert_eq!(r.failed_runs, vec!["crashed".to_string()]);
        assert_eq!(r.refunded, 1);
        assert_eq!(l.run_status("crashed").unwrap(), Some(RunStatus::Failed));
        assert_eq!(l.run_status("done").unwrap(), Some(RunStatus::Succeeded));
        assert!((l.spent(&a.key).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_first_stored_release_wins() {
        let l = SqliteLedger::in_memory();
        assert_eq!(l.cached_release("k").unwrap(), None);
        l.store_release("k", "j1", "{\"a\":1}").unwrap();
        l.store_release("k", "j2", "{\"a\":2}").unwrap();
        assert_eq!(l.cached_release("k").unwrap().as_deref(), Some("{\"a\":1}"));
    }

    #[test]
    fn an_unwritable_ledger_file_is_a_clear_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = SqliteLedger::open(&dir.path().join("missing-dir/ledger.db"))
            .err()
            .unwrap();
        assert!(matches!(err, LedgerError::Storage(_)));
        assert!(err.to_string().contains("ledger storage failed"), "{err}");
    }
}
