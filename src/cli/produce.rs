//! `weir produce`: records from stdin or files into a topic.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::ValueEnum;
use rskafka::client::partition::Compression;
use tokio::sync::mpsc;
use weir::admin::{Admin, AdminError, NewTopic};
use weir::partitioner::PartitionerKind;
use weir::producer::{DEFAULT_BATCH_BYTES, Delivery, ProduceError, Producer, ProducerConfig};
use weir::record::{DelimitedReader, InputFormat, ParseError, RecordParser, unescape};
use weir::timestamp::TimestampLimits;
use weir::{ConnectionConfig, Header};

use super::connect::parse_duration;
use super::{non_negative, usage};

/// Produce records, one per line (or per delimiter), to a topic.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// Topic to produce to.
    #[arg(short, long)]
    pub topic: String,

    /// Input files, read in order; none or "-" reads stdin.
    pub files: Vec<PathBuf>,

    /// Send every record to this partition (overrides the partitioner).
    #[arg(short, long, value_parser = non_negative::<i32>, allow_negative_numbers = true)]
    pub partition: Option<i32>,

    /// With --format json: keep each record's "partition" (json), or let
    /// the partitioner place it by key (none: copying into a topic with
    /// fewer partitions, or re-partitioning).
    #[arg(long, value_enum, default_value = "json")]
    pub partition_from: PartitionFrom,

    /// How keyed records are placed: murmur2 (Java's default), crc32
    /// (librdkafka's consistent), random, round-robin.
    #[arg(long, default_value = "murmur2")]
    pub partitioner: String,

    /// Record delimiter; escapes \n \t \r \0 are understood.
    #[arg(short = 'D', long, default_value = "\\n")]
    pub delimiter: String,

    /// Split key and value at the first occurrence of SEP (kcat's -K).
    #[arg(short = 'K', long, value_name = "SEP")]
    pub key_delimiter: Option<String>,

    /// The same key for every record.
    #[arg(
        short,
        long,
        conflicts_with = "key_delimiter",
        allow_hyphen_values = true
    )]
    pub key: Option<String>,

    /// Header for every record, after the record's own; repeat it for
    /// more, in order (a key may repeat). KEY alone, without "=", is a
    /// null value (as kcat's -H); KEY= is an empty one.
    #[arg(short = 'H', long = "header", value_name = "KEY[=VALUE]")]
    pub headers: Vec<String>,

    /// Input format: raw records, or JSON lines with key, value (or
    /// key_b64, value_b64), headers (a list as weir consume --json writes
    /// it, [key, value] pairs, or an object), partition, timestamp (ms).
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    pub format: Format,

    /// Send empty values as null (tombstones).
    #[arg(long)]
    pub null_empty: bool,

    /// How long a batch waits for more records after its first record
    /// arrives (as librdkafka's linger.ms).
    #[arg(long, default_value = "5ms", value_parser = parse_duration, allow_hyphen_values = true)]
    pub linger: Duration,

    /// How often the topic's partition count is read again, so that
    /// partitions added while weir runs are used (as the Java client's
    /// metadata.max.age.ms).
    #[arg(long, default_value = "5m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub metadata_max_age: Duration,

    /// Largest batch in bytes (at most 1 MiB minus request overhead).
    #[arg(long, default_value_t = DEFAULT_BATCH_BYTES, value_parser = non_negative::<usize>, allow_negative_numbers = true)]
    pub batch_bytes: usize,

    /// Batch compression.
    #[arg(long, value_enum, default_value_t = Codec::None)]
    pub compression: Codec,

    /// Print one JSON line per record to stdout: line, partition, offset or error.
    #[arg(long)]
    pub report: bool,

    /// What a bad input line does: fail stops reading (records already
    /// sent stay sent), skip counts it and goes on.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    pub on_error: OnError,

    /// Create the topic first if it does not exist.
    #[arg(long)]
    pub create_topic: bool,

    /// Partitions of a topic made by --create-topic.
    #[arg(long, default_value_t = 1, requires = "create_topic", value_parser = non_negative::<i32>, allow_negative_numbers = true)]
    pub partitions: i32,

    /// Replication factor of a topic made by --create-topic.
    #[arg(long, default_value_t = 1, requires = "create_topic", value_parser = non_negative::<i16>, allow_negative_numbers = true)]
    pub replication_factor: i16,
}

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The record is the value (or key SEP value with -K).
    Raw,
    /// One JSON object per record.
    Json,
}

