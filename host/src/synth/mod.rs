//! Synthetic datasets with known structure, so everything runs with no real data.

pub mod cdr;
pub mod shaped;

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
