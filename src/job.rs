//! The loop every job shares: a [`Consumer`]'s events into a [`Job`],
//! until a stop.
//!
//! - The loop waits on three things at once: the consumer's next event,
//!   the shutdown future and, when the job has one, the checkpoint
//!   interval (a [`tokio::time::Interval`] with
//!   [`MissedTickBehavior::Delay`], so a slow checkpoint pushes the next
//!   one back instead of firing a burst of them).
//! - Events already waiting are handled without waiting on anything, the
//!   shutdown future and the checkpoint deadline looked at between them;
//!   when none is ready the job may [`flush`](Job::flush) first, so a fast
//!   stream is written in large blocks and a slow one appears at once.
//! - A stop has a [`StopReason`]: every partition reached its end, the
//!   job's `--count`, the shutdown future (a signal, or the caller seeing
//!   an idle output's reader gone), or a closed output. Any of them ends
//!   in [`Job::finish`] (emit, flush, commit); a failure ends the job
//!   without it.
//! - A closed output (EPIPE, `weir consume | head`) is not a failure: the
//!   step that hit it stops the loop with [`StopReason::OutputClosed`],
//!   and the job commits nothing past what the output took.
//!
//! The consumer's fetch side is a trait ([`PartitionFetch`]), so is the
//! store a job commits its positions to ([`GroupCommit`]), and time is
//! tokio's, so the loop and its commits are unit-tested with a fake log, a
//! fake store and a paused clock.
//!
//! [`PartitionFetch`]: crate::read::PartitionFetch

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub mod member;
mod plan;
pub mod rebalance;
pub mod runner;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::kafka::membership::MemberLink;
use crate::offsets::{Conflict, GroupSession, OffsetsError};
use crate::read::{ConsumeError, Consumer, ConsumerEvent};
use crate::record::ConsumedRecord;
use crate::{ErrorChain, TopicPartition};

/// Why a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every partition reached its stop (`--until`).
    Reached,
    /// `--count` records were written (or read).
    Count,
    /// The shutdown future completed (a signal).
    Shutdown,
    /// The output was closed by its reader.
    OutputClosed,
    /// The group is rebalancing: the job finishes with its partitions
    /// (flush, commit) and hands them back.
    Revoked,
    /// The member lost its partitions (its session expired, or it was cut
    /// off): the job stops writing at once and commits nothing.
    Fenced,
    /// `weir offsets set --force` moved some of the group's positions
    /// while the job held them: it finishes (flush, commit the others)
    /// and the runner starts it again from the group's commits.
    Moved,
    /// A topic began or ceased to match one of the job's topic patterns:
    /// the job finishes as for a stop and the runner starts it again on
    /// the topics matched now (a member leaves the group and rejoins
    /// with the new subscription).
    TopicsChanged,
}

/// Errors every job shares.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A partition failed.
    #[error(transparent)]
    Consumer(#[from] ConsumeError),
    /// The output could not be written.
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
    /// The final commit failed.
    #[error(transparent)]
    Offsets(#[from] OffsetsError),
    /// A group's offsets could not be loaded.
    #[error(transparent)]
    Group(Box<crate::offsets::group::GroupError>),
    /// The cluster could not be reached.
    #[error(transparent)]
    Connect(Box<crate::kafka::connect::ConnectError>),
    /// The metrics endpoint could not be served.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// Membership in the group failed.
    #[error(transparent)]
    Membership(Box<crate::kafka::membership::MembershipError>),
    /// Another instance commits a partition this one reads (`--exclusive`).
    #[error(
        "group \"{group}\": instance {other} committed {partition} (offset {offset}), which this instance ({instance}) is reading"
    )]
    Conflict {
        /// The group.
        group: String,
        /// The partition.
        partition: TopicPartition,
        /// The other instance.
        other: String,
        /// The offset it committed.
        offset: i64,
        /// This instance.
        instance: String,
    },
}

impl From<crate::offsets::group::GroupError> for JobError {
    fn from(e: crate::offsets::group::GroupError) -> Self {
        Self::Group(Box::new(e))
    }
}

