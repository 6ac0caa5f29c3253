//! Network faults, not process faults: a three-node Kafka cluster whose
//! every client connection goes through a fault-injecting proxy per node
//! (`common::proxy`), while replication and the controllers talk
//! directly. Each test switches faults on while weir runs and checks what
//! weir promises under them: nothing lost, every wait bounded by
//! `--timeout`, one line naming what failed.
//!
//! The tests share the cluster and take turns; each gets it with every
//! proxy forwarding again.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant};

use common::proxy::{Fault, Proxy};
use common::{
    Cluster, KAFKA_START_TIMEOUT, KEYED, Kafka, STEP_TIMEOUT, random_topic, wait_until, weir,
};

/// Three nodes behind their proxies, for as long as the test binary runs.
struct Net {
    proxies: Vec<Proxy>,
    /// The proxies' bootstrap list.
    address: String,
}

impl Net {
    fn get() -> &'static Net {
        static NET: OnceLock<Net> = OnceLock::new();
        NET.get_or_init(|| {
            let (ready, started) = mpsc::channel();
            // The nodes die with the thread that spawned them: it lives
            // as long as the binary.
            std::thread::spawn(move || {
                let proxies: Vec<Proxy> = (0..3).map(|_| Proxy::start()).collect();
                let _kafka = Kafka::start_behind_proxies(&proxies);
                ready.send(proxies).unwrap();
                loop {
                    std::thread::park();
                }
            });
            let proxies = started
                .recv_timeout(KAFKA_START_TIMEOUT + STEP_TIMEOUT)
                .expect("the three nodes behind proxies did not start");
            let address = proxies
                .iter()
                .map(|p| p.address().to_owned())
                .collect::<Vec<_>>()
                .join(",");
            Net { proxies, address }
        })
    }

    /// Every proxy in `fault`.
    fn set_all(&self, fault: Fault) {
        for p in &self.proxies {
            p.set(fault);
        }
    }
}

/// The cluster for one test, every proxy forwarding; the other tests wait
/// until the guard is dropped.
fn net() -> (MutexGuard<'static, ()>, &'static Net) {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let net = Net::get();
    net.set_all(Fault::None);
    (turn, net)
}

/// A topic of `partitions` partitions, replication factor 3.
fn create_topic(net: &Net, topic: &str, partitions: u32) {
    let p = partitions.to_string();
    Cluster::at(&net.address)
        .weir(&[
            "topics",
            "create",
            topic,
            "--partitions",
            &p,
            "--replication-factor",
            "3",
        ])
        .ok();
}

/// `lines` records `k{i}:v{i}` produced to `topic`.
fn fill(net: &Net, topic: &str, lines: usize) {
    Cluster::at(&net.address).fill(topic, KEYED, (0..lines).map(|i| format!("k{i}:v{i}")));
}

/// A weir job in the background: stdout read line by line, stderr kept.
struct Job {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Job {
    fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr");
        let mut child = weir()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            stderr,
            _dir: dir,
        }
    }

    /// Waits for `n` lines of output; returns them.
    fn read(&mut self, n: usize, what: &str) -> Vec<String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => got.push(line),
                Err(_) => panic!(
                    "{what}: {} of {n} lines within {STEP_TIMEOUT:?}\n{}",
                    got.len(),
                    self.stderr()
                ),
            }
        }
        got
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits at most `limit` for the job to end; its exit code, or `None`
    /// (then it is killed).
    fn ends_within(&mut self, limit: Duration) -> Option<i32> {
        let status = wait_until(&mut self.child, limit);
        if status.is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
        status.map(|s| s.code().unwrap_or(-1))
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// weir's deadline in these tests.
const TIMEOUT: Duration = Duration::from_secs(4);

/// How long past `--timeout` a job may take to notice and say so: one
/// poll, a commit's last attempt, the process's exit. Well below the 30 s
/// a request without an answer would wait for a request timeout.
const SLACK: Duration = Duration::from_secs(12);

/// The lines of `stderr` that are weir's final error (`weir: ...`), not
/// produce's summary (`weir: produced N records ...`).
fn final_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("weir: ") && !l.starts_with("weir: produced "))
        .collect()
}

