//! Keyed producer: route, batch per partition, deliver in order, report
//! every record's outcome.
//!
//! rskafka gives one [`PartitionClient`] per partition and nothing else.
//! [`Producer`] adds the rest: a [`Partitioner`] picks each record's
//! partition, one task per partition collects records into batches (up to
//! [`ProducerConfig::batch_bytes`], or for at most
//! [`ProducerConfig::linger`] after the first record) and sends them one
//! request at a time, so records of one partition, and therefore of one key,
//! land in the order they were given. Partitions are written concurrently.
//!
//! Every record gets a [`Delivery`]: its partition and offset, or the error
//! that failed it. rskafka retries retryable errors until the connection's
//! deadline; a batch that still fails fails all its records, and the
//! partition fails every record after it without trying, so a dead broker
//! ends a run quickly with an exact count of what was not written.
//!
//! The partition count is refreshed in the background (every
//! [`ProducerConfig::metadata_max_age`], and at once after a failed batch),
//! so partitions added while a producer runs are used from then on. Keys
//! then move to their new partitions, as with the Java client.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use rskafka::chrono::{DateTime, Utc};
use rskafka::client::Client;
use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, instrument, warn};

use crate::Header;
use crate::produce::partitioner::{Partitioner, PartitionerKind};
use crate::timestamp::{TimestampLimits, TimestampProblem};

/// Largest produce request the broker accepts by default
/// (`message.max.bytes`, 1 MiB).
pub const BROKER_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Room left in a request for the request, topic and batch headers.
const REQUEST_OVERHEAD_BYTES: usize = 16 * 1024;

/// Default batch size: as large as the broker accepts, less the overhead.
pub const DEFAULT_BATCH_BYTES: usize = BROKER_MAX_REQUEST_BYTES - REQUEST_OVERHEAD_BYTES;

/// Default linger, as librdkafka's `linger.ms` (5 ms).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);

/// Default time between partition-count refreshes, as the Java client's
/// `metadata.max.age.ms` (5 minutes).
pub const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_secs(300);

/// Resolution of tokio's timers.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Records queued per partition before [`Producer::send`] waits.
const QUEUE_RECORDS: usize = 8 * 1024;

/// How the producer batches and compresses.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// How long a partition waits after its first record for more.
    pub linger: Duration,
    /// Largest batch, in rskafka's estimate of the encoded size.
    pub batch_bytes: usize,
    /// Batch compression.
    pub compression: Compression,
    /// How records without an explicit partition are placed.
    pub partitioner: PartitionerKind,
    /// How long one batch may take, retries included, before its records
    /// fail. rskafka's own retry deadlines nest (a connect retry inside a
    /// request retry), so weir bounds the whole send itself.
    pub delivery_timeout: Duration,
    /// How often the topic's partition count is read again.
    pub metadata_max_age: Duration,
    /// The create times the topic accepts; a record outside them is
    /// refused by [`Producer::send`] rather than failing its batch.
    pub timestamps: TimestampLimits,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            linger: DEFAULT_LINGER,
            batch_bytes: DEFAULT_BATCH_BYTES,
            compression: Compression::NoCompression,
            partitioner: PartitionerKind::Murmur2,
            delivery_timeout: crate::kafka::connect::DEFAULT_TIMEOUT,
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
            timestamps: TimestampLimits::default(),
        }
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default)]
pub struct ProduceRecord {
    /// Key; `None` is a null key (sticky partition).
    pub key: Option<Vec<u8>>,
    /// Value; `None` is a null value (a tombstone under compaction).
    pub value: Option<Vec<u8>>,
    /// Headers, in order; a key may repeat (see [`Header`]).
    pub headers: Vec<Header>,
    /// Create time in ms since the epoch; `None` means now.
    pub timestamp_ms: Option<i64>,
    /// Explicit partition, overriding the partitioner.
    pub partition: Option<i32>,
}

