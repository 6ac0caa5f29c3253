//! Explicit per-partition consumers: one fetch task per assigned partition,
//! merged into one bounded stream for the caller.
//!
//! rskafka reads one partition at a time and nothing more. [`Consumer`]
//! resolves where each partition starts ([`StartOffset`], clamped to the
//! partition's watermarks up front, and again when the broker answers
//! `OffsetOutOfRange` as Kafka does for a position outside the log, e.g.
//! after retention deleted it), where it stops ([`Until`]), and runs
//! one task per partition that fetches with a long poll, grows its fetch
//! size when a record does not fit, and retries a lost broker until
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

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use rskafka::chrono::DateTime;
use rskafka::client::Client;
use rskafka::client::error::{Error as ClientError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::record::RecordAndOffset;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::Header;

/// Default fetch size per partition, as the Java consumer's
/// `max.partition.fetch.bytes` (1 MiB).
pub const DEFAULT_FETCH_BYTES: i32 = 1024 * 1024;

/// Largest fetch size a partition grows to when a record does not fit.
pub const MAX_FETCH_BYTES: i32 = 64 * 1024 * 1024;

/// How many times the fetch size a fetch's records may take once decoded
/// (keys and values) before the next fetch asks for less. The fetch size
/// counts bytes on the wire; a compressed topic's records can take 10-50
/// times that in memory, and each of the few fetches a partition holds
/// (see [`ConsumerConfig::buffered_batches`]) would. Uncompressed and
/// ordinarily compressed records stay below half of it, so their fetch
/// size ends at the configured one.
pub const DECODED_FETCH_FACTOR: usize = 4;

/// A partition's first fetch size, when the configured one is larger: the
/// size doubles from there, fetch by fetch, while records decode to less
/// than half of [`DECODED_FETCH_FACTOR`] times the configured size, so
/// that the first fetch of a compressed topic cannot take 50 times its
/// size in memory.
pub const START_FETCH_BYTES: i32 = 64 * 1024;

/// Smallest fetch size the decoded-size rule shrinks to. A broker returns
/// a whole first batch even when it is larger, and a fetch that returns
/// nothing grows again (and stops the rule from going that low again).
pub const MIN_FETCH_BYTES: i32 = 16 * 1024;

/// Default long-poll wait, as the Java consumer's `fetch.max.wait.ms`
/// (500 ms). The broker answers as soon as one byte is there.
pub const DEFAULT_FETCH_MAX_WAIT: Duration = Duration::from_millis(500);

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The topic it was read from.
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// Key; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// Value; `None` is a null value (tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers, in the record's order (see [`Header`]).
    pub headers: Vec<Header>,
}

/// Where a partition starts when no committed offset says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The low watermark (`earliest`, `beginning`).
    Earliest,
    /// The high watermark: only new records (`latest`, `end`).
    Latest,
    /// An absolute offset.
    Offset(i64),
    /// N records before the high watermark (`-N`).
    FromEnd(i64),
    /// The first record at or after this time, ms since the epoch
    /// (`@2024-05-01T12:00:00Z`, `@1714564800000`, or a duration ago:
    /// `15m`).
    Timestamp(i64),
}

/// A `--from`/`--to` value that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid position \"{input}\": {reason} (expected earliest, latest, an offset, -N, @<RFC 3339 time or epoch ms>, or a duration such as 15m)"
)]
pub struct PositionError {
    input: String,
    reason: String,
}

impl FromStr for StartOffset {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| PositionError {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        match s {
            "earliest" | "beginning" | "start" | "oldest" => return Ok(Self::Earliest),
            "latest" | "end" | "newest" => return Ok(Self::Latest),
            _ => {}
        }
        if let Some(time) = s.strip_prefix('@') {
            return parse_time(time).map(Self::Timestamp).map_err(|e| error(&e));
        }
        if let Some(n) = s.strip_prefix('-') {
            return match n.parse::<i64>() {
                Ok(n) => Ok(Self::FromEnd(n)),
                Err(_) => Err(error("not a number after '-'")),
            };
        }
        if let Ok(offset) = s.parse::<i64>() {
            return Ok(Self::Offset(offset));
        }
        match humantime::parse_duration(s) {
            // Longer ago than 1970 is the whole log: a negative time would
            // be one of Kafka's special positions.
            Ok(ago) => Ok(
                match now_ms().saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)) {
                    ms if ms < 0 => Self::Earliest,
                    ms => Self::Timestamp(ms),
                },
            ),
            Err(_) => Err(error("not a known form")),
        }
    }
}

/// Parses an RFC 3339 time (UTC, `Z`) or epoch milliseconds, from 1970 on.
///
/// Kafka looks offsets up by times from 1970 on: a negative time in a
/// ListOffsets request is one of its special positions (-1 latest, -2
/// earliest), so `@-1` would silently mean "latest".
///
/// # Errors
///
/// A description of what is wrong.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        if ms < 0 {
            return Err("before 1970".to_owned());
        }
        if DateTime::from_timestamp_millis(ms).is_none() {
            return Err("later than any date a record can carry".to_owned());
        }
        return Ok(ms);
    }
    let time = humantime::parse_rfc3339_weak(s).map_err(|e| format!("{e}"))?;
    let since = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "before 1970".to_owned())?;
    i64::try_from(since.as_millis()).map_err(|e| e.to_string())
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where a partition stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Until {
    /// Never: follow new records (tail).
    #[default]
    Never,
    /// The high watermark taken at start.
    End,
    /// The first record at or after this time (ms since the epoch), which
    /// is not delivered; or, when the partition has nothing newer, once
    /// the clock passes the time.
    Timestamp(i64),
}