/// Every broker unreachable (silent, or half-open) for longer than
/// `--timeout` under `consume -g`, `count -g`, `produce` and `offsets
/// show`: each job ends within `--timeout` plus a poll, with one line
/// naming what it waited for, and a non-zero exit.
#[test]
fn every_broker_unreachable_ends_each_job_in_one_line_within_its_timeout() {
    let (_turn, net) = net();
    for fault in [Fault::Blackhole, Fault::HalfOpen] {
        net.set_all(Fault::None);
        let topic = random_topic("unreachable");
        create_topic(net, &topic, 3);
        fill(net, &topic, 300);
        let timeout = format!("{}s", TIMEOUT.as_secs());
        let group = random_topic("unreachable-group");
        let b = net.address.as_str();
        let mut consume = Job::start(&[
            "consume",
            "-t",
            &topic,
            "-g",
            &group,
            "--timeout",
            &timeout,
            "-b",
            b,
        ]);
        let count_group = format!("{group}-count");
        let mut count = Job::start(&[
            "count",
            "-t",
            &topic,
            "-g",
            &count_group,
            "--by",
            "key",
            "--timeout",
            &timeout,
            "-b",
            b,
        ]);
        let mut produce = Job::start(&[
            "produce",
            "-t",
            &topic,
            "-K",
            ":",
            "--timeout",
            &timeout,
            "-b",
            b,
        ]);
        consume.read(300, "consume before the fault");
        {
            let stdin = produce.child.stdin.as_mut().unwrap();
            writeln!(stdin, "k1:before").unwrap();
            stdin.flush().unwrap();
        }
        // Wait until the produced line was read: every job is past its
        // start and talking to the brokers.
        consume.read(1, "the produced line");

        net.set_all(fault);
        let cut = Instant::now();
        // The last line, then the end of the input: produce must give up
        // on it and exit.
        {
            let mut stdin = produce.child.stdin.take().unwrap();
            writeln!(stdin, "k2:during").unwrap();
        }
        let mut show = Job::start(&[
            "offsets",
            "show",
            "-g",
            &group,
            "--timeout",
            &timeout,
            "-b",
            b,
        ]);
        for (name, job) in [
            ("consume -g", &mut consume),
            ("count -g", &mut count),
            ("produce", &mut produce),
            ("offsets show", &mut show),
        ] {
            let limit = (TIMEOUT + SLACK).saturating_sub(cut.elapsed());
            let code = job.ends_within(limit);
            let stderr = job.stderr();
            assert!(
                code.is_some(),
                "{fault:?}: {name} still ran {:?} after every broker went unreachable (--timeout {timeout})\n{stderr}",
                cut.elapsed()
            );
            assert_ne!(code, Some(0), "{fault:?}: {name} exited 0\n{stderr}");
            let errors = final_errors(&stderr);
            assert_eq!(errors.len(), 1, "{fault:?}: {name}: not one line\n{stderr}");
            println!(
                "{fault:?}: {name} ended after {:?}: {}",
                cut.elapsed(),
                errors[0]
            );
        }
        net.set_all(Fault::None);
    }
}

/// The node (index) leading `partition` of `topic`.
fn leader(net: &Net, topic: &str, partition: usize) -> usize {
    let run = Cluster::at(&net.address).weir(&["topics", "describe", topic, "--output", "json"]);
    run.ok();
    let description: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let id = description["partitions"][partition]["leader"]
        .as_i64()
        .unwrap();
    Kafka::node_index(id as i32)
}

/// Input line `i` of a keyed run: one of [`KEYS`] keys, its value that
/// key's count so far, so that each key's values read 0, 1, 2, ...
fn counted(i: usize) -> String {
    format!("k{}:{}", i % KEYS, i / KEYS)
}

/// Keys of [`counted`] lines.
const KEYS: usize = 30;

