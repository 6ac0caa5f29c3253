//! Mergeable sketches for `weir agg`: quantiles ([`Quantiles`]), distinct
//! counts ([`Distinct`]) and heavy hitters ([`TopK`]).
//!
//! One sketch is kept per (window, group key) per input partition, and
//! partitions and session windows are combined with `merge`, so every
//! sketch starts small (an empty one allocates nothing, a few values take
//! one small allocation or two) and grows only as values come, up to a
//! fixed bound.
//!
//! `a.merge(&b)` leaves `a` as if every value added to `b` had been added to
//! `a`: bucket for bucket for [`Quantiles`], register for register for
//! [`Distinct`], and within the stated bounds for [`TopK`], whose summary
//! depends on the order of its input.
//!
//! Each sketch goes into checkpoints as compact JSON, in a form described
//! on its type. The forms are part of the checkpoint format, and so is
//! [`stable_hash64`]: a later weir must read them and hash the same.

use std::collections::HashMap;
use std::fmt::Write as _;

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

/// Values [`Distinct`] counts exactly before it turns into a HyperLogLog.
pub const EXACT_DISTINCT: usize = 1024;

/// Values [`TopK`] counts exactly, and the counters of its Space-Saving
/// summary beyond that.
pub const TOP_EXACT: usize = 4096;

/// gamma = (1 + a) / (1 - a): bucket `i` holds the magnitudes in
/// (gamma^(i-1), gamma^i].
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

/// The index span of a store, below its highest index.
const SPAN: i32 = MAX_BUCKETS as i32 - 1;

/// HyperLogLog precision: 2^14 registers, standard error 1.04 / 128.
const PRECISION: u32 = 14;

const REGISTERS: usize = 1 << PRECISION;

/// The largest register value: the 50 hash bits left after the index, all
/// zero, plus one.
const MAX_RANK: u8 = 64 - PRECISION as u8 + 1;

