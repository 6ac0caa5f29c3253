//! Per-partition counts: tumbling event-time windows or running totals,
//! the partition's watermark and late records, and their checkpoint form.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The window start under which running totals are kept.
pub const TOTALS: i64 = i64::MIN;

/// How records are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windowing {
    /// Tumbling window length in ms, aligned to the epoch; `None` for
    /// running totals.
    pub size_ms: Option<i64>,
    /// How far behind the watermark a window stays open, in ms.
    pub grace_ms: i64,
}

impl Windowing {
    /// The start of the window holding `timestamp_ms` ([`TOTALS`] without
    /// windows).
    pub fn start(&self, timestamp_ms: i64) -> i64 {
        match self.size_ms {
            Some(size) => timestamp_ms.div_euclid(size) * size,
            None => TOTALS,
        }
    }

    /// The end (exclusive) of the window starting at `start`; `None` for
    /// totals.
    pub fn end(&self, start: i64) -> Option<i64> {
        self.size_ms.map(|size| start.saturating_add(size))
    }
}

/// A counting key; `None` is the bucket of records the extractor could not
/// read ("unparsed").
pub type Key = Option<Box<str>>;

/// One window's counts in one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowCounts {
    keys: HashMap<Box<str>, Count>,
    unparsed: Count,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Count {
    n: u64,
    /// Changed since the last emission; not saved.
    changed: bool,
}

impl WindowCounts {
    fn add(&mut self, key: Option<&str>) {
        let count = match key {
            None => &mut self.unparsed,
            Some(k) => match self.keys.get_mut(k) {
                Some(c) => c,
                None => self.keys.entry(k.into()).or_default(),
            },
        };
        count.n += 1;
        count.changed = true;
    }

    /// The count of `key`.
    pub fn get(&self, key: Option<&str>) -> u64 {
        match key {
            None => self.unparsed.n,
            Some(k) => self.keys.get(k).map_or(0, |c| c.n),
        }
    }

    /// Every key with its count; the unparsed bucket when not empty.
    pub fn iter(&self) -> impl Iterator<Item = (Option<&str>, u64)> {
        let unparsed = (self.unparsed.n > 0).then_some((None, self.unparsed.n));
        self.keys
            .iter()
            .map(|(k, c)| (Some(&**k), c.n))
            .chain(unparsed)
    }

    /// Distinct keys (the unparsed bucket included).
    pub fn len(&self) -> usize {
        self.keys.len() + usize::from(self.unparsed.n > 0)
    }

    /// No key at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take_changed(&mut self, start: i64, into: &mut Vec<(i64, Key)>) {
        for (k, c) in &mut self.keys {
            if std::mem::take(&mut c.changed) {
                into.push((start, Some(k.clone())));
            }
        }
        if std::mem::take(&mut self.unparsed.changed) {
            into.push((start, None));
        }
    }
}

/// What [`PartitionCounts::apply`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Counted.
    Counted,
    /// Its window was already closed: counted as late only.
    Late,
}

/// The counts of one input partition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionCounts {
    /// Per window start ([`TOTALS`] without windows).
    windows: BTreeMap<i64, WindowCounts>,
    /// The largest record timestamp seen.
    watermark: Option<i64>,
    /// Windows ending at or before this were emitted as closed, for every
    /// partition: later records for them are late.
    closed_before: Option<i64>,
    /// Records whose window was closed when they arrived.
    late: u64,
}

impl PartitionCounts {
    /// Counts one record with timestamp `timestamp_ms` under `key`.
    pub fn apply(
        &mut self,
        windowing: &Windowing,
        timestamp_ms: i64,
        key: Option<&str>,
    ) -> Applied {
        let start = windowing.start(timestamp_ms);
        if let Some(end) = windowing.end(start) {
            let closed_here = self
                .watermark
                .is_some_and(|w| end <= w.saturating_sub(windowing.grace_ms));
            let closed_everywhere = self.closed_before.is_some_and(|c| end <= c);
            if closed_here || closed_everywhere {
                self.late += 1;
                return Applied::Late;
            }
            self.watermark = Some(self.watermark.map_or(timestamp_ms, |w| w.max(timestamp_ms)));
        }
        self.windows.entry(start).or_default().add(key);
        Applied::Counted
    }

