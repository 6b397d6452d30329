//! One question asked of several holders, and their answers combined.
//!
//! Each holder runs the same approved module (the same component hash and parameters) under its
//! own policy, committee and ledger, and signs its own release; there is no central party. The
//! requester verifies every holder's release against that holder's key and combines them
//! ([`combine`]), by rules fixed here and named by [`RULES`]:
//!
//! - **Counts and sums add**; each cell's noise variance is the sum of the holders', so the
//!   combined 95% half-width is the root of the sum of their squares (exact for one holder,
//!   conservative for several: a sum of independent Laplace noises has lighter tails than one
//!   Laplace noise of the same variance). The noise scale reported is the root of the sum of the
//!   squared scales.
//! - **Means and quantiles are not combined**: a mean cannot be recomputed from released means
//!   without each holder's counts and sums. Those columns are left out, with a note; release the
//!   sum and the count instead.
//! - **A cell withheld at any holder is withheld in the combined table** (with that holder's
//!   reason): a combined value would otherwise be a silent undercount.
//! - **Secondary suppression is re-run on the combined margins** (tables released with totals),
//!   so no withheld cell can be recovered from combined totals by subtraction.
//! - Tables the modules derived (post-processing) are not combined: their inputs are.
//!
//! The combination carries its provenance ([`Provenance`]): every holder's key, job and signed
//! manifest digest, so anyone can re-verify each release and recompute the combination offline
//! (`oar federate verify`).

use crate::keys::PublicKey;
use crate::release::provenance::{Provenance as TableProvenance, ValueKind};
use crate::release::signed::{verify_dir, ReleaseManifest, ReleaseVerifyError};
use crate::release::Release;
use oar_guest::table::{Accuracy, ReleaseInfo, Row, Suppression, Table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The name and version of the combination rules above.
pub const RULES: &str = "oar-federation-v1";

/// Why releases could not be combined.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// A holder's release does not verify against its key.
    #[error("holder {holder}: the release does not verify: {source}")]
    NotVerified {
        /// The holder.
        holder: String,
        /// Why.
        source: ReleaseVerifyError,
    },
    /// A release file could not be read.
    #[error("holder {holder}: {message}")]
    Unreadable {
        /// The holder.
        holder: String,
        /// What failed.
        message: String,
    },
    /// The releases do not answer the same question.
    #[error("the releases do not answer the same question: {0}")]
    Mismatch(String),
    /// Nothing to combine.
    #[error("no holder's release to combine")]
    Empty,
    /// A combined folder does not match what its holders' releases combine to.
    #[error("the combination does not match its holders' releases: {0}")]
    Altered(String),
}

/// One holder's verified release.
#[derive(Debug, Clone)]
pub struct HolderRelease {
    /// The requester's name for the holder.
    pub holder: String,
    /// The holder's key.
    pub key: PublicKey,
    /// The signed manifest.
    pub manifest: ReleaseManifest,
    /// `release.json`.
    pub release: Release,
}

impl HolderRelease {
    /// Verifies the release folder `dir` against `key` and reads it.
    pub fn open(holder: &str, key: PublicKey, dir: &Path) -> Result<Self, FederationError> {
        let manifest = verify_dir(dir, &key).map_err(|source| FederationError::NotVerified {
            holder: holder.to_string(),
            source,
        })?;
        let text =
            std::fs::read(dir.join("release.json")).map_err(|e| FederationError::Unreadable {
                holder: holder.to_string(),
                message: format!("release.json: {e}"),
            })?;
        let release: Release =
            serde_json::from_slice(&text).map_err(|e| FederationError::Unreadable {
                holder: holder.to_string(),
                message: format!("release.json: {e}"),
            })?;
        Ok(HolderRelease {
            holder: holder.to_string(),
            key,
            manifest,
            release,
        })
    }
}

/// A combined table and what was left out of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CombinedTable {
    /// The table's name.
    pub name: String,
    /// The combined cells, with the combined accuracy.
    pub table: Table,
    /// Value columns left out, with why.
    pub left_out: Vec<(String, String)>,
    /// Cells withheld because a holder withheld them, by holder.
    pub withheld_by_holder: BTreeMap<String, usize>,
    /// Cells withheld by the secondary suppression re-run on the combined margins.
    pub withheld_on_combined_margins: usize,
}

