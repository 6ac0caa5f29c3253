//! TLS refusals said in words, in one line, without rustls's structures:
//! a broker certificate that expired or is for another name (served by a
//! local TLS server with certificates made here, since the test broker's
//! own certificate is valid), and client certificate and key files that
//! do not go together or are given for each other.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{Run, run, weir};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Words of rustls's `Debug` output that must never reach a user.
const INTERNALS: &[&str] = &[
    "Context",
    "UnixTime",
    "IpAddress",
    "Ipv4Addr",
    "KeyMismatch",
    "no items found",
];

/// A CA, written to `ca.pem` in `dir`, that signs the server certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    file: PathBuf,
}

impl Ca {
    fn new(dir: &Path) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "weir refusals test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let file = dir.join("ca.pem");
        std::fs::write(&file, issuer.as_ref().pem()).unwrap();
        Self { issuer, file }
    }

    /// A server certificate for `names`, valid over `valid` when given.
    fn server(
        &self,
        names: &[&str],
        valid: Option<(Ymd, Ymd)>,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        if let Some((from, to)) = valid {
            params.not_before = date_time_ymd(from.0, from.1, from.2);
            params.not_after = date_time_ymd(to.0, to.1, to.2);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (cert.der().clone(), key)
    }
}

/// A date as `(year, month, day)`.
type Ymd = (i32, u8, u8);

/// A TLS server on 127.0.0.1 that presents one certificate and reads
/// until the client gives up. Dropping it stops and joins its thread.
struct TlsServer {
    address: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    fn start((cert, key): (CertificateDer<'static>, PrivateKeyDer<'static>)) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(tcp) = tcp else { continue };
                    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    // Drives the handshake; ends when the client refuses.
                    let _ = tls.read(&mut [0; 64]);
                }
            })
        };
        Self {
            address,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(&self.address);
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

/// Exit 1 and one line on stderr free of rustls's structures; the line.
fn one_clean_line<'a>(run: &'a Run, what: &str) -> &'a str {
    run.expect_code(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line:\n{}", run.stderr);
    for internal in INTERNALS {
        assert!(
            !lines[0].contains(internal),
            "{what}: {internal:?} in: {}",
            lines[0]
        );
    }
    lines[0]
}

fn says(line: &str, part: &str) {
    assert!(line.contains(part), "{part:?} not in: {line}");
}

fn list_topics(broker: &str, tls: &[&str]) -> Run {
    let mut cmd = weir();
    cmd.args(["topics", "list", "-b", broker, "--timeout", "20s"])
        .args(tls);
    run(&mut cmd)
}

#[test]
fn an_expired_or_misnamed_broker_certificate_is_said_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let ca_arg = ca.file.display().to_string();

    let expired = TlsServer::start(ca.server(&["127.0.0.1"], Some(((2019, 1, 1), (2020, 2, 1)))));
    let refused = list_topics(&expired.address, &["--tls-ca", &ca_arg]);
    let line = one_clean_line(&refused, "expired");
    says(line, &expired.address);
    says(line, "it expired at 2020-02-01T00:00:00Z");
    says(line, "(the clock here says 20");

    let misnamed = TlsServer::start(ca.server(&["kafka-1.example.com", "10.0.0.7"], None));
    let refused = list_topics(&misnamed.address, &["--tls-ca", &ca_arg]);
    let line = one_clean_line(&refused, "misnamed");
    says(line, &misnamed.address);
    says(line, "not valid for \"127.0.0.1\", the name connected to");
    says(line, "it is for kafka-1.example.com, 10.0.0.7");

    // The same servers with the right certificate are trusted: the
    // refusals above were the certificates'.
    let fine = TlsServer::start(ca.server(&["127.0.0.1"], None));
    let mut cmd = weir();
    cmd.args(["topics", "list", "-b", &fine.address, "--timeout", "1s"])
        .args(["--tls-ca", &ca_arg]);
    let run = run(&mut cmd);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        !run.stderr.contains("certificate"),
        "a valid certificate was refused: {}",
        run.stderr
    );
}

#[test]
fn client_certificate_and_key_files_that_do_not_go_together_say_which_holds_what() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let pair = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (
            write(&format!("{name}.pem"), &cert.pem()),
            write(&format!("{name}.key"), &key.serialize_pem()),
        )
    };
    let (cert_a, key_a) = pair("a");
    let (_, key_b) = pair("b");
    // Nothing listens: the files are refused before any connection.
    let broker = "127.0.0.1:1";
    let tls = |cert: &str, key: &str| list_topics(broker, &["--tls-cert", cert, "--tls-key", key]);

    let mismatch = tls(&cert_a, &key_b);
    let line = one_clean_line(&mismatch, "key of another certificate");
    assert_eq!(
        line,
        format!(
            "weir: the private key in --tls-key \"{key_b}\" does not belong to the certificate in --tls-cert \"{cert_a}\""
        )
    );

    let cert_as_key = tls(&cert_a, &cert_a);
    let line = one_clean_line(&cert_as_key, "certificate as --tls-key");
    says(line, &format!("--tls-key \"{cert_a}\""));
    says(line, "holds a certificate, not a private key");

    let key_as_cert = tls(&key_a, &key_a);
    let line = one_clean_line(&key_as_cert, "key as --tls-cert");
    says(line, &format!("--tls-cert \"{key_a}\""));
    says(line, "holds a private key, not a certificate");

    let swapped = tls(&key_a, &cert_a);
    let line = one_clean_line(&swapped, "swapped");
    assert_eq!(
        line,
        format!(
            "weir: --tls-cert \"{key_a}\" holds a private key and --tls-key \"{cert_a}\" a certificate: swap them"
        )
    );
}

/// `-X ssl.endpoint.identification.algorithm=` (`--tls-skip-hostname-check`)
/// forgives the name alone: a certificate for another name is taken, an
/// expired one or one from an unknown CA is still refused.
#[test]
fn skipping_the_hostname_check_still_checks_the_chain_and_dates() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let ca_arg = ca.file.display().to_string();
    let skip = ["-X", "ssl.endpoint.identification.algorithm="];

    let misnamed = TlsServer::start(ca.server(&["kafka-1.example.com"], None));
    let mut cmd = weir();
    cmd.args(["topics", "list", "-b", &misnamed.address, "--timeout", "1s"])
        .args(["--tls-ca", &ca_arg])
        .args(skip);
    let taken = run(&mut cmd);
    assert_eq!(taken.code, Some(1), "{}", taken.stderr);
    assert!(
        !taken.stderr.contains("certificate"),
        "the name check was not skipped: {}",
        taken.stderr
    );

    let expired =
        TlsServer::start(ca.server(&["kafka-1.example.com"], Some(((2019, 1, 1), (2020, 2, 1)))));
    let mut args = vec!["--tls-ca", ca_arg.as_str()];
    args.extend(skip);
    let refused = list_topics(&expired.address, &args);
    says(
        one_clean_line(&refused, "expired"),
        "it expired at 2020-02-01",
    );

    // Without --tls-ca the test CA is unknown: still refused.
    let refused = list_topics(&misnamed.address, &["--tls", "--tls-skip-hostname-check"]);
    says(
        one_clean_line(&refused, "unknown CA"),
        "not signed by a CA trusted here",
    );
}
