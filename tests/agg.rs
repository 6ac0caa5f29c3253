//! `weir agg` against a real broker: every aggregate and window type equals
//! a reference computed independently (tests/py/agg_reference.py, in
//! Python over the records as the topic holds them), with timestamps out
//! of order within the grace period and some records late; sketch-based
//! aggregates within their stated error.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, Feeder, STEP_TIMEOUT, random_topic, run, weir};
use serde_json::{Value, json};

/// Input records.
const RECORDS: u64 = 30_000;

/// The partitions of the input.
const PARTITIONS: u32 = 3;

/// The grace period of every windowed case, in ms.
const GRACE_MS: i64 = 3_000;

/// A splitmix64 step: the generator's randomness, the same every run.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Input line `i` for `weir produce --format json`: a service as key (so
/// a key's records are in one partition), a latency (now and then a
/// string, or missing: unparsed), bytes, a user and a path; event time 20
/// ms apart from `start_ms`, one record in five up to 1.5 s early (out of
/// order within the grace), one in a hundred a minute early (late).
fn line(start_ms: i64, i: u64) -> String {
    let r = mix(i);
    let service = format!("svc{}", r % 8);
    let mut value = json!({
        "user": format!("u{}", (r >> 8) % 300),
        "path": format!("/p{}", ((r >> 20) % 40).min((r >> 28) % 40)),
        "bytes": (r >> 36) % 10_000,
    });
    match (r >> 48) % 50 {
        0 => value["lat"] = json!("slow"),
        1 => {}
        _ => value["lat"] = json!(((r >> 12) % 5_000) as f64 / 10.0),
    }
    let mut ts = start_ms + (i as i64) * 20;
    match (r >> 56) % 100 {
        0 => ts -= 60_000,
        1..=20 => ts -= ((r >> 4) % 1_500) as i64,
        _ => {}
    }
    json!({"key": service, "value": value.to_string(), "timestamp": ts}).to_string()
}

/// A case: `weir agg` flags and the reference's spec.
struct Case {
    name: &'static str,
    by: &'static [&'static str],
    aggs: &'static [&'static str],
    window_ms: Option<i64>,
    hop_ms: Option<i64>,
    session_gap_ms: Option<i64>,
}

impl Case {
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for by in self.by {
            args.extend(["--by".to_owned(), (*by).to_owned()]);
        }
        for agg in self.aggs {
            args.extend(["--agg".to_owned(), (*agg).to_owned()]);
        }
        let ms = |n: i64| format!("{n}ms");
        if let Some(w) = self.window_ms {
            args.extend(["--window".to_owned(), ms(w)]);
        }
        if let Some(h) = self.hop_ms {
            args.extend(["--hop".to_owned(), ms(h)]);
        }
        if let Some(g) = self.session_gap_ms {
            args.extend(["--session-gap".to_owned(), ms(g)]);
        }
        if self.window_ms.is_some() || self.session_gap_ms.is_some() {
            args.extend(["--grace".to_owned(), ms(GRACE_MS)]);
        }
        args
    }

    fn spec(&self) -> Value {
        let windowed = self.window_ms.is_some() || self.session_gap_ms.is_some();
        json!({
            "by": self.by,
            "aggs": self.aggs,
            "window_ms": self.window_ms,
            "hop_ms": self.hop_ms,
            "session_gap_ms": self.session_gap_ms,
            "grace_ms": if windowed { GRACE_MS } else { 0 },
        })
    }

    /// The names of the aggregates as rows carry them.
    fn names(&self) -> Vec<String> {
        self.aggs
            .iter()
            .map(|a| match a.split_once(':') {
                Some((name, field)) => format!("{name}({field})"),
                None => (*a).to_owned(),
            })
            .collect()
    }
}

const EVERY_AGG: &[&str] = &[
    "count",
    "sum:json:/bytes",
    "min:json:/lat",
    "max:json:/lat",
    "avg:json:/lat",
    "distinct:json:/user",
    "top3:json:/path",
    "p50:json:/lat",
    "p99:json:/lat",
    "p99.9:json:/lat",
];

