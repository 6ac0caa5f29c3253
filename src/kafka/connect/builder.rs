//! Builders for [`ConnectionConfig`] and [`TlsOptions`]: a library user
//! starts from the brokers (or `Default`) and names only what differs.

use std::path::PathBuf;
use std::time::Duration;

use super::{ClientAuth, ConnectionConfig, SaslAuth, TlsOptions};

impl ConnectionConfig {
    /// The defaults, with these bootstrap brokers (`host:port`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::ConnectionConfig;
    ///
    /// let connection = ConnectionConfig::new(["kafka-1:9092", "kafka-2:9092"])
    ///     .with_timeout(Duration::from_secs(10));
    /// assert_eq!(connection.brokers.len(), 2);
    /// ```
    pub fn new<B: Into<String>>(brokers: impl IntoIterator<Item = B>) -> Self {
        Self {
            brokers: brokers.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// With [`client_id`](Self::client_id).
    #[must_use]
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// With [`timeout`](Self::timeout).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// With TLS ([`tls`](Self::tls)).
    #[must_use]
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// With SASL authentication (the `sasl` field).
    #[must_use]
    pub fn with_sasl(mut self, sasl: SaslAuth) -> Self {
        self.sasl = Some(sasl);
        self
    }
}

impl TlsOptions {
    /// With [`ca_file`](Self::ca_file): these CA certificates instead of
    /// the compiled-in roots.
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// With a client certificate chain and its key (mutual TLS).
    #[must_use]
    pub fn with_client_auth(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.client_auth = Some(ClientAuth {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
        });
        self
    }

    /// With [`skip_hostname_check`](Self::skip_hostname_check).
    #[must_use]
    pub fn with_skip_hostname_check(mut self, skip: bool) -> Self {
        self.skip_hostname_check = skip;
        self
    }
}
