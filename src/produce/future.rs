//! [`FutureProducer`]: the [`Producer`] as a library user holds it, shared
//! across tasks, each record's [`Delivery`] a future of its own.
//!
//! It is the same producer underneath (routing, batches per partition,
//! idempotence, the memory budget): records sent from every clone are
//! routed one at a time, in the order their `send`s are reached, and each
//! delivery goes straight to its record's future, with no table of tags
//! to look it up in.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use rskafka::client::Client;
use tokio::sync::{Mutex, oneshot};

use super::config::{ProduceRecord, ProducerConfig};
use super::error::{Delivery, ProduceError};
use super::partition::Tag;
use super::producer::Producer;

/// A producer for one topic that tasks share: [`Clone`] it, and
/// [`send`](Self::send) from each with `&self`.
///
/// `send` waits only for room in the producer's buffer (the
/// [`ProducerConfig::buffer_bytes`] budget); the [`DeliveryFuture`] it
/// returns resolves once the broker has the record, or once it failed.
/// Awaiting each delivery before the next `send` writes one record per
/// request; keep the futures and await them later (or in another task) to
/// let records share batches.
///
/// Dropping every clone without [`close`](Self::close) still sends what is
/// queued, in the background, and each record's future still resolves (as
/// long as the runtime runs); `close` is how to wait for that.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use weir::ConnectionConfig;
/// use weir::produce::{FutureProducer, ProduceRecord, ProducerConfig};
///
/// let connection = ConnectionConfig::new(["127.0.0.1:9092"]);
/// let client = Arc::new(connection.client().await?);
/// let producer = FutureProducer::new(client, "events", ProducerConfig::default()).await?;
/// let delivery = producer
///     .send(ProduceRecord::new("hello").with_key("user-7"))
///     .await?;
/// let offset = delivery.await.offset()?;
/// println!("written at offset {offset}");
/// producer.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FutureProducer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Shared with each record's future, for its error.
    topic: Arc<str>,
    /// `None` once closed.
    producer: Mutex<Option<Producer>>,
    /// The next record's number, its delivery's tag.
    next: AtomicU64,
}

impl FutureProducer {
    /// A producer for `topic`, whose partition count it reads from the
    /// cluster's metadata (and reads again while it runs, as
    /// [`Producer`] does).
    ///
    /// `config` says how to batch and compress; its defaults know nothing
    /// of the topic: [`topic_limits`](crate::produce::topic_limits) reads
    /// the topic's `max.message.bytes` and timestamp limits, and
    /// [`init_producer_id`](crate::kafka::idempotence::init_producer_id)
    /// makes it idempotent.
    ///
    /// # Errors
    ///
    /// [`ProduceError::UnknownTopic`] when the topic does not exist,
    /// [`ProduceError::Metadata`] when the metadata cannot be read, and
    /// [`ProduceError::Topic`] when a partition cannot be opened.
    pub async fn new(
        client: Arc<Client>,
        topic: &str,
        config: ProducerConfig,
    ) -> Result<Self, ProduceError> {
        let topics = client
            .list_topics()
            .await
            .map_err(|e| ProduceError::Metadata {
                topic: topic.to_owned(),
                cause: e.into(),
            })?;
        let partitions = topics
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
            .filter(|n| *n > 0)
            .ok_or_else(|| ProduceError::UnknownTopic {
                topic: topic.to_owned(),
            })?;
        // Deliveries go to each record's future; the channel stays empty.
        let (producer, _deliveries) = Producer::new(client, topic, partitions, config).await?;
        Ok(Self::from_producer(producer))
    }

    /// Shares `producer` (made with [`Producer::new`]): its own receiver
    /// gets nothing of what is sent from here.
    pub fn from_producer(producer: Producer) -> Self {
        Self {
            shared: Arc::new(Shared {
                topic: producer.topic().into(),
                producer: Mutex::new(Some(producer)),
                next: AtomicU64::new(0),
            }),
        }
    }

    /// The topic it writes to.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// Routes `record` to its partition and queues it, waiting for room in
    /// the buffer; returns the future of its [`Delivery`].
    ///
    /// # Errors
    ///
    /// A record that can never be sent (larger than the topic takes, a
    /// partition out of range, a create time the topic refuses, no key
    /// for a compacted topic), or a closed producer: the record is refused
    /// here and has no delivery.
    pub async fn send(&self, record: ProduceRecord) -> Result<DeliveryFuture, ProduceError> {
        let (reply, delivery) = oneshot::channel();
        let mut producer = self.shared.producer.lock().await;
        let producer = producer.as_mut().ok_or_else(|| ProduceError::Closed {
            topic: self.shared.topic.to_string(),
        })?;
        // Numbered under the lock: in the order records are queued.
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
        let tag = Tag {
            id,
            reply: Some(reply),
        };
        let partition = producer.enqueue(tag, record).await?;
        Ok(DeliveryFuture {
            delivery,
            id,
            partition,
            topic: Arc::clone(&self.shared.topic),
        })
    }

    /// Sends what is queued and waits until every record sent from any
    /// clone has its delivery; later sends fail with
    /// [`ProduceError::Closed`].
    pub async fn close(&self) {
        let mut producer = self.shared.producer.lock().await;
        if let Some(producer) = producer.as_mut() {
            producer.finish().await;
        }
        *producer = None;
    }
}

/// The future of one record's [`Delivery`], from
/// [`FutureProducer::send`]: its partition and offset, or why it was not
/// written.
#[derive(Debug)]
#[must_use = "a delivery says whether the record was written"]
pub struct DeliveryFuture {
    delivery: oneshot::Receiver<Delivery>,
    id: u64,
    partition: i32,
    topic: Arc<str>,
}

impl DeliveryFuture {
    /// The partition the record was routed to.
    pub fn partition(&self) -> i32 {
        self.partition
    }
}

impl Future for DeliveryFuture {
    type Output = Delivery;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Delivery> {
        Pin::new(&mut self.delivery).poll(cx).map(|got| {
            // Every queued record is reported; only a runtime shutting
            // down under its partition task drops the report.
            got.unwrap_or_else(|_| Delivery {
                tag: self.id,
                partition: self.partition,
                result: Err(Arc::new(ProduceError::Closed {
                    topic: self.topic.to_string(),
                })),
            })
        })
    }
}
