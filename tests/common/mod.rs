//! Test harness shared by the broker-backed tests.
//!
//! `WEIR_TEST_BROKERS=host:port` points the tests at any Kafka. Otherwise
//! one Apache Kafka node, installed by `scripts/kafka.sh install` and
//! prepared by `scripts/kafka.sh prepare`, is started on free ports once
//! per test binary; tests that kill or restart brokers, or need the SASL
//! and SSL listeners, start a [`Kafka`] of their own (three nodes for the
//! fault tests). Every node dies with the test process: it is spawned with
//! `PR_SET_PDEATHSIG` (the script `exec`s the JVM, which keeps it), from a
//! thread that lives as long as what started it, so no broker outlives the
//! tests, even an interrupted or failed run.
//!
//! [`Cluster`] is what a test does with either: create and fill topics,
//! read high watermarks and a group's committed offsets, kill and restart
//! the nodes it owns. [`wait_for`] waits for a condition instead of
//! sleeping; [`cannot_run`] fails a test whose tool is missing.
//!
//! Every call that touches the network has a deadline, so a hang fails the
//! test instead of stalling the suite.

#![allow(dead_code)]

pub mod proxy;
pub mod registry;

use std::collections::BTreeMap;
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

/// Deadline for a Kafka node to start serving (a cold JVM on a busy
/// 2-core machine, three of them at once for a cluster).
pub const KAFKA_START_TIMEOUT: Duration = Duration::from_secs(180);

/// The PLAIN user that `scripts/kafka.sh prepare` configures.
pub const PLAIN_USER: (&str, &str) = ("alice", "alice-secret");

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
            let kafka = Kafka::start(1);
            tx.send(kafka.address()).unwrap();
            let _keep = kafka;
            loop {
                std::thread::park();
            }
        });
        rx.recv_timeout(KAFKA_START_TIMEOUT + STEP_TIMEOUT)
            .expect("the shared Kafka did not start in time")
    })
}

/// `scripts/kafka.sh`.
pub fn kafka_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh")
}

/// Runs one of Kafka's command-line tools (`org.apache.kafka.tools.*`)
/// from the installed jars, with a deadline.
pub fn kafka_tool(class: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(kafka_script());
    cmd.arg("tool").arg(class).args(args).stdin(Stdio::null());
    die_with_parent(&mut cmd);
    run(&mut cmd)
}

/// [`kafka_tool`] with `limit` rather than the usual step limit (a
/// consumer that waits for rows until its own idle timeout), not failing
/// at it: a tool still running then prints its threads (the JVM's dump on
/// SIGQUIT, to stdout) and is killed, and the run comes back with no exit
/// code and what it printed, for the caller to say what was missing.
pub fn kafka_tool_within(class: &str, args: &[&str], limit: Duration) -> Run {
    let mut cmd = Command::new(kafka_script());
    cmd.arg("tool").arg(class).args(args).stdin(Stdio::null());
    die_with_parent(&mut cmd);
    run_within(&mut cmd, limit, Some(libc::SIGQUIT))
}

/// [`kafka_tool`] with `input` on stdin (from a file, so a large input
/// cannot fill a pipe and stall), as the console producer reads it.
pub fn kafka_tool_with_input(class: &str, args: &[&str], input: &[u8]) -> Run {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(input).unwrap();
    let mut cmd = Command::new(kafka_script());
    cmd.arg("tool")
        .arg(class)
        .args(args)
        .stdin(std::fs::File::open(file.path()).unwrap());
    die_with_parent(&mut cmd);
    run(&mut cmd)
}

/// Apache Kafka nodes (combined broker and controller, KRaft) owned by a
/// test, on 127.0.0.1; every node is killed when this is dropped.
///
/// Node `i` listens on `base + 10 * i`: PLAINTEXT there, the controller
/// on +1, SASL_PLAINTEXT on +2 and SSL with client authentication
/// required on +3.
pub struct Kafka {
    dir: tempfile::TempDir,
    base: u16,
    nodes: Vec<Option<Child>>,
}

impl Kafka {
    /// Prepares and starts `nodes` nodes and waits until every one of them
    /// serves metadata that lists them all.
    pub fn start(nodes: usize) -> Self {
        Self::start_with(nodes, |_| {})
    }

