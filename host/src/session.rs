//! One run's view of the host: the implementation behind every call a module can make.
//!
//! The sandbox's WIT imports and the native test harness both call a [`Session`], so a module
//! meets the same scope checks, gate, ledger and limits wherever it runs. Every `query` goes:
//! scope check → plan validation → execution next to the data → gate → ledger charge → answer.
//! The charge is recorded before the answer exists outside the host.

use crate::dataset::{Catalog, Dataset};
use crate::gate::{self, GateConfig};
use crate::ledger::{Account, ChargeId, Ledger};
use crate::module_text::{bounded, MAX_MODULE_ERROR_CHARS};
use crate::policy::Policy;
use crate::query::{self, BackendError, PlanLimits, PolarsBackend, QueryBackend};
use crate::release::provenance::{self, AnsweredQuery, Provenance, QueryFigures};
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
    /// The run used up its queries (answered and refused ones alike).
    #[error("this run has made its {limit} queries (refused ones count too), the policy's limit")]
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
    /// The plan is not valid plan JSON. The text says where and what kind of error, bounded and
    /// escaped; it never repeats the plan.
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
    /// Epsilon is below the policy's smallest epsilon per query.
    #[error("epsilon {epsilon} is below the policy's minimum of {minimum} per query; ask for at least {minimum}")]
    EpsilonBelowMinimum {
        /// What was asked.
        epsilon: f64,
        /// The policy's minimum.
        minimum: f64,
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
    /// The query failed after it touched the data. Whether and how a query fails there could
    /// depend on the data, so every such failure reads the same, and its charge stands. (Valid
    /// plans do not reach this: expressions are total and key selection never refuses.)
    #[error("the query failed after touching the data; its charge stands and nothing was released (the holder's log has the details)")]
    FailedAfterData,
    /// The ledger could not record the charge, so nothing is released.
    #[error("the privacy ledger could not record the charge ({0}); nothing was released")]
    Ledger(String),
    /// The module, its approval, its author, a signer or the requester was revoked after the
    /// run started.
    #[error("{0}; the run is stopped")]
    Revoked(VerifyError),
}

impl Refusal {
    /// A stable name for the kind of refusal (for metrics and logs; never a value).
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Deadline => "deadline",
            Refusal::TooManyQueries { .. } => "too_many_queries",
            Refusal::PlanTooLarge { .. } => "plan_too_large",
            Refusal::MalformedPlan(_) => "malformed_plan",
            Refusal::DatasetNotApproved { .. } => "dataset_not_approved",
            Refusal::RequesterNotAllowed { .. } => "requester_not_allowed",
            Refusal::DatasetNotRegistered { .. } => "dataset_not_registered",
            Refusal::InvalidEpsilon { .. } => "invalid_epsilon",
            Refusal::EpsilonBelowMinimum { .. } => "epsilon_below_minimum",
            Refusal::OverRunCap { .. } => "over_run_cap",
            Refusal::BudgetExhausted { .. } => "budget_exhausted",
            Refusal::InvalidPlan(_) => "invalid_plan",
            Refusal::ColumnNotApproved { .. } => "column_not_approved",
            Refusal::ColumnDenied { .. } => "column_denied",
            Refusal::FailedAfterData => "failed_after_data",
            Refusal::Ledger(_) => "ledger",
            Refusal::Revoked(_) => "revoked",
        }
    }

    /// Every [`Refusal::kind`], in declaration order.
    pub const KINDS: [&'static str; 17] = [
        "deadline",
        "too_many_queries",
        "plan_too_large",
        "malformed_plan",
        "dataset_not_approved",
        "requester_not_allowed",
        "dataset_not_registered",
        "invalid_epsilon",
        "epsilon_below_minimum",
        "over_run_cap",
        "budget_exhausted",
        "invalid_plan",
        "column_not_approved",
        "column_denied",
        "failed_after_data",
        "ledger",
        "revoked",
    ];
}