impl ProduceRecord {
    /// Upper estimate of the record's encoded size in a batch.
    pub fn approximate_size(&self) -> usize {
        encoded_size(self.key.as_deref(), self.value.as_deref(), &self.headers)
    }
}

/// Upper estimate of a record's encoded size inside a record batch: its
/// bytes plus the varint framing (length, attributes, timestamp and offset
/// deltas, lengths). The broker checks the whole batch against
/// `max.message.bytes`, so this must not undercount; rskafka's own
/// `approximate_size` leaves the framing out.
fn encoded_size(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[Header]) -> usize {
    // length ≤ 5, attributes 1, timestamp delta ≤ 5 within a batch's
    // hours, offset delta ≤ 3, key and value lengths ≤ 5 each, header
    // count ≤ 1 for few headers: 25 bytes.
    const FRAMING: usize = 25;
    key.map_or(0, <[u8]>::len)
        + value.map_or(0, <[u8]>::len)
        + headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 10)
            .sum::<usize>()
        + FRAMING
}

fn record_size(record: &Record) -> usize {
    encoded_size(
        record.key.as_deref(),
        record.value.as_deref(),
        &record.headers,
    )
}

/// What happened to one record.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The caller's tag given to [`Producer::send`] (e.g. an input line).
    pub tag: u64,
    /// The partition the record was routed to.
    pub partition: i32,
    /// Its offset, or why it was not written.
    pub result: Result<i64, Arc<ProduceError>>,
}

/// Errors of the producer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// The topic could not be opened.
    #[error("cannot produce to topic \"{topic}\": {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// An explicit partition outside the topic.
    #[error("topic \"{topic}\" has {}, partition {partition} is out of range", crate::plural(*.partitions, "partition"))]
    PartitionOutOfRange {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many it has.
        partitions: i32,
    },
    /// A record larger than a batch may be.
    #[error(
        "record of about {size} bytes is larger than the {limit}-byte batch limit for topic \"{topic}\" (the broker rejects larger requests)"
    )]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The record's estimated size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The broker did not take a batch before the deadline.
    #[error("producing to topic \"{topic}\" partition {partition} failed: {reason}")]
    Send {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// rskafka's error.
        reason: String,
    },
    /// An earlier batch of the same partition failed, so this record was
    /// not sent: sending it would break the partition's order.
    #[error("not sent to topic \"{topic}\" partition {partition}: an earlier batch failed")]
    Abandoned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A create time the topic would refuse, or a record cannot carry
    /// (see [`TimestampLimits`]).
    #[error("timestamp {timestamp_ms} ({}) for topic \"{topic}\" {problem}", crate::timestamp::rfc3339(*.timestamp_ms))]
    Timestamp {
        /// The topic.
        topic: String,
        /// The record's create time, ms since the epoch.
        timestamp_ms: i64,
        /// What is wrong with it.
        problem: TimestampProblem,
    },
    /// The producer was closed.
    #[error("the producer for topic \"{topic}\" is closed")]
    Closed {
        /// The topic.
        topic: String,
    },
}

/// Where the producer learns a topic's partition count. rskafka's
/// [`Client`] implements it with a metadata request; tests substitute
/// their own.
pub trait TopicMetadata: Send + Sync + fmt::Debug {
    /// The topic's current number of partitions.
    ///
    /// # Errors
    ///
    /// A description of why the count could not be read.
    fn partition_count<'a>(
        &'a self,
        topic: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<i32, String>> + Send + 'a>>;
}

impl TopicMetadata for Client {
    fn partition_count<'a>(
        &'a self,
        topic: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<i32, String>> + Send + 'a>> {
        Box::pin(async move {
            let topics = self.list_topics().await.map_err(|e| e.to_string())?;
            let found = topics
                .into_iter()
                .find(|t| t.name == topic)
                .ok_or_else(|| format!("topic \"{topic}\" is not in the metadata"))?;
            i32::try_from(found.partitions.len()).map_err(|e| e.to_string())
        })
    }
}

