//! One run's view of the host: the implementation behind every call a module can make.
//!
//! The sandbox's WIT imports and the native test harness both call a [`Session`], so a module
//! meets the same scope checks, gate, ledger and limits wherever it runs. Every `query` goes:
//! scope check → plan validation → execution next to the data → gate → ledger charge → answer.
//! The charge is recorded before the answer exists outside the host.

use crate::dataset::Catalog;
use crate::gate::{self, GateConfig};
use crate::ledger::{Account, ChargeId, Ledger};
use crate::policy::Policy;
use crate::query::{self, PlanLimits};
use crate::revocation::Revocations;
use crate::verify::{VerifiedModule, VerifyError};
use oar_guest::plan::Plan;
use oar_guest::table::Table;
use std::sync::Arc;
use std::time::Instant;

/// A charge made during a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// Dataset charged.
    pub dataset: String,
    /// Epsilon charged.
    pub epsilon: f64,
}

/// Why a query was refused. Each refusal has its own variant; its message is what the module
/// receives, and it never contains a data value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The run's wall-clock deadline passed.
    #[error("the run's deadline has passed")]
    Deadline,
    /// The run used up its queries.
    #[error("this run has made its {limit} queries, the policy's limit")]
    TooManyQueries {
        /// The policy's limit.
        limit: u32,
    },
    /// The plan is too large to parse.
    #[error("the plan is {bytes} bytes; the host accepts at most {MAX_PLAN_BYTES}")]
    PlanTooLarge {
        /// Its size.
        bytes: usize,
    },
    /// The plan is not valid plan JSON.
    #[error("malformed plan: {0}")]
    MalformedPlan(String),
    /// The dataset is not in the approval's scope.
    #[error("dataset '{dataset}' is not in this module's approval")]
    DatasetNotApproved {
        /// The dataset.
        dataset: String,
    },
    /// The policy does not let this requester query the dataset.
    #[error("requester '{requester}' may not query dataset '{dataset}'")]
    RequesterNotAllowed {
        /// The requester.
        requester: String,
        /// The dataset.
        dataset: String,
    },
    /// The dataset is approved but not registered on this host.
    #[error("dataset '{dataset}' is not registered on this host")]
    DatasetNotRegistered {
        /// The dataset.
        dataset: String,
    },
    /// Epsilon is not a positive number.
    #[error("epsilon must be positive, got {epsilon}")]
    InvalidEpsilon {
        /// What was asked.
        epsilon: f64,
    },
    /// The query would take the run past the approval's per-run epsilon.
    #[error("epsilon {requested} exceeds what this run may still spend ({left:.4} of the approved {cap} per run)")]
    OverRunCap {
        /// Asked for.
        requested: f64,
        /// Left in this run.
        left: f64,
        /// The per-run cap.
        cap: f64,
    },
    /// A budget account cannot cover the query.
    #[error(
        "privacy budget exhausted for {account}: {left:.4} of {total} left, {requested} requested"
    )]
    BudgetExhausted {
        /// The account's label.
        account: String,
        /// Left.
        left: f64,
        /// Its total.
        total: f64,
        /// Asked for.
        requested: f64,
    },
    /// The plan does not type-check against the dataset's public schema or the policy's limits.
    #[error("{0}")]
    InvalidPlan(String),
    /// The plan reads a column outside the approval.
    #[error("column '{column}' of '{dataset}' is outside this module's approval")]
    ColumnNotApproved {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
    },
    /// The plan reads a column the holder's policy denies to every module.
    #[error("column '{column}' of '{dataset}' may not be read under the holder's policy")]
    ColumnDenied {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
    },
    /// Polars failed; only the kind of failure is given.
    #[error("the query failed while running next to the data ({kind}); the holder can rerun it to see the details")]
    ExecutionFailed {
        /// The kind of error.
        kind: &'static str,
    },
    /// The gate refused to release.
    #[error("{0}")]
    Gate(String),
    /// The ledger could not record the charge, so nothing is released.
    #[error("the privacy ledger could not record the charge ({0}); nothing was released")]
    Ledger(String),
    /// The module, its approval, its author, a signer or the requester was revoked after the
    /// run started.
    #[error("{0}; the run is stopped")]
    Revoked(VerifyError),
}

/// What a finished session leaves behind.
#[derive(Debug, Default)]
pub struct SessionRecord {
    /// Tables emitted, in order.
    pub outputs: Vec<(String, Table)>,
    /// Charges made (already committed to the ledger).
    pub charges: Vec<Charge>,
    /// Queries refused, with the reason given to the module.
    pub refusals: Vec<Refusal>,
    /// The module's log lines.
    pub log: Vec<String>,
    /// Queries answered.
    pub queries: u32,
}

