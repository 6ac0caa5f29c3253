//! `weir consume` against a real broker: stop positions, instances, output
//! formats, filters, closed pipes, signals, large records and a broker
//! restart in the middle of a run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{
    Cluster, Feeder, KEYED, STEP_TIMEOUT, brokers, random_topic, run, wait_exit, weir, weir_bin,
    weir_run,
};
use serde_json::Value;

/// `n` records over 13 keys.
fn keyed(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("k{}:v{i}", i % 13))
}

fn consume(args: &[&str]) -> common::Run {
    let mut all = vec!["consume"];
    all.extend_from_slice(args);
    weir_run(&all)
}

/// `partition offset` pairs from `-f '{partition} {offset}'` output.
fn positions(stdout: &str) -> Vec<(i32, i64)> {
    stdout
        .lines()
        .map(|l| {
            let (p, o) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (p.parse().unwrap(), o.parse().unwrap())
        })
        .collect()
}

/// Every partition's offsets must be 0..n without gaps or repeats, in
/// order; returns n per partition.
fn contiguous(pairs: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for &(p, o) in pairs {
        let expected = next.entry(p).or_insert(0);
        assert_eq!(
            o, *expected,
            "partition {p}: offset {o} where {expected} was due"
        );
        *expected += 1;
    }
    next
}