    /// One node behind `proxy`: it advertises the proxy's address as its
    /// PLAINTEXT listener, so that a client bootstrapping through the
    /// proxy stays on it; the proxy forwards to the node.
    pub fn start_behind(proxy: &proxy::Proxy) -> Self {
        Self::start_with(1, |kafka| {
            proxy.forward_to(&kafka.node_address(0));
            let path = kafka.node_dir(0).join("server.properties");
            let config = std::fs::read_to_string(&path).unwrap();
            let ours = format!("advertised.listeners=PLAINTEXT://{}", kafka.node_address(0));
            assert!(config.contains(&ours), "{config}");
            let theirs = format!("advertised.listeners=PLAINTEXT://{}", proxy.address());
            std::fs::write(&path, config.replace(&ours, &theirs)).unwrap();
        })
    }

    /// One node per proxy, each with a listener for clients (`CLIENT`,
    /// PLAINTEXT) that advertises its proxy, so that every connection a
    /// client makes through the proxies' bootstrap list goes through
    /// one; replication and the controllers talk directly, so a fault
    /// injected at a proxy cuts clients off, not the cluster.
    pub fn start_behind_proxies(proxies: &[proxy::Proxy]) -> Self {
        Self::start_with(proxies.len(), |kafka| {
            for (i, proxy) in proxies.iter().enumerate() {
                proxy.forward_to(&format!("127.0.0.1:{}", kafka.port(i) + 4));
                kafka.add_listener(i, "CLIENT", 4, proxy.address());
            }
        })
    }

    /// One node with two listeners for clients, as a broker that moves:
    /// `CLIENT` (port +4) advertising `before`, and `MOVED` (port +5)
    /// advertising `after`; `before` forwards to the first, `after` to
    /// the second. A client that bootstraps through a proxy forwarding to
    /// `CLIENT` learns the broker at `before`; re-pointed to `MOVED`
    /// ([`Kafka::moved_port`]), the same bootstrap address says `after`.
    pub fn start_moving(before: &proxy::Proxy, after: &proxy::Proxy) -> Self {
        Self::start_with(1, |kafka| {
            before.forward_to(&format!("127.0.0.1:{}", kafka.port(0) + 4));
            after.forward_to(&format!("127.0.0.1:{}", kafka.moved_port()));
            kafka.add_listener(0, "CLIENT", 4, before.address());
            kafka.add_listener(0, "MOVED", 5, after.address());
        })
    }

    /// The `CLIENT` port of node 0 of [`Kafka::start_moving`].
    pub fn client_port(&self) -> u16 {
        self.port(0) + 4
    }

    /// The `MOVED` port of node 0 of [`Kafka::start_moving`].
    pub fn moved_port(&self) -> u16 {
        self.port(0) + 5
    }

