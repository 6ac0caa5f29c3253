//! `weir pipe` on the real broker: filtered, re-keyed and reshaped
//! records land in the output topic; killed with SIGKILL at moments of
//! its own and restarted, it loses nothing (at least once: a record after
//! the last commit comes again) and keeps each key's order.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Cluster, JSON, STEP_TIMEOUT, random_topic, weir};
use serde_json::Value;

/// Distinct users (the output key).
const USERS: u64 = 50;

/// Input record `i`, with the user's own count of kind "a" records so far
/// (`seq`) for kind "a": every third record is kind "b", which the pipe
/// filters out.
fn record(i: u64, seqs: &mut BTreeMap<u64, u64>) -> String {
    let user = i % USERS;
    let (kind, seq) = if i % 3 == 0 {
        ("b", 0)
    } else {
        let seq = seqs.entry(user).or_default();
        *seq += 1;
        ("a", *seq - 1)
    };
    let value = format!(r#"{{"user":"u{user}","kind":"{kind}","seq":{seq},"i":{i}}}"#);
    serde_json::json!({ "key": format!("k-u{user}"), "value": value }).to_string()
}

/// The output: per key, the `seq` values in the order the topic holds
/// them (each partition in offset order).
fn output(cluster: &Cluster, topic: &str, partitions: i32) -> BTreeMap<String, Vec<u64>> {
    let mut by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for records in cluster.read_all(topic, partitions).values() {
        for r in records {
            let key = String::from_utf8(r.record.key.clone().expect("a key")).unwrap();
            let value: Value = serde_json::from_slice(r.record.value.as_ref().unwrap()).unwrap();
            assert_eq!(value["kind"], "a", "a filtered record was piped: {value}");
            assert_eq!(
                value["user"].as_str(),
                Some(key.as_str()),
                "re-keyed by user"
            );
            by_key
                .entry(key)
                .or_default()
                .push(value["seq"].as_u64().unwrap());
        }
    }
    by_key
}

#[test]
fn filtered_rekeyed_records_arrive_at_least_once_in_order_across_kills() {
    let cluster = Cluster::shared();
    let input = random_topic("pipe-in");
    let out = random_topic("pipe-out");
    let store = random_topic("offsets");
    let group = random_topic("g");
    cluster.create_topic(&input, 6);
    cluster.create_topic(&out, 4);
    let total: u64 = 500_000;
    let mut seqs = BTreeMap::new();
    let lines: Vec<String> = (0..total).map(|i| record(i, &mut seqs)).collect();
    cluster.fill(&input, JSON, &lines);

    let pipe = |extra: &[&str]| {
        let mut cmd = weir();
        // --exclusive: a static assignment, so a restart after a SIGKILL
        // does not wait for the dead member's session to time out.
        cmd.args(["pipe", "-t", &input, "--to", &out])
            .args(["-g", &group, "--exclusive"])
            .args(["--offsets-topic", &store, "--commit-interval", "200ms"])
            .args(["--where", "kind=a", "--key-from", "json:/user"])
            .args(["-b", cluster.address()])
            .args(extra);
        cmd
    };
    // Kills at moments of their own: after the run's first commit, a
    // pseudo-random 0-400 ms later (the seed is printed).
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("pipe kill test: seed {seed}");
    let mut committed = 0;
    let mut progress = 0;
    for round in 0..5 {
        let mut child = pipe(&[])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let now = cluster.committed_total(&store, &group);
            if now > committed {
                committed = now;
                progress += 1;
                break;
            }
            if now == total as i64 {
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: no commit");
            std::thread::sleep(Duration::from_millis(20));
        }
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 400));
        child.kill().unwrap(); // SIGKILL: no final commit.
        child.wait().unwrap();
    }
    assert!(
        progress >= 3,
        "only {progress} killed runs committed anything"
    );
    let last = common::run(&mut pipe(&["-e"]));
    last.ok();

    let by_key = output(&cluster, &out, 4);
    let mut repeats = 0;
    for user in 0..USERS {
        let key = format!("u{user}");
        let got = by_key.get(&key).map(Vec::as_slice).unwrap_or_default();
        // In order, at least once: a record comes again only after a
        // restart, from the last commit on; nothing is skipped.
        let mut next = 0;
        for &seq in got {
            if seq < next {
                repeats += 1;
                continue;
            }
            assert_eq!(seq, next, "key {key}: a record is missing or out of order");
            next += 1;
        }
        assert_eq!(next, seqs[&user], "key {key}: every record");
    }
    eprintln!(
        "pipe kill test: {} records piped, {repeats} again after a kill",
        seqs.values().sum::<u64>()
    );
}

#[test]
fn values_from_a_field_or_a_template_keep_partition_headers_and_timestamps() {
    let cluster = Cluster::shared();
    let input = random_topic("pipe-shape-in");
    let out = random_topic("pipe-shape-out");
    cluster.create_topic(&input, 3);
    cluster.create_topic(&out, 3);
    let lines: Vec<String> = (0..30)
        .map(|i| {
            serde_json::json!({
                "key": format!("k{i}"),
                "value": format!(r#"{{"n":{i},"payload":{{"a":{i}}}}}"#),
                "partition": i % 3,
                "timestamp": 1_700_000_000_000_i64 + i,
                "headers": [{"key": "h", "value": format!("v{i}")}],
            })
            .to_string()
        })
        .collect();
    cluster.fill(&input, JSON, &lines);
    let run = cluster.weir(&[
        "pipe",
        "-t",
        &input,
        "--to",
        &out,
        "-e",
        "--value",
        "json:/payload",
        "--keep-partition",
    ]);
    run.ok();
    let shown = cluster.weir(&["consume", "-t", &out, "-e", "--json"]);
    shown.ok();
    let mut seen = 0;
    for line in shown.stdout.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let i: i64 = r["key"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(r["value"], format!(r#"{{"a":{i}}}"#));
        assert_eq!(r["partition"], i % 3);
        assert_eq!(r["timestamp"], 1_700_000_000_000_i64 + i);
        assert_eq!(r["headers"][0]["value"], format!("v{i}"));
        seen += 1;
    }
    assert_eq!(seen, 30);

    let templated = random_topic("pipe-template-out");
    cluster.create_topic(&templated, 1);
    cluster
        .weir(&[
            "pipe",
            "-t",
            &input,
            "--to",
            &templated,
            "-e",
            "-f",
            "{key}={offset}",
        ])
        .ok();
    let shown = cluster.weir(&["consume", "-t", &templated, "-e"]);
    let mut values: Vec<&str> = shown.stdout.lines().collect();
    values.sort_unstable();
    assert_eq!(values.len(), 30);
    assert!(
        values.iter().all(|v| v.starts_with('k') && v.contains('=')),
        "{values:?}"
    );
}
