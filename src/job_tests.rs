//! Unit tests of the job loop: a fake log, a paused clock, and jobs
//! that note what the loop asks of them.

use futures::future::BoxFuture;
use rskafka::client::partition::OffsetAt;
use rskafka::record::RecordAndOffset;

use super::*;
use crate::read::fake_log::{NumberedLog, numbered};
use crate::read::{Assignment, ConsumerConfig, FetchError, Fetched, PartitionFetch, Until};

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
    Consumer::start_with(vec![(assignment, NumberedLog { len })], config)
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

    async fn records(&mut self, records: &[ConsumedRecord]) -> Step<JobError> {
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

/// A partition whose record at offset `o` is written at `o` seconds and
/// a half after the start, up to `len` records: positions move while the
/// job runs.
struct TimedLog {
    started: Instant,
    len: i64,
}

impl TimedLog {
    /// The records written by now, as a fetch from `offset` sees them.
    fn written(&self, offset: i64) -> Vec<RecordAndOffset> {
        let elapsed = self.started.elapsed().as_millis() as i64;
        let end = ((elapsed + 500) / 1000).min(self.len);
        (offset.max(0)..end).map(numbered).collect()
    }
}

impl PartitionFetch for TimedLog {
    fn fetch(
        &self,
        offset: i64,
        _max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<Fetched, FetchError>> {
        Box::pin(async move {
            let records = self.written(offset);
            if records.is_empty() {
                tokio::time::sleep(Duration::from_millis(max_wait_ms as u64)).await;
            }
            let high = records.last().map_or(offset.max(0), |r| r.offset + 1);
            Ok(Fetched::plain(records, offset, high))
        })
    }

    fn offset_at(&self, _at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
        Box::pin(async { Ok(0) })
    }
}

async fn timed_consumer(len: i64) -> Consumer {
    let assignment = Assignment {
        topic: Arc::from("t"),
        partition: 0,
        start: None,
    };
    let config = ConsumerConfig {
        until: Until::Never,
        fetch_max_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    };
    let log = TimedLog {
        started: Instant::now(),
        len,
    };
    Consumer::start_with(vec![(assignment, log)], config)
        .await
        .unwrap()
}

/// A store that notes each commit asked of it and fails those it is told
/// to.
struct FakeStore {
    started: Instant,
    /// Per commit asked for: when (ms since the start) and the position
    /// of `t` partition 0.
    asked: Vec<(u128, Option<i64>)>,
    /// Whether each was acknowledged.
    acked: Vec<bool>,
    /// These commits, counted from 0, fail.
    failing: Vec<usize>,
    /// What the first commit finds that another instance committed.
    conflicts: Vec<Conflict>,
}

impl FakeStore {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            asked: Vec::new(),
            acked: Vec::new(),
            failing: Vec::new(),
            conflicts: Vec::new(),
        }
    }
}

impl GroupCommit for FakeStore {
    fn group(&self) -> &str {
        "g"
    }

    fn instance(&self) -> &str {
        "me-1"
    }

    fn commit<'a>(
        &'a mut self,
        positions: &'a BTreeMap<TopicPartition, i64>,
    ) -> BoxFuture<'a, Result<Vec<Conflict>, OffsetsError>> {
        Box::pin(async move {
            let n = self.asked.len();
            let position = positions.get(&TopicPartition::new("t", 0)).copied();
            self.asked
                .push((self.started.elapsed().as_millis(), position));
            let acknowledged = !self.failing.contains(&n);
            self.acked.push(acknowledged);
            if !acknowledged {
                return Err(OffsetsError::Commit {
                    group: "g".to_owned(),
                    partition: TopicPartition::new("__weir_offsets", 0),
                    cause: crate::offsets::CommitFailure::NoAcknowledgement {
                        timeout: Duration::from_secs(5),
                    },
                });
            }
            Ok(std::mem::take(&mut self.conflicts))
        })
    }
}

/// A job that commits as `weir consume` does: the next offset after what
/// it was handed, at every checkpoint and at the stop.
struct Committer {
    store: FakeStore,
    positions: BTreeMap<TopicPartition, i64>,
    exclusive: bool,
}

impl Committer {
    fn new(store: FakeStore) -> Self {
        Self {
            store,
            positions: BTreeMap::new(),
            exclusive: false,
        }
    }
}

impl Job for Committer {
    type Error = JobError;

    async fn records(&mut self, records: &[ConsumedRecord]) -> Step<JobError> {
        if let Some(last) = records.last() {
            self.positions
                .insert(TopicPartition::new("t", 0), last.offset + 1);
        }
        Ok(None)
    }

    fn reached(&mut self, topic: Arc<str>, partition: i32, next_offset: i64) {
        self.positions
            .insert(TopicPartition::new(topic, partition), next_offset);
    }

    async fn checkpoint(&mut self) -> Step<JobError> {
        commit_positions(&mut self.store, &self.positions, self.exclusive, false).await?;
        Ok(None)
    }

    async fn finish(&mut self, _stop: StopReason) -> Step<JobError> {
        commit_positions(&mut self.store, &self.positions, self.exclusive, true).await?;
        Ok(None)
    }
}

