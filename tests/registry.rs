//! Schema Registry records against the registry the project runs
//! (Apicurio Registry, `scripts/registry.sh`, its Confluent API) and a real
//! broker, with confluent-kafka's AvroSerializer and AvroDeserializer
//! (`tests/py/registry.py`, from the venv of `scripts/pyenv.sh`) as the
//! other side: weir decodes what confluent-kafka wrote to exactly the
//! values written (weir's plain JSON mapping), and confluent-kafka reads
//! back unchanged what weir wrote with `--value-schema`. Failures (a
//! registry that is down, an unknown schema id, a line that does not fit
//! the schema) are one line within `--timeout`, and a failed line is not
//! produced.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::registry::registry;
use common::{brokers, python, random_topic, weir_run};
use serde_json::Value;

/// Records confluent-kafka writes and weir reads.
const RECORDS: usize = 2000;

/// Runs `tests/py/registry.py ARGS` and returns its stdout lines as JSON.
fn peer(args: &[&str]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/registry.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).args(args);
    let run = common::run_with_deadline(&mut cmd, common::STEP_TIMEOUT);
    run.ok();
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn create(topic: &str) {
    weir_run(&["topics", "create", topic, "--partitions", "1"]).ok();
}

/// `weir consume --json` of the whole topic with the registry: the records.
fn consume_json(topic: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "consume",
        "-t",
        topic,
        "-e",
        "--registry",
        registry(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let run = weir_run(&args);
    run.ok();
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn confluent_avro_is_read_as_the_values_written_and_filtered_by_its_fields() {
    let topic = random_topic("reg-read");
    create(&topic);
    let n = RECORDS.to_string();
    let expected = peer(&["produce", brokers(), registry(), &topic, &n]);
    assert_eq!(expected.len(), RECORDS);

    let records = consume_json(&topic, &[]);
    assert_eq!(records.len(), RECORDS);
    for (i, (record, want)) in records.iter().zip(&expected).enumerate() {
        assert_eq!(record["value"], *want, "record {i}");
        // The key is not framed: as stored.
        assert_eq!(record["key"], Value::String(i.to_string()), "record {i}");
    }

    // {value} prints the decoded value as JSON text.
    let run = weir_run(&[
        "consume",
        "-t",
        &topic,
        "-e",
        "-c",
        "1",
        "--registry",
        registry(),
        "-f",
        "{value}",
    ]);
    run.ok();
    let first: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(first, expected[0]);

    // --where sees the decoded fields, nested ones too.
    let gold = consume_json(&topic, &["--where", "/customer/tier=GOLD"]);
    let want_gold = expected
        .iter()
        .filter(|v| v["customer"]["tier"] == "GOLD")
        .count();
    assert_eq!(gold.len(), want_gold);
    assert!(
        gold.iter()
            .all(|r| r["value"]["customer"]["tier"] == "GOLD")
    );

    // count --by json:/path groups by a decoded field, exactly.
    let run = weir_run(&[
        "count",
        "-t",
        &topic,
        "-e",
        "--registry",
        registry(),
        "--by",
        "json:/customer/tier",
        "--json",
    ]);
    run.ok();
    let mut counted = std::collections::BTreeMap::new();
    for line in run.stdout.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        counted.insert(row["key"].to_string(), row["count"].as_u64().unwrap());
    }
    for tier in ["GOLD", "SILVER", "BRONZE"] {
        let want = expected
            .iter()
            .filter(|v| v["customer"]["tier"] == tier)
            .count() as u64;
        assert_eq!(
            counted.get(&format!("\"{tier}\"")),
            Some(&want),
            "{tier}: {counted:?}"
        );
    }

    // agg sums a decoded field per decoded key, exactly.
    let run = weir_run(&[
        "agg",
        "-t",
        &topic,
        "-e",
        "--registry",
        registry(),
        "--by",
        "json:/customer/tier",
        "--agg",
        "count",
        "--agg",
        "sum:json:/id",
        "--json",
    ]);
    run.ok();
    let mut sums = std::collections::BTreeMap::new();
    for line in run.stdout.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let tier = row["key"].as_str().unwrap().to_owned();
        sums.insert(tier, row["sum(json:/id)"].as_i64().unwrap());
    }
    for tier in ["GOLD", "SILVER", "BRONZE"] {
        let want: i64 = expected
            .iter()
            .filter(|v| v["customer"]["tier"] == tier)
            .map(|v| v["id"].as_i64().unwrap())
            .sum();
        assert_eq!(sums.get(tier), Some(&want), "{tier}: {sums:?}");
    }

    // --value-format raw leaves the bytes as stored.
    let raw = consume_json(&topic, &["-c", "1", "--value-format", "raw"]);
    assert!(raw[0].get("value_b64").is_some(), "{}", raw[0]);
}

