//! Fault tolerance on a three-node Kafka cluster, every topic with
//! replication factor 3 and `min.insync.replicas=2`:
//!
//! - the leader of a partition SIGKILLed in the middle of `weir produce`,
//!   `weir consume -g` and `weir count -g`: weir follows the new leaders by
//!   itself and nothing is lost (a produce retry may write a batch twice:
//!   the producer is not idempotent yet, so the repeats are counted);
//! - a broker stopped cleanly and restarted, then a preferred-leader
//!   election, while weir produces and consumes;
//! - partitions added while `weir produce` runs: records go to them after
//!   the next metadata refresh, on the partition the Java client picks;
//! - a broker down under `min.insync.replicas=3`: the leaders refuse
//!   writes until it is back, and weir waits for it as the Java producer
//!   does.
//!
//! A SIGKILLed broker is fenced by the controller only after
//! `broker.session.timeout.ms` (9 s), so the partitions it led have no
//! leader for about that long; weir runs with a `--timeout` well above it.
//!
//! The tests share one cluster and take turns; each gets it with every node
//! running (a node a test killed is restarted for the next).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{KAFKA_START_TIMEOUT, Kafka, STEP_TIMEOUT, random_topic, run, wait_exit, weir};
use rskafka::record::RecordAndOffset;
use serde_json::Value;
use weir::produce::partitioner::murmur2_partition;

/// weir's deadline for retries: well above the ~10 s a killed leader's
/// partitions stay without a leader.
const WEIR_TIMEOUT: &str = "60s";

/// Distinct keys of the keyed inputs.
const KEYS: u64 = 64;

/// Partitions of the topics.
const PARTITIONS: i32 = 6;

/// Input line `i`: key `k{i % KEYS}`, and as value that key's own count
/// so far, so each key's values are 0, 1, 2, ...
fn keyed(i: u64) -> String {
    format!("k{}:{}", i % KEYS, i / KEYS)
}

// ---------------------------------------------------------------------
// The cluster

type Work = Box<dyn FnOnce(&mut Kafka) + Send>;

/// Three Kafka nodes owned by a thread that lives as long as the test
/// binary: a node dies with the thread that spawned it, so every start and
/// restart happens there, sent as a job.
struct Cluster {
    jobs: mpsc::Sender<Work>,
    /// The bootstrap list of all three nodes.
    address: String,
}

impl Cluster {
    fn get() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            let (jobs, queue) = mpsc::channel::<Work>();
            let (ready, started) = mpsc::channel();
            std::thread::spawn(move || {
                let mut kafka = Kafka::start(3);
                ready.send(kafka.address()).unwrap();
                for job in queue {
                    job(&mut kafka);
                }
            });
            let address = started
                .recv_timeout(KAFKA_START_TIMEOUT + STEP_TIMEOUT)
                .expect("the three-node cluster did not start");
            Cluster { jobs, address }
        })
    }

    /// Runs `f` on the cluster's thread; its panic is raised here.
    fn with<R: Send + 'static>(&self, f: impl FnOnce(&mut Kafka) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        let job: Work = Box::new(move |kafka| {
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(|| f(kafka))));
        });
        self.jobs.send(job).expect("the cluster's thread is gone");
        match rx.recv().expect("the cluster's thread is gone") {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// SIGKILL to the node of broker `id`.
    fn kill(&self, id: i32) {
        self.with(move |kafka| kafka.kill(Kafka::node_index(id)));
    }

    /// SIGTERM to the node of broker `id` (controlled shutdown).
    fn stop(&self, id: i32) {
        self.with(move |kafka| kafka.stop(Kafka::node_index(id)));
    }

    /// Starts the node of broker `id` again and waits until it serves.
    fn restart(&self, id: i32) {
        self.with(move |kafka| kafka.restart(Kafka::node_index(id)));
    }

    /// The address of a running node, for clients that take one broker.
    fn live_node(&self) -> String {
        self.with(|kafka| {
            let i = (0..kafka.len())
                .find(|&i| kafka.is_running(i))
                .expect("a running node");
            kafka.node_address(i)
        })
    }
}

/// The cluster for one test, with every node running; the other tests wait
/// until the guard is dropped.
fn cluster() -> (MutexGuard<'static, ()>, &'static Cluster) {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let cluster = Cluster::get();
    cluster.with(|kafka| {
        for i in 0..kafka.len() {
            if !kafka.is_running(i) {
                kafka.restart(i);
            }
        }
    });
    (turn, cluster)
}

// ---------------------------------------------------------------------
// Topics

/// A topic with replication factor 3 and `min.insync.replicas=2`: an
/// acknowledged write is on two brokers, and one broker down stops
/// nothing.
fn create_topic(address: &str, topic: &str, partitions: i32) {
    create_topic_with_min_isr(address, topic, partitions, 2);
}

fn create_topic_with_min_isr(address: &str, topic: &str, partitions: i32, min_isr: u32) {
    let mut cmd = weir();
    cmd.args(["topics", "create", topic])
        .args(["--partitions", &partitions.to_string()])
        .args(["--replication-factor", "3"])
        .args(["--config", &format!("min.insync.replicas={min_isr}")])
        .args(["-b", address]);
    run(&mut cmd).ok();
}

/// `weir topics describe -o json`.
fn describe(address: &str, topic: &str) -> Value {
    let mut cmd = weir();
    cmd.args([
        "topics", "describe", topic, "--output", "json", "-b", address,
    ]);
    let out = run(&mut cmd);
    out.ok();
    serde_json::from_str(&out.stdout).unwrap()
}

fn partitions(description: &Value) -> &Vec<Value> {
    description["partitions"].as_array().unwrap()
}

/// The broker id leading `partition`.
fn leader(address: &str, topic: &str, partition: i32) -> i32 {
    partitions(&describe(address, topic))[partition as usize]["leader"]
        .as_i64()
        .unwrap() as i32
}

/// The number of records in the topic (sum of the high watermarks).
fn stored(address: &str, topic: &str) -> i64 {
    partitions(&describe(address, topic))
        .iter()
        .map(|p| p["latest"].as_i64().unwrap_or(0))
        .sum()
}

/// The number of in-sync replicas of each partition, from a metadata
/// request to `node`. (`weir topics describe` also asks the leaders for
/// the watermarks, which a leader with fewer in-sync replicas than
/// `min.insync.replicas` cannot give: its high watermark stands still.)
fn in_sync_replicas(node: &str, topic: &str) -> Vec<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(common::timeout("a metadata request", async {
        let config = weir::ConnectionConfig::new([node.to_owned()]).with_timeout(STEP_TIMEOUT);
        let mut admin = weir::Admin::connect(&config).await.unwrap();
        let partitions = admin.partitions(topic).await.unwrap();
        partitions.into_iter().map(|p| p.isr.len()).collect()
    }))
}

/// Polls `done` every 100 ms until it holds; panics after
/// [`STEP_TIMEOUT`], naming `what`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {STEP_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text(bytes: Option<&Vec<u8>>) -> String {
    String::from_utf8(bytes.cloned().unwrap_or_default()).unwrap()
}

