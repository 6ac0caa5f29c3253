//! Exactly-once output for `weir pipe --exactly-once`: a transactional
//! producer per input partition (a lane), as Kafka Streams' first
//! exactly-once mode has one per task.
//!
//! A lane's transactional id names the group and its input partition, so
//! whichever process reads that partition next (a restart, a replacement,
//! another member) takes the same id: its InitProducerId fences every
//! earlier producer of the id and aborts the transaction one left open.
//! A transaction holds the lane's output records and the commit of its
//! input position in the offsets store; the two become visible to
//! `read_committed` readers together, or not at all.
//!
//! A transaction opens with the lane's first record after a commit: every
//! partition of the output topic joins it then (records are placed by
//! their key, and a partition must join before a batch goes to it), and
//! the store's partition joins at the commit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;
use tokio::sync::mpsc;

use super::PipeError;
use crate::job::{JobError, check_conflicts};
use crate::kafka::transaction::Transactions;
use crate::offsets::{GroupSession, OffsetsError, StoreWriter};
use crate::produce::producer::{Delivery, ProduceRecord, Producer, ProducerConfig};
use crate::{ConnectionConfig, ErrorChain, TopicPartition};

/// The transactional id of `group`'s lane for `partition`.
pub fn transactional_id(group: &str, partition: &TopicPartition) -> String {
    format!("weir:{group}:{}-{}", partition.topic, partition.partition)
}

/// What an exactly-once pipe's lanes write to.
#[derive(Debug, Clone)]
pub struct LanePlan {
    /// The output topic.
    pub topic: String,
    /// Its partition count.
    pub partitions: i32,
    /// Batching and compression.
    pub producer: ProducerConfig,
    /// How long the coordinator lets a transaction stay open.
    pub transaction_timeout: Duration,
}

/// The output of an exactly-once pipe: a lane per input partition.
pub struct Lanes {
    topic: String,
    lanes: BTreeMap<TopicPartition, Lane>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("topic", &self.topic)
            .field("lanes", &self.lanes.len())
            .finish()
    }
}

/// One input partition's transactional producer.
struct Lane {
    transactions: Transactions,
    producer: Producer,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    /// Its writes to the offsets store.
    store: StoreWriter,
    /// Records handed to the producer; `written` of them acknowledged.
    handed: u64,
    written: u64,
}

impl Lanes {
    /// Starts a transactional producer for each of `inputs`, writing as
    /// `plan` says: each fences the earlier producers of its id, and what
    /// they left open is aborted before this returns. Call it before
    /// reading the group's commits, so that none is still in an open
    /// transaction.
    ///
    /// # Errors
    ///
    /// A coordinator could not be reached or refused, or the output topic
    /// could not be opened.
    pub async fn open(
        client: Arc<Client>,
        connection: &ConnectionConfig,
        group: &str,
        plan: &LanePlan,
        inputs: &[TopicPartition],
    ) -> Result<Self, PipeError> {
        let mut lanes = BTreeMap::new();
        for input in inputs {
            let id = transactional_id(group, input);
            let transactions =
                Transactions::init(connection, &id, plan.transaction_timeout).await?;
            let producer_id = transactions.producer_id();
            let (producer, deliveries) = Producer::new(
                Arc::clone(&client),
                &plan.topic,
                plan.partitions,
                ProducerConfig {
                    producer_id: Some(producer_id),
                    transactional_id: Some(id.clone()),
                    ..plan.producer.clone()
                },
            )
            .await
            .map_err(|e| PipeError::Produce(Arc::new(e)))?;
            lanes.insert(
                input.clone(),
                Lane {
                    transactions,
                    producer,
                    deliveries,
                    store: StoreWriter::new(&id, producer_id),
                    handed: 0,
                    written: 0,
                },
            );
        }
        Ok(Self {
            topic: plan.topic.clone(),
            lanes,
        })
    }

    /// Records acknowledged by the output topic, over every lane.
    pub fn written(&self) -> u64 {
        self.lanes.values().map(|l| l.written).sum()
    }

    /// Hands `record`, read from `input`, to its lane's producer, opening
    /// a transaction first when none is open.
    ///
    /// # Errors
    ///
    /// The transaction could not be opened (fenced), or the producer
    /// refused the record.
    pub(super) async fn send(
        &mut self,
        input: &TopicPartition,
        record: ProduceRecord,
    ) -> Result<(), PipeError> {
        let Some(lane) = self.lanes.get_mut(input) else {
            return Err(PipeError::NoLane(input.clone()));
        };
        if !lane.transactions.is_open() {
            let topic = self.topic.as_str();
            let partitions = lane.producer.partitions();
            lane.transactions
                .add((0..partitions).map(|p| (topic, p)))
                .await?;
        }
        lane.producer
            .send(lane.handed, record)
            .await
            .map_err(|e| PipeError::Produce(Arc::new(e)))?;
        lane.handed += 1;
        Ok(())
    }

