//! A job as a member of a Kafka group: the broker's group coordinator
//! assigns the partitions, generation after generation; weir's offsets
//! store keeps positions and state.
//!
//! Each generation runs the job on the partitions it assigns. When the
//! group rebalances ([`StopReason::Revoked`]) the job finishes with them
//! (flush, commit) and the member rejoins for the next generation; a
//! member whose lease lapsed ([`StopReason::Fenced`]: frozen, cut off,
//! its session expired) writes and commits nothing more for them, since
//! they are someone else's by then. A stop of any other kind (a signal,
//! `--count`, the end with `--until`, a closed output) ends the job and
//! leaves the group, so the others take over at once.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;

use tracing::{info, warn};

use super::{JobError, StopReason};
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::membership::{MemberLink, Membership, MembershipConfig, Standing};
use crate::metrics::{ErrorKind, Phase};
use crate::{ErrorChain, TopicPartition};

/// A job that runs one generation at a time.
pub trait Generations {
    /// The job's errors; membership failures convert into them.
    type Error: From<JobError>;

    /// Runs the job on `partitions` (never empty) until it ends or `stop`
    /// resolves, writing only while `link` says the member holds them.
    /// Returns why it stopped.
    fn generation(
        &mut self,
        partitions: &[TopicPartition],
        link: MemberLink,
        stop: impl Future<Output = StopReason>,
    ) -> impl Future<Output = Result<StopReason, Self::Error>>;
}

/// Runs `job` as a member of `membership`'s group until a generation ends
/// for a reason other than a rebalance, or `shutdown` completes; then
/// leaves the group. Returns why it stopped.
///
/// # Errors
///
/// The group could not be joined or rejoined, or the job failed.
pub async fn run_member<G: Generations>(
    connection: &ConnectionConfig,
    membership: MembershipConfig,
    job: &mut G,
    shutdown: impl Future<Output = StopReason>,
) -> Result<StopReason, G::Error> {
    let group = membership.group.clone();
    let metrics = crate::metrics::global();
    let mut shutdown = std::pin::pin!(shutdown);
    metrics.set_phase(Phase::Rebalancing);
    let (mut member, mut generation) = Membership::join(connection, membership)
        .await
        .map_err(|e| membership_failed(e.into()))?;
    let stop = loop {
        metrics.set_phase(Phase::Running);
        let link = member.link(&generation);
        let mut failure = None;
        let stop = {
            let ended = async {
                match member.ended().await {
                    Ok(Standing::Fenced) => StopReason::Fenced,
                    Ok(_) => StopReason::Revoked,
                    Err(e) => {
                        failure = Some(e);
                        StopReason::Fenced
                    }
                }
            };
            let stop = async {
                tokio::select! {
                    stop = ended => stop,
                    reason = &mut shutdown => reason,
                }
            };
            if generation.partitions.is_empty() {
                // More members than partitions: wait for the next one.
                stop.await
            } else {
                job.generation(&generation.partitions, link, stop).await?
            }
        };
        if let Some(e) = failure {
            return Err(membership_failed(e.into()).into());
        }
        if !matches!(stop, StopReason::Revoked | StopReason::Fenced) {
            break stop;
        }
        metrics.set_phase(Phase::Rebalancing);
        metrics.rebalances.fetch_add(1, Relaxed);
        if stop == StopReason::Fenced {
            metrics.error(ErrorKind::Membership);
            warn!(
                group = group.as_str(),
                "fenced: this member's partitions went to another (its session expired, or a rebalance moved them); rejoining"
            );
        } else {
            info!(group = group.as_str(), "partitions handed back; rejoining");
        }
        generation = tokio::select! {
            next = member.released() => next.map_err(|e| membership_failed(e.into()))?,
            reason = &mut shutdown => break reason,
        };
    };
    metrics.set_phase(Phase::Stopping);
    if let Err(e) = member.leave().await {
        warn!(group = group.as_str(), error = %ErrorChain(&e), "leaving the group failed");
    }
    Ok(stop)
}

/// Counts a failure of the membership (`weir_errors_total{kind="membership"}`).
fn membership_failed(e: JobError) -> JobError {
    crate::metrics::global().error(ErrorKind::Membership);
    e
}