/// Checks a topic written with `keyed(0..lines)`: per key, once repeats of
/// values already seen are dropped, the values are 0, 1, 2, ... with no
/// gap, up to the key's last line. Returns the number of repeats
/// (at-least-once: a batch whose acknowledgement was lost is sent again).
fn check_keyed(records: &BTreeMap<i32, Vec<RecordAndOffset>>, lines: u64) -> u64 {
    let mut next: BTreeMap<String, u64> = BTreeMap::new();
    let mut repeats = 0;
    for (partition, records) in records {
        for r in records {
            let key = text(r.record.key.as_ref());
            let value: u64 = text(r.record.value.as_ref()).parse().unwrap();
            let expected = next.entry(key.clone()).or_default();
            if value < *expected {
                repeats += 1;
                continue;
            }
            assert_eq!(
                value,
                *expected,
                "partition {partition} offset {}: key {key} goes from {} to {value}: records are missing",
                r.offset,
                expected.wrapping_sub(1)
            );
            *expected += 1;
        }
    }
    for k in 0..KEYS {
        let count = lines / KEYS + u64::from(k < lines % KEYS);
        let got = next.get(&format!("k{k}")).copied().unwrap_or(0);
        assert_eq!(got, count, "key k{k}: values 0..{count} expected");
    }
    repeats
}

// ---------------------------------------------------------------------
// weir processes

/// `weir produce` fed `line(0)`, `line(1)`, ... from a thread,
/// `per_pause` lines at a time with `pause` between, up to `limit` lines
/// or until stopped; held at a line while a test asks it to.
struct Producing {
    child: Child,
    writer: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    /// The writer hands over no line at or past this one.
    ceiling: Arc<AtomicU64>,
    stderr: Option<JoinHandle<String>>,
}

impl Producing {
    fn start(
        args: &[&str],
        limit: u64,
        per_pause: u64,
        pause: Duration,
        line: impl Fn(u64) -> String + Send + 'static,
    ) -> Self {
        let mut child = weir()
            .arg("produce")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
        let stderr = child.stderr.take().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let ceiling = Arc::new(AtomicU64::new(u64::MAX));
        let writer = {
            let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
            let ceiling = Arc::clone(&ceiling);
            std::thread::spawn(move || {
                let mut i = 0;
                while i < limit && !stop.load(Ordering::Relaxed) {
                    let held = ceiling.load(Ordering::Relaxed);
                    if i >= held {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    let end = (i + per_pause).min(limit).min(held);
                    for n in i..end {
                        if writeln!(stdin, "{}", line(n)).is_err() {
                            return;
                        }
                    }
                    if stdin.flush().is_err() {
                        return;
                    }
                    i = end;
                    written.store(i, Ordering::Relaxed);
                    std::thread::sleep(pause);
                }
            })
        };
        Self {
            child,
            writer: Some(writer),
            stop,
            written,
            ceiling,
            stderr: Some(std::thread::spawn(move || {
                std::io::read_to_string(stderr).unwrap_or_default()
            })),
        }
    }

    /// Hands over no line at or past `line` until [`Self::release`].
    fn hold_at(&self, line: u64) {
        self.ceiling.store(line, Ordering::Relaxed);
    }

    /// Ends a [`Self::hold_at`].
    fn release(&self) {
        self.ceiling.store(u64::MAX, Ordering::Relaxed);
    }

    /// Lines handed to weir so far.
    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Waits until `lines` lines have been handed to weir; panics, with
    /// its stderr, if it exits first.
    fn feed_past(&mut self, lines: u64) {
        wait_for("weir produce taking its input", || {
            if let Some(status) = self.child.try_wait().unwrap() {
                let stderr = self.stderr.take().unwrap().join().unwrap();
                panic!("weir produce exited early with {status}:\n{stderr}");
            }
            self.written() >= lines
        });
    }

    /// Waits until every line is written (or, with `stop`, stops writing),
    /// closes weir's input and waits for it to exit. Returns its status,
    /// its stderr and the number of lines it was given.
    fn finish(mut self, stop: bool) -> (ExitStatus, String, u64) {
        self.stop.store(stop, Ordering::Relaxed);
        self.writer.take().unwrap().join().unwrap();
        let status = wait_exit(&mut self.child, "weir produce");
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status, stderr, self.written())
    }
}

impl Drop for Producing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// `weir produce` arguments for keyed lines (`key:value`) to `topic`.
fn produce_args<'a>(topic: &'a str, address: &'a str) -> [&'a str; 8] {
    [
        "-t",
        topic,
        "-K",
        ":",
        "--timeout",
        WEIR_TIMEOUT,
        "-b",
        address,
    ]
}

/// A long-running weir job (`consume` or `count`) whose stdout goes to a
/// file.
struct Job {
    child: Child,
    out: PathBuf,
    stderr: Option<JoinHandle<String>>,
    _dir: tempfile::TempDir,
}

impl Job {
    fn start(cmd: &mut Command) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("stdout");
        let mut child = cmd
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).ok();
            text
        });
        Self {
            child,
            out,
            stderr: Some(stderr),
            _dir: dir,
        }
    }

    /// Complete lines written so far.
    fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.out).unwrap();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().map(str::to_owned).collect()
    }

    /// Panics, with its stderr, when the job has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            let stderr = self.stderr.take().unwrap().join().unwrap();
            panic!("weir exited early with {status}:\n{stderr}");
        }
    }

    /// SIGTERM (a graceful stop: flush, commit); returns the exit status,
    /// stderr and every line written.
    fn stop(mut self) -> (ExitStatus, String, Vec<String>) {
        // SAFETY: kill(2) on a child we own and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = wait_exit(&mut self.child, "weir after SIGTERM");
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status, stderr, self.lines())
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// `weir consume -g GROUP` following `topic`, one line per record:
/// partition, offset, key, value.
fn consume(address: &str, topic: &str, group: &str, store: &str) -> Job {
    Job::start(
        weir()
            .args([
                "consume",
                "-t",
                topic,
                "-g",
                group,
                "--offsets-topic",
                store,
            ])
            .args(["--commit-interval", "500ms"])
            .args(["-f", "{partition} {offset} {key} {value}"])
            .args(["--timeout", WEIR_TIMEOUT, "-b", address]),
    )
}

/// Waits until `job` has written `lines` lines, checking that it still
/// runs.
fn wait_lines(job: &mut Job, lines: usize, what: &str) {
    wait_for(what, || {
        job.assert_running();
        job.lines().len() >= lines
    });
}

/// The consumer's output holds every record of the topic exactly once, in
/// offset order per partition: no gap, no repeat.
fn check_consumed(lines: &[String], topic: &BTreeMap<i32, Vec<RecordAndOffset>>) {
    let mut got: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for line in lines {
        let mut fields = line.splitn(3, ' ');
        let partition: i32 = fields.next().unwrap().parse().unwrap();
        let offset: i64 = fields.next().unwrap().parse().unwrap();
        let rest = fields.next().unwrap_or_default().to_owned();
        got.entry(partition).or_default().push((offset, rest));
    }
    for (partition, records) in topic {
        let got = got.remove(partition).unwrap_or_default();
        for (i, r) in records.iter().enumerate() {
            assert_eq!(
                r.offset, i as i64,
                "partition {partition}: offsets of the topic"
            );
            let want = format!(
                "{} {}",
                text(r.record.key.as_ref()),
                text(r.record.value.as_ref())
            );
            match got.get(i) {
                Some((offset, value)) => assert!(
                    *offset == r.offset && *value == want,
                    "partition {partition}: output line {i} is offset {offset} \"{value}\", expected offset {} \"{want}\"",
                    r.offset
                ),
                None => panic!(
                    "partition {partition}: the output stops at offset {i} of {}",
                    records.len()
                ),
            }
        }
        assert_eq!(
            got.len(),
            records.len(),
            "partition {partition}: output beyond the topic's records"
        );
    }
    assert!(got.is_empty(), "output for unknown partitions: {got:?}");
}

