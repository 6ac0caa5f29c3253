//! `weir topics` against a real broker: every verb, the error cases, the
//! connection deadline, and an admin session that outlives a broker restart.

mod common;

use std::time::Duration;

use common::{Kafka, random_topic, timeout, weir_run};
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;
use serde_json::Value;

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn listed(topic: &str) -> bool {
    let run = weir_run(&["topics", "list", "--output", "json"]);
    run.ok();
    json(&run.stdout)["topics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["topic"] == topic)
}

#[test]
fn create_list_describe_delete() {
    let topic = random_topic("topics");
    weir_run(&["topics", "create", &topic, "--partitions", "3"]).ok();
    assert!(listed(&topic), "{topic} not listed after create");

    let text = weir_run(&["topics", "list"]);
    text.ok();
    let line = text
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(topic.as_str()))
        .unwrap_or_else(|| panic!("{topic} missing from text list:\n{}", text.stdout));
    assert_eq!(line.split_whitespace().nth(1), Some("3"), "{line}");

    let run = weir_run(&["topics", "describe", &topic, "--output", "json"]);
    run.ok();
    let d = json(&run.stdout);
    assert_eq!(d["topic"], topic.as_str());
    let partitions = d["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3);
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], i as i64);
        assert!(p["leader"].as_i64().unwrap() >= 0, "{p}");
        assert_eq!(p["earliest"], 0, "{p}");
        assert_eq!(p["latest"], 0, "{p}");
    }

    weir_run(&["topics", "delete", &topic]).ok();
    assert!(!listed(&topic), "{topic} still listed after delete");
    let gone = weir_run(&["topics", "describe", &topic]);
    gone.expect_code(1);
    assert!(
        gone.stderr
            .contains(&format!("topic \"{topic}\" does not exist")),
        "{}",
        gone.stderr
    );
}

#[test]
fn create_with_compaction_config_shows_in_describe() {
    let topic = random_topic("compact");
    weir_run(&[
        "topics",
        "create",
        &topic,
        "--partitions",
        "2",
        "--config",
        "cleanup.policy=compact",
    ])
    .ok();

    let text = weir_run(&["topics", "describe", &topic]);
    text.ok();
    assert!(
        text.stdout
            .lines()
            .any(|l| l.starts_with("Configs:") && l.contains("cleanup.policy=compact")),
        "{}",
        text.stdout
    );

    let run = weir_run(&["topics", "describe", &topic, "--output", "json"]);
    run.ok();
    let d = json(&run.stdout);
    let policy = d["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cleanup.policy")
        .unwrap_or_else(|| panic!("no cleanup.policy in {d}"));
    assert_eq!(policy["value"], "compact");
}

/// Watermarks in `describe` are the broker's: produce a few records with
/// rskafka through weir's connection and read them back.
#[tokio::test]
async fn describe_reports_watermarks() {
    let topic = random_topic("marks");
    weir_run(&["topics", "create", &topic, "--partitions", "2"]).ok();

    let config = weir::ConnectionConfig::new([common::brokers().to_owned()])
        .with_timeout(Duration::from_secs(10));
    let client = timeout("connect", config.client()).await.unwrap();
    let partition = timeout(
        "partition client",
        client.partition_client(topic.clone(), 1, UnknownTopicHandling::Retry),
    )
    .await
    .unwrap();
    let records: Vec<Record> = (0..5)
        .map(|i| Record {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(b"v".to_vec()),
            headers: Default::default(),
            // Recent: Kafka's retention would delete an old record.
            timestamp: rskafka::chrono::DateTime::from_timestamp_millis(now_ms()).unwrap(),
        })
        .collect();
    timeout(
        "produce",
        partition.produce(records, Compression::NoCompression),
    )
    .await
    .unwrap();

    let run = tokio::task::spawn_blocking(move || {
        weir_run(&["topics", "describe", &topic, "--output", "json"])
    })
    .await
    .unwrap();
    run.ok();
    let d = json(&run.stdout);
    assert_eq!(d["partitions"][0]["latest"], 0, "{d}");
    assert_eq!(d["partitions"][1]["earliest"], 0, "{d}");
    assert_eq!(d["partitions"][1]["latest"], 5, "{d}");
}

