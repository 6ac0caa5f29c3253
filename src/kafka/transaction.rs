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
use kafka_protocol::protocol::{Message, Request, StrBytes};
use tokio::time::Instant;
use tracing::debug;

use super::connect::{ConnectError, ConnectionConfig};
use super::idempotence::ProducerId;
use super::wire::{self, BrokerConnection, WireError, WireOptions};

/// FindCoordinator's key type of a transactional id.
const TRANSACTION_KEY: i8 = 1;

/// FindCoordinator's key type of a group.
const GROUP_KEY: i8 = 0;

/// TxnOffsetCommit above 4 stands for AddOffsetsToTxn too, on brokers with
/// transactions version 2 (KIP-890); weir sends AddOffsetsToTxn itself.
const CLIENT_TXN_OFFSET_COMMIT_MAX: i16 = 4;

/// How long one try to connect to a coordinator lasts before it is looked
/// up again.
pub(crate) const COORDINATOR_CONNECT_TRY: Duration = Duration::from_secs(2);

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
pub struct GroupGeneration {
    /// The group.
    pub group: String,
    /// The generation the member was assigned its partitions in.
    pub generation: i32,
    /// The member's id in it.
    pub member_id: String,
}

/// Which coordinator a request goes to.
#[derive(Clone, Copy)]
enum Coordinator<'a> {
    /// The transactional id's.
    Transaction,
    /// A group's.
    Group(&'a str),
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
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(self.wire_id())
            .with_v3_and_below_producer_id(WireProducerId(self.producer.id))
            .with_v3_and_below_producer_epoch(self.producer.epoch)
            .with_v3_and_below_topics(topics);
        self.call(
            "AddPartitionsToTxn",
            &request,
            CLIENT_ADD_PARTITIONS_MAX,
            |r| {
                r.results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| &t.results_by_partition)
                    .map(|p| p.partition_error_code)
                    .find(|&c| c != 0)
                    .unwrap_or(r.error_code)
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
            let request = AddOffsetsToTxnRequest::default()
                .with_transactional_id(self.wire_id())
                .with_producer_id(WireProducerId(self.producer.id))
                .with_producer_epoch(self.producer.epoch)
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
        for (tp, offset) in offsets {
            topics.entry(&tp.topic).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(*offset),
            );
        }
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(self.wire_id())
            .with_group_id(group)
            .with_producer_id(WireProducerId(self.producer.id))
            .with_producer_epoch(self.producer.epoch)
            .with_generation_id(member.generation)
            .with_member_id(StrBytes::from_string(member.member_id.clone()))
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
                r.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.error_code)
                    .find(|&c| c != 0)
                    .unwrap_or(0)
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
        let request = EndTxnRequest::default()
            .with_transactional_id(self.wire_id())
            .with_producer_id(WireProducerId(self.producer.id))
            .with_producer_epoch(self.producer.epoch)
            .with_committed(commit);
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

    fn wire_id(&self) -> TransactionalId {
        TransactionalId(StrBytes::from_string(self.id.clone()))
    }

    /// Sends `request` to the coordinator until it is answered without a
    /// retriable error, or the timeout passes.
    async fn call<R>(
        &mut self,
        api: &'static str,
        request: &R,
        max_version: i16,
        code: impl Fn(&R::Response) -> i16,
        to: Coordinator<'_>,
    ) -> Result<R::Response, TransactionError>
    where
        R: Request + Message,
    {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            match self
                .attempt(api, request, max_version, &code, to, deadline)
                .await
            {
                Attempt::Done(response) => return Ok(response),
                Attempt::Fail(e) => return Err(e),
                Attempt::Again => {}
            }
            if Instant::now() + pause >= deadline {
                return Err(TransactionError::Timeout {
                    id: self.id.clone(),
                    api,
                    timeout: self.timeout,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    async fn attempt<R>(
        &mut self,
        api: &'static str,
        request: &R,
        max_version: i16,
        code: impl Fn(&R::Response) -> i16,
        to: Coordinator<'_>,
        deadline: Instant,
    ) -> Attempt<R::Response>
    where
        R: Request + Message,
    {
        let wire_error = |api, source| TransactionError::Wire {
            id: self.id.clone(),
            api,
            source,
        };
        if let Coordinator::Group(group) = to {
            if self
                .group_coordinator
                .as_ref()
                .is_some_and(|(g, _)| g != group)
            {
                self.group_coordinator = None;
            }
        }
        let missing = match to {
            Coordinator::Transaction => self.coordinator.is_none(),
            Coordinator::Group(_) => self.group_coordinator.is_none(),
        };
        if missing {
            let (key, key_type) = match to {
                Coordinator::Transaction => (self.id.as_str(), TRANSACTION_KEY),
                Coordinator::Group(group) => (group, GROUP_KEY),
            };
            match self.find_coordinator(key, key_type, deadline).await {
                Ok(conn) => match to {
                    Coordinator::Transaction => self.coordinator = Some(conn),
                    Coordinator::Group(group) => {
                        self.group_coordinator = Some((group.to_owned(), conn));
                    }
                },
                // The coordinator named may be a broker just killed that
                // the controller has not fenced yet: ask again.
                Err(TransactionError::Wire { source, .. })
                    if source.is_retryable() || matches!(source, WireError::Timeout { .. }) =>
                {
                    return Attempt::Again;
                }
                Err(e) => return Attempt::Fail(e),
            }
        }
        let slot = match to {
            Coordinator::Transaction => self.coordinator.as_mut(),
            Coordinator::Group(_) => self.group_coordinator.as_mut().map(|(_, conn)| conn),
        };
        let Some(conn) = slot else {
            return Attempt::Again;
        };
        let lost = |this: &mut Self| match to {
            Coordinator::Transaction => this.coordinator = None,
            Coordinator::Group(_) => this.group_coordinator = None,
        };
        let response = match conn.request_up_to(request, max_version).await {
            Ok(response) => response,
            Err(e) if e.is_retryable() => {
                lost(self);
                return Attempt::Again;
            }
            Err(source) => return Attempt::Fail(wire_error(api, source)),
        };
        match ResponseError::try_from_code(code(&response)) {
            None => Attempt::Done(response),
            Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable) => {
                lost(self);
                Attempt::Again
            }
            // The coordinator is still ending a transaction (the one a
            // fenced producer left open), or loading its state.
            Some(e) if e == ResponseError::ConcurrentTransactions || e.is_retriable() => {
                Attempt::Again
            }
            Some(error) => Attempt::Fail(TransactionError::Refused {
                id: self.id.clone(),
                api,
                error,
            }),
        }
    }

    /// Finds the coordinator of `key` (a transactional id or a group, by
    /// `key_type`) and connects to it.
    async fn find_coordinator(
        &self,
        key: &str,
        key_type: i8,
        deadline: Instant,
    ) -> Result<BrokerConnection, TransactionError> {
        let connect = |e: WireError| TransactionError::Connect(e.into());
        let mut any = wire::connect_any(&self.wire, &self.brokers, deadline)
            .await
            .map_err(connect)?;
        let address = any
            .find_coordinator(key, key_type)
            .await
            .map_err(|source| TransactionError::Wire {
                id: self.id.clone(),
                api: "FindCoordinator",
                source,
            })?;
        // A short try: a coordinator that does not answer is asked for
        // again rather than waited on until the deadline.
        let try_deadline = deadline.min(Instant::now() + COORDINATOR_CONNECT_TRY);
        wire::connect_to(&self.wire, &address, try_deadline)
            .await
            .map_err(|source| TransactionError::Wire {
                id: self.id.clone(),
                api: "connecting to the coordinator",
                source,
            })
    }
}

/// One try's outcome.
enum Attempt<T> {
    Done(T),
    Again,
    Fail(TransactionError),
}