#[test]
fn default_output_is_each_value_on_a_line_and_a_summary() {
    let topic = Cluster::shared().create_and_fill("plain", 1, KEYED, ["a:one", "b:two", "c:three"]);
    let run = consume(&["-t", &topic, "-e"]);
    run.ok();
    assert_eq!(run.stdout, "one\ntwo\nthree\n");
    assert!(run.stderr.contains("consumed 3 records"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{topic}/0: 3 records")),
        "{}",
        run.stderr
    );
}

#[test]
fn template_fields_and_escapes() {
    let topic = Cluster::shared().create_and_fill("template", 1, KEYED, ["k1:v1"]);
    let run = consume(&[
        "-t",
        &topic,
        "-e",
        "-f",
        "{topic}\\t{partition}\\t{offset}\\t{key}={value}\\n",
    ]);
    run.ok();
    assert_eq!(run.stdout, format!("{topic}\t0\t0\tk1=v1\n"));
    let bad = consume(&["-t", &topic, "-e", "-f", "{nope}"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("nope"), "{}", bad.stderr);
}

#[test]
fn until_end_stops_at_the_watermarks_taken_at_start_while_writes_go_on() {
    let topic = Cluster::shared().create_and_fill("until-end", 6, KEYED, keyed(3_000));
    let before = Cluster::shared().high_watermarks(&topic);

    // A producer keeps writing for the whole read.
    let writer = Feeder::start(
        &["-t", &topic, "-K", ":", "--linger", "1ms", "-b", brokers()],
        (0..200_000).map(|i| format!("k{}:late{i}", i % 13)),
        100,
        Duration::from_millis(2),
    );
    let deadline = Instant::now() + STEP_TIMEOUT;
    while Cluster::shared().topic_end(&topic) <= before.values().sum::<i64>() {
        assert!(Instant::now() < deadline, "the writer never wrote");
        std::thread::sleep(Duration::from_millis(20));
    }
    let during = Cluster::shared().high_watermarks(&topic);
    let run = consume(&["-t", &topic, "--until", "end", "-f", "{partition} {offset}"]);
    let after = Cluster::shared().high_watermarks(&topic);
    writer.stop();
    run.ok();

    let read = contiguous(&positions(&run.stdout));
    for p in 0..6 {
        let n = read.get(&p).copied().unwrap_or(0);
        assert!(
            during[&p] <= n && n <= after[&p],
            "partition {p}: read {n}, high watermark {} before and {} after the run",
            during[&p],
            after[&p]
        );
    }
    assert!(
        after.values().sum::<i64>() > read.values().sum::<i64>(),
        "writes went on past the end the consumer stopped at"
    );
}

#[test]
fn until_end_on_empty_partitions_exits_at_once() {
    let topic = random_topic("empty");
    weir_run(&["topics", "create", &topic, "--partitions", "4"]).ok();
    let run = consume(&["-t", &topic, "-e"]);
    run.ok();
    assert_eq!(run.stdout, "");
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
}

#[test]
fn count_stops_after_n_records() {
    let topic = Cluster::shared().create_and_fill("count", 3, KEYED, keyed(500));
    let run = consume(&["-t", &topic, "-c", "7"]);
    run.ok();
    assert_eq!(run.stdout.lines().count(), 7);
}

#[test]
fn count_zero_writes_nothing_and_commits_nothing() {
    let topic = Cluster::shared().create_and_fill("count-zero", 3, KEYED, keyed(50));
    // No -e: only the count can end it, at once.
    let run = consume(&["-t", &topic, "-c", "0"]);
    run.ok();
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("wrote 0"), "{}", run.stderr);

    // With a group: no commit, and no offsets topic made for one.
    let store = random_topic("count-zero-store");
    let group = random_topic("count-zero-group");
    let run = consume(&[
        "-t",
        &topic,
        "-c",
        "0",
        "-g",
        &group,
        "--offsets-topic",
        &store,
    ]);
    run.ok();
    assert_eq!(run.stdout, "");
    weir_run(&["topics", "describe", &store]).expect_code(1);

    // The group's first real read starts at the beginning.
    let run = consume(&[
        "-t",
        &topic,
        "-c",
        "50",
        "-g",
        &group,
        "--offsets-topic",
        &store,
        "-f",
        "{partition} {offset}",
    ]);
    run.ok();
    let read = contiguous(&positions(&run.stdout));
    assert_eq!(read.values().sum::<i64>(), 50, "{read:?}");
}

#[test]
fn instances_share_the_partitions_once() {
    let topic = Cluster::shared().create_and_fill("instances", 6, KEYED, keyed(1_200));
    let mut seen = BTreeSet::new();
    let mut by_instance = Vec::new();
    for instance in ["0/2", "1/2"] {
        let run = consume(&[
            "-t",
            &topic,
            "-e",
            "--instance",
            instance,
            "-f",
            "{partition} {offset}",
        ]);
        run.ok();
        let pairs = positions(&run.stdout);
        let partitions: BTreeSet<i32> = pairs.iter().map(|p| p.0).collect();
        for pair in pairs {
            assert!(seen.insert(pair), "{pair:?} read twice");
        }
        by_instance.push(partitions);
    }
    assert_eq!(by_instance[0], BTreeSet::from([0, 2, 4]));
    assert_eq!(by_instance[1], BTreeSet::from([1, 3, 5]));
    assert_eq!(seen.len(), 1_200, "every record once");

    let run = consume(&[
        "-t",
        &topic,
        "-e",
        "-p",
        "1,4",
        "-f",
        "{partition} {offset}",
    ]);
    run.ok();
    let partitions: BTreeSet<i32> = positions(&run.stdout).iter().map(|p| p.0).collect();
    assert_eq!(partitions, BTreeSet::from([1, 4]));
}

#[test]
fn json_output_round_trips_binary_payloads() {
    let topic = random_topic("json");
    weir_run(&["topics", "create", &topic, "--partitions", "2"]).ok();
    let binary = [0u8, 0xFF, 0xFE, b'"', b'\n', 0xC3, 0x28];
    let input = format!(
        "{}\n{}\n",
        serde_json::json!({"key_b64": B64.encode(binary), "value": "plain \"text\"\n", "headers": {"h": "v"}}),
        serde_json::json!({"key": "text", "value_b64": B64.encode(binary), "headers_b64": {"raw": B64.encode(binary)}}),
    );
    common::produce(&["-t", &topic, "--format", "json"], input.as_bytes()).ok();
    let run = consume(&["-t", &topic, "-e", "--json"]);
    run.ok();
    let records: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON ({e}): {l}")))
        .collect();
    assert_eq!(records.len(), 2);
    let first = records.iter().find(|r| r["value"].is_string()).unwrap();
    assert_eq!(
        B64.decode(first["key_b64"].as_str().unwrap()).unwrap(),
        binary
    );
    assert_eq!(first["value"], "plain \"text\"\n");
    assert_eq!(
        first["headers"],
        serde_json::json!([{"key": "h", "value": "v"}])
    );
    let second = records.iter().find(|r| r["key"] == "text").unwrap();
    assert_eq!(
        B64.decode(second["value_b64"].as_str().unwrap()).unwrap(),
        binary
    );
    // The older headers_b64 input comes out in the header list.
    assert_eq!(second["headers"][0]["key"], "raw");
    assert_eq!(
        B64.decode(second["headers"][0]["value_b64"].as_str().unwrap())
            .unwrap(),
        binary
    );

    // The output is input for `weir produce --format json`: a copy.
    let copy = random_topic("json-copy");
    weir_run(&["topics", "create", &copy, "--partitions", "2"]).ok();
    common::produce(&["-t", &copy, "--format", "json"], run.stdout.as_bytes()).ok();
    let again = consume(&["-t", &copy, "-e", "--json"]);
    again.ok();
    let strip = |out: &str| -> BTreeSet<String> {
        out.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("topic");
                v.to_string()
            })
            .collect()
    };
    assert_eq!(strip(&again.stdout), strip(&run.stdout));
}

