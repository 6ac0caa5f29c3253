//! weir: real-time data processing on Apache Kafka in pure Rust.
//!
//! weir is a library and a single static binary built on the
//! [`rskafka`] client, with no librdkafka and no C Kafka library. It adds
//! what rskafka leaves out on purpose: administrative requests that carry
//! topic configs, Java-compatible key partitioning, explicit per-partition
//! consumers and offsets that weir commits into a compacted topic of its own.
//!
//! The binary (`src/main.rs` and `src/cli/`) is a thin shell: it parses the
//! command line into the typed configs defined here and calls the library.
//! Without its `cli` feature (the binary's, on by default) this crate never
//! depends on clap.
//!
//! # Layout
//!
//! The folders are the layers; data flows down this list and back up only
//! as return values.
//!
//! - [`kafka`]: reaching the cluster.
//!   [`connect`](kafka::connect): [`ConnectionConfig`], the options every
//!   command shares (brokers, client id, deadline, TLS, SASL), and the
//!   [`rskafka::client::Client`] built from them;
//!   [`security`](kafka::security): TLS files and SASL credentials;
//!   [`secret`](kafka::secret): a password that never shows in logs;
//!   [`token`](kafka::token): OAUTHBEARER tokens from a file or a command,
//!   refreshed as the Java client does;
//!   [`profile`](kafka::profile): the config file's named cluster
//!   profiles, parsed by the `toml` crate, with the line of each key for
//!   its messages;
//!   `wire` (private): a small Kafka protocol connection (TCP or TLS,
//!   SASL) for the requests rskafka cannot send, with its own options and
//!   errors (`wire/error.rs`), and, in unit tests, a scripted broker in
//!   the same process (`wire/fake.rs`): the seam under the group and
//!   transaction coordinators, whose failure paths are tested on a paused
//!   clock (`transaction_tests.rs`, `membership/tests.rs`);
//!   `retry` (private): the one loop behind every request tried again
//!   until a deadline (connecting, describing a topic, InitProducerId,
//!   joining a group, a coordinator's requests), with the Java client's
//!   backoff: exponential from 100 ms, capped at 1 s, ±20 % jitter;
//!   [`admin`](kafka::admin): the cluster (id, controller, brokers, each
//!   partition's leader, replicas and ISR), and topics: list, describe
//!   (leaders, watermarks, configs), create with configs, delete, the
//!   offsets for a time, with one mapping of the broker's error codes, and
//!   Kafka's rule for topic names, checked before any request;
//!   [`idempotence`](kafka::idempotence): the idempotent producer's id
//!   and epoch;
//!   [`transaction`](kafka::transaction): one producer's transactions
//!   (fencing its predecessors, partitions and a member's offsets added,
//!   commit or abort), its coordinators found and asked again until they
//!   answer (`transaction/coordinator.rs`);
//!   [`membership`](kafka::membership): a member of a Kafka consumer group
//!   through the broker's coordinator (join, sync with the chosen one of
//!   its [`assignors`](kafka::membership::assignors), eager or
//!   cooperative rebalances, heartbeats on a task of
//!   their own, a lease on the partitions, commits mirrored to the
//!   broker's group offsets, leave; static members with a group instance
//!   id, KIP-345, in `membership/join.rs` the join round).
//! - [`produce`]: the `weir produce` job (inputs read and parsed on a
//!   thread, the bad-input policy, a delivery report per record, its
//!   failures and a line's in `produce/failure.rs`), with
//!   [`partitioner`](produce::partitioner) (murmur2 as the Java client,
//!   CRC-32 as librdkafka's `consistent`, sticky null keys, random,
//!   round-robin), [`producer`](produce::producer) (routing, records held
//!   within a memory budget, per-partition batches with linger sized in
//!   bytes as sent, compressed and cut ahead of the request, up to five
//!   requests in flight per partition with idempotence and the sequences
//!   and epochs of KIP-360, a delivery report for every record and the
//!   errors, in `produce/error.rs`; record and request sizes in
//!   `produce/size.rs`), its start in order (`produce/start.rs`: the
//!   topic, the partition asked for, the transaction or producer id, the
//!   producer) and
//!   [`input`](produce::input) (delimiters, key delimiter, fixed key and
//!   headers, JSON lines with base64 fields and headers as an ordered list,
//!   [`Header`]). A library user's producer is
//!   [`FutureProducer`] (`produce/future.rs`):
//!   the same producer shared by `Clone`, `send(&self)` returning each
//!   record's [`DeliveryFuture`](produce::DeliveryFuture), the partition
//!   count read from the metadata; [`ProducerConfig`] and
//!   [`ProduceRecord`] with their builders are in `produce/config.rs`,
//!   [`Compression`](produce::Compression) in `produce/compression.rs`.
//! - [`read`]: the explicit per-partition [`Consumer`] that every reading
//!   job uses, and that knows nothing of jobs:
//!   [`position`](read::position) (where a partition starts and stops,
//!   as written: [`StartOffset`](read::StartOffset),
//!   [`Until`](read::Until), times),
//!   [`assign`](mod@read::assign) (topics, partitions and an instance's
//!   share, checked against the metadata),
//!   [`start`](read::start) (a committed or configured start clamped to
//!   the watermarks), [`fetch`](read::fetch) (the
//!   [`PartitionFetch`](read::PartitionFetch) seam and the task that
//!   reads one partition: long polls, fetch sizes, retries within the retry
//!   timeout, out-of-range offsets, deleted topics) and
//!   [`consumer`](read::consumer) (one fetch task per partition merged
//!   into one bounded stream, a [`futures::Stream`]), with its [`config`](read::config),
//!   [`error`](read::error)s and [`event`](read::event)s in files of
//!   their own.
//! - [`consume`]: the `weir consume` job (filter, output, tally, the
//!   at-least-once commit of flushed positions):
//!   [`filter`](consume::filter) (regular expressions on keys and values,
//!   JSON field matches) and [`output`](consume::output) (raw values,
//!   templates, JSON lines).
//! - [`share`]: share groups (KIP-932), `weir consume --share-group` and
//!   `weir pipe --share-group` ([`share::pipe()`]):
//!   membership by ShareGroupHeartbeat, a ShareFetch session per leader
//!   with acknowledgements carried by the next fetch
//!   ([`acks`](share::acks): what is held and owed, no I/O), where a new
//!   group starts ([`start`](share::start)) and its offsets for `weir
//!   offsets` ([`offsets`](share::offsets)).
//! - [`pipe`]: `weir pipe`: records filtered, re-keyed and reshaped into
//!   another topic, at least once (commits after the output acknowledged)
//!   or exactly once ([`lanes`](pipe::lanes): a transaction per input
//!   partition), plugged into the job runner (`pipe/reading.rs`).
//! - [`job`]: the loop every job shares: the consumer's events, the
//!   shutdown future, the checkpoint interval, stop reasons, a closed
//!   output ([`is_broken_pipe`](job::is_broken_pipe)), periodic commits
//!   ([`Commits`](job::Commits)) through a store seam
//!   ([`GroupCommit`](job::GroupCommit)), and conflicts with other
//!   instances (`--exclusive`); [`job::runner`]: the one runner that
//!   starts any reading job ([`Reading`](job::runner::Reading):
//!   `consume`, `count`/`agg` and `pipe` plug in) from a typed
//!   [`ReadPlan`](job::runner::ReadPlan), standalone or as a group member:
//!   the metrics server, the client, assignment, the exactly-once order
//!   (outputs opened before the group's commits are read), the commits,
//!   restore; [`job::member`]: the generations of a member of a group
//!   (rebalances, fencing, leaving) and its summaries added up over them.
//! - [`group`]: a member of a consumer group from library code,
//!   [`Member`](group::Member) with an async handler per record (or per
//!   batch): the runner of [`job::runner`] with the handler as its job
//!   (joining, cooperative handover, commits after the handler's `Ok`,
//!   fencing), in `group/handle.rs`.
//! - [`offsets`]: group offsets and aggregation state as records in a
//!   compacted topic: the records (keys, commit values, a large state split
//!   into chunks and joined back), the store
//!   ([`OffsetStore`](offsets::OffsetStore): found or created, read,
//!   written with acks=all), one process's session with it
//!   ([`GroupSession`](offsets::GroupSession): commits, checkpoints with
//!   state, other instances' commits), and [`group`](offsets::group):
//!   joining a group (where its partitions resume), `weir offsets set` and
//!   `delete`, and [`report`](offsets::report): what `weir offsets` asks
//!   (the groups, a group's positions against each partition's log).
//! - [`aggregate`]: `weir agg` and `weir count` (agg with `count` alone):
//!   aggregates per key in tumbling, hopping or session windows, whose
//!   state is checkpointed with the input offsets, so a crash neither
//!   loses nor double-counts. Its files: `spec` (`--agg`), `extract` (what
//!   a record is grouped under), `acc` (a (window, key)'s aggregates),
//!   `state` (a partition's windows, sessions and watermark, pure and
//!   unit-tested on its own; `state/checkpoint.rs` their checkpoint form,
//!   snapshots and deltas), `rows` (partitions merged into rows), `emit`
//!   (rows as JSON lines or a table), `topic` (rows to an output topic,
//!   exactly once in its transactions), `run` (a run as the job loop
//!   drives it: emission and checkpoints), `restore` (saved state read
//!   back), `reading` (the job as the runner starts it, with the window
//!   rules checked in [`WindowSpec`](aggregate::WindowSpec)) and `error`;
//!   [`aggregate::sketch`]: the mergeable sketches of `distinct`, `topN`
//!   and percentiles.
//! - [`bench`](mod@bench): `weir bench`, one file per scenario: producer
//!   throughput, consumer throughput and end-to-end latency, with a
//!   fixed-memory latency [`Histogram`](bench::Histogram) (its file is
//!   shared with the rust-rdkafka baseline).
//! - [`metrics`]: `--metrics-addr`: the process's registry of job
//!   figures (records and bytes in and out, lag, commits, produce
//!   latency, retries, errors, rebalances, windows, state), updated with
//!   atomics per batch by the fetch tasks, the producer, the offsets
//!   session, the group member and the aggregation; the Prometheus text
//!   format (`metrics/text.rs`); a small HTTP server for `/metrics`,
//!   `/healthz` and `/readyz` (`metrics/server.rs`).
//! - [`timestamp`]: record timestamps at the edges: the create times a
//!   topic accepts, checked per record before it is batched, and RFC 3339
//!   text before 1970 and after 9999 included.
//! - [`record`]: [`ConsumedRecord`](record::ConsumedRecord), a record as
//!   read from a partition: what the consumer yields, and what the filter,
//!   the outputs, the aggregations and the offsets store take.
//! - [`json_path`]: JSON pointers looked up in one streaming pass, without
//!   building a `serde_json::Value`: the filter's `--where` and count's
//!   `--by json:/POINTER`.
//! - [`pattern`]: regular expressions as weir compiles them (`--grep`,
//!   `--grep-key`, `regex:` extractors), their syntax errors told in one
//!   line.
//!
//! The binary's `src/cli/` has one file per subcommand, with the flags
//! several share in `flags.rs` and the connection flags in `connect.rs`
//! (their validation into a [`ConnectionConfig`] in
//! `connect/effective.rs`).
//!
//! Errors are typed per module (`thiserror`) and name the broker, topic or
//! partition involved; the binary adds context with `anyhow`.
//!
//! # Use as a library
//!
//! A [`ConnectionConfig`] makes the [`Client`]; a [`FutureProducer`] sends
//! with `&self` and gives each record's delivery as a future; a
//! [`Consumer`] is a [`futures::Stream`] of its partitions' records; a
//! [`group::Member`] calls an async handler for every record of the
//! partitions its group assigns it. The
//! jobs the binary runs ([`aggregate::count`], [`pipe::pipe`],
//! [`consume::consume`]) take typed configs and a shutdown future.
//! `examples/` in the repository has a program for each, run against a
//! broker by the tests.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use weir::read::{ConsumerConfig, ConsumerEvent, Selection, Until, assign};
//! use weir::{ConnectionConfig, Consumer, FutureProducer, ProduceRecord, ProducerConfig};
//!
//! let client = Arc::new(ConnectionConfig::new(["127.0.0.1:9092"]).client().await?);
//! let producer = FutureProducer::new(Arc::clone(&client), "events", ProducerConfig::default()).await?;
//! let delivery = producer.send(ProduceRecord::new("hello").with_key("k")).await?;
//! delivery.await.offset()?;
//!
//! let partitions = assign(&client, &Selection::new(["events"])).await?;
//! let config = ConsumerConfig::default().with_until(Until::End);
//! let mut consumer = Consumer::start(&client, partitions, config).await?;
//! while let Some(event) = consumer.next().await {
//!     if let ConsumerEvent::Records(records) = event {
//!         println!("{} records", records.len());
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![deny(rust_2018_idioms, unsafe_code)]
#![warn(missing_debug_implementations, missing_docs)]
// The futures of jobs that produce (a partition client's request inside its
// retry loop inside a job's tasks) nest deeper than the compiler's default
// query depth of 128 allows when it lays them out.
#![recursion_limit = "256"]