// ---------------------------------------------------------------------
// The cases

/// Every record of `topic`, as Kafka's own console consumer (the Java
/// client) reads it: `key:value` lines, each partition in its order.
fn java_read_keyed(address: &str, topic: &str, records: u64) -> Vec<String> {
    let max = records.to_string();
    let run = common::kafka_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            address,
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            &max,
            "--timeout-ms",
            "60000",
            "--property",
            "print.key=true",
            "--property",
            "key.separator=:",
        ],
    );
    run.ok();
    // The tool's own log lines (a WARN about a lost leader) share stdout.
    run.stdout
        .lines()
        .filter(|l| l.starts_with('k'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn idempotent_produce_survives_two_leader_kills_without_duplicates() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let topic = random_topic("kill-produce");
    create_topic(address, &topic, PARTITIONS);

    // About 10,000 lines/s, so that both kills and the restart between
    // them fall while weir is producing.
    let total: u64 = 200_000;
    let mut producing = Producing::start(
        &produce_args(&topic, address),
        total,
        10,
        Duration::from_millis(1),
        keyed,
    );
    // Held before the end until the second kill: waiting for the
    // replicas between the kills can outlast the feed.
    producing.hold_at(total * 3 / 4);
    for (round, share) in [(0, total / 10), (1, total / 2)] {
        wait_for("records in the topic", || {
            stored(address, &topic) >= share as i64
        });
        let victim = leader(address, &topic, 0);
        cluster.kill(victim);
        if round == 0 {
            // Back, and in sync again everywhere, before the next leader
            // dies: two of three replicas must stay for min.insync=2.
            producing.feed_past(producing.written() + total / 20);
            cluster.restart(victim);
            let node = cluster.live_node();
            wait_for("every replica in sync", || {
                in_sync_replicas(&node, &topic).iter().all(|&n| n == 3)
            });
        }
    }
    producing.release();
    let (status, stderr, written) = producing.finish(false);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(written, total);
    assert!(
        stderr.contains(&format!("produced {total} records")),
        "{stderr}"
    );

    // Exactly the records given: the retries after each leader loss were
    // appended once (the idempotent producer's sequence numbers).
    assert_eq!(stored(address, &topic), total as i64, "records stored");
    let lines = java_read_keyed(&cluster.live_node(), &topic, total);
    assert_eq!(
        lines.len() as u64,
        total,
        "records read by the Java consumer: {:?}",
        lines
            .iter()
            .filter(|l| !l.contains(':'))
            .take(3)
            .collect::<Vec<_>>()
    );
    // Per key, the values 0, 1, 2, ... in order, each once.
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    for line in &lines {
        let (key, value) = line.split_once(':').expect("key:value");
        let value: u64 = value.parse().unwrap();
        let expected = next.entry(key).or_default();
        assert_eq!(
            value, *expected,
            "key {key}: out of order, repeated or missing"
        );
        *expected += 1;
    }
    assert_eq!(next.len() as u64, KEYS);
    eprintln!("faults: produce, two leader kills: {total} records, no duplicates");
}

/// Without idempotence (`--no-idempotence`), a leader loss under load can
/// store a batch twice; every line is still there, in per-key order.
#[test]
fn produce_without_idempotence_survives_a_killed_leader() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let topic = random_topic("kill-produce-plain");
    create_topic(address, &topic, PARTITIONS);
    let victim = leader(address, &topic, 0);

    let total: u64 = 100_000;
    let mut args = produce_args(&topic, address).to_vec();
    args.push("--no-idempotence");
    let producing = Producing::start(&args, total, 100, Duration::from_millis(1), keyed);
    wait_for("a tenth of the records in the topic", || {
        stored(address, &topic) >= (total / 10) as i64
    });
    cluster.kill(victim);
    let (status, stderr, written) = producing.finish(false);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(written, total);
    let records = common::read_all(&cluster.live_node(), &topic, PARTITIONS);
    let repeats = check_keyed(&records, total);
    eprintln!(
        "faults: produce --no-idempotence, leader kill: {total} records, {repeats} duplicates"
    );
}

#[test]
fn consume_follows_a_new_leader() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let topic = random_topic("kill-consume");
    let group = random_topic("g");
    let store = random_topic("offsets");
    create_topic(address, &topic, PARTITIONS);
    let victim = leader(address, &topic, 0);

    let mut consumer = consume(address, &topic, &group, &store);
    let mut producing = Producing::start(
        &produce_args(&topic, address),
        u64::MAX,
        10,
        Duration::from_millis(1),
        keyed,
    );
    wait_lines(&mut consumer, 5_000, "records consumed before the kill");
    cluster.kill(victim);
    let consumed_at_kill = consumer.lines().len();
    producing.feed_past(producing.written() + 10_000);
    let (status, stderr, total) = producing.finish(true);
    assert_eq!(status.code(), Some(0), "the feeding producer: {stderr}");

    let in_topic = stored(address, &topic);
    assert!(
        consumed_at_kill < in_topic as usize,
        "the kill came after the consumer had read everything"
    );
    wait_lines(
        &mut consumer,
        in_topic as usize,
        "the consumer reaching the end after the leader kill",
    );
    let (status, stderr, output) = consumer.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");

    let reader = cluster.live_node();
    let records = common::read_all(&reader, &topic, PARTITIONS);
    let repeats = check_keyed(&records, total);
    check_consumed(&output, &records);
    eprintln!(
        "faults: consume leader kill: {in_topic} records consumed once each, the feeding producer wrote {repeats} duplicates"
    );
}

/// Log levels of [`log_line`].
const LEVELS: [&str; 4] = ["INFO", "WARN", "ERROR", "DEBUG"];

/// Input line `i` for `weir produce -K :`: a host as key, a log line as
/// value whose second word is the level, chosen by a hash of `i`.
fn log_line(i: u64) -> String {
    let level = LEVELS[((i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) % 4) as usize];
    format!("host-{}:{i} {level} GET /item/{}", i % 12, i % 97)
}

/// The reference for `weir count --by regex:^\S+ (\w+)`: records per
/// second word of the value, counted here from the topic's records.
fn level_counts(records: &BTreeMap<i32, Vec<RecordAndOffset>>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for r in records.values().flatten() {
        let value = text(r.record.value.as_ref());
        let level = value.split(' ').nth(1).unwrap().to_owned();
        *counts.entry(level).or_default() += 1;
    }
    counts
}

