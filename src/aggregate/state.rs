//! Per-partition aggregates: tumbling or hopping event-time windows,
//! session windows per key, or running totals; the partition's watermark
//! and late records; and their checkpoint form.
//!
//! A session of a key holds records no more than the gap apart: a record
//! within the gap of one or more sessions of its key (at either end,
//! inclusive) joins them into one. A session's row shows the time of its
//! first and last record. It closes when the gap after its last record
//! has passed the close boundary (the watermark less the grace period),
//! so no record that is not late can join it any more: a record is late
//! for sessions when its own time is before that boundary.
//!
//! Its checkpoint form, whole or as a delta on the last checkpoint, is
//! `checkpoint`'s.

use std::collections::{BTreeMap, HashMap};

use super::acc::{AggPlan, Aggs, Inputs};

mod checkpoint;

pub use checkpoint::CountsFormatError;
use checkpoint::Saved;

/// The window start under which running totals are kept.
pub const TOTALS: i64 = i64::MIN;

/// How records are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windowing {
    /// Window length in ms, aligned to the epoch; `None` for running
    /// totals.
    pub size_ms: Option<i64>,
    /// Hopping windows: a window starts every `hop_ms` (a divisor of the
    /// length or not), so a record is in every window that starts in
    /// the length before it. `None`: tumbling, one window per record.
    pub hop_ms: Option<i64>,
    /// How far behind the watermark a window stays open, in ms.
    pub grace_ms: i64,
    /// Session windows per key with this gap in ms (`size_ms` is then
    /// `None`).
    pub session_gap_ms: Option<i64>,
}

impl Windowing {
    /// Tumbling windows of `size_ms` (running totals with `None`).
    pub fn tumbling(size_ms: Option<i64>, grace_ms: i64) -> Self {
        Self {
            size_ms,
            hop_ms: None,
            grace_ms,
            session_gap_ms: None,
        }
    }

    /// Whether windows close (time or session windows, not totals).
    pub fn closes(&self) -> bool {
        self.size_ms.is_some() || self.session_gap_ms.is_some()
    }

    /// The start of the latest window holding `timestamp_ms` ([`TOTALS`]
    /// without windows).
    pub fn start(&self, timestamp_ms: i64) -> i64 {
        match (self.size_ms, self.hop_ms) {
            (Some(_), Some(hop)) => timestamp_ms.div_euclid(hop) * hop,
            (Some(size), None) => timestamp_ms.div_euclid(size) * size,
            (None, _) => TOTALS,
        }
    }

    /// The starts of every window holding `timestamp_ms`, earliest first:
    /// one for tumbling windows and totals, up to length / hop (rounded
    /// up) for hopping ones.
    pub fn starts(&self, timestamp_ms: i64) -> impl Iterator<Item = i64> + use<> {
        let latest = self.start(timestamp_ms);
        let (first, hop) = match (self.size_ms, self.hop_ms) {
            (Some(size), Some(hop)) => {
                // Windows starting after `timestamp_ms - size` hold it.
                let back = (size - 1).div_euclid(hop);
                let first = latest.saturating_sub(back.saturating_mul(hop));
                if first.saturating_add(size) <= timestamp_ms {
                    (first.saturating_add(hop), hop)
                } else {
                    (first, hop)
                }
            }
            // Tumbling windows and totals: the one start.
            _ => (latest, 1),
        };
        (0..)
            .map(move |i| first.saturating_add(i * hop))
            .take_while(move |&s| s <= latest)
    }

    /// The end (exclusive) of the window starting at `start`; `None` for
    /// totals.
    pub fn end(&self, start: i64) -> Option<i64> {
        self.size_ms.map(|size| start.saturating_add(size))
    }
}

/// A grouping key; `None` is the bucket of records whose key could not be
/// read ("unparsed").
pub type Key = Option<Box<str>>;

/// One key's aggregates in one window.
#[derive(Debug, Clone)]
struct Cell {
    aggs: Aggs,
    /// Changed since the last emission; not saved.
    changed: bool,
    /// Changed since the last checkpoint: in the next delta.
    unsaved: bool,
}

/// Equal when the aggregates are (what is emitted or saved since is
/// bookkeeping).
impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        self.aggs == other.aggs
    }
}