/// The combination of several holders' releases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Combination {
    /// [`RULES`].
    pub rules: String,
    /// The tables combined.
    pub tables: Vec<CombinedTable>,
    /// Tables not combined, with why.
    pub not_combined: Vec<(String, String)>,
}

fn same<'a>(
    releases: &'a [HolderRelease],
    what: &str,
    get: impl Fn(&'a HolderRelease) -> Option<&'a str>,
) -> Result<(), FederationError> {
    let first = get(&releases[0]);
    for r in &releases[1..] {
        if get(r) != first {
            return Err(FederationError::Mismatch(format!(
                "{what} differs between {} and {}",
                releases[0].holder, r.holder
            )));
        }
    }
    Ok(())
}

/// Combines holders' verified releases of the same module and parameters (see the module
/// documentation for the rules).
pub fn combine(releases: &[HolderRelease]) -> Result<Combination, FederationError> {
    if releases.is_empty() {
        return Err(FederationError::Empty);
    }
    same(releases, "the module (component hash)", |r| {
        Some(r.release.module_hash.as_str())
    })?;
    same(releases, "the parameters", |r| {
        r.manifest.params_sha256.as_deref()
    })?;
    let mut tables = Vec::new();
    let mut not_combined = Vec::new();
    for first in &releases[0].release.tables {
        match combine_table(releases, &first.name) {
            Ok(t) => tables.push(t),
            Err(why) => not_combined.push((first.name.clone(), why)),
        }
    }
    Ok(Combination {
        rules: RULES.to_string(),
        tables,
        not_combined,
    })
}

