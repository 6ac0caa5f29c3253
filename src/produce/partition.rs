//! One partition's side of the producer: records are collected into
//! batches (up to the batch size, or for at most the linger after the
//! first record was queued) and sent in the order they were given. An
//! idempotent producer keeps up to [`IDEMPOTENT_IN_FLIGHT`] batches on
//! their way, each with its sequence number, so the broker appends them
//! in order and a retried one only once; without idempotence one batch
//! at a time keeps the order. Every record gets its [`Delivery`], in the
//! partition's order; after a failed batch the rest of the partition's
//! records are abandoned unsent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use rskafka::client::partition::{Compression, EncodedBatch, PartitionClient};
use rskafka::record::Record;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::error::{Delivery, ProduceError, SendFailure};
use super::sequence::{Sequencing, Settled, Stamp};
use super::size::encoded_size;
use crate::TopicPartition;
use crate::kafka::connect::ClientError;
use crate::kafka::idempotence::ProducerId;

/// Resolution of tokio's timers.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Records queued per partition before the producer's `send` waits.
pub(super) const QUEUE_RECORDS: usize = 8 * 1024;

/// Batches of one partition on their way at once with idempotence: the
/// most the broker keeps sequence state for (Java's
/// `max.in.flight.requests.per.connection` limit with idempotence).
pub const IDEMPOTENT_IN_FLIGHT: usize = 5;

/// Largest batch of uncompressed records a compressing producer
/// collects, whatever the compression ratio.
const MAX_PLAIN_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// The batch size's estimate of what a batch compresses to, as the Java
/// producer's `CompressionRatioEstimator` (kept per partition here, and
/// taken from the last batch: weir measures each batch exactly, and
/// cuts one that comes out too large).
#[derive(Debug, Clone, Copy)]
struct Ratio(f64);

impl Ratio {
    /// As Java, a partition's first batch is taken not to compress.
    const FIRST: Self = Self(1.0);

    /// Room left for an estimate below the last batch's ratio (Java's
    /// `COMPRESSION_RATE_ESTIMATION_FACTOR`).
    const MARGIN: f64 = 1.05;

    /// Most bytes of records (in [`record_size`]'s estimate) to collect for
    /// a batch of `batch_bytes` on the wire.
    fn plain_limit(self, batch_bytes: usize, compression: Compression) -> usize {
        if matches!(compression, Compression::NoCompression) {
            return batch_bytes;
        }
        let limit = batch_bytes as f64 / (self.0 * Self::MARGIN);
        (limit as usize).min(MAX_PLAIN_BATCH_BYTES)
    }

    /// Takes the ratio of a batch: `wire` bytes sent for `plain` bytes of
    /// records.
    fn observe(&mut self, wire: usize, plain: usize) {
        if plain > 0 {
            self.0 = (wire as f64 / plain as f64).max(0.001);
        }
    }
}

/// A batch ready to go: its records' tags, written and compressed, and
/// its sizes.
struct Ready {
    tags: Vec<Tag>,
    /// The encoded batch, or why it could not be written.
    batch: Result<EncodedBatch, ClientError>,
    /// Bytes of keys and values, for the metrics.
    payload: usize,
    /// [`record_size`] of its records: what the producer's `send` charged.
    held: usize,
}

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
    /// Writes `batch`, as an idempotent producer when `stamp` is given
    /// (whose identity is asked before each attempt): its records'
    /// offsets in order, or why not.
    fn produce<'a>(
        &'a self,
        batch: EncodedBatch,
        stamp: Option<&'a Stamp>,
    ) -> BoxFuture<'a, Result<Vec<i64>, ClientError>>;

    /// Whether the topic still exists, after a failed batch.
    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, ClientError>>;

    /// The partition leader's `host:port` as last known, for messages.
    fn leader(&self) -> Option<String>;
}