/// The last count per key of `weir count --json` rows (running totals).
fn last_totals<'a>(rows: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, u64> {
    rows.into_iter()
        .map(|row| {
            let row: Value = serde_json::from_str(row).unwrap_or_else(|e| panic!("{e}: {row}"));
            assert!(row["window_start"].is_null(), "a total: {row}");
            (
                row["key"].as_str().unwrap().to_owned(),
                row["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn count_stays_exact_across_a_killed_leader() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let topic = random_topic("kill-count");
    let out_topic = random_topic("counts");
    let group = random_topic("g");
    let store = random_topic("offsets");
    create_topic(address, &topic, PARTITIONS);

    let count = |extra: &[&str]| {
        let mut cmd = weir();
        cmd.args(["count", "-t", &topic, "--by", r"regex:^\S+ (\w+)", "--json"])
            .args(["-g", &group, "--offsets-topic", &store])
            .args(["--commit-interval", "200ms", "--to-topic", &out_topic])
            .args(["--timeout", WEIR_TIMEOUT, "-b", address])
            .args(extra);
        cmd
    };
    let mut producing = Producing::start(
        &produce_args(&topic, address),
        u64::MAX,
        10,
        Duration::from_millis(1),
        log_line,
    );
    let mut counting = Job::start(&mut count(&[]));
    wait_for("a first commit", || {
        counting.assert_running();
        common::committed_total(address, &store, &group) > 0
    });

    // The store was created by weir, replicated as Kafka's own
    // __consumer_offsets on three brokers.
    let description = describe(address, &store);
    for p in partitions(&description) {
        assert_eq!(p["replicas"].as_array().unwrap().len(), 3, "{p}");
    }
    let min_isr = description["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "min.insync.replicas")
        .map(|c| c["value"].clone());
    assert_eq!(
        min_isr,
        Some(Value::from("2")),
        "the store's min.insync.replicas"
    );

    // The kill takes the group's store partition and input partitions.
    let store_partition =
        murmur2_partition(group.as_bytes(), partitions(&description).len() as i32);
    let victim = leader(address, &store, store_partition);
    let input = describe(address, &topic);
    assert!(
        partitions(&input).iter().any(|p| p["leader"] == victim),
        "broker {victim} leads no input partition: {input}"
    );
    cluster.kill(victim);
    producing.feed_past(producing.written() + 10_000);
    let (status, stderr, _) = producing.finish(true);
    assert_eq!(status.code(), Some(0), "the feeding producer: {stderr}");

    let in_topic = stored(address, &topic);
    wait_for("every record committed after the leader kill", || {
        counting.assert_running();
        common::committed_total(address, &store, &group) == in_topic
    });
    let reader = cluster.live_node();
    let expected = level_counts(&common::read_all(&reader, &topic, PARTITIONS));
    assert_eq!(expected.values().sum::<u64>(), in_topic as u64);
    // The member's rows come from its second stage (counted by a part of
    // the value, not the key), a checkpoint after its input's.
    wait_for(
        "the rows of the run that saw the kill reach the totals",
        || {
            counting.assert_running();
            last_totals(counting.lines().iter().map(String::as_str)) == expected
        },
    );
    // SIGKILL: the restart below sees only what the last commit saved.
    drop(counting);

    let resumed = run(&mut count(&["-e"]));
    resumed.ok();
    assert_eq!(
        last_totals(resumed.stdout.lines()),
        expected,
        "totals restored from the last commit; {}",
        resumed.stderr
    );
    let output: Vec<String> = common::read_all(&reader, &out_topic, PARTITIONS)
        .into_values()
        .flatten()
        .map(|r| text(r.record.value.as_ref()))
        .collect();
    assert_eq!(
        last_totals(output.iter().map(String::as_str)),
        expected,
        "the output topic"
    );
    eprintln!(
        "faults: count leader kill: {in_topic} records, totals {expected:?} exact (broker {victim} led store partition {store_partition})"
    );
}

#[test]
fn a_restarted_broker_and_a_leader_election_lose_nothing() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let topic = random_topic("restart");
    let group = random_topic("g");
    let store = random_topic("offsets");
    create_topic(address, &topic, PARTITIONS);

    let mut consumer = consume(address, &topic, &group, &store);
    let producing = Producing::start(
        &produce_args(&topic, address),
        u64::MAX,
        10,
        Duration::from_millis(1),
        keyed,
    );
    wait_lines(&mut consumer, 2_000, "records consumed at the start");

    // A controlled shutdown: the broker hands its leaderships over first.
    let moved = leader(address, &topic, 0);
    cluster.stop(moved);
    let seen = consumer.lines().len();
    wait_lines(
        &mut consumer,
        seen + 2_000,
        "records consumed while a broker is stopped",
    );
    cluster.restart(moved);
    wait_for("the restarted broker back in every ISR", || {
        partitions(&describe(address, &topic))
            .iter()
            .all(|p| p["isr"].as_array().unwrap().len() == 3)
    });

    // Partition 0 goes back to its preferred leader, the restarted broker.
    let before = partitions(&describe(address, &topic))[0].clone();
    assert_eq!(before["replicas"][0], moved, "{before}");
    assert_ne!(before["leader"], moved, "partition 0 moved back by itself");
    let election = common::kafka_tool(
        "org.apache.kafka.tools.LeaderElectionCommand",
        &[
            "--bootstrap-server",
            address,
            "--election-type",
            "PREFERRED",
            "--topic",
            &topic,
            "--partition",
            "0",
        ],
    );
    assert_eq!(election.code, Some(0), "{election:?}");
    wait_for("partition 0 led by its preferred replica", || {
        leader(address, &topic, 0) == moved
    });
    let seen = consumer.lines().len();
    wait_lines(
        &mut consumer,
        seen + 2_000,
        "records consumed after the election",
    );

    let (status, stderr, total) = producing.finish(true);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("produced {total} records")),
        "{stderr}"
    );
    let in_topic = stored(address, &topic);
    wait_lines(
        &mut consumer,
        in_topic as usize,
        "the consumer reaching the end",
    );
    let (status, stderr, output) = consumer.stop();
    assert_eq!(status.code(), Some(0), "{stderr}");

    let records = common::read_all(&cluster.live_node(), &topic, PARTITIONS);
    let repeats = check_keyed(&records, total);
    check_consumed(&output, &records);
    eprintln!(
        "faults: broker {moved} stopped, restarted and re-elected: {total} records produced ({repeats} duplicates), {in_topic} consumed once each"
    );
}

/// Input line `i`: one of 997 keys, `i` as the value.
fn spread(i: u64) -> String {
    format!("key-{}:{i}", i % 997)
}

#[test]
fn partitions_added_mid_run_are_used_where_java_puts_the_keys() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let topic = random_topic("grow");
    create_topic(address, &topic, 3);

    let mut args = produce_args(&topic, address).to_vec();
    args.extend(["--metadata-max-age", "500ms"]);
    let producing = Producing::start(&args, u64::MAX, 10, Duration::from_millis(1), spread);
    wait_for("records in the topic", || stored(address, &topic) >= 2_000);
    let grown = common::kafka_tool(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            address,
            "--alter",
            "--topic",
            &topic,
            "--partitions",
            "6",
        ],
    );
    assert_eq!(grown.code, Some(0), "{grown:?}");
    let fed_at_growth = producing.written();
    wait_for("records on the new partitions", || {
        partitions(&describe(address, &topic))[3..]
            .iter()
            .map(|p| p["latest"].as_i64().unwrap_or(0))
            .sum::<i64>()
            >= 2_000
    });
    let (status, stderr, total) = producing.finish(true);
    assert_eq!(status.code(), Some(0), "{stderr}");

    // Every line once; up to some line keys go where 3 partitions put
    // them, from that line on where 6 do.
    let mut placed: BTreeMap<u64, (String, i32)> = BTreeMap::new();
    for (partition, records) in common::read_all(&cluster.live_node(), &topic, 6) {
        for r in records {
            let i: u64 = text(r.record.value.as_ref()).parse().unwrap();
            let key = text(r.record.key.as_ref());
            assert!(
                placed.insert(i, (key, partition)).is_none(),
                "line {i} written twice"
            );
        }
    }
    assert_eq!(
        placed.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>(),
        "every line in the topic"
    );
    let switch = placed
        .iter()
        .find(|(_, (key, p))| *p != murmur2_partition(key.as_bytes(), 3))
        .map(|(&i, _)| i)
        .expect("a record placed by the new partition count");
    let mut after: BTreeMap<String, i32> = BTreeMap::new();
    for (&i, (key, partition)) in &placed {
        let count = if i < switch { 3 } else { 6 };
        assert_eq!(
            *partition,
            murmur2_partition(key.as_bytes(), count),
            "line {i}, key {key}: placed for {count} partitions (the switch was at line {switch})"
        );
        if i >= switch {
            after.insert(key.clone(), *partition);
        }
    }

    // Kafka's own Java producer puts each key where weir did.
    let input: String = (0..997).map(|k| format!("key-{k}:java\n")).collect();
    let java = common::kafka_tool_with_input(
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            address,
            "--topic",
            &topic,
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator=:",
        ],
        input.as_bytes(),
    );
    assert_eq!(java.code, Some(0), "{java:?}");
    let mut compared = 0;
    for (partition, records) in common::read_all(&cluster.live_node(), &topic, 6) {
        for r in records
            .iter()
            .filter(|r| r.record.value.as_deref() == Some(b"java"))
        {
            let key = text(r.record.key.as_ref());
            assert_eq!(
                partition,
                murmur2_partition(key.as_bytes(), 6),
                "Java put key {key} on partition {partition}"
            );
            if let Some(&weir_partition) = after.get(&key) {
                assert_eq!(partition, weir_partition, "key {key}");
                compared += 1;
            }
        }
    }
    assert!(
        compared >= 500,
        "only {compared} keys written by both after the growth"
    );
    eprintln!(
        "faults: 3 -> 6 partitions: {total} records, the switch at line {switch} (line {fed_at_growth} was being fed when the alter command returned); {compared} keys on the same partition as Java's producer"
    );
}

