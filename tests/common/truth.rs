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

/// An integer column, or a datetime column as microseconds since the epoch.
pub fn i64s(df: &DataFrame, name: &str) -> Vec<i64> {
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
        i64s(&df, "subscriber_id"),
        i64s(&df, "timestamp"),
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

/// Load-profile truth from a synthetic meters file.
pub struct LoadTruth {
    /// Per (area, half-hour): mean over consenting meters of their mean clamped reading.
    pub profile: HashMap<(String, i64), f64>,
    /// Consenting meters per area.
    pub consenting: HashMap<String, i64>,
    /// Per area: mean over all meters of their mean clamped daily total.
    pub daily: HashMap<String, f64>,
    /// Meters per area.
    pub meters: HashMap<String, i64>,
}

impl LoadTruth {
    /// Units behind each released row, keyed `area/half_hour` and `area`.
    pub fn keyed(&self) -> HashMap<String, i64> {
        let mut out: HashMap<String, i64> = self
            .profile
            .keys()
            .map(|(a, s)| (format!("{a}/{s}"), self.consenting[a]))
            .collect();
        out.extend(self.meters.iter().map(|(a, n)| (a.clone(), *n)));
        out
    }
}

/// Means of per-meter means, with readings clamped to `max_half_hour` and daily totals to
/// `max_daily`.
pub fn load_truth(parquet: &Path, max_half_hour: f64, max_daily: f64) -> LoadTruth {
    let df = read_parquet(parquet);
    let (ids, areas, times) = (
        i64s(&df, "meter_id"),
        strings(&df, "area"),
        i64s(&df, "read_at"),
    );
    let kwh: Vec<f64> = df
        .column("kwh")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let consent: Vec<bool> = df
        .column("half_hourly_consent")
        .unwrap()
        .bool()
        .unwrap()
        .into_no_null_iter()
        .collect();
    // Per meter: area, consent on every row, per slot (sum, n), per day total.
    struct Meter {
        area: String,
        consent: bool,
        slots: HashMap<i64, (f64, f64)>,
        days: HashMap<i64, f64>,
    }
    let mut meters: HashMap<i64, Meter> = HashMap::new();
    for i in 0..ids.len() {
        let m = meters.entry(ids[i]).or_insert_with(|| Meter {
            area: areas[i].clone(),
            consent: true,
            slots: HashMap::new(),
            days: HashMap::new(),
        });
        m.consent &= consent[i];
        let (_, day) = hour_and_day(times[i]);
        let slot = times[i].div_euclid(1_800_000_000).rem_euclid(48);
        let e = m.slots.entry(slot).or_insert((0.0, 0.0));
        e.0 += kwh[i].min(max_half_hour);
        e.1 += 1.0;
        *m.days.entry(day).or_insert(0.0) += kwh[i];
    }
    let mut t = LoadTruth {
        profile: HashMap::new(),
        consenting: HashMap::new(),
        daily: HashMap::new(),
        meters: HashMap::new(),
    };
    let mut daily_sum: HashMap<String, f64> = HashMap::new();
    for m in meters.values() {
        *t.meters.entry(m.area.clone()).or_insert(0) += 1;
        let daily = m.days.values().map(|d| d.min(max_daily)).sum::<f64>() / m.days.len() as f64;
        *daily_sum.entry(m.area.clone()).or_insert(0.0) += daily;
        if m.consent {
            *t.consenting.entry(m.area.clone()).or_insert(0) += 1;
            for (slot, (s, n)) in &m.slots {
                *t.profile.entry((m.area.clone(), *slot)).or_insert(0.0) += s / n;
            }
        }
    }
    for ((a, _), v) in t.profile.iter_mut() {
        *v /= t.consenting[a] as f64;
    }
    for (a, s) in daily_sum {
        t.daily.insert(a.clone(), s / t.meters[&a] as f64);
    }
    t
}

/// Traffic truth from a synthetic journeys file, for events given as (date, baseline date,
/// first hour, last hour) with windows from two hours before the first hour to the last.
pub struct TrafficTruth {
    /// Distinct vehicles per (corridor, date, hour) on event and baseline days.
    pub flows: HashMap<(String, String, i64), i64>,
    /// Per (corridor, in an event window?): each vehicle's mean journey time there, sorted.
    pub times: HashMap<(String, bool), Vec<f64>>,
}

impl TrafficTruth {
    /// The `q`-quantile of a cell's per-vehicle means (nearest rank).
    pub fn quantile(&self, corridor: &str, event: bool, q: f64) -> f64 {
        let v = &self.times[&(corridor.to_string(), event)];
        v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
    }

    /// Units behind each released row: `corridor/date/hour`, `corridor/window` and
    /// `corridor` (the smaller window).
    pub fn keyed(&self) -> HashMap<String, i64> {
        let mut out: HashMap<String, i64> = self
            .flows
            .iter()
            .map(|((c, d, h), n)| (format!("{c}/{d}/{h}"), *n))
            .collect();
        for ((c, w), v) in &self.times {
            out.insert(format!("{c}/{w}"), v.len() as i64);
            let n = out.get(c.as_str()).copied().unwrap_or(i64::MAX);
            out.insert(c.clone(), n.min(v.len() as i64));
        }
        out
    }
}

/// See [`TrafficTruth`].
pub fn traffic_truth(parquet: &Path, events: &[(&str, &str, i64, i64)]) -> TrafficTruth {
    let df = read_parquet(parquet);
    let (ids, corridors, times) = (
        i64s(&df, "vehicle_id"),
        strings(&df, "corridor"),
        i64s(&df, "entered_at"),
    );
    let secs: Vec<f64> = df
        .column("journey_secs")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let mut flows: HashMap<(String, String, i64), std::collections::HashSet<i64>> = HashMap::new();
    let mut per_vehicle: HashMap<(String, bool, i64), (f64, f64)> = HashMap::new();
    for i in 0..ids.len() {
        let (hour, day) = hour_and_day(times[i]);
        let date = day_text(day);
        let on_day = events.iter().any(|(d, b, _, _)| *d == date || *b == date);
        if on_day {
            flows
                .entry((corridors[i].clone(), date.clone(), hour))
                .or_default()
                .insert(ids[i]);
        }
        let in_window = |event_day: bool| {
            events.iter().any(|e| {
                (if event_day { e.0 } else { e.1 }) == date && hour >= e.2 - 2 && hour <= e.3
            })
        };
        let window = if in_window(true) {
            Some(true)
        } else if in_window(false) {
            Some(false)
        } else {
            None
        };
        if let Some(w) = window {
            let e = per_vehicle
                .entry((corridors[i].clone(), w, ids[i]))
                .or_insert((0.0, 0.0));
            e.0 += secs[i].min(3600.0);
            e.1 += 1.0;
        }
    }
    let mut out = TrafficTruth {
        flows: flows
            .into_iter()
            .map(|(k, v)| (k, v.len() as i64))
            .collect(),
        times: HashMap::new(),
    };
    for ((c, w, _), (s, n)) in per_vehicle {
        out.times.entry((c, w)).or_default().push(s / n);
    }
    for v in out.times.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    out
}
