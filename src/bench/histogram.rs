//! The latency histogram of `weir bench`. bench/rdkafka-baseline compiles
//! this same file (`#[path]`), so both tools compute percentiles alike.

/// Sub-buckets per power of two: values below this are exact, larger ones
/// are within 1/(SUB_BUCKETS/2) of their bucket.
const SUB_BUCKETS: u64 = 128;
const HALF: u64 = SUB_BUCKETS / 2;
/// 128 exact buckets, then 64 per power of two from 2^7 to 2^63.
const BUCKETS: usize = (SUB_BUCKETS + (64 - 7) * HALF) as usize;

/// A latency histogram in microseconds with log-linear buckets: values
/// below 128 are kept exactly, larger ones within 1/64 (1.6 %). Count,
/// sum, minimum and maximum are exact. 29 KiB whatever the count.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    fn index(value: u64) -> usize {
        if value < SUB_BUCKETS {
            return value as usize;
        }
        // The highest set bit is at 7 or above; keep the 6 bits below it.
        let shift = 63 - u64::from(value.leading_zeros()) - 6;
        (SUB_BUCKETS + (shift - 1) * HALF + ((value >> shift) - HALF)) as usize
    }

    /// The smallest and largest value of bucket `index`.
    fn bounds(index: usize) -> (u64, u64) {
        let index = index as u64;
        if index < SUB_BUCKETS {
            return (index, index);
        }
        let shift = (index - SUB_BUCKETS) / HALF + 1;
        let sub = (index - SUB_BUCKETS) % HALF + HALF;
        let low = sub << shift;
        (low, low + ((1u64 << shift) - 1))
    }

    /// Adds one value.
    pub fn record(&mut self, micros: u64) {
        self.counts[Self::index(micros)] += 1;
        self.count += 1;
        self.sum += u128::from(micros);
        self.min = self.min.min(micros);
        self.max = self.max.max(micros);
    }

    /// How many values were added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean, 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The largest value, 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The nearest-rank `q`-th percentile (0 < q ≤ 100): the value at rank
    /// ⌈q/100 · count⌉, as the middle of its bucket, kept within the
    /// observed minimum and maximum. 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = Self::bounds(index);
                return (low + (high - low) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(95.0), 95);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(h.percentile(99.9), 100);
        assert_eq!(h.percentile(100.0), 100);
        assert_eq!(h.max(), 100);
        assert!((h.mean() - 50.5).abs() < 1e-9);
    }
    #[test]
    fn nearest_rank_rounds_up() {
        let mut h = Histogram::new();
        for v in [10, 20, 30] {
            h.record(v);
        }
        // Rank ceil(0.5 * 3) = 2.
        assert_eq!(h.percentile(50.0), 20);
        // Rank ceil(0.01 * 3) = 1: the smallest.
        assert_eq!(h.percentile(1.0), 10);
        assert_eq!(h.percentile(99.9), 30);
    }
    #[test]
    fn large_values_are_within_a_sixty_fourth() {
        let mut h = Histogram::new();
        let values: Vec<u64> = (0..10_000u64).map(|i| 1_000 + i * 997).collect();
        for &v in &values {
            h.record(v);
        }
        for q in [50.0, 95.0, 99.0, 99.9] {
            let rank = (q / 100.0 * values.len() as f64).ceil() as usize;
            let exact = values[rank - 1] as f64;
            let got = h.percentile(q) as f64;
            assert!(
                (got - exact).abs() / exact <= 1.0 / 64.0,
                "p{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max(), *values.last().unwrap());
    }
    #[test]
    fn buckets_cover_every_value_without_gaps() {
        // Each bucket starts one past the previous one's end.
        let mut next = 0;
        for index in 0..BUCKETS {
            let (low, high) = Histogram::bounds(index);
            assert_eq!(low, next, "bucket {index}");
            assert!(high >= low);
            assert_eq!(Histogram::index(low), index);
            assert_eq!(Histogram::index(high), index);
            next = high.wrapping_add(1);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }
    #[test]
    fn percentiles_stay_within_the_observed_range() {
        let mut h = Histogram::new();
        h.record(1_000_001);
        // The bucket's middle would be above the only value.
        assert_eq!(h.percentile(50.0), 1_000_001);
        assert_eq!(Histogram::new().percentile(99.0), 0);
        assert_eq!(Histogram::new().summary().avg, 0.0);
    }
}