/// A stable 64-bit hash: MurmurHash64A (Austin Appleby) with seed
/// `0xadc83b19`, the hash and seed of Redis's HyperLogLog.
///
/// [`Distinct`] checkpoints hashes and registers, so the hash must never
/// change with the Rust version or the platform, as std's `DefaultHasher`
/// may. 8-byte blocks are read little-endian on every platform (the
/// original reads them in native order, the same on x86 and ARM).
pub fn stable_hash64(bytes: &[u8]) -> u64 {
    const SEED: u64 = 0xadc8_3b19;
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;

    // The original's `int len` times the 64-bit M; usize keeps lengths
    // over 2^31 apart where `int` would wrap.
    let mut h = SEED ^ (bytes.len() as u64).wrapping_mul(M);

    let mut blocks = bytes.chunks_exact(8);
    for block in &mut blocks {
        let mut k = u64::from_le_bytes(block.try_into().unwrap_or_default());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }

    // The original's `switch (len & 7)` falling through to case 1, which
    // ends with the multiplication: byte i goes to bits 8i..8i+8.
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &byte) in tail.iter().enumerate() {
            h ^= u64::from(byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }

    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Quantiles of a stream of numbers: a DDSketch (Masson, Rim, Lee, 2019)
/// with logarithmic buckets.
///
/// A value x > 0 goes to bucket `ceil(log_gamma(x))`, a negative value to
/// the bucket of |x| in a store of its own, and zeros are counted apart.
/// A bucket stands for `2 gamma^i / (gamma + 1)`, within
/// [`RELATIVE_ACCURACY`] of every value in it. Each sign keeps at most
/// [`MAX_BUCKETS`] buckets: magnitudes more than a factor of about 10^18
/// below the largest of their sign are counted at the edge of that range
/// and lose the accuracy. NaN and infinities are ignored.
///
/// Checkpoint form: `{"neg":[[index,count],..],"zero":n,"pos":[..]}`, each
/// part left out when empty (an empty sketch is `{}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "QuantilesForm")]
pub struct Quantiles {
    /// Negative values, by the bucket of their magnitude.
    negative: Store,
    zeros: u64,
    positive: Store,
}

impl Quantiles {
    /// Counts `x`; NaN and infinities are ignored.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
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
    /// `q = 0` is the least value and `q = 1` the greatest. The result is
    /// within [`RELATIVE_ACCURACY`] of the exact value at that rank (plus
    /// float rounding), exactly 0 for a zero, unless the value was
    /// collapsed (see [`MAX_BUCKETS`]).
    ///
    /// `None` when the sketch is empty, or `q` is not in [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let last = self.count().checked_sub(1)?;
        let rank = (q * last as f64).floor() as u64;
        let negatives = (self.negative.buckets.iter().rev()).map(|&(i, n)| (-bucket_value(i), n));
        let zeros = std::iter::once((0.0, self.zeros));
        let positives = self
            .positive
            .buckets
            .iter()
            .map(|&(i, n)| (bucket_value(i), n));
        let mut seen = 0;
        negatives
            .chain(zeros)
            .chain(positives)
            .find_map(|(value, n)| {
                seen += n;
                (seen > rank).then_some(value)
            })
    }

    /// Adds the values counted in `other`: the buckets are the same as if
    /// they had been added here.
    pub fn merge(&mut self, other: &Self) {
        self.negative.merge(&other.negative);
        self.zeros += other.zeros;
        self.positive.merge(&other.positive);
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
        QuantilesRef {
            neg: &self.negative.buckets,
            zero: self.zeros,
            pos: &self.positive.buckets,
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
}

impl From<QuantilesForm> for Quantiles {
    fn from(form: QuantilesForm) -> Self {
        Self {
            negative: Store::from_pairs(form.neg),
            zeros: form.zero,
            positive: Store::from_pairs(form.pos),
        }
    }
}

/// The number of distinct byte strings in a stream: exact up to
/// [`EXACT_DISTINCT`] values, then a HyperLogLog.
///
/// Up to [`EXACT_DISTINCT`] distinct values the sketch keeps their
/// [`stable_hash64`] hashes, sorted, and counts them exactly (two values
/// with the same 64-bit hash count once: about one chance in 10^13 at
/// 1,024 values). Past that it holds a HyperLogLog of 2^14 one-byte
/// registers (16 KiB), filled from the same hashes as Redis's: register
/// `hash & 0x3fff`, rank one more than the trailing zeros of the other 50
/// bits. The estimate is Ertl's improved estimator ("New cardinality
/// estimation algorithms for HyperLogLog sketches", 2017, as Redis uses),
/// good from small to huge counts without bias tables: standard error
/// 1.04 / sqrt(2^14), about 0.81 %, so an estimate is typically within
/// 2.5 % (3 standard errors).
///
/// Checkpoint form: `{"exact":"<hashes>"}`, each hash as 16 lower-case hex
/// digits, or `{"hll":"<registers>"}`, each register as a letter (`A` = 0
/// .. `Z` = 25, `a` = 26 .. `z` = 51, the largest rank) and each run of
/// zero registers as its length in decimal digits. An empty sketch is 12
/// bytes, one value 28; the exact form grows to 16 KB at the bound, the
/// registers just past it about 2.5 KB, growing to 16 KB as every register
/// is set (nearly all from about 100,000 values).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(try_from = "DistinctForm")]
pub struct Distinct {
    repr: DistinctRepr,
}

#[derive(Debug, Clone, PartialEq)]
enum DistinctRepr {
    /// The hashes seen, sorted, at most [`EXACT_DISTINCT`].
    Exact(Vec<u64>),
    /// [`REGISTERS`] registers, each at most [`MAX_RANK`].
    Hll(Box<[u8]>),
}

impl Default for DistinctRepr {
    fn default() -> Self {
        Self::Exact(Vec::new())
    }
}

impl DistinctRepr {
    /// From sorted, deduplicated hashes: exact within the bound.
    fn from_hashes(hashes: Vec<u64>) -> Self {
        if hashes.len() > EXACT_DISTINCT {
            Self::Hll(registers_of(&hashes))
        } else {
            Self::Exact(hashes)
        }
    }

    fn into_registers(self) -> Box<[u8]> {
        match self {
            Self::Exact(hashes) => registers_of(&hashes),
            Self::Hll(registers) => registers,
        }
    }
}

impl Distinct {
    /// Counts `value`.
    pub fn add(&mut self, value: &[u8]) {
        let hash = stable_hash64(value);
        match &mut self.repr {
            DistinctRepr::Hll(registers) => observe(registers, hash),
            DistinctRepr::Exact(hashes) => {
                if let Err(at) = hashes.binary_search(&hash) {
                    hashes.insert(at, hash);
                    if hashes.len() > EXACT_DISTINCT {
                        self.repr = DistinctRepr::Hll(registers_of(hashes));
                    }
                }
            }
        }
    }

    /// The number of distinct values: exact while [`is_exact`], else the
    /// HyperLogLog estimate, typically within 2.5 %.
    ///
    /// [`is_exact`]: Self::is_exact
    pub fn estimate(&self) -> u64 {
        match &self.repr {
            DistinctRepr::Exact(hashes) => hashes.len() as u64,
            DistinctRepr::Hll(registers) => hll_estimate(registers),
        }
    }

    /// True while at most [`EXACT_DISTINCT`] distinct values were seen.
    pub fn is_exact(&self) -> bool {
        matches!(self.repr, DistinctRepr::Exact(_))
    }

    /// Adds the values counted in `other`: the hashes or registers are the
    /// same as if they had been added here.
    pub fn merge(&mut self, other: &Self) {
        let mine = std::mem::take(&mut self.repr);
        self.repr = match (mine, &other.repr) {
            (DistinctRepr::Exact(mine), DistinctRepr::Exact(theirs)) => {
                let mut union = [mine.as_slice(), theirs].concat();
                union.sort_unstable();
                union.dedup();
                DistinctRepr::from_hashes(union)
            }
            (DistinctRepr::Hll(mut registers), DistinctRepr::Exact(theirs)) => {
                for &hash in theirs {
                    observe(&mut registers, hash);
                }
                DistinctRepr::Hll(registers)
            }
            (mine, DistinctRepr::Hll(theirs)) => {
                let mut registers = mine.into_registers();
                for (register, &their) in registers.iter_mut().zip(theirs.iter()) {
                    *register = (*register).max(their);
                }
                DistinctRepr::Hll(registers)
            }
        };
    }
}

fn registers_of(hashes: &[u64]) -> Box<[u8]> {
    let mut registers = vec![0; REGISTERS].into_boxed_slice();
    for &hash in hashes {
        observe(&mut registers, hash);
    }
    registers
}

/// Raises the register of `hash` to its rank, as Redis's `hllPatLen`: the
/// low 14 bits pick the register, the rank is one more than the trailing
/// zeros of the other 50 bits (bit 50 set so the rank is at most 51).
fn observe(registers: &mut [u8], hash: u64) {
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> PRECISION) | (1 << (64 - PRECISION));
    let rank = rest.trailing_zeros() as u8 + 1;
    if let Some(register) = registers.get_mut(index) {
        *register = (*register).max(rank);
    }
}

/// Ertl's improved raw estimator over the register histogram (Algorithm 6
/// of the paper; Redis's `hllCount`).
fn hll_estimate(registers: &[u8]) -> u64 {
    let mut histogram = [0u32; MAX_RANK as usize + 1];
    for &register in registers {
        histogram[usize::from(register.min(MAX_RANK))] += 1;
    }
    let m = REGISTERS as f64;
    let q = usize::from(MAX_RANK) - 1;
    let mut z = m * tau(1.0 - f64::from(histogram[q + 1]) / m);
    for k in (1..=q).rev() {
        z = 0.5 * (z + f64::from(histogram[k]));
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    // alpha_inf m^2 / z with alpha_inf = 1 / (2 ln 2); an all-zero sketch
    // has z infinite and estimates 0.
    (m * m / (2.0 * std::f64::consts::LN_2 * z)).round() as u64
}

/// Ertl's sigma(x) = x + sum over k >= 1 of x^(2^k) 2^(k-1), summed until
/// the terms no longer change it.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if z == previous {
            return z;
        }
    }
}

