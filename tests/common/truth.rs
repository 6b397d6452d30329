//! Ground truth for the example modules, computed from the synthetic files in plain Rust
//! (independently of the host's Polars plans), so a test can compare a release with it.
#![allow(dead_code)]

use polars::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// The columns of a Parquet file, read eagerly.
pub fn read_parquet(path: &Path) -> DataFrame {
    let f = std::fs::File::open(path).unwrap();
    ParquetReader::new(f).finish().unwrap()
}

/// A datetime column as microseconds since the epoch.
pub fn micros(df: &DataFrame, name: &str) -> Vec<i64> {
    df.column(name)
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

/// A text column.
pub fn strings(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .into_no_null_iter()
        .map(str::to_string)
        .collect()
}

/// An integer column.
pub fn ints(df: &DataFrame, name: &str) -> Vec<i64> {
    micros(df, name)
}

/// Hour of day and day number (days since the epoch) of a UTC timestamp in microseconds.
pub fn hour_and_day(us: i64) -> (i64, i64) {
    (
        us.div_euclid(3_600_000_000).rem_euclid(24),
        us.div_euclid(86_400_000_000),
    )
}

/// `YYYY-MM-DD` of a day number.
pub fn day_text(day: i64) -> String {
    (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(day))
        .format("%Y-%m-%d")
        .to_string()
}

/// The most frequent value, ties to the smallest.
fn mode(counts: &HashMap<String, u32>) -> Option<String> {
    counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(v, _)| v.clone())
}

/// Origin–destination truth from a synthetic CDR file.
pub struct OdTruth {
    /// Subscribers per (day, home region, day-time region).
    pub flows: HashMap<(String, String, String), i64>,
    /// Subscribers with a home and a day-time region, per (day, home region).
    pub residents: HashMap<(String, String), i64>,
}

impl OdTruth {
    /// Truth keyed as the min-cells check wants it: `day/origin/destination` for flows, and
    /// `day/origin` for the stayers table (the smaller of its two counts).
    pub fn keyed(&self) -> HashMap<String, i64> {
        let mut out: HashMap<String, i64> = self
            .flows
            .iter()
            .map(|((d, o, t), n)| (format!("{d}/{o}/{t}"), *n))
            .collect();
        for ((d, o), n) in &self.residents {
            let stayers = self
                .flows
                .get(&(d.clone(), o.clone(), o.clone()))
                .copied()
                .unwrap_or(0);
            out.insert(format!("{d}/{o}"), stayers.min(*n));
        }
        out
    }
}

/// Home = most frequent region at night (22:00–05:59) over the whole file; destination = most
/// frequent region in working hours (09:00–16:59) that day.
pub fn od_truth(parquet: &Path) -> OdTruth {
    let df = read_parquet(parquet);
    let (subs, times, regions) = (
        ints(&df, "subscriber_id"),
        micros(&df, "timestamp"),
        strings(&df, "region"),
    );
    let mut night: HashMap<i64, HashMap<String, u32>> = HashMap::new();
    let mut day: HashMap<(i64, i64), HashMap<String, u32>> = HashMap::new();
    for ((s, t), r) in subs.iter().zip(&times).zip(&regions) {
        let (hour, d) = hour_and_day(*t);
        if !(6..22).contains(&hour) {
            *night.entry(*s).or_default().entry(r.clone()).or_default() += 1;
        }
        if (9..17).contains(&hour) {
            *day.entry((*s, d))
                .or_default()
                .entry(r.clone())
                .or_default() += 1;
        }
    }
    let homes: HashMap<i64, String> = night
        .iter()
        .filter_map(|(s, c)| Some((*s, mode(c)?)))
        .collect();
    let mut flows = HashMap::new();
    let mut residents = HashMap::new();
    for ((s, d), counts) in &day {
        let (Some(home), Some(dest)) = (homes.get(s), mode(counts)) else {
            continue;
        };
        *flows.entry((day_text(*d), home.clone(), dest)).or_insert(0) += 1;
        *residents.entry((day_text(*d), home.clone())).or_insert(0) += 1;
    }
    OdTruth { flows, residents }
}
