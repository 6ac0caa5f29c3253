//! `weir consume -g G` as a member of Kafka group G
//! ([`crate::job::member`]): each generation reads its assigned
//! partitions from the group's commits in the offsets store (the `--from`
//! position for partitions without one).

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;

use super::filter::Filter;
use super::output::RecordWriter;
use super::{ConsumeJob, ConsumeSummary};
use crate::job::Commits;
use crate::job::member::{Cluster, Generations, MemberInput, Total, run_member as run_generations};
use crate::job::{JobError, StopReason};
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::membership::MemberLink;
use crate::read::{Consumer, assign};
use crate::{TopicPartition, offsets};

/// How a member of a group reads.
#[derive(Debug, Clone)]
pub struct MemberPlan {
    /// The topics, consumer, offsets store and group.
    pub input: MemberInput,
    /// Time between commits.
    pub commit_interval: Duration,
}

/// Runs `filter` into `writer` as a member of the plan's group until
/// `shutdown` completes, `count` records are written, every assigned
/// partition reached its end, or the output closes; then leaves the group.
///
/// # Errors
///
/// The group could not be joined or its offsets read, a partition failed,
/// or the output could not be written.
pub async fn run_member<W: Write>(
    client: &Arc<Client>,
    connection: &ConnectionConfig,
    plan: MemberPlan,
    filter: Filter,
    count: Option<u64>,
    writer: &mut RecordWriter<W>,
    shutdown: impl Future<Output = StopReason>,
) -> Result<ConsumeSummary, JobError> {
    let membership = plan.input.membership.clone();
    let job = Member {
        plan,
        filter,
        count,
        writer,
    };
    run_generations(client, connection, membership, job, shutdown).await
}

/// The consume job, one generation at a time.
struct Member<'a, W: Write> {
    plan: MemberPlan,
    filter: Filter,
    count: Option<u64>,
    writer: &'a mut RecordWriter<W>,
}

impl<W: Write> Generations for Member<'_, W> {
    type Error = JobError;
    type Summary = ConsumeSummary;

    async fn generation(
        &mut self,
        cluster: Cluster<'_>,
        partitions: &[TopicPartition],
        link: MemberLink,
        total: &mut Total<ConsumeSummary>,
        stop: impl Future<Output = StopReason>,
    ) -> Result<StopReason, JobError> {
        let mut assignments = assign(cluster.client, &self.plan.input.selection).await?;
        assignments.retain(|a| partitions.contains(&a.topic_partition()));
        let joined = offsets::group::join(
            cluster.client,
            cluster.connection,
            &self.plan.input.store,
            &self.plan.input.membership.group,
            &mut assignments,
        )
        .await?;
        let job = ConsumeJob {
            filter: self.filter.clone(),
            count: self.count.map(|n| {
                let written = total.so_far().map_or(0, |t| t.written);
                n.saturating_sub(written)
            }),
            commits: joined.map(|(session, _)| Commits {
                session,
                interval: self.plan.commit_interval,
                exclusive: false,
            }),
            member: Some(link),
        };
        let consumer = Consumer::start(
            cluster.client,
            assignments,
            self.plan.input.consumer.clone(),
        )
        .await?;
        let summary = super::run(consumer, job, self.writer, stop).await?;
        Ok(total.add(summary))
    }
}
