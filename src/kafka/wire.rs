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
use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{
    Decodable, HeaderVersion, Message, Request, StrBytes, encode_request_header_into_buffer,
};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::{debug, instrument};

use crate::kafka::connect::{ConnectionConfig, SaslOptions, TlsOptions};

/// Largest response weir accepts, as a guard against garbage lengths.
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

/// Errors of a [`BrokerConnection`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The TCP connection could not be opened.
    #[error("error connecting to broker \"{broker}\": {source}")]
    Connect {
        /// `host:port` of the broker.
        broker: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The broker's address could not be resolved.
    #[error(
        "cannot resolve broker address \"{broker}\": {reason} (name resolution needs /etc/resolv.conf \
         and /etc/hosts; in a scratch container give the broker as an IP address)"
    )]
    Resolve {
        /// `host:port` of the broker.
        broker: String,
        /// Why resolution failed.
        reason: String,
    },
    /// The TLS handshake failed; most often the certificate was rejected.
    #[error("TLS handshake with broker \"{broker}\" failed: {reason}")]
    Tls {
        /// `host:port` of the broker.
        broker: String,
        /// What went wrong, with a hint for certificate errors.
        reason: String,
    },
    /// SASL authentication failed.
    #[error(
        "SASL {mechanism} authentication as \"{username}\" with broker \"{broker}\" failed: {reason}"
    )]
    Authentication {
        /// `host:port` of the broker.
        broker: String,
        /// The mechanism tried.
        mechanism: &'static str,
        /// The user name tried.
        username: String,
        /// The broker's reason.
        reason: String,
    },
    /// The connection broke while a request was under way.
    #[error("connection to broker \"{broker}\" failed during {api}: {source}")]
    Io {
        /// `host:port` of the broker.
        broker: String,
        /// The request under way.
        api: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// A request could not be encoded or a response not decoded.
    #[error("protocol error with broker \"{broker}\" in {api}: {reason}")]
    Protocol {
        /// `host:port` of the broker.
        broker: String,
        /// The request under way.
        api: String,
        /// What could not be encoded or decoded.
        reason: String,
    },
    /// What answered is not Kafka: its first bytes, read as a length
    /// prefix, give a negative or absurd length (an HTTP server's status
    /// line or error page, an SSH banner).
    #[error("\"{broker}\" is not a Kafka broker (it answered {answer})")]
    NotKafka {
        /// `host:port` that was given as a broker.
        broker: String,
        /// The start of what it answered, as text or hex.
        answer: String,
    },
    /// The broker does not offer an API weir needs.
    #[error("broker \"{broker}\" does not support {api} at any version weir knows")]
    Unsupported {
        /// `host:port` of the broker.
        broker: String,
        /// The request weir wanted to send.
        api: String,
    },
    /// The broker answered a request with an error code.
    #[error("broker \"{broker}\" answered {api} with {error}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        /// `host:port` of the broker.
        broker: String,
        /// The request.
        api: String,
        /// The error code.
        error: ResponseError,
        /// The broker's message, if it sent one.
        message: Option<String>,
    },
    /// No broker could be reached before the deadline.
    #[error("no broker reachable at {brokers} within {}: {last}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The brokers tried.
        brokers: String,
        /// The deadline.
        timeout: Duration,
        /// The last error seen.
        last: String,
    },
}

impl WireError {
    /// Whether waiting and trying again may help.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Io { .. } => true,
            Self::Broker { error, .. } => error.is_retriable(),
            _ => false,
        }
    }
}

/// TCP or TLS, behind one type so the connection code does not care.
enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// One authenticated connection to one broker.
pub struct BrokerConnection {
    broker: String,
    stream: BufStream<Transport>,
    client_id: StrBytes,
    correlation_id: i32,
    /// Broker's supported version range per API key.
    versions: HashMap<i16, (i16, i16)>,
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
    config: &ConnectionConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    deadline: Instant,
) -> Result<BrokerConnection, WireError> {
    connect_with_retry(config, &config.brokers, tls, deadline).await
}

/// Connects to one broker (a leader or the controller), retrying until
/// `deadline`.
///
/// # Errors
///
/// As [`connect_any`].
pub async fn connect_to(
    config: &ConnectionConfig,
    broker: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    deadline: Instant,
) -> Result<BrokerConnection, WireError> {
    connect_with_retry(config, &[broker.to_owned()], tls, deadline).await
}

