//! Kafka transactions for one producer (KIP-98): the transaction
//! coordinator of a transactional id (FindCoordinator, key type 1) gives
//! the producer id and a new epoch (InitProducerId), which fences every
//! earlier producer of that id and aborts what it left open; partitions
//! join the transaction before the first batch goes to them
//! (AddPartitionsToTxn), and EndTxn commits or aborts everything written
//! under it at once. Readers with `read_committed` see a transaction's
//! records only once it is committed.
//!
//! A group member's transaction can also carry the member's positions to
//! its group's offsets (AddOffsetsToTxn, then TxnOffsetCommit to the
//! group's coordinator with the member's generation, KIP-447): the group
//! coordinator refuses them from a member of a past generation, so a
//! member that lost its partitions in a rebalance (a zombie) cannot commit
//! the transaction that writes for them.
//!
//! Finding each coordinator and asking it again until it answers is
//! `coordinator`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId as WireProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use super::connect::{ConnectError, ConnectionConfig};
use super::idempotence::ProducerId;
use super::wire::{BrokerConnection, WireError, WireOptions};

mod coordinator;

pub(crate) use coordinator::COORDINATOR_CONNECT_TRY;
use coordinator::Coordinator;

/// TxnOffsetCommit above 4 stands for AddOffsetsToTxn too, on brokers with
/// transactions version 2 (KIP-890); weir sends AddOffsetsToTxn itself.
const CLIENT_TXN_OFFSET_COMMIT_MAX: i16 = 4;

/// AddPartitionsToTxn versions above 3 are between brokers (KIP-890).
const CLIENT_ADD_PARTITIONS_MAX: i16 = 3;

/// Why a transaction step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// No broker could be reached, or TLS or SASL failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The coordinator could not be asked.
    #[error("transactional id \"{id}\": {api}")]
    Wire {
        /// The transactional id.
        id: String,
        /// The request.
        api: &'static str,
        /// Why.
        #[source]
        source: WireError,
    },
    /// The coordinator refused.
    #[error("transactional id \"{id}\": {api} refused by the coordinator: {error}{}", fenced_hint(*.error))]
    Refused {
        /// The transactional id.
        id: String,
        /// The request.
        api: &'static str,
        /// The error code.
        error: ResponseError,
    },
    /// Retriable errors until the deadline.
    #[error("transactional id \"{id}\": no answer to {api} within {} (--timeout)", humantime::format_duration(*.timeout))]
    Timeout {
        /// The transactional id.
        id: String,
        /// The request.
        api: &'static str,
        /// The deadline.
        timeout: Duration,
    },
}

impl TransactionError {
    /// Whether the group's coordinator refused the member's offsets for
    /// its generation: a rebalance gave its partitions to another member.
    pub fn is_stale_generation(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                api: "TxnOffsetCommit",
                error: ResponseError::IllegalGeneration
                    | ResponseError::UnknownMemberId
                    | ResponseError::FencedInstanceId,
                ..
            }
        )
    }

    /// The transactional id, when the coordinator refused because a newer
    /// producer of it started (this one is fenced for good).
    pub fn fenced_id(&self) -> Option<&str> {
        match self {
            Self::Refused {
                id,
                error: ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch,
                ..
            } => Some(id),
            _ => None,
        }
    }
}

fn fenced_hint(error: ResponseError) -> &'static str {
    match error {
        ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch => {
            " (another producer with this transactional id started since)"
        }
        _ => "",
    }
}

/// A group member's place in its group, for offsets committed inside a
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupGeneration {
    /// The group.
    pub group: String,
    /// The generation the member was assigned its partitions in.
    pub generation: i32,
    /// The member's id in it.
    pub member_id: String,
    /// Its group instance id, when it is a static member.
    pub instance_id: Option<String>,
}

impl GroupGeneration {
    /// `member_id` of `group` in `generation`, a dynamic member.
    pub fn new(group: impl Into<String>, generation: i32, member_id: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            generation,
            member_id: member_id.into(),
            instance_id: None,
        }
    }

    /// A static member with this group instance id (KIP-345).
    #[must_use]
    pub fn with_instance_id(mut self, instance_id: impl Into<String>) -> Self {
        self.instance_id = Some(instance_id.into());
        self
    }
}

/// One producer's transactions, through its transactional id's
/// coordinator.
pub struct Transactions {
    wire: WireOptions,
    brokers: Vec<String>,
    timeout: Duration,
    id: String,
    coordinator: Option<BrokerConnection>,
    /// The coordinator of the group whose offsets go in transactions.
    group_coordinator: Option<(String, BrokerConnection)>,
    producer: ProducerId,
    /// Partitions in the open transaction.
    added: BTreeSet<(String, i32)>,
    /// Whether the open transaction holds a group's offsets.
    offsets_added: bool,
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("id", &self.id)
            .field("producer", &self.producer)
            .finish_non_exhaustive()
    }
}