/// With `min.insync.replicas=3`, a broker down makes the leaders refuse
/// writes (NOT_ENOUGH_REPLICAS, or NOT_ENOUGH_REPLICAS_AFTER_APPEND for a
/// write already appended), errors the Java producer retries until its
/// delivery timeout: weir waits the same way and delivers every record
/// once the broker is back within `--timeout`.
#[test]
fn produce_waits_for_enough_in_sync_replicas() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let topic = random_topic("min-isr");
    create_topic_with_min_isr(address, &topic, 3, 3);
    let victim = leader(address, &topic, 0);

    let mut producing = Producing::start(
        &produce_args(&topic, address),
        u64::MAX,
        10,
        Duration::from_millis(1),
        keyed,
    );
    wait_for("records in the topic", || stored(address, &topic) >= 2_000);
    cluster.kill(victim);
    // Writes are refused once the controller has fenced the broker and
    // taken it out of every ISR.
    let node = cluster.live_node();
    wait_for("the killed broker out of every ISR", || {
        in_sync_replicas(&node, &topic).iter().all(|&n| n == 2)
    });
    // weir's input is held up since the kill (every partition waits for
    // the dead replica); the broker stays down a moment longer, so that
    // its requests are refused.
    std::thread::sleep(Duration::from_secs(1));
    cluster.restart(victim);
    producing.feed_past(producing.written() + 2_000);
    let (status, stderr, total) = producing.finish(true);
    assert_eq!(status.code(), Some(0), "{stderr}");

    let records = common::read_all(&cluster.live_node(), &topic, 3);
    let repeats = check_keyed(&records, total);
    eprintln!(
        "faults: min.insync.replicas=3 with a broker down: {total} records delivered after it came back, {repeats} duplicates"
    );
}

// ---------------------------------------------------------------------
// Exactly once: `weir pipe --exactly-once`

/// The keys `weir pipe` keeps in the exactly-once tests: those ending in
/// an even digit (`--grep-key`), 32 of the 64.
const EVEN_KEYS: &str = "[02468]$";

fn even_key(key: u64) -> bool {
    key % 2 == 0
}

/// `weir pipe --exactly-once` from `input` to `output`, keeping the even
/// keys, committing to `group` in `store`: every partition, chosen here
/// (`--exclusive`, without joining the broker's group).
fn exactly_once_pipe(
    address: &str,
    input: &str,
    output: &str,
    group: &str,
    store: &str,
) -> Command {
    let mut cmd = exactly_once_member(address, input, output, group, store);
    cmd.arg("--exclusive");
    cmd
}

/// As [`exactly_once_pipe`], as a member of the broker's group `group`
/// (session timeout 6 s).
fn exactly_once_member(
    address: &str,
    input: &str,
    output: &str,
    group: &str,
    store: &str,
) -> Command {
    let mut cmd = weir();
    cmd.args(["pipe", "-t", input, "--to", output, "-g", group])
        .args(["--session-timeout", "6s"])
        .args(["--offsets-topic", store, "--commit-interval", "200ms"])
        .args(["--grep-key", EVEN_KEYS, "--exactly-once"])
        .args(["--timeout", WEIR_TIMEOUT, "-b", address]);
    cmd
}

/// Sends `signal` to `child`.
fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

/// A weir process whose stderr goes to a file, shown when a wait for it
/// fails.
struct Logged {
    child: Child,
    err: PathBuf,
}

impl Logged {
    fn spawn(cmd: &mut Command, name: &str) -> Self {
        let err = std::env::temp_dir().join(format!("{}.err", random_topic(name)));
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Self { child, err }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits until this group member's last join gave it partitions (a
    /// member frozen before that has nothing to be fenced from).
    fn wait_for_partitions(&mut self, name: &str) {
        wait_for(&format!("{name} holds partitions"), || {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{name} exited early with {status}:\n{}", self.stderr());
            }
            let log = self.stderr();
            let last = log.lines().rev().find(|l| l.contains(" joined "));
            last.is_some_and(|l| !l.contains("partitions=0"))
        });
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        let _ = std::fs::remove_file(&self.err);
    }
}

