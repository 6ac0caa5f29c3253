//! weir against other Kafka clients.
//!
//! Kafka's own Java client, through the console tools of the installed
//! Kafka (`common::kafka_tool`): the Java producer (its built-in murmur2)
//! puts every key on the partition weir puts it on; the Java console
//! consumer reads back every record weir wrote, with every codec, and weir
//! reads back exactly what the console producer wrote, with every codec;
//! `kafka-topics`, `kafka-configs` and `kafka-consumer-groups` describe what
//! weir created. `kafka-consumer-groups` does not see weir's groups: they
//! live in weir's offsets topic only, and the test says so.
//!
//! confluent-kafka (librdkafka), run from the virtualenv of
//! `scripts/pyenv.sh` through `tests/py/interop.py`: its `murmur2_random`
//! and `consistent` partitioners place keys as weir's `murmur2` and `crc32`
//! do, librdkafka reads back every record weir wrote with every codec
//! (headers from repeated `-H` flags and a null one in order), and weir
//! reads librdkafka's binary records (binary headers, a repeated key, a
//! null value) with every codec from every kind of `--from`, and copies
//! them exactly with `weir consume --json | weir produce --format json`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{brokers, python, random_topic, weir_run};
use serde_json::Value;
use weir::produce::partitioner::{crc32_partition, murmur2_partition};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

// Kafka's Java client: the console tools of the installed Kafka.

const CONSOLE_PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const TOPIC_COMMAND: &str = "org.apache.kafka.tools.TopicCommand";
const CONFIG_COMMAND: &str = "org.apache.kafka.tools.ConfigCommand";
const GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
const LOG_DIRS_COMMAND: &str = "org.apache.kafka.tools.LogDirsCommand";

/// What the console tools read and print for a null key, value or header
/// value (`null.marker`, `null.literal`); no test data contains it.
const NULL: &str = "<null>";

/// Runs a Kafka tool against the shared broker and requires exit 0.
fn java(class: &str, args: &[&str]) -> common::Run {
    let mut all = vec!["--bootstrap-server", brokers()];
    all.extend_from_slice(args);
    let run = common::kafka_tool(class, &all);
    run.ok();
    run
}

/// The console producer (Java's `KafkaProducer`) writing the lines of
/// `input` to `topic`.
fn java_produce(topic: &str, args: &[&str], input: &str) {
    let mut all = vec!["--bootstrap-server", brokers(), "--topic", topic];
    all.extend_from_slice(args);
    common::kafka_tool_with_input(CONSOLE_PRODUCER, &all, input.as_bytes()).ok();
}

/// The console consumer's formatter settings that print every field of a
/// record, as [`Printed::parse`] reads them.
const PRINT_ALL: [&str; 12] = [
    "--formatter-property",
    "print.timestamp=true",
    "--formatter-property",
    "print.partition=true",
    "--formatter-property",
    "print.offset=true",
    "--formatter-property",
    "print.headers=true",
    "--formatter-property",
    "print.key=true",
    "--formatter-property",
    "null.literal=<null>",
];

/// A record as the console consumer prints it with [`PRINT_ALL`].
#[derive(Debug)]
struct Printed {
    timestamp: i64,
    partition: i32,
    offset: i64,
    headers: BTreeMap<String, String>,
    key: Option<String>,
    value: Option<String>,
}

impl Printed {
    /// `CreateTime:T <tab> Partition:P <tab> Offset:O <tab> h1:v1,h2:v2
    /// <tab> key <tab> value`; the test data has no tab, no comma or colon
    /// in a header and never the null literal as text.
    fn parse(line: &str) -> Self {
        let f: Vec<&str> = line.splitn(6, '\t').collect();
        assert_eq!(f.len(), 6, "not a console consumer line: {line:?}");
        let number = |i: usize, label: &str| -> i64 {
            f[i].strip_prefix(label)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("field {i} is not {label}N: {line:?}"))
        };
        let text = |s: &str| (s != NULL).then(|| s.to_owned());
        let headers = match f[3] {
            "NO_HEADERS" => BTreeMap::new(),
            list => list
                .split(',')
                .map(|h| {
                    let (k, v) = h.split_once(':').unwrap_or_else(|| panic!("header {h:?}"));
                    (k.to_owned(), v.to_owned())
                })
                .collect(),
        };
        Self {
            timestamp: number(0, "CreateTime:"),
            partition: number(1, "Partition:") as i32,
            offset: number(2, "Offset:"),
            headers,
            key: text(f[4]),
            value: text(f[5]),
        }
    }
}

#[test]
fn key_placement_matches_the_java_producer() {
    let topic = random_topic("interop-java-keys");
    weir_run(&["topics", "create", &topic, "--partitions", "12"]).ok();
    // Lengths 5 to 8 (every tail murmur2 handles), multi-byte UTF-8 keys
    // (both sides hash the UTF-8 bytes) and the empty key, which is hashed
    // like any other, not placed as a null key.
    let keys: Vec<String> = (0..2000)
        .map(|i| match i % 7 {
            3 => format!("clé-{i}-日本"),
            _ => format!("key-{i}"),
        })
        .chain([String::new()])
        .collect();
    let lines = |who: &str| -> String {
        keys.iter()
            .enumerate()
            .map(|(i, key)| format!("{key}|{who}-{i}\n"))
            .collect()
    };
    java_produce(
        &topic,
        &[
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator=|",
        ],
        &lines("java"),
    );
    produce(&["-t", &topic, "-K", "|"], lines("weir").as_bytes());

    // Key index to the partition each client's record is on, as the log has it.
    let mut placed: BTreeMap<usize, [Option<i32>; 2]> = BTreeMap::new();
    for (partition, records) in common::read_all(brokers(), &topic, 12) {
        for r in records {
            let value = String::from_utf8(r.record.value.unwrap()).unwrap();
            let (who, i) = value.split_once('-').unwrap();
            let i: usize = i.parse().unwrap();
            assert_eq!(r.record.key.as_deref(), Some(keys[i].as_bytes()), "{value}");
            let slot = &mut placed.entry(i).or_default()[usize::from(who == "weir")];
            assert!(slot.replace(partition).is_none(), "{value} twice");
        }
    }
    assert_eq!(placed.len(), keys.len(), "every key written");
    let mut used = BTreeSet::new();
    for (i, both) in placed {
        let key = &keys[i];
        let [Some(java), Some(ours)] = both else {
            panic!("key {key:?}: java, weir partitions {both:?}");
        };
        assert_eq!(ours, java, "key {key:?}: weir vs the Java producer");
        assert_eq!(murmur2_partition(key.as_bytes(), 12), java, "{key:?}");
        used.insert(java);
    }
    assert_eq!(used.len(), 12, "the keys cover every partition");
}

