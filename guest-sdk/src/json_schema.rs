//! JSON Schemas of the documents that cross the WIT boundary, generated from this crate's types:
//! a module in any language can validate what it sends and reads against them. The host checks
//! the same documents with the same types, strictly (an unknown field is refused by name).
//!
//! The files under `guest-sdk/schema/` are these schemas, checked in; `oar schema --out
//! guest-sdk/schema` writes them, and a test in `oar-host` fails when they differ from the types.

use crate::plan::Plan;
use crate::schema::DatasetSchema;
use crate::table::Table;

/// `(file name, schema as pretty JSON with a final newline)` for each document: the plan a module
/// sends to `query` and `check-plan`, the dataset schema `dataset-schema` answers, and the table
/// `query` answers and `emit` publishes.
///
/// ```
/// let files = oar_guest::json_schema::files();
/// let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
/// assert_eq!(names, ["plan.schema.json", "dataset-schema.schema.json", "table.schema.json"]);
/// assert!(files[0].1.contains("\"group_by\""));
/// ```
pub fn files() -> Vec<(&'static str, String)> {
    let pretty = |schema: schemars::Schema| {
        let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialize");
        text.push('\n');
        text
    };
    vec![
        ("plan.schema.json", pretty(schemars::schema_for!(Plan))),
        (
            "dataset-schema.schema.json",
            pretty(schemars::schema_for!(DatasetSchema)),
        ),
        ("table.schema.json", pretty(schemars::schema_for!(Table))),
    ]
}