#[tokio::test(start_paused = true)]
async fn commits_keep_their_interval_and_the_stop_commits_the_last_positions() {
    let consumer = timed_consumer(10).await;
    let mut job = Committer::new(FakeStore::new());
    let every = Some(Duration::from_secs(1));
    let stop = run(consumer, &mut job, every, shutdown_after(3200))
        .await
        .unwrap();
    assert_eq!(stop, StopReason::Shutdown);
    // Records 0, 1, 2 are written at 0.5s, 1.5s, 2.5s: each commit takes
    // the positions of its time, and the stop commits once more.
    assert_eq!(
        job.store.asked,
        [
            (1000, Some(1)),
            (2000, Some(2)),
            (3000, Some(3)),
            (3200, Some(3))
        ]
    );
    assert_eq!(job.store.acked, [true; 4]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_commit_is_retried_at_the_next_interval_with_the_positions_of_then() {
    let consumer = timed_consumer(10).await;
    let mut store = FakeStore::new();
    store.failing = vec![0];
    let mut job = Committer::new(store);
    let every = Some(Duration::from_secs(1));
    let stop = run(consumer, &mut job, every, shutdown_after(2600))
        .await
        .unwrap();
    // The failure neither stops the job nor brings the next commit
    // forward.
    assert_eq!(stop, StopReason::Shutdown);
    assert_eq!(
        job.store.asked,
        [(1000, Some(1)), (2000, Some(2)), (2600, Some(3))]
    );
    assert_eq!(job.store.acked, [false, true, true]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_last_commit_fails_the_job_naming_the_store() {
    let consumer = consumer(3, Until::End).await;
    let mut store = FakeStore::new();
    store.failing = vec![0];
    let mut job = Committer::new(store);
    let err = run(consumer, &mut job, None, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, JobError::Offsets(_)), "{err:?}");
    assert_eq!(
        crate::ErrorChain(&err).to_string(),
        "committing group \"g\" to offsets topic \"__weir_offsets\" partition 0 failed: no acknowledgement within 5s (--timeout)"
    );
    // The end of the partition was the position to commit.
    assert_eq!(job.store.asked, [(0, Some(3))]);
}

/// Runs a job whose first commit finds that instance `other-1` committed
/// offset 7 of `t` partition 0.
async fn run_with_a_conflict(exclusive: bool, started_later: bool) -> Result<StopReason, JobError> {
    let consumer = consumer(3, Until::Never).await;
    let mut store = FakeStore::new();
    store.conflicts = vec![Conflict {
        partition: TopicPartition::new("t", 0),
        instance: "other-1".to_owned(),
        offset: 7,
        started_later,
    }];
    let mut job = Committer::new(store);
    job.exclusive = exclusive;
    let every = Some(Duration::from_secs(1));
    run(consumer, &mut job, every, shutdown_after(1500)).await
}

#[tokio::test(start_paused = true)]
async fn another_instance_fails_the_job_only_under_exclusive_and_only_if_it_came_first() {
    // Without --exclusive: a warning, and the job goes on.
    assert_eq!(
        run_with_a_conflict(false, false).await.unwrap(),
        StopReason::Shutdown
    );
    // The later instance yields: the one that was running goes on.
    assert_eq!(
        run_with_a_conflict(true, true).await.unwrap(),
        StopReason::Shutdown
    );
    let err = run_with_a_conflict(true, false).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "group \"g\": instance other-1 committed topic \"t\" partition 0 (offset 7), which this instance (me-1) is reading"
    );
}

#[test]
fn broken_pipe_is_recognised() {
    assert!(is_broken_pipe(&std::io::Error::from(
        std::io::ErrorKind::BrokenPipe
    )));
    assert!(!is_broken_pipe(&std::io::Error::from(
        std::io::ErrorKind::WriteZero
    )));
    assert!(!is_broken_pipe(&std::io::Error::other("pipe")));
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_under_way_gives_way_to_a_failed_partition() {
    // Every fetch fails: the partition fails 2s (the retry timeout) after
    // the first, while the checkpoint begun at 1s would take a minute (a
    // commit to a broker that is gone).
    let log = Arc::new(crate::read::fake_log::FakeLog::new(0..3));
    *log.failures.lock().unwrap() = usize::MAX;
    let assignment = Assignment {
        topic: Arc::from("t"),
        partition: 0,
        start: None,
    };
    let config = ConsumerConfig {
        until: Until::Never,
        retry_timeout: Duration::from_secs(2),
        ..ConsumerConfig::default()
    };
    let consumer = Consumer::start_with(vec![(assignment, log)], config)
        .await
        .unwrap();
    let mut job = Probe::new();
    job.first_checkpoint = Duration::from_secs(60);
    let started = Instant::now();
    let err = run(
        consumer,
        &mut job,
        Some(Duration::from_secs(1)),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, JobError::Consumer(_)), "{err:?}");
    assert_eq!(job.checkpoint_ms(), [1000]);
    assert_eq!(job.commits, 0, "the checkpoint was given up");
    // Before, the failure waited for the checkpoint's minute.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
}