/// The produce side of one partition: rskafka's [`PartitionClient`], or a
/// test's stand-in, so that a partition task's batching, ordering and
/// failure handling are unit-tested without a broker (as the consumer's
/// `PartitionFetch`).
trait PartitionProduce: Send + Sync + 'static {
    /// Writes `records` as one batch: their offsets in order, or why not.
    fn produce(
        &self,
        records: Vec<Record>,
        compression: Compression,
    ) -> BoxFuture<'_, Result<Vec<i64>, String>>;

    /// Whether the topic still exists, after a failed batch.
    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, String>>;

    /// The partition leader's `host:port` as last known, for messages.
    fn leader(&self) -> Option<String>;
}

impl PartitionProduce for PartitionClient {
    fn produce(
        &self,
        records: Vec<Record>,
        compression: Compression,
    ) -> BoxFuture<'_, Result<Vec<i64>, String>> {
        Box::pin(async move {
            PartitionClient::produce(self, records, compression)
                .await
                .map_err(|e| crate::kafka::connect::client_error_text(&e))
        })
    }

    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move {
            PartitionClient::topic_exists(self)
                .await
                .map_err(|e| crate::kafka::connect::client_error_text(&e))
        })
    }

    fn leader(&self) -> Option<String> {
        self.leader_address()
    }
}

/// A record on its way to a partition task.
struct Pending {
    tag: u64,
    record: Record,
    /// When it was queued, for a record that found its queue empty: it may
    /// start a batch, and a batch's linger counts from its first record
    /// (as librdkafka's `linger.ms`), not from when the partition task
    /// gets to it after the previous batch's acknowledgement.
    queued_at: Option<Instant>,
}

/// A producer for one topic. Send with [`send`](Self::send), read outcomes
/// from the receiver [`new`](Self::new) returns, end with
/// [`close`](Self::close).
#[derive(Debug)]
pub struct Producer {
    topic: String,
    client: Arc<Client>,
    config: ProducerConfig,
    queues: Vec<mpsc::Sender<Pending>>,
    reports: mpsc::UnboundedSender<Delivery>,
    /// Partition counts seen by the refresh task.
    partition_count: watch::Receiver<i32>,
    refresh: tokio::task::AbortHandle,
    partitioner: Partitioner,
    kind: PartitionerKind,
    /// Batches sent per partition, to move the sticky partition on.
    batches_sent: Vec<Arc<AtomicU64>>,
    /// Set by a partition task after a failed batch: refresh now.
    stale: Arc<Notify>,
    /// The sticky partition and its batch count when it was chosen.
    sticky_seen: Option<(i32, u64)>,
    /// The last create time given to a record, so that records sent within
    /// the same millisecond (a thousand at full speed) share one
    /// conversion to a date.
    clock: Clock,
    batch_bytes: usize,
    tasks: JoinSet<()>,
}

impl Producer {
    /// Opens one partition client per partition of `topic`; `partitions`
    /// is the count the caller has just read. The count is refreshed from
    /// `client`'s metadata.
    ///
    /// # Errors
    ///
    /// [`ProduceError::Topic`] when the topic does not exist or cannot be
    /// reached.
    pub async fn new(
        client: Arc<Client>,
        topic: &str,
        partitions: i32,
        config: ProducerConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Delivery>), ProduceError> {
        let metadata: Arc<dyn TopicMetadata> = Arc::clone(&client) as _;
        Self::with_metadata(client, metadata, topic, partitions, config).await
    }