/// Per-run host state.
pub struct Session {
    job_id: String,
    requester: String,
    module: Arc<VerifiedModule>,
    catalog: Arc<Catalog>,
    policy: Arc<Policy>,
    ledger: Arc<dyn Ledger>,
    revocations: Arc<Revocations>,
    audit: Option<Arc<crate::audit::AuditLog>>,
    deadline: Instant,
    run_spent: f64,
    record: SessionRecord,
}

const MAX_LOG_LINE: usize = 1024;
/// Largest plan a module may send, in bytes of JSON.
pub const MAX_PLAN_BYTES: usize = 256 * 1024;
/// Largest table a module may emit, in bytes of JSON.
pub const MAX_TABLE_BYTES: usize = 16 * 1024 * 1024;
const MAX_LOG_LINES: usize = 1000;

impl Session {
    /// A session for `requester` running `module`.
    pub fn new(
        job_id: &str,
        requester: &str,
        module: Arc<VerifiedModule>,
        catalog: Arc<Catalog>,
        policy: Arc<Policy>,
        ledger: Arc<dyn Ledger>,
        revocations: Arc<Revocations>,
    ) -> Self {
        let deadline = Instant::now() + std::time::Duration::from_millis(policy.limits.time_ms);
        Session {
            job_id: job_id.to_string(),
            requester: requester.to_string(),
            module,
            catalog,
            policy,
            ledger,
            revocations,
            audit: None,
            deadline,
            run_spent: 0.0,
            record: SessionRecord::default(),
        }
    }

    /// Records every charge and refusal of this session in `log` (a charge that cannot be
    /// recorded is not answered).
    pub fn with_audit(mut self, log: Option<Arc<crate::audit::AuditLog>>) -> Self {
        self.audit = log;
        self
    }

    /// The job this session belongs to.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Ends the session, returning what it produced.
    pub fn finish(self) -> SessionRecord {
        self.record
    }

    fn in_scope(&self, dataset: &str) -> Result<(), Refusal> {
        let approved = self
            .module
            .approval()
            .datasets
            .iter()
            .any(|d| d.name == dataset);
        if !approved {
            return Err(Refusal::DatasetNotApproved {
                dataset: dataset.to_string(),
            });
        }
        let allowed = self
            .policy
            .requester(&self.requester)
            .is_some_and(|r| r.may_query(dataset));
        if !allowed {
            return Err(Refusal::RequesterNotAllowed {
                requester: self.requester.clone(),
                dataset: dataset.to_string(),
            });
        }
        if self.catalog.get(dataset).is_none() {
            return Err(Refusal::DatasetNotRegistered {
                dataset: dataset.to_string(),
            });
        }
        Ok(())
    }

    /// Refuses if the module, approval, author, a needed signer or the requester was revoked.
    fn check_revocations(&self) -> Result<(), Refusal> {
        let requester = self.policy.requester(&self.requester).map(|r| &r.key);
        self.revocations
            .with(|list| self.module.check_revocations(requester, list, &self.policy))
            .map_err(Refusal::Revoked)
    }

    /// Datasets this run may read.
    pub fn datasets(&self) -> Vec<String> {
        self.module
            .approval()
            .datasets
            .iter()
            .map(|d| d.name.clone())
            .filter(|d| self.in_scope(d).is_ok())
            .collect()
    }

    /// Public schema JSON of `name`.
    pub fn dataset_schema(&self, name: &str) -> Result<String, String> {
        self.in_scope(name).map_err(|r| r.to_string())?;
        let ds = self.catalog.get(name).expect("checked in scope");
        Ok(serde_json::to_string(&ds.schema()).expect("schemas serialize"))
    }

    /// Epsilon this run may still spend on `dataset`.
    pub fn budget_remaining(&self, dataset: &str) -> f64 {
        if self.in_scope(dataset).is_err() {
            return 0.0;
        }
        let per_run = self.run_cap() - self.run_spent;
        self.accounts(dataset)
            .iter()
            .map(|a| self.ledger.remaining(a, chrono::Utc::now()).unwrap_or(0.0))
            .fold(per_run, f64::min)
            .max(0.0)
    }

    /// The accounts a query on `dataset` is charged to: the requester's budget on the dataset
    /// (policy) and the approval's total across all runs (signed by the committee).
    fn accounts(&self, dataset: &str) -> [Account; 2] {
        [
            self.policy.requester_account(&self.requester, dataset),
            Account::approval(
                self.module.approval_digest(),
                self.module.approval().epsilon_total,
            ),
        ]
    }

