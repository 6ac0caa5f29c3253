//! Requests to a transaction's coordinator or a group's: found
//! (FindCoordinator), connected to, and asked again on a retriable error
//! or a moved coordinator until the deadline.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::protocol::{Message, Request};
use tokio::time::Instant;

use super::{TransactionError, Transactions};
use crate::kafka::retry::{Backoff, Failure, Retry, RetryError};
use crate::kafka::wire::{self, BrokerConnection, WireError};

/// FindCoordinator's key type of a transactional id.
const TRANSACTION_KEY: i8 = 1;

/// FindCoordinator's key type of a group.
const GROUP_KEY: i8 = 0;

/// How long one try to connect to a coordinator lasts before it is looked
/// up again.
pub(crate) const COORDINATOR_CONNECT_TRY: Duration = Duration::from_secs(2);

/// Waits between tries, shorter than the Java client's default: a
/// transaction's first AddPartitionsToTxn is often answered
/// CONCURRENT_TRANSACTIONS while the coordinator still writes the last
/// one's markers, and the Java producer tries that again after 20 ms
/// (`TransactionManager.ADD_PARTITIONS_RETRY_BACKOFF_MS`, KAFKA-5482).
const COORDINATOR_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(20), Duration::from_millis(500));

/// Which coordinator a request goes to.
#[derive(Clone, Copy)]
pub(super) enum Coordinator<'a> {
    /// The transactional id's.
    Transaction,
    /// A group's.
    Group(&'a str),
}

impl Transactions {
    /// Sends `request` to the coordinator until it is answered without a
    /// retriable error, or the timeout passes.
    pub(super) async fn call<R>(
        &mut self,
        api: &'static str,
        request: &R,
        max_version: i16,
        code: impl Fn(&R::Response) -> i16 + Sync,
        to: Coordinator<'_>,
    ) -> Result<R::Response, TransactionError>
    where
        // Each attempt is a boxed `Send` future (`retry::Attempt`).
        R: Request + Message + Sync,
        R::Response: Send,
    {
        let deadline = Instant::now() + self.timeout;
        let (id, timeout) = (self.id.clone(), self.timeout);
        let answered = Retry::until(deadline)
            .with_backoff(COORDINATOR_BACKOFF)
            .run(
                &mut (self, request, &code, to),
                |(this, request, code, to), _| {
                    Box::pin(this.attempt(api, *request, max_version, *code, *to, deadline))
                },
            )
            .await;
        match answered {
            Ok(response) => Ok(response),
            Err(RetryError::Fatal(e)) => Err(e),
            Err(RetryError::Deadline(())) => Err(TransactionError::Timeout { id, api, timeout }),
        }
    }

    async fn attempt<R>(
        &mut self,
        api: &'static str,
        request: &R,
        max_version: i16,
        code: impl Fn(&R::Response) -> i16 + Sync,
        to: Coordinator<'_>,
        deadline: Instant,
    ) -> Result<R::Response, Failure<TransactionError, ()>>
    where
        R: Request + Message + Sync,
        R::Response: Send,
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
                    return Err(Failure::Retriable(()));
                }
                Err(e) => return Err(Failure::Fatal(e)),
            }
        }
        let slot = match to {
            Coordinator::Transaction => self.coordinator.as_mut(),
            Coordinator::Group(_) => self.group_coordinator.as_mut().map(|(_, conn)| conn),
        };
        let Some(conn) = slot else {
            return Err(Failure::Retriable(()));
        };
        let lost = |this: &mut Self| match to {
            Coordinator::Transaction => this.coordinator = None,
            Coordinator::Group(_) => this.group_coordinator = None,
        };
        // A coordinator that took the request and never answers (frozen,
        // or cut off behind a half-open connection) is left at the
        // deadline, as one that refused.
        let answer = tokio::time::timeout_at(deadline, conn.request_up_to(request, max_version));
        let response = match answer.await {
            Err(_elapsed) => {
                lost(self);
                return Err(Failure::Retriable(()));
            }
            Ok(Ok(response)) => response,
            Ok(Err(e)) if e.is_retryable() => {
                lost(self);
                return Err(Failure::Retriable(()));
            }
            Ok(Err(source)) => return Err(Failure::Fatal(wire_error(api, source))),
        };
        match ResponseError::try_from_code(code(&response)) {
            None => Ok(response),
            Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable) => {
                lost(self);
                Err(Failure::Retriable(()))
            }
            // The coordinator is still ending a transaction (the one a
            // fenced producer left open), or loading its state.
            Some(e) if e == ResponseError::ConcurrentTransactions || e.is_retriable() => {
                Err(Failure::Retriable(()))
            }
            Some(error) => Err(Failure::Fatal(TransactionError::Refused {
                id: self.id.clone(),
                api,
                error,
            })),
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