    /// Where this partition lets windows close: windows ending at or
    /// before the returned time are final here. `None` when the partition
    /// has seen no record.
    pub fn closable_before(&self, windowing: &Windowing) -> Option<i64> {
        self.watermark.map(|w| w.saturating_sub(windowing.grace_ms))
    }

    /// The counts per window start.
    pub fn windows(&self) -> &BTreeMap<i64, WindowCounts> {
        &self.windows
    }

    /// The count of `key` in the window starting at `start`.
    pub fn get(&self, start: i64, key: Option<&str>) -> u64 {
        self.windows.get(&start).map_or(0, |w| w.get(key))
    }

    /// Records counted as late so far.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Adds the (window, key) pairs changed since the last call to `into`.
    pub fn take_changed(&mut self, into: &mut Vec<(i64, Key)>) {
        for (&start, counts) in &mut self.windows {
            counts.take_changed(start, into);
        }
    }

    /// Drops the windows ending at or before `boundary` (emitted as
    /// closed); later records for them are late. True when anything
    /// changed.
    pub fn close_before(&mut self, windowing: &Windowing, boundary: i64) -> bool {
        let mut changed = false;
        if self.closed_before.is_none_or(|c| c < boundary) {
            self.closed_before = Some(boundary);
            changed = true;
        }
        let before = self.windows.len();
        self.windows
            .retain(|&start, _| windowing.end(start).is_none_or(|end| end > boundary));
        changed || self.windows.len() != before
    }

    /// The checkpoint form: compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let stored = Stored {
            v: STATE_VERSION,
            watermark: self.watermark,
            closed_before: self.closed_before,
            late: self.late,
            windows: self
                .windows
                .iter()
                .map(|(&start, counts)| {
                    let start = (start != TOTALS).then_some(start);
                    let counts = counts
                        .iter()
                        .map(|(k, n)| (k.map(Cow::Borrowed), n))
                        .collect();
                    (start, counts)
                })
                .collect(),
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// Reads the checkpoint form.
    ///
    /// # Errors
    ///
    /// What is wrong with it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CountsFormatError> {
        let stored: Stored<'_> =
            serde_json::from_slice(bytes).map_err(CountsFormatError::Unreadable)?;
        if stored.v != STATE_VERSION {
            return Err(CountsFormatError::Version {
                found: stored.v,
                expected: STATE_VERSION,
            });
        }
        let windows = stored
            .windows
            .into_iter()
            .map(|(start, counts)| {
                let mut window = WindowCounts::default();
                for (key, n) in counts {
                    let count = Count { n, changed: false };
                    match key {
                        None => window.unparsed = count,
                        Some(k) => {
                            window.keys.insert(Box::from(&*k), count);
                        }
                    }
                }
                (start.unwrap_or(TOTALS), window)
            })
            .collect();
        Ok(Self {
            windows,
            watermark: stored.watermark,
            closed_before: stored.closed_before,
            late: stored.late,
        })
    }
}

const STATE_VERSION: u8 = 1;

/// Counts in a checkpoint that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CountsFormatError {
    /// Not the checkpoint form.
    #[error("unreadable count state")]
    Unreadable(#[source] serde_json::Error),
    /// Written by another version of weir.
    #[error("count state version {found} is not {expected}")]
    Version {
        /// The version it was written in.
        found: u8,
        /// The version this weir writes.
        expected: u8,
    },
}

/// A key (null: unparsed) and its count.
type StoredCount<'a> = (Option<Cow<'a, str>>, u64);