/// Checks that `topic` holds `lines` [`counted`] lines, each once and
/// in order per key (a key's records are in one partition).
fn check_counted(net: &Net, topic: &str, partitions: i32, lines: usize) {
    let mut got = 0;
    let mut records = Default::default();
    common::wait_for(&format!("{lines} records in {topic}"), || {
        records = common::read_all(&net.address, topic, partitions);
        got = records.values().map(Vec::len).sum::<usize>();
        got >= lines
    });
    let mut next = vec![0usize; KEYS];
    for (partition, records) in &records {
        for r in records {
            let text = |b: Option<&Vec<u8>>| String::from_utf8_lossy(b.unwrap()).into_owned();
            let key: usize = text(r.record.key.as_ref())[1..].parse().unwrap();
            let value: usize = text(r.record.value.as_ref()).parse().unwrap();
            assert_eq!(
                value,
                next[key],
                "partition {partition} offset {}: key k{key} reads {value} after {}: a record is missing or repeated",
                r.offset,
                next[key] as i64 - 1
            );
            next[key] += 1;
        }
    }
    assert_eq!(got, lines, "{topic}: {got} records for {lines} lines");
}

/// A partition leader silent (blackholed) for several seconds in the
/// middle of `weir produce`, idempotent (the default) and with
/// `--transactional-id`, then back: the run goes on once it answers,
/// exits 0 and reports every record, and the topic holds each line once,
/// in order.
#[test]
fn a_silent_leader_loses_and_repeats_nothing_under_idempotent_and_transactional_produce() {
    let (_turn, net) = net();
    const LINES: usize = 3000;
    for transactional in [false, true] {
        let topic = random_topic("silent-leader");
        create_topic(net, &topic, 3);
        let id = random_topic("silent-leader-txn");
        let mut args = vec![
            "produce",
            "-t",
            &topic,
            "-K",
            ":",
            "--timeout",
            "30s",
            "-b",
            &net.address,
        ];
        if transactional {
            args.extend(["--transactional-id", &id]);
        }
        let mut produce = Job::start(&args);
        let mut stdin = produce.child.stdin.take().unwrap();
        let mut feed = |lines: std::ops::Range<usize>| {
            for i in lines {
                writeln!(stdin, "{}", counted(i)).unwrap();
            }
            stdin.flush().unwrap();
        };
        feed(0..LINES / 3);
        common::wait_for("the first third stored", || {
            common::high_watermarks(&net.address, &topic)
                .values()
                .sum::<i64>()
                >= (LINES / 3) as i64
        });
        let silent = leader(net, &topic, 0);
        net.proxies[silent].set(Fault::Blackhole);
        feed(LINES / 3..2 * LINES / 3);
        // The fault's length: longer than a fetch's wait and a
        // connection's check, shorter than --timeout.
        std::thread::sleep(Duration::from_secs(6));
        net.proxies[silent].set(Fault::None);
        feed(2 * LINES / 3..LINES);
        drop(stdin);
        let code = produce.ends_within(STEP_TIMEOUT);
        let stderr = produce.stderr();
        assert_eq!(code, Some(0), "transactional: {transactional}\n{stderr}");
        assert!(
            stderr.contains(&format!("produced {LINES} records")),
            "transactional: {transactional}\n{stderr}"
        );
        check_counted(net, &topic, 3, LINES);
        println!("transactional {transactional}: passed; node {silent} was silent\n{stderr}");
    }
}

