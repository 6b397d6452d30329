//! Public metadata of a dataset: what a module may know before it asks anything.
//!
//! Nothing here is derived from the data: domains, bounds and periods are declared by the data
//! holder in the dataset descriptor, so reading them costs no privacy budget.

use crate::Value;
use serde::{Deserialize, Serialize};

/// The type of a column as plans see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Text (identifiers, categories).
    Str,
    /// Whole numbers.
    Int,
    /// Floating-point numbers.
    Float,
    /// Booleans.
    Bool,
    /// A calendar date; keys show it as `YYYY-MM-DD`.
    Date,
    /// A point in time (microseconds, no time zone).
    Datetime,
}

impl ColumnType {
    /// True for types that can be summed or averaged.
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Int | ColumnType::Float)
    }
}

/// One column's public description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSchema {
    /// Column name, as plans refer to it.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub dtype: ColumnType,
    /// The public set of values this column may take. Required for a column to be a group key:
    /// released tables list exactly these keys, so no key is learnt from the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Vec<Value>>,
    /// Clamping bounds `[lower, upper]` for a numeric column; sums and means clamp each value to
    /// them, which is what makes their sensitivity computable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<[f64; 2]>,
    /// For dates and datetimes: the first and last calendar day (`YYYY-MM-DD`, inclusive) the data
    /// covers. The calendar days of that period are the public domain of `date(column)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<[String; 2]>,
    /// What the column means.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Public metadata of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSchema {
    /// Dataset name, as plans refer to it.
    pub name: String,
    /// Human title.
    #[serde(default)]
    pub title: String,
    /// The column that identifies a person (the privacy unit). Plans may not read it; the host uses
    /// it to count distinct units and to bound each unit's contribution.
    pub privacy_unit: String,
    /// The columns a plan may use.
    pub columns: Vec<ColumnSchema>,
    /// Default contribution bound: the most cells one unit may add to in one aggregate.
    pub max_groups_per_unit: u32,
    /// Default contribution bound: the most rows of one unit that count towards one cell's sum.
    pub max_rows_per_group: u32,
}

impl DatasetSchema {
    /// The column named `name`, if the dataset has it.
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }
}
