//! A run's part in an aggregation across group members, the two stages
//! of the module docs of [`crate::aggregate`]: its input partitions send
//! their partial aggregates and ticks to the group's internal topic
//! ([`Run::send_partials`]); its partitions of the internal topic merge
//! what every source sent ([`Run::merge_records`]) into rows
//! ([`Run::emit_merged`]).
//!
//! An input partition sends a window's partials once the window is final
//! there (its own watermark passed the end plus the grace), or, with
//! `--emit updates` and for running totals, what changed at each
//! checkpoint; an idle one sends what changed too, so that the windows it
//! does not hold back are complete. The windows it sent as final are
//! then dropped from its state.

use std::collections::BTreeMap;

use tokio::time::Instant;
use tracing::warn;

use super::Run;
use crate::aggregate::merge::MergeCounts;
use crate::aggregate::partial::{self, Cell, Partial, Tick};
use crate::aggregate::rows::sort_rows;
use crate::aggregate::state::{Key, Windowing};
use crate::aggregate::{CountError, EmitMode, SecondStage};
use crate::job::StepError;
use crate::record::ConsumedRecord;

/// One partition of the internal topic in a run: its merged state and
/// where it stands.
#[derive(Debug)]
pub(super) struct Merge {
    pub(super) counts: MergeCounts,
    /// Next offset to read.
    pub(super) position: i64,
    /// Changed since the last commit.
    pub(super) dirty: bool,
}

impl Merge {
    pub(super) fn new(counts: MergeCounts, position: i64) -> Self {
        Self {
            counts,
            position,
            dirty: false,
        }
    }
}

