//! Which privacy facts a released table carries: always the host's, never the module's.
//!
//! A module's `emit` hands the host a table the module built. Whatever `release` block or
//! suppression flags it wrote are claims, not facts. [`attest`] replaces them with what the
//! session recorded when the gate answered each query:
//! - a table that is exactly a query's answer carries that query's figures (ε, δ, threshold,
//!   accuracy, suppressions by rule) as the gate produced them;
//! - any other table is *derived*: it carries no privacy figures of its own, is labelled as
//!   computed from the run's answered queries (whose figures the release lists), and every cell
//!   that a query with the same key columns suppressed stays suppressed.

use oar_guest::table::{ReleaseInfo, Suppression, Table};
use serde::{Deserialize, Serialize};

/// What the gate did for one answered query of a run, as the session recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryFigures {
    /// The query's number in the run (0 for the first answered query).
    pub query: u32,
    /// The dataset it read.
    pub dataset: String,
    /// The gate's figures: ε, δ, threshold, accuracy, released and suppressed cells by rule.
    pub release: ReleaseInfo,
    /// What each value column computes, from the plan: how releases of the same query at
    /// several holders combine (counts and sums add; means and quantiles do not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ValueColumn>,
}

/// One value column of a query's answer and the statistic it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueColumn {
    /// The column's name.
    pub name: String,
    /// The statistic.
    pub kind: ValueKind,
}

/// The statistic a value column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// Distinct privacy units in the cell.
    CountUnits,
    /// A bounded sum.
    Sum,
    /// A mean (bounded sum over a noisy count).
    Mean,
    /// A quantile.
    Quantile,
}

impl ValueColumn {
    /// The value columns of a plan's answer, in order.
    pub fn of(plan: &oar_guest::plan::Plan) -> Vec<ValueColumn> {
        use oar_guest::plan::Aggregate;
        plan.aggregates
            .iter()
            .map(|a| ValueColumn {
                name: a.name().to_string(),
                kind: match a {
                    Aggregate::CountUnits { .. } => ValueKind::CountUnits,
                    Aggregate::Sum { .. } => ValueKind::Sum,
                    Aggregate::Mean { .. } => ValueKind::Mean,
                    Aggregate::Quantile { .. } => ValueKind::Quantile,
                },
            })
            .collect()
    }
}

/// One answered query: the host's figures and the table the module received.
#[derive(Debug, Clone)]
pub struct AnsweredQuery {
    /// The figures.
    pub figures: QueryFigures,
    /// The table as it left the gate.
    pub table: Table,
}

/// Where a released table came from, as the host established it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provenance {
    /// The answer to query `query`, unchanged; its `release` block is that query's figures.
    Query {
        /// The query's number in the run.
        query: u32,
    },
    /// Computed by the module from the answers of these queries (post-processing of DP output);
    /// the table has no privacy figures of its own.
    Derived {
        /// The run's answered queries.
        from: Vec<u32>,
    },
}

/// Why a table cannot be released.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShapeError {
    /// A column name is empty, or used twice across key and value columns.
    #[error("column names must be non-empty and distinct across key and value columns ('{0}')")]
    ColumnName(String),
    /// A table with no columns at all.
    #[error("a table needs at least one key or value column")]
    NoColumns,
    /// Too many columns.
    #[error("a table may have at most {MAX_COLUMNS} key and value columns, this one has {0}")]
    TooManyColumns(usize),
    /// A row does not fit the columns.
    #[error("row {row} has {got} {what}, the table declares {want}")]
    Row {
        /// Row number (from 0).
        row: usize,
        /// `keys` or `values`.
        what: &'static str,
        /// How many it has.
        got: usize,
        /// How many the columns call for.
        want: usize,
    },
}

/// Most key and value columns an emitted table may have.
pub const MAX_COLUMNS: usize = 256;

/// Checks that every row of `t` fits its columns and that no two columns share a name.
pub fn check_shape(t: &Table) -> Result<(), ShapeError> {
    let columns = t.key_columns.len() + t.value_columns.len();
    if columns == 0 {
        return Err(ShapeError::NoColumns);
    }
    if columns > MAX_COLUMNS {
        return Err(ShapeError::TooManyColumns(columns));
    }
    let mut seen = std::collections::HashSet::new();
    for c in t.key_columns.iter().chain(&t.value_columns) {
        if c.is_empty() || c == "status" || !seen.insert(c.as_str()) {
            return Err(ShapeError::ColumnName(crate::module_text::bounded(c, 64)));
        }
    }
    for (row, r) in t.rows.iter().enumerate() {
        if r.keys.len() != t.key_columns.len() {
            return Err(ShapeError::Row {
                row,
                what: "keys",
                got: r.keys.len(),
                want: t.key_columns.len(),
            });
        }
        let want = if r.suppressed.is_some() {
            0
        } else {
            t.value_columns.len()
        };
        if r.values.len() != want {
            return Err(ShapeError::Row {
                row,
                what: "values",
                got: r.values.len(),
                want,
            });
        }
    }
    Ok(())
}

