//! Synthetic call-detail records: subscribers making calls in cells of regions over a week.
//!
//! Deterministic for a given seed and size. Each subscriber has a home region (chosen with
//! Zipf-like popularity, so regions range from large to small) and a work region; calls at night
//! happen at home, calls in the day at work with probability 0.6. Region `R21` is a remote island
//! with only six residents who never leave: its cells are always below the minimum and must be
//! suppressed. Calls per subscriber vary, so some people have many rows (each still one unit).

use super::SplitMix64;
use crate::dataset::{Descriptor, Source, SourceFormat};
use oar_guest::schema::{ColumnSchema, ColumnType};
use oar_guest::Value;
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// Size and shape of the synthetic set.
#[derive(Debug, Clone)]
pub struct CdrSpec {
    /// Approximate number of rows (calls).
    pub rows: usize,
    /// Number of subscribers; `None` means one per 20 rows.
    pub subscribers: Option<usize>,
    /// Regions on the mainland (plus the island `R21`).
    pub regions: usize,
    /// Cells per region.
    pub cells_per_region: usize,
    /// First day (the set covers 7 days).
    pub start: chrono::NaiveDate,
    /// Seed.
    pub seed: u64,
}

impl Default for CdrSpec {
    fn default() -> Self {
        CdrSpec {
            rows: 1_000_000,
            subscribers: None,
            regions: 20,
            cells_per_region: 8,
            start: chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid date"),
            seed: 7,
        }
    }
}

/// Days covered.
pub const DAYS: i64 = 7;
/// The island region with six residents.
pub const ISLAND: &str = "R21";
/// Residents of the island.
pub const ISLAND_RESIDENTS: usize = 6;

impl CdrSpec {
    /// Region names, mainland first, then the island.
    pub fn region_names(&self) -> Vec<String> {
        (1..=self.regions)
            .map(|i| format!("R{i:02}"))
            .chain(std::iter::once(ISLAND.to_string()))
            .collect()
    }

    /// Generates the records as a DataFrame with columns `subscriber_id` (i64), `timestamp`
    /// (datetime, µs), `cell_id` (str) and `region` (str).
    pub fn generate(&self) -> PolarsResult<DataFrame> {
        let subscribers = self.subscriber_count();
        self.generate_subscribers(0..subscribers, &mut SplitMix64::new(self.seed))
    }

