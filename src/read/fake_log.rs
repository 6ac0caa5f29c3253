//! A partition in memory for the consumer's unit tests, and helpers that
//! read it through a [`Consumer`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rskafka::chrono::DateTime;
use rskafka::client::partition::OffsetAt;
use rskafka::record::{Record, RecordAndOffset};

use crate::read::assign::Assignment;
use crate::read::config::ConsumerConfig;
use crate::read::consumer::Consumer;
use crate::read::error::FetchError;
use crate::read::event::ConsumerEvent;
use crate::read::fetch::{Fetched, PartitionFetch};
use crate::read::position::{StartOffset, Until};

/// An in-memory partition: `log` holds (offset, value size, timestamp).
pub(crate) struct FakeLog {
    pub(crate) log: Mutex<Vec<(i64, usize, i64)>>,
    pub(crate) low: i64,
    /// A value of `size` bytes takes `size / compression` on the wire.
    pub(crate) compression: usize,
    /// Fetches that fail before the log answers.
    pub(crate) failures: Mutex<usize>,
    /// Every fetch's offset and size.
    pub(crate) fetches: Mutex<Vec<(i64, i32)>>,
}

impl FakeLog {
    /// Records at `offsets`, 10 bytes each, at one second per offset.
    pub(crate) fn new(offsets: impl IntoIterator<Item = i64>) -> Self {
        Self {
            log: Mutex::new(offsets.into_iter().map(|o| (o, 10, o * 1000)).collect()),
            low: 0,
            compression: 1,
            failures: Mutex::new(0),
            fetches: Mutex::new(Vec::new()),
        }
    }

    /// The high watermark.
    pub(crate) fn high(&self) -> i64 {
        self.log
            .lock()
            .unwrap()
            .last()
            .map_or(self.low, |r| r.0 + 1)
    }
}

impl PartitionFetch for Arc<FakeLog> {
    fn fetch(
        &self,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<Fetched, FetchError>> {
        Box::pin(async move {
            self.fetches.lock().unwrap().push((offset, max_bytes));
            {
                let mut failures = self.failures.lock().unwrap();
                if *failures > 0 {
                    *failures -= 1;
                    return Err(rskafka::client::error::Error::InvalidResponse(
                        "broker gone".into(),
                    )
                    .into());
                }
            }
            if offset < self.low || offset > self.high() {
                return Err(FetchError::OutOfRange);
            }
            let mut out = Vec::new();
            let mut bytes = 0;
            for &(o, size, ts) in self.log.lock().unwrap().iter() {
                if o < offset {
                    continue;
                }
                let wire = size / self.compression;
                if bytes + wire > max_bytes as usize {
                    break;
                }
                bytes += wire;
                out.push(RecordAndOffset {
                    record: Record {
                        key: None,
                        value: Some(vec![b'x'; size]),
                        headers: Vec::new(),
                        timestamp: DateTime::from_timestamp_millis(ts).unwrap(),
                    },
                    offset: o,
                    log_append_time: false,
                });
            }
            if out.is_empty() {
                tokio::time::sleep(Duration::from_millis(max_wait_ms as u64)).await;
            }
            Ok(Fetched::plain(out, offset, self.high()))
        })
    }

    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
        Box::pin(async move {
            Ok(match at {
                OffsetAt::Earliest => self.low,
                OffsetAt::Latest => self.high(),
                OffsetAt::Timestamp(t) => self
                    .log
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|r| r.2 >= t.timestamp_millis())
                    .map_or(-1, |r| r.0),
            })
        })
    }
}

/// A partition of `len` records at offsets `0..len`, each value its
/// offset as text; a fetch past them waits its `max_wait`, as a broker
/// does.
pub(crate) struct NumberedLog {
    pub(crate) len: i64,
}

impl PartitionFetch for NumberedLog {
    fn fetch(
        &self,
        offset: i64,
        _max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<Fetched, FetchError>> {
        Box::pin(async move {
            let records: Vec<_> = (offset.max(0)..self.len).take(100).map(numbered).collect();
            if records.is_empty() {
                tokio::time::sleep(Duration::from_millis(max_wait_ms as u64)).await;
            }
            Ok(Fetched::plain(records, offset, self.len))
        })
    }

    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
        Box::pin(async move {
            Ok(match at {
                OffsetAt::Earliest => 0,
                _ => self.len,
            })
        })
    }
}

/// The record at offset `o` of a numbered log: its value is `o` as text,
/// its timestamp `o` ms.
pub(crate) fn numbered(o: i64) -> RecordAndOffset {
    RecordAndOffset {
        record: Record {
            key: None,
            value: Some(o.to_string().into_bytes()),
            headers: Vec::new(),
            timestamp: DateTime::from_timestamp_millis(o).unwrap(),
        },
        offset: o,
        log_append_time: false,
    }
}

/// Partition 0 of topic "t", from `start`.
pub(crate) fn assignment(start: Option<i64>) -> Assignment {
    Assignment {
        topic: Arc::from("t"),
        partition: 0,
        start,
    }
}

/// A consumer's config with a short long poll.
pub(crate) fn config(start: StartOffset, until: Until) -> ConsumerConfig {
    ConsumerConfig {
        start,
        until,
        fetch_max_wait: Duration::from_millis(10),
        ..ConsumerConfig::default()
    }
}

/// Offsets delivered until the stream ends, and the reached offset.
pub(crate) async fn drain(mut consumer: Consumer) -> (Vec<i64>, Option<i64>) {
    let mut offsets = Vec::new();
    let mut reached = None;
    while let Some(event) = consumer.next().await {
        match event {
            ConsumerEvent::Records(records) => {
                offsets.extend(records.iter().map(|r| r.offset));
            }
            ConsumerEvent::Reached { next_offset, .. } => reached = Some(next_offset),
            ConsumerEvent::CaughtUp { .. } => {}
            ConsumerEvent::Failed(e) => panic!("{e}"),
        }
    }
    (offsets, reached)
}

/// What a consumer from `start` (else `from`) to `until` delivers.
pub(crate) async fn read(
    log: &Arc<FakeLog>,
    start: Option<i64>,
    from: StartOffset,
    until: Until,
) -> (Vec<i64>, Option<i64>) {
    let consumer = Consumer::start_with(
        vec![(assignment(start), Arc::clone(log))],
        config(from, until),
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), drain(consumer))
        .await
        .expect("the consumer ended")
}
