//! Connection options shared by every command, and the clients built from
//! them.
//!
//! A [`ConnectionConfig`] names the bootstrap brokers, the client id, the
//! deadline for connecting and retrying, and optional TLS and SASL. From it
//! weir builds both an [`rskafka::client::Client`] (for producing and
//! fetching) and `wire` connections (for the requests
//! rskafka cannot send). Both honour the same deadline: rskafka on its own
//! retries retryable errors forever, weir never does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::{Client, ClientBuilder, Credentials};
use rustls::RootCertStore;
use tokio::time::Instant;

pub use crate::kafka::security::{
    BearerToken, ClientAuth, Password, SaslAuth, SaslMechanism, SaslOptions, TlsOptions,
    TokenSource, UnknownSaslMechanism,
};
use crate::kafka::wire::{self, WireError, WireOptions, WireTls};

mod any_name;
mod builder;
mod tls_files;

use tls_files::read_certs;

/// Default bootstrap broker, the address `just broker` listens on.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// Default client id sent to brokers.
pub const DEFAULT_CLIENT_ID: &str = concat!("weir/", env!("CARGO_PKG_VERSION"));

/// Default deadline for connecting and for retries (the issue's `--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How weir reaches a Kafka cluster: [`ConnectionConfig::new`] and its
/// `with_*` builders (the struct is `#[non_exhaustive]`: a later field
/// does not break a user's code).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// Bootstrap brokers as `host:port`.
    pub brokers: Vec<String>,
    /// Client id sent with every request.
    pub client_id: String,
    /// Deadline for connecting and for retrying retryable errors.
    pub timeout: Duration,
    /// TLS, when the listener speaks it.
    pub tls: Option<TlsOptions>,
    /// SASL authentication, when the listener requires it.
    pub sasl: Option<SaslAuth>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            brokers: vec![DEFAULT_BROKERS.to_owned()],
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            tls: None,
            sasl: None,
        }
    }
}

/// Errors raised while preparing or opening connections.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A TLS file could not be read or holds nothing usable.
    #[error("cannot use {what} \"{}\"", .path.display())]
    TlsFile {
        /// Which file (`--tls-ca`, `--tls-cert`, `--tls-key`).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it (boxed: rustls's errors are large).
        #[source]
        problem: Box<TlsFileProblem>,
    },
    /// rustls refused the assembled configuration.
    #[error("invalid TLS configuration")]
    TlsConfig(#[from] rustls::Error),
    /// The client's private key is not the key of its certificate.
    #[error(
        "the private key in --tls-key \"{}\" does not belong to the certificate in --tls-cert \"{}\"",
        .key_file.display(),
        .cert_file.display()
    )]
    ClientKeyMismatch {
        /// The certificate file (`--tls-cert`).
        cert_file: PathBuf,
        /// The key file (`--tls-key`).
        key_file: PathBuf,
    },
    /// The client's certificate and key files given the other way round.
    #[error(
        "--tls-cert \"{}\" holds a private key and --tls-key \"{}\" a certificate: swap them",
        .cert_file.display(),
        .key_file.display()
    )]
    ClientFilesSwapped {
        /// The file given as `--tls-cert` (a key).
        cert_file: PathBuf,
        /// The file given as `--tls-key` (a certificate).
        key_file: PathBuf,
    },
    /// No broker could be reached, or the handshake failed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// rskafka could not build its client.
    #[error("cannot connect to {brokers}")]
    Client {
        /// The bootstrap brokers.
        brokers: String,
        /// rskafka's error.
        source: ClientError,
    },
    /// rskafka's client did not connect before the deadline.
    #[error("cannot connect to {brokers}: no answer within {}", humantime::format_duration(*.timeout))]
    ClientTimeout {
        /// The bootstrap brokers.
        brokers: String,
        /// The deadline.
        timeout: Duration,
    },
}

/// What is wrong with a TLS file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFileProblem {
    /// It cannot be read, or is not PEM.
    #[error(transparent)]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// It holds no certificate.
    #[error("no PEM certificate in it")]
    NoCertificate,
    /// rustls refused a certificate in it.
    #[error(transparent)]
    Refused(#[from] rustls::Error),
    /// A certificate where a private key belongs.
    #[error("it holds a certificate, not a private key: is it the --tls-cert file?")]
    CertificateNotKey,
    /// A private key where a certificate belongs.
    #[error("it holds a private key, not a certificate: is it the --tls-key file?")]
    KeyNotCertificate,
}

impl ConnectionConfig {
    /// The bootstrap brokers joined by commas, for messages.
    pub fn brokers_display(&self) -> String {
        self.brokers.join(",")
    }

