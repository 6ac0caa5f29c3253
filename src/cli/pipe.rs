//! `weir pipe`: parses its flags into a [`weir::pipe::PipeJob`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use weir::ConnectionConfig;
use weir::TopicPartition;
use weir::aggregate::Extractor;
use weir::consume::filter::Filter;
use weir::consume::output::{OutputFormat, Template};
use weir::job::Commits;
use weir::job::StopReason;
use weir::job::member::MemberInput;
use weir::kafka::admin::{Admin, AdminError};
use weir::pipe::{
    LanePlan, Lanes, PipeJob, PipeMemberPlan, PipeOutput, PipeSummary, Transform, ValueFrom,
};
use weir::produce::producer::{Producer, ProducerConfig};
use weir::read::{Consumer, assign};

use super::connect::parse_duration;
use super::consume::SelectionArgs;
use super::flags::{BatchFlags, FilterFlags, MembershipFlags, MetricsFlags};
use super::offsets::StoreArgs;
use super::{usage, usage_for};

/// Records of topics, filtered and reshaped, into another topic.
#[derive(Debug, clap::Args)]
pub struct PipeArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,

    /// The topic records are produced to (it must exist).
    #[arg(long = "to", value_name = "TOPIC")]
    pub to: String,

    #[command(flatten)]
    pub filters: FilterFlags,

    /// The output key, read from the input record as `weir count --by`
    /// reads keys: key, value, json:/POINTER or regex:RE. A record it
    /// cannot be read from is skipped and counted. Default: the input key.
    #[arg(long, value_name = "EXTRACTOR")]
    pub key_from: Option<String>,

    /// The output value, read as --key-from reads keys (json:/payload).
    /// Default: the input value.
    #[arg(long, value_name = "EXTRACTOR", conflicts_with = "format")]
    pub value: Option<String>,

    /// The output value from a template, as `weir consume -f` writes a
    /// record ("{key}={value}"), without the newline.
    #[arg(short = 'f', long, value_name = "TEMPLATE")]
    pub format: Option<String>,

    /// Write each record to the partition number it was read from,
    /// instead of placing it by its key (murmur2, as the Java client).
    #[arg(long)]
    pub keep_partition: bool,

    /// Pipe as a member of Kafka group G: the broker's group coordinator
    /// shares the partitions among the members (with --instance,
    /// --partitions, --until, -e or --exclusive they are chosen here
    /// instead); positions are kept in the group's records in weir's
    /// offsets topic, each committed only after the output topic
    /// acknowledged every record before it.
    #[arg(short, long)]
    pub group: Option<String>,

    /// Time between commits.
    #[arg(long, default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true, requires = "group")]
    pub commit_interval: Duration,

    /// Each input partition's output records and the commit of its
    /// position in one Kafka transaction (needs -g): readers with
    /// read_committed see each input record's output once, across
    /// crashes and restarts. A restarted instance fences its predecessor
    /// and aborts what it left open.
    #[arg(long, requires = "group", conflicts_with = "no_idempotence")]
    pub exactly_once: bool,

    /// How long the coordinator lets a transaction stay open before it
    /// aborts it (the Java producer's transaction.timeout.ms).
    #[arg(long, default_value = "1m", value_parser = parse_duration, requires = "exactly_once")]
    pub transaction_timeout: Duration,

    /// Exit 1 when an instance that started earlier commits a partition
    /// this one reads: of two, the later one yields (otherwise a warning).
    #[arg(long, requires = "group")]
    pub exclusive: bool,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub batch: BatchFlags,

    #[command(flatten)]
    pub membership: MembershipFlags,

    #[command(flatten)]
    pub metrics: MetricsFlags,
}

impl PipeArgs {
    fn transform(&self) -> anyhow::Result<Transform> {
        let extractor = |flag: &str, text: &Option<String>| {
            text.as_deref()
                .map(str::parse::<Extractor>)
                .transpose()
                .map_err(|e| usage_for(flag, e))
        };
        let value = match (extractor("--value", &self.value)?, &self.format) {
            (Some(e), _) => Some(ValueFrom::Extract(e)),
            (None, Some(t)) => Some(ValueFrom::Template(OutputFormat::Template(
                t.parse::<Template>()
                    .map_err(|e| usage(format!("--format: {e}")))?,
            ))),
            (None, None) => None,
        };
        Ok(Transform {
            key: extractor("--key-from", &self.key_from)?,
            value,
            keep_partition: self.keep_partition,
        })
    }
}

