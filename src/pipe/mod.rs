//! `weir pipe`: records of one or more topics, filtered, re-keyed and
//! reshaped, produced to another topic, at least once or exactly once.
//!
//! Each record that passes the filter is transformed and handed to the
//! producer (idempotent unless configured otherwise), headers and
//! timestamp carried over. At least once, a checkpoint first waits until
//! the output topic has acknowledged every record handed to it, then
//! commits the input positions: a crash between the two produces the
//! records since the last commit again, never loses one. Exactly once
//! ([`lanes`]), each input partition's output records and the commit of
//! its position are one Kafka transaction. Records of one input partition
//! keep their order in each output partition.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::aggregate::Extractor;
use crate::consume::filter::{Filter, Verdict};
use crate::consume::output::OutputFormat;
use crate::job::Commits;
use crate::job::member::Summary;
use crate::job::rebalance::Rebalances;
use crate::job::{self, Job, JobError, Step, StepError, StopReason};
use crate::kafka::admin::AdminError;
use crate::kafka::idempotence::ProducerIdError;
use crate::kafka::membership::MemberLink;
use crate::kafka::transaction::TransactionError;
use crate::offsets::{GroupOffsets, GroupSession};
use crate::produce::producer::{Delivery, ProduceError, Producer};
use crate::read::Consumer;
use crate::record::ConsumedRecord;
use crate::{ErrorChain, TopicPartition};

pub mod lanes;
mod reading;
mod transform;

pub use lanes::{LanePlan, Lanes};
pub(crate) use reading::open_output;
pub use reading::{PipeTo, pipe};
pub(crate) use transform::Reshaper;

/// How an output record is made from an input record. The default keeps
/// the key and the value, and places the record by its key.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Transform {
    /// The output key: `None` keeps the input's key.
    pub key: Option<Extractor>,
    /// The output value: `None` keeps the input's value.
    pub value: Option<ValueFrom>,
    /// Write to the input record's partition number instead of placing
    /// by key.
    pub keep_partition: bool,
}

/// `with_*` builders, each setting the field of its name.
impl Transform {
    /// With [`key`](Self::key) (`--key-from`).
    #[must_use]
    pub fn with_key(mut self, key: Option<Extractor>) -> Self {
        self.key = key;
        self
    }

    /// With [`value`](Self::value) (`--value` or `--format`).
    #[must_use]
    pub fn with_value(mut self, value: Option<ValueFrom>) -> Self {
        self.value = value;
        self
    }

    /// With [`keep_partition`](Self::keep_partition) (`--keep-partition`).
    #[must_use]
    pub fn with_keep_partition(mut self, keep: bool) -> Self {
        self.keep_partition = keep;
        self
    }
}

/// Where an output value comes from.
#[derive(Debug)]
pub enum ValueFrom {
    /// A field (or any extractor) of the input.
    Extract(Extractor),
    /// A template, as `weir consume -f` writes it (without its newline).
    Template(OutputFormat),
}

/// The job: what passes, how it changes, where it goes.
pub struct PipeJob {
    /// Which input records are piped.
    pub filter: Filter,
    /// How each becomes an output record.
    pub transform: Transform,
    /// Where the records go.
    pub output: PipeOutput,
    /// Commit the group's positions, each after the output acknowledged
    /// everything before it (and, exactly once, in one transaction with
    /// it).
    pub commits: Option<Commits>,
    /// As a member of a group: write and commit only while it holds its
    /// partitions.
    pub member: Option<MemberLink>,
}

/// The output topic's producers.
#[derive(Debug)]
// One per job: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum PipeOutput {
    /// One producer; a commit waits for its acknowledgements.
    AtLeastOnce {
        /// The producer.
        producer: Producer,
        /// Its deliveries.
        deliveries: mpsc::UnboundedReceiver<Delivery>,
    },
    /// A transactional producer per input partition; the job needs
    /// [`PipeJob::commits`].
    ExactlyOnce(Lanes),
}

impl std::fmt::Debug for PipeJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeJob")
            .field("filter", &self.filter)
            .field("transform", &self.transform)
            .field("commits", &self.commits)
            .finish_non_exhaustive()
    }
}