impl Transactions {
    /// Finds the coordinator of `id` and gets a producer id and epoch
    /// from it: every earlier producer of `id` is fenced, and a
    /// transaction one left open is aborted before this returns.
    /// `transaction_timeout` is how long the coordinator lets a
    /// transaction stay open before it aborts it.
    ///
    /// # Errors
    ///
    /// No broker reachable, or the coordinator's refusal (an ACL, a
    /// timeout above the broker's `transaction.max.timeout.ms`).
    pub async fn init(
        connection: &ConnectionConfig,
        id: &str,
        transaction_timeout: Duration,
    ) -> Result<Self, TransactionError> {
        let mut transactions = Self {
            wire: connection.wire_options()?,
            brokers: connection.brokers.clone(),
            timeout: connection.timeout,
            id: id.to_owned(),
            coordinator: None,
            group_coordinator: None,
            producer: ProducerId { id: -1, epoch: -1 },
            added: BTreeSet::new(),
            offsets_added: false,
        };
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.to_owned()))))
            .with_transaction_timeout_ms(
                i32::try_from(transaction_timeout.as_millis()).unwrap_or(i32::MAX),
            )
            .with_producer_id(WireProducerId(-1))
            .with_producer_epoch(-1);
        let response = transactions
            .call(
                "InitProducerId",
                &request,
                i16::MAX,
                |r| r.error_code,
                Coordinator::Transaction,
            )
            .await?;
        transactions.producer = ProducerId {
            id: response.producer_id.0,
            epoch: response.producer_epoch,
        };
        debug!(id, producer = ?transactions.producer, "transactional producer ready");
        Ok(transactions)
    }

    /// The producer id and epoch batches of this producer carry.
    pub fn producer_id(&self) -> ProducerId {
        self.producer
    }

    /// The transactional id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Adds partitions of `topic` to the open transaction (one is opened
    /// by the first partition added); partitions already in it are
    /// skipped.
    ///
    /// # Errors
    ///
    /// The coordinator's refusal: fenced by a newer producer of the id,
    /// or the transaction timed out and was aborted.
    pub async fn add_partitions(
        &mut self,
        topic: &str,
        partitions: impl IntoIterator<Item = i32>,
    ) -> Result<(), TransactionError> {
        self.add(partitions.into_iter().map(|p| (topic, p))).await
    }

    /// Adds partitions of any topics to the open transaction, in one
    /// request; partitions already in it are skipped.
    ///
    /// # Errors
    ///
    /// As [`add_partitions`](Self::add_partitions).
    pub async fn add<'a>(
        &mut self,
        partitions: impl IntoIterator<Item = (&'a str, i32)>,
    ) -> Result<(), TransactionError> {
        let mut new: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, p) in partitions {
            if !self.added.contains(&(topic.to_owned(), p)) {
                new.entry(topic).or_default().push(p);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let topics = new
            .iter()
            .map(|(topic, partitions)| {
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string((*topic).to_owned())))
                    .with_partitions(partitions.clone())
            })
            .collect();
        let request = self
            .request::<AddPartitionsToTxnRequest>()
            .with_v3_and_below_topics(topics);
        self.call(
            "AddPartitionsToTxn",
            &request,
            CLIENT_ADD_PARTITIONS_MAX,
            |r| {
                let partitions = r
                    .results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| &t.results_by_partition);
                partition_error(partitions.map(|p| p.partition_error_code), r.error_code)
            },
            Coordinator::Transaction,
        )
        .await?;
        for (topic, partitions) in new {
            self.added
                .extend(partitions.into_iter().map(|p| (topic.to_owned(), p)));
        }
        Ok(())
    }

    /// Commits `offsets` (the next offset to read, per partition) to the
    /// member's group inside the open transaction, as the Java producer's
    /// `sendOffsetsToTransaction` with the consumer's group metadata: they
    /// take effect when the transaction commits, and the group's
    /// coordinator refuses them from a member of a past generation
    /// ([`TransactionError::is_stale_generation`]), which must then abort.
    ///
    /// # Errors
    ///
    /// Either coordinator's refusal: fenced, a stale generation, or the
    /// transaction aborted by its timeout.
    pub async fn commit_offsets(
        &mut self,
        member: &GroupGeneration,
        offsets: &[(crate::TopicPartition, i64)],
    ) -> Result<(), TransactionError> {
        let group = GroupId(StrBytes::from_string(member.group.clone()));
        if !self.offsets_added {
            let request = self
                .request::<AddOffsetsToTxnRequest>()
                .with_group_id(group.clone());
            self.call(
                "AddOffsetsToTxn",
                &request,
                3,
                |r| r.error_code,
                Coordinator::Transaction,
            )
            .await?;
            self.offsets_added = true;
        }
        let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        // Marks the commit as weir's, with its time (`weir offsets show`).
        let metadata = crate::kafka::admin::groups::commit_metadata(crate::timestamp::now_ms());
        for (tp, offset) in offsets {
            topics.entry(&tp.topic).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(*offset)
                    .with_committed_metadata(Some(StrBytes::from_string(metadata.clone()))),
            );
        }
        let request = self
            .request::<TxnOffsetCommitRequest>()
            .with_group_id(group)
            .with_generation_id(member.generation)
            .with_member_id(StrBytes::from_string(member.member_id.clone()))
            .with_group_instance_id(member.instance_id.clone().map(StrBytes::from_string))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        self.call(
            "TxnOffsetCommit",
            &request,
            CLIENT_TXN_OFFSET_COMMIT_MAX,
            |r| {
                let partitions = r.topics.iter().flat_map(|t| &t.partitions);
                // The response has no error of its own.
                partition_error(partitions.map(|p| p.error_code), 0)
            },
            Coordinator::Group(&member.group),
        )
        .await?;
        Ok(())
    }

    /// Whether a transaction is open: partitions or offsets were added
    /// since it last ended.
    pub fn is_open(&self) -> bool {
        !self.added.is_empty() || self.offsets_added
    }

    /// Commits (or aborts) the open transaction: every record written
    /// under it becomes visible to `read_committed` readers at once, or
    /// never. Call it only after every batch of the transaction was
    /// acknowledged. Without partitions added, there is nothing to end.
    ///
    /// # Errors
    ///
    /// The coordinator's refusal: fenced, or the transaction already
    /// aborted by its timeout.
    pub async fn end(&mut self, commit: bool) -> Result<(), TransactionError> {
        if !self.is_open() {
            return Ok(());
        }
        let request = self.request::<EndTxnRequest>().with_committed(commit);
        // Version 5 (KIP-890) answers with a new epoch that a client must
        // then use; weir ends its producer after one transaction per id
        // and epoch, so it stays at 4.
        self.call(
            "EndTxn",
            &request,
            4,
            |r| r.error_code,
            Coordinator::Transaction,
        )
        .await?;
        self.added.clear();
        self.offsets_added = false;
        Ok(())
    }

    /// A request of this producer's: its transactional id, producer id
    /// and epoch set.
    fn request<R: ProducerRequest>(&self) -> R {
        let id = TransactionalId(StrBytes::from_string(self.id.clone()));
        R::default().for_producer(id, WireProducerId(self.producer.id), self.producer.epoch)
    }
}

