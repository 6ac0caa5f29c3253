//! The second stage of an aggregation across group members: what one
//! partition of the group's internal topic holds. Each input partition
//! (a *source*) sends it, at its checkpoints, its partial aggregates for
//! the keys that hash here and a *tick*: where it stands (position,
//! watermark, idle, ended). See [`super::partial`] for the records.
//!
//! - A partial is a source's whole aggregate of one (window, key) so far,
//!   as of its position `pos`: a later one replaces it, an earlier or
//!   equal one (a source that crashed before its checkpoint committed
//!   sends again what it had sent) is a replay and changes nothing. So no
//!   partial is lost or counted twice, with or without transactions.
//! - A window is final here once every source that holds windows back
//!   has a watermark past its end plus the grace period; a source holds
//!   none back once it says it is idle (no record, at the end of its log,
//!   or quiet past `--idle-timeout`) or ended (reached its stop). A
//!   source that has not said where it stands holds every window back.
//!   When every source has ended, every window is final.
//! - Windows are sealed as soon as a tick makes them final, record by
//!   record, so whether a partial came in time depends on the internal
//!   topic's order alone, never on when a checkpoint ran. A partial for a
//!   sealed window is a replay when its source's watermark had already
//!   passed the window (it had sent its final aggregate), else late
//!   (its source was idle when the window closed): counted, not applied.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::acc::{AggPlan, Aggs};
use super::partial::{Partial, PartialError};
use super::state::{Key, TOTALS, Windowing};
use crate::TopicPartition;

/// Where a source stands, as its last tick said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Mark {
    /// The source's position (next offset) at the tick.
    pub(super) pos: i64,
    /// Its largest record timestamp.
    pub(super) wm: Option<i64>,
    /// It holds no window back (no record, or quiet).
    pub(super) idle: bool,
    /// It reached its stop: no record will come from it.
    pub(super) end: bool,
    /// Session windows: the earliest start of its open sessions.
    #[serde(default)]
    pub(super) open_from: Option<i64>,
}

impl Mark {
    /// Windows ending at or before this are final at the source; `None`
    /// when it holds none back (idle or ended).
    fn window_bound(&self, grace_ms: i64) -> Option<i64> {
        let wm = (!self.end && !self.idle).then_some(self.wm).flatten();
        wm.map(|w| w.saturating_sub(grace_ms))
    }

    /// Sessions ending more than the gap before this are final at the
    /// source: none of its open sessions nor later records can join them.
    /// `None` when it bounds nothing (idle without sessions, or ended).
    fn session_bound(&self, grace_ms: i64) -> Option<i64> {
        if self.end {
            return None;
        }
        let wm = (!self.idle).then_some(self.wm).flatten();
        let wm = wm.map(|w| w.saturating_sub(grace_ms));
        match (wm, self.open_from) {
            (Some(w), Some(o)) => Some(w.min(o)),
            (w, o) => w.or(o),
        }
    }
}

/// One source's final session of a key.
#[derive(Debug, Clone, PartialEq)]
struct SessionShare {
    src: TopicPartition,
    start: i64,
    end: i64,
    aggs: Aggs,
}

/// One source's partial aggregate of one (window, key).
#[derive(Debug, Clone, PartialEq)]
struct Share {
    src: TopicPartition,
    pos: i64,
    aggs: Aggs,
}

/// The second stage's state for one internal partition.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct MergeCounts {
    /// Per window start ([`TOTALS`] without windows), per key, each
    /// source's latest partial.
    windows: BTreeMap<i64, HashMap<Key, Vec<Share>>>,
    /// Per key, the sources' final sessions (session windows).
    sessions: HashMap<Key, Vec<SessionShare>>,
    /// Each source's last tick.
    sources: BTreeMap<TopicPartition, Mark>,
    /// Windows ending at or before this are final (sealed).
    closed_before: Option<i64>,
    /// Records in partials that came for sealed windows.
    late: u64,
    /// (window, key) changed since the last emission; not saved.
    changed: BTreeSet<(i64, Key)>,
}

