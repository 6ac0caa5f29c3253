//! The partition task's batching, ordering, in-flight window and
//! failure handling, against partition logs in memory.

use std::sync::Mutex;

use rskafka::chrono::DateTime;
use rskafka::client::error::ProtocolError;
use rskafka::client::partition::{BatchIdentity, ProduceAttempt};

use super::*;
use crate::produce::producer::DEFAULT_BATCH_BYTES;

#[path = "partition_idempotent_tests.rs"]
mod idempotent;

/// A partition log in memory: each batch it was given, with the
/// (paused) time it came; batch number `fail_at` fails.
#[derive(Debug, Default)]
struct FakePartition {
    batches: Mutex<Vec<(Instant, Vec<String>)>>,
    fail_at: Option<usize>,
}

impl PartitionProduce for Arc<FakePartition> {
    fn produce<'a>(
        &'a self,
        batch: EncodedBatch,
        _stamp: Option<&'a Stamp>,
    ) -> BoxFuture<'a, Result<Vec<i64>, ClientError>> {
        Box::pin(async move {
            let mut batches = self.batches.lock().unwrap();
            let values = values_of(&batch);
            let n = batches.len();
            batches.push((Instant::now(), values.clone()));
            if self.fail_at == Some(n) {
                return Err(refused().into());
            }
            let start: i64 = batches[..n].iter().map(|b| b.1.len() as i64).sum();
            Ok((start..start + values.len() as i64).collect())
        })
    }

    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, ClientError>> {
        Box::pin(async { Ok(true) })
    }

    fn leader(&self) -> Option<String> {
        Some("fake:9092".to_owned())
    }
}

/// The values of an uncompressed batch's records, read back as a
/// broker reads them (Kafka's record format: zig-zag varints).
fn values_of(batch: &EncodedBatch) -> Vec<String> {
    fn varint(bytes: &mut &[u8]) -> i64 {
        let (mut value, mut shift) = (0_u64, 0);
        loop {
            let b = bytes[0];
            *bytes = &bytes[1..];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return (value >> 1) as i64 ^ -((value & 1) as i64);
            }
            shift += 7;
        }
    }
    fn field<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = varint(bytes);
        let len = usize::try_from(len).ok()?;
        let (field, rest) = bytes.split_at(len);
        *bytes = rest;
        Some(field)
    }
    let mut bytes = batch.as_bytes();
    let mut values = Vec::new();
    while !bytes.is_empty() {
        let len = varint(&mut bytes) as usize;
        let (mut record, rest) = bytes.split_at(len);
        bytes = rest;
        record = &record[1..]; // attributes
        varint(&mut record); // timestamp delta
        varint(&mut record); // offset delta
        field(&mut record); // key
        let value = field(&mut record).expect("a value");
        values.push(String::from_utf8(value.to_vec()).unwrap());
    }
    assert_eq!(values.len(), batch.records());
    values
}

/// The broker's refusal of a batch: not enough in-sync replicas.
fn refused() -> rskafka::client::error::Error {
    server_error(ProtocolError::NotEnoughReplicas)
}

/// The broker's refusal of a batch with `protocol_error`.
fn server_error(protocol_error: ProtocolError) -> rskafka::client::error::Error {
    use rskafka::client::error::{Error, RequestContext};
    Error::ServerError {
        protocol_error,
        error_message: None,
        request: RequestContext::Partition("events".into(), 3),
        response: None,
        is_virtual: false,
    }
}

/// A record whose value is `value`, queued now.
fn pending(tag: u64, value: String) -> Pending {
    Pending {
        tag: tag.into(),
        record: Record {
            key: None,
            value: Some(value.into_bytes()),
            headers: Vec::new(),
            timestamp: DateTime::default(),
        },
        queued_at: Some(Instant::now()),
    }
}

/// A partition task over `log`, its queue and its deliveries.
fn task(
    log: &Arc<FakePartition>,
    linger: Duration,
    batch_bytes: usize,
) -> (
    mpsc::Sender<Pending>,
    tokio::task::JoinHandle<()>,
    mpsc::UnboundedReceiver<Delivery>,
) {
    task_over(Arc::new(Arc::clone(log)), linger, batch_bytes, None)
}

