//! Synthetic road journeys around events (cf. councils measuring traffic around stadium events
//! from ANPR or Bluetooth journey-time sensors).
//!
//! One row per journey along a corridor: `vehicle_id` (the privacy unit), `corridor`,
//! `entered_at` (UTC) and `journey_secs`, over two weeks. Commuters drive their corridor at
//! 07:00–08:59 and 16:00–17:59 on weekdays; every vehicle makes occasional other trips. On the
//! [`EVENTS`] days, attendees drive the stadium corridors (C1, C2) in the hours before the event
//! and back at its end, and journeys there take [`EVENT_SLOWDOWN`] times longer from two hours
//! before the start to one hour after the end. Corridor `C6` is a private road with
//! [`SMALL_CORRIDOR_VEHICLES`] vehicles: its cells are always suppressed.

use super::{SplitMix64, SynthError};
use crate::dataset::{Descriptor, Source, SourceFormat};
use oar_guest::schema::{ColumnSchema, ColumnType};
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// Ordinary corridors (C1..C5).
pub const CORRIDORS: usize = 5;
/// Vehicles using the private road `C6`.
pub const SMALL_CORRIDOR_VEHICLES: usize = 5;
/// Days covered.
pub const DAYS: i64 = 14;
/// Events as (day offset from the start, start hour, end hour); both on stadium corridors.
pub const EVENTS: [(i64, i64, i64); 2] = [(3, 19, 22), (12, 15, 18)];
/// Corridors serving the stadium (1-based).
pub const STADIUM_CORRIDORS: [usize; 2] = [1, 2];
/// How much longer journeys on stadium corridors take around an event.
pub const EVENT_SLOWDOWN: f64 = 1.8;
/// Longest journey the descriptor declares (seconds).
pub const MAX_JOURNEY_SECS: f64 = 3600.0;

/// How much data to make.
#[derive(Debug, Clone)]
pub struct TrafficSpec {
    /// Vehicles on the ordinary corridors.
    pub vehicles: usize,
    /// First day (a Monday by default).
    pub start: chrono::NaiveDate,
    /// Seed.
    pub seed: u64,
}

impl Default for TrafficSpec {
    fn default() -> Self {
        TrafficSpec {
            vehicles: 40_000,
            start: chrono::NaiveDate::from_ymd_opt(2026, 4, 6).expect("valid date"),
            seed: 17,
        }
    }
}

fn corridor_name(k: usize) -> String {
    format!("C{k}")
}

/// The free-flow journey time of corridor `k` (1-based), in seconds.
pub fn base_secs(k: usize) -> f64 {
    480.0 + 120.0 * k as f64
}

impl TrafficSpec {
    /// The dates of [`EVENTS`], as `YYYY-MM-DD`.
    pub fn event_dates(&self) -> Vec<String> {
        EVENTS
            .iter()
            .map(|(d, _, _)| (self.start + chrono::Duration::days(*d)).to_string())
            .collect()
    }

    /// Whether a journey on `corridor` entering at `hour` of `day` is slowed by an event.
    fn slowed(corridor: usize, day: i64, hour: i64) -> bool {
        STADIUM_CORRIDORS.contains(&corridor)
            && EVENTS
                .iter()
                .any(|(d, s, e)| *d == day && hour >= s - 2 && hour <= *e)
    }

