//! Records larger than a default batch, on the real broker: a topic whose
//! `max.message.bytes` allows 10 MB takes a 5 MB record from `weir
//! produce` (alone in its batch, with the default `--batch-bytes` and
//! with a larger one) and from `weir pipe`, and gives it back byte for
//! byte; a record larger than the topic stores is refused in one line
//! that names the topic's `max.message.bytes` and how to raise it.

mod common;

use common::{Cluster, random_topic};

const LIMIT: &str = "10485760";

/// `count` bytes of printable text that does not repeat in any short
/// period (xorshift), so compression and framing cannot hide a cut.
fn text(count: usize, seed: u64) -> String {
    let mut x = seed | 1;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

fn create_large(cluster: &Cluster, topic: &str) {
    cluster
        .weir(&[
            "topics",
            "create",
            topic,
            "--partitions",
            "1",
            "--config",
            &format!("max.message.bytes={LIMIT}"),
        ])
        .ok();
}

/// The values of `topic`, read to its end.
fn values(cluster: &Cluster, topic: &str) -> Vec<String> {
    let run = cluster.weir(&["consume", "-t", topic, "-e", "-q", "-f", "{value}\\n"]);
    run.ok();
    run.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn a_record_up_to_the_topics_limit_is_produced_piped_and_read_back() {
    let cluster = Cluster::shared();
    let topic = random_topic("large");
    let piped = format!("{topic}-piped");
    create_large(&cluster, &topic);
    create_large(&cluster, &piped);

    let big = text(5 * 1024 * 1024, 7);
    let bigger = text(6 * 1024 * 1024, 11);
    // With the default batch size: alone in its batch, between two small
    // records.
    cluster
        .produce(
            &["-t", &topic],
            format!("small-1\n{big}\nsmall-2\n").as_bytes(),
        )
        .ok();
    // A batch size the topic allows, above 1 MiB.
    cluster
        .produce(
            &["-t", &topic, "--batch-bytes", "8388608"],
            format!("{bigger}\n").as_bytes(),
        )
        .ok();
    let want = vec!["small-1".to_owned(), big, "small-2".to_owned(), bigger];
    assert!(values(&cluster, &topic) == want, "read back differs");

    cluster
        .weir(&["pipe", "-t", &topic, "--to", &piped, "-e"])
        .ok();
    assert!(values(&cluster, &piped) == want, "piped differs");
}

#[test]
fn a_record_larger_than_the_topic_stores_is_refused_naming_its_limit() {
    let cluster = Cluster::shared();
    let topic = random_topic("too-large");
    // Kafka's default max.message.bytes: 1 MiB and 12 bytes.
    cluster.create_topic(&topic, 1);
    let big = text(2 * 1024 * 1024, 5);
    let run = cluster.produce(&["-t", &topic], format!("before\n{big}\n").as_bytes());
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    let line = run.stderr.lines().last().unwrap_or_default();
    assert!(
        line.contains("max.message.bytes is 1048588") && line.contains("--add-config"),
        "{}",
        run.stderr
    );
    // What was accepted before it is not lost.
    assert_eq!(values(&cluster, &topic), vec!["before".to_owned()]);
    // Just under the default limit: taken, alone in its batch.
    let under = text(1_048_000, 3);
    cluster
        .produce(&["-t", &topic], format!("{under}\n").as_bytes())
        .ok();
    assert_eq!(values(&cluster, &topic).len(), 2);
}

/// `weir produce` to `topic` with `config` (KEY=VALUE, repeatable).
fn create_with(cluster: &Cluster, topic: &str, configs: &[&str]) {
    let mut args = vec!["topics", "create", topic];
    for c in configs {
        args.extend(["--config", c]);
    }
    cluster.weir(&args).ok();
}

/// Keys of `topic` (`-` for none) and values, read to its end.
fn keyed(cluster: &Cluster, topic: &str) -> Vec<String> {
    let run = cluster.weir(&["consume", "-t", topic, "-e", "-q", "-f", "{key}={value}\\n"]);
    run.ok();
    run.stdout.lines().map(str::to_owned).collect()
}

/// What a topic refuses is refused before it is sent, record by record,
/// naming the record, instead of failing a whole batch at the broker: a
/// small `max.message.bytes` is honoured by batching below it, a record
/// without a key for a compacted topic and one outside the topic's
/// timestamp limits are named (by input line, or by input partition and
/// offset in `pipe`); `pipe --key-from key` keeps null keys.
#[test]
fn what_a_topic_refuses_is_refused_per_record_before_sending() {
    let cluster = Cluster::shared();
    let base = random_topic("refuses");

    // 20 records of 30 bytes into batches of at most 200 bytes.
    let small = format!("{base}-small");
    create_with(&cluster, &small, &["max.message.bytes=200"]);
    let lines: String = (0..20).map(|i| format!("{}\n", text(30, i + 1))).collect();
    cluster.produce(&["-t", &small], lines.as_bytes()).ok();
    assert_eq!(values(&cluster, &small).len(), 20);

    // A null key into a compacted topic: produce names the line.
    let compacted = format!("{base}-compacted");
    create_with(&cluster, &compacted, &["cleanup.policy=compact"]);
    let run = cluster.produce(
        &["-t", &compacted, "--format", "json"],
        br#"{"key":"k1","value":"one"}
{"value":"no key here"}
{"key":"k3","value":"three"}
"#,
    );
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("-:2:") && last.contains("without a key"),
        "{}",
        run.stderr
    );
    assert_eq!(keyed(&cluster, &compacted), vec!["k1=one".to_owned()]);

    // pipe: the input keeps its null keys with --key-from key ...
    let input = format!("{base}-input");
    cluster.create_topic(&input, 1);
    cluster
        .produce(
            &["-t", &input, "--format", "json"],
            br#"{"key":"a","value":"1"}
{"value":"null key"}
{"key":"b","value":"3"}
"#,
        )
        .ok();
    let copy = format!("{base}-copy");
    cluster.create_topic(&copy, 1);
    cluster
        .weir(&[
            "pipe",
            "-t",
            &input,
            "--to",
            &copy,
            "-e",
            "--key-from",
            "key",
        ])
        .ok();
    let want: Vec<String> = ["a=1", "=null key", "b=3"].map(String::from).to_vec();
    assert_eq!(keyed(&cluster, &copy), want);
    // ... and a compacted output refuses the null-key record by name.
    let into_compacted = format!("{base}-into-compacted");
    create_with(&cluster, &into_compacted, &["cleanup.policy=compact"]);
    let run = cluster.weir(&["pipe", "-t", &input, "--to", &into_compacted, "-e"]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(input.as_str())
            && last.contains("offset 1")
            && last.contains("without a key"),
        "{}",
        run.stderr
    );

    // A record older than the output topic accepts: named with its limit.
    let recent = format!("{base}-recent");
    create_with(
        &cluster,
        &recent,
        &["message.timestamp.before.max.ms=3600000"],
    );
    let old = format!("{base}-old");
    cluster.create_topic(&old, 1);
    cluster
        .produce(
            &["-t", &old, "--format", "json"],
            b"{\"key\":\"k\",\"value\":\"v\",\"timestamp\":1690000000000}\n",
        )
        .ok();
    let run = cluster.weir(&["pipe", "-t", &old, "--to", &recent, "-e"]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("offset 0") && last.contains("1h"),
        "{}",
        run.stderr
    );
}
