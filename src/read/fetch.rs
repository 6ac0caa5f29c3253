//! The fetch side of one partition: the [`PartitionFetch`] trait (rskafka's
//! [`PartitionClient`] at an isolation level, or a test's log in memory)
//! and the task that reads a partition into the consumer's stream.
//!
//! The task fetches with a long poll, starts each fetch past the batches
//! of the one before (transaction markers and aborted transactions,
//! which rskafka leaves out, included), grows its fetch size when a
//! record does not fit and follows the decoded size of what it fetched
//! (see [`DECODED_FETCH_FACTOR`]), moves to the nearest watermark when the
//! broker answers `OffsetOutOfRange`, tells a deleted topic from a broker
//! that does not know it yet, and retries a lost broker until the
//! consumer's retry timeout passes without one good fetch. rskafka returns
//! each failed attempt at once (`set_caller_retries`), so a failure shows
//! (counted, `/readyz`) when it happens and the timeout runs from it; an
//! answer that cannot be decoded, or that contradicts itself (nothing
//! below the end of the log at the largest fetch size, an offset out of
//! range inside the watermarks), is a failed attempt too.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures::future::BoxFuture;
use rskafka::client::Client;
use rskafka::client::partition::IsolationLevel;
/// The Kafka client's types in the [`PartitionFetch`] seam, for a fetch
/// side of one's own.
pub use rskafka::client::partition::{OffsetAt, PartitionClient};
/// A record and its offset, as a [`PartitionFetch`] returns them.
pub use rskafka::record::{Record, RecordAndOffset};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::TopicPartition;
use crate::read::config::{
    ConsumerConfig, DECODED_FETCH_FACTOR, MAX_FETCH_BYTES, MIN_FETCH_BYTES, START_FETCH_BYTES,
};
use crate::read::error::{ConsumeError, FetchError, FetchFailure};
use crate::read::event::ConsumerEvent;
use crate::record::{ConsumedRecord, TimestampType};
use crate::registry::codec::{Decoding, OnBadInput};
use crate::timestamp::now_ms;

/// What one fetch returned, as far as the loop cares.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The records to deliver, in offset order.
    pub records: Vec<RecordAndOffset>,
    /// Where the next fetch starts: past the last batch fetched,
    /// transaction markers and records of aborted transactions included.
    pub next_offset: i64,
    /// Where the log ends for this isolation level now: the last stable
    /// offset under read_committed, the high watermark under
    /// read_uncommitted.
    pub end: i64,
}

impl Fetched {
    /// `records` fetched from `offset` of a log without transactions that
    /// ends at `end`.
    pub fn plain(records: Vec<RecordAndOffset>, offset: i64, end: i64) -> Self {
        let next_offset = records.last().map_or(offset, |r| r.offset + 1);
        Self {
            records,
            next_offset,
            end,
        }
    }
}

/// The fetch side of one partition: rskafka's [`PartitionClient`] at an
/// isolation level ([`PartitionReader`]), or a test's stand-in.
pub trait PartitionFetch: Send + Sync + 'static {
    /// Records from `offset` on, up to about `max_bytes`, waiting up to
    /// `max_wait_ms` for the first; and where the log ends.
    fn fetch(
        &self,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<Fetched, FetchError>>;

    /// The offset at `at` (watermarks, or the first at a time).
    /// [`OffsetAt::Latest`] is where the log ends for the isolation level.
    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>>;

    /// The high watermark whatever the isolation level: under
    /// read_committed, offsets between the last stable offset and it are
    /// in the log too, only not yet readable.
    fn high_watermark(&self) -> BoxFuture<'_, Result<i64, FetchError>> {
        self.offset_at(OffsetAt::Latest)
    }

    /// Whether the topic still exists, after [`FetchError::UnknownTopic`].
    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, FetchError>> {
        Box::pin(async { Ok(true) })
    }

    /// The partition leader's `host:port` as last known, for messages.
    fn leader(&self) -> Option<String> {
        None
    }
}