#[test]
fn filters_combine_and_count_what_they_skip() {
    let topic = random_topic("filters");
    weir_run(&["topics", "create", &topic, "--partitions", "1"]).ok();
    let input = [
        r#"web|{"level":"ERROR","http":{"status":500},"msg":"boom"}"#,
        r#"web|{"level":"INFO","http":{"status":200},"msg":"fine"}"#,
        r#"db|{"level":"ERROR","http":{"status":"500"},"msg":"disk"}"#,
        "db|not json at all",
        r#"web|{"level":"WARN","msg":"slow"}"#,
    ]
    .join("\n");
    common::produce(&["-t", &topic, "-K", "|"], input.as_bytes()).ok();
    let values = |args: &[&str]| {
        let mut all = vec!["-t", topic.as_str(), "-e", "-f", "{offset}"];
        all.extend_from_slice(args);
        let run = consume(&all);
        run.ok();
        (
            run.stdout.lines().map(str::to_owned).collect::<Vec<_>>(),
            run.stderr,
        )
    };
    assert_eq!(values(&["--grep", "ERROR"]).0, ["0", "2"]);
    assert_eq!(values(&["--grep-key", "^db$"]).0, ["2", "3"]);
    assert_eq!(values(&["--grep", "ERROR", "--grep-key", "web"]).0, ["0"]);
    let (out, stderr) = values(&["--where", "/level=ERROR"]);
    assert_eq!(out, ["0", "2"]);
    assert!(stderr.contains("1 skipped as not JSON"), "{stderr}");
    assert_eq!(values(&["--where", "http.status=500"]).0, ["0", "2"]);
    assert_eq!(
        values(&["--where", "level=ERROR", "--where", "msg=disk"]).0,
        ["2"]
    );
    // Inverted, what --where cannot read passes too, as with grep -v.
    let (out, stderr) = values(&["--where", "level=ERROR", "--invert"]);
    assert_eq!(out, ["1", "3", "4"]);
    assert!(stderr.contains("2 filtered out"), "{stderr}");
    assert_eq!(values(&["--grep", "ERROR", "--invert"]).0, ["1", "3", "4"]);
    let bad = consume(&["-t", &topic, "-e", "--grep", "("]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("--grep"), "{}", bad.stderr);
}

/// `weir consume ... | head -1`, through a shell; returns weir's exit
/// code, head's output and weir's stderr.
fn piped_to_head(args: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let err = dir.path().join("stderr");
    let script = format!(
        "{} consume -b {} {args} 2>{} | head -1; exit ${{PIPESTATUS[0]}}",
        weir_bin().display(),
        brokers(),
        err.display()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &script]);
    let run = run(&mut cmd);
    (
        run.code.unwrap_or(-1),
        run.stdout,
        std::fs::read_to_string(err).unwrap(),
    )
}