/// A partition task over any partition log, as `producer_id` when given.
fn task_over(
    client: Arc<dyn PartitionProduce>,
    linger: Duration,
    batch_bytes: usize,
    producer_id: Option<ProducerId>,
) -> (
    mpsc::Sender<Pending>,
    tokio::task::JoinHandle<()>,
    mpsc::UnboundedReceiver<Delivery>,
) {
    // Nothing is charged here: the producer's `send` charges.
    let memory = Arc::new(Semaphore::new(0));
    task_with_memory(client, linger, batch_bytes, producer_id, memory)
}

/// As [`task_over`], giving the bytes of reported batches back to
/// `memory`.
fn task_with_memory(
    client: Arc<dyn PartitionProduce>,
    linger: Duration,
    batch_bytes: usize,
    producer_id: Option<ProducerId>,
    memory: Arc<Semaphore>,
) -> (
    mpsc::Sender<Pending>,
    tokio::task::JoinHandle<()>,
    mpsc::UnboundedReceiver<Delivery>,
) {
    let (reports, deliveries) = mpsc::unbounded_channel();
    let task = PartitionTask {
        client,
        topic: "events".to_owned(),
        partition: 3,
        linger,
        batch_bytes,
        max_batch_bytes: crate::produce::producer::DEFAULT_MAX_MESSAGE_BYTES,
        compression: Compression::NoCompression,
        delivery_timeout: Duration::from_secs(30),
        producer_id,
        transactional_id: None,
        reports,
        batches_sent: Arc::new(AtomicU64::new(0)),
        stale: Arc::new(Notify::new()),
        memory,
    };
    let (queue, rx) = mpsc::channel(QUEUE_RECORDS);
    (queue, tokio::spawn(task.run(rx)), deliveries)
}

