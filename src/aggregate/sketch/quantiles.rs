//! [`Quantiles`]: a DDSketch with logarithmic buckets, each sign kept to
//! at most [`MAX_BUCKETS`] buckets, the exact least and greatest value,
//! and its checkpoint form.

use serde::{Deserialize, Serialize, Serializer};

/// The relative accuracy of [`Quantiles`]: a quantile is reported within
/// 1 % of the exact value at its rank.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// The most buckets one sign of a [`Quantiles`] keeps.
///
/// The indices kept span at most this many consecutive buckets below the
/// highest; smaller magnitudes are counted in the lowest kept bucket, as
/// DDSketch's collapsing-lowest store does. With gamma about 1.0202 the
/// span is a factor of about 10^18: every magnitude within 10^18 of the
/// largest of its sign keeps the stated accuracy.
pub const MAX_BUCKETS: usize = 2048;

/// gamma = (1 + a) / (1 - a): bucket `i` holds the magnitudes in
/// (gamma^(i-1), gamma^i].
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

/// The index span of a store, below its highest index.
const SPAN: i32 = MAX_BUCKETS as i32 - 1;

/// Quantiles of a stream of numbers: a DDSketch (Masson, Rim, Lee, 2019)
/// with logarithmic buckets.
///
/// A value x > 0 goes to bucket `ceil(log_gamma(x))`, a negative value to
/// the bucket of |x| in a store of its own, and zeros are counted apart.
/// A bucket stands for `2 gamma^i / (gamma + 1)`, within
/// [`RELATIVE_ACCURACY`] of every value in it. Each sign keeps at most
/// [`MAX_BUCKETS`] buckets: magnitudes more than a factor of about 10^18
/// below the largest of their sign are counted at the edge of that range
/// and lose the accuracy. NaN and infinities are ignored. The least and
/// the greatest value are kept exactly, so q = 0 and q = 1 (p0, p100) are
/// the exact minimum and maximum, and no quantile falls outside them.
///
/// Checkpoint form: `{"neg":[[index,count],..],"zero":n,"pos":[..],
/// "min":x,"max":y}`, each part left out when empty (an empty sketch is
/// `{}`). A form without `min` and `max` (saved before they were kept)
/// reads as a sketch whose extremes are not known: its p0 and p100 are the
/// buckets' values, also once merged with others.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "QuantilesForm")]
pub struct Quantiles {
    /// Negative values, by the bucket of their magnitude.
    negative: Store,
    zeros: u64,
    positive: Store,
    bounds: Bounds,
}

/// The least and greatest value a [`Quantiles`] counted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum Bounds {
    /// Nothing counted.
    #[default]
    Empty,
    /// The exact least and greatest values.
    Known { min: f64, max: f64 },
    /// Values counted, their extremes not kept (a checkpoint from before
    /// they were, or a merge with one).
    Unknown,
}

impl Bounds {
    fn add(&mut self, x: f64) {
        *self = match *self {
            Self::Empty => Self::Known { min: x, max: x },
            Self::Known { min, max } => Self::Known {
                min: min.min(x),
                max: max.max(x),
            },
            Self::Unknown => Self::Unknown,
        };
    }

    fn merge(&mut self, other: Self) {
        *self = match (*self, other) {
            (Self::Empty, b) => b,
            (a, Self::Empty) => a,
            (Self::Known { min: a, max: b }, Self::Known { min: c, max: d }) => Self::Known {
                min: a.min(c),
                max: b.max(d),
            },
            _ => Self::Unknown,
        };
    }
}

