//! Keyed producer: route, batch per partition, deliver in order, report
//! every record's outcome.
//!
//! rskafka gives one `PartitionClient` per partition and nothing else.
//! [`Producer`] adds the rest: a [`Partitioner`] picks each record's
//! partition, one task per partition collects records into batches (up to
//! [`ProducerConfig::batch_bytes`], or for at most
//! [`ProducerConfig::linger`] after the first record) and sends them one
//! request at a time, so records of one partition, and therefore of one key,
//! land in the order they were given. Partitions are written concurrently.
//!
//! Every record gets a [`Delivery`]: its partition and offset, or the error
//! that failed it, also when the producer is dropped without
//! [`Producer::close`] (what is queued is sent in the background). rskafka retries retryable errors until the connection's
//! deadline; a batch that still fails fails all its records, and the
//! partition fails every record after it without trying, so a dead broker
//! ends a run quickly with an exact count of what was not written.
//!
//! The partition count is refreshed in the background (every
//! [`ProducerConfig::metadata_max_age`], and at once after a failed batch),
//! so partitions added while a producer runs are used from then on. Keys
//! then move to their new partitions, as with the Java client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rskafka::chrono::{DateTime, Utc};
use rskafka::client::Client;
use rskafka::record::Record;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, instrument, warn};

pub use crate::produce::compression::Compression;
pub use crate::produce::config::{
    DEFAULT_BUFFER_BYTES, DEFAULT_LINGER, DEFAULT_METADATA_MAX_AGE, ProduceRecord, ProducerConfig,
};
pub use crate::produce::error::{Delivery, ProduceError, SendFailure};
pub use crate::produce::metadata::TopicMetadata;
use crate::produce::metadata::refresh_partition_count;
use crate::produce::partition::{PartitionTask, Pending, QUEUE_RECORDS, Tag};
use crate::produce::partitioner::{Partitioner, PartitionerKind};
use crate::produce::size::{BATCH_HEADER_BYTES, record_limit};
pub use crate::produce::size::{
    BROKER_MAX_REQUEST_BYTES, DEFAULT_BATCH_BYTES, DEFAULT_MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES,
};
use crate::timestamp::TimestampProblem;

/// A producer for one topic. Send with [`send`](Self::send), read outcomes
/// from the receiver [`new`](Self::new) returns, end with
/// [`close`](Self::close).
///
/// This is the batched path the jobs use: one owner, a tag per record and
/// one channel of deliveries, the least work per record. To share a
/// producer between tasks and await each record's delivery, use
/// [`FutureProducer`](crate::produce::FutureProducer) (made from one of
/// these with [`from_producer`](crate::produce::FutureProducer::from_producer)).
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
    /// The largest record the topic takes, alone in its batch.
    record_limit: usize,
    /// Room for records held (see [`ProducerConfig::buffer_bytes`]), one
    /// permit a byte.
    memory: Arc<Semaphore>,
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
            batch_bytes: config
                .batch_bytes
                .clamp(1, record_limit(config.max_message_bytes).max(1)),
            record_limit: record_limit(config.max_message_bytes),
            // Room for one batch, and for the largest record, at least.
            memory: Arc::new(Semaphore::new(config.buffer_bytes.clamp(
                DEFAULT_BATCH_BYTES.max(record_limit(config.max_message_bytes)),
                Semaphore::MAX_PERMITS,
            ))),
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
            let failed = |cause| ProduceError::Topic {
                topic: self.topic.clone(),
                partition,
                cause,
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
                client: Arc::new(pc),
                producer_id: self.config.producer_id,
                transactional_id: self.config.transactional_id.clone(),
                topic: self.topic.clone(),
                partition,
                linger: self.config.linger,
                batch_bytes: self.batch_bytes,
                max_batch_bytes: self.record_limit + BATCH_HEADER_BYTES,
                compression: self.config.compression.into(),
                delivery_timeout: self.config.delivery_timeout,
                reports: self.reports.clone(),
                batches_sent: Arc::clone(&batches_sent),
                stale: Arc::clone(&self.stale),
                memory: Arc::clone(&self.memory),
            };
            self.tasks.spawn(task.run(rx));
            self.queues.push(tx);
            self.batches_sent.push(batches_sent);
        }
        Ok(())
    }

    /// The topic it writes to.
    pub fn topic(&self) -> &str {
        &self.topic
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
        self.enqueue(Tag::from(tag), record).await
    }

    /// As [`send`](Self::send), the delivery going where `tag` says.
    pub(super) async fn enqueue(
        &mut self,
        tag: Tag,
        record: ProduceRecord,
    ) -> Result<i32, ProduceError> {
        if self.queues.is_empty() {
            // Closed (see `finish`).
            return Err(ProduceError::Closed {
                topic: self.topic.clone(),
            });
        }
        let size = record.approximate_size();
        if record.key.is_none() && self.config.keys_required {
            return Err(ProduceError::NullKeyCompacted {
                topic: self.topic.clone(),
            });
        }
        if size > self.record_limit {
            return Err(ProduceError::RecordTooLarge {
                topic: self.topic.clone(),
                size,
                limit: self.config.max_message_bytes,
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
                    .check(ms, crate::timestamp::now_ms())
                    .map_err(refused)?;
                DateTime::from_timestamp_millis(ms)
                    .ok_or_else(|| refused(TimestampProblem::Unrepresentable))?
            }
        };
        // Held until the record's batch reports (the partition task gives
        // it back); the size is below one batch, and so below the budget.
        let charge = u32::try_from(size).unwrap_or(u32::MAX);
        match self.memory.try_acquire_many(charge) {
            Ok(permit) => permit.forget(),
            Err(_) => self
                .memory
                .acquire_many(charge)
                .await
                .map_err(|_| ProduceError::Closed {
                    topic: self.topic.clone(),
                })?
                .forget(),
        }
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
        self.finish().await;
    }

    /// As [`close`](Self::close), in place: later sends fail with
    /// [`ProduceError::Closed`].
    pub(super) async fn finish(&mut self) {
        self.refresh.abort();
        self.queues.clear();
        while let Some(result) = self.tasks.join_next().await {
            if let Err(e) = result {
                warn!(topic = self.topic.as_str(), error = %e, "partition task ended abnormally");
            }
        }
    }
}

/// A producer dropped without [`close`](Producer::close) still sends what
/// is queued, in the background, and every record still gets its
/// [`Delivery`] (as long as the runtime runs): its partition tasks are let
/// finish rather than aborted. `close` is how to wait for them.
impl Drop for Producer {
    fn drop(&mut self) {
        self.refresh.abort();
        self.queues.clear();
        self.tasks.detach_all();
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
        let ms = crate::timestamp::now_ms();
        if ms != self.ms {
            self.ms = ms;
            self.time = DateTime::from_timestamp_millis(ms).unwrap_or_default();
        }
        self.time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            std::thread::sleep(std::time::Duration::from_millis(2));
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
