//! The in-process host as a line protocol, for modules tested natively in another language:
//! `oar local-host` reads one JSON request per line on standard input and answers one JSON line
//! on standard output, each call going to a [`Harness`] run exactly as the WIT host call would.
//! The Python SDK's `oar_guest.local.Harness` speaks it, so a Python module's `run` runs in
//! CPython against the real scope checks, gate, ledger and limits on synthetic data.
//!
//! Requests are `{"call": NAME, ...}` with NAME one of the WIT host calls (`datasets`,
//! `dataset_schema` with `name`, `query` and `check_plan` with `plan`, `budget_remaining` with
//! `dataset`, `emit` with `name` and `table`, `log` with `message`), or `finish`, which ends the
//! run and answers what it produced. The next call starts a new run; budget spent stays spent for
//! the process's lifetime. Answers are `{"ok": VALUE}` or `{"err": REASON}`, REASON being the
//! text the WIT's `err` would carry.

use super::{Harness, LocalHost};
use oar_guest::table::Table;
use oar_guest::Host as _;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// One request: a host call or the end of the run.
#[derive(Debug, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case", deny_unknown_fields)]
enum Request {
    Datasets,
    DatasetSchema { name: String },
    Query { plan: String },
    CheckPlan { plan: String },
    BudgetRemaining { dataset: String },
    Emit { name: String, table: String },
    Log { message: String },
    Finish,
}

/// What a run produced, as `finish` answers it.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// The tables emitted, in order, as the host attested them.
    pub outputs: Vec<Output>,
    /// Epsilon charged per release, in order.
    pub charges: Vec<ChargeLine>,
    /// The refusals the module was given, as text.
    pub refusals: Vec<String>,
    /// The module's log lines.
    pub log: Vec<String>,
    /// Queries answered.
    pub queries: u32,
}

/// One emitted table.
#[derive(Debug, Serialize)]
pub struct Output {
    /// The name it was emitted under.
    pub name: String,
    /// The table.
    pub table: Table,
}

/// One charge.
#[derive(Debug, Serialize)]
pub struct ChargeLine {
    /// The dataset charged.
    pub dataset: String,
    /// Epsilon charged.
    pub epsilon: f64,
}

fn ok(value: impl Serialize) -> serde_json::Value {
    serde_json::json!({ "ok": value })
}

fn err(reason: impl std::fmt::Display) -> serde_json::Value {
    serde_json::json!({ "err": reason.to_string() })
}

fn summary(host: LocalHost) -> RunSummary {
    let record = host.finish();
    RunSummary {
        outputs: record
            .outputs
            .into_iter()
            .map(|(name, table, _)| Output { name, table })
            .collect(),
        charges: record
            .charges
            .into_iter()
            .map(|c| ChargeLine {
                dataset: c.dataset,
                epsilon: c.epsilon,
            })
            .collect(),
        refusals: record.refusals.iter().map(|r| r.to_string()).collect(),
        log: record.log,
        queries: record.queries,
    }
}

/// Answers one request in the current run (starting one if there is none).
fn answer(harness: &Harness, run: &mut Option<LocalHost>, request: Request) -> serde_json::Value {
    if let Request::Finish = request {
        return match run.take() {
            Some(host) => ok(summary(host)),
            None => ok(summary(harness.begin())),
        };
    }
    let host = run.get_or_insert_with(|| harness.begin());
    let unit = |r: Result<(), String>| r.map_or_else(err, |()| ok(()));
    match request {
        Request::Datasets => ok(host.datasets()),
        Request::DatasetSchema { name } => host.dataset_schema(&name).map_or_else(err, ok),
        Request::Query { plan } => host.query(&plan).map_or_else(err, ok),
        Request::CheckPlan { plan } => unit(host.check_plan(&plan)),
        Request::BudgetRemaining { dataset } => ok(host.budget_remaining(&dataset)),
        Request::Emit { name, table } => unit(host.emit(&name, &table)),
        Request::Log { message } => {
            host.log(&message);
            ok(())
        }
        Request::Finish => unreachable!("answered above"),
    }
}

/// Serves requests from `input` until it ends, one answer line per request line on `output`.
/// A line that is not a request gets an `err` naming the problem; the run goes on.
pub fn serve(
    harness: &Harness,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<()> {
    let mut run = None;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => answer(harness, &mut run, request),
            Err(e) => err(format!(
                "not a host call: {e}; send one JSON object per line, such as {{\"call\": \"datasets\"}}"
            )),
        };
        serde_json::to_writer(&mut output, &reply)?;
        output.write_all(b"\n")?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn lines(harness: &Harness, input: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        serve(harness, input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_run_over_lines_goes_through_the_gate_and_finish_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../example-algorithms/population/manifest.toml");
        let harness = Harness::with_synthetic_data(&manifest, dir.path()).unwrap();
        let plan = r#"{"dataset":"cdr","steps":[],"group_by":["region"],"aggregates":[{"agg":"count_units","name":"n"}],"bounds":{"max_groups_per_unit":1},"epsilon":0.5}"#;
        let refused = plan.replace("\"region\"", "\"cell_id\"");
        let input = [
            r#"{"call":"datasets"}"#.to_string(),
            serde_json::json!({"call": "query", "plan": plan}).to_string(),
            serde_json::json!({"call": "query", "plan": refused}).to_string(),
            r#"{"call":"groupby"}"#.to_string(),
            r#"{"call":"finish"}"#.to_string(),
            r#"{"call":"budget_remaining","dataset":"cdr"}"#.to_string(),
        ]
        .join("\n");
        let out = lines(&harness, &input);
        assert_eq!(out[0]["ok"], serde_json::json!(["cdr"]));
        let table: Table = serde_json::from_str(out[1]["ok"].as_str().unwrap()).unwrap();
        assert_eq!(table.key_columns, ["region"]);
        assert!(
            out[2]["err"].as_str().unwrap().contains("cell_id"),
            "{}",
            out[2]
        );
        assert!(
            out[3]["err"].as_str().unwrap().contains("not a host call"),
            "{}",
            out[3]
        );
        let summary = &out[4]["ok"];
        assert_eq!(summary["queries"], 1);
        assert_eq!(summary["charges"][0]["epsilon"], 0.5);
        assert_eq!(summary["refusals"].as_array().unwrap().len(), 1);
        // A call after finish starts a new run, with the manifest's whole per-run allowance.
        assert_eq!(out[5]["ok"], 2.0);
    }
}
