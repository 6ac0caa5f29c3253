//! Requests to a transaction's coordinator or a group's: found
//! (FindCoordinator), connected to, and asked again on a retriable error
//! or a moved coordinator until the deadline.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::protocol::{Message, Request};
use tokio::time::Instant;

use super::{TransactionError, Transactions};
use crate::kafka::wire::{self, BrokerConnection, WireError};

/// FindCoordinator's key type of a transactional id.
const TRANSACTION_KEY: i8 = 1;

/// FindCoordinator's key type of a group.
const GROUP_KEY: i8 = 0;

/// How long one try to connect to a coordinator lasts before it is looked
/// up again.
pub(crate) const COORDINATOR_CONNECT_TRY: Duration = Duration::from_secs(2);

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
        // A coordinator that took the request and never answers (frozen,
        // or cut off behind a half-open connection) is left at the
        // deadline, as one that refused.
        let answer = tokio::time::timeout_at(deadline, conn.request_up_to(request, max_version));
        let response = match answer.await {
            Err(_elapsed) => {
                lost(self);
                return Attempt::Again;
            }
            Ok(Ok(response)) => response,
            Ok(Err(e)) if e.is_retryable() => {
                lost(self);
                return Attempt::Again;
            }
            Ok(Err(source)) => return Attempt::Fail(wire_error(api, source)),
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
