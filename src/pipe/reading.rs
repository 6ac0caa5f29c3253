//! `weir pipe` as the runner ([`crate::job::runner`]) starts it,
//! standalone or as a member of a group: each run reads its partitions
//! from the group's commits and pipes them on.
//!
//! Exactly once, each run first starts the lanes of its partitions
//! ([`Lanes::open`]): a lane's transactional id names the group and the
//! partition, so the member given a partition fences whoever had it
//! before, and aborts what that one left open, before the runner reads
//! the partition's commit. A member that was frozen past its session and
//! finds its writes refused as fenced has lost those partitions: it
//! rejoins rather than exits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{LanePlan, Lanes, PipeError, PipeJob, PipeOutput, PipeSummary, Transform};
use crate::consume::filter::Filter;
use crate::job::runner::{self, Joined, Opening, ReadPlan, Reading};
use crate::job::{JobError, StopReason};
use crate::kafka::admin::{Admin, AdminError};
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::idempotence::producer_id;
use crate::offsets::OffsetsError;
use crate::produce::producer::{Delivery, Producer, ProducerConfig};
use crate::read::Consumer;

/// Where a pipe's records go.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PipeTo {
    /// The output topic, which must exist.
    pub topic: String,
    /// Batching and compression; its `producer_id` is asked of the
    /// cluster here.
    pub producer: ProducerConfig,
    /// Idempotent (the Java producer's default since 3.0): a retried
    /// batch is never stored twice.
    pub idempotence: bool,
    /// Exactly once (needs a group): each input partition's records and
    /// its commit in one transaction, open for at most this long.
    pub exactly_once: Option<Duration>,
}

impl PipeTo {
    /// Records to `topic`, batched as `producer` says, idempotent, at
    /// least once.
    pub fn new(topic: impl Into<String>, producer: ProducerConfig) -> Self {
        Self {
            topic: topic.into(),
            producer,
            idempotence: true,
            exactly_once: None,
        }
    }

    /// Without idempotence (`--no-idempotence`).
    #[must_use]
    pub fn without_idempotence(mut self) -> Self {
        self.idempotence = false;
        self
    }

    /// Exactly once, transactions open for at most `timeout`.
    #[must_use]
    pub fn exactly_once(mut self, timeout: Duration) -> Self {
        self.exactly_once = Some(timeout);
        self
    }
}

/// Pipes what `plan` reads, filtered by `filter` and reshaped by
/// `transform`, to `to`, until `shutdown` completes or every partition
/// reached its end; a member leaves its group at the end.
///
/// # Errors
///
/// The cluster could not be reached, the output topic does not exist,
/// the group could not be joined or its offsets read, a partition failed,
/// or the output refused a record.
pub async fn pipe(
    connection: &ConnectionConfig,
    plan: ReadPlan,
    filter: Filter,
    transform: Transform,
    to: PipeTo,
    shutdown: impl Future<Output = StopReason>,
) -> Result<PipeSummary, PipeError> {
    let store = plan.group.as_ref().map(|g| g.store.topic.clone());
    let job = Pipe {
        filter,
        transform: Some(transform),
        to,
        store,
        partitions: None,
        job: None,
    };
    runner::run(connection, plan, job, shutdown).await
}

/// The pipe job, one run at a time.
struct Pipe {
    filter: Filter,
    /// Until the job is made.
    transform: Option<Transform>,
    to: PipeTo,
    /// The offsets store's topic, with a group.
    store: Option<String>,
    /// The output topic's partition count, once known.
    partitions: Option<i32>,
    /// Made at the first run's opening.
    job: Option<PipeJob>,
}

impl Pipe {
    /// The output topic's partition count, asked once.
    async fn partitions(&mut self, connection: &ConnectionConfig) -> Result<i32, PipeError> {
        if let Some(n) = self.partitions {
            return Ok(n);
        }
        let n = output_partitions(connection, &mut self.to).await?;
        self.partitions = Some(n);
        Ok(n)
    }
}

/// The output topic's partition count; `to`'s producer takes the limits
/// of the topic (largest record, timestamps, keys of a compacted topic).
async fn output_partitions(
    connection: &ConnectionConfig,
    to: &mut PipeTo,
) -> Result<i32, PipeError> {
    let mut admin = Admin::connect(connection).await.map_err(PipeError::Admin)?;
    let n = match admin.partition_count(&to.topic).await {
        Err(AdminError::UnknownTopic { .. }) => {
            return Err(PipeError::NoOutputTopic {
                topic: to.topic.clone(),
            });
        }
        found => found.map_err(PipeError::Admin)?,
    };
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    // Records up to what the output topic stores, alone in a batch
    // when larger than one.
    // Records the output topic refuses (outside its timestamp limits,
    // without a key for a compacted one) are refused before they are
    // sent, naming the input record, not with their batch.
    let limits = crate::produce::topic_limits(&mut admin, &to.topic).await;
    to.producer.max_message_bytes = limits.max_message_bytes;
    to.producer.timestamps = limits.timestamps;
    to.producer.keys_required = limits.compacted;
    Ok(n)
}