    /// The journeys as a DataFrame.
    pub fn generate(&self) -> PolarsResult<DataFrame> {
        let mut rng = SplitMix64::new(self.seed);
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        let start_us = (self.start - epoch).num_days() * 86_400_000_000;
        let mut ids = Vec::new();
        let mut corridors: Vec<u8> = Vec::new();
        let mut times = Vec::new();
        let mut secs = Vec::new();
        let mut trip = |id: i64, corridor: usize, day: i64, hour: i64, rng: &mut SplitMix64| {
            let minute = rng.below(60) as i64;
            let peak = if (7..9).contains(&hour) || (16..18).contains(&hour) {
                1.3
            } else {
                1.0
            };
            let event = if Self::slowed(corridor, day, hour) {
                EVENT_SLOWDOWN
            } else {
                1.0
            };
            let s = base_secs(corridor) * peak * event * (0.8 + 0.4 * rng.unit());
            ids.push(id);
            corridors.push(corridor as u8);
            times.push(start_us + ((day * 24 + hour) * 60 + minute) * 60_000_000);
            secs.push(s.min(MAX_JOURNEY_SECS).round());
        };
        let pick = |rng: &mut SplitMix64| 1 + rng.below(CORRIDORS as u64) as usize;
        for v in 0..self.vehicles {
            let id = v as i64 + 1;
            let own = pick(&mut rng);
            let commuter = rng.unit() < 0.6;
            let attends: Vec<bool> = EVENTS.iter().map(|_| rng.unit() < 0.3).collect();
            for day in 0..DAYS {
                let weekday = day % 7 < 5;
                if commuter && weekday {
                    trip(id, own, day, 7 + rng.below(2) as i64, &mut rng);
                    trip(id, own, day, 16 + rng.below(2) as i64, &mut rng);
                }
                if rng.unit() < 0.5 {
                    let hour = 6 + rng.below(18) as i64;
                    trip(id, pick(&mut rng), day, hour, &mut rng);
                }
                for (i, (d, s, e)) in EVENTS.iter().enumerate() {
                    if *d == day && attends[i] {
                        let corridor = STADIUM_CORRIDORS[rng.below(2) as usize];
                        trip(id, corridor, day, s - 2 + rng.below(2) as i64, &mut rng);
                        trip(id, corridor, day, *e, &mut rng);
                    }
                }
            }
        }
        for v in 0..SMALL_CORRIDOR_VEHICLES {
            let id = (self.vehicles + v) as i64 + 1;
            for day in 0..DAYS {
                trip(id, CORRIDORS + 1, day, 8, &mut rng);
            }
        }
        let names: Vec<String> = (1..=CORRIDORS + 1).map(corridor_name).collect();
        let corridor = StringChunked::from_iter_values(
            "corridor".into(),
            corridors.iter().map(|c| names[*c as usize - 1].as_str()),
        );
        let entered_at = Int64Chunked::from_vec("entered_at".into(), times)
            .into_datetime(TimeUnit::Microseconds, None);
        DataFrame::new(vec![
            Column::new("vehicle_id".into(), ids),
            corridor.into_column(),
            entered_at.into_column(),
            Column::new("journey_secs".into(), secs),
        ])
    }

    /// The descriptor of the files [`TrafficSpec::write`] writes.
    pub fn descriptor(&self, file: &str) -> Descriptor {
        let end = self.start + chrono::Duration::days(DAYS - 1);
        Descriptor {
            name: "journeys".into(),
            title: "Corridor journeys (synthetic)".into(),
            owner: "Example City Transport".into(),
            description: format!(
                "Synthetic journeys of {} vehicles over {DAYS} days from {}, events on {} (seed {}).",
                self.vehicles + SMALL_CORRIDOR_VEHICLES,
                self.start,
                self.event_dates().join(" and "),
                self.seed
            ),
            update_frequency: "daily".into(),
            public: true,
            source: Source {
                format: SourceFormat::Parquet,
                paths: vec![PathBuf::from(file)],
            },
            privacy_unit: "vehicle_id".into(),
            max_groups_per_unit: 8,
            max_rows_per_group: 1,
            columns: vec![
                ColumnSchema::new("corridor", ColumnType::Str)
                    .with_domain((1..=CORRIDORS + 1).map(corridor_name))
                    .with_description("Road corridor between two sensors (public list)."),
                ColumnSchema::new("entered_at", ColumnType::Datetime)
                    .with_period(&self.start.to_string(), &end.to_string())
                    .with_description("When the vehicle entered the corridor (UTC)."),
                ColumnSchema::new("journey_secs", ColumnType::Float)
                    .with_bounds(0.0, MAX_JOURNEY_SECS)
                    .with_description("Time to traverse the corridor (seconds)."),
            ],
        }
    }

    /// Writes `journeys.parquet` and `journeys.toml` into `dir`; returns the descriptor path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, SynthError> {
        super::write_parquet_dataset(
            dir,
            "journeys",
            &mut self.generate()?,
            &self.descriptor("journeys.parquet"),
        )
    }
}
