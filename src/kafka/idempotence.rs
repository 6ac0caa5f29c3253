//! The idempotent producer's identity: a producer id and epoch the
//! cluster hands out (InitProducerId, any broker answers for a producer
//! without a transactional id). Batches carry it with a sequence number
//! per partition, so the leader appends each batch once however often it
//! is retried, and in order with several on their way (KIP-98; the Java
//! producer's default since Kafka 3.0).

use tokio::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::InitProducerIdRequest;
use kafka_protocol::messages::ProducerId as WireProducerId;

use super::connect::{ConnectError, ConnectionConfig};
use super::retry::{Failure, Retry, RetryError};
use super::wire::{self, WireError, WireOptions};

/// A producer id and its epoch, as the broker gave them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerId {
    /// The producer id.
    pub id: i64,
    /// Its epoch.
    pub epoch: i16,
}

/// Why no producer id could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerIdError {
    /// No broker could be reached, or TLS or SASL failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The broker refused, or does not offer, InitProducerId.
    #[error("getting a producer id for the idempotent producer (--no-idempotence goes without)")]
    Refused(#[source] WireError),
}

/// The idempotent producer's id from the cluster when `idempotence` is
/// on; `None` without (`--no-idempotence`).
///
/// # Errors
///
/// As [`init_producer_id`].
pub async fn producer_id(
    connection: &ConnectionConfig,
    idempotence: bool,
) -> Result<Option<ProducerId>, ProducerIdError> {
    match idempotence {
        true => init_producer_id(connection).await.map(Some),
        false => Ok(None),
    }
}

/// Asks the cluster for a producer id, retrying what Kafka marks
/// retriable until the connection's timeout.
///
/// # Errors
///
/// [`ProducerIdError`]: no broker reachable, or a broker that refuses
/// (an ACL without IdempotentWrite on an old cluster) or does not know the
/// request (a broker older than 0.11).
pub async fn init_producer_id(
    connection: &ConnectionConfig,
) -> Result<ProducerId, ProducerIdError> {
    let options = connection.wire_options()?;
    let deadline = Instant::now() + connection.timeout;
    let brokers = connection.brokers.as_slice();
    Retry::until(deadline)
        .run_with(
            &mut (&options, brokers),
            |(options, brokers), _| Box::pin(init_once(options, brokers, deadline)),
            |failure, _| tracing::debug!(error = %failure, "InitProducerId failed; retrying"),
        )
        .await
        .map_err(|e| match e {
            RetryError::Fatal(e) => e,
            RetryError::Deadline(failure) => ProducerIdError::Refused(failure),
        })
}

/// One InitProducerId, through a connection to any broker: a refusal
/// Kafka marks retriable may be tried again.
async fn init_once(
    options: &WireOptions,
    brokers: &[String],
    deadline: Instant,
) -> Result<ProducerId, Failure<ProducerIdError, WireError>> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX)
        .with_producer_id(WireProducerId(-1))
        .with_producer_epoch(-1);
    let mut conn = wire::connect_any(options, brokers, deadline)
        .await
        .map_err(|e| ProducerIdError::from(ConnectError::from(e)))?;
    let failure = match conn.request(&request).await {
        Ok(r) if r.error_code == 0 => {
            return Ok(ProducerId {
                id: r.producer_id.0,
                epoch: r.producer_epoch,
            });
        }
        Ok(r) => {
            let error = ResponseError::try_from_code(r.error_code)
                .unwrap_or(ResponseError::UnknownServerError);
            conn.broker_error("InitProducerId", error, None)
        }
        Err(e) => e,
    };
    if failure.is_retryable() {
        Err(Failure::Retriable(failure))
    } else {
        Err(Failure::Fatal(ProducerIdError::Refused(failure)))
    }
}