    fn run_cap(&self) -> f64 {
        self.module
            .approval()
            .epsilon_per_run
            .min(self.module.manifest().max_epsilon_per_run)
    }

    /// Answers a plan with a gated table, or refuses with a reason (and releases nothing).
    pub fn query(&mut self, plan_json: &str) -> Result<String, String> {
        let result = self.query_inner(plan_json);
        match result {
            Ok(table) => {
                self.record.queries += 1;
                Ok(table)
            }
            Err(refusal) => {
                let reason = refusal.to_string();
                tracing::info!(job = %self.job_id, %reason, "query refused");
                if let Some(log) = &self.audit {
                    let details = serde_json::json!({"job_id": self.job_id, "reason": reason});
                    if let Err(e) =
                        log.append(crate::audit::EntryKind::Refusal, &self.requester, details)
                    {
                        tracing::error!(job = %self.job_id, error = %e, "could not record a refusal");
                    }
                }
                self.record.refusals.push(refusal);
                Err(reason)
            }
        }
    }

    fn query_inner(&mut self, plan_json: &str) -> Result<String, Refusal> {
        if Instant::now() > self.deadline {
            return Err(Refusal::Deadline);
        }
        self.check_revocations()?;
        if self.record.queries >= self.policy.limits.max_queries_per_run {
            return Err(Refusal::TooManyQueries {
                limit: self.policy.limits.max_queries_per_run,
            });
        }
        if plan_json.len() > MAX_PLAN_BYTES {
            return Err(Refusal::PlanTooLarge {
                bytes: plan_json.len(),
            });
        }
        let plan: Plan =
            serde_json::from_str(plan_json).map_err(|e| Refusal::MalformedPlan(e.to_string()))?;
        self.in_scope(&plan.dataset)?;
        if !(plan.epsilon.is_finite() && plan.epsilon > 0.0) {
            return Err(Refusal::InvalidEpsilon {
                epsilon: plan.epsilon,
            });
        }
        let run_left = self.run_cap() - self.run_spent;
        if plan.epsilon > run_left + 1e-12 {
            return Err(Refusal::OverRunCap {
                requested: plan.epsilon,
                left: run_left,
                cap: self.run_cap(),
            });
        }
        let dataset = self
            .catalog
            .get(&plan.dataset)
            .expect("checked in scope")
            .clone();
        let limits = PlanLimits {
            max_output_cells: self.policy.limits.max_output_cells,
            max_groups_per_unit: self.policy.limits.max_groups_per_unit,
        };
        let parts = compile_parts(&plan, &dataset, limits)?;
        // (Plan validation errors name columns and types from the public schema, never values.)
        let approved_columns = &self
            .module
            .approval()
            .datasets
            .iter()
            .find(|d| d.name == plan.dataset)
            .expect("checked in scope")
            .columns;
        let columns_read = parts.iter().flat_map(|(_, c)| &c.columns_read);
        for c in columns_read {
            if !approved_columns.contains(c) {
                return Err(Refusal::ColumnNotApproved {
                    dataset: plan.dataset.clone(),
                    column: c.clone(),
                });
            }
            if self.policy.column_denied(&plan.dataset, c) {
                return Err(Refusal::ColumnDenied {
                    dataset: plan.dataset.clone(),
                    column: c.clone(),
                });
            }
        }
        // Reserve the budget before touching data: atomic across accounts and across concurrent
        // runs, durable before the query executes.
        let charge = self
            .ledger
            .reserve(
                &self.job_id,
                &self.accounts(&plan.dataset),
                plan.epsilon,
                chrono::Utc::now(),
            )
            .map_err(ledger_refusal)?;
        let config = GateConfig {
            min_units: self.policy.min_units_for(&plan.dataset),
            delta0: self.policy.delta0,
            dominance: Some(self.policy.dominance),
        };
        // A failure while running next to the data (Polars or the noise mechanism) may depend on
        // the data, so the charge stands (fail closed), and only the kind of failure is told.
        let table = match self.run_parts(&plan, parts, config, &dataset, limits) {
            Ok(table) => table,
            Err(refusal) => {
                self.settle(charge, &plan.dataset, plan.epsilon)?;
                return Err(refusal);
            }
        };
        // A revocation that arrived while the query ran: the module gets nothing from this
        // query, so the reservation is refunded.
        if let Err(refusal) = self.check_revocations() {
            self.refund(charge);
            return Err(refusal);
        }
        // Settled before the table leaves this function.
        self.settle(charge, &plan.dataset, plan.epsilon)?;
        tracing::info!(job = %self.job_id, dataset = %plan.dataset, epsilon = plan.epsilon, cells = table.rows.len(), "query released");
        Ok(serde_json::to_string(&table).expect("tables serialize"))
    }

