//! The latency histogram, the same code as `weir::bench::Histogram`, so
//! both tools compute percentiles identically.

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
    #[allow(dead_code)]
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
