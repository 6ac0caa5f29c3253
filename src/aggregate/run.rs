//! A run of the aggregation as the job loop drives it: records into each
//! partition's windows, rows emitted when windows close (or at each
//! checkpoint), and checkpoints of positions and state to the offsets
//! store, inside the output's transaction when it has one.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::time::Instant;

use super::rows::{Part, RowShape, changed_rows, close_boundary, session_rows, window_rows};
use super::{CountError, CountJob, CountSummary, EmitMode, RecordReader, Restored, Row, restore};
use crate::job::rebalance::Rebalances;
use crate::job::{self, Job, Step, StepError, StopReason, check_conflicts};
use crate::kafka::membership::MemberLink;
use crate::offsets::{GroupOffsets, GroupSession, PartitionState};
use crate::record::ConsumedRecord;
use crate::{Consumer, TopicPartition};

/// Runs `job` over `consumer` from the `restored` counts until the
/// consumer ends, `count` records are read, or `shutdown` completes with
/// its reason. Emits every open window and commits before returning,
/// except with a count of 0, which reads, emits and commits nothing.
///
/// # Errors
///
/// A partition failed, the output could not be written, or the final
/// commit failed.
pub async fn run(
    consumer: Consumer,
    mut job: CountJob,
    restored: Restored,
    shutdown: impl Future<Output = StopReason>,
) -> Result<CountSummary, CountError> {
    run_job(consumer, &mut job, restored, shutdown, None).await
}

/// As [`run`], leaving the job (its sinks) to the caller for another run:
/// a group member's next generation; taking the changes of partitions
/// cooperative rebalances make while it runs.
pub(super) async fn run_job(
    consumer: Consumer,
    job: &mut CountJob,
    mut restored: Restored,
    shutdown: impl Future<Output = StopReason>,
    rebalances: Option<Rebalances>,
) -> Result<CountSummary, CountError> {
    let started = Instant::now();
    let internal = job.second_stage.as_ref().map(|s| Arc::clone(&s.topic));
    let mut parts = BTreeMap::new();
    let mut merges = BTreeMap::new();
    for p in consumer.positions() {
        let at = p.topic_partition();
        if internal.as_ref().is_some_and(|t| *t == p.topic) {
            let counts = restored.merges.remove(&at).unwrap_or_default();
            merges.insert(at, Merge::new(counts, p.start));
            continue;
        }
        let counts = restored.counts.remove(&at).unwrap_or_default();
        parts.insert(at, Part::resumed(counts, p.start));
    }
    let interval = job.config.checkpoint_interval;
    let reader = RecordReader::new(&job.config.by, job.config.aggs.fields().cloned());
    let shape = RowShape::new(job.config.aggs.clone(), reader.composite());
    let mut run = Run {
        reader,
        shape,
        job,
        rebalances,
        released: BTreeMap::new(),
        parts,
        merges,
        unparsed: 0,
        total: 0,
        rows: 0,
        commits: 0,
    };
    // A record's count is checked after it is counted, so 0 is checked
    // here: it emits none of the restored windows and moves no position.
    let stop = if run.job.config.count == Some(0) {
        consumer.stop().await;
        StopReason::Count
    } else {
        let stop = job::run(consumer, &mut run, Some(interval), shutdown).await;
        // A transaction left open by a failure or a lost lease is aborted
        // now rather than by its timeout, which the partitions' next owner
        // would wait for.
        if let Some(topic) = &mut run.job.topic {
            topic.abort_open_transaction().await;
        }
        stop?
    };
    let mut records = run.released;
    for (at, p) in &run.parts {
        *records.entry(at.clone()).or_default() += p.records;
    }
    Ok(CountSummary {
        records,
        unparsed: run.unparsed,
        late: run.parts.values().map(|p| p.counts.late()).sum::<u64>()
            + run.merges.values().map(|m| m.counts.late()).sum::<u64>(),
        rows: run.rows,
        commits: run.commits,
        elapsed: started.elapsed(),
        stop,
    })
}

impl CountJob {
    /// Writes `rows` to the sink and to the output topic, whichever the
    /// job has; `stopping` at the end of a run (every open window).
    async fn write_rows(
        &mut self,
        rows: &[Row],
        stopping: bool,
    ) -> Result<(), StepError<CountError>> {
        if let Some(sink) = &mut self.sink {
            sink.emit(rows, stopping).map_err(StepError::Output)?;
        }
        if let Some(topic) = &mut self.topic {
            topic.emit(rows).await?;
        }
        Ok(())
    }
}

