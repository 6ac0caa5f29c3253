//! The partition task against a log in memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rskafka::client::partition::OffsetAt;
use tokio::sync::{mpsc, watch};

use super::*;
use crate::read::consumer::Consumer;
use crate::read::event::ConsumerEvent;
use crate::read::fake_log::{FakeLog, assignment, config, drain, numbered, read};
use crate::read::position::{StartOffset, Until};

#[tokio::test]
async fn until_time_stops_before_the_first_later_record() {
    let log = Arc::new(FakeLog::new(0..10));
    let (offsets, reached) = read(&log, None, StartOffset::Earliest, Until::Timestamp(4_000)).await;
    assert_eq!(offsets, vec![0, 1, 2, 3]);
    assert_eq!(reached, Some(4));
    // Nothing newer: stops once caught up, the time being past.
    let (offsets, _) = read(&log, None, StartOffset::Earliest, Until::Timestamp(50_000)).await;
    assert_eq!(offsets.len(), 10);
}

#[tokio::test]
async fn fetch_size_grows_for_a_large_record() {
    let log = Arc::new(FakeLog::new(0..3));
    log.log.lock().unwrap()[1].1 = 5_000;
    let mut config = config(StartOffset::Earliest, Until::End);
    config.fetch_bytes = 100;
    let consumer = Consumer::start_with(vec![(assignment(None), Arc::clone(&log))], config)
        .await
        .unwrap();
    assert_eq!(drain(consumer).await.0, vec![0, 1, 2]);
    let sizes: Vec<i32> = log.fetches.lock().unwrap().iter().map(|f| f.1).collect();
    assert!(sizes.contains(&6_400), "grew by doubling: {sizes:?}");
}

#[test]
fn fetch_size_follows_the_decoded_size() {
    let mib = 1024 * 1024;
    // Uncompressed, or compressed a few times: unchanged.
    assert_eq!(next_fetch_bytes(mib, 16_384, mib, mib as usize), mib);
    assert_eq!(next_fetch_bytes(mib, 16_384, mib, 3 * mib as usize), mib);
    // 25 times the wire size: 4/25 of it, to decode to 4 times the
    // configured size.
    assert_eq!(
        next_fetch_bytes(mib, 16_384, mib, 25 * mib as usize),
        mib * 4 / 25
    );
    // Never below the floor.
    assert_eq!(
        next_fetch_bytes(mib, 200_000, mib, 100 * mib as usize),
        200_000
    );
    // Decoding to between 2 and 4 times the configured size: it stays.
    for decoded in [2 * mib as usize, 4 * mib as usize] {
        assert_eq!(next_fetch_bytes(50_000, 16_384, mib, decoded), 50_000);
    }
    // Doubling (from the start size, or back up) below that.
    assert_eq!(next_fetch_bytes(65_536, 16_384, mib, 65_536), 131_072);
    assert_eq!(
        next_fetch_bytes(100_000, 16_384, mib, mib as usize),
        200_000
    );
    assert_eq!(next_fetch_bytes(900_000, 16_384, mib, 1_000), mib);
    // A size grown past the configured one for a large record stays.
    assert_eq!(next_fetch_bytes(4 * mib, 4 * mib, mib, 1_000), 4 * mib);
}

#[tokio::test]
async fn fetch_size_starts_small_and_doubles() {
    let mut log = FakeLog::new(0..20_000);
    for r in log.log.get_mut().unwrap().iter_mut() {
        r.1 = 100;
    }
    let log = Arc::new(log);
    let consumer = Consumer::start_with(
        vec![(assignment(None), Arc::clone(&log))],
        config(StartOffset::Earliest, Until::End),
    )
    .await
    .unwrap();
    assert_eq!(drain(consumer).await.0.len(), 20_000);
    let sizes: Vec<i32> = log.fetches.lock().unwrap().iter().map(|f| f.1).collect();
    let mib = 1024 * 1024;
    assert_eq!(
        sizes[..5],
        [START_FETCH_BYTES, 131_072, 262_144, 524_288, mib],
        "{sizes:?}"
    );
}

