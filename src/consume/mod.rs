//! The `weir consume` job: a [`Consumer`] into a [`Filter`] into a
//! [`RecordWriter`], with a tally per partition and the position of what
//! has been written and flushed.
//!
//! Output is buffered and flushed whenever the consumer has nothing more
//! ready, so a fast stream is written in large blocks and a slow one
//! appears at once. A closed output (`weir consume | head`) ends the job
//! as a success.
//!
//! The records come from the shared reader ([`crate::read`]).

pub mod filter;
pub mod output;
mod reading;

pub use reading::consume;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::TopicPartition;
use crate::consume::filter::{Filter, Verdict};
use crate::consume::output::RecordWriter;
use crate::job::member::Summary;
use crate::job::rebalance::Rebalances;
use crate::job::{Commits, Job, JobError, Step, StepError, StopReason, is_broken_pipe};
use crate::kafka::membership::MemberLink;
use crate::offsets::{GroupOffsets, GroupSession};
use crate::read::Consumer;
use crate::record::ConsumedRecord;

/// What to do with the records.
#[derive(Debug)]
pub struct ConsumeJob {
    /// Which records are written.
    pub filter: Filter,
    /// Stop after this many records have been written.
    pub count: Option<u64>,
    /// Commit the group's positions as the job goes.
    pub commits: Option<Commits>,
    /// As a member of a group through the broker's coordinator: write and
    /// commit only while the member holds its partitions, and mirror the
    /// commits to the broker's group offsets.
    pub member: Option<MemberLink>,
}

impl ConsumeJob {
    /// Whether the job may still write for its partitions: always, unless
    /// it is a group member whose lease lapsed.
    fn holds_partitions(&self) -> bool {
        self.member.as_ref().is_none_or(MemberLink::valid)
    }
}

/// Records and bytes (keys and values) read from one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionTally {
    /// Records read.
    pub records: u64,
    /// Key and value bytes read.
    pub bytes: u64,
}

/// The end of a job.
#[derive(Debug, Clone)]
pub struct ConsumeSummary {
    /// Per partition, what was read.
    pub partitions: BTreeMap<TopicPartition, PartitionTally>,
    /// Records written.
    pub written: u64,
    /// Records the filter rejected.
    pub filtered: u64,
    /// Records skipped because a JSON filter could not parse them.
    pub unparsed: u64,
    /// Per partition, the next offset after what was written and flushed
    /// (or skipped by the filter before it).
    pub positions: BTreeMap<TopicPartition, i64>,
    /// Commits acknowledged by the offsets store.
    pub commits: u64,
    /// How long the job ran.
    pub elapsed: Duration,
    /// Why it ended.
    pub stop: StopReason,
}

impl Summary for ConsumeSummary {
    fn ending(&mut self) -> (&mut Duration, &mut StopReason) {
        (&mut self.elapsed, &mut self.stop)
    }

    /// A run that read nothing.
    fn empty(stop: StopReason) -> Self {
        Self {
            partitions: BTreeMap::new(),
            written: 0,
            filtered: 0,
            unparsed: 0,
            positions: BTreeMap::new(),
            commits: 0,
            elapsed: Duration::ZERO,
            stop,
        }
    }

    /// Adds what a later run (a group's next generation) did.
    fn absorb(&mut self, later: Self) {
        for (at, tally) in later.partitions {
            let total = self.partitions.entry(at).or_default();
            total.records += tally.records;
            total.bytes += tally.bytes;
        }
        self.positions.extend(later.positions);
        self.written += later.written;
        self.filtered += later.filtered;
        self.unparsed += later.unparsed;
        self.commits += later.commits;
        self.stop = later.stop;
    }
}

