//! What a producer reports: a record's [`Delivery`], and why a record or
//! a batch was not written.

use std::sync::Arc;
use std::time::Duration;

use crate::kafka::connect::{ClientError, LeaderLookupError};
use crate::timestamp::TimestampProblem;

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendFailure {
    /// The client gave up: the broker refused the batch, or could not be
    /// reached until the deadline.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No acknowledgement came before the delivery deadline.
    #[error("no acknowledgement within {} (--timeout)", humantime::format_duration(*.timeout))]
    NoAcknowledgement {
        /// The deadline.
        timeout: Duration,
    },
    /// The topic was deleted while records were on their way.
    #[error("the topic was deleted")]
    TopicDeleted,
}

impl ProduceError {
    /// Whether the broker refused the batch because a newer producer of
    /// its transactional id started: this one is fenced for good.
    pub fn is_fenced(&self) -> bool {
        matches!(
            self,
            Self::Send {
                cause: SendFailure::Client(e),
                ..
            } if e.is_fenced()
        )
    }
}

/// What happened to one record.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Delivery {
    /// The caller's tag given to [`Producer::send`](crate::produce::producer::Producer::send) (e.g. an input line),
    /// or, from a [`FutureProducer`](crate::produce::FutureProducer), the
    /// record's number among those it was sent (from 0).
    pub tag: u64,
    /// The partition the record was routed to.
    pub partition: i32,
    /// Its offset, or why it was not written.
    pub result: Result<i64, Arc<ProduceError>>,
}

impl Delivery {
    /// The record's offset.
    ///
    /// # Errors
    ///
    /// Why it was not written.
    pub fn offset(&self) -> Result<i64, Arc<ProduceError>> {
        self.result.clone()
    }
}

/// Errors of the producer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// A partition of the topic could not be opened.
    #[error("cannot produce to topic \"{topic}\" partition {partition}")]
    Topic {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Why.
        #[source]
        cause: LeaderLookupError,
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
    /// A record larger than the topic stores.
    #[error(
        "record of about {size} bytes is larger than topic \"{topic}\" stores: its max.message.bytes is {limit} (raise it for the topic with kafka-configs --alter --entity-type topics --entity-name {topic} --add-config max.message.bytes=N, or weir topics create --config max.message.bytes=N)"
    )]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The record's estimated size.
        size: usize,
        /// The topic's `max.message.bytes`.
        limit: usize,
    },
    /// A record without a key for a compacted topic, which the broker
    /// refuses (INVALID_RECORD) with the rest of its batch.
    #[error(
        "a record without a key cannot go to topic \"{topic}\": it is compacted (cleanup.policy=compact), and the broker refuses records without keys there"
    )]
    NullKeyCompacted {
        /// The topic.
        topic: String,
    },
    /// The broker did not take a batch before the deadline.
    #[error("producing to topic \"{topic}\" partition {partition} failed{}", leader.as_deref().map(|l| format!(": leader {l}")).unwrap_or_default())]
    Send {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The partition leader's `host:port`, as last known.
        leader: Option<String>,
        /// Why.
        #[source]
        cause: SendFailure,
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
    /// An earlier batch of the same partition failed while this one was
    /// on its way: its outcome is not known.
    #[error(
        "not acknowledged by topic \"{topic}\" partition {partition}: an earlier batch failed while this one was on its way (it may have been written)"
    )]
    Unconfirmed {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A create time the topic would refuse, or a record cannot carry
    /// (see [`TimestampLimits`](crate::timestamp::TimestampLimits)).
    #[error("timestamp {timestamp_ms} ({}) for topic \"{topic}\" {problem}", crate::timestamp::rfc3339(*.timestamp_ms))]
    Timestamp {
        /// The topic.
        topic: String,
        /// The record's create time, ms since the epoch.
        timestamp_ms: i64,
        /// What is wrong with it.
        problem: TimestampProblem,
    },
    /// The topic is not in the cluster's metadata.
    #[error("topic \"{topic}\" does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The cluster's metadata (the topic's partition count) could not be
    /// read.
    #[error("cannot read the metadata of topic \"{topic}\"")]
    Metadata {
        /// The topic.
        topic: String,
        /// Why.
        #[source]
        cause: ClientError,
    },
    /// The producer was closed.
    #[error("the producer for topic \"{topic}\" is closed")]
    Closed {
        /// The topic.
        topic: String,
    },
}

impl ProduceError {
    /// Whether [`Producer::send`](crate::produce::producer::Producer::send)
    /// refused this one record before sending it (it is too large, out of
    /// the topic's timestamp limits or partitions, or without a key for a
    /// compacted topic); the producer goes on.
    pub fn is_record_refusal(&self) -> bool {
        matches!(
            self,
            Self::RecordTooLarge { .. }
                | Self::Timestamp { .. }
                | Self::NullKeyCompacted { .. }
                | Self::PartitionOutOfRange { .. }
        )
    }
}