/// A request on behalf of a transactional producer, which names it.
trait ProducerRequest: Default {
    fn for_producer(self, id: TransactionalId, producer: WireProducerId, epoch: i16) -> Self;
}

/// The requests whose producer fields have the plain names.
macro_rules! producer_request {
    ($($request:ty),*) => {$(
        impl ProducerRequest for $request {
            fn for_producer(self, id: TransactionalId, producer: WireProducerId, epoch: i16) -> Self {
                self.with_transactional_id(id)
                    .with_producer_id(producer)
                    .with_producer_epoch(epoch)
            }
        }
    )*};
}

producer_request!(
    AddOffsetsToTxnRequest,
    TxnOffsetCommitRequest,
    EndTxnRequest
);

/// Versions 4 and above of AddPartitionsToTxn batch several producers'
/// transactions (between brokers, KIP-890); a client sends 3 and below.
impl ProducerRequest for AddPartitionsToTxnRequest {
    fn for_producer(self, id: TransactionalId, producer: WireProducerId, epoch: i16) -> Self {
        self.with_v3_and_below_transactional_id(id)
            .with_v3_and_below_producer_id(producer)
            .with_v3_and_below_producer_epoch(epoch)
    }
}

/// The first partition's error code in a response with one per
/// partition; `otherwise` (the response's own) when none failed.
fn partition_error(codes: impl IntoIterator<Item = i16>, otherwise: i16) -> i16 {
    codes.into_iter().find(|&c| c != 0).unwrap_or(otherwise)
}

#[cfg(test)]
#[path = "transaction_tests.rs"]
mod tests;
