//! [`TopK`]: exact counts up to [`TOP_EXACT`] distinct values, then a
//! Space-Saving summary, and its checkpoint form.

use std::collections::HashMap;

use serde::{Deserialize, Serialize, Serializer};

/// Values [`TopK`] counts exactly, and the counters of its Space-Saving
/// summary beyond that.
pub const TOP_EXACT: usize = 4096;

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
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::aggregate::sketch::test_support::SplitMix;

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
}
