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

/// The columns of a table file: per value column, its estimate and, when the host recorded its
/// accuracy, the 95% interval's bounds and the noise scale; then the cell's status and why a
/// withheld cell was withheld. Both the CSV and the Parquet file have exactly these columns.
struct FileColumns<'t> {
    table: &'t Table,
    /// Per value column: (half-width of the 95% interval, noise scale), when known.
    accuracy: Vec<Option<(f64, f64)>>,
}

impl<'t> FileColumns<'t> {
    fn of(table: &'t Table) -> Self {
        let accuracy = table
            .value_columns
            .iter()
            .map(|c| {
                table
                    .release
                    .as_ref()
                    .and_then(|r| r.accuracy.iter().find(|a| &a.column == c))
                    .map(|a| (a.ci95_half_width, a.noise_scale))
            })
            .collect();
        FileColumns { table, accuracy }
    }

    /// Names of the value-side columns, in order.
    fn value_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (c, acc) in self.table.value_columns.iter().zip(&self.accuracy) {
            names.push(c.clone());
            if acc.is_some() {
                names.push(format!("{c}_ci95_low"));
                names.push(format!("{c}_ci95_high"));
                names.push(format!("{c}_noise_scale"));
            }
        }
        names
    }

    /// The value-side fields of a row (`None` where the cell is withheld).
    fn value_fields(&self, r: &oar_guest::table::Row) -> Vec<Option<f64>> {
        let mut out = Vec::new();
        for (i, acc) in self.accuracy.iter().enumerate() {
            let v = if r.suppressed.is_some() {
                None
            } else {
                r.values.get(i).copied()
            };
            out.push(v);
            if let Some((half, scale)) = acc {
                out.push(v.map(|v| v - half));
                out.push(v.map(|v| v + half));
                out.push(v.map(|_| *scale));
            }
        }
        out
    }
}

/// Why a cell was withheld, as a stable code (the release JSON's `suppressed` value).
pub fn suppression_code(r: &oar_guest::table::Row) -> &'static str {
    use oar_guest::table::Suppression;
    match r.suppressed {
        None => "",
        Some(Suppression::MinimumUnits) => "minimum_units",
        Some(Suppression::Dominance) => "dominance",
        Some(Suppression::Secondary) => "secondary",
        Some(Suppression::Derived) => "derived",
    }
}

fn status(r: &oar_guest::table::Row) -> &'static str {
    if r.suppressed.is_some() {
        "suppressed"
    } else {
        "released"
    }
}

/// Parquet of a table: key columns as text; each value column with its 95% interval bounds and
/// noise scale (null when withheld); `status` and `suppressed_because`.
pub fn to_parquet(t: &Table) -> std::io::Result<Vec<u8>> {
    use polars::prelude::*;
    let cols = FileColumns::of(t);
    let mut columns: Vec<Column> = Vec::new();
    for (i, k) in t.key_columns.iter().enumerate() {
        let values: Vec<String> = t.rows.iter().map(|r| r.keys[i].key_text()).collect();
        columns.push(Column::new(k.as_str().into(), values));
    }
    let fields: Vec<Vec<Option<f64>>> = t.rows.iter().map(|r| cols.value_fields(r)).collect();
    for (j, name) in cols.value_names().iter().enumerate() {
        let values: Vec<Option<f64>> = fields.iter().map(|f| f[j]).collect();
        columns.push(Column::new(name.as_str().into(), values));
    }
    let statuses: Vec<&str> = t.rows.iter().map(status).collect();
    columns.push(Column::new("status".into(), statuses));
    let reasons: Vec<&str> = t.rows.iter().map(suppression_code).collect();
    columns.push(Column::new("suppressed_because".into(), reasons));
    let io = |e: PolarsError| std::io::Error::other(e.to_string());
    let mut df = DataFrame::new(columns).map_err(io)?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut df).map_err(io)?;
    Ok(bytes)
}

/// CSV of a table: key columns; each value column followed by its 95% interval's bounds
/// (`COL_ci95_low`, `COL_ci95_high`) and noise scale (`COL_noise_scale`) when the host recorded
/// them; `status` (`released` or `suppressed`) and `suppressed_because` (`minimum_units`,
/// `dominance`, `secondary`, `derived`; empty when released). Withheld cells have empty values.
/// Every line, the last included, ends with a newline.
pub fn to_csv(t: &Table) -> String {
    let cols = FileColumns::of(t);
    let mut out = String::new();
    let header: Vec<String> = t
        .key_columns
        .iter()
        .map(|c| csv_field(c))
        .chain(cols.value_names().iter().map(|c| csv_field(c)))
        .chain(["status".to_string(), "suppressed_because".to_string()])
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for r in &t.rows {
        let mut fields: Vec<String> = r.keys.iter().map(|k| csv_field(&k.key_text())).collect();
        fields.extend(
            cols.value_fields(r)
                .into_iter()
                .map(|v| v.map(format_value).unwrap_or_default()),
        );
        fields.push(status(r).into());
        fields.push(suppression_code(r).into());
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

/// The file name stem a table is written under (letters, digits, `_` and `-`; others become `_`).
pub fn file_stem(name: &str) -> String {
    sanitize(name)
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

#[cfg(test)]
mod tests {
    use super::*;
    use oar_guest::table::{Accuracy, ReleaseInfo, Row, Suppression};
    use oar_guest::Value;

    fn table() -> Table {
        let mut t = Table::new(["region"], ["n"]);
        t.rows.push(Row {
            keys: vec![Value::from("North")],
            values: vec![120.0],
            suppressed: None,
        });
        t.rows.push(Row {
            keys: vec![Value::from("South, coast")],
            values: vec![],
            suppressed: Some(Suppression::MinimumUnits),
        });
        t.release = Some(ReleaseInfo {
            accuracy: vec![Accuracy {
                column: "n".into(),
                mechanism: "discrete Laplace".into(),
                noise_scale: 2.0,
                ci95_half_width: 6.0,
            }],
            ..Default::default()
        });
        t
    }

    #[test]
    fn the_csv_puts_each_estimate_beside_its_interval_noise_and_reason() {
        assert_eq!(
            to_csv(&table()),
            "region,n,n_ci95_low,n_ci95_high,n_noise_scale,status,suppressed_because\n\
             North,120,114,126,2,released,\n\
             \"South, coast\",,,,,suppressed,minimum_units\n"
        );
    }

    #[test]
    fn a_table_without_privacy_facts_has_no_interval_columns() {
        let mut t = table();
        t.release = None;
        assert!(to_csv(&t).starts_with("region,n,status,suppressed_because\n"));
    }

    #[test]
    fn the_parquet_file_has_the_csv_s_columns() {
        use polars::prelude::*;
        let bytes = to_parquet(&table()).unwrap();
        let df = ParquetReader::new(std::io::Cursor::new(bytes))
            .finish()
            .unwrap();
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "region",
                "n",
                "n_ci95_low",
                "n_ci95_high",
                "n_noise_scale",
                "status",
                "suppressed_because"
            ]
        );
        let high = df.column("n_ci95_high").unwrap().f64().unwrap();
        assert_eq!(high.get(0), Some(126.0));
        assert_eq!(high.get(1), None);
    }
}
