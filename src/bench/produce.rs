//! The producer benchmark: records as fast as the producer takes them,
//! timed from the first send to the last acknowledgement.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use rskafka::client::Client;
use tokio::time::Instant;

use super::{BenchError, BenchReport, Mode, collect_acks, micros_since, payload};
use crate::produce::producer::{ProduceRecord, Producer, ProducerConfig};

/// The producer benchmark.
#[derive(Debug, Clone)]
pub struct ProduceBench {
    /// Topic to write (it must exist: see [`prepare_topic`](super::prepare_topic)).
    pub topic: String,
    /// Records to send.
    pub records: u64,
    /// Value size in bytes.
    pub size: usize,
    /// Give each record a key (its index in decimal); null keys otherwise.
    pub keys: bool,
    /// Batching and compression.
    pub producer: ProducerConfig,
}

/// How often (in records) a sending loop looks at the shutdown future.
const SHUTDOWN_CHECK: u64 = 1024;

/// Sends `bench.records` records as fast as the producer takes them.
///
/// # Errors
///
/// The producer could not start, or records failed ([`BenchError::Failed`]).
pub async fn produce(
    client: Arc<Client>,
    partitions: i32,
    bench: &ProduceBench,
    shutdown: impl Future<Output = ()>,
) -> Result<BenchReport, BenchError> {
    let mut report = BenchReport::new(
        Mode::Produce,
        &bench.topic,
        partitions,
        bench.producer.compression,
    );
    let value = payload(bench.size);
    let (mut producer, deliveries) =
        Producer::new(client, &bench.topic, partitions, bench.producer.clone()).await?;
    let started = Instant::now();
    let acks = tokio::spawn(collect_acks(deliveries, started));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut bytes = 0;
    for i in 0..bench.records {
        if i % SHUTDOWN_CHECK == 0 && (&mut shutdown).now_or_never().is_some() {
            report.interrupted = true;
            break;
        }
        let key = bench.keys.then(|| i.to_string().into_bytes());
        bytes += (value.len() + key.as_ref().map_or(0, Vec::len)) as u64;
        let record = ProduceRecord {
            key,
            value: Some(value.clone()),
            ..ProduceRecord::default()
        };
        producer.send(micros_since(started), record).await?;
    }
    producer.close().await;
    let elapsed = started.elapsed();
    let acks = acks.await.unwrap_or_default();
    let acked = acks.latency.count();
    // With failures the run is an error, so `bytes` is what was acknowledged.
    report.finish(acked, bytes, elapsed);
    report.failed = acks.failed;
    report.latency_ms = Some(acks.latency.summary());
    match acks.first_error {
        Some(first) => Err(BenchError::Failed {
            failed: acks.failed,
            records: acked + acks.failed,
            first,
        }),
        None => Ok(report),
    }
}
