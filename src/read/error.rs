//! What goes wrong reading: a fetch ([`FetchError`]), a partition
//! ([`FetchFailure`]) and the consumer as a whole ([`ConsumeError`]).

use std::time::Duration;

use rskafka::client::error::ProtocolError;

use crate::TopicPartition;
use crate::kafka::connect::ClientError;

/// Why a fetch failed, as far as the loop cares.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The offset is outside the partition's log.
    #[error("offset out of range")]
    OutOfRange,
    /// The broker does not know the topic or partition: deleted, or not
    /// yet learnt from the controller.
    #[error("the broker does not know the topic or partition")]
    UnknownTopic,
    /// The broker returned no records below the end of the log, even at
    /// the largest fetch size: its answer was damaged.
    #[error(
        "the Fetch response had no records below the end of the log ({end}), at a fetch size of {max_bytes} bytes"
    )]
    NothingReturned {
        /// The end of the log the response gave.
        end: i64,
        /// The fetch size asked for.
        max_bytes: i32,
    },
    /// No answer by the deadline.
    #[error("no answer from the broker")]
    TimedOut,
    /// No answer within the consumer's retry timeout.
    #[error("no answer within the retry timeout ({})", humantime::format_duration(*.0))]
    NoAnswerWithin(Duration),
    /// Anything else (after rskafka's own retries), as
    /// [`ClientError`] words it: one sentence, as rskafka's errors repeat
    /// their causes in their own text.
    #[error(transparent)]
    Client(ClientError),
}

impl From<rskafka::client::error::Error> for FetchError {
    fn from(e: rskafka::client::error::Error) -> Self {
        use rskafka::client::error::Error;
        match e {
            Error::ServerError {
                protocol_error: ProtocolError::OffsetOutOfRange,
                ..
            } => Self::OutOfRange,
            Error::ServerError {
                protocol_error: ProtocolError::UnknownTopicOrPartition,
                ..
            } => Self::UnknownTopic,
            e => Self::Client(e.into()),
        }
    }
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
    #[error("no partitions to read: {}", match .instance {
        Some((index, count)) => format!("instance {index}/{count} owns none of the selected partitions"),
        None => "the selection is empty".to_owned(),
    })]
    NothingAssigned {
        /// The instance (`--instance index/count`) whose share is empty;
        /// `None` when the selection itself is.
        instance: Option<(u32, u32)>,
    },
    /// The cluster's metadata could not be read.
    #[error("cannot read the topic list")]
    Metadata(#[source] ClientError),
    /// A partition could not be read.
    #[error("reading {at} failed")]
    Fetch {
        /// The partition.
        at: TopicPartition,
        /// Why.
        #[source]
        cause: FetchFailure,
    },
    /// A topic pattern that is invalid or matches no topic.
    #[error(transparent)]
    Pattern(#[from] super::pattern::PatternError),
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
    /// A record's key or value could not be decoded through the schema
    /// registry, under `OnBadInput::Fail`.
    #[error(transparent)]
    Undecodable(Box<crate::registry::codec::BadRecord>),
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
