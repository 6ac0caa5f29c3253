//! `weir pipe -g G` as a member of Kafka group G ([`crate::job::member`]):
//! each generation reads its assigned partitions from the group's commits
//! in the offsets store and pipes them on.
//!
//! Exactly once, each generation first starts the lanes of its partitions
//! ([`Lanes::open`]): a lane's transactional id names the group and the
//! partition, so the member given a partition fences whoever had it
//! before, and aborts what that one left open, before it reads the
//! partition's commit. A member that was frozen past its session and
//! finds its writes refused as fenced has lost those partitions: it
//! rejoins rather than exits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;

use super::{LanePlan, Lanes, PipeError, PipeJob, PipeOutput, PipeSummary, run_job};
use crate::job::Commits;
use crate::job::member::{Cluster, Generations, MemberInput, Total, run_member as run_generations};
use crate::job::{JobError, StopReason};
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::membership::MemberLink;
use crate::read::{Consumer, assign};
use crate::{TopicPartition, offsets};

/// How a member of a group pipes.
#[derive(Debug, Clone)]
pub struct PipeMemberPlan {
    /// The topics, consumer, offsets store and group.
    pub input: MemberInput,
    /// Time between commits.
    pub commit_interval: Duration,
    /// Exactly once: the lanes each generation opens.
    pub exactly_once: Option<LanePlan>,
}

/// Runs `job` as a member of the plan's group until `shutdown` completes
/// or every assigned partition reached its end; then leaves the group.
/// `job.commits`, `job.member` and, exactly once, `job.output` are set per
/// generation.
///
/// # Errors
///
/// The group could not be joined or its offsets read, a partition
/// failed, or the output refused a record.
pub async fn run_member(
    client: &Arc<Client>,
    connection: &ConnectionConfig,
    plan: PipeMemberPlan,
    job: PipeJob,
    shutdown: impl Future<Output = StopReason>,
) -> Result<PipeSummary, PipeError> {
    let membership = plan.input.membership.clone();
    let member = Member { plan, job };
    run_generations(client, connection, membership, member, shutdown).await
}

/// The pipe job, one generation at a time.
struct Member {
    plan: PipeMemberPlan,
    job: PipeJob,
}

impl Generations for Member {
    type Error = PipeError;
    type Summary = PipeSummary;

    async fn generation(
        &mut self,
        cluster: Cluster<'_>,
        partitions: &[TopicPartition],
        link: MemberLink,
        total: &mut Total<PipeSummary>,
        stop: impl Future<Output = StopReason>,
    ) -> Result<StopReason, PipeError> {
        let mut assignments = assign(cluster.client, &self.plan.input.selection)
            .await
            .map_err(JobError::from)?;
        assignments.retain(|a| partitions.contains(&a.topic_partition()));
        let group = &self.plan.input.membership.group;
        if let Some(lanes) = &self.plan.exactly_once {
            let inputs: Vec<TopicPartition> =
                assignments.iter().map(|a| a.topic_partition()).collect();
            let opened =
                Lanes::open(cluster.client, cluster.connection, group, lanes, &inputs).await?;
            self.job.output = PipeOutput::ExactlyOnce(opened);
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
        self.job.commits = joined.map(|(session, _)| Commits {
            session,
            interval: self.plan.commit_interval,
            exclusive: false,
        });
        if self.plan.exactly_once.is_some() && self.job.commits.is_none() {
            return Err(PipeError::Job(JobError::Offsets(
                crate::offsets::OffsetsError::NoStore {
                    topic: self.plan.input.store.topic.clone(),
                },
            )));
        }
        self.job.member = Some(link);
        let consumer = Consumer::start(
            cluster.client,
            assignments,
            self.plan.input.consumer.clone(),
        )
        .await
        .map_err(JobError::from)?;
        let summary = match run_job(consumer, &mut self.job, stop).await {
            Ok(summary) => summary,
            // Another member was given a partition of this one's (its
            // session expired while it was frozen): rejoin.
            Err(PipeError::Fenced { id }) => {
                tracing::warn!(
                    group = group.as_str(),
                    transactional_id = id.as_str(),
                    "fenced: a partition of this member was given to another; rejoining"
                );
                return Ok(StopReason::Fenced);
            }
            Err(e) => return Err(e),
        };
        Ok(total.add(summary))
    }
}