/// Where a JSON record's partition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PartitionFrom {
    /// Its "partition" field, when it has one.
    Json,
    /// The partitioner, by key, whatever the field says.
    None,
}

/// Compression codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// LZ4.
    Lz4,
    /// Snappy.
    Snappy,
    /// Zstandard.
    Zstd,
}

impl From<Codec> for Compression {
    fn from(c: Codec) -> Self {
        match c {
            Codec::None => Self::NoCompression,
            Codec::Gzip => Self::Gzip,
            Codec::Lz4 => Self::Lz4,
            Codec::Snappy => Self::Snappy,
            Codec::Zstd => Self::Zstd,
        }
    }
}

/// Bad-input policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnError {
    /// Stop reading at the first bad line.
    Fail,
    /// Skip bad lines and go on.
    Skip,
}

/// Records read in one go by the input thread.
const CHUNK: usize = 1024;

/// An input record and where it came from.
struct Input {
    source: usize,
    line: u64,
    parsed: Result<weir::producer::ProduceRecord, ParseError>,
}

/// Tags pack the input index and line number: 24 bits of file, 40 of line.
fn tag(source: usize, line: u64) -> u64 {
    ((source as u64) << 40) | (line & ((1 << 40) - 1))
}

fn untag(tag: u64) -> (usize, u64) {
    ((tag >> 40) as usize, tag & ((1 << 40) - 1))
}

impl ProduceArgs {
    fn parser(&self) -> anyhow::Result<RecordParser> {
        let headers = self
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let key_delimiter = match &self.key_delimiter {
            Some(sep) if sep.is_empty() => return Err(usage("--key-delimiter is empty")),
            Some(sep) => Some(unescape(sep)),
            None => None,
        };
        if key_delimiter.is_some() && self.format == Format::Json {
            return Err(usage("--key-delimiter does not apply to --format json"));
        }
        Ok(RecordParser {
            format: match self.format {
                Format::Raw => InputFormat::Raw,
                Format::Json => InputFormat::Json,
            },
            key_delimiter,
            fixed_key: self.key.as_ref().map(|k| k.as_bytes().to_vec()),
            headers,
            null_empty: self.null_empty,
            partition: self.partition,
            ignore_json_partition: self.partition_from == PartitionFrom::None,
        })
    }

    fn sources(&self) -> Vec<String> {
        if self.files.is_empty() {
            vec!["-".to_owned()]
        } else {
            self.files.iter().map(|f| f.display().to_string()).collect()
        }
    }
}

/// One `-H` argument: `KEY=VALUE`, or `KEY` alone for a null value.
fn parse_header(arg: &str) -> anyhow::Result<Header> {
    let (key, value) = match arg.split_once('=') {
        Some((k, v)) => (k, Some(v.as_bytes().to_vec())),
        None => (arg, None),
    };
    if key.is_empty() {
        return Err(usage(format!(
            "--header \"{arg}\" has an empty key: expected KEY=VALUE, or KEY for a null value"
        )));
    }
    Ok((key.to_owned(), value))
}

/// Counters shared with the delivery reader.
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    failed: AtomicU64,
    delivery_failed: AtomicBool,
    first_error: std::sync::Mutex<Option<String>>,
}

/// `--report` output, shared by the delivery reader and the input loop.
type ReportOut = Arc<std::sync::Mutex<Report>>;

/// The `--report` stream. Reports are a side channel of the records: when
/// their reader goes away (`--report | head`), reports stop with a warning
/// and producing goes on to the end of the input; the summary and the exit
/// code still say what was delivered.
struct Report {
    out: std::io::BufWriter<std::io::Stdout>,
    written: u64,
    closed: bool,
}

impl Report {
    fn new() -> Self {
        let closed = super::STDOUT_CLOSED_AT_START.load(Ordering::Relaxed);
        if closed {
            tracing::warn!("stdout is closed: --report has nowhere to go");
        }
        Self {
            out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
            written: 0,
            closed,
        }
    }

