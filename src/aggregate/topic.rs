//! The `--to-topic` output of `weir count`: found, or created compacted and
//! replicated, a producer for it, and rows written to it.
//!
//! With `--exactly-once` the producer is transactional: a checkpoint's rows
//! and its commit of states and positions in the offsets store are one
//! Kafka transaction ([`OutputTopic::store_writer`] and
//! [`OutputTopic::commit_transaction`]). The transactional id names the
//! group and the input partitions, so a restart of the same instance
//! fences its predecessor and aborts what it left open.
//!
//! A member of a group opens its transactional output anew in each
//! generation, named after the generation's partitions, and its
//! transaction carries its positions to the group's offsets with its
//! generation ([`OutputTopic::commit_offsets`], KIP-447): a member that
//! lost its partitions in a rebalance cannot commit their rows or state.

use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;
use tokio::sync::mpsc;

use super::{CountError, Row};
use crate::ConnectionConfig;
use crate::kafka::admin::{Admin, AdminError, NewTopic};
use crate::kafka::idempotence::{ProducerIdError, init_producer_id};
use crate::kafka::transaction::{GroupGeneration, TransactionError, Transactions};
use crate::offsets::StoreWriter;
use crate::produce::producer::{Delivery, ProduceError, ProduceRecord, Producer, ProducerConfig};

/// Rows also go to a topic, one record per (window, key).
#[derive(Debug)]
pub struct OutputTopic {
    rows: Sender,
    /// Across group members, exactly once: the partial aggregates, in the
    /// rows' transactions.
    partials: Option<Sender>,
    /// Exactly once: the producer's transactions and its writes to the
    /// offsets store.
    transaction: Option<(Transactions, StoreWriter)>,
}

/// A producer for one topic and its delivery reports: records sent, then
/// waited for until every one is acknowledged.
#[derive(Debug)]
pub(super) struct Sender {
    topic: String,
    producer: Producer,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl Sender {
    /// Produces `records` and waits until every one is acknowledged;
    /// `fenced_id` is the transactional id a fenced producer had.
    async fn send_all(
        &mut self,
        records: impl IntoIterator<Item = ProduceRecord>,
        fenced_id: Option<&str>,
    ) -> Result<(), CountError> {
        let failed = |topic: &str, cause: RowsRefused| CountError::Produce {
            topic: topic.to_owned(),
            cause,
        };
        let mut sent = 0;
        for record in records {
            self.producer
                .send(sent, record)
                .await
                .map_err(|e| failed(&self.topic, RowsRefused::Send(e)))?;
            sent += 1;
        }
        for _ in 0..sent {
            match self.deliveries.recv().await {
                Some(Delivery { result: Ok(_), .. }) => {}
                Some(Delivery { result: Err(e), .. }) => {
                    if let (true, Some(id)) = (e.is_fenced(), fenced_id) {
                        return Err(CountError::Fenced { id: id.to_owned() });
                    }
                    return Err(failed(&self.topic, RowsRefused::Delivery(e)));
                }
                None => return Err(failed(&self.topic, RowsRefused::Stopped)),
            }
        }
        Ok(())
    }

    /// Sends `partials` (internal partition, value) and waits for them.
    ///
    /// # Errors
    ///
    /// The internal topic did not take them.
    pub(super) async fn send_partials(
        &mut self,
        partials: Vec<(i32, Vec<u8>)>,
        fenced_id: Option<&str>,
    ) -> Result<(), CountError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let records = partials
            .into_iter()
            .map(|(partition, value)| ProduceRecord {
                key: None,
                value: Some(value),
                headers: Vec::new(),
                // Now, not the event time: the topic's retention counts from
                // when a partial was sent, however old its records.
                timestamp_ms: Some(now),
                partition: Some(partition),
            });
        Box::pin(self.send_all(records, fenced_id)).await
    }
}

/// The transactional id and timeout of an exactly-once output.
#[derive(Debug, Clone)]
pub struct TransactionPlan {
    /// The transactional id.
    pub id: String,
    /// How long the coordinator lets a transaction stay open.
    pub timeout: Duration,
}

