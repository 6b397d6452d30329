//! Synthetic datasets with known structure, so everything runs with no real data.

pub mod cdr;
pub mod meters;
pub mod premises;
pub mod shaped;
pub mod traffic;

/// Errors writing a synthetic dataset.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Writing files failed.
    #[error("writing the synthetic data: {0}")]
    Io(#[from] std::io::Error),
    /// Building or encoding the frame failed.
    #[error("building the synthetic data: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
}

/// Writes `df` as `DIR/NAME.parquet` (via a temporary file) and `descriptor` as `DIR/NAME.toml`;
/// returns the descriptor's path.
pub fn write_parquet_dataset(
    dir: &std::path::Path,
    name: &str,
    df: &mut polars::prelude::DataFrame,
    descriptor: &crate::dataset::Descriptor,
) -> Result<std::path::PathBuf, SynthError> {
    std::fs::create_dir_all(dir)?;
    write_parquet_file(&dir.join(format!("{name}.parquet")), df)?;
    write_descriptor(dir, name, descriptor)
}

/// Writes `df` to `path` (LZ4), through a temporary file renamed into place.
pub(crate) fn write_parquet_file(
    path: &std::path::Path,
    df: &mut polars::prelude::DataFrame,
) -> Result<(), SynthError> {
    use polars::prelude::*;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let f = std::fs::File::create(&tmp)?;
        ParquetWriter::new(f)
            .with_compression(ParquetCompression::Lz4Raw)
            .finish(df)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Writes `<name>.toml` for `descriptor` into `dir`; returns its path.
pub(crate) fn write_descriptor(
    dir: &std::path::Path,
    name: &str,
    descriptor: &crate::dataset::Descriptor,
) -> Result<std::path::PathBuf, SynthError> {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "# Dataset descriptor written by `oar synth {name}`.\n{}",
        toml::to_string_pretty(descriptor).expect("descriptors serialize")
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

/// SplitMix64: a small, fast, seedable generator for synthetic data (never for privacy noise,
/// which comes from OpenDP's cryptographic sampler).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