/// Ertl's tau(x) = (1 - x - sum over k >= 1 of (1 - x^(2^-k))^2 2^-k) / 3,
/// summed until the terms no longer change it.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == previous {
            return z / 3.0;
        }
    }
}

impl Serialize for Distinct {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let form = match &self.repr {
            DistinctRepr::Exact(hashes) => {
                let mut hex = String::with_capacity(16 * hashes.len());
                for hash in hashes {
                    let _ = write!(hex, "{hash:016x}");
                }
                DistinctForm::Exact(hex)
            }
            DistinctRepr::Hll(registers) => DistinctForm::Hll(encode_registers(registers)),
        };
        form.serialize(serializer)
    }
}

/// The checkpoint form of [`Distinct`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DistinctForm {
    Exact(String),
    Hll(String),
}

impl TryFrom<DistinctForm> for Distinct {
    type Error = &'static str;

    fn try_from(form: DistinctForm) -> Result<Self, Self::Error> {
        let repr = match form {
            DistinctForm::Exact(hex) => {
                const BAD: &str = "distinct: exact hashes are not 16-digit hex numbers";
                if hex.len() % 16 != 0 {
                    return Err(BAD);
                }
                let mut hashes = (hex.as_bytes().chunks(16))
                    .map(|digits| {
                        let digits = std::str::from_utf8(digits).map_err(|_| BAD)?;
                        u64::from_str_radix(digits, 16).map_err(|_| BAD)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                hashes.sort_unstable();
                hashes.dedup();
                DistinctRepr::from_hashes(hashes)
            }
            DistinctForm::Hll(text) => DistinctRepr::Hll(decode_registers(&text)?),
        };
        Ok(Self { repr })
    }
}

/// Registers as letters, runs of zeros as decimal lengths (see
/// [`Distinct`]).
fn encode_registers(registers: &[u8]) -> String {
    let mut text = String::new();
    let mut zeros = 0;
    for &register in registers {
        if register == 0 {
            zeros += 1;
            continue;
        }
        if zeros > 0 {
            let _ = write!(text, "{zeros}");
            zeros = 0;
        }
        text.push(char::from(match register {
            0..26 => b'A' + register,
            _ => b'a' + register - 26,
        }));
    }
    if zeros > 0 {
        let _ = write!(text, "{zeros}");
    }
    text
}

fn decode_registers(text: &str) -> Result<Box<[u8]>, &'static str> {
    const BAD: &str = "distinct: HyperLogLog registers are not 16384 letters and zero runs";
    let mut registers = Vec::with_capacity(REGISTERS);
    let mut zeros: usize = 0;
    for byte in text.bytes() {
        if byte.is_ascii_digit() {
            zeros = (zeros * 10 + usize::from(byte - b'0')).min(REGISTERS + 1);
            continue;
        }
        registers.resize(registers.len() + zeros, 0);
        zeros = 0;
        registers.push(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            _ => return Err(BAD),
        });
        if registers.len() > REGISTERS {
            return Err(BAD);
        }
    }
    registers.resize(registers.len() + zeros, 0);
    if registers.len() != REGISTERS {
        return Err(BAD);
    }
    Ok(registers.into_boxed_slice())
}

