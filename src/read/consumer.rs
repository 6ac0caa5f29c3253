//! Explicit per-partition consumers: one fetch task per assigned partition,
//! merged into one bounded stream for the caller.
//!
//! rskafka reads one partition at a time and nothing more. [`Consumer`]
//! resolves where each assigned partition starts and stops
//! ([`start`](super::start): a committed offset or a [`StartOffset`](super::StartOffset),
//! clamped to the partition's watermarks, and an [`Until`]), and runs one
//! [`fetch`](super::fetch) task per partition that reads it with a long
//! poll and retries a lost broker until
//! [`ConsumerConfig::retry_timeout`]. Records of one partition arrive in
//! offset order; partitions interleave.
//!
//! The stream is bounded: tasks wait while the caller is behind, so memory
//! stays at a few fetches per partition. The fetch side is the small
//! [`PartitionFetch`] trait, so the loop is tested without a broker.
//!
//! Positions are "next offset to read": the caller that commits progress
//! takes `last.offset + 1` of the records it has written, or the
//! `next_offset` of [`ConsumerEvent::Reached`], or the start of a
//! partition it has seen nothing from ([`Consumer::positions`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rskafka::client::Client;
use rskafka::client::partition::UnknownTopicHandling;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::TopicPartition;
use crate::read::assign::Assignment;
use crate::read::config::ConsumerConfig;
use crate::read::error::ConsumeError;
use crate::read::event::ConsumerEvent;
use crate::read::fetch::{PartitionFetch, PartitionReader, PartitionTask, open_partition};
use crate::read::position::Until;
use crate::read::start::{PartitionPosition, resolve};

/// Opens `a`'s partition for reading.
async fn reader(
    client: &Client,
    a: &Assignment,
    config: &ConsumerConfig,
) -> Result<PartitionReader, ConsumeError> {
    // The partitions were just read from the metadata, so they exist.
    // Each broker learns of new topics and partitions on its own, a
    // little after the controller: the one asked next may not know them
    // yet, and answers UNKNOWN_TOPIC_OR_PARTITION, which the Java client
    // retries as any stale metadata. Once open, the leader knows the
    // partition: an unknown topic from then on is reported at once, to be
    // told apart from a deleted one (`PartitionTask::run`).
    let mut pc = open_partition(client, &a.topic, a.partition, config.retry_timeout).await?;
    pc.set_unknown_topic_handling(UnknownTopicHandling::Error);
    // The fetch loop retries under the consumer's deadline, and sees
    // (counts, reports) each failed attempt.
    pc.set_caller_retries(true);
    Ok(PartitionReader {
        client: pc,
        isolation: config.isolation,
    })
}