/// Milliseconds since the epoch of a row's RFC 3339 time.
fn ms(value: &Value) -> Option<i64> {
    let text = value.as_str()?;
    Some(
        rskafka::chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis(),
    )
}

/// Whether `got` is `expected` within `relative` error (both numbers or
/// both null).
fn close(got: &Value, expected: &Value, relative: f64) -> bool {
    match (got.as_f64(), expected.as_f64()) {
        (Some(g), Some(e)) => (g - e).abs() <= relative * e.abs().max(1e-12),
        _ => got == expected,
    }
}

#[test]
fn every_aggregate_and_window_type_equals_the_reference() {
    let cluster = Cluster::shared();
    let topic = random_topic("agg-in");
    cluster.create_topic(&topic, PARTITIONS);
    let start_ms = an_hour_ago();
    let input: String = (0..RECORDS).map(|i| line(start_ms, i) + "\n").collect();
    cluster
        .produce(&["-t", &topic, "--format", "json"], input.as_bytes())
        .ok();
    let dir = tempfile::tempdir().unwrap();
    // The records as the topic holds them, for the reference.
    let read = cluster.weir(&["consume", "-t", &topic, "-e", "--json", "-q"]);
    read.ok();
    let records = dir.path().join("records.jsonl");
    std::fs::write(&records, &read.stdout).unwrap();
    assert_eq!(read.stdout.lines().count() as u64, RECORDS);

    let cases = [
        Case {
            name: "tumbling",
            by: &["key"],
            aggs: EVERY_AGG,
            window_ms: Some(60_000),
            hop_ms: None,
            session_gap_ms: None,
        },
        Case {
            name: "hopping",
            by: &["key"],
            aggs: &["count", "sum:json:/bytes", "max:json:/lat", "p50:json:/lat"],
            window_ms: Some(120_000),
            hop_ms: Some(45_000),
            session_gap_ms: None,
        },
        Case {
            name: "session",
            by: &["json:/user"],
            aggs: &[
                "count",
                "sum:json:/bytes",
                "distinct:json:/path",
                "avg:json:/lat",
            ],
            window_ms: None,
            hop_ms: None,
            session_gap_ms: Some(2_000),
        },
        Case {
            name: "totals, two keys",
            by: &["key", "json:/path"],
            aggs: &["count", "min:json:/bytes", "top2:json:/user"],
            window_ms: None,
            hop_ms: None,
            session_gap_ms: None,
        },
        Case {
            name: "totals, past the exact distinct bound",
            by: &["key"],
            aggs: &["count", "distinct:value", "distinct:json:/user"],
            window_ms: None,
            hop_ms: None,
            session_gap_ms: None,
        },
    ];
    for case in &cases {
        check(&cluster, &topic, dir.path(), &records, case);
    }
}

/// The reference's rows for `case` over `records` (the topic as
/// `weir consume --json` reads it), by (window start, key as JSON text),
/// and its count of late records.
fn reference(dir: &Path, records: &Path, case: &Case) -> (BTreeMap<At, Value>, u64) {
    let spec = dir.join("spec.json");
    std::fs::write(&spec, case.spec().to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/agg_reference.py");
    let reference = Command::new("python3")
        .arg(script)
        .arg(&spec)
        .arg(records)
        .output()
        .expect("python3 runs tests/py/agg_reference.py");
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let mut expected = BTreeMap::new();
    let mut late = 0;
    for line in String::from_utf8(reference.stdout).unwrap().lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        if let Some(n) = row.get("late") {
            late = n.as_u64().unwrap_or(0);
            continue;
        }
        let at = (row["window_start"].as_i64(), row["key"].to_string());
        expected.insert(at, row);
    }
    (expected, late)
}

/// A row's place: window start in ms (null for totals) and key as JSON.
type At = (Option<i64>, String);

/// weir's JSON rows by place; a later row for the same place replaces an
/// earlier one (a window emitted again after a crash).
fn rows_by_place(json_lines: &str) -> BTreeMap<At, Value> {
    json_lines
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            ((ms(&row["window_start"]), row["key"].to_string()), row)
        })
        .collect()
}