/// One window's aggregates per key in one partition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowCounts {
    keys: HashMap<Box<str>, Cell>,
    unparsed: Option<Cell>,
}

impl WindowCounts {
    fn add(&mut self, plan: &AggPlan, key: Option<&str>, inputs: &Inputs<'_>) {
        let cell = match key {
            None => self.unparsed.get_or_insert_with(|| Cell {
                aggs: plan.empty(),
                changed: false,
                unsaved: false,
            }),
            Some(k) => match self.keys.get_mut(k) {
                Some(c) => c,
                None => self.keys.entry(k.into()).or_insert_with(|| Cell {
                    aggs: plan.empty(),
                    changed: false,
                    unsaved: false,
                }),
            },
        };
        cell.aggs.add(inputs);
        cell.changed = true;
        cell.unsaved = true;
    }

    /// The aggregates of `key`.
    pub fn get(&self, key: Option<&str>) -> Option<&Aggs> {
        match key {
            None => self.unparsed.as_ref().map(|c| &c.aggs),
            Some(k) => self.keys.get(k).map(|c| &c.aggs),
        }
    }

    /// The records counted under `key`.
    pub fn count(&self, key: Option<&str>) -> u64 {
        self.get(key).map_or(0, |a| a.records)
    }

    /// Every key with its aggregates; the unparsed bucket when not empty.
    pub fn iter(&self) -> impl Iterator<Item = (Option<&str>, &Aggs)> {
        let unparsed = self.unparsed.as_ref().map(|c| (None, &c.aggs));
        self.keys
            .iter()
            .map(|(k, c)| (Some(&**k), &c.aggs))
            .chain(unparsed)
    }

    /// Distinct keys (the unparsed bucket included).
    pub fn len(&self) -> usize {
        self.keys.len() + usize::from(self.unparsed.is_some())
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
        if let Some(c) = &mut self.unparsed {
            if std::mem::take(&mut c.changed) {
                into.push((start, None));
            }
        }
    }
}

/// Takes a record at `ts` into `sessions` (disjoint, by start): every
/// session within `gap` of it joins it into one.
fn join_session(
    sessions: &mut Vec<Session>,
    plan: &AggPlan,
    gap: i64,
    ts: i64,
    inputs: &Inputs<'_>,
) {
    let meets = |s: &Session| s.start.saturating_sub(gap) <= ts && ts <= s.end.saturating_add(gap);
    let first = sessions.partition_point(|s| s.end.saturating_add(gap) < ts);
    let last = first + sessions[first..].iter().take_while(|s| meets(s)).count();
    let mut joined = Session {
        start: ts,
        end: ts,
        aggs: plan.empty(),
    };
    for s in sessions.drain(first..last) {
        joined.start = joined.start.min(s.start);
        joined.end = joined.end.max(s.end);
        joined.aggs.merge(&s.aggs);
    }
    joined.aggs.add(inputs);
    sessions.insert(first, joined);
}

/// What [`PartitionCounts::apply`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Taken into every window that holds it.
    Counted,
    /// One or more of its windows was already closed: counted as late,
    /// and taken into the others (none for a tumbling window).
    Late,
}

/// One session of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Its first record's time.
    pub start: i64,
    /// Its last record's time.
    pub end: i64,
    /// Its aggregates.
    pub aggs: Aggs,
}

/// The aggregates of one input partition.
#[derive(Debug, Clone, Default)]
pub struct PartitionCounts {
    /// Per window start ([`TOTALS`] without windows).
    windows: BTreeMap<i64, WindowCounts>,
    /// Per key, its open sessions, disjoint and by start.
    sessions: HashMap<Key, Vec<Session>>,
    /// The largest record timestamp seen.
    watermark: Option<i64>,
    /// Windows ending at or before this were emitted as closed, for every
    /// partition: later records for them are late.
    closed_before: Option<i64>,
    /// Records that missed a window closed when they arrived.
    late: u64,
    /// What the checkpoints of this state hold, when one was committed
    /// (or restored) in this run: the next checkpoint may be a delta.
    saved: Option<Saved>,
    /// Windows dropped since the last checkpoint, for the next delta.
    dropped: Vec<i64>,
    /// Keys whose sessions changed since the last checkpoint.
    unsaved_sessions: std::collections::HashSet<Key>,
}

