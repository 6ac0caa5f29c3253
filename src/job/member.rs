//! A job as a member of a Kafka group: the broker's group coordinator
//! assigns the partitions, generation after generation; weir's offsets
//! store keeps positions and state.
//!
//! Each generation runs the job on the partitions it assigns. When the
//! group rebalances ([`StopReason::Revoked`]) the job finishes with them
//! (flush, commit) and the member rejoins for the next generation. With
//! `cooperative-sticky` (and the consumer protocol) the member rejoins
//! while the job runs on: a run whose partitions stay the same is never
//! stopped, and one whose partitions change, once the new assignment is
//! known, either changes them while it runs ([`Steer`], for jobs that
//! can: the others read on) or stops and starts again on the new set at
//! once (the member then rejoins once more if it gave partitions up, so
//! that their new owner gets them); a
//! member whose lease lapsed ([`StopReason::Fenced`]: frozen, cut off,
//! its session expired) writes and commits nothing more for them, since
//! they are someone else's by then. A stop of any other kind (a signal,
//! `--count`, the end with `--until`, a closed output) ends the job and
//! closes its membership as the Java consumer does: a dynamic member
//! leaves the group, so the others take over at once; a static one
//! (`--group-instance-id`) stays in it until its session times out, so a
//! restart with the same id takes its partitions back without a
//! rebalance.
//!
//! What the job did is each generation's [`Summary`] added up ([`Total`]),
//! timed from the join to the leave.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rskafka::client::Client;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{JobError, StopReason};
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::membership::{MemberLink, Membership, MembershipConfig, Standing};
use crate::metrics::{ErrorKind, Phase};
use crate::{ErrorChain, TopicPartition};

/// What a job's run did: one generation's, or added up over them.
pub trait Summary {
    /// A run that did nothing and stopped for `stop` (a member never
    /// given a partition).
    fn empty(stop: StopReason) -> Self;

    /// Adds what a later run (the member's next generation) did.
    fn absorb(&mut self, later: Self);

    /// How long it ran and why it stopped: a member's total takes both
    /// from the whole job.
    fn ending(&mut self) -> (&mut Duration, &mut StopReason);
}

/// What a member's generations did so far, added up.
#[derive(Debug)]
pub struct Total<S>(Option<S>);

impl<S> Default for Total<S> {
    fn default() -> Self {
        Self(None)
    }
}

impl<S: Summary> Total<S> {
    /// The generations' summary so far; `None` before the first ended.
    pub fn so_far(&self) -> Option<&S> {
        self.0.as_ref()
    }

    /// The summary added up; `None` before the first run ended.
    pub fn into_inner(self) -> Option<S> {
        self.0
    }

    /// Adds what a generation did; returns why it stopped.
    pub fn add(&mut self, mut summary: S) -> StopReason {
        let stop = *summary.ending().1;
        match &mut self.0 {
            Some(total) => total.absorb(summary),
            None => self.0 = Some(summary),
        }
        stop
    }

    /// The job's summary: every generation's, over `elapsed`, stopped for
    /// `stop`.
    fn end(self, elapsed: Duration, stop: StopReason) -> S {
        let mut total = self.0.unwrap_or_else(|| S::empty(stop));
        *total.ending().0 = elapsed;
        *total.ending().1 = stop;
        total
    }
}

/// What a member's generations reach the cluster through.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    /// The client the job reads (and writes) through.
    pub(crate) client: &'a Arc<Client>,
    /// The connection's settings, for the offsets store and transactions.
    pub(crate) connection: &'a ConnectionConfig,
}

impl<'a> Cluster<'a> {
    /// The client the job reads (and writes) through, shared.
    pub fn client(&self) -> Arc<Client> {
        Arc::clone(self.client)
    }

    /// The connection's settings, for the offsets store and transactions.
    pub fn connection(&self) -> &'a ConnectionConfig {
        self.connection
    }
}

/// A job that runs one generation at a time.
pub trait Generations {
    /// The job's errors; membership failures convert into them.
    type Error: From<JobError>;

    /// What a generation's run did.
    type Summary: Summary;

