//! Every security path against a real Apache Kafka node: SASL PLAIN,
//! SCRAM-SHA-256 and SCRAM-SHA-512 on its SASL_PLAINTEXT listener, TLS and
//! mutual TLS on its SSL listener (client certificate required), through
//! weir's own connection and through rskafka's.
//!
//! One node serves the whole test binary (a JVM start is slow), with one
//! SCRAM user per mechanism created by Kafka's own kafka-configs.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    KAFKA_START_TIMEOUT, Kafka, PLAIN_USER, Run, STEP_TIMEOUT, kafka_tool, random_topic, run, weir,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use weir::kafka::connect::{
    BearerToken, ConnectionConfig, Password, SaslMechanism, SaslOptions, TlsOptions, TokenSource,
};

/// The SCRAM-SHA-256 user the shared node gets.
const SCRAM_256_USER: (&str, &str) = ("bob", "bob-scram256-secret-4k");
/// The SCRAM-SHA-512 user the shared node gets.
const SCRAM_512_USER: (&str, &str) = ("carol", "carol-scram512-secret-8m");
/// A password no user has.
const WRONG_PASSWORD: &str = "wrong-horse-battery-staple-7q";

/// The `--timeout` of the runs that must fail. A failure that weir retried
/// would end only near it, so they are held to half of it: long enough
/// that a loaded machine cannot make an immediate failure look retried
/// (they take well under a second when it is idle).
const FAIL_TIMEOUT: Duration = Duration::from_secs(20);
/// [`FAIL_TIMEOUT`] as a flag value.
const FAIL_TIMEOUT_ARG: &str = "20s";

/// Where the shared node listens, and its TLS files.
struct Secure {
    plaintext: String,
    sasl: String,
    ssl: String,
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// The node shared by this test binary, with its SCRAM users in place.
fn kafka() -> &'static Secure {
    static KAFKA: OnceLock<Result<Secure, String>> = OnceLock::new();
    let started = KAFKA.get_or_init(|| {
        // The thread that spawns the node must outlive every test: the
        // kernel kills the node when its spawning thread exits.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let kafka = Kafka::start(1);
            tx.send(Secure {
                plaintext: kafka.address(),
                sasl: kafka.sasl_address(),
                ssl: kafka.ssl_address(),
                ca: kafka.tls_file("ca.pem"),
                client_cert: kafka.tls_file("client.pem"),
                client_key: kafka.tls_file("client.key"),
            })
            .unwrap();
            let _keep = kafka;
            loop {
                std::thread::park();
            }
        });
        let secure = rx
            .recv_timeout(KAFKA_START_TIMEOUT + STEP_TIMEOUT)
            .map_err(|e| format!("the shared Kafka did not start: {e}"))?;
        add_scram_users(&secure)?;
        Ok(secure)
    });
    match started {
        Ok(secure) => secure,
        Err(e) => panic!("{e}"),
    }
}

