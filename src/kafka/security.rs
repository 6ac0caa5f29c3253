//! How a connection is secured and authenticated: TLS files and SASL
//! credentials. Both the rskafka client and weir's own wire connections
//! take these, so they sit below both.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use crate::kafka::secret::Password;
pub use crate::kafka::token::{BearerToken, Token, TokenError, TokenSource};

/// TLS options. Without a CA file the trust roots compiled into weir (the
/// Mozilla set from `webpki-roots`) are used, so no `/etc/ssl` is needed.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM file with the CA certificates to trust instead of the defaults.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    pub client_auth: Option<ClientAuth>,
    /// Accept a broker certificate that does not name the host connected
    /// to (the Java client's `ssl.endpoint.identification.algorithm=`):
    /// its chain, dates and usage are still checked.
    pub skip_hostname_check: bool,
}

/// A client certificate chain and its private key, both PEM files.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    /// PEM file with the client certificate chain.
    pub cert_file: PathBuf,
    /// PEM file with the client's private key.
    pub key_file: PathBuf,
}

/// SASL mechanisms weir speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslMechanism {
    /// `PLAIN` (RFC 4616): only sensible over TLS.
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER` (RFC 7628): a bearer token instead of a password.
    OAuthBearer,
}

impl SaslMechanism {
    /// The mechanism's name as Kafka spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SASL mechanism name weir does not speak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown SASL mechanism \"{0}\" (expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)"
)]
pub struct UnknownSaslMechanism(pub String);

impl FromStr for SaslMechanism {
    type Err = UnknownSaslMechanism;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Self::Plain),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            "OAUTHBEARER" => Ok(Self::OAuthBearer),
            _ => Err(UnknownSaslMechanism(s.to_owned())),
        }
    }
}

/// How a connection authenticates with SASL.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SaslAuth {
    /// PLAIN or SCRAM: a user name and a password.
    Password(SaslOptions),
    /// OAUTHBEARER: a bearer token, fetched for each new connection.
    OAuthBearer(BearerToken),
}

impl SaslAuth {
    /// The mechanism used.
    pub fn mechanism(&self) -> SaslMechanism {
        match self {
            Self::Password(options) => options.mechanism,
            Self::OAuthBearer(_) => SaslMechanism::OAuthBearer,
        }
    }
}

impl From<SaslOptions> for SaslAuth {
    fn from(options: SaslOptions) -> Self {
        Self::Password(options)
    }
}

impl From<BearerToken> for SaslAuth {
    fn from(token: BearerToken) -> Self {
        Self::OAuthBearer(token)
    }
}

/// SASL credentials of the mechanisms that take a password.
#[derive(Debug, Clone)]
pub struct SaslOptions {
    /// Mechanism to authenticate with.
    pub mechanism: SaslMechanism,
    /// User name.
    pub username: String,
    /// Password; never printed.
    pub password: Password,
}