fn values(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("v{i:03}")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_batch_waits_for_the_linger_and_closing_flushes_at_once() {
    let log = Arc::new(FakePartition::default());
    let linger = Duration::from_millis(5);
    let (queue, running, mut deliveries) = task(&log, linger, DEFAULT_BATCH_BYTES);
    let start = Instant::now();
    for (tag, v) in values(0..3).into_iter().enumerate() {
        queue.send(pending(tag as u64, v)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    for (tag, v) in values(3..5).into_iter().enumerate() {
        queue.send(pending(3 + tag as u64, v)).await.unwrap();
    }
    drop(queue);
    running.await.unwrap();

    let batches = log.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 2, "{batches:?}");
    // The first batch left one linger after its first record, within
    // a timer tick; the second at once, as the queue closed.
    let first = batches[0].0 - start;
    assert!(
        first >= linger - TIMER_TICK && first <= linger + TIMER_TICK,
        "first batch after {first:?}"
    );
    assert_eq!(batches[0].1, values(0..3));
    assert_eq!(batches[1].0 - start, Duration::from_millis(20));
    assert_eq!(batches[1].1, values(3..5));

    let mut got = Vec::new();
    while let Ok(d) = deliveries.try_recv() {
        assert_eq!(d.partition, 3);
        got.push((d.tag, d.result.unwrap()));
    }
    assert_eq!(got, (0..5).map(|i| (i, i as i64)).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn full_batches_leave_at_once_in_order() {
    let log = Arc::new(FakePartition::default());
    let one = record_size(&pending(0, values(0..1).remove(0)).record);
    // Three records to a batch; a linger no test would wait out.
    let (queue, running, mut deliveries) = task(&log, Duration::from_secs(3600), 3 * one);
    let start = Instant::now();
    for (tag, v) in values(0..10).into_iter().enumerate() {
        queue.send(pending(tag as u64, v)).await.unwrap();
    }
    // Three full batches go without waiting; the fourth, one record,
    // waits for the linger or the end of the input.
    while log.batches.lock().unwrap().len() < 3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(Instant::now(), start, "a full batch waited");
    drop(queue);
    running.await.unwrap();

    let batches = log.batches.lock().unwrap().clone();
    let sizes: Vec<usize> = batches.iter().map(|b| b.1.len()).collect();
    assert_eq!(sizes, [3, 3, 3, 1]);
    let sent: Vec<String> = batches.into_iter().flat_map(|b| b.1).collect();
    assert_eq!(sent, values(0..10), "the partition's order");
    let mut tags = Vec::new();
    while let Ok(d) = deliveries.try_recv() {
        assert_eq!(d.result.unwrap(), d.tag as i64);
        tags.push(d.tag);
    }
    assert_eq!(tags, (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn every_batch_gives_its_bytes_back_once_reported_failed_or_abandoned_too() {
    let log = Arc::new(FakePartition {
        fail_at: Some(1),
        ..FakePartition::default()
    });
    let one = record_size(&pending(0, values(0..1).remove(0)).record);
    let memory = Arc::new(Semaphore::new(0));
    let client = Arc::new(Arc::clone(&log));
    let (queue, running, mut deliveries) = task_with_memory(
        client,
        Duration::from_millis(5),
        2 * one,
        None,
        Arc::clone(&memory),
    );
    queue
        .send(pending(0, values(0..1).remove(0)))
        .await
        .unwrap();
    queue
        .send(pending(1, values(1..2).remove(0)))
        .await
        .unwrap();
    // Held until the batch has reported.
    assert_eq!(memory.available_permits(), 0);
    assert_eq!(deliveries.recv().await.unwrap().tag, 0);
    assert_eq!(deliveries.recv().await.unwrap().tag, 1);
    tokio::task::yield_now().await;
    assert_eq!(memory.available_permits(), 2 * one);
    // A failed batch (2, 3) and an abandoned one (4, 5) give theirs back.
    for (tag, v) in values(2..6).into_iter().enumerate() {
        queue.send(pending(2 + tag as u64, v)).await.unwrap();
    }
    drop(queue);
    running.await.unwrap();
    let mut failed = 0;
    while let Ok(d) = deliveries.try_recv() {
        failed += usize::from(d.result.is_err());
    }
    assert_eq!(failed, 4);
    assert_eq!(memory.available_permits(), 6 * one);
}

#[tokio::test(start_paused = true)]
async fn after_a_failed_batch_later_records_are_abandoned_unsent() {
    let log = Arc::new(FakePartition {
        fail_at: Some(1),
        ..FakePartition::default()
    });
    let one = record_size(&pending(0, values(0..1).remove(0)).record);
    let (queue, running, mut deliveries) = task(&log, Duration::from_millis(5), 2 * one);
    for (tag, v) in values(0..6).into_iter().enumerate() {
        queue.send(pending(tag as u64, v)).await.unwrap();
    }
    drop(queue);
    running.await.unwrap();

    // Batches 0 and 1 were sent (1 failed); 2 was never tried.
    let sent: Vec<Vec<String>> = log
        .batches
        .lock()
        .unwrap()
        .iter()
        .map(|b| b.1.clone())
        .collect();
    assert_eq!(sent, [values(0..2), values(2..4)]);
    let mut outcomes = Vec::new();
    while let Ok(d) = deliveries.try_recv() {
        outcomes.push((
            d.tag,
            d.result.map_err(|e| crate::ErrorChain(&*e).to_string()),
        ));
    }
    let failed = "producing to topic \"events\" partition 3 failed: \
                  leader fake:9092: the broker refused it: NOT_ENOUGH_REPLICAS";
    let abandoned = "not sent to topic \"events\" partition 3: an earlier batch failed";
    assert_eq!(
        outcomes,
        [
            (0, Ok(0)),
            (1, Ok(1)),
            (2, Err(failed.to_owned())),
            (3, Err(failed.to_owned())),
            (4, Err(abandoned.to_owned())),
            (5, Err(abandoned.to_owned())),
        ]
    );
}

/// A task with `compression` that is not run, for its `encode`.
fn compressing(compression: Compression) -> PartitionTask {
    let (reports, _) = mpsc::unbounded_channel();
    PartitionTask {
        client: Arc::new(Arc::new(FakePartition::default())),
        topic: "events".to_owned(),
        partition: 3,
        linger: Duration::from_millis(5),
        batch_bytes: DEFAULT_BATCH_BYTES,
        max_batch_bytes: DEFAULT_BATCH_BYTES,
        compression,
        delivery_timeout: Duration::from_secs(30),
        producer_id: None,
        transactional_id: None,
        reports,
        batches_sent: Arc::new(AtomicU64::new(0)),
        stale: Arc::new(Notify::new()),
        memory: Arc::new(Semaphore::new(0)),
    }
}

/// `n` records of `size` bytes that do not compress (xorshift), tagged
/// from 0.
fn incompressible(n: u64, size: usize) -> Vec<Pending> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|tag| {
            let value: Vec<u8> = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            Pending {
                tag: tag.into(),
                record: Record {
                    key: None,
                    value: Some(value),
                    headers: Vec::new(),
                    timestamp: DateTime::default(),
                },
                queued_at: None,
            }
        })
        .collect()
}

#[test]
fn a_batch_too_large_once_compressed_is_cut_and_its_tail_carried_in_order() {
    let task = compressing(Compression::Lz4);
    let batch = incompressible(300, 10_000);
    let sizes: Vec<usize> = batch.iter().map(|p| record_size(&p.record)).collect();
    let mut carry = VecDeque::from([pending(1000, "later".to_owned())]);
    // The last batch compressed to a tenth: this one, of 3 MB, was
    // collected for it, and does not compress.
    let mut ratio = Ratio(0.1);
    let ready = task.encode(batch, sizes.iter().sum(), &mut carry, &mut ratio);

    let wire = ready.batch.as_ref().unwrap().len();
    assert!(wire <= DEFAULT_BATCH_BYTES, "{wire}");
    let kept = ready.tags.len();
    // About 0.9 MiB of 10 KB records.
    assert!((80..=100).contains(&kept), "{kept}");
    let tags: Vec<u64> = ready.tags.iter().map(|t| t.id).collect();
    assert_eq!(tags, (0..kept as u64).collect::<Vec<_>>());
    assert_eq!(ready.held, sizes[..kept].iter().sum::<usize>());
    let carried: Vec<u64> = carry.iter().map(|p| p.tag.id).collect();
    let expected: Vec<u64> = (kept as u64..300).chain([1000]).collect();
    assert_eq!(carried, expected);
    // The next batch is collected for what this one showed.
    assert!(ratio.0 > 0.99, "{ratio:?}");
}

#[test]
fn a_batch_within_the_limit_is_sent_whole_and_teaches_the_ratio() {
    let task = compressing(Compression::Zstd);
    let batch: Vec<Pending> = (0..1000)
        .map(|tag| pending(tag, format!("value {tag} ").repeat(50)))
        .collect();
    let held: usize = batch.iter().map(|p| record_size(&p.record)).sum();
    let mut carry = VecDeque::new();
    let mut ratio = Ratio::FIRST;
    let ready = task.encode(batch, held, &mut carry, &mut ratio);
    assert_eq!(ready.tags.len(), 1000);
    assert!(carry.is_empty());
    let wire = ready.batch.as_ref().unwrap().len();
    assert!(wire < held / 10, "{wire} of {held}");
    assert!(
        (ratio.0 - wire as f64 / held as f64).abs() < 1e-9,
        "{ratio:?}"
    );
}

#[test]
fn compressing_batches_are_collected_by_the_last_ratio_within_bounds() {
    let none = Compression::NoCompression;
    let lz4 = Compression::Lz4;
    let mut ratio = Ratio::FIRST;
    assert_eq!(ratio.plain_limit(1_000_000, none), 1_000_000);
    // The first batch as if it did not compress, with Java's margin.
    assert_eq!(ratio.plain_limit(1_000_000, lz4), 952_380);
    ratio.observe(500_000, 1_000_000);
    assert_eq!(ratio.plain_limit(1_000_000, lz4), 1_904_761);
    assert_eq!(ratio.plain_limit(1_000_000, none), 1_000_000);
    // Well compressed: no more than 4 MiB of records a batch.
    ratio.observe(10_000, 1_000_000);
    assert_eq!(ratio.plain_limit(1_000_000, lz4), MAX_PLAIN_BATCH_BYTES);
}