    /// Handles a failed write: a closed stream ends the reports.
    fn failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e);
        }
        if !self.closed {
            self.closed = true;
            tracing::warn!(
                "the --report reader closed stdout after about {} reports; producing goes on without them",
                self.written
            );
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.out.flush() {
            Ok(()) => Ok(()),
            Err(e) => self.failed(e),
        }
    }
}

fn write_report(
    out: &ReportOut,
    obj: serde_json::Map<String, serde_json::Value>,
) -> std::io::Result<()> {
    let mut out = out
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if out.closed {
        return Ok(());
    }
    let written = serde_json::to_writer(&mut out.out, &obj)
        .map_err(std::io::Error::from)
        .and_then(|()| out.out.write_all(b"\n"));
    match written {
        Ok(()) => {
            out.written += 1;
            Ok(())
        }
        Err(e) => out.failed(e),
    }
}

/// Runs `weir produce`.
///
/// # Errors
///
/// Usage errors; an unknown topic; failed records (the count and the first
/// error); a bad input line under `--on-error fail`.
pub async fn run(
    args: ProduceArgs,
    config: ConnectionConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let parser = args.parser()?;
    let partitioner: PartitionerKind = args
        .partitioner
        .parse()
        .map_err(|e: String| usage(format!("--partitioner: {e}")))?;
    if args.batch_bytes == 0 || args.batch_bytes > DEFAULT_BATCH_BYTES {
        return Err(usage(format!(
            "--batch-bytes {} is out of range (1..={DEFAULT_BATCH_BYTES}: the broker rejects requests over 1 MiB)",
            args.batch_bytes
        )));
    }
    if args.metadata_max_age.is_zero() {
        return Err(usage("--metadata-max-age must be longer than 0"));
    }
    if args.partitions < 1 {
        return Err(usage(format!(
            "--partitions {} for topic \"{}\": a topic needs at least 1 partition",
            args.partitions, args.topic
        )));
    }
    if args.replication_factor < 1 {
        return Err(usage(format!(
            "--replication-factor {} for topic \"{}\": at least 1 replica is needed",
            args.replication_factor, args.topic
        )));
    }
    let delimiter = unescape(&args.delimiter);
    if delimiter.is_empty() {
        return Err(usage("--delimiter is empty"));
    }
    let sources = args.sources();
    let readers = open_sources(&sources)?;

    let (partitions, timestamps) = topic_partitions(&args, &config).await?;
    // Out of range is a fact of the cluster (partitions can be added), not
    // of the command line: a runtime failure, as in `weir consume -p`.
    if let Some(p) = args.partition {
        if !(0..partitions).contains(&p) {
            anyhow::bail!(
                "topic \"{}\" has {}, --partition {p} is out of range",
                args.topic,
                weir::plural(partitions, "partition")
            );
        }
    }
    let client = config.client().await?;
    let producer_config = ProducerConfig {
        linger: args.linger,
        batch_bytes: args.batch_bytes,
        compression: args.compression.into(),
        partitioner,
        delivery_timeout: config.timeout,
        metadata_max_age: args.metadata_max_age,
        timestamps,
    };
    let (mut producer, deliveries) =
        Producer::new(Arc::new(client), &args.topic, partitions, producer_config).await?;

    let tally = Arc::new(Tally::default());
    let report_out: Option<ReportOut> = args
        .report
        .then(|| Arc::new(std::sync::Mutex::new(Report::new())));
    let reporter = tokio::spawn(report_deliveries(
        deliveries,
        Arc::clone(&tally),
        report_out.clone(),
        sources.clone(),
    ));

    // Input is read and parsed on a blocking thread, in chunks.
    // The thread is never joined: on a signal it may sit in a blocking
    // read of stdin, and the process ends without it.
    let (chunks_tx, mut chunks) = mpsc::channel::<Result<Vec<Input>, String>>(16);
    let stop_reading = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop_reading);
        let names = sources.clone();
        std::thread::spawn(move || {
            read_inputs(readers, &names, delimiter, parser, chunks_tx, stop)
        });
    }
    let progress = std::io::stderr().is_terminal() && !std::io::stdin().is_terminal();

    let started = Instant::now();
    let mut accepted: u64 = 0;
    let mut bytes: u64 = 0;
    let mut skipped: u64 = 0;
    let mut bad_input: Option<String> = None;
    let mut interrupted = false;
    let mut read_error: Option<String> = None;
    let mut last_progress = Instant::now();
    tokio::pin!(shutdown);
    'read: loop {
        let chunk = tokio::select! {
            chunk = chunks.recv() => chunk,
            () = &mut shutdown => {
                interrupted = true;
                None
            }
        };
        let chunk = match chunk {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                read_error = Some(e);
                break;
            }
            None => break,
        };
        for input in chunk {
            if tally.delivery_failed.load(Ordering::Relaxed) {
                break 'read;
            }
            let where_ = format!("{}:{}", sources[input.source], input.line);
            let result = match input.parsed {
                Ok(record) => {
                    let size = record.value.as_ref().map_or(0, Vec::len) as u64;
                    match producer.send(tag(input.source, input.line), record).await {
                        Ok(_) => {
                            accepted += 1;
                            bytes += size;
                            Ok(())
                        }
                        Err(e @ ProduceError::PartitionOutOfRange { .. })
                            if args.format == Format::Json && args.partition.is_none() =>
                        {
                            Err(format!(
                                "{e} (--partition-from none lets the partitioner place records by key)"
                            ))
                        }
                        Err(
                            e @ (ProduceError::RecordTooLarge { .. }
                            | ProduceError::PartitionOutOfRange { .. }
                            | ProduceError::Timestamp { .. }),
                        ) => Err(e.to_string()),
                        Err(e) => return Err(e).context(where_),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(message) = result {
                let message = format!("{where_}: {message}");
                if let Some(out) = &report_out {
                    let mut obj = serde_json::Map::new();
                    if sources.len() > 1 {
                        obj.insert("file".into(), sources[input.source].clone().into());
                    }
                    obj.insert("line".into(), input.line.into());
                    obj.insert("error".into(), message.clone().into());
                    write_report(out, obj).context("writing --report")?;
                }
                match args.on_error {
                    OnError::Skip => {
                        tracing::warn!("skipped {message}");
                        skipped += 1;
                    }
                    OnError::Fail => {
                        bad_input = Some(message);
                        break 'read;
                    }
                }
            }
        }
        if progress && last_progress.elapsed() > Duration::from_millis(200) {
            last_progress = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let _ = write!(
                std::io::stderr(),
                "\r{accepted} records read, {:.0} records/s   ",
                accepted as f64 / secs
            );
        }
    }
    stop_reading.store(true, Ordering::Relaxed);
    drop(chunks);
    if progress {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
    producer.close().await;
    reporter.await.context("delivery reporter")??;
    if let Some(out) = &report_out {
        out.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .flush()
            .context("writing --report")?;
    }

    let elapsed = started.elapsed();
    let acked = tally.acked.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut summary = format!(
        "weir: produced {acked} records to topic \"{}\" ({}) in {secs:.2}s, {:.0} records/s, {:.1} MB/s of values",
        args.topic,
        weir::plural(partitions, "partition"),
        acked as f64 / secs,
        bytes as f64 / secs / 1e6,
    );
    if failed > 0 {
        summary.push_str(&format!("; {failed} failed"));
    }
    if skipped > 0 {
        summary.push_str(&format!("; {skipped} bad input records skipped"));
    }
    if interrupted {
        summary.push_str("; interrupted");
    }
    super::eprint_line(&summary);
    debug_assert_eq!(acked + failed, accepted);

    if let Some(e) = read_error {
        anyhow::bail!("{e} (records before it were sent)");
    }
    if failed > 0 {
        let first = tally
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        anyhow::bail!("{failed} of {accepted} records failed; first error: {first}");
    }
    if let Some(message) = bad_input {
        anyhow::bail!(
            "{message} (records before it were sent; --on-error skip goes on past bad input)"
        );
    }
    Ok(())
}

/// The topic's partition count, creating it when asked to, and the create
/// times it accepts.
async fn topic_partitions(
    args: &ProduceArgs,
    config: &ConnectionConfig,
) -> anyhow::Result<(i32, TimestampLimits)> {
    let mut admin = Admin::connect(config).await?;
    let partitions = match admin.partition_count(&args.topic).await {
        Ok(n) => i32::try_from(n)?,
        Err(AdminError::UnknownTopic { topic }) if args.create_topic => {
            admin
                .create_topic(&NewTopic {
                    name: topic,
                    partitions: args.partitions,
                    replication_factor: args.replication_factor,
                    configs: Vec::new(),
                })
                .await?;
            args.partitions
        }
        Err(AdminError::UnknownTopic { topic }) => anyhow::bail!(
            "topic \"{topic}\" does not exist (weir does not create topics on its own: pass --create-topic --partitions N, or run weir topics create)"
        ),
        Err(e) => return Err(e.into()),
    };
    // A principal allowed to write may still be denied DescribeConfigs:
    // Kafka's defaults are then the best guess, and the broker still has
    // the last word.
    let timestamps = match admin.topic_configs(&args.topic).await {
        Ok(configs) => TimestampLimits::from_configs(
            configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_deref())),
        ),
        Err(e) => {
            tracing::warn!(
                topic = args.topic.as_str(),
                error = %e,
                "cannot read the topic's timestamp limits; assuming Kafka's defaults"
            );
            TimestampLimits::default()
        }
    };
    Ok((partitions, timestamps))
}

