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
                    weir::produce::partitioner::murmur2_partition(&key, 6),
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

/// Create times at the edges: each one a record cannot carry or the topic
/// refuses is bad input of its own line (the `--on-error` policy), never
/// a failed batch, and never silently replaced by the current time.
#[test]
fn out_of_range_timestamps_fail_their_own_line() {
    // No retention: Kafka deletes records this old from under a test.
    let topic = random_topic("timestamps");
    weir_run(&["topics", "create", &topic, "--config", "retention.ms=-1"]).ok();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let line = |value: &str, ts: i64| format!(r#"{{"value":"{value}","timestamp":{ts}}}"#);
    let input = [
        line("recent", now - 60_000),
        // Beyond any date: once silently the current time.
        line("max", i64::MAX),
        // Year 10000: a date, but past the topic's default
        // message.timestamp.after.max.ms (1 hour); once it failed every
        // record of its batch.
        line("year-10000", 253_402_300_800_000),
        // Kafka 4.4 stores times before 1970 (message.timestamp.before.max.ms
        // is unbounded by default) and -1, a record without a create time.
        line("before-1970", -60_000),
        line("no-time", -1),
        r#"{"value":"now"}"#.to_owned(),
    ]
    .join("\n");
    // A long linger puts every record in one batch.
    let run = produce(
        &[
            "-t",
            &topic,
            "--format",
            "json",
            "--linger",
            "300ms",
            "--report",
            "--on-error",
            "skip",
        ],
        input.as_bytes(),
    );
    run.ok();
    let errors: Vec<(u64, String)> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("error").is_some())
        .map(|v| {
            (
                v["line"].as_u64().unwrap(),
                v["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].0, 2);
    assert!(
        errors[0]
            .1
            .starts_with("-:2: timestamp 9223372036854775807")
            && errors[0].1.contains(&format!("topic \"{topic}\"")),
        "{errors:?}"
    );
    assert_eq!(errors[1].0, 3);
    assert!(
        errors[1].1.contains("+10000-01-01T00:00:00Z")
            && errors[1].1.contains("message.timestamp.after.max.ms"),
        "{errors:?}"
    );
    assert!(
        run.stderr.contains("2 bad input records skipped"),
        "{}",
        run.stderr
    );
    let landed: Vec<(String, i64)> = read_all(&topic, 1)[&0]
        .iter()
        .map(|r| {
            let value = String::from_utf8(r.record.value.clone().unwrap()).unwrap();
            (value, r.record.timestamp.timestamp_millis())
        })
        .collect();
    let names: Vec<&str> = landed.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(names, ["recent", "before-1970", "no-time", "now"]);
    assert_eq!(landed[0].1, now - 60_000);
    assert_eq!(landed[1].1, -60_000);
    assert_eq!(landed[2].1, -1);
    assert!(landed[3].1 >= now, "{landed:?}");

    // Under the default --on-error fail, the bad line stops the run with
    // its line number, after the lines before it were sent.
    let run = produce(&["-t", &topic, "--format", "json"], input.as_bytes());
    run.expect_code(1);
    assert!(
        run.stderr.contains("-:2: timestamp 9223372036854775807"),
        "{}",
        run.stderr
    );
    assert_eq!(read_all(&topic, 1)[&0].len(), 5);
}

/// The limits are the topic's own: a topic that keeps only a day's create
/// times refuses older ones, each on its line.
#[test]
fn a_topics_timestamp_limits_are_read_from_its_configs() {
    let topic = random_topic("timestamps-day");
    weir_run(&[
        "topics",
        "create",
        &topic,
        "--config",
        "message.timestamp.before.max.ms=86400000",
        "--config",
        "message.timestamp.after.max.ms=60000",
    ])
    .ok();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let input = [
        now - 3_600_000,
        now - 2 * 86_400_000,
        -60_000,
        now + 3_600_000,
        now,
    ]
    .map(|ts| format!(r#"{{"value":"{ts}","timestamp":{ts}}}"#))
    .join("\n");
    let run = produce(
        &[
            "-t",
            &topic,
            "--format",
            "json",
            "--linger",
            "300ms",
            "--on-error",
            "skip",
        ],
        input.as_bytes(),
    );
    run.ok();
    for (line, limit) in [
        (2, "message.timestamp.before.max.ms is 86400000"),
        (3, "message.timestamp.before.max.ms is 86400000"),
        (4, "message.timestamp.after.max.ms is 60000"),
    ] {
        let prefix = format!("-:{line}: timestamp");
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(&prefix) && l.contains(limit)),
            "line {line}: {}",
            run.stderr
        );
    }
    let landed: Vec<i64> = read_all(&topic, 1)[&0]
        .iter()
        .map(|r| r.record.timestamp.timestamp_millis())
        .collect();
    assert_eq!(landed, [now - 3_600_000, now]);
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
    // 128 + SIGINT: interrupted, after a clean stop.
    assert_eq!(status.code(), Some(130), "{err}");
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

/// A topic created and written at once: a broker takes up a new topic's
/// leadership a moment after the metadata names it, so the first batches
/// may be refused (NOT_LEADER_OR_FOLLOWER) while later ones would already
/// be taken. The idempotent producer must neither lose nor reorder them:
/// the first batch of a partition goes alone (a leader without the
/// producer's state takes any sequence as its start).
#[test]
fn a_fresh_topic_takes_every_batch_of_the_idempotent_producer_in_order() {
    let lines = 60_000;
    let input: String = (0..lines)
        .map(|i| format!("k{}:{}\n", i % 32, i / 32))
        .collect();
    for round in 0..3 {
        let topic = random_topic("fresh");
        let out = produce(
            &[
                "-t",
                &topic,
                "-K",
                ":",
                "--create-topic",
                "--partitions",
                "6",
            ],
            input.as_bytes(),
        );
        out.ok();
        let mut next: BTreeMap<String, u64> = BTreeMap::new();
        let mut stored = 0;
        for records in read_all(&topic, 6).values() {
            for r in records {
                let key = String::from_utf8(r.record.key.clone().unwrap()).unwrap();
                let value: u64 = String::from_utf8(r.record.value.clone().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                let expected = next.entry(key.clone()).or_default();
                assert_eq!(value, *expected, "round {round}: key {key}");
                *expected += 1;
                stored += 1;
            }
        }
        assert_eq!(stored, lines, "round {round}: records stored");
    }
}

/// Sends `values` to partition 0 through `producer` and returns each
/// record's outcome, as an offset or the error's text.
async fn send_all(
    producer: &mut weir::produce::producer::Producer,
    deliveries: &mut tokio::sync::mpsc::UnboundedReceiver<weir::produce::producer::Delivery>,
    values: &[String],
) -> Vec<Result<i64, String>> {
    for (tag, value) in values.iter().enumerate() {
        let record = weir::produce::ProduceRecord::new(value.clone()).with_partition(0);
        producer.send(tag as u64, record).await.unwrap();
    }
    let mut outcomes = vec![Err("no report".to_owned()); values.len()];
    for _ in values {
        let d = deliveries.recv().await.expect("a report for every record");
        outcomes[d.tag as usize] = d.result.map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&*e);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        });
    }
    outcomes
}

/// A producer whose sequence the leader does not expect (here a second
/// producer with the first one's id and epoch, starting again at sequence
/// 0) is refused with OUT_OF_ORDER_SEQUENCE_NUMBER. As the Java producer
/// since KIP-360, weir starts a new epoch from the refused batch and
/// writes everything once; the producer still on the old epoch is fenced.
#[test]
fn a_refused_sequence_starts_a_new_epoch_and_writes_everything_once() {
    use weir::produce::producer::{Producer, ProducerConfig};
    let topic = random_topic("epoch-bump");
    weir_run(&["topics", "create", &topic, "--partitions", "1"]).ok();
    let values = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i:0>100}")).collect()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (first, second, stale) = rt.block_on(async {
        let connection = weir::ConnectionConfig::new([brokers().to_owned()])
            .with_timeout(Duration::from_secs(20));
        let id = weir::kafka::idempotence::init_producer_id(&connection)
            .await
            .unwrap();
        let client = std::sync::Arc::new(connection.client().await.unwrap());
        // One record to a batch: the leader keeps the last five batches
        // of a producer to answer retries, and the second producer's
        // first batch (sequence 0) must not be taken for one of them.
        let config = ProducerConfig::default()
            .with_producer_id(id)
            .with_batch_bytes(150);
        let open = || Producer::new(std::sync::Arc::clone(&client), &topic, 1, config.clone());
        let (mut stale, mut stale_reports) = open().await.unwrap();
        let first = send_all(&mut stale, &mut stale_reports, &values("first", 10)).await;
        let (mut bumped, mut reports) = open().await.unwrap();
        let second = send_all(&mut bumped, &mut reports, &values("second", 10)).await;
        bumped.close().await;
        let late = send_all(&mut stale, &mut stale_reports, &values("late", 1)).await;
        stale.close().await;
        (first, second, late)
    });
    assert_eq!(first, (0..10).map(Ok).collect::<Vec<_>>());
    assert_eq!(second, (10..20).map(Ok).collect::<Vec<_>>());
    let [Err(fenced)] = stale.as_slice() else {
        panic!("the stale producer's record was written: {stale:?}")
    };
    assert!(fenced.contains("INVALID_PRODUCER_EPOCH"), "{fenced}");
    let stored: Vec<String> = read_all(&topic, 1)[&0]
        .iter()
        .map(|r| String::from_utf8(r.record.value.clone().unwrap()).unwrap())
        .collect();
    let mut expected = values("first", 10);
    expected.extend(values("second", 10));
    assert_eq!(stored, expected);
}

