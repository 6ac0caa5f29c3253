//! Test harness shared by the broker-backed tests.
//!
//! `WEIR_TEST_BROKERS=host:port` points the tests at any Kafka. Otherwise
//! the cached nisshi (installed by `scripts/nisshi.sh install`) is started
//! on a free port once per test binary, and dies with the test process: it
//! is spawned from a thread that lives as long as the process, with
//! `PR_SET_PDEATHSIG`, so no broker outlives the tests.
//!
//! Every call that touches the network has a deadline, so a hang fails the
//! test instead of stalling the suite.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Deadline for one weir invocation or one network await in a test.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// The address of the broker shared by this test binary.
pub fn brokers() -> &'static str {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS.get_or_init(|| {
        if let Ok(b) = std::env::var("WEIR_TEST_BROKERS") {
            if !b.trim().is_empty() {
                return b;
            }
        }
        // The thread that spawns the broker must outlive every test: the
        // kernel kills the child when its spawning thread exits.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let broker = Nisshi::start(Storage::Memory, &[]);
            tx.send(broker.address.clone()).unwrap();
            let _keep = broker;
            loop {
                std::thread::park();
            }
        });
        rx.recv_timeout(STEP_TIMEOUT)
            .expect("the shared broker did not start in time")
    })
}

/// Path of the cached nisshi binary, installing it when missing.
pub fn nisshi_bin() -> PathBuf {
    if let Ok(p) = std::env::var("WEIR_NISSHI") {
        return PathBuf::from(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nisshi.sh");
    let out = Command::new(&script)
        .arg("install")
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/nisshi.sh install");
    assert!(out.status.success(), "scripts/nisshi.sh install failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// How a test broker stores data.
#[derive(Debug, Clone)]
pub enum Storage {
    /// In memory, gone when the broker stops.
    Memory,
    /// In a sqlite database file (relative to the broker's working dir).
    Sqlite(PathBuf),
}

/// A nisshi process owned by a test; killed when dropped.
pub struct Nisshi {
    pub address: String,
    pub port: u16,
    child: Child,
    log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Nisshi {
    /// Starts nisshi on a free port with extra arguments and waits until it
    /// accepts connections.
    pub fn start(storage: Storage, extra: &[&str]) -> Self {
        Self::start_on(free_port(), storage, extra, None)
    }

    /// Starts nisshi on `port`, running in `workdir` (for sqlite files).
    pub fn start_on(port: u16, storage: Storage, extra: &[&str], workdir: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let workdir = workdir.unwrap_or(dir.path()).to_owned();
        let log = dir.path().join("nisshi.log");
        let engine = match &storage {
            Storage::Memory => "memory://nisshi/".to_owned(),
            Storage::Sqlite(file) => format!("sqlite://{}?maintenance_interval=5s", file.display()),
        };
        let listener = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(nisshi_bin());
        cmd.arg("broker")
            .args(["--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", &engine])
            .args(extra)
            .current_dir(&workdir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("nisshi.err")).unwrap());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("spawn nisshi");
        let mut broker = Self {
            address: format!("127.0.0.1:{port}"),
            port,
            child,
            log,
            _dir: Some(dir),
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "nisshi exited with {status} before accepting connections:\n{}",
                    self.logs()
                );
            }
            if TcpStream::connect(&self.address).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nisshi did not listen on {} in time",
                self.address
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the broker printed, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["nisshi.log", "nisshi.err"] {
            if let Ok(mut f) = std::fs::File::open(self.log.with_file_name(name)) {
                f.read_to_string(&mut text).ok();
            }
        }
        text
    }

    /// Stops the broker and waits for it to exit.
    pub fn stop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Nisshi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes the kernel kill the child when the spawning thread dies, so a
/// crashed or interrupted test run leaves no broker behind.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory
    // of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() == 1 {
                return Err(std::io::Error::other("parent already gone"));
            }
            Ok(())
        });
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh topic name for one test.
pub fn random_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let pid = std::process::id();
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{pid}-{nanos:x}-{n}")
}

