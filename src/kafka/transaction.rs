//! Kafka transactions for one producer (KIP-98): the transaction
//! coordinator of a transactional id (FindCoordinator, key type 1) gives
//! the producer id and a new epoch (InitProducerId), which fences every
//! earlier producer of that id and aborts what it left open; partitions
//! join the transaction before the first batch goes to them
//! (AddPartitionsToTxn), and EndTxn commits or aborts everything written
//! under it at once. Readers with `read_committed` see a transaction's
//! records only once it is committed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest, ProducerId as WireProducerId,
    TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Message, Request, StrBytes};
use tokio::time::Instant;
use tracing::debug;

use super::connect::{ConnectError, ConnectionConfig};
use super::idempotence::ProducerId;
use super::wire::{self, BrokerConnection, WireError, WireOptions};

/// FindCoordinator's key type of a transactional id.
const TRANSACTION_KEY: i8 = 1;

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

/// One producer's transactions, through its transactional id's
/// coordinator.
pub struct Transactions {
    wire: WireOptions,
    brokers: Vec<String>,
    timeout: Duration,
    id: String,
    coordinator: Option<BrokerConnection>,
    producer: ProducerId,
    /// Partitions in the open transaction.
    added: BTreeSet<(String, i32)>,
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
            producer: ProducerId { id: -1, epoch: -1 },
            added: BTreeSet::new(),
        };
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.to_owned()))))
            .with_transaction_timeout_ms(
                i32::try_from(transaction_timeout.as_millis()).unwrap_or(i32::MAX),
            )
            .with_producer_id(WireProducerId(-1))
            .with_producer_epoch(-1);
        let response = transactions
            .call("InitProducerId", &request, i16::MAX, |r| r.error_code)
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
        )
        .await?;
        for (topic, partitions) in new {
            self.added
                .extend(partitions.into_iter().map(|p| (topic.to_owned(), p)));
        }
        Ok(())
    }

    /// Whether a transaction is open: partitions were added since it
    /// last ended.
    pub fn is_open(&self) -> bool {
        !self.added.is_empty()
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
        if self.added.is_empty() {
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
        self.call("EndTxn", &request, 4, |r| r.error_code).await?;
        self.added.clear();
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
    ) -> Result<R::Response, TransactionError>
    where
        R: Request + Message,
    {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(20);
        loop {
            match self
                .attempt(api, request, max_version, &code, deadline)
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
        if self.coordinator.is_none() {
            match self.find_coordinator(deadline).await {
                Ok(conn) => self.coordinator = Some(conn),
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
        let Some(conn) = self.coordinator.as_mut() else {
            return Attempt::Again;
        };
        let response = match conn.request_up_to(request, max_version).await {
            Ok(response) => response,
            Err(e) if e.is_retryable() => {
                self.coordinator = None;
                return Attempt::Again;
            }
            Err(source) => return Attempt::Fail(wire_error(api, source)),
        };
        match ResponseError::try_from_code(code(&response)) {
            None => Attempt::Done(response),
            Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable) => {
                self.coordinator = None;
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

    /// Finds the coordinator and connects to it.
    async fn find_coordinator(
        &self,
        deadline: Instant,
    ) -> Result<BrokerConnection, TransactionError> {
        let connect = |e: WireError| TransactionError::Connect(e.into());
        let mut any = wire::connect_any(&self.wire, &self.brokers, deadline)
            .await
            .map_err(connect)?;
        let address = any
            .find_coordinator(&self.id, TRANSACTION_KEY)
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