/// The transactional id of `group`'s count over `partitions`: restarting
/// the same instance (the same partitions) takes the same id.
pub fn count_transactional_id(group: &str, partitions: &[crate::TopicPartition]) -> String {
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for p in partitions {
        by_topic.entry(&p.topic).or_default().push(p.partition);
    }
    let parts: Vec<String> = by_topic
        .into_iter()
        .map(|(topic, mut ps)| {
            ps.sort_unstable();
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{topic}-{}", ps.join(","))
        })
        .collect();
    format!("weir:{group}:count:{}", parts.join(";"))
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
            rows: Sender {
                topic: topic.to_owned(),
                producer,
                deliveries,
            },
            partials: None,
            transaction: None,
        }
    }

    /// Whether this output carries a count's partial aggregates (exactly
    /// once across group members).
    pub(super) fn carries_partials(&self) -> bool {
        self.partials.is_some()
    }

    /// Exactly once across group members: sends `partials` to the
    /// internal topic inside the open transaction (opening one).
    ///
    /// # Errors
    ///
    /// The coordinator refused, or the internal topic did not take them.
    pub(super) async fn send_partials(
        &mut self,
        partials: Vec<(i32, Vec<u8>)>,
    ) -> Result<(), CountError> {
        let Some(sender) = self.partials.as_mut() else {
            return Err(CountError::NoPartialsProducer);
        };
        let Some((transactions, _)) = &mut self.transaction else {
            return sender.send_partials(partials, None).await;
        };
        let topic = sender.topic.as_str();
        let mut added: Vec<i32> = partials.iter().map(|(p, _)| *p).collect();
        added.sort_unstable();
        added.dedup();
        transactions
            .add(added.iter().map(|&p| (topic, p)))
            .await
            .map_err(CountError::transaction)?;
        let id = transactions.id().to_owned();
        sender.send_partials(partials, Some(&id)).await
    }

    /// Whether rows and commits go in transactions.
    pub fn is_transactional(&self) -> bool {
        self.transaction.is_some()
    }

    /// Exactly once: adds the store's partition to the open transaction
    /// (opening one) and returns the writer its commit goes through.
    ///
    /// # Errors
    ///
    /// The coordinator refused (fenced, or the transaction timed out).
    pub(super) async fn store_writer(
        &mut self,
        store_topic: &str,
        store_partition: i32,
    ) -> Result<Option<&mut StoreWriter>, CountError> {
        let Some((transactions, writer)) = &mut self.transaction else {
            return Ok(None);
        };
        transactions
            .add([(store_topic, store_partition)])
            .await
            .map_err(CountError::transaction)?;
        Ok(Some(writer))
    }

    /// Exactly once: commits the open transaction, if any: the rows and
    /// the checkpoint written since become visible together.
    ///
    /// # Errors
    ///
    /// The coordinator refused (fenced, or the transaction timed out).
    pub(super) async fn commit_transaction(&mut self) -> Result<(), CountError> {
        match &mut self.transaction {
            Some((transactions, _)) => transactions
                .end(true)
                .await
                .map_err(CountError::transaction),
            None => Ok(()),
        }
    }

    /// Exactly once, as a group member: commits `positions` to the
    /// member's group offsets inside the open transaction.
    ///
    /// # Errors
    ///
    /// [`CountError::Rebalanced`] when the group's coordinator refused them
    /// for a past generation; the coordinators' other refusals.
    pub(super) async fn commit_offsets(
        &mut self,
        member: &GroupGeneration,
        positions: &[(crate::TopicPartition, i64)],
    ) -> Result<(), CountError> {
        let Some((transactions, _)) = &mut self.transaction else {
            return Ok(());
        };
        match transactions.commit_offsets(member, positions).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_stale_generation() => Err(CountError::Rebalanced {
                group: member.group.clone(),
                generation: member.generation,
            }),
            Err(e) => Err(CountError::transaction(e)),
        }
    }

    /// Exactly once: aborts the open transaction, if any, so that its rows
    /// and checkpoint are never read and the next owner of the partitions
    /// need not wait for its timeout. A failure (fenced: already aborted by
    /// a successor) is only logged.
    pub(super) async fn abort_open_transaction(&mut self) {
        if let Some((transactions, _)) = &mut self.transaction {
            if transactions.is_open() {
                match transactions.end(false).await {
                    Ok(()) => {
                        tracing::info!(id = transactions.id(), "aborted the open transaction")
                    }
                    Err(e) => tracing::debug!(
                        error = %crate::ErrorChain(&e),
                        "aborting the open transaction failed"
                    ),
                }
            }
        }
    }

    /// Produces `rows` and waits until every one is acknowledged.
    pub(super) async fn emit(&mut self, rows: &[Row]) -> Result<(), CountError> {
        let id = match &mut self.transaction {
            Some((transactions, _)) => {
                let topic = self.rows.topic.as_str();
                transactions
                    .add((0..self.rows.producer.partitions()).map(|p| (topic, p)))
                    .await
                    .map_err(CountError::transaction)?;
                Some(transactions.id().to_owned())
            }
            None => None,
        };
        let records = rows.iter().map(|row| ProduceRecord {
            key: Some(row.topic_key()),
            value: Some(row.to_json()),
            headers: Vec::new(),
            timestamp_ms: row.window_start,
            partition: None,
        });
        // Boxed: the producer's futures nest deep enough to pass the
        // compiler's layout query depth in the jobs that await this.
        Box::pin(self.rows.send_all(records, id.as_deref())).await
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
    /// Its transactional producer could not start.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
}