    /// As [`new`](Self::new), with the partition count refreshed from
    /// `metadata`.
    ///
    /// # Errors
    ///
    /// [`ProduceError::Topic`] when the topic does not exist or cannot be
    /// reached.
    #[instrument(skip(client, metadata, config))]
    pub async fn with_metadata(
        client: Arc<Client>,
        metadata: Arc<dyn TopicMetadata>,
        topic: &str,
        partitions: i32,
        config: ProducerConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Delivery>), ProduceError> {
        let (reports, deliveries) = mpsc::unbounded_channel();
        let (count_tx, partition_count) = watch::channel(partitions);
        let stale = Arc::new(Notify::new());
        let refresh = tokio::spawn(refresh_partition_count(
            metadata,
            topic.to_owned(),
            config.metadata_max_age,
            Arc::clone(&stale),
            count_tx,
        ))
        .abort_handle();
        let mut producer = Self {
            topic: topic.to_owned(),
            client,
            partitioner: Partitioner::new(config.partitioner),
            kind: config.partitioner,
            batch_bytes: config.batch_bytes.min(DEFAULT_BATCH_BYTES),
            config,
            queues: Vec::new(),
            reports,
            partition_count,
            refresh,
            batches_sent: Vec::new(),
            stale,
            sticky_seen: None,
            clock: Clock::default(),
            tasks: JoinSet::new(),
        };
        producer.grow(partitions).await?;
        Ok((producer, deliveries))
    }

    /// Starts partition tasks up to `partitions`.
    async fn grow(&mut self, partitions: i32) -> Result<(), ProduceError> {
        for partition in self.partitions()..partitions {
            // The count comes from the metadata, so the partitions exist;
            // a broker that has not yet applied their creation answers
            // UNKNOWN_TOPIC_OR_PARTITION for a moment (brokers learn of
            // new topics and partitions each on its own), which the Java
            // client retries.
            let failed = |reason: String| ProduceError::Topic {
                topic: self.topic.clone(),
                reason: format!("partition {partition}: {reason}"),
            };
            let pc = crate::kafka::connect::partition_client_within(
                &self.client,
                &self.topic,
                partition,
                self.config.delivery_timeout,
            )
            .await
            .map_err(failed)?;
            let (tx, rx) = mpsc::channel(QUEUE_RECORDS);
            let batches_sent = Arc::new(AtomicU64::new(0));
            let task = PartitionTask {
                client: Box::new(pc),
                topic: self.topic.clone(),
                partition,
                linger: self.config.linger,
                batch_bytes: self.batch_bytes,
                compression: self.config.compression,
                delivery_timeout: self.config.delivery_timeout,
                reports: self.reports.clone(),
                batches_sent: Arc::clone(&batches_sent),
                stale: Arc::clone(&self.stale),
            };
            self.tasks.spawn(task.run(rx));
            self.queues.push(tx);
            self.batches_sent.push(batches_sent);
        }
        Ok(())
    }

    /// Number of partitions of the topic.
    pub fn partitions(&self) -> i32 {
        i32::try_from(self.queues.len()).unwrap_or(i32::MAX)
    }

