//! The privacy ledger: how much epsilon each account has spent.
//!
//! A run's query is charged to several accounts at once: the requester's budget on the dataset
//! (from the policy) and the approval's total (signed by the committee). [`Ledger::charge`] is all
//! or nothing: either every account has room and all are charged, or nothing changes and the
//! query is refused. [`Ledger`] is the seam; [`MemoryLedger`] keeps accounts in memory for one
//! process (a persistent ledger implements the same trait).

use std::collections::HashMap;
use std::sync::Mutex;

/// An account a charge is recorded against, with its total budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// Stable key (see [`Account::requester`] and [`Account::approval`]).
    pub key: String,
    /// Total epsilon the account may spend.
    pub total: f64,
    /// What the account is, for refusal messages.
    pub label: String,
}

impl Account {
    /// The budget of `requester` on `dataset`.
    pub fn requester(requester: &str, dataset: &str, total: f64) -> Self {
        Account {
            key: requester_key(requester, dataset),
            total,
            label: format!("requester '{requester}' on dataset '{dataset}'"),
        }
    }

    /// The total an approval allows across all runs and requesters.
    pub fn approval(approval_digest: &str, total: f64) -> Self {
        Account {
            key: approval_key(approval_digest),
            total,
            label: format!(
                "the approval's total ({}…)",
                &approval_digest[..approval_digest.len().min(12)]
            ),
        }
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

/// Why a charge was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LedgerError {
    /// The charge would overspend an account.
    #[error("privacy budget exhausted for {label}: {remaining:.4} of {total} left, {requested} requested")]
    Exhausted {
        /// Which account.
        label: String,
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
    /// Records `epsilon` against every account if each has room; otherwise changes nothing.
    fn charge(&self, accounts: &[Account], epsilon: f64) -> Result<(), LedgerError>;
    /// Epsilon spent by the account with `key`.
    fn spent(&self, key: &str) -> f64;
    /// Epsilon left on `account`.
    fn remaining(&self, account: &Account) -> f64 {
        (account.total - self.spent(&account.key)).max(0.0)
    }
}

/// An in-memory ledger.
#[derive(Default)]
pub struct MemoryLedger {
    spent: Mutex<HashMap<String, f64>>,
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Tolerance for floating-point sums of charges (a budget of 1.0 spent as ten charges of 0.1).
const SLACK: f64 = 1e-9;

impl Ledger for MemoryLedger {
    fn charge(&self, accounts: &[Account], epsilon: f64) -> Result<(), LedgerError> {
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(LedgerError::InvalidAmount(epsilon));
        }
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        for a in accounts {
            let used = spent.get(&a.key).copied().unwrap_or(0.0);
            if used + epsilon > a.total + SLACK {
                return Err(LedgerError::Exhausted {
                    label: a.label.clone(),
                    remaining: (a.total - used).max(0.0),
                    total: a.total,
                    requested: epsilon,
                });
            }
        }
        for a in accounts {
            *spent.entry(a.key.clone()).or_insert(0.0) += epsilon;
        }
        Ok(())
    }

    fn spent(&self, key: &str) -> f64 {
        let spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        spent.get(key).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(r: &str, d: &str, total: f64) -> Account {
        Account::requester(r, d, total)
    }

    #[test]
    fn charge_past_budget_is_refused_and_changes_nothing() {
        let l = MemoryLedger::new();
        let a = acct("r", "d", 1.0);
        l.charge(std::slice::from_ref(&a), 0.6).unwrap();
        let err = l.charge(std::slice::from_ref(&a), 0.5).unwrap_err();
        assert!(matches!(err, LedgerError::Exhausted { .. }));
        assert!((l.spent(&a.key) - 0.6).abs() < 1e-12);
        l.charge(std::slice::from_ref(&a), 0.4).unwrap();
        assert!(l.remaining(&a) < 1e-9);
    }

    #[test]
    fn a_charge_to_several_accounts_is_all_or_nothing() {
        let l = MemoryLedger::new();
        let requester = acct("r", "d", 10.0);
        let approval = Account::approval("abcdef", 1.0);
        l.charge(&[requester.clone(), approval.clone()], 0.8)
            .unwrap();
        let err = l
            .charge(&[requester.clone(), approval.clone()], 0.5)
            .unwrap_err();
        assert!(err.to_string().contains("approval"), "{err}");
        assert!(
            (l.spent(&requester.key) - 0.8).abs() < 1e-12,
            "the requester was charged anyway"
        );
    }

    #[test]
    fn budgets_are_per_requester_and_dataset() {
        let l = MemoryLedger::new();
        l.charge(&[acct("a", "d", 1.0)], 1.0).unwrap();
        l.charge(&[acct("b", "d", 1.0)], 1.0).unwrap();
        l.charge(&[acct("a", "e", 1.0)], 1.0).unwrap();
        assert!(l.charge(&[acct("a", "d", 1.0)], 0.1).is_err());
    }

    #[test]
    fn concurrent_charges_never_overspend() {
        let l = std::sync::Arc::new(MemoryLedger::new());
        let ok = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (l, ok) = (l.clone(), ok.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        if l.charge(&[acct("r", "d", 5.0), Account::approval("x", 100.0)], 0.1)
                            .is_ok()
                        {
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
