//! `weir consume -g G` as a member of Kafka group G: the broker's group
//! coordinator assigns the partitions, weir's offsets store keeps the
//! positions.
//!
//! Each generation runs the consume job on the partitions it assigns,
//! starting from the group's commits in the store (the `--from` position
//! for partitions without one). When the group rebalances, the job
//! flushes and commits, then the member rejoins and the next generation
//! starts; a member whose lease lapsed (its session expired: frozen,
//! cut off) stops writing at once and commits nothing, since its
//! partitions are someone else's. A stop of any other kind (a signal,
//! `--count`, the end with `--until`, a closed output) commits and leaves
//! the group, so the others take over at once.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;
use tokio::time::Instant;

use super::filter::Filter;
use super::output::RecordWriter;
use super::{Commits, ConsumeJob, ConsumeSummary, Consumer, ConsumerConfig, Selection, assign};
use crate::ConnectionConfig;
use crate::job::{JobError, StopReason};
use crate::kafka::membership::{Generation, Membership, MembershipConfig, Standing};
use crate::offsets::StoreConfig;

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
    let mut shutdown = std::pin::pin!(shutdown);
    let (mut membership, mut generation) =
        Membership::join(connection, plan.membership.clone()).await?;
    let mut total = ConsumeSummary::empty();
    let stop = loop {
        let remaining = count.map(|n| n.saturating_sub(total.written));
        let link = membership.link();
        let (stop, failure) = run_generation(
            client,
            connection,
            &plan,
            &generation,
            &mut membership,
            ConsumeJob {
                filter: filter.clone(),
                count: remaining,
                commits: None,
                member: Some(link),
            },
            writer,
            &mut shutdown,
            &mut total,
        )
        .await?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        if !matches!(stop, StopReason::Revoked | StopReason::Fenced) {
            break stop;
        }
        tracing::info!(
            group = plan.membership.group.as_str(),
            stop = ?stop,
            "partitions handed back; rejoining"
        );
        generation = tokio::select! {
            next = membership.released() => next?,
            reason = &mut shutdown => break reason,
        };
    };
    if let Err(e) = membership.leave().await {
        tracing::warn!(error = %crate::ErrorChain(&e), "leaving the group failed");
    }
    total.elapsed = started.elapsed();
    total.stop = stop;
    Ok(total)
}

/// One generation: the job on its partitions until it ends. Returns why
/// it stopped, and the membership's failure if that was why.
#[allow(clippy::too_many_arguments)]
async fn run_generation<W: Write>(
    client: &Arc<Client>,
    connection: &ConnectionConfig,
    plan: &MemberPlan,
    generation: &Generation,
    membership: &mut Membership,
    mut job: ConsumeJob,
    writer: &mut RecordWriter<W>,
    shutdown: &mut (impl Future<Output = StopReason> + Unpin),
    total: &mut ConsumeSummary,
) -> Result<
    (
        StopReason,
        Option<crate::kafka::membership::MembershipError>,
    ),
    JobError,
> {
    let mut failure = None;
    let ended = async {
        match membership.ended().await {
            Ok(Standing::Fenced) => StopReason::Fenced,
            Ok(_) => StopReason::Revoked,
            Err(e) => {
                failure = Some(e);
                StopReason::Fenced
            }
        }
    };
    if generation.partitions.is_empty() {
        // More members than partitions: wait for the next generation.
        let stop = tokio::select! {
            stop = ended => stop,
            reason = shutdown => reason,
        };
        return Ok((stop, failure));
    }
    let mut assignments = assign(client, &plan.selection).await?;
    assignments.retain(|a| generation.partitions.contains(&a.topic_partition()));
    let joined = crate::offsets::group::join(
        client,
        connection,
        &plan.store,
        &plan.membership.group,
        &mut assignments,
    )
    .await?;
    job.commits = joined.map(|(session, _)| Commits {
        session,
        interval: plan.commit_interval,
        exclusive: false,
    });
    let consumer = Consumer::start(client, assignments, plan.consumer.clone()).await?;
    let stop = async {
        tokio::select! {
            stop = ended => stop,
            reason = shutdown => reason,
        }
    };
    let summary = super::run(consumer, job, writer, stop).await?;
    let stop = summary.stop;
    total.absorb(summary);
    Ok((stop, failure))
}
