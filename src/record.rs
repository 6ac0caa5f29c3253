//! A record as read from a partition: what the consumer yields, and what
//! the filter, the output formats, the aggregations and the offsets store
//! take.

use std::sync::Arc;

use crate::{Header, TopicPartition};

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

impl ConsumedRecord {
    /// The partition it was read from.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(Arc::clone(&self.topic), self.partition)
    }
}