#[tokio::test]
async fn fetch_size_shrinks_for_records_that_decode_large() {
    // 1000-byte values that take 50 bytes each on the wire.
    let mut log = FakeLog::new(0..3_000);
    log.compression = 20;
    for r in log.log.get_mut().unwrap().iter_mut() {
        r.1 = 1_000;
    }
    let log = Arc::new(log);
    let mut config = config(StartOffset::Earliest, Until::End);
    config.fetch_bytes = 100_000;
    let consumer = Consumer::start_with(vec![(assignment(None), Arc::clone(&log))], config)
        .await
        .unwrap();
    assert_eq!(drain(consumer).await.0, (0..3_000).collect::<Vec<_>>());
    let sizes: Vec<i32> = log.fetches.lock().unwrap().iter().map(|f| f.1).collect();
    // The first fetch (at the start size): 1310 records, 1.31 MB
    // decoded where 400 kB are allowed; then fetches of 400 records.
    assert_eq!(sizes[..3], [START_FETCH_BYTES, 20_010, 20_010], "{sizes:?}");
}

#[tokio::test]
async fn gaps_in_offsets_are_skipped() {
    // A compacted log: offsets 3, 4 and 8 are gone.
    let log = Arc::new(FakeLog::new([0, 1, 2, 5, 6, 7, 9]));
    let (offsets, reached) = read(&log, Some(3), StartOffset::Earliest, Until::End).await;
    assert_eq!(offsets, vec![5, 6, 7, 9]);
    assert_eq!(reached, Some(10));
}

#[tokio::test]
async fn failed_fetches_are_retried_without_gaps_or_duplicates() {
    let log = Arc::new(FakeLog::new(0..4));
    *log.failures.lock().unwrap() = 2;
    let (offsets, _) = read(&log, None, StartOffset::Earliest, Until::End).await;
    assert_eq!(offsets, vec![0, 1, 2, 3]);
}

