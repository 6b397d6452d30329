//! Public metadata of a dataset: what a module may know before it asks anything.
//!
//! Nothing here is derived from the data: domains, bounds and periods are declared by the data
//! holder in the dataset descriptor, so reading them costs no privacy budget.

use crate::Value;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The type of a column as plans see it.
///
/// ```
/// use oar_guest::ColumnType;
/// let t: ColumnType = serde_json::from_str("\"datetime\"").unwrap();
/// assert_eq!(t, ColumnType::Datetime);
/// assert_eq!(t.to_string(), "datetime");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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
    ///
    /// ```
    /// use oar_guest::ColumnType;
    /// assert!(ColumnType::Int.is_numeric());
    /// assert!(ColumnType::Float.is_numeric());
    /// assert!(!ColumnType::Bool.is_numeric());
    /// ```
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Int | ColumnType::Float)
    }

    /// The type's name as dataset descriptors spell it (`str`, `int`, `float`, `bool`, `date`,
    /// `datetime`).
    ///
    /// ```
    /// use oar_guest::ColumnType;
    /// assert_eq!(ColumnType::Str.name(), "str");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Str => "str",
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Bool => "bool",
            ColumnType::Date => "date",
            ColumnType::Datetime => "datetime",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One column's public description.
///
/// Data holders write these in dataset descriptors; module authors mostly read them, and build
/// them with [`ColumnSchema::new`] and the `with_*` methods to describe a dataset in a test.
///
/// ```
/// use oar_guest::{ColumnSchema, ColumnType};
/// let kwh = ColumnSchema::new("kwh", ColumnType::Float).with_bounds(0.0, 5.0);
/// assert_eq!(kwh.bounds, Some([0.0, 5.0]));
/// assert_eq!(kwh.domain, None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
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

impl ColumnSchema {
    /// A column of type `dtype` with no domain, bounds, period or description.
    ///
    /// ```
    /// use oar_guest::{ColumnSchema, ColumnType};
    /// let c = ColumnSchema::new("cell_id", ColumnType::Str);
    /// assert_eq!((c.name.as_str(), c.dtype), ("cell_id", ColumnType::Str));
    /// ```
    pub fn new(name: impl Into<String>, dtype: ColumnType) -> Self {
        ColumnSchema {
            name: name.into(),
            dtype,
            domain: None,
            bounds: None,
            period: None,
            description: String::new(),
        }
    }

    /// Declares the column's public domain (which makes it a group key).
    ///
    /// ```
    /// use oar_guest::{ColumnSchema, ColumnType, Value};
    /// let region = ColumnSchema::new("region", ColumnType::Str).with_domain(["North", "South"]);
    /// assert_eq!(region.domain, Some(vec![Value::from("North"), Value::from("South")]));
    /// ```
    pub fn with_domain<V: Into<Value>>(mut self, values: impl IntoIterator<Item = V>) -> Self {
        self.domain = Some(values.into_iter().map(Into::into).collect());
        self
    }

    /// Declares clamping bounds `[lower, upper]` for a numeric column.
    ///
    /// ```
    /// use oar_guest::{ColumnSchema, ColumnType};
    /// let speed = ColumnSchema::new("speed", ColumnType::Float).with_bounds(0.0, 130.0);
    /// assert_eq!(speed.bounds, Some([0.0, 130.0]));
    /// ```
    pub fn with_bounds(mut self, lower: f64, upper: f64) -> Self {
        self.bounds = Some([lower, upper]);
        self
    }

    /// Declares the calendar days (`YYYY-MM-DD`, inclusive) a date or datetime column covers.
    ///
    /// ```
    /// use oar_guest::{ColumnSchema, ColumnType};
    /// let ts = ColumnSchema::new("timestamp", ColumnType::Datetime)
    ///     .with_period("2024-03-01", "2024-03-07");
    /// assert_eq!(ts.period.as_ref().map(|[a, _]| a.as_str()), Some("2024-03-01"));
    /// ```
    pub fn with_period(mut self, first: &str, last: &str) -> Self {
        self.period = Some([first.to_string(), last.to_string()]);
        self
    }

    /// Sets what the column means.
    ///
    /// ```
    /// use oar_guest::{ColumnSchema, ColumnType};
    /// let c = ColumnSchema::new("kwh", ColumnType::Float).with_description("Energy per half hour");
    /// assert_eq!(c.description, "Energy per half hour");
    /// ```
    pub fn with_description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }
}

/// Public metadata of a dataset.
///
/// ```
/// use oar_guest::{ColumnSchema, ColumnType, DatasetSchema};
/// let schema = DatasetSchema::new("meters", "meter_id")
///     .with_column(ColumnSchema::new("kwh", ColumnType::Float).with_bounds(0.0, 5.0))
///     .with_contribution_bounds(48, 1);
/// assert_eq!(schema.column("kwh").map(|c| c.dtype), Some(ColumnType::Float));
/// assert_eq!(schema.max_groups_per_unit, 48);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
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
    /// A dataset with no columns whose privacy unit is `privacy_unit`; each unit may add to one
    /// cell with one row until [`with_contribution_bounds`](Self::with_contribution_bounds)
    /// says otherwise.
    ///
    /// ```
    /// use oar_guest::DatasetSchema;
    /// let s = DatasetSchema::new("cdr", "subscriber_id");
    /// assert_eq!((s.name.as_str(), s.privacy_unit.as_str()), ("cdr", "subscriber_id"));
    /// assert!(s.columns.is_empty());
    /// ```
    pub fn new(name: impl Into<String>, privacy_unit: impl Into<String>) -> Self {
        DatasetSchema {
            name: name.into(),
            title: String::new(),
            privacy_unit: privacy_unit.into(),
            columns: Vec::new(),
            max_groups_per_unit: 1,
            max_rows_per_group: 1,
        }
    }

    /// Adds a column.
    ///
    /// ```
    /// use oar_guest::{ColumnSchema, ColumnType, DatasetSchema};
    /// let s = DatasetSchema::new("cdr", "subscriber_id")
    ///     .with_column(ColumnSchema::new("cell_id", ColumnType::Str));
    /// assert_eq!(s.columns.len(), 1);
    /// ```
    pub fn with_column(mut self, column: ColumnSchema) -> Self {
        self.columns.push(column);
        self
    }

    /// Sets the default contribution bounds: the most cells one unit may add to, and the most
    /// rows of one unit that count towards one cell's sum.
    ///
    /// ```
    /// use oar_guest::DatasetSchema;
    /// let s = DatasetSchema::new("cdr", "subscriber_id").with_contribution_bounds(14, 10);
    /// assert_eq!((s.max_groups_per_unit, s.max_rows_per_group), (14, 10));
    /// ```
    pub fn with_contribution_bounds(
        mut self,
        max_groups_per_unit: u32,
        max_rows_per_group: u32,
    ) -> Self {
        self.max_groups_per_unit = max_groups_per_unit;
        self.max_rows_per_group = max_rows_per_group;
        self
    }

    /// The column named `name`, if the dataset has it.
    ///
    /// ```
    /// use oar_guest::{ColumnSchema, ColumnType, DatasetSchema};
    /// let s = DatasetSchema::new("cdr", "subscriber_id")
    ///     .with_column(ColumnSchema::new("region", ColumnType::Str));
    /// assert!(s.column("region").is_some());
    /// assert!(s.column("subscriber_id").is_none());
    /// ```
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }
}