impl From<crate::kafka::connect::ConnectError> for JobError {
    fn from(e: crate::kafka::connect::ConnectError) -> Self {
        Self::Connect(Box::new(e))
    }
}

impl From<crate::kafka::membership::MembershipError> for JobError {
    fn from(e: crate::kafka::membership::MembershipError) -> Self {
        Self::Membership(Box::new(e))
    }
}

/// How a step of a job failed: its output, which the loop inspects for a
/// closed pipe, or anything else.
#[derive(Debug)]
pub enum StepError<E> {
    /// Writing the output failed; a closed pipe stops the job quietly.
    Output(std::io::Error),
    /// Any other failure of the job.
    Job(E),
}

impl<E> From<E> for StepError<E> {
    fn from(e: E) -> Self {
        Self::Job(e)
    }
}

/// What a step returns: `Some` when the job should stop, and why.
pub type Step<E> = Result<Option<StopReason>, StepError<E>>;

/// What a job does with the consumer's events. The [`run`] loop calls
/// these; none of them waits on the consumer.
pub trait Job {
    /// The job's errors; the loop's own ([`JobError`]) convert into them.
    type Error: From<JobError>;

    /// Handles records of one partition, in offset order.
    ///
    /// # Errors
    ///
    /// The output could not be written, or the job failed.
    fn records(&mut self, records: &[ConsumedRecord]) -> impl Future<Output = Step<Self::Error>>;

    /// A partition reached its stop; `next_offset` is where it stopped.
    fn reached(&mut self, topic: Arc<str>, partition: i32, next_offset: i64);

    /// A fetch found a partition at the end of its log
    /// ([`ConsumerEvent::CaughtUp`]); `next_offset` is past the records
    /// delivered before and any transaction markers after them.
    fn caught_up(&mut self, _at: TopicPartition, _next_offset: i64) {}

    /// No event is ready: write out what is buffered. Also called, its
    /// error ignored, when the job fails, so what was written before is
    /// not lost.
    ///
    /// # Errors
    ///
    /// The output could not be written.
    fn flush(&mut self) -> Result<(), StepError<Self::Error>> {
        Ok(())
    }

    /// The checkpoint interval ticked: emit, flush, commit. A failed
    /// commit here is the job's to retry (or not) at the next tick.
    ///
    /// # Errors
    ///
    /// The output could not be written, or the job failed.
    fn checkpoint(&mut self) -> impl Future<Output = Step<Self::Error>>;

    /// The loop stopped for `stop` and the consumer is stopped: the last
    /// emission, flush and commit. Returns another reason when it found
    /// one (the output closed meanwhile).
    ///
    /// # Errors
    ///
    /// The output could not be written, or the final commit failed.
    fn finish(&mut self, stop: StopReason) -> impl Future<Output = Step<Self::Error>>;

    /// The changes of partitions a cooperative rebalance makes while the
    /// job runs, taken once by the loop; `None` (the default) for a job
    /// that stops instead.
    fn rebalances(&mut self) -> Option<rebalance::Rebalances> {
        None
    }

    /// A cooperative rebalance takes `revoked` away, no longer read: emit,
    /// flush and commit what was done with them, then forget them.
    ///
    /// # Errors
    ///
    /// The output could not be written, or the commit failed.
    fn release(&mut self, _revoked: &[TopicPartition]) -> impl Future<Output = Step<Self::Error>> {
        async { Ok(Some(StopReason::Revoked)) }
    }

    /// A cooperative rebalance gave the job these partitions, read from
    /// `starts`, and a session of the offsets store that covers every
    /// partition it holds now (with the commits it found, whose state the
    /// job restores).
    ///
    /// # Errors
    ///
    /// Their saved state could not be restored.
    fn adopt(
        &mut self,
        _starts: BTreeMap<TopicPartition, i64>,
        _session: Option<(GroupSession, crate::offsets::GroupOffsets)>,
    ) -> Result<(), StepError<Self::Error>> {
        Ok(())
    }
}

