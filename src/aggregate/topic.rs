//! The `--to-topic` output of `weir count`: found, or created compacted and
//! replicated, a producer for it, and rows written to it.

use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;
use tokio::sync::mpsc;

use super::{CountError, Row};
use crate::ConnectionConfig;
use crate::kafka::admin::{Admin, AdminError, NewTopic};
use crate::kafka::idempotence::{ProducerIdError, init_producer_id};
use crate::produce::producer::{Delivery, ProduceError, ProduceRecord, Producer, ProducerConfig};

/// Rows also go to a topic, one record per (window, key).
#[derive(Debug)]
pub struct OutputTopic {
    topic: String,
    producer: Producer,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl OutputTopic {
    /// Rows to `topic` through `producer`, whose delivery reports are
    /// `deliveries`.
    pub fn new(
        topic: &str,
        producer: Producer,
        deliveries: mpsc::UnboundedReceiver<Delivery>,
    ) -> Self {
        Self {
            topic: topic.to_owned(),
            producer,
            deliveries,
        }
    }

    /// Produces `rows` and waits until every one is acknowledged.
    pub(super) async fn emit(&mut self, rows: &[Row]) -> Result<(), CountError> {
        let failed = |cause: RowsRefused| CountError::Produce {
            topic: self.topic.clone(),
            cause,
        };
        let mut sent = 0;
        for row in rows {
            let record = ProduceRecord {
                key: Some(row.topic_key()),
                value: Some(row.to_json()),
                headers: Vec::new(),
                timestamp_ms: row.window_start,
                partition: None,
            };
            self.producer
                .send(sent, record)
                .await
                .map_err(|e| failed(RowsRefused::Send(e)))?;
            sent += 1;
        }
        for _ in 0..sent {
            match self.deliveries.recv().await {
                Some(Delivery { result: Ok(_), .. }) => {}
                Some(Delivery { result: Err(e), .. }) => {
                    return Err(failed(RowsRefused::Delivery(e)));
                }
                None => return Err(failed(RowsRefused::Stopped)),
            }
        }
        Ok(())
    }
}

/// Why the output topic did not take the rows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RowsRefused {
    /// A row could not be sent.
    #[error(transparent)]
    Send(ProduceError),
    /// A row was not acknowledged.
    #[error(transparent)]
    Delivery(Arc<ProduceError>),
    /// The producer stopped before acknowledging every row.
    #[error("the producer stopped")]
    Stopped,
}

/// Errors opening the output topic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputTopicError {
    /// The topic could not be found or created.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Its producer could not start.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// No producer id for its idempotent producer.
    #[error(transparent)]
    ProducerId(#[from] ProducerIdError),
}

/// The producer for output topic `name`; creates the topic (compacted, as
/// many partitions as `input`, the first topic counted, replicated as the
/// offsets store) when it is missing.
///
/// # Errors
///
/// The topic cannot be described or created, or its producer cannot
/// start.
pub async fn open_output_topic(
    client: &Arc<Client>,
    config: &ConnectionConfig,
    name: &str,
    input: Option<&str>,
) -> Result<OutputTopic, OutputTopicError> {
    let mut admin = Admin::connect(config).await?;
    let partitions = match admin.partition_count(name).await {
        Ok(n) => n,
        Err(AdminError::UnknownTopic { .. }) => {
            let partitions = match input {
                Some(topic) => admin.partition_count(topic).await?,
                None => 1,
            };
            let partitions = i32::try_from(partitions).unwrap_or(1);
            // Replicated as the offsets store: a checkpoint commits only
            // after its rows are acknowledged here, so a broker loss must
            // neither lose them nor stop the job.
            let brokers = admin.broker_count().await?;
            let topic = NewTopic::compacted_replicated(name, partitions, brokers);
            if admin.create_topic_if_missing(&topic).await? {
                tracing::info!(
                    topic = name,
                    partitions,
                    "created the output topic (compacted)"
                );
            }
            admin.partition_count(name).await?
        }
        Err(e) => return Err(e.into()),
    };
    let producer_config = ProducerConfig {
        linger: Duration::from_millis(1),
        delivery_timeout: config.timeout,
        producer_id: Some(init_producer_id(config).await?),
        ..ProducerConfig::default()
    };
    let (producer, deliveries) = Producer::new(
        Arc::clone(client),
        name,
        i32::try_from(partitions).unwrap_or(1),
        producer_config,
    )
    .await?;
    Ok(OutputTopic::new(name, producer, deliveries))
}
