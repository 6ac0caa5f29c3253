//! TLS and SASL against real nisshi brokers started for each test: a CA
//! made at test time, and a SCRAM-SHA-512 user on sqlite storage.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Nisshi, Storage, free_port, random_topic, run, weir};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA and a server certificate for 127.0.0.1 and localhost, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "weir test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        server.distinguished_name.push(DnType::CommonName, "nisshi");
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        // A second, unrelated CA: trusting it must not be enough.
        let other_key = KeyPair::generate().unwrap();
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other_cert = other.self_signed(&other_key).unwrap();

        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[test]
fn tls_with_ca_works_and_without_fails_on_the_certificate() {
    let pki = Pki::new();
    let broker = Nisshi::start(
        Storage::Memory,
        &[
            "--cert",
            &pki.path("server.pem"),
            "--key",
            &pki.path("server.key"),
        ],
    );
    let ca = pki.path("ca.pem");
    let topic = random_topic("tls");

    let mut cmd = weir();
    cmd.args([
        "topics",
        "create",
        &topic,
        "--partitions",
        "2",
        "--tls-ca",
        &ca,
    ])
    .args(["-b", &broker.address]);
    run(&mut cmd).ok();

    let mut cmd = weir();
    cmd.args(["topics", "list", "--tls-ca", &ca, "-b", &broker.address]);
    let listed = run(&mut cmd);
    listed.ok();
    assert!(listed.stdout.contains(&topic), "{}", listed.stdout);

    // rskafka's connection honours the same options.
    let config = weir::ConnectionConfig {
        brokers: vec![broker.address.clone()],
        timeout: Duration::from_secs(10),
        tls: Some(weir::connect::TlsOptions {
            ca_file: Some(ca.clone().into()),
            client_auth: None,
        }),
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topics = rt.block_on(common::timeout("rskafka over TLS", async {
        config.client().await.unwrap().list_topics().await.unwrap()
    }));
    assert!(topics.iter().any(|t| t.name == topic));

    // Default roots, and an unrelated CA: the certificate is rejected, fast.
    for extra in [vec!["--tls"], vec!["--tls-ca", &pki.path("other-ca.pem")]] {
        let mut cmd = weir();
        cmd.args(["topics", "list", "--timeout", "5s", "-b", &broker.address])
            .args(&extra);
        let failed = run(&mut cmd);
        failed.expect_code(1);
        assert!(
            failed.elapsed < Duration::from_secs(5),
            "{extra:?} took {:?}",
            failed.elapsed
        );
        assert!(
            failed.stderr.contains("certificate"),
            "{extra:?}: {}",
            failed.stderr
        );
        assert!(
            failed.stderr.contains(&broker.address),
            "{extra:?}: {}",
            failed.stderr
        );
    }

    // Plain TCP against a TLS listener fails within the deadline too.
    let mut cmd = weir();
    cmd.args(["topics", "list", "--timeout", "3s", "-b", &broker.address]);
    let plain = run(&mut cmd);
    plain.expect_code(1);
    assert!(
        plain.elapsed < Duration::from_secs(8),
        "took {:?}",
        plain.elapsed
    );
    assert!(plain.stderr.contains(&broker.address), "{}", plain.stderr);
}

/// Starts nisshi on sqlite storage, creates a SCRAM-SHA-512 user while
/// authentication is off, then restarts it with `--authentication`.
fn broker_with_user(dir: &Path, user: &str, password: &str) -> Nisshi {
    let port = free_port();
    let db = Storage::Sqlite("weir.db".into());
    let mut open = Nisshi::start_on(port, db.clone(), &[], Some(dir));
    let status = Command::new(common::nisshi_bin())
        .args([
            "user",
            "create",
            "--broker",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .args([user, password, "--mechanism", "scram512"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "nisshi user create failed:\n{}",
        open.logs()
    );
    open.stop();
    Nisshi::start_on(port, db, &["--authentication"], Some(dir))
}

#[test]
fn sasl_scram_sha_512_right_and_wrong_password() {
    const PASSWORD: &str = "correct-horse-battery-staple-9z";
    const WRONG: &str = "wrong-horse-battery-staple-7q";
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_with_user(dir.path(), "alice", PASSWORD);
    let sasl = [
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-username",
        "alice",
    ];
    let topic = random_topic("sasl");
    let mut outputs = Vec::new();

    // Right password from the environment, with verbose logs on.
    let mut cmd = weir();
    cmd.args(["topics", "create", &topic, "-vv", "-b", &broker.address])
        .args(sasl)
        .env("WEIR_SASL_PASSWORD", PASSWORD);
    let created = run(&mut cmd);
    created.ok();
    outputs.push(created);

    // Right password from a file.
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let mut cmd = weir();
    cmd.args(["topics", "list", "-b", &broker.address])
        .args(sasl)
        .args(["--sasl-password-file", file.to_str().unwrap()]);
    let listed = run(&mut cmd);
    listed.ok();
    assert!(listed.stdout.contains(&topic), "{}", listed.stdout);
    outputs.push(listed);

    // rskafka's connection authenticates the same way.
    let config = weir::ConnectionConfig {
        brokers: vec![broker.address.clone()],
        timeout: Duration::from_secs(10),
        sasl: Some(weir::connect::SaslOptions {
            mechanism: weir::connect::SaslMechanism::ScramSha512,
            username: "alice".into(),
            password: weir::connect::Password::new(PASSWORD),
        }),
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topics = rt.block_on(common::timeout("rskafka with SASL", async {
        config.client().await.unwrap().list_topics().await.unwrap()
    }));
    assert!(topics.iter().any(|t| t.name == topic));

    // Wrong password: a clear failure well within --timeout.
    let mut cmd = weir();
    cmd.args([
        "topics",
        "list",
        "--timeout",
        "5s",
        "-vv",
        "-b",
        &broker.address,
    ])
    .args(sasl)
    .env("WEIR_SASL_PASSWORD", WRONG);
    let failed = run(&mut cmd);
    failed.expect_code(1);
    assert!(
        failed.elapsed < Duration::from_secs(5),
        "took {:?}",
        failed.elapsed
    );
    assert!(
        failed.stderr.contains("authentication"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("alice") && failed.stderr.contains(&broker.address),
        "{}",
        failed.stderr
    );
    outputs.push(failed);

    // No password at all is a usage error.
    let mut cmd = weir();
    cmd.args(["topics", "list", "-b", &broker.address])
        .args(sasl);
    run(&mut cmd).expect_code(2);

    let mut cmd = weir();
    cmd.arg("--help").env("WEIR_SASL_PASSWORD", PASSWORD);
    let help = run(&mut cmd);
    help.ok();
    outputs.push(help);

    for out in &outputs {
        for secret in [PASSWORD, WRONG] {
            assert!(
                !out.stdout.contains(secret),
                "password in stdout:\n{}",
                out.stdout
            );
            assert!(
                !out.stderr.contains(secret),
                "password in stderr:\n{}",
                out.stderr
            );
        }
    }
}
