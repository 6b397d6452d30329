//! The host API a module calls, driven directly: hostile plans are refused with a reason and
//! charge nothing; the native harness runs real module code through the same gate.

mod common;

use common::{host, verified, World};
use oar_guest::plan::{Aggregate, ContributionBounds, Plan, Step};
use oar_guest::{col, Host as _};
use oar_host::local::LocalHost;
use oar_host::query::{PolarsBackend, QueryBackend};

fn plan() -> Plan {
    Plan {
        dataset: "cdr".into(),
        steps: vec![],
        group_by: vec!["region".into()],
        aggregates: vec![Aggregate::CountUnits { name: "n".into() }],
        bounds: ContributionBounds::default(),
        epsilon: 0.1,
        totals: false,
        key_selection: false,
    }
}

fn json(p: &Plan) -> String {
    serde_json::to_string(p).unwrap()
}

#[test]
fn module_code_runs_natively_through_the_same_gate() {
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 10.0);
    let mut local =
        LocalHost::new(host.session("native-1", "stats-office", verified(&w, "population")));
    oar_guest::run_with_host(&mut local, r#"{"epsilon": 0.5}"#, population::run)
        .expect("module runs");
    let record = local.finish();
    assert_eq!(record.outputs.len(), 1);
    let table = &record.outputs[0].1;
    assert_eq!(table.rows.len(), 21 * 7);
    assert!(table
        .rows
        .iter()
        .filter(|r| r.keys[0].as_str() == Some("R21"))
        .all(|r| r.suppressed.is_some()));
    assert!((common::spent(&ledger, "stats-office") - 0.5).abs() < 1e-12);
}

#[test]
fn hostile_plans_are_refused_with_a_reason_and_charge_nothing() {
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 10.0);
    let mut s = host.session("hostile-1", "stats-office", verified(&w, "population"));

    let mut unit_key = plan();
    unit_key.group_by = vec!["subscriber_id".into()];
    let mut unit_filter = plan();
    unit_filter.steps = vec![Step::Filter {
        predicate: col("subscriber_id").eq(42),
    }];
    let mut outside_approval = plan();
    outside_approval.steps = vec![Step::Filter {
        predicate: col("cell_id").eq("R01-C01"),
    }];
    let mut other_dataset = plan();
    other_dataset.dataset = "smart_meters".into();
    let mut zero_epsilon = plan();
    zero_epsilon.epsilon = 0.0;
    let mut over_run_cap = plan();
    over_run_cap.epsilon = 2.5;
    let mut no_aggregate = plan();
    no_aggregate.aggregates.clear();
    let mut huge = plan();
    huge.steps = vec![Step::Filter {
        predicate: col("region").is_in((0..40_000).map(|i| format!("R{i}"))),
    }];
    let mut deep = col("region").eq("R01");
    for _ in 0..200 {
        deep = !deep;
    }
    let mut nested = plan();
    nested.steps = vec![Step::Filter { predicate: deep }];

    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "malformed plan"),
        (json(&unit_key), "privacy unit"),
        (json(&unit_filter), "privacy unit"),
        (json(&outside_approval), "outside this module's approval"),
        (json(&other_dataset), "not in this module's approval"),
        (json(&zero_epsilon), "epsilon must be positive"),
        (json(&over_run_cap), "per run"),
        (json(&no_aggregate), "at least one aggregate"),
        (json(&huge), "bytes"),
        (json(&nested), "malformed plan"),
    ];
    for (text, why) in &cases {
        let err = s.query(text).expect_err(why);
        assert!(err.contains(why), "expected '{why}', got '{err}'");
    }
    let record = s.finish();
    assert_eq!(record.refusals.len(), cases.len());
    assert!(record.charges.is_empty());
    assert_eq!(common::spent(&ledger, "stats-office"), 0.0);
}

#[test]
fn schema_is_public_metadata_and_emit_checks_the_manifest() {
    let w = World::new(1, 1);
    let (host, _) = host(&w, 10.0);
    let mut local =
        LocalHost::new(host.session("emit-1", "stats-office", verified(&w, "population")));
    assert_eq!(local.datasets(), vec!["cdr".to_string()]);
    let schema: oar_guest::DatasetSchema =
        serde_json::from_str(&local.dataset_schema("cdr").unwrap()).unwrap();
    assert_eq!(schema.privacy_unit, "subscriber_id");
    assert!(
        schema.column("subscriber_id").is_none(),
        "the unit column is named, never described"
    );
    assert!(local.dataset_schema("payroll").is_err());
    let table = serde_json::to_string(&oar_guest::Table::new(["k"], ["v"])).unwrap();
    let err = local.emit("secret_dump", &table).unwrap_err();
    assert!(err.contains("not declared"), "{err}");
    // A table with a field tables do not have is refused by name (issue 14: strict parsing).
    let mut odd: serde_json::Value = serde_json::from_str(&table).unwrap();
    odd["note"] = serde_json::json!("anything");
    let err = local
        .emit("population_by_region_day", &odd.to_string())
        .unwrap_err();
    assert!(err.contains("`note`"), "{err}");
    local.emit("population_by_region_day", &table).unwrap();
    assert!(local
        .emit("population_by_region_day", &table)
        .unwrap_err()
        .contains("already emitted"));
}