impl PartitionProduce for PartitionClient {
    fn produce<'a>(
        &'a self,
        batch: EncodedBatch,
        stamp: Option<&'a Stamp>,
    ) -> BoxFuture<'a, Result<Vec<i64>, ClientError>> {
        Box::pin(async move {
            match stamp {
                Some(stamp) => self.produce_as(batch, |a| stamp.identity(a)).await,
                None => self.produce_encoded(batch).await,
            }
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

/// Where a record's [`Delivery`] goes: the producer's one channel, under
/// the caller's tag (the batched path), or the record's own future
/// ([`FutureProducer`](super::FutureProducer)).
#[derive(Debug)]
pub(super) struct Tag {
    pub(super) id: u64,
    pub(super) reply: Option<oneshot::Sender<Delivery>>,
}

impl From<u64> for Tag {
    fn from(id: u64) -> Self {
        Self { id, reply: None }
    }
}

/// A record on its way to a partition task.
pub(super) struct Pending {
    pub(super) tag: Tag,
    pub(super) record: Record,
    /// When it was queued, for a record that found its queue empty: it may
    /// start a batch, and a batch's linger counts from its first record
    /// (as librdkafka's `linger.ms`), not from when the partition task
    /// gets to it after the previous batch's acknowledgement.
    pub(super) queued_at: Option<Instant>,
}

/// Sends one partition's batches.
pub(super) struct PartitionTask {
    pub(super) client: Arc<dyn PartitionProduce>,
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) linger: Duration,
    pub(super) batch_bytes: usize,
    /// The largest batch the topic stores (its `max.message.bytes`).
    pub(super) max_batch_bytes: usize,
    pub(super) compression: Compression,
    pub(super) delivery_timeout: Duration,
    /// The idempotent producer's id and epoch; `None` without idempotence.
    pub(super) producer_id: Option<ProducerId>,
    /// The transaction's id, for a transactional producer.
    pub(super) transactional_id: Option<String>,
    pub(super) reports: mpsc::UnboundedSender<Delivery>,
    pub(super) batches_sent: Arc<AtomicU64>,
    pub(super) stale: Arc<Notify>,
    /// The producer's room for records held, given back for each batch
    /// once it has reported (see `ProducerConfig::buffer_bytes`).
    pub(super) memory: Arc<Semaphore>,
}

/// Where a batch goes: sent (as an idempotent producer when it has a
/// [`Stamp`]), or abandoned unsent.
enum Dispatch {
    Send(Option<Stamp>),
    Abandon,
}

/// A batch's place among its partition's batches.
struct Order {
    /// Until the batches before it have reported.
    settled: Settled,
    /// Batches of the partition reported so far.
    reported: Arc<watch::Sender<u64>>,
    /// Whether a batch of the partition failed.
    failed: watch::Receiver<bool>,
    failed_tx: Arc<watch::Sender<bool>>,
    /// Its room among the batches on their way.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl PartitionTask {
    pub(super) async fn run(self, mut queue: mpsc::Receiver<Pending>) {
        let task = Arc::new(self);
        let in_flight = Arc::new(Semaphore::new(if task.producer_id.is_some() {
            IDEMPOTENT_IN_FLIGHT
        } else {
            1
        }));
        let (failed_tx, failed) = watch::channel(false);
        let failed_tx = Arc::new(failed_tx);
        // Each batch reports after the one before it has: deliveries keep
        // the partition's order however the acknowledgements come.
        let reported = Arc::new(watch::channel(0_u64).0);
        let mut batches: u64 = 0;
        // Records of the partition dispatched so far, for sequence numbers.
        let mut records: u64 = 0;
        let sequencing = task.producer_id.map(|id| {
            Arc::new(Sequencing::new(
                id,
                task.transactional_id.clone(),
                &task.topic,
                task.partition,
            ))
        });
        // Records taken from the queue that did not fit the last batch.
        let mut carry: VecDeque<Pending> = VecDeque::new();
        let mut ratio = Ratio::FIRST;
        let mut closed = false;
        loop {
            let first = match carry.pop_front() {
                Some(p) => p,
                None if closed => break,
                None => match queue.recv().await {
                    Some(p) => p,
                    None => break,
                },
            };
            let limit = ratio.plain_limit(task.batch_bytes, task.compression);
            let (batch, held, queue_closed) =
                task.collect(first, limit, &mut carry, &mut queue).await;
            closed |= queue_closed;
            let batch = task.encode(batch, held, &mut carry, &mut ratio);
            task.batches_sent.fetch_add(1, Ordering::Relaxed);
            // Never closed: acquiring cannot fail.
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                break;
            };
            let settled = Settled {
                reported: reported.subscribe(),
                batch: batches,
            };
            batches += 1;
            let dispatch = if *failed.borrow() {
                Dispatch::Abandon
            } else {
                let stamp = sequencing.as_ref().map(|s| Stamp {
                    sequencing: Arc::clone(s),
                    first: records,
                    settled: settled.clone(),
                    failed: failed.clone(),
                    stamped: AtomicU64::new(0),
                });
                records += batch.tags.len() as u64;
                Dispatch::Send(stamp)
            };
            let (failed, failed_tx) = (failed.clone(), Arc::clone(&failed_tx));
            let mut delivery = Box::pin(Arc::clone(&task).deliver(
                batch,
                dispatch,
                Order {
                    settled,
                    reported: Arc::clone(&reported),
                    failed,
                    failed_tx,
                    _permit: permit,
                },
            ));
            // Its first poll queues the request on the leader's
            // connection, so batches go out in their sequence order (a
            // batch that overtook another would be refused and retried).
            if futures::poll!(delivery.as_mut()).is_pending() {
                tokio::spawn(delivery);
            }
            // The first batch goes alone: a leader with no state for this
            // producer takes any sequence as its start, so a second batch
            // that reached it while the first was refused (a broker that
            // had not yet taken up a new topic's leadership) would be
            // appended before it, and the first never after.
            if batches == 1 && task.producer_id.is_some() {
                let _ = reported.subscribe().wait_for(|&r| r >= 1).await;
            }
            if closed && carry.is_empty() {
                break;
            }
        }
        let _ = reported.subscribe().wait_for(|&r| r >= batches).await;
    }

    /// A batch starting with `first`: records (from `carry`, then the
    /// queue) until they reach `limit` bytes, the linger after the first
    /// has passed, or the queue closes; a record that does not fit goes
    /// back to the front of `carry`. Returns the batch, its bytes (in
    /// [`record_size`]'s estimate) and whether the queue closed.
    async fn collect(
        &self,
        first: Pending,
        limit: usize,
        carry: &mut VecDeque<Pending>,
        queue: &mut mpsc::Receiver<Pending>,
    ) -> (Vec<Pending>, usize, bool) {
        let mut bytes = record_size(&first.record);
        // tokio's timers fire on the first millisecond tick at or after
        // their deadline; half a millisecond early centres that on the
        // linger instead of adding 0-1 ms to it.
        let deadline = (first.queued_at.unwrap_or_else(Instant::now) + self.linger)
            .checked_sub(TIMER_TICK / 2)
            .unwrap_or_else(Instant::now);
        let mut batch = vec![first];
        let mut closed = false;
        while bytes < limit {
            let next = match carry.pop_front() {
                Some(p) => Some(p),
                None => match queue.try_recv() {
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
                },
            };
            let Some(next) = next else { break };
            let size = record_size(&next.record);
            if bytes + size > limit {
                carry.push_front(next);
                break;
            }
            bytes += size;
            batch.push(next);
        }
        (batch, bytes, closed)
    }

    /// Writes and compresses `batch`. One that comes out larger than the
    /// broker takes (the ratio of the batch before it was too hopeful) is
    /// cut, and its tail goes back to the front of `carry` for the next
    /// batch; nothing has been sent. The ratio is updated from the batch.
    /// `held`: the batch's bytes, as [`collect`](Self::collect) counted.
    fn encode(
        &self,
        batch: Vec<Pending>,
        mut held: usize,
        carry: &mut VecDeque<Pending>,
        ratio: &mut Ratio,
    ) -> Ready {
        let mut tags = Vec::with_capacity(batch.len());
        let mut records: Vec<Record> = batch
            .into_iter()
            .map(|p| {
                tags.push(p.tag);
                p.record
            })
            .collect();
        loop {
            let encoded = EncodedBatch::encode(&records, self.compression);
            let wire = match &encoded {
                Ok(batch) => batch.len(),
                Err(_) => 0,
            };
            if wire > self.max_batch_bytes && records.len() > 1 {
                // Aim a tenth below the limit: records differ.
                let keep = (records.len() * self.max_batch_bytes / wire * 9 / 10).max(1);
                debug!(
                    topic = self.topic.as_str(),
                    partition = self.partition,
                    records = records.len(),
                    wire,
                    keep,
                    "batch too large once compressed; cut"
                );
                let rest = records.split_off(keep);
                let rest_tags = tags.split_off(keep);
                held -= rest.iter().map(record_size).sum::<usize>();
                for (tag, record) in rest_tags.into_iter().zip(rest).rev() {
                    carry.push_front(Pending {
                        tag,
                        record,
                        queued_at: None,
                    });
                }
                continue;
            }
            if encoded.is_ok() {
                ratio.observe(wire, held);
            }
            let payload = records
                .iter()
                .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len))
                .sum();
            return Ready {
                tags,
                batch: encoded.map_err(ClientError::from),
                payload,
                held,
            };
        }
    }

    /// Sends (or abandons) a batch and reports its records once the batch
    /// before it (`previous`) has reported. A batch still on its way when
    /// an earlier one fails is not waited for: it cannot be appended after
    /// a gap in the sequence, and without idempotence it is never on its
    /// way with another.
    async fn deliver(self: Arc<Self>, batch: Ready, dispatch: Dispatch, order: Order) {
        let held = batch.held;
        let Order {
            settled,
            reported,
            mut failed,
            failed_tx,
            _permit,
        } = order;
        self.report_batch(batch, dispatch, settled, &mut failed, &failed_tx)
            .await;
        self.memory.add_permits(held);
        reported.send_modify(|r| *r += 1);
    }

    async fn report_batch(
        &self,
        batch: Ready,
        dispatch: Dispatch,
        settled: Settled,
        failed: &mut watch::Receiver<bool>,
        failed_tx: &watch::Sender<bool>,
    ) {
        let Ready {
            tags,
            batch,
            payload,
            ..
        } = batch;
        let n = tags.len();
        let abandoned = matches!(dispatch, Dispatch::Abandon);
        let outcome = match dispatch {
            Dispatch::Abandon => None,
            Dispatch::Send(stamp) => tokio::select! {
                biased;
                sent = self.send(batch, n, payload, stamp.as_ref()) => Some(sent),
                _ = failed.wait_for(|f| *f) => None,
            },
        };
        settled.wait().await;
        let result = match outcome {
            Some(Ok(offsets)) => {
                for (tag, offset) in tags.into_iter().zip(offsets) {
                    self.report(tag, Ok(offset));
                }
                return;
            }
            Some(Err(error)) => {
                failed_tx.send_replace(true);
                error
            }
            None if abandoned => Arc::new(ProduceError::Abandoned {
                topic: self.topic.clone(),
                partition: self.partition,
            }),
            None => Arc::new(ProduceError::Unconfirmed {
                topic: self.topic.clone(),
                partition: self.partition,
            }),
        };
        for tag in tags {
            self.report(tag, Err(Arc::clone(&result)));
        }
    }

    fn report(&self, tag: Tag, result: Result<i64, Arc<ProduceError>>) {
        let delivery = Delivery {
            tag: tag.id,
            partition: self.partition,
            result,
        };
        // A caller that dropped its future or its receiver no longer asks.
        let _ = match tag.reply {
            Some(reply) => reply.send(delivery).ok(),
            None => self.reports.send(delivery).ok(),
        };
    }

    /// Sends one batch within the delivery timeout.
    /// `n` records of `bytes` keys and values, in `batch`, or why they
    /// could not be written.
    async fn send(
        &self,
        batch: Result<EncodedBatch, ClientError>,
        n: usize,
        bytes: usize,
        stamp: Option<&Stamp>,
    ) -> Result<Vec<i64>, Arc<ProduceError>> {
        let batch = batch.map_err(|e| self.failed(SendFailure::from(e), n))?;
        let started = Instant::now();
        debug!(
            topic = self.topic.as_str(),
            partition = self.partition,
            records = n,
            first_record = stamp.map(|s| s.first),
            "sending batch"
        );
        let sent = tokio::time::timeout(self.delivery_timeout, self.client.produce(batch, stamp))
            .await
            .map_err(|_| SendFailure::NoAcknowledgement {
                timeout: self.delivery_timeout,
            });
        // UNKNOWN_TOPIC_OR_PARTITION is retried (a broker may learn of a
        // partition late) until the deadline; then a deleted topic is
        // named as the reason.
        let cause = match sent {
            Ok(Ok(offsets)) => {
                // One registry lookup per acknowledged request, which
                // took a round trip to the broker.
                let metrics = crate::metrics::global();
                metrics.produce.observe(started.elapsed());
                metrics
                    .output(&TopicPartition::new(self.topic.as_str(), self.partition))
                    .produced(n, bytes);
                return Ok(offsets);
            }
            Ok(Err(e)) => self.deleted_or(e.into()).await,
            Err(e) => self.deleted_or(e).await,
        };
        Err(self.failed(cause, n))
    }

    /// The error of a batch of `n` records that failed for `cause`, after
    /// a warning, its count in the metrics, and a metadata refresh.
    fn failed(&self, cause: SendFailure, n: usize) -> Arc<ProduceError> {
        let error = Arc::new(ProduceError::Send {
            topic: self.topic.clone(),
            partition: self.partition,
            leader: self.client.leader(),
            cause,
        });
        warn!(error = %crate::ErrorChain(&*error), records = n, "batch failed");
        crate::metrics::global().error(crate::metrics::ErrorKind::Produce);
        self.stale.notify_one();
        error
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
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