#[test]
fn weir_records_read_back_by_the_java_console_consumer_with_every_codec() {
    let prefix = random_topic("interop-java-codec");
    let n = 1000;
    // Timestamps set by weir, a few minutes back: within the topics'
    // retention (older records would be deleted by the broker's retention
    // check while the test runs).
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let base = since_epoch.as_millis() as i64 - 600_000;
    // (codec, seq) to what the console consumer must print for it.
    let mut expected: BTreeMap<(String, usize), Printed> = BTreeMap::new();
    for codec in CODECS {
        let topic = format!("{prefix}-{codec}");
        weir_run(&["topics", "create", &topic, "--partitions", "6"]).ok();
        let mut input = String::new();
        let mut records = Vec::new();
        for i in 0..n {
            let key = match i % 20 {
                0 => None,
                10 => Some(String::new()),
                _ => Some(format!("k{}", i % 50)),
            };
            // Repetitive, so that a compressed topic is a fraction of the size.
            let value = match i % 33 {
                0 => None,
                1 => Some(String::new()),
                _ => Some(format!(
                    "{codec} #{i}: déjà vu, {}",
                    "lorem ipsum ".repeat(8)
                )),
            };
            let mut headers = BTreeMap::from([
                ("codec".to_owned(), codec.to_owned()),
                ("seq".to_owned(), i.to_string()),
            ]);
            if i % 3 == 0 {
                headers.insert("empty".to_owned(), String::new());
            }
            let timestamp = base + i as i64;
            let line = serde_json::json!({
                "key": key, "value": value, "headers": headers, "timestamp": timestamp,
            });
            input.push_str(&format!("{line}\n"));
            records.push(Printed {
                timestamp,
                partition: -1,
                offset: -1,
                headers,
                key,
                value,
            });
        }
        let run = produce(
            &[
                "-t",
                &topic,
                "--format",
                "json",
                "--compression",
                codec,
                "--report",
            ],
            input.as_bytes(),
        );
        // The console consumer must find each record where weir says it put it.
        for line in run.stdout.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert!(v.get("error").is_none(), "weir failed a record: {line}");
            let record = &mut records[v["line"].as_u64().unwrap() as usize - 1];
            record.partition = v["partition"].as_i64().unwrap() as i32;
            record.offset = v["offset"].as_i64().unwrap();
        }
        for (i, record) in records.into_iter().enumerate() {
            assert!(
                record.offset >= 0,
                "{codec}: weir reported no offset for record {i}"
            );
            expected.insert((codec.to_owned(), i), record);
        }
    }

    let total = (CODECS.len() * n).to_string();
    let include = format!("{prefix}-.*");
    let mut args = vec![
        "--include",
        &include,
        "--from-beginning",
        "--max-messages",
        &total,
        "--timeout-ms",
        "30000",
    ];
    args.extend_from_slice(&PRINT_ALL);
    let run = java(CONSOLE_CONSUMER, &args);
    let mut seen = BTreeSet::new();
    for line in run.stdout.lines() {
        let got = Printed::parse(line);
        let id = (
            got.headers["codec"].clone(),
            got.headers["seq"].parse().unwrap(),
        );
        let want = expected
            .get(&id)
            .unwrap_or_else(|| panic!("a record weir did not write: {line:?}"));
        assert!(seen.insert(id.clone()), "{id:?} twice");
        assert_eq!(
            (got.partition, got.offset),
            (want.partition, want.offset),
            "{id:?}: where it is"
        );
        assert_eq!(got.key, want.key, "{id:?}: key");
        assert_eq!(got.value, want.value, "{id:?}: value");
        assert_eq!(got.headers, want.headers, "{id:?}: headers");
        assert_eq!(got.timestamp, want.timestamp, "{id:?}: timestamp");
    }
    let mut read: BTreeMap<&str, usize> = BTreeMap::new();
    for (codec, _) in &seen {
        *read.entry(codec).or_default() += 1;
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "the console consumer read {read:?} of {n} records per codec in {:?}:\n{}",
        run.elapsed,
        run.stderr
    );

    // The codecs were applied: the broker keeps the producer's batches as
    // they are, so a compressed topic is much smaller on disk.
    let topics: Vec<String> = CODECS.iter().map(|c| format!("{prefix}-{c}")).collect();
    let run = java(
        LOG_DIRS_COMMAND,
        &["--describe", "--topic-list", &topics.join(",")],
    );
    let json = run
        .stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from kafka-log-dirs:\n{}", run.stdout));
    let dirs: Value = serde_json::from_str(json).unwrap();
    let mut size: BTreeMap<&str, u64> = BTreeMap::new();
    for broker in dirs["brokers"].as_array().unwrap() {
        for dir in broker["logDirs"].as_array().unwrap() {
            for p in dir["partitions"].as_array().unwrap() {
                let name = p["partition"].as_str().unwrap();
                let (topic, _) = name.rsplit_once('-').unwrap();
                let codec = topic.strip_prefix(&format!("{prefix}-")).unwrap();
                let codec = CODECS.iter().find(|&&c| c == codec).unwrap();
                *size.entry(codec).or_default() += p["size"].as_u64().unwrap();
            }
        }
    }
    let plain = size["none"];
    assert!(plain > 100_000, "uncompressed topic: {plain} bytes");
    for codec in &CODECS[1..] {
        assert!(
            size[codec] * 2 < plain,
            "{codec} topic: {} bytes, uncompressed {plain}",
            size[codec]
        );
    }
}