#[test]
fn the_approvals_total_epsilon_binds_across_requesters() {
    use oar_host::approval::{Approval, ApprovalRecord};
    use oar_host::keys::KeyPair;
    use oar_host::policy::Requester;
    use std::sync::Arc;

    let mut w = World::new(1, 1);
    let council = KeyPair::from_seed("city-council", "test council");
    w.policy.requesters.push(Requester {
        name: "city-council".into(),
        key: council.public(),
        datasets: vec!["cdr".into()],
    });
    let b = common::bundle(&w, common::component("population"));
    let now = chrono::Utc::now();
    let mut record = ApprovalRecord::for_bundle(
        &b,
        1.0,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::days(1),
    );
    record.epsilon_per_run = 0.6;
    let mut a = Approval::new(record);
    a.sign(&w.members[0]);
    let module = Arc::new(
        oar_host::verify::verify(
            &b,
            &a,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            now,
        )
        .unwrap(),
    );
    let (host, ledger) = host(&w, 10.0);

    let mut p = plan();
    p.epsilon = 0.6;
    let mut office = host.session("t-1", "stats-office", module.clone());
    office
        .query(&json(&p))
        .expect("first release under the approval");
    let mut council = host.session("t-2", "city-council", module.clone());
    assert!((council.budget_remaining("cdr") - 0.4).abs() < 1e-9);
    let err = council.query(&json(&p)).unwrap_err();
    assert!(err.contains("approval's total"), "{err}");
    p.epsilon = 0.4;
    council
        .query(&json(&p))
        .expect("what is left of the approval's total");
    assert_eq!(common::spent(&ledger, "city-council"), 0.4);
    assert_eq!(common::spent(&ledger, "stats-office"), 0.6);
}

#[test]
fn totals_are_released_with_secondary_suppression_and_one_charge() {
    use oar_guest::table::{Suppression, Table};
    use oar_guest::Value;
    use oar_host::ledger::Ledger as _;
    let w = World::new(1, 1);
    // Enough people per region and day that cells pass the threshold at this epsilon.
    let dir = tempfile::tempdir().unwrap();
    let desc = oar_host::synth::cdr::CdrSpec {
        rows: 400_000,
        ..Default::default()
    }
    .write(dir.path())
    .unwrap();
    let mut catalog = oar_host::dataset::Catalog::new();
    catalog.register(oar_host::dataset::Dataset::open(&desc).unwrap());
    let ledger = std::sync::Arc::new(oar_host::ledger::SqliteLedger::in_memory());
    let host = oar_host::job::Host::new(
        oar_host::sandbox::Runtime::new(Some(common::cache_dir())).unwrap(),
        catalog,
        w.policy.clone(),
        ledger.clone(),
    );
    let mut s = host.session("totals-1", "stats-office", verified(&w, "population"));
    let mut p = plan();
    p.steps = vec![Step::Derive {
        name: "day".into(),
        expr: col("timestamp").date(),
    }];
    p.group_by = vec!["region".into(), "day".into()];
    p.bounds.max_groups_per_unit = Some(7);
    p.epsilon = 2.0;
    p.totals = true;
    let table: Table = serde_json::from_str(&s.query(&json(&p)).unwrap()).unwrap();
    let spent = ledger
        .spent(&oar_host::ledger::requester_key("stats-office", "cdr"))
        .unwrap();
    assert!((spent - 2.0).abs() < 1e-12, "one charge");
    // 21 regions and 7 days, each with its total, and the grand total.
    assert_eq!(table.rows.len(), 22 * 8);
    let total = Value::Str("Total".into());
    let grand = table
        .get(&[total.clone(), total.clone()], "n")
        .expect("grand total");
    assert!(grand > 1000.0);
    // Small cells (the 6-person island, thin region-days) are suppressed while their lines'
    // totals are released, so the gate withholds partners.
    let info = table.release.as_ref().unwrap();
    assert!(info.suppressed_secondary >= 1, "{info:?}");
    assert_eq!(
        info.suppressed_cells,
        info.suppressed_minimum_units + info.suppressed_dominance + info.suppressed_secondary
    );
    // No line (one key varying, the other fixed, plus its total) has a released total and
    // exactly one suppressed member: nothing is recoverable by subtraction.
    let is_total = |v: &Value| v == &total;
    for j in 0..2 {
        let mut lines: std::collections::BTreeMap<String, (Option<bool>, usize)> =
            Default::default();
        for r in &table.rows {
            let mut line = r.keys.clone();
            line[j] = total.clone();
            let key = serde_json::to_string(&line).unwrap();
            let entry = lines.entry(key).or_default();
            if is_total(&r.keys[j]) {
                entry.0 = Some(r.suppressed.is_none());
            } else if r.suppressed.is_some() {
                entry.1 += 1;
            }
        }
        for (line, (total_released, suppressed)) in lines {
            assert!(
                !(total_released == Some(true) && suppressed == 1),
                "line {line} is recoverable"
            );
        }
    }
    assert!(table
        .rows
        .iter()
        .any(|r| r.suppressed == Some(Suppression::Secondary)));
}