/// Waits until `group`'s commits in `store` pass `above`; returns them.
fn committed_past(address: &str, store: &str, group: &str, above: i64, job: &mut Logged) -> i64 {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(status) = job.child.try_wait().unwrap() {
            panic!("weir exited early with {status}:\n{}", job.stderr());
        }
        let now = common::committed_total(address, store, group);
        if now > above {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "no commit past {above} within {STEP_TIMEOUT:?}:\n{}",
            job.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The topics and group of an exactly-once pipe test: an input of
/// [`PARTITIONS`] partitions and an output of 4, both created here, and a
/// store and group of their own.
struct PipeTopics {
    input: String,
    output: String,
    store: String,
    group: String,
}

impl PipeTopics {
    fn create(address: &str, prefix: &str) -> Self {
        let topics = Self {
            input: random_topic(&format!("{prefix}-in")),
            output: random_topic(&format!("{prefix}-out")),
            store: random_topic(&format!("{prefix}-offsets")),
            group: random_topic(&format!("{prefix}-g")),
        };
        create_topic(address, &topics.input, PARTITIONS);
        create_topic(address, &topics.output, 4);
        topics
    }
}

/// `keyed(0..total)` into `input` at about 5,000 lines/s, so that input
/// keeps coming while the test freezes, kills and starts pipes.
fn feed_slowly(address: &str, input: &str, total: u64) -> Producing {
    Producing::start(
        &produce_args(input, address),
        total,
        50,
        Duration::from_millis(10),
        keyed,
    )
}

/// Writes `line(0..)` with `weir produce ARGS` at up to 10,000 lines/s
/// until [`kill_loop`] stops it (at most 3,000,000 lines, 5 minutes).
fn feed_for_kills(args: &[&str], line: impl Fn(u64) -> String + Send + 'static) -> Producing {
    Producing::start(args, 3_000_000, 100, Duration::from_millis(10), line)
}

/// A crash loop: the job to kill, where it commits, and when.
struct KillLoop<'a> {
    address: &'a str,
    store: &'a str,
    group: &'a str,
    /// The output topic: the leader of its partition 0 is SIGKILLed in
    /// round `broker_round`.
    output: &'a str,
    rounds: u32,
    broker_round: u32,
    max_delay_ms: u64,
}

/// Runs `job()` `rounds` times while `feeding` keeps writing its input,
/// each run SIGKILLed at a moment of its own: a pseudo-random 0 to
/// `max_delay_ms` after a commit past the last run's (the seed is
/// printed). Input keeps coming, so every kill lands mid-stream; a run
/// that exits before its kill fails the test. In `broker_round`, the
/// leader of the output's partition 0 is SIGKILLed first and the job must
/// commit again without it; it is restarted after the round. Then stops
/// the feed and returns the number of input lines it wrote.
fn kill_loop(
    cluster: &Cluster,
    plan: &KillLoop<'_>,
    mut feeding: Producing,
    job: impl Fn() -> Command,
) -> u64 {
    let mut seed = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    );
    eprintln!("kill loop: seed {seed}");
    let (address, store, group) = (plan.address, plan.store, plan.group);
    let mut committed = 0;
    for round in 0..plan.rounds {
        let mut run = Logged::spawn(&mut job(), "killed");
        committed = committed_past(address, store, group, committed, &mut run);
        let mut victim = None;
        if round == plan.broker_round {
            let id = leader(address, plan.output, 0);
            cluster.kill(id);
            victim = Some(id);
            committed = committed_past(address, store, group, committed, &mut run);
        }
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis((seed >> 33) % plan.max_delay_ms));
        if let Some(status) = run.child.try_wait().unwrap() {
            panic!(
                "weir exited before its kill with {status}:\n{}",
                run.stderr()
            );
        }
        drop(run); // SIGKILL: the open transaction stays open.
        if let Some(id) = victim {
            cluster.restart(id);
        }
        feeding.feed_past(feeding.written() + 1);
    }
    let (status, stderr, written) = feeding.finish(true);
    assert!(status.success(), "{stderr}");
    written
}

/// Checks `output` as read_committed readers see it, after a pipe of
/// `keyed(0..lines)` that kept the even keys: each even key's values 0,
/// 1, 2, ... once each, in order, and nothing else, read by Kafka's own
/// console consumer (the Java client, `isolation.level=read_committed`)
/// and counted again by `weir consume`. Returns how many more records a
/// read_uncommitted reader sees (those of aborted transactions).
fn check_exactly_once(address: &str, output: &str, lines: u64) -> u64 {
    let expected: u64 = (0..KEYS)
        .filter(|&k| even_key(k))
        .map(|k| lines / KEYS + u64::from(k < lines % KEYS))
        .sum();
    let max = expected.to_string();
    let java = common::kafka_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            address,
            "--topic",
            output,
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--max-messages",
            &max,
            "--timeout-ms",
            "60000",
            "--property",
            "print.key=true",
            "--property",
            "key.separator=:",
        ],
    );
    java.ok();
    let mut next: BTreeMap<u64, u64> = BTreeMap::new();
    let mut read = 0;
    for line in java.stdout.lines().filter(|l| l.starts_with('k')) {
        let (key, value) = line.split_once(':').unwrap();
        let key: u64 = key[1..].parse().unwrap();
        let value: u64 = value.parse().unwrap();
        assert!(even_key(key), "a filtered key was piped: {line}");
        let expected = next.entry(key).or_default();
        assert_eq!(
            value,
            *expected,
            "key k{key}: {value} after {} (a repeat or a gap)",
            expected.wrapping_sub(1)
        );
        *expected += 1;
        read += 1;
    }
    assert_eq!(read, expected, "records read by the Java consumer");
    // Nothing past them: weir's own read_committed count of the topic.
    let count = |isolation: &str| {
        let mut cmd = weir();
        cmd.args([
            "consume",
            "-t",
            output,
            "-e",
            "-q",
            "--isolation",
            isolation,
        ])
        .args(["-b", address]);
        let out = run(&mut cmd);
        out.ok();
        out.stdout.lines().count() as u64
    };
    assert_eq!(count("read_committed"), expected, "records read_committed");
    count("read_uncommitted") - expected
}

#[test]
fn pipe_exactly_once_across_kills_of_weir_and_a_broker() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let PipeTopics {
        input,
        output,
        store,
        group,
    } = PipeTopics::create(address, "eos");
    let feeding = feed_for_kills(&produce_args(&input, address), keyed);
    let pipe = || exactly_once_pipe(address, &input, &output, &group, &store);
    let plan = KillLoop {
        address,
        store: &store,
        group: &group,
        output: &output,
        rounds: 5,
        broker_round: 2,
        max_delay_ms: 400,
    };
    let total = kill_loop(cluster, &plan, feeding, pipe);
    let mut last = pipe();
    last.arg("-e");
    run(&mut last).ok();
    assert_eq!(
        common::committed_total(address, &store, &group),
        total as i64
    );

    let aborted = check_exactly_once(&cluster.live_node(), &output, total);
    eprintln!(
        "exactly-once pipe: {} SIGKILLs mid-stream and a broker SIGKILL over {total} records; {aborted} records of aborted transactions left out by read_committed readers",
        plan.rounds
    );
}

