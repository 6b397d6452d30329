//! Released tables: what `query` returns and what `emit` publishes.

use crate::Value;
use serde::{Deserialize, Serialize};

/// Why a cell carries no value.
///
/// ```
/// use oar_guest::table::{Suppression, Table};
/// let mut t = Table::new(["ward"], ["premises"]);
/// t.push_suppressed(vec!["Ward 3".into()], Suppression::MinimumUnits);
/// assert_eq!(t.rows[0].suppressed, Some(Suppression::MinimumUnits));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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
///
/// ```
/// use oar_guest::{Row, Value};
/// let row: Row = serde_json::from_str(r#"{"keys": ["North", 3], "values": [12.5]}"#).unwrap();
/// assert_eq!(row.keys, [Value::from("North"), Value::Int(3)]);
/// assert_eq!(row.suppressed, None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
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
///
/// ```
/// use oar_guest::table::Accuracy;
/// let a = Accuracy {
///     column: "n".into(),
///     mechanism: "laplace".into(),
///     noise_scale: 2.0,
///     ci95_half_width: 2.0 * 20f64.ln(),
/// };
/// assert!((a.ci95_half_width - 5.99).abs() < 0.01);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
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
///
/// ```
/// use oar_guest::table::{ReleaseInfo, Table};
/// let mut t = Table::new(["region"], ["n"]);
/// t.release = Some(ReleaseInfo { epsilon: 0.5, min_units: 10, ..Default::default() });
/// assert_eq!(t.release.as_ref().map(|r| r.min_units), Some(10));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
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
///
/// ```
/// use oar_guest::table::{Suppression, Table};
/// let mut t = Table::new(["region", "day"], ["population"]);
/// t.push(vec!["North".into(), "2024-03-01".into()], vec![1830.0]);
/// t.push_suppressed(vec!["East".into(), "2024-03-01".into()], Suppression::MinimumUnits);
/// assert_eq!(t.get(&["North".into(), "2024-03-01".into()], "population"), Some(1830.0));
/// assert_eq!((t.released().count(), t.suppressed_count()), (1, 1));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
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
    ///
    /// ```
    /// use oar_guest::Table;
    /// let t = Table::new(["ward"], ["active", "missing"]);
    /// assert_eq!(t.value_columns, ["active", "missing"]);
    /// assert!(t.rows.is_empty() && t.release.is_none());
    /// ```
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
    ///
    /// ```
    /// use oar_guest::Table;
    /// let t = Table::new(["ward"], ["active", "missing"]);
    /// assert_eq!(t.value_index("missing"), Some(1));
    /// assert_eq!(t.value_index("ward"), None);
    /// ```
    pub fn value_index(&self, name: &str) -> Option<usize> {
        self.value_columns.iter().position(|c| c == name)
    }

    /// The value of column `name` in the cell with `keys`; `None` if the cell is suppressed or
    /// absent.
    ///
    /// ```
    /// use oar_guest::table::{Suppression, Table};
    /// let mut t = Table::new(["ward"], ["active"]);
    /// t.push(vec!["Ward 1".into()], vec![40.0]);
    /// t.push_suppressed(vec!["Ward 2".into()], Suppression::Dominance);
    /// assert_eq!(t.get(&["Ward 1".into()], "active"), Some(40.0));
    /// assert_eq!(t.get(&["Ward 2".into()], "active"), None);
    /// assert_eq!(t.get(&["Ward 9".into()], "active"), None);
    /// ```
    pub fn get(&self, keys: &[Value], name: &str) -> Option<f64> {
        let idx = self.value_index(name)?;
        self.rows
            .iter()
            .find(|r| r.keys == keys)
            .and_then(|r| r.values.get(idx).copied())
    }

    /// The standard deviation of the noise on released column `name` (`√2·b` for Laplace
    /// noise of scale `b`), for propagating intervals in post-processing; `None` if the table
    /// carries no release facts for that column. For a mean it is the numerator's.
    ///
    /// ```
    /// use oar_guest::table::{Accuracy, ReleaseInfo, Table};
    /// let mut t = Table::new(["ward"], ["active"]);
    /// t.release = Some(ReleaseInfo {
    ///     accuracy: vec![Accuracy { column: "active".into(), noise_scale: 2.0, ..Default::default() }],
    ///     ..Default::default()
    /// });
    /// assert_eq!(t.noise_sd("active"), Some(2.0 * std::f64::consts::SQRT_2));
    /// assert_eq!(t.noise_sd("missing"), None);
    /// ```
    pub fn noise_sd(&self, name: &str) -> Option<f64> {
        self.release
            .as_ref()?
            .accuracy
            .iter()
            .find(|a| a.column == name)
            .map(|a| std::f64::consts::SQRT_2 * a.noise_scale)
    }

    /// Rows that carry values.
    ///
    /// ```
    /// use oar_guest::table::{Suppression, Table};
    /// let mut t = Table::new(["ward"], ["active"]);
    /// t.push(vec!["Ward 1".into()], vec![40.0]);
    /// t.push_suppressed(vec!["Ward 2".into()], Suppression::Secondary);
    /// let total: f64 = t.released().map(|r| r.values[0]).sum();
    /// assert_eq!(total, 40.0);
    /// ```
    pub fn released(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.suppressed.is_none())
    }

    /// Number of suppressed rows.
    ///
    /// ```
    /// use oar_guest::table::{Suppression, Table};
    /// let mut t = Table::new(["ward"], ["active"]);
    /// t.push_suppressed(vec!["Ward 2".into()], Suppression::Derived);
    /// assert_eq!(t.suppressed_count(), 1);
    /// ```
    pub fn suppressed_count(&self) -> usize {
        self.rows.iter().filter(|r| r.suppressed.is_some()).count()
    }

    /// Appends a released row.
    ///
    /// ```
    /// use oar_guest::Table;
    /// let mut t = Table::new(["ward"], ["gap_rate"]);
    /// t.push(vec!["Ward 1".into()], vec![0.12]);
    /// assert_eq!(t.rows[0].values, [0.12]);
    /// ```
    pub fn push(&mut self, keys: Vec<Value>, values: Vec<f64>) {
        self.rows.push(Row {
            keys,
            values,
            suppressed: None,
        });
    }

    /// Appends a withheld row.
    ///
    /// ```
    /// use oar_guest::table::{Suppression, Table};
    /// let mut t = Table::new(["ward"], ["gap_rate"]);
    /// t.push_suppressed(vec!["Ward 2".into()], Suppression::Derived);
    /// assert!(t.rows[0].values.is_empty());
    /// ```
    pub fn push_suppressed(&mut self, keys: Vec<Value>, why: Suppression) {
        self.rows.push(Row {
            keys,
            values: Vec::new(),
            suppressed: Some(why),
        });
    }
}