    /// Routes `record` to its partition and queues it; waits when that
    /// partition's queue is full. Returns the partition.
    ///
    /// # Errors
    ///
    /// A record that can never be sent (too large, partition out of range,
    /// a create time the topic refuses) is refused here and gets no
    /// [`Delivery`].
    pub async fn send(&mut self, tag: u64, record: ProduceRecord) -> Result<i32, ProduceError> {
        let size = record.approximate_size();
        if size > self.batch_bytes {
            return Err(ProduceError::RecordTooLarge {
                topic: self.topic.clone(),
                size,
                limit: self.batch_bytes,
            });
        }
        if self.partition_count.has_changed().unwrap_or(false) {
            let count = *self.partition_count.borrow_and_update();
            if count > self.partitions() {
                info!(
                    topic = self.topic.as_str(),
                    from = self.partitions(),
                    to = count,
                    "partition count grew"
                );
                self.grow(count).await?;
            }
        }
        let partitions = self.partitions();
        let partition = match record.partition {
            Some(p) if (0..partitions).contains(&p) => p,
            Some(p) => {
                return Err(ProduceError::PartitionOutOfRange {
                    topic: self.topic.clone(),
                    partition: p,
                    partitions,
                });
            }
            None => self.route(record.key.as_deref(), partitions),
        };
        let timestamp = match record.timestamp_ms {
            None => self.clock.now(),
            Some(ms) => {
                let refused = |problem| ProduceError::Timestamp {
                    topic: self.topic.clone(),
                    timestamp_ms: ms,
                    problem,
                };
                self.config
                    .timestamps
                    .check(ms, crate::consume::position::now_ms())
                    .map_err(refused)?;
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| refused(TimestampProblem::Unrepresentable))?
            }
        };
        let queue = &self.queues[partition as usize];
        // One clock read per batch at most: under load queues are seldom
        // empty.
        let queued_at = (queue.capacity() == queue.max_capacity()).then(Instant::now);
        let pending = Pending {
            tag,
            record: Record {
                key: record.key,
                value: record.value,
                headers: record.headers,
                timestamp,
            },
            queued_at,
        };
        queue
            .send(pending)
            .await
            .map_err(|_| ProduceError::Closed {
                topic: self.topic.clone(),
            })?;
        Ok(partition)
    }

    fn route(&mut self, key: Option<&[u8]>, partitions: i32) -> i32 {
        let sticky = match self.kind {
            PartitionerKind::Murmur2 | PartitionerKind::Crc32 => key.is_none(),
            PartitionerKind::Random => true,
            PartitionerKind::RoundRobin => false,
        };
        if !sticky {
            return self.partitioner.partition(key, partitions);
        }
        // Move the sticky partition on once its open batch has been sent.
        let mut refresh = self.sticky_seen.is_none();
        if let Some((p, seen)) = self.sticky_seen {
            if self.batches_sent[p as usize].load(Ordering::Relaxed) != seen {
                self.partitioner.batch_sent(p);
                refresh = true;
            }
        }
        let p = self.partitioner.partition(key, partitions);
        if refresh || self.sticky_seen.map(|(q, _)| q) != Some(p) {
            self.sticky_seen = Some((p, self.batches_sent[p as usize].load(Ordering::Relaxed)));
        }
        p
    }

    /// Sends what is queued and waits until every record has its
    /// [`Delivery`].
    pub async fn close(mut self) {
        self.refresh.abort();
        self.queues.clear();
        while let Some(result) = self.tasks.join_next().await {
            if let Err(e) = result {
                warn!(topic = self.topic.as_str(), error = %e, "partition task ended abnormally");
            }
        }
    }
}

/// Reads the partition count every `max_age`, or at once when a partition
/// task reports trouble, and publishes growth.
async fn refresh_partition_count(
    metadata: Arc<dyn TopicMetadata>,
    topic: String,
    max_age: Duration,
    stale: Arc<Notify>,
    counts: watch::Sender<i32>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(max_age) => {}
            () = stale.notified() => {}
        }
        match metadata.partition_count(&topic).await {
            Ok(count) if count > *counts.borrow() => {
                if counts.send(count).is_err() {
                    return;
                }
            }
            Ok(count) if count < *counts.borrow() => {
                warn!(
                    topic,
                    count, "the metadata shows fewer partitions than before; ignored"
                );
            }
            Ok(_) => {}
            Err(error) => debug!(topic, error, "partition count refresh failed"),
        }
    }
}

/// Now, in whole milliseconds (a record's create time), converted to a
/// date only when the millisecond changes.
#[derive(Debug, Default)]
struct Clock {
    ms: i64,
    time: DateTime<Utc>,
}

impl Clock {
    fn now(&mut self) -> DateTime<Utc> {
        let ms = crate::consume::position::now_ms();
        if ms != self.ms {
            self.ms = ms;
            self.time = DateTime::from_timestamp_millis(ms).unwrap_or_default();
        }
        self.time
    }
}

/// Sends one partition's batches, one request at a time.
struct PartitionTask {
    client: Box<dyn PartitionProduce>,
    topic: String,
    partition: i32,
    linger: Duration,
    batch_bytes: usize,
    compression: Compression,
    delivery_timeout: Duration,
    reports: mpsc::UnboundedSender<Delivery>,
    batches_sent: Arc<AtomicU64>,
    stale: Arc<Notify>,
}