/// Runs `job` over `consumer`'s events until every partition reached its
/// stop, the job asks to stop, the output closes, or `shutdown` completes
/// with its reason. With `checkpoint_every`, [`Job::checkpoint`] runs at
/// that interval (a zero interval as often as the timer allows). The
/// consumer is stopped before [`Job::finish`], which every stop but a
/// failure ends with. Returns why it stopped.
///
/// # Errors
///
/// A partition failed, the output could not be written (other than
/// closed), or the job failed.
pub async fn run<J: Job>(
    mut consumer: Consumer,
    job: &mut J,
    checkpoint_every: Option<Duration>,
    shutdown: impl Future<Output = StopReason>,
) -> Result<StopReason, J::Error> {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut ticks = checkpoint_every.map(Ticks::new);
    let mut handled = crate::metrics::Handled::default();
    let mut rebalances = job.rebalances();
    let outcome: Result<StopReason, StepError<J::Error>> = loop {
        if let Some(reason) = (&mut shutdown).now_or_never() {
            break Ok(reason);
        }
        if let Some(change) = rebalances.as_mut().and_then(|r| r.try_recv().ok()) {
            match rebalance(job, &mut consumer, change).await {
                Ok(None) => continue,
                Ok(Some(stop)) => break Ok(stop),
                Err(e) => break Err(e),
            }
        }
        // Once a partition has failed, the loop only goes on to its
        // failure: no checkpoint, whose commit would not outlast it.
        if !consumer.has_failed() && ticks.as_mut().is_some_and(Ticks::due) {
            match checkpoint(job, &mut consumer).await {
                Ok(None) => {}
                Ok(Some(stop)) => break Ok(stop),
                Err(e) => break Err(e),
            }
        }
        let event = match consumer.try_next() {
            Some(event) => event,
            None => {
                if let Err(e) = job.flush() {
                    break Err(e);
                }
                tokio::select! {
                    biased;
                    reason = &mut shutdown => break Ok(reason),
                    event = consumer.next() => match event {
                        Some(event) => event,
                        None => break Ok(StopReason::Reached),
                    },
                    () = tick(&mut ticks), if !consumer.has_failed() => match checkpoint(job, &mut consumer).await {
                        Ok(None) => continue,
                        Ok(Some(stop)) => break Ok(stop),
                        Err(e) => break Err(e),
                    },
                    change = rebalance::next(&mut rebalances) => match rebalance(job, &mut consumer, change).await {
                        Ok(None) => continue,
                        Ok(Some(stop)) => break Ok(stop),
                        Err(e) => break Err(e),
                    },
                }
            }
        };
        let step = match event {
            ConsumerEvent::Records(records) => {
                let step = job.records(&records).await;
                handled.batch(&records);
                step
            }
            ConsumerEvent::Reached {
                topic,
                partition,
                next_offset,
            } => {
                job.reached(topic, partition, next_offset);
                Ok(None)
            }
            ConsumerEvent::CaughtUp {
                topic,
                partition,
                next_offset,
            } => {
                job.caught_up(TopicPartition::new(topic, partition), next_offset);
                Ok(None)
            }
            ConsumerEvent::Failed(e) => Err(StepError::Job(JobError::Consumer(e).into())),
        };
        match step {
            Ok(None) => {}
            Ok(Some(stop)) => break Ok(stop),
            Err(e) => break Err(e),
        }
    };
    if !matches!(
        outcome,
        Ok(StopReason::Revoked
            | StopReason::Fenced
            | StopReason::Moved
            | StopReason::TopicsChanged)
    ) {
        crate::metrics::global().set_phase(crate::metrics::Phase::Stopping);
    }
    consumer.stop().await;
    let stop = match stopped(outcome) {
        Ok(stop) => stop,
        Err(e) => {
            let _ = job.flush();
            return Err(e);
        }
    };
    stopped(job.finish(stop).await.map(|s| s.unwrap_or(stop)))
}

/// A cooperative rebalance's change: partitions revoked stop being read
/// before the job finishes with them ([`Job::release`]); partitions
/// gained start being read once the job knows where they start
/// ([`Job::adopt`]).
async fn rebalance<J: Job>(
    job: &mut J,
    consumer: &mut Consumer,
    change: rebalance::Rebalance,
) -> Step<J::Error> {
    match change {
        rebalance::Rebalance::Revoke { partitions, done } => {
            consumer.remove(&partitions).await;
            let step = job.release(&partitions).await;
            if matches!(step, Ok(None)) {
                let _ = done.send(());
            }
            step
        }
        rebalance::Rebalance::Gain(gained) => {
            let gained = *gained;
            let starts = gained.starts();
            job.adopt(starts, gained.session)?;
            consumer.add(gained.fetchers);
            Ok(None)
        }
    }
}

