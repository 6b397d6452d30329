//! End to end: `oar demo` from the command line, checked against the synthetic ground truth.

use polars::prelude::*;
use std::collections::HashMap;
use std::process::Command;

#[test]
fn demo_releases_only_noisy_cells_with_at_least_ten_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let status = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["demo", "--rows", "200000", "--out"])
        .arg(&out)
        .output()
        .expect("oar runs");
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(stdout.contains("cells released"), "{stdout}");

    // The files a statistical office receives.
    let release: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("release/release.json")).unwrap()).unwrap();
    let csv = std::fs::read_to_string(out.join("release/population_by_region_day.csv")).unwrap();
    assert!(
        csv.starts_with(
            "region,day,subscribers,subscribers_ci95_low,subscribers_ci95_high,subscribers_noise_scale,status,suppressed_because\n"
        ),
        "{csv}"
    );
    assert_eq!(release["epsilon_total"], 1.0);

    // Ground truth from the synthetic data the demo generated.
    let truth = LazyFrame::scan_parquet(
        PlPath::new(out.join("data/cdr.parquet").to_str().unwrap()),
        Default::default(),
    )
    .unwrap()
    .with_column(
        col("timestamp")
            .dt()
            .date()
            .cast(DataType::String)
            .alias("day"),
    )
    .group_by([col("region"), col("day")])
    .agg([col("subscriber_id").n_unique().alias("n")])
    .collect()
    .unwrap();
    let mut true_count = HashMap::new();
    let (r, d, n) = (
        truth.column("region").unwrap(),
        truth.column("day").unwrap(),
        truth.column("n").unwrap(),
    );
    for i in 0..truth.height() {
        let key = (
            r.get(i).unwrap().str_value().to_string(),
            d.get(i).unwrap().str_value().to_string(),
        );
        true_count.insert(key, n.get(i).unwrap().try_extract::<i64>().unwrap());
    }

    let table = &release["tables"][0]["table"];
    let scale = table["release"]["accuracy"][0]["noise_scale"]
        .as_f64()
        .unwrap();
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 21 * 7);
    let (mut released, mut differs, mut suppressed) = (0, 0, 0);
    for row in rows {
        let key = (
            row["keys"][0].as_str().unwrap().to_string(),
            row["keys"][1].as_str().unwrap().to_string(),
        );
        let truth = *true_count.get(&key).unwrap_or(&0);
        if row.get("suppressed").is_some() {
            suppressed += 1;
            assert!(row["values"].as_array().unwrap().is_empty());
            continue;
        }
        released += 1;
        assert!(
            truth >= 10,
            "cell {key:?} released with {truth} subscribers"
        );
        let value = row["values"][0].as_f64().unwrap();
        assert!(
            (value - truth as f64).abs() < 40.0 * scale,
            "cell {key:?}: {value} vs {truth}"
        );
        if value != truth as f64 {
            differs += 1;
        }
    }
    assert!(released >= 40, "only {released} cells released");
    assert!(suppressed >= 7, "the island's 7 days must be suppressed");
    assert!(
        differs * 2 > released,
        "released values look noiseless ({differs} of {released} differ)"
    );
}

#[test]
fn cli_errors_are_clear_and_exit_non_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args([
            "verify",
            "--bundle",
            "/nonexistent.oarb",
            "--approval",
            "/x.json",
            "--policy",
            "/p.toml",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent.oarb"), "{err}");
}
