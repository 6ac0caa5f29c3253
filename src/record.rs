//! A record as read from a partition: what the consumer yields, and what
//! the filter, the output formats, the aggregations and the offsets store
//! take.

use std::sync::Arc;

use crate::{Header, TopicPartition};

/// One record read from a partition (what a [`Consumer`](crate::Consumer)
/// yields; its fields grow without breaking readers).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumedRecord {
    /// The topic it was read from.
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// Whose time `timestamp_ms` is: the producer's or the broker's.
    pub timestamp_type: TimestampType,
    /// Key; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// Value; `None` is a null value (tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers, in the record's order (see [`Header`]).
    pub headers: Vec<Header>,
    /// Whether the key and value were decoded through a schema registry
    /// into JSON text (`crate::registry::codec`).
    pub decoded: Decoded,
}

/// Which of a record's key and value are JSON text decoded through a
/// schema registry, not the bytes as stored: `--json` writes them as
/// JSON, not as strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The key is decoded JSON text.
    pub key: bool,
    /// The value is decoded JSON text.
    pub value: bool,
}

/// Whose time a record's timestamp is (the topic's
/// `message.timestamp.type`, as the record's batch says).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// The producer's create time.
    #[default]
    CreateTime,
    /// The broker's append time: the topic has
    /// `message.timestamp.type=LogAppendTime`.
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's name for it, as the Java console consumer prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateTime => "CreateTime",
            Self::LogAppendTime => "LogAppendTime",
        }
    }
}

impl ConsumedRecord {
    /// The partition it was read from.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(Arc::clone(&self.topic), self.partition)
    }
}
