//! `weir produce`: records from stdin or files into a topic.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::ValueEnum;
use weir::kafka::idempotence::ProducerIdError;
use weir::produce::input::{InputFormat, RecordParser, unescape};
use weir::produce::partitioner::PartitionerKind;
use weir::produce::{
    self, InputSource, ProduceJob, ProducePlan, ProduceSummary, StartError, TopicError, TopicPlan,
    TransactionEnd,
};
use weir::{ConnectionConfig, Header};

use super::connect::parse_duration;
use super::flags::BatchFlags;
use super::{non_negative, usage};
use std::sync::Arc;
use weir::registry::codec::{Encoder, SchemaChoice};

/// Produce records, one per line (or per delimiter), to a topic.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// Topic to produce to.
    #[arg(short, long, value_parser = super::topic_name)]
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

    /// Write the whole run as one Kafka transaction of this id: committed
    /// when every record read was delivered, aborted otherwise (a failed
    /// record, bad input under --on-error fail, a signal). A later run
    /// with the same id fences this one and aborts what it left open.
    #[arg(long, value_name = "ID", conflicts_with = "no_idempotence")]
    pub transactional_id: Option<String>,

    /// How long the transaction may stay open before the coordinator
    /// aborts it (Java's transaction.timeout.ms; at most the broker's
    /// transaction.max.timeout.ms, 15 minutes by default).
    #[arg(long, default_value = "1m", value_parser = parse_duration, requires = "transactional_id")]
    pub transaction_timeout: Duration,

    /// How often the topic's partition count is read again, so that
    /// partitions added while weir runs are used (as the Java client's
    /// metadata.max.age.ms).
    #[arg(long, default_value = "5m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub metadata_max_age: Duration,

    #[command(flatten)]
    pub batch: BatchFlags,

    /// Print one JSON line per record to stdout: line, partition, offset or error.
    #[arg(long)]
    pub report: bool,

    /// What a bad input line does: fail stops reading (records already
    /// sent stay sent), skip counts it and goes on.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    pub on_error: OnError,

    #[command(flatten)]
    pub registry: super::registry::RegistryArgs,

    /// Write each value (a JSON value per line, or --format json's
    /// "value" as JSON text) in Avro with this schema from --registry:
    /// SUBJECT (its latest version), SUBJECT@VERSION, id:N, or FILE.avsc
    /// with --register. A value that does not fit is bad input.
    #[arg(long, value_name = "SUBJECT[@VERSION]|id:N|FILE.avsc")]
    pub value_schema: Option<String>,

    /// Write each key in Avro with this schema, as --value-schema.
    #[arg(long, value_name = "SUBJECT[@VERSION]|id:N|FILE.avsc")]
    pub key_schema: Option<String>,

    /// Register a schema file given to --value-schema or --key-schema
    /// under the topic's subject (TOPIC-value, TOPIC-key) first; the
    /// registry answers the id it already has for the same schema.
    #[arg(long)]
    pub register: bool,

    /// Create the topic first if it does not exist.
    #[arg(long)]
    pub create_topic: bool,

    /// Partitions of a topic made by --create-topic.
    #[arg(long, default_value_t = 1, requires = "create_topic", value_parser = non_negative::<i32>, allow_negative_numbers = true)]
    pub partitions: i32,

    /// Replication factor of a topic made by --create-topic (default: the
    /// cluster's default.replication.factor).
    #[arg(long, requires = "create_topic", value_parser = non_negative::<i16>, allow_negative_numbers = true)]
    pub replication_factor: Option<i16>,
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

/// Bad-input policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnError {
    /// Stop reading at the first bad line.
    Fail,
    /// Skip bad lines and go on.
    Skip,
}

