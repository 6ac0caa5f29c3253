//! Benchmarks of weir's own producer and consumer, as Kafka's
//! `kafka-producer-perf-test` and `kafka-consumer-perf-test` measure a
//! client: [`produce()`], [`consume()`] and end-to-end [`latency()`], one
//! file each.
//!
//! What each one times, exactly (the rust-rdkafka baseline in
//! `bench/rdkafka-baseline/` times the same things):
//!
//! - **produce**: N records of SIZE bytes, one payload generated once and
//!   copied into every record. Throughput is N over the time from the
//!   first send to the last acknowledgement; a record's latency is from
//!   the moment it is handed to [`Producer::send`] to the moment its
//!   [`Delivery`] arrives (acks=all).
//! - **consume**: N records read from the earliest offset of every
//!   partition. The clock starts before the consumer resolves its start
//!   offsets and stops when the N-th record is in hand.
//! - **latency**: N records sent at a fixed rate while a consumer in the
//!   same process reads them. A record's latency is from the moment it is
//!   handed to the producer to the moment the consumer has it: the delay
//!   a user sees end to end (linger, produce request, broker, fetch). The
//!   send time travels in the first 8 bytes of the value, so nothing is
//!   stored per record.
//!
//! Latencies go into a [`Histogram`] with fixed memory (log-linear buckets,
//! within 1/64 of the true value), so a run of any length costs the same
//! few kilobytes. Every loop is bounded by the record count, and the
//! latency run also by a deadline.
//!
//! [`Producer::send`]: crate::produce::producer::Producer::send

mod consume;
mod histogram;
mod latency;
mod produce;

use std::sync::Arc;
use std::time::Duration;

use crate::produce::Compression;
use serde::Serialize;
use tokio::time::Instant;

use crate::kafka::admin::{Admin, AdminError, NewTopic};
use crate::kafka::connect::ConnectionConfig;
use crate::produce::producer::{Delivery, ProduceError};
use crate::read::ConsumeError;

pub use consume::{ConsumeBench, consume};
pub use histogram::Histogram;
pub use latency::{
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_RATE, LatencyBench, LatencyClients, STAMP_BYTES, latency,
};
pub use produce::{ProduceBench, produce};

/// Default record count, as the scenarios (1M records).
pub const DEFAULT_RECORDS: u64 = 1_000_000;

/// Default value size in bytes, as `kafka-producer-perf-test` examples.
pub const DEFAULT_SIZE: usize = 100;

/// Which benchmark a report comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// [`produce()`].
    Produce,
    /// [`consume()`].
    Consume,
    /// [`latency()`].
    Latency,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Mean.
    pub avg: f64,
    /// Largest.
    pub max: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
}

/// The numbers of one run; `--json` prints it as it is.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Always `"weir"` (the baseline writes its own name).
    pub tool: &'static str,
    /// Which benchmark.
    pub mode: Mode,
    /// The topic.
    pub topic: String,
    /// Its partitions.
    pub partitions: i32,
    /// Batch compression of what was produced (`none` for consume).
    pub compression: &'static str,
    /// Records sent (acknowledged) or read.
    pub records: u64,
    /// Value and key bytes of those records.
    pub bytes: u64,
    /// Records that failed (produce and latency).
    pub failed: u64,
    /// Seconds from the start of the work to its end (see the module doc).
    pub elapsed_s: f64,
    /// `records / elapsed_s`.
    pub records_per_sec: f64,
    /// `bytes / elapsed_s` in MiB (2^20), as the Kafka perf tests count.
    pub mb_per_sec: f64,
    /// Per-record latency, for produce and latency runs: send to
    /// acknowledgement for produce, send to consume for latency.
    pub latency_ms: Option<LatencySummary>,
    /// Send to acknowledgement, for latency runs.
    pub ack_latency_ms: Option<LatencySummary>,
    /// Whether a signal cut the run short.
    pub interrupted: bool,
}

impl BenchReport {
    fn new(mode: Mode, topic: &str, partitions: i32, compression: Compression) -> Self {
        Self {
            tool: "weir",
            mode,
            topic: topic.to_owned(),
            partitions,
            compression: compression.name(),
            records: 0,
            bytes: 0,
            failed: 0,
            elapsed_s: 0.0,
            records_per_sec: 0.0,
            mb_per_sec: 0.0,
            latency_ms: None,
            ack_latency_ms: None,
            interrupted: false,
        }
    }