    /// Executes and gates each part of a plan (one, or one per margin with totals) and merges
    /// them into the released table.
    fn run_parts(
        &self,
        plan: &Plan,
        mut parts: Vec<(Vec<bool>, query::CompiledPlan)>,
        config: GateConfig,
        dataset: &crate::dataset::Dataset,
        limits: PlanLimits,
    ) -> Result<Table, Refusal> {
        if plan.key_selection {
            // The keys come from the data, so they are read only now, with the budget reserved;
            // the plan is compiled again over them (it validated with placeholders).
            let observed = query::discover_keys(plan, dataset).map_err(|e| {
                tracing::warn!(job = %self.job_id, "key discovery failed");
                match e {
                    query::DiscoverError::Plan(e) => Refusal::InvalidPlan(e.to_string()),
                    query::DiscoverError::Polars(e) => Refusal::ExecutionFailed {
                        kind: polars_error_kind(&e),
                    },
                }
            })?;
            let compiled = query::compile_with_keys(plan, dataset, limits, Some(&observed))
                .map_err(|e| Refusal::InvalidPlan(e.to_string()))?;
            parts = vec![(vec![true; plan.group_by.len()], compiled)];
        }
        let mut tables = Vec::with_capacity(parts.len());
        for (mask, compiled) in parts {
            // Polars messages can quote data values (a failed cast lists the strings).
            let stats = compiled.execute().map_err(|e| {
                let kind = polars_error_kind(&e);
                tracing::warn!(job = %self.job_id, kind, "query failed while running next to the data");
                Refusal::ExecutionFailed { kind }
            })?;
            let table = gate::release(&compiled, &stats, config).map_err(|e| {
                Refusal::Gate(match e {
                    gate::GateError::Mechanism(_) => {
                        "the noise mechanism failed; nothing was released".to_string()
                    }
                    other => other.to_string(),
                })
            })?;
            tables.push((mask, table));
        }
        if !plan.totals {
            return Ok(tables.pop().expect("one part").1);
        }
        Ok(gate::margins::release_with_totals(plan, tables))
    }

    /// Cancels a reservation whose result will not reach the module. If the ledger cannot, the
    /// charge stands (fail closed).
    fn refund(&self, charge: ChargeId) {
        if let Err(e) = self.ledger.refund(charge) {
            tracing::error!(job = %self.job_id, error = %e, "refund failed; the charge stands");
        }
    }

    /// Makes a reservation final and records it as this run's charge.
    fn settle(&mut self, charge: ChargeId, dataset: &str, epsilon: f64) -> Result<(), Refusal> {
        self.ledger.settle(charge).map_err(ledger_refusal)?;
        if let Some(log) = &self.audit {
            let details = serde_json::json!({
                "job_id": self.job_id,
                "dataset": dataset,
                "epsilon": epsilon,
                "module_hash": self.module.module_hash(),
            });
            // The charge stands either way; an answer whose charge is not on the record is
            // not given.
            log.append(crate::audit::EntryKind::Charge, &self.requester, details)
                .map_err(|e| {
                    Refusal::Ledger(format!("the audit log could not record the charge: {e}"))
                })?;
        }
        self.run_spent += epsilon;
        self.record.charges.push(Charge {
            dataset: dataset.to_string(),
            epsilon,
        });
        Ok(())
    }

    /// Publishes a table under `name`.
    pub fn emit(&mut self, name: &str, table_json: &str) -> Result<(), String> {
        let declared = self
            .module
            .manifest()
            .outputs
            .iter()
            .any(|o| o.name == name);
        if !declared {
            return Err(format!(
                "table '{name}' is not declared in the module's manifest"
            ));
        }
        if self.record.outputs.iter().any(|(n, _)| n == name) {
            return Err(format!("table '{name}' was already emitted in this run"));
        }
        if self.record.outputs.len() >= self.policy.limits.max_output_tables {
            return Err("this run has emitted as many tables as the policy allows".into());
        }
        if table_json.len() > MAX_TABLE_BYTES {
            return Err(format!(
                "table '{name}' is larger than {MAX_TABLE_BYTES} bytes"
            ));
        }
        let table: Table =
            serde_json::from_str(table_json).map_err(|e| format!("malformed table: {e}"))?;
        if table.rows.len() > self.policy.limits.max_output_cells {
            return Err(format!(
                "table '{name}' has {} rows; the policy allows {}",
                table.rows.len(),
                self.policy.limits.max_output_cells
            ));
        }
        self.record.outputs.push((name.to_string(), table));
        Ok(())
    }

