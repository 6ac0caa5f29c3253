//! One partition's side of the producer: records are collected into
//! batches (up to the batch size, or for at most the linger after the
//! first record was queued) and sent one request at a time, so records of
//! one partition land in the order they were given. Every record gets its
//! [`Delivery`]; after a failed batch the rest of the partition's records
//! are abandoned unsent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::producer::{Delivery, ProduceError, SendFailure, encoded_size};
use crate::kafka::connect::ClientError;

/// Resolution of tokio's timers.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Records queued per partition before the producer's `send` waits.
pub(super) const QUEUE_RECORDS: usize = 8 * 1024;

pub(super) fn record_size(record: &Record) -> usize {
    encoded_size(
        record.key.as_deref(),
        record.value.as_deref(),
        &record.headers,
    )
}

/// The produce side of one partition: rskafka's [`PartitionClient`], or a
/// test's stand-in, so that a partition task's batching, ordering and
/// failure handling are unit-tested without a broker (as the consumer's
/// `PartitionFetch`).
pub(super) trait PartitionProduce: Send + Sync + 'static {
    /// Writes `records` as one batch: their offsets in order, or why not.
    fn produce(
        &self,
        records: Vec<Record>,
        compression: Compression,
    ) -> BoxFuture<'_, Result<Vec<i64>, ClientError>>;

    /// Whether the topic still exists, after a failed batch.
    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, ClientError>>;

    /// The partition leader's `host:port` as last known, for messages.
    fn leader(&self) -> Option<String>;
}

impl PartitionProduce for PartitionClient {
    fn produce(
        &self,
        records: Vec<Record>,
        compression: Compression,
    ) -> BoxFuture<'_, Result<Vec<i64>, ClientError>> {
        Box::pin(async move {
            PartitionClient::produce(self, records, compression)
                .await
                .map_err(ClientError::from)
        })
    }

    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, ClientError>> {
        Box::pin(async move {
            PartitionClient::topic_exists(self)
                .await
                .map_err(ClientError::from)
        })
    }

    fn leader(&self) -> Option<String> {
        self.leader_address()
    }
}

/// A record on its way to a partition task.
pub(super) struct Pending {
    pub(super) tag: u64,
    pub(super) record: Record,
    /// When it was queued, for a record that found its queue empty: it may
    /// start a batch, and a batch's linger counts from its first record
    /// (as librdkafka's `linger.ms`), not from when the partition task
    /// gets to it after the previous batch's acknowledgement.
    pub(super) queued_at: Option<Instant>,
}

/// Sends one partition's batches, one request at a time.
pub(super) struct PartitionTask {
    pub(super) client: Box<dyn PartitionProduce>,
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) linger: Duration,
    pub(super) batch_bytes: usize,
    pub(super) compression: Compression,
    pub(super) delivery_timeout: Duration,
    pub(super) reports: mpsc::UnboundedSender<Delivery>,
    pub(super) batches_sent: Arc<AtomicU64>,
    pub(super) stale: Arc<Notify>,
}

