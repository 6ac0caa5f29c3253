//! A small Kafka protocol connection for the requests rskafka cannot send.
//!
//! rskafka keeps its protocol layer private and has no CreateTopics with
//! configs, no DescribeConfigs and no leader information. This module opens
//! its own connection to one broker (TCP or TLS, then ApiVersions, then SASL
//! when configured) and sends typed requests from the `kafka-protocol`
//! crate, one at a time, at the highest version both sides support.
//!
//! Connecting retries only what can get better by waiting (a refused or
//! reset connection) and only until the deadline; a rejected certificate
//! (the broker's or the client's) or a failed login ends at once with an
//! error that says so.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FindCoordinatorRequest, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{
    Decodable, HeaderVersion, Message, Request, StrBytes, encode_request_header_into_buffer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, instrument};

use crate::kafka::retry::{Failure, Retry, RetryError};
use crate::kafka::security::{SaslAuth, TlsOptions};

mod error;
#[cfg(test)]
pub(crate) mod fake;
mod sasl;
mod tls;

pub use error::{BearerRefusal, LastAttempt, ProtocolFault, SaslRefusal, TlsFailure, WireError};

use tls::Transport;

/// Largest response weir accepts, as a guard against garbage lengths.
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

/// What a connection needs besides the broker's address: who weir is,
/// how to secure and authenticate the connection, and the deadline that
/// timeout errors name. Built from a `ConnectionConfig` by the `connect`
/// module; this module knows nothing of it.
#[derive(Debug, Clone)]
pub struct WireOptions {
    /// Client id sent with every request.
    pub client_id: String,
    /// The deadline for connecting, as the user gave it (for messages).
    pub timeout: Duration,
    /// TLS, when the listener speaks it.
    pub tls: Option<WireTls>,
    /// SASL authentication, when the listener requires it.
    pub sasl: Option<SaslAuth>,
}

/// TLS for a wire connection: the rustls configuration, and the files it
/// came from, which failure messages name.
#[derive(Debug, Clone)]
pub struct WireTls {
    /// The assembled rustls client configuration.
    pub config: Arc<rustls::ClientConfig>,
    /// The CA and client certificate files it was built from.
    pub files: TlsOptions,
}

/// One authenticated connection to one broker.
pub struct BrokerConnection {
    broker: String,
    stream: BufStream<Transport>,
    client_id: StrBytes,
    correlation_id: i32,
    /// Broker's supported version range per API key.
    versions: HashMap<i16, (i16, i16)>,
    /// Responses read so far on this connection.
    answered: u64,
    /// Whether it authenticated with SASL.
    authenticated: bool,
    /// Features by name (ApiVersions v3, KIP-584): the highest level the
    /// broker supports and the cluster's finalized level, if finalized.
    features: HashMap<String, (i16, Option<i16>)>,
}

impl fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

/// Connects to the first bootstrap broker that answers, retrying until
/// `deadline`.
///
/// # Errors
///
/// A TLS or SASL failure at once; [`WireError::Timeout`] with the last error
/// when no broker answered in time.
pub async fn connect_any(
    options: &WireOptions,
    brokers: &[String],
    deadline: Instant,
) -> Result<BrokerConnection, WireError> {
    connect_with_retry(options, brokers, deadline).await
}

/// As [`connect_any`], then one request past ApiVersions (Metadata for no
/// topic): a SASL listener answers ApiVersions to a client that does not
/// authenticate and closes the connection at the next request. A broker
/// that does so on three connections in a row is taken for one
/// ([`ProtocolFault::ClosedAtOnce`], which says so); once could be a
/// broker going down.
///
/// # Errors
///
/// As [`connect_any`], and [`ProtocolFault::ClosedAtOnce`].
pub async fn connect_checked(
    options: &WireOptions,
    brokers: &[String],
    deadline: Instant,
) -> Result<BrokerConnection, WireError> {
    let brokers_only = kafka_protocol::messages::MetadataRequest::default()
        .with_topics(Some(Vec::new()))
        .with_allow_auto_topic_creation(false);
    let mut closed = 0;
    loop {
        let mut conn = connect_any(options, brokers, deadline).await?;
        match tokio::time::timeout_at(deadline, conn.request(&brokers_only)).await {
            Ok(Err(
                e @ WireError::Protocol {
                    fault: ProtocolFault::ClosedAtOnce,
                    ..
                },
            )) => {
                closed += 1;
                if closed >= 3 {
                    return Err(e);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100 * closed)).await;
            }
            // At the deadline: the next connect says so.
            Err(_) => {}
            // Anything else is for the caller's own requests to meet.
            Ok(_) => return Ok(conn),
        }
    }
}

