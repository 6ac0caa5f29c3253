//! The rust-rdkafka baseline for `just bench`: librdkafka (bundled, built
//! by the rdkafka crate's `cmake-build` feature) doing the jobs of
//! `weir bench produce|consume|latency` with the same flags, measured the
//! same way, and printing the same line and the same `--json` fields.
//!
//! - produce: a `BaseProducer`, polled after every send; a record's
//!   latency runs from `send` to its delivery callback, its send time
//!   being the delivery opaque, so nothing is stored per record.
//! - consume: a `BaseConsumer` with an explicit assignment from the
//!   beginning of every partition (no group, no commits); the clock starts
//!   before `assign` and stops at the N-th message.
//! - latency: the producer paced at `--rate` on the main thread, a
//!   consumer assigned at the high watermarks on another; a record's
//!   latency runs from `send` to the consumer's `poll` returning it, the
//!   send time travelling in the first 8 bytes of the value.
//!
//! `--profile defaults` sets nothing but `bootstrap.servers` (and the
//! codec, whatever flag is given explicitly, and for consumers the
//! `group.id` that `assign` requires with `enable.auto.commit=false`);
//! `--profile tuned` adds the settings in [`TUNED_PRODUCER`] and
//! [`TUNED_CONSUMER`].

// weir's own histogram source, so both tools compute percentiles alike.
#[allow(dead_code)]
#[path = "../../../src/bench/histogram.rs"]
mod histogram;

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use clap::{Parser, Subcommand, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use histogram::Histogram;

/// Producer settings of the tuned profile. librdkafka 2.x's defaults are
/// already made for throughput (linger.ms=5, batch.size=1000000, which
/// 100-byte records reach before batch.num.messages=10000); on this
/// benchmark's machine longer lingers (10, 20 ms) and batch.num.messages
/// 100000 measured no better. What helps is a queue that holds a whole
/// run, so `send` never waits for room.
const TUNED_PRODUCER: &[(&str, &str)] = &[
    ("queue.buffering.max.messages", "1000000"),
    ("queue.buffering.max.kbytes", "1048576"),
];

/// Consumer settings of the tuned profile, against librdkafka 2.x's
/// defaults: a prefetch queue of a million messages (default 100000) and
/// 1 GiB (default 64 MiB), fetches of up to 10 MiB per partition (default
/// 1 MiB) and 100 MiB per request (default 50 MiB).
const TUNED_CONSUMER: &[(&str, &str)] = &[
    ("queued.min.messages", "1000000"),
    ("queued.max.messages.kbytes", "1048576"),
    ("max.partition.fetch.bytes", "10485760"),
    ("fetch.max.bytes", "104857600"),
];

const STAMP_BYTES: usize = 8;

#[derive(Debug, Parser)]
#[command(
    name = "rdkafka-baseline",
    about = "weir bench's jobs, done with rust-rdkafka"
)]
struct Cli {
    /// Bootstrap brokers.
    #[arg(short, long, env = "WEIR_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,

    /// librdkafka settings: its defaults, or tuned for throughput.
    #[arg(long, value_enum, default_value_t = Profile::Defaults)]
    profile: Profile,

    /// Any further librdkafka setting, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,

    /// Deadline for the whole job (and for each librdkafka request).
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
    /// Print the librdkafka version.
    Version,
}

#[derive(Debug, clap::Args)]
struct Shared {
    #[arg(short, long)]
    topic: Option<String>,
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
    /// batch.size, when given.
    #[arg(long)]
    batch_bytes: Option<usize>,
    /// linger.ms, when given (e.g. 5ms).
    #[arg(long)]
    linger: Option<String>,
    #[arg(long)]
    keys: bool,
}