#[test]
fn java_producer_records_read_back_by_weir_exactly_with_every_codec() {
    let topic = random_topic("interop-java-consume");
    weir_run(&["topics", "create", &topic, "--partitions", "6"]).ok();
    let n = 400;
    // (codec, seq) to the record as weir must describe it, bar partition
    // and offset.
    let mut expected: BTreeMap<(String, usize), Described> = BTreeMap::new();
    let mut inputs = Vec::new();
    for codec in CODECS {
        let mut input = String::new();
        for i in 0..n {
            let key = match i % 10 {
                0 => None,
                5 => Some(String::new()),
                _ => Some(format!("user-{}", i % 37)),
            };
            let value = match i % 25 {
                0 => None,
                1 => Some(String::new()),
                _ => Some(format!("java {codec} #{i}: naïve café")),
            };
            let mut headers = vec![("codec", codec.to_owned()), ("seq", i.to_string())];
            if i % 7 == 0 {
                headers.push(("empty", String::new()));
            }
            // A null header value, as the Java client may send: weir reads
            // it as null.
            if i % 11 == 0 {
                headers.push(("nothing", NULL.to_owned()));
            }
            let text = |s: &Option<String>| s.clone().unwrap_or_else(|| NULL.to_owned());
            let list: Vec<String> = headers.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            input.push_str(&format!(
                "{}\t{}\t{}\n",
                list.join(","),
                text(&key),
                text(&value)
            ));
            let headers = headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), (v != NULL).then(|| B64.encode(v))))
                .collect();
            let b64 = |s: Option<String>| s.map(|s| B64.encode(s));
            expected.insert(
                (codec.to_owned(), i),
                (-1, -1, b64(key), b64(value), headers),
            );
        }
        inputs.push((codec, input));
    }
    // Five JVMs at once: the test waits for the slowest instead of the sum.
    std::thread::scope(|s| {
        for (codec, input) in &inputs {
            let topic = &topic;
            s.spawn(move || {
                java_produce(
                    topic,
                    &[
                        "--compression-codec",
                        codec,
                        "--reader-property",
                        "parse.key=true",
                        "--reader-property",
                        "parse.headers=true",
                        "--reader-property",
                        &format!("null.marker={NULL}"),
                    ],
                    input,
                )
            });
        }
    });

    let got = weir_consume(&topic, &[]);
    let mut seen = BTreeSet::new();
    // Per partition: the next offset, and each codec's last seq.
    let mut next: BTreeMap<i64, i64> = BTreeMap::new();
    let mut last: BTreeMap<(i64, String), usize> = BTreeMap::new();
    for d in &got {
        let header = |name: &str| {
            let v =
                d.4.iter()
                    .find_map(|(k, v)| (k == name).then_some(v.as_ref()).flatten())
                    .unwrap_or_else(|| panic!("no {name} header: {d:?}"));
            String::from_utf8(B64.decode(v).unwrap()).unwrap()
        };
        let id = (header("codec"), header("seq").parse::<usize>().unwrap());
        let want = expected
            .get(&id)
            .unwrap_or_else(|| panic!("a record the Java producer did not write: {d:?}"));
        assert!(seen.insert(id.clone()), "{id:?} twice");
        assert_eq!((&d.2, &d.3, &d.4), (&want.2, &want.3, &want.4), "{id:?}");
        if let Some(key) = &d.2 {
            let key = B64.decode(key).unwrap();
            assert_eq!(d.0 as i32, murmur2_partition(&key, 6), "{id:?}: partition");
        }
        // Offsets run from 0 without a gap, each producer's records in the
        // order it wrote them.
        let offset = next.entry(d.0).or_insert(0);
        assert_eq!(d.1, *offset, "{id:?}: offset in partition {}", d.0);
        *offset += 1;
        if let Some(prev) = last.insert((d.0, id.0.clone()), id.1) {
            assert!(prev < id.1, "{id:?} after seq {prev}");
        }
    }
    assert_eq!(seen.len(), expected.len(), "weir read every record");

    // And rskafka, reading the log on its own, sees the same records.
    let reference: Vec<(Described, i64)> = common::read_all(brokers(), &topic, 6)
        .into_iter()
        .flat_map(|(p, records)| {
            records.into_iter().map(move |r| {
                let b64 = |b: Option<Vec<u8>>| b.map(|b| B64.encode(b));
                let headers = r
                    .record
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, v.map(|v| B64.encode(v))))
                    .collect();
                let d = (
                    i64::from(p),
                    r.offset,
                    b64(r.record.key),
                    b64(r.record.value),
                    headers,
                );
                (d, 0)
            })
        })
        .collect();
    assert_read("earliest", &got, &reference, |_, _| true);
}