/// Equal when the windows, sessions, watermark, closed boundary and late
/// count are (what is saved since is bookkeeping).
impl PartialEq for PartitionCounts {
    fn eq(&self, other: &Self) -> bool {
        self.windows == other.windows
            && self.sessions == other.sessions
            && self.watermark == other.watermark
            && self.closed_before == other.closed_before
            && self.late == other.late
    }
}

impl PartitionCounts {
    /// Takes one record with timestamp `timestamp_ms` under `key`, its
    /// fields reading `inputs`, into every open window holding it.
    pub fn apply(
        &mut self,
        windowing: &Windowing,
        plan: &AggPlan,
        timestamp_ms: i64,
        key: Option<&str>,
        inputs: &Inputs<'_>,
    ) -> Applied {
        let closed_here = self.watermark.map(|w| w.saturating_sub(windowing.grace_ms));
        let closed = closed_here.max(self.closed_before);
        if let Some(gap) = windowing.session_gap_ms {
            if closed.is_some_and(|c| timestamp_ms < c) {
                self.late += 1;
                return Applied::Late;
            }
            self.watermark = Some(self.watermark.map_or(timestamp_ms, |w| w.max(timestamp_ms)));
            let key: Key = key.map(Box::from);
            let sessions = self.sessions.entry(key.clone()).or_default();
            join_session(sessions, plan, gap, timestamp_ms, inputs);
            self.unsaved_sessions.insert(key);
            return Applied::Counted;
        }
        if windowing.size_ms.is_none() {
            self.windows
                .entry(TOTALS)
                .or_default()
                .add(plan, key, inputs);
            return Applied::Counted;
        }
        let mut missed = false;
        let mut taken = false;
        for start in windowing.starts(timestamp_ms) {
            let end = windowing.end(start).unwrap_or(i64::MAX);
            if closed.is_some_and(|c| end <= c) {
                missed = true;
                continue;
            }
            taken = true;
            self.windows
                .entry(start)
                .or_default()
                .add(plan, key, inputs);
        }
        if taken {
            self.watermark = Some(self.watermark.map_or(timestamp_ms, |w| w.max(timestamp_ms)));
        }
        if missed {
            self.late += 1;
            Applied::Late
        } else {
            Applied::Counted
        }
    }

    /// Where this partition lets windows close: windows ending at or
    /// before the returned time are final here. `None` when the partition
    /// has seen no record.
    pub fn closable_before(&self, windowing: &Windowing) -> Option<i64> {
        self.watermark.map(|w| w.saturating_sub(windowing.grace_ms))
    }

    /// The largest record timestamp taken, if any.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// The aggregates per window start.
    pub fn windows(&self) -> &BTreeMap<i64, WindowCounts> {
        &self.windows
    }

    /// The records counted under `key` in the window starting at `start`.
    pub fn get(&self, start: i64, key: Option<&str>) -> u64 {
        self.windows.get(&start).map_or(0, |w| w.count(key))
    }

    /// The aggregates of `key` in the window starting at `start`.
    pub fn aggs(&self, start: i64, key: Option<&str>) -> Option<&Aggs> {
        self.windows.get(&start).and_then(|w| w.get(key))
    }

    /// Records counted as late so far.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// The open sessions per key.
    pub fn sessions(&self) -> &HashMap<Key, Vec<Session>> {
        &self.sessions
    }

    /// Drops the sessions of `key` that start and end within `from..=to`
    /// (emitted as closed).
    pub fn close_sessions(&mut self, key: &Key, from: i64, to: i64) {
        if let Some(sessions) = self.sessions.get_mut(key) {
            sessions.retain(|s| s.start < from || s.end > to);
            if sessions.is_empty() {
                self.sessions.remove(key);
            }
            self.unsaved_sessions.insert(key.clone());
        }
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
        let dropped = &mut self.dropped;
        self.windows.retain(|&start, _| {
            let keep = windowing.end(start).is_none_or(|end| end > boundary);
            if !keep {
                dropped.push(start);
            }
            keep
        });
        changed || self.windows.len() != before
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