/// The weir binary built for this test run.
pub fn weir_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// A weir command with a clean environment for connection settings.
pub fn weir() -> Command {
    let mut cmd = Command::new(weir_bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("WEIR_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Result of a finished weir run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Panics with both streams unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the run succeeded.
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }
}

/// Runs a command to completion, killing it after [`STEP_TIMEOUT`].
pub fn run(cmd: &mut Command) -> Run {
    run_with_deadline(cmd, STEP_TIMEOUT)
}

/// Waits for `child` to exit; after `limit` kills it and returns `None`.
pub fn wait_until(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to [`STEP_TIMEOUT`] for `child` to exit; panics, naming `what`,
/// when it does not.
pub fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    wait_until(child, STEP_TIMEOUT)
        .unwrap_or_else(|| panic!("{what}: no exit within {STEP_TIMEOUT:?}"))
}

/// Runs a command to completion, killing it after `limit`.
pub fn run_with_deadline(cmd: &mut Command, limit: Duration) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn command");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        stdout.read_to_end(&mut s).ok();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        stderr.read_to_end(&mut s).ok();
        s
    });
    let Some(status) = wait_until(&mut child, limit) else {
        let err = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
        panic!("{cmd:?} did not finish within {limit:?}; stderr:\n{err}");
    };
    let elapsed = start.elapsed();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
        elapsed,
    }
}

/// Runs `weir ARGS -b <shared broker>`.
pub fn weir_run(args: &[&str]) -> Run {
    let mut cmd = weir();
    cmd.args(args).args(["-b", brokers()]);
    run(&mut cmd)
}

/// Output of a std command, for helpers that need raw bytes.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

/// Awaits `fut` or panics after [`STEP_TIMEOUT`].
pub async fn timeout<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {STEP_TIMEOUT:?}"),
    }
}

/// Runs `weir produce ARGS -b <shared broker>` with `input` on stdin (from
/// a file, so a large input cannot fill a pipe and stall).
pub fn produce(args: &[&str], input: &[u8]) -> Run {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(input).unwrap();
    let mut cmd = weir();
    cmd.arg("produce").args(args).args(["-b", brokers()]);
    cmd.stdin(std::fs::File::open(file.path()).unwrap());
    run(&mut cmd)
}

/// Every record of every partition of `topic` on `broker`, read with
/// rskafka up to each partition's high watermark.
pub fn read_all(
    broker: &str,
    topic: &str,
    partitions: i32,
) -> std::collections::BTreeMap<i32, Vec<rskafka::record::RecordAndOffset>> {
    use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(timeout("read back", async {
        let config = weir::ConnectionConfig {
            brokers: vec![broker.to_owned()],
            timeout: Duration::from_secs(20),
            ..Default::default()
        };
        let client = config.client().await.unwrap();
        let mut all = std::collections::BTreeMap::new();
        for p in 0..partitions {
            let pc = client
                .partition_client(topic, p, UnknownTopicHandling::Retry)
                .await
                .unwrap();
            let high = pc.get_offset(OffsetAt::Latest).await.unwrap();
            let mut records = Vec::new();
            let mut offset = 0;
            while offset < high {
                let (batch, _) = pc
                    .fetch_records(offset, 1..10_000_000, 1_000)
                    .await
                    .unwrap();
                for r in batch {
                    offset = r.offset + 1;
                    records.push(r);
                }
            }
            all.insert(p, records);
        }
        all
    }))
}

/// A `weir produce PRODUCE_ARGS` fed from a thread: `lines` are written
/// `per_pause` at a time with `pause` between, until they run out or the
/// feeder is stopped.
pub struct Feeder {
    child: Child,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Feeder {
    pub fn start(
        produce_args: &[&str],
        lines: impl IntoIterator<Item = String> + Send + 'static,
        per_pause: usize,
        pause: Duration,
    ) -> Self {
        let mut child = weir()
            .arg("produce")
            .args(produce_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut lines = lines.into_iter().peekable();
                while lines.peek().is_some() && !stop.load(Ordering::Relaxed) {
                    for line in lines.by_ref().take(per_pause.max(1)) {
                        if writeln!(stdin, "{line}").is_err() {
                            return;
                        }
                    }
                    if stdin.flush().is_err() {
                        return;
                    }
                    std::thread::sleep(pause);
                }
            })
        };
        Self {
            child,
            thread: Some(thread),
            stop,
        }
    }

    /// Stops feeding, closes the producer's input and waits for it to
    /// deliver what it was given.
    pub fn stop(self) -> ExitStatus {
        self.stop.store(true, Ordering::Relaxed);
        self.finish()
    }

    /// Waits until every line is written and the producer has exited.
    pub fn finish(mut self) -> ExitStatus {
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        wait_exit(&mut self.child, "the feeding producer")
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
