//! `weir count` against a real broker: exact counts against a reference
//! computed here, SIGKILL at random moments (and a broker restart) without
//! loss or double counting, state larger than one request, late records,
//! the idle timeout.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use common::{Cluster, Feeder, JSON, STEP_TIMEOUT, brokers, random_topic, run, wait_exit, weir};
use serde_json::Value;

const MINUTE: i64 = 60_000;
const LEVEL: &str = r"regex:^\S+ (\w+)";

/// Window start in ms (None for totals) and key (None: unparsed).
type At = (Option<i64>, Option<String>);

/// Count per window and key.
type Counts = BTreeMap<At, u64>;

/// Sample logs from the repository's generator: JSON lines for
/// `weir produce --format json`.
fn generate_logs(lines: usize, minutes: u32, start_ms: i64) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-logs.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--lines", &lines.to_string()])
        .args(["--minutes", &minutes.to_string()])
        .args(["--start", &start_ms.to_string()])
        .output()
        .expect("python3 runs scripts/gen-logs.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The reference: per one-minute window, the second word of each line
/// (the level), read without weir's extractor.
fn reference(lines: &[String]) -> Counts {
    let mut counts = Counts::new();
    for line in lines {
        let record: Value = serde_json::from_str(line).unwrap();
        let ts = record["timestamp"].as_i64().unwrap();
        let value = record["value"].as_str().unwrap();
        let level = value.split(' ').nth(1).filter(|_| value.contains(' '));
        let window = ts - ts.rem_euclid(MINUTE);
        *counts
            .entry((Some(window), level.map(str::to_owned)))
            .or_default() += 1;
    }
    counts
}

fn time_ms(rfc3339: &Value) -> Option<i64> {
    let text = rfc3339.as_str()?;
    let t = humantime::parse_rfc3339(text).unwrap();
    Some(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
}

/// Rows of `weir count --json` in order; the last row per (window, key)
/// is the count that stands.
fn rows(json_lines: &str) -> Vec<(At, u64)> {
    json_lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let key = row["key"].as_str().map(str::to_owned);
            (
                (time_ms(&row["window_start"]), key),
                row["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Counts per (minute, level) of every record in `topic`, read with
/// rskafka, by the records' own timestamps.
fn reference_from_topic(cluster: &Cluster, topic: &str, partitions: i32) -> Counts {
    let mut counts = Counts::new();
    for records in cluster.read_all(topic, partitions).into_values() {
        for r in records {
            let ts = r.record.timestamp.timestamp_millis();
            let value = String::from_utf8(r.record.value.unwrap()).unwrap();
            let level = value.split(' ').nth(1).filter(|_| value.contains(' '));
            let window = ts - ts.rem_euclid(MINUTE);
            *counts
                .entry((Some(window), level.map(str::to_owned)))
                .or_default() += 1;
        }
    }
    counts
}

fn last_per_key(rows: impl IntoIterator<Item = (At, u64)>) -> Counts {
    rows.into_iter().collect()
}

/// `weir produce` arguments for a [`Feeder`] of JSON lines.
fn feed<'a>(address: &'a str, topic: &'a str) -> [&'a str; 10] {
    [
        "-t",
        topic,
        "--format",
        "json",
        "--linger",
        "1ms",
        "--timeout",
        "50s",
        "-b",
        address,
    ]
}

/// Runs `weir count ARGS` on the shared node.
fn count(args: &[&str]) -> common::Run {
    Cluster::shared().weir(&[&["count"][..], args].concat())
}

/// An hour ago, on a minute boundary, so a real Kafka's retention keeps
/// the records.
fn recent_start() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now - 60 * MINUTE;
    start - start.rem_euclid(MINUTE)
}

#[test]
fn counts_equal_an_independent_reference() {
    let topic = random_topic("count");
    let store = random_topic("offsets");
    Cluster::shared().create_topic(&topic, 6);
    let start = recent_start();
    let mut lines = generate_logs(30_000, 10, start);
    // Records the extractor cannot read go to the unparsed bucket.
    let end = start + 10 * MINUTE;
    for i in 0..7 {
        lines.push(format!(
            r#"{{"key":"x{i}","value":"garbage","timestamp":{end}}}"#
        ));
    }
    lines.push(format!(r#"{{"key":"x","value":null,"timestamp":{end}}}"#));
    Cluster::shared().fill(&topic, JSON, &lines);
    let mut expected = reference(&lines[..30_000]);
    expected.insert((Some(end), None), 8);

    let group = random_topic("g");
    #[rustfmt::skip]
    let args = [
        "-t", &topic, "-e", "--by", LEVEL, "--window", "1m", "--json", "-g", &group,
        "--offsets-topic", &store, "--commit-interval", "50ms",
    ];
    let run = count(&args);
    run.ok();
    let emitted = rows(&run.stdout);
    // Each window is emitted once, when it closes or at the stop.
    let counted = last_per_key(emitted.clone());
    assert_eq!(emitted.len(), counted.len(), "a row was emitted twice");
    assert_eq!(counted, expected);
    assert!(run.stderr.contains("8 unparsed"), "{}", run.stderr);

    // A second run resumes the counts and emits the same open window.
    let again = count(&args);
    again.ok();
    let last: Counts = last_per_key(rows(&again.stdout));
    assert_eq!(last, BTreeMap::from([((Some(end), None), 8)]));
    assert!(
        again.stderr.contains("counted 0 records"),
        "{}",
        again.stderr
    );

    // Running totals by key, as a table.
    let table = count(&["-t", &topic, "-e", "--by", "key"]);
    table.ok();
    let header = table.stdout.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["count", "key"]
    );
    let total: u64 = table
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, lines.len() as u64);
}

#[test]
fn count_zero_counts_nothing_and_checkpoints_nothing() {
    let topic = random_topic("count-zero");
    let store = random_topic("offsets");
    Cluster::shared().create_topic(&topic, 2);
    let start = recent_start();
    Cluster::shared().fill(&topic, JSON, generate_logs(200, 2, start));
    let group = random_topic("g");
    #[rustfmt::skip]
    let args = [
        "-t", &topic, "--by", LEVEL, "--window", "1m", "--json", "-g", &group,
        "--offsets-topic", &store,
    ];
    let all: Vec<&str> = args.iter().copied().chain(["-e"]).collect();
    count(&all).ok();
    let committed = Cluster::shared().committed_total(&store, &group);
    assert_eq!(committed, 200);

    // A record the group has not counted, and open windows it restores:
    // -c 0 (without -e, so only the count ends it) counts and emits
    // neither, and commits nothing.
    Cluster::shared().fill(&topic, JSON, generate_logs(1, 1, start + 3 * MINUTE));
    let zero: Vec<&str> = args.iter().copied().chain(["-c", "0"]).collect();
    let nothing = count(&zero);
    nothing.ok();
    assert_eq!(nothing.stdout, "", "rows were emitted");
    assert_eq!(Cluster::shared().committed_total(&store, &group), committed);

    // The next run counts that record.
    count(&all).ok();
    assert_eq!(
        Cluster::shared().committed_total(&store, &group),
        committed + 1
    );

    // A new group with -c 0 makes no offsets topic.
    let unused = random_topic("offsets");
    let fresh = random_topic("g");
    #[rustfmt::skip]
    count(&[
        "-t", &topic, "--by", "key", "-g", &fresh, "--offsets-topic", &unused, "-c", "0",
    ]).ok();
    let described = Cluster::shared().weir(&["topics", "describe", &unused]);
    described.expect_code(1);
    assert!(
        described.stderr.contains("does not exist"),
        "{}",
        described.stderr
    );
}

#[test]
fn late_records_are_counted_apart_and_leave_closed_windows_alone() {
    let topic = random_topic("late");
    Cluster::shared().create_topic(&topic, 1);
    let t0 = recent_start();
    let at = |ms: i64, key: &str| format!(r#"{{"value":"{key}","timestamp":{}}}"#, t0 + ms);
    let lines = vec![
        at(10_000, "a"),
        at(20_000, "a"),
        at(2 * MINUTE, "b"),
        // Watermark 2m - grace 30s = 1m30s: window [0, 1m) has closed.
        at(30_000, "a"),
        // Window [1m, 2m) ends after 1m30s: still open.
        at(MINUTE + 45_000, "c"),
    ];
    Cluster::shared().fill(&topic, JSON, &lines);
    let run = count(&[
        "-t", &topic, "-e", "--by", "value", "--window", "1m", "--grace", "30s", "--json",
    ]);
    run.ok();
    let counted = last_per_key(rows(&run.stdout));
    let expected = BTreeMap::from([
        ((Some(t0), Some("a".to_owned())), 2),
        ((Some(t0 + MINUTE), Some("c".to_owned())), 1),
        ((Some(t0 + 2 * MINUTE), Some("b".to_owned())), 1),
    ]);
    assert_eq!(counted, expected);
    assert!(run.stderr.contains("1 late"), "{}", run.stderr);
}

/// Windows before 1970 are dates like any other: Kafka stores such create
/// times, and -1 (a record without one) falls in the minute before 1970.
#[test]
fn windows_before_1970_are_written_as_rfc3339() {
    let topic = random_topic("count-1969");
    // No retention: Kafka deletes records this old from under a test.
    let mut cmd = weir();
    cmd.args(["topics", "create", &topic, "--config", "retention.ms=-1"])
        .args(["-b", brokers()]);
    run(&mut cmd).ok();
    let recent = recent_start();
    let at = |ts: i64, key: &str| format!(r#"{{"value":"{key}","timestamp":{ts}}}"#);
    Cluster::shared().fill(
        &topic,
        JSON,
        &[
            at(-60_001, "b"),
            at(-60_000, "a"),
            at(-1, "a"),
            at(recent, "c"),
        ],
    );
    let run = count(&[
        "-t", &topic, "-e", "--by", "value", "--window", "1m", "--json",
    ]);
    run.ok();
    let rows: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let since_epoch = |ms: i64| {
        let t = std::time::UNIX_EPOCH + Duration::from_millis(ms as u64);
        humantime::format_rfc3339_seconds(t).to_string()
    };
    let expected = [
        serde_json::json!({"window_start": "1969-12-31T23:58:00Z", "window_end": "1969-12-31T23:59:00Z", "key": "b", "count": 1}),
        serde_json::json!({"window_start": "1969-12-31T23:59:00Z", "window_end": "1970-01-01T00:00:00Z", "key": "a", "count": 2}),
        serde_json::json!({"window_start": since_epoch(recent), "window_end": since_epoch(recent + MINUTE), "key": "c", "count": 1}),
    ];
    assert_eq!(rows, expected, "{}", run.stdout);
}

/// Runs `weir count ARGS` until `ready` holds for its stdout lines so far
/// (asked at every line and every 100 ms; a panic after [`STEP_TIMEOUT`]),
/// then stops it with SIGINT. The lines read before the SIGINT, those
/// after, and stderr.
fn count_until(
    args: &[&str],
    mut ready: impl FnMut(&[String]) -> bool,
) -> (Vec<String>, Vec<String>, String) {
    let mut child = weir()
        .arg("count")
        .args(args)
        .args(["-b", brokers()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let out = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut before = Vec::new();
    while !ready(&before) {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("weir count {args:?}: not ready within {STEP_TIMEOUT:?}; wrote {before:?}");
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => before.push(line),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                child.kill().ok();
                panic!("weir count {args:?} closed its output early; wrote {before:?}");
            }
        }
    }
    before.extend(rx.try_iter());
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = wait_exit(&mut child, "weir count after SIGINT");
    out.join().unwrap();
    let after: Vec<String> = rx.try_iter().collect();
    let err = err.join().unwrap();
    // 128 + SIGINT: interrupted, after a clean stop.
    assert_eq!(status.code(), Some(130), "{err}");
    (before, after, err)
}

#[test]
fn a_quiet_partition_stops_holding_windows_back_after_the_idle_timeout() {
    let topic = random_topic("idle");
    Cluster::shared().create_topic(&topic, 2);
    let t0 = recent_start();
    let at = |partition: u32, ms: i64, key: &str| {
        format!(
            r#"{{"value":"{key}","timestamp":{},"partition":{partition}}}"#,
            t0 + ms
        )
    };
    // Partition 1 has one record in the first window, then goes quiet.
    Cluster::shared().fill(
        &topic,
        JSON,
        &[at(1, 10_000, "q"), at(0, 10_000, "a"), at(0, 20_000, "a")],
    );
    // Partition 0 goes on into the second window, a record a millisecond.
    let busy =
        |from: i64| -> Vec<String> { (0..20_000).map(|i| at(0, MINUTE + from + i, "b")).collect() };
    let in_first = |lines: &[String]| -> Vec<(At, u64)> {
        rows(&lines.join("\n"))
            .into_iter()
            .filter(|((start, _), _)| *start == Some(t0))
            .collect()
    };
    let expected_first = [
        ((Some(t0), Some("a".to_owned())), 2),
        ((Some(t0), Some("q".to_owned())), 1),
    ];
    let args = ["-t", &topic, "--by", "value", "--window", "1m", "--json"];
    // Groups only so the test can see what a run has read: a commit
    // follows the emission of everything due at its checkpoint.
    let store = random_topic("offsets");
    let often = [
        "--commit-interval",
        "100ms",
        "--offsets-topic",
        &store,
        "--exclusive",
    ];
    let committed = |group: &str, partition: i32| {
        let offsets = Cluster::shared().committed(&store, group);
        offsets.get(&partition).copied().unwrap_or(0)
    };

    // Without an idle timeout the quiet partition holds the first window
    // open as long as the run lasts: longer than the idle timeout below,
    // and past the checkpoint after partition 0 read into the second
    // window (its records from offset 2 on), which would have emitted it.
    let feeder = Feeder::start(
        &feed(brokers(), &topic),
        busy(0),
        1,
        Duration::from_millis(1),
    );
    let held = random_topic("g");
    let started = Instant::now();
    let (before, after, _) = count_until(&[&args[..], &often, &["-g", &held]].concat(), |_| {
        started.elapsed() > Duration::from_secs(3) && committed(&held, 0) > 3
    });
    drop(feeder);
    assert!(before.is_empty(), "emitted while running: {before:?}");
    assert_eq!(in_first(&after), expected_first, "{after:?}");

    // With one, the first window closes by partition 0's timestamps while
    // the run goes on. A record for it arriving at partition 1 afterwards
    // is late: the window is not emitted again.
    let feeder = Feeder::start(
        &feed(brokers(), &topic),
        busy(20_000),
        1,
        Duration::from_millis(1),
    );
    let mut late_sent = false;
    let closing = random_topic("g");
    let (before, after, err) = count_until(
        &[&args[..], &often, &["-g", &closing, "--idle-timeout", "1s"]].concat(),
        |lines| {
            if in_first(lines).len() < 2 {
                return false;
            }
            if !late_sent {
                late_sent = true;
                Cluster::shared().fill(&topic, JSON, &[at(1, 30_000, "q")]);
            }
            // The checkpoint that commits past the late record (partition
            // 1, offset 1) has emitted whatever it caused.
            committed(&closing, 1) >= 2
        },
    );
    drop(feeder);
    assert_eq!(in_first(&before), expected_first, "{before:?}");
    assert!(in_first(&after).is_empty(), "emitted again: {after:?}");
    assert!(
        rows(&after.join("\n"))
            .iter()
            .any(|((start, key), _)| *start == Some(t0 + MINUTE) && key.as_deref() == Some("b")),
        "the open window at the stop: {after:?}"
    );
    assert!(err.contains("1 late"), "{err}");
}

#[test]
fn state_larger_than_a_request_is_chunked_and_restored() {
    let topic = random_topic("big");
    let store = random_topic("offsets");
    let group = random_topic("g");
    Cluster::shared().create_topic(&topic, 1);
    let keys = 60_000;
    let key = |i: usize| format!("customer-{i:06}-with-a-rather-long-identifier");
    let first: Vec<String> = (0..keys)
        .map(|i| format!(r#"{{"value":"{}"}}"#, key(i)))
        .collect();
    Cluster::shared().fill(&topic, JSON, &first);
    #[rustfmt::skip]
    let args = [
        "-t",
        &topic,
        "-e",
        "--by",
        "value",
        "--json",
        "-g",
        &group,
        "--offsets-topic",
        &store,
    ];
    count(&args).ok();

    // The state (60,000 keys, over 3 MB as JSON) went out in chunks.
    let mut cmd = weir();
    cmd.args([
        "consume",
        "-t",
        &store,
        "-e",
        "-f",
        "{key}",
        "-b",
        brokers(),
    ]);
    let store_keys = run(&mut cmd);
    store_keys.ok();
    let chunks = store_keys
        .stdout
        .lines()
        .filter(|k| serde_json::from_str::<Vec<Value>>(k).is_ok_and(|a| a.len() == 6))
        .count();
    assert!(chunks >= 12, "{chunks} chunk records in the store");

    // Every key again, and a new one: the restored state adds up.
    let mut second = first.clone();
    second.push(r#"{"value":"newcomer"}"#.to_owned());
    Cluster::shared().fill(&topic, JSON, &second);
    let run = count(&args);
    run.ok();
    let counted = last_per_key(rows(&run.stdout));
    assert_eq!(counted.len(), keys + 1);
    for i in 0..keys {
        assert_eq!(counted[&(None, Some(key(i)))], 2, "{}", key(i));
    }
    assert_eq!(counted[&(None, Some("newcomer".to_owned()))], 1);
}

/// Kills `weir count` with SIGKILL at several moments while records keep
/// arriving (restarting the cluster's node once when `restart`), then runs
/// it to the end: what was emitted, last row per (window, key), equals the
/// reference, on stdout and in the output topic.
fn crash_and_compare(cluster: &mut Cluster, restart: bool, lines: usize, kills: &[u64]) {
    let address = cluster.address().to_owned();
    let address = address.as_str();
    let topic = random_topic("crash");
    let out_topic = random_topic("counts");
    let store = random_topic("offsets");
    let group = random_topic("g");
    cluster.create_topic(&topic, 6);
    let lines = generate_logs(lines, 20, recent_start());
    let from_lines = reference(&lines);
    // Every service's partition has records before the first run starts.
    cluster.fill(&topic, JSON, &lines[..5_000]);
    let feeder = Feeder::start(
        &feed(address, &topic),
        lines[5_000..].to_vec(),
        10,
        Duration::from_millis(1),
    );

    let dir = tempfile::tempdir().unwrap();
    let args = |extra: &[&str]| {
        let mut cmd = weir();
        cmd.args(["count", "-t", &topic, "--by", LEVEL, "--window", "1m"])
            .args(["--json", "-g", &group, "--offsets-topic", &store])
            .args(["--commit-interval", "200ms", "--to-topic", &out_topic])
            .args(["--timeout", "50s", "-b", address])
            // One instance holding every partition, as before the broker's
            // group: rows by level sum all six partitions, which a member
            // sharing the group with a killed-while-joining predecessor
            // would not (groups.rs kills members counting by key).
            .arg("--exclusive")
            .args(extra);
        cmd
    };
    let mut outputs = Vec::new();
    let mut restarted = false;
    // Rounds after which the committed positions had moved on: the test
    // means something only if restarts resume from saved counts.
    let mut progress = 0;
    let mut committed = 0;
    for (round, &after) in kills.iter().enumerate() {
        let file = dir.path().join(format!("out-{round}"));
        let mut child = args(&[])
            .stdout(std::fs::File::create(&file).unwrap())
            .stderr(std::fs::File::create(file.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        if round == 2 && restart {
            let kafka = cluster.kafka();
            std::thread::sleep(Duration::from_millis(after));
            kafka.kill(0);
            std::thread::sleep(Duration::from_millis(300));
            kafka.restart(0);
            restarted = true;
        }
        // Each run commits at least once (unless everything is committed
        // already), then dies `after` ms later, at a moment of its own.
        let deadline = Instant::now() + STEP_TIMEOUT;
        let now = loop {
            let now = cluster.committed_total(&store, &group);
            // Everything in the topic committed (a count above the input
            // lines when a lost acknowledgement stored a batch twice).
            if now > committed || now == cluster.topic_end(&topic) {
                break now;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: no commit; weir count said:\n{}",
                std::fs::read_to_string(file.with_extension("err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if now > committed {
            progress += 1;
            committed = now;
        }
        std::thread::sleep(Duration::from_millis(after));
        child.kill().unwrap(); // SIGKILL: no final emission, no commit.
        child.wait().unwrap();
        outputs.push(file);
    }
    assert!(
        progress >= 2,
        "only {progress} killed runs committed anything"
    );
    assert!(feeder.finish().success(), "the feeding producer failed");
    // The reference is what the topic holds, read independently: a batch
    // whose acknowledgement was lost in a broker restart is stored twice
    // (the producer is at-least-once), and weir must count it twice too.
    let expected = reference_from_topic(cluster, &topic, 6);
    let (stored, generated): (u64, u64) = (expected.values().sum(), from_lines.values().sum());
    for (at, n) in &from_lines {
        assert!(
            expected.get(at).copied().unwrap_or(0) >= *n,
            "records lost at {at:?}"
        );
    }
    eprintln!(
        "count crash test: {generated} lines, {stored} records in the topic ({} duplicates)",
        stored - generated
    );
    let last = run(&mut args(&["-e"]));
    last.ok();
    assert!(
        !last
            .stderr
            .contains(&format!("counted {} records", lines.len())),
        "the last run started from scratch: {}",
        last.stderr
    );

    let mut emitted = Vec::new();
    for file in &outputs {
        let text = std::fs::read_to_string(file).unwrap();
        // A kill can cut the last line short.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        emitted.extend(rows(complete));
    }
    emitted.extend(rows(&last.stdout));
    assert_eq!(last_per_key(emitted), expected, "stdout rows");

    // The output topic, last record per key.
    let mut cmd = weir();
    cmd.args([
        "consume", "-t", &out_topic, "-e", "-f", "{value}", "-b", address,
    ]);
    let out = run(&mut cmd);
    out.ok();
    assert_eq!(last_per_key(rows(&out.stdout)), expected, "output topic");
    assert_eq!(restarted, restart, "the broker restart happened");
}

#[test]
fn killed_counts_resume_exactly() {
    crash_and_compare(
        &mut Cluster::shared(),
        false,
        60_000,
        &[170, 30, 290, 110, 230],
    );
}

#[test]
fn killed_counts_resume_exactly_across_a_broker_restart() {
    crash_and_compare(
        &mut Cluster::start(1),
        true,
        30_000,
        &[170, 30, 290, 110, 230],
    );
}