#[test]
fn weir_avro_is_read_by_confluent_unchanged() {
    // The subject the schema is under: registered by confluent-kafka.
    let source = random_topic("reg-subject");
    create(&source);
    peer(&["produce", brokers(), registry(), &source, "1"]);

    let topic = random_topic("reg-write");
    create(&topic);
    let expected = peer(&["expected", &RECORDS.to_string()]);
    let input: String = expected.iter().map(|v| format!("{v}\n")).collect();
    let subject = format!("{source}-value");
    let run = common::produce(
        &[
            "-t",
            &topic,
            "--registry",
            registry(),
            "--value-schema",
            &subject,
        ],
        input.as_bytes(),
    );
    run.ok();
    let read = peer(&[
        "consume",
        brokers(),
        registry(),
        &topic,
        &RECORDS.to_string(),
    ]);
    assert_eq!(read.len(), RECORDS);
    for (i, (got, want)) in read.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "record {i}");
    }

    // A schema file, registered under the topic's subject.
    let dir = tempfile::tempdir().unwrap();
    let avsc = dir.path().join("order.avsc");
    let schema = peer(&["schema"]).remove(0);
    std::fs::write(&avsc, schema.to_string()).unwrap();
    let filed = random_topic("reg-file");
    create(&filed);
    let first: String = expected[..10].iter().map(|v| format!("{v}\n")).collect();
    common::produce(
        &[
            "-t",
            &filed,
            "--registry",
            registry(),
            "--value-schema",
            avsc.to_str().unwrap(),
            "--register",
        ],
        first.as_bytes(),
    )
    .ok();
    let read = peer(&["consume", brokers(), registry(), &filed, "10"]);
    assert_eq!(read, expected[..10]);

    // weir consume --json | weir produce --format json copies decoded
    // records with their schema; the registry from a profile's key.
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[profiles.reg]\nregistry = \"{}\"\n", registry()),
    )
    .unwrap();
    let profile = [
        "--config-file",
        config.to_str().unwrap(),
        "--profile",
        "reg",
    ];
    let mut args = vec!["consume", "-t", filed.as_str(), "-e", "--json"];
    args.extend(profile);
    let run = weir_run(&args);
    run.ok();
    let copy = random_topic("reg-copy");
    create(&copy);
    let subject = format!("{filed}-value");
    let mut args = vec![
        "-t",
        copy.as_str(),
        "--format",
        "json",
        "--value-schema",
        subject.as_str(),
    ];
    args.extend(profile);
    common::produce(&args, run.stdout.as_bytes()).ok();
    let read = peer(&["consume", brokers(), registry(), &copy, "10"]);
    assert_eq!(read, expected[..10]);
}