/// A partition read at an isolation level: under
/// [`IsolationLevel::ReadCommitted`] records of aborted transactions are
/// left out and the log ends at the last stable offset, as for the Java
/// consumer with `isolation.level=read_committed`.
#[derive(Debug)]
pub struct PartitionReader {
    /// The partition's client.
    pub client: PartitionClient,
    /// Which records it reads.
    pub isolation: IsolationLevel,
}

impl PartitionFetch for PartitionReader {
    fn fetch(
        &self,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> BoxFuture<'_, Result<Fetched, FetchError>> {
        Box::pin(async move {
            let fetched = self
                .client
                .fetch_records_isolated(offset, 1..max_bytes, max_wait_ms, self.isolation)
                .await?;
            let end = match self.isolation {
                IsolationLevel::ReadCommitted => {
                    fetched.last_stable_offset.unwrap_or(fetched.high_watermark)
                }
                IsolationLevel::ReadUncommitted => fetched.high_watermark,
            };
            Ok(Fetched {
                records: fetched.records,
                next_offset: fetched.next_offset,
                end,
            })
        })
    }

    fn offset_at(&self, at: OffsetAt) -> BoxFuture<'_, Result<i64, FetchError>> {
        Box::pin(async move { Ok(self.client.get_offset_isolated(at, self.isolation).await?) })
    }

    fn high_watermark(&self) -> BoxFuture<'_, Result<i64, FetchError>> {
        Box::pin(async move {
            Ok(self
                .client
                .get_offset_isolated(OffsetAt::Latest, IsolationLevel::ReadUncommitted)
                .await?)
        })
    }

    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, FetchError>> {
        Box::pin(async move { Ok(self.client.topic_exists().await?) })
    }

    fn leader(&self) -> Option<String> {
        self.client.leader_address()
    }
}

/// `request`'s answer, or a failure saying none came by `deadline`, which
/// is `timeout` (the retry timeout) after the wait began.
pub(super) async fn within<T>(
    deadline: Instant,
    timeout: Duration,
    request: impl std::future::Future<Output = Result<T, FetchError>>,
) -> Result<T, FetchError> {
    match tokio::time::timeout_at(deadline, request).await {
        Ok(answer) => answer,
        Err(_) => Err(FetchError::NoAnswerWithin(timeout)),
    }
}

/// Opens a client for one partition, retrying a broker that does not know
/// it yet, for at most `timeout`.
pub(super) async fn open_partition(
    client: &Client,
    topic: &Arc<str>,
    partition: i32,
    timeout: Duration,
) -> Result<PartitionClient, ConsumeError> {
    crate::kafka::connect::partition_client_within(client, topic, partition, timeout)
        .await
        .map_err(|reason| ConsumeError::Fetch {
            at: TopicPartition::new(Arc::clone(topic), partition),
            cause: FetchFailure::Leader(reason),
        })
}

/// The fetch size after a fetch of `current` bytes whose records took
/// `decoded` bytes: smaller in proportion when they took more than
/// [`DECODED_FETCH_FACTOR`] times `configured` (never below `floor`),
/// twice as large (up to `configured`) when they took less than half that.
fn next_fetch_bytes(current: i32, floor: i32, configured: i32, decoded: usize) -> i32 {
    let target = usize::try_from(configured)
        .unwrap_or(0)
        .saturating_mul(DECODED_FETCH_FACTOR);
    if decoded > target {
        let scaled = i64::from(current) * target as i64 / decoded.max(1) as i64;
        let scaled = i32::try_from(scaled).unwrap_or(current);
        scaled.max(floor).min(current)
    } else if decoded < target / 2 && current < configured {
        current.saturating_mul(2).min(configured)
    } else {
        current
    }
}