/// Checks weir's `rows` against the reference's `expected`: the same
/// places, and each aggregate equal (percentiles within 1%).
fn compare(case: &Case, rows: &BTreeMap<At, Value>, expected: &BTreeMap<At, Value>) {
    let names = case.names();
    for (at, row) in rows {
        let Some(want) = expected.get(at) else {
            panic!("{}: a row the reference has not: {row}", case.name);
        };
        assert_eq!(
            ms(&row["window_end"]),
            want["window_end"].as_i64(),
            "{}: {row}",
            case.name
        );
        for (i, name) in names.iter().enumerate() {
            let (got, exp) = (&row[name.as_str()], &want["aggs"][i]);
            // Sketches within their stated error (distinct counts are
            // exact up to 1,024); sums and means within float rounding;
            // the rest exact.
            let ok = if name.starts_with('p') {
                close(got, exp, 0.01)
            } else if name.starts_with("distinct") {
                close(got, exp, 0.025)
            } else {
                close(got, exp, 1e-9)
            };
            assert!(
                ok,
                "{}: {name} is {got}, the reference {exp}: {row}",
                case.name
            );
        }
        let unparsed = row.get("unparsed").cloned().unwrap_or(json!({}));
        assert_eq!(unparsed, want["unparsed"], "{}: {row}", case.name);
    }
    assert_eq!(rows.len(), expected.len(), "{}: rows", case.name);
}

/// Runs `case` over `topic` and compares its rows with the reference's.
fn check(cluster: &Cluster, topic: &str, dir: &Path, records: &Path, case: &Case) {
    let (expected, late) = reference(dir, records, case);
    let mut cmd = weir();
    cmd.args(["agg", "-t", topic, "-e", "--json", "-b", cluster.address()])
        .args(case.args());
    let out = run(&mut cmd);
    out.ok();
    assert_eq!(
        out.stdout.lines().count(),
        expected.len(),
        "{}: each row once",
        case.name
    );
    compare(case, &rows_by_place(&out.stdout), &expected);
    if late > 0 {
        assert!(
            out.stderr.contains(&format!("; {late} late")),
            "{}: {late} late records expected:\n{}",
            case.name,
            out.stderr
        );
    }
    eprintln!(
        "{}: {} rows equal the reference; {late} late",
        case.name,
        expected.len()
    );
}

/// What the crash tests share: the generated input, fed while `weir agg`
/// runs as a group member committing every 200 ms, and the check of its
/// rows against the reference.
struct CrashRun {
    address: String,
    topic: String,
    store: String,
    group: String,
    case: Case,
    dir: tempfile::TempDir,
}