/// Runs `job` over `consumer`'s records into `writer` until the consumer
/// ends, `job.count` records are written, the output is closed, or
/// `shutdown` completes with its reason ([`StopReason::Shutdown`] for a
/// signal, [`StopReason::OutputClosed`] when the caller sees the reader of
/// an idle output gone). The consumer is stopped before returning. A
/// count of 0 writes nothing and commits nothing.
///
/// # Errors
///
/// A partition that failed (after its retries) or an output that could
/// not be written. What was written before is flushed.
pub async fn run<W: Write>(
    consumer: Consumer,
    job: ConsumeJob,
    writer: &mut RecordWriter<W>,
    shutdown: impl Future<Output = StopReason>,
) -> Result<ConsumeSummary, JobError> {
    run_steered(consumer, job, writer, shutdown, None).await
}

/// [`run`], taking the changes of partitions cooperative rebalances make
/// while it runs.
pub(crate) async fn run_steered<W: Write>(
    consumer: Consumer,
    job: ConsumeJob,
    writer: &mut RecordWriter<W>,
    shutdown: impl Future<Output = StopReason>,
    rebalances: Option<Rebalances>,
) -> Result<ConsumeSummary, JobError> {
    let started = Instant::now();
    let positions = consumer.starts();
    let interval = job.commits.as_ref().map(|c| c.interval);
    let mut run = Run {
        job,
        writer,
        rebalances,
        state: State {
            partitions: BTreeMap::new(),
            flushed: positions.clone(),
            positions,
            written: 0,
            filtered: 0,
            unparsed: 0,
            commits: 0,
        },
    };
    // A record's count is checked after it is written, so 0 is checked
    // here: it reads, writes and commits nothing, not even a new group's
    // start.
    let stop = if run.job.count == Some(0) {
        consumer.stop().await;
        match run.state.flush(run.writer) {
            Ok(()) => StopReason::Count,
            Err(e) if is_broken_pipe(&e) => StopReason::OutputClosed,
            Err(e) => return Err(JobError::Output(e)),
        }
    } else {
        crate::job::run(consumer, &mut run, interval, shutdown).await?
    };
    let state = run.state;
    Ok(ConsumeSummary {
        partitions: state.partitions,
        written: state.written,
        filtered: state.filtered,
        unparsed: state.unparsed,
        positions: state.flushed,
        commits: state.commits,
        elapsed: started.elapsed(),
        stop,
    })
}

/// The job as the loop drives it.
struct Run<'w, W: Write> {
    job: ConsumeJob,
    writer: &'w mut RecordWriter<W>,
    rebalances: Option<Rebalances>,
    state: State,
}

