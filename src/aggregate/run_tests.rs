//! Runs of the count over partitions in memory: when a partition without
//! records holds windows back.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rskafka::client::partition::OffsetAt;

use super::*;
use crate::aggregate::{AggPlan, CountConfig, CountJob, EmitMode, Extractor, Row, RowSink};
use crate::read::assign::Assignment;
use crate::read::fake_log::{FakeLog, config};
use crate::read::position::{StartOffset, Until};
use crate::read::{FetchError, Fetched, PartitionFetch};

/// A partition whose log looks empty until its first fetch answers,
/// after `delay`: one whose leader is slow to answer (a new connection,
/// a leader moving), written to meanwhile.
struct SlowFirstFetch {
    log: Arc<FakeLog>,
    delay: Duration,
    answered: AtomicBool,
}

impl SlowFirstFetch {
    fn new(log: FakeLog, delay: Duration) -> Self {
        Self {
            log: Arc::new(log),
            delay,
            answered: AtomicBool::new(delay.is_zero()),
        }
    }
}

impl PartitionFetch for SlowFirstFetch {
    fn fetch(
        &self,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<Fetched, FetchError>> {
        Box::pin(async move {
            if !self.answered.load(SeqCst) {
                tokio::time::sleep(self.delay).await;
                self.answered.store(true, SeqCst);
            }
            self.log.fetch(offset, max_bytes, max_wait_ms).await
        })
    }

    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
        Box::pin(async move {
            match at {
                OffsetAt::Latest if !self.answered.load(SeqCst) => Ok(self.log.low),
                at => self.log.offset_at(at).await,
            }
        })
    }
}

/// A partition whose first fetch is answered by a leader whose high
/// watermark lags (one just elected): nothing, the log ending where
/// reading starts, after the long poll. Its stop (`-e`) came from the
/// leader before, which knew better; the fetches after answer from the
/// log after `delay`.
struct LaggingFirstFetch {
    log: Arc<FakeLog>,
    delay: Duration,
    answered: AtomicBool,
}

impl PartitionFetch for LaggingFirstFetch {
    fn fetch(
        &self,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<Fetched, FetchError>> {
        Box::pin(async move {
            if !self.answered.swap(true, SeqCst) {
                tokio::time::sleep(Duration::from_millis(max_wait_ms as u64)).await;
                return Ok(Fetched::plain(Vec::new(), offset, offset));
            }
            tokio::time::sleep(self.delay).await;
            self.log.fetch(offset, max_bytes, max_wait_ms).await
        })
    }

    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
        self.log.offset_at(at)
    }
}

/// Rows as emitted, each with whether it came at the stop.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<(Row, bool)>>>);

impl RowSink for Collected {
    fn emit(&mut self, rows: &[Row], stopping: bool) -> std::io::Result<()> {
        let mut all = self.0.lock().unwrap();
        all.extend(rows.iter().map(|r| (r.clone(), stopping)));
        Ok(())
    }
}

/// Counts partitions 0 and 1 of "t" by value in windows of a second,
/// checkpointing every 20 ms, until `count` records or `stop_after`.
async fn count(
    partitions: [SlowFirstFetch; 2],
    count: Option<u64>,
    stop_after: Duration,
) -> (Vec<(Row, bool)>, CountSummary) {
    let windowing = crate::aggregate::Windowing::tumbling(Some(1000), 0);
    count_with(partitions, Until::Never, windowing, count, stop_after).await
}

/// As [`count`], reading to `until` in `windowing`.
async fn count_with<F: PartitionFetch>(
    partitions: [F; 2],
    until: Until,
    windowing: crate::aggregate::Windowing,
    count: Option<u64>,
    stop_after: Duration,
) -> (Vec<(Row, bool)>, CountSummary) {
    let fetchers = partitions
        .into_iter()
        .enumerate()
        .map(|(i, fetch)| {
            let assignment = Assignment {
                topic: Arc::from("t"),
                partition: i as i32,
                start: None,
            };
            (assignment, fetch)
        })
        .collect();
    let consumer = Consumer::start_with(fetchers, config(StartOffset::Earliest, until))
        .await
        .unwrap();
    let rows = Collected::default();
    let job = CountJob {
        config: CountConfig {
            by: vec![Extractor::Value],
            aggs: AggPlan::new(Vec::new()),
            windowing,
            emit: EmitMode::Final,
            count,
            checkpoint_interval: Duration::from_millis(20),
            idle_timeout: None,
        },
        sink: Some(Box::new(rows.clone())),
        topic: None,
        checkpoints: None,
        member: None,
        second_stage: None,
    };
    let stop = async {
        tokio::time::sleep(stop_after).await;
        StopReason::Shutdown
    };
    // Boxed: the run nests deep enough to pass the layout query depth.
    let run = Box::pin(run(consumer, job, Restored::default(), stop));
    let summary = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the run ended")
        .unwrap();
    let rows = rows.0.lock().unwrap().clone();
    (rows, summary)
}

