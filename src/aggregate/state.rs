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

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::acc::{AggPlan, Aggs, Inputs};

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

/// The committed chain of a partition's state: its snapshot's size and
/// the deltas written on it since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Saved {
    snapshot_bytes: usize,
    delta_bytes: usize,
    deltas: usize,
}

/// Deltas on one snapshot at most; then a new snapshot.
const MAX_DELTAS: usize = 64;

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

    /// The state to checkpoint, as JSON: a delta (what changed since the
    /// last checkpoint: changed keys, dropped windows, sessions of changed
    /// keys) when a checkpoint was committed or restored in this run and
    /// the deltas since the last snapshot stay smaller than it, else the
    /// whole state (a snapshot). Returns it and whether it is a delta.
    /// Call [`saved`](Self::saved) once it is committed, or
    /// [`unsaved`](Self::unsaved) when it was not.
    pub fn checkpoint_json(&mut self, plan: &AggPlan) -> (Vec<u8>, bool) {
        if let Some(saved) = self.saved {
            let delta = self.delta_json(plan);
            let within = saved.delta_bytes + delta.len() <= saved.snapshot_bytes;
            if within && saved.deltas < MAX_DELTAS {
                return (delta, true);
            }
        }
        (self.to_json(plan), false)
    }

    /// The checkpoint from [`checkpoint_json`](Self::checkpoint_json),
    /// `bytes` long, was committed: what it holds is saved.
    pub fn saved(&mut self, bytes: usize, delta: bool) {
        self.saved = Some(match (self.saved, delta) {
            (Some(s), true) => Saved {
                delta_bytes: s.delta_bytes + bytes,
                deltas: s.deltas + 1,
                ..s
            },
            _ => Saved {
                snapshot_bytes: bytes,
                delta_bytes: 0,
                deltas: 0,
            },
        });
        self.dropped.clear();
        self.unsaved_sessions.clear();
        for window in self.windows.values_mut() {
            for cell in window.keys.values_mut().chain(window.unparsed.as_mut()) {
                cell.unsaved = false;
            }
        }
    }

    /// Bytes of this state in the offsets store: the last snapshot and
    /// the deltas committed since; 0 before the first checkpoint.
    pub fn stored_bytes(&self) -> usize {
        self.saved.map_or(0, |s| s.snapshot_bytes + s.delta_bytes)
    }

    /// The checkpoint was not committed: the next one is a snapshot.
    pub fn unsaved(&mut self) {
        self.saved = None;
    }

    /// The changes since the last checkpoint, in the checkpoint form with
    /// `"delta": true`.
    fn delta_json(&self, plan: &AggPlan) -> Vec<u8> {
        self.write_json(plan, true)
    }

    /// The checkpoint form (whole, or with `delta` what changed), written
    /// straight from the state: no intermediate JSON tree, which for a
    /// million keys would take several times the state's memory.
    fn write_json(&self, plan: &AggPlan, delta: bool) -> Vec<u8> {
        let stored = Stored {
            v: STATE_VERSION,
            delta,
            dropped: if delta {
                self.dropped.clone()
            } else {
                Vec::new()
            },
            aggs: (!plan.is_count()).then(|| plan.names()),
            watermark: self.watermark,
            closed_before: self.closed_before,
            late: self.late,
            windows: WindowsOut {
                state: self,
                plan,
                delta,
            },
            sessions: SessionsOut {
                state: self,
                plan,
                delta,
            },
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// Reads a saved state: its snapshot, then each delta on it in order.
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json), for any piece.
    pub fn from_pieces(pieces: &[Vec<u8>], plan: &AggPlan) -> Result<Self, CountsFormatError> {
        let Some((snapshot, deltas)) = pieces.split_first() else {
            return Err(CountsFormatError::Entry);
        };
        let mut state = Self::from_json(snapshot, plan)?;
        for delta in deltas {
            let delta = Self::from_json(delta, plan)?;
            state.apply_delta(delta);
        }
        state.saved = Some(Saved {
            snapshot_bytes: snapshot.len(),
            delta_bytes: deltas.iter().map(Vec::len).sum(),
            deltas: deltas.len(),
        });
        Ok(state)
    }

    /// Takes a delta read as a state (its `dropped` windows in
    /// [`Self::dropped`]): its entries replace this state's, its sessions
    /// replace those of their keys, its watermark, closed boundary and
    /// late count replace this state's.
    fn apply_delta(&mut self, delta: Self) {
        for start in &delta.dropped {
            self.windows.remove(start);
        }
        for (start, window) in delta.windows {
            let into = self.windows.entry(start).or_default();
            into.keys.extend(window.keys);
            if window.unparsed.is_some() {
                into.unparsed = window.unparsed;
            }
        }
        for key in delta.unsaved_sessions {
            match delta.sessions.get(&key) {
                Some(list) if !list.is_empty() => {
                    self.sessions.insert(key, list.clone());
                }
                _ => {
                    self.sessions.remove(&key);
                }
            }
        }
        self.watermark = delta.watermark;
        self.closed_before = delta.closed_before;
        self.late = delta.late;
    }

    /// The checkpoint form: compact JSON. A key's entry is `[key,
    /// records]` when `count` is the only aggregate (as `weir count` has
    /// always saved it), else `[key, records, [[state, unparsed], …]]`.
    pub fn to_json(&self, plan: &AggPlan) -> Vec<u8> {
        self.write_json(plan, false)
    }

    /// Reads the checkpoint form, for the aggregates of `plan`.
    ///
    /// # Errors
    ///
    /// What is wrong with it: unreadable, another version, or saved for
    /// other aggregates.
    pub fn from_json(bytes: &[u8], plan: &AggPlan) -> Result<Self, CountsFormatError> {
        let stored: StoredIn =
            serde_json::from_slice(bytes).map_err(CountsFormatError::Unreadable)?;
        // Version 1 is `weir count`'s own: counts only.
        if !(1..=STATE_VERSION).contains(&stored.v) {
            return Err(CountsFormatError::Version {
                found: stored.v,
                expected: STATE_VERSION,
            });
        }
        let saved_for = stored.aggs.unwrap_or_else(|| vec!["count".to_owned()]);
        if saved_for != plan.names() {
            return Err(CountsFormatError::OtherAggregates {
                saved: saved_for.join(", "),
                wanted: plan.names().join(", "),
            });
        }
        let mut windows = BTreeMap::new();
        for (start, keys) in stored.windows {
            let mut window = WindowCounts::default();
            for entry in keys {
                let ((key, _), aggs): ((Option<String>, u64), _) = read_entry(entry, plan)?;
                let cell = Cell {
                    aggs,
                    changed: false,
                    unsaved: false,
                };
                match key {
                    None => window.unparsed = Some(cell),
                    Some(k) => {
                        window.keys.insert(k.into_boxed_str(), cell);
                    }
                }
            }
            windows.insert(start.unwrap_or(TOTALS), window);
        }
        let mut sessions = HashMap::new();
        let mut listed = std::collections::HashSet::new();
        for (key, saved) in stored.sessions {
            let list = saved
                .into_iter()
                .map(|entry| {
                    let ((start, end, _), aggs): ((i64, i64, u64), _) = read_entry(entry, plan)?;
                    Ok(Session { start, end, aggs })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let key: Key = key.map(String::into_boxed_str);
            if stored.delta {
                listed.insert(key.clone());
            }
            sessions.insert(key, list);
        }
        Ok(Self {
            windows,
            sessions,
            watermark: stored.watermark,
            closed_before: stored.closed_before,
            late: stored.late,
            saved: None,
            // A delta's windows dropped and session keys changed, for
            // `apply_delta`.
            dropped: stored.dropped,
            unsaved_sessions: listed,
        })
    }
}

/// Counted records of a saved entry: its last fixed field.
trait Records {
    fn records(&self) -> u64;
}

impl Records for (Option<String>, u64) {
    fn records(&self) -> u64 {
        self.1
    }
}

impl Records for (i64, i64, u64) {
    fn records(&self) -> u64 {
        self.2
    }
}

/// Reads a saved entry, `[fixed fields…, records]` or `[fixed fields…,
/// records, states]` (states only with aggregates other than `count`):
/// the fixed fields (the records last among them) and the aggregates.
fn read_entry<F>(entry: Value, plan: &AggPlan) -> Result<(F, Aggs), CountsFormatError>
where
    F: serde::de::DeserializeOwned + Records,
{
    let Value::Array(mut parts) = entry else {
        return Err(CountsFormatError::Entry);
    };
    // The states are last, and only there with aggregates besides count.
    let states = if plan.is_count() { None } else { parts.pop() };
    let fixed: F =
        serde_json::from_value(Value::Array(parts)).map_err(|_| CountsFormatError::Entry)?;
    let records = fixed.records();
    let aggs = match states {
        Some(states) => plan
            .load(records, states)
            .map_err(CountsFormatError::Unreadable)?,
        None => {
            let mut aggs = plan.empty();
            aggs.records = records;
            aggs
        }
    };
    Ok((fixed, aggs))
}

const STATE_VERSION: u8 = 2;

/// State in a checkpoint that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CountsFormatError {
    /// Not the checkpoint form.
    #[error("unreadable count state")]
    Unreadable(#[source] serde_json::Error),
    /// A key's entry is not `[key, records(, states)]`.
    #[error("unreadable count state: an entry is not [key, records, states]")]
    Entry,
    /// Written by another version of weir.
    #[error("count state version {found} is not {expected}")]
    Version {
        /// The version it was written in.
        found: u8,
        /// The newest version this weir reads.
        expected: u8,
    },
    /// Saved by a run that computed other aggregates.
    #[error(
        "the group's state holds {saved}, not {wanted}: use another group (or `weir offsets delete`) to compute other aggregates"
    )]
    OtherAggregates {
        /// What the state holds.
        saved: String,
        /// What this run computes.
        wanted: String,
    },
}