impl<W: Write> Job for Run<'_, W> {
    type Error = JobError;

    async fn records(&mut self, records: &[ConsumedRecord]) -> Step<JobError> {
        if !self.job.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        self.state
            .write(records, &self.job, self.writer)
            .map_err(StepError::Output)
    }

    fn reached(&mut self, topic: Arc<str>, partition: i32, next_offset: i64) {
        self.state
            .positions
            .insert(TopicPartition::new(topic, partition), next_offset);
    }

    fn caught_up(&mut self, at: TopicPartition, next_offset: i64) {
        // Past transaction markers: committed once what came before is
        // flushed, as any position.
        let position = self.state.positions.entry(at).or_insert(next_offset);
        *position = (*position).max(next_offset);
    }

    fn flush(&mut self) -> Result<(), StepError<JobError>> {
        self.state.flush(self.writer).map_err(StepError::Output)
    }

    async fn checkpoint(&mut self) -> Step<JobError> {
        self.flush()?;
        if !self.job.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        if let Some(commits) = &mut self.job.commits {
            self.state
                .commit(commits, self.job.member.as_ref(), false)
                .await?;
            if commits.moved() {
                return Ok(Some(StopReason::Moved));
            }
        }
        Ok(None)
    }

    fn rebalances(&mut self) -> Option<Rebalances> {
        self.rebalances.take()
    }

    async fn release(&mut self, revoked: &[TopicPartition]) -> Step<JobError> {
        // What was written of them is flushed and committed before the
        // coordinator may give them to another member.
        self.flush()?;
        if !self.job.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        if let Some(commits) = &mut self.job.commits {
            self.state
                .commit(commits, self.job.member.as_ref(), true)
                .await?;
        }
        self.state.positions.retain(|tp, _| !revoked.contains(tp));
        self.state.flushed.retain(|tp, _| !revoked.contains(tp));
        Ok(None)
    }

    fn adopt(
        &mut self,
        starts: BTreeMap<TopicPartition, i64>,
        session: Option<(GroupSession, GroupOffsets)>,
    ) -> Result<(), StepError<Self::Error>> {
        self.state.positions.extend(starts.clone());
        self.state.flushed.extend(starts);
        if let (Some(commits), Some((session, _))) = (&mut self.job.commits, session) {
            commits.renew(session, self.job.member.as_ref());
        }
        Ok(())
    }

    async fn finish(&mut self, stop: StopReason) -> Step<JobError> {
        let mut stop = stop;
        if stop != StopReason::OutputClosed {
            match self.state.flush(self.writer) {
                Ok(()) => {}
                Err(e) if is_broken_pipe(&e) => stop = StopReason::OutputClosed,
                Err(e) => return Err(StepError::Output(e)),
            }
        }
        // A graceful stop of any kind commits what was flushed; a member
        // that lost its partitions commits nothing for them.
        if stop == StopReason::Fenced || !self.job.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        if let Some(commits) = &mut self.job.commits {
            self.state
                .commit(commits, self.job.member.as_ref(), true)
                .await?;
        }
        Ok(Some(stop))
    }
}

struct State {
    partitions: BTreeMap<TopicPartition, PartitionTally>,
    /// Next offsets after what was handed to the writer.
    positions: BTreeMap<TopicPartition, i64>,
    /// Next offsets after what the writer has flushed: what may be
    /// committed.
    flushed: BTreeMap<TopicPartition, i64>,
    written: u64,
    filtered: u64,
    unparsed: u64,
    commits: u64,
}

impl State {
    fn flush<W: Write>(&mut self, writer: &mut RecordWriter<W>) -> std::io::Result<()> {
        writer.flush()?;
        if self.flushed != self.positions {
            self.flushed.clone_from(&self.positions);
        }
        Ok(())
    }

    /// Commits the flushed positions. A failed commit is retried at the
    /// next interval, except the last one (`last`), which fails the job.
    async fn commit(
        &mut self,
        commits: &mut Commits,
        member: Option<&MemberLink>,
        last: bool,
    ) -> Result<(), JobError> {
        if commits.commit(&self.flushed, member, last).await? {
            self.commits += 1;
        }
        Ok(())
    }

    /// Writes one partition's records; `Some` when the job should stop.
    fn write<W: Write>(
        &mut self,
        records: &[ConsumedRecord],
        job: &ConsumeJob,
        writer: &mut RecordWriter<W>,
    ) -> std::io::Result<Option<StopReason>> {
        let Some(first) = records.first() else {
            return Ok(None);
        };
        let key = first.topic_partition();
        let noop = job.filter.is_noop();
        let left_out = (self.filtered, self.unparsed);
        let mut tally = PartitionTally::default();
        let mut next = None;
        let mut stop = None;
        for record in records {
            tally.records += 1;
            tally.bytes += (record.key.as_ref().map_or(0, Vec::len)
                + record.value.as_ref().map_or(0, Vec::len)) as u64;
            let verdict = if noop {
                Verdict::Pass
            } else {
                job.filter.check(record)
            };
            match verdict {
                Verdict::Pass => {
                    if let Err(e) = writer.write(record) {
                        self.add(&key, tally, next);
                        return Err(e);
                    }
                    self.written += 1;
                }
                Verdict::Reject => self.filtered += 1,
                Verdict::Unparsed => self.unparsed += 1,
            }
            next = Some(record.offset + 1);
            if job.count.is_some_and(|n| self.written >= n) {
                stop = Some(StopReason::Count);
                break;
            }
        }
        crate::metrics::global().left_out(
            &key,
            self.filtered - left_out.0,
            self.unparsed - left_out.1,
        );
        self.add(&key, tally, next);
        Ok(stop)
    }

