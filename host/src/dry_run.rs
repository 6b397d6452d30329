//! `oar run --dry-run`: a module's run on synthetic data shaped like the real datasets, to show
//! before spending anything which cells would be suppressed, the expected error of each table
//! and the epsilon a real run would cost. No real row is read and no budget is charged: the run
//! uses its own in-memory ledger.

use crate::dataset::{Catalog, Dataset};
use crate::job::Host;
use crate::ledger::SqliteLedger;
use crate::policy::Policy;
use crate::sandbox::Runtime;
use crate::synth::shaped::{self, ShapedSpec};
use crate::verify::VerifiedModule;
use oar_guest::table::Table;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// What a dry run found.
#[derive(Debug, Clone)]
pub struct DryRunReport {
    /// Tables the module emitted, or why it emitted none.
    pub outcome: Result<Vec<(String, Table)>, String>,
    /// Epsilon per dataset the run would spend.
    pub epsilon: Vec<(String, f64)>,
    /// Queries the host refused, with the reason the module was given.
    pub refusals: Vec<String>,
    /// The synthetic data used.
    pub spec: ShapedSpec,
    /// The plans the module sent that passed the host's checks, in order.
    pub plans: Vec<oar_guest::plan::Plan>,
}

/// Errors preparing a dry run.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// The synthetic data could not be written or opened.
    #[error("preparing synthetic data: {0}")]
    Data(String),
    /// The bundle itself does not check (altered, or not signed by a trusted author).
    #[error("the module cannot be dry-run: {0}")]
    Module(String),
}

/// What to dry-run.
pub struct DryRun<'a> {
    /// The verified module.
    pub module: Arc<VerifiedModule>,
    /// The holder's policy (its limits, gate settings and scopes apply as in a real run).
    pub policy: Policy,
    /// The real datasets, whose public schemas shape the synthetic data.
    pub datasets: &'a [Dataset],
    /// The requester.
    pub requester: &'a str,
    /// Module parameters (JSON).
    pub params: &'a str,
    /// How much synthetic data.
    pub spec: ShapedSpec,
}

/// Runs the module on synthetic data written under `work_dir`.
pub fn dry_run(
    runtime: Runtime,
    input: DryRun<'_>,
    work_dir: &Path,
) -> Result<DryRunReport, DryRunError> {
    let DryRun {
        module,
        policy,
        datasets,
        requester,
        params,
        spec,
    } = input;
    let mut catalog = Catalog::new();
    for d in datasets {
        let desc = shaped::write(d, spec, &work_dir.join(d.name()))
            .map_err(|e| DryRunError::Data(e.to_string()))?;
        catalog.register(Dataset::open(&desc).map_err(|e| DryRunError::Data(e.to_string()))?);
    }
    let host = Host::new(
        runtime,
        catalog,
        policy,
        Arc::new(SqliteLedger::in_memory()),
    );
    let out = host.run(module, requester, params);
    let epsilon = crate::release::Release::spends(&out.record.charges)
        .into_iter()
        .map(|s| (s.dataset, s.epsilon))
        .collect();
    Ok(DryRunReport {
        outcome: out
            .result
            .map(|r| r.tables.into_iter().map(|t| (t.name, t.table)).collect())
            .map_err(|e| e.to_string()),
        epsilon,
        refusals: out.record.refusals.iter().map(|r| r.to_string()).collect(),
        spec,
        plans: out.record.plans,
    })
}

/// The requester a review's dry run runs as (it exists only in the dry run's own policy).
pub const REVIEW_REQUESTER: &str = "committee-review";

/// A dry run for a committee reviewing a module whose approval is not yet complete: the module
/// runs under `record` (its epsilon and scope) on synthetic data shaped like `datasets`, as
/// [`REVIEW_REQUESTER`], with its own in-memory ledger. Nothing real is read or spent, and the
/// unapproved module never leaves this function.
pub fn for_review(
    runtime: Runtime,
    bundle: &crate::bundle::Bundle,
    record: &crate::approval::ApprovalRecord,
    mut policy: Policy,
    datasets: &[Dataset],
    spec: ShapedSpec,
    work_dir: &Path,
) -> Result<DryRunReport, DryRunError> {
    // The dry run's own committee: one throwaway key, which no real policy lists.
    let dry_run_key = crate::keys::KeyPair::generate("dry-run");
    policy.committee = crate::policy::Committee {
        quorum: 1,
        members: vec![crate::policy::Party {
            name: "dry run".into(),
            key: dry_run_key.public(),
        }],
    };
    let module = VerifiedModule::for_synthetic_review(bundle, record, &policy, &dry_run_key)
        .map_err(|e| DryRunError::Module(e.to_string()))?;
    let names: Vec<String> = record.datasets.iter().map(|d| d.name.clone()).collect();
    let used: Vec<Dataset> = datasets
        .iter()
        .filter(|d| names.iter().any(|n| n == d.name()))
        .cloned()
        .collect();
    policy.requesters.retain(|r| r.name != REVIEW_REQUESTER);
    policy.requesters.push(crate::policy::Requester {
        name: REVIEW_REQUESTER.into(),
        key: crate::keys::KeyPair::generate(REVIEW_REQUESTER).public(),
        datasets: names,
    });
    dry_run(
        runtime,
        DryRun {
            module: Arc::new(module),
            policy,
            datasets: &used,
            requester: REVIEW_REQUESTER,
            params: "{}",
            spec,
        },
        work_dir,
    )
}

