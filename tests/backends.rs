//! Every backend computes the same per-cell statistics as the reference executor, on random
//! plans over data with nulls, NaN, ±inf, keys outside their domains, units over the
//! contribution bound and per-unit steps: counts, histograms and observed keys exactly, sums
//! to float rounding (summation order differs between engines).

#[path = "support/differential.rs"]
mod differential;

use differential::*;
use oar_guest::plan::{Aggregate, ContributionBounds, Plan};
use oar_host::dataset::Dataset;
use oar_host::query::{self, PolarsBackend, QueryBackend, ReferenceBackend};
use polars::prelude::*;

#[test]
fn polars_computes_what_the_reference_computes_on_random_plans() {
    differential(&PolarsBackend::IN_MEMORY, 800, 1);
}

#[test]
fn polars_streaming_computes_what_the_reference_computes_on_random_plans() {
    differential(&PolarsBackend::STREAMING, 800, 2);
}

/// The reference itself is checked by hand on a case small enough to count.
#[test]
fn the_reference_counts_units_bounds_contributions_and_skips_non_finite_values() {
    let ds = Dataset::open(edgy()).unwrap();
    let plan = Plan {
        dataset: "edgy".into(),
        steps: vec![],
        group_by: vec!["region".into()],
        aggregates: vec![
            Aggregate::CountUnits { name: "n".into() },
            Aggregate::Sum {
                name: "s".into(),
                column: "amount".into(),
                bounds: None,
            },
        ],
        bounds: ContributionBounds {
            max_groups_per_unit: Some(1),
            max_rows_per_group: Some(2),
        },
        epsilon: 1.0,
        totals: false,
        key_selection: false,
    };
    let checked = query::check(&plan, &ds, LIMITS).unwrap();
    let stats = ReferenceBackend.execute(&checked, &ds, None).unwrap();
    // With one cell per unit, every unit with a region in the domain counts once, in its lowest
    // region; the null unit counts as one more unit.
    let df = LazyFrame::scan_parquet(
        PlPath::new(&edgy().with_file_name("edgy.parquet").to_string_lossy()),
        Default::default(),
    )
    .unwrap()
    .filter(polars::prelude::col("region").is_in(
        lit(Series::new("d".into(), ["A", "B", "C", "D"])).implode(),
        false,
    ))
    .select([polars::prelude::col("person").n_unique()])
    .collect()
    .unwrap();
    let in_domain = df.column("person").unwrap().u32().unwrap().get(0).unwrap() as i64;
    assert_eq!(stats.units.iter().sum::<i64>(), in_domain);
    // A unit's sum is clamped to rows × bounds: [-10, 100]; NaN and ±inf never reach it.
    assert!(stats.sums[0].iter().all(|s| s.is_finite()));
    for (top, total) in &stats.dominance[0] {
        assert!(top.len() <= 5 && top.iter().all(|x| *x <= 100.0) && total.is_finite());
    }
}

