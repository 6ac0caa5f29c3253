//! `weir count` and `weir agg` as the runner ([`crate::job::runner`])
//! starts them, standalone or as a member of a group: each run restores
//! the counts and positions of its partitions from the offsets store,
//! counts on, and checkpoints them before handing the partitions back, so
//! the next owner resumes exactly where this one stopped.
//!
//! Exactly once ([`CountOutput::exactly_once`]), each run opens its
//! transactional output under an id naming its partitions (fencing a
//! predecessor that held the same ones) before the runner reads the
//! group's commits, and commits its positions inside each checkpoint's
//! transaction, under its generation as a member, so that a member whose
//! partitions a rebalance moved cannot commit for them (KIP-447). Reading
//! the commits waits for transactions still open in the offsets store.
//!
//! A (window, key) row sums what one member counted: for one value per
//! (window, key) across members, a key's records must all be in one
//! partition (keyed by what is counted), as Kafka Streams' `groupByKey`
//! needs them co-partitioned.

use std::future::Future;
use std::time::Duration;

use super::{
    Checkpoints, CountConfig, CountError, CountJob, CountSummary, Extractor, Restored, RowSink,
    TransactionPlan, count_transactional_id, open_output_topic, restore, run_job,
};
use crate::job::runner::{self, Joined, Opening, ReadPlan, Reading};
use crate::job::{JobError, StopReason};
use crate::kafka::connect::ConnectionConfig;
use crate::offsets::OffsetsError;
use crate::read::Consumer;

/// Where a count's rows go besides its sink: a topic, one record per
/// (window, key).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CountOutput {
    /// The output topic, created compacted when missing.
    pub topic: String,
    /// The input topic a new output takes its partition count from.
    pub input: Option<String>,
    /// Exactly once (needs a group): rows, state and positions of each
    /// checkpoint in one transaction, open for at most this long (the
    /// Java producer's `transaction.timeout.ms`).
    pub exactly_once: Option<Duration>,
}

impl CountOutput {
    /// Rows to `topic`, created with `input`'s partition count when
    /// missing, at least once.
    pub fn new(topic: impl Into<String>, input: Option<String>) -> Self {
        Self {
            topic: topic.into(),
            input,
            exactly_once: None,
        }
    }

    /// Exactly once, transactions open for at most `timeout`.
    #[must_use]
    pub fn exactly_once(mut self, timeout: Duration) -> Self {
        self.exactly_once = Some(timeout);
        self
    }
}

/// Counts what `plan` reads by `config` into `sink` and `output` until
/// `shutdown` completes, `config.count` records are read, or every
/// partition reached its end; a member leaves its group at the end.
///
/// # Errors
///
/// The cluster could not be reached, the group not joined, its state not
/// restored or committed, a partition failed, or an output could not be
/// written.
pub async fn count(
    connection: &ConnectionConfig,
    plan: ReadPlan,
    config: CountConfig,
    sink: Option<Box<dyn RowSink>>,
    output: Option<CountOutput>,
    shutdown: impl Future<Output = StopReason>,
) -> Result<CountSummary, CountError> {
    let count = config.count;
    let job = Count {
        job: CountJob {
            config,
            sink,
            topic: None,
            checkpoints: None,
            member: None,
        },
        output,
        count,
    };
    runner::run(connection, plan, job, shutdown).await
}

/// The count job, one run at a time.
struct Count {
    job: CountJob,
    output: Option<CountOutput>,
    /// Records to read in all, over every run.
    count: Option<u64>,
}

impl Reading for Count {
    type Error = CountError;
    type Summary = CountSummary;

    async fn open(&mut self, opening: Opening<'_>) -> Result<(), CountError> {
        let by_key = matches!(self.job.config.by.as_slice(), [Extractor::Key]);
        if opening.member && opening.partitions.len() < opening.selected && !by_key {
            tracing::warn!(
                group = opening.group.unwrap_or_default(),
                held = opening.partitions.len(),
                of = opening.selected,
                "this member holds only part of the input: a (window, key) row sums what its partitions saw, exact only when all records of a key are in one partition"
            );
        }
        let Some(output) = &self.output else {
            return Ok(());
        };
        let transaction = match (output.exactly_once, opening.group) {
            (Some(timeout), Some(group)) => Some(TransactionPlan {
                id: count_transactional_id(group, opening.partitions),
                timeout,
            }),
            (Some(_), None) => return Err(CountError::ExactlyOnceWithoutGroup),
            // Opened once, for every run.
            (None, _) if self.job.topic.is_some() => return Ok(()),
            (None, _) => None,
        };
        // Exactly once, before the commits are read: a predecessor with
        // the same partitions is fenced and what it left open aborted.
        self.job.topic = None;
        // Boxed: the admin, transaction and producer futures nest deep
        // enough to pass the compiler's layout query depth.
        let topic = Box::pin(open_output_topic(
            opening.cluster.client,
            opening.cluster.connection,
            &output.topic,
            output.input.as_deref(),
            transaction,
        ))
        .await
        .map_err(Box::new)?;
        self.job.topic = Some(topic);
        Ok(())
    }

    async fn run(
        &mut self,
        consumer: Consumer,
        joined: Joined,
        so_far: Option<&CountSummary>,
        stop: impl Future<Output = StopReason>,
    ) -> Result<CountSummary, CountError> {
        let mut restored = Restored::default();
        self.job.checkpoints = None;
        if let Some((mut session, offsets)) = joined.session {
            restored = restore(
                &mut session,
                &offsets,
                &joined.partitions,
                &self.job.config.aggs,
            )?;
            if let Some(member) = &joined.member {
                session.hold_while(member.lease());
            }
            self.job.checkpoints = joined.commits.map(|plan| Checkpoints {
                session,
                exclusive: plan.exclusive,
            });
        }
        self.job.member = joined.member;
        self.job.config.count = self
            .count
            .map(|n| n.saturating_sub(so_far.map_or(0, CountSummary::counted)));
        run_job(consumer, &mut self.job, restored, stop).await
    }

    fn partitions_lost(error: &CountError) -> Option<&'static str> {
        match error {
            CountError::Fenced { .. } => {
                Some("fenced: another member took this one's partitions; rejoining")
            }
            CountError::Rebalanced { .. } => {
                Some("partitions lost before the checkpoint committed; rejoining")
            }
            CountError::Job(JobError::Offsets(OffsetsError::LeaseLapsed { .. })) => {
                Some("fenced: this member's hold on its partitions lapsed; rejoining")
            }
            _ => None,
        }
    }
}
