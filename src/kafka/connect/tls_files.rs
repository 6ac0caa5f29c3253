//! Reading the TLS files (`--tls-ca`, `--tls-cert`, `--tls-key`), with
//! messages that say which file holds what when one is given for another.

use std::path::Path;

use rustls::client::WantsClientCert;
use rustls::{ClientConfig, ConfigBuilder};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{ClientAuth, ConnectError, TlsFileProblem};

/// What a PEM file holds, judged by its section labels.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Holds {
    certificate: bool,
    private_key: bool,
}

impl Holds {
    /// Looks at the file's `-----BEGIN ...-----` lines; a file that cannot
    /// be read holds nothing.
    fn file(path: &Path) -> Self {
        let text = std::fs::read(path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let mut holds = Self::default();
        for line in text.lines() {
            let Some(label) = line
                .trim()
                .strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
            else {
                continue;
            };
            // CERTIFICATE (and X509 / TRUSTED CERTIFICATE), PRIVATE KEY,
            // RSA PRIVATE KEY, EC PRIVATE KEY, ENCRYPTED PRIVATE KEY.
            holds.certificate |= label.ends_with("CERTIFICATE");
            holds.private_key |= label.ends_with("PRIVATE KEY");
        }
        holds
    }
}

/// The certificates of a PEM file.
///
/// # Errors
///
/// [`ConnectError::TlsFile`] naming the file as `what`: unreadable, not
/// PEM, or without a certificate (saying so when it holds a private key).
pub(super) fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let err = |problem: TlsFileProblem| ConnectError::TlsFile {
        what,
        path: path.to_owned(),
        problem: Box::new(problem),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.into()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.into()))?;
    if certs.is_empty() {
        if Holds::file(path).private_key {
            return Err(err(TlsFileProblem::KeyNotCertificate));
        }
        return Err(err(TlsFileProblem::NoCertificate));
    }
    Ok(certs)
}

/// `builder` with the client certificate and key of `auth`.
///
/// # Errors
///
/// A file that cannot be read or holds the wrong thing (naming which file
/// holds what, or both when they are swapped), or a key that is not the
/// certificate's, naming both files once.
pub(super) fn with_client_auth(
    builder: ConfigBuilder<ClientConfig, WantsClientCert>,
    auth: &ClientAuth,
) -> Result<ClientConfig, ConnectError> {
    let swapped = || {
        let (cert, key) = (Holds::file(&auth.cert_file), Holds::file(&auth.key_file));
        (cert.private_key && !cert.certificate && key.certificate && !key.private_key).then(|| {
            ConnectError::ClientFilesSwapped {
                cert_file: auth.cert_file.clone(),
                key_file: auth.key_file.clone(),
            }
        })
    };
    let chain = read_certs(&auth.cert_file, "--tls-cert").map_err(|e| swapped().unwrap_or(e))?;
    let key = PrivateKeyDer::from_pem_file(&auth.key_file).map_err(|e| {
        let problem = match e {
            rustls_pki_types::pem::Error::NoItemsFound
                if Holds::file(&auth.key_file).certificate =>
            {
                TlsFileProblem::CertificateNotKey
            }
            other => other.into(),
        };
        ConnectError::TlsFile {
            what: "--tls-key",
            path: auth.key_file.clone(),
            problem: Box::new(problem),
        }
    })?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => ConnectError::ClientKeyMismatch {
                cert_file: auth.cert_file.clone(),
                key_file: auth.key_file.clone(),
            },
            other => ConnectError::TlsConfig(other),
        })
}
