//! Scalar values that appear in plans (literals, public domains) and in released tables (keys).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A scalar: a group key, a literal in a plan, or a value in a public domain.
///
/// Dates travel as `Str("YYYY-MM-DD")`, so a key produced by [`crate::Expr::date`] compares equal
/// to the string a module writes.
///
/// ```
/// use oar_guest::Value;
/// let keys: Vec<Value> = serde_json::from_str(r#"["2024-03-01", 7, 0.5, true]"#).unwrap();
/// assert_eq!(keys, [Value::from("2024-03-01"), Value::Int(7), Value::Float(0.5), Value::Bool(true)]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Value {
    /// A boolean (the result of a comparison used as a key).
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text, including calendar dates.
    Str(String),
}

impl Value {
    /// The value as text, exactly as it is shown in CSV releases and used to match keys.
    ///
    /// ```
    /// use oar_guest::Value;
    /// assert_eq!(Value::Int(7).key_text(), "7");
    /// assert_eq!(Value::from("North").key_text(), "North");
    /// ```
    pub fn key_text(&self) -> String {
        self.to_string()
    }

    /// The value as a string slice, if it is text.
    ///
    /// ```
    /// use oar_guest::Value;
    /// assert_eq!(Value::from("North").as_str(), Some("North"));
    /// assert_eq!(Value::Int(1).as_str(), None);
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer, if it is one.
    ///
    /// ```
    /// use oar_guest::Value;
    /// assert_eq!(Value::Int(36).as_i64(), Some(36));
    /// assert_eq!(Value::Float(36.0).as_i64(), None);
    /// ```
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i64::from(i))
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