/// Errors of `weir pipe`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// Consuming or committing failed.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The output topic did not take a record.
    #[error("writing to the output topic (nothing after the last commit is committed)")]
    Produce(#[source] Arc<ProduceError>),
    /// The output topic cannot take an input record (too large, outside
    /// its timestamp limits, without a key for a compacted topic); it was
    /// refused before it was sent.
    #[error(
        "the record at {at} offset {offset} cannot be written to the output (nothing after the last commit is committed)"
    )]
    Record {
        /// The input partition.
        at: TopicPartition,
        /// The input record's offset.
        offset: i64,
        /// Why.
        #[source]
        source: Arc<ProduceError>,
    },
    /// A transaction could not be opened or ended.
    #[error("the output's transaction (nothing after the last commit is committed)")]
    Transaction(#[source] Box<TransactionError>),
    /// Another instance took over an input partition's transactional id
    /// (a restart or a replacement while this one was stalled).
    #[error(
        "fenced: another instance started with transactional id \"{id}\" since this one did, and took over its input partition; this one stops, and what it left open is aborted"
    )]
    Fenced {
        /// The transactional id.
        id: String,
    },
    /// The output topic does not exist.
    #[error(
        "output topic \"{topic}\" does not exist (weir does not create topics on its own: run weir topics create)"
    )]
    NoOutputTopic {
        /// The output topic.
        topic: String,
    },
    /// The output topic could not be described.
    #[error(transparent)]
    Admin(AdminError),
    /// The idempotent producer's id could not be had.
    #[error(transparent)]
    ProducerId(#[from] ProducerIdError),
    /// An exactly-once output without a group, whose offsets its
    /// transactions commit.
    #[error("an exactly-once output needs a group (-g), whose offsets its transactions commit")]
    ExactlyOnceWithoutGroup,
    /// A record of a partition that has no transactional producer.
    #[error("no transactional producer for {0}")]
    NoLane(TopicPartition),
}

impl PipeError {
    /// A record the output refused before sending, named by the input
    /// record it came from.
    pub(crate) fn naming(self, record: &ConsumedRecord) -> Self {
        match self {
            Self::Produce(source) if source.is_record_refusal() => Self::Record {
                at: record.topic_partition(),
                offset: record.offset,
                source,
            },
            other => other,
        }
    }
}

