//! The privacy ledger: how much epsilon each account has spent, persisted in SQLite.
//!
//! A run's query is charged to several accounts at once: the requester's budget on the dataset
//! (from the policy, with an optional per-period cap) and the approval's total (signed by the
//! committee). A charge has two steps:
//!
//! 1. [`Ledger::reserve`] atomically checks every account and records the epsilon as *reserved*
//!    (all or nothing), durably, **before the query touches data**; concurrent runs, threads or
//!    processes cannot overspend because the check and the insert are one SQLite write
//!    transaction.
//! 2. [`Ledger::settle`] marks it *settled* once anything that depends on the data is about to
//!    reach the module; [`Ledger::refund`] cancels it when nothing did.
//!
//! After a crash, [`Ledger::recover`] marks runs left running as failed and refunds their
//! reservations that never settled (the module saw nothing from them); settled charges stay
//! (fail closed). [`SqliteLedger`] is the implementation, on a file (WAL) or in memory.

pub(crate) mod sqlite;

pub use sqlite::SqliteLedger;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// A calendar period over which a budget renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
    /// A UTC calendar year.
    Year,
}

impl Period {
    /// "day", "month" or "year".
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    /// The start of the period containing `now`.
    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let (y, m, d) = match self {
            Period::Day => (now.year(), now.month(), now.day()),
            Period::Month => (now.year(), now.month(), 1),
            Period::Year => (now.year(), 1, 1),
        };
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .single()
            .expect("midnight UTC exists")
    }
}

/// A cap on what an account may spend per period, on top of its total.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodCap {
    /// The period.
    pub period: Period,
    /// Epsilon per period.
    pub epsilon: f64,
}

/// An account a charge is recorded against, with its budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// Stable key (see [`Account::requester`] and [`Account::approval`]).
    pub key: String,
    /// Total epsilon the account may ever spend.
    pub total: f64,
    /// Optional cap per calendar period.
    pub per_period: Option<PeriodCap>,
    /// What the account is, for refusal messages.
    pub label: String,
}

impl Account {
    /// The budget of `requester` on `dataset`.
    pub fn requester(requester: &str, dataset: &str, total: f64) -> Self {
        Account {
            key: requester_key(requester, dataset),
            total,
            per_period: None,
            label: format!("requester '{requester}' on dataset '{dataset}'"),
        }
    }

    /// The total an approval allows across all runs and requesters.
    pub fn approval(approval_digest: &str, total: f64) -> Self {
        Account {
            key: approval_key(approval_digest),
            total,
            per_period: None,
            label: format!(
                "the approval's total ({}…)",
                &approval_digest[..approval_digest.len().min(12)]
            ),
        }
    }

    /// The same account with a per-period cap.
    pub fn with_period(mut self, cap: Option<PeriodCap>) -> Self {
        self.per_period = cap;
        self
    }
}

/// Key of a requester's account on a dataset.
pub fn requester_key(requester: &str, dataset: &str) -> String {
    format!("requester/{requester}/dataset/{dataset}")
}

/// Key of an approval's account.
pub fn approval_key(approval_digest: &str) -> String {
    format!("approval/{approval_digest}")
}

/// Identifies one reservation (one query's charge to all its accounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeId(pub i64);

/// Where a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Started, not finished (or the process died: see [`Ledger::recover`]).
    Running,
    /// Finished with a release.
    Succeeded,
    /// Finished without a release.
    Failed,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(RunStatus::Running),
            "succeeded" => Some(RunStatus::Succeeded),
            "failed" => Some(RunStatus::Failed),
            _ => None,
        }
    }
}

/// What [`Ledger::recover`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovery {
    /// Runs that were left running, now marked failed.
    pub failed_runs: Vec<String>,
    /// Reservations that never settled, now refunded.
    pub refunded: usize,
}

/// Why a ledger operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LedgerError {
    /// The charge would overspend an account.
    #[error("privacy budget exhausted for {label}: {remaining:.4} of {total} left, {requested} requested")]
    Exhausted {
        /// Which account (and which budget: total or this period).
        label: String,
        /// Budget left.
        remaining: f64,
        /// The budget.
        total: f64,
        /// The charge asked for.
        requested: f64,
    },
    /// The epsilon is not a positive number.
    #[error("cannot charge epsilon {0}")]
    InvalidAmount(f64),
    /// The reservation does not exist or is not in the state the operation needs.
    #[error("charge {0} is not a pending reservation")]
    NotReserved(i64),
    /// The database failed (disk full, file unreadable, …). Nothing was charged or released.
    #[error("ledger storage failed: {0}; check the ledger file's disk and permissions")]
    Storage(String),
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        LedgerError::Storage(e.to_string())
    }
}

/// Where charges, runs and cached releases are recorded.
pub trait Ledger: Send + Sync {
    /// Reserves `epsilon` on every account if each has room (total and period); otherwise
    /// changes nothing. Durable when it returns.
    fn reserve(
        &self,
        job_id: &str,
        accounts: &[Account],
        epsilon: f64,
        now: DateTime<Utc>,
    ) -> Result<ChargeId, LedgerError>;
    /// Makes a reservation final: it will never be refunded.
    fn settle(&self, charge: ChargeId) -> Result<(), LedgerError>;
    /// Cancels a reservation whose result never reached the module.
    fn refund(&self, charge: ChargeId) -> Result<(), LedgerError>;
    /// Epsilon spent (reserved or settled) by the account with `key`, over all time.
    fn spent(&self, key: &str) -> Result<f64, LedgerError>;
    /// Epsilon `account` may still spend at `now` (the smaller of its total and period room).
    fn remaining(&self, account: &Account, now: DateTime<Utc>) -> Result<f64, LedgerError>;
    /// Records that a run started.
    fn begin_run(
        &self,
        job_id: &str,
        requester: &str,
        module_hash: &str,
    ) -> Result<(), LedgerError>;
    /// Records how a run ended.
    fn finish_run(&self, job_id: &str, status: RunStatus) -> Result<(), LedgerError>;
    /// A run's status, if it is known.
    fn run_status(&self, job_id: &str) -> Result<Option<RunStatus>, LedgerError>;
    /// After a crash: fails runs left running and refunds their unsettled reservations.
    fn recover(&self) -> Result<Recovery, LedgerError>;
    /// The release stored under `key` by an earlier identical run, if any.
    fn cached_release(&self, key: &str) -> Result<Option<String>, LedgerError>;
    /// Stores a release under `key` (first one wins).
    fn store_release(&self, key: &str, job_id: &str, release_json: &str)
        -> Result<(), LedgerError>;
}

/// Tolerance for floating-point sums of charges (a budget of 1.0 spent as ten charges of 0.1).
pub const SLACK: f64 = 1e-9;