#[test]
fn create_existing_topic_fails_naming_it() {
    let topic = random_topic("dup");
    weir_run(&["topics", "create", &topic]).ok();
    let run = weir_run(&["topics", "create", &topic]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("topic \"{topic}\" already exists")),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
}

#[test]
fn delete_or_describe_missing_topic_fails() {
    let topic = random_topic("missing");
    for verb in ["delete", "describe"] {
        let run = weir_run(&["topics", verb, &topic]);
        run.expect_code(1);
        assert!(
            run.stderr
                .contains(&format!("topic \"{topic}\" does not exist")),
            "{verb}: {}",
            run.stderr
        );
    }
}

#[test]
fn zero_partitions_is_usage_error() {
    let topic = random_topic("zero");
    let run = weir_run(&["topics", "create", &topic, "--partitions", "0"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("--partitions 0") && run.stderr.contains(&topic),
        "{}",
        run.stderr
    );
    assert!(!listed(&topic));
}

#[test]
fn replication_factor_above_broker_count_fails() {
    let topic = random_topic("rf");
    let run = weir_run(&["topics", "create", &topic, "--replication-factor", "1000"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&topic) && run.stderr.contains("replication factor 1000"),
        "{}",
        run.stderr
    );
    assert!(!listed(&topic));
}

#[test]
fn malformed_config_is_usage_error() {
    let topic = random_topic("badcfg");
    let run = weir_run(&["topics", "create", &topic, "--config", "cleanup.policy"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("--config \"cleanup.policy\"") && run.stderr.contains(&topic),
        "{}",
        run.stderr
    );
    assert!(!listed(&topic));
}

#[test]
fn unreachable_broker_fails_within_timeout() {
    let mut cmd = common::weir();
    cmd.args(["topics", "list", "-b", "127.0.0.1:1", "--timeout", "3s"]);
    let run = common::run(&mut cmd);
    run.expect_code(1);
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
    assert!(
        run.elapsed >= Duration::from_secs(2),
        "gave up early: {:?}",
        run.elapsed
    );
    assert!(run.stderr.contains("127.0.0.1:1"), "{}", run.stderr);
}

#[test]
fn unreachable_broker_through_rskafka_client_fails_within_timeout() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = weir::ConnectionConfig::new(["127.0.0.1:1"]).with_timeout(Duration::from_secs(2));
    let start = std::time::Instant::now();
    let err = rt
        .block_on(timeout("client", config.client()))
        .expect_err("connected to a closed port");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The broker an admin session talks to restarts: the next request
/// reconnects (Kafka refuses connections while it is down) and is answered,
/// rather than failing on the closed connection.
#[test]
fn admin_requests_survive_a_broker_restart() {
    let mut kafka = Kafka::start(1);
    let config =
        weir::ConnectionConfig::new([kafka.address()]).with_timeout(Duration::from_secs(90));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut admin = rt
        .block_on(timeout("connect", weir::Admin::connect(&config)))
        .unwrap();
    rt.block_on(timeout("list", admin.list_topics())).unwrap();
    kafka.kill(0);
    // The request is under way while the broker is down; the node is
    // restarted from this thread, which it must not outlive.
    let asking = std::thread::spawn(move || rt.block_on(admin.list_topics()));
    std::thread::sleep(Duration::from_millis(500));
    kafka.restart(0);
    let listed = asking.join().unwrap();
    assert!(listed.is_ok(), "{listed:?}");
}

/// Kafka's internal topics are never deleted: the request is refused
/// before it is sent, and a Java group's offsets are still there
/// (`kafka-consumer-groups`). weir's own offsets topic and its groups'
/// internal topics are deleted only with `--force`.
#[test]
fn internal_topics_are_guarded() {
    let topic = random_topic("guarded");
    let group = format!("{topic}-java");
    common::produce(&["-t", &topic, "--create-topic"], b"one\n").ok();
    // A Java group commits, so __consumer_offsets holds something to lose.
    let java = common::kafka_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            common::brokers(),
            "--topic",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            "1",
        ],
    );
    assert_eq!(java.code, Some(0), "{}", java.stderr);

    for internal in ["__consumer_offsets", "__transaction_state"] {
        let run = weir_run(&["topics", "delete", internal]);
        run.expect_code(1);
        assert!(
            run.stderr.contains("internal to Kafka") && run.stderr.lines().count() == 1,
            "{}",
            run.stderr
        );
    }
    let described = common::kafka_tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &[
            "--bootstrap-server",
            common::brokers(),
            "--describe",
            "--group",
            &group,
        ],
    );
    let (header, rows) = common::group_table(&described.stdout);
    let offset = header.iter().position(|&h| h == "CURRENT-OFFSET").unwrap();
    assert_eq!(
        rows.iter().map(|r| r[offset]).collect::<Vec<_>>(),
        vec!["1"],
        "{}",
        described.stdout
    );

    // weir's own: refused without --force (a usage error), then deleted.
    let partials = format!("__weir_offsets-{topic}-partials");
    weir_run(&["topics", "create", &partials]).ok();
    let run = weir_run(&["topics", "delete", &partials]);
    run.expect_code(2);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert!(listed(&partials));
    weir_run(&["topics", "delete", &partials, "--force"]).ok();
    assert!(!listed(&partials));
    let run = weir_run(&["topics", "delete", "__weir_offsets"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("committed offsets") && run.stderr.contains("--force"),
        "{}",
        run.stderr
    );
}