#[test]
fn key_selection_runs_through_the_session_after_the_charge() {
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 10.0);
    let mut s = host.session("keys-1", "stats-office", verified(&w, "population"));
    let mut p = plan();
    // An arithmetic result has no public domain: its values are found in the data.
    p.steps = vec![Step::Derive {
        name: "hour_x10".into(),
        expr: col("timestamp").hour() * 10,
    }];
    p.group_by = vec!["hour_x10".into()];
    p.epsilon = 1.0;
    let refused = s.query(&json(&p)).unwrap_err();
    assert!(refused.contains("key_selection"), "{refused}");
    assert_eq!(common::spent(&ledger, "stats-office"), 0.0);
    p.key_selection = true;
    let table: oar_guest::table::Table =
        serde_json::from_str(&s.query(&json(&p)).unwrap()).unwrap();
    assert!((common::spent(&ledger, "stats-office") - 1.0).abs() < 1e-12);
    assert!(table.release.as_ref().unwrap().keys_selected);
    assert!(!table.rows.is_empty());
    for r in &table.rows {
        let hour = r.keys[0].as_i64().unwrap();
        assert!(hour % 10 == 0 && (0..240).contains(&hour), "{hour}");
    }
    // Totals need public domains.
    p.totals = true;
    let err = s.query(&json(&p)).unwrap_err();
    assert!(err.contains("cannot be combined"), "{err}");
}

#[test]
fn half_hour_keys_cover_the_day_and_match_the_clock() {
    use oar_host::query::{self, PlanLimits};
    use polars::prelude::*;
    let ds = oar_host::dataset::Dataset::open(common::small_cdr()).unwrap();
    let mut p = plan();
    p.steps = vec![Step::Derive {
        name: "slot".into(),
        expr: oar_guest::col("timestamp").half_hour(),
    }];
    p.group_by = vec!["slot".into()];
    p.bounds.max_groups_per_unit = Some(48);
    let limits = PlanLimits {
        max_output_cells: 1000,
        max_groups_per_unit: 64,
    };
    let compiled = query::check(&p, &ds, limits).unwrap();
    assert_eq!(compiled.cells, 48);
    let stats = PolarsBackend::default()
        .execute(&compiled, &ds, None)
        .unwrap();
    // Truth: distinct subscribers per half-hour, computed from the clock independently.
    let truth = ds
        .scan()
        .unwrap()
        .with_column(
            (col("timestamp").dt().hour().cast(DataType::Int64) * lit(60i64)
                + col("timestamp").dt().minute().cast(DataType::Int64))
            .floor_div(lit(30i64))
            .alias("slot"),
        )
        .group_by([col("slot")])
        .agg([col("subscriber_id")
            .n_unique()
            .cast(DataType::Int64)
            .alias("n")])
        .sort(["slot"], Default::default())
        .collect()
        .unwrap();
    let slots: Vec<i64> = truth
        .column("slot")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let counts: Vec<i64> = truth
        .column("n")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(slots, (0..48).collect::<Vec<_>>());
    assert_eq!(stats.units, counts);
    // Only datetimes have a half-hour.
    p.steps = vec![Step::Derive {
        name: "slot".into(),
        expr: oar_guest::col("region").half_hour(),
    }];
    let err = query::check(&p, &ds, limits).err().unwrap().to_string();
    assert!(err.contains("half_hour() needs a datetime"), "{err}");
}