#[test]
fn kafka_admin_tools_see_what_weir_created() {
    let topic = random_topic("interop-java-admin");
    weir_run(&[
        "topics",
        "create",
        &topic,
        "--partitions",
        "6",
        "--config",
        "cleanup.policy=compact",
        "--config",
        "retention.ms=123456789",
    ])
    .ok();
    // Keyed: a compacted topic refuses records without a key.
    let n = 300;
    let input: String = (0..n).map(|i| format!("k{}\tv{i}\n", i % 40)).collect();
    produce(&["-t", &topic, "-K", "\\t"], input.as_bytes());
    // weir's group reads everything and commits (to __weir_offsets, which
    // this creates if it is not there yet); so does a Java group.
    let weir_group = random_topic("weir-group");
    let java_group = random_topic("java-group");
    let read = weir_run(&["consume", "-t", &topic, "-g", &weir_group, "-e"]);
    assert_eq!(read.ok().stdout.lines().count(), n, "weir's group read");
    let read = java(
        CONSOLE_CONSUMER,
        &[
            "--topic",
            &topic,
            "--group",
            &java_group,
            "--from-beginning",
            "--max-messages",
            &n.to_string(),
            "--timeout-ms",
            "30000",
        ],
    );
    assert_eq!(read.stdout.lines().count(), n, "the Java group read");
    // Then records neither group has read, so both lag.
    let extra = 30;
    let input: String = (0..extra).map(|i| format!("x{i}\tlate\n")).collect();
    produce(&["-t", &topic, "-K", "\\t"], input.as_bytes());

    // kafka-topics: the partitions, and the configs weir set.
    let offsets_topic = "__weir_offsets";
    let run = java(
        TOPIC_COMMAND,
        &[
            "--describe",
            "--topic",
            &format!("^({topic}|{offsets_topic})$"),
        ],
    );
    let described = described_topics(&run.stdout);
    let ours = &described[&topic];
    assert_eq!(
        ours.partition_count, 6,
        "kafka-topics: PartitionCount\n{}",
        run.stdout
    );
    assert_eq!(
        ours.led,
        (0..6).collect::<BTreeSet<i32>>(),
        "kafka-topics: partitions with a leader\n{}",
        run.stdout
    );
    assert_eq!(
        ours.config("cleanup.policy"),
        Some("compact"),
        "{}",
        run.stdout
    );
    assert_eq!(
        ours.config("retention.ms"),
        Some("123456789"),
        "{}",
        run.stdout
    );
    let offsets = described
        .get(offsets_topic)
        .unwrap_or_else(|| panic!("kafka-topics: no {offsets_topic}\n{}", run.stdout));
    assert_eq!(
        offsets.config("cleanup.policy"),
        Some("compact"),
        "{}",
        run.stdout
    );

    // kafka-configs: the same, as the topics' dynamic configs.
    let run = java(CONFIG_COMMAND, &["--describe", "--entity-type", "topics"]);
    let dynamic = dynamic_configs(&run.stdout);
    let configs = &dynamic[&topic];
    assert_eq!(
        configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert_eq!(
        configs.get("retention.ms").map(String::as_str),
        Some("123456789")
    );
    assert_eq!(
        dynamic[offsets_topic]
            .get("cleanup.policy")
            .map(String::as_str),
        Some("compact"),
        "kafka-configs: {offsets_topic}"
    );

    // kafka-consumer-groups lists the Java group and not weir's: weir keeps
    // its groups in its own offsets topic, not in the broker's group
    // coordinator. (When weir mirrors its commits to the coordinator, this
    // is where to check them.)
    let run = java(GROUP_COMMAND, &["--list"]);
    let listed: BTreeSet<&str> = run.stdout.lines().map(str::trim).collect();
    assert!(
        listed.contains(java_group.as_str()),
        "--list:\n{}",
        run.stdout
    );
    assert!(
        !listed.contains(weir_group.as_str()),
        "kafka-consumer-groups now lists weir's group {weir_group}: check its offsets here\n{}",
        run.stdout
    );
    // And weir's offsets commands see weir's group and, from the broker's
    // group offsets, the Java one.
    let groups = weir_run(&["offsets", "groups"]);
    assert!(
        groups.ok().stdout.contains(&weir_group),
        "{}",
        groups.stdout
    );
    assert!(groups.stdout.contains(&java_group), "{}", groups.stdout);

    // Where the two views overlap they agree: both groups read all n
    // records, so the Java group's offsets, log-end offsets and lag per
    // partition (kafka-consumer-groups) are weir's group's committed
    // offsets, high watermarks and lag (weir offsets show).
    let run = java(GROUP_COMMAND, &["--describe", "--group", &java_group]);
    let kafka = group_offsets(&run.stdout, &java_group, &topic);
    let show = weir_run(&[
        "offsets",
        "show",
        "-g",
        &weir_group,
        "-t",
        &topic,
        "--output",
        "json",
    ]);
    let show: Value = serde_json::from_str(&show.ok().stdout).unwrap();
    let ours: BTreeMap<i32, [i64; 3]> = show["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = |f: &str| p[f].as_i64().unwrap_or_else(|| panic!("{f}: {p}"));
            (
                n("partition") as i32,
                [n("committed"), n("high_watermark"), n("lag")],
            )
        })
        .collect();
    assert_eq!(
        ours, kafka,
        "[committed, high watermark, lag] per partition: weir offsets show vs kafka-consumer-groups\n{}",
        run.stdout
    );
    let sum = |i: usize| kafka.values().map(|v| v[i]).sum::<i64>();
    assert_eq!(
        (sum(0), sum(1), sum(2)),
        (n as i64, (n + extra) as i64, extra as i64)
    );
    assert!(
        kafka.values().filter(|v| v[2] > 0).count() >= 2,
        "lag on several partitions: {kafka:?}"
    );
}