impl fmt::Display for DryRunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "DRY RUN on synthetic data shaped like the real datasets ({} rows, {} people; values uniform over the public domains and bounds). Nothing real was read or spent.",
            self.spec.rows, self.spec.units
        )?;
        let total: f64 = self.epsilon.iter().map(|(_, e)| e).sum();
        writeln!(f, "a real run would cost epsilon {total}")?;
        for (dataset, e) in &self.epsilon {
            writeln!(f, "  {e} on dataset '{dataset}'")?;
        }
        for r in &self.refusals {
            writeln!(f, "refused query: {r}")?;
        }
        match &self.outcome {
            Err(e) => writeln!(f, "the run would release nothing: {e}")?,
            Ok(tables) => {
                for (name, t) in tables {
                    writeln!(f, "table {name}: {} cells", t.rows.len())?;
                    let Some(info) = &t.release else {
                        writeln!(f, "  (computed by the module, no privacy facts attached)")?;
                        continue;
                    };
                    writeln!(
                        f,
                        "  {} released; suppressed: {} by the minimum of {} people (noisy threshold {}), {} by dominance, {} to protect totals",
                        info.released_cells,
                        info.suppressed_minimum_units,
                        info.min_units,
                        info.threshold,
                        info.suppressed_dominance,
                        info.suppressed_secondary
                    )?;
                    for a in &info.accuracy {
                        writeln!(
                            f,
                            "  {}: expected error ±{:.3} (95%), noise scale {:.3}, {}",
                            a.column, a.ci95_half_width, a.noise_scale, a.mechanism
                        )?;
                    }
                    let suppressed: Vec<String> = t
                        .rows
                        .iter()
                        .filter(|r| r.suppressed.is_some())
                        .take(10)
                        .map(|r| {
                            r.keys
                                .iter()
                                .map(|k| k.key_text())
                                .collect::<Vec<_>>()
                                .join(" / ")
                        })
                        .collect();
                    if !suppressed.is_empty() {
                        writeln!(f, "  suppressed cells include: {}", suppressed.join("; "))?;
                    }
                }
            }
        }
        writeln!(
            f,
            "(Which real cells are suppressed depends on the real counts; --dry-rows and --dry-units set the synthetic size.)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::ApprovalRecord;
    use crate::bundle::{Bundle, Manifest};
    use crate::keys::KeyPair;

    /// A module made for a review's dry run carries only the throwaway key's signature: a host
    /// under the real policy refuses to start it, before any data is read.
    #[test]
    fn a_module_made_for_a_review_dry_run_does_not_run_under_the_real_policy() {
        let parties = crate::policy::StarterParties::generate();
        let policy = Policy::from_toml(&parties.policy("a test"), "test").unwrap();
        let manifest = Manifest::from_toml(crate::artifacts::POPULATION_MANIFEST).unwrap();
        let bundle = Bundle::sign(
            crate::artifacts::POPULATION_COMPONENT.to_vec(),
            manifest,
            &parties.author,
        );
        let now = chrono::Utc::now();
        let record = ApprovalRecord::for_bundle(
            &bundle,
            10.0,
            now - chrono::Duration::hours(1),
            now + chrono::Duration::days(1),
        );
        let throwaway = KeyPair::generate("dry-run");
        let module =
            VerifiedModule::for_synthetic_review(&bundle, &record, &policy, &throwaway).unwrap();
        let requester = policy.requesters[0].name.clone();
        let host = Host::new(
            Runtime::new(None).unwrap(),
            Catalog::new(),
            policy,
            Arc::new(SqliteLedger::in_memory()),
        );
        let out = host.run(Arc::new(module), &requester, "{}");
        let error = out
            .result
            .expect_err("the real policy does not count the dry run's key");
        assert!(error.to_string().contains("quorum"), "{error}");
        assert_eq!(out.record.queries, 0);
    }
}
