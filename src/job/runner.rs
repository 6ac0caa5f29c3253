//! One runner for every reading job: `weir consume`, `count`/`agg` and
//! `pipe` plug into it ([`Reading`]), standalone or as a member of a
//! group, and it owns what they share:
//!
//! 1. the metrics server (`--metrics-addr`) and the client;
//! 2. which partitions a run reads: the selection's, or, as a member of
//!    the broker's group, each generation's share of them;
//! 3. **the exactly-once order**: [`Reading::open`] comes before the
//!    group's commits are read, so a transactional output opened there
//!    fences its predecessor and aborts what that one left open, and the
//!    commits read next are the last ones committed;
//! 4. the group's commits ([`offsets::group::join`]): where each
//!    partition resumes, and the session the job commits (and restores
//!    its state) through;
//! 5. the consumer, started from there, handed to [`Reading::run`];
//! 6. as a member, the generations ([`super::member`]): a job that finds
//!    its partitions taken through its output's transaction
//!    ([`Reading::partitions_lost`]) rejoins rather than fails.

use std::future::Future;
use std::sync::Arc;

use rskafka::client::Client;
use std::time::Duration;

use tracing::{info, warn};

use super::member::{Cluster, Generations, Steer, Steered, Summary, Total, run_member};
use super::rebalance::{self, Gained, Rebalance, Rebalances};
use super::{JobError, StopReason};
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::membership::MemberLink;
use crate::offsets::{GroupOffsets, GroupSession};
use crate::read::{Assignment, ConsumeError, Consumer, Selection, assign, pattern};
use crate::{ErrorChain, TopicPartition, offsets};

pub use super::plan::{CommitPlan, DEFAULT_PATTERN_REFRESH, GroupPlan, ReadPlan};

/// What a run is started with, before the group's commits are read.
#[derive(Debug, Clone, Copy)]
pub struct Opening<'a> {
    /// The cluster.
    pub cluster: Cluster<'a>,
    /// The group, if any.
    pub group: Option<&'a str>,
    /// The partitions this run reads.
    pub partitions: &'a [TopicPartition],
    /// How many partitions the selection has: more than `partitions` when
    /// this is a member holding its share of them.
    pub selected: usize,
    /// Whether this is a member of the broker's group.
    pub member: bool,
}

/// What a run reads with, once the group's commits are read.
#[derive(Debug)]
pub struct Joined {
    /// The partitions this run reads.
    pub partitions: Vec<TopicPartition>,
    /// The group's session with the offsets store and what it had
    /// committed; `None` without a group, or when the store does not
    /// exist and was not to be created.
    pub session: Option<(GroupSession, GroupOffsets)>,
    /// How to commit; `None` never commits.
    pub commits: Option<CommitPlan>,
    /// As a member: its hold on `partitions`.
    pub member: Option<MemberLink>,
    /// As a member whose job changes its partitions while it runs
    /// ([`Reading::incremental`]): the changes cooperative rebalances
    /// make.
    pub rebalances: Option<Rebalances>,
}

impl Joined {
    /// The periodic commits of a job that commits positions alone
    /// (without state): the session, committed as planned.
    pub fn into_commits(self) -> Option<super::Commits> {
        let (mut session, _) = self.session?;
        let plan = self.commits?;
        if let Some(member) = &self.member {
            session.hold_while(member.lease());
        }
        Some(super::Commits {
            session,
            interval: plan.interval,
            exclusive: plan.exclusive,
        })
    }
}

/// A reading job, as the runner starts it.
pub trait Reading {
    /// The job's errors; the runner's own convert into them.
    type Error: From<JobError> + std::error::Error + 'static;
    /// What a run did.
    type Summary: Summary;

    /// Opens what must come before the group's commits are read: a
    /// transactional output, which fences the run's predecessor on the
    /// same partitions and aborts what it left open. Called before every
    /// run (each generation of a member) with its partitions; outputs
    /// that do not depend on them are opened once.
    ///
    /// # Errors
    ///
    /// An output could not be opened.
    fn open(&mut self, opening: Opening<'_>) -> impl Future<Output = Result<(), Self::Error>>;

    /// Reads `consumer` until it ends or `stop` resolves, from where
    /// `joined` says (restoring the state saved with the commits).
    /// `so_far` is what the earlier generations of a member did.
    ///
    /// # Errors
    ///
    /// The job failed.
    fn run(
        &mut self,
        consumer: Consumer,
        joined: Joined,
        so_far: Option<&Self::Summary>,
        stop: impl Future<Output = StopReason>,
    ) -> impl Future<Output = Result<Self::Summary, Self::Error>>;

    /// Whether `error` says that another member was given this one's
    /// partitions (its output's transaction was fenced, its hold lapsed):
    /// then what to log, and the member rejoins and restores from what is
    /// committed, rather than failing.
    fn partitions_lost(_error: &Self::Error) -> Option<&'static str> {
        None
    }