/// Each window's count across keys, in window order.
fn per_window(rows: &[(Row, bool)]) -> Vec<(i64, u64)> {
    let mut windows = BTreeMap::new();
    for (row, _) in rows {
        *windows.entry(row.window_start.unwrap()).or_default() += row.count;
    }
    windows.into_iter().collect()
}

#[tokio::test]
async fn a_partition_whose_first_fetch_has_not_answered_holds_windows_back() {
    // Ten records a second apart in each partition; partition 1 looked
    // empty at the start, and its first fetch answers 300 ms on, long
    // after partition 0's records passed every window's end.
    let partitions = [
        SlowFirstFetch::new(FakeLog::new(0..10), Duration::ZERO),
        SlowFirstFetch::new(FakeLog::new(0..10), Duration::from_millis(300)),
    ];
    let (rows, summary) = count(partitions, Some(20), Duration::from_secs(10)).await;
    assert_eq!(summary.late, 0, "records left out as late");
    let expected: Vec<(i64, u64)> = (0..10).map(|w| (w * 1000, 2)).collect();
    assert_eq!(per_window(&rows), expected);
}

#[tokio::test]
async fn a_partition_found_at_its_end_holds_no_window_back() {
    // Partition 1 stays empty: once a fetch has answered so, the windows
    // partition 0 closed are emitted before the stop.
    let partitions = [
        SlowFirstFetch::new(FakeLog::new(0..10), Duration::ZERO),
        SlowFirstFetch::new(FakeLog::new(0..0), Duration::ZERO),
    ];
    let (rows, summary) = count(partitions, None, Duration::from_millis(500)).await;
    assert_eq!(summary.stop, StopReason::Shutdown);
    let before_stop: Vec<i64> = rows
        .iter()
        .filter(|(_, stopping)| !stopping)
        .map(|(row, _)| row.window_start.unwrap())
        .collect();
    assert_eq!(before_stop, (0..9).map(|w| w * 1000).collect::<Vec<_>>());
    let expected: Vec<(i64, u64)> = (0..10).map(|w| (w * 1000, 1)).collect();
    assert_eq!(per_window(&rows), expected);
}

#[tokio::test]
async fn a_partition_below_its_stop_holds_windows_back_when_a_fetch_finds_no_records() {
    // Read to the end (-e), hopping windows of 5 s every second, 5 s of
    // grace; a record a second in each partition, 1 kB each (a fetch
    // brings 64 of them). Partition 0 answers each fetch in 100 ms.
    // Partition 1's first fetch finds nothing and the log ending there
    // (its new leader's high watermark lags), 100 records short of its
    // stop; its records come 300 ms on, after partition 0's first ones
    // have passed a minute of windows. Until it has records or reaches
    // its stop it holds the windows back: none of its records is late.
    let windowing = crate::aggregate::Windowing {
        size_ms: Some(5_000),
        hop_ms: Some(1_000),
        grace_ms: 5_000,
        session_gap_ms: None,
    };
    let log = || {
        let mut log = FakeLog::new(0..100);
        for r in log.log.get_mut().unwrap().iter_mut() {
            r.1 = 1_000;
        }
        Arc::new(log)
    };
    let partitions = [
        LaggingFirstFetch {
            log: log(),
            delay: Duration::from_millis(100),
            answered: AtomicBool::new(true),
        },
        LaggingFirstFetch {
            log: log(),
            delay: Duration::from_millis(300),
            answered: AtomicBool::new(false),
        },
    ];
    let (rows, summary) = count_with(
        partitions,
        Until::End,
        windowing,
        None,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(summary.stop, StopReason::Reached);
    assert_eq!(summary.late, 0, "records left out as late");
    // Each window holds its five seconds of both partitions (fewer at
    // the ends of the log).
    let expected: Vec<(i64, u64)> = (-4..100)
        .map(|w: i64| (w * 1000, 2 * ((w + 5).min(100) - w.max(0)) as u64))
        .collect();
    assert_eq!(per_window(&rows), expected);
}