/// Plans the random sweep once found differences on (each failed before its fix).
#[test]
fn plans_that_once_differed_agree() {
    let ds = Dataset::open(edgy()).unwrap();
    let cases = [
        // A per-unit sum of a constant: Polars took the constant as one scalar per unit, not one
        // value per row (the sum was 2.5 per unit instead of 2.5 per row).
        r#"{"dataset":"edgy","steps":[{"op":"per_unit","name":"per","reduce":"sum","expr":{"kind":"literal","value":2.5},"by":["region"]}],"group_by":["visits"],"aggregates":[{"agg":"count_units","name":"n"},{"agg":"sum","name":"s","column":"per","bounds":[0.0,10.0]}],"bounds":{"max_groups_per_unit":2,"max_rows_per_group":3},"epsilon":1.0}"#,
        r#"{"dataset":"edgy","steps":[{"op":"per_unit","name":"per","reduce":"count","expr":{"kind":"literal","value":"x"}}],"group_by":["region"],"aggregates":[{"agg":"count_units","name":"n"},{"agg":"mean","name":"m","column":"per","bounds":[0.0,50.0]}],"bounds":{"max_groups_per_unit":4,"max_rows_per_group":3},"epsilon":1.0}"#,
        // Division by a constant: Polars multiplied by the reciprocal (x * 0.2 is not x / 5 in
        // the last bit), so `amount == 5 * (amount / 5)` kept other rows than IEEE division.
        r#"{"dataset":"edgy","steps":[{"op":"filter","predicate":{"kind":"compare","op":"eq","left":{"kind":"column","name":"amount"},"right":{"kind":"arith","op":"mul","left":{"kind":"literal","value":5.0},"right":{"kind":"arith","op":"div","left":{"kind":"column","name":"amount"},"right":{"kind":"literal","value":5.0}}}}}],"group_by":["region"],"aggregates":[{"agg":"count_units","name":"n"}],"bounds":{"max_groups_per_unit":4,"max_rows_per_group":3},"epsilon":1.0}"#,
        r#"{"dataset":"edgy","steps":[{"op":"filter","predicate":{"kind":"compare","op":"eq","left":{"kind":"column","name":"amount"},"right":{"kind":"arith","op":"mul","left":{"kind":"literal","value":3.0},"right":{"kind":"arith","op":"div","left":{"kind":"column","name":"amount"},"right":{"kind":"literal","value":3.0}}}}}],"group_by":["region"],"aggregates":[{"agg":"count_units","name":"n"}],"bounds":{"max_groups_per_unit":4,"max_rows_per_group":3},"epsilon":1.0}"#,
        // A per-unit reduction of a constant: an untyped literal column made Polars' streaming
        // engine panic ("dtype is unknown").
        r#"{"dataset":"edgy","steps":[{"op":"derive","name":"day","expr":{"kind":"date","expr":{"kind":"column","name":"ts"}}},{"op":"per_unit","name":"per","reduce":"mean","expr":{"kind":"literal","value":1.5},"by":["day"]}],"group_by":[],"aggregates":[{"agg":"count_units","name":"n"}],"bounds":{"max_groups_per_unit":2,"max_rows_per_group":2},"epsilon":1.0}"#,
        // Means of clamped values on a bin edge (15/7 over [-3, 3] in 7 bins): the engines'
        // summation orders put units in different bins before BIN_SNAP.
        r#"{"dataset":"edgy","group_by":["region"],"aggregates":[{"agg":"count_units","name":"n"},{"agg":"quantile","name":"q","column":"amount","q":0.5,"bounds":[-3.0,3.0],"bins":7}],"bounds":{"max_groups_per_unit":4,"max_rows_per_group":3},"epsilon":1.0}"#,
    ];
    for case in cases {
        let plan: Plan = serde_json::from_str(case).unwrap();
        let checked = query::check(&plan, &ds, LIMITS).unwrap();
        let want = ReferenceBackend.execute(&checked, &ds, None).unwrap();
        for backend in [PolarsBackend::IN_MEMORY, PolarsBackend::STREAMING] {
            let got = backend.execute(&checked, &ds, None).unwrap();
            assert_eq!(
                difference(&want, &got),
                None,
                "{} on {case}",
                backend.name()
            );
        }
    }
    // And the per-unit sum of 2.5 is 2.5 per row: units with more rows than the clamp reach it.
    let plan: Plan = serde_json::from_str(cases[0]).unwrap();
    let checked = query::check(&plan, &ds, LIMITS).unwrap();
    let stats = PolarsBackend::default()
        .execute(&checked, &ds, None)
        .unwrap();
    let top = stats.dominance[0]
        .iter()
        .flat_map(|(t, _)| t.first())
        .fold(0.0f64, |a, b| a.max(*b));
    assert_eq!(top, 30.0, "a unit's sum is clamped to 3 rows x 10");
}

/// Count-only plans over public keys are collected as each unit's cells in a bitset of 64-bit
/// words (up to four): cells on both sides of a word's edge, bitsets of several words cut to the
/// bound, and domains too large for a bitset (the general path) all agree with the reference.
#[test]
fn count_only_plans_agree_whatever_the_bitset_words() {
    let ds = Dataset::open(edgy()).unwrap();
    let mut bitsets = 0;
    // region 4, kind 2, flag 2, visits 10, level 3.
    for keys in [
        &["region"][..],                                // 4 cells, one word
        &["region", "kind", "flag", "level"],           // 48
        &["region", "kind", "visits"],                  // 80: two words
        &["kind", "flag", "visits", "level"],           // 120
        &["region", "kind", "visits", "level"],         // 240: four words
        &["region", "kind", "flag", "visits", "level"], // 480: the general path
    ] {
        for bound in [Some(1), Some(3), Some(40), None] {
            let plan = Plan {
                dataset: "edgy".into(),
                steps: vec![],
                group_by: keys.iter().map(|k| k.to_string()).collect(),
                aggregates: vec![Aggregate::CountUnits { name: "n".into() }],
                bounds: ContributionBounds {
                    max_groups_per_unit: bound,
                    max_rows_per_group: None,
                },
                epsilon: 1.0,
                totals: false,
                key_selection: false,
            };
            let checked = query::check(&plan, &ds, LIMITS).unwrap();
            bitsets += usize::from(checked.cells <= 256);
            let want = ReferenceBackend.execute(&checked, &ds, None).unwrap();
            assert!(want.units.iter().sum::<i64>() > 0, "{keys:?}");
            for backend in [PolarsBackend::IN_MEMORY, PolarsBackend::STREAMING] {
                let got = backend.execute(&checked, &ds, None).unwrap();
                assert_eq!(
                    difference(&want, &got),
                    None,
                    "{} over {keys:?}, bound {bound:?}",
                    backend.name()
                );
            }
        }
    }
    assert_eq!(bitsets, 20);
}