impl Run<'_> {
    /// Takes one internal partition's records into its merged state. A
    /// record that cannot be used is skipped with a warning naming it.
    pub(super) fn merge_records(&mut self, records: &[ConsumedRecord]) {
        let (Some(stage), Some(first)) = (&self.job.second_stage, records.first()) else {
            return;
        };
        let at = first.topic_partition();
        let Some(merge) = self.merges.get_mut(&at) else {
            return;
        };
        let config = &self.job.config;
        for record in records {
            let value = record.value.as_deref().unwrap_or_default();
            let applied = Partial::from_json(value).and_then(|partial| {
                merge
                    .counts
                    .apply(partial, &config.aggs, &config.windowing, &stage.sources)
            });
            if let Err(e) = applied {
                warn!(
                    topic = %at.topic,
                    partition = at.partition,
                    offset = record.offset,
                    error = %crate::ErrorChain(&e),
                    "skipped a record of the internal topic"
                );
            }
            merge.position = record.offset + 1;
            merge.dirty = true;
        }
    }

    /// Whether a window closed in an input partition (its partials are
    /// due) or in the second stage (its rows are).
    pub(super) fn second_stage_due(&self) -> bool {
        let windowing = &self.job.config.windowing;
        let closed_in_input = self.parts.values().any(|p| {
            let first = p.counts.windows().keys().next();
            first
                .and_then(|&start| windowing.end(start))
                .zip(p.counts.closable_before(windowing))
                .is_some_and(|(end, b)| end <= b)
        });
        closed_in_input || self.merges.values().any(|m| m.counts.has_due(windowing))
    }

    /// Sends each input partition's due partials and changed tick to the
    /// internal topic, waits until they are acknowledged, then drops the
    /// windows sent as final.
    pub(super) async fn send_partials(&mut self) -> Result<(), StepError<CountError>> {
        let Some(stage) = &self.job.second_stage else {
            return Ok(());
        };
        let config = &self.job.config;
        let windowing = config.windowing;
        let plan = &config.aggs;
        let updates = config.emit == EmitMode::Updates || !windowing.closes();
        let quiet_since = config
            .idle_timeout
            .and_then(|t| Instant::now().checked_sub(t));
        let mut out = Vec::new();
        let mut ticks = Vec::new();
        for (at, part) in &mut self.parts {
            let idle = part.idle || quiet_since.is_some_and(|q| part.last_record <= q);
            let own = part.counts.closable_before(&windowing);
            let mut cells: BTreeMap<(i64, Key), Cell> = BTreeMap::new();
            if updates || idle {
                let mut changed = Vec::new();
                part.counts.take_changed(&mut changed);
                for (start, key) in changed {
                    if let Some(aggs) = part.counts.aggs(start, key.as_deref()) {
                        let cell = Cell::new(plan, start, key.as_deref(), aggs);
                        cells.insert((start, key), cell);
                    }
                }
            }
            let mut sessions = Vec::new();
            if let Some(gap) = windowing.session_gap_ms {
                // A session is final here once the gap after it passed
                // the watermark less the grace; all are once it ended.
                let bound = if part.ended { Some(i64::MAX) } else { own };
                for (key, list) in part.counts.sessions() {
                    for s in list {
                        if bound.is_some_and(|b| s.end.saturating_add(gap) < b) {
                            let cell = Cell::session(plan, s.start, s.end, key.as_deref(), &s.aggs);
                            cells.insert((s.start, key.clone()), cell);
                            sessions.push((key.clone(), s.start, s.end));
                        }
                    }
                }
            }
            let open_from = part
                .counts
                .sessions()
                .values()
                .flatten()
                .filter(|s| {
                    !sessions
                        .iter()
                        .any(|(_, start, end)| s.start == *start && s.end == *end)
                })
                .map(|s| s.start)
                .min();
            if let (false, Some(b), None) = (updates, own, windowing.session_gap_ms) {
                for (&start, window) in part.counts.windows() {
                    if windowing.end(start).is_none_or(|end| end > b) {
                        break;
                    }
                    for (key, aggs) in window.iter() {
                        let cell = Cell::new(plan, start, key, aggs);
                        cells.insert((start, key.map(Box::from)), cell);
                    }
                }
            }
            let tick = Tick {
                pos: part.position,
                wm: part.counts.watermark(),
                idle,
                end: part.ended,
                open_from,
            };
            let mark = tick.stand();
            let everywhere = part.sent != Some(mark);
            if cells.is_empty() && !everywhere {
                continue;
            }
            let cells = cells.into_values().collect();
            out.extend(partial::records(
                at,
                tick,
                cells,
                stage.partitions,
                everywhere,
            ));
            ticks.push((at.clone(), mark, own, sessions));
        }
        if out.is_empty() {
            return Ok(());
        }
        self.job.send_partials(out).await?;
        for (at, mark, own, sessions) in ticks {
            let Some(part) = self.parts.get_mut(&at) else {
                continue;
            };
            part.sent = Some(mark);
            for (key, start, end) in &sessions {
                part.counts.close_sessions(key, *start, *end);
                part.dirty = true;
            }
            if let Some(b) = own {
                if part.counts.close_before(&windowing, b) {
                    part.dirty = true;
                }
            }
        }
        Ok(())
    }

    /// Emits the second stage's rows: the windows final here (with
    /// `--emit final`), or what changed (updates, running totals).
    pub(super) async fn emit_merged(&mut self) -> Result<(), StepError<CountError>> {
        let config = &self.job.config;
        let windowing = config.windowing;
        let plan = &config.aggs;
        let updates = config.emit == EmitMode::Updates || !windowing.closes();
        let mut rows = Vec::new();
        for merge in self.merges.values_mut() {
            if updates {
                for (start, key, aggs) in merge.counts.take_changed(plan) {
                    let key = key.map(String::from);
                    rows.push(self.shape.row(&windowing, start, key, &aggs));
                }
            }
            if let Some(gap) = windowing.session_gap_ms {
                let sealed = merge.counts.take_sealed_sessions(plan, gap);
                merge.dirty |= !sealed.is_empty();
                for (key, start, end, aggs) in sealed {
                    let key = key.map(String::from);
                    let mut row = self
                        .shape
                        .row(&Windowing::tumbling(None, 0), start, key, &aggs);
                    row.window_start = Some(start);
                    row.window_end = Some(end);
                    rows.push(row);
                }
                continue;
            }
            let sealed = merge.counts.take_sealed(plan, &windowing);
            if sealed.is_empty() {
                continue;
            }
            merge.dirty = true;
            if updates {
                // Their last changes are in the rows above.
                continue;
            }
            for (start, keys) in sealed {
                for (key, aggs) in keys {
                    let key = key.map(String::from);
                    rows.push(self.shape.row(&windowing, start, key, &aggs));
                }
            }
        }
        self.report_windows();
        if rows.is_empty() {
            return Ok(());
        }
        sort_rows(&mut rows);
        self.job.write_rows(&rows, false).await?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Whether the run is over across members: each of its input
    /// partitions reached its stop and said so, and every source of each
    /// internal partition it merges has.
    pub(super) fn second_stage_done(&self) -> bool {
        let Some(stage) = &self.job.second_stage else {
            return false;
        };
        let sent_end = |p: &super::Part| p.ended && p.sent.is_some_and(|(_, _, end, _)| end);
        self.parts.values().all(sent_end)
            && self
                .merges
                .values()
                .all(|m| m.counts.complete(&stage.sources))
    }
}

impl crate::aggregate::CountJob {
    /// Sends partials through the output's transactions when it carries
    /// them, else through the second stage's own producer.
    async fn send_partials(&mut self, partials: Vec<(i32, Vec<u8>)>) -> Result<(), CountError> {
        if let Some(topic) = self.topic.as_mut().filter(|t| t.carries_partials()) {
            return topic.send_partials(partials).await;
        }
        match &mut self.second_stage {
            Some(SecondStage {
                sender: Some(sender),
                ..
            }) => sender.send_partials(partials, None).await,
            _ => Err(CountError::NoPartialsProducer),
        }
    }
}
