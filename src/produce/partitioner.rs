//! Key partitioning: which partition a record goes to.
//!
//! The default, [`PartitionerKind::Murmur2`], is the Java client's: a
//! present key goes to `(murmur2(key) & 0x7fffffff) % partitions`
//! ([`murmur2_partition`]), so weir and Java producers put the same key on
//! the same partition. [`PartitionerKind::Crc32`] reproduces librdkafka's
//! `consistent` partitioner ([`crc32_partition`]) for topics fed by C, Go
//! (confluent-kafka) or Python clients configured that way.
//!
//! An empty key is a key and is hashed. A null key goes to a *sticky*
//! partition, as in the Java client since KIP-480: one randomly chosen
//! partition takes every null-keyed record until its batch is sent
//! ([`Partitioner::batch_sent`]), then another is chosen. Records batch
//! better than with per-record spreading and still even out over time.
//! librdkafka's own `consistent` sends null keys to `crc32("") % n`, that is
//! always partition 0; weir deliberately uses the sticky choice for both
//! hash partitioners, so a stream of null keys never piles onto one
//! partition.
//!
//! A [`Partitioner`] holds that sticky choice, so the caller keeps one per
//! topic. An explicit partition chosen by the user bypasses all of this and
//! is the caller's business.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Kafka's murmur2 hash, bit for bit the Java client's `Utils.murmur2`.
///
/// MurmurHash2 (Austin Appleby) with seed `0x9747b28c`, little-endian 4-byte
/// blocks and Java's tail handling. The result is Java's `int`, so it can be
/// negative; [`murmur2_partition`] masks the sign bit as Java does. A key
/// longer than `u32::MAX` bytes (impossible in Java, where array lengths are
/// `int`) has its length truncated to 32 bits, like C's `rd_murmur2`.
pub fn murmur2(data: &[u8]) -> i32 {
    // Java works on `int` with wrapping `*` and logical `>>>`; on `u32` with
    // wrapping multiplication and `>>` the bits are identical.
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut h = SEED ^ data.len() as u32;

    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }

    // Java's `switch (length % 4)` with fallthrough from 3 to 2 to 1.
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }

    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;

    h as i32
}

/// The partition the Java client's default partitioner picks for a present
/// key: `Utils.toPositive(Utils.murmur2(key)) % numPartitions`.
///
/// `partitions` must be positive. A caller bug that passes 0 or less fails a
/// `debug_assert!` in debug builds and yields partition 0 in release builds
/// instead of dividing by zero.
pub fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(
        partitions > 0,
        "partition count {partitions} must be positive"
    );
    if partitions <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// CRC-32 lookup table for the reflected IEEE polynomial `0xEDB88320`,
/// built at compile time.
const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The standard CRC-32 (IEEE 802.3, as in zlib and librdkafka's `rd_crc32`)
/// of `data`.
///
/// Written out here rather than pulled in as a dependency: it is a dozen
/// lines and only hashes keys.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc = CRC32_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The partition librdkafka's `consistent` partitioner picks for a present
/// key: `rd_crc32(key) % partition_cnt`, computed on unsigned 32 bits as C
/// does.
///
/// `partitions` must be positive. A caller bug that passes 0 or less fails a
/// `debug_assert!` in debug builds and yields partition 0 in release builds.
pub fn crc32_partition(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(
        partitions > 0,
        "partition count {partitions} must be positive"
    );
    if partitions <= 0 {
        return 0;
    }
    // The remainder is below `partitions`, so it fits back into an i32.
    (crc32(key) % partitions as u32) as i32
}

/// How records are spread over a topic's partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartitionerKind {
    /// The Java client's default: murmur2 of the key, sticky for null keys.
    #[default]
    Murmur2,
    /// librdkafka's `consistent`: CRC-32 of the key, sticky for null keys.
    Crc32,
    /// Every record, keyed or not, goes to the sticky partition, so records
    /// land on a random partition that changes batch by batch.
    Random,
    /// Every record, keyed or not, goes to the next partition in turn.
    RoundRobin,
}

impl PartitionerKind {
    /// The name accepted by [`FromStr`] and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Murmur2 => "murmur2",
            Self::Crc32 => "crc32",
            Self::Random => "random",
            Self::RoundRobin => "round-robin",
        }
    }
}

