//! Synthetic business premises for the business-rates gap (cf. Belfast City Council's use of
//! utility and waste data to find premises missing from the rates register).
//!
//! One row per premise: `premise_id` (the privacy unit: a premise, so that no single business is
//! ever released), `ward`, and three booleans: `waste_contract`, `utility_connection` and
//! `on_rates_register`. A premise "looks active" when it has a waste contract or a utility
//! connection. Ward `Wk` (k = 1..12) misses `1 + k` percent of its active premises from the
//! register; ward `W13` has only 4 premises, so its cells are always suppressed.

use super::{SplitMix64, SynthError};
use crate::dataset::{Descriptor, Source, SourceFormat};
use oar_guest::schema::{ColumnSchema, ColumnType};
use oar_guest::Value;
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// Wards with ordinary sizes.
pub const WARDS: usize = 12;
/// Premises in the small ward `W13`.
pub const SMALL_WARD_PREMISES: usize = 4;

/// How much data to make.
#[derive(Debug, Clone, Copy)]
pub struct PremisesSpec {
    /// Premises in the 12 ordinary wards together.
    pub premises: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for PremisesSpec {
    fn default() -> Self {
        PremisesSpec {
            premises: 60_000,
            seed: 11,
        }
    }
}

fn ward_name(k: usize) -> String {
    format!("W{k:02}")
}

/// The share of active premises missing from the register in ward `k` (1-based).
pub fn true_gap_share(k: usize) -> f64 {
    (1 + k) as f64 / 100.0
}

impl PremisesSpec {
    /// The premises as a DataFrame.
    pub fn generate(&self) -> PolarsResult<DataFrame> {
        let mut rng = SplitMix64::new(self.seed);
        let mut ids = Vec::new();
        let mut wards = Vec::new();
        let (mut waste, mut utility, mut register) = (Vec::new(), Vec::new(), Vec::new());
        let mut push = |ward: usize, rng: &mut SplitMix64| {
            let active_kind = rng.unit();
            // 85% look active: most through both signals, some through one.
            let (w, u) = if active_kind < 0.6 {
                (true, true)
            } else if active_kind < 0.75 {
                (true, false)
            } else if active_kind < 0.85 {
                (false, true)
            } else {
                (false, false)
            };
            let on_register = if w || u {
                rng.unit() >= true_gap_share(ward.min(WARDS))
            } else {
                rng.unit() < 0.5
            };
            ids.push(format!("P{:07}", ids.len() + 1));
            wards.push(ward_name(ward));
            waste.push(w);
            utility.push(u);
            register.push(on_register);
        };
        // Ward sizes vary: ward k gets a share proportional to 1 + k/4.
        let weights: Vec<f64> = (1..=WARDS).map(|k| 1.0 + k as f64 / 4.0).collect();
        let total: f64 = weights.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            let n = (self.premises as f64 * w / total).round() as usize;
            for _ in 0..n {
                push(i + 1, &mut rng);
            }
        }
        for _ in 0..SMALL_WARD_PREMISES {
            push(WARDS + 1, &mut rng);
        }
        DataFrame::new(vec![
            Column::new("premise_id".into(), ids),
            Column::new("ward".into(), wards),
            Column::new("waste_contract".into(), waste),
            Column::new("utility_connection".into(), utility),
            Column::new("on_rates_register".into(), register),
        ])
    }

    /// The descriptor of the files [`PremisesSpec::write`] writes.
    pub fn descriptor(&self, file: &str) -> Descriptor {
        let boolean = |name: &str, description: &str| ColumnSchema {
            name: name.into(),
            dtype: ColumnType::Bool,
            domain: None,
            bounds: None,
            period: None,
            description: description.into(),
        };
        Descriptor {
            name: "premises".into(),
            title: "Business premises (synthetic)".into(),
            owner: "Example City Council".into(),
            description: format!(
                "Synthetic premises with waste, utility and rates-register flags (seed {}).",
                self.seed
            ),
            update_frequency: "monthly".into(),
            public: true,
            source: Source {
                format: SourceFormat::Parquet,
                paths: vec![PathBuf::from(file)],
            },
            privacy_unit: "premise_id".into(),
            max_groups_per_unit: 1,
            max_rows_per_group: 1,
            columns: vec![
                ColumnSchema {
                    name: "ward".into(),
                    dtype: ColumnType::Str,
                    domain: Some((1..=WARDS + 1).map(|k| Value::Str(ward_name(k))).collect()),
                    bounds: None,
                    period: None,
                    description: "Electoral ward".into(),
                },
                boolean("waste_contract", "Has a commercial waste contract"),
                boolean(
                    "utility_connection",
                    "Has a non-domestic utility connection",
                ),
                boolean("on_rates_register", "Listed on the business rates register"),
            ],
        }
    }

    /// Writes `premises.parquet` and `premises.toml` into `dir`; returns the descriptor path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, SynthError> {
        super::write_parquet_dataset(
            dir,
            "premises",
            &mut self.generate()?,
            &self.descriptor("premises.parquet"),
        )
    }
}
