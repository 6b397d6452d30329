//! Synthetic smart-meter readings for load profiles (cf. the seeds' smart-meter case: a
//! distribution network operator holds half-hourly readings, but may use them at half-hourly
//! resolution only for households that consented; the others only at daily resolution).
//!
//! One row per meter per half-hour: `meter_id` (the privacy unit: a household), `area`,
//! `read_at` (start of the half-hour, UTC), `kwh` (energy in that half-hour) and
//! `half_hourly_consent`. A household's load is a base load plus a morning and an evening peak,
//! scaled by its size; area `Ak` scales loads by `0.8 + 0.1·k`. Area `A05` has only
//! [`SMALL_AREA_METERS`] meters, so its cells are always suppressed.

use super::{SplitMix64, SynthError};
use crate::dataset::{Descriptor, Source, SourceFormat};
use oar_guest::schema::{ColumnSchema, ColumnType};
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// Ordinary areas.
pub const AREAS: usize = 4;
/// Meters in the small area `A05`.
pub const SMALL_AREA_METERS: usize = 8;
/// Share of households that consented to half-hourly use.
pub const CONSENT_SHARE: f64 = 0.5;
/// Largest half-hourly reading the descriptor declares (kWh).
pub const MAX_HALF_HOUR_KWH: f64 = 3.0;

/// How much data to make.
#[derive(Debug, Clone)]
pub struct MetersSpec {
    /// Meters in the ordinary areas together.
    pub meters: usize,
    /// Days of readings.
    pub days: u32,
    /// First day.
    pub start: chrono::NaiveDate,
    /// Seed.
    pub seed: u64,
}

impl Default for MetersSpec {
    fn default() -> Self {
        MetersSpec {
            meters: 60_000,
            days: 1,
            start: chrono::NaiveDate::from_ymd_opt(2026, 1, 12).expect("valid date"),
            seed: 13,
        }
    }
}

fn area_name(k: usize) -> String {
    format!("A{k:02}")
}

/// The expected load shape at half-hour `slot` (0..48) of a household of size 1, in kWh.
pub fn load_shape(slot: usize) -> f64 {
    let h = slot as f64 / 2.0;
    let bump =
        |centre: f64, width: f64, height: f64| height * (-((h - centre) / width).powi(2)).exp();
    0.15 + bump(7.5, 1.2, 0.35) + bump(18.5, 2.0, 0.6)
}

impl MetersSpec {
    /// The readings as a DataFrame.
    pub fn generate(&self) -> PolarsResult<DataFrame> {
        let mut rng = SplitMix64::new(self.seed);
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        let start_us = (self.start - epoch).num_days() * 86_400_000_000;
        let rows = (self.meters + SMALL_AREA_METERS) * self.days as usize * 48;
        let mut ids = Vec::with_capacity(rows);
        let mut areas: Vec<u8> = Vec::with_capacity(rows);
        let mut times = Vec::with_capacity(rows);
        let mut kwh = Vec::with_capacity(rows);
        let mut consent = Vec::with_capacity(rows);
        let area_names: Vec<String> = (1..=AREAS + 1).map(area_name).collect();
        let mut meter = |area: usize, rng: &mut SplitMix64| {
            let id = ids.len() as i64 / (48 * i64::from(self.days)) + 1;
            let size = 0.5 + rng.unit() * 1.5;
            let agrees = rng.unit() < CONSENT_SHARE;
            let scale = 0.8 + 0.1 * area as f64;
            for day in 0..i64::from(self.days) {
                for slot in 0..48usize {
                    let noise = 0.7 + 0.6 * rng.unit();
                    let v = (load_shape(slot) * size * scale * noise).min(MAX_HALF_HOUR_KWH);
                    ids.push(id);
                    areas.push(area as u8);
                    times.push(start_us + (day * 48 + slot as i64) * 1_800_000_000);
                    kwh.push((v * 1000.0).round() / 1000.0);
                    consent.push(agrees);
                }
            }
        };
        for i in 0..self.meters {
            meter(1 + i % AREAS, &mut rng);
        }
        for _ in 0..SMALL_AREA_METERS {
            meter(AREAS + 1, &mut rng);
        }
        let area = StringChunked::from_iter_values(
            "area".into(),
            areas.iter().map(|a| area_names[*a as usize - 1].as_str()),
        );
        let read_at = Int64Chunked::from_vec("read_at".into(), times)
            .into_datetime(TimeUnit::Microseconds, None);
        DataFrame::new(vec![
            Column::new("meter_id".into(), ids),
            area.into_column(),
            read_at.into_column(),
            Column::new("kwh".into(), kwh),
            Column::new("half_hourly_consent".into(), consent),
        ])
    }

    /// The descriptor of the files [`MetersSpec::write`] writes.
    pub fn descriptor(&self, file: &str) -> Descriptor {
        let end = self.start + chrono::Duration::days(i64::from(self.days.max(1)) - 1);
        Descriptor {
            name: "meters".into(),
            title: "Smart-meter half-hourly readings (synthetic)".into(),
            owner: "Example Distribution Network".into(),
            description: format!(
                "Synthetic half-hourly readings of {} households over {} day(s) from {} (seed {}).",
                self.meters + SMALL_AREA_METERS,
                self.days,
                self.start,
                self.seed
            ),
            update_frequency: "daily".into(),
            public: true,
            source: Source {
                format: SourceFormat::Parquet,
                paths: vec![PathBuf::from(file)],
            },
            privacy_unit: "meter_id".into(),
            max_groups_per_unit: 48,
            max_rows_per_group: 1,
            columns: vec![
                ColumnSchema::new("area", ColumnType::Str)
                    .with_domain((1..=AREAS + 1).map(area_name))
                    .with_description("Distribution area (public list)."),
                ColumnSchema::new("read_at", ColumnType::Datetime)
                    .with_period(&self.start.to_string(), &end.to_string())
                    .with_description("Start of the half-hour (UTC)."),
                ColumnSchema::new("kwh", ColumnType::Float)
                    .with_bounds(0.0, MAX_HALF_HOUR_KWH)
                    .with_description("Energy used in the half-hour (kWh)."),
                ColumnSchema::new("half_hourly_consent", ColumnType::Bool).with_description(
                    "The household agreed to the use of its half-hourly readings.",
                ),
            ],
        }
    }

    /// Writes `meters.parquet` and `meters.toml` into `dir`; returns the descriptor path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, SynthError> {
        super::write_parquet_dataset(
            dir,
            "meters",
            &mut self.generate()?,
            &self.descriptor("meters.parquet"),
        )
    }
}