/// The job as the loop drives it.
struct Run<'j> {
    job: &'j mut CountJob,
    rebalances: Option<Rebalances>,
    /// Records counted of partitions a cooperative rebalance took away.
    released: BTreeMap<TopicPartition, u64>,
    parts: BTreeMap<TopicPartition, Part>,
    /// Across group members: the partitions of the internal topic this
    /// run merges ([`second`]).
    merges: BTreeMap<TopicPartition, Merge>,
    reader: RecordReader,
    shape: RowShape,
    unparsed: u64,
    total: u64,
    rows: u64,
    commits: u64,
}

impl Job for Run<'_> {
    type Error = CountError;

    async fn records(&mut self, records: &[ConsumedRecord]) -> Step<CountError> {
        if !self.job.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        let internal = records
            .first()
            .is_some_and(|r| self.merges.contains_key(&r.topic_partition()));
        let reached = if internal {
            self.merge_records(records);
            false
        } else {
            self.apply(records)
        };
        // A window that closed is emitted now, not at the next
        // checkpoint: reading a backlog, an interval's records can span
        // many windows, all held in memory until then.
        if self.window_closed() {
            self.emit_due(false).await?;
        }
        Ok(reached.then_some(StopReason::Count))
    }

    fn reached(&mut self, topic: Arc<str>, partition: i32, next_offset: i64) {
        if let Some(part) = self.parts.get_mut(&TopicPartition::new(topic, partition)) {
            // No record of it can come in this run.
            part.idle = true;
            part.ended = true;
            if part.position != next_offset {
                part.position = next_offset;
                part.dirty = true;
            }
        }
    }

    fn caught_up(&mut self, at: TopicPartition, next_offset: i64) {
        let windowing = &self.job.config.windowing;
        if let Some(part) = self.parts.get_mut(&at) {
            if part.records == 0 && part.counts.closable_before(windowing).is_none() {
                part.idle = true;
            }
            // Past transaction markers, so a caught-up group's lag is 0.
            if next_offset > part.position {
                part.position = next_offset;
                part.dirty = true;
            }
        } else if let Some(merge) = self.merges.get_mut(&at) {
            if next_offset > merge.position {
                merge.position = next_offset;
                merge.dirty = true;
            }
        }
    }

    async fn checkpoint(&mut self) -> Step<CountError> {
        let stop = self.checkpoint(false, false).await?;
        // Across members, the internal topic is followed past any stop:
        // the run ends once its own input and every source of what it
        // merges reached their stops.
        if stop.is_none() && self.second_stage_done() {
            return Ok(Some(StopReason::Reached));
        }
        Ok(stop)
    }

    fn rebalances(&mut self) -> Option<Rebalances> {
        self.rebalances.take()
    }

    /// As a handover at a stop: what is due emitted, every state
    /// committed; the open windows of `revoked` go on at their next owner.
    async fn release(&mut self, revoked: &[TopicPartition]) -> Step<CountError> {
        if let Some(stop) = self.checkpoint(false, true).await? {
            return Ok(Some(stop));
        }
        for at in revoked {
            if let Some(part) = self.parts.remove(at) {
                *self.released.entry(at.clone()).or_default() += part.records;
            }
            self.merges.remove(at);
        }
        self.report_windows();
        Ok(None)
    }

    fn adopt(
        &mut self,
        starts: BTreeMap<TopicPartition, i64>,
        session: Option<(GroupSession, GroupOffsets)>,
    ) -> Result<(), StepError<CountError>> {
        Ok(self.gain(starts, session)?)
    }

    async fn finish(&mut self, stop: StopReason) -> Step<CountError> {
        match stop {
            // The partitions are someone else's: nothing more is written.
            StopReason::Fenced => Ok(Some(stop)),
            // Across members, the open windows are not final: they go on
            // at the next owner (or the next start), never emitted early.
            _ if self.job.second_stage.is_some() => self.checkpoint(false, true).await,
            // Handed over: what is due is emitted and the state committed;
            // the open windows go on counting at the next owner (or at the
            // next start, on the topics the patterns match now, or from the
            // moved offsets).
            StopReason::Revoked | StopReason::TopicsChanged | StopReason::Moved => {
                self.checkpoint(false, true).await
            }
            // Every other graceful stop emits the open windows and commits.
            _ => self.checkpoint(true, true).await,
        }
    }
}

