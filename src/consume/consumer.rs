//! Explicit per-partition consumers: one fetch task per assigned partition,
//! merged into one bounded stream for the caller.
//!
//! rskafka reads one partition at a time and nothing more. [`Consumer`]
//! resolves where each assigned partition starts and stops
//! ([`start`](super::start): a committed offset or a [`StartOffset`],
//! clamped to the partition's watermarks, and an [`Until`]), and runs one
//! [`fetch`](super::fetch) task per partition that reads it with a long
//! poll and retries a lost broker until
//! [`ConsumerConfig::retry_timeout`]. Records of one partition arrive in
//! offset order; partitions interleave.
//!
//! The stream is bounded: tasks wait while the caller is behind, so memory
//! stays at a few fetches per partition. The fetch side is the small
//! [`PartitionFetch`] trait, so the loop is tested without a broker.
//!
//! Positions are "next offset to read": the caller that commits progress
//! takes `last.offset + 1` of the records it has written, or the
//! `next_offset` of [`ConsumerEvent::Reached`], or the start of a
//! partition it has seen nothing from ([`Consumer::positions`]).

use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;
use rskafka::client::partition::{IsolationLevel, UnknownTopicHandling};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::warn;

use crate::TopicPartition;
use crate::consume::assign::Assignment;
use crate::consume::fetch::{
    DEFAULT_FETCH_BYTES, DEFAULT_FETCH_MAX_WAIT, FetchError, PartitionFetch, PartitionReader,
    PartitionTask, open_partition,
};
use crate::consume::position::{StartOffset, Until};
use crate::consume::start::{PartitionPosition, resolve};
use crate::record::ConsumedRecord;

/// How the consumer fetches.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Where partitions without an explicit start begin.
    pub start: StartOffset,
    /// Where partitions stop.
    pub until: Until,
    /// Fetch size per partition, in bytes on the wire. Fetches start at
    /// [`START_FETCH_BYTES`] and double up to it unless their records
    /// decode to more than [`DECODED_FETCH_FACTOR`] times it (a highly
    /// compressed topic); a record larger than the fetch size grows it.
    ///
    /// [`START_FETCH_BYTES`]: crate::consume::fetch::START_FETCH_BYTES
    /// [`DECODED_FETCH_FACTOR`]: crate::consume::fetch::DECODED_FETCH_FACTOR
    pub fetch_bytes: i32,
    /// Long-poll wait of each fetch.
    pub fetch_max_wait: Duration,
    /// Fetched batches the stream holds before tasks wait.
    pub buffered_batches: usize,
    /// How long a partition keeps retrying without one good fetch before
    /// it fails.
    pub retry_timeout: Duration,
    /// Which records are read, and where the log ends for
    /// [`Until::End`] and [`StartOffset::Latest`]: the last stable offset
    /// under read_committed, the high watermark under read_uncommitted.
    pub isolation: IsolationLevel,
    /// Whether its partitions show in the metrics ([`crate::metrics`]):
    /// a job's input does, weir's reads of its own offsets topic do not.
    pub metered: bool,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            start: StartOffset::Earliest,
            until: Until::Never,
            fetch_bytes: DEFAULT_FETCH_BYTES,
            fetch_max_wait: DEFAULT_FETCH_MAX_WAIT,
            buffered_batches: 4,
            retry_timeout: crate::kafka::connect::DEFAULT_TIMEOUT,
            // As librdkafka (kcat) and Kafka Streams with exactly-once:
            // records of aborted transactions are never shown, and neither
            // is anything an open transaction may still abort. (The Java
            // consumer defaults to read_uncommitted.)
            isolation: IsolationLevel::ReadCommitted,
            metered: true,
        }
    }
}

/// What the stream yields.
#[derive(Debug)]
pub enum ConsumerEvent {
    /// Records of one partition, in offset order.
    Records(Vec<ConsumedRecord>),
    /// A partition reached its stop; `next_offset` is where it stopped.
    Reached {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// The next offset to read.
        next_offset: i64,
    },
    /// A fetch answered that a partition has nothing more to read for
    /// now: it is at the end of its log (for the isolation level). Sent
    /// when it gets there, again only after records came since.
    CaughtUp {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
    },
    /// A partition failed and stopped.
    Failed(ConsumeError),
}

/// Errors of the consumer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// A topic that does not exist.
    #[error("topic \"{topic}\" does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// A partition outside the topic.
    #[error("topic \"{topic}\" has {}, partition {partition} is out of range", crate::plural(*.partitions, "partition"))]
    PartitionOutOfRange {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many there are.
        partitions: i32,
    },
    /// The selection leaves nothing to read.
    #[error("no partitions to read: {0}")]
    NothingAssigned(String),
    /// The cluster's metadata could not be read. As one sentence: rskafka's
    /// errors repeat their causes in their own text.
    #[error("cannot read the topic list: {0}")]
    Metadata(String),
    /// A partition could not be read.
    #[error("reading {at} failed")]
    Fetch {
        /// The partition.
        at: TopicPartition,
        /// Why.
        #[source]
        cause: FetchFailure,
    },
}