    /// Adds PLAINTEXT listener `name` on port `offset` above node `i`'s
    /// base, advertised as `advertised`, to its configuration.
    fn add_listener(&self, i: usize, name: &str, offset: u16, advertised: &str) {
        let port = self.port(i) + offset;
        let path = self.node_dir(i).join("server.properties");
        let mut config = String::new();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let line = if line.starts_with("listeners=") {
                format!("{line},{name}://127.0.0.1:{port}")
            } else if line.starts_with("advertised.listeners=") {
                format!("{line},{name}://{advertised}")
            } else if line.starts_with("listener.security.protocol.map=") {
                format!("{line},{name}:PLAINTEXT")
            } else {
                line.to_owned()
            };
            config.push_str(&line);
            config.push('\n');
        }
        assert!(config.contains(&format!("{name}://")), "{config}");
        std::fs::write(&path, config).unwrap();
    }

    /// As [`Kafka::start`], with `configure` run on the prepared nodes
    /// before they start.
    fn start_with(nodes: usize, configure: impl FnOnce(&Self)) -> Self {
        remove_stale_kafka_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("weir-kafka-{}-", std::process::id()))
            .tempdir()
            .unwrap();
        let base = free_port_block(nodes);
        let mut prepare = Command::new(kafka_script());
        prepare
            .arg("prepare")
            .arg(dir.path())
            .arg(nodes.to_string())
            .arg(base.to_string())
            .stdin(Stdio::null());
        let prepared = run_with_deadline(&mut prepare, KAFKA_START_TIMEOUT);
        assert_eq!(
            prepared.code,
            Some(0),
            "scripts/kafka.sh prepare failed:\n{}{}",
            prepared.stdout,
            prepared.stderr
        );
        let mut kafka = Self {
            dir,
            base,
            nodes: (0..nodes).map(|_| None).collect(),
        };
        configure(&kafka);
        for i in 0..nodes {
            kafka.spawn(i);
        }
        let all: Vec<usize> = (0..nodes).collect();
        for i in 0..nodes {
            kafka.wait_serving(i, &all);
        }
        kafka
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{i}"))
    }

    fn spawn(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is already running");
        let dir = self.node_dir(i);
        let mut cmd = Command::new(kafka_script());
        cmd.arg("start")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
        die_with_parent(&mut cmd);
        self.nodes[i] = Some(cmd.spawn().expect("spawn scripts/kafka.sh start"));
    }

    /// Waits until node `i` answers a metadata request that lists every
    /// node of `expected` (indexes) as a broker.
    fn wait_serving(&mut self, i: usize, expected: &[usize]) {
        let address = self.node_address(i);
        let want: Vec<i32> = expected.iter().map(|&n| Self::node_id(n)).collect();
        let deadline = Instant::now() + KAFKA_START_TIMEOUT;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut last = String::from("nothing tried");
        loop {
            if let Some(status) = self.nodes[i].as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "Kafka node {i} exited with {status} before serving:\n{}",
                    self.logs(i)
                );
            }
            if TcpStream::connect(&address).is_ok() {
                match rt.block_on(broker_ids(&address)) {
                    Ok(ids) if want.iter().all(|id| ids.contains(id)) => return,
                    Ok(ids) => {
                        last = format!("metadata lists brokers {ids:?}, waiting for {want:?}")
                    }
                    Err(e) => last = e,
                }
            }
            assert!(
                Instant::now() < deadline,
                "Kafka node {i} did not serve on {address} within {KAFKA_START_TIMEOUT:?} ({last}):\n{}",
                self.logs(i)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The broker id of node `i`.
    pub fn node_id(i: usize) -> i32 {
        i as i32 + 1
    }

    /// The node index of broker id `id`.
    pub fn node_index(id: i32) -> usize {
        (id - 1) as usize
    }

    /// The PLAINTEXT port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.base + 10 * i as u16
    }

    /// The PLAINTEXT address of node `i`.
    pub fn node_address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.port(i))
    }

    /// Every node's PLAINTEXT address, comma-separated: a bootstrap list.
    pub fn address(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.node_address(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node 0's SASL_PLAINTEXT address (PLAIN, SCRAM-SHA-256/512).
    pub fn sasl_address(&self) -> String {
        format!("127.0.0.1:{}", self.port(0) + 2)
    }

    /// Node 0's SSL address (client certificate required).
    pub fn ssl_address(&self) -> String {
        format!("127.0.0.1:{}", self.port(0) + 3)
    }

    /// A file of the cluster's TLS material: `ca.pem`, `client.pem`,
    /// `client.key`.
    pub fn tls_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("tls").join(name)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether node `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    /// SIGKILL to node `i`, and waits for it to be gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// SIGTERM to node `i` (a controlled shutdown: leadership moves away
    /// first), and waits for it to exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            // SAFETY: kill(2) on a child we own and have not reaped.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            if wait_until(&mut child, STEP_TIMEOUT).is_none() {
                panic!("Kafka node {i} did not stop within {STEP_TIMEOUT:?} of SIGTERM");
            }
        }
    }

    /// Starts node `i` again on its data and waits until it serves and the
    /// running nodes see it.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.is_running(n))
            .collect();
        self.wait_serving(i, &running);
    }

    /// The end of node `i`'s log, for failure messages.
    pub fn logs(&self, i: usize) -> String {
        let dir = self.node_dir(i);
        let mut text = String::new();
        for name in ["server.log", "stdout.log", "stderr.log"] {
            if let Ok(mut f) = std::fs::File::open(dir.join(name)) {
                let mut all = String::new();
                f.read_to_string(&mut all).ok();
                let tail: Vec<&str> = all.lines().rev().take(40).collect();
                text.push_str(&format!("--- {name}\n"));
                for line in tail.into_iter().rev() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut() {
            if let Some(mut child) = node.take() {
                child.kill().ok();
                child.wait().ok();
            }
        }
    }
}

/// Removes the data folders of Kafka nodes whose test process is gone: the
/// shared node of a test binary lives until the process exits, so its
/// folder is never dropped; the next run cleans it up.
fn remove_stale_kafka_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("weir-kafka-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            std::fs::remove_dir_all(entry.path()).ok();
        }
    }
}

/// The ids of the brokers that `address` lists in its metadata.
async fn broker_ids(address: &str) -> Result<Vec<i32>, String> {
    let config =
        weir::ConnectionConfig::new([address.to_owned()]).with_timeout(Duration::from_secs(2));
    let work = async {
        let mut admin = weir::Admin::connect(&config)
            .await
            .map_err(|e| e.to_string())?;
        let brokers = admin.brokers().await.map_err(|e| e.to_string())?;
        Ok(brokers.iter().map(|b| b.id).collect())
    };
    tokio::time::timeout(Duration::from_secs(3), work)
        .await
        .unwrap_or_else(|_| Err("metadata request timed out".to_owned()))
}

/// A base port such that `base + 10 * i + 0..4` are free for `nodes` nodes.
fn free_port_block(nodes: usize) -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Below the kernel's ephemeral range (32768-60999), so a client's
        // outgoing connection cannot take a port a node restarts on.
        let base = 20_000 + ((seed.wrapping_add(n * 7919)) % 1200) as u16 * 10;
        let free = (0..nodes).all(|i| {
            // PLAINTEXT, CONTROLLER, SASL_PLAINTEXT, SSL, and CLIENT and
            // MOVED (behind proxies).
            (0..6).all(|k| TcpListener::bind(("127.0.0.1", base + 10 * i as u16 + k)).is_ok())
        });
        if free {
            return base;
        }
    }
    panic!("no free block of ports for {nodes} Kafka nodes");
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
    /// Killed at its time limit ([`run_within`]).
    pub killed: bool,
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
    wait_until_or(child, limit, None)
}

/// [`wait_until`], sending `first` a second before the kill.
fn wait_until_or(child: &mut Child, limit: Duration, first: Option<i32>) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            if let Some(signal) = first {
                // SAFETY: a signal to our own child, not yet reaped.
                unsafe { libc::kill(child.id() as i32, signal) };
                std::thread::sleep(Duration::from_secs(1));
            }
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
    let run = run_within(cmd, limit, None);
    assert!(
        !run.killed,
        "{cmd:?} did not finish within {limit:?}; stderr:\n{}",
        run.stderr
    );
    run
}

/// Runs a command until it exits or `limit` passes; then sends it `first`
/// (a signal that makes it report, given a second to) and kills it. A
/// killed run has no exit code and says [`Run::killed`].
pub fn run_within(cmd: &mut Command, limit: Duration, first: Option<i32>) -> Run {
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
    let status = wait_until_or(&mut child, limit, first);
    let elapsed = start.elapsed();
    Run {
        killed: status.is_none(),
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
        elapsed,
    }
}

/// One Kafka as a test uses it: the node shared by this test binary, or
/// nodes of the test's own, which it may kill and restart. Every helper
/// runs weir (or rskafka, to read independently of weir) against
/// [`Cluster::address`], with a deadline.
pub struct Cluster {
    address: String,
    own: Option<Kafka>,
}

/// `weir produce` arguments for `key:value` lines.
pub const KEYED: &[&str] = &["-K", ":"];

/// `weir produce` arguments for JSON lines (`{"key":..,"value":..}`).
pub const JSON: &[&str] = &["--format", "json"];

impl Cluster {
    /// The node shared by every test of this binary ([`brokers`]); it
    /// cannot be killed or restarted.
    pub fn shared() -> Self {
        Self::at(brokers())
    }

    /// Whatever Kafka listens at `address` (a bootstrap list); it cannot
    /// be killed or restarted from here.
    pub fn at(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            own: None,
        }
    }

    /// `nodes` nodes of the test's own ([`Kafka::start`]), killed when
    /// this is dropped; [`Cluster::kafka`] kills and restarts them.
    pub fn start(nodes: usize) -> Self {
        let kafka = Kafka::start(nodes);
        Self {
            address: kafka.address(),
            own: Some(kafka),
        }
    }

    /// One node of the test's own behind `proxy` ([`Kafka::start_behind`]);
    /// [`Cluster::address`] is the node's own address, the proxy's
    /// reaches it too.
    pub fn start_behind(proxy: &proxy::Proxy) -> Self {
        let kafka = Kafka::start_behind(proxy);
        Self {
            address: kafka.address(),
            own: Some(kafka),
        }
    }

    /// One node per proxy, clients' connections through the proxies
    /// ([`Kafka::start_behind_proxies`]); [`Cluster::address`] is the
    /// proxies' bootstrap list.
    pub fn start_behind_proxies(proxies: &[proxy::Proxy]) -> Self {
        let kafka = Kafka::start_behind_proxies(proxies);
        Self {
            address: proxies
                .iter()
                .map(|p| p.address().to_owned())
                .collect::<Vec<_>>()
                .join(","),
            own: Some(kafka),
        }
    }

    /// The bootstrap list, for `-b`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The nodes, to kill and restart; `None` for a cluster the test does
    /// not own.
    pub fn restartable(&mut self) -> Option<&mut Kafka> {
        self.own.as_mut()
    }

    /// The nodes, to kill and restart.
    ///
    /// # Panics
    ///
    /// For a cluster the test does not own ([`Cluster::shared`],
    /// [`Cluster::at`]).
    pub fn kafka(&mut self) -> &mut Kafka {
        self.own
            .as_mut()
            .expect("only a Cluster::start cluster can be killed or restarted")
    }

    /// Runs `weir ARGS -b <address>`.
    pub fn weir(&self, args: &[&str]) -> Run {
        let mut cmd = weir();
        cmd.args(args).args(["-b", &self.address]);
        run(&mut cmd)
    }

    /// Creates `topic` with `partitions` partitions; panics when weir
    /// fails.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        self.weir(&[
            "topics",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ])
        .ok();
    }

    /// Runs `weir produce ARGS` with `input` on stdin (from a file, so a
    /// large input cannot fill a pipe and stall).
    pub fn produce(&self, args: &[&str], input: &[u8]) -> Run {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(input).unwrap();
        let mut cmd = weir();
        cmd.arg("produce")
            .args(args)
            .args(["-b", &self.address])
            .stdin(std::fs::File::open(file.path()).unwrap());
        run(&mut cmd)
    }

    /// Produces `lines` (one record each, read as `format` says: [`KEYED`],
    /// [`JSON`], or `&[]` for plain values) to `topic`; panics when weir
    /// fails.
    pub fn fill<S: AsRef<str>>(
        &self,
        topic: &str,
        format: &[&str],
        lines: impl IntoIterator<Item = S>,
    ) {
        let mut input = String::new();
        for line in lines {
            input.push_str(line.as_ref());
            input.push('\n');
        }
        let args = [&["-t", topic][..], format].concat();
        self.produce(&args, input.as_bytes()).ok();
    }

    /// A fresh topic (named after `prefix`) with `partitions` partitions,
    /// holding `lines` as [`Cluster::fill`] writes them.
    pub fn create_and_fill<S: AsRef<str>>(
        &self,
        prefix: &str,
        partitions: u32,
        format: &[&str],
        lines: impl IntoIterator<Item = S>,
    ) -> String {
        let topic = random_topic(prefix);
        self.create_topic(&topic, partitions);
        self.fill(&topic, format, lines);
        topic
    }

    /// Each partition's high watermark of `topic`, from `weir topics
    /// describe`.
    pub fn high_watermarks(&self, topic: &str) -> BTreeMap<i32, i64> {
        let out = self.weir(&["topics", "describe", topic, "--output", "json"]);
        out.ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["partition"].as_i64().unwrap() as i32,
                    p["latest"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// The number of records in `topic`: the sum of its high watermarks.
    pub fn topic_end(&self, topic: &str) -> i64 {
        self.high_watermarks(topic).values().sum()
    }

    /// `weir offsets show` for `group` in the offsets topic `store`, as
    /// JSON.
    pub fn offsets_show(&self, store: &str, group: &str) -> serde_json::Value {
        let show = self.weir(&[
            "offsets",
            "--offsets-topic",
            store,
            "show",
            "-g",
            group,
            "--output",
            "json",
        ]);
        show.ok();
        serde_json::from_str(&show.stdout).unwrap()
    }

    /// `group`'s committed offset (the next offset to read) per partition
    /// in the offsets topic `store`; partitions without a commit are left
    /// out.
    pub fn committed(&self, store: &str, group: &str) -> BTreeMap<i32, i64> {
        self.offsets_show(store, group)["partitions"]
            .as_array()
            .unwrap()
            .iter()
            // The group's own internal topic is not input.
            .filter(|r| r["internal"] != true)
            .filter_map(|r| Some((r["partition"].as_i64()? as i32, r["committed"].as_i64()?)))
            .collect()
    }

    /// The sum of `group`'s committed offsets in the offsets topic `store`.
    pub fn committed_total(&self, store: &str, group: &str) -> i64 {
        self.committed(store, group).values().sum()
    }

    /// Every record of partitions `0..partitions` of `topic`, read with
    /// rskafka up to each partition's high watermark.
    pub fn read_all(
        &self,
        topic: &str,
        partitions: i32,
    ) -> BTreeMap<i32, Vec<rskafka::record::RecordAndOffset>> {
        read_all(&self.address, topic, partitions)
    }
}

/// The python of the test venv (`scripts/pyenv.sh`), with confluent-kafka
/// and kafka-python, installed on first use.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pyenv.sh");
            // Installing from PyPI the first time may take a few minutes.
            let run = run_with_deadline(&mut Command::new(script), Duration::from_secs(600));
            run.ok();
            PathBuf::from(run.stdout.trim())
        })
        .clone()
}

