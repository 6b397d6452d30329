//! The module run natively through the real session (scope checks, privacy gate, budget
//! ledger, limits) on synthetic data, with throwaway keys: no wasm, no signing.

use module_template::{run, Params, OUTPUT};
use oar_host::local::{Harness, HarnessError};
use std::path::Path;

fn harness(dir: &Path) -> Harness {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifest.toml");
    Harness::with_synthetic_data(&manifest, dir).expect("harness starts")
}

#[test]
fn publishes_one_row_per_region_and_never_the_small_island() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    let record = h.run::<Params>("{}", run).expect("the module runs");
    assert_eq!(record.charges.len(), 2, "two releases");
    let (name, table, _) = &record.outputs[0];
    assert_eq!(name, OUTPUT);
    assert_eq!(table.rows.len(), 21, "20 mainland regions and the island");
    for row in &table.rows {
        if row.keys[0].key_text() == "R21" {
            // Six residents: always below the minimum of 10.
            assert!(row.suppressed.is_some());
        } else if let Some(share) = table.get(&row.keys, "night_share") {
            assert!((0.0..=1.0).contains(&share));
        }
    }
    let released = table.released().count();
    assert!(released >= 12, "{released} regions released");
}

#[test]
fn a_column_outside_the_manifest_is_refused_and_nothing_is_charged() {
    fn reads_cell_ids(ctx: &mut oar_guest::Context, _: Params) -> Result<(), oar_guest::Error> {
        ctx.dataset("cdr")?
            .filter(oar_guest::col("cell_id").eq("R01-C01"))
            .count_units("n")
            .release(0.5)?;
        Ok(())
    }
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path());
    match h.run::<Params>("{}", reads_cell_ids) {
        Err(HarnessError::Run { message, record }) => {
            assert!(message.contains("cell_id"), "{message}");
            assert!(record.charges.is_empty());
        }
        other => panic!(
            "expected a refusal, got {:?}",
            other.map(|r| r.outputs.len())
        ),
    }
}