impl MergeCounts {
    /// Takes one record of the internal topic; `sources` are every input
    /// partition, which seals the windows that are final once it is in.
    ///
    /// # Errors
    ///
    /// A partial saved for other aggregates.
    pub(super) fn apply(
        &mut self,
        partial: Partial,
        plan: &AggPlan,
        windowing: &Windowing,
        sources: &[TopicPartition],
    ) -> Result<(), PartialError> {
        let src = partial.source();
        let before = self.sources.get(&src).copied();
        for cell in partial.cells {
            let start = cell.start.unwrap_or(TOTALS);
            let aggs = plan
                .load(cell.records, cell.aggs)
                .map_err(PartialError::Aggregates)?;
            if let (Some(end), Some(gap)) = (cell.end, windowing.session_gap_ms) {
                let share = SessionShare {
                    src: src.clone(),
                    start,
                    end,
                    aggs,
                };
                self.take_session(cell.key.map(Box::from), share, before, gap, windowing);
                continue;
            }
            if let (Some(end), Some(closed)) = (windowing.end(start), self.closed_before) {
                if end <= closed {
                    // Its source had passed the window already: the
                    // final aggregate is in; this is it again.
                    let replay = before
                        .and_then(|m| m.wm)
                        .is_some_and(|wm| wm.saturating_sub(windowing.grace_ms) >= end);
                    if !replay {
                        self.late += aggs.records;
                    }
                    continue;
                }
            }
            let key: Key = cell.key.map(Box::from);
            let shares = self
                .windows
                .entry(start)
                .or_default()
                .entry(key.clone())
                .or_default();
            match shares.iter_mut().find(|s| s.src == src) {
                Some(share) if share.pos >= partial.pos => continue,
                Some(share) => {
                    share.pos = partial.pos;
                    share.aggs = aggs;
                }
                None => shares.push(Share {
                    src: src.clone(),
                    pos: partial.pos,
                    aggs,
                }),
            }
            self.changed.insert((start, key));
        }
        let mark = Mark {
            pos: partial.pos,
            wm: partial.wm,
            idle: partial.idle,
            end: partial.end,
            open_from: partial.open_from,
        };
        match self.sources.get_mut(&src) {
            Some(m) if m.pos > mark.pos => {}
            Some(m) => *m = mark,
            None => {
                self.sources.insert(src, mark);
            }
        }
        if let Some(b) = self.boundary(windowing, sources) {
            if self.closed_before.is_none_or(|c| c < b) {
                self.closed_before = Some(b);
            }
        }
        Ok(())
    }

    /// A source's final session: kept once (a replay sends the same
    /// again), unless the sessions it could join were emitted already:
    /// then a replay when its source had already said it was final, else
    /// late.
    fn take_session(
        &mut self,
        key: Key,
        share: SessionShare,
        before: Option<Mark>,
        gap: i64,
        windowing: &Windowing,
    ) {
        if self
            .closed_before
            .is_some_and(|c| share.end.saturating_add(gap) < c)
        {
            let replay = before.is_some_and(|m| {
                m.end
                    || m.session_bound(windowing.grace_ms)
                        .is_some_and(|b| share.end.saturating_add(gap) < b)
            });
            if !replay {
                self.late += share.aggs.records;
            }
            return;
        }
        let shares = self.sessions.entry(key).or_default();
        if !shares
            .iter()
            .any(|s| s.src == share.src && s.start == share.start)
        {
            shares.push(share);
        }
    }

    /// Where windows are final across `sources` ([module docs](self));
    /// `None` while one of them holds every window back, or without
    /// windows. For sessions: a chain of sessions ending more than the
    /// gap before it is final.
    pub(super) fn boundary(
        &self,
        windowing: &Windowing,
        sources: &[TopicPartition],
    ) -> Option<i64> {
        if !windowing.closes() {
            return None;
        }
        let sessions = windowing.session_gap_ms.is_some();
        let mut boundary: Option<i64> = None;
        let mut ended = true;
        for src in sources {
            let mark = self.sources.get(src)?;
            ended &= mark.end;
            // Records will come, and none has yet: every window waits.
            if !mark.end && !mark.idle && mark.wm.is_none() {
                return None;
            }
            let bound = if sessions {
                mark.session_bound(windowing.grace_ms)
            } else {
                mark.window_bound(windowing.grace_ms)
            };
            if let Some(b) = bound {
                boundary = Some(boundary.map_or(b, |x| x.min(b)));
            }
        }
        match boundary {
            None if ended => Some(i64::MAX),
            b => b,
        }
    }