impl fmt::Display for PartitionerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A partitioner name weir does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown partitioner \"{0}\" (expected murmur2, crc32, consistent, random or round-robin)")]
pub struct UnknownPartitioner(pub String);

impl FromStr for PartitionerKind {
    type Err = UnknownPartitioner;

    /// Parses `murmur2`, `crc32` (or librdkafka's name for it, `consistent`),
    /// `random` or `round-robin`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "murmur2" => Ok(Self::Murmur2),
            "crc32" | "consistent" => Ok(Self::Crc32),
            "random" => Ok(Self::Random),
            "round-robin" => Ok(Self::RoundRobin),
            _ => Err(UnknownPartitioner(s.to_owned())),
        }
    }
}

/// Chooses partitions for one topic's records.
///
/// Hash partitioning is stateless, but the sticky partition (null keys, and
/// every record under [`PartitionerKind::Random`]) and the round-robin
/// counter are per topic: keep one `Partitioner` per topic.
#[derive(Debug)]
pub struct Partitioner {
    kind: PartitionerKind,
    /// The current sticky partition, chosen on first use.
    sticky: Option<i32>,
    /// The partition whose batch was just sent: the next sticky choice
    /// avoids it when there is another partition to go to.
    leaving: Option<i32>,
    /// Round-robin position; wraps after `u32::MAX` records.
    next: u32,
    rng: XorShift64Star,
}

impl Partitioner {
    /// A partitioner of the given kind, with no sticky partition chosen yet.
    pub fn new(kind: PartitionerKind) -> Self {
        Self {
            kind,
            sticky: None,
            leaving: None,
            next: 0,
            rng: XorShift64Star::from_entropy(),
        }
    }

    /// The kind this partitioner was built with.
    pub fn kind(&self) -> PartitionerKind {
        self.kind
    }

    /// The partition, in `0..partitions`, for a record with this key.
    ///
    /// `Some(key)` is hashed under [`PartitionerKind::Murmur2`] and
    /// [`PartitionerKind::Crc32`], even when empty; `None` goes to the sticky
    /// partition, as does every record under [`PartitionerKind::Random`]. A
    /// sticky partition beyond a shrunken partition count is chosen again.
    ///
    /// `partitions` must be positive. A caller bug that passes 0 or less
    /// fails a `debug_assert!` in debug builds and yields partition 0 in
    /// release builds.
    pub fn partition(&mut self, key: Option<&[u8]>, partitions: i32) -> i32 {
        debug_assert!(
            partitions > 0,
            "partition count {partitions} must be positive"
        );
        if partitions <= 0 {
            return 0;
        }
        match (self.kind, key) {
            (PartitionerKind::Murmur2, Some(key)) => murmur2_partition(key, partitions),
            (PartitionerKind::Crc32, Some(key)) => crc32_partition(key, partitions),
            (PartitionerKind::RoundRobin, _) => {
                let p = self.next % partitions as u32;
                self.next = self.next.wrapping_add(1);
                p as i32
            }
            (PartitionerKind::Murmur2 | PartitionerKind::Crc32, None)
            | (PartitionerKind::Random, _) => self.sticky(partitions),
        }
    }

    /// Tells the partitioner that a batch for `partition` has been sent. If
    /// that is the sticky partition, the next sticky record goes to another,
    /// randomly chosen partition (the same one when the topic has only one).
    pub fn batch_sent(&mut self, partition: i32) {
        if self.sticky == Some(partition) {
            self.sticky = None;
            self.leaving = Some(partition);
        }
    }

    /// The sticky partition, choosing one when there is none or the current
    /// one is out of range. The choice waits for the next record so that it
    /// sees that record's partition count.
    fn sticky(&mut self, partitions: i32) -> i32 {
        if let Some(p) = self.sticky.filter(|&p| p < partitions) {
            return p;
        }
        let p = match self.leaving.take() {
            // Uniform over the other `partitions - 1` partitions.
            Some(old) if partitions > 1 && (0..partitions).contains(&old) => {
                let p = self.rng.below(partitions as u32 - 1) as i32;
                if p >= old { p + 1 } else { p }
            }
            _ => self.rng.below(partitions as u32) as i32,
        };
        self.sticky = Some(p);
        p
    }
}

