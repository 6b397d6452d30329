//! Released tables: what `query` returns and what `emit` publishes.

use crate::Value;
use serde::{Deserialize, Serialize};

/// Why a cell carries no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    /// Fewer distinct units than the gate's rule allows (noisy threshold, then the hard minimum).
    /// The release never says which of the two steps applied, nor the count.
    MinimumUnits,
    /// Not small itself, but withheld because a small cell could otherwise be recovered from it
    /// by subtraction from a released total (secondary suppression).
    Secondary,
    /// A few units hold most of a sum (the dominance rule: the top `n` units' share of the
    /// cell's total exceeds `k`), so the value would describe those units.
    Dominance,
    /// Computed by the module from a suppressed cell.
    Derived,
}

/// One cell of a table: its keys and, unless suppressed, its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Key values, in the order of [`Table::key_columns`].
    pub keys: Vec<Value>,
    /// Values in the order of [`Table::value_columns`]; empty when the cell is suppressed.
    pub values: Vec<f64>,
    /// Set when the cell is withheld; then `values` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<Suppression>,
}

/// Accuracy of one released value column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// The value column it describes.
    pub column: String,
    /// The OpenDP measurement that added the noise.
    pub mechanism: String,
    /// Scale of the noise (Laplace `b`); for means, of the numerator.
    pub noise_scale: f64,
    /// Half-width of a 95% interval around each released value (for counts and sums).
    pub ci95_half_width: f64,
}

/// Privacy facts about a table returned by `query`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    /// Epsilon charged for this table.
    pub epsilon: f64,
    /// Delta of the release (from the minimum-units rule).
    pub delta: f64,
    /// The minimum number of distinct units a released cell has.
    pub min_units: u64,
    /// The noisy-count threshold a cell had to reach.
    pub threshold: f64,
    /// Accuracy per value column.
    pub accuracy: Vec<Accuracy>,
    /// How many cells were released.
    pub released_cells: usize,
    /// How many cells were suppressed.
    pub suppressed_cells: usize,
    /// Of those, how many by the minimum-units rule.
    #[serde(default)]
    pub suppressed_minimum_units: usize,
    /// Of those, how many by the dominance rule.
    #[serde(default)]
    pub suppressed_dominance: usize,
    /// Of those, how many to protect another suppressed cell (secondary suppression).
    #[serde(default)]
    pub suppressed_secondary: usize,
    /// Set when the keys were found in the data (thresholded key selection): keys that did not
    /// pass are absent, and their number is not reported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keys_selected: bool,
}

/// A table of cells keyed by public values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Names of the key columns.
    pub key_columns: Vec<String>,
    /// Names of the value columns.
    pub value_columns: Vec<String>,
    /// One row per cell of the public key domain.
    pub rows: Vec<Row>,
    /// Privacy facts, set by the host on query results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseInfo>,
}

impl Table {
    /// An empty table with the given key and value columns, for a module to fill.
    pub fn new<K: Into<String>, V: Into<String>>(
        key_columns: impl IntoIterator<Item = K>,
        value_columns: impl IntoIterator<Item = V>,
    ) -> Self {
        Table {
            key_columns: key_columns.into_iter().map(Into::into).collect(),
            value_columns: value_columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            release: None,
        }
    }

    /// Index of value column `name`.
    pub fn value_index(&self, name: &str) -> Option<usize> {
        self.value_columns.iter().position(|c| c == name)
    }

    /// The value of column `name` in the cell with `keys`; `None` if the cell is suppressed or
    /// absent.
    pub fn get(&self, keys: &[Value], name: &str) -> Option<f64> {
        let idx = self.value_index(name)?;
        self.rows
            .iter()
            .find(|r| r.keys == keys)
            .and_then(|r| r.values.get(idx).copied())
    }

    /// Rows that carry values.
    pub fn released(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.suppressed.is_none())
    }

    /// Number of suppressed rows.
    pub fn suppressed_count(&self) -> usize {
        self.rows.iter().filter(|r| r.suppressed.is_some()).count()
    }

    /// Appends a released row.
    pub fn push(&mut self, keys: Vec<Value>, values: Vec<f64>) {
        self.rows.push(Row {
            keys,
            values,
            suppressed: None,
        });
    }

    /// Appends a withheld row.
    pub fn push_suppressed(&mut self, keys: Vec<Value>, why: Suppression) {
        self.rows.push(Row {
            keys,
            values: Vec::new(),
            suppressed: Some(why),
        });
    }
}
