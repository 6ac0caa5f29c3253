//! A handler per record as the runner starts it ([`Reading`]) and as the
//! job loop drives it ([`Job`]): `weir consume -g`'s machinery with the
//! handler in place of the output. A record's position moves past it only
//! once its handler returned `Ok`, and only positions are committed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{MemberError, MemberSummary};
use crate::TopicPartition;
use crate::job::member::Summary;
use crate::job::rebalance::Rebalances;
use crate::job::runner::{Joined, Opening, Reading};
use crate::job::{Commits, Job, JobError, Step, StepError, StopReason};
use crate::kafka::membership::MemberLink;
use crate::offsets::{GroupOffsets, GroupSession};
use crate::read::Consumer;
use crate::record::ConsumedRecord;

impl Summary for MemberSummary {
    fn empty(stop: StopReason) -> Self {
        Self {
            handled: 0,
            positions: BTreeMap::new(),
            commits: 0,
            elapsed: Duration::ZERO,
            stop,
        }
    }

    fn absorb(&mut self, later: Self) {
        self.handled += later.handled;
        self.positions.extend(later.positions);
        self.commits += later.commits;
        self.stop = later.stop;
    }

    fn ending(&mut self) -> (&mut Duration, &mut StopReason) {
        (&mut self.elapsed, &mut self.stop)
    }
}

/// A user's handler: called for one record at a time ([`PerRecord`]) or
/// for a partition's batch of them ([`PerBatch`]).
pub(super) trait Handler {
    /// The handler's error.
    type Error;

    /// Whether it takes one record at a time.
    const PER_RECORD: bool;

    /// Handles `records` (one, [`PER_RECORD`](Self::PER_RECORD)), of one
    /// partition in offset order.
    fn call(&mut self, records: &[ConsumedRecord])
    -> impl Future<Output = Result<(), Self::Error>>;
}

/// A handler per record.
pub(super) struct PerRecord<H>(pub(super) H);

impl<H, F, E> Handler for PerRecord<H>
where
    H: FnMut(ConsumedRecord) -> F,
    F: Future<Output = Result<(), E>>,
{
    type Error = E;
    const PER_RECORD: bool = true;

    fn call(&mut self, records: &[ConsumedRecord]) -> impl Future<Output = Result<(), E>> {
        (self.0)(records[0].clone())
    }
}

/// A handler per batch of a partition's records.
pub(super) struct PerBatch<H>(pub(super) H);

impl<H, F, E> Handler for PerBatch<H>
where
    H: FnMut(Vec<ConsumedRecord>) -> F,
    F: Future<Output = Result<(), E>>,
{
    type Error = E;
    const PER_RECORD: bool = false;

    fn call(&mut self, records: &[ConsumedRecord]) -> impl Future<Output = Result<(), E>> {
        (self.0)(records.to_vec())
    }
}

/// The user's handler, run after run (one per generation).
pub(super) struct Handlers<H> {
    handler: H,
    group: String,
}

impl<H> Handlers<H> {
    pub(super) fn new(handler: H, group: &str) -> Self {
        Self {
            handler,
            group: group.to_owned(),
        }
    }
}

impl<H> Reading for Handlers<H>
where
    H: Handler,
    H::Error: std::error::Error + 'static,
{
    type Error = MemberError<H::Error>;
    type Summary = MemberSummary;

    async fn open(&mut self, _opening: Opening<'_>) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn run(
        &mut self,
        consumer: Consumer,
        mut joined: Joined,
        _so_far: Option<&MemberSummary>,
        stop: impl Future<Output = StopReason>,
    ) -> Result<MemberSummary, Self::Error> {
        let member = joined.member.clone();
        let rebalances = joined.rebalances.take();
        let mut run = Run::new(
            &mut self.handler,
            consumer.starts(),
            joined.into_commits(),
            member,
            rebalances,
        );
        let started = tokio::time::Instant::now();
        let interval = run.interval();
        let ran = crate::job::run(consumer, &mut run, interval, stop).await;
        // A handler's failure stopped the loop as a shutdown does (what
        // came before it committed); it is what the member returns.
        if let Some((partition, offset, source)) = run.failure.take() {
            return Err(MemberError::Handler {
                group: self.group.clone(),
                partition,
                offset,
                source,
            });
        }
        let stop = ran?;
        Ok(MemberSummary {
            handled: run.handled,
            positions: run.positions,
            commits: run.commits,
            elapsed: started.elapsed(),
            stop,
        })
    }

    fn incremental(&self) -> bool {
        true
    }
}

