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
}

/// Errors preparing a dry run.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// The synthetic data could not be written or opened.
    #[error("preparing synthetic data: {0}")]
    Data(String),
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
    })
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