    /// Runs the job on the partitions `steer` holds (never none) until it
    /// ends or `steer` says to stop, writing only while `link` says the
    /// member holds them, and adds what it did to `total`. Returns why it
    /// stopped.
    fn generation<S: Future<Output = StopReason>>(
        &mut self,
        cluster: Cluster<'_>,
        link: MemberLink,
        total: &mut Total<Self::Summary>,
        steer: &mut Steer<'_, S>,
    ) -> impl Future<Output = Result<StopReason, Self::Error>>;
}

/// What a run hears while it runs: its stop (a signal, the end of its
/// generation) or, for a member whose job can change its partitions while
/// it runs, a cooperative rebalance's change of them.
pub struct Steer<'a, S> {
    member: Option<&'a mut Membership>,
    stop: std::pin::Pin<&'a mut S>,
    /// The partitions the job holds now; `None` standalone.
    partitions: Option<Vec<TopicPartition>>,
    /// The membership failed (the run was stopped as fenced).
    failure: Option<crate::kafka::membership::MembershipError>,
}

impl<S> std::fmt::Debug for Steer<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steer")
            .field("member", &self.member.is_some())
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

/// What [`Steer::next`] heard.
#[derive(Debug)]
pub enum Steered {
    /// Stop the run.
    Stop(StopReason),
    /// A cooperative rebalance changed the member's partitions: finish
    /// with `revoked`, then [`Steer::released`], then read `gained` too.
    Change {
        /// Partitions given up.
        revoked: Vec<TopicPartition>,
        /// Partitions gained.
        gained: Vec<TopicPartition>,
    },
}

impl<'a, S: Future<Output = StopReason>> Steer<'a, S> {
    /// A run in no group, stopped by `stop`.
    pub fn standalone(stop: std::pin::Pin<&'a mut S>) -> Self {
        Self {
            member: None,
            stop,
            partitions: None,
            failure: None,
        }
    }

    /// The partitions a member holds now; `None` standalone.
    pub fn held(&self) -> Option<&[TopicPartition]> {
        self.partitions.as_deref()
    }

    /// Whether this is a member of the broker's group.
    pub fn is_member(&self) -> bool {
        self.member.is_some()
    }

    /// Waits for the run's stop.
    pub async fn stop(&mut self) -> StopReason {
        match self.next(false).await {
            Steered::Stop(reason) => reason,
            Steered::Change { .. } => StopReason::Revoked,
        }
    }

    /// Waits for the run's stop or, `incremental`, a cooperative
    /// rebalance's change of its partitions.
    pub async fn next(&mut self, incremental: bool) -> Steered {
        let Some(member) = self.member.as_deref_mut() else {
            return Steered::Stop(self.stop.as_mut().await);
        };
        let ended = tokio::select! {
            ended = member.ended() => ended,
            reason = self.stop.as_mut() => return Steered::Stop(reason),
        };
        match ended {
            Ok(Standing::Fenced) => Steered::Stop(StopReason::Fenced),
            Ok(_) => match (incremental, member.changed(), &self.partitions) {
                (true, Some(next), Some(held)) => Steered::Change {
                    revoked: held
                        .iter()
                        .filter(|tp| !next.partitions.contains(tp))
                        .cloned()
                        .collect(),
                    gained: next
                        .partitions
                        .iter()
                        .filter(|tp| !held.contains(tp))
                        .cloned()
                        .collect(),
                },
                _ => Steered::Stop(StopReason::Revoked),
            },
            Err(e) => {
                self.failure = Some(e);
                Steered::Stop(StopReason::Fenced)
            }
        }
    }

    /// After a [`Steered::Change`], once the job finished with what it
    /// gave up: tells the coordinator, and returns the partitions held
    /// now.
    ///
    /// # Errors
    ///
    /// The member failed.
    pub async fn released(&mut self) -> Result<Vec<TopicPartition>, JobError> {
        let Some(member) = self.member.as_deref_mut() else {
            return Ok(Vec::new());
        };
        let next = member
            .released()
            .await
            .map_err(|e| membership_failed(e.into()))?;
        info!(
            group = member.group(),
            generation = next.generation,
            partitions = next.partitions.len(),
            "reading on with the new assignment"
        );
        self.partitions = Some(next.partitions.clone());
        Ok(next.partitions)
    }
}