/// [`Job::checkpoint`], given up when a partition fails meanwhile: the
/// job ends at the consumer's deadline (one `--timeout` after its first
/// failed fetch), not one commit's later, and the failure comes next
/// among the events.
async fn checkpoint<J: Job>(job: &mut J, consumer: &mut Consumer) -> Step<J::Error> {
    tokio::select! {
        biased;
        () = consumer.failed() => {
            tracing::debug!("checkpoint given up: a partition failed");
            Ok(None)
        }
        step = job.checkpoint() => step,
    }
}

/// How the loop takes a step's end: a closed output is a stop, other
/// output errors are [`JobError::Output`].
fn stopped<E: From<JobError>>(outcome: Result<StopReason, StepError<E>>) -> Result<StopReason, E> {
    match outcome {
        Ok(stop) => Ok(stop),
        Err(StepError::Output(e)) if is_broken_pipe(&e) => Ok(StopReason::OutputClosed),
        Err(StepError::Output(e)) => Err(JobError::Output(e).into()),
        Err(StepError::Job(e)) => Err(e),
    }
}

/// The checkpoint interval: a tokio [`Interval`] to wait on, and its
/// deadline to compare with the clock while events keep the loop busy.
/// Polling the interval there would not do: each ready poll of a timer
/// spends tokio's cooperative budget, and once it is spent the timer stays
/// pending until the loop waits, which under a steady stream may be never.
struct Ticks {
    interval: Interval,
    every: Duration,
    /// When the next checkpoint is due.
    due: Instant,
}

impl Ticks {
    fn new(every: Duration) -> Self {
        // tokio's intervals cannot be zero; the timer's resolution is 1ms.
        let every = every.max(Duration::from_millis(1));
        let due = Instant::now() + every;
        let mut interval = tokio::time::interval_at(due, every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            interval,
            every,
            due,
        }
    }

    /// Whether a checkpoint is due now; if so, the next is an interval
    /// from now, as [`MissedTickBehavior::Delay`] has it.
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if now < self.due {
            return false;
        }
        self.interval.reset();
        self.due = now + self.every;
        true
    }

    /// Waits for the next tick.
    async fn tick(&mut self) {
        self.interval.tick().await;
        self.due = Instant::now() + self.every;
    }
}

/// The next checkpoint tick; never without an interval.
async fn tick(ticks: &mut Option<Ticks>) {
    match ticks {
        Some(ticks) => ticks.tick().await,
        None => std::future::pending().await,
    }
}

/// Where a job commits its positions: a group's session with the offsets
/// store ([`GroupSession`]), or a fake in unit tests. The seam on the
/// commit side, as [`PartitionFetch`] is on the fetch side.
///
/// [`PartitionFetch`]: crate::read::PartitionFetch
pub trait GroupCommit {
    /// The group.
    fn group(&self) -> &str;

    /// This process's instance id.
    fn instance(&self) -> &str;

    /// Commits `positions`, the next offsets to read; returns the commits
    /// of other instances on these partitions found on the way.
    ///
    /// # Errors
    ///
    /// The store could not be read or did not acknowledge the commit.
    fn commit<'a>(
        &'a mut self,
        positions: &'a BTreeMap<TopicPartition, i64>,
    ) -> BoxFuture<'a, Result<Vec<Conflict>, OffsetsError>>;
}

impl GroupCommit for GroupSession {
    fn group(&self) -> &str {
        GroupSession::group(self)
    }

    fn instance(&self) -> &str {
        GroupSession::instance(self)
    }

    fn commit<'a>(
        &'a mut self,
        positions: &'a BTreeMap<TopicPartition, i64>,
    ) -> BoxFuture<'a, Result<Vec<Conflict>, OffsetsError>> {
        // Boxed, besides: the store's read and write futures nest deep
        // enough to pass the compiler's layout query depth inside the loop.
        Box::pin(GroupSession::commit(self, positions))
    }
}

