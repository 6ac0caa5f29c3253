//! Confluent's Rust client for `just bench`: the `confluent-kafka` crate
//! 1.0 (a native Rust translation of the Apache Kafka Java client, no
//! librdkafka) doing the jobs of `weir bench produce|consume|latency` with
//! the same flags, measured the same way, and printing the same `--json`
//! fields as weir and bench/rdkafka-baseline.
//!
//! - produce: a `KafkaProducer` of byte arrays, `send_with_callback` for
//!   every record; a record's latency runs from the send call to its
//!   callback, the send time being carried by the callback.
//! - consume: a `KafkaConsumer` with an explicit assignment (no group, no
//!   commits), moved to the beginning of every partition; the clock
//!   starts before the partitions are looked up and stops at the N-th
//!   record.
//! - latency: the producer paced at `--rate` on the main task, a consumer
//!   assigned at the end offsets on another; a record's latency runs from
//!   the send call to `poll` returning it, the send time travelling in the
//!   first 8 bytes of the value.
//!
//! `--profile defaults` sets nothing but `bootstrap.servers`, the codec,
//! and the `group.protocol=consumer` this client needs to build a consumer
//! at all (it has only the KIP-848 protocol; with no `group.id` nothing
//! joins a group). `--profile tuned` adds [`TUNED_PRODUCER`] and
//! [`TUNED_CONSUMER`].

// weir's own histogram source, so every tool computes percentiles alike.
#[allow(dead_code)]
#[path = "../../../src/bench/histogram.rs"]
mod histogram;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use confluent_kafka::common::serialization::{ByteArraySerializer, BytesDeserializer};
use confluent_kafka::common::{Error, TopicPartition};
use confluent_kafka::consumer::{Consumer, ConsumerConfig, KafkaConsumer};
use confluent_kafka::producer::{
    Callback, KafkaProducer, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};

use histogram::Histogram;

/// Producer settings of the tuned profile, against the Java client's
/// defaults (batch.size 16384, linger.ms 5, buffer.memory 32 MiB): batches
/// of weir's size (1 MiB less 16 KiB; 16 KiB holds about 150 of the
/// benchmark's records) and a buffer that holds a whole default run.
const TUNED_PRODUCER: &[(&str, &str)] = &[
    ("batch.size", "1032192"),
    ("linger.ms", "5"),
    ("buffer.memory", "268435456"),
];

/// Consumer settings of the tuned profile, against the Java client's
/// defaults: fetches of up to 10 MiB per partition (default 1 MiB) and
/// 100 MiB per request (default 50 MiB), as rdkafka-tuned, and up to
/// 10,000 records per poll (default 500).
const TUNED_CONSUMER: &[(&str, &str)] = &[
    ("max.partition.fetch.bytes", "10485760"),
    ("fetch.max.bytes", "104857600"),
    ("max.poll.records", "10000"),
];

const STAMP_BYTES: usize = 8;

#[derive(Debug, Parser)]
#[command(
    name = "confluent-baseline",
    about = "weir bench's jobs, done with Confluent's Rust client (confluent-kafka 1.0)"
)]
struct Cli {
    /// Bootstrap brokers.
    #[arg(short, long, env = "WEIR_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,

    /// Client settings: its defaults, or tuned for throughput.
    #[arg(long, value_enum, default_value_t = Profile::Defaults)]
    profile: Profile,

    /// Any further client setting, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,

    /// Deadline for the whole job.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,