/// Connects to one broker (a leader or the controller), retrying until
/// `deadline`.
///
/// # Errors
///
/// As [`connect_any`].
pub async fn connect_to(
    options: &WireOptions,
    broker: &str,
    deadline: Instant,
) -> Result<BrokerConnection, WireError> {
    connect_with_retry(options, &[broker.to_owned()], deadline).await
}

async fn connect_with_retry(
    options: &WireOptions,
    brokers: &[String],
    deadline: Instant,
) -> Result<BrokerConnection, WireError> {
    let mut last = LastAttempt::NoBroker;
    let connected = Retry::until(deadline)
        .run(
            &mut (options, brokers, &mut last),
            |(options, brokers, last), _| Box::pin(connect_once(options, brokers, deadline, last)),
        )
        .await;
    match connected {
        Ok(conn) => Ok(conn),
        Err(RetryError::Fatal(e)) => Err(e),
        Err(RetryError::Deadline(())) => Err(WireError::Timeout {
            brokers: brokers.join(","),
            timeout: options.timeout,
            last,
        }),
    }
}

/// One pass over `brokers`: the first that answers, or the last error
/// seen kept in `last` for the timeout's message.
async fn connect_once(
    options: &WireOptions,
    brokers: &[String],
    deadline: Instant,
    last: &mut LastAttempt,
) -> Result<BrokerConnection, Failure<WireError, ()>> {
    for broker in brokers {
        match tokio::time::timeout_at(deadline, BrokerConnection::connect(options, broker)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) if e.is_retryable() => {
                debug!(broker = broker.as_str(), error = %crate::ErrorChain(&e), "connection attempt failed");
                *last = LastAttempt::Failed(Box::new(e));
            }
            Ok(Err(e)) => return Err(Failure::Fatal(e)),
            Err(_) => {
                if matches!(last, LastAttempt::NoBroker) {
                    *last = LastAttempt::Unfinished {
                        broker: broker.clone(),
                        by_name: broker.parse::<std::net::SocketAddr>().is_err(),
                    };
                }
                break;
            }
        }
    }
    Err(Failure::Retriable(()))
}

impl BrokerConnection {
    /// Opens a connection to `broker`: TCP, TLS if configured, ApiVersions,
    /// SASL if configured. One attempt, no retries.
    #[instrument(skip(options))]
    async fn connect(options: &WireOptions, broker: &str) -> Result<Self, WireError> {
        #[cfg(test)]
        if let Some(stream) = fake::connect(broker) {
            return Self::handshake(options, broker, Transport::Memory(stream)).await;
        }
        let addrs: Vec<_> = tokio::net::lookup_host(broker)
            .await
            .map_err(|source| WireError::Resolve {
                broker: broker.to_owned(),
                source,
            })?
            .collect();
        let mut last_err = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| WireError::Connect {
            broker: broker.to_owned(),
            source: last_err
                .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address")),
        })?;
        tcp.set_nodelay(true).ok();

