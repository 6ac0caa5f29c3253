//! The errors of weir's own connections to brokers, each naming the
//! broker, and which of them waiting and trying again may cure.

use std::path::PathBuf;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use rustls::AlertDescription;

/// Errors of weir's own connections to brokers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The TCP connection could not be opened.
    #[error("error connecting to broker \"{broker}\"")]
    Connect {
        /// `host:port` of the broker.
        broker: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The broker's address could not be resolved.
    #[error(
        "cannot resolve broker address \"{broker}\" (name resolution needs /etc/resolv.conf \
         and /etc/hosts; in a scratch container give the broker as an IP address)"
    )]
    Resolve {
        /// `host:port` of the broker.
        broker: String,
        /// Why resolution failed.
        source: std::io::Error,
    },
    /// The TLS handshake failed; most often the certificate was rejected.
    #[error("TLS handshake with broker \"{broker}\" failed")]
    Tls {
        /// `host:port` of the broker.
        broker: String,
        /// What went wrong, with a hint for certificate errors (boxed:
        /// rustls's errors are large).
        #[source]
        failure: Box<TlsFailure>,
    },
    /// SASL authentication failed.
    #[error("SASL {mechanism} authentication as \"{username}\" with broker \"{broker}\" failed")]
    Authentication {
        /// `host:port` of the broker.
        broker: String,
        /// The mechanism tried.
        mechanism: &'static str,
        /// The user name tried.
        username: String,
        /// The broker's refusal (boxed: every error of a connection
        /// carries this one's size).
        #[source]
        refusal: Box<SaslRefusal>,
    },
    /// SASL OAUTHBEARER authentication failed: the broker refused the token.
    #[error("SASL OAUTHBEARER authentication with broker \"{broker}\" failed")]
    BearerAuthentication {
        /// `host:port` of the broker.
        broker: String,
        /// The broker's refusal, and weir's guess at it.
        #[source]
        refusal: BearerRefusal,
    },
    /// No OAUTHBEARER token could be had for the connection.
    #[error("SASL OAUTHBEARER with broker \"{broker}\": no token")]
    NoToken {
        /// `host:port` of the broker.
        broker: String,
        /// Why.
        source: crate::kafka::token::TokenError,
    },
    /// The connection broke while a request was under way.
    #[error("connection to broker \"{broker}\" failed during {api}")]
    Io {
        /// `host:port` of the broker.
        broker: String,
        /// The request under way.
        api: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// A request could not be encoded or a response not decoded.
    #[error("protocol error with broker \"{broker}\" in {api}")]
    Protocol {
        /// `host:port` of the broker.
        broker: String,
        /// The request under way.
        api: String,
        /// What could not be encoded or decoded.
        #[source]
        fault: ProtocolFault,
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
    #[error("no broker reachable at {brokers} within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The brokers tried.
        brokers: String,
        /// The deadline.
        timeout: Duration,
        /// The last attempt's failure.
        #[source]
        last: LastAttempt,
    },
}

impl WireError {
    /// Whether waiting and trying again may help.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Io { .. } => true,
            // A broker going down closes connections too: only a listener
            // that does so every time is taken for one that wants SASL
            // (see `connect_checked`).
            Self::Protocol {
                fault: ProtocolFault::ClosedAtOnce,
                ..
            } => true,
            // A damaged response (a cut or flipped frame, one out of step):
            // a failed attempt like a broken connection, which is
            // replaced. What answers and is not Kafka at all is `NotKafka`.
            Self::Protocol {
                fault: ProtocolFault::Decode(_) | ProtocolFault::Correlation { .. },
                ..
            } => true,
            Self::Broker { error, .. } => error.is_retriable(),
            _ => false,
        }
    }
}