    fn finish(&mut self, records: u64, bytes: u64, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(1e-9);
        self.records = records;
        self.bytes = bytes;
        self.elapsed_s = secs;
        self.records_per_sec = records as f64 / secs;
        self.mb_per_sec = bytes as f64 / secs / (1024.0 * 1024.0);
    }
}

/// Errors of the benchmarks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The topic could not be looked up or created.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The producer could not start.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// The consumer could not start, or a partition failed.
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    /// Records were not acknowledged.
    #[error("{failed} of {records} records failed; first error")]
    Failed {
        /// How many failed.
        failed: u64,
        /// How many were sent.
        records: u64,
        /// The first error.
        #[source]
        first: Arc<ProduceError>,
    },
    /// Fewer records than asked for arrived.
    #[error("topic \"{topic}\": {got} of {expected} records read")]
    Short {
        /// The topic.
        topic: String,
        /// Records asked for.
        expected: u64,
        /// Records read.
        got: u64,
        /// Why no more came.
        #[source]
        why: Shortfall,
    },
    /// The cluster could not be reached.
    #[error(transparent)]
    Connect(#[from] crate::kafka::connect::ConnectError),
    /// The idempotent producer's id could not be had.
    #[error(transparent)]
    ProducerId(#[from] crate::kafka::idempotence::ProducerIdError),
    /// A value too small to carry the send time.
    #[error("the latency benchmark needs values of at least {STAMP_BYTES} bytes, not {0}")]
    TooSmall(usize),
}

/// The partition count of `topic`, which is created with `partitions`
/// partitions (replication factor 1) when it does not exist.
///
/// # Errors
///
/// [`BenchError::Admin`] when the cluster cannot be reached or the topic
/// cannot be created.
pub async fn prepare_topic(
    config: &ConnectionConfig,
    topic: &str,
    partitions: i32,
) -> Result<i32, BenchError> {
    let mut admin = Admin::connect(config).await?;
    match admin.partition_count(topic).await {
        Ok(n) => Ok(i32::try_from(n).unwrap_or(i32::MAX)),
        Err(AdminError::UnknownTopic { .. }) => {
            admin
                .create_topic(&NewTopic {
                    name: topic.to_owned(),
                    partitions,
                    replication_factor: 1,
                    configs: Vec::new(),
                })
                .await?;
            Ok(partitions)
        }
        Err(e) => Err(e.into()),
    }
}

/// The partition count of `topic`, created with `partitions` (1 without)
/// when it does not exist; an existing topic is used as it is, with a
/// warning when `partitions` asked for another count.
///
/// # Errors
///
/// As [`prepare_topic`].
pub async fn topic_partitions(
    config: &ConnectionConfig,
    topic: &str,
    partitions: Option<i32>,
) -> Result<i32, BenchError> {
    let found = prepare_topic(config, topic, partitions.unwrap_or(1)).await?;
    if let Some(partitions) = partitions.filter(|&p| p != found) {
        tracing::warn!(
            topic,
            partitions = found,
            "the topic exists with {}; --partitions {partitions} is ignored",
            crate::plural(found, "partition")
        );
    }
    Ok(found)
}

/// [`produce`] on `config`'s cluster: the topic found or created (see
/// [`topic_partitions`]), the idempotent producer's id had when
/// `idempotence`, then the run.
///
/// # Errors
///
/// The cluster could not be reached or refused, or [`produce`]'s.
pub async fn run_produce(
    config: &ConnectionConfig,
    bench: &ProduceBench,
    partitions: Option<i32>,
    idempotence: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<BenchReport, BenchError> {
    let mut bench = bench.clone();
    bench.producer.producer_id =
        crate::kafka::idempotence::producer_id(config, idempotence).await?;
    let partitions = topic_partitions(config, &bench.topic, partitions).await?;
    let client = Arc::new(config.client().await?);
    produce(client, partitions, &bench, shutdown).await
}

/// [`consume`] on `config`'s cluster.
///
/// # Errors
///
/// The cluster could not be reached, or [`consume`]'s.
pub async fn run_consume(
    config: &ConnectionConfig,
    bench: &ConsumeBench,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<BenchReport, BenchError> {
    let client = config.client().await?;
    consume(&client, bench, shutdown).await
}

/// [`latency`] on `config`'s cluster, its producer and consumer on a
/// client each: the topic found or created, the idempotent producer's id
/// had when `idempotence`, then the run.
///
/// # Errors
///
/// The cluster could not be reached or refused, or [`latency`]'s.
pub async fn run_latency(
    config: &ConnectionConfig,
    bench: &LatencyBench,
    partitions: Option<i32>,
    idempotence: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<BenchReport, BenchError> {
    let mut bench = bench.clone();
    bench.producer.producer_id =
        crate::kafka::idempotence::producer_id(config, idempotence).await?;
    let partitions = topic_partitions(config, &bench.topic, partitions).await?;
    let clients = LatencyClients {
        producer: Arc::new(config.client().await?),
        consumer: Arc::new(config.client().await?),
    };
    latency(clients, partitions, &bench, shutdown).await
}

/// The value every record carries: `size` bytes of uppercase letters from
/// a fixed xorshift sequence, as `kafka-producer-perf-test` fills its
/// payload with random letters. The baseline generates the same bytes, so
/// compression sees the same data.
pub(crate) fn payload(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}

/// What the delivery reader saw.
#[derive(Debug, Default)]
struct Acks {
    latency: Histogram,
    failed: u64,
    first_error: Option<Arc<ProduceError>>,
}

/// Why fewer records arrived than were asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Shortfall {
    /// Every partition reached the end it had at the start.
    #[error("every partition reached its end (produce more first)")]
    Reached,
    /// The rest did not arrive in time.
    #[error("the rest did not arrive within {} of the last send", humantime::format_duration(*.0))]
    Drain(Duration),
    /// A partition failed.
    #[error(transparent)]
    Failed(#[from] ConsumeError),
    /// The reading task ended abnormally.
    #[error("the reader task ended abnormally")]
    Reader(#[source] tokio::task::JoinError),
}

/// Reads deliveries until the producer is closed. A delivery's tag is its
/// send time in microseconds since `started`.
async fn collect_acks(
    mut deliveries: tokio::sync::mpsc::UnboundedReceiver<Delivery>,
    started: Instant,
) -> Acks {
    let mut acks = Acks::default();
    let mut batch = Vec::with_capacity(1024);
    while deliveries.recv_many(&mut batch, 1024).await > 0 {
        let now = micros_since(started);
        for delivery in batch.drain(..) {
            match delivery.result {
                Ok(_) => acks.latency.record(now.saturating_sub(delivery.tag)),
                Err(e) => {
                    acks.failed += 1;
                    acks.first_error.get_or_insert(e);
                }
            }
        }
    }
    acks
}

/// Microseconds since `start`: the send times that travel in delivery tags
/// and latency records.
fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl Histogram {
    /// Mean, maximum and percentiles in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            avg: self.mean() / 1000.0,
            max: ms(self.max()),
            p50: ms(self.percentile(50.0)),
            p95: ms(self.percentile(95.0)),
            p99: ms(self.percentile(99.0)),
            p99_9: ms(self.percentile(99.9)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_in_milliseconds() {
        let mut h = Histogram::new();
        for v in [1_000, 2_000, 3_000, 4_000] {
            h.record(v);
        }
        let s = h.summary();
        assert!((s.avg - 2.5).abs() < 1e-9);
        assert!((s.max - 4.0).abs() < 1e-9);
        assert!((s.p50 - 2.0).abs() / 2.0 <= 1.0 / 64.0, "{}", s.p50);
        assert!((s.p99 - 4.0).abs() / 4.0 <= 1.0 / 64.0, "{}", s.p99);
    }

    #[test]
    fn throughput_counts_mebibytes() {
        let mut r = BenchReport::new(Mode::Produce, "t", 1, Compression::Lz4);
        r.finish(1_000_000, 100_000_000, Duration::from_millis(500));
        assert!((r.records_per_sec - 2_000_000.0).abs() < 1e-6);
        assert!((r.mb_per_sec - 190.734_863_281_25).abs() < 1e-6);
        assert_eq!(r.compression, "lz4");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["mode"], "produce");
        assert_eq!(json["tool"], "weir");
    }

    #[test]
    fn payload_is_fixed_letters() {
        let p = payload(100);
        assert_eq!(p.len(), 100);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        assert_eq!(p, payload(100));
        // Not one letter repeated: lz4 must see realistic data.
        assert!(p.iter().collect::<std::collections::BTreeSet<_>>().len() > 10);
    }
}