impl Quantiles {
    /// Counts `x`; NaN and infinities are ignored.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.bounds.add(x);
        if x > 0.0 {
            self.positive.add(bucket_index(x), 1);
        } else if x < 0.0 {
            self.negative.add(bucket_index(-x), 1);
        } else {
            self.zeros += 1;
        }
    }

    /// The number of values counted.
    pub fn count(&self) -> u64 {
        self.negative.count() + self.zeros + self.positive.count()
    }

    /// The lower `q`-quantile: the value at 0-based rank
    /// `floor(q * (count - 1))` (computed in f64) of the sorted values, so
    /// `q = 0` is the least value and `q = 1` the greatest, both exact.
    /// Any other rank is within [`RELATIVE_ACCURACY`] of the exact value
    /// at that rank (plus float rounding), exactly 0 for a zero, unless
    /// the value was collapsed (see [`MAX_BUCKETS`]), and never outside
    /// the least and greatest value.
    ///
    /// `None` when the sketch is empty, or `q` is not in [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let last = self.count().checked_sub(1)?;
        let rank = (q * last as f64).floor() as u64;
        if let Bounds::Known { min, max } = self.bounds {
            match rank {
                0 => return Some(min),
                r if r == last => return Some(max),
                _ => {}
            }
        }
        let negatives = (self.negative.buckets.iter().rev()).map(|&(i, n)| (-bucket_value(i), n));
        let zeros = std::iter::once((0.0, self.zeros));
        let positives = self
            .positive
            .buckets
            .iter()
            .map(|&(i, n)| (bucket_value(i), n));
        let mut seen = 0;
        let estimate = negatives
            .chain(zeros)
            .chain(positives)
            .find_map(|(value, n)| {
                seen += n;
                (seen > rank).then_some(value)
            })?;
        Some(match self.bounds {
            Bounds::Known { min, max } => estimate.clamp(min, max),
            Bounds::Empty | Bounds::Unknown => estimate,
        })
    }

    /// Adds the values counted in `other`: the buckets are the same as if
    /// they had been added here.
    pub fn merge(&mut self, other: &Self) {
        self.negative.merge(&other.negative);
        self.zeros += other.zeros;
        self.positive.merge(&other.positive);
        self.bounds.merge(other.bounds);
    }
}

/// The bucket of a finite magnitude > 0. Every f64 falls within about
/// +-37,000, far inside i32.
fn bucket_index(magnitude: f64) -> i32 {
    (magnitude.ln() / GAMMA.ln()).ceil() as i32
}

/// The value bucket `index` stands for: 2 gamma^i / (gamma + 1), which is
/// gamma^i (1 - a).
fn bucket_value(index: i32) -> f64 {
    (f64::from(index) * GAMMA.ln()).exp() * (1.0 - RELATIVE_ACCURACY)
}

/// The bucket counts of one sign: (index, count) sorted by index, no count
/// 0, indices at most [`SPAN`] below the highest.
///
/// A sorted vector: a few values take a few pairs, and the lookups are
/// binary searches over at most [`MAX_BUCKETS`] entries.
#[derive(Debug, Clone, Default, PartialEq)]
struct Store {
    buckets: Vec<(i32, u64)>,
}

impl Store {
    fn add(&mut self, index: i32, n: u64) {
        let floor = self.floor();
        let index = floor.map_or(index, |floor| index.max(floor));
        match self.buckets.binary_search_by_key(&index, |&(i, _)| i) {
            Ok(at) => self.buckets[at].1 += n,
            Err(at) => {
                self.buckets.insert(at, (index, n));
                self.collapse();
            }
        }
    }

    /// Pairs in any order, repeated indices and zero counts allowed.
    fn from_pairs(mut buckets: Vec<(i32, u64)>) -> Self {
        buckets.retain(|&(_, n)| n > 0);
        buckets.sort_unstable_by_key(|&(i, _)| i);
        // dedup_by passes (later, kept): fold the later into the kept.
        buckets.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 += later.1;
            }
            same
        });
        let mut store = Self { buckets };
        store.collapse();
        store
    }

    fn merge(&mut self, other: &Self) {
        if other.buckets.is_empty() {
            return;
        }
        let pairs = [self.buckets.as_slice(), other.buckets.as_slice()].concat();
        *self = Self::from_pairs(pairs);
    }

    /// The lowest index kept, given the highest.
    fn floor(&self) -> Option<i32> {
        let &(top, _) = self.buckets.last()?;
        Some(top.saturating_sub(SPAN))
    }

    /// Folds the buckets below the floor into the floor bucket. The floor
    /// only depends on the highest index seen, so the result does not
    /// depend on the order of adds and merges.
    fn collapse(&mut self) {
        let Some(floor) = self.floor() else { return };
        let below = self.buckets.partition_point(|&(i, _)| i < floor);
        if below == 0 {
            return;
        }
        let folded: u64 = self.buckets.drain(..below).map(|(_, n)| n).sum();
        match self.buckets.first_mut() {
            Some((index, n)) if *index == floor => *n += folded,
            _ => self.buckets.insert(0, (floor, folded)),
        }
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|&(_, n)| n).sum()
    }
}

