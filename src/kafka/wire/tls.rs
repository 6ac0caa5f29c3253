//! The TLS side of a wire connection: the handshake, and failures that
//! say which certificate was refused and what to do about it.

use std::pin::Pin;
use std::task::{Context, Poll};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::TlsFailure;
use super::{WireError, WireTls};
use crate::kafka::security::TlsOptions;

/// TCP or TLS, behind one type so the connection code does not care.
pub(super) enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// A scripted broker in the same process (`wire/fake.rs`).
    #[cfg(test)]
    Memory(tokio::io::DuplexStream),
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
            #[cfg(test)]
            Self::Memory(s) => Pin::new(s).poll_read(cx, buf),
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
            #[cfg(test)]
            Self::Memory(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
            #[cfg(test)]
            Self::Memory(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(test)]
            Self::Memory(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The TLS handshake on `tcp` with `broker`.
pub(super) async fn handshake(
    tcp: TcpStream,
    broker: &str,
    tls: &WireTls,
) -> Result<Transport, WireError> {
    let host = broker.rsplit_once(':').map_or(broker, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).map_err(|source| WireError::Tls {
        broker: broker.to_owned(),
        failure: Box::new(TlsFailure::ServerName {
            host: host.to_owned(),
            source,
        }),
    })?;
    let stream = TlsConnector::from(tls.config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| WireError::Tls {
            broker: broker.to_owned(),
            failure: Box::new(describe_tls_error(e, host, Some(&tls.files))),
        })?;
    Ok(Transport::Tls(Box::new(stream)))
}

/// Says plainly when a TLS failure was a certificate, and what to do.
fn describe_tls_error(e: std::io::Error, host: &str, options: Option<&TlsOptions>) -> TlsFailure {
    if let Some(failure) = client_certificate_alert(&e, options) {
        return failure;
    }
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(certificate)) => TlsFailure::ServerCertificate {
            certificate: certificate.clone(),
            host: host.to_owned(),
            ca_file: options.and_then(|t| t.ca_file.clone()),
        },
        Some(other) => TlsFailure::Rustls(other.clone()),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => TlsFailure::Closed,
        None => TlsFailure::Io(e),
    }
}

/// Turns a broken first request into the TLS error it is when the broker
/// refused the client certificate.
///
/// In TLS 1.3 the client's side of the handshake ends before the broker
/// has checked the client's certificate, so the broker's refusal arrives
/// as an alert on the first read (ApiVersions). As an I/O error it would be
/// retried until the deadline, though no retry can change the answer.
pub(super) fn client_certificate_refused(e: WireError, options: Option<&TlsOptions>) -> WireError {
    match e {
        WireError::Io {
            broker,
            api,
            source,
        } => match client_certificate_alert(&source, options) {
            Some(failure) => WireError::Tls {
                broker,
                failure: Box::new(failure),
            },
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
fn client_certificate_alert(
    e: &std::io::Error,
    options: Option<&TlsOptions>,
) -> Option<TlsFailure> {
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
        None => TlsFailure::ClientCertificateMissing { alert },
        Some(auth) => TlsFailure::ClientCertificateRejected {
            cert_file: auth.cert_file.clone(),
            alert,
        },
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
        let text = crate::ErrorChain(&missing).to_string();
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
                skip_hostname_check: false,
            }),
        );
        assert!(!wrong.is_retryable());
        let text = crate::ErrorChain(&wrong).to_string();
        assert!(text.contains("rejected the client certificate"), "{text}");
        assert!(text.contains("/certs/me.pem"), "{text}");
    }

    /// The one line the binary prints for a handshake that failed so.
    fn refusal(certificate: rustls::CertificateError, ca_file: Option<&str>) -> String {
        let e = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(certificate),
        );
        let options = TlsOptions {
            ca_file: ca_file.map(Into::into),
            client_auth: None,
            skip_hostname_check: false,
        };
        let failure = describe_tls_error(e, "127.0.0.1", Some(&options));
        let text = crate::ErrorChain(&failure).to_string();
        for internal in ["Context", "UnixTime", "IpAddress", "Ipv4Addr", "{", "(["] {
            assert!(!text.contains(internal), "{internal:?} in: {text}");
        }
        assert!(!text.contains('\n'), "{text}");
        text
    }

    #[test]
    fn a_refused_broker_certificate_is_said_in_words() {
        use rustls::CertificateError as E;
        use rustls_pki_types::UnixTime;
        let at = |secs| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));

        // The case: expired on 2020-02-01, checked on 2026-12-07.
        let text = refusal(
            E::ExpiredContext {
                time: at(1_796_641_861),
                not_after: at(1_580_515_200),
            },
            None,
        );
        assert_eq!(
            text,
            "the broker's certificate was rejected: it expired at 2020-02-01T00:00:00Z \
             (the clock here says 2026-12-07T11:11:01Z)"
        );
        let text = refusal(
            E::NotValidYetContext {
                time: at(1_580_515_200),
                not_before: at(1_796_641_861),
            },
            None,
        );
        assert!(
            text.contains(
                "not valid before 2026-12-07T11:11:01Z (the clock here says 2020-02-01T00:00:00Z)"
            ),
            "{text}"
        );

        let ip = ServerName::try_from("127.0.0.1").unwrap().to_owned();
        let text = refusal(
            E::NotValidForNameContext {
                expected: ip.clone(),
                // As webpki hands them to rustls.
                presented: vec![
                    "DnsName(\"kafka-1.example.com\")".to_owned(),
                    "IpAddress(10.0.0.7)".to_owned(),
                ],
            },
            None,
        );
        assert_eq!(
            text,
            "the broker's certificate was rejected: it is not valid for \"127.0.0.1\", the name \
             connected to; it is for kafka-1.example.com, 10.0.0.7 (connect with -b to a name it \
             is for, or skip the name check with --tls-skip-hostname-check)"
        );
        let text = refusal(
            E::NotValidForNameContext {
                expected: ip,
                presented: Vec::new(),
            },
            None,
        );
        assert!(text.contains("it names no host"), "{text}");

        let text = refusal(E::UnknownIssuer, Some("/certs/ca.pem"));
        assert_eq!(
            text,
            "the broker's certificate was rejected: it is not signed by a CA trusted here, the \
             CAs in --tls-ca \"/certs/ca.pem\""
        );
        let text = refusal(E::UnknownIssuer, None);
        assert!(
            text.contains("default CA roots") && text.contains("--tls-ca"),
            "{text}"
        );
    }

    #[test]
    fn alerts_read_as_the_rfc_names_them() {
        let missing = client_certificate_refused(
            io_error(alert(rustls::AlertDescription::CertificateRequired)),
            None,
        );
        let text = crate::ErrorChain(&missing).to_string();
        assert!(text.contains("(alert certificate_required)"), "{text}");
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