        let transport = match &options.tls {
            None => Transport::Tcp(tcp),
            Some(tls) => tls::handshake(tcp, broker, tls).await?,
        };
        Self::handshake(options, broker, transport).await
    }

    /// ApiVersions, then SASL if configured, on a connected transport.
    async fn handshake(
        options: &WireOptions,
        broker: &str,
        transport: Transport,
    ) -> Result<Self, WireError> {
        let mut conn = Self {
            broker: broker.to_owned(),
            stream: BufStream::new(transport),
            client_id: StrBytes::from_string(options.client_id.clone()),
            correlation_id: 0,
            versions: HashMap::new(),
            answered: 0,
            authenticated: false,
            features: HashMap::new(),
        };
        conn.sync_versions().await.map_err(|e| {
            tls::client_certificate_refused(e, options.tls.as_ref().map(|t| &t.files))
        })?;
        if let Some(sasl) = &options.sasl {
            conn.authenticate(sasl).await?;
            conn.authenticated = true;
        }
        Ok(conn)
    }

    /// The broker this connection talks to.
    pub fn broker(&self) -> &str {
        &self.broker
    }

    async fn sync_versions(&mut self) -> Result<(), WireError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("weir"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // v3 first; a broker that does not know it answers in v0 with
        // UNSUPPORTED_VERSION and its ranges (KIP-511), so fall back.
        let mut response: ApiVersionsResponse = self.send(&request, 3).await?;
        if response.error_code == ResponseError::UnsupportedVersion.code() {
            response = self.send(&request, 0).await?;
        }
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(self.broker_error("ApiVersions", error, None));
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        self.features = response
            .supported_features
            .iter()
            .map(|f| (f.name.to_string(), (f.max_version, None)))
            .collect();
        for f in &response.finalized_features {
            let entry = self.features.entry(f.name.to_string()).or_insert((0, None));
            entry.1 = Some(f.max_version_level);
        }
        Ok(())
    }

    /// Sends `request` at the highest version both weir and the broker
    /// support and returns the decoded response.
    ///
    /// # Errors
    ///
    /// [`WireError::Unsupported`] when no version is shared; I/O and
    /// protocol errors naming the broker.
    pub async fn request<R>(&mut self, request: &R) -> Result<R::Response, WireError>
    where
        R: Request + Message,
    {
        let version = self.version_for::<R>()?;
        self.send(request, version).await
    }

    /// As [`request`](Self::request), at `max` at most: for requests
    /// whose newer versions are for brokers only (AddPartitionsToTxn v4+).
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request).
    pub async fn request_up_to<R>(
        &mut self,
        request: &R,
        max: i16,
    ) -> Result<R::Response, WireError>
    where
        R: Request + Message,
    {
        let version = self.version_for::<R>()?;
        self.send(request, version.min(max)).await
    }

    /// A feature's levels (KIP-584) as the broker stated them in
    /// ApiVersions: the highest it supports, and the cluster's finalized
    /// level (`None` when not finalized); `None` when the broker does not
    /// know the feature.
    pub fn feature(&self, name: &str) -> Option<(i16, Option<i16>)> {
        self.features.get(name).copied()
    }

    /// The broker's version range of the API `key`, if it offers it.
    pub fn api_range(&self, key: i16) -> Option<(i16, i16)> {
        self.versions.get(&key).copied()
    }

    /// The version [`request`](Self::request) would use for `R`.
    ///
    /// # Errors
    ///
    /// [`WireError::Unsupported`] when no version is shared.
    pub fn version_for<R: Request + Message>(&self) -> Result<i16, WireError> {
        let ours = R::VERSIONS;
        match self.versions.get(&R::KEY) {
            Some(&(min, max)) if min <= ours.max && ours.min <= max => Ok(max.min(ours.max)),
            _ => Err(WireError::Unsupported {
                broker: self.broker.clone(),
                api: api_name(R::KEY),
            }),
        }
    }

    async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, WireError> {
        let api = api_name(R::KEY);
        let protocol = |fault: ProtocolFault| WireError::Protocol {
            broker: self.broker.clone(),
            api: api.clone(),
            fault,
        };
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0); // length, patched below
        encode_request_header_into_buffer(&mut buf, &header)
            .map_err(|e| protocol(ProtocolFault::Encode(e.into())))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| protocol(ProtocolFault::Encode(e.into())))?;
        let len = i32::try_from(buf.len() - 4).map_err(|_| {
            protocol(ProtocolFault::TooLarge {
                bytes: buf.len() - 4,
            })
        })?;
        buf[..4].copy_from_slice(&len.to_be_bytes());

        let io = |source: std::io::Error| WireError::Io {
            broker: self.broker.clone(),
            api: api.clone(),
            source,
        };
        self.stream.write_all(&buf).await.map_err(io)?;
        self.stream.flush().await.map_err(io)?;
        let mut prefix = [0; 4];
        if let Err(e) = self.stream.read_exact(&mut prefix).await {
            // A SASL listener answers ApiVersions, then closes the
            // connection at the first other request of a client that did
            // not authenticate (so does a TLS listener's proxy, at times).
            let closed = matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            );
            if closed && self.answered == 1 && !self.authenticated {
                return Err(protocol(ProtocolFault::ClosedAtOnce));
            }
            return Err(io(e));
        }
        let len = i32::from_be_bytes(prefix);
        let Some(len) = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_RESPONSE_BYTES)
        else {
            // A TLS listener answers plain Kafka bytes with a TLS alert or
            // handshake record: content type 21 or 22, version 3.x.
            if matches!(prefix, [0x15 | 0x16, 0x03, ..]) {
                return Err(protocol(ProtocolFault::TlsListener));
            }
            let answered = self.answered;
            return Err(match self.not_kafka(prefix).await {
                // A broker that answered on this connection before, or a
                // length that is not text: a damaged frame, retried on a
                // new connection. What answers text first (an HTTP
                // server, an SSH banner) is not Kafka, and says so at once.
                WireError::NotKafka { answer, .. } if answered > 0 || !answer.starts_with('"') => {
                    let len = i32::from_be_bytes(prefix);
                    WireError::Protocol {
                        broker: self.broker.clone(),
                        api: api.clone(),
                        fault: ProtocolFault::Decode(
                            format!("the response's length is {len} bytes ({answer})").into(),
                        ),
                    }
                }
                not_kafka => not_kafka,
            });
        };
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await.map_err(io)?;

        let mut body = Bytes::from(body);
        let header_version = R::Response::header_version(version);
        let header = ResponseHeader::decode(&mut body, header_version)
            .map_err(|e| protocol(ProtocolFault::Decode(e.into())))?;
        if header.correlation_id != self.correlation_id {
            return Err(protocol(ProtocolFault::Correlation {
                received: header.correlation_id,
                sent: self.correlation_id,
            }));
        }
        let response = R::Response::decode(&mut body, version)
            .map_err(|e| protocol(ProtocolFault::Decode(e.into())))?;
        if body.has_remaining() {
            debug!(
                broker = self.broker.as_str(),
                api,
                extra = body.remaining(),
                "trailing bytes in response"
            );
        }
        self.answered += 1;
        Ok(response)
    }

    /// [`WireError::NotKafka`], with as much of the answer after its
    /// first 4 bytes as has arrived or arrives at once: enough to show an
    /// HTTP status line.
    async fn not_kafka(&mut self, prefix: [u8; 4]) -> WireError {
        let mut answer = prefix.to_vec();
        let mut more = [0; 80];
        let read = tokio::time::timeout(Duration::from_millis(100), self.stream.read(&mut more));
        if let Ok(Ok(n)) = read.await {
            answer.extend_from_slice(&more[..n]);
        }
        WireError::NotKafka {
            broker: self.broker.clone(),
            answer: describe_answer(&answer),
        }
    }

    /// The `host:port` of the coordinator of `key` (a group for key type
    /// 0, a transactional id for 1).
    ///
    /// # Errors
    ///
    /// The request failed, or the broker answered with an error
    /// ([`WireError::Broker`]).
    pub async fn find_coordinator(&mut self, key: &str, key_type: i8) -> Result<String, WireError> {
        let version = self.version_for::<FindCoordinatorRequest>()?;
        let mut request = FindCoordinatorRequest::default().with_key_type(key_type);
        // Version 4 asks for a list of keys (KIP-699).
        if version >= 4 {
            request.coordinator_keys = vec![StrBytes::from_string(key.to_owned())];
        } else {
            request.key = StrBytes::from_string(key.to_owned());
        }
        let response = self.request(&request).await?;
        let (code, host, port) = match response.coordinators.first() {
            Some(c) if version >= 4 => (c.error_code, c.host.to_string(), c.port),
            _ => (
                response.error_code,
                response.host.to_string(),
                response.port,
            ),
        };
        match ResponseError::try_from_code(code) {
            None => Ok(format!("{host}:{port}")),
            Some(error) => Err(self.broker_error("FindCoordinator", error, None)),
        }
    }

    /// A [`WireError::Broker`] for this connection.
    pub fn broker_error(
        &self,
        api: &str,
        error: ResponseError,
        message: Option<String>,
    ) -> WireError {
        WireError::Broker {
            broker: self.broker.clone(),
            api: api.to_owned(),
            error,
            message,
        }
    }
}

