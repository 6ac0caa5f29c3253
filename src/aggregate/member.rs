//! `weir count -g G` as a member of Kafka group G
//! ([`crate::job::member`]): each generation restores the counts and
//! positions of its assigned partitions from the offsets store, counts on,
//! and checkpoints them before handing the partitions back, so the next
//! owner resumes exactly where this one stopped.
//!
//! Exactly once ([`CountMemberPlan::exactly_once`]), each generation opens
//! its transactional output under an id naming its partitions (fencing a
//! predecessor that held the same ones) before it reads the group's
//! commits, and commits its positions to the group's offsets inside each
//! checkpoint's transaction under its generation, so that a member whose
//! partitions a rebalance moved cannot commit for them (KIP-447). Reading
//! the commits waits for transactions still open in the offsets store.
//!
//! A (window, key) row sums what one member counted: for one value per
//! (window, key) across members, a key's records must all be in one
//! partition (keyed by what is counted), as Kafka Streams' `groupByKey`
//! needs them co-partitioned.

use std::future::Future;
use std::sync::Arc;

use rskafka::client::Client;

use super::{
    Checkpoints, CountError, CountJob, CountSummary, Extractor, MemberOutput, TransactionPlan,
    count_transactional_id, open_output_topic, restore, run_job,
};
use crate::job::member::{Cluster, Generations, MemberInput, Total, run_member as run_generations};
use crate::job::{JobError, StopReason};
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::membership::MemberLink;
use crate::read::{Consumer, assign};
use crate::{TopicPartition, offsets};

/// How a member of a group counts.
#[derive(Debug, Clone)]
pub struct CountMemberPlan {
    /// The topics, consumer, offsets store and group.
    pub input: MemberInput,
    /// Exactly once: the output each generation opens transactionally
    /// (the job's `topic` is then set per generation).
    pub exactly_once: Option<MemberOutput>,
}

/// Runs `job` as a member of the plan's group until `shutdown` completes
/// or the job ends; then leaves the group. `job.checkpoints` and
/// `job.member` are set per generation.
///
/// # Errors
///
/// The group could not be joined, its state could not be restored or
/// committed, a partition failed, or an output could not be written.
pub async fn run_member(
    client: &Arc<Client>,
    connection: &ConnectionConfig,
    plan: CountMemberPlan,
    job: CountJob,
    shutdown: impl Future<Output = StopReason>,
) -> Result<CountSummary, CountError> {
    let membership = plan.input.membership.clone();
    let member = Member { plan, job };
    run_generations(client, connection, membership, member, shutdown).await
}

/// The count job, one generation at a time.
struct Member {
    plan: CountMemberPlan,
    job: CountJob,
}

impl Generations for Member {
    type Error = CountError;
    type Summary = CountSummary;

    async fn generation(
        &mut self,
        cluster: Cluster<'_>,
        partitions: &[TopicPartition],
        link: MemberLink,
        total: &mut Total<CountSummary>,
        stop: impl Future<Output = StopReason>,
    ) -> Result<StopReason, CountError> {
        let mut assignments = assign(cluster.client, &self.plan.input.selection)
            .await
            .map_err(JobError::from)?;
        let all = assignments.len();
        assignments.retain(|a| partitions.contains(&a.topic_partition()));
        let by_key = matches!(self.job.config.by.as_slice(), [Extractor::Key]);
        if assignments.len() < all && !by_key {
            tracing::warn!(
                group = %self.plan.input.membership.group,
                held = assignments.len(),
                of = all,
                "this member holds only part of the input: a (window, key) row sums what its partitions saw, exact only when all records of a key are in one partition"
            );
        }
        let group = &self.plan.input.membership.group;
        if let Some(output) = &self.plan.exactly_once {
            let plan = TransactionPlan {
                id: count_transactional_id(group, partitions),
                timeout: output.transaction_timeout,
            };
            // Before the commits are read: a predecessor with the same
            // partitions is fenced and what it left open aborted.
            self.job.topic = None;
            let topic = open_output_topic(
                cluster.client,
                cluster.connection,
                &output.topic,
                output.input.as_deref(),
                Some(plan),
            )
            .await
            .map_err(Box::new)?;
            self.job.topic = Some(topic);
        }
        let joined = offsets::group::join(
            cluster.client,
            cluster.connection,
            &self.plan.input.store,
            group,
            &mut assignments,
        )
        .await
        .map_err(JobError::from)?;
        let mut restored = super::Restored::default();
        self.job.checkpoints = match joined {
            Some((mut session, offsets)) => {
                let mine: Vec<_> = assignments.iter().map(|a| a.topic_partition()).collect();
                restored = restore(&mut session, &offsets, &mine, &self.job.config.aggs)?;
                Some(Checkpoints {
                    session,
                    exclusive: false,
                })
            }
            None => None,
        };
        self.job.member = Some(link);
        if let Some(count) = &mut self.job.config.count {
            let counted = total.so_far().map_or(0, CountSummary::counted);
            *count = count.saturating_sub(counted);
        }
        let consumer = Consumer::start(
            cluster.client,
            assignments,
            self.plan.input.consumer.clone(),
        )
        .await
        .map_err(JobError::from)?;
        let summary = match run_job(consumer, &mut self.job, restored, stop).await {
            Ok(summary) => summary,
            // Another member was given this one's partitions (its session
            // expired while it was frozen, or a rebalance moved them), and
            // this one learnt it from its output's transaction before the
            // group told it: its rows, its checkpoint or its offsets were
            // refused. It writes nothing more for them: the run has aborted
            // what it left open, and the member rejoins and restores from
            // what is committed.
            Err(CountError::Fenced { id }) => {
                tracing::warn!(
                    group = group.as_str(),
                    transactional_id = id.as_str(),
                    "fenced: another member took this one's partitions; rejoining"
                );
                return Ok(StopReason::Fenced);
            }
            Err(e @ CountError::Rebalanced { .. }) => {
                tracing::warn!(error = %e, "partitions lost before the checkpoint committed; rejoining");
                return Ok(StopReason::Fenced);
            }
            Err(e) => return Err(e),
        };
        Ok(total.add(summary))
    }
}