/// Creates the SCRAM users with kafka-configs (one call per user: one
/// call with both mechanisms fails), then waits until each can log in, as
/// the broker learns credentials from the metadata log a little after the
/// controller has them.
fn add_scram_users(secure: &Secure) -> Result<(), String> {
    let users = [
        ("SCRAM-SHA-256", SCRAM_256_USER),
        ("SCRAM-SHA-512", SCRAM_512_USER),
    ];
    let created: Vec<Run> = std::thread::scope(|s| {
        let calls: Vec<_> = users
            .iter()
            .map(|&(mechanism, (user, password))| {
                let config = format!("{mechanism}=[password={password}]");
                let bootstrap = secure.plaintext.clone();
                s.spawn(move || {
                    kafka_tool(
                        "org.apache.kafka.tools.ConfigCommand",
                        &[
                            "--bootstrap-server",
                            &bootstrap,
                            "--alter",
                            "--add-config",
                            &config,
                            "--entity-type",
                            "users",
                            "--entity-name",
                            user,
                        ],
                    )
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for (run, (mechanism, (user, _))) in created.iter().zip(users) {
        if run.code != Some(0) {
            return Err(format!(
                "kafka-configs could not add {mechanism} user {user}:\n{}{}",
                run.stdout, run.stderr
            ));
        }
    }
    for (mechanism, (user, password)) in users {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let login = sasl_weir(&secure.sasl, mechanism, user, password, &["topics", "list"]);
            if login.code == Some(0) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{mechanism} user {user} cannot log in within {STEP_TIMEOUT:?}: {}",
                    login.stderr
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// Runs `weir ARGS` against `broker` as `user`, the password in the
/// environment.
fn sasl_weir(broker: &str, mechanism: &str, user: &str, password: &str, args: &[&str]) -> Run {
    let mut cmd = weir();
    cmd.args(args)
        .args(["-b", broker, "--sasl-mechanism", mechanism])
        .args(["--sasl-username", user])
        .env("WEIR_SASL_PASSWORD", password);
    run(&mut cmd)
}

/// The flags for mutual TLS with the node's CA and client certificate.
fn mtls_flags(secure: &Secure) -> Vec<String> {
    [
        ("--tls-ca", &secure.ca),
        ("--tls-cert", &secure.client_cert),
        ("--tls-key", &secure.client_key),
    ]
    .into_iter()
    .flat_map(|(flag, path)| [flag.to_owned(), path.display().to_string()])
    .collect()
}

/// Runs `weir ARGS` against `broker` with a --timeout of [`FAIL_TIMEOUT`].
fn weir_failing(broker: &str, args: &[&str]) -> Run {
    let mut cmd = weir();
    cmd.args(args)
        .args(["-b", broker, "--timeout", FAIL_TIMEOUT_ARG]);
    run(&mut cmd)
}

/// Asserts that `run` failed (exit 1) with one line on stderr, at once
/// rather than after retrying until --timeout, and returns that line.
fn fails_at_once<'a>(run: &'a Run, what: &str) -> &'a str {
    run.expect_code(1);
    assert!(
        run.elapsed < FAIL_TIMEOUT / 2,
        "{what}: took {:?} with --timeout {FAIL_TIMEOUT:?}: retried?\n{}",
        run.elapsed,
        run.stderr
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line:\n{}", run.stderr);
    eprintln!("{what}: {:?}: {}", run.elapsed, lines[0]);
    lines[0]
}

/// Asserts that `needle` occurs in `line`.
fn says(line: &str, needle: &str) {
    assert!(line.contains(needle), "expected {needle:?} in: {line}");
}

/// The topics that rskafka's client, built from `config`, lists.
fn rskafka_topics(config: &ConnectionConfig) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::timeout("rskafka list_topics", async {
        let client = config.client().await.unwrap();
        let topics = client.list_topics().await.unwrap();
        topics.into_iter().map(|t| t.name).collect()
    }))
}

/// Right password (from the environment, with -vv; from a file; through
/// rskafka), a wrong one (a one-line failure within --timeout) and no
/// password anywhere in the output.
fn sasl_logs_in_and_refuses_a_wrong_password(mechanism: SaslMechanism, user: &str, password: &str) {
    let secure = kafka();
    let name = mechanism.as_str();
    let topic = random_topic(&format!("sasl-{}", name.to_ascii_lowercase()));
    let mut outputs = Vec::new();

    let created = sasl_weir(
        &secure.sasl,
        name,
        user,
        password,
        &["topics", "create", &topic, "-vv"],
    );
    created.ok();
    outputs.push(created);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let mut cmd = weir();
    cmd.args(["topics", "list", "-b", &secure.sasl])
        .args(["--sasl-mechanism", name, "--sasl-username", user])
        .arg("--sasl-password-file")
        .arg(&file);
    let listed = run(&mut cmd);
    listed.ok();
    assert!(listed.stdout.contains(&topic), "{}", listed.stdout);
    outputs.push(listed);

    let config = ConnectionConfig::new([secure.sasl.clone()])
        .with_timeout(Duration::from_secs(20))
        .with_sasl(
            SaslOptions {
                mechanism,
                username: user.to_owned(),
                password: Password::new(password),
            }
            .into(),
        );
    assert!(rskafka_topics(&config).contains(&topic));

    let mut cmd = weir();
    cmd.args([
        "topics",
        "list",
        "--timeout",
        FAIL_TIMEOUT_ARG,
        "-b",
        &secure.sasl,
    ])
    .args(["--sasl-mechanism", name, "--sasl-username", user])
    .env("WEIR_SASL_PASSWORD", WRONG_PASSWORD);
    let refused = run(&mut cmd);
    let line = fails_at_once(&refused, &format!("{name}, wrong password"));
    for needle in ["authentication", name, user, &secure.sasl] {
        says(line, needle);
    }
    outputs.push(refused);

    // The same with every log line on.
    let mut cmd = weir();
    cmd.args([
        "topics",
        "list",
        "--timeout",
        FAIL_TIMEOUT_ARG,
        "-vv",
        "-b",
        &secure.sasl,
    ])
    .args(["--sasl-mechanism", name, "--sasl-username", user])
    .env("WEIR_SASL_PASSWORD", WRONG_PASSWORD);
    let verbose = run(&mut cmd);
    verbose.expect_code(1);
    outputs.push(verbose);

    // rskafka's client is never built on a refused login.
    let config = config.with_timeout(FAIL_TIMEOUT).with_sasl(
        SaslOptions {
            mechanism,
            username: user.to_owned(),
            password: Password::new(WRONG_PASSWORD),
        }
        .into(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(common::timeout(
            "rskafka with a wrong password",
            config.client(),
        ))
        .expect_err("a wrong password was accepted")
        .to_string();
    says(&err, "authentication");
    assert!(!err.contains(WRONG_PASSWORD), "{err}");

    for out in &outputs {
        for secret in [password, WRONG_PASSWORD] {
            assert!(
                !out.stdout.contains(secret),
                "password on stdout:\n{}",
                out.stdout
            );
            assert!(
                !out.stderr.contains(secret),
                "password on stderr:\n{}",
                out.stderr
            );
        }
    }
}

#[test]
fn sasl_plain() {
    let (user, password) = PLAIN_USER;
    sasl_logs_in_and_refuses_a_wrong_password(SaslMechanism::Plain, user, password);
}

#[test]
fn sasl_scram_sha_256() {
    let (user, password) = SCRAM_256_USER;
    sasl_logs_in_and_refuses_a_wrong_password(SaslMechanism::ScramSha256, user, password);
}

#[test]
fn sasl_scram_sha_512() {
    let (user, password) = SCRAM_512_USER;
    sasl_logs_in_and_refuses_a_wrong_password(SaslMechanism::ScramSha512, user, password);
}

#[test]
fn sasl_against_the_plaintext_listener_says_it_offers_no_mechanism() {
    // Kafka answers a SaslHandshake on a PLAINTEXT listener with
    // ILLEGAL_SASL_STATE and an empty list of mechanisms.
    let secure = kafka();
    let (user, password) = PLAIN_USER;
    let mut cmd = weir();
    cmd.args(["topics", "list", "--timeout", FAIL_TIMEOUT_ARG])
        .args(["-b", &secure.plaintext, "--sasl-mechanism", "PLAIN"])
        .args(["--sasl-username", user])
        .env("WEIR_SASL_PASSWORD", password);
    let refused = run(&mut cmd);
    let line = fails_at_once(&refused, "SASL against the PLAINTEXT listener");
    for needle in [
        "SASL PLAIN",
        &secure.plaintext,
        "names no SASL mechanism",
        "is this a SASL listener?",
    ] {
        says(line, needle);
    }
    assert!(!line.contains("offers: )"), "{line}");
}

#[test]
fn sasl_without_a_password_is_a_usage_error_and_help_shows_none() {
    // Checked before connecting: no broker is needed.
    let broker = format!("127.0.0.1:{}", common::free_port());
    let mut cmd = weir();
    cmd.args(["topics", "list", "-b", &broker]).args([
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-username",
        "carol",
    ]);
    let missing = run(&mut cmd);
    missing.expect_code(2);
    says(&missing.stderr, "WEIR_SASL_PASSWORD");

    let (_, password) = SCRAM_512_USER;
    let mut cmd = weir();
    cmd.arg("--help").env("WEIR_SASL_PASSWORD", password);
    let help = run(&mut cmd);
    help.ok();
    assert!(!help.stdout.contains(password), "{}", help.stdout);
}

/// A CA that signed nothing the node knows, and a client certificate it
/// signed for itself, as PEM files.
struct Strangers {
    dir: tempfile::TempDir,
}

impl Strangers {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "unrelated test CA");
        let ca = ca.self_signed(&ca_key).unwrap();

        let key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "weir-stranger");
        let client = client.self_signed(&key).unwrap();

        std::fs::write(dir.path().join("other-ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("self-signed.pem"), client.pem()).unwrap();
        std::fs::write(dir.path().join("self-signed.key"), key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[test]
fn tls_verifies_the_broker_with_tls_ca() {
    let secure = kafka();
    let mtls = mtls_flags(secure);
    let topic = random_topic("tls");

    let mut cmd = weir();
    cmd.args(["topics", "create", &topic, "--partitions", "2"])
        .args(&mtls)
        .args(["-b", &secure.ssl]);
    run(&mut cmd).ok();
    let mut cmd = weir();
    cmd.args(["topics", "list", "-b", &secure.ssl]).args(&mtls);
    let listed = run(&mut cmd);
    listed.ok();
    assert!(listed.stdout.contains(&topic), "{}", listed.stdout);

    // rskafka's connection honours the same options.
    let config = ConnectionConfig::new([secure.ssl.clone()])
        .with_timeout(Duration::from_secs(20))
        .with_tls(
            TlsOptions::default()
                .with_ca_file(secure.ca.clone())
                .with_client_auth(secure.client_cert.clone(), secure.client_key.clone()),
        );
    assert!(rskafka_topics(&config).contains(&topic));

    // The default roots, and a CA that did not sign the broker's
    // certificate: weir refuses the broker (with the right client
    // certificate, so that only the broker's is at fault).
    let strangers = Strangers::new();
    let client = [
        "--tls-cert",
        &secure.client_cert.display().to_string(),
        "--tls-key",
        &secure.client_key.display().to_string(),
    ]
    .map(str::to_owned);
    let other_ca = strangers.path("other-ca.pem");
    for (what, trust, names) in [
        (
            "default roots",
            vec!["--tls".to_owned()],
            "default CA roots",
        ),
        (
            "unrelated CA",
            vec!["--tls-ca".to_owned(), other_ca.clone()],
            other_ca.as_str(),
        ),
    ] {
        let args: Vec<&str> = ["topics", "list"]
            .into_iter()
            .chain(trust.iter().map(String::as_str))
            .chain(client.iter().map(String::as_str))
            .collect();
        let refused = weir_failing(&secure.ssl, &args);
        let line = fails_at_once(&refused, what);
        for needle in [
            "the broker's certificate was rejected",
            "--tls-ca",
            names,
            &secure.ssl,
        ] {
            says(line, needle);
        }
    }

    // Plain Kafka against the TLS listener, and TLS against the plain one.
    let plain = weir_failing(&secure.ssl, &["topics", "list"]);
    let line = fails_at_once(&plain, "no TLS against the SSL listener");
    for needle in ["answered with TLS", "--tls", &secure.ssl] {
        says(line, needle);
    }
    let mut args = vec!["topics".to_owned(), "list".to_owned()];
    args.extend(mtls.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tls = weir_failing(&secure.plaintext, &args);
    let line = fails_at_once(&tls, "TLS against the PLAINTEXT listener");
    for needle in ["TLS handshake", "is the listener TLS?", &secure.plaintext] {
        says(line, needle);
    }
}

#[test]
fn mutual_tls_refuses_a_missing_or_unknown_client_certificate() {
    let secure = kafka();
    let ca = secure.ca.display().to_string();

    let missing = weir_failing(&secure.ssl, &["topics", "list", "--tls-ca", &ca]);
    let line = fails_at_once(&missing, "no client certificate");
    for needle in [
        "requires a client certificate and none was given",
        "--tls-cert",
        "--tls-key",
        &secure.ssl,
    ] {
        says(line, needle);
    }

    let strangers = Strangers::new();
    let cert = strangers.path("self-signed.pem");
    let key = strangers.path("self-signed.key");
    let wrong = weir_failing(
        &secure.ssl,
        &[
            "topics",
            "list",
            "--tls-ca",
            &ca,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let line = fails_at_once(&wrong, "self-signed client certificate");
    for needle in ["rejected the client certificate", &cert, &secure.ssl] {
        says(line, needle);
    }

    // rskafka's client is never built without an accepted certificate,
    // and the refusal is as quick.
    let config = ConnectionConfig::new([secure.ssl.clone()])
        .with_timeout(FAIL_TIMEOUT)
        .with_tls(TlsOptions::default().with_ca_file(secure.ca.clone()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let start = Instant::now();
    let err = rt
        .block_on(common::timeout(
            "rskafka without a client certificate",
            config.client(),
        ))
        .expect_err("the broker accepted a client without a certificate");
    // The refusal is the TLS error's cause, as the binary prints it.
    let err = weir::ErrorChain(&err).to_string();
    assert!(
        start.elapsed() < FAIL_TIMEOUT / 2,
        "took {:?}",
        start.elapsed()
    );
    says(&err, "none was given");
}

/// Produces `lines` to a new 2-partition topic through `connection` and
/// reads them back with `weir consume -e` through the same options.
fn round_trip(broker: &str, connection: &[String], env: &[(&str, &str)]) {
    let topic = random_topic("secure-round-trip");
    let weir_with = |args: &[&str], stdin: Option<&Path>| {
        let mut cmd = weir();
        cmd.args(args).args(["-b", broker]).args(connection);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(path) = stdin {
            cmd.stdin(std::fs::File::open(path).unwrap());
        }
        run(&mut cmd)
    };
    weir_with(&["topics", "create", &topic, "--partitions", "2"], None).ok();

    let lines: Vec<String> = (0..20).map(|i| format!("k{i}:value {i}")).collect();
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), lines.join("\n") + "\n").unwrap();
    weir_with(&["produce", "-t", &topic, "-K", ":"], Some(input.path())).ok();

    let consumed = weir_with(
        &["consume", "-t", &topic, "-e", "-f", "{key}:{value}"],
        None,
    );
    consumed.ok();
    let mut got: Vec<&str> = consumed.stdout.lines().collect();
    got.sort_unstable();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want, "stderr:\n{}", consumed.stderr);
}

#[test]
fn produce_and_consume_over_sasl() {
    let secure = kafka();
    let (user, password) = SCRAM_512_USER;
    let connection =
        ["--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", user].map(str::to_owned);
    round_trip(
        &secure.sasl,
        &connection,
        &[("WEIR_SASL_PASSWORD", password)],
    );
}

#[test]
fn produce_and_consume_over_mutual_tls() {
    let secure = kafka();
    round_trip(&secure.ssl, &mtls_flags(secure), &[]);
}

/// The same over mutual TLS and SASL with the Java client's property
/// names (`-X`), as a `client.properties` gives them.
#[test]
fn produce_and_consume_with_client_properties() {
    let secure = kafka();
    let property = |key: &str, value: &Path| format!("{key}={}", value.display());
    let tls: Vec<String> = [
        "security.protocol=SSL".to_owned(),
        property("ssl.ca.location", &secure.ca),
        property("ssl.certificate.location", &secure.client_cert),
        property("ssl.key.location", &secure.client_key),
        "ssl.endpoint.identification.algorithm=https".to_owned(),
    ]
    .into_iter()
    .flat_map(|p| ["-X".to_owned(), p])
    .collect();
    round_trip(&secure.ssl, &tls, &[]);

    let (user, password) = SCRAM_512_USER;
    let sasl: Vec<String> = [
        "security.protocol=SASL_PLAINTEXT".to_owned(),
        "sasl.mechanism=SCRAM-SHA-512".to_owned(),
        format!("sasl.username={user}"),
    ]
    .into_iter()
    .flat_map(|p| ["-X".to_owned(), p])
    .collect();
    round_trip(&secure.sasl, &sasl, &[("WEIR_SASL_PASSWORD", password)]);
}

/// An unsecured JWS (`{"alg":"none"}`, no signature) for `sub`, issued
/// now and expiring `exp_from_now` seconds from now (negative: expired),
/// as Kafka's default OAUTHBEARER validator accepts them.
fn unsecured_jwt(sub: &str, exp_from_now: i64) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = format!(
        r#"{{"sub":"{sub}","iat":{},"exp":{}}}"#,
        now - 120,
        now + exp_from_now
    );
    format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&claims))
}

/// Asserts that `run` failed at runtime (exit 1) with one line on stderr,
/// and returns it.
fn one_line_failure<'a>(run: &'a Run, what: &str) -> &'a str {
    run.expect_code(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line:\n{}", run.stderr);
    lines[0]
}

#[test]
fn oauthbearer_with_a_token_file_connects_and_refuses_expired_or_malformed_tokens() {
    let secure = kafka();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, unsecured_jwt("alice", 3600) + "\n").unwrap();
    let token_arg = token.display().to_string();

    // --sasl-token-file alone implies OAUTHBEARER; produce and consume
    // also go through rskafka's connections, which ask for the token too.
    round_trip(
        &secure.sasl,
        &["--sasl-token-file".to_owned(), token_arg.clone()],
        &[],
    );
    let mut cmd = weir();
    cmd.args(["topics", "list", "-b", &secure.sasl])
        .args(["--sasl-mechanism", "OAUTHBEARER"])
        .args(["--sasl-token-command", &format!("cat '{token_arg}'")]);
    run(&mut cmd).ok();

    for (what, text) in [
        ("expired token", unsecured_jwt("alice", -60)),
        ("malformed token", "not-a-jwt".to_owned()),
    ] {
        std::fs::write(&token, &text).unwrap();
        let refused = weir_failing(
            &secure.sasl,
            &["topics", "list", "--sasl-token-file", &token_arg],
        );
        let line = one_line_failure(&refused, what);
        for needle in ["OAUTHBEARER", &secure.sasl, "invalid_token"] {
            says(line, needle);
        }
        assert!(!line.contains(&text), "the token is shown: {line}");
    }
    std::fs::write(&token, unsecured_jwt("alice", -60)).unwrap();
    let expired = weir_failing(
        &secure.sasl,
        &["topics", "list", "--sasl-token-file", &token_arg],
    );
    says(one_line_failure(&expired, "expired token"), "expired");
}

#[test]
fn oauthbearer_reads_a_rewritten_token_file_for_a_new_connection() {
    let secure = kafka();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, unsecured_jwt("alice", 3600)).unwrap();
    let config = ConnectionConfig::new([secure.sasl.clone()])
        .with_timeout(FAIL_TIMEOUT)
        .with_sasl(BearerToken::new(TokenSource::File(token.clone())).into());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let connect = || {
        rt.block_on(common::timeout("connect with a token file", async {
            config.client().await.map(drop)
        }))
    };
    connect().unwrap();
    // The same configuration, the file rotated to a token the broker
    // refuses: the next connection reads it.
    std::fs::write(&token, unsecured_jwt("alice", -60)).unwrap();
    let err = connect().unwrap_err().to_string();
    assert!(err.contains("OAUTHBEARER"), "{err}");
    std::fs::write(&token, unsecured_jwt("alice", 3600)).unwrap();
    connect().unwrap();
}

/// A config file in a new folder, with `mode`.
fn config_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn a_profile_selects_the_scram_cluster_and_flags_override_it() {
    let secure = kafka();
    let (user, password) = SCRAM_512_USER;
    let (other_user, other_password) = SCRAM_256_USER;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("password"), format!("{password}\n")).unwrap();
    let config = config_file(
        dir.path(),
        &format!(
            "[profiles.scram]\nbrokers = [\"{}\"]\nsasl-mechanism = \"SCRAM-SHA-512\"\n\
             sasl-username = \"{user}\"\nsasl-password-file = \"password\"  # beside this file\n",
            secure.sasl
        ),
        0o644,
    );
    let config_arg = config.display().to_string();
    let with_profile = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = weir();
        cmd.args(args).args(["--config-file", &config_arg]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };

    // No connection flag at all: the profile is the whole connection. The
    // file holds no secret itself, so its mode draws no warning.
    let listed = with_profile(&["topics", "list", "--profile", "scram"], &[]);
    listed.ok();
    assert!(!listed.stderr.contains("chmod"), "{}", listed.stderr);
    with_profile(&["topics", "list"], &[("WEIR_PROFILE", "scram")]).ok();

    // Flags override the profile's user and mechanism...
    with_profile(
        &[
            "topics",
            "list",
            "--profile",
            "scram",
            "--sasl-mechanism",
            "SCRAM-SHA-256",
            "--sasl-username",
            other_user,
        ],
        &[("WEIR_SASL_PASSWORD", other_password)],
    )
    .ok();
    // ...one by one: the other user with the profile's mechanism, for
    // which that user has no credentials, is refused by name.
    let mut cmd = weir();
    cmd.args([
        "topics",
        "list",
        "--profile",
        "scram",
        "--timeout",
        FAIL_TIMEOUT_ARG,
    ])
    .args(["--config-file", &config_arg, "--sasl-username", other_user])
    .env("WEIR_SASL_PASSWORD", other_password);
    let refused = run(&mut cmd);
    let line = one_line_failure(&refused, "overridden user");
    says(line, "SCRAM-SHA-512");
    says(line, other_user);

    // An unknown profile: one line naming it and the file, exit 2.
    let unknown = with_profile(&["topics", "list", "--profile", "nope"], &[]);
    unknown.expect_code(2);
    assert_eq!(unknown.stderr.lines().count(), 1, "{}", unknown.stderr);
    says(&unknown.stderr, "\"nope\"");
    says(&unknown.stderr, &config_arg);
}

#[test]
fn config_show_masks_secrets_and_a_readable_file_with_one_is_warned_about() {
    let secure = kafka();
    let (user, password) = SCRAM_512_USER;
    let text = format!(
        "[profiles.scram]\nbrokers = \"{}\"\nsasl-mechanism = \"SCRAM-SHA-512\"\n\
         sasl-username = \"{user}\"\nsasl-password = \"{password}\"\n",
        secure.sasl
    );
    for (mode, warned) in [(0o644, true), (0o600, false), (0o640, true)] {
        let dir = tempfile::tempdir().unwrap();
        let config = config_file(dir.path(), &text, mode);
        let config_arg = config.display().to_string();
        let mut cmd = weir();
        cmd.args([
            "topics",
            "list",
            "--config-file",
            &config_arg,
            "--profile",
            "scram",
        ]);
        let listed = run(&mut cmd);
        listed.ok();
        let warning = listed.stderr.lines().find(|l| l.contains("chmod 600"));
        assert_eq!(
            warning.is_some(),
            warned,
            "mode {mode:o}: {}",
            listed.stderr
        );
        if let Some(line) = warning {
            says(line, &config_arg);
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &text, 0o600);
    let mut cmd = weir();
    cmd.args(["config", "show", "--profile", "scram", "--client-id", "me"])
        .arg("--config-file")
        .arg(&config);
    let shown = run(&mut cmd);
    shown.ok();
    assert!(!shown.stdout.contains(password), "{}", shown.stdout);
    assert!(!shown.stderr.contains(password), "{}", shown.stderr);
    let line = |name: &str| {
        shown
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{}", shown.stdout))
            .to_owned()
    };
    says(&line("sasl-password"), "********");
    says(&line("sasl-password"), "(profile scram)");
    says(&line("brokers"), &secure.sasl);
    says(&line("client-id"), "me  (flag)");
    says(&line("timeout"), "(default)");
}

#[test]
fn no_sasl_against_a_sasl_listener_says_so_at_once() {
    // Kafka's SASL listener answers ApiVersions, then closes the
    // connection at the first other request of a client that did not
    // authenticate.
    let secure = kafka();
    for args in [
        &["topics", "list"][..],
        &["consume", "-t", "anything", "-e"][..],
        &["produce", "-t", "anything"][..],
    ] {
        let run = weir_failing(&secure.sasl, args);
        let line = fails_at_once(&run, &format!("{args:?} without SASL against SASL"));
        says(line, &secure.sasl);
        says(line, "does this listener need SASL or TLS?");
    }
}