/// Checks `assignments` against the cluster's metadata: a topic that does
/// not exist is [`ConsumeError::UnknownTopic`] at once, as from
/// [`assign`](crate::read::assign), rather than a leader not found at the
/// end of the retry timeout.
async fn known(client: &Client, assignments: &[Assignment]) -> Result<(), ConsumeError> {
    if assignments.is_empty() {
        return Ok(());
    }
    let mut names: Vec<&str> = assignments.iter().map(|a| &*a.topic).collect();
    names.dedup();
    let topics = crate::read::assign::topics_with(client, &names).await?;
    check_known(assignments, |name| {
        topics
            .iter()
            .find(|t| t.name == name)
            .map(|t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
    })
}

/// The first of `assignments` whose topic `partitions_of` does not know
/// ([`ConsumeError::UnknownTopic`]) or whose partition is beyond its
/// count ([`ConsumeError::PartitionOutOfRange`]), as `assign` reports them.
fn check_known(
    assignments: &[Assignment],
    partitions_of: impl Fn(&str) -> Option<i32>,
) -> Result<(), ConsumeError> {
    for a in assignments {
        let Some(partitions) = partitions_of(&a.topic) else {
            return Err(ConsumeError::UnknownTopic {
                topic: a.topic.to_string(),
            });
        };
        if !(0..partitions).contains(&a.partition) {
            return Err(ConsumeError::PartitionOutOfRange {
                topic: a.topic.to_string(),
                partition: a.partition,
                partitions,
            });
        }
    }
    Ok(())
}

/// A running consumer: read its events with [`next`](Self::next).
///
/// Partitions can be added ([`add`](Self::add)) and removed
/// ([`remove`](Self::remove)) while it runs, as a cooperative rebalance
/// moves them; the others read on.
#[derive(Debug)]
pub struct Consumer {
    events: mpsc::Receiver<ConsumerEvent>,
    /// Events taken off the stream while partitions were removed, for
    /// the partitions still read.
    pending: VecDeque<ConsumerEvent>,
    /// The sending side, for partitions added later; weak, so that the
    /// stream ends once every task has.
    sender: mpsc::WeakSender<ConsumerEvent>,
    /// Every partition was removed: the stream waits for more rather
    /// than ending.
    emptied: bool,
    config: ConsumerConfig,
    positions: Vec<PartitionPosition>,
    /// Each partition's task and the way to stop it.
    tasks: HashMap<TopicPartition, (watch::Sender<bool>, JoinHandle<()>)>,
    /// Set by a partition that failed, before its event is sent.
    failed: watch::Receiver<bool>,
    failed_tx: Arc<watch::Sender<bool>>,
}

impl Consumer {
    /// Opens a partition client for each assignment and starts reading.
    ///
    /// # Errors
    ///
    /// A partition that cannot be opened or whose watermarks cannot be
    /// read.
    pub async fn start(
        client: &Client,
        assignments: Vec<Assignment>,
        config: ConsumerConfig,
    ) -> Result<Self, ConsumeError> {
        known(client, &assignments).await?;
        let mut fetchers = Vec::with_capacity(assignments.len());
        for a in assignments {
            let reader = reader(client, &a, &config).await?;
            fetchers.push((a, reader));
        }
        Self::start_with(fetchers, config).await
    }

    /// Starts reading with the given fetch sides.
    ///
    /// # Errors
    ///
    /// A partition whose watermarks cannot be read.
    pub async fn start_with<F: PartitionFetch>(
        fetchers: Vec<(Assignment, F)>,
        config: ConsumerConfig,
    ) -> Result<Self, ConsumeError> {
        let resolved = Self::resolve(fetchers, &config).await?;
        let (sender, events) = mpsc::channel(config.buffered_batches.max(1));
        let (failed_tx, failed) = watch::channel(false);
        let mut consumer = Self {
            events,
            pending: VecDeque::new(),
            sender: sender.downgrade(),
            emptied: false,
            config,
            positions: Vec::new(),
            tasks: HashMap::new(),
            failed,
            failed_tx: Arc::new(failed_tx),
        };
        consumer.add(resolved);
        drop(sender);
        Ok(consumer)
    }

    /// Opens `assignments`' partitions and resolves where each starts, to
    /// be [`add`](Self::add)ed to a running consumer.
    ///
    /// # Errors
    ///
    /// A partition that cannot be opened or whose watermarks cannot be
    /// read.
    pub async fn prepare(
        client: &Client,
        assignments: Vec<Assignment>,
        config: &ConsumerConfig,
    ) -> Result<Vec<(PartitionPosition, PartitionReader)>, ConsumeError> {
        known(client, &assignments).await?;
        let mut fetchers = Vec::with_capacity(assignments.len());
        for a in assignments {
            let reader = reader(client, &a, config).await?;
            fetchers.push((a, reader));
        }
        Self::resolve(fetchers, config).await
    }

    /// Where each of `fetchers` starts and stops.
    async fn resolve<F: PartitionFetch>(
        fetchers: Vec<(Assignment, F)>,
        config: &ConsumerConfig,
    ) -> Result<Vec<(PartitionPosition, F)>, ConsumeError> {
        let resolved =
            futures::future::try_join_all(fetchers.iter().map(|(a, f)| resolve(a, f, config)))
                .await?;
        Ok(resolved
            .into_iter()
            .zip(fetchers)
            .map(|(position, (_, fetch))| (position, fetch))
            .collect())
    }

    /// Starts reading `partitions` (resolved by [`prepare`](Self::prepare))
    /// too. A partition read already is left as it is.
    pub fn add<F: PartitionFetch>(&mut self, partitions: Vec<(PartitionPosition, F)>) {
        let sender = match self.sender.upgrade() {
            Some(sender) => sender,
            // Every task had ended, and with them the stream: a new one,
            // after what the old one still holds.
            None => {
                let (sender, events) = mpsc::channel(self.config.buffered_batches.max(1));
                let mut old = std::mem::replace(&mut self.events, events);
                while let Ok(event) = old.try_recv() {
                    self.pending.push_back(event);
                }
                self.sender = sender.downgrade();
                sender
            }
        };
        for (position, fetch) in partitions {
            let at = position.topic_partition();
            if self.tasks.contains_key(&at) {
                continue;
            }
            let config = &self.config;
            let metrics = if config.metered {
                crate::metrics::global().input(&at)
            } else {
                Arc::default()
            };
            metrics.at(position.start, position.high);
            let (stop, stopped) = watch::channel(false);
            let task = PartitionTask {
                metrics,
                fetch,
                topic: Arc::clone(&position.topic),
                partition: position.partition,
                next: position.start,
                end: position.end,
                until_time: match config.until {
                    _ if config.follow.iter().any(|t| **t == *position.topic) => None,
                    Until::Timestamp(t) => Some(t),
                    _ => None,
                },
                config: config.clone(),
                events: sender.clone(),
                stopped,
                failed: Arc::clone(&self.failed_tx),
            };
            self.tasks.insert(at, (stop, tokio::spawn(task.run())));
            self.positions.push(position);
            self.emptied = false;
        }
    }

    /// Stops reading `partitions`, once their tasks have ended: no event
    /// of theirs comes after this (those not yet read are dropped); the
    /// other partitions' events keep their order.
    pub async fn remove(&mut self, partitions: &[TopicPartition]) {
        let mut ending = Vec::new();
        for at in partitions {
            if let Some((stop, task)) = self.tasks.remove(at) {
                let _ = stop.send(true);
                ending.push(task);
            }
        }
        self.positions
            .retain(|p| !partitions.contains(&p.topic_partition()));
        self.emptied = self.tasks.is_empty();
        let removed = |event: &ConsumerEvent| match event {
            ConsumerEvent::Records(records) => records
                .first()
                .is_some_and(|r| partitions.iter().any(|tp| r.topic_partition() == *tp)),
            ConsumerEvent::Reached {
                topic, partition, ..
            }
            | ConsumerEvent::CaughtUp {
                topic, partition, ..
            } => partitions
                .iter()
                .any(|tp| *tp.topic == **topic && tp.partition == *partition),
            ConsumerEvent::Failed(ConsumeError::Fetch { at, .. }) => partitions.contains(at),
            ConsumerEvent::Failed(_) => false,
        };
        self.pending.retain(|e| !removed(e));
        // A task may wait to send: the stream is read while they end.
        let mut ended = std::pin::pin!(futures::future::join_all(ending));
        loop {
            tokio::select! {
                _ = &mut ended => break,
                Some(event) = self.events.recv() => {
                    if !removed(&event) {
                        self.pending.push_back(event);
                    }
                }
            }
        }
        while let Ok(event) = self.events.try_recv() {
            if !removed(&event) {
                self.pending.push_back(event);
            }
        }
    }

    /// The partitions read now.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.positions
            .iter()
            .map(PartitionPosition::topic_partition)
            .collect()
    }

    /// Where each partition started (and stops), in assignment order.
    pub fn positions(&self) -> &[PartitionPosition] {
        &self.positions
    }

    /// Each partition's start offset: where a job's positions begin.
    pub fn starts(&self) -> std::collections::BTreeMap<TopicPartition, i64> {
        self.positions
            .iter()
            .map(|p| (p.topic_partition(), p.start))
            .collect()
    }

    /// The next event; `None` once every partition has stopped.
    pub async fn next(&mut self) -> Option<ConsumerEvent> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        if self.emptied {
            // Every partition was removed: nothing comes until some are
            // added.
            return std::future::pending().await;
        }
        self.events.recv().await
    }

    /// The next event if one is ready now.
    pub fn try_next(&mut self) -> Option<ConsumerEvent> {
        self.pending
            .pop_front()
            .or_else(|| self.events.try_recv().ok())
    }

    /// Completes once a partition has failed, while its
    /// [`ConsumerEvent::Failed`] may still wait behind other events: for a
    /// caller busy with something else (a commit) that must not outlast
    /// the consumer's deadline. Never completes while every partition
    /// reads.
    pub async fn failed(&mut self) {
        if self.failed.wait_for(|failed| *failed).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether a partition has failed ([`failed`](Self::failed)).
    pub fn has_failed(&self) -> bool {
        *self.failed.borrow()
    }

    /// Stops every partition task; events not yet read are dropped.
    pub async fn stop(mut self) {
        for (stop, _) in self.tasks.values() {
            let _ = stop.send(true);
        }
        self.events.close();
        while self.events.try_recv().is_ok() {}
        for (_, (_, task)) in self.tasks.drain() {
            if let Err(e) = task.await {
                if e.is_panic() {
                    warn!(error = %e, "a partition task panicked");
                }
            }
        }
    }
}