/// `weir topics describe --output json`: (partition count, the configs
/// set on the topic itself).
fn described(topic: &str) -> (usize, Vec<(String, String)>) {
    let run = weir_run(&["topics", "describe", topic, "--output", "json"]);
    run.ok();
    let d = json(&run.stdout);
    let overrides = d["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == "topic")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["value"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (d["partitions"].as_array().unwrap().len(), overrides)
}

/// `weir topics alter`: configs set and deleted one key at a time (the
/// others stay), partitions added, as Kafka's own tools see them; what
/// Kafka refuses is refused naming the topic, and nothing to do is a usage
/// error.
#[test]
fn alter_sets_and_deletes_configs_and_adds_partitions() {
    let topic = random_topic("alter");
    weir_run(&[
        "topics",
        "create",
        &topic,
        "--partitions",
        "2",
        "--config",
        "cleanup.policy=compact",
    ])
    .ok();
    weir_run(&[
        "topics",
        "alter",
        &topic,
        "--config",
        "retention.ms=3600000",
        "--partitions",
        "4",
    ])
    .ok();
    let (partitions, overrides) = described(&topic);
    assert_eq!(partitions, 4);
    assert_eq!(
        overrides,
        vec![
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("retention.ms".to_owned(), "3600000".to_owned()),
        ]
    );
    let java = common::kafka_tool(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            common::brokers(),
            "--describe",
            "--topic",
            &topic,
        ],
    );
    assert!(
        java.stdout.contains("PartitionCount: 4") && java.stdout.contains("retention.ms=3600000"),
        "{}",
        java.stdout
    );

    weir_run(&["topics", "alter", &topic, "--delete-config", "retention.ms"]).ok();
    assert_eq!(
        described(&topic).1,
        vec![("cleanup.policy".to_owned(), "compact".to_owned())]
    );

    // Kafka cannot take partitions away, and knows its config keys.
    let fewer = weir_run(&["topics", "alter", &topic, "--partitions", "3"]);
    fewer.expect_code(1);
    assert!(fewer.stderr.contains(&topic), "{}", fewer.stderr);
    let unknown = weir_run(&["topics", "alter", &topic, "--config", "no.such.key=1"]);
    unknown.expect_code(1);
    assert!(unknown.stderr.contains("no.such.key"), "{}", unknown.stderr);
    let missing = weir_run(&[
        "topics",
        "alter",
        &format!("{topic}-none"),
        "--partitions",
        "3",
    ]);
    missing.expect_code(1);
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );
    weir_run(&["topics", "alter", &topic]).expect_code(2);
}