pub mod aggregate;
pub mod bench;
pub mod consume;
pub mod group;
pub mod job;
pub mod json_path;
pub mod kafka;
pub mod metrics;
pub mod offsets;
pub mod pattern;
pub mod pipe;
pub mod produce;
pub mod read;
pub mod record;
pub mod registry;
pub mod share;
pub mod timestamp;

pub use kafka::admin::Admin;
pub use kafka::connect::ConnectionConfig;
pub use produce::{FutureProducer, ProduceRecord, ProducerConfig};
pub use read::Consumer;
/// The Kafka client every job shares: made by
/// [`ConnectionConfig::client`] and shared as an `Arc<Client>`.
///
/// One rule across the public API: a call that only uses the client takes
/// `&Client` (an `&Arc<Client>` derefs to it, so `&client` does), and one
/// whose result keeps it (a producer, the offsets store and a group's
/// session with it, a group member, a transactional output) takes an
/// `Arc<Client>` (`Arc::clone(&client)`); no public item takes an
/// `&Arc<Client>`.
pub use rskafka::client::Client;

/// A record header: its key and its value, `None` for a null value.
///
/// A record's headers are a `Vec<Header>` in the record's order, a repeated
/// key as often as it was given, as Kafka keeps them. The type is
/// rskafka's, so records move between the two without a copy.
pub type Header = rskafka::record::Header;