impl PartitionTask {
    pub(super) async fn run(self, mut queue: mpsc::Receiver<Pending>) {
        let mut failed: Option<Arc<ProduceError>> = None;
        let mut carry: Option<Pending> = None;
        loop {
            let first = match carry.take() {
                Some(p) => p,
                None => match queue.recv().await {
                    Some(p) => p,
                    None => return,
                },
            };
            let mut bytes = record_size(&first.record);
            // tokio's timers fire on the first millisecond tick at or after
            // their deadline; half a millisecond early centres that on the
            // linger instead of adding 0-1 ms to it.
            let deadline = (first.queued_at.unwrap_or_else(Instant::now) + self.linger)
                .checked_sub(TIMER_TICK / 2)
                .unwrap_or_else(Instant::now);
            let mut batch = vec![first];
            let mut closed = false;
            while bytes < self.batch_bytes {
                let next = match queue.try_recv() {
                    Ok(p) => Some(p),
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        None
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(deadline, queue.recv()).await {
                            Ok(Some(p)) => Some(p),
                            Ok(None) => {
                                closed = true;
                                None
                            }
                            Err(_) => None,
                        }
                    }
                };
                let Some(next) = next else { break };
                let size = record_size(&next.record);
                if bytes + size > self.batch_bytes {
                    carry = Some(next);
                    break;
                }
                bytes += size;
                batch.push(next);
            }

            self.batches_sent.fetch_add(1, Ordering::Relaxed);
            match &failed {
                Some(_) => self.report_all(batch, || {
                    Arc::new(ProduceError::Abandoned {
                        topic: self.topic.clone(),
                        partition: self.partition,
                    })
                }),
                None => {
                    if let Err(e) = self.send(batch).await {
                        failed = Some(e);
                    }
                }
            }
            if closed && carry.is_none() {
                return;
            }
        }
    }

    async fn send(&self, batch: Vec<Pending>) -> Result<(), Arc<ProduceError>> {
        let mut tags = Vec::with_capacity(batch.len());
        let records = batch
            .into_iter()
            .map(|p| {
                tags.push(p.tag);
                p.record
            })
            .collect();
        debug!(
            topic = self.topic.as_str(),
            partition = self.partition,
            records = tags.len(),
            "sending batch"
        );
        let sent = tokio::time::timeout(
            self.delivery_timeout,
            self.client.produce(records, self.compression),
        )
        .await
        .map_err(|_| SendFailure::NoAcknowledgement {
            timeout: self.delivery_timeout,
        });
        // UNKNOWN_TOPIC_OR_PARTITION is retried (a broker may learn of a
        // partition late) until the deadline; then a deleted topic is
        // named as the reason.
        let sent = match sent {
            Ok(Ok(offsets)) => Ok(offsets),
            Ok(Err(e)) => Err(self.deleted_or(e.into()).await),
            Err(e) => Err(self.deleted_or(e).await),
        };
        match sent {
            Ok(offsets) => {
                for (tag, offset) in tags.into_iter().zip(offsets) {
                    let _ = self.reports.send(Delivery {
                        tag,
                        partition: self.partition,
                        result: Ok(offset),
                    });
                }
                Ok(())
            }
            Err(cause) => {
                let error = Arc::new(ProduceError::Send {
                    topic: self.topic.clone(),
                    partition: self.partition,
                    leader: self.client.leader(),
                    cause,
                });
                warn!(error = %error, records = tags.len(), "batch failed");
                self.stale.notify_one();
                for tag in tags {
                    let _ = self.reports.send(Delivery {
                        tag,
                        partition: self.partition,
                        result: Err(Arc::clone(&error)),
                    });
                }
                Err(error)
            }
        }
    }

    /// After a failed batch: [`SendFailure::TopicDeleted`] when the topic
    /// was deleted, `failure` otherwise. One metadata request, given a
    /// second at most: a broker that is down has already had the batch's
    /// deadline.
    async fn deleted_or(&self, failure: SendFailure) -> SendFailure {
        let limit = self.delivery_timeout.min(Duration::from_secs(1));
        let exists = tokio::time::timeout(limit, self.client.topic_exists()).await;
        if matches!(exists, Ok(Ok(false))) {
            SendFailure::TopicDeleted
        } else {
            failure
        }
    }

    fn report_all(&self, batch: Vec<Pending>, error: impl Fn() -> Arc<ProduceError>) {
        let error = error();
        for p in batch {
            let _ = self.reports.send(Delivery {
                tag: p.tag,
                partition: self.partition,
                result: Err(Arc::clone(&error)),
            });
        }
    }
}

#[cfg(test)]
mod tests {
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
        let (reports, deliveries) = mpsc::unbounded_channel();
        let task = PartitionTask {
            client: Box::new(Arc::clone(log)),
            topic: "events".to_owned(),
            partition: 3,
            linger,
            batch_bytes,
            compression: Compression::NoCompression,
            delivery_timeout: Duration::from_secs(30),
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
}