    /// Whether every source has ended: nothing more will come here.
    pub(super) fn complete(&self, sources: &[TopicPartition]) -> bool {
        sources
            .iter()
            .all(|s| self.sources.get(s).is_some_and(|m| m.end))
    }

    /// Whether a sealed window waits to be emitted.
    pub(super) fn has_due(&self, windowing: &Windowing) -> bool {
        let first = self.windows.keys().next();
        first
            .and_then(|&start| windowing.end(start))
            .zip(self.closed_before)
            .is_some_and(|(end, closed)| end <= closed)
    }

    /// The sealed windows, each with its keys' aggregates merged across
    /// sources, earliest first; they are dropped.
    pub(super) fn take_sealed(
        &mut self,
        plan: &AggPlan,
        windowing: &Windowing,
    ) -> Vec<(i64, Vec<(Key, Aggs)>)> {
        let Some(closed) = self.closed_before else {
            return Vec::new();
        };
        let sealed: Vec<i64> = self
            .windows
            .keys()
            .copied()
            .take_while(|&s| windowing.end(s).is_some_and(|end| end <= closed))
            .collect();
        sealed
            .into_iter()
            .filter_map(|start| {
                let keys = self.windows.remove(&start)?;
                self.changed.retain(|(s, _)| *s != start);
                let merged = keys
                    .into_iter()
                    .map(|(key, shares)| (key, merged(plan, &shares)))
                    .collect();
                Some((start, merged))
            })
            .collect()
    }

    /// The chains of sessions final here, per key, each merged across
    /// sources: (key, first record's time, last record's time,
    /// aggregates). Their sessions are dropped.
    pub(super) fn take_sealed_sessions(
        &mut self,
        plan: &AggPlan,
        gap: i64,
    ) -> Vec<(Key, i64, i64, Aggs)> {
        let Some(closed) = self.closed_before else {
            return Vec::new();
        };
        let mut out = Vec::new();
        self.sessions.retain(|key, shares| {
            shares.sort_by_key(|s| s.start);
            let mut chains: Vec<(i64, i64, Vec<usize>)> = Vec::new();
            for (i, s) in shares.iter().enumerate() {
                match chains.last_mut() {
                    Some((_, end, members)) if s.start.saturating_sub(gap) <= *end => {
                        *end = (*end).max(s.end);
                        members.push(i);
                    }
                    _ => chains.push((s.start, s.end, vec![i])),
                }
            }
            let mut done = vec![false; shares.len()];
            for (start, end, members) in chains {
                if end.saturating_add(gap) >= closed {
                    continue;
                }
                let mut aggs = plan.empty();
                for &i in &members {
                    aggs.merge(&shares[i].aggs);
                    done[i] = true;
                }
                out.push((key.clone(), start, end, aggs));
            }
            let mut i = 0;
            shares.retain(|_| {
                i += 1;
                !done[i - 1]
            });
            !shares.is_empty()
        });
        out
    }

