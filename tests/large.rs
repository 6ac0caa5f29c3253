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
