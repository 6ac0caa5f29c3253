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

mod distinct;
mod quantiles;
mod top;

#[cfg(test)]
mod test_support;

pub use distinct::{Distinct, EXACT_DISTINCT};
pub use quantiles::{MAX_BUCKETS, Quantiles, RELATIVE_ACCURACY};
pub use top::{TOP_EXACT, TopK};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash64_is_murmurhash64a_with_the_redis_seed() {
        // From the reference C (smhasher's MurmurHash64A), seed 0xadc83b19:
        // empty, a tail only, one block, a block and a tail.
        assert_eq!(stable_hash64(b""), 0xd8df_ea65_85bc_9732);
        assert_eq!(stable_hash64(b"a"), 0x53d2_470a_9b43_b1a7);
        assert_eq!(stable_hash64(b"abc"), 0x77ec_90ae_b374_e502);
        assert_eq!(stable_hash64(b"hello"), 0x0f65_6f01_eecf_e400);
        assert_eq!(stable_hash64(b"01234567"), 0x4f52_9b65_1cb0_8252);
        assert_eq!(
            stable_hash64(b"The quick brown fox jumps over the lazy dog"),
            0x5160_6c5c_5b56_1ace
        );
    }
}