/// The table `name` of each release, with the kinds of its value columns.
fn combine_table(releases: &[HolderRelease], name: &str) -> Result<CombinedTable, String> {
    let mut parts: Vec<(&HolderRelease, &Table, Vec<Option<ValueKind>>)> = Vec::new();
    for r in releases {
        let Some(t) = r.release.tables.iter().find(|t| t.name == name) else {
            return Err(format!("holder {} did not release it", r.holder));
        };
        let TableProvenance::Query { query } = t.provenance else {
            return Err(
                "the module derived it from its answers; combine the tables it was derived from"
                    .into(),
            );
        };
        let figures = r.release.queries.iter().find(|q| q.query == query);
        let kinds = t
            .table
            .value_columns
            .iter()
            .map(|c| figures.and_then(|f| f.columns.iter().find(|v| &v.name == c).map(|v| v.kind)))
            .collect();
        parts.push((r, &t.table, kinds));
    }
    let (_, first, kinds) = &parts[0];
    for (r, t, k) in &parts[1..] {
        if t.key_columns != first.key_columns
            || t.value_columns != first.value_columns
            || k != kinds
        {
            return Err(format!(
                "holder {} released it with other columns than holder {}",
                r.holder, parts[0].0.holder
            ));
        }
    }
    // The columns that add, and those left out.
    let mut keep = Vec::new();
    let mut left_out = Vec::new();
    for (i, (c, k)) in first.value_columns.iter().zip(kinds).enumerate() {
        match k {
            Some(ValueKind::CountUnits | ValueKind::Sum) => keep.push(i),
            Some(ValueKind::Mean) => left_out.push((c.clone(), "a mean cannot be recomputed from released means without each holder's sums and counts; release the sum and the count".to_string())),
            Some(ValueKind::Quantile) => left_out.push((c.clone(), "quantiles do not combine across holders".to_string())),
            None => left_out.push((c.clone(), "the release does not say what this column computes (released by an older host)".to_string())),
        }
    }
    if keep.is_empty() {
        return Err("none of its columns can be combined (only counts and sums add)".into());
    }
    // Cells: the union of keys, in the first holder's order, then any others'.
    let mut order: Vec<String> = Vec::new();
    let mut rows: BTreeMap<String, Vec<Option<&Row>>> = BTreeMap::new();
    for (h, (_, t, _)) in parts.iter().enumerate() {
        for row in &t.rows {
            let key = row
                .keys
                .iter()
                .map(|k| k.key_text())
                .collect::<Vec<_>>()
                .join("\u{1f}");
            let slot = rows.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                vec![None; parts.len()]
            });
            slot[h] = Some(row);
        }
    }
    let mut table = Table::new(
        first.key_columns.clone(),
        keep.iter().map(|&i| first.value_columns[i].clone()),
    );
    let mut withheld_by_holder: BTreeMap<String, usize> = BTreeMap::new();
    for key in &order {
        let slots = &rows[key];
        let keys = slots
            .iter()
            .flatten()
            .next()
            .expect("every key comes from a row")
            .keys
            .clone();
        let mut withheld = None;
        for (h, slot) in slots.iter().enumerate() {
            let why = match slot {
                None => Some(Suppression::MinimumUnits),
                Some(r) => r.suppressed,
            };
            if let Some(why) = why {
                *withheld_by_holder
                    .entry(parts[h].0.holder.clone())
                    .or_default() += 1;
                withheld.get_or_insert(why);
            }
        }
        match withheld {
            Some(why) => table.rows.push(Row {
                keys,
                values: Vec::new(),
                suppressed: Some(why),
            }),
            None => table.rows.push(Row {
                keys,
                values: keep
                    .iter()
                    .map(|&i| slots.iter().flatten().map(|r| r.values[i]).sum())
                    .collect(),
                suppressed: None,
            }),
        }
    }
    // Accuracy: variances add.
    let accuracy = keep
        .iter()
        .map(|&i| {
            let column = &first.value_columns[i];
            let (mut scale2, mut half2) = (0.0, 0.0);
            for (_, t, _) in &parts {
                if let Some(a) = t
                    .release
                    .as_ref()
                    .and_then(|r| r.accuracy.iter().find(|a| &a.column == column))
                {
                    scale2 += a.noise_scale * a.noise_scale;
                    half2 += a.ci95_half_width * a.ci95_half_width;
                }
            }
            Accuracy {
                column: column.clone(),
                mechanism: format!(
                    "sum of {} holders' independent releases ({RULES}: noise variances add)",
                    parts.len()
                ),
                noise_scale: scale2.sqrt(),
                ci95_half_width: half2.sqrt(),
            }
        })
        .collect();
    let infos: Vec<&ReleaseInfo> = parts
        .iter()
        .filter_map(|(_, t, _)| t.release.as_ref())
        .collect();
    table.release = Some(ReleaseInfo {
        epsilon: infos.iter().map(|i| i.epsilon).fold(0.0, f64::max),
        delta: infos.iter().map(|i| i.delta).fold(0.0, f64::max),
        min_units: infos.iter().map(|i| i.min_units).min().unwrap_or(0),
        threshold: infos.iter().map(|i| i.threshold).fold(0.0, f64::max),
        accuracy,
        ..Default::default()
    });
    let has_totals = table
        .rows
        .iter()
        .any(|r| r.keys.iter().any(|k| k.as_str() == Some("Total")));
    let withheld_on_combined_margins = if has_totals {
        crate::gate::margins::secondary_suppression(&mut table, 0)
    } else {
        0
    };
    let released = table.rows.iter().filter(|r| r.suppressed.is_none()).count();
    let counts = [
        Suppression::MinimumUnits,
        Suppression::Dominance,
        Suppression::Secondary,
    ]
    .map(|why| crate::gate::count_suppressed(&table, why));
    let cells = table.rows.len();
    if let Some(info) = table.release.as_mut() {
        info.released_cells = released;
        info.suppressed_cells = cells - released;
        info.suppressed_minimum_units = counts[0];
        info.suppressed_dominance = counts[1];
        info.suppressed_secondary = counts[2];
    }
    Ok(CombinedTable {
        name: name.to_string(),
        table,
        left_out,
        withheld_by_holder,
        withheld_on_combined_margins,
    })
}

/// One holder of a federated run, as its provenance records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HolderRecord {
    /// The requester's name for it.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Its key.
    pub key: PublicKey,
    /// The job it ran, if it took the run.
    pub job_id: Option<String>,
    /// `included`, or why not: `refused`, `failed`, `unreachable`, `not verified`.
    pub outcome: String,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SHA-256 (hex) of the holder's signed release manifest digest, when included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
}

/// `federation.json`: what a combined folder is made of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    /// [`RULES`].
    pub rules: String,
    /// The module's component hash.
    pub module_hash: String,
    /// Every holder asked, included or not.
    pub holders: Vec<HolderRecord>,
    /// Whether some holder's release is missing from the combination.
    pub partial: bool,
    /// SHA-256 (hex) of each combined file.
    pub combined_files: BTreeMap<String, String>,
}

