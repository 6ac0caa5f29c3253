//! A partition's aggregates in their checkpoint form: compact JSON,
//! the whole state (a snapshot) or what changed since the last
//! checkpoint (a delta), written straight from the state and read back
//! snapshot first, then each delta on it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::{Cell, Key, PartitionCounts, Session, TOTALS, WindowCounts};
use crate::aggregate::acc::{AggPlan, Aggs};

/// The committed chain of a partition's state: its snapshot's size and
/// the deltas written on it since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Saved {
    snapshot_bytes: usize,
    delta_bytes: usize,
    deltas: usize,
}

/// Deltas on one snapshot at most; then a new snapshot.
const MAX_DELTAS: usize = 64;

impl PartitionCounts {
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
