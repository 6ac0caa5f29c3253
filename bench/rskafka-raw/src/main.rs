//! weir bench's produce and consume jobs as the plainest loops on weir's
//! vendored rskafka: per partition, build a batch of records and await its
//! produce, or fetch from an offset and count. Same payload bytes, clock
//! points and JSON fields as `weir bench`.
//!
//!   rskafka-raw produce -t TOPIC --partitions P -n N --size S --compression C --json
//!   rskafka-raw consume -t TOPIC -n N --json
//!
//! Brokers from `-b` or WEIR_BROKERS. Arguments it does not know are
//! refused.

use std::time::{Duration, Instant};

use rskafka::chrono::DateTime;
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, IsolationLevel, OffsetAt, UnknownTopicHandling};
use rskafka::record::Record;

/// weir's batch limit: 1 MiB less 16 KiB of request overhead.
const BATCH_BYTES: usize = 1_032_192;
/// weir's default fetch size per partition.
const FETCH_BYTES: i32 = 1_048_576;

struct Args {
    mode: String,
    brokers: String,
    topic: String,
    partitions: i32,
    records: u64,
    size: usize,
    compression: String,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        mode: it.next().ok_or("usage: rskafka-raw produce|consume ...")?,
        brokers: std::env::var("WEIR_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        topic: String::new(),
        partitions: 1,
        records: 1_000_000,
        size: 100,
        compression: "none".into(),
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "-b" | "--brokers" => a.brokers = value()?,
            "-t" | "--topic" => a.topic = value()?,
            "--partitions" => a.partitions = value()?.parse().map_err(|e| format!("{e}"))?,
            "-n" | "--records" => a.records = value()?.parse().map_err(|e| format!("{e}"))?,
            "--size" => a.size = value()?.parse().map_err(|e| format!("{e}"))?,
            "--compression" => a.compression = value()?,
            "--json" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// weir bench's payload: letters from a fixed xorshift sequence.
fn payload(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}

fn report(a: &Args, records: u64, bytes: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{}",
        serde_json::json!({
            "tool": "rskafka-raw", "mode": a.mode, "topic": a.topic, "partitions": a.partitions,
            "compression": a.compression, "records": records, "bytes": bytes, "failed": 0,
            "elapsed_s": secs, "records_per_sec": records as f64 / secs,
            "mb_per_sec": bytes as f64 / secs / 1048576.0,
            "latency_ms": null, "ack_latency_ms": null, "interrupted": false,
        })
    );
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rskafka-raw: {e}");
            std::process::exit(2);
        }
    };
    let compression = match a.compression.as_str() {
        "none" => Compression::NoCompression,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        other => {
            eprintln!("rskafka-raw: unknown codec {other}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let client = ClientBuilder::new(a.brokers.split(',').map(str::to_owned).collect())
        .build()
        .await
        .expect("connect");
    let mut tasks = tokio::task::JoinSet::new();
    match a.mode.as_str() {
        "produce" => {
            let value = payload(a.size);
            let per_batch = (BATCH_BYTES / (a.size + 20)).max(1) as u64;
            for p in 0..a.partitions {
                let partition = client
                    .partition_client(a.topic.clone(), p, UnknownTopicHandling::Retry)
                    .await
                    .expect("partition");
                // Record i goes to partition i mod P.
                let mine = a.records / a.partitions as u64
                    + u64::from((p as u64) < a.records % a.partitions as u64);
                let value = value.clone();
                tasks.spawn(async move {
                    let mut left = mine;
                    while left > 0 {
                        let n = left.min(per_batch);
                        // rskafka's chrono has no clock: the time from std.
                        let ms = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64);
                        let now = DateTime::from_timestamp_millis(ms).expect("a time");
                        let batch = (0..n)
                            .map(|_| Record {
                                key: None,
                                value: Some(value.clone()),
                                headers: Vec::new(),
                                timestamp: now,
                            })
                            .collect();
                        partition.produce(batch, compression).await.expect("produce");
                        left -= n;
                    }
                    (mine, mine * value.len() as u64)
                });
            }
        }
        "consume" => {
            let meta = client.list_topics().await.expect("metadata");
            let count = meta
                .iter()
                .find(|t| t.name == a.topic)
                .map_or(0, |t| t.partitions.len()) as i32;
            for p in 0..count {
                let partition = client
                    .partition_client(a.topic.clone(), p, UnknownTopicHandling::Retry)
                    .await
                    .expect("partition");
                tasks.spawn(async move {
                    let mut offset = partition.get_offset(OffsetAt::Earliest).await.expect("offset");
                    let end = partition.get_offset(OffsetAt::Latest).await.expect("offset");
                    let (mut records, mut bytes) = (0u64, 0u64);
                    while offset < end {
                        // read_committed, as weir's consumer by default.
                        let fetched = partition
                            .fetch_records_isolated(
                                offset,
                                1..FETCH_BYTES,
                                500,
                                IsolationLevel::ReadCommitted,
                            )
                            .await
                            .expect("fetch");
                        for r in &fetched.records {
                            records += 1;
                            bytes += r.record.value.as_ref().map_or(0, |v| v.len()) as u64
                                + r.record.key.as_ref().map_or(0, |k| k.len()) as u64;
                        }
                        offset = fetched.next_offset;
                    }
                    (records, bytes)
                });
            }
        }
        other => {
            eprintln!("rskafka-raw: unknown job {other} (produce, consume)");
            std::process::exit(2);
        }
    }
    let (mut records, mut bytes) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (r, b) = done.expect("task");
        records += r;
        bytes += b;
    }
    report(&a, records, bytes, started.elapsed());
}