    #[command(subcommand)]
    job: Job,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Profile {
    Defaults,
    Tuned,
}

#[derive(Debug, Subcommand)]
enum Job {
    /// Send N records as fast as possible.
    Produce(ProduceArgs),
    /// Read N records from the beginning.
    Consume(ConsumeArgs),
    /// Send N records at --rate per second and read them back.
    Latency(LatencyArgs),
    /// Print the client's version.
    Version,
}

#[derive(Debug, clap::Args)]
struct Shared {
    #[arg(short, long)]
    topic: Option<String>,
    /// Accepted for the same command lines as weir bench; the topic must
    /// exist (scripts/bench.sh creates it).
    #[arg(short, long, default_value_t = 1)]
    partitions: i32,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ProducerFlags {
    #[arg(short, long, default_value_t = 100)]
    size: usize,
    #[arg(long, default_value = "none")]
    compression: String,
    #[arg(long)]
    keys: bool,
}

#[derive(Debug, clap::Args)]
struct ConsumerFlags {
    /// max.partition.fetch.bytes, when given.
    #[arg(long)]
    fetch_bytes: Option<i32>,
    /// fetch.max.wait.ms, when given (e.g. 500ms).
    #[arg(long)]
    fetch_max_wait: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ProduceArgs {
    #[command(flatten)]
    shared: Shared,
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    records: u64,
    #[command(flatten)]
    producer: ProducerFlags,
}

#[derive(Debug, clap::Args)]
struct ConsumeArgs {
    #[command(flatten)]
    shared: Shared,
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    records: u64,
    #[command(flatten)]
    consumer: ConsumerFlags,
}

#[derive(Debug, clap::Args)]
struct LatencyArgs {
    #[command(flatten)]
    shared: Shared,
    #[arg(short = 'n', long, default_value_t = 100_000)]
    records: u64,
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// How long the rest may take to arrive after the last send.
    #[arg(long, default_value = "10s")]
    drain_timeout: String,
    #[command(flatten)]
    producer: ProducerFlags,
    #[command(flatten)]
    consumer: ConsumerFlags,
}

type Result<T> = std::result::Result<T, String>;

fn err(what: &str) -> impl Fn(Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The numbers of one run, with weir's `--json` field names.
struct Report {
    tool: String,
    mode: &'static str,
    topic: String,
    partitions: i32,
    compression: String,
    records: u64,
    bytes: u64,
    failed: u64,
    elapsed: Duration,
    latency: Option<Histogram>,
    ack_latency: Option<Histogram>,
}

fn summary(h: &Histogram) -> serde_json::Value {
    let ms = |us: u64| us as f64 / 1000.0;
    serde_json::json!({
        "avg": h.mean() / 1000.0,
        "max": ms(h.max()),
        "p50": ms(h.percentile(50.0)),
        "p95": ms(h.percentile(95.0)),
        "p99": ms(h.percentile(99.0)),
        "p99_9": ms(h.percentile(99.9)),
    })
}

impl Report {
    fn json(&self) -> serde_json::Value {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        serde_json::json!({
            "tool": self.tool,
            "mode": self.mode,
            "topic": self.topic,
            "partitions": self.partitions,
            "compression": self.compression,
            "records": self.records,
            "bytes": self.bytes,
            "failed": self.failed,
            "elapsed_s": secs,
            "records_per_sec": self.records as f64 / secs,
            "mb_per_sec": self.bytes as f64 / secs / (1024.0 * 1024.0),
            "latency_ms": self.latency.as_ref().map(summary),
            "ack_latency_ms": self.ack_latency.as_ref().map(summary),
            "interrupted": false,
        })
    }

    fn line(&self) -> String {
        let j = self.json();
        let mut line = format!(
            "{} records, {:.1} records/sec ({:.2} MB/sec)",
            self.records,
            j["records_per_sec"].as_f64().unwrap_or(0.0),
            j["mb_per_sec"].as_f64().unwrap_or(0.0)
        );
        if let Some(l) = j["latency_ms"].as_object() {
            let f = |k: &str| l[k].as_f64().unwrap_or(0.0);
            line.push_str(&format!(
                ", {:.1} ms avg latency, {:.1} ms p50, {:.1} ms p99",
                f("avg"),
                f("p50"),
                f("p99")
            ));
        }
        line
    }
}

/// The same bytes as `weir::bench::payload`.
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

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn parse_ms(s: &str) -> Result<u64> {
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "ms"),
    };
    let n: u64 = n.parse().map_err(|_| format!("not a duration: \"{s}\""))?;
    match unit {
        "ms" => Ok(n),
        "s" => Ok(n * 1000),
        _ => Err(format!("not a duration: \"{s}\" (use ms or s)")),
    }
}

impl Cli {
    fn base(&self) -> Result<HashMap<String, String>> {
        let mut config = HashMap::new();
        config.insert("bootstrap.servers".to_owned(), self.brokers.clone());
        Ok(config)
    }

