//! The end-to-end latency benchmark: records sent at a fixed rate, each
//! stamped with its send time, while a consumer in the same process reads
//! them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;
use tokio::time::Instant;

use super::{
    BenchError, BenchReport, Histogram, Mode, Shortfall, collect_acks, micros_since, payload,
};
use crate::produce::producer::{ProduceRecord, Producer, ProducerConfig};
use crate::read::{Consumer, ConsumerConfig, ConsumerEvent, Selection, StartOffset, Until, assign};

/// Default rate of the latency benchmark, records per second.
pub const DEFAULT_RATE: u64 = 10_000;

/// Bytes at the start of a latency record's value that carry its send time.
pub const STAMP_BYTES: usize = 8;

/// Default wait, after the last send, for the latency consumer to catch up.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The clients of [`latency`]: one for the producer, one for the consumer,
/// as two applications (and the baseline) have. A broker serves one
/// connection's requests one at a time, so on a shared connection a
/// produce request waits behind the consumer's long-polling fetch.
#[derive(Debug)]
pub struct LatencyClients {
    /// Client of the producer.
    pub producer: Arc<Client>,
    /// Client of the consumer.
    pub consumer: Arc<Client>,
}

/// The end-to-end latency benchmark.
#[derive(Debug, Clone)]
pub struct LatencyBench {
    /// Topic to write and read (it must exist: see [`prepare_topic`](super::prepare_topic)).
    pub topic: String,
    /// Records to send.
    pub records: u64,
    /// Value size in bytes, at least [`STAMP_BYTES`].
    pub size: usize,
    /// Records per second.
    pub rate: u64,
    /// Give each record a key (its index in decimal).
    pub keys: bool,
    /// Batching and compression.
    pub producer: ProducerConfig,
    /// Fetch sizes and wait; the positions are set by the benchmark.
    pub consumer: ConsumerConfig,
    /// How long, after the last send, the consumer may take to see the rest.
    pub drain_timeout: Duration,
}

/// Sends `bench.records` records at `bench.rate` per second while a
/// consumer in this process reads them, from the high watermarks taken
/// before the first send.
///
/// # Errors
///
/// The producer or consumer could not start, records failed, or not all
/// arrived within `bench.drain_timeout` of the last send.
pub async fn latency(
    clients: LatencyClients,
    partitions: i32,
    bench: &LatencyBench,
    shutdown: impl Future<Output = ()>,
) -> Result<BenchReport, BenchError> {
    if bench.size < STAMP_BYTES {
        return Err(BenchError::TooSmall(bench.size));
    }
    let mut report = BenchReport::new(
        Mode::Latency,
        &bench.topic,
        partitions,
        bench.producer.compression,
    );
    let selection = Selection {
        topics: vec![bench.topic.clone()],
        ..Selection::default()
    };
    let assignments = assign(&clients.consumer, &selection).await?;
    let config = ConsumerConfig {
        start: StartOffset::Latest,
        until: Until::Never,
        ..bench.consumer.clone()
    };
    let consumer = Consumer::start(&clients.consumer, assignments, config).await?;
    let (mut producer, deliveries) = Producer::new(
        clients.producer,
        &bench.topic,
        partitions,
        bench.producer.clone(),
    )
    .await?;

    let started = Instant::now();
    let acks = tokio::spawn(collect_acks(deliveries, started));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(read_stamped(consumer, bench.records, started, stop_rx));

    let mut value = payload(bench.size);
    let interval_ns = 1_000_000_000 / bench.rate.max(1);
    let mut shutdown = std::pin::pin!(shutdown);
    for i in 0..bench.records {
        let due = started + Duration::from_nanos(i.saturating_mul(interval_ns));
        tokio::select! {
            biased;
            () = &mut shutdown => {
                report.interrupted = true;
                break;
            }
            () = tokio::time::sleep_until(due) => {}
        }
        let key = bench.keys.then(|| i.to_string().into_bytes());
        let sent = micros_since(started);
        value[..STAMP_BYTES].copy_from_slice(&sent.to_le_bytes());
        let record = ProduceRecord {
            key,
            value: Some(value.clone()),
            ..ProduceRecord::default()
        };
        producer.send(sent, record).await?;
    }
    let sending = started.elapsed();
    producer.close().await;
    let acks = acks.await.unwrap_or_default();
    let deadline = tokio::time::sleep(bench.drain_timeout);
    let mut reader = std::pin::pin!(reader);
    let read = tokio::select! {
        biased;
        read = &mut reader => read,
        () = deadline => {
            let _ = stop_tx.send(());
            reader.await
        }
        () = &mut shutdown, if !report.interrupted => {
            report.interrupted = true;
            let _ = stop_tx.send(());
            reader.await
        }
    };
    let read = read.unwrap_or_else(|e| Read {
        failure: Some(Shortfall::Reader(e)),
        ..Read::default()
    });
    report.finish(read.records, read.bytes, sending);
    report.failed = acks.failed;
    report.latency_ms = Some(read.latency.summary());
    report.ack_latency_ms = Some(acks.latency.summary());
    if let Some(first) = acks.first_error {
        return Err(BenchError::Failed {
            failed: acks.failed,
            records: bench.records,
            first,
        });
    }
    let expected = acks.latency.count();
    if read.records < expected && !report.interrupted {
        return Err(BenchError::Short {
            topic: bench.topic.clone(),
            expected,
            got: read.records,
            why: read
                .failure
                .unwrap_or(Shortfall::Drain(bench.drain_timeout)),
        });
    }
    Ok(report)
}

/// What the latency reader saw.
#[derive(Debug, Default)]
struct Read {
    records: u64,
    bytes: u64,
    latency: Histogram,
    failure: Option<Shortfall>,
}

/// Reads until `records` stamped records have arrived, the stream ends, or
/// `stop` fires.
async fn read_stamped(
    mut consumer: Consumer,
    records: u64,
    started: Instant,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Read {
    let mut read = Read::default();
    while read.records < records {
        let event = tokio::select! {
            biased;
            _ = &mut stop => break,
            event = consumer.next() => event,
        };
        match event {
            Some(ConsumerEvent::Records(batch)) => {
                let now = micros_since(started);
                for r in &batch {
                    let Some(stamp) = r
                        .value
                        .as_deref()
                        .and_then(|v| v.get(..STAMP_BYTES))
                        .and_then(|b| <[u8; STAMP_BYTES]>::try_from(b).ok())
                    else {
                        continue;
                    };
                    read.records += 1;
                    read.bytes += (r.key.as_ref().map_or(0, Vec::len)
                        + r.value.as_ref().map_or(0, Vec::len))
                        as u64;
                    read.latency
                        .record(now.saturating_sub(u64::from_le_bytes(stamp)));
                }
            }
            Some(ConsumerEvent::Reached { .. } | ConsumerEvent::CaughtUp { .. }) => {}
            Some(ConsumerEvent::Failed(e)) => {
                read.failure = Some(Shortfall::Failed(e));
                break;
            }
            None => break,
        }
    }
    consumer.stop().await;
    read
}