/// A consumer is a [`Stream`](futures::Stream) of its events, as
/// [`next`](Consumer::next) reads them: it ends once every partition has
/// stopped (at its [`Until`], or failed).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::StreamExt;
/// use weir::ConnectionConfig;
/// use weir::read::{Consumer, ConsumerConfig, ConsumerEvent, Selection, Until, assign};
///
/// let client = ConnectionConfig::new(["127.0.0.1:9092"]).client().await?;
/// let partitions = assign(&client, &Selection::new(["events"])).await?;
/// let config = ConsumerConfig::default().with_until(Until::End);
/// let consumer = Consumer::start(&client, partitions, config).await?;
/// // Records only, until every partition reached the end of its log.
/// let records: Vec<_> = consumer
///     .filter_map(|event| async move {
///         match event {
///             ConsumerEvent::Records(records) => Some(records),
///             _ => None,
///         }
///     })
///     .collect()
///     .await;
/// println!("{} batches", records.len());
/// # Ok(())
/// # }
/// ```
impl futures::Stream for Consumer {
    type Item = ConsumerEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ConsumerEvent>> {
        self.events.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(topic: &str, partition: i32) -> Assignment {
        Assignment {
            topic: Arc::from(topic),
            partition,
            start: None,
        }
    }

    #[test]
    fn an_assignment_of_an_unknown_topic_is_unknown_topic_as_from_assign() {
        let cluster = |name: &str| (name == "orders").then_some(3);
        assert!(check_known(&[at("orders", 0), at("orders", 2)], cluster).is_ok());
        let e = check_known(&[at("orders", 0), at("nosuch", 0)], cluster).unwrap_err();
        assert!(
            matches!(&e, ConsumeError::UnknownTopic { topic } if topic == "nosuch"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "topic \"nosuch\" does not exist");
        let e = check_known(&[at("orders", 3)], cluster).unwrap_err();
        assert_eq!(
            e.to_string(),
            "topic \"orders\" has 3 partitions, partition 3 is out of range"
        );
    }
}