/// The producer for output topic `name`; creates the topic (compacted, as
/// many partitions as `input`, the first topic counted, replicated as the
/// offsets store) when it is missing. With `transaction`, the producer is
/// transactional: its start fences earlier producers of the id and aborts
/// what they left open, so call it before reading the group's commits.
/// With `partials` (the internal topic and its partitions) and a
/// transaction, it also carries a count's partial aggregates across
/// group members.
///
/// # Errors
///
/// The topic cannot be described or created, or its producer cannot
/// start.
pub async fn open_output_topic(
    client: Arc<Client>,
    config: &ConnectionConfig,
    name: &str,
    input: Option<&str>,
    transaction: Option<TransactionPlan>,
    partials: Option<(&str, i32)>,
) -> Result<OutputTopic, OutputTopicError> {
    let mut admin = Admin::connect(config).await?;
    let partitions = match admin.partition_count(name).await {
        Ok(n) => n,
        Err(AdminError::UnknownTopic { .. }) => {
            let input = match input {
                // The first topic a pattern matches now.
                Some(pattern) if crate::read::pattern::is_pattern(pattern) => {
                    let existing = admin.list_topics().await?;
                    crate::read::pattern::resolve(
                        &[pattern.to_owned()],
                        existing.iter().map(|t| t.topic.as_str()),
                    )
                    .ok()
                    .and_then(|topics| topics.into_iter().next())
                }
                other => other.map(str::to_owned),
            };
            let partitions = match input {
                Some(topic) => admin.partition_count(&topic).await?,
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
    let transactions = match &transaction {
        Some(plan) => Some(Box::pin(Transactions::init(config, &plan.id, plan.timeout)).await?),
        None => None,
    };
    let producer_config = ProducerConfig {
        linger: Duration::from_millis(1),
        delivery_timeout: config.timeout,
        producer_id: Some(match &transactions {
            Some(t) => t.producer_id(),
            None => init_producer_id(config).await?,
        }),
        transactional_id: transaction.map(|plan| plan.id),
        ..ProducerConfig::default()
    };
    // Exactly once, the partials go in the rows' transactions: a second
    // producer under the same id and epoch (sequences are per partition).
    let partials = match (partials, &transactions) {
        (Some((topic, n)), Some(_)) => {
            Some(Box::pin(sender(&client, topic, n, producer_config.clone())).await?)
        }
        _ => None,
    };
    let (producer, deliveries) = Box::pin(Producer::new(
        client,
        name,
        i32::try_from(partitions).unwrap_or(1),
        producer_config,
    ))
    .await?;
    let mut output = OutputTopic::new(name, producer, deliveries);
    output.partials = partials;
    output.transaction = transactions.map(|t| {
        let writer = StoreWriter::new(t.id(), t.producer_id());
        (t, writer)
    });
    Ok(output)
}

/// An idempotent producer for `topic`, of `partitions`, with `config`.
async fn sender(
    client: &Arc<Client>,
    topic: &str,
    partitions: i32,
    config: ProducerConfig,
) -> Result<Sender, OutputTopicError> {
    let (producer, deliveries) =
        Producer::new(Arc::clone(client), topic, partitions, config).await?;
    Ok(Sender {
        topic: topic.to_owned(),
        producer,
        deliveries,
    })
}

/// The producer of a count's partial aggregates across group members, to
/// the internal `topic` of `partitions`, when they do not go in the
/// output's transactions: idempotent, acknowledged by every in-sync
/// replica.
///
/// # Errors
///
/// No producer id, or the producer could not start.
pub(super) async fn open_partials(
    client: &Arc<Client>,
    config: &ConnectionConfig,
    topic: &str,
    partitions: i32,
) -> Result<Sender, OutputTopicError> {
    let producer_config = ProducerConfig {
        linger: Duration::from_millis(1),
        delivery_timeout: config.timeout,
        producer_id: Some(init_producer_id(config).await?),
        ..ProducerConfig::default()
    };
    sender(client, topic, partitions, producer_config).await
}
