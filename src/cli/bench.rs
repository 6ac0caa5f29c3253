//! `weir bench produce|consume|latency`: the Kafka perf tests' numbers for
//! weir's own producer and consumer (see [`weir::bench`]).

use std::future::Future;
use std::io::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Subcommand;
use weir::ConnectionConfig;
use weir::bench::{
    self, BenchError, BenchReport, ConsumeBench, DEFAULT_RATE, DEFAULT_RECORDS, DEFAULT_SIZE,
    LatencyBench, ProduceBench, STAMP_BYTES,
};

use weir::kafka::idempotence::ProducerIdError;
use weir::produce::producer::ProducerConfig;

use super::connect::parse_duration;
use super::flags::{BatchFlags, FetchFlags};

use super::{non_negative, usage};

/// Measure weir's producer and consumer the way kafka-producer-perf-test
/// and kafka-consumer-perf-test do.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub job: Job,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum Job {
    /// Send N records as fast as possible; throughput and send-to-ack
    /// latency.
    Produce(ProduceBenchArgs),
    /// Read N records from the earliest offsets; throughput.
    Consume(ConsumeBenchArgs),
    /// Send N records at --rate per second and read them back in the same
    /// process; send-to-consume latency.
    Latency(LatencyBenchArgs),
}

/// Flags every benchmark has.
#[derive(Debug, clap::Args)]
pub struct Shared {
    /// Topic (default: weir-bench-<P>p, or weir-bench-latency-<P>p for
    /// latency), created with --partitions when it does not exist.
    #[arg(short, long, value_parser = super::topic_name)]
    pub topic: Option<String>,

    /// Partitions of a topic the benchmark creates [default: 1].
    // No -p: across weir's commands -p picks partitions by number.
    #[arg(long, value_parser = non_negative::<i32>, allow_negative_numbers = true)]
    pub partitions: Option<i32>,

    /// Print one JSON object with every number instead of the summary line.
    #[arg(long)]
    pub json: bool,
}

/// Producer flags.
#[derive(Debug, clap::Args)]
pub struct ProducerFlags {
    /// Value size in bytes.
    #[arg(short, long, default_value_t = DEFAULT_SIZE, value_parser = non_negative::<usize>, allow_negative_numbers = true)]
    pub size: usize,

    #[command(flatten)]
    pub batch: BatchFlags,

    /// Key each record with its index; records have null keys otherwise.
    #[arg(long)]
    pub keys: bool,
}

/// `weir bench produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceBenchArgs {
    #[command(flatten)]
    pub shared: Shared,

    /// Records to send.
    #[arg(short = 'n', long, default_value_t = DEFAULT_RECORDS, value_parser = non_negative::<u64>, allow_negative_numbers = true)]
    pub records: u64,

    #[command(flatten)]
    pub producer: ProducerFlags,
}

/// `weir bench consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeBenchArgs {
    #[command(flatten)]
    pub shared: Shared,

    /// Records to read.
    #[arg(short = 'n', long, default_value_t = DEFAULT_RECORDS, value_parser = non_negative::<u64>, allow_negative_numbers = true)]
    pub records: u64,

    #[command(flatten)]
    pub consumer: FetchFlags,
}

/// `weir bench latency`.
#[derive(Debug, clap::Args)]
pub struct LatencyBenchArgs {
    #[command(flatten)]
    pub shared: Shared,

    /// Records to send.
    #[arg(short = 'n', long, default_value_t = 100_000, value_parser = non_negative::<u64>, allow_negative_numbers = true)]
    pub records: u64,

    /// Records per second.
    #[arg(long, default_value_t = DEFAULT_RATE, value_parser = non_negative::<u64>, allow_negative_numbers = true)]
    pub rate: u64,

    /// How long, after the last send, the rest may take to arrive.
    #[arg(long, default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub drain_timeout: Duration,

    #[command(flatten)]
    pub producer: ProducerFlags,

    #[command(flatten)]
    pub consumer: FetchFlags,
}

impl Shared {
    fn topic(&self, prefix: &str) -> String {
        self.topic
            .clone()
            .unwrap_or_else(|| format!("{prefix}-{}p", self.partitions()))
    }

    fn partitions(&self) -> i32 {
        self.partitions.unwrap_or(1)
    }

    /// `records` is the job's `-n`: a benchmark of no records has no
    /// numbers to give (its rates and percentiles would be 0 or NaN).
    fn check(&self, records: u64) -> anyhow::Result<()> {
        if self.partitions() < 1 {
            return Err(usage("--partitions must be at least 1"));
        }
        if records == 0 {
            return Err(usage(
                "--records 0: a benchmark needs at least 1 record to measure",
            ));
        }
        Ok(())
    }
}