/// The first line of a foreign answer, quoted, when it reads as text
/// (`"HTTP/1.1 400 Bad Request"`); its first bytes in hex otherwise.
fn describe_answer(bytes: &[u8]) -> String {
    const SHOWN: usize = 60;
    let line = bytes
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    if line.len() >= 4 && line.iter().all(|b| (0x20..0x7f).contains(b)) {
        let text = String::from_utf8_lossy(&line[..line.len().min(SHOWN)]);
        let more = if line.len() > SHOWN { "..." } else { "" };
        format!("{text:?}{more}")
    } else {
        let hex: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("the bytes {}", hex.join(" "))
    }
}

/// An API key as Kafka names it (`Metadata`, `CreateTopics`), for messages.
pub(crate) fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("API {key}"), |k| format!("{k:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_answer_shows_its_first_line_or_bytes() {
        assert_eq!(
            describe_answer(b"HTTP/1.0 400 Bad Request\r\nServer: x\r\n\r\n"),
            "\"HTTP/1.0 400 Bad Request\""
        );
        // python3 -m http.server answers a request it cannot parse in
        // HTTP/0.9 style: the error page alone.
        assert_eq!(
            describe_answer(b"<!DOCTYPE HTML>\n<html lang=\"en\">"),
            "\"<!DOCTYPE HTML>\""
        );
        let long = format!("SSH-2.0-{}", "x".repeat(100));
        assert!(describe_answer(long.as_bytes()).ends_with("xxx\"..."));
        assert_eq!(
            describe_answer(&[0x7f, 0xff, 0, 1, 2, 3, 4, 5, 6, 7]),
            "the bytes 7f ff 00 01 02 03 04 05"
        );
        let error = WireError::NotKafka {
            broker: "127.0.0.1:8000".to_owned(),
            answer: describe_answer(b"HTTP/1.1 404 Not Found\r\n"),
        };
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            "\"127.0.0.1:8000\" is not a Kafka broker (it answered \"HTTP/1.1 404 Not Found\")"
        );
    }
}