impl Serialize for Quantiles {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (min, max) = match self.bounds {
            Bounds::Known { min, max } => (Some(min), Some(max)),
            Bounds::Empty | Bounds::Unknown => (None, None),
        };
        QuantilesRef {
            neg: &self.negative.buckets,
            zero: self.zeros,
            pos: &self.positive.buckets,
            min,
            max,
        }
        .serialize(serializer)
    }
}

/// The checkpoint form of [`Quantiles`], written from borrowed buckets.
#[derive(Serialize)]
struct QuantilesRef<'a> {
    #[serde(skip_serializing_if = "no_buckets")]
    neg: &'a [(i32, u64)],
    #[serde(skip_serializing_if = "is_zero")]
    zero: u64,
    #[serde(skip_serializing_if = "no_buckets")]
    pos: &'a [(i32, u64)],
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<f64>,
}

fn no_buckets(buckets: &&[(i32, u64)]) -> bool {
    buckets.is_empty()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The checkpoint form of [`Quantiles`], read. Any list of pairs is a
/// valid one: it is sorted, merged and collapsed as added buckets are.
#[derive(Deserialize)]
struct QuantilesForm {
    #[serde(default)]
    neg: Vec<(i32, u64)>,
    #[serde(default)]
    zero: u64,
    #[serde(default)]
    pos: Vec<(i32, u64)>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
}

impl From<QuantilesForm> for Quantiles {
    fn from(form: QuantilesForm) -> Self {
        let negative = Store::from_pairs(form.neg);
        let positive = Store::from_pairs(form.pos);
        let counted = form.zero > 0 || !negative.buckets.is_empty() || !positive.buckets.is_empty();
        let bounds = match (form.min, form.max) {
            _ if !counted => Bounds::Empty,
            (Some(min), Some(max)) if min.is_finite() && max.is_finite() && min <= max => {
                Bounds::Known { min, max }
            }
            _ => Bounds::Unknown,
        };
        Self {
            negative,
            zeros: form.zero,
            positive,
            bounds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::sketch::test_support::{SplitMix, sketch_of};

    const QS: [f64; 7] = [0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0];

    /// The lower quantile of sorted values, as `Quantiles::quantile` defines it.
    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    /// Every quantile in `qs` within the relative accuracy (and a hair of
    /// float rounding at bucket edges).
    fn assert_accurate(sketch: &Quantiles, values: &[f64], qs: &[f64]) {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(sketch.count(), values.len() as u64);
        for &q in qs {
            let exact = exact_quantile(&sorted, q);
            let estimate = sketch.quantile(q).unwrap();
            let bound = RELATIVE_ACCURACY * exact.abs() * (1.0 + 1e-9);
            assert!(
                (estimate - exact).abs() <= bound,
                "q {q}: estimate {estimate}, exact {exact}"
            );
        }
    }

    fn uniform(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix(seed);
        (0..n).map(|_| 1.0 + rng.unit() * (1e6 - 1.0)).collect()
    }

    #[test]
    fn quantiles_of_a_uniform_stream() {
        let values = uniform(100_000, 1);
        assert_accurate(&sketch_of(&values), &values, &QS);
    }

    #[test]
    fn quantiles_of_an_exponential_stream() {
        let mut rng = SplitMix(2);
        let values: Vec<f64> = (0..100_000)
            .map(|_| -(1.0 - rng.unit()).ln() * 250.0)
            .collect();
        assert_accurate(&sketch_of(&values), &values, &QS);
    }

    #[test]
    fn quantiles_with_negatives_and_zeros() {
        let mut rng = SplitMix(3);
        let values: Vec<f64> = (0..50_000)
            .map(|_| match rng.next() % 10 {
                0 => 0.0,
                1 => -0.0,
                _ => (rng.unit() - 0.6) * 2000.0,
            })
            .collect();
        let sketch = sketch_of(&values);
        assert_accurate(&sketch, &values, &QS);
        // Around the zeros (20 % of the values, near the 60th percentile).
        let around_zero: Vec<f64> = (40..80).map(|p| f64::from(p) / 100.0).collect();
        assert_accurate(&sketch, &values, &around_zero);
    }

    #[test]
    fn quantiles_of_a_single_and_a_repeated_value() {
        assert_accurate(&sketch_of(&[42.5]), &[42.5], &QS);
        assert_accurate(&sketch_of(&[-3e-7]), &[-3e-7], &QS);
        assert_accurate(&sketch_of(&[0.0]), &[0.0], &QS);
        let repeated = vec![7.0; 1000];
        let sketch = sketch_of(&repeated);
        assert_accurate(&sketch, &repeated, &QS);
        assert_eq!(sketch.positive.buckets.len(), 1);
    }

    #[test]
    fn quantiles_of_nothing_and_of_bad_input() {
        let mut sketch = Quantiles::default();
        assert_eq!(sketch.quantile(0.5), None);
        sketch.add(f64::NAN);
        sketch.add(f64::INFINITY);
        sketch.add(f64::NEG_INFINITY);
        assert_eq!(sketch.count(), 0);
        assert_eq!(sketch.quantile(0.5), None);
        sketch.add(1.0);
        assert!(sketch.quantile(0.5).is_some());
        assert_eq!(sketch.quantile(-0.1), None);
        assert_eq!(sketch.quantile(1.1), None);
        assert_eq!(sketch.quantile(f64::NAN), None);
    }

    #[test]
    fn quantiles_merge_of_two_halves_is_the_sketch_of_the_whole() {
        // Spread over 600 decades of both signs, so both stores collapse, in
        // each half and in the whole.
        let mut rng = SplitMix(4);
        let values: Vec<f64> = (0..20_000)
            .map(|_| {
                let magnitude = 10f64.powf(rng.unit() * 600.0 - 300.0);
                if rng.next() % 3 == 0 {
                    -magnitude
                } else {
                    magnitude
                }
            })
            .collect();
        let (first, second) = values.split_at(values.len() / 3);
        let whole = sketch_of(&values);
        for store in [&whole.negative, &whole.positive] {
            let span = store.buckets.last().unwrap().0 - store.buckets[0].0;
            assert_eq!(span, SPAN, "collapsed to the full span");
        }

        let mut merged = sketch_of(first);
        merged.merge(&sketch_of(second));
        assert_eq!(merged, whole);

        let mut reversed = sketch_of(second);
        reversed.merge(&sketch_of(first));
        assert_eq!(reversed, whole);

        let mut into_empty = Quantiles::default();
        into_empty.merge(&whole);
        assert_eq!(into_empty, whole);
    }

    #[test]
    fn quantiles_merge_of_narrow_streams_is_exact() {
        let values = uniform(10_000, 5);
        let whole = sketch_of(&values);
        let mut merged = Quantiles::default();
        for chunk in values.chunks(999) {
            merged.merge(&sketch_of(chunk));
        }
        assert_eq!(merged, whole);
        assert_accurate(&merged, &values, &QS);
    }

    #[test]
    fn quantiles_keep_the_bucket_bound_and_the_high_quantiles() {
        let mut rng = SplitMix(6);
        let values: Vec<f64> = (0..1_000_000)
            .map(|_| 10f64.powf(rng.unit() * 300.0 - 150.0))
            .collect();
        let sketch = sketch_of(&values);
        assert_eq!(sketch.positive.buckets.len(), MAX_BUCKETS);
        // The top 2048 buckets span 18 of the 300 decades: the top 6 %.
        assert_accurate(&sketch, &values, &[0.95, 0.99, 0.999, 1.0]);
        // Everything below is counted in the lowest bucket kept; the least
        // value itself is kept apart.
        let lowest = bucket_value(sketch.positive.buckets[0].0);
        assert_eq!(sketch.quantile(0.01), Some(lowest));
        let least = values.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(sketch.quantile(0.0), Some(least));
    }

    #[test]
    fn quantiles_serde_round_trip() {
        let mut rng = SplitMix(7);
        let values: Vec<f64> = (0..10_000).map(|_| (rng.unit() - 0.3) * 1e4).collect();
        let mut sketch = sketch_of(&values);
        sketch.add(0.0);
        let json = serde_json::to_string(&sketch).unwrap();
        assert_eq!(serde_json::from_str::<Quantiles>(&json).unwrap(), sketch);

        let empty = Quantiles::default();
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
        assert_eq!(serde_json::from_str::<Quantiles>("{}").unwrap(), empty);
        // ceil(ln 100 / ln gamma) = 231.
        let one = sketch_of(&[100.0]);
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            r#"{"pos":[[231,1]],"min":100.0,"max":100.0}"#
        );
    }

    #[test]
    fn p0_and_p100_are_the_exact_least_and_greatest() {
        // The issue's case: 0..=99, where the bucket of 99 stands for 98.5.
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        let sketch = sketch_of(&values);
        assert_eq!(sketch.quantile(0.0), Some(0.0));
        assert_eq!(sketch.quantile(1.0), Some(99.0));
        // Rank 0 and the last rank for q near the ends, too.
        assert_eq!(sketch.quantile(0.005), Some(0.0));
        let odd = [-7.3, 1e-3, 12.34, 5e5 + 0.1];
        let sketch = sketch_of(&odd);
        assert_eq!(sketch.quantile(0.0), Some(-7.3));
        assert_eq!(sketch.quantile(1.0), Some(5e5 + 0.1));

        // Merged from members' partials and read back from a checkpoint.
        let (a, b) = values.split_at(37);
        let mut merged = sketch_of(b);
        merged.merge(&sketch_of(a));
        let json = serde_json::to_string(&merged).unwrap();
        let back: Quantiles = serde_json::from_str(&json).unwrap();
        assert_eq!(back, merged);
        assert_eq!(back.quantile(0.0), Some(0.0));
        assert_eq!(back.quantile(1.0), Some(99.0));
        // No estimate outside them.
        for q in [0.98, 0.99] {
            assert!(back.quantile(q).unwrap() <= 99.0);
        }
    }

    #[test]
    fn a_checkpoint_without_extremes_still_reads() {
        // As saved before the extremes were kept: p100 is the bucket's.
        let old: Quantiles = serde_json::from_str(r#"{"pos":[[231,1]]}"#).unwrap();
        assert_eq!(old.quantile(1.0), Some(bucket_value(231)));
        // Merged with a sketch that knows its extremes, the whole's are not
        // known: the old one's values may be beyond them.
        let mut merged = sketch_of(&[5.0]);
        merged.merge(&old);
        assert_eq!(merged.quantile(1.0), Some(bucket_value(231)));
        assert_eq!(merged.quantile(0.0), Some(bucket_value(bucket_index(5.0))));
        assert_eq!(
            serde_json::to_string(&merged).unwrap(),
            r#"{"pos":[[81,1],[231,1]]}"#
        );
    }

    #[test]
    fn quantiles_read_buckets_in_any_order() {
        let read: Quantiles =
            serde_json::from_str(r#"{"pos":[[5,1],[3,2],[5,4],[9,0]],"zero":1}"#).unwrap();
        assert_eq!(read.positive.buckets, [(3, 2), (5, 5)]);
        assert_eq!(read.count(), 8);
        // Indices beyond the span are collapsed on reading, as when added.
        let wide: Quantiles = serde_json::from_str(r#"{"neg":[[-5000,1],[100,1]]}"#).unwrap();
        assert_eq!(wide.negative.buckets, [(100 - SPAN, 1), (100, 1)]);
    }
}
