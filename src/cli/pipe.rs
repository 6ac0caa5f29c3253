//! `weir pipe`: parses its flags into a [`weir::pipe::PipeTo`] and a
//! [`weir::job::runner::ReadPlan`].

use std::future::Future;
use std::time::Duration;

use weir::aggregate::Extractor;
use weir::consume::filter::Filter;
use weir::consume::output::{OutputFormat, Template};
use weir::job::StopReason;
use weir::job::runner::{CommitPlan, ReadPlan};
use weir::kafka::idempotence::ProducerIdError;
use weir::pipe::{PipeError, PipeSummary, PipeTo, Transform, ValueFrom, pipe};
use weir::{ConnectionConfig, ErrorChain};

use super::connect::parse_duration;
use super::consume::SelectionArgs;
use super::flags::{BatchFlags, FilterFlags, MembershipFlags, MetricsFlags};
use super::offsets::StoreArgs;
use super::{usage, usage_for};

/// Records of topics, filtered and reshaped, into another topic.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("any_group").args(["group", "share_group"]))]
pub struct PipeArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,

    /// The topic records are produced to (it must exist).
    #[arg(long = "to", value_name = "TOPIC", value_parser = super::topic_name)]
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

    /// Pipe as a member of this share group (KIP-932, Kafka 4.1+): the
    /// broker hands each record to one member; it is acknowledged
    /// (ACCEPT) once the output topic acknowledged its output record, a
    /// record that cannot be transformed is rejected (REJECT: never
    /// delivered again), and what is not yet written is given back
    /// (RELEASE) at a stop. Templates have {delivery_count}.
    #[arg(long, value_name = "GROUP", conflicts_with_all = ["group", "partitions", "instance", "until", "exit_at_end"])]
    pub share_group: Option<String>,

    /// With --share-group: stop after N records were handed to the
    /// output (and acknowledged).
    #[arg(short = 'c', long, value_parser = super::non_negative::<u64>, allow_negative_numbers = true, requires = "share_group")]
    pub count: Option<u64>,

    /// Time between commits.
    #[arg(long, default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true, requires = "group")]
    pub commit_interval: Duration,

    /// Each input partition's output records and the commit of its
    /// position in one Kafka transaction (needs -g): readers with
    /// read_committed see each input record's output once, across
    /// crashes and restarts. A restarted instance fences its predecessor
    /// and aborts what it left open.
    #[arg(long, requires = "any_group", conflicts_with = "no_idempotence")]
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
    /// Where the records go.
    pub(super) fn output(&self, timeout: Duration) -> anyhow::Result<PipeTo> {
        let mut to = PipeTo::new(&self.to, self.batch.config(timeout)?);
        if self.batch.no_idempotence {
            to = to.without_idempotence();
        }
        if self.exactly_once {
            to = to.exactly_once(self.transaction_timeout);
        }
        Ok(to)
    }

    pub(super) fn transform(&self) -> anyhow::Result<Transform> {
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
        Ok(Transform::default()
            .with_key(extractor("--key-from", &self.key_from)?)
            .with_value(value)
            .with_keep_partition(self.keep_partition))
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
    let to = args.output(config.timeout)?;
    let mut plan = ReadPlan::new(selection, consumer_config)
        .with_metrics_addr(args.metrics.addr()?)
        .with_pattern_refresh(args.selection.pattern_refresh);
    if let Some(group) = &args.group {
        let commits = CommitPlan::new(args.commit_interval).with_exclusive(args.exclusive);
        plan = plan.with_group(args.selection.group_plan(
            group,
            &args.store,
            &args.membership,
            Some(commits),
            true,
        )?);
    }
    let stop = async {
        shutdown.await;
        StopReason::Shutdown
    };
    let summary = match pipe(&config, plan, filter, transform, to, stop).await {
        Err(PipeError::ProducerId(e @ ProducerIdError::Refused(_))) => {
            anyhow::bail!("{} (--no-idempotence produces without)", ErrorChain(&e))
        }
        summary => summary?,
    };
    if !quiet {
        print_summary(&summary, &args.to);
    }
    Ok(())
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
