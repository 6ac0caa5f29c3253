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

    /// Where windows are final across `sources` ([module docs](self));
    /// `None` while one of them holds every window back, or without
    /// windows.
    pub(super) fn boundary(
        &self,
        windowing: &Windowing,
        sources: &[TopicPartition],
    ) -> Option<i64> {
        if !windowing.closes() {
            return None;
        }
        let mut boundary: Option<i64> = None;
        let mut ended = true;
        for src in sources {
            let mark = self.sources.get(src)?;
            ended &= mark.end;
            if mark.end || mark.idle {
                continue;
            }
            let b = mark.wm?.saturating_sub(windowing.grace_ms);
            boundary = Some(boundary.map_or(b, |x| x.min(b)));
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

    /// Open windows here.
    pub(super) fn open_windows(&self) -> usize {
        self.windows.len()
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
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
