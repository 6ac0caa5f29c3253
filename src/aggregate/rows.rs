//! The rows a run emits: per window and key, merged across the
//! partitions a run holds, and the boundary before which windows have
//! closed everywhere.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::acc::{AggPlan, Aggs};
use super::emit::AggValues;
use super::state::{Key, Session};
use super::{PartitionCounts, Row, TOTALS, Windowing};

/// One input partition of a run: its windows and where it stands.
pub(super) struct Part {
    pub(super) counts: PartitionCounts,
    /// Next offset to read.
    pub(super) position: i64,
    /// Holds no window back: it has no record in this run (nor restored
    /// windows) and a fetch found it at the end of its log, or it
    /// reached its stop. Never while its fetches have not answered or
    /// fail: a partition whose leader moves may have records for the
    /// windows the others close.
    pub(super) idle: bool,
    /// When its last record arrived (the start, before any).
    pub(super) last_record: Instant,
    /// Changed since the last commit.
    pub(super) dirty: bool,
    pub(super) records: u64,
    /// It reached its stop: no record can come in this run.
    pub(super) ended: bool,
    /// Across group members: what its last tick to the second stage said
    /// (watermark, idle, ended, earliest open session); `None` before its
    /// first in this run.
    pub(super) sent: Option<(Option<i64>, bool, bool, Option<i64>)>,
}

impl Part {
    /// A partition at `position` with its `counts` restored, as a run
    /// finds it.
    pub(super) fn resumed(counts: PartitionCounts, position: i64) -> Self {
        Self {
            idle: false,
            last_record: Instant::now(),
            counts,
            position,
            dirty: false,
            records: 0,
            ended: false,
            sent: None,
        }
    }
}

/// Windows ending at or before the returned time have closed in every
/// partition that holds windows back; `None` when one of those has no
/// record yet, when none holds windows back, or without windows.
/// Idle partitions ([`Part::idle`]), and with `quiet_since` those without
/// a record since then, hold nothing back.
pub(super) fn close_boundary<'a>(
    parts: impl Iterator<Item = &'a Part>,
    windowing: &Windowing,
    quiet_since: Option<Instant>,
) -> Option<i64> {
    if !windowing.closes() {
        return None;
    }
    let mut boundary: Option<i64> = None;
    for part in parts {
        if part.idle || quiet_since.is_some_and(|q| part.last_record <= q) {
            continue;
        }
        let b = part.counts.closable_before(windowing)?;
        boundary = Some(boundary.map_or(b, |x| x.min(b)));
    }
    boundary
}

/// How rows are built: the aggregates, and whether keys are composite
/// (several `--by`: a JSON array of the parts).
#[derive(Debug, Clone)]
pub(super) struct RowShape {
    pub(super) plan: AggPlan,
    pub(super) names: Arc<[String]>,
    pub(super) key_is_json: bool,
}

impl RowShape {
    pub(super) fn new(plan: AggPlan, key_is_json: bool) -> Self {
        let names = plan.names().into();
        Self {
            plan,
            names,
            key_is_json,
        }
    }

    pub(super) fn row(
        &self,
        windowing: &Windowing,
        start: i64,
        key: Option<String>,
        aggs: &Aggs,
    ) -> Row {
        let agg = (!self.plan.is_count()).then(|| {
            let (values, unparsed) = self.plan.finish(aggs);
            AggValues {
                names: Arc::clone(&self.names),
                values,
                unparsed,
            }
        });
        Row {
            window_start: (start != TOTALS).then_some(start),
            window_end: windowing.end(start),
            key,
            key_is_json: self.key_is_json,
            count: aggs.records,
            agg,
        }
    }
}

/// Every key of the window starting at `start`, merged across partitions,
/// most records first.
pub(super) fn window_rows<'a>(
    parts: impl Iterator<Item = &'a Part>,
    shape: &RowShape,
    windowing: &Windowing,
    start: i64,
) -> Vec<Row> {
    let mut merged: HashMap<Option<&str>, Aggs> = HashMap::new();
    for part in parts {
        if let Some(counts) = part.counts.windows().get(&start) {
            for (key, aggs) in counts.iter() {
                match merged.get_mut(&key) {
                    Some(m) => m.merge(aggs),
                    None => {
                        merged.insert(key, aggs.clone());
                    }
                }
            }
        }
    }
    let mut rows: Vec<Row> = merged
        .into_iter()
        .map(|(key, aggs)| shape.row(windowing, start, key.map(str::to_owned), &aggs))
        .collect();
    sort_rows(&mut rows);
    rows
}

/// The (window, key) aggregates that changed in any partition since the
/// last call, merged across partitions.
pub(super) fn changed_rows<'a>(
    parts: impl Iterator<Item = &'a mut Part>,
    shape: &RowShape,
    windowing: &Windowing,
) -> Vec<Row> {
    let mut parts: Vec<&mut Part> = parts.collect();
    let mut changed = Vec::new();
    for part in &mut parts {
        part.counts.take_changed(&mut changed);
    }
    changed.sort();
    changed.dedup();
    let mut rows: Vec<Row> = changed
        .into_iter()
        .map(|(start, key)| {
            let mut merged = shape.plan.empty();
            for p in &parts {
                if let Some(aggs) = p.counts.aggs(start, key.as_deref()) {
                    merged.merge(aggs);
                }
            }
            shape.row(windowing, start, key.map(String::from), &merged)
        })
        .collect();
    sort_rows(&mut rows);
    rows
}

/// A session closed by an emission: its key and the times it spanned, to
/// drop from every partition.
pub(super) type ClosedSession = (Key, i64, i64);

/// The sessions to emit, merged across partitions where those of a key
/// meet (within `gap`): those whose gap after their last record has
/// passed `boundary`, or every one when `stopping`. Returns the rows, and
/// (unless stopping: open sessions stay open) the sessions they close.
pub(super) fn session_rows<'a>(
    parts: impl Iterator<Item = &'a Part>,
    shape: &RowShape,
    gap: i64,
    boundary: Option<i64>,
    stopping: bool,
) -> (Vec<Row>, Vec<ClosedSession>) {
    let mut by_key: HashMap<&Key, Vec<&Session>> = HashMap::new();
    for part in parts {
        for (key, sessions) in part.counts.sessions() {
            by_key.entry(key).or_default().extend(sessions);
        }
    }
    let mut rows = Vec::new();
    let mut closed = Vec::new();
    for (key, mut sessions) in by_key {
        sessions.sort_by_key(|s| s.start);
        let mut chains: Vec<(i64, i64, Aggs)> = Vec::new();
        for s in sessions {
            match chains.last_mut() {
                Some((_, end, aggs)) if s.start.saturating_sub(gap) <= *end => {
                    *end = (*end).max(s.end);
                    aggs.merge(&s.aggs);
                }
                _ => chains.push((s.start, s.end, s.aggs.clone())),
            }
        }
        for (start, end, aggs) in chains {
            let done = boundary.is_some_and(|b| end.saturating_add(gap) < b);
            if !(stopping || done) {
                continue;
            }
            let mut row = shape.row(
                &Windowing::tumbling(None, 0),
                start,
                key.as_deref().map(str::to_owned),
                &aggs,
            );
            row.window_start = Some(start);
            row.window_end = Some(end);
            rows.push(row);
            if done && !stopping {
                closed.push((key.clone(), start, end));
            }
        }
    }
    sort_rows(&mut rows);
    (rows, closed)
}

pub(super) fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        a.window_start
            .cmp(&b.window_start)
            .then(b.count.cmp(&a.count))
            .then_with(|| a.key.cmp(&b.key))
    });
}