/// One run of the handler over a consumer's records.
pub(super) struct Run<'h, H, E> {
    handler: &'h mut H,
    /// The next offset after what the handler finished with: what may be
    /// committed.
    positions: BTreeMap<TopicPartition, i64>,
    commits_to: Option<Commits>,
    member: Option<MemberLink>,
    rebalances: Option<Rebalances>,
    handled: u64,
    commits: u64,
    /// The handler's first error, and the record it failed on.
    failure: Option<(TopicPartition, i64, E)>,
}

impl<'h, H, E> Run<'h, H, E> {
    pub(super) fn new(
        handler: &'h mut H,
        starts: BTreeMap<TopicPartition, i64>,
        commits_to: Option<Commits>,
        member: Option<MemberLink>,
        rebalances: Option<Rebalances>,
    ) -> Self {
        Self {
            handler,
            positions: starts,
            commits_to,
            member,
            rebalances,
            handled: 0,
            commits: 0,
            failure: None,
        }
    }

    /// The next offset after what the handler finished with, per
    /// partition.
    #[cfg(test)]
    pub(super) fn positions(&self) -> &BTreeMap<TopicPartition, i64> {
        &self.positions
    }

    /// The handler's error, and the record it failed on.
    #[cfg(test)]
    pub(super) fn failure(&self) -> Option<&(TopicPartition, i64, E)> {
        self.failure.as_ref()
    }

    fn interval(&self) -> Option<Duration> {
        self.commits_to.as_ref().map(|c| c.interval)
    }

    /// Whether the handler may still run for its partitions: always,
    /// unless it is a member whose lease lapsed.
    fn holds_partitions(&self) -> bool {
        self.member.as_ref().is_none_or(MemberLink::valid)
    }

    /// Commits the positions; a failure is left to the next interval but
    /// for the `last` commit.
    async fn commit(&mut self, last: bool) -> Result<(), JobError> {
        if let Some(commits) = &mut self.commits_to
            && commits
                .commit(&self.positions, self.member.as_ref(), last)
                .await?
        {
            self.commits += 1;
        }
        Ok(())
    }
}

impl<H: Handler> Job for Run<'_, H, H::Error> {
    type Error = JobError;

    async fn records(&mut self, records: &[ConsumedRecord]) -> Step<JobError> {
        let size = if H::PER_RECORD { 1 } else { records.len() };
        for chunk in records.chunks(size.max(1)) {
            // A member frozen past its session (or in a long handler)
            // hands nothing more of partitions that are another's by now.
            if !self.holds_partitions() {
                return Ok(Some(StopReason::Fenced));
            }
            let (first, last) = (&chunk[0], &chunk[chunk.len() - 1]);
            if let Err(e) = self.handler.call(chunk).await {
                self.failure = Some((first.topic_partition(), first.offset, e));
                return Ok(Some(StopReason::Shutdown));
            }
            self.handled += chunk.len() as u64;
            self.positions
                .insert(last.topic_partition(), last.offset + 1);
        }
        Ok(None)
    }

    fn reached(&mut self, topic: Arc<str>, partition: i32, next_offset: i64) {
        self.positions
            .insert(TopicPartition::new(topic, partition), next_offset);
    }

    fn caught_up(&mut self, at: TopicPartition, next_offset: i64) {
        // Past transaction markers, with every record before them handled.
        let position = self.positions.entry(at).or_insert(next_offset);
        *position = (*position).max(next_offset);
    }

    async fn checkpoint(&mut self) -> Step<JobError> {
        if !self.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        self.commit(false).await?;
        if self.commits_to.as_ref().is_some_and(Commits::moved) {
            return Ok(Some(StopReason::Moved));
        }
        Ok(None)
    }

    fn rebalances(&mut self) -> Option<Rebalances> {
        self.rebalances.take()
    }

    async fn release(&mut self, revoked: &[TopicPartition]) -> Step<JobError> {
        // Committed before the coordinator may give them to another.
        if !self.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        self.commit(true).await?;
        self.positions.retain(|tp, _| !revoked.contains(tp));
        Ok(None)
    }

    fn adopt(
        &mut self,
        starts: BTreeMap<TopicPartition, i64>,
        session: Option<(GroupSession, GroupOffsets)>,
    ) -> Result<(), StepError<JobError>> {
        self.positions.extend(starts);
        if let (Some(commits), Some((session, _))) = (&mut self.commits_to, session) {
            commits.renew(session, self.member.as_ref());
        }
        Ok(())
    }

    async fn finish(&mut self, stop: StopReason) -> Step<JobError> {
        // Any graceful stop (a handler's failure included) commits what
        // was handled; a member that lost its partitions commits nothing.
        if stop == StopReason::Fenced || !self.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        self.commit(true).await?;
        Ok(Some(stop))
    }
}