/// A topic as `kafka-topics --describe` shows it.
#[derive(Debug, Default)]
struct TopicDescription {
    partition_count: i32,
    configs: BTreeMap<String, String>,
    /// The partitions listed with a leader.
    led: BTreeSet<i32>,
}

impl TopicDescription {
    fn config(&self, name: &str) -> Option<&str> {
        self.configs.get(name).map(String::as_str)
    }
}

/// `kafka-topics --describe` output, by topic.
fn described_topics(out: &str) -> BTreeMap<String, TopicDescription> {
    let mut topics: BTreeMap<String, TopicDescription> = BTreeMap::new();
    for line in out.lines() {
        let fields: BTreeMap<&str, &str> = line
            .split('\t')
            .filter_map(|f| f.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let Some(topic) = fields.get("Topic") else {
            continue;
        };
        let entry = topics.entry(topic.to_string()).or_default();
        if let Some(p) = fields.get("Partition") {
            if fields
                .get("Leader")
                .is_some_and(|l| l.parse::<i32>().is_ok_and(|l| l >= 0))
            {
                entry.led.insert(p.parse().unwrap());
            }
        } else {
            entry.partition_count = fields["PartitionCount"].parse().unwrap();
            entry.configs = fields["Configs"]
                .split(',')
                .filter_map(|c| c.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        }
    }
    topics
}

/// `kafka-configs --describe --entity-type topics`: topic to its dynamic
/// configs.
fn dynamic_configs(out: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut topics: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Dynamic configs for topic ") {
            let topic = rest.strip_suffix(" are:").unwrap().to_owned();
            topics.entry(topic.clone()).or_default();
            current = Some(topic);
        } else if let (Some(topic), Some(config)) = (&current, line.strip_prefix("  ")) {
            // "name=value sensitive=false synonyms={...}"
            let (name, rest) = config.split_once('=').unwrap();
            let value = rest.split_once(" sensitive=").unwrap().0;
            topics
                .get_mut(topic)
                .unwrap()
                .insert(name.to_owned(), value.to_owned());
        }
    }
    topics
}

/// `kafka-consumer-groups --describe`: partition to [CURRENT-OFFSET,
/// LOG-END-OFFSET, LAG] of `group` on `topic`; -1 for none (`-`).
fn group_offsets(out: &str, group: &str, topic: &str) -> BTreeMap<i32, [i64; 3]> {
    let (header, rows) = common::group_table(out);
    let column = |name: &str| header.iter().position(|&h| h == name).unwrap();
    let (g, t, p) = (column("GROUP"), column("TOPIC"), column("PARTITION"));
    let numbers = [
        column("CURRENT-OFFSET"),
        column("LOG-END-OFFSET"),
        column("LAG"),
    ];
    rows.into_iter()
        .filter(|row| row[g] == group && row[t] == topic)
        .map(|row| {
            let n = |i: usize| match row[i] {
                "-" => -1,
                text => text.parse().unwrap_or_else(|_| panic!("{row:?}")),
            };
            (row[p].parse().unwrap(), numbers.map(n))
        })
        .collect()
}

// confluent-kafka (librdkafka), from the Python virtualenv.

/// Runs `tests/py/interop.py ARGS` with the shared broker and returns its
/// stdout lines parsed as JSON.
fn interop(args: &[&str], limit: Duration) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/interop.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg(args[0]).arg(brokers()).args(&args[1..]);
    let run = common::run_with_deadline(&mut cmd, limit);
    run.ok();
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs `weir produce` and requires success.
fn produce(args: &[&str], input: &[u8]) -> common::Run {
    let run = common::produce(args, input);
    run.ok();
    run
}

/// Where librdkafka's `partitioner` and weir's `--partitioner` put keys
/// `key-0` .. `key-{n-1}`, produced by both to one fresh topic: key index
/// to (librdkafka's partition, weir's partition).
fn placements(
    partitions: i32,
    n: usize,
    librdkafka: &str,
    partitioner: &str,
) -> BTreeMap<usize, (i32, i32)> {
    let topic = random_topic(&format!("interop-{librdkafka}"));
    let count = partitions.to_string();
    weir_run(&["topics", "create", &topic, "--partitions", &count]).ok();

    let mut theirs = BTreeMap::new();
    let n_arg = n.to_string();
    for v in interop(
        &["produce", &topic, &n_arg, librdkafka],
        common::STEP_TIMEOUT,
    ) {
        let key = v["key"].as_str().unwrap();
        let i: usize = key.strip_prefix("key-").unwrap().parse().unwrap();
        theirs.insert(i, v["partition"].as_i64().unwrap() as i32);
    }
    assert_eq!(theirs.len(), n, "librdkafka reported every key once");

    let input: String = (0..n).map(|i| format!("key-{i}\tv-{i}\n")).collect();
    let run = produce(
        &[
            "-t",
            &topic,
            "-K",
            "\\t",
            "--partitioner",
            partitioner,
            "--report",
        ],
        input.as_bytes(),
    );
    let mut both = BTreeMap::new();
    for line in run.stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v.get("error").is_none(), "weir failed a record: {line}");
        let i = v["line"].as_u64().unwrap() as usize - 1;
        let ours = v["partition"].as_i64().unwrap() as i32;
        let theirs = theirs[&i];
        assert!(both.insert(i, (theirs, ours)).is_none(), "line {i} twice");
    }
    assert_eq!(both.len(), n, "weir reported every line once");
    both
}