#[derive(Debug, clap::Args)]
struct ConsumerFlags {
    /// max.partition.fetch.bytes, when given.
    #[arg(long)]
    fetch_bytes: Option<i32>,
    /// fetch.wait.max.ms, when given (e.g. 500ms).
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
    /// Seconds the rest may take to arrive after the last send.
    #[arg(long, default_value = "10s")]
    drain_timeout: String,
    #[command(flatten)]
    producer: ProducerFlags,
    #[command(flatten)]
    consumer: ConsumerFlags,
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
        let latency = self.latency.as_ref().map(summary);
        let ack_latency = self.ack_latency.as_ref().map(summary);
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
            "latency_ms": latency,
            "ack_latency_ms": ack_latency,
            "interrupted": false,
        })
    }

    fn line(&self, verb: &str) -> String {
        let j = self.json();
        let mut line = format!(
            "{} records {verb}, {:.1} records/sec ({:.2} MB/sec)",
            self.records,
            j["records_per_sec"].as_f64().unwrap_or(0.0),
            j["mb_per_sec"].as_f64().unwrap_or(0.0)
        );
        if let Some(l) = j["latency_ms"].as_object() {
            let f = |k: &str| l[k].as_f64().unwrap_or(0.0);
            line.push_str(&format!(
                ", {:.1} ms avg latency, {:.1} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th",
                f("avg"),
                f("max"),
                ms(f("p50")),
                ms(f("p95")),
                ms(f("p99")),
                ms(f("p99_9"))
            ));
        }
        line.push('.');
        line
    }
}

fn ms(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
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

type Result<T> = std::result::Result<T, String>;

impl Cli {
    fn base(&self) -> Result<ClientConfig> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for s in &self.settings {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| format!("--set \"{s}\" is not KEY=VALUE"))?;
            config.set(k, v);
        }
        Ok(config)
    }

    fn producer_config(&self, flags: &ProducerFlags) -> Result<ClientConfig> {
        let mut config = self.base()?;
        if self.profile == Profile::Tuned {
            for (k, v) in TUNED_PRODUCER {
                config.set(*k, *v);
            }
        }
        if flags.compression != "none" {
            config.set("compression.codec", &flags.compression);
        }
        if let Some(b) = flags.batch_bytes {
            config.set("batch.size", b.to_string());
        }
        if let Some(l) = &flags.linger {
            config.set("linger.ms", parse_ms(l)?.to_string());
        }
        config.set("message.timeout.ms", (self.timeout_secs * 1000).to_string());
        Ok(config)
    }

    fn consumer_config(&self, flags: &ConsumerFlags) -> Result<ClientConfig> {
        let mut config = self.base()?;
        // Not tuning: librdkafka refuses `assign` without a group id, and
        // the baseline, like weir bench, commits nothing.
        config.set("group.id", "weir-bench-rdkafka-baseline");
        config.set("enable.auto.commit", "false");
        if self.profile == Profile::Tuned {
            for (k, v) in TUNED_CONSUMER {
                config.set(*k, *v);
            }
        }
        if let Some(b) = flags.fetch_bytes {
            config.set("max.partition.fetch.bytes", b.to_string());
        }
        if let Some(w) = &flags.fetch_max_wait {
            config.set("fetch.wait.max.ms", parse_ms(w)?.to_string());
        }
        Ok(config)
    }

    fn tool(&self) -> String {
        match self.profile {
            Profile::Defaults => "rdkafka-defaults".to_owned(),
            Profile::Tuned => "rdkafka-tuned".to_owned(),
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

/// The topic's partition count, creating it when it is missing.
fn prepare_topic(cli: &Cli, topic: &str, partitions: i32) -> Result<i32> {
    let probe: BaseConsumer = cli.base()?.create().map_err(|e| e.to_string())?;
    let count = |probe: &BaseConsumer| -> Result<Option<i32>> {
        let md = probe
            .fetch_metadata(Some(topic), cli.timeout())
            .map_err(|e| format!("metadata of \"{topic}\": {e}"))?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as i32))
    };
    if let Some(n) = count(&probe)? {
        return Ok(n);
    }
    let admin: AdminClient<DefaultClientContext> =
        cli.base()?.create().map_err(|e| e.to_string())?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures_executor::block_on(admin.create_topics([&new], &AdminOptions::new()))
        .map_err(|e| format!("creating \"{topic}\": {e}"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(format!("creating \"{t}\": {e}")),
        }
    }
    let deadline = Instant::now() + cli.timeout();
    while Instant::now() < deadline {
        if let Some(n) = count(&probe)? {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("topic \"{topic}\" did not appear after creation"))
}

/// Delivery callbacks: the opaque is the send time in µs since `start`.
struct Acks {
    start: Instant,
    state: Mutex<AckState>,
}

#[derive(Default)]
struct AckState {
    latency: Histogram,
    failed: u64,
    first_error: Option<String>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        let now = micros_since(self.start);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(_) => state.latency.record(now.saturating_sub(sent as u64)),
            Err((e, _)) => {
                state.failed += 1;
                state.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Sends one record, serving delivery callbacks while the queue is full.
fn send(
    producer: &BaseProducer<Acks>,
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
    sent: u64,
) -> Result<()> {
    let mut record = BaseRecord::with_opaque_to(topic, sent as usize).payload(value);
    if let Some(k) = key {
        record = record.key(k);
    }
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(format!("send: {e}")),
        }
    }
    producer.poll(Duration::ZERO);
    Ok(())
}

fn produce(cli: &Cli, args: &ProduceArgs) -> Result<Report> {
    let topic = topic_name(&args.shared, "weir-bench");
    let partitions = prepare_topic(cli, &topic, args.shared.partitions)?;
    let value = payload(args.producer.size);
    let producer: BaseProducer<Acks> = cli
        .producer_config(&args.producer)?
        .create_with_context(Acks {
            start: Instant::now(),
            state: Mutex::default(),
        })
        .map_err(|e| e.to_string())?;
    // Send times count from the context's origin; throughput from here.
    let origin = producer.context().start;
    let start = Instant::now();
    let mut bytes = 0;
    for i in 0..args.records {
        let key = args.producer.keys.then(|| i.to_string());
        bytes += (value.len() + key.as_ref().map_or(0, String::len)) as u64;
        let sent = micros_since(origin);
        send(
            &producer,
            &topic,
            key.as_ref().map(String::as_bytes),
            &value,
            sent,
        )?;
    }
    producer
        .flush(cli.timeout())
        .map_err(|e| format!("flush: {e}"))?;
    let elapsed = start.elapsed();
    let state = std::mem::take(&mut *producer.context().state.lock().unwrap());
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

fn assignment(
    consumer: &BaseConsumer,
    topic: &str,
    cli: &Cli,
    at_end: bool,
) -> Result<TopicPartitionList> {
    let md = consumer
        .fetch_metadata(Some(topic), cli.timeout())
        .map_err(|e| format!("metadata of \"{topic}\": {e}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .ok_or_else(|| format!("topic \"{topic}\" does not exist"))?;
    let mut tpl = TopicPartitionList::new();
    for p in t.partitions() {
        let offset = if at_end {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), cli.timeout())
                .map_err(|e| format!("watermarks of \"{topic}\" {}: {e}", p.id()))?;
            Offset::Offset(high)
        } else {
            Offset::Beginning
        };
        tpl.add_partition_offset(topic, p.id(), offset)
            .map_err(|e| e.to_string())?;
    }
    Ok(tpl)
}