#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    let topic = Cluster::shared().create_and_fill("head", 2, KEYED, keyed(50_000));
    let (code, out, stderr) = piped_to_head(&format!("-t {topic} -e"));
    assert_eq!((code, out.lines().count(), stderr.as_str()), (0, 1, ""));
    // Following the topic: nothing more arrives after head has gone.
    let small = Cluster::shared().create_and_fill("head-tail", 1, KEYED, ["k:only"]);
    let (code, out, stderr) = piped_to_head(&format!("-t {small}"));
    assert_eq!((code, out.as_str(), stderr.as_str()), (0, "only\n", ""));
}

#[test]
fn a_record_larger_than_the_fetch_size_is_read() {
    let topic = random_topic("large");
    weir_run(&["topics", "create", &topic, "--partitions", "1"]).ok();
    let big = "x".repeat(300_000);
    common::produce(&["-t", &topic], format!("small\n{big}\nafter\n").as_bytes()).ok();
    let run = consume(&["-t", &topic, "-e", "--fetch-bytes", "1000"]);
    run.ok();
    assert_eq!(run.stdout, format!("small\n{big}\nafter\n"));
}

#[test]
fn bad_selections_name_the_topic_or_flag() {
    let missing = random_topic("missing");
    let run = consume(&["-t", &missing, "-e"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("topic \"{missing}\" does not exist")),
        "{}",
        run.stderr
    );
    let topic = Cluster::shared().create_and_fill("range", 2, KEYED, ["k:v"]);
    let run = consume(&["-t", &topic, "-e", "-p", "7"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("partition 7 is out of range"),
        "{}",
        run.stderr
    );
    // One partition is "1 partition"; the same mistake in produce (there
    // with --partition) is the same runtime failure, exit 1.
    let single = Cluster::shared().create_and_fill("range-1", 1, KEYED, ["k:v"]);
    let run = consume(&["-t", &single, "-e", "-p", "1"]);
    run.expect_code(1);
    let expected = format!("topic \"{single}\" has 1 partition, partition 1 is out of range");
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    let run = common::produce(&["-t", &single, "-p", "1"], b"v\n");
    run.expect_code(1);
    let expected = format!("topic \"{single}\" has 1 partition, --partition 1 is out of range");
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    for (flag, value) in [
        ("--from", "yesterday"),
        ("--until", "tomorrow"),
        ("--instance", "3/2"),
    ] {
        let run = consume(&["-t", &topic, flag, value]);
        run.expect_code(2);
        assert!(run.stderr.contains(flag), "{flag}: {}", run.stderr);
    }
}

/// Spawns `weir consume ARGS` following a topic, with stdout read line by
/// line into a channel.
fn follow(args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = weir()
        .arg("consume")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn receive(rx: &std::sync::mpsc::Receiver<String>, n: usize) -> Vec<String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut lines = Vec::new();
    while lines.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(e) => panic!("{} of {n} lines, then {e}", lines.len()),
        }
    }
    lines
}

#[test]
fn sigint_flushes_and_exits_130() {
    let topic = Cluster::shared().create_and_fill("sigint", 2, KEYED, keyed(100));
    let (mut child, rx) = follow(&["-t", &topic, "-b", brokers()]);
    let lines = receive(&rx, 100);
    assert_eq!(lines.len(), 100);
    // SAFETY: signalling our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = wait_exit(&mut child, "weir consume");
    // 128 + SIGINT: interrupted, after a clean stop.
    assert_eq!(status.code(), Some(130));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(
        stderr.contains("consumed 100 records") && stderr.contains("interrupted"),
        "{stderr}"
    );
}