/// `weir consume -g` while connections are reset in the middle of
/// responses (fetches among them) and a leader's connections hang
/// half-open for a few seconds, with a producer writing through the same
/// proxies: the consumer goes on, and prints every line once (a retried
/// fetch starts where the broken one did), none missing.
#[test]
fn consume_reads_every_record_once_through_resets_and_half_open_connections() {
    let (_turn, net) = net();
    const LINES: usize = 6000;
    let topic = random_topic("resets");
    create_topic(net, &topic, 3);
    fill_counted(net, &topic, 0..LINES / 2);
    let group = random_topic("resets-group");
    let b = net.address.as_str();
    let mut consume = Job::start(&[
        "consume",
        "-t",
        &topic,
        "-g",
        &group,
        "-f",
        "{key}:{value}",
        "-b",
        b,
    ]);
    let mut seen = consume.read(500, "consume before the faults");
    let mut produce = Job::start(&["produce", "-t", &topic, "-K", ":", "-b", b]);
    let mut stdin = produce.child.stdin.take().unwrap();
    let mut resets = 0;
    for round in 0..4 {
        let lines = LINES / 2 + round * LINES / 8..LINES / 2 + (round + 1) * LINES / 8;
        for i in lines {
            writeln!(stdin, "{}", counted(i)).unwrap();
        }
        stdin.flush().unwrap();
        // Reset every connection somewhere in its next responses.
        let before = resets;
        for (n, p) in net.proxies.iter().enumerate() {
            p.reset_after(40 + 97 * (round as u64 + n as u64));
        }
        common::wait_for("a connection reset", || {
            resets = net.proxies.iter().map(Proxy::resets).sum::<usize>();
            resets > before
        });
        seen.extend(consume.read(200, "consume after resets"));
    }
    drop(stdin);
    assert_eq!(
        produce.ends_within(STEP_TIMEOUT),
        Some(0),
        "{}",
        produce.stderr()
    );
    let silent = leader(net, &topic, 0);
    net.proxies[silent].set(Fault::HalfOpen);
    std::thread::sleep(Duration::from_secs(5));
    net.proxies[silent].set(Fault::None);
    seen.extend(consume.read(LINES - seen.len(), "consume after the faults"));
    let mut sorted: Vec<(usize, usize)> = seen
        .iter()
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k[1..].parse().unwrap(), v.parse().unwrap())
        })
        .collect();
    sorted.sort_unstable();
    let expected: Vec<(usize, usize)> = {
        let mut all: Vec<_> = (0..LINES).map(|i| (i % KEYS, i / KEYS)).collect();
        all.sort_unstable();
        all
    };
    assert_eq!(
        sorted,
        expected,
        "lines missing or repeated\n{}",
        consume.stderr()
    );
    println!("{resets} connections reset\n{}", consume.stderr());
}

/// [`counted`] lines `range` produced to `topic`.
fn fill_counted(net: &Net, topic: &str, range: std::ops::Range<usize>) {
    Cluster::at(&net.address).fill(topic, KEYED, range.map(counted));
}

/// Kafka's API keys of the requests a group member sends its group
/// coordinator: OffsetCommit, OffsetFetch, JoinGroup, Heartbeat,
/// LeaveGroup, SyncGroup, ConsumerGroupHeartbeat.
const GROUP_APIS: &[i16] = &[8, 9, 11, 12, 13, 14, 68];

/// Two `weir pipe --exactly-once` members of a group; one is cut off from
/// its group coordinator (its heartbeats and joins go unanswered) for
/// longer than its session while its fetches and writes still reach the
/// leaders: the group gives its partitions to the other, it stops writing
/// for them (its open transaction is aborted when the other takes their
/// transactional ids), rejoins once the coordinator answers again, and
/// the output holds every input line once, in order per key.
#[test]
fn a_member_cut_off_from_its_coordinator_is_fenced_and_the_output_stays_exact() {
    let (_turn, net) = net();
    const LINES: usize = 9000;
    let input = random_topic("cut-in");
    let output = random_topic("cut-out");
    create_topic(net, &input, 6);
    create_topic(net, &output, 6);
    let group = random_topic("cut-group");
    let b = net.address.as_str();
    let member = |name: &str| {
        Job::start(&[
            "pipe",
            "-t",
            &input,
            "--to",
            &output,
            "-g",
            &group,
            "--exactly-once",
            "--session-timeout",
            "6s",
            "--commit-interval",
            "200ms",
            "--client-id",
            name,
            "-b",
            b,
        ])
    };
    let a = member("weir-member-a");
    let other = member("weir-member-b");
    let mut produce = Job::start(&["produce", "-t", &input, "-K", ":", "-b", b]);
    let mut stdin = produce.child.stdin.take().unwrap();
    let mut feed = |lines: std::ops::Range<usize>| {
        for i in lines {
            writeln!(stdin, "{}", counted(i)).unwrap();
        }
        stdin.flush().unwrap();
    };
    let out = output.as_str();
    let piped = |n: usize| {
        move || {
            common::high_watermarks(&net.address, out)
                .values()
                .sum::<i64>()
                >= n as i64
        }
    };
    feed(0..LINES / 3);
    common::wait_for("the first third piped", piped(LINES / 3));
    for p in &net.proxies {
        p.cut("weir-member-a", GROUP_APIS);
    }
    feed(LINES / 3..2 * LINES / 3);
    // Past the 6 s session: the coordinator drops the member.
    std::thread::sleep(Duration::from_secs(12));
    for p in &net.proxies {
        p.uncut();
    }
    feed(2 * LINES / 3..LINES);
    drop(stdin);
    assert_eq!(
        produce.ends_within(STEP_TIMEOUT),
        Some(0),
        "{}",
        produce.stderr()
    );
    check_counted(net, &output, 6, LINES);
    let cut_off = a.stderr();
    assert!(
        cut_off.contains("fenced: this member's partitions went to another"),
        "the member cut off says it was fenced:\n{cut_off}"
    );
    println!("member a:\n{cut_off}\nmember b:\n{}", other.stderr());
}