#[test]
fn a_line_that_does_not_fit_the_schema_is_bad_input_naming_the_field() {
    let source = random_topic("reg-fit-subject");
    create(&source);
    peer(&["produce", brokers(), registry(), &source, "1"]);
    let expected = peer(&["expected", "3"]);
    let mut bad = expected[1].clone();
    bad["customer"]["tier"] = Value::String("PLATINUM".into());
    let input = format!("{}\n{bad}\n{}\n", expected[0], expected[2]);
    let topic = random_topic("reg-fit");
    create(&topic);
    let subject = format!("{source}-value");
    let args = [
        "-t",
        topic.as_str(),
        "--registry",
        registry(),
        "--value-schema",
        subject.as_str(),
    ];
    let run = common::produce(&args, input.as_bytes());
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("-:2: the value does not fit schema id")
            && run.stderr.contains(
                "field /customer/tier: expected one of GOLD, SILVER, BRONZE, found \"PLATINUM\""
            ),
        "{}",
        run.stderr
    );
    // Reading stopped at the bad line: only the first record was produced.
    let records = consume_json(&topic, &[]);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["value"], expected[0]);

    // --on-error skip leaves it out and goes on.
    let mut skip = args.to_vec();
    skip.extend(["--on-error", "skip"]);
    common::produce(&skip, input.as_bytes()).ok();
    let values: Vec<Value> = consume_json(&topic, &[])
        .into_iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(
        values,
        [
            expected[0].clone(),
            expected[0].clone(),
            expected[2].clone()
        ]
    );
}

#[test]
fn an_unknown_schema_id_is_the_records_bad_input() {
    let topic = random_topic("reg-unknown");
    create(&topic);
    // Framed with id 2147483256, which the registry does not have, between
    // two values that are not framed.
    let input = concat!(
        "{\"value\":\"plain\"}\n",
        "{\"value_b64\":\"AH///nh7AgM=\"}\n",
        "{\"value\":\"after\"}\n",
    );
    common::produce(&["-t", &topic, "--format", "json"], input.as_bytes()).ok();
    let run = weir_run(&[
        "consume",
        "-t",
        &topic,
        "-e",
        "--registry",
        registry(),
        "--json",
    ]);
    run.ok();
    let values: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["value"].clone())
        .collect();
    assert_eq!(values, ["plain", "after"]);
    let warning: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("cannot decode"))
        .collect();
    assert_eq!(warning.len(), 1, "{}", run.stderr);
    for part in [
        topic.as_str(),
        "partition 0",
        "offset 1",
        "schema id 2147483256",
        "404",
        "AH///nh7AgM=",
    ] {
        assert!(warning[0].contains(part), "{part}: {}", warning[0]);
    }

    let run = weir_run(&[
        "consume",
        "-t",
        &topic,
        "-e",
        "--registry",
        registry(),
        "--on-error",
        "fail",
    ]);
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("schema id 2147483256"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_registry_that_is_down_fails_in_one_line_within_the_timeout() {
    let topic = random_topic("reg-down");
    create(&topic);
    let down = format!("http://127.0.0.1:{}", common::free_port());
    // Framed values: consume must ask the registry.
    common::produce(
        &["-t", &topic, "--format", "json"],
        b"{\"value_b64\":\"AAAAAAECAw==\"}\n",
    )
    .ok();
    let run = weir_run(&[
        "consume",
        "-t",
        &topic,
        "-e",
        "--registry",
        &down,
        "--on-error",
        "fail",
        "--timeout",
        "5s",
    ]);
    assert_ne!(run.code, Some(0));
    assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
    assert!(
        run.stderr.contains(&down) && run.stderr.contains("cannot connect"),
        "{}",
        run.stderr
    );

    // Nothing is produced when the schema cannot be had.
    let empty = random_topic("reg-down-out");
    create(&empty);
    let run = common::produce(
        &[
            "-t",
            &empty,
            "--registry",
            &down,
            "--value-schema",
            "orders-value",
            "--timeout",
            "5s",
        ],
        b"{\"id\":1}\n",
    );
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains(&down) && run.stderr.contains("subject \"orders-value\""),
        "{}",
        run.stderr
    );
    assert_eq!(common::topic_end(brokers(), &empty), 0);

    // A subject the registry does not have: its answer in one line.
    let run = common::produce(
        &[
            "-t",
            &empty,
            "--registry",
            registry(),
            "--value-schema",
            "no-such-subject",
            "--timeout",
            "5s",
        ],
        b"{\"id\":1}\n",
    );
    assert_ne!(run.code, Some(0));
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("no-such-subject"))
        .unwrap_or_default();
    assert!(
        line.contains("HTTP 404") && line.contains(registry()),
        "{}",
        run.stderr
    );
    assert_eq!(common::topic_end(brokers(), &empty), 0);
}