impl From<TransactionError> for PipeError {
    fn from(e: TransactionError) -> Self {
        match e.fenced_id() {
            Some(id) => Self::Fenced { id: id.to_owned() },
            None => Self::Transaction(Box::new(e)),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct PipeSummary {
    /// Records read.
    pub read: u64,
    /// Records produced and acknowledged.
    pub written: u64,
    /// Records the filter rejected.
    pub filtered: u64,
    /// Records skipped: the filter, the key or the value could not be
    /// read from them (not JSON, no such field, no regex match).
    pub unparsed: u64,
    /// Commits acknowledged by the offsets store.
    pub commits: u64,
    /// How long it ran.
    pub elapsed: Duration,
    /// Why it ended.
    pub stop: StopReason,
}

impl Summary for PipeSummary {
    fn ending(&mut self) -> (&mut Duration, &mut StopReason) {
        (&mut self.elapsed, &mut self.stop)
    }

    /// A run that piped nothing.
    fn empty(stop: StopReason) -> Self {
        Self {
            read: 0,
            written: 0,
            filtered: 0,
            unparsed: 0,
            commits: 0,
            elapsed: Duration::ZERO,
            stop,
        }
    }

    /// Adds a later run's tallies (a group member's next generation).
    fn absorb(&mut self, later: Self) {
        self.read += later.read;
        self.written += later.written;
        self.filtered += later.filtered;
        self.unparsed += later.unparsed;
        self.commits += later.commits;
        self.stop = later.stop;
    }
}

/// Runs `job` over `consumer` until the consumer ends or `shutdown`
/// completes with its reason; then waits for the output and commits.
///
/// # Errors
///
/// A partition failed, a record was refused by the output topic, or the
/// final commit failed. Nothing is committed past an unacknowledged
/// record.
pub async fn run(
    consumer: Consumer,
    mut job: PipeJob,
    shutdown: impl Future<Output = StopReason>,
) -> Result<PipeSummary, PipeError> {
    run_job(consumer, &mut job, shutdown).await
}

/// As [`run`], keeping `job` for another run (a group member's next
/// generation).
///
/// # Errors
///
/// As [`run`].
pub async fn run_job(
    consumer: Consumer,
    job: &mut PipeJob,
    shutdown: impl Future<Output = StopReason>,
) -> Result<PipeSummary, PipeError> {
    run_steered(consumer, job, shutdown, None).await
}

/// [`run_job`], taking the changes of partitions cooperative rebalances
/// make while it runs (at least once only: exactly once, the lanes of the
/// partitions gained are opened by a new run).
pub(crate) async fn run_steered(
    consumer: Consumer,
    job: &mut PipeJob,
    shutdown: impl Future<Output = StopReason>,
    rebalances: Option<Rebalances>,
) -> Result<PipeSummary, PipeError> {
    let started = Instant::now();
    let positions = consumer.starts();
    let interval = job.commits.as_ref().map(|c| c.interval);
    let reshaper = Reshaper::new(&job.transform);
    let mut run = Run {
        job,
        reshaper,
        rebalances,
        positions: positions.clone(),
        acknowledged: positions,
        handed: 0,
        read: 0,
        written: 0,
        filtered: 0,
        unparsed: 0,
        commits: 0,
    };
    let stop = match job::run(consumer, &mut run, interval, shutdown).await {
        Ok(stop) => stop,
        Err(e) => {
            if let PipeOutput::ExactlyOnce(lanes) = &mut run.job.output {
                lanes.abort().await;
            }
            return Err(e);
        }
    };
    let written = match &run.job.output {
        PipeOutput::AtLeastOnce { .. } => run.written,
        PipeOutput::ExactlyOnce(lanes) => lanes.written(),
    };
    Ok(PipeSummary {
        read: run.read,
        written,
        filtered: run.filtered,
        unparsed: run.unparsed,
        commits: run.commits,
        elapsed: started.elapsed(),
        stop,
    })
}

/// The job as the loop drives it.
struct Run<'a> {
    job: &'a mut PipeJob,
    reshaper: Reshaper,
    rebalances: Option<Rebalances>,
    /// Per input partition, the next offset after what was handed on (or
    /// skipped).
    positions: BTreeMap<TopicPartition, i64>,
    /// Per input partition, the next offset after what the output
    /// acknowledged: what a commit may say.
    acknowledged: BTreeMap<TopicPartition, i64>,
    /// Records handed to the producer; `written` of them acknowledged.
    handed: u64,
    read: u64,
    written: u64,
    filtered: u64,
    unparsed: u64,
    commits: u64,
}

impl Job for Run<'_> {
    type Error = PipeError;

    async fn records(&mut self, records: &[ConsumedRecord]) -> Step<PipeError> {
        if !self.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        let left_out = (self.filtered, self.unparsed);
        let outcome = self.pipe(records).await;
        if let Some(first) = records.first() {
            crate::metrics::global().left_out(
                &first.topic_partition(),
                self.filtered - left_out.0,
                self.unparsed - left_out.1,
            );
        }
        outcome
    }

    fn reached(&mut self, topic: Arc<str>, partition: i32, next_offset: i64) {
        self.positions
            .insert(TopicPartition::new(topic, partition), next_offset);
    }

    fn caught_up(&mut self, at: TopicPartition, next_offset: i64) {
        // Past transaction markers: committed once what came before is
        // acknowledged, as any position.
        let position = self.positions.entry(at).or_insert(next_offset);
        *position = (*position).max(next_offset);
    }

    async fn checkpoint(&mut self) -> Step<PipeError> {
        self.acknowledge().await?;
        if !self.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        self.commit(false).await?;
        if self.job.commits.as_ref().is_some_and(Commits::moved) {
            return Ok(Some(StopReason::Moved));
        }
        Ok(None)
    }

    fn rebalances(&mut self) -> Option<Rebalances> {
        self.rebalances.take()
    }

    async fn release(&mut self, revoked: &[TopicPartition]) -> Step<PipeError> {
        // What was handed on from them is acknowledged and committed
        // before the coordinator may give them to another member.
        self.acknowledge().await?;
        if !self.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        self.commit(true).await?;
        self.positions.retain(|tp, _| !revoked.contains(tp));
        self.acknowledged.retain(|tp, _| !revoked.contains(tp));
        Ok(None)
    }

    fn adopt(
        &mut self,
        starts: BTreeMap<TopicPartition, i64>,
        session: Option<(GroupSession, GroupOffsets)>,
    ) -> Result<(), StepError<Self::Error>> {
        self.positions.extend(starts.clone());
        self.acknowledged.extend(starts);
        if let (Some(commits), Some((session, _))) = (&mut self.job.commits, session) {
            commits.renew(session, self.job.member.as_ref());
        }
        Ok(())
    }

    async fn finish(&mut self, stop: StopReason) -> Step<PipeError> {
        self.acknowledge().await?;
        if stop == StopReason::Fenced || !self.holds_partitions() {
            return Ok(Some(StopReason::Fenced));
        }
        self.commit(true).await?;
        Ok(Some(stop))
    }
}

impl Run<'_> {
    /// Filters, reshapes and hands one partition's records to the output.
    async fn pipe(&mut self, records: &[ConsumedRecord]) -> Step<PipeError> {
        for record in records {
            self.read += 1;
            self.positions
                .insert(record.topic_partition(), record.offset + 1);
            let verdict = if self.job.filter.is_noop() {
                Verdict::Pass
            } else {
                self.job.filter.check(record)
            };
            match verdict {
                Verdict::Pass => {}
                Verdict::Reject => {
                    self.filtered += 1;
                    continue;
                }
                Verdict::Unparsed => {
                    self.unparsed += 1;
                    continue;
                }
            }
            let Some(out) = self.reshaper.apply(&self.job.transform, record, None) else {
                self.unparsed += 1;
                continue;
            };
            match &mut self.job.output {
                PipeOutput::AtLeastOnce { producer, .. } => {
                    if let Err(cause) = producer.send(self.handed, out).await {
                        let e = PipeError::Produce(Arc::new(cause));
                        return Err(StepError::Job(e.naming(record)));
                    }
                }
                PipeOutput::ExactlyOnce(lanes) => {
                    let sent = lanes.send(&record.topic_partition(), out).await;
                    sent.map_err(|e| StepError::Job(e.naming(record)))?;
                }
            }
            self.handed += 1;
        }
        // Acknowledgements are taken as they come, so they never pile up
        // between checkpoints, and a refusal ends the job at once.
        match &mut self.job.output {
            PipeOutput::AtLeastOnce { deliveries, .. } => {
                while let Ok(delivery) = deliveries.try_recv() {
                    Self::delivered(&mut self.written, delivery)?;
                }
            }
            PipeOutput::ExactlyOnce(lanes) => lanes.poll()?,
        }
        Ok(None)
    }