impl PartitionTask {
    async fn run(self, mut queue: mpsc::Receiver<Pending>) {
        let mut failed: Option<Arc<ProduceError>> = None;
        let mut carry: Option<Pending> = None;
        loop {
            let first = match carry.take() {
                Some(p) => p,
                None => match queue.recv().await {
                    Some(p) => p,
                    None => return,
                },
            };
            let mut bytes = record_size(&first.record);
            // tokio's timers fire on the first millisecond tick at or after
            // their deadline; half a millisecond early centres that on the
            // linger instead of adding 0-1 ms to it.
            let deadline = (first.queued_at.unwrap_or_else(Instant::now) + self.linger)
                .checked_sub(TIMER_TICK / 2)
                .unwrap_or_else(Instant::now);
            let mut batch = vec![first];
            let mut closed = false;
            while bytes < self.batch_bytes {
                let next = match queue.try_recv() {
                    Ok(p) => Some(p),
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        None
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(deadline, queue.recv()).await {
                            Ok(Some(p)) => Some(p),
                            Ok(None) => {
                                closed = true;
                                None
                            }
                            Err(_) => None,
                        }
                    }
                };
                let Some(next) = next else { break };
                let size = record_size(&next.record);
                if bytes + size > self.batch_bytes {
                    carry = Some(next);
                    break;
                }
                bytes += size;
                batch.push(next);
            }

            self.batches_sent.fetch_add(1, Ordering::Relaxed);
            match &failed {
                Some(_) => self.report_all(batch, || {
                    Arc::new(ProduceError::Abandoned {
                        topic: self.topic.clone(),
                        partition: self.partition,
                    })
                }),
                None => {
                    if let Err(e) = self.send(batch).await {
                        failed = Some(e);
                    }
                }
            }
            if closed && carry.is_none() {
                return;
            }
        }
    }

    async fn send(&self, batch: Vec<Pending>) -> Result<(), Arc<ProduceError>> {
        let mut tags = Vec::with_capacity(batch.len());
        let records = batch
            .into_iter()
            .map(|p| {
                tags.push(p.tag);
                p.record
            })
            .collect();
        debug!(
            topic = self.topic.as_str(),
            partition = self.partition,
            records = tags.len(),
            "sending batch"
        );
        let sent = tokio::time::timeout(
            self.delivery_timeout,
            self.client.produce(records, self.compression),
        )
        .await
        .map_err(|_| {
            format!(
                "no acknowledgement within {} (--timeout)",
                humantime::format_duration(self.delivery_timeout)
            )
        });
        // UNKNOWN_TOPIC_OR_PARTITION is retried (a broker may learn of a
        // partition late) until the deadline; then a deleted topic is
        // named as the reason.
        let sent = match sent {
            Ok(Ok(offsets)) => Ok(offsets),
            Ok(Err(reason)) | Err(reason) => Err(self.deleted().await.unwrap_or(reason)),
        };
        match sent {
            Ok(offsets) => {
                for (tag, offset) in tags.into_iter().zip(offsets) {
                    let _ = self.reports.send(Delivery {
                        tag,
                        partition: self.partition,
                        result: Ok(offset),
                    });
                }
                Ok(())
            }
            Err(reason) => {
                let reason = match self.client.leader() {
                    Some(leader) => format!("leader {leader}: {reason}"),
                    None => reason,
                };
                let error = Arc::new(ProduceError::Send {
                    topic: self.topic.clone(),
                    partition: self.partition,
                    reason,
                });
                warn!(error = %error, records = tags.len(), "batch failed");
                self.stale.notify_one();
                for tag in tags {
                    let _ = self.reports.send(Delivery {
                        tag,
                        partition: self.partition,
                        result: Err(Arc::clone(&error)),
                    });
                }
                Err(error)
            }
        }
    }

    /// After a failed batch: "the topic was deleted" when it was. One
    /// metadata request, given a second at most: a broker that is down
    /// has already had the batch's --timeout.
    async fn deleted(&self) -> Option<String> {
        let limit = self.delivery_timeout.min(Duration::from_secs(1));
        let exists = tokio::time::timeout(limit, self.client.topic_exists()).await;
        matches!(exists, Ok(Ok(false))).then(|| "the topic was deleted".to_owned())
    }

    fn report_all(&self, batch: Vec<Pending>, error: impl Fn() -> Arc<ProduceError>) {
        let error = error();
        for p in batch {
            let _ = self.reports.send(Delivery {
                tag: p.tag,
                partition: self.partition,
                result: Err(Arc::clone(&error)),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A partition log in memory: each batch it was given, with the
    /// (paused) time it came; batch number `fail_at` fails.
    #[derive(Debug, Default)]
    struct FakePartition {
        batches: Mutex<Vec<(Instant, Vec<String>)>>,
        fail_at: Option<usize>,
    }

    impl PartitionProduce for Arc<FakePartition> {
        fn produce(
            &self,
            records: Vec<Record>,
            _compression: Compression,
        ) -> BoxFuture<'_, Result<Vec<i64>, String>> {
            Box::pin(async move {
                let mut batches = self.batches.lock().unwrap();
                let values: Vec<String> = records
                    .iter()
                    .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
                    .collect();
                let n = batches.len();
                batches.push((Instant::now(), values.clone()));
                if self.fail_at == Some(n) {
                    return Err("the fake broker refused it".to_owned());
                }
                let start: i64 = batches[..n].iter().map(|b| b.1.len() as i64).sum();
                Ok((start..start + values.len() as i64).collect())
            })
        }

        fn topic_exists(&self) -> BoxFuture<'_, Result<bool, String>> {
            Box::pin(async { Ok(true) })
        }

        fn leader(&self) -> Option<String> {
            Some("fake:9092".to_owned())
        }
    }

    /// A record whose value is `value`, queued now.
    fn pending(tag: u64, value: String) -> Pending {
        Pending {
            tag,
            record: Record {
                key: None,
                value: Some(value.into_bytes()),
                headers: Vec::new(),
                timestamp: DateTime::default(),
            },
            queued_at: Some(Instant::now()),
        }
    }

    /// A partition task over `log`, its queue and its deliveries.
    fn task(
        log: &Arc<FakePartition>,
        linger: Duration,
        batch_bytes: usize,
    ) -> (
        mpsc::Sender<Pending>,
        tokio::task::JoinHandle<()>,
        mpsc::UnboundedReceiver<Delivery>,
    ) {
        let (reports, deliveries) = mpsc::unbounded_channel();
        let task = PartitionTask {
            client: Box::new(Arc::clone(log)),
            topic: "events".to_owned(),
            partition: 3,
            linger,
            batch_bytes,
            compression: Compression::NoCompression,
            delivery_timeout: Duration::from_secs(30),
            reports,
            batches_sent: Arc::new(AtomicU64::new(0)),
            stale: Arc::new(Notify::new()),
        };
        let (queue, rx) = mpsc::channel(QUEUE_RECORDS);
        (queue, tokio::spawn(task.run(rx)), deliveries)
    }

    fn values(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("v{i:03}")).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_for_the_linger_and_closing_flushes_at_once() {
        let log = Arc::new(FakePartition::default());
        let linger = Duration::from_millis(5);
        let (queue, running, mut deliveries) = task(&log, linger, DEFAULT_BATCH_BYTES);
        let start = Instant::now();
        for (tag, v) in values(0..3).into_iter().enumerate() {
            queue.send(pending(tag as u64, v)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for (tag, v) in values(3..5).into_iter().enumerate() {
            queue.send(pending(3 + tag as u64, v)).await.unwrap();
        }
        drop(queue);
        running.await.unwrap();

        let batches = log.batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 2, "{batches:?}");
        // The first batch left one linger after its first record, within
        // a timer tick; the second at once, as the queue closed.
        let first = batches[0].0 - start;
        assert!(
            first >= linger - TIMER_TICK && first <= linger + TIMER_TICK,
            "first batch after {first:?}"
        );
        assert_eq!(batches[0].1, values(0..3));
        assert_eq!(batches[1].0 - start, Duration::from_millis(20));
        assert_eq!(batches[1].1, values(3..5));

        let mut got = Vec::new();
        while let Ok(d) = deliveries.try_recv() {
            assert_eq!(d.partition, 3);
            got.push((d.tag, d.result.unwrap()));
        }
        assert_eq!(got, (0..5).map(|i| (i, i as i64)).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn full_batches_leave_at_once_in_order() {
        let log = Arc::new(FakePartition::default());
        let one = record_size(&pending(0, values(0..1).remove(0)).record);
        // Three records to a batch; a linger no test would wait out.
        let (queue, running, mut deliveries) = task(&log, Duration::from_secs(3600), 3 * one);
        let start = Instant::now();
        for (tag, v) in values(0..10).into_iter().enumerate() {
            queue.send(pending(tag as u64, v)).await.unwrap();
        }
        // Three full batches go without waiting; the fourth, one record,
        // waits for the linger or the end of the input.
        while log.batches.lock().unwrap().len() < 3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(Instant::now(), start, "a full batch waited");
        drop(queue);
        running.await.unwrap();

        let batches = log.batches.lock().unwrap().clone();
        let sizes: Vec<usize> = batches.iter().map(|b| b.1.len()).collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
        let sent: Vec<String> = batches.into_iter().flat_map(|b| b.1).collect();
        assert_eq!(sent, values(0..10), "the partition's order");
        let mut tags = Vec::new();
        while let Ok(d) = deliveries.try_recv() {
            assert_eq!(d.result.unwrap(), d.tag as i64);
            tags.push(d.tag);
        }
        assert_eq!(tags, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_failed_batch_later_records_are_abandoned_unsent() {
        let log = Arc::new(FakePartition {
            fail_at: Some(1),
            ..FakePartition::default()
        });
        let one = record_size(&pending(0, values(0..1).remove(0)).record);
        let (queue, running, mut deliveries) = task(&log, Duration::from_millis(5), 2 * one);
        for (tag, v) in values(0..6).into_iter().enumerate() {
            queue.send(pending(tag as u64, v)).await.unwrap();
        }
        drop(queue);
        running.await.unwrap();

        // Batches 0 and 1 were sent (1 failed); 2 was never tried.
        let sent: Vec<Vec<String>> = log
            .batches
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.1.clone())
            .collect();
        assert_eq!(sent, [values(0..2), values(2..4)]);
        let mut outcomes = Vec::new();
        while let Ok(d) = deliveries.try_recv() {
            outcomes.push((d.tag, d.result.map_err(|e| e.to_string())));
        }
        let failed = "producing to topic \"events\" partition 3 failed: \
                      leader fake:9092: the fake broker refused it";
        let abandoned = "not sent to topic \"events\" partition 3: an earlier batch failed";
        assert_eq!(
            outcomes,
            [
                (0, Ok(0)),
                (1, Ok(1)),
                (2, Err(failed.to_owned())),
                (3, Err(failed.to_owned())),
                (4, Err(abandoned.to_owned())),
                (5, Err(abandoned.to_owned())),
            ]
        );
    }

    fn epoch_ms() -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(since.as_millis()).unwrap()
    }

    #[test]
    fn clock_reads_now_to_the_millisecond() {
        let mut clock = Clock::default();
        for _ in 0..3 {
            let before = epoch_ms();
            let t = clock.now().timestamp_millis();
            let after = epoch_ms();
            assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn timestamp_error_names_topic_time_and_limit() {
        let e = ProduceError::Timestamp {
            topic: "events".into(),
            timestamp_ms: 253_402_300_800_000,
            problem: TimestampProblem::TooNew {
                limit_ms: 3_600_000,
            },
        };
        assert_eq!(
            e.to_string(),
            "timestamp 253402300800000 (+10000-01-01T00:00:00Z) for topic \"events\" is more than 1h after now: the topic's message.timestamp.after.max.ms is 3600000"
        );
    }
}