/// Why a TLS handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The broker's host is not a name or address TLS can verify.
    #[error("invalid server name \"{host}\"")]
    ServerName {
        /// The host part of the broker's address.
        host: String,
        /// rustls's complaint.
        source: rustls_pki_types::InvalidDnsNameError,
    },
    /// The broker's certificate did not verify.
    #[error("the broker's certificate was rejected: {}", server_certificate_problem(.certificate, .host, .ca_file.as_deref()))]
    ServerCertificate {
        /// What rustls found wrong with it.
        certificate: rustls::CertificateError,
        /// The host name or address it was checked for.
        host: String,
        /// The CA file it was checked against, or `None` for the default
        /// roots.
        ca_file: Option<PathBuf>,
    },
    /// The broker wants a client certificate and none was given.
    #[error(
        "the broker requires a client certificate and none was given (alert {}); pass \
         one with --tls-cert and --tls-key",
        alert_name(*.alert)
    )]
    ClientCertificateMissing {
        /// The TLS alert the broker sent.
        alert: AlertDescription,
    },
    /// The broker refused the client certificate given.
    #[error(
        "the broker rejected the client certificate \"{}\" (alert {}); is it signed by \
         a CA the broker trusts, and valid?",
        .cert_file.display(),
        alert_name(*.alert)
    )]
    ClientCertificateRejected {
        /// The certificate file (`--tls-cert`).
        cert_file: PathBuf,
        /// The TLS alert the broker sent.
        alert: AlertDescription,
    },
    /// The connection ended before the handshake did.
    #[error("the broker closed the connection during the handshake (is the listener TLS?)")]
    Closed,
    /// Any other TLS failure.
    #[error(transparent)]
    Rustls(rustls::Error),
    /// The socket failed during the handshake.
    #[error(transparent)]
    Io(std::io::Error),
}

/// What is wrong with the broker's certificate, in words and times a
/// user reads (rustls's own text gives Unix seconds, its `Debug` its
/// structures), with what to do where that is clear.
fn server_certificate_problem(
    certificate: &rustls::CertificateError,
    host: &str,
    ca_file: Option<&std::path::Path>,
) -> String {
    use rustls::CertificateError as E;
    let time = |t: &rustls_pki_types::UnixTime| {
        crate::timestamp::rfc3339(i64::try_from(t.as_secs()).unwrap_or(i64::MAX) * 1000)
    };
    let trusted = || match ca_file {
        Some(ca) => format!("the CAs in --tls-ca \"{}\"", ca.display()),
        None => "the default CA roots; if it is signed by a private CA, pass that CA with \
                 --tls-ca"
            .to_owned(),
    };
    match certificate {
        E::ExpiredContext {
            time: now,
            not_after,
        } => format!(
            "it expired at {} (the clock here says {})",
            time(not_after),
            time(now)
        ),
        E::Expired => "it has expired".to_owned(),
        E::NotValidYetContext {
            time: now,
            not_before,
        } => format!(
            "it is not valid before {} (the clock here says {})",
            time(not_before),
            time(now)
        ),
        E::NotValidYet => "it is not valid yet".to_owned(),
        E::NotValidForNameContext {
            expected,
            presented,
        } => {
            let is_for = match presented.as_slice() {
                [] => "it names no host".to_owned(),
                names => format!(
                    "it is for {}",
                    names
                        .iter()
                        .map(|n| presented_name(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            format!(
                "it is not valid for \"{}\", the name connected to; {is_for} (connect with -b \
                 to a name it is for, or skip the name check with --tls-skip-hostname-check)",
                expected.to_str()
            )
        }
        E::NotValidForName => format!("it is not valid for \"{host}\", the name connected to"),
        E::UnknownIssuer => format!("it is not signed by a CA trusted here, {}", trusted()),
        E::BadSignature => format!("its signature does not verify against {}", trusted()),
        E::Revoked => "it has been revoked".to_owned(),
        other => format!("{other} (checked against {})", trusted()),
    }
}

/// A name a certificate presents, as rustls gives it (webpki's `Debug`:
/// `DnsName("kafka-1")`, `IpAddress(10.0.0.7)`), without the wrapping.
fn presented_name(name: &str) -> &str {
    for (open, close) in [("DnsName(\"", "\")"), ("IpAddress(", ")")] {
        if let Some(inner) = name.strip_prefix(open).and_then(|n| n.strip_suffix(close)) {
            return inner;
        }
    }
    name
}

/// A TLS alert as RFC 8446 names it (`bad_certificate`), not as rustls's
/// enum variant.
fn alert_name(alert: AlertDescription) -> String {
    let mut name = String::new();
    for (i, c) in format!("{alert:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// Why a broker refused a SASL authentication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaslRefusal {
    /// The broker does not offer the mechanism.
    #[error("the broker does not offer it{}", if .offered.is_empty() {
        ", and names no mechanism it does offer".to_owned()
    } else {
        format!(" (it offers: {})", .offered.join(", "))
    })]
    MechanismNotOffered {
        /// The mechanisms it offers.
        offered: Vec<String>,
    },
    /// The broker refused the SASL handshake with another error.
    #[error("the broker refused the SASL handshake with {}; {}", error_name(*.error_code), if .offered.is_empty() {
        "it names no SASL mechanism: is this a SASL listener?".to_owned()
    } else {
        format!("it offers: {}", .offered.join(", "))
    })]
    Handshake {
        /// Its error code.
        error_code: i16,
        /// The mechanisms it offers.
        offered: Vec<String>,
    },
    /// The broker's answer in the exchange did not verify.
    #[error("the broker's answer did not verify")]
    NotVerified(#[source] rskafka::sasl::MechanismError),
    /// The broker closed the connection (some brokers do on a bad login).
    #[error("the broker closed the connection")]
    Closed,
    /// The broker answered SaslAuthenticate with an error code.
    #[error("{}{}", error_name(*.error_code), .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Refused {
        /// Its error code.
        error_code: i16,
        /// Its message, when it sent one.
        message: Option<String>,
    },
    /// The broker answered the token with an error (OAUTHBEARER's
    /// challenge, RFC 7628 3.2.2).
    #[error("the broker refused the token: {status}")]
    Token {
        /// The challenge, as text (`{"status":"invalid_token"}`).
        status: String,
    },
}