async fn connect_with_retry(
    config: &ConnectionConfig,
    brokers: &[String],
    tls: Option<Arc<rustls::ClientConfig>>,
    deadline: Instant,
) -> Result<BrokerConnection, WireError> {
    let mut backoff = Duration::from_millis(50);
    let mut last = String::from("no broker given");
    loop {
        for broker in brokers {
            match tokio::time::timeout_at(
                deadline,
                BrokerConnection::connect(config, broker, tls.clone()),
            )
            .await
            {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) if e.is_retryable() => {
                    debug!(broker = broker.as_str(), error = %e, "connection attempt failed");
                    last = e.to_string();
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    if last == "no broker given" {
                        last = if broker.parse::<std::net::SocketAddr>().is_ok() {
                            format!("connecting to \"{broker}\" did not complete")
                        } else {
                            // musl's resolver without /etc/resolv.conf can
                            // take longer than a short --timeout to give up.
                            format!(
                                "connecting to \"{broker}\" did not complete (if name resolution \
                                 is unavailable, as in a scratch container, give the broker as \
                                 an IP address)"
                            )
                        };
                    }
                    break;
                }
            }
        }
        if Instant::now() + backoff >= deadline {
            return Err(WireError::Timeout {
                brokers: brokers.join(","),
                timeout: config.timeout,
                last,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

impl BrokerConnection {
    /// Opens a connection to `broker`: TCP, TLS if configured, ApiVersions,
    /// SASL if configured. One attempt, no retries.
    #[instrument(skip(config, tls))]
    async fn connect(
        config: &ConnectionConfig,
        broker: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, WireError> {
        let addrs: Vec<_> = tokio::net::lookup_host(broker)
            .await
            .map_err(|e| WireError::Resolve {
                broker: broker.to_owned(),
                reason: e.to_string(),
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

        let transport = match tls {
            None => Transport::Tcp(tcp),
            Some(tls) => {
                let host = broker.rsplit_once(':').map_or(broker, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(host.to_owned()).map_err(|e| WireError::Tls {
                    broker: broker.to_owned(),
                    reason: format!("invalid server name \"{host}\": {e}"),
                })?;
                let stream = TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| WireError::Tls {
                        broker: broker.to_owned(),
                        reason: describe_tls_error(&e, config.tls.as_ref()),
                    })?;
                Transport::Tls(Box::new(stream))
            }
        };

        let mut conn = Self {
            broker: broker.to_owned(),
            stream: BufStream::new(transport),
            client_id: StrBytes::from_string(config.client_id.clone()),
            correlation_id: 0,
            versions: HashMap::new(),
        };
        conn.sync_versions()
            .await
            .map_err(|e| client_certificate_refused(e, config.tls.as_ref()))?;
        if let Some(sasl) = &config.sasl {
            conn.authenticate(sasl).await?;
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
        Ok(())
    }

    async fn authenticate(&mut self, sasl: &SaslOptions) -> Result<(), WireError> {
        let mechanism = sasl.mechanism.as_str();
        let fail = |conn: &Self, reason: String| WireError::Authentication {
            broker: conn.broker.clone(),
            mechanism,
            username: sasl.username.clone(),
            reason,
        };
        let handshake = self
            .request(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism)),
            )
            .await?;
        if handshake.error_code != 0 {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(fail(
                self,
                handshake_refused(handshake.error_code, &offered),
            ));
        }

        let config = rsasl::config::SASLConfig::with_credentials(
            None,
            sasl.username.clone(),
            sasl.password.expose().to_owned(),
        )
        .map_err(|e| fail(self, e.to_string()))?;
        let mechname = rsasl::mechname::Mechname::parse(mechanism.as_bytes())
            .map_err(|e| fail(self, e.to_string()))?;
        let mut session = rsasl::prelude::SASLClient::new(config)
            .start_suggested(&[mechname])
            .map_err(|e| fail(self, e.to_string()))?;
        let mut received: Option<Vec<u8>> = None;
        loop {
            let mut out = Cursor::new(Vec::new());
            let state = session
                .step(received.as_deref(), &mut out)
                .map_err(|e| fail(self, format!("the broker's answer did not verify: {e}")))?;
            if state.has_sent_message() {
                let request = SaslAuthenticateRequest::default()
                    .with_auth_bytes(Bytes::from(out.into_inner()));
                let response = match self.request(&request).await {
                    Ok(r) => r,
                    // Some brokers just close the connection on a bad login.
                    Err(WireError::Io { .. }) => {
                        return Err(fail(self, "the broker closed the connection".to_owned()));
                    }
                    Err(e) => return Err(e),
                };
                if response.error_code != 0 {
                    let code = ResponseError::try_from_code(response.error_code)
                        .map_or_else(|| response.error_code.to_string(), |e| e.to_string());
                    let message = response
                        .error_message
                        .as_ref()
                        .map(|m| format!(": {}", m.as_str()))
                        .unwrap_or_default();
                    return Err(fail(self, format!("{code}{message}")));
                }
                received = Some(response.auth_bytes.to_vec());
            }
            if state.is_finished() {
                return Ok(());
            }
        }
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
        let protocol = |reason: String| WireError::Protocol {
            broker: self.broker.clone(),
            api: api.clone(),
            reason,
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
            .map_err(|e| protocol(e.to_string()))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| protocol(e.to_string()))?;
        let len = i32::try_from(buf.len() - 4).map_err(|e| protocol(e.to_string()))?;
        buf[..4].copy_from_slice(&len.to_be_bytes());

        let io = |source: std::io::Error| WireError::Io {
            broker: self.broker.clone(),
            api: api.clone(),
            source,
        };
        self.stream.write_all(&buf).await.map_err(io)?;
        self.stream.flush().await.map_err(io)?;
        let mut prefix = [0; 4];
        self.stream.read_exact(&mut prefix).await.map_err(io)?;
        let len = i32::from_be_bytes(prefix);
        let Some(len) = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_RESPONSE_BYTES)
        else {
            // A TLS listener answers plain Kafka bytes with a TLS alert or
            // handshake record: content type 21 or 22, version 3.x.
            if matches!(prefix, [0x15 | 0x16, 0x03, ..]) {
                return Err(protocol(
                    "the broker answered with TLS: this listener needs --tls (or --tls-ca)"
                        .to_owned(),
                ));
            }
            return Err(self.not_kafka(prefix).await);
        };
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await.map_err(io)?;

        let mut body = Bytes::from(body);
        let header_version = R::Response::header_version(version);
        let header = ResponseHeader::decode(&mut body, header_version)
            .map_err(|e| protocol(e.to_string()))?;
        if header.correlation_id != self.correlation_id {
            return Err(protocol(format!(
                "response correlation id {} does not match request {}",
                header.correlation_id, self.correlation_id
            )));
        }
        let response =
            R::Response::decode(&mut body, version).map_err(|e| protocol(e.to_string()))?;
        if body.has_remaining() {
            debug!(
                broker = self.broker.as_str(),
                api,
                extra = body.remaining(),
                "trailing bytes in response"
            );
        }
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

/// Why a SaslHandshake was refused, from its error code and the
/// mechanisms the broker listed (empty when the listener has none, or
/// blank names from an odd broker).
fn handshake_refused(error_code: i16, offered: &[&str]) -> String {
    let offered: Vec<&str> = offered
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty())
        .collect();
    let error = ResponseError::try_from_code(error_code);
    match (error, offered.is_empty()) {
        (Some(ResponseError::UnsupportedSaslMechanism), false) => format!(
            "the broker does not offer it (it offers: {})",
            offered.join(", ")
        ),
        (Some(ResponseError::UnsupportedSaslMechanism), true) => {
            "the broker does not offer it, and names no mechanism it does offer".to_owned()
        }
        (error, _) => {
            let code = error.map_or_else(|| format!("error code {error_code}"), |e| e.to_string());
            let listed = if offered.is_empty() {
                "it names no SASL mechanism: is this a SASL listener?".to_owned()
            } else {
                format!("it offers: {}", offered.join(", "))
            };
            format!("the broker refused the SASL handshake with {code}; {listed}")
        }
    }
}

/// An API key as Kafka names it (`Metadata`, `CreateTopics`), for messages.
pub(crate) fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("API {key}"), |k| format!("{k:?}"))
}

/// Says plainly when a TLS failure was a certificate, and what to do.
fn describe_tls_error(e: &std::io::Error, options: Option<&TlsOptions>) -> String {
    if let Some(reason) = client_certificate_alert(e, options) {
        return reason;
    }
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(cert)) => {
            match options.and_then(|t| t.ca_file.as_ref()) {
                Some(ca) => format!(
                    "the broker's certificate was rejected ({cert:?}) against the CAs in \
                     --tls-ca \"{}\"",
                    ca.display()
                ),
                None => format!(
                    "the broker's certificate was rejected ({cert:?}) against the default CA \
                     roots; if it is signed by a private CA, pass that CA with --tls-ca"
                ),
            }
        }
        Some(other) => other.to_string(),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the broker closed the connection during the handshake (is the listener TLS?)"
                .to_owned()
        }
        None => e.to_string(),
    }
}

/// Turns a broken first request into the TLS error it is when the broker
/// refused the client certificate.
///
/// In TLS 1.3 the client's side of the handshake ends before the broker
/// has checked the client's certificate, so the broker's refusal arrives
/// as an alert on the first read (ApiVersions). As an I/O error it would be
/// retried until the deadline, though no retry can change the answer.
fn client_certificate_refused(e: WireError, options: Option<&TlsOptions>) -> WireError {
    match e {
        WireError::Io {
            broker,
            api,
            source,
        } => match client_certificate_alert(&source, options) {
            Some(reason) => WireError::Tls { broker, reason },
            None => WireError::Io {
                broker,
                api,
                source,
            },
        },
        other => other,
    }
}

/// When `e` is an alert by which the broker refuses the client certificate
/// (or its absence), says so, naming the certificate or the flags that
/// give one.
fn client_certificate_alert(e: &std::io::Error, options: Option<&TlsOptions>) -> Option<String> {
    use rustls::AlertDescription as Alert;
    let alert = match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => *alert,
        _ => return None,
    };
    // The alerts RFC 8446 (6.2) gives for a certificate the peer refuses
    // (Java sends bad_certificate for a missing one, certificate_unknown
    // for one it cannot verify; TLS 1.3 peers may send
    // certificate_required).
    if !matches!(
        alert,
        Alert::BadCertificate
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::CertificateUnknown
            | Alert::UnknownCA
            | Alert::CertificateRequired
    ) {
        return None;
    }
    Some(match options.and_then(|t| t.client_auth.as_ref()) {
        None => format!(
            "the broker requires a client certificate and none was given (alert {alert:?}); \
             pass one with --tls-cert and --tls-key"
        ),
        Some(auth) => format!(
            "the broker rejected the client certificate \"{}\" (alert {alert:?}); is it signed \
             by a CA the broker trusts, and valid?",
            auth.cert_file.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(description: rustls::AlertDescription) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(description),
        )
    }

    fn io_error(source: std::io::Error) -> WireError {
        WireError::Io {
            broker: "127.0.0.1:9093".to_owned(),
            api: "ApiVersions".to_owned(),
            source,
        }
    }

    #[test]
    fn a_refused_client_certificate_is_a_tls_error_not_retried() {
        let missing = client_certificate_refused(
            io_error(alert(rustls::AlertDescription::BadCertificate)),
            None,
        );
        assert!(!missing.is_retryable());
        let text = missing.to_string();
        assert!(text.contains("127.0.0.1:9093"), "{text}");
        assert!(text.contains("none was given"), "{text}");
        assert!(
            text.contains("--tls-cert") && text.contains("--tls-key"),
            "{text}"
        );

        let wrong = client_certificate_refused(
            io_error(alert(rustls::AlertDescription::CertificateUnknown)),
            Some(&TlsOptions {
                ca_file: None,
                client_auth: Some(crate::kafka::connect::ClientAuth {
                    cert_file: "/certs/me.pem".into(),
                    key_file: "/certs/me.key".into(),
                }),
            }),
        );
        assert!(!wrong.is_retryable());
        let text = wrong.to_string();
        assert!(text.contains("rejected the client certificate"), "{text}");
        assert!(text.contains("/certs/me.pem"), "{text}");
    }

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

    #[test]
    fn a_refused_sasl_handshake_says_what_the_broker_offers_if_anything() {
        let unsupported = ResponseError::UnsupportedSaslMechanism.code();
        assert_eq!(
            handshake_refused(unsupported, &["PLAIN", "SCRAM-SHA-256"]),
            "the broker does not offer it (it offers: PLAIN, SCRAM-SHA-256)"
        );
        let none = handshake_refused(unsupported, &[]);
        assert!(!none.contains("offers: )"), "{none}");
        assert!(none.contains("names no mechanism"), "{none}");
        let blank = handshake_refused(unsupported, &["", " "]);
        assert_eq!(blank, none);
        let illegal = handshake_refused(ResponseError::IllegalSaslState.code(), &[]);
        assert!(illegal.contains("IllegalSaslState"), "{illegal}");
        assert!(illegal.contains("is this a SASL listener?"), "{illegal}");
        let unknown = handshake_refused(-2, &[]);
        assert!(unknown.contains("-2"), "{unknown}");
    }

    #[test]
    fn other_broken_connections_stay_retryable() {
        let reset =
            client_certificate_refused(io_error(std::io::ErrorKind::ConnectionReset.into()), None);
        assert!(reset.is_retryable(), "{reset}");
        let other_alert = client_certificate_refused(
            io_error(alert(rustls::AlertDescription::HandshakeFailure)),
            None,
        );
        assert!(matches!(other_alert, WireError::Io { .. }), "{other_alert}");
    }
}