/// Partition `p` belongs to instance `index` of `count` when
/// `p % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    /// This instance, from 0.
    pub index: u32,
    /// How many instances share the partitions.
    pub count: u32,
}

impl FromStr for Instance {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => Err(format!(
                "invalid instance \"{s}\": expected i/N with 0 <= i < N, e.g. 0/2"
            )),
        }
    }
}

impl Instance {
    /// Whether `partition` is this instance's.
    pub fn owns(self, partition: i32) -> bool {
        u32::try_from(partition).is_ok_and(|p| p % self.count == self.index)
    }
}

/// Which partitions of which topics to read.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Topics.
    pub topics: Vec<String>,
    /// Partitions (of every topic); `None` is all.
    pub partitions: Option<Vec<i32>>,
    /// Only this instance's share of them.
    pub instance: Option<Instance>,
}

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
    pub fetch_bytes: i32,
    /// Long-poll wait of each fetch.
    pub fetch_max_wait: Duration,
    /// Fetched batches the stream holds before tasks wait.
    pub buffered_batches: usize,
    /// How long a partition keeps retrying without one good fetch before
    /// it fails.
    pub retry_timeout: Duration,
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
        }
    }
}

/// One partition to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Next offset to read, e.g. a committed one; `None` uses
    /// [`ConsumerConfig::start`].
    pub start: Option<i64>,
}

/// Where an assigned partition starts and stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPosition {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Low watermark at start.
    pub low: i64,
    /// High watermark at start.
    pub high: i64,
    /// First offset read.
    pub start: i64,
    /// Offset where reading stops (`--until end`).
    pub end: Option<i64>,
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
    /// The cluster's metadata could not be read.
    #[error("cannot read the topic list: {0}")]
    Metadata(String),
    /// A partition could not be read.
    #[error("reading topic \"{topic}\" partition {partition} failed: {reason}")]
    Fetch {
        /// The topic.
        topic: Arc<str>,
        /// The partition.
        partition: i32,
        /// Why.
        reason: String,
    },
}

/// Why a fetch failed, as far as the loop cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The offset is outside the partition's log.
    OutOfRange,
    /// The broker does not know the topic or partition: deleted, or not
    /// yet learnt from the controller.
    UnknownTopic,
    /// No answer by the deadline.
    TimedOut,
    /// Anything else (after rskafka's own retries).
    Other(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange => f.write_str("offset out of range"),
            Self::UnknownTopic => f.write_str("the broker does not know the topic or partition"),
            Self::TimedOut => f.write_str("no answer from the broker"),
            Self::Other(e) => f.write_str(e),
        }
    }
}

impl From<ClientError> for FetchError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::ServerError {
                protocol_error: ProtocolError::OffsetOutOfRange,
                ..
            } => Self::OutOfRange,
            ClientError::ServerError {
                protocol_error: ProtocolError::UnknownTopicOrPartition,
                ..
            } => Self::UnknownTopic,
            e => Self::Other(crate::kafka::connect::client_error_text(&e)),
        }
    }
}

/// The fetch side of one partition: rskafka's [`PartitionClient`], or a
/// test's stand-in.
pub trait PartitionFetch: Send + Sync + 'static {
    /// Records from `offset` on, up to about `max_bytes`, waiting up to
    /// `max_wait_ms` for the first; and the high watermark.
    fn fetch(
        &self,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<(Vec<RecordAndOffset>, i64), FetchError>>;

    /// The offset at `at` (watermarks, or the first at a time).
    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>>;

    /// Whether the topic still exists, after [`FetchError::UnknownTopic`].
    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, FetchError>> {
        Box::pin(async { Ok(true) })
    }

    /// The partition leader's `host:port` as last known, for messages.
    fn leader(&self) -> Option<String> {
        None
    }
}

impl PartitionFetch for PartitionClient {
    fn fetch(
        &self,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<(Vec<RecordAndOffset>, i64), FetchError>> {
        Box::pin(async move {
            Ok(self
                .fetch_records(offset, 1..max_bytes, max_wait_ms)
                .await?)
        })
    }

    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
        Box::pin(async move { Ok(self.get_offset(at).await?) })
    }

    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, FetchError>> {
        Box::pin(async move { Ok(PartitionClient::topic_exists(self).await?) })
    }

    fn leader(&self) -> Option<String> {
        self.leader_address()
    }
}

