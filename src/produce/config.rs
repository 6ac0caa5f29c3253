//! What a producer is configured with ([`ProducerConfig`]) and what it
//! is given ([`ProduceRecord`]), both growing without breaking callers:
//! `Default` or `new`, then `with_*` methods.

use std::time::Duration;

use super::compression::Compression;
use super::partitioner::PartitionerKind;
use super::size::{DEFAULT_BATCH_BYTES, DEFAULT_MAX_MESSAGE_BYTES, encoded_size};
use crate::Header;
use crate::kafka::idempotence::ProducerId;
use crate::timestamp::TimestampLimits;

/// Default memory for records between `send` and their acknowledgement,
/// as the Java producer's `buffer.memory` (32 MiB).
pub const DEFAULT_BUFFER_BYTES: usize = 32 * 1024 * 1024;

/// Default linger, as librdkafka's `linger.ms` (5 ms).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);

/// Default time between partition-count refreshes, as the Java client's
/// `metadata.max.age.ms` (5 minutes).
pub const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_secs(300);

/// How the producer batches and compresses: [`Default`], then `with_*`
/// methods for what differs.
///
/// ```
/// use std::time::Duration;
/// use weir::produce::{Compression, ProducerConfig};
///
/// let config = ProducerConfig::default()
///     .with_compression(Compression::Zstd)
///     .with_linger(Duration::from_millis(20));
/// assert_eq!(config.compression, Compression::Zstd);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// How long a partition waits after its first record for more.
    pub linger: Duration,
    /// Largest batch as sent: records in their encoded size, or, when
    /// compressing, compressed (as the Java producer's `batch.size`). A
    /// compressing producer collects records by the ratio its last batch
    /// of the partition compressed to (at most 2 MiB of them), and cuts a
    /// batch that comes out above what the broker accepts.
    pub batch_bytes: usize,
    /// The topic's `max.message.bytes` (the broker's `message.max.bytes`
    /// unless the topic sets it): the largest batch it stores. A record
    /// larger than [`batch_bytes`](Self::batch_bytes) goes alone in its
    /// batch; one larger than this is refused by [`Producer::send`](super::Producer::send).
    /// [`prepare_topic`](crate::produce::prepare_topic) reads it.
    pub max_message_bytes: usize,
    /// The topic is compacted: a record without a key is refused by
    /// [`Producer::send`](super::Producer::send) (the broker would refuse its whole batch).
    pub keys_required: bool,
    /// Batch compression.
    pub compression: Compression,
    /// Most bytes of records (in the batch size's estimate) held from
    /// [`Producer::send`](super::Producer::send) until their batch is acknowledged or failed, in
    /// every partition together; `send` waits for room, as the Java
    /// producer's `buffer.memory`. At least one batch's worth.
    pub buffer_bytes: usize,
    /// How records without an explicit partition are placed.
    pub partitioner: PartitionerKind,
    /// How long one batch may take, retries included, before its records
    /// fail. rskafka's own retry deadlines nest (a connect retry inside a
    /// request retry), so weir bounds the whole send itself.
    pub delivery_timeout: Duration,
    /// How often the topic's partition count is read again.
    pub metadata_max_age: Duration,
    /// The create times the topic accepts; a record outside them is
    /// refused by [`Producer::send`](super::Producer::send) rather than failing its batch.
    pub timestamps: TimestampLimits,
    /// The idempotent producer's id ([`init_producer_id`]): batches carry
    /// it with their sequence numbers, up to five on their way per
    /// partition. `None`: not idempotent, one batch at a time per
    /// partition, and a batch retried after a lost acknowledgement may be
    /// stored twice.
    ///
    /// [`init_producer_id`]: crate::kafka::idempotence::init_producer_id
    pub producer_id: Option<ProducerId>,
    /// The transactional id batches are written under (with the producer
    /// id its coordinator gave, and every partition added to the open
    /// transaction before records go to it).
    pub transactional_id: Option<String>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            linger: DEFAULT_LINGER,
            batch_bytes: DEFAULT_BATCH_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            keys_required: false,
            compression: Compression::None,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            partitioner: PartitionerKind::Murmur2,
            delivery_timeout: crate::kafka::connect::DEFAULT_TIMEOUT,
            metadata_max_age: DEFAULT_METADATA_MAX_AGE,
            timestamps: TimestampLimits::default(),
            producer_id: None,
            transactional_id: None,
        }
    }
}

/// `with_*` builders, each setting the field of its name.
impl ProducerConfig {
    /// With [`linger`](Self::linger).
    #[must_use]
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// With [`batch_bytes`](Self::batch_bytes).
    #[must_use]
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes;
        self
    }

    /// With [`max_message_bytes`](Self::max_message_bytes).
    #[must_use]
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// With [`keys_required`](Self::keys_required).
    #[must_use]
    pub fn with_keys_required(mut self, required: bool) -> Self {
        self.keys_required = required;
        self
    }

    /// With [`compression`](Self::compression).
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// With [`buffer_bytes`](Self::buffer_bytes).
    #[must_use]
    pub fn with_buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes;
        self
    }

    /// With [`partitioner`](Self::partitioner).
    #[must_use]
    pub fn with_partitioner(mut self, partitioner: PartitionerKind) -> Self {
        self.partitioner = partitioner;
        self
    }

    /// With [`delivery_timeout`](Self::delivery_timeout).
    #[must_use]
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// With [`metadata_max_age`](Self::metadata_max_age).
    #[must_use]
    pub fn with_metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = age;
        self
    }

    /// With [`timestamps`](Self::timestamps).
    #[must_use]
    pub fn with_timestamps(mut self, timestamps: TimestampLimits) -> Self {
        self.timestamps = timestamps;
        self
    }

    /// With [`producer_id`](Self::producer_id): idempotent.
    #[must_use]
    pub fn with_producer_id(mut self, id: ProducerId) -> Self {
        self.producer_id = Some(id);
        self
    }

    /// With [`transactional_id`](Self::transactional_id) (and the
    /// producer id its coordinator gave, in
    /// [`with_producer_id`](Self::with_producer_id)).
    #[must_use]
    pub fn with_transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }
}

/// A record to produce: [`new`](Self::new) with its value, then `with_*`
/// methods.
///
/// ```
/// use weir::produce::ProduceRecord;
///
/// let record = ProduceRecord::new("{\"user\":7}").with_key("user-7");
/// assert_eq!(record.key.as_deref(), Some(&b"user-7"[..]));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
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
    /// A record with `value`, no key (the partitioner's sticky partition),
    /// no headers, created now.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// A tombstone: a null value, which deletes `key` under compaction.
    pub fn tombstone(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Some(key.into()),
            ..Self::default()
        }
    }

    /// With `key`: records of one key go to one partition, in order.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// With a header added after those it has (a key may repeat).
    #[must_use]
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// With a create time, in ms since the epoch (the topic's
    /// `message.timestamp.*` limits apply).
    #[must_use]
    pub fn with_timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// To `partition`, whatever the partitioner says.
    #[must_use]
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Upper estimate of the record's encoded size in a batch.
    pub fn approximate_size(&self) -> usize {
        encoded_size(self.key.as_deref(), self.value.as_deref(), &self.headers)
    }
}