/// Commits `positions` to `store` at a checkpoint (`last`: the one at a
/// stop) and checks what it found ([`check_conflicts`]). A failed commit
/// before the last is logged and left to the next checkpoint, which
/// commits the positions of then; the last one fails the job. Returns
/// whether the store acknowledged the commit.
///
/// # Errors
///
/// The last commit failed ([`JobError::Offsets`]), or another instance
/// commits these partitions under `exclusive` ([`JobError::Conflict`]).
pub async fn commit_positions(
    store: &mut impl GroupCommit,
    positions: &BTreeMap<TopicPartition, i64>,
    exclusive: bool,
    last: bool,
) -> Result<bool, JobError> {
    match store.commit(positions).await {
        Ok(conflicts) => {
            check_conflicts(store, conflicts, exclusive)?;
            Ok(true)
        }
        // The member's partitions are gone: nothing was written, and the
        // job stops for them at its next look at its lease.
        Err(OffsetsError::LeaseLapsed { group }) => {
            tracing::warn!(
                group,
                "the member's hold on its partitions lapsed; nothing committed"
            );
            Ok(false)
        }
        Err(e) if !last => {
            tracing::warn!(error = %ErrorChain(&e), "commit failed; retrying at the next interval");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Turns another instance's commits on this session's partitions into a
/// warning, or with `exclusive` into [`JobError::Conflict`].
///
/// # Errors
///
/// [`JobError::Conflict`] with `exclusive`, unless the other instance
/// started later (it is the one to yield).
pub fn check_conflicts(
    session: &impl GroupCommit,
    conflicts: Vec<Conflict>,
    exclusive: bool,
) -> Result<(), JobError> {
    for c in conflicts {
        let error = JobError::Conflict {
            group: session.group().to_owned(),
            partition: c.partition,
            other: c.instance,
            offset: c.offset,
            instance: session.instance().to_owned(),
        };
        if exclusive && c.started_later {
            // The later instance yields: the one that was running keeps
            // its partitions.
            tracing::warn!("{error}; it started later, so it is the one to exit (--exclusive)");
            continue;
        }
        if exclusive {
            return Err(error);
        }
        tracing::warn!(
            "{error}; two processes reading one partition both write its records (use --instance or --partitions to split them)"
        );
    }
    Ok(())
}

/// Periodic commits of a group's positions (at-least-once: a position is
/// committed only after the output before it is flushed).
#[derive(Debug)]
pub struct Commits {
    /// The group's session with the offsets store.
    pub session: GroupSession,
    /// Time between commits.
    pub interval: Duration,
    /// Fail when another instance commits one of these partitions.
    pub exclusive: bool,
}

impl Commits {
    /// Commits `positions` and, for a group member, mirrors them to the
    /// broker's group offsets. False when the commit failed and is left
    /// to the next interval; the `last` one fails the job instead.
    ///
    /// # Errors
    ///
    /// The `last` commit failed, or another instance's commits conflict
    /// with these ([`commit_positions`]).
    pub(crate) async fn commit(
        &mut self,
        positions: &BTreeMap<TopicPartition, i64>,
        member: Option<&MemberLink>,
        last: bool,
    ) -> Result<bool, JobError> {
        let committed =
            commit_positions(&mut self.session, positions, self.exclusive, last).await?;
        if let (true, Some(member)) = (committed, member) {
            member.mirror(positions);
        }
        Ok(committed)
    }

    /// Commits through `session` from now on (a cooperative rebalance's
    /// session that covers the partitions gained), writing only while
    /// `member` holds its partitions.
    pub(crate) fn renew(&mut self, mut session: GroupSession, member: Option<&MemberLink>) {
        if let Some(member) = member {
            session.hold_while(member.lease());
        }
        self.session = session;
    }

    /// Whether `weir offsets set --force` moved one of the positions: the
    /// job should stop with [`StopReason::Moved`].
    pub fn moved(&self) -> bool {
        self.session.moved()
    }
}

/// True when writing failed because the reader went away
/// (`weir consume ... | head`), which ends the command quietly.
pub fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