/// The partitions `selection` names, checked against the cluster's
/// metadata, in topic then partition order.
///
/// # Errors
///
/// An unknown topic, a partition out of range, or nothing left to read.
pub async fn assign(
    client: &Client,
    selection: &Selection,
) -> Result<Vec<Assignment>, ConsumeError> {
    let topics = client
        .list_topics()
        .await
        .map_err(|e| ConsumeError::Metadata(e.to_string()))?;
    let mut assigned = Vec::new();
    for name in &selection.topics {
        let topic =
            topics
                .iter()
                .find(|t| &t.name == name)
                .ok_or_else(|| ConsumeError::UnknownTopic {
                    topic: name.clone(),
                })?;
        let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let wanted: Vec<i32> = match &selection.partitions {
            Some(list) => {
                for &p in list {
                    if !(0..count).contains(&p) {
                        return Err(ConsumeError::PartitionOutOfRange {
                            topic: name.clone(),
                            partition: p,
                            partitions: count,
                        });
                    }
                }
                let mut list = list.clone();
                list.sort_unstable();
                list.dedup();
                list
            }
            None => (0..count).collect(),
        };
        let topic: Arc<str> = Arc::from(name.as_str());
        assigned.extend(
            wanted
                .into_iter()
                .filter(|&p| selection.instance.is_none_or(|i| i.owns(p)))
                .map(|partition| Assignment {
                    topic: Arc::clone(&topic),
                    partition,
                    start: None,
                }),
        );
    }
    if assigned.is_empty() {
        return Err(ConsumeError::NothingAssigned(match selection.instance {
            Some(i) => format!(
                "instance {}/{} owns none of the selected partitions",
                i.index, i.count
            ),
            None => "the selection is empty".to_owned(),
        }));
    }
    Ok(assigned)
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
            fetchers.push((a, pc));
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
            let task = PartitionTask {
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

/// Where `start` puts `topic`/`partition` now, clamped to its
/// watermarks, as a consumer starting there would resolve it.
///
/// # Errors
///
/// The partition cannot be opened or its watermarks cannot be read.
pub async fn resolve_start(
    client: &Client,
    topic: &str,
    partition: i32,
    start: StartOffset,
) -> Result<PartitionPosition, ConsumeError> {
    let topic: Arc<str> = Arc::from(topic);
    // The caller has just read the partition count: retried as in
    // `Consumer::start`, for a broker that does not know the topic yet.
    let pc = open_partition(
        client,
        &topic,
        partition,
        crate::kafka::connect::DEFAULT_TIMEOUT,
    )
    .await?;
    let assignment = Assignment {
        topic,
        partition,
        start: None,
    };
    let config = ConsumerConfig {
        start,
        ..ConsumerConfig::default()
    };
    resolve(&assignment, &pc, &config).await
}

/// `request`'s answer, or a failure saying none came by `deadline`, which
/// is `timeout` (the `--timeout` it stands for) after the wait began.
async fn within<T>(
    deadline: Instant,
    timeout: Duration,
    request: impl std::future::Future<Output = Result<T, FetchError>>,
) -> Result<T, FetchError> {
    match tokio::time::timeout_at(deadline, request).await {
        Ok(answer) => answer,
        Err(_) => Err(FetchError::Other(format!(
            "no answer within {} (--timeout)",
            humantime::format_duration(timeout)
        ))),
    }
}

/// Opens a client for one partition, retrying a broker that does not know
/// it yet, for at most `timeout`.
async fn open_partition(
    client: &Client,
    topic: &Arc<str>,
    partition: i32,
    timeout: Duration,
) -> Result<PartitionClient, ConsumeError> {
    crate::kafka::connect::partition_client_within(client, topic, partition, timeout)
        .await
        .map_err(|reason| ConsumeError::Fetch {
            topic: Arc::clone(topic),
            partition,
            reason,
        })
}

/// Resolves a partition's start and end against its watermarks.
async fn resolve<F: PartitionFetch>(
    assignment: &Assignment,
    fetch: &F,
    config: &ConsumerConfig,
) -> Result<PartitionPosition, ConsumeError> {
    let topic = &assignment.topic;
    let partition = assignment.partition;
    let failed = |e: FetchError| ConsumeError::Fetch {
        topic: Arc::clone(topic),
        partition,
        reason: format!("cannot read its watermarks: {e}"),
    };
    let deadline = Instant::now() + config.retry_timeout;
    let timeout = config.retry_timeout;
    let low = within(deadline, timeout, fetch.offset_at(OffsetAt::Earliest))
        .await
        .map_err(&failed)?;
    let high = within(deadline, timeout, fetch.offset_at(OffsetAt::Latest))
        .await
        .map_err(&failed)?;
    // A committed offset outside the log (the topic was deleted and
    // re-created, or truncated, or retention passed it) is not trusted:
    // as the Java consumer with an out-of-range position, the reset policy
    // (`--from`) decides.
    let committed = assignment.start.filter(|&offset| {
        let inside = (low..=high).contains(&offset);
        if !inside {
            warn!(
                topic = topic.as_ref(),
                partition,
                committed = offset,
                low,
                high,
                "committed offset outside the partition's log (topic re-created or truncated?); starting where --from says"
            );
        }
        inside
    });
    let wanted = match (committed, config.start) {
        (Some(offset), _) | (None, StartOffset::Offset(offset)) => offset,
        (None, StartOffset::Earliest) => low,
        (None, StartOffset::Latest) => high,
        (None, StartOffset::FromEnd(n)) => high.saturating_sub(n).max(low),
        (None, StartOffset::Timestamp(ms)) => {
            let at = DateTime::from_timestamp_millis(ms).unwrap_or_default();
            match within(deadline, timeout, fetch.offset_at(OffsetAt::Timestamp(at))).await {
                // -1: no record at or after the time.
                Ok(offset) if offset >= 0 => offset,
                Ok(_) => high,
                Err(e) => return Err(failed(e)),
            }
        }
    };
    let start = wanted.clamp(low, high.max(low));
    if start != wanted {
        info!(
            topic = topic.as_ref(),
            partition,
            wanted,
            low,
            high,
            start,
            "start offset outside the partition's log; clamped to its watermarks"
        );
    }
    let end = (config.until == Until::End).then_some(high);
    debug!(
        topic = topic.as_ref(),
        partition,
        low,
        high,
        start,
        ?end,
        "assigned"
    );
    Ok(PartitionPosition {
        topic: Arc::clone(topic),
        partition,
        low,
        high,
        start,
        end,
    })
}

/// The fetch size after a fetch of `current` bytes whose records took
/// `decoded` bytes: smaller in proportion when they took more than
/// [`DECODED_FETCH_FACTOR`] times `configured` (never below `floor`),
/// twice as large (up to `configured`) when they took less than half that.
fn next_fetch_bytes(current: i32, floor: i32, configured: i32, decoded: usize) -> i32 {
    let target = usize::try_from(configured)
        .unwrap_or(0)
        .saturating_mul(DECODED_FETCH_FACTOR);
    if decoded > target {
        let scaled = i64::from(current) * target as i64 / decoded.max(1) as i64;
        let scaled = i32::try_from(scaled).unwrap_or(current);
        scaled.max(floor).min(current)
    } else if decoded < target / 2 && current < configured {
        current.saturating_mul(2).min(configured)
    } else {
        current
    }
}

/// Reads one partition into the shared stream.
struct PartitionTask<F> {
    fetch: F,
    topic: Arc<str>,
    partition: i32,
    next: i64,
    end: Option<i64>,
    until_time: Option<i64>,
    config: ConsumerConfig,
    events: mpsc::Sender<ConsumerEvent>,
    stopped: watch::Receiver<bool>,
}

impl<F: PartitionFetch> PartitionTask<F> {
    async fn run(mut self) {
        let fetch_bytes = self.config.fetch_bytes.max(1);
        let mut max_bytes = fetch_bytes.min(START_FETCH_BYTES);
        // The decoded-size rule shrinks no lower than this; a fetch that
        // returned nothing because a batch did not fit raises it.
        let mut floor = MIN_FETCH_BYTES.min(fetch_bytes);
        let max_wait_ms = i32::try_from(self.config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX);
        let mut failing_since: Option<Instant> = None;
        let mut last_error: Option<String> = None;
        let mut warned_empty = false;
        loop {
            if self.end.is_some_and(|end| self.next >= end) {
                self.reached().await;
                return;
            }
            // A fetch ends by the deadline whatever rskafka's own retry
            // loops (nested: request, leader lookup, connection) would do:
            // one long poll plus --timeout from a good state, and --timeout
            // from the first failure once failing.
            let started = Instant::now();
            let timeout = self.config.retry_timeout;
            let deadline = match failing_since {
                Some(since) => since + timeout,
                None => started + timeout + self.config.fetch_max_wait,
            };
            let fetched = tokio::select! {
                biased;
                _ = self.stopped.changed() => return,
                r = tokio::time::timeout_at(deadline, self.fetch.fetch(self.next, max_bytes, max_wait_ms)) => {
                    r.unwrap_or(Err(FetchError::TimedOut))
                }
            };
            let fetched = match fetched {
                Err(FetchError::UnknownTopic) => {
                    let exists = tokio::select! {
                        biased;
                        _ = self.stopped.changed() => return,
                        r = tokio::time::timeout(timeout, self.fetch.topic_exists()) => {
                            r.unwrap_or(Err(FetchError::TimedOut))
                        }
                    };
                    match exists {
                        Ok(false) => {
                            self.fail(format!("the topic was deleted (at offset {})", self.next))
                                .await;
                            return;
                        }
                        Ok(true) => Err(FetchError::Other(FetchError::UnknownTopic.to_string())),
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            let (records, high) = match fetched {
                Ok(r) => {
                    failing_since = None;
                    last_error = None;
                    r
                }
                Err(FetchError::OutOfRange) => {
                    let before = self.next;
                    if !self.clamp().await {
                        return;
                    }
                    if self.next == before && !self.pause(self.config.fetch_max_wait).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert(started);
                    // The error before a wait cut short says more than
                    // the cut.
                    if e != FetchError::TimedOut || last_error.is_none() {
                        last_error = Some(e.to_string());
                    }
                    if since.elapsed() >= timeout || e == FetchError::TimedOut {
                        let leader = self
                            .fetch
                            .leader()
                            .map(|l| format!(" from leader {l}"))
                            .unwrap_or_default();
                        self.fail(format!(
                            "no good fetch{leader} at offset {} for {} (--timeout); last error: {}",
                            self.next,
                            humantime::format_duration(timeout),
                            last_error.as_deref().unwrap_or_default()
                        ))
                        .await;
                        return;
                    }
                    let reason = e.to_string();
                    warn!(
                        topic = self.topic.as_ref(),
                        partition = self.partition,
                        offset = self.next,
                        error = reason.as_str(),
                        "fetch failed; retrying"
                    );
                    if !self.pause(Duration::from_millis(500)).await {
                        return;
                    }
                    continue;
                }
            };

            let Some(last) = records.last().map(|r| r.offset) else {
                if self.next < high {
                    // Records are there but none came back: the next one
                    // is larger than the fetch size, or only control
                    // records lie between here and the high watermark.
                    if max_bytes < MAX_FETCH_BYTES {
                        max_bytes = max_bytes.saturating_mul(2).min(MAX_FETCH_BYTES);
                        floor = floor.max(max_bytes);
                        debug!(
                            topic = self.topic.as_ref(),
                            partition = self.partition,
                            max_bytes,
                            "nothing fit; fetch size grown"
                        );
                        continue;
                    }
                    if !warned_empty {
                        warned_empty = true;
                        warn!(
                            topic = self.topic.as_ref(),
                            partition = self.partition,
                            offset = self.next,
                            high,
                            "no records returned below the high watermark"
                        );
                    }
                    if self.end.is_some() {
                        // Nothing readable is left before the end.
                        self.next = high.min(self.end.unwrap_or(high));
                        self.reached().await;
                        return;
                    }
                    if !self.pause(self.config.fetch_max_wait).await {
                        return;
                    }
                } else if self.until_time.is_some_and(|t| now_ms() >= t) {
                    self.reached().await;
                    return;
                }
                continue;
            };

            let decoded = records
                .iter()
                .map(|r| {
                    r.record.key.as_ref().map_or(0, Vec::len)
                        + r.record.value.as_ref().map_or(0, Vec::len)
                })
                .sum();
            let next_bytes = next_fetch_bytes(max_bytes, floor, fetch_bytes, decoded);
            if next_bytes != max_bytes {
                debug!(
                    topic = self.topic.as_ref(),
                    partition = self.partition,
                    decoded,
                    from = max_bytes,
                    to = next_bytes,
                    "fetch size follows the decoded size"
                );
                max_bytes = next_bytes;
            }

            let mut reached = false;
            let mut batch = Vec::with_capacity(records.len());
            for r in records {
                if r.offset < self.next {
                    continue;
                }
                if self.end.is_some_and(|end| r.offset >= end) {
                    break;
                }
                let timestamp_ms = r.record.timestamp.timestamp_millis();
                if self.until_time.is_some_and(|t| timestamp_ms >= t) {
                    reached = true;
                    self.next = r.offset;
                    break;
                }
                batch.push(ConsumedRecord {
                    topic: Arc::clone(&self.topic),
                    partition: self.partition,
                    offset: r.offset,
                    timestamp_ms,
                    key: r.record.key,
                    value: r.record.value,
                    headers: r.record.headers,
                });
            }
            if !reached {
                self.next = match self.end {
                    Some(end) => (last + 1).min(end),
                    None => last + 1,
                };
            }
            if !batch.is_empty()
                && self
                    .events
                    .send(ConsumerEvent::Records(batch))
                    .await
                    .is_err()
            {
                return;
            }
            if reached {
                self.reached().await;
                return;
            }
        }
    }

    async fn reached(&self) {
        let _ = self
            .events
            .send(ConsumerEvent::Reached {
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                next_offset: self.next,
            })
            .await;
    }

    /// Reports this partition's failure; the task ends after it.
    async fn fail(&self, reason: String) {
        let _ = self
            .events
            .send(ConsumerEvent::Failed(ConsumeError::Fetch {
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                reason,
            }))
            .await;
    }

    /// Sleeps unless stopped; false when stopped.
    async fn pause(&mut self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.stopped.changed() => false,
            () = tokio::time::sleep(duration) => true,
        }
    }

    /// After `OffsetOutOfRange`: moves to the nearest watermark. False when
    /// the watermarks cannot be read either (the failure is reported).
    async fn clamp(&mut self) -> bool {
        let watermarks = async {
            let low = self.fetch.offset_at(OffsetAt::Earliest).await?;
            let high = self.fetch.offset_at(OffsetAt::Latest).await?;
            Ok::<_, FetchError>((low, high))
        };
        let timeout = self.config.retry_timeout;
        match within(Instant::now() + timeout, timeout, watermarks).await {
            Ok((low, high)) => {
                let next = self.next.clamp(low, high.max(low));
                warn!(
                    topic = self.topic.as_ref(),
                    partition = self.partition,
                    offset = self.next,
                    low,
                    high,
                    next,
                    "offset out of range; moved to the nearest watermark"
                );
                self.next = next;
                true
            }
            Err(e) => {
                let _ = self
                    .events
                    .send(ConsumerEvent::Failed(ConsumeError::Fetch {
                        topic: Arc::clone(&self.topic),
                        partition: self.partition,
                        reason: format!("offset {} out of range, and {e}", self.next),
                    }))
                    .await;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rskafka::record::Record;

    use super::*;

    /// An in-memory partition: `log` holds (offset, value size, timestamp).
    struct FakeLog {
        log: Mutex<Vec<(i64, usize, i64)>>,
        low: i64,
        /// A value of `size` bytes takes `size / compression` on the wire.
        compression: usize,
        /// Fetches that fail before the log answers.
        failures: Mutex<usize>,
        fetches: Mutex<Vec<(i64, i32)>>,
    }

    impl FakeLog {
        fn new(offsets: impl IntoIterator<Item = i64>) -> Self {
            Self {
                log: Mutex::new(offsets.into_iter().map(|o| (o, 10, o * 1000)).collect()),
                low: 0,
                compression: 1,
                failures: Mutex::new(0),
                fetches: Mutex::new(Vec::new()),
            }
        }

        fn high(&self) -> i64 {
            self.log
                .lock()
                .unwrap()
                .last()
                .map_or(self.low, |r| r.0 + 1)
        }
    }

    impl PartitionFetch for Arc<FakeLog> {
        fn fetch(
            &self,
            offset: i64,
            max_bytes: i32,
            max_wait_ms: i32,
        ) -> BoxFuture<'_, Result<(Vec<RecordAndOffset>, i64), FetchError>> {
            Box::pin(async move {
                self.fetches.lock().unwrap().push((offset, max_bytes));
                {
                    let mut failures = self.failures.lock().unwrap();
                    if *failures > 0 {
                        *failures -= 1;
                        return Err(FetchError::Other("broker gone".into()));
                    }
                }
                if offset < self.low || offset > self.high() {
                    return Err(FetchError::OutOfRange);
                }
                let mut out = Vec::new();
                let mut bytes = 0;
                for &(o, size, ts) in self.log.lock().unwrap().iter() {
                    if o < offset {
                        continue;
                    }
                    let wire = size / self.compression;
                    if bytes + wire > max_bytes as usize {
                        break;
                    }
                    bytes += wire;
                    out.push(RecordAndOffset {
                        record: Record {
                            key: None,
                            value: Some(vec![b'x'; size]),
                            headers: Vec::new(),
                            timestamp: DateTime::from_timestamp_millis(ts).unwrap(),
                        },
                        offset: o,
                    });
                }
                if out.is_empty() {
                    tokio::time::sleep(Duration::from_millis(max_wait_ms as u64)).await;
                }
                Ok((out, self.high()))
            })
        }

        fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
            Box::pin(async move {
                Ok(match at {
                    OffsetAt::Earliest => self.low,
                    OffsetAt::Latest => self.high(),
                    OffsetAt::Timestamp(t) => self
                        .log
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|r| r.2 >= t.timestamp_millis())
                        .map_or(-1, |r| r.0),
                })
            })
        }
    }

    fn assignment(start: Option<i64>) -> Assignment {
        Assignment {
            topic: Arc::from("t"),
            partition: 0,
            start,
        }
    }

    fn config(start: StartOffset, until: Until) -> ConsumerConfig {
        ConsumerConfig {
            start,
            until,
            fetch_max_wait: Duration::from_millis(10),
            ..ConsumerConfig::default()
        }
    }

    /// Offsets delivered until the stream ends, and the reached offset.
    async fn drain(mut consumer: Consumer) -> (Vec<i64>, Option<i64>) {
        let mut offsets = Vec::new();
        let mut reached = None;
        while let Some(event) = consumer.next().await {
            match event {
                ConsumerEvent::Records(records) => {
                    offsets.extend(records.iter().map(|r| r.offset));
                }
                ConsumerEvent::Reached { next_offset, .. } => reached = Some(next_offset),
                ConsumerEvent::Failed(e) => panic!("{e}"),
            }
        }
        (offsets, reached)
    }

    async fn read(
        log: &Arc<FakeLog>,
        start: Option<i64>,
        from: StartOffset,
        until: Until,
    ) -> (Vec<i64>, Option<i64>) {
        let consumer = Consumer::start_with(
            vec![(assignment(start), Arc::clone(log))],
            config(from, until),
        )
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(10), drain(consumer))
            .await
            .expect("the consumer ended")
    }

    #[test]
    fn positions_parse() {
        assert_eq!(
            "earliest".parse::<StartOffset>().unwrap(),
            StartOffset::Earliest
        );
        assert_eq!("end".parse::<StartOffset>().unwrap(), StartOffset::Latest);
        assert_eq!(
            "42".parse::<StartOffset>().unwrap(),
            StartOffset::Offset(42)
        );
        assert_eq!(
            "-5".parse::<StartOffset>().unwrap(),
            StartOffset::FromEnd(5)
        );
        assert_eq!(
            "@1700000000000".parse::<StartOffset>().unwrap(),
            StartOffset::Timestamp(1_700_000_000_000)
        );
        assert_eq!(
            "@2023-11-14T22:13:20Z".parse::<StartOffset>().unwrap(),
            StartOffset::Timestamp(1_700_000_000_000)
        );
        let StartOffset::Timestamp(t) = "15m".parse::<StartOffset>().unwrap() else {
            panic!("a duration is a time");
        };
        assert!((now_ms() - 15 * 60_000 - t).abs() < 5_000);
        // Kafka's special positions are never reached through a time.
        for bad in ["@-1", "@-2", "@9223372036854775807"] {
            let e = bad.parse::<StartOffset>().unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(
            "100000y".parse::<StartOffset>().unwrap(),
            StartOffset::Earliest
        );
        let e = "soon".parse::<StartOffset>().unwrap_err().to_string();
        assert!(e.contains("\"soon\""), "{e}");
        assert!("-x".parse::<StartOffset>().is_err());
    }

    #[test]
    fn instances_split_partitions() {
        let a: Instance = "0/2".parse().unwrap();
        let b: Instance = "1/2".parse().unwrap();
        for p in 0..7 {
            assert!(a.owns(p) != b.owns(p), "partition {p} has one owner");
        }
        assert!("2/2".parse::<Instance>().is_err());
        assert!("1/0".parse::<Instance>().is_err());
        assert!("1".parse::<Instance>().is_err());
    }

    #[tokio::test]
    async fn every_start_form_is_resolved_and_clamped() {
        let log = Arc::new(FakeLog::new(0..10));
        let end = Until::End;
        let from = |f| read(&log, None, f, end);
        assert_eq!(
            from(StartOffset::Earliest).await,
            ((0..10).collect(), Some(10))
        );
        assert_eq!(from(StartOffset::Latest).await, (vec![], Some(10)));
        assert_eq!(
            from(StartOffset::Offset(7)).await,
            (vec![7, 8, 9], Some(10))
        );
        assert_eq!(from(StartOffset::FromEnd(2)).await, (vec![8, 9], Some(10)));
        assert_eq!(
            from(StartOffset::FromEnd(99)).await.0,
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(from(StartOffset::Timestamp(6_500)).await.0, vec![7, 8, 9]);
        assert_eq!(
            from(StartOffset::Timestamp(99_000)).await.0,
            Vec::<i64>::new()
        );
        // Beyond the watermarks: clamped.
        assert_eq!(from(StartOffset::Offset(50)).await, (vec![], Some(10)));
        // A committed start outside the log is not trusted: --from decides.
        assert_eq!(
            read(&log, Some(-3), StartOffset::Latest, end).await.0.len(),
            0
        );
        assert_eq!(
            read(&log, Some(50), StartOffset::Earliest, end)
                .await
                .0
                .len(),
            10
        );
        // An explicit (committed) start wins over --from.
        assert_eq!(
            read(&log, Some(9), StartOffset::Earliest, end).await.0,
            vec![9]
        );
    }

    #[tokio::test]
    async fn until_end_ignores_records_written_after_the_start() {
        let log = Arc::new(FakeLog::new(0..5));
        let consumer = Consumer::start_with(
            vec![(assignment(None), Arc::clone(&log))],
            config(StartOffset::Earliest, Until::End),
        )
        .await
        .unwrap();
        log.log.lock().unwrap().extend((5..8).map(|o| (o, 10, 0)));
        assert_eq!(drain(consumer).await, ((0..5).collect(), Some(5)));
    }

    #[tokio::test]
    async fn until_time_stops_before_the_first_later_record() {
        let log = Arc::new(FakeLog::new(0..10));
        let (offsets, reached) =
            read(&log, None, StartOffset::Earliest, Until::Timestamp(4_000)).await;
        assert_eq!(offsets, vec![0, 1, 2, 3]);
        assert_eq!(reached, Some(4));
        // Nothing newer: stops once caught up, the time being past.
        let (offsets, _) = read(&log, None, StartOffset::Earliest, Until::Timestamp(50_000)).await;
        assert_eq!(offsets.len(), 10);
    }

    #[tokio::test]
    async fn fetch_size_grows_for_a_large_record() {
        let log = Arc::new(FakeLog::new(0..3));
        log.log.lock().unwrap()[1].1 = 5_000;
        let mut config = config(StartOffset::Earliest, Until::End);
        config.fetch_bytes = 100;
        let consumer = Consumer::start_with(vec![(assignment(None), Arc::clone(&log))], config)
            .await
            .unwrap();
        assert_eq!(drain(consumer).await.0, vec![0, 1, 2]);
        let sizes: Vec<i32> = log.fetches.lock().unwrap().iter().map(|f| f.1).collect();
        assert!(sizes.contains(&6_400), "grew by doubling: {sizes:?}");
    }

    #[test]
    fn fetch_size_follows_the_decoded_size() {
        let mib = 1024 * 1024;
        // Uncompressed, or compressed a few times: unchanged.
        assert_eq!(next_fetch_bytes(mib, 16_384, mib, mib as usize), mib);
        assert_eq!(next_fetch_bytes(mib, 16_384, mib, 3 * mib as usize), mib);
        // 25 times the wire size: 4/25 of it, to decode to 4 times the
        // configured size.
        assert_eq!(
            next_fetch_bytes(mib, 16_384, mib, 25 * mib as usize),
            mib * 4 / 25
        );
        // Never below the floor.
        assert_eq!(
            next_fetch_bytes(mib, 200_000, mib, 100 * mib as usize),
            200_000
        );
        // Decoding to between 2 and 4 times the configured size: it stays.
        for decoded in [2 * mib as usize, 4 * mib as usize] {
            assert_eq!(next_fetch_bytes(50_000, 16_384, mib, decoded), 50_000);
        }
        // Doubling (from the start size, or back up) below that.
        assert_eq!(next_fetch_bytes(65_536, 16_384, mib, 65_536), 131_072);
        assert_eq!(
            next_fetch_bytes(100_000, 16_384, mib, mib as usize),
            200_000
        );
        assert_eq!(next_fetch_bytes(900_000, 16_384, mib, 1_000), mib);
        // A size grown past the configured one for a large record stays.
        assert_eq!(next_fetch_bytes(4 * mib, 4 * mib, mib, 1_000), 4 * mib);
    }

    #[tokio::test]
    async fn fetch_size_starts_small_and_doubles() {
        let mut log = FakeLog::new(0..20_000);
        for r in log.log.get_mut().unwrap().iter_mut() {
            r.1 = 100;
        }
        let log = Arc::new(log);
        let consumer = Consumer::start_with(
            vec![(assignment(None), Arc::clone(&log))],
            config(StartOffset::Earliest, Until::End),
        )
        .await
        .unwrap();
        assert_eq!(drain(consumer).await.0.len(), 20_000);
        let sizes: Vec<i32> = log.fetches.lock().unwrap().iter().map(|f| f.1).collect();
        let mib = 1024 * 1024;
        assert_eq!(
            sizes[..5],
            [START_FETCH_BYTES, 131_072, 262_144, 524_288, mib],
            "{sizes:?}"
        );
    }

    #[tokio::test]
    async fn fetch_size_shrinks_for_records_that_decode_large() {
        // 1000-byte values that take 50 bytes each on the wire.
        let mut log = FakeLog::new(0..3_000);
        log.compression = 20;
        for r in log.log.get_mut().unwrap().iter_mut() {
            r.1 = 1_000;
        }
        let log = Arc::new(log);
        let mut config = config(StartOffset::Earliest, Until::End);
        config.fetch_bytes = 100_000;
        let consumer = Consumer::start_with(vec![(assignment(None), Arc::clone(&log))], config)
            .await
            .unwrap();
        assert_eq!(drain(consumer).await.0, (0..3_000).collect::<Vec<_>>());
        let sizes: Vec<i32> = log.fetches.lock().unwrap().iter().map(|f| f.1).collect();
        // The first fetch (at the start size): 1310 records, 1.31 MB
        // decoded where 400 kB are allowed; then fetches of 400 records.
        assert_eq!(sizes[..3], [START_FETCH_BYTES, 20_010, 20_010], "{sizes:?}");
    }

    #[tokio::test]
    async fn gaps_in_offsets_are_skipped() {
        // A compacted log: offsets 3, 4 and 8 are gone.
        let log = Arc::new(FakeLog::new([0, 1, 2, 5, 6, 7, 9]));
        let (offsets, reached) = read(&log, Some(3), StartOffset::Earliest, Until::End).await;
        assert_eq!(offsets, vec![5, 6, 7, 9]);
        assert_eq!(reached, Some(10));
    }

    #[tokio::test]
    async fn failed_fetches_are_retried_without_gaps_or_duplicates() {
        let log = Arc::new(FakeLog::new(0..4));
        *log.failures.lock().unwrap() = 2;
        let (offsets, _) = read(&log, None, StartOffset::Earliest, Until::End).await;
        assert_eq!(offsets, vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_partition_that_keeps_failing_reports_it() {
        let log = Arc::new(FakeLog::new(0..4));
        *log.failures.lock().unwrap() = usize::MAX;
        let mut config = config(StartOffset::Earliest, Until::End);
        config.retry_timeout = Duration::from_millis(100);
        let mut consumer = Consumer::start_with(vec![(assignment(None), Arc::clone(&log))], config)
            .await
            .unwrap();
        match consumer.next().await {
            Some(ConsumerEvent::Failed(e)) => {
                let e = e.to_string();
                assert!(
                    e.contains("topic \"t\" partition 0") && e.contains("broker gone"),
                    "{e}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn out_of_range_moves_to_the_low_watermark() {
        // Records below 3 were deleted after the start (1) was resolved.
        let mut deleted = FakeLog::new(3..6);
        deleted.low = 3;
        let (tx, mut rx) = mpsc::channel(4);
        let (_stop, stopped) = watch::channel(false);
        let task = PartitionTask {
            fetch: Arc::new(deleted),
            topic: Arc::from("t"),
            partition: 0,
            next: 1,
            end: Some(6),
            until_time: None,
            config: config(StartOffset::Earliest, Until::End),
            events: tx,
            stopped,
        };
        tokio::spawn(task.run());
        let mut offsets = Vec::new();
        while let Some(event) = rx.recv().await {
            if let ConsumerEvent::Records(records) = event {
                offsets.extend(records.iter().map(|r| r.offset));
            }
        }
        assert_eq!(offsets, vec![3, 4, 5]);
    }
}