    /// Takes the acknowledgements that have come, so they never pile up
    /// between commits.
    ///
    /// # Errors
    ///
    /// A record was refused by the output topic.
    pub(super) fn poll(&mut self) -> Result<(), PipeError> {
        for lane in self.lanes.values_mut() {
            while let Ok(delivery) = lane.deliveries.try_recv() {
                lane.delivered(delivery)?;
            }
        }
        Ok(())
    }

    /// Commits each lane whose position moved: waits until the output
    /// acknowledged its records, writes its position to the store inside
    /// its transaction, and commits the transaction. Returns the number
    /// of transactions committed.
    ///
    /// # Errors
    ///
    /// A record was refused, the store did not take the commit, another
    /// instance commits these partitions under `exclusive`, or the
    /// coordinator refused (fenced by a newer producer of the id).
    pub(super) async fn commit(
        &mut self,
        session: &mut GroupSession,
        positions: &BTreeMap<TopicPartition, i64>,
        exclusive: bool,
    ) -> Result<u64, PipeError> {
        let store_topic = session.store().topic().to_owned();
        let store_partition = session.store().partition_for(session.group());
        let due: Vec<(&TopicPartition, i64, &mut Lane)> = self
            .lanes
            .iter_mut()
            .filter_map(|(input, lane)| {
                let position = *positions.get(input)?;
                let moved = session.committed(input) != Some(position);
                (moved || lane.transactions.is_open()).then_some((input, position, lane))
            })
            .collect();
        // The lanes' transactions are independent: the store partition
        // joins each, and their acknowledgements are awaited, all at once;
        // the commits go to the store one after another (one session);
        // then every transaction ends at once.
        let mut due =
            futures::future::try_join_all(due.into_iter().map(|(input, position, lane)| {
                let store_topic = store_topic.as_str();
                async move {
                    lane.transactions
                        .add([(store_topic, store_partition)])
                        .await?;
                    lane.acknowledge().await?;
                    Ok::<_, PipeError>((input, position, lane))
                }
            }))
            .await?;
        for (input, position, lane) in &mut due {
            let position = BTreeMap::from([((*input).clone(), *position)]);
            let conflicts = match session.commit_as(&position, Some(&mut lane.store)).await {
                Ok(conflicts) => conflicts,
                Err(OffsetsError::Fenced {
                    transactional_id, ..
                }) => {
                    return Err(PipeError::Fenced {
                        id: transactional_id,
                    });
                }
                Err(e) => return Err(JobError::from(e).into()),
            };
            check_conflicts(session, conflicts, exclusive)?;
        }
        let committed = due.len() as u64;
        futures::future::try_join_all(
            due.into_iter()
                .map(|(_, _, lane)| async move { lane.transactions.end(true).await }),
        )
        .await?;
        Ok(committed)
    }

    /// Aborts every open transaction, so that `read_committed` readers of
    /// the output are not held up until the transaction timeout; after a
    /// failure, where nothing more is committed. Failures are logged.
    pub(super) async fn abort(&mut self) {
        for lane in self.lanes.values_mut() {
            if !lane.transactions.is_open() {
                continue;
            }
            match lane.transactions.end(false).await {
                Ok(()) => {}
                // A newer producer of the id aborted it already.
                Err(e) if e.fenced_id().is_some() => {}
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), "cannot abort the open transaction; the coordinator aborts it after its timeout")
                }
            }
        }
    }
}

impl Lane {
    /// Waits until the output acknowledged every record handed to it.
    async fn acknowledge(&mut self) -> Result<(), PipeError> {
        while self.written < self.handed {
            let Some(delivery) = self.deliveries.recv().await else {
                break;
            };
            self.delivered(delivery)?;
        }
        Ok(())
    }

    fn delivered(&mut self, delivery: Delivery) -> Result<(), PipeError> {
        match delivery.result {
            Ok(_) => {
                self.written += 1;
                Ok(())
            }
            Err(cause) if cause.is_fenced() => Err(PipeError::Fenced {
                id: self.transactions.id().to_owned(),
            }),
            Err(cause) => Err(PipeError::Produce(cause)),
        }
    }
}