#[test]
fn placement_matches_librdkafka_murmur2_random() {
    for (i, (theirs, ours)) in placements(12, 2000, "murmur2_random", "murmur2") {
        let key = format!("key-{i}");
        assert_eq!(
            ours, theirs,
            "{key}: weir murmur2 vs librdkafka murmur2_random"
        );
        assert_eq!(ours, murmur2_partition(key.as_bytes(), 12), "{key}");
    }
    // Both partitioners are checked, and they disagree on most keys, so the
    // comparison above cannot pass by both clients ignoring the setting.
    let mut differ = 0;
    for (i, (theirs, ours)) in placements(12, 500, "consistent", "crc32") {
        let key = format!("key-{i}");
        assert_eq!(ours, theirs, "{key}: weir crc32 vs librdkafka consistent");
        assert_eq!(ours, crc32_partition(key.as_bytes(), 12), "{key}");
        differ += usize::from(ours != murmur2_partition(key.as_bytes(), 12));
    }
    assert!(
        differ > 250,
        "crc32 and murmur2 agree on {differ} of 500 keys"
    );
}

#[test]
fn weir_records_read_back_by_confluent_kafka_with_every_codec() {
    let n = 10_000;
    let input: String = (0..n)
        .map(|i| format!("k{}\tvalue-{i}\n", i % 50))
        .collect();
    for codec in CODECS {
        let topic = random_topic(&format!("interop-{codec}"));
        weir_run(&["topics", "create", &topic, "--partitions", "6"]).ok();
        let run = produce(
            &[
                "-t",
                &topic,
                "-K",
                "\\t",
                // Every -H in order: a repeated key and a null value
                // (KEY alone) reach librdkafka as given.
                "-H",
                "source=weir",
                "-H",
                "nothing",
                "-H",
                "source=again",
                "--compression",
                codec,
            ],
            input.as_bytes(),
        );
        assert!(
            run.stderr.contains(&format!("produced {n} records")),
            "{}",
            run.stderr
        );

        // Longer than the script's own 60 s limit, so its message is seen.
        let mut records = interop(
            &["consume", &topic, "6", &n.to_string()],
            common::STEP_TIMEOUT * 2,
        );
        assert_eq!(records.len(), n, "{codec}: record count");
        records.sort_by_key(|r| (r["partition"].as_i64(), r["offset"].as_i64()));

        let mut seen = BTreeSet::new();
        let mut offsets = BTreeSet::new();
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        for r in &records {
            let decode = |field: &str| {
                let text = r[field].as_str().unwrap_or_else(|| panic!("{field}: {r}"));
                String::from_utf8(B64.decode(text).unwrap()).unwrap()
            };
            let partition = r["partition"].as_i64().unwrap() as i32;
            assert!(offsets.insert((partition, r["offset"].as_i64().unwrap())));
            let key = decode("key_b64");
            let value = decode("value_b64");
            let i: usize = value
                .strip_prefix("value-")
                .and_then(|i| i.parse().ok())
                .unwrap_or_else(|| panic!("{codec}: bad value {value:?}"));
            assert!(i < n && seen.insert(i), "{codec}: value-{i} twice");
            assert_eq!(key, format!("k{}", i % 50), "{codec}: key of value-{i}");
            assert_eq!(
                r["headers"],
                serde_json::json!([
                    ["source", B64.encode("weir")],
                    ["nothing", null],
                    ["source", B64.encode("again")],
                ]),
                "{codec}: headers of value-{i}"
            );
            assert_eq!(
                partition,
                murmur2_partition(key.as_bytes(), 6),
                "{codec}: partition of {key}"
            );
            // Offsets within a partition follow input order, key by key.
            if let Some(prev) = last.insert(key, i) {
                assert!(prev < i, "{codec}: value-{i} before value-{prev}");
            }
        }
        assert_eq!(seen.len(), n, "{codec}: every value exactly once");
    }
}

/// Headers in the record's order: name and base64 value, `None` for null.
type Headers = Vec<(String, Option<String>)>;

/// A record as both sides describe it: partition, offset, base64 key,
/// value and headers.
type Described = (i64, i64, Option<String>, Option<String>, Headers);

/// weir's `--json` line in the shape the script prints: text fields are
/// base64-encoded, `*_b64` fields are taken as they are.
fn described_by_weir(v: &Value) -> Described {
    let field = |name: &str| -> Option<String> {
        match (&v[name], &v[format!("{name}_b64")]) {
            (Value::String(text), _) => Some(B64.encode(text)),
            (_, Value::String(b64)) => Some(b64.clone()),
            _ => None,
        }
    };
    let headers = v["headers"]
        .as_array()
        .unwrap_or_else(|| panic!("headers are not a list: {v}"))
        .iter()
        .map(|h| {
            let name = h["key"].as_str().unwrap().to_owned();
            let value = match (&h["value"], &h["value_b64"]) {
                (Value::String(text), Value::Null) => Some(B64.encode(text)),
                (Value::Null, Value::String(b64)) => Some(b64.clone()),
                (Value::Null, Value::Null) => None,
                _ => panic!("not a header: {h}"),
            };
            (name, value)
        })
        .collect();
    (
        v["partition"].as_i64().unwrap(),
        v["offset"].as_i64().unwrap(),
        field("key"),
        field("value"),
        headers,
    )
}

fn described_by_script(v: &Value) -> Described {
    let text = |f: &str| v[f].as_str().map(str::to_owned);
    (
        v["partition"].as_i64().unwrap(),
        v["offset"].as_i64().unwrap(),
        text("key_b64"),
        text("value_b64"),
        v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let name = h[0].as_str().unwrap().to_owned();
                (name, h[1].as_str().map(str::to_owned))
            })
            .collect(),
    )
}

/// `weir consume --json -e ARGS` on `topic`, in output order.
fn weir_consume(topic: &str, args: &[&str]) -> Vec<Described> {
    let mut all = vec!["consume", "-t", topic, "--json", "-e"];
    all.extend_from_slice(args);
    let run = weir_run(&all);
    run.ok();
    run.stdout
        .lines()
        .map(|l| described_by_weir(&serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))))
        .collect()
}