#[tokio::test]
async fn a_partition_that_keeps_failing_reports_it() {
    let log = Arc::new(FakeLog::new(0..4));
    *log.failures.lock().unwrap() = usize::MAX;
    let mut config = config(StartOffset::Earliest, Until::End);
    config.retry_timeout = Duration::from_millis(100);
    let mut consumer = Consumer::start_with(vec![(assignment(None), Arc::clone(&log))], config)
        .await
        .unwrap();
    match consumer.next().await {
        Some(ConsumerEvent::Failed(e)) => {
            let e = crate::ErrorChain(&e).to_string();
            assert!(
                e.contains("topic \"t\" partition 0") && e.contains("broker gone"),
                "{e}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn out_of_range_moves_to_the_low_watermark() {
    // Records below 3 were deleted after the start (1) was resolved.
    let mut deleted = FakeLog::new(3..6);
    deleted.low = 3;
    let (tx, mut rx) = mpsc::channel(4);
    let (_stop, stopped) = watch::channel(false);
    let task = PartitionTask {
        fetch: Arc::new(deleted),
        topic: Arc::from("t"),
        partition: 0,
        next: 1,
        end: Some(6),
        until_time: None,
        config: config(StartOffset::Earliest, Until::End),
        events: tx,
        stopped,
        failed: Arc::new(watch::channel(false).0),
        metrics: Arc::default(),
    };
    tokio::spawn(task.run());
    let mut offsets = Vec::new();
    while let Some(event) = rx.recv().await {
        if let ConsumerEvent::Records(records) = event {
            offsets.extend(records.iter().map(|r| r.offset));
        }
    }
    assert_eq!(offsets, vec![3, 4, 5]);
}

/// A log with transactions as a read_committed fetch sees it: one batch
/// per offset, shown or not (a transaction marker, a record of an aborted
/// transaction), readable below `stable` (a transaction is open there).
/// A fetch returns at most two batches.
struct TransactionalLog {
    batches: Vec<(i64, bool)>,
    stable: i64,
    /// Every fetch's offset and size.
    fetches: Mutex<Vec<(i64, i32)>>,
}

impl TransactionalLog {
    /// Committed 0-2 (marker 3), aborted 4-6 (marker 7), committed 8-9
    /// (marker 10), open from 11 to the high watermark 14.
    fn new() -> Arc<Self> {
        let shown = |o: i64| matches!(o, 0..=2 | 8..=9 | 11..=13);
        Arc::new(Self {
            batches: (0..14).map(|o| (o, shown(o))).collect(),
            stable: 11,
            fetches: Mutex::new(Vec::new()),
        })
    }
}

impl PartitionFetch for Arc<TransactionalLog> {
    fn fetch(
        &self,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<Fetched, FetchError>> {
        Box::pin(async move {
            self.fetches.lock().unwrap().push((offset, max_bytes));
            let batches: Vec<_> = self
                .batches
                .iter()
                .filter(|b| b.0 >= offset && b.0 < self.stable)
                .take(2)
                .collect();
            if batches.is_empty() {
                tokio::time::sleep(Duration::from_millis(max_wait_ms as u64)).await;
            }
            Ok(Fetched {
                records: batches
                    .iter()
                    .filter(|b| b.1)
                    .map(|b| numbered(b.0))
                    .collect(),
                next_offset: batches.last().map_or(offset, |b| b.0 + 1),
                end: self.stable,
            })
        })
    }

    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
        Box::pin(async move {
            Ok(match at {
                OffsetAt::Earliest => 0,
                OffsetAt::Latest => self.stable,
                OffsetAt::Timestamp(_) => -1,
            })
        })
    }
}

#[tokio::test]
async fn markers_and_aborted_records_are_passed_and_the_end_is_the_stable_offset() {
    let log = TransactionalLog::new();
    let consumer = Consumer::start_with(
        vec![(assignment(None), Arc::clone(&log))],
        config(StartOffset::Earliest, Until::End),
    )
    .await
    .unwrap();
    let (offsets, reached) = tokio::time::timeout(Duration::from_secs(10), drain(consumer))
        .await
        .expect("the consumer ended");
    assert_eq!(offsets, vec![0, 1, 2, 8, 9]);
    assert_eq!(reached, Some(11));
    // Each fetch starts past the batches of the one before: one fetch
    // per two batches, none asked again (with a larger size, as for a
    // record that did not fit).
    let fetches = log.fetches.lock().unwrap().clone();
    let offsets: Vec<i64> = fetches.iter().map(|f| f.0).collect();
    assert_eq!(offsets, vec![0, 2, 4, 6, 8, 10], "{fetches:?}");
}

#[tokio::test(start_paused = true)]
async fn a_follower_waits_at_the_stable_offset_without_growing_its_fetches() {
    let log = TransactionalLog::new();
    let mut consumer = Consumer::start_with(
        vec![(assignment(None), Arc::clone(&log))],
        config(StartOffset::Earliest, Until::Never),
    )
    .await
    .unwrap();
    let waits = || {
        let fetches = log.fetches.lock().unwrap();
        fetches
            .iter()
            .filter(|f| f.0 == 11)
            .copied()
            .collect::<Vec<_>>()
    };
    let read = async {
        let mut offsets = Vec::new();
        while offsets.len() < 5 {
            match consumer.next().await {
                Some(ConsumerEvent::Records(records)) => {
                    offsets.extend(records.iter().map(|r| r.offset));
                }
                other => panic!("expected records, got {other:?}"),
            }
        }
        while waits().len() < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        offsets
    };
    // On the test's clock, which moves on whenever every task waits.
    let offsets = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("five records, then five fetches at the stable offset");
    assert_eq!(offsets, vec![0, 1, 2, 8, 9]);
    // Nothing is readable at the stable offset: not a record too large
    // for the fetch size.
    let waits = waits();
    assert!(waits.iter().all(|f| f.1 == waits[0].1), "{waits:?}");
    // At the end, said once for the five fetches there.
    assert!(
        matches!(
            consumer.try_next(),
            Some(ConsumerEvent::CaughtUp { partition: 0, .. })
        ),
        "caught up"
    );
    assert!(consumer.try_next().is_none());
    consumer.stop().await;
}

/// A log whose first fetch is answered by a leader whose high watermark
/// lags (one just elected): nothing, the log ending where reading starts.
struct LaggingLeader {
    log: Arc<FakeLog>,
    answered: Mutex<bool>,
}

impl PartitionFetch for Arc<LaggingLeader> {
    fn fetch(
        &self,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<Fetched, FetchError>> {
        Box::pin(async move {
            if !std::mem::replace(&mut *self.answered.lock().unwrap(), true) {
                return Ok(Fetched::plain(Vec::new(), offset, offset));
            }
            self.log.fetch(offset, max_bytes, max_wait_ms).await
        })
    }

    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
        self.log.offset_at(at)
    }
}

#[tokio::test]
async fn a_partition_short_of_its_stop_is_never_caught_up() {
    let log = Arc::new(LaggingLeader {
        log: Arc::new(FakeLog::new(0..5)),
        answered: Mutex::new(false),
    });
    let mut consumer = Consumer::start_with(
        vec![(assignment(None), Arc::clone(&log))],
        config(StartOffset::Earliest, Until::End),
    )
    .await
    .unwrap();
    let mut events = Vec::new();
    let read = async {
        while let Some(event) = consumer.next().await {
            events.push(event);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the consumer ended");
    // The empty answer's end lags the stop (5): the records come, then
    // the stop, and nothing said the partition was at its end before.
    assert!(
        matches!(
            events.as_slice(),
            [ConsumerEvent::Records(r), ConsumerEvent::Reached { next_offset: 5, .. }] if r.len() == 5
        ),
        "{events:?}"
    );
}

/// A partition whose fetches answer OFFSET_OUT_OF_RANGE, or nothing at
/// all below the end of the log, while its watermarks say the offset is
/// in range: damaged answers.
struct Contradicting {
    log: Arc<FakeLog>,
    empty: bool,
}

impl PartitionFetch for Contradicting {
    fn fetch(&self, offset: i64, _: i32, _: i32) -> BoxFuture<'_, Result<Fetched, FetchError>> {
        Box::pin(async move {
            if self.empty {
                Ok(Fetched::plain(Vec::new(), offset, self.log.high()))
            } else {
                Err(FetchError::OutOfRange)
            }
        })
    }

    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
        self.log.offset_at(at)
    }
}

#[tokio::test]
async fn answers_that_contradict_the_watermarks_fail_after_the_retry_timeout() {
    for (empty, says) in [
        (false, "offset out of range"),
        (true, "no records below the end of the log"),
    ] {
        let log = Arc::new(FakeLog::new(0..4));
        let mut config = config(StartOffset::Earliest, Until::End);
        config.retry_timeout = Duration::from_millis(100);
        let fetch = Contradicting { log, empty };
        let mut consumer = Consumer::start_with(vec![(assignment(None), fetch)], config)
            .await
            .unwrap();
        // Before, each was asked again for ever.
        let event = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .expect("the partition fails rather than retrying for ever");
        match event {
            Some(ConsumerEvent::Failed(e)) => {
                let e = crate::ErrorChain(&e).to_string();
                assert!(
                    e.contains("no good fetch at offset 0") && e.contains(says),
                    "{e}"
                );
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}

/// A partition removed from a running consumer sends nothing more, one
/// added is read from its start, and the others read on in order.
#[tokio::test]
async fn partitions_are_added_and_removed_while_the_others_read_on() {
    use crate::TopicPartition;
    use crate::read::fake_log::NumberedLog;
    use crate::read::start::PartitionPosition;

    let len = 5_000;
    let at = |p: i32| crate::read::Assignment {
        topic: Arc::from("t"),
        partition: p,
        start: None,
    };
    let config = ConsumerConfig {
        buffered_batches: 2,
        ..config(StartOffset::Earliest, Until::End)
    };
    let mut consumer = Consumer::start_with(
        vec![(at(0), NumberedLog { len }), (at(1), NumberedLog { len })],
        config,
    )
    .await
    .unwrap();
    let mut seen: std::collections::BTreeMap<i32, Vec<i64>> = Default::default();
    let note = |event: ConsumerEvent, seen: &mut std::collections::BTreeMap<i32, Vec<i64>>| {
        if let ConsumerEvent::Records(records) = event {
            let p = records[0].partition;
            seen.entry(p)
                .or_default()
                .extend(records.iter().map(|r| r.offset));
        }
    };
    while seen.get(&0).map_or(0, Vec::len) < 300 {
        let event = consumer.next().await.unwrap();
        note(event, &mut seen);
    }
    let zero = TopicPartition::new("t", 0);
    consumer.remove(std::slice::from_ref(&zero)).await;
    let removed_at = seen[&0].len();
    assert_eq!(consumer.partitions(), vec![TopicPartition::new("t", 1)]);
    let two = PartitionPosition {
        topic: Arc::from("t"),
        partition: 2,
        low: 0,
        high: len,
        start: 10,
        end: Some(len),
    };
    consumer.add(vec![(two, NumberedLog { len })]);
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("the consumer did not end")
    {
        note(event, &mut seen);
    }
    assert_eq!(
        seen[&0].len(),
        removed_at,
        "partition 0 read on after its removal"
    );
    assert_eq!(seen[&0], (0..removed_at as i64).collect::<Vec<_>>());
    assert_eq!(seen[&1], (0..len).collect::<Vec<_>>());
    assert_eq!(seen[&2], (10..len).collect::<Vec<_>>());
}