/// Runs `job` as a member of `membership`'s group until a generation ends
/// for a reason other than a rebalance, or `shutdown` completes; then
/// leaves the group (a dynamic member) or closes its membership (a static
/// one, [`Membership::close`]). Returns what its generations did, timed
/// from the join, and why it stopped.
///
/// # Errors
///
/// The group could not be joined or rejoined, or the job failed.
pub async fn run_member<G: Generations>(
    client: Arc<Client>,
    connection: &ConnectionConfig,
    membership: MembershipConfig,
    job: &mut G,
    shutdown: impl Future<Output = StopReason>,
) -> Result<G::Summary, G::Error> {
    let started = Instant::now();
    let cluster = Cluster {
        client: &client,
        connection,
    };
    let mut total = Total::default();
    let stop = generations(cluster, membership, job, &mut total, shutdown).await?;
    Ok(total.end(started.elapsed(), stop))
}

/// The generations of [`run_member`]; returns why they stopped.
async fn generations<G: Generations>(
    cluster: Cluster<'_>,
    membership: MembershipConfig,
    job: &mut G,
    total: &mut Total<G::Summary>,
    shutdown: impl Future<Output = StopReason>,
) -> Result<StopReason, G::Error> {
    let group = membership.group.clone();
    let metrics = crate::metrics::global();
    let mut shutdown = std::pin::pin!(shutdown);
    metrics.set_phase(Phase::Rebalancing);
    // A stop while joining ends the job before it joined (leaving the
    // group, which was holding a place for this member).
    let joined = Membership::join_until(cluster.connection, membership, &mut shutdown)
        .await
        .map_err(|e| membership_failed(e.into()))?;
    let (mut member, mut generation) = match joined {
        Ok(joined) => joined,
        Err(reason) => return Ok(reason),
    };
    let stop = loop {
        metrics.set_phase(Phase::Running);
        let link = member.link(&generation);
        let empty = generation.partitions.is_empty();
        let mut steer = Steer {
            member: Some(&mut member),
            stop: shutdown.as_mut(),
            partitions: Some(generation.partitions),
            failure: None,
        };
        let stop = if empty {
            // More members than partitions: wait for the next one.
            Ok(steer.stop().await)
        } else {
            job.generation(cluster, link, total, &mut steer).await
        };
        let failure = steer.failure.take();
        let stop = match stop {
            Ok(stop) => stop,
            // The job failed: the member closes (a dynamic one leaves, so
            // the others take over at once) before the failure is
            // reported, not in the background after it.
            Err(e) => {
                leave_after_failure(member, &group).await;
                return Err(e);
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
        } else if empty {
            // Nothing was held, so nothing was handed back.
            info!(
                group = group.as_str(),
                "the rebalance ended this member's wait for partitions"
            );
        } else {
            info!(
                group = group.as_str(),
                "partitions handed back for the rebalance"
            );
        }
        generation = tokio::select! {
            next = member.released() => next.map_err(|e| membership_failed(e.into()))?,
            reason = &mut shutdown => break reason,
        };
        info!(
            group = group.as_str(),
            generation = generation.generation,
            partitions = generation.partitions.len(),
            "running on the new assignment"
        );
    };
    metrics.set_phase(Phase::Stopping);
    if let Err(e) = member.close().await {
        warn!(group = group.as_str(), error = %ErrorChain(&e), "leaving the group failed");
    }
    Ok(stop)
}

/// How long a member whose job failed tries to leave its group. The
/// failure usually took `--timeout` already, and is often the brokers'
/// (unreachable, silent): a leave given the whole `--timeout` again
/// would double the wait for nothing, where a reachable coordinator
/// answers within milliseconds.
pub const LEAVE_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// Closes `member` (a dynamic one leaves) within [`LEAVE_AFTER_FAILURE`];
/// the others take over after its session timeout if it could not.
async fn leave_after_failure(member: Membership, group: &str) {
    match tokio::time::timeout(LEAVE_AFTER_FAILURE, member.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(left)) => {
            warn!(group, error = %ErrorChain(&left), "leaving the group failed");
        }
        Err(_) => warn!(
            group,
            "leaving the group failed: no answer within {}",
            humantime::format_duration(LEAVE_AFTER_FAILURE)
        ),
    }
}

/// Counts a failure of the membership (`weir_errors_total{kind="membership"}`).
fn membership_failed(e: JobError) -> JobError {
    crate::metrics::global().error(ErrorKind::Membership);
    e
}
