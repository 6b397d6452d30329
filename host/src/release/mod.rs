//! Releases: the tables a successful run emitted, with the facts a statistical office needs to
//! use them (epsilon spent, noise, suppression), written as CSV and JSON.

pub mod provenance;
pub mod signed;
pub mod staged;

use crate::session::Charge;
use oar_guest::table::Table;
use provenance::{Provenance, QueryFigures};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One emitted table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleasedTable {
    /// Name, as declared in the manifest.
    pub name: String,
    /// The cells. Its `release` block is the host's record of the query it answers, or absent
    /// for a derived table; never what the module wrote.
    pub table: Table,
    /// Where the table came from, as the host established it.
    pub provenance: Provenance,
}

/// Epsilon spent on one dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spend {
    /// Dataset.
    pub dataset: String,
    /// Epsilon.
    pub epsilon: f64,
}

/// Everything a run releases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    /// Job id.
    pub job_id: String,
    /// Module name.
    pub module: String,
    /// Module version.
    pub module_version: String,
    /// SHA-256 of the component.
    pub module_hash: String,
    /// Digest of the approval it ran under.
    pub approval_digest: String,
    /// Who asked.
    pub requester: String,
    /// When it was produced (UTC, RFC 3339).
    pub created_at: String,
    /// Epsilon spent per dataset.
    pub epsilon_spent: Vec<Spend>,
    /// Total epsilon spent.
    pub epsilon_total: f64,
    /// What the gate did for each query the run's answers came from, as the host recorded it.
    #[serde(default)]
    pub queries: Vec<QueryFigures>,
    /// The tables.
    pub tables: Vec<ReleasedTable>,
    /// Set when this release was returned again for an identical later run (same module,
    /// approval, parameters and data snapshot) instead of being recomputed: that run charged
    /// nothing and drew no new noise. Holds that later run's job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_by: Option<String>,
    /// SHA-256 (hex) of the run's parameters in RFC 8785 form (signed with the release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_sha256: Option<String>,
}

impl Release {
    /// Sums charges per dataset.
    pub fn spends(charges: &[Charge]) -> Vec<Spend> {
        let mut out: Vec<Spend> = Vec::new();
        for c in charges {
            match out.iter_mut().find(|s| s.dataset == c.dataset) {
                Some(s) => s.epsilon += c.epsilon,
                None => out.push(Spend {
                    dataset: c.dataset.clone(),
                    epsilon: c.epsilon,
                }),
            }
        }
        out
    }

    /// Cells suppressed across all tables.
    pub fn suppressed_cells(&self) -> usize {
        self.tables.iter().map(|t| t.table.suppressed_count()).sum()
    }

    /// Writes `release.json` and one CSV per table into `dir`; returns the files written.
    ///
    /// A table whose rows do not fit its columns is refused before anything is written.
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        for t in &self.tables {
            provenance::check_shape(&t.table).map_err(|e| {
                std::io::Error::other(format!(
                    "table '{}': {e}",
                    crate::module_text::bounded(&t.name, 64)
                ))
            })?;
        }
        let mut names = std::collections::BTreeMap::new();
        for t in &self.tables {
            let file = sanitize(&t.name);
            if let Some(other) = names.insert(file.clone(), &t.name) {
                return Err(std::io::Error::other(format!(
                    "tables '{}' and '{}' would be written under the same file name {file}; name tables with letters, digits, '_' and '-' only",
                    crate::module_text::bounded(other, 64),
                    crate::module_text::bounded(&t.name, 64)
                )));
            }
        }
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        let json = dir.join("release.json");
        write_atomic(
            &json,
            &serde_json::to_vec_pretty(self).expect("releases serialize"),
        )?;
        written.push(json);
        for t in &self.tables {
            let path = dir.join(format!("{}.csv", sanitize(&t.name)));
            write_atomic(&path, to_csv(&t.table).as_bytes())?;
            written.push(path);
            let path = dir.join(format!("{}.parquet", sanitize(&t.name)));
            write_atomic(&path, &to_parquet(&t.table)?)?;
            written.push(path);
        }
        Ok(written)
    }

    /// Writes the release like [`Release::write`] and signs every file with the holder's key
    /// (`release.sig.json`); returns the files written, the signature last.
    pub fn write_signed(
        &self,
        dir: &Path,
        holder: &crate::keys::KeyPair,
    ) -> std::io::Result<Vec<PathBuf>> {
        let mut written = self.write(dir)?;
        // A repeat is signed for the job that asked, naming the job it reuses.
        let of = signed::ReleaseFor {
            job_id: self.reused_by.as_deref().unwrap_or(&self.job_id),
            params_sha256: self.params_sha256.as_deref(),
            reuses: self.reused_by.as_ref().map(|_| self.job_id.as_str()),
        };
        written.push(signed::sign_dir(dir, &written, of, holder)?);
        Ok(written)
    }
}