#[test]
fn a_stalled_exactly_once_pipe_is_fenced_by_its_replacement() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let PipeTopics {
        input,
        output,
        store,
        group,
    } = PipeTopics::create(address, "zombie");
    // About 5,000 lines/s for 12 s: input keeps coming while the first
    // instance is frozen and after it is continued.
    let total: u64 = 60_000;
    let feeding = feed_slowly(address, &input, total);
    let mut zombie = Logged::spawn(
        &mut exactly_once_pipe(address, &input, &output, &group, &store),
        "zombie",
    );
    let committed = committed_past(address, &store, &group, 0, &mut zombie);
    signal(&zombie.child, libc::SIGSTOP);
    let mut replacement = Logged::spawn(
        &mut exactly_once_pipe(address, &input, &output, &group, &store),
        "replacement",
    );
    committed_past(address, &store, &group, committed, &mut replacement);
    signal(&zombie.child, libc::SIGCONT);
    let status = common::wait_until(&mut zombie.child, STEP_TIMEOUT);
    let zombie_err = zombie.stderr();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{zombie_err}");
    let last = zombie_err.lines().last().unwrap_or_default();
    // Kafka 4.4's coordinator has once answered the fenced instance's
    // EndTxn with UNKNOWN_SERVER_ERROR instead of PRODUCER_FENCED (a
    // clean-clone run of this test); weir then fails naming the
    // transaction, also with exit 1 and nothing of it committed, which
    // the output check below covers.
    assert!(
        last.starts_with("weir: fenced: another instance started with transactional id")
            || (last.contains("transactional id \"weir:")
                && last.contains("EndTxn refused by the coordinator: UnknownServerError")),
        "{zombie_err}"
    );

    let (status, stderr, _) = feeding.finish(false);
    assert!(status.success(), "{stderr}");
    wait_for("the replacement's commits at the end", || {
        common::committed_total(address, &store, &group) == total as i64
    });
    signal(&replacement.child, libc::SIGTERM);
    let status = wait_exit(&mut replacement.child, "the replacement pipe");
    assert!(status.success(), "{}", replacement.stderr());
    let aborted = check_exactly_once(&cluster.live_node(), &output, total);
    eprintln!(
        "exactly-once pipe: a frozen instance fenced by its replacement; {aborted} records of its aborted transaction left out"
    );
}

/// Input line `i` for the exactly-once count: JSON for `weir produce
/// --format json`, a host as key, a level as value, an event time `i`
/// ms after `start_ms` (so windows of a second hold 1,000 records).
fn timed_level(start_ms: i64, i: u64) -> String {
    let level = LEVELS[((i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) % 4) as usize];
    serde_json::json!({
        "key": format!("host-{}", i % HOSTS),
        "value": level,
        "timestamp": start_ms + i as i64,
    })
    .to_string()
}

#[test]
fn count_exactly_once_across_kills_of_weir_and_a_broker() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let topics = PipeTopics::create(address, "eos-count");
    let (input, output, store, group) =
        (&topics.input, &topics.output, &topics.store, &topics.group);
    let start_ms = an_hour_ago();
    let line = move |i| timed_level(start_ms, i);
    let feeding = feed_for_kills(&produce_json(input, address), line);
    let count = || {
        let mut cmd = exactly_once_count(address, &topics, "value");
        cmd.arg("--exclusive");
        cmd
    };
    let plan = KillLoop {
        address,
        store,
        group,
        output,
        rounds: 4,
        broker_round: 1,
        max_delay_ms: 150,
    };
    let total = kill_loop(cluster, &plan, feeding, count);
    let mut last = count();
    last.arg("-e");
    run(&mut last).ok();
    let rows = check_counts(&cluster.live_node(), output, total, |i| {
        let line: Value = serde_json::from_str(&line(i)).unwrap();
        (
            line["timestamp"].as_i64().unwrap(),
            line["value"].as_str().unwrap().to_owned(),
        )
    });
    eprintln!(
        "exactly-once count: {} SIGKILLs mid-stream and a broker SIGKILL over {total} records; {rows} rows exact, each once",
        plan.rounds,
    );
}

/// 12 hosts, whose records are all in one partition each (keyed by host).
const HOSTS: u64 = 12;

/// Members of a group counting exactly once, per host: one frozen past
/// its session while the other takes its partitions (its transaction
/// cannot commit for them any more: the group refuses its generation),
/// then thawed to rejoin; one SIGKILLed and replaced. The last windows are
/// emitted by a bounded run once the members are gone, which first waits
/// for what their SIGKILLs left open. Every (window, host) row is read
/// once, with its exact count, by a read_committed reader.
#[test]
fn count_exactly_once_members_share_partitions_and_fence_a_frozen_one() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let topics = PipeTopics::create(address, "eos-count-members");
    let (store, group) = (&topics.store, &topics.group);
    let start_ms = an_hour_ago();
    let line = move |i| timed_level(start_ms, i);
    // About 5,000 lines/s for 18 s: input keeps coming through a freeze,
    // a SIGKILL and a join.
    let total: u64 = 90_000;
    let feeding = Producing::start(
        &produce_json(&topics.input, address),
        total,
        50,
        Duration::from_millis(10),
        line,
    );
    let member = |name| {
        let mut cmd = exactly_once_count(address, &topics, "key");
        cmd.args(["--session-timeout", "6s", "--transaction-timeout", "10s"]);
        Logged::spawn(&mut cmd, name)
    };
    let mut a = member("member-a");
    let mut b = member("member-b");
    b.wait_for_partitions("member b");
    let mut committed = committed_past(address, store, group, 0, &mut a);
    // B frozen past its session: A takes its partitions.
    signal(&b.child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(9));
    committed = committed_past(address, store, group, committed, &mut a);
    signal(&b.child, libc::SIGCONT);
    // A killed mid-stream, C joins: B and C share the partitions.
    committed = committed_past(address, store, group, committed, &mut a);
    drop(a); // SIGKILL
    let mut c = member("member-c");
    committed_past(address, store, group, committed, &mut c);

    let (status, stderr, _) = feeding.finish(false);
    assert!(status.success(), "{stderr}");
    wait_for("every record committed", || {
        common::committed_total(address, store, group) == total as i64
    });
    for (name, job) in [("b", &mut b), ("c", &mut c)] {
        assert!(
            job.child.try_wait().is_ok_and(|s| s.is_none()),
            "member {name} exited:\n{}",
            job.stderr()
        );
    }
    let thawed = b.stderr();
    assert!(
        thawed.contains("fenced: this member's partitions went to another"),
        "the frozen member says it was fenced:\n{thawed}"
    );
    // SIGKILLed: a graceful stop would emit the open windows as they
    // stand, and the other member, taking them over, again.
    drop(b);
    drop(c);
    // The members' positions reached the group's own offsets inside
    // their transactions, as standard tools read them.
    assert_eq!(
        group_offsets_total(&cluster.live_node(), group),
        total as i64
    );
    let mut last = exactly_once_count(address, &topics, "key");
    last.args(["--exclusive", "-e", "--transaction-timeout", "10s"]);
    run(&mut last).ok();
    let rows = check_counts(&cluster.live_node(), &topics.output, total, |i| {
        let line: Value = serde_json::from_str(&line(i)).unwrap();
        (
            line["timestamp"].as_i64().unwrap(),
            line["key"].as_str().unwrap().to_owned(),
        )
    });
    eprintln!(
        "exactly-once count members: a frozen member fenced, one SIGKILLed, one joined; {rows} rows exact, each once"
    );
}