impl CrashRun {
    /// Fresh names (after `prefix`), every aggregate over 1-minute
    /// tumbling windows; `topic` is created by the caller.
    fn new(address: &str, prefix: &str) -> Self {
        Self {
            address: address.to_owned(),
            topic: random_topic(&format!("{prefix}-in")),
            store: random_topic(&format!("{prefix}-offsets")),
            group: random_topic(&format!("{prefix}-g")),
            case: Case {
                name: "killed",
                by: &["key"],
                aggs: EVERY_AGG,
                window_ms: Some(60_000),
                hop_ms: None,
                session_gap_ms: None,
            },
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes the first 3,000 input lines (every partition has records
    /// before the first run starts) and feeds the rest, 10 lines every
    /// `pause`.
    fn feed(&self, cluster: &Cluster, pause: Duration) -> Feeder {
        let start_ms = an_hour_ago();
        let lines: Vec<String> = (0..RECORDS).map(|i| line(start_ms, i)).collect();
        cluster.fill(&self.topic, &["--format", "json"], &lines[..3_000]);
        Feeder::start(
            &["-t", &self.topic, "--format", "json", "-b", &self.address],
            lines[3_000..].to_vec(),
            10,
            pause,
        )
    }

    /// `weir agg` as the group's exclusive member, with `extra` flags.
    fn agg(&self, extra: &[&str]) -> Command {
        let mut cmd = weir();
        cmd.args(["agg", "-t", &self.topic, "--json", "-g", &self.group])
            .args(["--offsets-topic", &self.store, "--commit-interval", "200ms"])
            .args(["--exclusive", "-b", &self.address])
            .args(self.case.args())
            .args(extra);
        cmd
    }

    /// Starts a run with its stdout in `out-NAME` and stderr in
    /// `out-NAME.err` of the test's directory.
    fn spawn(&self, name: &str) -> (std::process::Child, PathBuf) {
        let file = self.dir.path().join(format!("out-{name}"));
        let child = self
            .agg(&[])
            .stdout(std::fs::File::create(&file).unwrap())
            .stderr(std::fs::File::create(file.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        (child, file)
    }

    /// Runs `weir agg` to the end of the input after the killed runs,
    /// whose whole rows are in `emitted`, and compares the last row per
    /// (window, key) with the reference; returns the rows and late
    /// records.
    fn finish_and_compare(&self, cluster: &Cluster, mut emitted: String) -> (usize, u64) {
        let last = run(&mut self.agg(&["-e"]));
        last.ok();
        emitted.push_str(&last.stdout);
        let read = cluster.weir(&["consume", "-t", &self.topic, "-e", "--json", "-q"]);
        read.ok();
        let records = self.dir.path().join("records.jsonl");
        std::fs::write(&records, &read.stdout).unwrap();
        let (expected, late) = reference(self.dir.path(), &records, &self.case);
        compare(&self.case, &rows_by_place(&emitted), &expected);
        (expected.len(), late)
    }
}

/// The whole lines a killed run wrote to `file` (a kill can cut the last
/// one short).
fn whole_lines(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    text[..text.rfind('\n').map_or(0, |end| end + 1)].to_owned()
}

/// `weir agg` SIGKILLed five times at moments of its own while records
/// arrive, each run resuming the group's state and positions, then run to
/// the end: the last row per (window, key) equals the reference, sketches
/// included (restored sketches go on as if never saved).
#[test]
fn killed_aggregates_resume_exactly() {
    let cluster = Cluster::shared();
    let crash = CrashRun::new(cluster.address(), "agg-crash");
    let (topic, store, group) = (&crash.topic, &crash.store, &crash.group);
    cluster.create_topic(topic, PARTITIONS);
    let feeder = crash.feed(&cluster, Duration::from_millis(1));
    let mut emitted = String::new();
    let mut committed = 0;
    let mut progress = 0;
    for (round, after) in [170, 30, 290, 110, 230].into_iter().enumerate() {
        let (mut child, file) = crash.spawn(&round.to_string());
        let deadline = Instant::now() + STEP_TIMEOUT;
        let now = loop {
            let now = cluster.committed_total(store, group);
            if now > committed || now == cluster.topic_end(topic) {
                break now;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: no commit; weir agg said:\n{}",
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
        emitted.push_str(&whole_lines(&file));
    }
    assert!(
        progress >= 2,
        "only {progress} killed runs committed anything"
    );
    assert!(feeder.finish().success(), "the feeding producer failed");
    let (rows, late) = crash.finish_and_compare(&cluster, emitted);
    eprintln!("killed agg: {rows} rows equal the reference after five SIGKILLs; {late} late");
}

/// `weir agg` on a three-node cluster (input and store replicated three
/// times, the input by the cluster's `default.replication.factor` as
/// `kafka-topics` shows, `min.insync.replicas=2`) while the broker leading the group's
/// store partition is SIGKILLed mid-run: the job rides through the leader
/// move without exiting, commits everything, and its rows (then a last
/// run to the end) equal the reference.
#[test]
fn aggregates_stay_exact_when_a_broker_is_lost() {
    let mut cluster = Cluster::start(3);
    let crash = CrashRun::new(cluster.address(), "agg-loss");
    let (topic, store, group) = (&crash.topic, &crash.store, &crash.group);
    cluster
        .weir(&[
            "topics",
            "create",
            topic,
            "--partitions",
            &PARTITIONS.to_string(),
            "--config",
            "min.insync.replicas=2",
        ])
        .ok();
    // No --replication-factor: the cluster's default (3), as kafka-topics.
    let described = common::kafka_tool(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            cluster.address(),
            "--describe",
            "--topic",
            topic,
        ],
    );
    assert!(
        described.stdout.contains("ReplicationFactor: 3"),
        "{}",
        described.stdout
    );
    // About 8 s of input: the kill lands mid-stream.
    let feeder = crash.feed(&cluster, Duration::from_millis(3));
    let (mut child, out) = crash.spawn("loss");
    let err = out.with_extension("err");
    let said = || std::fs::read_to_string(&err).unwrap_or_default();
    let mut running = |what: &str| {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("weir agg exited {what} with {status}:\n{}", said());
        }
    };
    common::wait_for("a first commit", || {
        running("before the kill");
        cluster.committed_total(store, group) > 0
    });

    // The broker leading the group's partition of the store.
    let described = cluster.weir(&["topics", "describe", store, "--output", "json"]);
    described.ok();
    let description: Value = serde_json::from_str(&described.stdout).unwrap();
    let store_partitions = description["partitions"].as_array().unwrap();
    let mine = weir::produce::partitioner::murmur2_partition(
        group.as_bytes(),
        store_partitions.len() as i32,
    );
    let victim = store_partitions[mine as usize]["leader"].as_i64().unwrap() as i32;
    // A topic of one replica per partition: the victim's partition goes
    // offline, which `weir cluster --topics` shows as no leader.
    let single = format!("{topic}-single");
    cluster
        .weir(&["topics", "create", &single, "--partitions", "3", "-r", "1"])
        .ok();
    cluster.kafka().kill(common::Kafka::node_index(victim));

    assert!(feeder.finish().success(), "the feeding producer failed");
    let end = cluster.topic_end(topic);
    assert_eq!(end, RECORDS as i64);
    common::wait_for("every record committed after the broker loss", || {
        running("after the kill");
        cluster.committed_total(store, group) == end
    });
    child.kill().unwrap(); // SIGKILL: the last run emits the rest.
    child.wait().unwrap();
    common::wait_for(
        "the victim's partition of the topic of one replica offline",
        || {
            let run = cluster.weir(&["cluster", "--topics", "-t", &single, "--output", "json"]);
            run.ok();
            let v: Value = serde_json::from_str(&run.stdout).unwrap();
            let partitions = v["topic_partitions"][0]["partitions"].as_array().unwrap();
            let offline: Vec<_> = partitions
                .iter()
                .filter(|p| p["leader"].is_null())
                .collect();
            offline.len() == 1 && offline[0]["replicas"] == serde_json::json!([victim])
        },
    );
    let (rows, late) = crash.finish_and_compare(&cluster, whole_lines(&out));
    eprintln!(
        "agg across a broker loss: {rows} rows equal the reference; broker {victim} killed; {late} late"
    );
}

/// An hour ago, on a minute: within the topic's retention.
fn an_hour_ago() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 3_600_000) / 60_000 * 60_000
}

/// The reported case: four partitions keyed by the grouping field, event
/// time out of order by at most 2 s, `--grace 5s`, 5-minute windows every
/// minute, read to the end: each (window, key) equals a reference summed
/// here over the records the topic holds, and no record is late (each is
/// within the grace of its partition's newest).
#[test]
fn hopping_windows_within_the_grace_count_every_record() {
    const MINUTE: i64 = 60_000;
    const KEYS: u64 = 8;
    let cluster = Cluster::shared();
    let topic = random_topic("agg-hop");
    cluster.create_topic(&topic, 4);
    let start_ms = an_hour_ago();
    // 30 minutes at 100 ms apart from 7.3 s past a minute; one record in
    // three up to 2 s early.
    let input: String = (0..18_000u64)
        .map(|i| {
            let r = mix(i ^ 0x5eed);
            let mut ts = start_ms + 7_300 + (i as i64) * 100;
            if r % 3 == 0 {
                ts -= ((r >> 8) % 2_001) as i64;
            }
            let key = format!("k{}", (r >> 32) % KEYS);
            json!({"key": key, "value": "{}", "timestamp": ts}).to_string() + "\n"
        })
        .collect();
    cluster
        .produce(&["-t", &topic, "--format", "json"], input.as_bytes())
        .ok();
    let read = cluster.weir(&["consume", "-t", &topic, "-e", "--json", "-q"]);
    read.ok();
    let mut expected: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for line in read.stdout.lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let ts = record["timestamp"].as_i64().unwrap();
        let key = record["key"].as_str().unwrap().to_owned();
        // Every window of five minutes starting on a minute that holds ts.
        let latest = ts.div_euclid(MINUTE) * MINUTE;
        for start in (0..5).map(|k| latest - k * MINUTE) {
            *expected.entry((start, key.clone())).or_default() += 1;
        }
    }
    let mut cmd = weir();
    cmd.args(["agg", "-t", &topic, "-e", "--json", "-b", cluster.address()])
        .args([
            "--by", "key", "--window", "5m", "--hop", "1m", "--grace", "5s",
        ]);
    let out = run(&mut cmd);
    out.ok();
    let mut got: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for line in out.stdout.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let at = (
            ms(&row["window_start"]).unwrap(),
            row["key"].as_str().unwrap().to_owned(),
        );
        assert!(
            got.insert(at, row["count"].as_u64().unwrap()).is_none(),
            "a row twice: {row}"
        );
    }
    let differ: Vec<_> = expected
        .iter()
        .filter(|(at, n)| got.get(*at) != Some(*n))
        .map(|(at, n)| (at.clone(), *n, got.get(at).copied()))
        .collect();
    assert!(
        differ.is_empty(),
        "rows unlike the reference (place, expected, got): {differ:?}\n{}",
        out.stderr
    );
    assert_eq!(got.len(), expected.len(), "rows");
    assert!(
        !out.stderr.contains(" late"),
        "records counted late:\n{}",
        out.stderr
    );
}

/// Three `weir agg -g` members grouping by a field of the value (every
/// partition holds every path), through a SIGKILL, a join, a leave and a
/// freeze past the session while the records arrive; a record a minute past the last in every
/// partition then closes every window. Each (window, path) is merged from
/// the members' partial aggregates through the group's internal topic:
/// every row written equals the reference (sketches within their error),
/// and every closed window has its rows. With `exactly_once`, the rows
/// are read back from the output topic as read_committed readers see
/// them.
fn members_aggregate_by_a_field(exactly_once: bool, sessions: bool) {
    let cluster = Cluster::shared();
    let prefix = match (exactly_once, sessions) {
        (true, _) => "agg-members-eos",
        (false, true) => "agg-members-sessions",
        (false, false) => "agg-members",
    };
    let mut crash = CrashRun::new(cluster.address(), prefix);
    crash.case = Case {
        name: prefix,
        by: &["json:/path"],
        aggs: &[
            "count",
            "sum:json:/bytes",
            "max:json:/lat",
            "distinct:json:/user",
            "p99:json:/lat",
        ],
        window_ms: (!sessions).then_some(10_000),
        hop_ms: (!sessions).then_some(5_000),
        session_gap_ms: sessions.then_some(2_000),
    };
    let output = random_topic(&format!("{prefix}-out"));
    cluster.create_topic(&crash.topic, PARTITIONS);
    let member = |name: &str| {
        let file = crash.dir.path().join(format!("member-{name}"));
        let mut cmd = weir();
        cmd.args(["agg", "-t", &crash.topic, "--json", "-g", &crash.group])
            .args([
                "--offsets-topic",
                &crash.store,
                "--commit-interval",
                "200ms",
            ])
            .args(["--session-timeout", "6s", "--heartbeat-interval", "500ms"])
            .args(["--to-topic", &output, "-b", &crash.address])
            .args(crash.case.args());
        if exactly_once {
            cmd.args(["--exactly-once", "--transaction-timeout", "10s"]);
        }
        let child = cmd
            .stdout(std::fs::File::create(&file).unwrap())
            .stderr(std::fs::File::create(file.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        (child, file)
    };
    let logs = |files: &[&PathBuf]| -> String {
        files
            .iter()
            .map(|f| std::fs::read_to_string(f.with_extension("err")).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let progress = |from: i64, files: &[&PathBuf]| -> i64 {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let now = cluster.committed_total(&crash.store, &crash.group);
            if now > from || now == cluster.topic_end(&crash.topic) {
                return now;
            }
            assert!(Instant::now() < deadline, "no commit:\n{}", logs(files));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let feeder = crash.feed(&cluster, Duration::from_millis(5));
    let (mut a, file_a) = member("a");
    let (mut b, file_b) = member("b");
    let (mut c, file_c) = member("c");
    let mut committed = progress(0, &[&file_a, &file_b, &file_c]);
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    let (mut d, file_d) = member("d");
    committed = progress(committed, &[&file_b, &file_c, &file_d]);
    signal(&b, libc::SIGTERM);
    let status = b.wait().unwrap();
    assert!(status.success(), "{status}: {}", logs(&[&file_b]));
    committed = progress(committed, &[&file_c, &file_d]);
    // C freezes past its session timeout, then thaws: its partitions went
    // to D meanwhile, and it must write nothing more for them.
    signal(&c, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(8));
    signal(&c, libc::SIGCONT);
    progress(committed, &[&file_c, &file_d]);
    assert!(feeder.finish().success(), "the feeding producer failed");
    // The last record is 30,000 × 20 ms after the start: a minute later
    // every window has closed in every partition.
    let later = an_hour_ago() + RECORDS as i64 * 20 + 60_000;
    let flush: Vec<String> = (0..PARTITIONS)
        .map(|p| {
            let value = json!({"path": "flush", "bytes": 0, "user": "flush"}).to_string();
            json!({"key": "flush", "value": value, "timestamp": later, "partition": p}).to_string()
        })
        .collect();
    cluster.fill(&crash.topic, &["--format", "json"], &flush);

    let read = cluster.weir(&["consume", "-t", &crash.topic, "-e", "--json", "-q"]);
    read.ok();
    let records = crash.dir.path().join("records.jsonl");
    let input: String = read
        .stdout
        .lines()
        .filter(|l| !l.contains(r#"\"path\":\"flush\""#))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&records, input).unwrap();
    let (expected, _) = reference(crash.dir.path(), &records, &crash.case);
    let files = [&file_a, &file_b, &file_c, &file_d];
    let written = || -> String {
        if exactly_once {
            let out = cluster.weir(&["consume", "-t", &output, "-e", "-q", "-f", "{value}\\n"]);
            out.ok();
            out.stdout
        } else {
            files.iter().map(|f| whole_lines(f)).collect()
        }
    };
    let deadline = Instant::now() + STEP_TIMEOUT * 2;
    let rows = loop {
        let rows = written();
        let places = rows_by_place(&rows);
        if expected.keys().all(|at| places.contains_key(at)) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} (window, path) rows written:\n{}",
            places.len(),
            expected.len(),
            logs(&files)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for (child, file) in [(&mut c, &file_c), (&mut d, &file_d)] {
        signal(child, libc::SIGTERM);
        let status = child.wait().unwrap();
        assert!(status.success(), "{status}: {}", logs(&[file]));
    }
    // The members that ran to the end said which path they took.
    for err in [&file_c, &file_d].map(|f| f.with_extension("err")) {
        let log = std::fs::read_to_string(err).unwrap_or_default();
        assert!(log.contains("two stages"), "the two-stage path:\n{log}");
    }
    // Every row written, not only the last per place, is the final one.
    for line in rows.lines() {
        let one = rows_by_place(line);
        let at = one.keys().next().unwrap();
        let want: BTreeMap<At, Value> = expected
            .get(at)
            .map(|v| (at.clone(), v.clone()))
            .into_iter()
            .collect();
        compare(&crash.case, &one, &want);
    }
    compare(&crash.case, &rows_by_place(&rows), &expected);
    eprintln!(
        "{prefix}: {} (window, path) rows equal the reference across members, through a SIGKILL, a join, a leave and a freeze",
        expected.len()
    );
}

/// A signal to a child.
fn signal(child: &std::process::Child, signal: i32) {
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

#[test]
fn members_aggregate_exactly_by_a_field_of_the_value() {
    members_aggregate_by_a_field(false, false);
}

#[test]
fn exactly_once_members_aggregate_exactly_by_a_field_of_the_value() {
    members_aggregate_by_a_field(true, false);
}

#[test]
fn members_join_sessions_of_a_key_across_partitions() {
    members_aggregate_by_a_field(false, true);
}