/// Runs `weir pipe`.
pub async fn run(
    args: PipeArgs,
    config: ConnectionConfig,
    quiet: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (selection, consumer_config) = args.selection.plan(config.timeout)?;
    let filter = Filter::new(args.filters.config()?);
    let transform = args.transform()?;
    let batching = args.batch.config(config.timeout)?;
    let _metrics = args.metrics.serve().await?;
    let client = Arc::new(config.client().await?);

    let mut admin = Admin::connect(&config).await?;
    let partitions = match admin.partition_count(&args.to).await {
        Err(AdminError::UnknownTopic { .. }) => anyhow::bail!(
            "output topic \"{}\" does not exist (weir does not create topics on its own: run weir topics create)",
            args.to
        ),
        found => found?,
    };
    drop(admin);
    let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);

    let stop = async {
        shutdown.await;
        StopReason::Shutdown
    };
    let lane_plan = LanePlan {
        topic: args.to.clone(),
        partitions,
        producer: batching.clone(),
        transaction_timeout: args.transaction_timeout,
    };
    if let Some(group) = args.group.as_ref() {
        if args.selection.joins_group() && !args.exclusive {
            let exactly_once = args.exactly_once.then(|| lane_plan.clone());
            let output = match &exactly_once {
                // Each generation opens the lanes of its partitions.
                Some(plan) => {
                    PipeOutput::ExactlyOnce(Lanes::open(&client, &config, group, plan, &[]).await?)
                }
                None => at_least_once(&client, &config, &args, partitions, batching).await?,
            };
            let plan = PipeMemberPlan {
                input: MemberInput {
                    membership: args.membership.config(group, &selection.topics)?,
                    selection,
                    consumer: consumer_config,
                    store: args.store.config(true)?,
                },
                commit_interval: args.commit_interval,
                exactly_once,
            };
            let job = PipeJob {
                filter,
                transform,
                output,
                commits: None,
                member: None,
            };
            let summary = weir::pipe::run_member(&client, &config, plan, job, stop).await?;
            if !quiet {
                print_summary(&summary, &args.to);
            }
            return Ok(());
        }
    }

    let mut assignments = assign(&client, &selection).await?;
    // Exactly once, the transactional producers start first: each aborts
    // what its predecessor left open, so the group's commits read next
    // are the last ones committed.
    let lanes = match (&args.group, args.exactly_once) {
        (Some(group), true) => {
            let inputs: Vec<TopicPartition> = assignments
                .iter()
                .map(|a| TopicPartition::new(Arc::clone(&a.topic), a.partition))
                .collect();
            Some(Lanes::open(&client, &config, group, &lane_plan, &inputs).await?)
        }
        _ => None,
    };
    let mut commits = None;
    if let Some(group) = &args.group {
        let store = args.store.config(true)?;
        let joined =
            weir::offsets::group::join(&client, &config, &store, group, &mut assignments).await?;
        if let Some((session, _)) = joined {
            commits = Some(Commits {
                session,
                interval: args.commit_interval,
                exclusive: args.exclusive,
            });
        }
    }
    if lanes.is_some() && commits.is_none() {
        anyhow::bail!("--exactly-once needs the offsets topic, which does not exist");
    }
    let output = match lanes {
        Some(lanes) => PipeOutput::ExactlyOnce(lanes),
        None => at_least_once(&client, &config, &args, partitions, batching).await?,
    };
    let consumer = Consumer::start(&client, assignments, consumer_config).await?;
    let job = PipeJob {
        filter,
        transform,
        output,
        commits,
        member: None,
    };
    let summary = weir::pipe::run(consumer, job, stop).await?;
    if !quiet {
        print_summary(&summary, &args.to);
    }
    Ok(())
}

/// The at-least-once output: one idempotent producer (unless
/// `--no-idempotence`).
async fn at_least_once(
    client: &Arc<rskafka::client::Client>,
    config: &ConnectionConfig,
    args: &PipeArgs,
    partitions: i32,
    batching: ProducerConfig,
) -> anyhow::Result<PipeOutput> {
    let producer_config = ProducerConfig {
        producer_id: args.batch.producer_id(config).await?,
        ..batching
    };
    let (producer, deliveries) =
        Producer::new(Arc::clone(client), &args.to, partitions, producer_config).await?;
    Ok(PipeOutput::AtLeastOnce {
        producer,
        deliveries,
    })
}

fn print_summary(summary: &PipeSummary, to: &str) {
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    let head = format!(
        "weir: piped {} of {} records read to topic \"{to}\" in {secs:.2}s, {:.0} records/s",
        summary.written,
        summary.read,
        summary.read as f64 / secs,
    );
    let figures = [
        (summary.filtered, "filtered out"),
        (
            summary.unparsed,
            "skipped (no key, value or filter field could be read)",
        ),
        (summary.commits, "commits"),
    ];
    super::eprint_summary(head, &figures, summary.stop == StopReason::Shutdown);
}
