//! Reading committed data: a transactional producer of another client
//! (confluent-kafka, `tests/py/transactions.py`) writes a committed, an
//! aborted and another committed transaction, and leaves a fourth open
//! while weir reads.
//!
//! `weir consume -e` (read_committed by default) shows the committed
//! records in order and none of the aborted transaction, and ends at the
//! last stable offset although a transaction is open; with `--isolation
//! read_uncommitted` it shows every record up to the high watermark.
//! `weir offsets show` reports the last stable offset below the high
//! watermark while the transaction is open, and none once it is
//! committed, when the default read shows its records too.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use common::{
    Cluster, STEP_TIMEOUT, group_table, kafka_tool, python, random_topic, wait_exit, wait_for, weir,
};
use serde_json::Value;

/// The transactional producer, alive while the test reads; killed when
/// dropped (a failed test included).
struct Producer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Producer {
    /// Starts `tests/py/transactions.py` on `topic` and waits until its
    /// fourth transaction is written and open.
    fn start(cluster: &Cluster, topic: &str) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/transactions.py");
        let mut child = Command::new(python())
            .arg(script)
            .args([cluster.address(), topic, &format!("{topic}-tx")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tests/py/transactions.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let producer = Self { child, lines };
        producer.expect("open");
        producer
    }

    /// Waits for the line `want` from the script.
    fn expect(&self, want: &str) {
        match self.lines.recv_timeout(STEP_TIMEOUT) {
            Ok(line) => assert_eq!(line, want, "tests/py/transactions.py"),
            Err(e) => panic!("tests/py/transactions.py: no \"{want}\" line ({e})"),
        }
    }

    /// Commits the open transaction and waits for the script to exit.
    fn commit(mut self) {
        self.end("commit");
    }

    /// Aborts the open transaction and waits for the script to exit.
    fn abort(mut self) {
        self.end("abort");
    }

    fn end(&mut self, how: &str) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{how}").expect("write to tests/py/transactions.py");
        stdin.flush().expect("write to tests/py/transactions.py");
        self.expect("done");
        let status = wait_exit(&mut self.child, "tests/py/transactions.py");
        assert!(status.success(), "tests/py/transactions.py: {status}");
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

/// `weir consume -t TOPIC -e ARGS` as (offset, value) pairs. It warns
/// of nothing: transaction markers and aborted records are passed, not
/// taken for records too large for the fetch size.
fn consume(cluster: &Cluster, topic: &str, args: &[&str]) -> Vec<(i64, String)> {
    let mut all = vec!["consume", "-t", topic, "-e", "-f", "{offset} {value}"];
    all.extend_from_slice(args);
    let run = cluster.weir(&all);
    run.ok();
    assert!(!run.stderr.contains(" WARN "), "{args:?}: {}", run.stderr);
    run.stdout
        .lines()
        .map(|l| {
            let (offset, value) = l.split_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
            (offset.parse().unwrap(), value.to_owned())
        })
        .collect()
}

fn values(records: &[(i64, String)]) -> Vec<&str> {
    records.iter().map(|r| r.1.as_str()).collect()
}

/// Partition 0 of `topic` in `weir offsets show --output json` (no
/// commits: the group never read it).
fn partition_offsets(cluster: &Cluster, topic: &str) -> Value {
    let show = offsets_show(cluster, topic, "json");
    let v: Value = serde_json::from_str(&show).expect("offsets show JSON");
    v["partitions"][0].clone()
}

/// `weir offsets show -t TOPIC --output OUTPUT` for a group without
/// commits, in an offsets topic of the test's own that is never created.
fn offsets_show(cluster: &Cluster, topic: &str, output: &str) -> String {
    let store = format!("{topic}-store");
    let show = cluster.weir(&[
        "offsets",
        "--offsets-topic",
        &store,
        "show",
        "-g",
        "nobody",
        "-t",
        topic,
        "--output",
        output,
    ]);
    show.ok();
    show.stdout
}

fn named(prefix: &str) -> Vec<String> {
    (0..3).map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn read_committed_leaves_out_aborted_and_open_transactions() {
    let cluster = Cluster::shared();
    let topic = random_topic("isolation");
    cluster.create_topic(&topic, 1);
    let producer = Producer::start(&cluster, &topic);

    // Default: read_committed. Ends (run has a deadline) although a
    // transaction is open, at the last stable offset.
    let committed = consume(&cluster, &topic, &[]);
    let want: Vec<String> = [named("committed-1"), named("committed-2")].concat();
    assert_eq!(values(&committed), want);
    let explicit = consume(&cluster, &topic, &["--isolation", "read_committed"]);
    assert_eq!(explicit, committed);

    // Everything up to the high watermark, in order; markers are never
    // records, so their offsets are gaps.
    let all = consume(&cluster, &topic, &["--isolation", "read_uncommitted"]);
    let want: Vec<String> = [
        named("committed-1"),
        named("aborted"),
        named("committed-2"),
        named("open"),
    ]
    .concat();
    assert_eq!(values(&all), want);
    let offsets: Vec<i64> = all.iter().map(|r| r.0).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    let open_first = all[9].0;
    let open_last = all[11].0;

    // The open transaction holds the last stable offset at its first
    // record, below the high watermark.
    let p = partition_offsets(&cluster, &topic);
    assert_eq!(p["high_watermark"], open_last + 1, "{p}");
    assert_eq!(p["last_stable_offset"], open_first, "{p}");
    let table = offsets_show(&cluster, &topic, "text");
    assert!(
        table.lines().next().unwrap_or("").contains("LAST-STABLE"),
        "{table}"
    );

    producer.commit();

    // Committed: no last stable offset of its own, and the default read
    // shows the transaction (the high watermark is past its marker).
    let p = partition_offsets(&cluster, &topic);
    assert!(p.get("last_stable_offset").is_none(), "{p}");
    assert_eq!(p["high_watermark"], open_last + 2, "{p}");
    let table = offsets_show(&cluster, &topic, "text");
    assert!(!table.contains("LAST-STABLE"), "{table}");
    let committed = consume(&cluster, &topic, &[]);
    let want: Vec<String> = [named("committed-1"), named("committed-2"), named("open")].concat();
    assert_eq!(values(&committed), want);
}

/// Records `{run}-{i}` for `i` in `from..to`, keys spread over the
/// partitions.
fn load_lines(run: &str, from: u64, to: u64) -> String {
    (from..to)
        .map(|i| format!("k{}:{run}-{i}\n", i % 13))
        .collect()
}

/// Every value of `topic` as Kafka's own console consumer reads it with
/// `isolation.level=read_committed` (the Java client's filtering, not
/// weir's), sorted.
fn java_read_committed(cluster: &Cluster, topic: &str, records: usize) -> Vec<String> {
    let max = records.to_string();
    let run = common::kafka_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            cluster.address(),
            "--topic",
            topic,
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--max-messages",
            &max,
            "--timeout-ms",
            "10000",
        ],
    );
    let mut values: Vec<String> = run
        .stdout
        .lines()
        .filter(|l| l.contains('-') && !l.contains(' '))
        .map(str::to_owned)
        .collect();
    values.sort();
    values
}

fn sorted(records: &[(i64, String)]) -> Vec<String> {
    let mut values: Vec<String> = records.iter().map(|r| r.1.clone()).collect();
    values.sort();
    values
}

/// `weir produce --transactional-id`: a load is one transaction. A
/// complete one is committed (weir and the Java consumer reading
/// committed see all of it); one that stops at bad input is aborted, and
/// one killed half-way is aborted by the next run of the same id: neither
/// is ever seen by a committed read, though their records are in the log.
#[test]
fn a_transactional_load_is_seen_whole_or_not_at_all() {
    let cluster = Cluster::shared();
    let topic = random_topic("txload");
    cluster.create_topic(&topic, 3);
    let id = format!("{topic}-loader");
    let load = |input: &str| {
        cluster.produce(
            &["-t", &topic, "-K", ":", "--transactional-id", &id],
            input.as_bytes(),
        )
    };

    // Committed.
    let first = load(&load_lines("a", 0, 3000));
    first.ok();
    assert!(
        first.stderr.contains("transaction committed"),
        "{}",
        first.stderr
    );

    // Bad input under --on-error fail: the 2,000 records before it are
    // written, then aborted.
    let bad = format!(
        "{}no delimiter\n{}",
        load_lines("b", 0, 2000),
        load_lines("b", 2000, 2100)
    );
    let second = load(&bad);
    second.expect_code(1);
    assert!(
        second.stderr.contains("transaction aborted"),
        "{}",
        second.stderr
    );

    // Killed half-way, then a new run of the same id.
    let mut killed = common::weir()
        .args([
            "produce",
            "-t",
            &topic,
            "-K",
            ":",
            "--transactional-id",
            &id,
        ])
        .args(["-b", cluster.address(), "--linger", "1ms"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = killed.stdin.take().unwrap();
    stdin
        .write_all(load_lines("c", 0, 1500).as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    let c_written = || {
        consume(&cluster, &topic, &["--isolation", "read_uncommitted"])
            .iter()
            .filter(|r| r.1.starts_with("c-"))
            .count()
    };
    common::wait_for("the killed run's records in the log", || {
        c_written() == 1500
    });
    killed.kill().unwrap();
    wait_exit(&mut killed, "the killed load");
    let third = load(&load_lines("d", 0, 1000));
    third.ok();

    let mut expected: Vec<String> = (0..3000).map(|i| format!("a-{i}")).collect();
    expected.extend((0..1000).map(|i| format!("d-{i}")));
    expected.sort();
    let committed = consume(&cluster, &topic, &[]);
    assert_eq!(
        sorted(&committed),
        expected,
        "weir consume (read_committed)"
    );
    assert_eq!(
        java_read_committed(&cluster, &topic, expected.len()),
        expected,
        "the Java consumer, read_committed"
    );
    // The aborted records are in the log all the same.
    let everything = consume(&cluster, &topic, &["--isolation", "read_uncommitted"]);
    let count = |prefix: &str| {
        everything
            .iter()
            .filter(|r| r.1.starts_with(prefix))
            .count()
    };
    assert_eq!(
        (count("a-"), count("b-"), count("c-"), count("d-")),
        (3000, 2000, 1500, 1000)
    );
}

/// `kafka-consumer-groups --describe --group GROUP`: per partition, the
/// committed offset and the lag (empty while it shows no table).
fn java_view(cluster: &Cluster, group: &str) -> Vec<(String, String)> {
    let run = kafka_tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &[
            "--bootstrap-server",
            cluster.address(),
            "--describe",
            "--group",
            group,
        ],
    );
    if run.code != Some(0) || !run.stdout.contains("LAG") {
        return Vec::new();
    }
    let (header, rows) = group_table(&run.stdout);
    let column = |name: &str| header.iter().position(|&h| h == name).unwrap();
    let (offset, lag) = (column("CURRENT-OFFSET"), column("LAG"));
    rows.iter()
        .map(|row| (row[offset].to_owned(), row[lag].to_owned()))
        .collect()
}

/// A group that read a transactional topic to its end, last a commit or
/// an abort marker, commits the offset past the marker (the Java
/// consumer's position), so it shows a lag of 0, in weir and in
/// `kafka-consumer-groups`: following, and with `-e`.
#[test]
fn a_group_at_the_end_of_a_transactional_topic_has_no_lag() {
    let cluster = Cluster::shared();
    for ending in ["commit", "abort"] {
        let topic = random_topic(&format!("markers-{ending}"));
        cluster.create_topic(&topic, 1);
        let producer = Producer::start(&cluster, &topic);
        match ending {
            "commit" => producer.commit(),
            _ => producer.abort(),
        }
        // The marker is the last offset of the log.
        let end = cluster.topic_end(&topic);
        let records = consume(&cluster, &topic, &["--isolation", "read_uncommitted"]);
        assert_eq!(records.last().map(|r| r.0 + 2), Some(end), "{ending}");

        let store = format!("{topic}-store");
        let follower = format!("{topic}-follow");
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut child = weir()
            .args(["consume", "-b", cluster.address(), "-t", &topic])
            .args(["-g", &follower, "--offsets-topic", &store])
            .args(["--commit-interval", "100ms", "-v"])
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("start weir consume");
        let mut committed = None;
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(&format!("{ending}: the follower commits {end}"), || {
                committed = cluster.committed(&store, &follower).get(&0).copied();
                committed == Some(end)
            });
        }));
        if let Err(panic) = waited {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "{}; last committed {committed:?}\n{}",
                panic.downcast_ref::<String>().map_or("", String::as_str),
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
        }
        wait_for(
            &format!("{ending}: kafka-consumer-groups shows lag 0"),
            || java_view(&cluster, &follower) == vec![(end.to_string(), "0".to_owned())],
        );
        // SAFETY: kill(2) on our own child's pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let status = wait_exit(&mut child, "weir consume -g");
        assert!(status.success(), "{ending}: weir consume -g: {status}");
        let show = cluster.offsets_show(&store, &follower);
        assert_eq!(show["partitions"][0]["lag"], 0, "{ending}: {show}");

        let reader = format!("{topic}-to-end");
        let run = cluster.weir(&[
            "consume",
            "-t",
            &topic,
            "-e",
            "-g",
            &reader,
            "--offsets-topic",
            &store,
        ]);
        run.ok();
        assert_eq!(
            cluster.committed(&store, &reader).get(&0),
            Some(&end),
            "{ending}: -e"
        );
    }
}