    /// Every partition of the selection, its patterns matched, before a
    /// run starts (a member's are a share of them): what the job's
    /// sources are.
    fn selected(&mut self, _all: &[TopicPartition]) {}

    /// Whether a run takes cooperative rebalances' changes of its
    /// partitions while it runs ([`Joined::rebalances`]), reading on with
    /// those it keeps; otherwise (the default) it stops and starts again
    /// on the new assignment.
    fn incremental(&self) -> bool {
        false
    }
}

/// Runs `job` by `plan` until it ends or `shutdown` completes with its
/// reason: standalone, or as a member of the plan's group (leaving it at
/// the end). Returns what it did, timed from the call: reaching the
/// cluster, joining, loading the store and restoring state included.
///
/// # Errors
///
/// The metrics address could not be bound, the cluster not reached, the
/// selection not assigned, the group not joined or its commits not read,
/// or the job failed.
pub async fn run<J: Reading>(
    connection: &ConnectionConfig,
    plan: ReadPlan,
    job: J,
    shutdown: impl Future<Output = StopReason>,
) -> Result<J::Summary, J::Error> {
    let started = std::time::Instant::now();
    let mut summary = run_timed(connection, plan, job, shutdown).await?;
    *summary.ending().0 = started.elapsed();
    Ok(summary)
}

/// [`run`] without the whole run's time.
async fn run_timed<J: Reading>(
    connection: &ConnectionConfig,
    plan: ReadPlan,
    job: J,
    shutdown: impl Future<Output = StopReason>,
) -> Result<J::Summary, J::Error> {
    let _metrics = match &plan.metrics_addr {
        Some(addr) => Some(
            crate::metrics::serve(addr, crate::metrics::global())
                .await
                .map_err(JobError::from)?,
        ),
        None => None,
    };
    // A stop while the cluster is still being reached ends the job there.
    let mut shutdown = std::pin::pin!(shutdown);
    let client = tokio::select! {
        client = connection.client() => Arc::new(client.map_err(JobError::from)?),
        reason = &mut shutdown => return Ok(J::Summary::empty(reason)),
    };
    run_on(client, connection, plan, job, shutdown).await
}

/// [`run`] through `client`, a client the caller made (and shares) from
/// `connection`, without the metrics server and the whole run's time:
/// what a library user's group member ([`crate::group::Member`]) runs.
///
/// # Errors
///
/// As [`run`].
pub(crate) async fn run_on<J: Reading>(
    client: Arc<Client>,
    connection: &ConnectionConfig,
    plan: ReadPlan,
    job: J,
    shutdown: impl Future<Output = StopReason>,
) -> Result<J::Summary, J::Error> {
    let mut shutdown = std::pin::pin!(shutdown);
    let cluster = Cluster {
        client: &client,
        connection,
    };
    let membership = plan.group.as_ref().and_then(|g| g.membership.clone());
    let patterns: Vec<String> = plan.selection.topics.clone();
    let refresh = plan.pattern_refresh;
    let mut runs = Runs { plan, job };
    let mut total = Total::default();
    loop {
        // The topics the patterns match now; watched while the job runs.
        let matched = matching(&client, &patterns).await?;
        let changed = topics_changed(&client, &patterns, &matched, refresh);
        let stop = async {
            tokio::select! {
                reason = &mut shutdown => reason,
                reason = changed => reason,
            }
        };
        let reason = match &membership {
            Some(membership) => {
                let mut membership = membership.clone();
                membership.topics = matching(&client, &membership.topics).await?;
                // As a run standalone (its `assign`): a topic that does
                // not exist fails here, rather than leave the member in
                // the group waiting for partitions that never come.
                if !membership.topics.is_empty() {
                    assign(&client, &Selection::new(membership.topics.clone()))
                        .await
                        .map_err(JobError::from)?;
                }
                let summary =
                    run_member(Arc::clone(&client), connection, membership, &mut runs, stop)
                        .await?;
                total.add(summary)
            }
            None => {
                let mut stop = std::pin::pin!(stop);
                let mut steer = Steer::standalone(stop.as_mut());
                runs.once(cluster, None, &mut total, &mut steer).await?
            }
        };
        if reason != StopReason::TopicsChanged {
            break;
        }
        info!(
            patterns = %patterns.join(","),
            "the topics the patterns match changed: starting again on them"
        );
    }
    Ok(total.into_inner().expect("every run adds its summary"))
}

