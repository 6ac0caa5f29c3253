//! A member of a Kafka consumer group from library code: an async handler
//! per record, and the library does the rest.
//!
//! [`Member::run`] joins the group through the broker's coordinator (the
//! protocol the Java consumer speaks, so `kafka-consumer-groups` shows the
//! members), reads the partitions each generation assigns from where the
//! group committed (weir's offsets store, else the broker's group offsets,
//! else [`ConsumerConfig`]'s start), and calls the handler once per record,
//! in offset order per partition ([`Member::run_batches`]: once per batch
//! of a partition's records). It is the runner the `weir consume -g`
//! command runs ([`crate::job::runner`]), with the handler in place of
//! the output:
//!
//! - **At least once**: a record's offset is committed only after its
//!   handler returned `Ok`, every [`GroupConfig::commit_interval`], before
//!   a partition is handed to another member and when the member stops;
//!   each commit is mirrored to the broker's group offsets.
//! - **Rebalances**: with `cooperative-sticky` (and the consumer protocol,
//!   [`GroupProtocol::Consumer`]) the partitions a member keeps are read on
//!   without a pause; those it gives up are committed first. With the
//!   eager assignors every partition is committed and handed back.
//! - **Fencing**: a member whose session expired (frozen, cut off) stops
//!   calling the handler for the partitions it lost and commits nothing
//!   for them; it rejoins.
//! - **Stops**: the shutdown future commits what was handled and leaves
//!   the group. A handler's error does the same, then is returned as
//!   [`MemberError::Handler`] with the record's partition and offset.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use weir::ConnectionConfig;
//! use weir::group::{GroupConfig, Member};
//!
//! let connection = ConnectionConfig::new(["127.0.0.1:9092"]);
//! let client = Arc::new(connection.client().await?);
//! let member = Member::new(client, connection, GroupConfig::new("billing", ["orders"]));
//! let summary = member
//!     .run(
//!         |record| async move {
//!             println!("{} {}", record.topic_partition(), record.offset);
//!             Ok::<(), std::io::Error>(())
//!         },
//!         // Stops in a minute; a service passes its shutdown signal.
//!         tokio::time::sleep(std::time::Duration::from_secs(60)),
//!     )
//!     .await?;
//! println!("handled {} records", summary.handled);
//! # Ok(())
//! # }
//! ```

mod handle;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;

use crate::TopicPartition;
use crate::job::JobError;
use crate::job::runner::{CommitPlan, GroupPlan, ReadPlan};
use crate::kafka::connect::ConnectionConfig;
use crate::read::{ConsumerConfig, Selection};
use crate::record::ConsumedRecord;

pub use crate::job::StopReason;
pub use crate::kafka::membership::{Assignor, GroupProtocol, MembershipConfig};
pub use crate::offsets::StoreConfig;

/// How often a member commits what its handler finished by default: the
/// `weir consume --commit-interval` default (the Java consumer's
/// `auto.commit.interval.ms` is also 5 s).
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// A group to join, what it reads and how it keeps its place.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GroupConfig {
    /// The membership: the group id, the topics (names or `^patterns`),
    /// timeouts, assignors and protocol.
    pub membership: MembershipConfig,
    /// How partitions are fetched, and where a partition the group never
    /// committed starts ([`ConsumerConfig::with_start`]).
    pub consumer: ConsumerConfig,
    /// weir's offsets store, where the positions are committed (and
    /// mirrored to the broker's group offsets).
    pub store: StoreConfig,
    /// Time between commits.
    pub commit_interval: Duration,
}

impl GroupConfig {
    /// Membership of `group` reading `topics`, with the Java consumer's
    /// timeouts and the assignors `weir consume -g` offers
    /// ([`DEFAULT_ASSIGNORS`](crate::kafka::membership::DEFAULT_ASSIGNORS):
    /// eager `sticky` first, `cooperative-sticky` last, so that the group
    /// can take in other clients' members; see
    /// [`with_assignors`](Self::with_assignors) for cooperative
    /// rebalances), reading from the earliest offset where the group has
    /// no commit, committing every [`DEFAULT_COMMIT_INTERVAL`] to the
    /// default store.
    pub fn new<T: Into<String>>(
        group: impl Into<String>,
        topics: impl IntoIterator<Item = T>,
    ) -> Self {
        let topics = topics.into_iter().map(Into::into).collect();
        Self {
            membership: MembershipConfig::new(group, topics),
            consumer: ConsumerConfig::default(),
            store: StoreConfig::default(),
            commit_interval: DEFAULT_COMMIT_INTERVAL,
        }
    }

    /// The group id.
    pub fn group(&self) -> &str {
        &self.membership.group
    }

    /// Offers these assignors, in order of preference:
    /// `[Assignor::CooperativeSticky]` alone makes every rebalance
    /// cooperative (partitions kept are read on without a pause).
    #[must_use]
    pub fn with_assignors(mut self, assignors: impl IntoIterator<Item = Assignor>) -> Self {
        self.membership = self.membership.with_assignors(assignors);
        self
    }

    /// Speaks `protocol` (the Java consumer's `group.protocol`).
    #[must_use]
    pub fn with_protocol(mut self, protocol: GroupProtocol) -> Self {
        self.membership = self.membership.with_protocol(protocol, None);
        self
    }