/// A partition of a topic: the unit of assignment, positions, committed
/// offsets and aggregation state.
///
/// Ordered by topic name, then partition number. Displays as messages name
/// it: `topic "orders" partition 3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic's name, shared by all partitions of a topic.
    pub topic: std::sync::Arc<str>,
    /// The partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// The partition `partition` of `topic`.
    pub fn new(topic: impl Into<std::sync::Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "topic \"{}\" partition {}", self.topic, self.partition)
    }
}

/// A count and its noun for messages, singular for 1: `"1 partition"`,
/// `"6 partitions"`. Only for nouns whose plural adds an "s".
pub fn plural(count: impl Into<i128>, noun: &str) -> String {
    let count = count.into();
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// An error and its sources on one line, `outer: inner`, as anyhow's
/// `{:#}` prints them: for a log field (`error = %ErrorChain(&e)`), where
/// `%e` would show the outermost message only.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn topic_partitions_order_by_topic_then_partition_and_name_both() {
        use super::TopicPartition;
        let mut all = [
            TopicPartition::new("b", 0),
            TopicPartition::new("a", 10),
            TopicPartition::new("a", 2),
        ];
        all.sort();
        assert_eq!(all[0], TopicPartition::new("a", 2));
        assert_eq!(all[2], TopicPartition::new("b", 0));
        assert_eq!(all[1].to_string(), "topic \"a\" partition 10");
    }

    #[test]
    fn an_error_chain_prints_every_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading offsets topic \"o\" partition 2")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("no answer"));
        assert_eq!(
            super::ErrorChain(&e).to_string(),
            "reading offsets topic \"o\" partition 2: no answer"
        );
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e)),
            "reading offsets topic \"o\" partition 2: no answer",
            "the same text as the binary prints"
        );
    }

    /// Every message in `e`'s chain, outermost first.
    fn messages(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
        std::iter::successors(Some(e), |e| e.source())
            .map(ToString::to_string)
            .collect()
    }

    /// `e` as the binary prints it (anyhow's `{:#}`) and as logs do
    /// (`ErrorChain`), which must agree, with no message repeating its
    /// cause's.
    fn rendered<E: std::error::Error + Send + Sync + 'static>(e: E) -> String {
        let chain = super::ErrorChain(&e).to_string();
        let all = messages(&e);
        for pair in all.windows(2) {
            assert!(
                !pair[0].contains(&pair[1]),
                "{:?} repeats its cause {:?}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(format!("{:#}", anyhow::Error::new(e)), chain);
        chain
    }

    #[test]
    fn a_nested_error_prints_each_cause_once() {
        use crate::kafka::connect::ConnectError;
        use crate::kafka::membership::MembershipError;
        use crate::kafka::{LastAttempt, TlsFailure, WireError};
        use std::io::{Error, ErrorKind};

        // A member that found no broker: the wire's last failure, inside
        // its timeout, inside the member's connect error, inside the job's.
        let refused = || WireError::Connect {
            broker: "127.0.0.1:1".to_owned(),
            source: Error::new(ErrorKind::ConnectionRefused, "connection refused"),
        };
        let timeout = WireError::Timeout {
            brokers: "127.0.0.1:1".to_owned(),
            timeout: std::time::Duration::from_secs(2),
            last: LastAttempt::Failed(Box::new(refused())),
        };
        let job = crate::job::JobError::from(MembershipError::Connect(ConnectError::Wire(timeout)));
        let text = rendered(job);
        assert_eq!(
            text,
            "no broker reachable at 127.0.0.1:1 within 2s: error connecting to broker \
             \"127.0.0.1:1\": connection refused"
        );
        assert_eq!(text.matches("connection refused").count(), 1, "{text}");

        // The same failure on the group's own wire connection, the group
        // named once and the cause once.
        let wire = crate::job::JobError::from(MembershipError::Wire {
            group: "g".to_owned(),
            source: refused(),
        });
        assert_eq!(
            rendered(wire),
            "group \"g\": error connecting to broker \"127.0.0.1:1\": connection refused"
        );

        // A TLS handshake cut by the socket: the broker, then the cause.
        let tls = ConnectError::Wire(WireError::Tls {
            broker: "b:9093".to_owned(),
            failure: Box::new(TlsFailure::Io(Error::new(
                ErrorKind::ConnectionReset,
                "reset by peer",
            ))),
        });
        assert_eq!(
            rendered(tls),
            "TLS handshake with broker \"b:9093\" failed: reset by peer"
        );
    }

    #[test]
    fn plural_is_singular_for_one_only() {
        assert_eq!(super::plural(1, "partition"), "1 partition");
        assert_eq!(super::plural(0, "partition"), "0 partitions");
        assert_eq!(super::plural(6, "partition"), "6 partitions");
        assert_eq!(super::plural(-1, "partition"), "-1 partitions");
    }
}