fn consume(cli: &Cli, args: &ConsumeArgs) -> Result<Report> {
    let topic = topic_name(&args.shared, "weir-bench");
    let consumer: BaseConsumer = cli
        .consumer_config(&args.consumer)?
        .create()
        .map_err(|e| e.to_string())?;
    let wall = SystemTime::now();
    let start = Instant::now();
    let tpl = assignment(&consumer, &topic, cli, false)?;
    let partitions = tpl.count() as i32;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = start + cli.timeout();
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < args.records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += (m.payload_len() + m.key_len()) as u64;
            }
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None if Instant::now() >= deadline => {
                return Err(format!(
                    "topic \"{topic}\": {records} of {} records read within {}s",
                    args.records, cli.timeout_secs
                ));
            }
            None => {}
        }
    }
    let elapsed = start.elapsed();
    if !args.shared.json {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mb = bytes as f64 / (1024.0 * 1024.0);
        println!(
            "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec\n\
             {}, {}, {mb:.4}, {:.4}, {records}, {:.4}",
            humantime::format_rfc3339_millis(wall),
            humantime::format_rfc3339_millis(wall + elapsed),
            mb / secs,
            records as f64 / secs,
        );
    }
    Ok(Report {
        tool: cli.tool(),
        mode: "consume",
        topic,
        partitions,
        compression: "none".to_owned(),
        records,
        bytes,
        failed: 0,
        elapsed,
        latency: None,
        ack_latency: None,
    })
}