/// The most frequent strings of a stream, with counts: exact up to
/// [`TOP_EXACT`] distinct values, then a Space-Saving summary (Metwally,
/// Agrawal, El Abbadi, 2005) of [`TOP_EXACT`] counters.
///
/// Past the bound, a value not in the summary takes the counter with the
/// least count `min` (the least value first among equal counts, so the
/// summary does not depend on hash order): its count becomes `min + n`
/// and its error `min`. With N the total count added (over everything
/// merged in), every listed count `c` with error `e` bounds the true count
/// as `c - e <= true <= c`, with `e <= untracked_bound() <= N /`
/// [`TOP_EXACT`]; a value not listed occurred at most `untracked_bound()`
/// times. A value occurring more than N / [`TOP_EXACT`] times is always
/// listed.
///
/// Checkpoint form: `{"exact":[["value",count],..]}`, or
/// `{"space_saving":[["value",count,error],..]}` with exactly
/// [`TOP_EXACT`] entries, sorted by value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "TopKForm")]
pub struct TopK {
    counters: HashMap<Box<str>, Counter>,
    /// A Space-Saving summary of exactly [`TOP_EXACT`] counters; exact
    /// counts otherwise.
    summary: bool,
    /// Not saved: which counters to evict next.
    evictable: Evictable,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counter {
    count: u64,
    /// How much of `count` may not have occurred (Space-Saving only).
    error: u64,
}

/// The values whose count was the least when last looked for, greatest
/// value first, so popping takes the least.
///
/// Counts only grow and a new counter starts above the least, so the
/// entries still at `count` are exactly the counters with the least count:
/// evicting costs a scan of the summary only when they run out, where a
/// scan per eviction would cost 4,096 steps per new value of a long tail.
/// Adds of 1 leave many counters tied at the least (about 200 ns per new
/// value, release build); weighted adds whose counts rarely tie fall back
/// to about a scan per new value (about 2 us).
#[derive(Debug, Clone, Default)]
struct Evictable {
    count: u64,
    values: Vec<Box<str>>,
}

impl PartialEq for TopK {
    /// The counts and the mode; the eviction cache follows from them.
    fn eq(&self, other: &Self) -> bool {
        self.summary == other.summary && self.counters == other.counters
    }
}

impl TopK {
    /// Counts `value` `n` more times; `n = 0` does nothing.
    pub fn add(&mut self, value: &str, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(counter) = self.counters.get_mut(value) {
            counter.count += n;
            return;
        }
        if self.counters.len() < TOP_EXACT {
            let counter = Counter { count: n, error: 0 };
            self.counters.insert(value.into(), counter);
            return;
        }
        // An exact table of TOP_EXACT values is a Space-Saving summary
        // whose errors are all 0.
        self.summary = true;
        let min = self.evict_least();
        let counter = Counter {
            count: min + n,
            error: min,
        };
        self.counters.insert(value.into(), counter);
    }