impl From<OnError> for produce::OnError {
    fn from(o: OnError) -> Self {
        match o {
            OnError::Fail => Self::Fail,
            OnError::Skip => Self::Skip,
        }
    }
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
            value_encoder: None,
            key_encoder: None,
        })
    }

    fn inputs(&self) -> Vec<InputSource> {
        if self.files.is_empty() {
            vec![InputSource::Stdin]
        } else {
            self.files
                .iter()
                .map(|f| match f.to_str() {
                    Some("-") => InputSource::Stdin,
                    _ => InputSource::File(f.clone()),
                })
                .collect()
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

impl ProduceArgs {
    /// What the run writes to, and how.
    fn plan(&self, timeout: Duration) -> anyhow::Result<ProducePlan> {
        let args = self;
        let partitioner: PartitionerKind = args
            .partitioner
            .parse()
            .map_err(|e| usage(format!("--partitioner: {e}")))?;
        let batching = args.batch.config(timeout)?;
        if args.metadata_max_age.is_zero() {
            return Err(usage("--metadata-max-age must be longer than 0"));
        }
        if args.partitions < 1 {
            return Err(usage(format!(
                "--partitions {} for topic \"{}\": a topic needs at least 1 partition",
                args.partitions, args.topic
            )));
        }
        if let Some(replication_factor) = args.replication_factor.filter(|&r| r < 1) {
            return Err(usage(format!(
                "--replication-factor {replication_factor} for topic \"{}\": at least 1 replica is needed",
                args.topic
            )));
        }
        let mut plan = ProducePlan::new(
            TopicPlan::new(&args.topic).with_create(
                args.create_topic.then_some((
                    args.partitions,
                    args.replication_factor
                        .unwrap_or(weir::kafka::admin::NewTopic::DEFAULT_REPLICATION),
                )),
            ),
            batching
                .with_partitioner(partitioner)
                .with_metadata_max_age(args.metadata_max_age),
        );
        plan.partition = args.partition;
        plan.idempotence = !args.batch.no_idempotence;
        plan.transactional_id = args.transactional_id.clone();
        plan.transaction_timeout = args.transaction_timeout;
        Ok(plan)
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
    // The summary's time is the whole run: reaching the cluster and the
    // producer's start too.
    let began = std::time::Instant::now();
    let mut parser = args.parser()?;
    let plan = args.plan(config.timeout)?;
    (parser.value_encoder, parser.key_encoder) = encoders(&args, config.timeout).await?;
    let delimiter = unescape(&args.delimiter);
    if delimiter.is_empty() {
        return Err(usage("--delimiter is empty"));
    }
    let inputs = args.inputs();
    // The error's own Display does not follow its source (`#` is anyhow's).
    let readers =
        produce::open_inputs(&inputs).map_err(|e| usage(weir::ErrorChain(&e).to_string()))?;

    let started = match produce::start(&config, plan).await {
        Err(StartError::Topic(TopicError::UnknownTopic { topic })) => anyhow::bail!(
            "topic \"{topic}\" does not exist (weir does not create topics on its own: pass \
             --create-topic --partitions N, or run weir topics create)"
        ),
        Err(StartError::ProducerId(e @ ProducerIdError::Refused(_))) => {
            return Err(super::flags::without_idempotence_hint(e));
        }
        started => started?,
    };
    let partitions = started.partitions;

    let report: Option<Box<dyn Write + Send>> = match args.report {
        true if super::STDOUT_CLOSED_AT_START.load(Ordering::Relaxed) => {
            tracing::warn!("stdout is closed: --report has nowhere to go");
            None
        }
        true => Some(Box::new(std::io::stdout())),
        false => None,
    };
    // A progress line while a file is read and stderr is a terminal.
    let progress: Option<produce::Progress> =
        (std::io::stderr().is_terminal() && !std::io::stdin().is_terminal()).then(|| {
            Box::new(|accepted: u64, elapsed: Duration| {
                let secs = elapsed.as_secs_f64().max(1e-9);
                let _ = write!(
                    std::io::stderr(),
                    "\r{accepted} records read, {:.0} records/s   ",
                    accepted as f64 / secs
                );
            }) as produce::Progress
        });
    let drew_progress = progress.is_some();
    let job = ProduceJob {
        inputs,
        delimiter,
        parser,
        on_error: args.on_error.into(),
        report,
        progress,
        partition_hint: (args.format == Format::Json && args.partition.is_none())
            .then(|| "--partition-from none lets the partitioner place records by key".to_owned()),
        transaction: started.transaction,
    };
    let mut summary =
        produce::run(started.producer, started.deliveries, readers, job, shutdown).await?;
    summary.elapsed = began.elapsed();
    if drew_progress {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }

    print_summary(&summary, &args.topic, partitions);
    Ok(summary.outcome()?)
}

/// The value's and key's encoders (`--value-schema`, `--key-schema`),
/// their schemas had from the registry before anything is read.
async fn encoders(
    args: &ProduceArgs,
    timeout: Duration,
) -> anyhow::Result<(Option<Arc<Encoder>>, Option<Arc<Encoder>>)> {
    if args.value_schema.is_none() && args.key_schema.is_none() {
        if args.register {
            return Err(usage(
                "--register registers the file given to --value-schema or --key-schema",
            ));
        }
        return Ok((None, None));
    }
    let Some(registry) = args.registry.client(timeout)? else {
        return Err(usage("--value-schema and --key-schema need --registry URL"));
    };
    let mut encoders = [None, None];
    for (slot, (given, part)) in encoders
        .iter_mut()
        .zip([(&args.value_schema, "value"), (&args.key_schema, "key")])
    {
        let Some(given) = given else { continue };
        let choice: SchemaChoice = given
            .parse()
            .map_err(|e| usage(format!("--{part}-schema {e}")))?;
        let subject = format!("{}-{part}", args.topic);
        *slot = Some(Arc::new(
            Encoder::new(&registry, &choice, &subject, args.register).await?,
        ));
    }
    let [value, key] = encoders;
    Ok((value, key))
}

/// The run's one line on stderr.
fn print_summary(summary: &ProduceSummary, topic: &str, partitions: i32) {
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    let mut line = format!(
        "weir: produced {} to topic \"{}\" ({}) in {secs:.2}s, {:.0} records/s, {:.1} MB/s of values",
        weir::plural(summary.acked, "record"),
        topic,
        weir::plural(partitions, "partition"),
        summary.acked as f64 / secs,
        summary.bytes as f64 / secs / 1e6,
    );
    if summary.failed > 0 {
        line.push_str(&format!("; {} failed", summary.failed));
    }
    if summary.skipped > 0 {
        line.push_str(&format!("; {} bad input records skipped", summary.skipped));
    }
    if summary.interrupted {
        line.push_str("; interrupted");
    }
    match summary.transaction {
        Some(TransactionEnd::Committed) => line.push_str("; transaction committed"),
        Some(TransactionEnd::Aborted) => {
            line.push_str("; transaction aborted: read_committed readers see none of it");
        }
        None => {}
    }
    super::eprint_line(&line);
}
