//! The sketches against exact answers computed beside them, on
//! deterministic streams.

use std::collections::HashMap;

use super::*;

/// SplitMix64 (Steele, Lea, Flood): a small deterministic generator, so
/// every run sees the same streams.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---- stable_hash64

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

// ---- Quantiles

const QS: [f64; 7] = [0.0, 0.01, 0.5, 0.9, 0.99, 0.999, 1.0];

/// The lower quantile of sorted values, as `Quantiles::quantile` defines it.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

fn sketch_of(values: &[f64]) -> Quantiles {
    let mut sketch = Quantiles::default();
    for &x in values {
        sketch.add(x);
    }
    sketch
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
    // Everything below is counted in the lowest bucket kept.
    let lowest = bucket_value(sketch.positive.buckets[0].0);
    assert_eq!(sketch.quantile(0.0), Some(lowest));
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
    assert_eq!(serde_json::to_string(&one).unwrap(), r#"{"pos":[[231,1]]}"#);
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

// ---- Distinct

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

// ---- TopK

/// The exact ranking: count descending, then value ascending.
fn exact_top(counts: &HashMap<String, u64>, k: usize) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = counts.iter().map(|(v, &c)| (v.clone(), c)).collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[test]
fn top_is_exact_below_the_bound() {
    let mut rng = SplitMix(8);
    let mut sketch = TopK::default();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for _ in 0..50_000 {
        let value = format!("v{}", rng.next() % 3000);
        let n = rng.next() % 5;
        sketch.add(&value, n);
        if n > 0 {
            *counts.entry(value).or_default() += n;
        }
    }
    assert!(sketch.is_exact());
    assert_eq!(sketch.untracked_bound(), 0);
    assert_eq!(sketch.top(usize::MAX), exact_top(&counts, usize::MAX));
    assert_eq!(sketch.top(10), exact_top(&counts, 10));
    assert!(sketch.top_with_error(100).iter().all(|e| e.2 == 0));
}

/// A Zipf-like stream (weights 1 / rank^1.1) over `distinct` values.
fn zipf_stream(distinct: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut cumulative = Vec::with_capacity(distinct);
    let mut total = 0.0;
    for rank in 1..=distinct {
        total += (rank as f64).powf(-1.1);
        cumulative.push(total);
    }
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|_| {
            let target = rng.unit() * total;
            cumulative
                .partition_point(|&c| c <= target)
                .min(distinct - 1)
        })
        .collect()
}

/// The true top 10, in order, each count an upper bound within its
/// error, every error within N / TOP_EXACT.
fn assert_top_ten(sketch: &TopK, counts: &HashMap<String, u64>, total: u64) {
    let bound = sketch.untracked_bound();
    assert!(
        bound > 0 && bound <= total / TOP_EXACT as u64,
        "bound {bound}"
    );
    let expected = exact_top(counts, 10);
    let reported = sketch.top_with_error(10);
    let names: Vec<&str> = reported.iter().map(|e| e.0.as_str()).collect();
    let expected_names: Vec<&str> = expected.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, expected_names);
    for (value, count, error) in reported {
        let truth = counts[&value];
        assert!(
            count >= truth && count - error <= truth && error <= bound,
            "{value}: reported {count} (error {error}), true {truth}"
        );
    }
    // Anything not listed occurred at most `bound` times.
    for (value, &truth) in counts {
        if !sketch.counters.contains_key(value.as_str()) {
            assert!(truth <= bound, "{value}: {truth} over {bound}");
        }
    }
}

#[test]
fn top_of_a_zipf_stream() {
    let names: Vec<String> = (0..100_000).map(|i| format!("value-{i}")).collect();
    let stream = zipf_stream(names.len(), 500_000, 9);
    let mut sketch = TopK::default();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for &i in &stream {
        sketch.add(&names[i], 1);
        *counts.entry(names[i].clone()).or_default() += 1;
    }
    assert!(!sketch.is_exact());
    assert_eq!(sketch.counters.len(), TOP_EXACT);
    assert_top_ten(&sketch, &counts, stream.len() as u64);
}

#[test]
fn top_merge_of_two_summaries() {
    let names: Vec<String> = (0..100_000).map(|i| format!("value-{i}")).collect();
    let stream = zipf_stream(names.len(), 400_000, 10);
    let mut halves = [TopK::default(), TopK::default()];
    let mut counts: HashMap<String, u64> = HashMap::new();
    for (at, &i) in stream.iter().enumerate() {
        halves[at % 2].add(&names[i], 1);
        *counts.entry(names[i].clone()).or_default() += 1;
    }
    let [mut merged, other] = halves;
    merged.merge(&other);
    assert_eq!(merged.counters.len(), TOP_EXACT);
    assert_top_ten(&merged, &counts, stream.len() as u64);

    // Adds after a merge keep the bounds.
    for &i in &stream[..50_000] {
        merged.add(&names[i], 1);
        *counts.entry(names[i].clone()).or_default() += 1;
    }
    assert_top_ten(&merged, &counts, stream.len() as u64 + 50_000);
}

