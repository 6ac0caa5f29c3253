//! `weir produce` against a real broker: every record lands where murmur2
//! says, in input order per partition, with every codec; bad input is
//! refused with its line number while the rest lands.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use common::{brokers, produce, random_topic, wait_exit, weir, weir_run};
use rskafka::record::RecordAndOffset;

fn read_all(topic: &str, partitions: i32) -> BTreeMap<i32, Vec<RecordAndOffset>> {
    common::read_all(brokers(), topic, partitions)
}

#[test]
fn keyed_round_trip_with_every_codec() {
    for codec in ["none", "gzip", "lz4", "snappy", "zstd"] {
        let topic = random_topic(&format!("rt-{codec}"));
        weir_run(&["topics", "create", &topic, "--partitions", "6"]).ok();
        let n = 10_000;
        let mut input = String::new();
        for i in 0..n {
            input.push_str(&format!("key-{}\tvalue-{i}\n", i % 97));
        }
        let run = produce(
            &[
                "-t",
                &topic,
                "-K",
                "\\t",
                "-H",
                "source=weir",
                "--compression",
                codec,
            ],
            input.as_bytes(),
        );
        run.ok();
        assert!(
            run.stderr.contains(&format!("produced {n} records")),
            "{}",
            run.stderr
        );

        let all = read_all(&topic, 6);
        let total: usize = all.values().map(Vec::len).sum();
        assert_eq!(total, n, "{codec}: every record exactly once");
        for (partition, records) in &all {
            let mut last_seen: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
            for r in records {
                let key = r.record.key.clone().unwrap();
                assert_eq!(
                    weir::partitioner::murmur2_partition(&key, 6),
                    *partition,
                    "{codec}: key {:?} on the wrong partition",
                    String::from_utf8_lossy(&key)
                );
                assert_eq!(
                    r.record.headers,
                    [("source".to_owned(), Some(b"weir".to_vec()))]
                );
                let value = String::from_utf8(r.record.value.clone().unwrap()).unwrap();
                let i: usize = value.trim_start_matches("value-").parse().unwrap();
                assert_eq!(format!("key-{}", i % 97).into_bytes(), key);
                // Input order is kept per key (and so per partition).
                if let Some(prev) = last_seen.insert(key, i) {
                    assert!(prev < i, "{codec}: value-{i} after value-{prev}");
                }
            }
        }
    }
}

#[test]
fn report_lines_match_the_topic() {
    let topic = random_topic("report");
    weir_run(&["topics", "create", &topic, "--partitions", "3"]).ok();
    let input: String = (1..=50).map(|i| format!("k{i}:v{i}\n")).collect();
    let run = produce(&["-t", &topic, "-K", ":", "--report"], input.as_bytes());
    run.ok();
    let all = read_all(&topic, 3);
    let mut lines = 0;
    for line in run.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let n = v["line"].as_u64().unwrap();
        let p = v["partition"].as_i64().unwrap() as i32;
        let offset = v["offset"].as_i64().unwrap();
        let r = all[&p].iter().find(|r| r.offset == offset).unwrap();
        assert_eq!(r.record.value.as_deref(), Some(format!("v{n}").as_bytes()));
        lines += 1;
    }
    assert_eq!(lines, 50);
}

#[test]
fn oversized_record_fails_with_its_line_and_others_land() {
    let topic = random_topic("big");
    weir_run(&["topics", "create", &topic]).ok();
    let mut input = Vec::new();
    input.extend_from_slice(b"first\nsecond\n");
    input.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    input.extend_from_slice(b"\nfourth\n");

    let run = produce(&["-t", &topic], &input);
    run.expect_code(1);
    assert!(run.stderr.contains("-:3:"), "{}", run.stderr);
    let all = read_all(&topic, 1);
    let values: Vec<_> = all[&0]
        .iter()
        .map(|r| r.record.value.clone().unwrap())
        .collect();
    assert_eq!(values, [b"first".to_vec(), b"second".to_vec()]);

    let topic = random_topic("big-skip");
    weir_run(&["topics", "create", &topic]).ok();
    let run = produce(&["-t", &topic, "--on-error", "skip"], &input);
    run.ok();
    let all = read_all(&topic, 1);
    assert_eq!(all[&0].len(), 3, "first, second and fourth land");
}

#[test]
fn unknown_topic_is_refused_unless_created() {
    let topic = random_topic("nope");
    let run = produce(&["-t", &topic], b"a\n");
    run.expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("topic \"{topic}\" does not exist")),
        "{}",
        run.stderr
    );

    let run = produce(
        &["-t", &topic, "--create-topic", "--partitions", "4"],
        b"a\nb\n",
    );
    run.ok();
    let all = read_all(&topic, 4);
    assert_eq!(all.values().map(Vec::len).sum::<usize>(), 2);
}

#[test]
fn json_input_with_binary_values_and_explicit_partition() {
    let topic = random_topic("json");
    weir_run(&["topics", "create", &topic, "--partitions", "2"]).ok();
    // An hour ago: Kafka's retention (7 days by default) would delete an
    // older record from under the test.
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    let input = format!(
        "{}\n{}\n",
        format_args!(
            r#"{{"key":"a","value_b64":"AAEC/w==","partition":1,"headers":{{"h":"1"}},"timestamp":{ts}}}"#
        ),
        r#"{"key":"b","value":null,"partition":1}"#,
    );
    produce(&["-t", &topic, "--format", "json"], input.as_bytes()).ok();
    let all = read_all(&topic, 2);
    assert!(all[&0].is_empty());
    let r = &all[&1];
    assert_eq!(r[0].record.value.as_deref(), Some(&[0u8, 1, 2, 255][..]));
    assert_eq!(r[0].record.timestamp.timestamp_millis(), ts);
    assert_eq!(r[0].record.headers, [("h".to_owned(), Some(b"1".to_vec()))]);
    assert_eq!(r[1].record.value, None, "null value is a tombstone");
}

/// SIGINT while stdin stays open: stop reading, deliver what was read,
/// print the summary, exit 0.
#[test]
fn sigint_stops_gracefully_with_stdin_still_open() {
    use std::process::Stdio;
    use std::time::Instant;

    let topic = random_topic("sigint");
    weir_run(&["topics", "create", &topic]).ok();
    let mut child = weir()
        .args(["produce", "-t", &topic, "-b", brokers()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..100 {
        writeln!(stdin, "line {i}").unwrap();
    }
    stdin.flush().unwrap();
    let deadline = Instant::now() + common::STEP_TIMEOUT;
    while read_all(&topic, 1)[&0].len() < 100 {
        assert!(Instant::now() < deadline, "records never landed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let status = wait_exit(&mut child, "weir produce after SIGINT");
    let err = err.join().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains("produced 100 records") && err.contains("interrupted"),
        "{err}"
    );
}

#[test]
fn explicit_partition_overrides_the_partitioner_and_json() {
    let topic = random_topic("explicit");
    weir_run(&["topics", "create", &topic, "--partitions", "4"]).ok();
    let input: String = (0..40).map(|i| format!("key{i}:v{i}\n")).collect();
    produce(&["-t", &topic, "-K", ":", "-p", "2"], input.as_bytes()).ok();
    let json = r#"{"key":"a","value":"b","partition":1}"#;
    produce(
        &["-t", &topic, "--format", "json", "-p", "3"],
        json.as_bytes(),
    )
    .ok();
    let all = read_all(&topic, 4);
    let counts: Vec<usize> = (0..4).map(|p| all[&p].len()).collect();
    assert_eq!(counts, [0, 0, 40, 1]);
}