    /// The (window, key) aggregates changed since the last call, merged
    /// across sources.
    pub(super) fn take_changed(&mut self, plan: &AggPlan) -> Vec<(i64, Key, Aggs)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|(start, key)| {
                let shares = self.windows.get(&start)?.get(&key)?;
                Some((start, key, merged(plan, shares)))
            })
            .collect()
    }

    /// Records that came for windows already final here.
    pub(super) fn late(&self) -> u64 {
        self.late
    }

    /// Open windows (and keys with sessions) here.
    pub(super) fn open_windows(&self) -> usize {
        self.windows.len() + self.sessions.len()
    }

    /// The checkpoint form: compact JSON.
    pub(super) fn to_json(&self, plan: &AggPlan) -> Vec<u8> {
        let saved = SavedMerge {
            v: MERGE_VERSION,
            aggs: plan.names(),
            closed_before: self.closed_before,
            late: self.late,
            sources: self
                .sources
                .iter()
                .map(|(s, m)| (s.topic.to_string(), s.partition, *m))
                .collect(),
            cells: self
                .windows
                .iter()
                .flat_map(|(&start, keys)| {
                    keys.iter().map(move |(key, shares)| SavedCell {
                        start: (start != TOTALS).then_some(start),
                        key: key.as_deref().map(str::to_owned),
                        shares: shares
                            .iter()
                            .map(|s| {
                                (
                                    s.src.topic.to_string(),
                                    s.src.partition,
                                    s.pos,
                                    s.aggs.records,
                                    plan.save(&s.aggs),
                                )
                            })
                            .collect(),
                    })
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(key, shares)| {
                    let shares = shares
                        .iter()
                        .map(|s| {
                            let (t, p) = (s.src.topic.to_string(), s.src.partition);
                            (t, p, s.start, s.end, s.aggs.records, plan.save(&s.aggs))
                        })
                        .collect();
                    (key.as_deref().map(str::to_owned), shares)
                })
                .collect(),
        };
        serde_json::to_vec(&saved).unwrap_or_default()
    }

    /// Reads the checkpoint form back.
    ///
    /// # Errors
    ///
    /// Unreadable, another version, or saved for other aggregates.
    pub(super) fn from_json(bytes: &[u8], plan: &AggPlan) -> Result<Self, PartialError> {
        let saved: SavedMerge = serde_json::from_slice(bytes).map_err(PartialError::Unreadable)?;
        if saved.v != MERGE_VERSION {
            return Err(PartialError::Version { found: saved.v });
        }
        if saved.aggs != plan.names() {
            return Err(PartialError::OtherAggregates {
                saved: saved.aggs.join(", "),
            });
        }
        let mut merge = Self {
            closed_before: saved.closed_before,
            late: saved.late,
            sources: saved
                .sources
                .into_iter()
                .map(|(t, p, m)| (TopicPartition::new(t, p), m))
                .collect(),
            ..Self::default()
        };
        for (key, saved_shares) in saved.sessions {
            let mut shares = Vec::with_capacity(saved_shares.len());
            for (topic, partition, start, end, records, aggs) in saved_shares {
                shares.push(SessionShare {
                    src: TopicPartition::new(topic, partition),
                    start,
                    end,
                    aggs: plan.load(records, aggs).map_err(PartialError::Aggregates)?,
                });
            }
            merge.sessions.insert(key.map(Box::from), shares);
        }
        for cell in saved.cells {
            let mut shares = Vec::with_capacity(cell.shares.len());
            for (topic, partition, pos, records, aggs) in cell.shares {
                shares.push(Share {
                    src: TopicPartition::new(topic, partition),
                    pos,
                    aggs: plan.load(records, aggs).map_err(PartialError::Aggregates)?,
                });
            }
            merge
                .windows
                .entry(cell.start.unwrap_or(TOTALS))
                .or_default()
                .insert(cell.key.map(Box::from), shares);
        }
        Ok(merge)
    }
}

/// The aggregates of `shares` together.
fn merged(plan: &AggPlan, shares: &[Share]) -> Aggs {
    let mut aggs = plan.empty();
    for share in shares {
        aggs.merge(&share.aggs);
    }
    aggs
}

/// The version of [`MergeCounts`]' checkpoint form.
const MERGE_VERSION: u32 = 1;

/// A source's partial of one cell: topic, partition, pos, records, aggs.
type SavedShare = (String, i32, i64, u64, serde_json::Value);

#[derive(Serialize, Deserialize)]
struct SavedCell {
    start: Option<i64>,
    key: Option<String>,
    shares: Vec<SavedShare>,
}

#[derive(Serialize, Deserialize)]
struct SavedMerge {
    v: u32,
    aggs: Vec<String>,
    closed_before: Option<i64>,
    late: u64,
    sources: Vec<(String, i32, Mark)>,
    cells: Vec<SavedCell>,
    #[serde(default)]
    sessions: Vec<(Option<String>, Vec<SavedSession>)>,
}

/// A source's final session: topic, partition, start, end, records, aggs.
type SavedSession = (String, i32, i64, i64, u64, serde_json::Value);

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