/// Reads one partition into the shared stream.
pub(super) struct PartitionTask<F> {
    pub(super) fetch: F,
    pub(super) topic: Arc<str>,
    pub(super) partition: i32,
    /// The next offset to read.
    pub(super) next: i64,
    /// Where it stops (`Until::End`).
    pub(super) end: Option<i64>,
    /// Where it stops (`Until::Timestamp`).
    pub(super) until_time: Option<i64>,
    pub(super) config: ConsumerConfig,
    pub(super) events: mpsc::Sender<ConsumerEvent>,
    pub(super) stopped: watch::Receiver<bool>,
    /// Set when a partition fails, before its [`ConsumerEvent::Failed`]
    /// is sent: a job busy elsewhere (a commit) learns of it at once.
    pub(super) failed: Arc<watch::Sender<bool>>,
    /// Its figures in the metrics (or figures nobody shows).
    pub(super) metrics: Arc<crate::metrics::InputPartition>,
}

impl<F: PartitionFetch> PartitionTask<F> {
    /// Reads until the partition's stop, a failure, or the consumer's stop.
    pub(super) async fn run(mut self) {
        let fetch_bytes = self.config.fetch_bytes.max(1);
        let mut max_bytes = fetch_bytes.min(START_FETCH_BYTES);
        // The decoded-size rule shrinks no lower than this; a fetch that
        // returned nothing because a batch did not fit raises it.
        let mut floor = MIN_FETCH_BYTES.min(fetch_bytes);
        let max_wait_ms = i32::try_from(self.config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX);
        let mut failing_since: Option<Instant> = None;
        let mut last_error: Option<FetchError> = None;
        // Reported at the end of the log since the last records.
        let mut caught_up = false;
        let metrics = Arc::clone(&self.metrics);
        let _assigned = metrics.assign();
        loop {
            if self.end.is_some_and(|end| self.next >= end) {
                self.reached().await;
                return;
            }
            // A fetch ends by the deadline whatever rskafka's own retry
            // loops (nested: request, leader lookup, connection) would do:
            // one long poll plus the retry timeout from a good state, and
            // the retry timeout from the first failure once failing.
            let started = Instant::now();
            let timeout = self.config.retry_timeout;
            let deadline = match failing_since {
                Some(since) => since + timeout,
                None => started + timeout + self.config.fetch_max_wait,
            };
            let fetched = tokio::select! {
                biased;
                _ = self.stopped.changed() => return,
                r = tokio::time::timeout_at(deadline, self.fetch.fetch(self.next, max_bytes, max_wait_ms)) => {
                    r.unwrap_or(Err(FetchError::TimedOut))
                }
            };
            let fetched = match fetched {
                Err(FetchError::UnknownTopic) => {
                    let exists = tokio::select! {
                        biased;
                        _ = self.stopped.changed() => return,
                        r = tokio::time::timeout(timeout, self.fetch.topic_exists()) => {
                            r.unwrap_or(Err(FetchError::TimedOut))
                        }
                    };
                    match exists {
                        Ok(false) => {
                            crate::metrics::global().error(crate::metrics::ErrorKind::Fetch);
                            let offset = self.next;
                            self.fail(FetchFailure::TopicDeleted { offset }).await;
                            return;
                        }
                        Ok(true) => Err(FetchError::UnknownTopic),
                        Err(e) => Err(e),
                    }
                }
                // In range by the watermarks (the clamp leaves the offset
                // where it was), out of range by the fetch: a failed
                // attempt, which a lagging new leader gets over.
                Err(FetchError::OutOfRange) => {
                    let before = self.next;
                    if !self.clamp().await {
                        return;
                    }
                    if self.next != before {
                        continue;
                    }
                    Err(FetchError::OutOfRange)
                }
                // Nothing below the end of the log at the largest fetch
                // size: the answer is damaged (a batch whose length runs
                // past the records reads as one cut at the size limit), a
                // failed attempt rather than the end.
                Ok(f)
                    if f.records.is_empty()
                        && f.next_offset <= self.next
                        && self.next < f.end
                        && max_bytes >= MAX_FETCH_BYTES =>
                {
                    Err(FetchError::NothingReturned {
                        end: f.end,
                        max_bytes,
                    })
                }
                other => other,
            };
            let Fetched {
                records,
                next_offset,
                end: log_end,
            } = match fetched {
                Ok(r) => {
                    failing_since = None;
                    last_error = None;
                    metrics.set_failing(false);
                    metrics.at(self.next, r.end);
                    r
                }
                Err(e) => {
                    // Each failed attempt shows at once: the partition is
                    // failing (`/readyz`) and an error is counted, the
                    // last one included.
                    metrics.set_failing(true);
                    crate::metrics::global().error(crate::metrics::ErrorKind::Fetch);
                    let since = *failing_since.get_or_insert(started);
                    // The error before a wait cut short says more than
                    // the cut.
                    if !matches!(e, FetchError::TimedOut) || last_error.is_none() {
                        last_error = Some(e.clone());
                    }
                    if since.elapsed() >= timeout || matches!(e, FetchError::TimedOut) {
                        self.fail(FetchFailure::NoGoodFetch {
                            leader: self.fetch.leader(),
                            offset: self.next,
                            timeout,
                            last: last_error.unwrap_or(e),
                        })
                        .await;
                        return;
                    }
                    let reason = e.to_string();
                    warn!(
                        topic = self.topic.as_ref(),
                        partition = self.partition,
                        offset = self.next,
                        error = reason.as_str(),
                        "fetch failed; retrying"
                    );
                    crate::metrics::global().retries.fetch_add(1, Relaxed);
                    if !self.pause(Duration::from_millis(500)).await {
                        return;
                    }
                    continue;
                }
            };

            let Some(last) = records.last().map(|r| r.offset) else {
                if next_offset > self.next {
                    // Only transaction markers or records of aborted
                    // transactions: the next fetch starts past them.
                    self.next = self.end.map_or(next_offset, |end| next_offset.min(end));
                    continue;
                }
                if self.next < log_end {
                    // Records are there but none came back: the next one
                    // is larger than the fetch size (below the largest:
                    // at it, this was a failed attempt).
                    max_bytes = max_bytes.saturating_mul(2).min(MAX_FETCH_BYTES);
                    floor = floor.max(max_bytes);
                    debug!(
                        topic = self.topic.as_ref(),
                        partition = self.partition,
                        max_bytes,
                        "nothing fit; fetch size grown"
                    );
                    continue;
                } else if self.until_time.is_some_and(|t| now_ms() >= t) {
                    self.reached().await;
                    return;
                } else if !caught_up && self.end.is_none() {
                    // With a stop (`-e`), records are known to be left
                    // before it (the loop's top checks): the end this
                    // fetch saw lags (a new leader's high watermark), and
                    // saying so would let a job stop waiting for them.
                    caught_up = true;
                    debug!(
                        topic = self.topic.as_ref(),
                        partition = self.partition,
                        next = self.next,
                        "caught up"
                    );
                    let event = ConsumerEvent::CaughtUp {
                        topic: Arc::clone(&self.topic),
                        partition: self.partition,
                        next_offset: self.next,
                    };
                    if self.events.send(event).await.is_err() {
                        return;
                    }
                }
                continue;
            };

            let decoded = records
                .iter()
                .map(|r| {
                    r.record.key.as_ref().map_or(0, Vec::len)
                        + r.record.value.as_ref().map_or(0, Vec::len)
                })
                .sum();
            let next_bytes = next_fetch_bytes(max_bytes, floor, fetch_bytes, decoded);
            if next_bytes != max_bytes {
                debug!(
                    topic = self.topic.as_ref(),
                    partition = self.partition,
                    decoded,
                    from = max_bytes,
                    to = next_bytes,
                    "fetch size follows the decoded size"
                );
                max_bytes = next_bytes;
            }

            let mut reached = false;
            let mut batch = Vec::with_capacity(records.len());
            for r in records {
                if r.offset < self.next {
                    continue;
                }
                if self.end.is_some_and(|end| r.offset >= end) {
                    break;
                }
                let timestamp_ms = r.record.timestamp.timestamp_millis();
                if self.until_time.is_some_and(|t| timestamp_ms >= t) {
                    reached = true;
                    self.next = r.offset;
                    break;
                }
                batch.push(ConsumedRecord {
                    topic: Arc::clone(&self.topic),
                    partition: self.partition,
                    offset: r.offset,
                    timestamp_ms,
                    timestamp_type: if r.log_append_time {
                        TimestampType::LogAppendTime
                    } else {
                        TimestampType::CreateTime
                    },
                    key: r.record.key,
                    value: r.record.value,
                    headers: r.record.headers,
                    decoded: Default::default(),
                });
            }
            if let Some(decoding) = self.config.decoding.clone() {
                if !self.decode(&decoding, &mut batch).await {
                    return;
                }
            }
            if !reached {
                let next = next_offset.max(last + 1);
                self.next = self.end.map_or(next, |end| next.min(end));
            }
            let bytes = batch
                .iter()
                .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
                .sum();
            metrics.fetched(batch.len(), bytes, self.next);
            if !batch.is_empty() {
                caught_up = false;
                if self
                    .events
                    .send(ConsumerEvent::Records(batch))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if reached {
                self.reached().await;
                return;
            }
        }
    }

    /// Decodes the batch's keys and values through the schema registry;
    /// an undecodable record is warned of and left out, or fails the
    /// partition (false: the task ends).
    async fn decode(&self, decoding: &Decoding, batch: &mut Vec<ConsumedRecord>) -> bool {
        let mut kept = Vec::with_capacity(batch.len());
        for mut record in batch.drain(..) {
            match decoding.decode(&mut record).await {
                Ok(()) => kept.push(record),
                Err(bad) => match decoding.on_error {
                    OnBadInput::Skip => tracing::warn!("{bad}; left out"),
                    OnBadInput::Fail => {
                        self.fail(FetchFailure::Undecodable(bad)).await;
                        return false;
                    }
                },
            }
        }
        *batch = kept;
        true
    }

    async fn reached(&self) {
        let _ = self
            .events
            .send(ConsumerEvent::Reached {
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                next_offset: self.next,
            })
            .await;
    }

    /// Reports this partition's failure (counted as an error where it
    /// happened); the task ends after it.
    async fn fail(&self, cause: FetchFailure) {
        // A partition taken away meanwhile fails nobody.
        if *self.stopped.borrow() {
            return;
        }
        self.failed.send_replace(true);
        let _ = self
            .events
            .send(ConsumerEvent::Failed(ConsumeError::Fetch {
                at: TopicPartition::new(Arc::clone(&self.topic), self.partition),
                cause,
            }))
            .await;
    }

    /// Sleeps unless stopped; false when stopped.
    async fn pause(&mut self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.stopped.changed() => false,
            () = tokio::time::sleep(duration) => true,
        }
    }

    /// After `OffsetOutOfRange`: moves to the nearest watermark. False when
    /// the watermarks cannot be read either (the failure is reported).
    async fn clamp(&mut self) -> bool {
        let watermarks = async {
            let low = self.fetch.offset_at(OffsetAt::Earliest).await?;
            let high = self.fetch.offset_at(OffsetAt::Latest).await?;
            Ok::<_, FetchError>((low, high))
        };
        let timeout = self.config.retry_timeout;
        match within(Instant::now() + timeout, timeout, watermarks).await {
            Ok((low, high)) => {
                let next = self.next.clamp(low, high.max(low));
                warn!(
                    topic = self.topic.as_ref(),
                    partition = self.partition,
                    offset = self.next,
                    low,
                    high,
                    next,
                    "offset out of range; moved to the nearest watermark"
                );
                self.next = next;
                true
            }
            Err(watermarks) => {
                crate::metrics::global().error(crate::metrics::ErrorKind::Fetch);
                let offset = self.next;
                self.fail(FetchFailure::OutOfRange { offset, watermarks })
                    .await;
                false
            }
        }
    }
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