/// Whether `name` may name a holder: a plain folder name (letters, digits, `-`, `_`; at most
/// 64), as it becomes `holders/NAME` in a federated run's folder.
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The folder of combined tables inside a federated run's folder: `combined`, or
/// `combined-partial` when some holder's release is missing.
pub fn combined_dir(out: &Path, partial: bool) -> PathBuf {
    out.join(if partial {
        "combined-partial"
    } else {
        "combined"
    })
}

/// Writes the combination's files (`TABLE.csv`, `TABLE.parquet`, `combination.json`) into
/// `dir`; returns each file's SHA-256.
pub fn write_combination(c: &Combination, dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    std::fs::create_dir_all(dir)?;
    let mut files = BTreeMap::new();
    let mut put = |name: String, bytes: Vec<u8>| -> std::io::Result<()> {
        std::fs::write(dir.join(&name), &bytes)?;
        files.insert(name, hex::encode(crate::keys::sha256(&bytes)));
        Ok(())
    };
    put(
        "combination.json".into(),
        serde_json::to_vec_pretty(c).expect("combinations serialize"),
    )?;
    for t in &c.tables {
        let stem = crate::release::file_stem(&t.name);
        put(
            format!("{stem}.csv"),
            crate::release::to_csv(&t.table).into_bytes(),
        )?;
        put(
            format!("{stem}.parquet"),
            crate::release::to_parquet(&t.table)?,
        )?;
    }
    Ok(files)
}

/// Checks a federated run's folder offline: every included holder's release verifies against
/// the key its provenance names, and the combined files are exactly what those releases combine
/// to. Returns the provenance.
pub fn verify(out: &Path) -> Result<Provenance, FederationError> {
    let unreadable = |message: String| FederationError::Unreadable {
        holder: "-".into(),
        message,
    };
    let text = std::fs::read(out.join("federation.json"))
        .map_err(|e| unreadable(format!("federation.json: {e}")))?;
    let p: Provenance =
        serde_json::from_slice(&text).map_err(|e| unreadable(format!("federation.json: {e}")))?;
    if p.rules != RULES {
        return Err(FederationError::Mismatch(format!(
            "combined by rules {}, this oar knows {RULES}",
            p.rules
        )));
    }
    let mut releases = Vec::new();
    for h in p.holders.iter().filter(|h| h.outcome == "included") {
        if !plain_name(&h.name) {
            return Err(FederationError::Altered(format!(
                "holder name {:?} is not a plain folder name",
                crate::module_text::bounded(&h.name, 64)
            )));
        }
        let r = HolderRelease::open(&h.name, h.key, &out.join("holders").join(&h.name))?;
        if Some(&r.manifest.job_id) != h.job_id.as_ref() {
            return Err(FederationError::Altered(format!(
                "holder {}'s release is signed for job {}, the provenance names {:?}",
                h.name, r.manifest.job_id, h.job_id
            )));
        }
        if r.release.module_hash != p.module_hash {
            return Err(FederationError::Mismatch(format!(
                "holder {} ran module {}, not {}",
                h.name, r.release.module_hash, p.module_hash
            )));
        }
        releases.push(r);
    }
    let partial = p.holders.iter().any(|h| h.outcome != "included");
    if partial != p.partial {
        return Err(FederationError::Altered(
            "the provenance's `partial` does not match its holders".into(),
        ));
    }
    let combination = combine(&releases)?;
    let scratch = tempfile::tempdir().map_err(|e| unreadable(e.to_string()))?;
    let expected =
        write_combination(&combination, scratch.path()).map_err(|e| unreadable(e.to_string()))?;
    if expected != p.combined_files {
        return Err(FederationError::Altered(
            "the provenance lists other combined files than the releases combine to".into(),
        ));
    }
    let dir = combined_dir(out, p.partial);
    for (name, sha) in &expected {
        let bytes = std::fs::read(dir.join(name))
            .map_err(|e| unreadable(format!("{}: {e}", dir.join(name).display())))?;
        if &hex::encode(crate::keys::sha256(&bytes)) != sha {
            return Err(FederationError::Altered(format!(
                "{name} differs from what the holders' releases combine to"
            )));
        }
    }
    let listed: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| unreadable(e.to_string()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !expected.contains_key(n))
        .collect();
    if !listed.is_empty() {
        return Err(FederationError::Altered(format!(
            "files the combination does not make: {}",
            listed.join(", ")
        )));
    }
    Ok(p)
}