impl Run<'_> {
    /// What a cooperative rebalance gave: each partition's counts
    /// restored from the commits `session` found, the internal topic's
    /// into the second stage.
    fn gain(
        &mut self,
        starts: BTreeMap<TopicPartition, i64>,
        session: Option<(GroupSession, GroupOffsets)>,
    ) -> Result<(), CountError> {
        let internal = self.job.second_stage.as_ref().map(|s| Arc::clone(&s.topic));
        let mut restored = Restored::default();
        if let Some((mut session, offsets)) = session {
            let gained: Vec<TopicPartition> = starts.keys().cloned().collect();
            restored = restore(
                &mut session,
                &offsets,
                &gained,
                &self.job.config.aggs,
                internal.as_deref(),
            )?;
            if let Some(member) = &self.job.member {
                session.hold_while(member.lease());
            }
            if let Some(checkpoints) = &mut self.job.checkpoints {
                checkpoints.session = session;
            }
        }
        for (at, start) in starts {
            if internal.as_ref().is_some_and(|t| **t == *at.topic) {
                let counts = restored.merges.remove(&at).unwrap_or_default();
                self.merges.insert(at, Merge::new(counts, start));
                continue;
            }
            let counts = restored.counts.remove(&at).unwrap_or_default();
            self.parts.insert(at, Part::resumed(counts, start));
        }
        self.report_windows();
        Ok(())
    }

    /// Counts one partition's records; true when `--count` is reached.
    fn apply(&mut self, records: &[ConsumedRecord]) -> bool {
        let config = &self.job.config;
        let Some(first) = records.first() else {
            return false;
        };
        let at = first.topic_partition();
        let Some(part) = self.parts.get_mut(&at) else {
            return false;
        };
        part.last_record = Instant::now();
        let late_before = part.counts.late();
        let unparsed_before = self.unparsed;
        let mut inputs = Vec::new();
        let mut reached = false;
        for record in records {
            let key = self.reader.read(record, &mut inputs);
            if key.is_none() {
                self.unparsed += 1;
            }
            part.counts.apply(
                &config.windowing,
                &config.aggs,
                record.timestamp_ms,
                key.as_deref(),
                &inputs,
            );
            part.position = record.offset + 1;
            part.records += 1;
            part.idle = false;
            part.dirty = true;
            self.total += 1;
            if config.count.is_some_and(|n| self.total >= n) {
                reached = true;
                break;
            }
        }
        let metrics = crate::metrics::global();
        metrics.late(&at, part.counts.late().saturating_sub(late_before));
        metrics.left_out(&at, 0, self.unparsed - unparsed_before);
        self.report_windows();
        reached
    }

    /// Sets the open windows gauge (O(partitions): once per batch).
    fn report_windows(&self) {
        let open: usize = self
            .parts
            .values()
            .map(|p| p.counts.windows().len() + p.counts.sessions().len())
            .sum::<usize>()
            + self
                .merges
                .values()
                .map(|m| m.counts.open_windows())
                .sum::<usize>();
        crate::metrics::global()
            .windows_open
            .store(open as i64, Relaxed);
    }

    /// Emits what is due (everything with `stopping`), closes windows,
    /// and commits; a failed commit fails the run when it is the `last`.
    /// A closed output ends the run; nothing is committed past what it
    /// took. A member that no longer holds its partitions writes nothing.
    async fn checkpoint(&mut self, stopping: bool, last: bool) -> Step<CountError> {
        if !self.job.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        Box::pin(self.emit_due(stopping)).await?;
        if self.job.checkpoints.is_some() {
            // Inside a transaction, a failed step leaves it in a state only
            // an abort ends: the job stops, and its successor aborts it.
            let transactional = self.job.is_transactional();
            match Box::pin(self.commit()).await {
                Ok(()) => {}
                Err(e) if !last && !transactional => {
                    tracing::warn!(error = %crate::ErrorChain(&e), "checkpoint failed; retrying at the next interval");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Where windows close now across the partitions ([`close_boundary`]).
    fn boundary(&self) -> Option<i64> {
        let quiet_since = self
            .job
            .config
            .idle_timeout
            .and_then(|t| Instant::now().checked_sub(t));
        close_boundary(self.parts.values(), &self.job.config.windowing, quiet_since)
    }

    /// Whether a window emitted when it closes (`--emit final`, not
    /// sessions) has closed in every partition since the last emission.
    ///
    /// Only when every partition has had records in this run or is idle
    /// (a fetch found it at its end): one that has not answered yet holds
    /// every window back. One quiet past `--idle-timeout` stops holding
    /// windows back at a checkpoint.
    ///
    /// Not with `--exactly-once`: there, windows are emitted at the
    /// checkpoint, in its transaction.
    fn window_closed(&self) -> bool {
        let windowing = &self.job.config.windowing;
        let transactional = self.job.is_transactional();
        if self.job.config.emit != EmitMode::Final
            || windowing.session_gap_ms.is_some()
            || transactional
        {
            return false;
        }
        if self.job.second_stage.is_some() {
            return self.second_stage_due();
        }
        let Some(boundary) = close_boundary(self.parts.values(), windowing, None) else {
            return false;
        };
        self.parts.values().any(|p| {
            let first = p.counts.windows().keys().next();
            first
                .and_then(|&start| windowing.end(start))
                .is_some_and(|end| end <= boundary)
        })
    }

    /// Emits what is due (everything with `stopping`) and closes the
    /// windows and sessions emitted.
    async fn emit_due(&mut self, stopping: bool) -> Result<(), StepError<CountError>> {
        if self.job.second_stage.is_some() {
            // Boxed: with the one-stage emission below, the futures nest
            // past the compiler's layout query depth.
            Box::pin(self.send_partials()).await?;
            return Box::pin(self.emit_merged()).await;
        }
        let boundary = self.boundary();
        let Self {
            job, parts, shape, ..
        } = self;
        let windowing = job.config.windowing;
        // Whole windows are summed and written one at a time, so the
        // output never holds more than one window's rows.
        let batches: Vec<Option<i64>> = match (stopping, job.config.emit, boundary) {
            // Sessions are emitted below, all at once.
            _ if windowing.session_gap_ms.is_some() => Vec::new(),
            (true, _, _) | (false, EmitMode::Final, Some(_)) => {
                let due = |start: i64| {
                    stopping
                        || windowing
                            .end(start)
                            .zip(boundary)
                            .is_some_and(|(end, b)| end <= b)
                };
                let starts: BTreeSet<i64> = parts
                    .values()
                    .flat_map(|p| p.counts.windows().keys().copied())
                    .filter(|&start| due(start))
                    .collect();
                starts.into_iter().map(Some).collect()
            }
            (false, EmitMode::Final, None) => Vec::new(),
            (false, EmitMode::Updates, _) => vec![None],
        };
        for batch in batches {
            let rows = match batch {
                Some(start) => window_rows(parts.values(), shape, &windowing, start),
                None => changed_rows(parts.values_mut(), shape, &windowing),
            };
            if rows.is_empty() {
                continue;
            }
            job.write_rows(&rows, stopping).await?;
            self.rows += rows.len() as u64;
        }
        if let Some(gap) = windowing.session_gap_ms {
            let (rows, closed) = session_rows(parts.values(), shape, gap, boundary, stopping);
            if !rows.is_empty() {
                job.write_rows(&rows, stopping).await?;
                self.rows += rows.len() as u64;
            }
            for (key, from, to) in &closed {
                for part in parts.values_mut() {
                    part.counts.close_sessions(key, *from, *to);
                    part.dirty = true;
                }
            }
        }
        if let Some(b) = boundary {
            for part in parts.values_mut() {
                if part.counts.close_before(&windowing, b) {
                    part.dirty = true;
                }
            }
        }
        self.report_windows();
        Ok(())
    }

    /// Commits the changed partitions' positions and counts: each one's
    /// whole state, or what changed since its last checkpoint
    /// ([`PartitionCounts::checkpoint_json`]).
    async fn commit(&mut self) -> Result<(), CountError> {
        if self.job.checkpoints.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let plan = &self.job.config.aggs;
        let mut written = Vec::new();
        let states: Vec<PartitionState> = self
            .parts
            .iter_mut()
            .filter(|(_, p)| p.dirty)
            .map(|(at, p)| {
                let (state, delta) = p.counts.checkpoint_json(plan);
                written.push((at.clone(), state.len(), delta));
                PartitionState {
                    partition: at.clone(),
                    offset: p.position,
                    state,
                    delta,
                }
            })
            .collect();
        let mut states = states;
        for (at, merge) in self.merges.iter().filter(|(_, m)| m.dirty) {
            states.push(PartitionState {
                partition: at.clone(),
                offset: merge.position,
                state: merge.counts.to_json(plan),
                delta: false,
            });
        }
        let any = !states.is_empty();
        let state_bytes: usize = states.iter().map(|s| s.state.len()).sum();
        let deltas = written.iter().filter(|w| w.2).count();
        let serialised = started.elapsed();
        let outcome = Box::pin(self.write_checkpoint(states)).await;
        for (at, bytes, delta) in written {
            if let Some(part) = self.parts.get_mut(&at) {
                match &outcome {
                    Ok(_) => part.counts.saved(bytes, delta),
                    // The next checkpoint writes the whole state.
                    Err(_) => part.counts.unsaved(),
                }
            }
        }
        let stored: usize = self.parts.values().map(|p| p.counts.stored_bytes()).sum();
        crate::metrics::global()
            .state_bytes
            .store(stored as i64, Relaxed);
        let conflicts = outcome?;
        if !any {
            return Ok(());
        }
        tracing::debug!(
            partitions = self.parts.values().filter(|p| p.dirty).count(),
            deltas,
            state_bytes,
            serialise_ms = serialised.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "checkpoint written"
        );
        let transactional = self.job.is_transactional();
        self.commits += 1;
        for part in self.parts.values_mut() {
            part.dirty = false;
        }
        for merge in self.merges.values_mut() {
            merge.dirty = false;
        }
        if let (Some(member), false) = (&self.job.member, transactional) {
            let merged = self.merges.iter().map(|(at, m)| (at, &m.position));
            member.mirror(
                self.parts
                    .iter()
                    .map(|(at, p)| (at, &p.position))
                    .chain(merged),
            );
        }
        if let Some(checkpoints) = &self.job.checkpoints {
            check_conflicts(&checkpoints.session, conflicts, checkpoints.exclusive)?;
        }
        Ok(())
    }

    /// Writes `states` to the offsets store, inside the output's
    /// transaction when it has one (which it then commits, with the
    /// member's positions for its group). Returns the conflicts found.
    async fn write_checkpoint(
        &mut self,
        states: Vec<PartitionState>,
    ) -> Result<Vec<crate::offsets::Conflict>, CountError> {
        let Some(checkpoints) = &mut self.job.checkpoints else {
            return Ok(Vec::new());
        };
        let any = !states.is_empty();
        let writer = match (&mut self.job.topic, any) {
            (Some(topic), true) => {
                let store = checkpoints.session.store();
                let (store_topic, partition) = (
                    store.topic().to_owned(),
                    store.partition_for(checkpoints.session.group()),
                );
                Box::pin(topic.store_writer(&store_topic, partition)).await?
            }
            _ => None,
        };
        let conflicts = Box::pin(checkpoints.session.commit_states(states, writer)).await?;
        let (topic, member) = (&mut self.job.topic, &self.job.member);
        if let Some(topic) = topic {
            // A member's positions go to its group inside the transaction,
            // under its generation: committed with the rows and state, and
            // refused (so aborted) once a rebalance moved the partitions.
            if let (true, Some(generation)) =
                (any, member.as_ref().and_then(MemberLink::generation))
            {
                let merged = self.merges.iter().map(|(at, m)| (at.clone(), m.position));
                let positions: Vec<(TopicPartition, i64)> = self
                    .parts
                    .iter()
                    .map(|(at, p)| (at.clone(), p.position))
                    .chain(merged)
                    .collect();
                Box::pin(topic.commit_offsets(&generation, &positions)).await?;
            }
            Box::pin(topic.commit_transaction()).await?;
        }
        Ok(conflicts)
    }
}

#[path = "second.rs"]
mod second;
use second::Merge;

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
