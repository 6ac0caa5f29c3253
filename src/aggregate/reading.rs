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
//! Across the members of a group, a (window, key) row is the aggregate
//! over every input partition whatever `--by` is: the count runs in two
//! stages through the group's internal topic ([`super::second`]),
//! created here before the group is joined and added to what the
//! members read. Grouped by the record key (`--by key`), a key's records
//! are in one partition already, and the count keeps to one stage.

use std::future::Future;
use std::time::Duration;

use super::topic::open_partials;
use super::{
    Checkpoints, CountConfig, CountError, CountJob, CountSummary, Extractor, Restored, RowSink,
    SecondStage, TransactionPlan, count_transactional_id, open_output_topic, restore, run_job,
};
use crate::TopicPartition;
use crate::job::member::Summary;
use crate::job::runner::{self, Joined, Opening, ReadPlan, Reading};
use crate::job::{JobError, StopReason};
use crate::kafka::admin::{Admin, AdminError, NewTopic};
use crate::kafka::connect::ConnectionConfig;
use crate::offsets::OffsetsError;
use crate::offsets::{GroupOffsets, GroupSession, partials_topic};
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
    mut plan: ReadPlan,
    config: CountConfig,
    sink: Option<Box<dyn RowSink>>,
    output: Option<CountOutput>,
    shutdown: impl Future<Output = StopReason>,
) -> Result<CountSummary, CountError> {
    let started = std::time::Instant::now();
    let count = config.count;
    // Boxed, as the output's opening below: the admin futures nest deep.
    // A stop while the internal topic is found ends the job there.
    let mut shutdown = std::pin::pin!(shutdown);
    let second_stage = tokio::select! {
        stage = Box::pin(second_stage(connection, &mut plan, &config)) => stage?,
        reason = &mut shutdown => return Ok(CountSummary::empty(reason)),
    };
    let job = Count {
        job: CountJob {
            config,
            sink,
            topic: None,
            checkpoints: None,
            member: None,
            second_stage,
        },
        output,
        count,
        path_logged: false,
    };
    let mut summary = runner::run(connection, plan, job, shutdown).await?;
    // The whole run, the second stage's topic included.
    *summary.ending().0 = started.elapsed();
    Ok(summary)
}

/// As members of a group, unless records are grouped by their key: the
/// group's internal topic, found or created, and the plan reading it too
/// (followed past any stop, from its start where nothing is committed)
/// and subscribing the group to it.
///
/// # Errors
///
/// An input or the internal topic could not be described, or the
/// internal topic not created.
async fn second_stage(
    connection: &ConnectionConfig,
    plan: &mut ReadPlan,
    config: &CountConfig,
) -> Result<Option<SecondStage>, CountError> {
    let Some(group) = &mut plan.group else {
        return Ok(None);
    };
    let Some(membership) = &mut group.membership else {
        return Ok(None);
    };
    if matches!(config.by.as_slice(), [Extractor::Key]) {
        return Ok(None);
    }
    let topic = partials_topic(&group.store.topic, &group.name);
    let failed = |source| CountError::InternalTopic {
        topic: topic.clone(),
        source,
    };
    let mut admin = Admin::connect(connection).await.map_err(failed)?;
    // Patterns name the topics they match now; a topic that matches later
    // starts the job again, and with it this.
    let existing = admin.list_topics().await.map_err(failed)?;
    let inputs = crate::read::pattern::resolve(
        &plan.selection.topics,
        existing.iter().map(|t| t.topic.as_str()),
    )
    .map_err(|e| JobError::from(crate::read::ConsumeError::from(e)))?;
    let mut sources = Vec::new();
    let mut most = 1;
    for input in &inputs {
        let n = admin.partition_count(input).await.map_err(failed)?;
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        sources.extend((0..n).map(|p| TopicPartition::new(input.as_str(), p)));
        most = most.max(n);
    }
    let partitions = match admin.partition_count(&topic).await {
        Ok(n) => n,
        Err(AdminError::UnknownTopic { .. }) => {
            let brokers = admin.broker_count().await.map_err(failed)?;
            let new = NewTopic::internal_replicated(&topic, most, brokers);
            if admin.create_topic_if_missing(&new).await.map_err(failed)? {
                tracing::info!(
                    topic = topic.as_str(),
                    partitions = most,
                    replication = new.replication_factor,
                    "created the group's internal topic"
                );
            }
            admin.partition_count(&topic).await.map_err(failed)?
        }
        Err(e) => return Err(failed(e)),
    };
    let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
    plan.selection.topics.push(topic.clone());
    membership.topics.push(topic.clone());
    plan.consumer.follow.push(topic.clone());
    Ok(Some(SecondStage::new(&topic, partitions, sources)))
}