/// What a finished session leaves behind.
#[derive(Debug, Default)]
pub struct SessionRecord {
    /// Tables emitted, in order, as the host attested them: figures from the gate's record,
    /// never from the module (see [`crate::release::provenance`]).
    pub outputs: Vec<(String, Table, Provenance)>,
    /// What the gate did for each answered query, in order (filled when the session ends).
    pub answered: Vec<QueryFigures>,
    /// Calls of `query`, answered or refused.
    pub attempts: u32,
    /// Set when the run's deadline passed during a host call: the run must end with a trap.
    pub deadline_hit: bool,
    /// Charges made (already committed to the ledger).
    pub charges: Vec<Charge>,
    /// Queries refused, with the reason given to the module.
    pub refusals: Vec<Refusal>,
    /// The module's log lines.
    pub log: Vec<String>,
    /// Queries answered.
    pub queries: u32,
    /// The plans that passed every check before the data (in order): what the module asked.
    /// A committee's review page renders them as sentences.
    pub plans: Vec<Plan>,
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
    backend: Arc<dyn QueryBackend>,
    deadline: Instant,
    run_spent: f64,
    record: SessionRecord,
    /// The tables the gate released to the module, for attesting what it emits.
    answers: Vec<AnsweredQuery>,
}

const MAX_LOG_LINE: usize = 1024;
/// Largest plan a module may send, in bytes of JSON.
pub const MAX_PLAN_BYTES: usize = 256 * 1024;
/// Largest table a module may emit, in bytes of JSON. Parsing one costs the host at most a
/// small multiple of this (each row and value is checked against the policy right after).
pub const MAX_TABLE_BYTES: usize = 4 * 1024 * 1024;
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
            backend: Arc::new(PolarsBackend::default()),
            deadline,
            run_spent: 0.0,
            record: SessionRecord::default(),
            answers: Vec::new(),
        }
    }

    /// Sets the run's one deadline. The sandbox calls this when the run starts, before it
    /// compiles or instantiates anything, and arms its epoch trap for the same instant, so the
    /// guest's code, host calls and queries all end at one time.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Whether the deadline passed during a host call. The sandbox then ends the run with a
    /// trap instead of returning to the guest, so no answer ever tells the module the time.
    pub fn deadline_hit(&self) -> bool {
        self.record.deadline_hit
    }

    /// Records every charge and refusal of this session in `log` (a charge that cannot be
    /// recorded is not answered).
    pub fn with_audit(mut self, log: Option<Arc<crate::audit::AuditLog>>) -> Self {
        self.audit = log;
        self
    }

    /// Executes this session's queries with `backend` (the holder's choice; Polars by default).
    pub fn with_backend(mut self, backend: Arc<dyn QueryBackend>) -> Self {
        self.backend = backend;
        self
    }

    /// The job this session belongs to.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Ends the session, returning what it produced.
    pub fn finish(self) -> SessionRecord {
        SessionRecord {
            answered: self.answers.into_iter().map(|a| a.figures).collect(),
            ..self.record
        }
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
    ///
    /// Every call counts toward the policy's `max_queries_per_run`, refused or not. Refusals
    /// are decided from the plan, the schema, the policy and the approval alone; once the data
    /// is touched a query ends in a gated table or a constant failure.
    pub fn query(&mut self, plan_json: &str) -> Result<String, String> {
        let attempt = self.record.attempts;
        self.record.attempts = self.record.attempts.saturating_add(1);
        let result = self.query_inner(plan_json, attempt);
        match result {
            Ok(table) => {
                self.record.queries += 1;
                Ok(table)
            }
            Err(refusal) => {
                if matches!(refusal, Refusal::Deadline) {
                    self.record.deadline_hit = true;
                }
                let reason = bounded(&refusal.to_string(), MAX_MODULE_ERROR_CHARS);
                tracing::info!(job = %self.job_id, %reason, "query refused");
                // Past the query limit, further refusals are all alike: one entry says so.
                let limit = self.policy.limits.max_queries_per_run;
                let audited = self.audit.as_ref().filter(|_| attempt <= limit);
                if let Some(log) = audited {
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

    /// Checks a plan as [`query`](Self::query) does before it touches data (its shape, scope,
    /// schema, policy, the run's query limit and the budget left), and answers with the refusal
    /// `query` would give, or `Ok`. It reads no row, charges nothing and is not a query: any
    /// language's module can check a plan before spending on it.
    pub fn check_plan(&self, plan_json: &str) -> Result<(), String> {
        let checked = self
            .precheck(plan_json, self.record.attempts)
            .and_then(|(plan, _, _)| {
                for account in self.accounts(&plan.dataset) {
                    let remaining = self
                        .ledger
                        .remaining(&account, chrono::Utc::now())
                        .map_err(|e| Refusal::Ledger(e.to_string()))?;
                    if plan.epsilon > remaining + 1e-12 {
                        return Err(Refusal::BudgetExhausted {
                            account: account.label,
                            left: remaining,
                            total: account.total,
                            requested: plan.epsilon,
                        });
                    }
                }
                Ok(())
            });
        checked.map_err(|refusal| {
            let reason = bounded(&refusal.to_string(), MAX_MODULE_ERROR_CHARS);
            tracing::info!(job = %self.job_id, %reason, "plan check refused");
            reason
        })
    }

    /// Every check made before the data is touched; `attempt` is the number of queries this run
    /// made before this one.
    #[allow(clippy::type_complexity)]
    fn precheck(
        &self,
        plan_json: &str,
        attempt: u32,
    ) -> Result<(Plan, Arc<Dataset>, Vec<(Vec<bool>, query::CheckedPlan)>), Refusal> {
        if Instant::now() > self.deadline {
            return Err(Refusal::Deadline);
        }
        self.check_revocations()?;
        if attempt >= self.policy.limits.max_queries_per_run {
            return Err(Refusal::TooManyQueries {
                limit: self.policy.limits.max_queries_per_run,
            });
        }
        if plan_json.len() > MAX_PLAN_BYTES {
            return Err(Refusal::PlanTooLarge {
                bytes: plan_json.len(),
            });
        }
        let plan: Plan = serde_json::from_str(plan_json).map_err(malformed)?;
        self.in_scope(&plan.dataset)?;
        if !(plan.epsilon.is_finite() && plan.epsilon > 0.0) {
            return Err(Refusal::InvalidEpsilon {
                epsilon: plan.epsilon,
            });
        }
        let minimum = self.policy.limits.min_epsilon_per_query;
        if plan.epsilon < minimum {
            return Err(Refusal::EpsilonBelowMinimum {
                epsilon: plan.epsilon,
                minimum,
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
        Ok((plan, dataset, parts))
    }

    fn query_inner(&mut self, plan_json: &str, attempt: u32) -> Result<String, Refusal> {
        let (plan, dataset, parts) = self.precheck(plan_json, attempt)?;
        self.record.plans.push(plan.clone());
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
        // the data, so the charge stands (fail closed), and the module learns nothing of it but
        // one constant failure.
        let table = match self.run_parts(&plan, &dataset, parts, config) {
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
        let json = serde_json::to_string(&table).expect("tables serialize");
        let figures = QueryFigures {
            query: self.answers.len() as u32,
            dataset: plan.dataset.clone(),
            release: table.release.clone().unwrap_or_default(),
            columns: crate::release::provenance::ValueColumn::of(&plan),
        };
        self.answers.push(AnsweredQuery { figures, table });
        Ok(json)
    }

    /// Executes and gates each part of a plan (one, or one per margin with totals) and merges
    /// them into the released table. Runs after the data is touched: every failure here is
    /// [`Refusal::FailedAfterData`] (or [`Refusal::Deadline`], which ends the run).
    fn run_parts(
        &self,
        plan: &Plan,
        dataset: &crate::dataset::Dataset,
        parts: Vec<(Vec<bool>, query::CheckedPlan)>,
        config: GateConfig,
    ) -> Result<Table, Refusal> {
        let mut tables = Vec::with_capacity(parts.len());
        for (mask, compiled) in parts {
            let stats = execute_by(
                &*self.backend,
                &compiled,
                dataset,
                self.deadline,
                &self.job_id,
            )?;
            let table =
                gate::release_by(&compiled, &stats, config, self.deadline).map_err(|e| match e {
                    gate::GateError::Deadline => Refusal::Deadline,
                    e => {
                        tracing::error!(job = %self.job_id, error = %e, "the gate could not release");
                        Refusal::FailedAfterData
                    }
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
    ///
    /// The table must fit its columns (every row has one key per key column, and one value per
    /// value column unless suppressed). Its privacy facts are the host's: an unchanged query
    /// answer carries the figures the gate recorded, anything else is labelled as derived and
    /// keeps suppressed cells suppressed ([`provenance::attest`]).
    pub fn emit(&mut self, name: &str, table_json: &str) -> Result<(), String> {
        let name_shown = bounded(name, 64);
        let declared = self
            .module
            .manifest()
            .outputs
            .iter()
            .any(|o| o.name == name);
        if !declared {
            return Err(format!(
                "table '{name_shown}' is not declared in the module's manifest"
            ));
        }
        if self.record.outputs.iter().any(|(n, _, _)| n == name) {
            return Err(format!(
                "table '{name_shown}' was already emitted in this run"
            ));
        }
        if self.record.outputs.len() >= self.policy.limits.max_output_tables {
            return Err("this run has emitted as many tables as the policy allows".into());
        }
        if table_json.len() > MAX_TABLE_BYTES {
            return Err(format!(
                "table '{name_shown}' is larger than {MAX_TABLE_BYTES} bytes"
            ));
        }
        let table: Table = serde_json::from_str(table_json)
            .map_err(|e| format!("malformed table: {}", bounded(&e.to_string(), 200)))?;
        if table.rows.len() > self.policy.limits.max_output_cells {
            return Err(format!(
                "table '{name_shown}' has {} rows; the policy allows {}",
                table.rows.len(),
                self.policy.limits.max_output_cells
            ));
        }
        provenance::check_shape(&table)
            .map_err(|e| format!("table '{name_shown}' cannot be released: {e}"))?;
        let (table, from) = provenance::attest(table, &self.answers);
        self.record.outputs.push((name.to_string(), table, from));
        Ok(())
    }

    /// Appends a line to the run log (truncated; bounded in count).
    /// Control characters are escaped ([`bounded`]), so a line cannot steer a terminal.
    pub fn log(&mut self, message: &str) {
        if self.record.log.len() < MAX_LOG_LINES {
            self.record.log.push(bounded(message, MAX_LOG_LINE));
        }
    }
}

/// Runs `checked` next to the data with `backend` until `deadline`: a query still running then
/// is cancelled and the run ends ([`Refusal::Deadline`] makes the sandbox trap).
fn execute_by(
    backend: &dyn QueryBackend,
    checked: &query::CheckedPlan,
    dataset: &crate::dataset::Dataset,
    deadline: Instant,
    job_id: &str,
) -> Result<query::CellStats, Refusal> {
    match backend.execute(checked, dataset, Some(deadline)) {
        Ok(stats) => Ok(stats),
        Err(BackendError::Failed(kind)) => {
            // Engine messages can quote data values (a failed cast lists the strings): only
            // the kind is logged.
            tracing::warn!(job = %job_id, backend = backend.name(), kind, "query failed while running next to the data");
            Err(Refusal::FailedAfterData)
        }
        Err(BackendError::Deadline) => {
            tracing::warn!(job = %job_id, "query still running at the run's deadline; cancelled");
            Err(Refusal::Deadline)
        }
    }
}

/// The compiled parts of `plan`: the plan itself, or with `totals` one sub-plan per subset of
/// its keys (detail first), each with an equal share of the epsilon.
fn compile_parts(
    plan: &Plan,
    dataset: &crate::dataset::Dataset,
    limits: PlanLimits,
) -> Result<Vec<(Vec<bool>, query::CheckedPlan)>, Refusal> {
    let invalid = |e: query::QueryError| Refusal::InvalidPlan(e.to_string());
    if plan.totals && plan.key_selection {
        return Err(Refusal::InvalidPlan(
            "totals need public key domains; they cannot be combined with key selection".into(),
        ));
    }
    if !plan.totals {
        let compiled = query::check(plan, dataset, limits).map_err(invalid)?;
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
        let compiled = query::check(&sub, dataset, limits).map_err(invalid)?;
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

/// A plan that is not plan JSON, as the module sees it: serde's account of what is wrong and
/// where, cut short and escaped, so a refusal never carries the plan back at length.
fn malformed(e: serde_json::Error) -> Refusal {
    Refusal::MalformedPlan(bounded(&e.to_string(), 200))
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
