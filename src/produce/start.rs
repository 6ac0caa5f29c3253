//! A produce job's start, in the order it must come: the topic found (or
//! created) and its record timestamps learnt, the partition asked for
//! checked against it, the cluster reached, the transaction begun (every
//! partition in it from the start) or the idempotent producer's id had,
//! and the producer made.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::producer::{Delivery, ProduceError, Producer, ProducerConfig};
use super::topic::{TopicError, TopicPlan, prepare_topic};
use crate::kafka::admin::{Admin, AdminError};
use crate::kafka::connect::{ConnectError, ConnectionConfig};
use crate::kafka::idempotence::{ProducerIdError, producer_id};
use crate::kafka::transaction::{TransactionError, Transactions};

/// What a produce job writes to, and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducePlan {
    /// The topic, and whether to create it when missing.
    pub topic: TopicPlan,
    /// Every record to this partition (`--partition`), checked against
    /// the topic.
    pub partition: Option<i32>,
    /// Batching, compression and partitioning; its producer id and
    /// timestamps are filled in here.
    pub producer: ProducerConfig,
    /// Idempotent (the Java producer's default since 3.0).
    pub idempotence: bool,
    /// One transaction for the run under this id, open for at most
    /// `transaction_timeout`.
    pub transactional_id: Option<String>,
    /// How long the coordinator lets the transaction stay open.
    pub transaction_timeout: Duration,
}

impl ProducePlan {
    /// Records to `topic` as `producer` says, idempotent, without a
    /// transaction.
    pub fn new(topic: TopicPlan, producer: ProducerConfig) -> Self {
        Self {
            topic,
            partition: None,
            producer,
            idempotence: true,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// A producer ready for the job.
#[derive(Debug)]
pub struct Started {
    /// The producer.
    pub producer: Producer,
    /// Its delivery reports.
    pub deliveries: mpsc::UnboundedReceiver<Delivery>,
    /// The topic's partition count.
    pub partitions: i32,
    /// The run's transaction, begun, every partition in it.
    pub transaction: Option<Transactions>,
}

/// Why a produce job could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The topic could not be found or created.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The cluster's admin requests failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The partition asked for is not in the topic.
    #[error("topic \"{topic}\" has {}, --partition {partition} is out of range", crate::plural(*.partitions, "partition"))]
    PartitionOutOfRange {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many it has.
        partitions: i32,
    },
    /// The cluster could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The transaction could not begin.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// The idempotent producer's id could not be had.
    #[error(transparent)]
    ProducerId(#[from] ProducerIdError),
    /// The producer could not start.
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

/// Starts the producer `plan` asks for.
///
/// # Errors
///
/// The topic is missing (and not to be created), the partition out of
/// its range, the cluster unreachable, or the transaction, the producer
/// id or the producer refused.
pub async fn start(
    connection: &ConnectionConfig,
    plan: ProducePlan,
) -> Result<Started, StartError> {
    let mut admin = Admin::connect(connection).await?;
    let (partitions, limits) = prepare_topic(&mut admin, &plan.topic).await?;
    drop(admin);
    let topic = &plan.topic.name;
    // Out of range is a fact of the cluster (partitions can be added), not
    // of the command line: a runtime failure, as in `weir consume -p`.
    if let Some(partition) = plan.partition.filter(|p| !(0..partitions).contains(p)) {
        return Err(StartError::PartitionOutOfRange {
            topic: topic.clone(),
            partition,
            partitions,
        });
    }
    let client = connection.client().await?;
    // One transaction for the run: every partition of the topic is in it
    // from the start (a partition without records gets only the marker).
    let transaction = match &plan.transactional_id {
        Some(id) => {
            let mut transaction =
                Transactions::init(connection, id, plan.transaction_timeout).await?;
            transaction.add_partitions(topic, 0..partitions).await?;
            Some(transaction)
        }
        None => None,
    };
    let producer_id = match &transaction {
        Some(t) => Some(t.producer_id()),
        None => producer_id(connection, plan.idempotence).await?,
    };
    let config = ProducerConfig {
        timestamps: limits.timestamps,
        max_message_bytes: limits.max_message_bytes,
        keys_required: limits.compacted,
        producer_id,
        transactional_id: plan.transactional_id.clone(),
        ..plan.producer
    };
    let (producer, deliveries) = Producer::new(Arc::new(client), topic, partitions, config).await?;
    Ok(Started {
        producer,
        deliveries,
        partitions,
        transaction,
    })
}
