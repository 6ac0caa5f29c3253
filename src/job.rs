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
//! The consumer's fetch side is a trait ([`PartitionFetch`]), and time is
//! tokio's, so the loop is unit-tested with a fake log and a paused clock.
//!
//! [`PartitionFetch`]: crate::consume::PartitionFetch

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::consume::output::is_broken_pipe;
use crate::consume::{ConsumeError, Consumer, ConsumerEvent};
use crate::offsets::{Conflict, GroupSession, OffsetsError};
use crate::record::ConsumedRecord;

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
}

/// Errors every job shares.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A partition failed.
    #[error(transparent)]
    Consumer(#[from] ConsumeError),
    /// The output could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
    /// The final commit failed.
    #[error(transparent)]
    Offsets(#[from] OffsetsError),
    /// Another instance commits a partition this one reads (`--exclusive`).
    #[error(
        "group \"{group}\": instance {other} committed topic \"{topic}\" partition {partition} (offset {offset}), which this instance ({instance}) is reading"
    )]
    Conflict {
        /// The group.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The other instance.
        other: String,
        /// The offset it committed.
        offset: i64,
        /// This instance.
        instance: String,
    },
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
    fn records(&mut self, records: &[ConsumedRecord]) -> Step<Self::Error>;

    /// A partition reached its stop; `next_offset` is where it stopped.
    fn reached(&mut self, topic: Arc<str>, partition: i32, next_offset: i64);

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
    let outcome: Result<StopReason, StepError<J::Error>> = loop {
        if let Some(reason) = (&mut shutdown).now_or_never() {
            break Ok(reason);
        }
        if ticks.as_mut().is_some_and(Ticks::due) {
            match job.checkpoint().await {
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
                    () = tick(&mut ticks) => match job.checkpoint().await {
                        Ok(None) => continue,
                        Ok(Some(stop)) => break Ok(stop),
                        Err(e) => break Err(e),
                    },
                }
            }
        };
        let step = match event {
            ConsumerEvent::Records(records) => job.records(&records),
            ConsumerEvent::Reached {
                topic,
                partition,
                next_offset,
            } => {
                job.reached(topic, partition, next_offset);
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

/// Turns another instance's commits on this session's partitions into a
/// warning, or with `exclusive` into [`JobError::Conflict`].
///
/// # Errors
///
/// [`JobError::Conflict`] with `exclusive`, unless the other instance
/// started later (it is the one to yield).
pub fn check_conflicts(
    session: &GroupSession,
    conflicts: Vec<Conflict>,
    exclusive: bool,
) -> Result<(), JobError> {
    for c in conflicts {
        let error = JobError::Conflict {
            group: session.group().to_owned(),
            topic: c.topic,
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

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;
    use rskafka::chrono::DateTime;
    use rskafka::client::partition::OffsetAt;
    use rskafka::record::{Record, RecordAndOffset};

    use super::*;
    use crate::consume::{Assignment, ConsumerConfig, FetchError, PartitionFetch, Until};

    /// A partition of `len` records at offsets `0..len`; a fetch past
    /// them waits its `max_wait`, as a broker does.
    struct FakeLog {
        len: i64,
    }

    impl PartitionFetch for FakeLog {
        fn fetch(
            &self,
            offset: i64,
            _max_bytes: i32,
            max_wait_ms: i32,
        ) -> BoxFuture<'_, Result<(Vec<RecordAndOffset>, i64), FetchError>> {
            Box::pin(async move {
                let records: Vec<_> = (offset.max(0)..self.len)
                    .take(100)
                    .map(|o| RecordAndOffset {
                        record: Record {
                            key: None,
                            value: Some(o.to_string().into_bytes()),
                            headers: Vec::new(),
                            timestamp: DateTime::from_timestamp_millis(o).unwrap(),
                        },
                        offset: o,
                    })
                    .collect();
                if records.is_empty() {
                    tokio::time::sleep(Duration::from_millis(max_wait_ms as u64)).await;
                }
                Ok((records, self.len))
            })
        }

        fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
            Box::pin(async move {
                Ok(match at {
                    OffsetAt::Earliest => 0,
                    _ => self.len,
                })
            })
        }
    }

    async fn consumer(len: i64, until: Until) -> Consumer {
        let assignment = Assignment {
            topic: Arc::from("t"),
            partition: 0,
            start: None,
        };
        let config = ConsumerConfig {
            until,
            fetch_max_wait: Duration::from_millis(100),
            ..ConsumerConfig::default()
        };
        Consumer::start_with(vec![(assignment, FakeLog { len })], config)
            .await
            .unwrap()
    }

    fn broken_pipe() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::BrokenPipe)
    }

    /// A job that notes what the loop asks of it, and when.
    struct Probe {
        started: Instant,
        /// Offsets of the records handed to it.
        records: Vec<i64>,
        /// Where partitions reached their stop.
        reached: Vec<i64>,
        /// When each checkpoint began, since the start.
        checkpoints: Vec<Duration>,
        /// Checkpoints that got as far as committing.
        commits: usize,
        /// How many records had been handed over at the last flush.
        flushed: usize,
        /// A step failed before the last flush.
        flushed_after_failure: bool,
        failed: bool,
        finished: Option<StopReason>,
        /// The first checkpoint takes this long.
        first_checkpoint: Duration,
        /// Writing the record at this offset fails with this error.
        write_fails: Option<(i64, std::io::ErrorKind)>,
        /// This checkpoint (from 0) finds the output closed.
        closed_at_checkpoint: Option<usize>,
        /// Each batch of records takes this long to write (blocking, as
        /// a write to a slow pipe).
        write_time: Duration,
    }

    impl Probe {
        fn new() -> Self {
            Self {
                started: Instant::now(),
                records: Vec::new(),
                reached: Vec::new(),
                checkpoints: Vec::new(),
                commits: 0,
                flushed: 0,
                flushed_after_failure: false,
                failed: false,
                finished: None,
                first_checkpoint: Duration::ZERO,
                write_fails: None,
                closed_at_checkpoint: None,
                write_time: Duration::ZERO,
            }
        }

        /// Checkpoint start times in whole milliseconds.
        fn checkpoint_ms(&self) -> Vec<u128> {
            self.checkpoints.iter().map(Duration::as_millis).collect()
        }
    }

    impl Job for Probe {
        type Error = JobError;

        fn records(&mut self, records: &[ConsumedRecord]) -> Step<JobError> {
            if !self.write_time.is_zero() {
                std::thread::sleep(self.write_time);
            }
            for record in records {
                if let Some((offset, kind)) = self.write_fails {
                    if record.offset == offset {
                        self.failed = true;
                        return Err(StepError::Output(kind.into()));
                    }
                }
                self.records.push(record.offset);
            }
            Ok(None)
        }

        fn reached(&mut self, _topic: Arc<str>, _partition: i32, next_offset: i64) {
            self.reached.push(next_offset);
        }

        fn flush(&mut self) -> Result<(), StepError<JobError>> {
            self.flushed = self.records.len();
            self.flushed_after_failure = self.failed;
            Ok(())
        }

        async fn checkpoint(&mut self) -> Step<JobError> {
            let n = self.checkpoints.len();
            self.checkpoints.push(self.started.elapsed());
            if n == 0 {
                tokio::time::sleep(self.first_checkpoint).await;
            }
            if self.closed_at_checkpoint == Some(n) {
                return Err(StepError::Output(broken_pipe()));
            }
            self.commits += 1;
            Ok(None)
        }

        async fn finish(&mut self, stop: StopReason) -> Step<JobError> {
            self.finished = Some(stop);
            if stop != StopReason::OutputClosed {
                self.commits += 1;
            }
            Ok(None)
        }
    }

    async fn shutdown_after(ms: u64) -> StopReason {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        StopReason::Shutdown
    }

    #[tokio::test(start_paused = true)]
    async fn interval_ticks_trigger_checkpoints_and_shutdown_ends_with_a_final_one() {
        let consumer = consumer(3, Until::Never).await;
        let mut probe = Probe::new();
        let every = Some(Duration::from_secs(1));
        let stop = run(consumer, &mut probe, every, shutdown_after(3500))
            .await
            .unwrap();
        assert_eq!(stop, StopReason::Shutdown);
        assert_eq!(probe.records, [0, 1, 2]);
        // One checkpoint a second while the log is idle, none at the start.
        assert_eq!(probe.checkpoint_ms(), [1000, 2000, 3000]);
        // The stop commits once more.
        assert_eq!(probe.finished, Some(StopReason::Shutdown));
        assert_eq!(probe.commits, 4);
        // The records were flushed when the log went idle.
        assert_eq!(probe.flushed, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_checkpoint_delays_the_next_ticks_instead_of_bursting() {
        let consumer = consumer(0, Until::Never).await;
        let mut probe = Probe::new();
        probe.first_checkpoint = Duration::from_millis(3500);
        let every = Some(Duration::from_secs(1));
        run(consumer, &mut probe, every, shutdown_after(7000))
            .await
            .unwrap();
        // The first runs 1s..4.5s: the missed tick fires once at once,
        // and the next ones a whole interval apart from it
        // (MissedTickBehavior::Delay). A burst would run three at 4.5s;
        // a skip would wait for 5s.
        assert_eq!(probe.checkpoint_ms(), [1000, 4500, 5500, 6500]);
    }

    /// Real time: a log that always has more keeps the loop from ever
    /// waiting, and checkpoints must still come at their interval.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checkpoints_keep_their_interval_while_records_never_stop() {
        let consumer = consumer(i64::MAX, Until::Never).await;
        let mut probe = Probe::new();
        probe.write_time = Duration::from_millis(1);
        let every = Some(Duration::from_millis(20));
        run(consumer, &mut probe, every, shutdown_after(600))
            .await
            .unwrap();
        // About 30; a loop that only noticed ticks when idle would have
        // one or two.
        assert!(
            probe.checkpoints.len() >= 10,
            "{} checkpoints in 600ms at 20ms, {} records",
            probe.checkpoints.len(),
            probe.records.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_interval_there_are_no_checkpoints() {
        let consumer = consumer(2, Until::Never).await;
        let mut probe = Probe::new();
        let stop = run(consumer, &mut probe, None, shutdown_after(10_000))
            .await
            .unwrap();
        assert_eq!(stop, StopReason::Shutdown);
        assert!(probe.checkpoints.is_empty());
        assert_eq!(probe.finished, Some(StopReason::Shutdown));
    }

    #[tokio::test(start_paused = true)]
    async fn reaching_the_end_stops_with_reached() {
        let consumer = consumer(3, Until::End).await;
        let mut probe = Probe::new();
        let every = Some(Duration::from_secs(60));
        let stop = run(consumer, &mut probe, every, std::future::pending())
            .await
            .unwrap();
        assert_eq!(stop, StopReason::Reached);
        assert_eq!(probe.records, [0, 1, 2]);
        assert_eq!(probe.reached, [3]);
        assert_eq!(probe.finished, Some(StopReason::Reached));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_output_stops_quietly_and_takes_nothing_more() {
        let consumer = consumer(5, Until::Never).await;
        let mut probe = Probe::new();
        probe.write_fails = Some((2, std::io::ErrorKind::BrokenPipe));
        let every = Some(Duration::from_secs(1));
        let stop = run(consumer, &mut probe, every, std::future::pending())
            .await
            .unwrap();
        assert_eq!(stop, StopReason::OutputClosed);
        // Nothing after the record that found the pipe closed, no
        // checkpoint, and a finish told why, which commits nothing.
        assert_eq!(probe.records, [0, 1]);
        assert!(probe.checkpoints.is_empty());
        assert_eq!(probe.finished, Some(StopReason::OutputClosed));
        assert_eq!(probe.commits, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_output_closed_at_a_checkpoint_stops_there() {
        let consumer = consumer(1, Until::Never).await;
        let mut probe = Probe::new();
        probe.closed_at_checkpoint = Some(1);
        let every = Some(Duration::from_secs(1));
        let stop = run(consumer, &mut probe, every, std::future::pending())
            .await
            .unwrap();
        assert_eq!(stop, StopReason::OutputClosed);
        assert_eq!(probe.checkpoint_ms(), [1000, 2000]);
        // Only the first checkpoint committed.
        assert_eq!(probe.commits, 1);
        assert_eq!(probe.finished, Some(StopReason::OutputClosed));
    }

    #[tokio::test(start_paused = true)]
    async fn another_output_error_fails_the_job_without_a_finish() {
        let consumer = consumer(3, Until::Never).await;
        let mut probe = Probe::new();
        probe.write_fails = Some((1, std::io::ErrorKind::PermissionDenied));
        let err = run(consumer, &mut probe, None, std::future::pending())
            .await
            .unwrap_err();
        assert!(matches!(err, JobError::Output(_)), "{err}");
        assert_eq!(probe.finished, None);
        assert_eq!(probe.commits, 0);
        // What was written before is flushed.
        assert!(probe.flushed_after_failure);
        assert_eq!(probe.flushed, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_already_due_stops_before_any_record() {
        let consumer = consumer(3, Until::Never).await;
        let mut probe = Probe::new();
        let stop = run(consumer, &mut probe, None, async { StopReason::Shutdown })
            .await
            .unwrap();
        assert_eq!(stop, StopReason::Shutdown);
        assert!(probe.records.is_empty());
        assert_eq!(probe.finished, Some(StopReason::Shutdown));
    }
}