    /// The `k` values with the greatest counts, by count descending then
    /// value ascending. Counts are exact while [`is_exact`], else upper
    /// bounds (see [`TopK`]).
    ///
    /// [`is_exact`]: Self::is_exact
    pub fn top(&self, k: usize) -> Vec<(String, u64)> {
        (self.ranked(k).into_iter())
            .map(|(value, counter)| (value.to_owned(), counter.count))
            .collect()
    }

    /// As [`top`](Self::top), with each count's error `e`: the true count
    /// is between `count - e` and `count`.
    pub fn top_with_error(&self, k: usize) -> Vec<(String, u64, u64)> {
        (self.ranked(k).into_iter())
            .map(|(value, counter)| (value.to_owned(), counter.count, counter.error))
            .collect()
    }

    /// The most times a value missing from the summary can have occurred,
    /// and the largest error of a listed count: the least count in a
    /// summary, 0 while exact.
    pub fn untracked_bound(&self) -> u64 {
        if self.summary {
            self.counters.values().map(|c| c.count).min().unwrap_or(0)
        } else {
            0
        }
    }

    /// True while at most [`TOP_EXACT`] distinct values were seen: every
    /// value is listed with its exact count.
    pub fn is_exact(&self) -> bool {
        !self.summary
    }

    /// Adds the counts of `other`, as mergeable Space-Saving summaries do
    /// (Agarwal et al., "Mergeable summaries", 2012; Cafaro et al., 2016):
    /// a value missing from a summary counts that summary's least count,
    /// as count and as error; counts and errors add, and the
    /// [`TOP_EXACT`] greatest counts are kept. The bounds stated on
    /// [`TopK`] hold for the merged total. Two exact sketches whose values
    /// fit within [`TOP_EXACT`] merge exactly.
    pub fn merge(&mut self, other: &Self) {
        let my_floor = self.untracked_bound();
        let their_floor = other.untracked_bound();
        if their_floor > 0 {
            for (value, counter) in &mut self.counters {
                if !other.counters.contains_key(value) {
                    counter.count += their_floor;
                    counter.error += their_floor;
                }
            }
        }
        for (value, theirs) in &other.counters {
            match self.counters.get_mut(value) {
                Some(mine) => {
                    mine.count += theirs.count;
                    mine.error += theirs.error;
                }
                None => {
                    let counter = Counter {
                        count: theirs.count + my_floor,
                        error: theirs.error + my_floor,
                    };
                    self.counters.insert(value.clone(), counter);
                }
            }
        }
        self.summary |= other.summary;
        self.evictable = Evictable::default();
        if self.counters.len() > TOP_EXACT {
            self.keep_top();
            self.summary = true;
        }
    }