#[test]
fn top_merge_of_exact_sketches() {
    let mut rng = SplitMix(11);
    let mut a = TopK::default();
    let mut b = TopK::default();
    let mut whole = TopK::default();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for _ in 0..20_000 {
        let value = format!("v{}", rng.next() % 3000);
        let target = if rng.next() % 2 == 0 { &mut a } else { &mut b };
        target.add(&value, 1);
        whole.add(&value, 1);
        *counts.entry(value).or_default() += 1;
    }
    let mut merged = a.clone();
    merged.merge(&b);
    assert!(merged.is_exact());
    assert_eq!(merged, whole);

    // Past the bound: exact counts, the greatest kept.
    let mut c = TopK::default();
    for i in 0..3000 {
        c.add(&format!("w{i}"), 1 + i % 7);
    }
    merged.merge(&c);
    assert!(!merged.is_exact());
    assert_eq!(merged.counters.len(), TOP_EXACT);
    assert_eq!(merged.top(10), exact_top(&counts, 10));
}

#[test]
fn top_merge_of_exact_into_summary() {
    let names: Vec<String> = (0..20_000).map(|i| format!("n{i}")).collect();
    let stream = zipf_stream(names.len(), 100_000, 12);
    let mut summary = TopK::default();
    let mut exact = TopK::default();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for (at, &i) in stream.iter().enumerate() {
        let name = &names[i];
        if at % 10 == 0 {
            exact.add(name, 1);
        } else {
            summary.add(name, 1);
        }
        *counts.entry(name.clone()).or_default() += 1;
    }
    assert!(exact.is_exact() && !summary.is_exact());
    let mut into_exact = exact.clone();
    into_exact.merge(&summary);
    assert_top_ten(&into_exact, &counts, stream.len() as u64);
    let mut into_summary = summary;
    into_summary.merge(&exact);
    assert_top_ten(&into_summary, &counts, stream.len() as u64);
}

#[test]
fn top_eviction_does_not_depend_on_history() {
    // A summary read back from its checkpoint (no eviction cache) and the
    // original go on identically: ties for the least count are evicted
    // least value first, not in hash order.
    let names: Vec<String> = (0..20_000).map(|i| format!("n{i}")).collect();
    let stream = zipf_stream(names.len(), 60_000, 13);
    let (before, after) = stream.split_at(30_000);
    let mut original = TopK::default();
    for &i in before {
        original.add(&names[i], 1);
    }
    let json = serde_json::to_string(&original).unwrap();
    let mut restored: TopK = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, original);
    for &i in after {
        original.add(&names[i], 1);
        restored.add(&names[i], 1);
    }
    assert_eq!(restored, original);
}

#[test]
fn top_serde_round_trip() {
    let mut exact = TopK::default();
    exact.add("b", 2);
    exact.add("a", 1);
    exact.add("a", 0);
    let json = serde_json::to_string(&exact).unwrap();
    assert_eq!(json, r#"{"exact":[["a",1],["b",2]]}"#);
    assert_eq!(serde_json::from_str::<TopK>(&json).unwrap(), exact);
    assert_eq!(
        serde_json::to_string(&TopK::default()).unwrap(),
        r#"{"exact":[]}"#
    );

    let mut summary = TopK::default();
    for i in 0..10_000u64 {
        summary.add(&format!("x{}", i % 5000), 1 + i % 3);
    }
    let json = serde_json::to_string(&summary).unwrap();
    assert!(json.starts_with(r#"{"space_saving":[["#));
    assert_eq!(serde_json::from_str::<TopK>(&json).unwrap(), summary);
}

#[test]
fn top_refuses_malformed_checkpoints() {
    for json in [
        r#"{"exact":[["a",0]]}"#,
        r#"{"exact":[["a",1],["a",2]]}"#,
        r#"{"space_saving":[["a",3,1]]}"#,
        r#"{"exact":[["a",1,0]]}"#,
    ] {
        assert!(serde_json::from_str::<TopK>(json).is_err(), "{json}");
    }
}

// ---- Sizes

#[test]
fn small_sketches_are_small_in_json() {
    let sizes = |json: String| json.len();
    assert!(sizes(serde_json::to_string(&Quantiles::default()).unwrap()) <= 2);
    assert!(sizes(serde_json::to_string(&sketch_of(&[1.5])).unwrap()) <= 20);
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