/// With compression, a batch holds records by the ratio the partition's
/// last batch compressed to, as the Java producer sizes `batch.size` in
/// compressed bytes. Records that compress well, then records that
/// compress far worse: the first batch of those, collected for the old
/// ratio, would be above what the broker accepts, and is cut before it
/// is sent. Every record lands once, in order.
#[test]
fn compressed_batches_are_sized_by_their_ratio_and_cut_when_it_worsens() {
    let topic = random_topic("ratio");
    weir_run(&["topics", "create", &topic, "--partitions", "1"]).ok();
    // 6 MB that lz4 takes to a few percent, then 12 MB of base64 of
    // random bytes (about three quarters), 300 bytes a line.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for i in 0..60_000 {
        let value = if i < 20_000 {
            format!("{i:06} {}", "compressible ".repeat(22))
        } else {
            let noise: String = (0..292)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % 64) as usize] as char
                })
                .collect();
            format!("{i:06} {noise}")
        };
        input.extend_from_slice(value.as_bytes());
        input.push(b'\n');
        expected.push(value);
    }
    // A long linger: batches are cut by size, not time.
    let run = produce(
        &["-t", &topic, "--compression", "lz4", "--linger", "2s", "-v"],
        &input,
    );
    run.ok();
    assert!(
        run.stderr.contains("produced 60000 records"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("batch too large once compressed; cut"),
        "no batch was cut: the test did not reach the case\n{}",
        run.stderr
    );
    let all = read_all(&topic, 1);
    let got: Vec<String> = all[&0]
        .iter()
        .map(|r| String::from_utf8(r.record.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "records lost, repeated or out of order");
}

/// A producer dropped without `close()` with records still queued sends
/// them in the background: every record still gets its delivery, and
/// every one is written.
#[test]
fn a_producer_dropped_without_close_still_delivers_every_record() {
    use weir::produce::producer::{ProduceRecord, Producer, ProducerConfig};
    let topic = random_topic("dropped");
    weir_run(&["topics", "create", &topic, "--partitions", "3"]).ok();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let delivered = rt.block_on(async {
        let connection = weir::ConnectionConfig::new([brokers().to_owned()])
            .with_timeout(Duration::from_secs(20));
        let client = std::sync::Arc::new(connection.client().await.unwrap());
        // A long linger: nothing has gone out when the producer is dropped.
        let config = ProducerConfig::default().with_linger(Duration::from_secs(2));
        let (mut producer, mut deliveries) =
            Producer::new(client, &topic, 3, config).await.unwrap();
        for tag in 0..1000_u64 {
            let record = ProduceRecord::new(format!("v{tag}")).with_key(format!("k{}", tag % 17));
            producer.send(tag, record).await.unwrap();
        }
        drop(producer);
        let mut delivered = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + common::STEP_TIMEOUT;
        while delivered.len() < 1000 {
            let d = tokio::time::timeout_at(deadline, deliveries.recv())
                .await
                .expect("a delivery for every record in time")
                .expect("a delivery for every record");
            assert!(d.result.is_ok(), "{:?}", d.result);
            delivered.insert(d.tag, d.partition);
        }
        delivered
    });
    assert_eq!(delivered.len(), 1000);
    let stored: usize = read_all(&topic, 3).values().map(Vec::len).sum();
    assert_eq!(stored, 1000);
}

/// A `FutureProducer` shared by four tasks, every clone dropped with
/// records still queued (a long linger: nothing has gone out): each
/// record's own future still resolves to its offset, and every record is
/// written once. The producer learnt the partition count itself.
#[test]
fn a_shared_future_producer_dropped_still_resolves_every_delivery() {
    use weir::produce::{FutureProducer, ProduceRecord, ProducerConfig};
    let topic = random_topic("future");
    weir_run(&["topics", "create", &topic, "--partitions", "3"]).ok();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let offsets = rt.block_on(async {
        let connection =
            weir::ConnectionConfig::new([brokers()]).with_timeout(Duration::from_secs(20));
        let client = std::sync::Arc::new(connection.client().await.unwrap());
        let config = ProducerConfig::default().with_linger(Duration::from_secs(2));
        let producer = FutureProducer::new(client, &topic, config).await.unwrap();
        let mut senders = tokio::task::JoinSet::new();
        for task in 0..4 {
            let producer = producer.clone();
            senders.spawn(async move {
                let mut deliveries = Vec::new();
                for i in 0..250 {
                    let record =
                        ProduceRecord::new(format!("v{task}-{i}")).with_key(format!("k{}", i % 17));
                    deliveries.push(producer.send(record).await.unwrap());
                }
                deliveries
            });
        }
        let mut deliveries = Vec::new();
        while let Some(sent) = senders.join_next().await {
            deliveries.extend(sent.unwrap());
        }
        drop(producer);
        let all = futures::future::join_all(deliveries);
        let delivered = tokio::time::timeout(common::STEP_TIMEOUT, all)
            .await
            .expect("every delivery in time");
        delivered
            .into_iter()
            .map(|d| (d.partition, d.offset().expect("written")))
            .collect::<std::collections::BTreeSet<_>>()
    });
    assert_eq!(offsets.len(), 1000, "each record at an offset of its own");
    let stored: usize = read_all(&topic, 3).values().map(Vec::len).sum();
    assert_eq!(stored, 1000);
}

/// A `FutureProducer` for a topic that does not exist fails at once with
/// the topic's name; a closed one refuses more records.
#[test]
fn a_future_producer_names_a_missing_topic_and_refuses_after_close() {
    use weir::produce::{FutureProducer, ProduceError, ProduceRecord, ProducerConfig};
    let topic = random_topic("future-closed");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let connection =
            weir::ConnectionConfig::new([brokers()]).with_timeout(Duration::from_secs(20));
        let client = std::sync::Arc::new(connection.client().await.unwrap());
        let missing = FutureProducer::new(client.clone(), &topic, ProducerConfig::default()).await;
        assert!(
            matches!(&missing, Err(ProduceError::UnknownTopic { topic: t }) if *t == topic),
            "{missing:?}"
        );
        weir_run(&["topics", "create", &topic, "--partitions", "1"]).ok();
        let producer = FutureProducer::new(client, &topic, ProducerConfig::default())
            .await
            .unwrap();
        let first = producer.send(ProduceRecord::new("one")).await.unwrap();
        producer.close().await;
        assert_eq!(first.await.offset().unwrap(), 0);
        let late = producer.send(ProduceRecord::new("two")).await;
        assert!(matches!(late, Err(ProduceError::Closed { .. })), "{late:?}");
    });
}