/// The table to release for an emitted `table`, with the host's figures, and its provenance.
/// `table` must have passed [`check_shape`].
pub fn attest(mut table: Table, answered: &[AnsweredQuery]) -> (Table, Provenance) {
    table.release = None;
    if let Some(q) = answered.iter().find(|q| same_cells(&q.table, &table)) {
        table.release = Some(q.figures.release.clone());
        for (row, original) in table.rows.iter_mut().zip(&q.table.rows) {
            row.suppressed = original.suppressed;
        }
        return (
            table,
            Provenance::Query {
                query: q.figures.query,
            },
        );
    }
    for row in &mut table.rows {
        if row.suppressed.is_some() {
            row.suppressed = Some(Suppression::Derived);
        }
    }
    for q in answered
        .iter()
        .filter(|q| q.table.key_columns == table.key_columns)
    {
        let withheld: std::collections::HashSet<String> = q
            .table
            .rows
            .iter()
            .filter(|r| r.suppressed.is_some())
            .map(|r| key_text(&r.keys))
            .collect();
        if withheld.is_empty() {
            continue;
        }
        for row in &mut table.rows {
            if row.suppressed.is_none() && withheld.contains(&key_text(&row.keys)) {
                row.values.clear();
                row.suppressed = Some(Suppression::Derived);
            }
        }
    }
    let from = answered.iter().map(|q| q.figures.query).collect();
    (table, Provenance::Derived { from })
}

/// A row's keys as one comparable string (JSON of the key values).
fn key_text(keys: &[oar_guest::Value]) -> String {
    serde_json::to_string(keys).expect("values serialize")
}

/// Whether `emitted` is `answer` unchanged: same columns, same keys in the same order, the same
/// cells suppressed, and the same values.
fn same_cells(answer: &Table, emitted: &Table) -> bool {
    answer.key_columns == emitted.key_columns
        && answer.value_columns == emitted.value_columns
        && answer.rows.len() == emitted.rows.len()
        && answer.rows.iter().zip(&emitted.rows).all(|(a, e)| {
            a.keys == e.keys
                && a.suppressed.is_some() == e.suppressed.is_some()
                && a.values.len() == e.values.len()
                && a.values
                    .iter()
                    .zip(&e.values)
                    .all(|(x, y)| x.to_bits() == y.to_bits())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oar_guest::Value;

    fn answer() -> AnsweredQuery {
        let mut t = Table::new(["region"], ["n"]);
        t.push(vec![Value::from("A")], vec![120.0]);
        t.push_suppressed(vec![Value::from("B")], Suppression::MinimumUnits);
        let release = ReleaseInfo {
            epsilon: 0.5,
            threshold: 31.0,
            min_units: 10,
            released_cells: 1,
            suppressed_cells: 1,
            suppressed_minimum_units: 1,
            ..Default::default()
        };
        t.release = Some(release.clone());
        AnsweredQuery {
            figures: QueryFigures {
                query: 0,
                dataset: "cdr".into(),
                release,
                columns: Vec::new(),
            },
            table: t,
        }
    }

    #[test]
    fn an_unchanged_answer_carries_the_hosts_figures_not_the_modules() {
        let q = answer();
        let mut forged = q.table.clone();
        forged.release.as_mut().unwrap().epsilon = 100.0;
        forged.release.as_mut().unwrap().threshold = 0.0;
        let (t, p) = attest(forged, std::slice::from_ref(&q));
        assert_eq!(p, Provenance::Query { query: 0 });
        assert_eq!(t.release, q.table.release);
    }

    #[test]
    fn a_derived_table_has_no_figures_and_keeps_suppressed_cells_suppressed() {
        let q = answer();
        let mut derived = Table::new(["region"], ["share"]);
        derived.push(vec![Value::from("A")], vec![0.5]);
        derived.push(vec![Value::from("B")], vec![0.5]);
        derived.release = q.table.release.clone();
        let (t, p) = attest(derived, std::slice::from_ref(&q));
        assert_eq!(p, Provenance::Derived { from: vec![0] });
        assert_eq!(t.release, None);
        assert_eq!(t.rows[1].suppressed, Some(Suppression::Derived));
        assert!(t.rows[1].values.is_empty());
        assert_eq!(t.rows[0].values, vec![0.5]);
    }

    #[test]
    fn malformed_tables_are_refused_with_the_row_at_fault() {
        let mut t = Table::new(["a", "b"], ["v"]);
        t.rows.push(oar_guest::table::Row {
            keys: vec![Value::Int(1)],
            values: vec![1.0],
            suppressed: None,
        });
        assert_eq!(
            check_shape(&t),
            Err(ShapeError::Row {
                row: 0,
                what: "keys",
                got: 1,
                want: 2
            })
        );
        let clash = Table::new(["v"], ["v"]);
        assert!(matches!(
            check_shape(&clash),
            Err(ShapeError::ColumnName(_))
        ));
    }
}