    /// Appends a line to the run log (truncated; bounded in count).
    pub fn log(&mut self, message: &str) {
        if self.record.log.len() < MAX_LOG_LINES {
            let mut line: String = message.chars().take(MAX_LOG_LINE).collect();
            if line.len() < message.len() {
                line.push('…');
            }
            self.record.log.push(line);
        }
    }
}

/// The compiled parts of `plan`: the plan itself, or with `totals` one sub-plan per subset of
/// its keys (detail first), each with an equal share of the epsilon.
fn compile_parts(
    plan: &Plan,
    dataset: &crate::dataset::Dataset,
    limits: PlanLimits,
) -> Result<Vec<(Vec<bool>, query::CompiledPlan)>, Refusal> {
    let invalid = |e: query::QueryError| Refusal::InvalidPlan(e.to_string());
    if plan.totals && plan.key_selection {
        return Err(Refusal::InvalidPlan(
            "totals need public key domains; they cannot be combined with key selection".into(),
        ));
    }
    if !plan.totals {
        let compiled = query::compile(plan, dataset, limits).map_err(invalid)?;
        return Ok(vec![(vec![true; plan.group_by.len()], compiled)]);
    }
    let k = plan.group_by.len();
    if k == 0 || k > gate::margins::MAX_TOTAL_KEYS {
        return Err(Refusal::InvalidPlan(format!(
            "totals need 1 to {} group keys, got {k}",
            gate::margins::MAX_TOTAL_KEYS
        )));
    }
    let masks = gate::margins::subsets(k);
    let share = plan.epsilon / masks.len() as f64;
    let mut parts = Vec::with_capacity(masks.len());
    for mask in masks {
        let mut sub = plan.clone();
        sub.totals = false;
        sub.epsilon = share;
        sub.group_by = plan
            .group_by
            .iter()
            .zip(&mask)
            .filter(|(_, &kept)| kept)
            .map(|(g, _)| g.clone())
            .collect();
        let compiled = query::compile(&sub, dataset, limits).map_err(invalid)?;
        let clash = compiled.keys.iter().find(|key| {
            key.domain
                .iter()
                .any(|v| v.as_str() == Some(gate::margins::TOTAL))
        });
        if let Some(key) = clash {
            return Err(Refusal::InvalidPlan(format!(
                "key '{}' has a value \"{}\", which totals use; rename it in a derived key",
                key.name,
                gate::margins::TOTAL
            )));
        }
        parts.push((mask, compiled));
    }
    Ok(parts)
}

/// A ledger failure as the module sees it.
fn ledger_refusal(e: crate::ledger::LedgerError) -> Refusal {
    match e {
        crate::ledger::LedgerError::Exhausted {
            label,
            remaining,
            total,
            requested,
        } => Refusal::BudgetExhausted {
            account: label,
            left: remaining,
            total,
            requested,
        },
        other => Refusal::Ledger(other.to_string()),
    }
}

/// The kind of a Polars error, without its message (which may contain data values).
fn polars_error_kind(e: &polars::prelude::PolarsError) -> &'static str {
    use polars::prelude::PolarsError as P;
    match e {
        P::ColumnNotFound(_) => "column not found",
        P::ComputeError(_) => "compute error",
        P::Duplicate(_) => "duplicate",
        P::InvalidOperation(_) => "invalid operation",
        P::IO { .. } => "I/O error reading the dataset",
        P::NoData(_) => "no data",
        P::OutOfBounds(_) => "out of bounds",
        P::SchemaFieldNotFound(_) => "schema field not found",
        P::SchemaMismatch(_) => "schema mismatch",
        P::ShapeMismatch(_) => "shape mismatch",
        P::SQLInterface(_) | P::SQLSyntax(_) => "SQL error",
        P::StringCacheMismatch(_) => "string cache mismatch",
        P::StructFieldNotFound(_) => "struct field not found",
        P::Context { .. } => "error with context",
        _ => "other error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polars_errors_are_reduced_to_their_kind() {
        let e = polars::prelude::PolarsError::ComputeError(
            "conversion failed for values [\"secret-subscriber-42\"]".into(),
        );
        let kind = polars_error_kind(&e);
        assert_eq!(kind, "compute error");
        assert!(!kind.contains("secret"));
    }
}