    /// The number of subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers
            .unwrap_or((self.rows / 20).max(ISLAND_RESIDENTS + 1))
    }

    /// The records of subscribers `range` (numbered from 0), drawn from `rng`.
    fn generate_subscribers(
        &self,
        range: std::ops::Range<usize>,
        rng: &mut SplitMix64,
    ) -> PolarsResult<DataFrame> {
        let regions = self.region_names();
        let cells: Vec<Vec<String>> = regions
            .iter()
            .map(|r| {
                (1..=self.cells_per_region)
                    .map(|c| format!("{r}-C{c:02}"))
                    .collect()
            })
            .collect();
        let weights: Vec<f64> = (1..=self.regions)
            .map(|i| 1.0 / (i as f64).powf(0.8))
            .collect();
        let total: f64 = weights.iter().sum();
        let cumulative: Vec<f64> = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w / total;
                Some(*acc)
            })
            .collect();
        let pick_region = |rng: &mut SplitMix64| {
            let u = rng.unit();
            cumulative
                .iter()
                .position(|c| u < *c)
                .unwrap_or(self.regions - 1)
        };
        let mean_calls = self.rows as f64 / self.subscriber_count() as f64;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        let start_us = (self.start - epoch).num_days() * 86_400_000_000;

        let expected = (range.len() as f64 * mean_calls) as usize;
        let cap = expected + expected / 10;
        let mut ids = Vec::with_capacity(cap);
        let mut times = Vec::with_capacity(cap);
        let mut cell_ix: Vec<(u32, u32)> = Vec::with_capacity(cap);
        for s in range {
            let island = s < ISLAND_RESIDENTS;
            let home = if island {
                self.regions
            } else {
                pick_region(rng)
            };
            let work = if island {
                self.regions
            } else {
                pick_region(rng)
            };
            // Calls per subscriber: uniform in [1, 2*mean - 1], so the mean is about `mean_calls`.
            let calls = 1 + rng.below((2.0 * mean_calls - 1.0).max(1.0) as u64) as usize;
            for _ in 0..calls {
                let day = rng.below(DAYS as u64) as i64;
                let hour = rng.below(24) as i64;
                let minute = rng.below(60) as i64;
                let at_work = (8..19).contains(&hour) && rng.unit() < 0.6;
                let region = if at_work { work } else { home };
                let cell = rng.below(self.cells_per_region as u64) as u32;
                ids.push(s as i64 + 1);
                times.push(start_us + ((day * 24 + hour) * 60 + minute) * 60_000_000);
                cell_ix.push((region as u32, cell));
            }
        }
        let cell_id = StringChunked::from_iter_values(
            "cell_id".into(),
            cell_ix
                .iter()
                .map(|(r, c)| cells[*r as usize][*c as usize].as_str()),
        );
        let region = StringChunked::from_iter_values(
            "region".into(),
            cell_ix.iter().map(|(r, _)| regions[*r as usize].as_str()),
        );
        let timestamp = Int64Chunked::from_vec("timestamp".into(), times)
            .into_datetime(TimeUnit::Microseconds, None);
        DataFrame::new(vec![
            Column::new("subscriber_id".into(), ids),
            timestamp.into_column(),
            cell_id.into_column(),
            region.into_column(),
        ])
    }

    /// The dataset descriptor for files written by [`CdrSpec::write`].
    pub fn descriptor(&self, file: &str) -> Descriptor {
        let end = self.start + chrono::Duration::days(DAYS - 1);
        Descriptor {
            name: "cdr".into(),
            title: "Call-detail records (synthetic)".into(),
            owner: "Example Telco".into(),
            update_frequency: "daily".into(),
            public: true,
            description: format!(
                "Synthetic calls by subscriber, time, cell and region over {DAYS} days from {} (seed {}).",
                self.start, self.seed
            ),
            source: Source { format: SourceFormat::Parquet, paths: vec![PathBuf::from(file)] },
            privacy_unit: "subscriber_id".into(),
            max_groups_per_unit: 14,
            max_rows_per_group: 10,
            columns: vec![
                ColumnSchema {
                    name: "timestamp".into(),
                    dtype: ColumnType::Datetime,
                    domain: None,
                    bounds: None,
                    period: Some([self.start.to_string(), end.to_string()]),
                    description: "Time of the call (UTC).".into(),
                },
                ColumnSchema {
                    name: "region".into(),
                    dtype: ColumnType::Str,
                    domain: Some(self.region_names().into_iter().map(Value::Str).collect()),
                    bounds: None,
                    period: None,
                    description: "Administrative region of the serving cell.".into(),
                },
                ColumnSchema {
                    name: "cell_id".into(),
                    dtype: ColumnType::Str,
                    domain: None,
                    bounds: None,
                    period: None,
                    description: "Serving cell (no public domain: not a group key).".into(),
                },
            ],
        }
    }

    /// Writes the records in `files` Parquet files `cdr-00000.parquet`, ... (each a share of the
    /// subscribers, generated and written one at a time, so memory stays that of one file) and
    /// `cdr.toml` into `dir`; returns the descriptor's path. `progress` gets the number of files
    /// written so far.
    pub fn write_in_files(
        &self,
        dir: &Path,
        files: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<PathBuf, super::SynthError> {
        let files = files.max(1);
        std::fs::create_dir_all(dir)?;
        let subscribers = self.subscriber_count();
        let mut names = Vec::with_capacity(files);
        for k in 0..files {
            let range = subscribers * k / files..subscribers * (k + 1) / files;
            // Each file's own stream: files can be regenerated independently.
            let mut rng =
                SplitMix64::new(self.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut df = self.generate_subscribers(range, &mut rng)?;
            let name = format!("cdr-{k:05}.parquet");
            super::write_parquet_file(&dir.join(&name), &mut df)?;
            names.push(name);
            progress(k + 1);
        }
        let mut descriptor = self.descriptor(&names[0]);
        descriptor.source.paths = names.into_iter().map(PathBuf::from).collect();
        super::write_descriptor(dir, "cdr", &descriptor)
    }

    /// Writes `cdr.parquet` and `cdr.toml` into `dir`; returns the descriptor's path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, super::SynthError> {
        super::write_parquet_dataset(
            dir,
            "cdr",
            &mut self.generate()?,
            &self.descriptor("cdr.parquet"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records_other_seed_other_records() {
        let spec = CdrSpec {
            rows: 5_000,
            ..CdrSpec::default()
        };
        let a = spec.generate().unwrap();
        let b = spec.generate().unwrap();
        assert!(a.equals(&b));
        let c = CdrSpec { seed: 8, ..spec }.generate().unwrap();
        assert!(!a.equals(&c));
        assert!(a.height() > 4_000 && a.height() < 6_000, "{}", a.height());
    }

    #[test]
    fn the_island_has_six_residents_who_never_leave() {
        let df = CdrSpec {
            rows: 20_000,
            ..CdrSpec::default()
        }
        .generate()
        .unwrap();
        let island = df
            .lazy()
            .filter(col("region").eq(lit(ISLAND)))
            .select([col("subscriber_id").n_unique()])
            .collect()
            .unwrap();
        let n = island
            .column("subscriber_id")
            .unwrap()
            .get(0)
            .unwrap()
            .try_extract::<u32>()
            .unwrap();
        assert_eq!(n as usize, ISLAND_RESIDENTS);
    }
}