    /// Replaces the membership settings (timeouts, a static member's
    /// instance id, ...); its group and topics are this config's from now.
    #[must_use]
    pub fn with_membership(mut self, membership: MembershipConfig) -> Self {
        self.membership = membership;
        self
    }

    /// Fetches with `consumer`, whose start applies where the group has
    /// no commit. Its `until` is ignored: a member reads until it stops.
    #[must_use]
    pub fn with_consumer(mut self, consumer: ConsumerConfig) -> Self {
        self.consumer = consumer;
        self
    }

    /// Commits to `store`.
    #[must_use]
    pub fn with_store(mut self, store: StoreConfig) -> Self {
        self.store = store;
        self
    }

    /// Commits every `every`.
    #[must_use]
    pub fn with_commit_interval(mut self, every: Duration) -> Self {
        self.commit_interval = every;
        self
    }

    /// The runner's plan for this member.
    fn plan(&self) -> ReadPlan {
        let mut consumer = self.consumer.clone();
        consumer.until = crate::read::Until::Never;
        let commits = CommitPlan::new(self.commit_interval);
        let group = GroupPlan::new(&self.membership.group, self.store.clone(), Some(commits))
            .with_membership(self.membership.clone());
        ReadPlan::new(Selection::new(self.membership.topics.clone()), consumer).with_group(group)
    }
}

/// A group member: [`Member::run`] calls a handler for every record of the
/// partitions the group assigns it.
#[derive(Debug)]
pub struct Member {
    client: Arc<Client>,
    connection: ConnectionConfig,
    config: GroupConfig,
}

impl Member {
    /// A member through `client`, made from `connection` (whose settings
    /// reach the group's coordinator and the offsets store), of the group
    /// `config` names.
    pub fn new(client: Arc<Client>, connection: ConnectionConfig, config: GroupConfig) -> Self {
        Self {
            client,
            connection,
            config,
        }
    }

    /// Joins the group and calls `handler` for every record of the
    /// partitions it is given, in offset order per partition, until
    /// `shutdown` completes or a handler fails; commits what was handled
    /// and leaves the group. Returns what it did.
    ///
    /// # Errors
    ///
    /// [`MemberError::Handler`] when a handler returned an error (the
    /// records handled before it are committed); [`MemberError::Group`]
    /// when the group could not be joined, its commits not read or
    /// written, or a partition failed (an unknown topic is
    /// [`ConsumeError::UnknownTopic`](crate::read::ConsumeError::UnknownTopic)
    /// inside it).
    pub async fn run<H, F, E>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<MemberSummary, MemberError<E>>
    where
        H: FnMut(ConsumedRecord) -> F,
        F: Future<Output = Result<(), E>>,
        E: std::error::Error + 'static,
    {
        self.run_with(handle::PerRecord(handler), shutdown).await
    }

    /// As [`run`](Self::run), with a handler per batch: the records of
    /// one partition that one fetch returned, in offset order. Their
    /// offsets are committed once the handler returned `Ok` for the
    /// batch; an error (reported at the batch's first offset) commits
    /// none of them.
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub async fn run_batches<H, F, E>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<MemberSummary, MemberError<E>>
    where
        H: FnMut(Vec<ConsumedRecord>) -> F,
        F: Future<Output = Result<(), E>>,
        E: std::error::Error + 'static,
    {
        self.run_with(handle::PerBatch(handler), shutdown).await
    }

    /// [`run`](Self::run) with either kind of handler.
    async fn run_with<H>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<MemberSummary, MemberError<H::Error>>
    where
        H: handle::Handler,
        H::Error: std::error::Error + 'static,
    {
        let plan = self.config.plan();
        let job = handle::Handlers::new(handler, self.config.group());
        let shutdown = async {
            shutdown.await;
            StopReason::Shutdown
        };
        // Boxed: the runner's future (joining, the generations, the job
        // loop) is large, and a caller's stack need not hold it.
        Box::pin(crate::job::runner::run_on(
            self.client,
            &self.connection,
            plan,
            job,
            shutdown,
        ))
        .await
    }
}

/// What a member did, over all its generations.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemberSummary {
    /// Records whose handler returned `Ok`.
    pub handled: u64,
    /// Per partition it held last, the next offset after what was handled.
    pub positions: BTreeMap<TopicPartition, i64>,
    /// Commits the offsets store acknowledged.
    pub commits: u64,
    /// How long it was a member.
    pub elapsed: Duration,
    /// Why it stopped.
    pub stop: StopReason,
}

/// How a member failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError<E: std::error::Error + 'static> {
    /// The handler returned an error for a record: the member committed
    /// the records handled before it, left the group and stopped.
    #[error("group \"{group}\": the handler failed on {partition} offset {offset}")]
    Handler {
        /// The group.
        group: String,
        /// The record's partition.
        partition: TopicPartition,
        /// The record's offset (not committed: a member that takes the
        /// partition over reads it again).
        offset: i64,
        /// The handler's error.
        #[source]
        source: E,
    },
    /// The group could not be joined, its offsets not read or committed,
    /// or a partition failed.
    #[error(transparent)]
    Group(#[from] JobError),
}

#[cfg(test)]
mod tests;