impl Release {
    /// Writes the release (signed by `signer` if given) into `dir` as one step: everything is
    /// written and signed in a fresh sibling folder first, which is then renamed to `dir`. So
    /// `dir` either holds the whole release or nothing, never a partial or unsigned one, and a
    /// table that cannot be written fails the release before anything records it as released.
    ///
    /// `dir` must not exist, or be an empty folder (which is replaced). Returns the files
    /// written, under `dir`.
    pub fn publish(
        &self,
        dir: &Path,
        signer: Option<&crate::keys::KeyPair>,
    ) -> std::io::Result<Vec<PathBuf>> {
        let written = staged::write_whole(dir, |staging| match signer {
            Some(key) => self.write_signed(staging, key),
            None => self.write(staging),
        })
        .map_err(|e| match e {
            staged::StagedError::Io(e) | staged::StagedError::Fill(e) => e,
        })?;
        Ok(written
            .iter()
            .filter_map(|f| f.file_name())
            .map(|f| dir.join(f))
            .collect())
    }
}

/// Parquet of a table: key columns as text, value columns as numbers (null when suppressed) and
/// a `status` column.
pub fn to_parquet(t: &Table) -> std::io::Result<Vec<u8>> {
    use polars::prelude::*;
    let mut columns: Vec<Column> = Vec::new();
    for (i, k) in t.key_columns.iter().enumerate() {
        let values: Vec<String> = t.rows.iter().map(|r| r.keys[i].key_text()).collect();
        columns.push(Column::new(k.as_str().into(), values));
    }
    for (i, v) in t.value_columns.iter().enumerate() {
        let values: Vec<Option<f64>> = t.rows.iter().map(|r| r.values.get(i).copied()).collect();
        columns.push(Column::new(v.as_str().into(), values));
    }
    let status: Vec<&str> = t
        .rows
        .iter()
        .map(|r| {
            if r.suppressed.is_some() {
                "suppressed"
            } else {
                "released"
            }
        })
        .collect();
    columns.push(Column::new("status".into(), status));
    let io = |e: PolarsError| std::io::Error::other(e.to_string());
    let mut df = DataFrame::new(columns).map_err(io)?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut df).map_err(io)?;
    Ok(bytes)
}

/// CSV of a table: key columns, value columns, and a `status` column (`released` or
/// `suppressed`); suppressed rows have empty values.
pub fn to_csv(t: &Table) -> String {
    let mut out = String::new();
    let header: Vec<String> = t
        .key_columns
        .iter()
        .chain(&t.value_columns)
        .map(|c| csv_field(c))
        .chain(std::iter::once("status".to_string()))
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for r in &t.rows {
        let mut fields: Vec<String> = r.keys.iter().map(|k| csv_field(&k.key_text())).collect();
        if r.suppressed.is_some() {
            fields.extend(std::iter::repeat_n(String::new(), t.value_columns.len()));
            fields.push("suppressed".into());
        } else {
            fields.extend(r.values.iter().map(|v| format_value(*v)));
            fields.push("released".into());
        }
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// A released value as text: whole numbers without decimals, others to four places.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.4}")
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