/// The at-least-once output of `to`: its producer (idempotent unless
/// `to` says otherwise) and the producer's deliveries.
///
/// # Errors
///
/// The output topic does not exist or cannot be described, or the
/// producer id cannot be had.
pub(crate) async fn open_output(
    connection: &ConnectionConfig,
    client: &Arc<rskafka::client::Client>,
    to: &mut PipeTo,
) -> Result<(Producer, tokio::sync::mpsc::UnboundedReceiver<Delivery>), PipeError> {
    let partitions = output_partitions(connection, to).await?;
    let producer_id = producer_id(connection, to.idempotence).await?;
    let config = ProducerConfig {
        producer_id,
        ..to.producer.clone()
    };
    Producer::new(Arc::clone(client), &to.topic, partitions, config)
        .await
        .map_err(|e| PipeError::Produce(Arc::new(e)))
}

impl Reading for Pipe {
    type Error = PipeError;
    type Summary = PipeSummary;

    async fn open(&mut self, opening: Opening<'_>) -> Result<(), PipeError> {
        let connection = opening.cluster.connection;
        let partitions = self.partitions(connection).await?;
        let output = match (self.to.exactly_once, opening.group) {
            // Each run opens the lanes of its partitions.
            (Some(timeout), Some(group)) => {
                let plan = LanePlan {
                    topic: self.to.topic.clone(),
                    partitions,
                    producer: self.to.producer.clone(),
                    transaction_timeout: timeout,
                };
                let lanes = Lanes::open(
                    opening.cluster.client(),
                    connection,
                    group,
                    &plan,
                    opening.partitions,
                )
                .await?;
                PipeOutput::ExactlyOnce(lanes)
            }
            (Some(_), None) => return Err(PipeError::ExactlyOnceWithoutGroup),
            // One producer for every run.
            (None, _) if self.job.is_some() => return Ok(()),
            (None, _) => {
                let producer_id = producer_id(connection, self.to.idempotence).await?;
                let config = ProducerConfig {
                    producer_id,
                    ..self.to.producer.clone()
                };
                let (producer, deliveries) = Producer::new(
                    Arc::clone(opening.cluster.client),
                    &self.to.topic,
                    partitions,
                    config,
                )
                .await
                .map_err(|e| PipeError::Produce(Arc::new(e)))?;
                PipeOutput::AtLeastOnce {
                    producer,
                    deliveries,
                }
            }
        };
        match (&mut self.job, self.transform.take()) {
            (Some(job), _) => job.output = output,
            (None, Some(transform)) => {
                self.job = Some(PipeJob {
                    filter: self.filter.clone(),
                    transform,
                    output,
                    commits: None,
                    member: None,
                });
            }
            (None, None) => unreachable!("the transform stays until the job is made"),
        }
        Ok(())
    }

    async fn run(
        &mut self,
        consumer: Consumer,
        mut joined: Joined,
        _so_far: Option<&PipeSummary>,
        stop: impl Future<Output = StopReason>,
    ) -> Result<PipeSummary, PipeError> {
        let job = self.job.as_mut().expect("the job is made when a run opens");
        job.member = joined.member.clone();
        let rebalances = joined.rebalances.take();
        job.commits = joined.into_commits();
        if self.to.exactly_once.is_some() && job.commits.is_none() {
            return Err(PipeError::Job(JobError::Offsets(OffsetsError::NoStore {
                topic: self.store.clone().unwrap_or_default(),
            })));
        }
        super::run_steered(consumer, job, stop, rebalances).await
    }

    /// At least once: the producer serves any input partition. Exactly
    /// once, each input partition has a transactional lane, opened (its
    /// predecessor fenced) before the run.
    fn incremental(&self) -> bool {
        self.to.exactly_once.is_none()
    }

    fn partitions_lost(error: &PipeError) -> Option<&'static str> {
        match error {
            PipeError::Fenced { .. } => {
                Some("fenced: a partition of this member was given to another; rejoining")
            }
            PipeError::Job(JobError::Offsets(OffsetsError::LeaseLapsed { .. })) => {
                Some("fenced: this member's hold on its partitions lapsed; rejoining")
            }
            _ => None,
        }
    }
}