type Source = BufReader<Box<dyn Read + Send>>;

fn open_sources(sources: &[String]) -> anyhow::Result<Vec<Source>> {
    sources
        .iter()
        .map(|s| -> anyhow::Result<Source> {
            let inner: Box<dyn Read + Send> = if s == "-" {
                Box::new(std::io::stdin())
            } else {
                Box::new(
                    File::open(s).map_err(|e| usage(format!("cannot open input \"{s}\": {e}")))?,
                )
            };
            Ok(BufReader::with_capacity(1 << 20, inner))
        })
        .collect()
}

/// Reads and parses every input into chunks; a read error is the last
/// message sent.
fn read_inputs(
    readers: Vec<Source>,
    names: &[String],
    delimiter: Vec<u8>,
    parser: RecordParser,
    chunks: mpsc::Sender<Result<Vec<Input>, String>>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = Vec::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    for (source, reader) in readers.into_iter().enumerate() {
        let mut reader = DelimitedReader::new(reader, delimiter.clone());
        let mut line = 0;
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match reader.next_record(&mut buf) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let full = std::mem::take(&mut chunk);
                    let _ = chunks.blocking_send(Ok(full));
                    let _ = chunks.blocking_send(Err(format!(
                        "cannot read input \"{}\" after line {line}: {e}",
                        names[source]
                    )));
                    return;
                }
            }
            line += 1;
            chunk.push(Input {
                source,
                line,
                parsed: parser.parse(&buf),
            });
            // Hand over a full chunk, or whatever is read when the next
            // read may block (a pipe or terminal that is slow to write).
            if chunk.len() == CHUNK || reader.get_ref().buffer().is_empty() {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                if chunks.blocking_send(Ok(full)).is_err() {
                    return;
                }
            }
        }
    }
    if !chunk.is_empty() {
        let _ = chunks.blocking_send(Ok(chunk));
    }
}

async fn report_deliveries(
    mut deliveries: mpsc::UnboundedReceiver<Delivery>,
    tally: Arc<Tally>,
    report: Option<ReportOut>,
    sources: Vec<String>,
) -> anyhow::Result<()> {
    let many = sources.len() > 1;
    while let Some(d) = deliveries.recv().await {
        let (source, line) = untag(d.tag);
        match &d.result {
            Ok(_) => {
                tally.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                tally.delivery_failed.store(true, Ordering::Relaxed);
                let mut first = tally
                    .first_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| format!("{}:{line}: {e}", sources[source]));
            }
        }
        if let Some(out) = &report {
            let mut obj = serde_json::Map::new();
            if many {
                obj.insert("file".into(), sources[source].clone().into());
            }
            obj.insert("line".into(), line.into());
            obj.insert("partition".into(), d.partition.into());
            match &d.result {
                Ok(offset) => obj.insert("offset".into(), (*offset).into()),
                Err(e) => obj.insert("error".into(), e.to_string().into()),
            };
            write_report(out, obj).context("writing --report")?;
        }
    }
    Ok(())
}
