//! [`Distinct`]: exact distinct counts up to [`EXACT_DISTINCT`] values,
//! then a HyperLogLog, and its checkpoint form.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize, Serializer};

use super::stable_hash64;

/// Values [`Distinct`] counts exactly before it turns into a HyperLogLog.
pub const EXACT_DISTINCT: usize = 1024;

/// HyperLogLog precision: 2^14 registers, standard error 1.04 / 128.
const PRECISION: u32 = 14;

const REGISTERS: usize = 1 << PRECISION;

/// The largest register value: the 50 hash bits left after the index, all
/// zero, plus one.
const MAX_RANK: u8 = 64 - PRECISION as u8 + 1;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::sketch::Quantiles;
    use crate::aggregate::sketch::test_support::sketch_of;

    fn distinct_of(values: std::ops::Range<u64>) -> Distinct {
        let mut sketch = Distinct::default();
        for v in values {
            sketch.add(&v.to_le_bytes());
        }
        sketch
    }

    fn assert_within(estimate: u64, truth: u64, relative: f64) {
        let error = (estimate as f64 - truth as f64).abs() / truth as f64;
        assert!(
            error <= relative,
            "estimate {estimate}, true {truth}: {:.3} %",
            100.0 * error
        );
    }

    #[test]
    fn distinct_is_exact_up_to_the_bound() {
        for n in [0, 1, 500, EXACT_DISTINCT as u64] {
            let mut sketch = distinct_of(0..n);
            // Repeats change nothing.
            for v in 0..n.min(100) {
                sketch.add(&v.to_le_bytes());
            }
            assert!(sketch.is_exact());
            assert_eq!(sketch.estimate(), n);
        }
        let past = distinct_of(0..EXACT_DISTINCT as u64 + 1);
        assert!(!past.is_exact());
        assert_within(past.estimate(), EXACT_DISTINCT as u64 + 1, 0.025);
    }

    #[test]
    fn distinct_estimates_large_counts_within_2_5_percent() {
        for n in [2_000, 10_000, 100_000, 1_000_000] {
            let sketch = distinct_of(0..n);
            assert!(!sketch.is_exact());
            assert_within(sketch.estimate(), n, 0.025);
        }
    }

    #[test]
    fn distinct_merge_of_overlapping_sets() {
        let a = distinct_of(0..60_000);
        let b = distinct_of(30_000..90_000);
        let mut merged = a.clone();
        merged.merge(&b);
        assert_within(merged.estimate(), 90_000, 0.025);
        // Registers are a function of the set of hashes.
        assert_eq!(merged, distinct_of(0..90_000));
    }

    #[test]
    fn distinct_merge_of_exact_and_hll_either_way() {
        let exact = distinct_of(0..500);
        let hll = distinct_of(400..50_000);
        let whole = distinct_of(0..50_000);

        let mut into_exact = exact.clone();
        into_exact.merge(&hll);
        assert_eq!(into_exact, whole);

        let mut into_hll = hll.clone();
        into_hll.merge(&exact);
        assert_eq!(into_hll, whole);
    }

    #[test]
    fn distinct_merge_of_exact_sets() {
        // 1,000 in the union: stays exact.
        let mut small = distinct_of(0..600);
        small.merge(&distinct_of(200..1000));
        assert!(small.is_exact());
        assert_eq!(small, distinct_of(0..1000));

        // 1,300 in the union: past the bound, as if added one by one.
        let mut large = distinct_of(0..800);
        large.merge(&distinct_of(500..1300));
        assert!(!large.is_exact());
        assert_eq!(large, distinct_of(0..1300));
        assert_within(large.estimate(), 1300, 0.025);
    }

    #[test]
    fn distinct_serde_round_trip() {
        for sketch in [
            Distinct::default(),
            distinct_of(0..1),
            distinct_of(0..EXACT_DISTINCT as u64),
            distinct_of(0..1500),
            distinct_of(0..1_000_000),
        ] {
            let json = serde_json::to_string(&sketch).unwrap();
            assert_eq!(serde_json::from_str::<Distinct>(&json).unwrap(), sketch);
        }
        assert_eq!(
            serde_json::to_string(&Distinct::default()).unwrap(),
            r#"{"exact":""}"#
        );
        let mut one = Distinct::default();
        one.add(b"a");
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            r#"{"exact":"53d2470a9b43b1a7"}"#
        );
    }

    #[test]
    fn distinct_refuses_malformed_checkpoints() {
        for json in [
            r#"{"exact":"53d2470a9b43b1a"}"#,
            r#"{"exact":"53d2470a9b43b1ag"}"#,
            r#"{"hll":"A"}"#,
            r#"{"hll":"16385"}"#,
            r#"{"hll":"16383B!"}"#,
            r#"{"hll":"16384B"}"#,
            r#"{"other":""}"#,
        ] {
            assert!(serde_json::from_str::<Distinct>(json).is_err(), "{json}");
        }
        // All zero registers, written as one run.
        let zeros: Distinct = serde_json::from_str(r#"{"hll":"16384"}"#).unwrap();
        assert_eq!(zeros.estimate(), 0);
    }

    #[test]
    fn hll_register_and_rank_come_from_the_hash() {
        // The register is the hash's low 14 bits, the rank one more than the
        // trailing zeros of the other 50.
        let hash = stable_hash64(b"a");
        let mut registers = vec![0u8; REGISTERS];
        observe(&mut registers, hash);
        let index = (hash & 0x3fff) as usize;
        let rank = (hash >> 14).trailing_zeros() as u8 + 1;
        assert_eq!(registers[index], rank);
        assert_eq!(registers.iter().filter(|&&r| r != 0).count(), 1);
        // A hash whose upper 50 bits are 0 takes the largest rank.
        observe(&mut registers, 5);
        assert_eq!(registers[5], MAX_RANK);
    }

    // ---- Sizes

    #[test]
    fn small_sketches_are_small_in_json() {
        let sizes = |json: String| json.len();
        assert!(sizes(serde_json::to_string(&Quantiles::default()).unwrap()) <= 2);
        // One bucket, and the exact least and greatest value.
        assert!(sizes(serde_json::to_string(&sketch_of(&[1.5])).unwrap()) <= 40);
        assert!(sizes(serde_json::to_string(&distinct_of(0..1)).unwrap()) <= 30);
        let full = serde_json::to_string(&distinct_of(0..1_000_000)).unwrap();
        assert!(full.len() <= REGISTERS + 10, "{}", full.len());
        // Just past the exact bound the zero runs keep it near 3 KB.
        let sparse = serde_json::to_string(&distinct_of(0..1100)).unwrap();
        assert!(sparse.len() < 4000, "{}", sparse.len());
        // A million values leave no register at 0: one letter each.
        let registers = distinct_of(0..1_000_000).repr.into_registers();
        assert!(!registers.contains(&0));
    }
}