/// The topics `wanted` names now, its patterns matched.
async fn matching(client: &Client, wanted: &[String]) -> Result<Vec<String>, JobError> {
    if !wanted.iter().any(|t| pattern::is_pattern(t)) {
        return Ok(wanted.to_vec());
    }
    let topics = client
        .list_topics()
        .await
        .map_err(|e| ConsumeError::Metadata(e.into()))?;
    let matched = pattern::resolve(wanted, topics.iter().map(|t| t.name.as_str()))
        .map_err(ConsumeError::from)?;
    Ok(matched)
}

/// Completes with [`StopReason::TopicsChanged`] once the topics `wanted`'s
/// patterns match differ from `matched`, looked at every `every`; never
/// without patterns. A failed look is tried again at the next.
async fn topics_changed(
    client: &Client,
    wanted: &[String],
    matched: &[String],
    every: Duration,
) -> StopReason {
    if !wanted.iter().any(|t| pattern::is_pattern(t)) {
        return std::future::pending().await;
    }
    loop {
        tokio::time::sleep(every).await;
        match matching(client, wanted).await {
            Ok(now) if now != matched => {
                let added: Vec<&String> = now.iter().filter(|t| !matched.contains(t)).collect();
                let gone: Vec<&String> = matched.iter().filter(|t| !now.contains(t)).collect();
                info!(?added, ?gone, "the topics the patterns match changed");
                return StopReason::TopicsChanged;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %ErrorChain(&e), "matching the topic patterns failed; trying again")
            }
        }
    }
}

/// The job with its plan: one run standalone, one per generation as a
/// member.
struct Runs<J> {
    plan: ReadPlan,
    job: J,
}

impl<J: Reading> Runs<J> {
    /// One run: assign, open, read the commits, start the consumer, run.
    /// A member's run reads the partitions `steer` holds. A stop while it
    /// starts ends it before it reads. A run stopped because `weir offsets
    /// set --force` moved its positions ([`StopReason::Moved`]) starts
    /// again from the group's commits.
    async fn once<S: Future<Output = StopReason>>(
        &mut self,
        cluster: Cluster<'_>,
        link: Option<MemberLink>,
        total: &mut Total<J::Summary>,
        steer: &mut Steer<'_, S>,
    ) -> Result<StopReason, J::Error> {
        loop {
            let reason = self.run(cluster, link.clone(), total, steer).await?;
            if reason != StopReason::Moved {
                return Ok(reason);
            }
            info!(
                group = self.plan.group.as_ref().map_or("", |g| g.name.as_str()),
                "the group's offsets were moved: starting again from them"
            );
        }
    }

    /// One run of [`once`](Self::once).
    async fn run<S: Future<Output = StopReason>>(
        &mut self,
        cluster: Cluster<'_>,
        link: Option<MemberLink>,
        total: &mut Total<J::Summary>,
        steer: &mut Steer<'_, S>,
    ) -> Result<StopReason, J::Error> {
        let held = steer.held().map(<[TopicPartition]>::to_vec);
        let (consumer, mut joined) = tokio::select! {
            started = self.start(cluster, held.as_deref(), link) => started?,
            reason = steer.stop() => return Ok(total.add(J::Summary::empty(reason))),
        };
        let incremental = self.job.incremental() && steer.is_member();
        let (steering, rebalances) = rebalance::channel();
        if incremental {
            joined.rebalances = Some(rebalances);
        }
        let Self { plan, job } = self;
        let mut failure = None;
        let stop = steer_run(plan, cluster, steer, incremental, steering, &mut failure);
        let ran = job.run(consumer, joined, total.so_far(), stop).await;
        if let Some(e) = failure {
            return Err(e.into());
        }
        let group = plan.group.as_ref();
        match ran {
            Ok(summary) => Ok(total.add(summary)),
            // Another member was given this one's partitions (its session
            // expired while it was frozen, or a rebalance moved them), and
            // this one learnt it from its output's transaction before the
            // group told it. It writes nothing more for them: the run has
            // aborted what it left open, and the member rejoins and
            // restores from what is committed.
            Err(e) => match J::partitions_lost(&e).filter(|_| held.is_some()) {
                Some(lost) => {
                    warn!(
                        group = group.map_or("", |g| g.name.as_str()),
                        error = %ErrorChain(&e),
                        "{lost}"
                    );
                    Ok(StopReason::Fenced)
                }
                None => Err(e),
            },
        }
    }
}

