//! weir against another Kafka client, confluent-kafka (librdkafka), run from
//! the virtualenv of `scripts/pyenv.sh` through `tests/py/interop.py`: both
//! clients put every key on the same partition, and librdkafka reads back
//! every record weir wrote, with every codec.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{brokers, random_topic, weir_run};
use serde_json::Value;
use weir::partitioner::{crc32_partition, murmur2_partition};

/// The venv's python, installing confluent-kafka on first use.
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pyenv.sh");
            // Installing from PyPI the first time may take a few minutes.
            let run =
                common::run_with_deadline(&mut Command::new(script), Duration::from_secs(600));
            run.ok();
            PathBuf::from(run.stdout.trim())
        })
        .clone()
}

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
    for codec in ["none", "gzip", "lz4", "snappy", "zstd"] {
        let topic = random_topic(&format!("interop-{codec}"));
        weir_run(&["topics", "create", &topic, "--partitions", "6"]).ok();
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
                serde_json::json!({ "source": B64.encode("weir") }),
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

/// A record as both sides describe it: partition, offset, base64 key,
/// value and header values.
type Described = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    BTreeMap<String, String>,
);

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
    let mut headers = BTreeMap::new();
    for (name, value) in v["headers"].as_object().into_iter().flatten() {
        headers.insert(name.clone(), B64.encode(value.as_str().unwrap()));
    }
    for (name, value) in v
        .get("headers_b64")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        headers.insert(name.clone(), value.as_str().unwrap().to_owned());
    }
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
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
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
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
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
    // A time in the middle: the first record of the third codec.
    let middle = expected[1200].1;

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
}