/// Count-only plans whose last steps read only what is fixed per partition of the last per-unit
/// step, and drop a partition whose value is null, are finished on partitions:
/// origin-destination shapes with row filters, filters and derived columns after the per-unit
/// steps, modes of text, integer and boolean columns with values outside their domains and
/// nulls, a minimum. And shapes that must keep the row path agree too: a key read from the rows,
/// an earlier value read before the last step, keys not within the last step's, a null value
/// that does not drop (not a key, or under `or`), a sum (0 for a partition with no row).
#[test]
fn plans_finished_on_partitions_agree() {
    let ds = Dataset::open(edgy()).unwrap();
    let day = r#"{"op":"derive","name":"day","expr":{"kind":"date","expr":{"kind":"column","name":"ts"}}}"#;
    let hour = r#"{"kind":"hour","expr":{"kind":"column","name":"ts"}}"#;
    let mode = |name: &str, column: &str, rows: &str, by: &str| {
        format!(
            r#"{{"op":"per_unit","name":"{name}","reduce":"mode","expr":{{"kind":"column","name":"{column}"}}{rows},"by":[{by}]}}"#
        )
    };
    let rows = |op: &str, h: i64| {
        format!(
            r#","rows":{{"kind":"compare","op":"{op}","left":{hour},"right":{{"kind":"literal","value":{h}}}}}"#
        )
    };
    let origin = mode("origin", "region", &rows("ge", 12), "");
    let destination = mode("destination", "region", &rows("lt", 12), r#""day""#);
    let plan = |steps: &[&str], keys: &str, bound: u32| {
        format!(
            r#"{{"dataset":"edgy","steps":[{}],"group_by":[{keys}],"aggregates":[{{"agg":"count_units","name":"n"}}],"bounds":{{"max_groups_per_unit":{bound}}},"epsilon":1.0}}"#,
            steps.join(",")
        )
    };
    let stayed = r#"{"op":"filter","predicate":{"kind":"compare","op":"eq","left":{"kind":"column","name":"origin"},"right":{"kind":"column","name":"destination"}}}"#;
    let moved = r#"{"op":"derive","name":"moved","expr":{"kind":"compare","op":"ne","left":{"kind":"column","name":"origin"},"right":{"kind":"column","name":"destination"}}}"#;
    let from_kind = r#"{"op":"filter","predicate":{"kind":"compare","op":"eq","left":{"kind":"column","name":"kind"},"right":{"kind":"literal","value":"u"}}}"#;
    let either = r#"{"op":"derive","name":"either","expr":{"kind":"or","left":{"kind":"compare","op":"eq","left":{"kind":"column","name":"destination"},"right":{"kind":"literal","value":"A"}},"right":{"kind":"compare","op":"eq","left":{"kind":"column","name":"origin"},"right":{"kind":"literal","value":"B"}}}}"#;
    let night_origin = r#"{"op":"filter","predicate":{"kind":"compare","op":"eq","left":{"kind":"column","name":"origin"},"right":{"kind":"literal","value":"A"}}}"#;
    let cases: Vec<(String, bool)> = vec![
        // The origin-destination shape, cut to 1 and 3 cells per unit, and uncut.
        (
            plan(
                &[day, &origin, &destination],
                r#""day","origin","destination""#,
                1,
            ),
            true,
        ),
        (
            plan(
                &[
                    day,
                    &origin,
                    &mode("destination", "region", &rows("lt", 12), r#""day""#)
                        .replace("mode", "min"),
                ],
                r#""day","destination""#,
                2,
            ),
            true,
        ),
        (
            plan(
                &[day, &origin, &destination],
                r#""day","origin","destination""#,
                3,
            ),
            true,
        ),
        (
            plan(
                &[day, &origin, &destination],
                r#""origin","destination""#,
                40,
            ),
            true,
        ),
        // A partition per (unit, day) over 5 days: with a bound of 5 a unit cannot exceed it.
        (
            plan(
                &[day, &origin, &destination],
                r#""day","origin","destination""#,
                5,
            ),
            true,
        ),
        (
            plan(
                &[&mode("per", "visits", "", r#""region""#)],
                r#""region","per""#,
                4,
            ),
            true,
        ),
        // Filters and derived columns after the last step.
        (
            plan(
                &[day, &origin, &destination, stayed],
                r#""day","origin""#,
                3,
            ),
            true,
        ),
        (
            plan(
                &[day, &origin, &destination, moved],
                r#""moved","origin""#,
                3,
            ),
            true,
        ),
        // Modes of an integer and a boolean column, without a row filter, by a text key.
        (
            plan(
                &[&mode("per", "visits", "", r#""region""#)],
                r#""region","per""#,
                2,
            ),
            true,
        ),
        (plan(&[&mode("per", "flag", "", "")], r#""per""#, 2), true),
        (
            plan(
                &[day, &mode("per", "level", &rows("ge", 6), r#""day""#)],
                r#""day","per""#,
                2,
            ),
            true,
        ),
        // The row path: a key read from the rows; a filter on rows after the last step; the
        // earlier value read before the last step; an earlier step by a key the last lacks.
        (
            plan(&[day, &origin, &destination], r#""kind","destination""#, 3),
            false,
        ),
        (
            plan(
                &[day, &origin, &destination, from_kind],
                r#""destination""#,
                3,
            ),
            false,
        ),
        (
            plan(
                &[day, &origin, night_origin, &destination],
                r#""destination""#,
                3,
            ),
            false,
        ),
        (
            plan(
                &[
                    day,
                    &mode("origin", "region", "", r#""day""#),
                    &mode("destination", "region", "", ""),
                ],
                r#""origin","destination""#,
                3,
            ),
            false,
        ),
        (
            plan(&[day, &origin, &destination], r#""day","origin""#, 3),
            false,
        ),
        (
            plan(&[day, &origin, &destination, either], r#""either""#, 3),
            false,
        ),
        (
            plan(
                &[&mode("per", "visits", "", r#""region""#).replace("mode", "sum")],
                r#""region""#,
                2,
            ),
            false,
        ),
    ];
    for (case, on_partitions) in &cases {
        let plan: Plan = serde_json::from_str(case).unwrap_or_else(|e| panic!("{e}: {case}"));
        let checked = query::check(&plan, &ds, LIMITS).unwrap_or_else(|e| panic!("{e}: {case}"));
        assert_eq!(
            PolarsBackend::finishes_on_partitions(&checked),
            *on_partitions,
            "{case}"
        );
        let want = ReferenceBackend.execute(&checked, &ds, None).unwrap();
        assert!(want.units.iter().sum::<i64>() > 0, "{case}");
        for backend in [PolarsBackend::IN_MEMORY, PolarsBackend::STREAMING] {
            let got = backend.execute(&checked, &ds, None).unwrap();
            assert_eq!(
                difference(&want, &got),
                None,
                "{} on {case}",
                backend.name()
            );
        }
    }
}

/// The streaming engine has no cancel handle: a check on every morsel of the scan stops it at
/// the deadline. A deadline already past ends the query with `Deadline` (whichever comes first,
/// the wait or the check), and a distant one lets it finish.
#[test]
fn the_streaming_engine_stops_at_the_deadline() {
    use oar_host::query::BackendError;
    let ds = Dataset::open(edgy()).unwrap();
    let plan: Plan = serde_json::from_str(
        r#"{"dataset":"edgy","group_by":["region"],"aggregates":[{"agg":"count_units","name":"n"}],"epsilon":1.0}"#,
    )
    .unwrap();
    let checked = query::check(&plan, &ds, LIMITS).unwrap();
    let past = std::time::Instant::now();
    assert_eq!(
        PolarsBackend::STREAMING
            .execute(&checked, &ds, Some(past))
            .err(),
        Some(BackendError::Deadline)
    );
    let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
    assert!(PolarsBackend::STREAMING
        .execute(&checked, &ds, Some(later))
        .is_ok());
}