#[test]
fn broker_restart_mid_run_continues_without_gaps_or_duplicates() {
    let mut cluster = Cluster::start(1);
    let address = cluster.address().to_owned();
    let topic = random_topic("restart");
    let records = |from: usize, to: usize| (from..to).map(|i| format!("k{}:{i}", i % 5));
    cluster.create_topic(&topic, 3);
    cluster.fill(&topic, KEYED, records(0, 500));

    let (mut child, rx) = follow(&[
        "-t",
        &topic,
        "-b",
        &address,
        "-c",
        "1000",
        "-f",
        "{partition} {offset} {value}",
        "--timeout",
        "60s",
    ]);
    let mut lines = receive(&rx, 500);
    cluster.kafka().kill(0);
    std::thread::sleep(Duration::from_millis(1_500));
    cluster.kafka().restart(0);
    cluster.fill(&topic, KEYED, records(500, 1_000));
    lines.extend(receive(&rx, 500));
    let status = wait_exit(&mut child, "weir consume");
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");

    let pairs: Vec<(i32, i64)> = lines
        .iter()
        .map(|l| {
            let mut it = l.split(' ');
            (
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    contiguous(&pairs);
    let values: BTreeSet<usize> = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(values, (0..1_000).collect(), "every record once");
}

/// `--where` compares numbers as jq's `==` does, and `--invert` keeps what
/// `--where` cannot read (not JSON, a tombstone, binary), as `grep -v`.
#[test]
fn where_compares_numbers_as_numbers_and_invert_keeps_what_it_cannot_read() {
    let cluster = Cluster::shared();
    let lines = [
        r#"{"key":"int","value":"{\"n\":1,\"level\":\"ERROR\"}"}"#,
        r#"{"key":"float","value":"{\"n\":1.0,\"level\":\"INFO\"}"}"#,
        r#"{"key":"exp","value":"{\"n\":1e2,\"level\":\"ERROR\"}"}"#,
        r#"{"key":"text","value":"{\"n\":\"1.0\",\"level\":\"INFO\"}"}"#,
        r#"{"key":"plain","value":"not json"}"#,
        r#"{"key":"tombstone","value":null}"#,
        r#"{"key":"binary","value_b64":"gP8A"}"#,
    ];
    let topic = cluster.create_and_fill("where-numbers", 1, &["--format", "json"], lines);
    let keys = |filter: &[&str]| -> Vec<String> {
        let mut args = vec!["consume", "-t", &topic, "-e", "-f", "{key}"];
        args.extend_from_slice(filter);
        let out = cluster.weir(&args);
        out.ok();
        out.stdout.lines().map(str::to_owned).collect()
    };
    assert_eq!(keys(&["--where", "/n=1"]), ["int", "float"]);
    assert_eq!(keys(&["--where", "n=100"]), ["exp"]);
    assert_eq!(keys(&["--where", "/n=1.0"]), ["int", "float", "text"]);
    assert_eq!(keys(&["--where", "/level=ERROR"]), ["int", "exp"]);
    assert_eq!(
        keys(&["--where", "/level=ERROR", "--invert"]),
        ["float", "text", "plain", "tombstone", "binary"]
    );
}

/// Topic patterns (`-t '^…'`): consume, count and pipe read every topic
/// the pattern matches and none else; a member following a pattern reads a
/// topic that begins matching while it runs (matched again every
/// `--pattern-refresh`); a pattern that matches nothing, or is not a
/// regular expression, is refused.
#[test]
fn a_pattern_reads_every_matching_topic_and_picks_up_new_ones() {
    let cluster = Cluster::shared();
    let prefix = random_topic("pattern");
    let topic = |suffix: &str| format!("{prefix}-{suffix}");
    let fill = |name: &str, partitions: u32, values: &[&str]| {
        cluster.create_topic(name, partitions);
        let input: String = values.iter().map(|v| format!("{v}\n")).collect();
        cluster.produce(&["-t", name], input.as_bytes()).ok();
    };
    fill(&topic("a"), 2, &["a1", "a2", "a3"]);
    fill(&topic("b"), 1, &["b1", "b2"]);
    // Not matched: another prefix.
    fill(&format!("{prefix}x-c"), 1, &["c1"]);
    let pattern = format!("^{prefix}-.*");

    let read = consume(&["-t", &pattern, "-e"]);
    let values: BTreeSet<&str> = read.ok().stdout.lines().collect();
    assert_eq!(
        values,
        BTreeSet::from(["a1", "a2", "a3", "b1", "b2"]),
        "{}",
        read.stderr
    );
    let counted = weir_run(&["count", "-t", &pattern, "--by", "value", "-e"]);
    assert!(
        counted.ok().stderr.contains("counted 5 records"),
        "{}",
        counted.stderr
    );
    let out = topic("out");
    cluster.create_topic(&out, 1);
    let piped = weir_run(&["pipe", "-t", &pattern, "--to", &out, "-e"]);
    assert!(
        piped.ok().stderr.contains("piped 5 of 5 records"),
        "{}",
        piped.stderr
    );

    // A member following the pattern (which now matches the output topic
    // too) reads a topic created while it runs.
    let group = random_topic("pattern-group");
    let (mut child, rx) = follow(&[
        "-t",
        &pattern,
        "-g",
        &group,
        "--pattern-refresh",
        "300ms",
        "-b",
        brokers(),
    ]);
    let first: BTreeSet<String> = receive(&rx, 10).into_iter().collect();
    assert_eq!(first.len(), 5, "{first:?}");
    fill(&topic("d"), 1, &["d1"]);
    assert_eq!(receive(&rx, 1), ["d1"]);
    // SAFETY: signalling our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    assert_eq!(wait_exit(&mut child, "weir consume").code(), Some(130));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(stderr.contains("consumed 11 records"), "{stderr}");

    let none = consume(&["-t", "^no-such-topic-.*", "-e"]);
    none.expect_code(1);
    assert!(none.stderr.contains("matches no topic"), "{}", none.stderr);
    let invalid = consume(&["-t", "^logs-(", "-e"]);
    invalid.expect_code(2);
    assert!(
        invalid.stderr.contains("not a valid regular expression"),
        "{}",
        invalid.stderr
    );
}

/// The template fields kcat users reach for: a null marker distinct from
/// an empty key or value (kcat -Z), lengths (-1 for null, kcat %K %S),
/// the timestamp type (CreateTime, then LogAppendTime once the topic is
/// altered) and a formatted date.
#[test]
fn template_null_marker_lengths_timestamp_type_and_date() {
    let cluster = Cluster::shared();
    let topic = random_topic("template-kcat");
    cluster.create_topic(&topic, 1);
    // 2023-11-14T22:13:20.042Z, for CreateTime.
    cluster
        .produce(
            &["-t", &topic, "--format", "json"],
            concat!(
                "{\"key\":null,\"value\":\"\",\"timestamp\":1700000000042}\n",
                "{\"key\":\"\",\"value\":null,\"timestamp\":1700000000042}\n",
                "{\"key\":\"k\",\"value\":\"abc\",\"timestamp\":1700000000042}\n",
            )
            .as_bytes(),
        )
        .ok();
    cluster
        .weir(&[
            "topics",
            "alter",
            &topic,
            "--config",
            "message.timestamp.type=LogAppendTime",
        ])
        .ok();
    cluster
        .produce(
            &["-t", &topic, "--format", "json"],
            b"{\"key\":\"k\",\"value\":\"d\",\"timestamp\":1700000000042}\n",
        )
        .ok();
    let run = consume(&[
        "-t",
        &topic,
        "-e",
        "-q",
        "--null",
        "NULL",
        "-f",
        "[{key}] {key_length} [{value}] {value_length} {timestamp_type} {date:%F %T.%L}",
    ]);
    run.ok();
    let lines: Vec<_> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert_eq!(
        lines[..3],
        [
            "[NULL] -1 [] 0 CreateTime 2023-11-14 22:13:20.042",
            "[] 0 [NULL] -1 CreateTime 2023-11-14 22:13:20.042",
            "[k] 1 [abc] 3 CreateTime 2023-11-14 22:13:20.042",
        ]
    );
    // The broker's time, so not 2023.
    assert!(
        lines[3].starts_with("[k] 1 [d] 1 LogAppendTime "),
        "{}",
        lines[3]
    );
    assert!(
        !lines[3].ends_with("2023-11-14 22:13:20.042"),
        "{}",
        lines[3]
    );
    // The default output marks a null value too.
    let values = consume(&["-t", &topic, "-e", "-q", "--null", "NULL"]);
    values.ok();
    assert_eq!(values.stdout, "\nNULL\nabc\nd\n");
    let bad = consume(&["-t", &topic, "-e", "-f", "{date:%Q}"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("%Q"), "{}", bad.stderr);
}