    fn holds_partitions(&self) -> bool {
        self.job.member.as_ref().is_none_or(MemberLink::valid)
    }

    /// Waits until the output acknowledged every record handed to it;
    /// then what a commit may say is everything handed on.
    async fn acknowledge(&mut self) -> Result<(), StepError<PipeError>> {
        // Exactly once, each lane waits for its own at its commit.
        while let PipeOutput::AtLeastOnce { deliveries, .. } = &mut self.job.output {
            if self.written >= self.handed {
                break;
            }
            let Some(delivery) = deliveries.recv().await else {
                break;
            };
            Self::delivered(&mut self.written, delivery)?;
        }
        self.acknowledged.clone_from(&self.positions);
        Ok(())
    }

    fn delivered(written: &mut u64, delivery: Delivery) -> Result<(), StepError<PipeError>> {
        match delivery.result {
            Ok(_) => {
                *written += 1;
                Ok(())
            }
            Err(cause) => {
                tracing::warn!(error = %ErrorChain(&*cause), "a record was refused by the output topic");
                Err(StepError::Job(PipeError::Produce(cause)))
            }
        }
    }

    async fn commit(&mut self, last: bool) -> Result<(), PipeError> {
        let Some(commits) = &mut self.job.commits else {
            return Ok(());
        };
        if let PipeOutput::ExactlyOnce(lanes) = &mut self.job.output {
            let committed = lanes
                .commit(&mut commits.session, &self.positions, commits.exclusive)
                .await?;
            self.commits += committed;
            if let Some(member) = &self.job.member {
                member.mirror(&self.positions);
            }
            return Ok(());
        }
        if commits
            .commit(&self.acknowledged, self.job.member.as_ref(), last)
            .await?
        {
            self.commits += 1;
        }
        Ok(())
    }
}
