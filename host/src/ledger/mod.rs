//! The privacy ledger: how much epsilon each (requester, dataset) has spent.
//!
//! [`Ledger`] is the seam; [`MemoryLedger`] keeps budgets in memory for one process (the
//! persistent SQLite ledger implements the same trait). A charge is all or nothing: it either fits
//! under the budget and is recorded, or nothing changes and the query is refused.

use std::collections::HashMap;
use std::sync::Mutex;

/// Why a charge was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LedgerError {
    /// The charge would overspend.
    #[error("privacy budget exhausted for requester '{requester}' on dataset '{dataset}': {remaining:.4} of {total} left, {requested} requested")]
    Exhausted {
        /// Who.
        requester: String,
        /// Which dataset.
        dataset: String,
        /// Budget left.
        remaining: f64,
        /// Total budget.
        total: f64,
        /// The charge asked for.
        requested: f64,
    },
    /// The epsilon is not a positive number.
    #[error("cannot charge epsilon {0}")]
    InvalidAmount(f64),
}

/// Where charges are recorded.
pub trait Ledger: Send + Sync {
    /// Records `epsilon` against `(requester, dataset)` if it fits under the budget.
    fn charge(&self, requester: &str, dataset: &str, epsilon: f64) -> Result<(), LedgerError>;
    /// Epsilon left for `(requester, dataset)`.
    fn remaining(&self, requester: &str, dataset: &str) -> f64;
    /// Epsilon spent by `(requester, dataset)`.
    fn spent(&self, requester: &str, dataset: &str) -> f64;
}

/// An in-memory ledger with one total budget per (requester, dataset).
pub struct MemoryLedger {
    total: f64,
    spent: Mutex<HashMap<(String, String), f64>>,
}

impl MemoryLedger {
    /// A ledger giving every (requester, dataset) `total` epsilon.
    pub fn new(total: f64) -> Self {
        MemoryLedger {
            total,
            spent: Mutex::new(HashMap::new()),
        }
    }
}

/// Tolerance for floating-point sums of charges (a budget of 1.0 spent as ten charges of 0.1).
const SLACK: f64 = 1e-9;

impl Ledger for MemoryLedger {
    fn charge(&self, requester: &str, dataset: &str, epsilon: f64) -> Result<(), LedgerError> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(LedgerError::InvalidAmount(epsilon));
        }
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let entry = spent
            .entry((requester.to_string(), dataset.to_string()))
            .or_insert(0.0);
        if *entry + epsilon > self.total + SLACK {
            return Err(LedgerError::Exhausted {
                requester: requester.to_string(),
                dataset: dataset.to_string(),
                remaining: (self.total - *entry).max(0.0),
                total: self.total,
                requested: epsilon,
            });
        }
        *entry += epsilon;
        Ok(())
    }

    fn remaining(&self, requester: &str, dataset: &str) -> f64 {
        (self.total - self.spent(requester, dataset)).max(0.0)
    }

    fn spent(&self, requester: &str, dataset: &str) -> f64 {
        let spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        spent
            .get(&(requester.to_string(), dataset.to_string()))
            .copied()
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charge_past_budget_is_refused_and_changes_nothing() {
        let l = MemoryLedger::new(1.0);
        l.charge("r", "d", 0.6).unwrap();
        let err = l.charge("r", "d", 0.5).unwrap_err();
        assert!(matches!(err, LedgerError::Exhausted { .. }));
        assert!((l.spent("r", "d") - 0.6).abs() < 1e-12);
        l.charge("r", "d", 0.4).unwrap();
        assert!(l.remaining("r", "d") < 1e-9);
    }

    #[test]
    fn budgets_are_per_requester_and_dataset() {
        let l = MemoryLedger::new(1.0);
        l.charge("a", "d", 1.0).unwrap();
        l.charge("b", "d", 1.0).unwrap();
        l.charge("a", "e", 1.0).unwrap();
        assert!(l.charge("a", "d", 0.1).is_err());
    }

    #[test]
    fn concurrent_charges_never_overspend() {
        let l = std::sync::Arc::new(MemoryLedger::new(5.0));
        let ok = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (l, ok) = (l.clone(), ok.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        if l.charge("r", "d", 0.1).is_ok() {
                            ok.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ok.load(std::sync::atomic::Ordering::SeqCst), 50);
    }
}
