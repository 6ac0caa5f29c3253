//! `weir consume -g G` as a member of Kafka group G
//! ([`crate::job::member`]): each generation reads its assigned
//! partitions from the group's commits in the offsets store (the `--from`
//! position for partitions without one).

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;
use tokio::time::Instant;

use super::filter::Filter;
use super::output::RecordWriter;
use super::{Commits, ConsumeJob, ConsumeSummary, Consumer, ConsumerConfig, Selection, assign};
use crate::job::member::{Generations, run_member as run_generations};
use crate::job::{JobError, StopReason};
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::membership::{MemberLink, MembershipConfig};
use crate::offsets::StoreConfig;
use crate::{TopicPartition, offsets};

/// How a member of a group reads.
#[derive(Debug, Clone)]
pub struct MemberPlan {
    /// The topics, and where partitions without a commit start.
    pub selection: Selection,
    /// The consumer's config.
    pub consumer: ConsumerConfig,
    /// The offsets store.
    pub store: StoreConfig,
    /// Time between commits.
    pub commit_interval: Duration,
    /// The group, its topics and timeouts.
    pub membership: MembershipConfig,
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
    let started = Instant::now();
    let membership = plan.membership.clone();
    let mut job = Member {
        client,
        connection,
        plan,
        filter,
        count,
        writer,
        total: ConsumeSummary::empty(),
    };
    let stop = run_generations(connection, membership, &mut job, shutdown).await?;
    let mut total = job.total;
    total.elapsed = started.elapsed();
    total.stop = stop;
    Ok(total)
}

/// The consume job, one generation at a time.
struct Member<'a, W: Write> {
    client: &'a Arc<Client>,
    connection: &'a ConnectionConfig,
    plan: MemberPlan,
    filter: Filter,
    count: Option<u64>,
    writer: &'a mut RecordWriter<W>,
    /// What the generations so far did.
    total: ConsumeSummary,
}

impl<W: Write> Generations for Member<'_, W> {
    type Error = JobError;

    async fn generation(
        &mut self,
        partitions: &[TopicPartition],
        link: MemberLink,
        stop: impl Future<Output = StopReason>,
    ) -> Result<StopReason, JobError> {
        let mut assignments = assign(self.client, &self.plan.selection).await?;
        assignments.retain(|a| partitions.contains(&a.topic_partition()));
        let joined = offsets::group::join(
            self.client,
            self.connection,
            &self.plan.store,
            &self.plan.membership.group,
            &mut assignments,
        )
        .await?;
        let job = ConsumeJob {
            filter: self.filter.clone(),
            count: self.count.map(|n| n.saturating_sub(self.total.written)),
            commits: joined.map(|(session, _)| Commits {
                session,
                interval: self.plan.commit_interval,
                exclusive: false,
            }),
            member: Some(link),
        };
        let consumer =
            Consumer::start(self.client, assignments, self.plan.consumer.clone()).await?;
        let summary = super::run(consumer, job, self.writer, stop).await?;
        let stop = summary.stop;
        self.total.absorb(summary);
        Ok(stop)
    }
}
