//! The errors of weir's own connections to brokers, each naming the
//! broker, and which of them waiting and trying again may cure.

use std::time::Duration;

use kafka_protocol::error::ResponseError;

/// Errors of weir's own connections to brokers.
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
    /// SASL OAUTHBEARER authentication failed: the broker refused the token.
    #[error("SASL OAUTHBEARER authentication with broker \"{broker}\" failed: {reason}")]
    BearerAuthentication {
        /// `host:port` of the broker.
        broker: String,
        /// The broker's reason, and weir's guess at it.
        reason: String,
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