/// Each partition's records in output order must be exactly `expected`'s
/// records of that partition that `keep` selects, in offset order.
fn assert_read(
    form: &str,
    got: &[Described],
    expected: &[(Described, i64)],
    keep: impl Fn(&Described, i64) -> bool,
) {
    let mut want: BTreeMap<i64, Vec<&Described>> = BTreeMap::new();
    for (d, ts) in expected {
        if keep(d, *ts) {
            want.entry(d.0).or_default().push(d);
        }
    }
    for records in want.values_mut() {
        records.sort_by_key(|d| d.1);
    }
    let mut have: BTreeMap<i64, Vec<&Described>> = BTreeMap::new();
    for d in got {
        have.entry(d.0).or_default().push(d);
    }
    let count = |m: &BTreeMap<i64, Vec<&Described>>| m.values().map(Vec::len).sum::<usize>();
    assert_eq!(count(&have), count(&want), "--from {form}: record count");
    for (partition, want) in &want {
        let have = have.get(partition).map_or(&[][..], Vec::as_slice);
        if let Some(i) = (0..want.len()).find(|&i| have.get(i) != Some(&want[i])) {
            panic!(
                "--from {form}: partition {partition}, record {i}: weir wrote {:?}, expected {:?}",
                have.get(i),
                want[i]
            );
        }
    }
}

#[test]
fn librdkafka_records_read_back_by_weir_with_every_codec_and_start() {
    let topic = random_topic("interop-consume");
    weir_run(&["topics", "create", &topic, "--partitions", "6"]).ok();
    let mut expected = Vec::new();
    for codec in CODECS {
        for v in interop(
            &["produce-binary", &topic, "600", codec],
            common::STEP_TIMEOUT,
        ) {
            expected.push((described_by_script(&v), v["timestamp"].as_i64().unwrap()));
        }
    }
    assert_eq!(expected.len(), 3000);
    let high: BTreeMap<i64, i64> = expected.iter().fold(BTreeMap::new(), |mut m, (d, _)| {
        let h = m.entry(d.0).or_insert(0);
        *h = (*h).max(d.1 + 1);
        m
    });
    assert_eq!(high.len(), 6, "every partition has records");
    // A time in the middle: the earliest record of the third codec. (The
    // script lists records in delivery order, batch by batch, which is not
    // the order of their timestamps.) Each codec is a process of its own,
    // started after the previous one ended, so every earlier record is
    // older.
    let middle = expected[1200..1800].iter().map(|e| e.1).min().unwrap();
    assert!(expected[..1200].iter().all(|e| e.1 < middle));

    let all = |_: &Described, _: i64| true;
    assert_read("earliest", &weir_consume(&topic, &[]), &expected, all);
    assert_read(
        "earliest",
        &weir_consume(&topic, &["--from", "earliest"]),
        &expected,
        all,
    );
    assert_read(
        "1h (ago)",
        &weir_consume(&topic, &["--from", "1h"]),
        &expected,
        all,
    );
    assert_read(
        "latest",
        &weir_consume(&topic, &["--from", "latest"]),
        &expected,
        |_, _| false,
    );
    assert_read(
        "100",
        &weir_consume(&topic, &["--from", "100"]),
        &expected,
        |d, _| d.1 >= 100,
    );
    assert_read(
        "-7",
        &weir_consume(&topic, &["--from", "-7"]),
        &expected,
        |d, _| d.1 >= high[&d.0] - 7,
    );
    let at = format!("@{middle}");
    assert_read(
        &at,
        &weir_consume(&topic, &["--from", &at]),
        &expected,
        |_, ts| ts >= middle,
    );
    assert_eq!(weir_consume(&topic, &["--from", &at]).len(), 1800);

    // `weir consume --json | weir produce --format json` copies
    // librdkafka's records exactly, binary headers, a repeated key and a
    // null value included: the same partitions, and in a fresh topic the
    // same offsets.
    let copy = random_topic("interop-copy");
    weir_run(&["topics", "create", &copy, "--partitions", "6"]).ok();
    let json = weir_run(&["consume", "-t", &topic, "--json", "-e", "-q"]);
    json.ok();
    produce(&["-t", &copy, "--format", "json"], json.stdout.as_bytes());
    assert_read(
        "earliest (the copy)",
        &weir_consume(&copy, &[]),
        &expected,
        all,
    );
}

// Groups through the broker's coordinator.

/// `kafka-consumer-groups --describe --members`: consumer id to its
/// partition count.
fn group_members(out: &str) -> BTreeMap<String, usize> {
    let (header, rows) = common::group_table(out);
    let column = |name: &str| header.iter().position(|&h| h == name).unwrap();
    let (id, count) = (column("CONSUMER-ID"), column("#PARTITIONS"));
    rows.into_iter()
        .map(|row| (row[id].to_owned(), row[count].parse().unwrap()))
        .collect()
}