/// The sum of `group`'s committed offsets in the broker's group offsets,
/// as `kafka-consumer-groups --describe` shows them.
fn group_offsets_total(address: &str, group: &str) -> i64 {
    let run = common::kafka_tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &[
            "--bootstrap-server",
            address,
            "--describe",
            "--group",
            group,
        ],
    );
    run.ok();
    let mut lines = run
        .stdout
        .lines()
        .skip_while(|l| !l.contains("CURRENT-OFFSET"));
    let header: Vec<&str> = lines.next().expect("a table").split_whitespace().collect();
    let at = header.iter().position(|&h| h == "CURRENT-OFFSET").unwrap();
    lines
        .filter_map(|l| l.split_whitespace().nth(at)?.parse::<i64>().ok())
        .sum()
}

/// An hour ago, on a second: recent enough for the topic's retention.
fn an_hour_ago() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 3_600_000) / 1000 * 1000
}

/// `weir produce` of JSON lines into `topic`.
fn produce_json<'a>(topic: &'a str, address: &'a str) -> [&'a str; 8] {
    [
        "-t",
        topic,
        "--format",
        "json",
        "--timeout",
        WEIR_TIMEOUT,
        "-b",
        address,
    ]
}

/// `weir count --exactly-once` of `topics.input` by `by` in windows of a
/// second, final rows to `topics.output`, committing every 200 ms; a
/// member of the broker's group unless told otherwise.
fn exactly_once_count(address: &str, topics: &PipeTopics, by: &str) -> Command {
    let mut cmd = weir();
    cmd.args(["count", "-t", &topics.input, "--by", by, "--window", "1s"])
        .args(["--emit", "final", "--exactly-once"])
        .args(["-g", &topics.group, "--offsets-topic", &topics.store])
        .args(["--commit-interval", "200ms", "--to-topic", &topics.output])
        .args(["--no-stdout", "--timeout", WEIR_TIMEOUT, "-b", address]);
    cmd
}

/// Checks the rows in `output` as read_committed readers see them: every
/// (window of a second, key) once, with the count of input lines
/// `0..total` that `time_and_key` puts there, read by Kafka's console
/// consumer, and as many rows read by `weir consume`. Returns the rows.
fn check_counts(
    address: &str,
    output: &str,
    total: u64,
    time_and_key: impl Fn(u64) -> (i64, String),
) -> usize {
    let mut expected: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for i in 0..total {
        let (time, key) = time_and_key(i);
        *expected.entry((time / 1000 * 1000, key)).or_default() += 1;
    }
    let rows = expected.len().to_string();
    // Rows wait behind a SIGKILLed member's open transaction until the
    // coordinator aborts it (its timeout, then the coordinator's next
    // scan): the reader waits up to 60 s without a row, and a shortfall
    // is reported row by row below.
    let java = common::kafka_tool_within(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            address,
            "--topic",
            output,
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--max-messages",
            &rows,
            "--timeout-ms",
            "60000",
        ],
        Duration::from_secs(120),
    );
    let mut got: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for line in java.stdout.lines().filter(|l| l.starts_with('{')) {
        let row: Value = serde_json::from_str(line).unwrap();
        let start = chrono_ms(row["window_start"].as_str().unwrap());
        let key = (start, row["key"].as_str().unwrap().to_owned());
        let count = row["count"].as_u64().unwrap();
        assert!(
            got.insert(key.clone(), count).is_none(),
            "{key:?} emitted twice"
        );
    }
    if got != expected {
        let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
        let wrong: Vec<_> = got
            .iter()
            .filter(|(k, v)| expected.get(*k) != Some(*v))
            .map(|(k, v)| (k, v, expected.get(k)))
            .collect();
        // A consumer killed at the limit printed its threads there.
        let threads: Vec<&str> = java
            .stdout
            .lines()
            .filter(|l| !l.starts_with('{'))
            .take(400)
            .collect();
        panic!(
            "rows read_committed by the Java consumer: {} of {} rows; missing {:?}; \
             wrong or unexpected (row, count, expected) {:?}; consumer exit {:?} after {:?} (killed at its limit: {}), \
             stderr:\n{}\nother output:\n{}",
            got.len(),
            expected.len(),
            missing,
            wrong,
            java.code,
            java.elapsed,
            java.killed,
            java.stderr,
            threads.join("\n")
        );
    }
    java.ok();
    let mut cmd = weir();
    cmd.args(["consume", "-t", output, "-e", "-q", "-b", address]);
    let read = run(&mut cmd);
    read.ok();
    assert_eq!(
        read.stdout.lines().count(),
        expected.len(),
        "rows read by weir"
    );
    expected.len()
}

/// Milliseconds since the epoch of an RFC 3339 time as `weir count` writes
/// window starts (`2023-11-14T22:13:20Z`, whole seconds).
fn chrono_ms(rfc3339: &str) -> i64 {
    rskafka::chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

#[test]
fn exactly_once_pipe_members_share_partitions_and_fence_a_frozen_one() {
    let (_turn, cluster) = cluster();
    let address = &cluster.address;
    let PipeTopics {
        input,
        output,
        store,
        group,
    } = PipeTopics::create(address, "eos-members");
    // About 5,000 lines/s for 18 s: input keeps coming through a freeze,
    // a SIGKILL and a join.
    let total: u64 = 90_000;
    let feeding = feed_slowly(address, &input, total);
    let member = |name| {
        Logged::spawn(
            &mut exactly_once_member(address, &input, &output, &group, &store),
            name,
        )
    };
    let mut a = member("member-a");
    let mut b = member("member-b");
    b.wait_for_partitions("member b");
    let mut committed = committed_past(address, &store, &group, 0, &mut a);
    // B frozen past its session (6 s): the group gives its partitions to
    // A, whose lanes fence B's producers and abort B's open transactions.
    signal(&b.child, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(9));
    committed = committed_past(address, &store, &group, committed, &mut a);
    signal(&b.child, libc::SIGCONT);
    // A killed mid-stream, C joins: B and C share the partitions.
    committed = committed_past(address, &store, &group, committed, &mut a);
    drop(a); // SIGKILL
    let mut c = member("member-c");
    committed_past(address, &store, &group, committed, &mut c);

    let (status, stderr, _) = feeding.finish(false);
    assert!(status.success(), "{stderr}");
    wait_for("every record committed", || {
        common::committed_total(address, &store, &group) == total as i64
    });
    for (name, job) in [("b", &mut b), ("c", &mut c)] {
        signal(&job.child, libc::SIGTERM);
        let status = wait_exit(&mut job.child, "a member");
        assert!(status.success(), "member {name}: {}", job.stderr());
    }
    let thawed = b.stderr();
    assert!(
        thawed.to_lowercase().contains("fenced"),
        "the frozen member says it was fenced:\n{thawed}"
    );
    let aborted = check_exactly_once(&cluster.live_node(), &output, total);
    eprintln!(
        "exactly-once pipe members: a frozen member fenced, one SIGKILLed, one joined; {aborted} records of aborted transactions left out"
    );
}
