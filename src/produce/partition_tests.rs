//! The partition task's batching, ordering, in-flight window and
//! failure handling, against partition logs in memory.

use std::sync::Mutex;

use rskafka::chrono::DateTime;

use super::*;
use crate::produce::producer::DEFAULT_BATCH_BYTES;

/// A partition log in memory: each batch it was given, with the
/// (paused) time it came; batch number `fail_at` fails.
#[derive(Debug, Default)]
struct FakePartition {
    batches: Mutex<Vec<(Instant, Vec<String>)>>,
    fail_at: Option<usize>,
}

impl PartitionProduce for Arc<FakePartition> {
    fn produce(
        &self,
        records: Vec<Record>,
        _compression: Compression,
        _identity: Option<BatchIdentity>,
        _settled: Settled,
    ) -> BoxFuture<'_, Result<Vec<i64>, ClientError>> {
        Box::pin(async move {
            let mut batches = self.batches.lock().unwrap();
            let values: Vec<String> = records
                .iter()
                .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
                .collect();
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

/// The broker's refusal of a batch: not enough in-sync replicas.
fn refused() -> rskafka::client::error::Error {
    use rskafka::client::error::{Error, ProtocolError, RequestContext};
    Error::ServerError {
        protocol_error: ProtocolError::NotEnoughReplicas,
        error_message: None,
        request: RequestContext::Partition("events".into(), 3),
        response: None,
        is_virtual: false,
    }
}

/// A record whose value is `value`, queued now.
fn pending(tag: u64, value: String) -> Pending {
    Pending {
        tag,
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
    let (reports, deliveries) = mpsc::unbounded_channel();
    let task = PartitionTask {
        client,
        topic: "events".to_owned(),
        partition: 3,
        linger,
        batch_bytes,
        compression: Compression::NoCompression,
        delivery_timeout: Duration::from_secs(30),
        producer_id,
        transactional_id: None,
        reports,
        batches_sent: Arc::new(AtomicU64::new(0)),
        stale: Arc::new(Notify::new()),
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

/// A partition log as a leader keeps it for an idempotent producer: a
/// batch is appended only after the one before it in sequence (a batch
/// that overtook it waits, as the client's retries of an
/// OUT_OF_ORDER_SEQUENCE_NUMBER would); batch `fail_at` is refused and
/// never appended. Acknowledgements come slower for earlier batches
/// (batch `n` after `50 - 10 * (n % 5)` ms), so later batches of a window
/// are acknowledged first. Keeps each batch's identity and the most
/// batches it had on their way at once.
#[derive(Debug)]
struct SlowLog {
    batches: Mutex<Vec<(Option<BatchIdentity>, Vec<String>)>>,
    next_sequence: watch::Sender<i32>,
    tried: AtomicU64,
    on_way: AtomicU64,
    most_on_way: AtomicU64,
    fail_at: Option<usize>,
}

impl SlowLog {
    fn new(fail_at: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            batches: Mutex::default(),
            next_sequence: watch::channel(0).0,
            tried: AtomicU64::new(0),
            on_way: AtomicU64::new(0),
            most_on_way: AtomicU64::new(0),
            fail_at,
        })
    }
}

impl PartitionProduce for Arc<SlowLog> {
    fn produce(
        &self,
        records: Vec<Record>,
        _compression: Compression,
        identity: Option<BatchIdentity>,
        _settled: Settled,
    ) -> BoxFuture<'_, Result<Vec<i64>, ClientError>> {
        Box::pin(async move {
            let values: Vec<String> = records
                .iter()
                .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
                .collect();
            self.tried.fetch_add(1, Ordering::SeqCst);
            let now = self.on_way.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_on_way.fetch_max(now, Ordering::SeqCst);
            if let Some(identity) = &identity {
                let mut next = self.next_sequence.subscribe();
                let _ = next.wait_for(|&s| s == identity.base_sequence).await;
            }
            let (n, start) = {
                let mut batches = self.batches.lock().unwrap();
                let start: usize = batches.iter().map(|b| b.1.len()).sum();
                batches.push((identity, values.clone()));
                (batches.len() - 1, start as i64)
            };
            let fails = self.fail_at == Some(n);
            if !fails {
                self.next_sequence
                    .send_modify(|s| *s = next_sequence(*s, values.len()));
            }
            let wait = 50 - 10 * (n % 5) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            self.on_way.fetch_sub(1, Ordering::SeqCst);
            if fails {
                return Err(refused().into());
            }
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

const PRODUCER: ProducerId = ProducerId { id: 7, epoch: 2 };

#[tokio::test(start_paused = true)]
async fn idempotent_batches_go_five_at_a_time_with_sequences_and_report_in_order() {
    let log = SlowLog::new(None);
    let one = record_size(&pending(0, values(0..1).remove(0)).record);
    // Two records to a batch, 12 batches.
    let (queue, running, mut deliveries) = task_over(
        Arc::new(Arc::clone(&log)),
        Duration::from_secs(3600),
        2 * one,
        Some(PRODUCER),
    );
    for (tag, v) in values(0..24).into_iter().enumerate() {
        queue.send(pending(tag as u64, v)).await.unwrap();
    }
    drop(queue);
    running.await.unwrap();

    assert_eq!(
        log.most_on_way.load(Ordering::SeqCst),
        IDEMPOTENT_IN_FLIGHT as u64
    );
    let batches = log.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 12);
    for (n, (identity, values)) in batches.iter().enumerate() {
        let identity = identity.as_ref().expect("an identity");
        assert_eq!(
            (identity.producer_id, identity.producer_epoch),
            (7, 2),
            "batch {n}"
        );
        assert_eq!(identity.base_sequence, 2 * n as i32, "batch {n}");
        assert_eq!(
            values,
            &[format!("v{:03}", 2 * n), format!("v{:03}", 2 * n + 1)]
        );
    }
    // Deliveries in the partition's order, though later batches were
    // acknowledged first.
    let mut got = Vec::new();
    while let Ok(d) = deliveries.try_recv() {
        got.push((d.tag, d.result.unwrap()));
    }
    assert_eq!(got, (0..24).map(|i| (i, i as i64)).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn without_idempotence_one_batch_at_a_time_without_identity() {
    let log = SlowLog::new(None);
    let one = record_size(&pending(0, values(0..1).remove(0)).record);
    let (queue, running, _deliveries) = task_over(
        Arc::new(Arc::clone(&log)),
        Duration::from_secs(3600),
        2 * one,
        None,
    );
    for (tag, v) in values(0..10).into_iter().enumerate() {
        queue.send(pending(tag as u64, v)).await.unwrap();
    }
    drop(queue);
    running.await.unwrap();
    assert_eq!(log.most_on_way.load(Ordering::SeqCst), 1);
    assert!(log.batches.lock().unwrap().iter().all(|b| b.0.is_none()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_fails_those_on_their_way_and_abandons_the_rest() {
    let log = SlowLog::new(Some(1));
    let one = record_size(&pending(0, values(0..1).remove(0)).record);
    let (queue, running, mut deliveries) = task_over(
        Arc::new(Arc::clone(&log)),
        Duration::from_secs(3600),
        one,
        Some(PRODUCER),
    );
    // Batches 0-4 go out at once; 1 fails after 40 ms, when 2-4 are
    // still on their way; 5-7 wait for room and are never sent.
    for (tag, v) in values(0..8).into_iter().enumerate() {
        queue.send(pending(tag as u64, v)).await.unwrap();
    }
    drop(queue);
    running.await.unwrap();

    let mut outcomes = Vec::new();
    while let Ok(d) = deliveries.try_recv() {
        let result = d.result.map_err(|e| match &*e {
            ProduceError::Send { .. } => "failed",
            ProduceError::Unconfirmed { .. } => "unconfirmed",
            ProduceError::Abandoned { .. } => "abandoned",
            _ => "other",
        });
        outcomes.push((d.tag, result));
    }
    let sent = log.tried.load(Ordering::SeqCst);
    let (on_way, abandoned) = (2..sent, sent..8);
    let mut expected = vec![(0, Ok(0)), (1, Err("failed"))];
    expected.extend(on_way.map(|t| (t, Err("unconfirmed"))));
    expected.extend(abandoned.map(|t| (t, Err("abandoned"))));
    assert_eq!(outcomes, expected);
    // 0-4 went at once; the first to find room after the failure was
    // known (5 or 6: the failure and batch 0's freed room come together)
    // was not sent.
    assert!((5..=6).contains(&sent), "batches sent: {sent}");
}

#[test]
fn sequences_wrap_at_i32_max_as_kafka_does() {
    assert_eq!(next_sequence(0, 5), 5);
    assert_eq!(next_sequence(i32::MAX - 5, 5), i32::MAX);
    assert_eq!(next_sequence(i32::MAX - 4, 5), 0);
    assert_eq!(next_sequence(i32::MAX, 1), 0);
    assert_eq!(next_sequence(i32::MAX, 3), 2);
}