/// A key's entry in the checkpoint form: `[key, records]` for `count`
/// alone, else `[key, records, states]`.
struct EntryOut<'a> {
    plan: &'a AggPlan,
    key: Option<&'a str>,
    aggs: &'a Aggs,
}

impl Serialize for EntryOut<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let (key, records) = (self.key, self.aggs.records);
        if self.plan.is_count() {
            (key, records).serialize(out)
        } else {
            (key, records, self.plan.save(self.aggs)).serialize(out)
        }
    }
}

/// A session in the checkpoint form: `[start, end, records(, states)]`.
struct SessionOut<'a> {
    plan: &'a AggPlan,
    session: &'a Session,
}

impl Serialize for SessionOut<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let s = self.session;
        if self.plan.is_count() {
            (s.start, s.end, s.aggs.records).serialize(out)
        } else {
            (s.start, s.end, s.aggs.records, self.plan.save(&s.aggs)).serialize(out)
        }
    }
}

/// A state's windows as saved: every entry, or with `delta` the entries
/// changed since the last checkpoint (windows without any left out).
struct WindowsOut<'a> {
    state: &'a PartitionCounts,
    plan: &'a AggPlan,
    delta: bool,
}

impl Serialize for WindowsOut<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let delta = self.delta;
        let windows = self.state.windows.iter().filter(|(_, w)| {
            !delta
                || w.keys
                    .values()
                    .chain(w.unparsed.as_ref())
                    .any(|c| c.unsaved)
        });
        out.collect_seq(windows.map(|(&start, window)| {
            let entries = window
                .keys
                .iter()
                .map(|(k, c)| (Some(&**k), c))
                .chain(window.unparsed.as_ref().map(|c| (None, c)))
                .filter(move |(_, c)| !delta || c.unsaved)
                .map(|(key, c)| EntryOut {
                    plan: self.plan,
                    key,
                    aggs: &c.aggs,
                });
            ((start != TOTALS).then_some(start), Seq::new(entries))
        }))
    }
}