/// Issue 14, first part: plans were parsed leniently, so a misspelt field was ignored:
/// `"groupby"` instead of `"group_by"` became a whole-dataset count that still spent budget.
/// Every field a plan, a step, an expression, an aggregate or the bounds does not define is
/// now refused, naming the field, before anything is charged.
#[test]
fn a_misspelt_plan_field_is_refused_by_name_and_charges_nothing() {
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 10.0);
    let mut s = host.session("strict-1", "stats-office", verified(&w, "population"));
    let good: serde_json::Value = serde_json::from_str(&json(&plan())).unwrap();
    let mut cases = Vec::new();
    let misspelt = common::renamed(&good, "group_by", "groupby");
    cases.push((misspelt, "groupby"));
    let mut in_aggregate = good.clone();
    in_aggregate["aggregates"][0]["bound"] = serde_json::json!(5);
    cases.push((in_aggregate, "bound"));
    let mut in_bounds = good.clone();
    in_bounds["bounds"] = serde_json::json!({"max_group_per_unit": 1});
    cases.push((in_bounds, "max_group_per_unit"));
    let mut with_step = plan();
    with_step.steps = vec![Step::Filter {
        predicate: col("region").eq("R01"),
    }];
    let mut in_step: serde_json::Value = serde_json::from_str(&json(&with_step)).unwrap();
    in_step["steps"][0]["where"] = serde_json::json!(true);
    cases.push((in_step.clone(), "where"));
    let mut in_expr = in_step;
    in_expr["steps"][0].as_object_mut().unwrap().remove("where");
    in_expr["steps"][0]["predicate"]["negate"] = serde_json::json!(true);
    cases.push((in_expr, "negate"));
    for (plan, field) in &cases {
        let err = s.query(&plan.to_string()).expect_err(field);
        assert!(
            err.contains(&format!("`{field}`")),
            "expected `{field}` named, got '{err}'"
        );
    }
    let record = s.finish();
    assert!(record.charges.is_empty());
    assert_eq!(common::spent(&ledger, "stats-office"), 0.0);
}

/// A backend that counts its calls and returns nothing: it shows whether a plan was executed.
struct Counting(std::sync::atomic::AtomicUsize);

impl QueryBackend for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn execute(
        &self,
        _plan: &oar_host::query::CheckedPlan,
        _dataset: &oar_host::dataset::Dataset,
        _deadline: Option<std::time::Instant>,
    ) -> Result<oar_host::query::CellStats, oar_host::query::BackendError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(oar_host::query::BackendError::Failed("counted"))
    }
}

/// `check-plan` lets a module in any language check a plan before spending: it gives the
/// refusal `query` would give, word for word, and for a plan `query` would run it says yes
/// without executing it, charging anything or counting as a query.
#[test]
fn a_plan_check_gives_the_query_refusal_and_reads_no_row_and_charges_nothing() {
    use std::sync::atomic::Ordering;
    let w = World::new(1, 1);
    let (host, ledger) = host(&w, 0.3);
    let backend = std::sync::Arc::new(Counting(Default::default()));
    let host = host.with_backend(backend.clone());
    let mut s = host.session("check-1", "stats-office", verified(&w, "population"));

    // Accepted: nothing executed, charged or counted.
    let good = json(&plan());
    for _ in 0..3 {
        assert_eq!(s.check_plan(&good), Ok(()));
    }
    assert_eq!(backend.0.load(Ordering::SeqCst), 0);
    assert_eq!(common::spent(&ledger, "stats-office"), 0.0);

    // Refused: the same text as the query's refusal.
    let misspelt = common::renamed(&serde_json::from_str(&good).unwrap(), "group_by", "groupby");
    let mut unit_key = plan();
    unit_key.group_by = vec!["subscriber_id".into()];
    let mut over_budget = plan();
    over_budget.epsilon = 0.5;
    let mut other_dataset = plan();
    other_dataset.dataset = "smart_meters".into();
    for (text, why) in [
        (misspelt.to_string(), "groupby"),
        (json(&unit_key), "privacy unit"),
        (json(&over_budget), "0.3"),
        (json(&other_dataset), "not in this module's approval"),
    ] {
        let checked = s.check_plan(&text).expect_err(why);
        assert!(checked.contains(why), "expected '{why}', got '{checked}'");
        assert_eq!(s.query(&text).expect_err(why), checked);
    }
    assert_eq!(backend.0.load(Ordering::SeqCst), 0);

    // The plan it accepted does run when queried (the backend is reached once).
    assert!(s.query(&good).is_err());
    assert_eq!(backend.0.load(Ordering::SeqCst), 1);
    let record = s.finish();
    assert_eq!(
        record.attempts, 5,
        "four refused queries and one run; no check counts"
    );
}
