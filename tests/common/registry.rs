//! The Schema Registry of a test binary: Apicurio Registry, installed by
//! `scripts/registry.sh install` and run by `scripts/registry.sh run` on a
//! free port, once per test binary, in memory. It dies with the test
//! process as the brokers do (`PR_SET_PDEATHSIG`; the script `exec`s the
//! JVM).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

/// Deadline for the registry to answer after its start (a cold JVM on a
/// busy 2-core machine; about 4 s when quiet), its first build aside.
pub const REGISTRY_START_TIMEOUT: Duration = Duration::from_secs(120);

/// The Confluent-compatible API's path on Apicurio.
pub const API: &str = "/apis/ccompat/v6";

/// The URL of this test binary's registry (its Confluent API), started on
/// first use.
pub fn registry() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let port = super::free_port();
        start(&[&port.to_string()], move || subjects(port).is_some());
        format!("http://127.0.0.1:{port}{API}")
    })
}

/// A second registry of this test binary, over https only, with a
/// certificate for 127.0.0.1 signed by a CA of its own: its URL and the
/// CA's PEM file.
pub fn registry_tls() -> &'static (String, PathBuf) {
    static TLS: OnceLock<(String, PathBuf)> = OnceLock::new();
    TLS.get_or_init(|| {
        let dir = std::env::temp_dir().join(super::random_topic("weir-registry-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let run = super::run(Command::new("openssl").current_dir(&dir).args(args));
            run.ok();
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=weir test registry CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=weir-registry",
        ]);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        let port = super::free_port();
        let cert = dir.join("server.pem");
        let key = dir.join("server.key");
        // Quarkus opens its port once it serves.
        start(
            &[
                &port.to_string(),
                cert.to_str().unwrap(),
                key.to_str().unwrap(),
            ],
            move || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        );
        (format!("https://127.0.0.1:{port}{API}"), dir.join("ca.pem"))
    })
}

/// Installs the registry if needed and runs `scripts/registry.sh run
/// ARGS` until `ready` holds.
fn start(args: &[&str], ready: impl Fn() -> bool + Send + 'static) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/registry.sh");
    // A cold build takes minutes; `just test` installs it first.
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        super::run_with_deadline(
            Command::new(&script).arg("install"),
            Duration::from_secs(900),
        )
        .ok();
    });
    let args: Vec<String> = std::iter::once("run")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    let shown = args.join(" ");
    // The thread that spawns the registry must outlive every test: the
    // kernel kills the child when its spawning thread exits.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut cmd = Command::new(&script);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        super::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("start scripts/registry.sh run");
        let deadline = Instant::now() + REGISTRY_START_TIMEOUT;
        let answered = loop {
            if ready() {
                break true;
            }
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        tx.send(answered).unwrap();
        let _keep = child;
        loop {
            std::thread::park();
        }
    });
    let answered = rx
        .recv_timeout(REGISTRY_START_TIMEOUT + Duration::from_secs(10))
        .expect("the registry did not start in time");
    assert!(
        answered,
        "scripts/registry.sh {shown} did not serve within {REGISTRY_START_TIMEOUT:?}"
    );
}

/// The answer's body to `GET {API}/subjects` when it is 200.
fn subjects(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {API}/subjects HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.starts_with("HTTP/1.1 200").then_some(answer)
}