#[test]
fn an_https_registry_is_trusted_through_its_ca_file_only() {
    let (url, ca) = common::registry::registry_tls();
    let ca = ca.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let avsc = dir.path().join("point.avsc");
    std::fs::write(
        &avsc,
        r#"{"type":"record","name":"Point","fields":[{"name":"x","type":"int"},{"name":"label","type":["null","string"]}]}"#,
    )
    .unwrap();
    let topic = random_topic("reg-tls");
    create(&topic);
    let schema = ["--value-schema", avsc.to_str().unwrap(), "--register"];

    // Without the CA file the Mozilla roots are asked, which do not sign
    // it: one line naming the registry, nothing produced.
    let mut args = vec![
        "-t",
        topic.as_str(),
        "--registry",
        url.as_str(),
        "--timeout",
        "10s",
    ];
    args.extend(schema);
    let run = common::produce(&args, b"{\"x\":1,\"label\":\"a\"}\n");
    assert_ne!(run.code, Some(0));
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains(url.as_str()))
        .unwrap_or_default();
    assert!(line.contains("TLS handshake failed"), "{}", run.stderr);
    assert_eq!(common::topic_end(brokers(), &topic), 0);

    args.extend(["--registry-ca", ca]);
    common::produce(
        &args,
        b"{\"x\":1,\"label\":\"a\"}\n{\"x\":-2,\"label\":null}\n",
    )
    .ok();
    let run = weir_run(&[
        "consume",
        "-t",
        &topic,
        "-e",
        "--registry",
        url,
        "--registry-ca",
        ca,
        "-f",
        "{value}",
    ]);
    run.ok();
    // A record's fields in the schema's order.
    assert_eq!(
        run.stdout,
        "{\"x\":1,\"label\":\"a\"}\n{\"x\":-2,\"label\":null}\n"
    );
}

#[test]
fn keys_are_written_and_read_with_their_own_schema() {
    let dir = tempfile::tempdir().unwrap();
    let key_schema = dir.path().join("key.avsc");
    std::fs::write(&key_schema, r#""long""#).unwrap();
    let value_schema = dir.path().join("value.avsc");
    std::fs::write(
        &value_schema,
        r#"{"type":"record","name":"Reading","fields":[{"name":"celsius","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":1}}]}"#,
    )
    .unwrap();
    let topic = random_topic("reg-keys");
    create(&topic);
    common::produce(
        &[
            "-t",
            &topic,
            "--registry",
            registry(),
            "-K",
            "|",
            "--key-schema",
            key_schema.to_str().unwrap(),
            "--value-schema",
            value_schema.to_str().unwrap(),
            "--register",
        ],
        b"42|{\"celsius\":\"-3.5\"}\n-7|{\"celsius\":\"21\"}\n",
    )
    .ok();
    let records = consume_json(&topic, &[]);
    let pairs: Vec<(Value, Value)> = records
        .iter()
        .map(|r| (r["key"].clone(), r["value"].clone()))
        .collect();
    assert_eq!(
        pairs,
        [
            (
                serde_json::json!(42),
                serde_json::json!({"celsius": "-3.5"})
            ),
            (
                serde_json::json!(-7),
                serde_json::json!({"celsius": "21.0"})
            ),
        ]
    );
    // --key-format raw: the key's bytes as stored (the wire format).
    let raw = consume_json(&topic, &["--key-format", "raw", "-c", "1"]);
    // (Here valid UTF-8: a zero byte, the id, 42 as Avro's zigzag 0x54.)
    let stored = raw[0]["key"].as_str().unwrap_or_default();
    assert!(
        stored.starts_with('\0') && stored.ends_with('T'),
        "{}",
        raw[0]
    );
    assert_eq!(raw[0]["value"], serde_json::json!({"celsius": "-3.5"}));
}