impl Count {
    /// A windowed run in one stage of a group whose members counted in
    /// two: its input partitions' state no longer holds the windows they
    /// sent the second stage, so its rows would miss them. Running totals
    /// stay whole in the first stage, so they are read on.
    ///
    /// # Errors
    ///
    /// [`CountError::TwoStageGroup`].
    fn refuse_one_stage_over_two(
        &self,
        session: &GroupSession,
        offsets: &GroupOffsets,
    ) -> Result<(), CountError> {
        if self.job.second_stage.is_some() || !self.job.config.windowing.closes() {
            return Ok(());
        }
        let internal = partials_topic(session.store().topic(), session.group());
        if offsets.keys().any(|p| *p.topic == *internal) {
            return Err(CountError::TwoStageGroup {
                group: session.group().to_owned(),
                topic: internal,
            });
        }
        Ok(())
    }
}

/// The count job, one run at a time.
struct Count {
    job: CountJob,
    /// Whether the startup log said which path the count takes.
    path_logged: bool,
    output: Option<CountOutput>,
    /// Records to read in all, over every run.
    count: Option<u64>,
}

impl Reading for Count {
    type Error = CountError;
    type Summary = CountSummary;

    async fn open(&mut self, opening: Opening<'_>) -> Result<(), CountError> {
        if opening.member && !self.path_logged {
            self.path_logged = true;
            let group = opening.group.unwrap_or_default();
            match &self.job.second_stage {
                Some(stage) => tracing::info!(
                    group,
                    topic = %stage.topic,
                    partitions = stage.partitions,
                    "two stages: each member sends partial aggregates through the group's internal topic, partitioned by the grouping key, where they are merged into rows"
                ),
                None => tracing::info!(
                    group,
                    "one stage: grouped by the record key, whose records a key-partitioned topic holds in one partition"
                ),
            }
        }
        if let Some(stage) = self
            .job
            .second_stage
            .as_mut()
            .filter(|s| s.sender.is_none())
        {
            let exactly_once = self.output.as_ref().and_then(|o| o.exactly_once);
            if exactly_once.is_none() {
                let sender = Box::pin(open_partials(
                    opening.cluster.client,
                    opening.cluster.connection,
                    &stage.topic,
                    stage.partitions,
                ))
                .await
                .map_err(Box::new)?;
                stage.sender = Some(sender);
            }
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
        let partials = self
            .job
            .second_stage
            .as_ref()
            .map(|s| (&*s.topic, s.partitions));
        // Exactly once, before the commits are read: a predecessor with
        // the same partitions is fenced and what it left open aborted.
        self.job.topic = None;
        // Boxed: the admin, transaction and producer futures nest deep
        // enough to pass the compiler's layout query depth.
        let topic = Box::pin(open_output_topic(
            opening.cluster.client(),
            opening.cluster.connection,
            &output.topic,
            output.input.as_deref(),
            transaction,
            partials,
        ))
        .await
        .map_err(Box::new)?;
        self.job.topic = Some(topic);
        Ok(())
    }

    async fn run(
        &mut self,
        consumer: Consumer,
        mut joined: Joined,
        so_far: Option<&CountSummary>,
        stop: impl Future<Output = StopReason>,
    ) -> Result<CountSummary, CountError> {
        let mut restored = Restored::default();
        self.job.checkpoints = None;
        if let Some((mut session, offsets)) = joined.session {
            self.refuse_one_stage_over_two(&session, &offsets)?;
            restored = restore(
                &mut session,
                &offsets,
                &joined.partitions,
                &self.job.config.aggs,
                self.job.second_stage.as_ref().map(|s| &*s.topic),
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
        let rebalances = joined.rebalances.take();
        run_job(consumer, &mut self.job, restored, stop, rebalances).await
    }

    /// Exactly once, the output's transactional id names the partitions:
    /// a new set is a new run.
    fn incremental(&self) -> bool {
        self.output.as_ref().and_then(|o| o.exactly_once).is_none()
    }

    fn selected(&mut self, all: &[TopicPartition]) {
        // The input's partitions, as topic patterns match them now: the
        // sources every window waits for across members.
        if let Some(stage) = &mut self.job.second_stage {
            stage.sources = all
                .iter()
                .filter(|tp| *tp.topic != *stage.topic)
                .cloned()
                .collect();
        }
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