#[test]
fn group_members_split_partitions_through_the_coordinator_and_kafka_tools_see_them() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use weir::kafka::membership::{Member, MembershipConfig, Standing};

    let topic = random_topic("members");
    let group = random_topic("members-group");
    java(
        TOPIC_COMMAND,
        &["--create", "--topic", &topic, "--partitions", "6"],
    );
    let connection =
        weir::ConnectionConfig::new([brokers().to_owned()]).with_timeout(Duration::from_secs(20));
    let membership = MembershipConfig::new(group.clone(), vec![topic.clone()])
        .with_session_timeout(Duration::from_secs(10))
        .with_heartbeat_interval(Duration::from_millis(300))
        .with_rebalance_timeout(Duration::from_secs(10));
    let rt = tokio::runtime::Runtime::new().unwrap();

    // A alone has every partition.
    let mut a = rt
        .block_on(Member::join(&connection, membership.clone()))
        .unwrap();
    assert_eq!(a.assignment().len(), 6, "{:?}", a.assignment());
    assert!(a.is_leader());

    // A heartbeats on its own task and rejoins when told to; it reports
    // every assignment it gets.
    let stop = Arc::new(AtomicBool::new(false));
    let (seen_tx, seen) = std::sync::mpsc::channel::<Vec<weir::TopicPartition>>();
    let a_task = {
        let stop = Arc::clone(&stop);
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(300)).await;
                match a.heartbeat().await.unwrap() {
                    Standing::Member => {}
                    Standing::Rebalance | Standing::Fenced => {
                        a.rejoin().await.unwrap();
                        seen_tx.send(a.assignment().to_vec()).unwrap();
                    }
                }
            }
            a
        })
    };

    // B joins: the partitions split 3 and 3, disjoint, all covered.
    let mut b = rt
        .block_on(Member::join(&connection, membership.clone()))
        .unwrap();
    let a_now = seen.recv_timeout(Duration::from_secs(30)).unwrap();
    let b_now = b.assignment().to_vec();
    assert_eq!((a_now.len(), b_now.len()), (3, 3), "{a_now:?} {b_now:?}");
    let mut all: Vec<_> = a_now.iter().chain(&b_now).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "{a_now:?} {b_now:?}");

    // B's commit under its generation is the group's position.
    let commits: Vec<_> = b_now.iter().map(|tp| (tp.clone(), 0)).collect();
    assert_eq!(
        rt.block_on(b.commit(&commits, weir::timestamp::now_ms()))
            .unwrap(),
        Standing::Member
    );
    let members = group_members(
        &java(
            GROUP_COMMAND,
            &["--describe", "--group", &group, "--members"],
        )
        .stdout,
    );
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.values().all(|&n| n == 3), "{members:?}");
    assert_eq!(members.get(b.member_id()), Some(&3), "{members:?}");
    let offsets = group_offsets(
        &java(GROUP_COMMAND, &["--describe", "--group", &group]).stdout,
        &group,
        &topic,
    );
    for tp in &b_now {
        assert_eq!(
            offsets.get(&tp.partition).map(|o| o[0]),
            Some(0),
            "{offsets:?}"
        );
    }

    // B leaves: A gets everything back long before B's session would
    // have expired.
    let left = std::time::Instant::now();
    rt.block_on(b.leave()).unwrap();
    let a_after = seen.recv_timeout(Duration::from_secs(8)).unwrap();
    assert_eq!(a_after.len(), 6, "{a_after:?}");
    assert!(left.elapsed() < Duration::from_secs(8));
    // A kept the partitions it had.
    assert!(a_now.iter().all(|tp| a_after.contains(tp)));

    stop.store(true, Ordering::Relaxed);
    let a = rt.block_on(a_task).unwrap();
    rt.block_on(a.leave()).unwrap();
}

/// On a topic with `message.timestamp.type=LogAppendTime` a record's
/// timestamp is the broker's append time, whatever the producer set (here
/// 2023): weir reads the time the Java console consumer prints after
/// `LogAppendTime:`, and `weir count` windows by it.
#[test]
fn log_append_time_is_the_timestamp_of_such_a_topic() {
    let topic = common::random_topic("append-time");
    common::weir_run(&[
        "topics",
        "create",
        &topic,
        "--config",
        "message.timestamp.type=LogAppendTime",
    ])
    .ok();
    let created_2023: i64 = 1_690_000_000_000;
    let before = now_ms();
    let records: String = (0..3)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"v{i}\",\"timestamp\":{created_2023}}}\n"))
        .collect();
    produce(&["-t", &topic, "--format", "json"], records.as_bytes()).ok();
    let after = now_ms();

    let java = java(
        CONSOLE_CONSUMER,
        &[
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "3",
            "--formatter-property",
            "print.timestamp=true",
        ],
    );
    let java_times: Vec<i64> = java
        .stdout
        .lines()
        .map(|l| {
            l.split('\t')
                .next()
                .and_then(|t| t.strip_prefix("LogAppendTime:"))
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("not LogAppendTime:T: {l:?}"))
        })
        .collect();
    assert_eq!(java_times.len(), 3, "{}", java.stdout);
    assert!(
        java_times.iter().all(|t| (before..=after).contains(t)),
        "{java_times:?} not within {before}..={after}"
    );

    let weir = common::weir_run(&["consume", "-t", &topic, "-e", "-q", "-f", "{timestamp}\\n"]);
    weir.ok();
    let weir_times: Vec<i64> = weir.stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(weir_times, java_times);
    // The type, as the Java consumer prints it.
    let typed = common::weir_run(&[
        "consume",
        "-t",
        &topic,
        "-e",
        "-q",
        "-f",
        "{timestamp_type}:{timestamp}",
    ]);
    typed.ok();
    let java_typed: Vec<&str> = java
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(typed.stdout.lines().collect::<Vec<_>>(), java_typed);

    // Counted in the append time's window, not in 2023's.
    let count = common::weir_run(&[
        "count", "-t", &topic, "-e", "--by", "key", "--window", "1h", "--json", "-q",
    ]);
    count.ok();
    let row: Value = serde_json::from_str(count.stdout.lines().next().unwrap_or("")).unwrap();
    let start = row["window_start"]
        .as_str()
        .unwrap_or_else(|| panic!("{row}"));
    assert!(!start.starts_with("2023"), "{row}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
