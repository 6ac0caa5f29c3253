//! Share groups (KIP-932, "queues for Kafka"): `weir consume
//! --share-group G`. Many members read one partition; the broker hands
//! each record to one member at a time (acquired, under a lock with a
//! timeout), and the member acknowledges it: ACCEPT once its output was
//! written and flushed (a record the filter leaves out is accepted too),
//! RELEASE for what it holds unwritten when it stops (delivered again, to
//! any member), REJECT for what it cannot process. A member that dies
//! leaves its records to the lock's timeout, then another member gets
//! them. There are no offsets of weir's own: the share-partition state
//! lives in the broker.
//!
//! `weir pipe --share-group G` ([`pipe()`]) is the same member with
//! another worker: a record is accepted once its output record was
//! acknowledged by the output topic, and one that cannot be transformed
//! is rejected (archived, never delivered again).
//!
//! - `run` (private): the loop both jobs run (membership, sessions, the
//!   stop), handing deliveries to a worker;
//! - `writing`, `pipe` (private): the workers of `consume` and `pipe`;
//! - [`member`](self::member) (private): membership (ShareGroupHeartbeat)
//!   and the topics' ids and leaders;
//! - [`session`](self::session) (private): one ShareFetch session per
//!   partition leader, acknowledgements carried by the next fetch;
//! - [`acks`]: what is held and owed, with no I/O;
//! - [`start`]: where a new share group starts (`share.auto.offset.reset`);
//! - [`offsets`](self::offsets): `weir offsets show/set/delete` of a
//!   share group.

pub mod acks;
mod member;
pub mod offsets;
mod pipe;
mod run;
mod session;
pub mod start;
mod writing;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;

use crate::TopicPartition;
use crate::consume::filter::Filter;
use crate::consume::output::RecordWriter;
use crate::job::StopReason;
use crate::kafka::connect::{ConnectError, ConnectionConfig};
use crate::kafka::wire::WireError;
use crate::pipe::PipeError;
use crate::produce::producer::ProduceError;

pub use pipe::pipe;
pub use start::ShareStart;

/// What a share-group consumer does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShareConfig {
    /// The share group.
    pub group: String,
    /// The topics it reads.
    pub topics: Vec<String>,
    /// Where the group starts if it has no state yet; refused on a group
    /// that has ([`ShareError::StartRefused`]).
    pub start: Option<ShareStart>,
    /// Which records are written (the others are accepted unwritten).
    pub filter: Filter,
    /// Stop after this many records were written.
    pub count: Option<u64>,
    /// Records a fetch may acquire (the Java consumer's
    /// `max.poll.records`, whose default this is).
    pub max_records: i32,
    /// How long a fetch waits for records; a stop waits for the fetch
    /// under way, so this bounds it. 500 ms, the Java consumer's
    /// `fetch.max.wait.ms`.
    pub max_wait: Duration,
    /// Serve `/metrics`, `/healthz` and `/readyz` here.
    pub metrics_addr: Option<String>,
}

impl ShareConfig {
    /// Reads `topics` as a member of `group`, every record written.
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            group: group.into(),
            topics,
            start: None,
            filter: Filter::new(Default::default()),
            count: None,
            max_records: 500,
            max_wait: Duration::from_millis(500),
            metrics_addr: None,
        }
    }

    /// Where a new group starts.
    #[must_use]
    pub fn with_start(mut self, start: Option<ShareStart>) -> Self {
        self.start = start;
        self
    }

    /// Which records are written.
    #[must_use]
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Stop after `count` written records.
    #[must_use]
    pub fn with_count(mut self, count: Option<u64>) -> Self {
        self.count = count;
        self
    }

    /// Serves the metrics and health endpoints at `addr`.
    #[must_use]
    pub fn with_metrics_addr(mut self, addr: Option<String>) -> Self {
        self.metrics_addr = addr;
        self
    }

    /// Records a fetch may acquire.
    #[must_use]
    pub fn with_max_records(mut self, max_records: i32) -> Self {
        self.max_records = max_records;
        self
    }
}

