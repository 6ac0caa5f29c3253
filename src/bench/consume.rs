//! The consumer benchmark: records read from the earliest offset of every
//! partition, timed from before the start offsets are resolved to the
//! last record in hand.

use std::future::Future;

use crate::produce::Compression;
use rskafka::client::Client;
use tokio::time::Instant;

use super::{BenchError, BenchReport, Mode};
use crate::read::{Consumer, ConsumerConfig, ConsumerEvent, Selection, StartOffset, Until, assign};

/// The consumer benchmark.
#[derive(Debug, Clone)]
pub struct ConsumeBench {
    /// Topic to read, from the earliest offset of every partition.
    pub topic: String,
    /// Records to read.
    pub records: u64,
    /// Fetch sizes; the start and stop positions are set by the benchmark.
    pub consumer: ConsumerConfig,
}

/// Reads `bench.records` records from the earliest offset of every
/// partition of `bench.topic`.
///
/// # Errors
///
/// An unknown topic, a partition that failed, or a topic that holds fewer
/// records ([`BenchError::Short`]).
pub async fn consume(
    client: &Client,
    bench: &ConsumeBench,
    shutdown: impl Future<Output = ()>,
) -> Result<BenchReport, BenchError> {
    let selection = Selection {
        topics: vec![bench.topic.clone()],
        ..Selection::default()
    };
    let assignments = assign(client, &selection).await?;
    let partitions = i32::try_from(assignments.len()).unwrap_or(i32::MAX);
    let mut report = BenchReport::new(Mode::Consume, &bench.topic, partitions, Compression::None);
    let config = ConsumerConfig {
        start: StartOffset::Earliest,
        until: Until::End,
        ..bench.consumer.clone()
    };
    let started = Instant::now();
    let mut consumer = Consumer::start(client, assignments, config).await?;
    let mut shutdown = std::pin::pin!(shutdown);
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut failure = None;
    while records < bench.records {
        let event = tokio::select! {
            biased;
            () = &mut shutdown => {
                report.interrupted = true;
                break;
            }
            event = consumer.next() => event,
        };
        match event {
            Some(ConsumerEvent::Records(batch)) => {
                for r in batch.iter().take((bench.records - records) as usize) {
                    records += 1;
                    bytes += (r.key.as_ref().map_or(0, Vec::len)
                        + r.value.as_ref().map_or(0, Vec::len)) as u64;
                }
            }
            Some(ConsumerEvent::Reached { .. } | ConsumerEvent::CaughtUp { .. }) => {}
            Some(ConsumerEvent::Failed(e)) => {
                failure = Some(e);
                break;
            }
            None => break,
        }
    }
    let elapsed = started.elapsed();
    consumer.stop().await;
    if let Some(e) = failure {
        return Err(e.into());
    }
    report.finish(records, bytes, elapsed);
    if records < bench.records && !report.interrupted {
        return Err(BenchError::Short {
            topic: bench.topic.clone(),
            expected: bench.records,
            got: records,
            why: super::Shortfall::Reached,
        });
    }
    Ok(report)
}
