//! Shared by the sketch tests, which check each sketch against exact
//! answers computed beside it, on deterministic streams.

use super::Quantiles;

/// SplitMix64 (Steele, Lea, Flood): a small deterministic generator, so
/// every run sees the same streams.
pub(super) struct SplitMix(pub(super) u64);

impl SplitMix {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub(super) fn sketch_of(values: &[f64]) -> Quantiles {
    let mut sketch = Quantiles::default();
    for &x in values {
        sketch.add(x);
    }
    sketch
}