    fn add(&mut self, key: &TopicPartition, tally: PartitionTally, next: Option<i64>) {
        let total = self.partitions.entry(key.clone()).or_default();
        total.records += tally.records;
        total.bytes += tally.bytes;
        if let Some(next) = next {
            self.positions.insert(key.clone(), next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consume::filter::FilterConfig;
    use crate::consume::output::OutputFormat;
    use crate::read::fake_log::NumberedLog;
    use crate::read::{Assignment, ConsumerConfig};

    /// What a job with `count` writes, reading without an end.
    async fn written(count: Option<u64>) -> (String, ConsumeSummary) {
        written_as(count, None).await
    }

    /// As [`written`], as a group member holding `member`'s lease.
    async fn written_as(
        count: Option<u64>,
        member: Option<MemberLink>,
    ) -> (String, ConsumeSummary) {
        let assignment = Assignment {
            topic: Arc::from("t"),
            partition: 0,
            start: None,
        };
        let config = ConsumerConfig {
            fetch_max_wait: Duration::from_millis(10),
            ..ConsumerConfig::default()
        };
        let consumer = Consumer::start_with(vec![(assignment, NumberedLog { len: 3 })], config)
            .await
            .unwrap();
        let job = ConsumeJob {
            filter: Filter::new(FilterConfig::default()),
            count,
            commits: None,
            member,
        };
        let mut writer = RecordWriter::new(Vec::new(), OutputFormat::Value);
        // The log never ends (no --until): only the count stops the job.
        let summary = tokio::time::timeout(
            Duration::from_secs(10),
            run(consumer, job, &mut writer, std::future::pending()),
        )
        .await
        .expect("the job did not stop at its count")
        .unwrap();
        let out = String::from_utf8(writer.into_inner()).unwrap();
        (out, summary)
    }

    #[tokio::test]
    async fn count_stops_after_that_many_records_and_zero_writes_none() {
        let (out, summary) = written(Some(2)).await;
        assert_eq!(out, "0\n1\n");
        assert_eq!(summary.stop, StopReason::Count);

        let (out, summary) = written(Some(0)).await;
        assert_eq!(out, "");
        assert_eq!(summary.written, 0);
        assert_eq!(summary.stop, StopReason::Count);
        // Nothing read, so every position is where it started.
        assert_eq!(
            summary.positions.get(&TopicPartition::new("t", 0)),
            Some(&0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_writes_while_its_lease_holds_and_nothing_once_it_lapsed() {
        use crate::kafka::membership::Lease;

        let lease = Lease::default();
        lease.set(Some(Instant::now() + Duration::from_secs(60)));
        let (out, summary) = written_as(Some(2), Some(MemberLink::with_lease(lease))).await;
        assert_eq!(out, "0\n1\n");
        assert_eq!(summary.stop, StopReason::Count);

        // Frozen past the lease: the records it fetches are not written.
        let lapsed = Lease::default();
        lapsed.set(Some(Instant::now() + Duration::from_millis(5)));
        tokio::time::advance(Duration::from_millis(10)).await;
        let (out, summary) = written_as(Some(2), Some(MemberLink::with_lease(lapsed))).await;
        assert_eq!(out, "");
        assert_eq!(summary.written, 0);
        assert_eq!(summary.stop, StopReason::Fenced);

        // A member that never held a lease (fenced) writes nothing either.
        let (out, _) = written_as(Some(2), Some(MemberLink::with_lease(Lease::default()))).await;
        assert_eq!(out, "");
    }
}