impl ProducerFlags {
    fn config(&self, timeout: Duration) -> anyhow::Result<ProducerConfig> {
        self.batch.config(timeout)
    }
}

/// A bench's failure, with the way around a refused producer id.
fn failed(e: BenchError) -> anyhow::Error {
    match e {
        BenchError::ProducerId(e @ ProducerIdError::Refused(_)) => {
            super::flags::without_idempotence_hint(e)
        }
        e => e.into(),
    }
}

/// Runs `weir bench`.
///
/// # Errors
///
/// Usage errors, a broker that cannot be reached, records that failed or
/// did not arrive.
pub async fn run(
    args: BenchArgs,
    config: ConnectionConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    match args.job {
        Job::Produce(a) => {
            a.shared.check(a.records)?;
            let bench = ProduceBench {
                topic: a.shared.topic("weir-bench"),
                records: a.records,
                size: a.producer.size,
                keys: a.producer.keys,
                producer: a.producer.config(config.timeout)?,
            };
            let idempotence = !a.producer.batch.no_idempotence;
            let report =
                bench::run_produce(&config, &bench, a.shared.partitions, idempotence, shutdown)
                    .await
                    .map_err(failed)?;
            print(&report, a.shared.json, || produce_line(&report, "sent"))?;
        }
        Job::Consume(a) => {
            a.shared.check(a.records)?;
            let bench = ConsumeBench {
                topic: a.shared.topic("weir-bench"),
                records: a.records,
                consumer: a.consumer.config(config.timeout)?,
            };
            let start = SystemTime::now();
            let report = bench::run_consume(&config, &bench, shutdown)
                .await
                .map_err(failed)?;
            let end = SystemTime::now();
            print(&report, a.shared.json, || {
                consume_lines(&report, start, end)
            })?;
        }
        Job::Latency(a) => {
            a.shared.check(a.records)?;
            if a.producer.size < STAMP_BYTES {
                return Err(usage(format!(
                    "--size must be at least {STAMP_BYTES} for latency: the send time travels in the value"
                )));
            }
            if a.rate == 0 {
                return Err(usage("--rate must be at least 1"));
            }
            let bench = LatencyBench {
                topic: a.shared.topic("weir-bench-latency"),
                records: a.records,
                size: a.producer.size,
                rate: a.rate,
                keys: a.producer.keys,
                producer: a.producer.config(config.timeout)?,
                consumer: a.consumer.config(config.timeout)?,
                drain_timeout: a.drain_timeout,
            };
            let idempotence = !a.producer.batch.no_idempotence;
            let report =
                bench::run_latency(&config, &bench, a.shared.partitions, idempotence, shutdown)
                    .await
                    .map_err(failed)?;
            print(&report, a.shared.json, || {
                produce_line(&report, "received (end-to-end: send to consume)")
            })?;
        }
    }
    Ok(())
}

fn print(report: &BenchReport, json: bool, line: impl FnOnce() -> String) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string(report).context("writing the report as JSON")?
    } else {
        line()
    };
    writeln!(super::stdout(), "{text}")?;
    if report.interrupted {
        super::eprint_line("weir: interrupted; the numbers cover what was done before the signal");
    }
    Ok(())
}

/// Milliseconds as the Kafka perf tests print them, with decimals for
/// sub-10 ms values that would otherwise all read 0 or 1.
fn ms(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// kafka-producer-perf-test's closing line.
fn produce_line(r: &BenchReport, verb: &str) -> String {
    let mut line = format!(
        "{} records {verb}, {:.1} records/sec ({:.2} MB/sec)",
        r.records, r.records_per_sec, r.mb_per_sec
    );
    if let Some(l) = r.latency_ms {
        line.push_str(&format!(
            ", {:.1} ms avg latency, {:.1} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th",
            l.avg,
            l.max,
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.p99_9)
        ));
    }
    line.push('.');
    line
}

/// A wall-clock time as the record timestamps are written.
fn rfc3339_millis(time: SystemTime) -> String {
    let ms = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    weir::timestamp::rfc3339_millis(ms)
}

/// kafka-consumer-perf-test's header and row.
fn consume_lines(r: &BenchReport, start: SystemTime, end: SystemTime) -> String {
    format!(
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec\n\
         {}, {}, {:.4}, {:.4}, {}, {:.4}",
        rfc3339_millis(start),
        rfc3339_millis(end),
        r.bytes as f64 / (1024.0 * 1024.0),
        r.mb_per_sec,
        r.records,
        r.records_per_sec,
    )
}