/// The JSON form of [`PartitionCounts`]: windows as `[start or null,
/// [[key or null, count], …]]`.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    v: u8,
    watermark: Option<i64>,
    closed_before: Option<i64>,
    late: u64,
    #[serde(borrow)]
    windows: Vec<(Option<i64>, Vec<StoredCount<'a>>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn windowed(grace_ms: i64) -> Windowing {
        Windowing {
            size_ms: Some(MINUTE),
            grace_ms,
        }
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let w = windowed(0);
        assert_eq!(w.start(0), 0);
        assert_eq!(w.start(MINUTE - 1), 0);
        assert_eq!(w.start(MINUTE), MINUTE);
        assert_eq!(w.start(-1), -MINUTE);
        assert_eq!(w.end(MINUTE), Some(2 * MINUTE));
        let totals = Windowing {
            size_ms: None,
            grace_ms: 0,
        };
        assert_eq!(totals.start(123), TOTALS);
        assert_eq!(totals.end(TOTALS), None);
    }

    #[test]
    fn records_behind_the_watermark_past_grace_are_late() {
        let w = windowed(10_000);
        let mut c = PartitionCounts::default();
        assert_eq!(c.apply(&w, 5_000, Some("a")), Applied::Counted);
        assert_eq!(c.apply(&w, MINUTE + 5_000, Some("a")), Applied::Counted);
        // Watermark 65 s minus 10 s grace = 55 s: window [0, 60 s) is open.
        assert_eq!(c.apply(&w, 59_000, Some("b")), Applied::Counted);
        assert_eq!(c.apply(&w, MINUTE + 10_000, None), Applied::Counted);
        // Now 70 s - 10 s = 60 s: window [0, 60 s) has closed.
        assert_eq!(c.apply(&w, 1_000, Some("a")), Applied::Late);
        assert_eq!(c.late(), 1);
        assert_eq!(c.get(0, Some("a")), 1);
        assert_eq!(c.get(0, Some("b")), 1);
        assert_eq!(c.get(MINUTE, None), 1);
        let mut changed = Vec::new();
        c.take_changed(&mut changed);
        changed.sort();
        assert_eq!(
            changed,
            [
                (0, Some("a".into())),
                (0, Some("b".into())),
                (MINUTE, None),
                (MINUTE, Some("a".into()))
            ]
        );
        changed.clear();
        c.take_changed(&mut changed);
        assert!(changed.is_empty());
        assert_eq!(c.closable_before(&w), Some(MINUTE));
    }

    #[test]
    fn closing_drops_windows_and_makes_their_records_late() {
        let w = windowed(0);
        let mut c = PartitionCounts::default();
        c.apply(&w, 1, Some("a"));
        c.apply(&w, MINUTE + 1, Some("a"));
        assert!(c.close_before(&w, MINUTE));
        assert!(!c.close_before(&w, MINUTE));
        assert_eq!(c.windows().keys().copied().collect::<Vec<_>>(), [MINUTE]);
        let mut empty = PartitionCounts::default();
        empty.close_before(&w, MINUTE);
        // A partition without records of its own follows the others.
        assert_eq!(empty.apply(&w, 30_000, Some("x")), Applied::Late);
        assert_eq!(empty.apply(&w, MINUTE, Some("x")), Applied::Counted);
    }

    #[test]
    fn totals_never_close() {
        let w = Windowing {
            size_ms: None,
            grace_ms: 0,
        };
        let mut c = PartitionCounts::default();
        c.apply(&w, 100, Some("a"));
        c.apply(&w, 1, Some("a"));
        assert_eq!(c.get(TOTALS, Some("a")), 2);
        assert_eq!(c.late(), 0);
    }

    #[test]
    fn the_checkpoint_form_round_trips() {
        let w = windowed(0);
        let mut c = PartitionCounts::default();
        c.apply(&w, 1, Some("a \"quoted\" ü"));
        c.apply(&w, 2, None);
        c.apply(&w, MINUTE * 3, Some("b"));
        c.close_before(&w, -5);
        c.take_changed(&mut Vec::new());
        let json = c.to_json();
        let back = PartitionCounts::from_json(&json).unwrap();
        assert_eq!(back, c);
        let totals = Windowing {
            size_ms: None,
            grace_ms: 0,
        };
        let mut t = PartitionCounts::default();
        t.apply(&totals, 1, Some("k"));
        t.take_changed(&mut Vec::new());
        assert_eq!(PartitionCounts::from_json(&t.to_json()).unwrap(), t);
        assert!(PartitionCounts::from_json(b"{}").is_err());
        assert!(
            PartitionCounts::from_json(
                br#"{"v":9,"watermark":null,"closed_before":null,"late":0,"windows":[]}"#
            )
            .is_err()
        );
    }
}