/// What a run hears while it runs: its stop, and for an `incremental`
/// member the changes of its partitions, which it carries out with the
/// job ([`rebalance`]): the job finishes with what was revoked, the
/// coordinator is told, and what was gained is opened, resumed from the
/// group's commits and handed to the job. A failure to do so stops the
/// run as fenced, with the failure in `failure`.
async fn steer_run<S: Future<Output = StopReason>>(
    plan: &ReadPlan,
    cluster: Cluster<'_>,
    steer: &mut Steer<'_, S>,
    incremental: bool,
    steering: rebalance::Steering,
    failure: &mut Option<JobError>,
) -> StopReason {
    loop {
        let (revoked, gained) = match steer.next(incremental).await {
            Steered::Stop(reason) => return reason,
            Steered::Change { revoked, gained } => (revoked, gained),
        };
        crate::metrics::global()
            .rebalances
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !revoked.is_empty() {
            let (done, finished) = tokio::sync::oneshot::channel();
            let change = Rebalance::Revoke {
                partitions: revoked,
                done,
            };
            // A job that stopped by itself meanwhile (or could not finish
            // with them) ends the run on its own.
            if steering.send(change).await.is_err() || finished.await.is_err() {
                return std::future::pending().await;
            }
        }
        let held = match steer.released().await {
            Ok(held) => held,
            Err(e) => {
                *failure = Some(e);
                return StopReason::Fenced;
            }
        };
        let gained: Vec<TopicPartition> =
            gained.into_iter().filter(|tp| held.contains(tp)).collect();
        if gained.is_empty() {
            continue;
        }
        match gain(plan, cluster, &held, &gained).await {
            Ok(gained) => {
                if steering
                    .send(Rebalance::Gain(Box::new(gained)))
                    .await
                    .is_err()
                {
                    return std::future::pending().await;
                }
            }
            Err(e) => {
                *failure = Some(e);
                return StopReason::Fenced;
            }
        }
    }
}

/// Opens `gained` and resumes them from the group's commits, with a new
/// session of the offsets store for every partition `held`.
async fn gain(
    plan: &ReadPlan,
    cluster: Cluster<'_>,
    held: &[TopicPartition],
    gained: &[TopicPartition],
) -> Result<Gained, JobError> {
    let mut assignments = assign(cluster.client, &plan.selection).await?;
    assignments.retain(|a| held.contains(&a.topic_partition()));
    let session = match &plan.group {
        Some(g) => {
            offsets::group::join(
                Arc::clone(cluster.client),
                cluster.connection,
                &g.store,
                &g.name,
                &mut assignments,
            )
            .await?
        }
        None => None,
    };
    assignments.retain(|a| gained.contains(&a.topic_partition()));
    let fetchers = Consumer::prepare(cluster.client, assignments, &plan.consumer).await?;
    Ok(Gained { fetchers, session })
}

impl<J: Reading> Runs<J> {
    /// Starts a run: assigns, opens, reads the commits, starts the
    /// consumer.
    async fn start(
        &mut self,
        cluster: Cluster<'_>,
        held: Option<&[TopicPartition]>,
        link: Option<MemberLink>,
    ) -> Result<(Consumer, Joined), J::Error> {
        let mut assignments = assign(cluster.client, &self.plan.selection)
            .await
            .map_err(JobError::from)?;
        let selected = assignments.len();
        let all: Vec<TopicPartition> = assignments
            .iter()
            .map(Assignment::topic_partition)
            .collect();
        self.job.selected(&all);
        if let Some(held) = held {
            assignments.retain(|a| held.contains(&a.topic_partition()));
        }
        let partitions: Vec<TopicPartition> = assignments
            .iter()
            .map(Assignment::topic_partition)
            .collect();
        let group = self.plan.group.as_ref();
        self.job
            .open(Opening {
                cluster,
                group: group.map(|g| g.name.as_str()),
                partitions: &partitions,
                selected,
                member: link.is_some(),
            })
            .await?;
        let session = match group {
            Some(g) => offsets::group::join(
                Arc::clone(cluster.client),
                cluster.connection,
                &g.store,
                &g.name,
                &mut assignments,
            )
            .await
            .map_err(JobError::from)?,
            None => None,
        };
        let joined = Joined {
            partitions,
            session,
            commits: group.and_then(|g| g.commits),
            member: link,
            rebalances: None,
        };
        let consumer = Consumer::start(cluster.client, assignments, self.plan.consumer.clone())
            .await
            .map_err(JobError::from)?;
        Ok((consumer, joined))
    }
}

impl<J: Reading> Generations for Runs<J> {
    type Error = J::Error;
    type Summary = J::Summary;

    async fn generation<S: Future<Output = StopReason>>(
        &mut self,
        cluster: Cluster<'_>,
        link: MemberLink,
        total: &mut Total<J::Summary>,
        steer: &mut Steer<'_, S>,
    ) -> Result<StopReason, J::Error> {
        self.once(cluster, Some(link), total, steer).await
    }
}