/// Re-bootstrap (KIP-1102): a broker that moves (its advertised address
/// changes, the bootstrap address stays) under a running `weir consume
/// -g`. Once its old address refuses connections, weir asks the
/// bootstrap address again, learns the new one and reads on; without,
/// it would retry the old address until its deadline and fail.
#[test]
fn a_broker_that_moved_is_found_again_through_the_bootstrap_address() {
    let (front, before, after) = (Proxy::start(), Proxy::start(), Proxy::start());
    let kafka = Kafka::start_moving(&before, &after);
    front.forward_to(&format!("127.0.0.1:{}", kafka.client_port()));
    let cluster = Cluster::at(front.address());
    let topic = random_topic("moved");
    cluster.create_topic(&topic, 1);
    cluster.fill(&topic, &[], (0..100).map(|i| format!("v{i}")));
    let group = random_topic("moved-group");
    let mut consume = Job::start(&[
        "consume",
        "-t",
        &topic,
        "-g",
        &group,
        "--timeout",
        "30s",
        "-b",
        front.address(),
    ]);
    consume.read(100, "consume before the move");

    // The move: the old address refuses, the bootstrap address now
    // leads to the listener that advertises the new one.
    front.forward_to(&format!("127.0.0.1:{}", kafka.moved_port()));
    before.set(Fault::Refuse);
    front.reset_all();
    before.reset_all();
    cluster.fill(&topic, &[], (100..200).map(|i| format!("v{i}")));
    let after_move = consume.read(100, "consume after the move");
    assert_eq!(
        after_move,
        (100..200).map(|i| format!("v{i}")).collect::<Vec<_>>(),
        "{}",
        consume.stderr()
    );
    assert!(
        after.open_connections() > 0,
        "nothing reached the new address"
    );
    println!("{}", consume.stderr());
}