/// Why a partition could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchFailure {
    /// Its leader could not be found in time.
    #[error(transparent)]
    Leader(#[from] crate::kafka::connect::LeaderLookupError),
    /// Its watermarks could not be read.
    #[error("cannot read its watermarks")]
    Watermarks(#[source] FetchError),
    /// The topic was deleted while it was read.
    #[error("the topic was deleted (at offset {offset})")]
    TopicDeleted {
        /// The next offset it would have read.
        offset: i64,
    },
    /// No fetch succeeded for the retry timeout.
    #[error(
        "no good fetch{} at offset {offset} within the retry timeout ({})",
        .leader.as_ref().map(|l| format!(" from leader {l}")).unwrap_or_default(),
        humantime::format_duration(*.timeout)
    )]
    NoGoodFetch {
        /// The leader's `host:port` as last known.
        leader: Option<String>,
        /// The offset it tried to read.
        offset: i64,
        /// The retry timeout.
        timeout: Duration,
        /// The last fetch's error.
        #[source]
        last: FetchError,
    },
    /// The broker answered that the offset is out of range, and the
    /// partition's watermarks could not be read to move into range.
    #[error("offset {offset} out of range, and its watermarks cannot be read")]
    OutOfRange {
        /// The offset it tried to read.
        offset: i64,
        /// Why the watermarks could not be read.
        #[source]
        watermarks: FetchError,
    },
}

/// A running consumer: read its events with [`next`](Self::next).
#[derive(Debug)]
pub struct Consumer {
    events: mpsc::Receiver<ConsumerEvent>,
    positions: Vec<PartitionPosition>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Consumer {
    /// Opens a partition client for each assignment and starts reading.
    ///
    /// # Errors
    ///
    /// A partition that cannot be opened or whose watermarks cannot be
    /// read.
    pub async fn start(
        client: &Client,
        assignments: Vec<Assignment>,
        config: ConsumerConfig,
    ) -> Result<Self, ConsumeError> {
        let mut fetchers = Vec::with_capacity(assignments.len());
        for a in assignments {
            // The partitions were just read from the metadata, so they
            // exist. Each broker learns of new topics and partitions on its
            // own, a little after the controller: the one asked next may
            // not know them yet, and answers UNKNOWN_TOPIC_OR_PARTITION,
            // which the Java client retries as any stale metadata.
            // Once open, the leader knows the partition: an unknown topic
            // from then on is reported at once, to be told apart from a
            // deleted one (`PartitionTask::run`).
            let mut pc =
                open_partition(client, &a.topic, a.partition, config.retry_timeout).await?;
            pc.set_unknown_topic_handling(UnknownTopicHandling::Error);
            let reader = PartitionReader {
                client: pc,
                isolation: config.isolation,
            };
            fetchers.push((a, reader));
        }
        Self::start_with(fetchers, config).await
    }

    /// Starts reading with the given fetch sides.
    ///
    /// # Errors
    ///
    /// A partition whose watermarks cannot be read.
    pub async fn start_with<F: PartitionFetch>(
        fetchers: Vec<(Assignment, F)>,
        config: ConsumerConfig,
    ) -> Result<Self, ConsumeError> {
        let resolved =
            futures::future::try_join_all(fetchers.iter().map(|(a, f)| resolve(a, f, &config)))
                .await?;
        let (tx, events) = mpsc::channel(config.buffered_batches.max(1));
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for ((_, fetch), position) in fetchers.into_iter().zip(&resolved) {
            let metrics = if config.metered {
                crate::metrics::global().input(&position.topic_partition())
            } else {
                Arc::default()
            };
            metrics.at(position.start, position.high);
            let task = PartitionTask {
                metrics,
                fetch,
                topic: Arc::clone(&position.topic),
                partition: position.partition,
                next: position.start,
                end: position.end,
                until_time: match config.until {
                    Until::Timestamp(t) => Some(t),
                    _ => None,
                },
                config: config.clone(),
                events: tx.clone(),
                stopped: stopped.clone(),
            };
            tasks.spawn(task.run());
        }
        Ok(Self {
            events,
            positions: resolved,
            stop,
            tasks,
        })
    }

    /// Where each partition started (and stops), in assignment order.
    pub fn positions(&self) -> &[PartitionPosition] {
        &self.positions
    }

    /// Each partition's start offset: where a job's positions begin.
    pub fn starts(&self) -> std::collections::BTreeMap<TopicPartition, i64> {
        self.positions
            .iter()
            .map(|p| (p.topic_partition(), p.start))
            .collect()
    }

    /// The next event; `None` once every partition has stopped.
    pub async fn next(&mut self) -> Option<ConsumerEvent> {
        self.events.recv().await
    }

    /// The next event if one is ready now.
    pub fn try_next(&mut self) -> Option<ConsumerEvent> {
        self.events.try_recv().ok()
    }

    /// Stops every partition task; events not yet read are dropped.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        self.events.close();
        while self.events.try_recv().is_ok() {}
        while let Some(result) = self.tasks.join_next().await {
            if let Err(e) = result {
                if e.is_panic() {
                    warn!(error = %e, "a partition task panicked");
                }
            }
        }
    }
}