/// Polls `condition` until it holds; panics, naming `what`, when it still
/// does not after [`STEP_TIMEOUT`]. For what a test must see happen before
/// it goes on, instead of a sleep that is usually long enough.
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {STEP_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `WEIR_ALLOW_SKIP=1` lets a test that cannot run here pass after
/// saying so.
pub fn skipping_allowed() -> bool {
    std::env::var("WEIR_ALLOW_SKIP").is_ok_and(|v| v == "1")
}

/// A test cannot run here because `missing` is missing: fails, naming it,
/// unless `WEIR_ALLOW_SKIP=1`, where it prints a SKIPPED line and the
/// caller returns. The harness has no skipped state, and a test that
/// passes without running reads as a test that ran.
pub fn cannot_run(test: &str, missing: &str) {
    assert!(
        skipping_allowed(),
        "{test} cannot run: {missing} (WEIR_ALLOW_SKIP=1 reports it as skipped instead)"
    );
    // Past the harness's capture of eprintln!, so that a passing test
    // still shows it was skipped.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {missing}");
}

/// Each partition's high watermark of `topic` on `address`
/// ([`Cluster::high_watermarks`]).
pub fn high_watermarks(address: &str, topic: &str) -> BTreeMap<i32, i64> {
    Cluster::at(address).high_watermarks(topic)
}

/// The number of records in `topic` on `address` ([`Cluster::topic_end`]).
pub fn topic_end(address: &str, topic: &str) -> i64 {
    Cluster::at(address).topic_end(topic)
}

/// The sum of `group`'s committed offsets in the offsets topic `store` on
/// `address` ([`Cluster::committed_total`]).
pub fn committed_total(address: &str, store: &str, group: &str) -> i64 {
    Cluster::at(address).committed_total(store, group)
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

/// Runs `weir produce ARGS -b <shared broker>` with `input` on stdin
/// ([`Cluster::produce`]).
pub fn produce(args: &[&str], input: &[u8]) -> Run {
    Cluster::shared().produce(args, input)
}

/// Every record of every partition of `topic` on `broker`, read with
/// rskafka up to each partition's last stable offset (read_committed:
/// past transaction markers). Right after a transaction's EndTxn answered
/// its markers may not be written yet, and its records not read: wait for
/// them ([`wait_for`]).
pub fn read_all(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, Vec<rskafka::record::RecordAndOffset>> {
    use rskafka::client::partition::{IsolationLevel, OffsetAt, UnknownTopicHandling};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(timeout("read back", async {
        let config =
            weir::ConnectionConfig::new(brokers.split(',')).with_timeout(Duration::from_secs(20));
        let client = config.client().await.unwrap();
        let mut all = BTreeMap::new();
        for p in 0..partitions {
            let pc = client
                .partition_client(topic, p, UnknownTopicHandling::Retry)
                .await
                .unwrap();
            let high = pc.get_offset(OffsetAt::Latest).await.unwrap();
            let mut records = Vec::new();
            let mut offset = 0;
            while offset < high {
                let fetched = pc
                    .fetch_records_isolated(
                        offset,
                        1..10_000_000,
                        1_000,
                        IsolationLevel::ReadCommitted,
                    )
                    .await
                    .unwrap();
                // Past a batch of transaction markers too, which holds no
                // record.
                offset = fetched.next_offset;
                records.extend(fetched.records);
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

/// The table `kafka-consumer-groups` prints: its header's columns, and
/// its rows with as many columns.
pub fn group_table(out: &str) -> (Vec<&str>, Vec<Vec<&str>>) {
    let mut lines = out.lines().skip_while(|l| !l.starts_with("GROUP "));
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_else(|| panic!("no table from kafka-consumer-groups:\n{out}"))
        .split_whitespace()
        .collect();
    let rows = lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|row| row.len() == header.len())
        .collect();
    (header, rows)
}