    /// The rustls client configuration, when TLS is on.
    ///
    /// # Errors
    ///
    /// A CA, certificate or key file that cannot be read or parsed.
    pub fn rustls_config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, ConnectError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let mut roots = RootCertStore::empty();
        match &tls.ca_file {
            Some(path) => {
                let certs = read_certs(path, "--tls-ca")?;
                for cert in certs {
                    roots.add(cert).map_err(|e| ConnectError::TlsFile {
                        what: "--tls-ca",
                        path: path.clone(),
                        problem: Box::new(e.into()),
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let builder = if tls.skip_hostname_check {
            let verifier = any_name::AnyName::new(roots, provider).map_err(|e| {
                ConnectError::TlsConfig(rustls::Error::General(format!(
                    "no certificate verifier: {e}"
                )))
            })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        } else {
            builder.with_root_certificates(roots)
        };
        let config = match &tls.client_auth {
            Some(auth) => tls_files::with_client_auth(builder, auth)?,
            None => builder.with_no_client_auth(),
        };
        Ok(Some(Arc::new(config)))
    }

    /// The retry policy handed to rskafka: short backoffs, and a deadline so
    /// that it gives up instead of retrying forever.
    pub fn backoff(&self, remaining: Duration) -> BackoffConfig {
        BackoffConfig {
            // rskafka's own defaults are 100ms initial, 500s maximum; a CLI
            // waits at most --timeout, so cap single sleeps at one second.
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 3.0,
            deadline: Some(remaining),
        }
    }

    /// The options of weir's own wire connections: the client id, the
    /// deadline, TLS (the rustls configuration built here) and SASL.
    ///
    /// # Errors
    ///
    /// A CA, certificate or key file that cannot be read or parsed.
    pub(crate) fn wire_options(&self) -> Result<WireOptions, ConnectError> {
        let tls = match (self.rustls_config()?, &self.tls) {
            (Some(config), Some(files)) => Some(WireTls {
                config,
                files: files.clone(),
            }),
            _ => None,
        };
        Ok(WireOptions {
            client_id: self.client_id.clone(),
            timeout: self.timeout,
            tls,
            sasl: self.sasl(),
        })
    }

    /// Connects to the cluster with rskafka.
    ///
    /// A first handshake through `wire` checks reachability, TLS and SASL
    /// with precise errors and within the deadline; rskafka then connects
    /// with the time that is left.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] naming the brokers when none can be reached within
    /// the deadline, or the TLS or SASL failure.
    pub async fn client(&self) -> Result<Client, ConnectError> {
        let deadline = Instant::now() + self.timeout;
        let options = self.wire_options()?;
        // Past ApiVersions: a SASL listener closes the connection of a
        // client that does not authenticate there, which rskafka would
        // retry until the deadline.
        drop(wire::connect_checked(&options, &self.brokers, deadline).await?);
        let tls = options.tls.map(|tls| tls.config);

        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut builder = ClientBuilder::new(self.brokers.clone())
            .client_id(self.client_id.as_str())
            .backoff_config(self.backoff(remaining))
            .request_timeout(request_timeout(self.timeout));
        if let Some(tls) = tls {
            builder = builder.tls_config(tls);
        }
        if let Some(sasl) = options.sasl {
            builder = builder.sasl_config(rskafka_sasl(sasl));
        }
        let brokers = self.brokers_display();
        match tokio::time::timeout_at(deadline, builder.build()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(ConnectError::Client {
                brokers,
                source: e.into(),
            }),
            Err(_) => Err(ConnectError::ClientTimeout {
                brokers,
                timeout: self.timeout,
            }),
        }
    }
}

impl ConnectionConfig {
    /// The SASL options, with a password given for OAUTHBEARER taken as
    /// a fixed token.
    fn sasl(&self) -> Option<SaslAuth> {
        match &self.sasl {
            Some(SaslAuth::Password(options))
                if options.mechanism == SaslMechanism::OAuthBearer =>
            {
                Some(SaslAuth::OAuthBearer(BearerToken::new(TokenSource::Fixed(
                    options.password.clone(),
                ))))
            }
            other => other.clone(),
        }
    }
}

/// rskafka's SASL configuration. Its OAUTHBEARER callback asks the same
/// token source for every connection it opens (rskafka reconnects after a
/// broker restart, and connects to each partition leader).
fn rskafka_sasl(sasl: SaslAuth) -> rskafka::client::SaslConfig {
    use rskafka::client::{OauthBearerCredentials, SaslConfig};
    match sasl {
        SaslAuth::Password(options) => {
            let credentials =
                Credentials::new(options.username, options.password.expose().to_owned());
            match options.mechanism {
                SaslMechanism::Plain => SaslConfig::Plain(credentials),
                SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(credentials),
                // OAUTHBEARER with a password became a token in `sasl()`.
                SaslMechanism::ScramSha512 | SaslMechanism::OAuthBearer => {
                    SaslConfig::ScramSha512(credentials)
                }
            }
        }
        SaslAuth::OAuthBearer(tokens) => SaslConfig::Oauthbearer(OauthBearerCredentials {
            callback: Arc::new(move || {
                let tokens = tokens.clone();
                Box::pin(async move {
                    match tokens.token().await {
                        Ok(token) => Ok(token.expose().to_owned()),
                        Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                    }
                })
            }),
            authz_id: None,
            bearer_kvs: Vec::new(),
        }),
    }
}

/// How long a request may go without an answer (beyond a fetch's own
/// wait) before weir closes its connection and retries it on a new one:
/// a third of `--timeout`, at least 2 s and at most 30 s (the Java
/// client's `request.timeout.ms`), so that a broker silent for a while
/// (a lost route, a stalled process) costs a retry within the deadline,
/// not the deadline. Produce requests ask the broker to answer within it.
pub fn request_timeout(timeout: Duration) -> Duration {
    (timeout / 3).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

/// A partition whose leader could not be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaderLookupError {
    /// The client gave up.
    #[error("cannot find its leader")]
    Failed(#[source] ClientError),
    /// No leader was found before the deadline.
    #[error("cannot find its leader within {} (--timeout)", humantime::format_duration(*.timeout))]
    Timeout {
        /// The deadline.
        timeout: Duration,
    },
}

/// A client for `topic`/`partition` whose leader is found within
/// `timeout`, retrying a broker that does not know the partition yet
/// (brokers learn of new topics a little after the controller).
///
/// # Errors
///
/// No leader found, or no answer within `timeout`.
pub async fn partition_client_within(
    client: &Client,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<rskafka::client::partition::PartitionClient, LeaderLookupError> {
    let opened = client.partition_client(
        topic,
        partition,
        rskafka::client::partition::UnknownTopicHandling::Retry,
    );
    match tokio::time::timeout(timeout, opened).await {
        Ok(Ok(pc)) => Ok(pc),
        Ok(Err(e)) => Err(LeaderLookupError::Failed(e.into())),
        Err(_) => Err(LeaderLookupError::Timeout { timeout }),
    }
}

/// An rskafka client error, shown as one sentence:
/// the innermost failure, or the broker's refusal as Kafka names it.
///
/// It has no `source`: rskafka's errors write their causes into their own
/// text (and its connection error hides its cause from `source`), so the
/// one sentence is the whole chain, and `{:#}` prints each cause once.
/// Clones share the error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", client_error_text(.0))]
pub struct ClientError(Arc<rskafka::client::error::Error>);

impl ClientError {
    /// Whether the broker refused the request because a newer producer of
    /// the same transactional id started (the producer is fenced).
    pub fn is_fenced(&self) -> bool {
        use rskafka::client::error::{Error, ProtocolError};
        matches!(
            *self.0,
            Error::ServerError {
                protocol_error: ProtocolError::ProducerFenced | ProtocolError::InvalidProducerEpoch,
                ..
            }
        )
    }
}

impl From<rskafka::client::error::Error> for ClientError {
    fn from(e: rskafka::client::error::Error) -> Self {
        Self(Arc::new(e))
    }
}

/// An rskafka error as one sentence: the innermost failure, without the
/// nested "All retries failed" chain of rskafka's retry loops. A broker's
/// refusal is named as Kafka names it (`INVALID_TIMESTAMP`), with the
/// broker's own message; rskafka's text for it adds a `Debug` dump of its
/// request context, which the caller's error, naming topic and partition,
/// says better. A connection failure names its broker.
pub(crate) fn client_error_text(e: &rskafka::client::error::Error) -> String {
    use rskafka::client::error::{Error, ProtocolError};

    let mut innermost: &(dyn std::error::Error + 'static) = e;
    while let Some(source) = cause(innermost) {
        innermost = source;
    }
    match innermost.downcast_ref::<Error>() {
        Some(Error::ServerError {
            protocol_error,
            error_message,
            ..
        }) => {
            let name = match protocol_error {
                // Not a refusal: no Kafka error has this code, so the
                // response is damaged (or from a broker newer than weir).
                ProtocolError::Unknown(code) => {
                    return format!(
                        "the broker answered error code {code}, which Kafka does not define"
                    );
                }
                known => kafka_error_name(&format!("{known:?}")),
            };
            match error_message.as_deref().map(str::trim) {
                Some(message) if !message.is_empty() => {
                    format!("the broker refused it: {name}: {message}")
                }
                _ => format!("the broker refused it: {name}"),
            }
        }
        _ => innermost.to_string(),
    }
}

/// The error's cause. rskafka's connection error wraps its retry loop's
/// error in its text but not as its `source`; this one is followed too.
fn cause<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    use rskafka::client::error::RequestError;
    if let Some(RequestError::Poisoned(first)) = e.downcast_ref::<RequestError>() {
        // The error that broke the connection, not "Connection is
        // poisoned: ..." around it.
        return Some(first.as_ref());
    }
    match e.downcast_ref::<rskafka::ConnectionError>() {
        Some(rskafka::ConnectionError::RetryFailed(backoff)) => Some(backoff),
        _ => e.source(),
    }
}

/// `InvalidTimestamp` as Kafka's protocol docs write it: `INVALID_TIMESTAMP`.
fn kafka_error_name(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_refusals_read_as_kafka_names_them() {
        use rskafka::client::error::{Error, ProtocolError, RequestContext};

        let refused = |protocol_error, error_message: Option<&str>| Error::ServerError {
            protocol_error,
            error_message: error_message.map(str::to_owned),
            request: RequestContext::Partition("t".into(), 0),
            response: None,
            is_virtual: false,
        };
        let e = refused(
            ProtocolError::InvalidTimestamp,
            Some("One or more records have been rejected due to invalid timestamp"),
        );
        assert_eq!(
            client_error_text(&e),
            "the broker refused it: INVALID_TIMESTAMP: One or more records have been rejected due to invalid timestamp"
        );
        // rskafka's own text dumps its request context.
        assert!(e.to_string().contains("Partition(\"t\", 0)"));
        assert_eq!(
            client_error_text(&refused(ProtocolError::NotEnoughReplicasAfterAppend, None)),
            "the broker refused it: NOT_ENOUGH_REPLICAS_AFTER_APPEND"
        );
        assert_eq!(
            client_error_text(&refused(ProtocolError::Unknown(999), Some(" "))),
            "the broker answered error code 999, which Kafka does not define"
        );
        assert_eq!(client_error_text(&Error::Timeout), "Timeout");
    }

    #[test]
    fn a_connection_retry_chain_reads_as_its_last_failure() {
        use rskafka::{BackoffError, ConnectionError, client::error::Error};

        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::Connection(ConnectionError::RetryFailed(
            BackoffError::DeadlineExceded {
                deadline: Duration::from_secs(2),
                source: Box::new(refused),
            },
        ));
        assert!(e.to_string().contains("retries failed"), "{e}");
        assert_eq!(client_error_text(&e), "refused");
    }

    #[test]
    fn password_is_redacted_in_debug() {
        let sasl = SaslOptions {
            mechanism: SaslMechanism::ScramSha512,
            username: "alice".into(),
            password: Password::new("s3cret-value"),
        };
        let shown = format!("{sasl:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("s3cret-value"), "{shown}");
    }

    #[test]
    fn mechanism_names_round_trip() {
        for m in [
            SaslMechanism::Plain,
            SaslMechanism::ScramSha256,
            SaslMechanism::ScramSha512,
            SaslMechanism::OAuthBearer,
        ] {
            assert_eq!(m.as_str().parse::<SaslMechanism>().unwrap(), m);
        }
        assert!("scram-sha-512".parse::<SaslMechanism>().is_ok());
        assert!("GSSAPI".parse::<SaslMechanism>().is_err());
    }

    #[test]
    fn missing_ca_file_names_the_flag_and_path() {
        let config = ConnectionConfig {
            tls: Some(TlsOptions {
                ca_file: Some("/nonexistent/ca.pem".into()),
                client_auth: None,
                skip_hostname_check: false,
            }),
            ..Default::default()
        };
        let err = config.rustls_config().unwrap_err().to_string();
        assert!(err.contains("--tls-ca"), "{err}");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn client_certificate_loads_and_bad_key_names_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_file = dir.path().join("client.pem");
        let key_file = dir.path().join("client.key");
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let mut config = ConnectionConfig {
            tls: Some(TlsOptions {
                ca_file: None,
                client_auth: Some(ClientAuth {
                    cert_file,
                    key_file: key_file.clone(),
                }),
                skip_hostname_check: false,
            }),
            ..Default::default()
        };
        let tls = config.rustls_config().unwrap().unwrap();
        assert!(tls.client_auth_cert_resolver.has_certs());

        std::fs::write(&key_file, "not a key").unwrap();
        if let Some(tls) = config.tls.as_mut() {
            tls.client_auth.as_mut().unwrap().key_file = key_file;
        }
        let err = config.rustls_config().unwrap_err().to_string();
        assert!(err.contains("--tls-key"), "{err}");
    }

    #[test]
    fn default_roots_are_compiled_in() {
        let config = ConnectionConfig {
            tls: Some(TlsOptions::default()),
            ..Default::default()
        };
        assert!(config.rustls_config().unwrap().is_some());
        assert!(!webpki_roots::TLS_SERVER_ROOTS.is_empty());
    }
}