/// Why a share-group job failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The cluster could not be reached (TLS, SASL, or a file).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The broker does not offer share groups.
    #[error(
        "share group \"{group}\": the broker {broker} does not offer share groups (KIP-932: Kafka 4.1 and later, share.version 1): it is {version}"
    )]
    Unsupported {
        /// The group.
        group: String,
        /// The broker asked.
        broker: String,
        /// What the broker is, as its ApiVersions answer tells.
        version: String,
    },
    /// A request failed on the connection.
    #[error("share group \"{group}\"")]
    Wire {
        /// The group.
        group: String,
        /// What failed.
        #[source]
        source: WireError,
    },
    /// The cluster could not be reached within the timeout.
    #[error("share group \"{group}\": the cluster could not be reached: {why}")]
    Unreachable {
        /// The group.
        group: String,
        /// The last failure.
        why: String,
    },
    /// The broker refused a request of the group's.
    #[error("share group \"{group}\": {api} refused: {error:?}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Refused {
        /// The group.
        group: String,
        /// The request.
        api: &'static str,
        /// The broker's error.
        error: ResponseError,
        /// The broker's message, if any.
        message: Option<String>,
    },
    /// A partition could not be fetched.
    #[error("share group \"{group}\": {topic}/{partition}: ShareFetch refused: {error:?}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Partition {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker's error.
        error: ResponseError,
        /// The broker's message, if any.
        message: Option<String>,
    },
    /// Fetched records could not be decoded.
    #[error("share group \"{group}\": {topic}/{partition}: records could not be read: {reason}")]
    Records {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Why.
        reason: String,
    },
    /// A topic does not exist.
    #[error("topic \"{topic}\" does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// `--from` on a group that has state already.
    #[error(
        "share group \"{group}\" already exists ({state}): --from only sets where a new share group starts; use `weir offsets set -g {group}` to move it"
    )]
    StartRefused {
        /// The group.
        group: String,
        /// What the group has.
        state: String,
    },
    /// The metrics endpoint could not be served.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The output could not be written.
    #[error("the output could not be written")]
    Output(#[source] std::io::Error),
    /// `weir pipe --share-group --exactly-once`.
    #[error(
        "share group \"{group}\": --exactly-once is not possible with a share group: share groups have no transactional acknowledgement (KIP-932), so an output record and the acknowledgement of its input cannot be one transaction; without it each record is accepted once its output is acknowledged (at least once)"
    )]
    ExactlyOnce {
        /// The group.
        group: String,
    },
    /// A pipe's output could not be opened.
    #[error(transparent)]
    Pipe(Box<PipeError>),
    /// A pipe's output topic did not take a record.
    #[error(
        "share group \"{group}\": writing to topic \"{topic}\" (records it did not acknowledge are released, to be delivered again)"
    )]
    Produce {
        /// The group.
        group: String,
        /// The output topic.
        topic: String,
        /// Why.
        #[source]
        source: Arc<ProduceError>,
    },
    /// A pipe's output topic cannot take an input record (too large,
    /// outside its timestamp limits, without a key for a compacted
    /// topic); it was refused before it was sent.
    #[error(
        "share group \"{group}\": the record at {at} offset {offset} cannot be written to the output (it is released, to be delivered again)"
    )]
    Record {
        /// The group.
        group: String,
        /// The input partition.
        at: TopicPartition,
        /// The input record's offset.
        offset: i64,
        /// Why.
        #[source]
        source: Arc<ProduceError>,
    },
}

/// The end of a share-group job.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ShareSummary {
    /// Records acquired.
    pub records: u64,
    /// Records written (of a pipe: acknowledged by the output topic).
    pub written: u64,
    /// Records the filter left out (accepted unwritten).
    pub filtered: u64,
    /// Records a JSON filter could not parse (accepted unwritten); of a
    /// pipe, records whose key, value or filter field could not be read
    /// (rejected).
    pub unparsed: u64,
    /// Records acquired that had been delivered before.
    pub redeliveries: u64,
    /// Acknowledged ACCEPT.
    pub accepted: u64,
    /// Acknowledged RELEASE.
    pub released: u64,
    /// Acknowledged REJECT.
    pub rejected: u64,
    /// How long the job ran.
    pub elapsed: Duration,
    /// Why it ended.
    pub stop: Option<StopReason>,
}

/// Consumes `config.topics` as a member of the share group
/// `config.group` into `writer`, until `shutdown` completes, `count`
/// records are written or the output closes; then releases what it holds
/// unwritten and leaves the group.
///
/// # Errors
///
/// The broker has no share groups, the cluster or a topic cannot be
/// reached, a request is refused, or the output fails.
pub async fn consume<W: Write>(
    connection: &ConnectionConfig,
    config: ShareConfig,
    writer: &mut RecordWriter<W>,
    shutdown: impl Future<Output = StopReason>,
) -> Result<ShareSummary, ShareError> {
    let mut worker = writing::Writing {
        config: &config,
        writer,
    };
    run::run(connection, &config, &mut worker, shutdown).await
}