/// Responses damaged at a seeded rate (any API: metadata, produce,
/// fetch, group and offsets requests alike; bytes flipped, lengths set
/// to extremes, bodies cut) on every proxy, under `weir produce`, `weir
/// count -g -e` and `weir offsets show`: no panic, no hang past
/// `--timeout`. A run that succeeds is exact (produce stores every line
/// once, count counts each once); one that fails says why in one line,
/// and what it stored is stored once. (A flipped byte that still decodes
/// can say anything, an error code among it, which no client can tell
/// from the broker's word: that is the failure allowed.)
#[test]
fn damaged_responses_at_a_seeded_rate_lose_and_repeat_nothing() {
    let (_turn, net) = net();
    const LINES: usize = 3000;
    let seed: u64 = std::env::var("WEIR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    println!("seed {seed} (WEIR_TEST_SEED to repeat)");
    let damage = |one_in: u64| {
        for (n, p) in net.proxies.iter().enumerate() {
            p.corrupt_some(one_in, None, seed.wrapping_mul(31).wrapping_add(n as u64));
        }
    };
    let heal = || {
        for p in &net.proxies {
            p.corrupt(0, None, 1);
        }
    };
    let damaged = || net.proxies.iter().map(Proxy::corrupted).sum::<usize>();
    let topic = random_topic("damaged");
    create_topic(net, &topic, 3);
    let b = net.address.as_str();

    // Produce: every line stored once (a damaged produce response is a
    // failed attempt, retried; the idempotent producer's sequence keeps
    // the retry from storing it twice).
    damage(4);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for i in 0..LINES {
        writeln!(file, "{}", counted(i)).unwrap();
    }
    let before = damaged();
    let mut cmd = weir();
    cmd.args([
        "produce",
        "-t",
        &topic,
        "-K",
        ":",
        "--timeout",
        "30s",
        "-b",
        b,
    ])
    .stdin(std::fs::File::open(file.path()).unwrap());
    let produced = common::run_within(&mut cmd, STEP_TIMEOUT, None);
    heal();
    println!(
        "produce: exit {:?} after {:?}, {} responses damaged",
        produced.code,
        produced.elapsed,
        damaged() - before
    );
    assert!(!produced.killed, "produce hung\n{}", produced.stderr);
    println!("{}", produced.stderr.lines().last().unwrap_or_default());
    match produced.code {
        Some(0) => check_counted(net, &topic, 3, LINES),
        Some(1) => {
            assert_eq!(
                final_errors(&produced.stderr).len(),
                1,
                "{}",
                produced.stderr
            );
            check_no_repeats(net, &topic, 3);
        }
        other => panic!("produce exited {other:?}\n{}", produced.stderr),
    }

    // Count as a group member, to the end: every key counted LINES/KEYS
    // times, each record once.
    damage(4);
    let group = random_topic("damaged-group");
    let before = damaged();
    let mut cmd = weir();
    cmd.args([
        "count", "-t", &topic, "--by", "key", "-e", "--json", "-g", &group,
    ])
    .args(["--timeout", "30s", "-b", b]);
    let counted_run = common::run_within(&mut cmd, STEP_TIMEOUT, None);
    heal();
    println!(
        "count: exit {:?} after {:?}, {} responses damaged",
        counted_run.code,
        counted_run.elapsed,
        damaged() - before
    );
    assert!(!counted_run.killed, "count hung\n{}", counted_run.stderr);
    println!("{}", counted_run.stderr.lines().last().unwrap_or_default());
    match counted_run.code {
        Some(0) => {}
        Some(1) => {
            assert_eq!(
                final_errors(&counted_run.stderr).len(),
                1,
                "{}",
                counted_run.stderr
            );
            heal();
            return;
        }
        other => panic!("count exited {other:?}\n{}", counted_run.stderr),
    }
    let mut last = std::collections::BTreeMap::new();
    for line in counted_run.stdout.lines().filter(|l| !l.trim().is_empty()) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        last.insert(
            row["key"].as_str().unwrap().to_owned(),
            row["count"].as_u64().unwrap(),
        );
    }
    // What the topic holds: every line if produce succeeded.
    let mut expected = std::collections::BTreeMap::<String, u64>::new();
    for records in common::read_all(&net.address, &topic, 3).into_values() {
        for r in records {
            let key = String::from_utf8(r.record.key.unwrap()).unwrap();
            *expected.entry(key).or_default() += 1;
        }
    }
    assert_eq!(last, expected, "{}", counted_run.stderr);

    // Offsets show, one response in three damaged: an answer, or one
    // line within the deadline; never a panic or a hang.
    damage(3);
    for _ in 0..3 {
        let mut cmd = weir();
        cmd.args(["offsets", "show", "-g", &group, "--timeout", "5s", "-b", b]);
        let shown = common::run_within(&mut cmd, STEP_TIMEOUT, None);
        assert!(!shown.killed, "offsets show hung\n{}", shown.stderr);
        match shown.code {
            // An answer damaged into another valid one (an empty list
            // of commits, say) cannot be told from the broker's word.
            Some(0) => {}
            Some(1) => assert_eq!(final_errors(&shown.stderr).len(), 1, "{}", shown.stderr),
            other => panic!("offsets show exited {other:?}\n{}", shown.stderr),
        }
    }
    heal();
}

/// Checks that no [`counted`] line is in `topic` twice (lines may be
/// missing: those of a run that failed).
fn check_no_repeats(net: &Net, topic: &str, partitions: i32) {
    let mut seen = std::collections::BTreeSet::new();
    for records in common::read_all(&net.address, topic, partitions).into_values() {
        for r in records {
            let key = r.record.key.clone().unwrap();
            let value = r.record.value.clone().unwrap();
            assert!(
                seen.insert((key.clone(), value.clone())),
                "{}:{} stored twice",
                String::from_utf8_lossy(&key),
                String::from_utf8_lossy(&value)
            );
        }
    }
}