/// A state's sessions as saved, per key: every key's, or with `delta` the
/// whole list of each key whose sessions changed (empty: none left).
struct SessionsOut<'a> {
    state: &'a PartitionCounts,
    plan: &'a AggPlan,
    delta: bool,
}

impl Serialize for SessionsOut<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let state = self.state;
        let keys: Box<dyn Iterator<Item = &Key>> = if self.delta {
            Box::new(state.unsaved_sessions.iter())
        } else {
            Box::new(state.sessions.keys())
        };
        out.collect_seq(keys.map(|key| {
            let list = state.sessions.get(key).map_or(&[][..], Vec::as_slice);
            let sessions = list.iter().map(|session| SessionOut {
                plan: self.plan,
                session,
            });
            (key.as_deref(), Seq::new(sessions))
        }))
    }
}

/// An iterator written as a JSON array (once: serialising takes it).
struct Seq<I>(std::cell::RefCell<Option<I>>);

impl<I> Seq<I> {
    fn new(items: I) -> Self {
        Self(std::cell::RefCell::new(Some(items)))
    }
}

impl<I> Serialize for Seq<I>
where
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        match self.0.borrow_mut().take() {
            Some(items) => out.collect_seq(items),
            None => out.collect_seq(std::iter::empty::<I::Item>()),
        }
    }
}