    /// Removes the counter with the least count (the least value among
    /// equals) and returns its count.
    fn evict_least(&mut self) -> u64 {
        loop {
            while let Some(value) = self.evictable.values.pop() {
                let least = self.evictable.count;
                if self.counters.get(&value).is_some_and(|c| c.count == least) {
                    self.counters.remove(&value);
                    return least;
                }
            }
            let Some(least) = self.counters.values().map(|c| c.count).min() else {
                return 0;
            };
            let mut values: Vec<Box<str>> = (self.counters.iter())
                .filter(|(_, c)| c.count == least)
                .map(|(value, _)| value.clone())
                .collect();
            values.sort_unstable_by(|a, b| b.cmp(a));
            self.evictable = Evictable {
                count: least,
                values,
            };
        }
    }

    /// Keeps the [`TOP_EXACT`] counters that rank first.
    fn keep_top(&mut self) {
        if self.counters.len() <= TOP_EXACT {
            return;
        }
        let mut ranked: Vec<(&str, Counter)> =
            self.counters.iter().map(|(v, c)| (&**v, *c)).collect();
        let (_, &mut (value, counter), _) =
            ranked.select_nth_unstable_by(TOP_EXACT - 1, rank_order);
        let (last_value, last_count): (Box<str>, u64) = (value.into(), counter.count);
        self.counters.retain(|value, counter| {
            counter.count > last_count || (counter.count == last_count && *value <= last_value)
        });
    }

    /// Counters by count descending then value ascending, the first `k`.
    fn ranked(&self, k: usize) -> Vec<(&str, Counter)> {
        let mut ranked: Vec<(&str, Counter)> =
            self.counters.iter().map(|(v, c)| (&**v, *c)).collect();
        if k < ranked.len() {
            ranked.select_nth_unstable_by(k, rank_order);
            ranked.truncate(k);
        }
        ranked.sort_unstable_by(rank_order);
        ranked
    }
}

fn rank_order(a: &(&str, Counter), b: &(&str, Counter)) -> std::cmp::Ordering {
    b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(b.0))
}

impl Serialize for TopK {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(&str, &Counter)> =
            self.counters.iter().map(|(v, c)| (&**v, c)).collect();
        entries.sort_unstable_by_key(|&(value, _)| value);
        if self.summary {
            let entries = entries.iter().map(|(v, c)| (*v, c.count, c.error));
            TopKRef::SpaceSaving(entries.collect()).serialize(serializer)
        } else {
            let entries = entries.iter().map(|(v, c)| (*v, c.count));
            TopKRef::Exact(entries.collect()).serialize(serializer)
        }
    }
}

/// The checkpoint form of [`TopK`], written from borrowed values.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum TopKRef<'a> {
    Exact(Vec<(&'a str, u64)>),
    SpaceSaving(Vec<(&'a str, u64, u64)>),
}

/// The checkpoint form of [`TopK`], read.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum TopKForm {
    Exact(Vec<(Box<str>, u64)>),
    SpaceSaving(Vec<(Box<str>, u64, u64)>),
}

impl TryFrom<TopKForm> for TopK {
    type Error = &'static str;

    fn try_from(form: TopKForm) -> Result<Self, Self::Error> {
        let (entries, summary): (Vec<_>, _) = match form {
            TopKForm::Exact(entries) => {
                if entries.len() > TOP_EXACT {
                    return Err("top: more exact counts than the bound");
                }
                let entries = entries.into_iter().map(|(v, count)| (v, count, 0));
                (entries.collect(), false)
            }
            TopKForm::SpaceSaving(entries) => {
                if entries.len() != TOP_EXACT {
                    return Err("top: a Space-Saving summary without its 4096 counters");
                }
                (entries, true)
            }
        };
        let mut counters = HashMap::with_capacity(entries.len());
        for (value, count, error) in entries {
            if count == 0 || error > count {
                return Err("top: a count of 0, or an error above its count");
            }
            if counters.insert(value, Counter { count, error }).is_some() {
                return Err("top: a value listed twice");
            }
        }
        Ok(Self {
            counters,
            summary,
            evictable: Evictable::default(),
        })
    }
}

#[cfg(test)]
#[path = "sketch_tests.rs"]
mod tests;