/// What the latency consumer thread saw.
#[derive(Default)]
struct Read {
    records: u64,
    bytes: u64,
    latency: Histogram,
    failure: Option<String>,
}

fn latency(cli: &Cli, args: &LatencyArgs) -> Result<Report> {
    if args.producer.size < STAMP_BYTES {
        return Err(format!("--size must be at least {STAMP_BYTES}"));
    }
    let topic = topic_name(&args.shared, "weir-bench-latency");
    let partitions = prepare_topic(cli, &topic, args.shared.partitions)?;
    let drain = Duration::from_millis(parse_ms(&args.drain_timeout)?);
    let consumer: BaseConsumer = cli
        .consumer_config(&args.consumer)?
        .create()
        .map_err(|e| e.to_string())?;
    let tpl = assignment(&consumer, &topic, cli, true)?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let producer: BaseProducer<Acks> = cli
        .producer_config(&args.producer)?
        .create_with_context(Acks {
            start,
            state: Mutex::default(),
        })
        .map_err(|e| e.to_string())?;

    let stop = AtomicBool::new(false);
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let expected = args.records;
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut read = Read::default();
            while read.records < expected && !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let now = micros_since(start);
                        let Some(stamp) = m
                            .payload()
                            .and_then(|v| v.get(..STAMP_BYTES))
                            .and_then(|b| <[u8; STAMP_BYTES]>::try_from(b).ok())
                        else {
                            continue;
                        };
                        read.records += 1;
                        read.bytes += (m.payload_len() + m.key_len()) as u64;
                        read.latency
                            .record(now.saturating_sub(u64::from_le_bytes(stamp)));
                    }
                    Some(Err(e)) => {
                        read.failure = Some(e.to_string());
                        break;
                    }
                    None => {}
                }
            }
            let _ = done_tx.send(());
            read
        });

        let mut value = payload(args.producer.size);
        let interval = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
        let sending = Instant::now();
        let mut result = Ok(());
        for i in 0..args.records {
            let due = sending + interval * u32::try_from(i).unwrap_or(u32::MAX);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let key = args.producer.keys.then(|| i.to_string());
            let sent = micros_since(start);
            value[..STAMP_BYTES].copy_from_slice(&sent.to_le_bytes());
            if let Err(e) = send(
                &producer,
                &topic,
                key.as_ref().map(String::as_bytes),
                &value,
                sent,
            ) {
                result = Err(e);
                break;
            }
        }
        let elapsed = sending.elapsed();
        if let Err(e) = producer.flush(cli.timeout()) {
            result = result.and(Err(format!("flush: {e}")));
        }
        if done_rx.recv_timeout(drain).is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let read = reader
            .join()
            .map_err(|_| "the reader thread panicked".to_owned())?;
        result?;
        let acks = std::mem::take(&mut *producer.context().state.lock().unwrap());
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
            topic: topic.clone(),
            partitions,
            compression: args.producer.compression.clone(),
            records: read.records,
            bytes: read.bytes,
            failed: acks.failed,
            elapsed,
            latency: Some(read.latency),
            ack_latency: Some(acks.latency),
        })
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (result, json, verb) = match &cli.job {
        Job::Version => {
            let (_, version) = rdkafka::util::get_rdkafka_version();
            println!("rust-rdkafka 0.39 with librdkafka {version}");
            return ExitCode::SUCCESS;
        }
        Job::Produce(a) => (produce(&cli, a), a.shared.json, "sent"),
        Job::Consume(a) => (consume(&cli, a), a.shared.json, ""),
        Job::Latency(a) => (
            latency(&cli, a),
            a.shared.json,
            "received (end-to-end: send to consume)",
        ),
    };
    match result {
        Ok(report) => {
            if json {
                println!("{}", report.json());
            } else if report.mode != "consume" {
                println!("{}", report.line(verb));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rdkafka-baseline: {e}");
            ExitCode::from(1)
        }
    }
}