/// The JSON form of [`PartitionCounts`]: windows as `[start or null,
/// [entry, …]]`, an entry as in [`PartitionCounts::to_json`]. A delta
/// holds the changed entries, the windows dropped, and the whole session
/// list of each key whose sessions changed (empty: none left). Written
/// straight from the state ([`WindowsOut`], [`SessionsOut`]), read with a
/// JSON value per entry ([`StoredIn`]).
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "W: Serialize, S: Serialize + Emptiable"))]
struct Stored<W, S> {
    v: u8,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    delta: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dropped: Vec<i64>,
    /// The aggregates' names; absent for `count` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aggs: Option<Vec<String>>,
    watermark: Option<i64>,
    closed_before: Option<i64>,
    late: u64,
    windows: W,
    /// Per key, its sessions as `[start, end, records(, states)]`.
    #[serde(default, skip_serializing_if = "Emptiable::is_empty")]
    sessions: S,
}

/// The checkpoint form as read.
type StoredIn = Stored<Vec<(Option<i64>, Vec<Value>)>, Vec<(Option<String>, Vec<Value>)>>;

/// What the checkpoint form leaves out when empty.
trait Emptiable {
    fn is_empty(&self) -> bool;
}

impl<T> Emptiable for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl Emptiable for SessionsOut<'_> {
    fn is_empty(&self) -> bool {
        if self.delta {
            self.state.unsaved_sessions.is_empty()
        } else {
            self.state.sessions.is_empty()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn windowed(grace_ms: i64) -> Windowing {
        Windowing::tumbling(Some(MINUTE), grace_ms)
    }

    fn count() -> AggPlan {
        AggPlan::new(Vec::new())
    }

    /// Applies a record of `count()` (no fields to read).
    fn apply(c: &mut PartitionCounts, w: &Windowing, ts: i64, key: Option<&str>) -> Applied {
        c.apply(w, &count(), ts, key, &[])
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let w = windowed(0);
        assert_eq!(w.start(0), 0);
        assert_eq!(w.start(MINUTE - 1), 0);
        assert_eq!(w.start(MINUTE), MINUTE);
        assert_eq!(w.start(-1), -MINUTE);
        assert_eq!(w.end(MINUTE), Some(2 * MINUTE));
        assert_eq!(w.starts(MINUTE + 5).collect::<Vec<_>>(), [MINUTE]);
        let totals = Windowing::tumbling(None, 0);
        assert_eq!(totals.start(123), TOTALS);
        assert_eq!(totals.end(TOTALS), None);
        assert_eq!(totals.starts(123).collect::<Vec<_>>(), [TOTALS]);
    }

    #[test]
    fn hopping_windows_hold_every_record_of_their_length() {
        // Five minutes every minute: a record is in five windows.
        let w = Windowing {
            size_ms: Some(5 * MINUTE),
            hop_ms: Some(MINUTE),
            grace_ms: 0,
            session_gap_ms: None,
        };
        let starts: Vec<i64> = w.starts(7 * MINUTE + 30_000).collect();
        assert_eq!(starts, [3, 4, 5, 6, 7].map(|m| m * MINUTE));
        // On a boundary: the window ending there does not hold it.
        let starts: Vec<i64> = w.starts(7 * MINUTE).collect();
        assert_eq!(starts, [3, 4, 5, 6, 7].map(|m| m * MINUTE));
        let starts: Vec<i64> = w.starts(-1).collect();
        assert_eq!(starts, [-5, -4, -3, -2, -1].map(|m| m * MINUTE));
        // A hop that does not divide the length: 5 s every 2 s.
        let odd = Windowing {
            size_ms: Some(5_000),
            hop_ms: Some(2_000),
            grace_ms: 0,
            session_gap_ms: None,
        };
        assert_eq!(odd.starts(4_500).collect::<Vec<_>>(), [0, 2_000, 4_000]);
        assert_eq!(odd.starts(5_000).collect::<Vec<_>>(), [2_000, 4_000]);
        // Hop longer than the length: gaps that hold nothing.
        let sparse = Windowing {
            size_ms: Some(1_000),
            hop_ms: Some(3_000),
            grace_ms: 0,
            session_gap_ms: None,
        };
        assert_eq!(sparse.starts(3_500).collect::<Vec<_>>(), [3_000]);
        assert_eq!(sparse.starts(1_500).count(), 0);
        // A record in a closed window and an open one is late once.
        let mut c = PartitionCounts::default();
        apply(&mut c, &w, 10 * MINUTE, Some("a"));
        assert_eq!(apply(&mut c, &w, 6 * MINUTE, Some("a")), Applied::Late);
        assert_eq!(c.late(), 1);
        assert_eq!(c.get(6 * MINUTE, Some("a")), 2);
        assert_eq!(c.get(5 * MINUTE, Some("a")), 0);
    }

    #[test]
    fn records_behind_the_watermark_past_grace_are_late() {
        let w = windowed(10_000);
        let mut c = PartitionCounts::default();
        assert_eq!(apply(&mut c, &w, 5_000, Some("a")), Applied::Counted);
        assert_eq!(
            apply(&mut c, &w, MINUTE + 5_000, Some("a")),
            Applied::Counted
        );
        // Watermark 65 s minus 10 s grace = 55 s: window [0, 60 s) is open.
        assert_eq!(apply(&mut c, &w, 59_000, Some("b")), Applied::Counted);
        assert_eq!(apply(&mut c, &w, MINUTE + 10_000, None), Applied::Counted);
        // Now 70 s - 10 s = 60 s: window [0, 60 s) has closed.
        assert_eq!(apply(&mut c, &w, 1_000, Some("a")), Applied::Late);
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
        apply(&mut c, &w, 1, Some("a"));
        apply(&mut c, &w, MINUTE + 1, Some("a"));
        assert!(c.close_before(&w, MINUTE));
        assert!(!c.close_before(&w, MINUTE));
        assert_eq!(c.windows().keys().copied().collect::<Vec<_>>(), [MINUTE]);
        let mut empty = PartitionCounts::default();
        empty.close_before(&w, MINUTE);
        // A partition without records of its own follows the others.
        assert_eq!(apply(&mut empty, &w, 30_000, Some("x")), Applied::Late);
        assert_eq!(apply(&mut empty, &w, MINUTE, Some("x")), Applied::Counted);
    }

    #[test]
    fn totals_never_close() {
        let w = Windowing::tumbling(None, 0);
        let mut c = PartitionCounts::default();
        apply(&mut c, &w, 100, Some("a"));
        apply(&mut c, &w, 1, Some("a"));
        assert_eq!(c.get(TOTALS, Some("a")), 2);
        assert_eq!(c.late(), 0);
    }

    #[test]
    fn the_checkpoint_form_round_trips() {
        let w = windowed(0);
        let mut c = PartitionCounts::default();
        apply(&mut c, &w, 1, Some("a \"quoted\" ü"));
        apply(&mut c, &w, 2, None);
        apply(&mut c, &w, MINUTE * 3, Some("b"));
        c.close_before(&w, -5);
        c.take_changed(&mut Vec::new());
        let json = c.to_json(&count());
        let back = PartitionCounts::from_json(&json, &count()).unwrap();
        assert_eq!(back, c);
        let totals = Windowing::tumbling(None, 0);
        let mut t = PartitionCounts::default();
        apply(&mut t, &totals, 1, Some("k"));
        t.take_changed(&mut Vec::new());
        assert_eq!(
            PartitionCounts::from_json(&t.to_json(&count()), &count()).unwrap(),
            t
        );
        assert!(PartitionCounts::from_json(b"{}", &count()).is_err());
        assert!(
            PartitionCounts::from_json(
                br#"{"v":9,"watermark":null,"closed_before":null,"late":0,"windows":[]}"#,
                &count()
            )
            .is_err()
        );
        // `weir count`'s own version 1 reads as counts.
        let v1 = br#"{"v":1,"watermark":5,"closed_before":null,"late":2,"windows":[[0,[["a",3],[null,1]]]]}"#;
        let read = PartitionCounts::from_json(v1, &count()).unwrap();
        assert_eq!(
            (read.get(0, Some("a")), read.get(0, None), read.late()),
            (3, 1, 2)
        );
    }

    #[test]
    fn sessions_join_records_within_the_gap_and_merge_when_they_meet() {
        let w = Windowing {
            size_ms: None,
            hop_ms: None,
            grace_ms: 20,
            session_gap_ms: Some(10),
        };
        let mut c = PartitionCounts::default();
        for ts in [100, 105, 130, 150, 140] {
            apply(&mut c, &w, ts, Some("u"));
        }
        apply(&mut c, &w, 135, Some("v"));
        // 100 and 105 are one session; 130 and 150 were two until 140
        // joined them (130 + 10 >= 140 >= 150 - 10).
        let spans = |c: &PartitionCounts, key: &str| -> Vec<(i64, i64, u64)> {
            c.sessions()[&Some(Box::from(key))]
                .iter()
                .map(|s| (s.start, s.end, s.aggs.records))
                .collect()
        };
        assert_eq!(spans(&c, "u"), [(100, 105, 2), (130, 150, 3)]);
        assert_eq!(spans(&c, "v"), [(135, 135, 1)]);
        // The watermark is 150: a record before 130 (grace 20) is late.
        assert_eq!(apply(&mut c, &w, 129, Some("u")), Applied::Late);
        assert_eq!(apply(&mut c, &w, 160, Some("u")), Applied::Counted);
        assert_eq!(spans(&c, "u"), [(100, 105, 2), (130, 160, 4)]);
        let json = c.to_json(&count());
        assert_eq!(PartitionCounts::from_json(&json, &count()).unwrap(), c);
        c.close_sessions(&Some(Box::from("u")), 100, 105);
        assert_eq!(spans(&c, "u"), [(130, 160, 4)]);
    }

    #[test]
    fn checkpoints_after_the_first_are_deltas_that_restore_the_same_state() {
        let plan = AggPlan::new(vec!["count".parse().unwrap(), "max:value".parse().unwrap()]);
        let w = windowed(0);
        let add = |c: &mut PartitionCounts, ts: i64, key: &str, v: &str| {
            c.apply(
                &w,
                &plan,
                ts,
                Some(key),
                &[Some(std::borrow::Cow::Borrowed(v))],
            );
        };
        let mut c = PartitionCounts::default();
        for i in 0..1_000 {
            add(&mut c, i, &format!("k{i}"), "1");
        }
        let (snapshot, delta) = c.checkpoint_json(&plan);
        assert!(!delta, "the first checkpoint of a run is whole");
        c.saved(snapshot.len(), delta);
        // Two keys change, a new window opens, the first one closes.
        add(&mut c, 5, "k5", "7");
        add(&mut c, 6, "k6", "3");
        add(&mut c, MINUTE + 1, "new", "2");
        c.close_before(&w, MINUTE);
        let (first, delta) = c.checkpoint_json(&plan);
        assert!(delta);
        assert!(first.len() < snapshot.len() / 10, "{} bytes", first.len());
        c.saved(first.len(), delta);
        add(&mut c, MINUTE + 2, "new", "9");
        let (second, delta) = c.checkpoint_json(&plan);
        assert!(delta);
        let restored =
            PartitionCounts::from_pieces(&[snapshot.clone(), first, second], &plan).unwrap();
        assert_eq!(restored, c);
        let (values, _) = plan.finish(restored.aggs(MINUTE, Some("new")).unwrap());
        assert_eq!(values, [serde_json::json!(2), serde_json::json!(9)]);
        // A restored state goes on with deltas; one that failed to commit
        // writes the whole state next.
        let mut again = PartitionCounts::from_pieces(&[snapshot], &plan).unwrap();
        add(&mut again, 10, "k10", "1");
        assert!(again.checkpoint_json(&plan).1);
        again.unsaved();
        assert!(!again.checkpoint_json(&plan).1);
    }

    #[test]
    fn deltas_carry_the_sessions_of_changed_keys() {
        let w = Windowing {
            size_ms: None,
            hop_ms: None,
            grace_ms: 100,
            session_gap_ms: Some(10),
        };
        let mut c = PartitionCounts::default();
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            apply(&mut c, &w, 100 + i as i64, Some(key));
        }
        let (snapshot, _) = c.checkpoint_json(&count());
        c.saved(snapshot.len(), false);
        apply(&mut c, &w, 105, Some("a"));
        c.close_sessions(&Some(Box::from("b")), 101, 101);
        let (delta, is_delta) = c.checkpoint_json(&count());
        assert!(is_delta);
        let restored = PartitionCounts::from_pieces(&[snapshot, delta], &count()).unwrap();
        assert_eq!(restored, c);
        assert!(!restored.sessions().contains_key(&Some(Box::from("b"))));
    }

    #[test]
    fn aggregates_are_saved_and_checked_against_the_run() {
        let plan = AggPlan::new(vec!["count".parse().unwrap(), "sum:value".parse().unwrap()]);
        let w = windowed(0);
        let mut c = PartitionCounts::default();
        let two = [Some(std::borrow::Cow::Borrowed("2"))];
        c.apply(&w, &plan, 1, Some("a"), &two);
        c.apply(&w, &plan, 2, Some("a"), &[None]);
        c.take_changed(&mut Vec::new());
        let json = c.to_json(&plan);
        assert_eq!(PartitionCounts::from_json(&json, &plan).unwrap(), c);
        let error = PartitionCounts::from_json(&json, &count()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the group's state holds count, sum(value), not count: use another group (or `weir offsets delete`) to compute other aggregates"
        );
        let (values, unparsed) = plan.finish(c.aggs(0, Some("a")).unwrap());
        assert_eq!(values, [serde_json::json!(2), serde_json::json!(2)]);
        assert_eq!(unparsed, [("sum(value)".to_owned(), 1)]);
    }
}