/// An OAUTHBEARER refusal, with weir's guess at its cause from the token
/// (expired, or without an expiry to check).
#[derive(Debug)]
pub struct BearerRefusal {
    /// The refusal.
    pub refusal: SaslRefusal,
    /// The guess, when there is one.
    pub hint: Option<String>,
}

impl std::fmt::Display for BearerRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.refusal)?;
        match &self.hint {
            Some(hint) => write!(f, " ({hint})"),
            None => Ok(()),
        }
    }
}

/// The refusal's own cause, as the refusal's: the hint follows the
/// refusal's text, so the refusal is written here rather than chained.
impl std::error::Error for BearerRefusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.refusal)
    }
}

/// A Kafka error code as Kafka names it, or the number for one weir does
/// not know.
fn error_name(code: i16) -> String {
    ResponseError::try_from_code(code)
        .map_or_else(|| format!("error code {code}"), |e| e.to_string())
}

/// What went wrong encoding a request or decoding its response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolFault {
    /// The request could not be encoded.
    #[error("cannot encode the request")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The request is larger than a Kafka frame can say.
    #[error("the request is too large ({bytes} bytes)")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// The broker answered ApiVersions, then closed the connection at the
    /// first other request: the listener wants SASL (or TLS).
    #[error(
        "the broker closed the connection at once, after ApiVersions: does this listener need SASL or TLS? (--sasl-mechanism, --tls)"
    )]
    ClosedAtOnce,
    /// A TLS listener answered plain Kafka bytes.
    #[error("the broker answered with TLS: this listener needs --tls (or --tls-ca)")]
    TlsListener,
    /// The response is to another request.
    #[error("response correlation id {received} does not match request {sent}")]
    Correlation {
        /// The id in the response.
        received: i32,
        /// The id sent.
        sent: i32,
    },
    /// The response could not be decoded.
    #[error("cannot decode the response")]
    Decode(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The last failure before a connection's deadline passed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LastAttempt {
    /// No broker was given to try.
    #[error("no broker given")]
    NoBroker,
    /// The first attempt was still under way at the deadline.
    #[error(
        "connecting to \"{broker}\" did not complete{}",
        if *.by_name {
            // musl's resolver without /etc/resolv.conf can take longer
            // than a short --timeout to give up.
            " (if name resolution is unavailable, as in a scratch container, give the broker \
             as an IP address)"
        } else {
            ""
        }
    )]
    Unfinished {
        /// `host:port` of the broker.
        broker: String,
        /// Whether it was given by name rather than as an IP address.
        by_name: bool,
    },
    /// The last attempt that failed.
    #[error(transparent)]
    Failed(Box<WireError>),
}