    /// `--set` last, so that it overrides the profile.
    fn finish(&self, mut config: HashMap<String, String>) -> Result<HashMap<String, String>> {
        for s in &self.settings {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| format!("--set \"{s}\" is not KEY=VALUE"))?;
            config.insert(k.to_owned(), v.to_owned());
        }
        Ok(config)
    }

    fn producer(&self, flags: &ProducerFlags) -> Result<KafkaProducer<Vec<u8>, Vec<u8>>> {
        let mut config = self.base()?;
        if self.profile == Profile::Tuned {
            for (k, v) in TUNED_PRODUCER {
                config.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        if flags.compression != "none" {
            config.insert("compression.type".to_owned(), flags.compression.clone());
        }
        config.insert(
            "delivery.timeout.ms".to_owned(),
            (self.timeout_secs * 1000).to_string(),
        );
        let config = ProducerConfig::new(&self.finish(config)?).map_err(err("producer config"))?;
        KafkaProducer::new(
            config,
            ByteArraySerializer::new(),
            ByteArraySerializer::new(),
        )
        .map_err(err("producer"))
    }

    fn consumer(&self, flags: &ConsumerFlags) -> Result<KafkaConsumer<Bytes, Bytes>> {
        let mut config = self.base()?;
        // Not tuning: the only group protocol this client has. No group.id,
        // so nothing joins a group and nothing is committed.
        config.insert("group.protocol".to_owned(), "consumer".to_owned());
        if self.profile == Profile::Tuned {
            for (k, v) in TUNED_CONSUMER {
                config.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        if let Some(b) = flags.fetch_bytes {
            config.insert("max.partition.fetch.bytes".to_owned(), b.to_string());
        }
        if let Some(w) = &flags.fetch_max_wait {
            config.insert("fetch.max.wait.ms".to_owned(), parse_ms(w)?.to_string());
        }
        let config = ConsumerConfig::new(&self.finish(config)?).map_err(err("consumer config"))?;
        KafkaConsumer::new(config, BytesDeserializer::new(), BytesDeserializer::new())
            .map_err(err("consumer"))
    }

    fn tool(&self) -> String {
        match self.profile {
            Profile::Defaults => "confluent-defaults".to_owned(),
            Profile::Tuned => "confluent-tuned".to_owned(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

fn topic_name(shared: &Shared, prefix: &str) -> String {
    shared
        .topic
        .clone()
        .unwrap_or_else(|| format!("{prefix}-{}p", shared.partitions))
}

/// Every partition of `topic`, as the consumer's metadata has them.
async fn partitions(
    consumer: &mut KafkaConsumer<Bytes, Bytes>,
    topic: &str,
) -> Result<Vec<TopicPartition>> {
    let infos = consumer
        .partitions_for(topic)
        .await
        .map_err(err(&format!("partitions of \"{topic}\"")))?;
    if infos.is_empty() {
        return Err(format!("topic \"{topic}\" does not exist"));
    }
    let mut tps: Vec<TopicPartition> = infos
        .iter()
        .map(|p| TopicPartition::new(topic, p.partition()))
        .collect();
    tps.sort_by_key(TopicPartition::partition);
    Ok(tps)
}

/// What the producer's callbacks saw.
#[derive(Default)]
struct AckState {
    latency: Histogram,
    failed: u64,
    first_error: Option<String>,
}

/// One record's callback: its send time, in µs since `origin`.
struct Ack {
    origin: Instant,
    sent: u64,
    state: Arc<Mutex<AckState>>,
}

impl Callback for Ack {
    fn on_completion(self: Box<Self>, _metadata: Option<&RecordMetadata>, error: Option<&Error>) {
        let now = micros_since(self.origin);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match error {
            None => state.latency.record(now.saturating_sub(self.sent)),
            Some(e) => {
                state.failed += 1;
                state.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Hands one record to the producer (waiting while its buffer is full).
async fn send(
    producer: &KafkaProducer<Vec<u8>, Vec<u8>>,
    topic: &str,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    ack: Ack,
) -> Result<()> {
    let record = ProducerRecord::with_key(topic.to_owned(), key, Some(value));
    producer
        .send_with_callback(record, Some(Box::new(ack)))
        .await
        .map_err(err("send"))?;
    Ok(())
}

async fn produce(cli: &Cli, args: &ProduceArgs) -> Result<Report> {
    let topic = topic_name(&args.shared, "weir-bench");
    let value = payload(args.producer.size);
    let producer = cli.producer(&args.producer)?;
    let partitions = producer
        .partitions_for(&topic)
        .await
        .map_err(err(&format!("partitions of \"{topic}\"")))?
        .len() as i32;
    let state = Arc::new(Mutex::new(AckState::default()));
    let origin = Instant::now();
    let mut bytes = 0;
    for i in 0..args.records {
        let key = args.producer.keys.then(|| i.to_string().into_bytes());
        bytes += (value.len() + key.as_ref().map_or(0, Vec::len)) as u64;
        let ack = Ack {
            origin,
            sent: micros_since(origin),
            state: Arc::clone(&state),
        };
        send(&producer, &topic, key, value.clone(), ack).await?;
    }
    producer.flush().await.map_err(err("flush"))?;
    let elapsed = origin.elapsed();
    producer.close().await.map_err(err("close"))?;
    let state = std::mem::take(&mut *state.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(first) = state.first_error {
        return Err(format!(
            "{} of {} records failed; first error: {first}",
            state.failed, args.records
        ));
    }
    Ok(Report {
        tool: cli.tool(),
        mode: "produce",
        topic,
        partitions,
        compression: args.producer.compression.clone(),
        records: state.latency.count(),
        bytes,
        failed: state.failed,
        elapsed,
        latency: Some(state.latency),
        ack_latency: None,
    })
}

/// Key and value bytes of a record (a null one counts 0).
fn record_bytes(key_size: i32, value_size: i32) -> u64 {
    (key_size.max(0) + value_size.max(0)) as u64
}

async fn consume(cli: &Cli, args: &ConsumeArgs) -> Result<Report> {
    let topic = topic_name(&args.shared, "weir-bench");
    let mut consumer = cli.consumer(&args.consumer)?;
    let start = Instant::now();
    let tps = partitions(&mut consumer, &topic).await?;
    let count = tps.len() as i32;
    consumer.assign(tps.clone()).await.map_err(err("assign"))?;
    consumer
        .seek_to_beginning(&tps)
        .await
        .map_err(err("seek to beginning"))?;
    let deadline = start + cli.timeout();
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < args.records {
        let batch = consumer
            .poll(Duration::from_millis(100))
            .await
            .map_err(err("poll"))?;
        for r in &batch {
            if records == args.records {
                break;
            }
            records += 1;
            bytes += record_bytes(r.serialized_key_size(), r.serialized_value_size());
        }
        if batch.is_empty() && Instant::now() >= deadline {
            return Err(format!(
                "topic \"{topic}\": {records} of {} records read within {}s",
                args.records, cli.timeout_secs
            ));
        }
    }
    let elapsed = start.elapsed();
    let _ = consumer.close().await;
    Ok(Report {
        tool: cli.tool(),
        mode: "consume",
        topic,
        partitions: count,
        compression: "none".to_owned(),
        records,
        bytes,
        failed: 0,
        elapsed,
        latency: None,
        ack_latency: None,
    })
}

/// What the latency consumer task saw.
#[derive(Default)]
struct Read {
    records: u64,
    bytes: u64,
    latency: Histogram,
    failure: Option<String>,
}

async fn latency(cli: &Cli, args: &LatencyArgs) -> Result<Report> {
    if args.producer.size < STAMP_BYTES {
        return Err(format!("--size must be at least {STAMP_BYTES}"));
    }
    let topic = topic_name(&args.shared, "weir-bench-latency");
    let drain = Duration::from_millis(parse_ms(&args.drain_timeout)?);
    let mut consumer = cli.consumer(&args.consumer)?;
    let tps = partitions(&mut consumer, &topic).await?;
    let count = tps.len() as i32;
    consumer.assign(tps.clone()).await.map_err(err("assign"))?;
    let ends = consumer
        .end_offsets(&tps)
        .await
        .map_err(err("end offsets"))?;
    for (tp, offset) in ends {
        consumer
            .seek_with_offset(tp, offset)
            .await
            .map_err(err("seek"))?;
    }
    let producer = cli.producer(&args.producer)?;
    let origin = Instant::now();
    let expected = args.records;
    let stop = Arc::new(AtomicBool::new(false));
    let reader_stop = Arc::clone(&stop);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut read = Read::default();
        while read.records < expected && !reader_stop.load(Ordering::Relaxed) {
            let batch = match consumer.poll(Duration::from_millis(100)).await {
                Ok(b) => b,
                Err(e) => {
                    read.failure = Some(e.to_string());
                    break;
                }
            };
            let now = micros_since(origin);
            for r in &batch {
                let Some(stamp) = r
                    .value()
                    .and_then(|v| v.get(..STAMP_BYTES))
                    .and_then(|b| <[u8; STAMP_BYTES]>::try_from(b).ok())
                else {
                    continue;
                };
                read.records += 1;
                read.bytes += record_bytes(r.serialized_key_size(), r.serialized_value_size());
                read.latency
                    .record(now.saturating_sub(u64::from_le_bytes(stamp)));
            }
        }
        let _ = done_tx.send(());
        let _ = consumer.close().await;
        read
    });

    let state = Arc::new(Mutex::new(AckState::default()));
    let mut value = payload(args.producer.size);
    let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let sending = tokio::time::Instant::now();
    let mut result = Ok(());
    for i in 0..args.records {
        tokio::time::sleep_until(sending + interval * u32::try_from(i).unwrap_or(u32::MAX)).await;
        let key = args.producer.keys.then(|| i.to_string().into_bytes());
        let sent = micros_since(origin);
        value[..STAMP_BYTES].copy_from_slice(&sent.to_le_bytes());
        let ack = Ack {
            origin,
            sent,
            state: Arc::clone(&state),
        };
        if let Err(e) = send(&producer, &topic, key, value.clone(), ack).await {
            result = Err(e);
            break;
        }
    }
    let elapsed = sending.elapsed();
    if let Err(e) = producer.flush().await {
        result = result.and(Err(format!("flush: {e}")));
    }
    if tokio::time::timeout(drain, done_rx).await.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    let read = reader
        .await
        .map_err(|_| "the reader task panicked".to_owned())?;
    let _ = producer.close().await;
    result?;
    let acks = std::mem::take(&mut *state.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(first) = acks.first_error {
        return Err(format!(
            "{} of {} records failed; first error: {first}",
            acks.failed, args.records
        ));
    }
    if read.records < acks.latency.count() {
        return Err(format!(
            "topic \"{topic}\": {} of {} records read; {}",
            read.records,
            acks.latency.count(),
            read.failure.unwrap_or_else(|| format!(
                "the rest did not arrive within {} of the last send",
                args.drain_timeout
            ))
        ));
    }
    Ok(Report {
        tool: cli.tool(),
        mode: "latency",
        topic,
        partitions: count,
        compression: args.producer.compression.clone(),
        records: read.records,
        bytes: read.bytes,
        failed: acks.failed,
        elapsed,
        latency: Some(read.latency),
        ack_latency: Some(acks.latency),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let deadline = cli.timeout() + Duration::from_secs(5);
    let (result, json) = match &cli.job {
        Job::Version => {
            // The version Cargo.toml pins.
            println!("confluent-kafka 1.0.0 (Confluent's Rust client)");
            return ExitCode::SUCCESS;
        }
        Job::Produce(a) => (
            tokio::time::timeout(deadline, produce(&cli, a)).await,
            a.shared.json,
        ),
        Job::Consume(a) => (
            tokio::time::timeout(deadline, consume(&cli, a)).await,
            a.shared.json,
        ),
        Job::Latency(a) => (
            tokio::time::timeout(deadline, latency(&cli, a)).await,
            a.shared.json,
        ),
    };
    match result.unwrap_or_else(|_| Err(format!("not done within {}s", cli.timeout_secs))) {
        Ok(report) => {
            if json {
                println!("{}", report.json());
            } else {
                println!("{}", report.line());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("confluent-baseline: {e}");
            ExitCode::from(1)
        }
    }
}
