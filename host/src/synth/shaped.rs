//! Synthetic data shaped like a registered dataset, from its public schema alone: the same
//! columns, types, domains, bounds and periods, with values drawn uniformly. `oar run --dry-run`
//! runs a module on it to show which cells would be suppressed, the expected error and the
//! epsilon a run would cost, without reading a real row or spending budget.

use super::{SplitMix64, SynthError};
use crate::dataset::{Dataset, Descriptor, Source, SourceFormat};
use chrono::NaiveDate;
use oar_guest::schema::{ColumnSchema, ColumnType};
use oar_guest::Value;
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// How much synthetic data to make.
#[derive(Debug, Clone, Copy)]
pub struct ShapedSpec {
    /// Rows.
    pub rows: usize,
    /// Distinct privacy units (rows are spread over them).
    pub units: usize,
    /// Seed.
    pub seed: u64,
}

/// Writes `DIR/NAME.parquet` and `DIR/NAME.toml`, shaped like `dataset`; returns the descriptor.
pub fn write(dataset: &Dataset, spec: ShapedSpec, dir: &Path) -> Result<PathBuf, SynthError> {
    std::fs::create_dir_all(dir)?;
    let real = dataset.descriptor();
    let mut rng = SplitMix64::new(spec.seed);
    let units = spec.units.max(1) as u64;
    let unit_ids: Vec<String> = (0..spec.rows)
        .map(|_| format!("unit-{}", rng.below(units)))
        .collect();
    let mut columns = vec![Column::new(real.privacy_unit.as_str().into(), unit_ids)];
    for c in &real.columns {
        columns.push(column(c, spec.rows, &mut rng)?);
    }
    let mut df = DataFrame::new(columns)?;
    let file = format!("{}.parquet", real.name);
    let tmp = dir.join(format!("{file}.partial"));
    {
        let f = std::fs::File::create(&tmp)?;
        ParquetWriter::new(f).finish(&mut df)?;
    }
    std::fs::rename(&tmp, dir.join(&file))?;
    let descriptor = Descriptor {
        title: format!("{} (synthetic, shaped like the real set)", real.title),
        source: Source {
            format: SourceFormat::Parquet,
            paths: vec![PathBuf::from(&file)],
        },
        ..real.clone()
    };
    let path = dir.join(format!("{}.toml", real.name));
    std::fs::write(
        &path,
        toml::to_string_pretty(&descriptor).expect("descriptors serialize"),
    )?;
    Ok(path)
}

fn pick<'a>(domain: &'a [Value], rng: &mut SplitMix64) -> &'a Value {
    &domain[rng.below(domain.len() as u64) as usize]
}

fn period_days(c: &ColumnSchema) -> (NaiveDate, i64) {
    let parse = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    match &c.period {
        Some([a, b]) => match (parse(a), parse(b)) {
            (Some(a), Some(b)) if b >= a => (a, (b - a).num_days() + 1),
            _ => (NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date"), 30),
        },
        None => (NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date"), 30),
    }
}

/// One column of `rows` values for `c`.
fn column(c: &ColumnSchema, rows: usize, rng: &mut SplitMix64) -> Result<Column, SynthError> {
    let name: PlSmallStr = c.name.as_str().into();
    let [lo, hi] = c.bounds.unwrap_or([0.0, 100.0]);
    let domain = c.domain.as_deref().filter(|d| !d.is_empty());
    Ok(match c.dtype {
        ColumnType::Str => Column::new(
            name,
            (0..rows)
                .map(|_| match domain {
                    Some(d) => pick(d, rng).key_text(),
                    None => format!("value-{}", rng.below(50)),
                })
                .collect::<Vec<_>>(),
        ),
        ColumnType::Int => Column::new(
            name,
            (0..rows)
                .map(|_| match domain {
                    Some(d) => pick(d, rng).as_i64().unwrap_or(0),
                    None => {
                        lo.ceil() as i64
                            + rng.below((hi.floor() - lo.ceil()).max(0.0) as u64 + 1) as i64
                    }
                })
                .collect::<Vec<i64>>(),
        ),
        ColumnType::Float => Column::new(
            name,
            (0..rows)
                .map(|_| lo + rng.unit() * (hi - lo))
                .collect::<Vec<f64>>(),
        ),
        ColumnType::Bool => Column::new(
            name,
            (0..rows).map(|_| rng.below(2) == 1).collect::<Vec<bool>>(),
        ),
        ColumnType::Date => {
            let (start, days) = period_days(c);
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
            let first = (start - epoch).num_days() as i32;
            Column::new(
                name,
                (0..rows)
                    .map(|_| first + rng.below(days as u64) as i32)
                    .collect::<Vec<i32>>(),
            )
            .cast(&DataType::Date)?
        }
        ColumnType::Datetime => {
            let (start, days) = period_days(c);
            let start = start
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp_micros();
            let span = days as u64 * 86_400_000_000;
            Column::new(
                name,
                (0..rows)
                    .map(|_| start + rng.below(span) as i64)
                    .collect::<Vec<i64>>(),
            )
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaped_data_passes_the_real_descriptors_schema_check() {
        let dir = tempfile::tempdir().unwrap();
        let real = crate::synth::cdr::CdrSpec {
            rows: 2_000,
            ..Default::default()
        }
        .write(&dir.path().join("real"))
        .unwrap();
        let real = Dataset::open(&real).unwrap();
        let spec = ShapedSpec {
            rows: 5_000,
            units: 500,
            seed: 1,
        };
        let shaped = write(&real, spec, &dir.path().join("shaped")).unwrap();
        let shaped = Dataset::open(&shaped).expect("the shaped set opens with the same schema");
        assert_eq!(shaped.schema().columns, real.schema().columns);
        let df = shaped.scan().unwrap().collect().unwrap();
        assert_eq!(df.height(), 5_000);
    }
}