/// xorshift64* (Vigna, 2016): a tiny, fast generator, good enough to spread
/// sticky partitions and nothing more; it is not cryptographic. weir does
/// not depend on `rand` for this alone.
#[derive(Debug)]
struct XorShift64Star {
    state: u64,
}

impl XorShift64Star {
    /// Seeds from std's per-process random hasher keys mixed with the clock,
    /// so producers started together still choose different partitions.
    fn from_entropy() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = RandomState::new().hash_one(nanos);
        // The all-zero state is the generator's one fixed point.
        Self { state: seed | 1 }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n > 0`), by multiply-and-shift on the high 32
    /// bits; the bias is below `n / 2^32`, irrelevant for partition counts.
    fn below(&mut self, n: u32) -> u32 {
        let high = self.next_u64() >> 32;
        ((high * u64::from(n)) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2` (apache/kafka,
    /// clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
    #[test]
    fn murmur2_matches_java_client() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for &(key, want) in cases {
            assert_eq!(murmur2(key), want, "{:?}", String::from_utf8_lossy(key));
        }
    }

    /// librdkafka's `unittest_murmur2` (src/rdmurmur2.c), whose expected
    /// values are the Java client's. The C test feeds suffixes of two
    /// strings (`unaligned + 1` and so on) to exercise unaligned reads.
    #[test]
    fn murmur2_matches_librdkafka() {
        let short: &[u8] = b"1234";
        let long: &[u8] = b"PreAmbleWillBeRemoved,ThePrePartThatIs";
        let cases: &[(&[u8], u32)] = &[
            (b"kafka", 0xd067_cf64),
            (b"giberish123456789", 0x8f55_2b0c),
            (short, 0x9fc9_7b14),
            (&short[1..], 0xe7c0_09ca),
            (&short[2..], 0x8739_30da),
            (&short[3..], 0x5a4b_5ca1),
            (long, 0x7842_4f1c),
            (&long[1..], 0x4a62_b377),
            (&long[2..], 0xe0e4_e09e),
            (&long[3..], 0x62b8_b43f),
            (b"", 0x106e_08d9),
        ];
        for &(key, want) in cases {
            assert_eq!(
                murmur2(key) as u32,
                want,
                "{:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn crc32_known_values() {
        // The CRC catalogue's check value for CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414f_a339
        );
    }

    #[test]
    fn crc32_partition_is_unsigned_crc_modulo() {
        // 0xcbf43926 has its top bit set: a signed remainder would differ.
        assert_eq!(
            crc32_partition(b"123456789", 7),
            (0xcbf4_3926u32 % 7) as i32
        );
        for n in [1, 3, 6, 12, 100] {
            let p = crc32_partition(b"order-42", n);
            assert_eq!(p, (crc32(b"order-42") % n as u32) as i32);
        }
    }

    #[test]
    fn murmur2_partition_masks_sign_bit() {
        // murmur2("") is 0x106e08d9, positive; "kafka" is negative as i32.
        assert_eq!(murmur2_partition(b"", 6), (murmur2(b"") & 0x7fff_ffff) % 6);
        assert!(murmur2(b"kafka") < 0);
        assert_eq!(
            murmur2_partition(b"kafka", 10),
            (0xd067_cf64u32 & 0x7fff_ffff) as i32 % 10
        );
    }

    #[test]
    fn keys_spread_over_all_partitions() {
        for kind in [PartitionerKind::Murmur2, PartitionerKind::Crc32] {
            let mut partitioner = Partitioner::new(kind);
            let mut counts = [0u32; 6];
            for i in 0..1000 {
                let key = format!("key-{i}");
                let p = partitioner.partition(Some(key.as_bytes()), 6);
                counts[p as usize] += 1;
            }
            assert!(counts.iter().all(|&c| c > 0), "{kind}: {counts:?}");
        }
    }

    #[test]
    fn present_keys_hash_even_when_empty() {
        let mut murmur = Partitioner::new(PartitionerKind::Murmur2);
        let mut crc = Partitioner::new(PartitionerKind::Crc32);
        for _ in 0..5 {
            assert_eq!(murmur.partition(Some(b""), 6), murmur2_partition(b"", 6));
            assert_eq!(crc.partition(Some(b""), 6), crc32_partition(b"", 6));
            assert_eq!(
                murmur.partition(Some(b"user-7"), 6),
                murmur2_partition(b"user-7", 6)
            );
            // Sending batches moves the sticky partition, never a hashed one.
            murmur.batch_sent(murmur2_partition(b"", 6));
            crc.batch_sent(crc32_partition(b"", 6));
        }
    }

    #[test]
    fn null_keys_stick_until_batch_sent() {
        for kind in [
            PartitionerKind::Murmur2,
            PartitionerKind::Crc32,
            PartitionerKind::Random,
        ] {
            let mut partitioner = Partitioner::new(kind);
            let mut current = partitioner.partition(None, 6);
            for _ in 0..20 {
                for _ in 0..100 {
                    assert_eq!(partitioner.partition(None, 6), current, "{kind}");
                }
                // A batch sent elsewhere does not move it.
                partitioner.batch_sent((current + 1) % 6);
                assert_eq!(partitioner.partition(None, 6), current, "{kind}");

                partitioner.batch_sent(current);
                let next = partitioner.partition(None, 6);
                assert_ne!(next, current, "{kind}");
                assert!((0..6).contains(&next), "{kind}: {next}");
                current = next;
            }
        }
    }

    #[test]
    fn random_records_stay_in_range() {
        let mut partitioner = Partitioner::new(PartitionerKind::Random);
        let mut seen = [false; 5];
        for i in 0..1000 {
            let p = partitioner.partition(Some(format!("k{i}").as_bytes()), 5);
            assert!((0..5).contains(&p), "{p}");
            seen[p as usize] = true;
            partitioner.batch_sent(p);
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }

    #[test]
    fn single_partition_stays_sticky() {
        let mut partitioner = Partitioner::new(PartitionerKind::Murmur2);
        assert_eq!(partitioner.partition(None, 1), 0);
        partitioner.batch_sent(0);
        assert_eq!(partitioner.partition(None, 1), 0);
    }

    #[test]
    fn shrinking_partition_count_repicks_sticky() {
        let mut partitioner = Partitioner::new(PartitionerKind::Murmur2);
        partitioner.sticky = Some(9);
        assert_eq!(partitioner.partition(None, 12), 9);
        let p = partitioner.partition(None, 3);
        assert!((0..3).contains(&p), "{p}");
        // The new choice sticks, and survives growing the topic again.
        assert_eq!(partitioner.partition(None, 3), p);
        assert_eq!(partitioner.partition(None, 12), p);
    }

    #[test]
    fn round_robin_cycles_for_every_record() {
        let mut partitioner = Partitioner::new(PartitionerKind::RoundRobin);
        let got: Vec<i32> = (0..7)
            .map(|i| {
                let key = (i % 2 == 0).then_some(&b"same-key"[..]);
                partitioner.partition(key, 3)
            })
            .collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn kind_parses_and_prints() {
        for kind in [
            PartitionerKind::Murmur2,
            PartitionerKind::Crc32,
            PartitionerKind::Random,
            PartitionerKind::RoundRobin,
        ] {
            assert_eq!(kind.as_str().parse::<PartitionerKind>(), Ok(kind));
        }
        assert_eq!("consistent".parse(), Ok(PartitionerKind::Crc32));
        assert_eq!("Murmur2".parse(), Ok(PartitionerKind::Murmur2));
        assert_eq!(PartitionerKind::default(), PartitionerKind::Murmur2);
        let err = "fnv1a".parse::<PartitionerKind>().unwrap_err().to_string();
        assert!(err.contains("\"fnv1a\""), "{err}");
        assert!(err.contains("round-robin"), "{err}");
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn non_positive_partition_count_yields_zero() {
        let mut partitioner = Partitioner::new(PartitionerKind::Murmur2);
        assert_eq!(partitioner.partition(Some(b"k"), 0), 0);
        assert_eq!(partitioner.partition(None, -1), 0);
        assert_eq!(murmur2_partition(b"k", 0), 0);
        assert_eq!(crc32_partition(b"k", 0), 0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "must be positive")]
    fn non_positive_partition_count_asserts_in_debug() {
        Partitioner::new(PartitionerKind::Murmur2).partition(Some(b"k"), 0);
    }
}
