//! `weir consume`: records from topics to stdout, filtered and formatted.

use std::future::Future;
use std::time::Duration;

use weir::ConnectionConfig;
use weir::consume::filter::Filter;
use weir::consume::output::{OutputFormat, RecordWriter, Template, stop_or_stdout_closed};
use weir::consume::{ConsumeSummary, consume};
use weir::job::StopReason;
use weir::job::runner::{CommitPlan, GroupPlan, ReadPlan};
use weir::read::position::parse_time;
use weir::read::{ConsumerConfig, Instance, Selection, StartOffset, Until};

use super::connect::parse_duration;
use super::flags::{FetchFlags, FilterFlags, MembershipFlags, MetricsFlags};
use super::offsets::StoreArgs;
use super::{non_negative, usage};

/// Which partitions are read, from where to where: the flags `weir
/// consume` and `weir count` share.
#[derive(Debug, clap::Args)]
pub struct SelectionArgs {
    /// Topic to read (repeatable); one beginning with ^ is a regular
    /// expression matched against whole topic names (internal topics,
    /// named __*, excluded), e.g. '^logs-.*'.
    #[arg(short, long = "topic", required = true, value_parser = super::topic_or_pattern)]
    pub topics: Vec<String>,

    /// How often topic patterns are matched again: a topic that begins
    /// or ends matching starts the job again on the new set.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub pattern_refresh: std::time::Duration,

    /// Only these partitions, e.g. 0,3,5 (default: all).
    #[arg(short, long, value_delimiter = ',', value_parser = non_negative::<i32>, allow_hyphen_values = true)]
    pub partitions: Option<Vec<i32>>,

    /// Only this instance's share: partition p when p % N == i.
    #[arg(long, value_name = "i/N", allow_hyphen_values = true)]
    pub instance: Option<String>,

    /// Where to start: earliest, latest, OFFSET, -N (N before the end),
    /// @TIME (RFC 3339 or epoch ms), or a duration ago such as 15m
    /// [default: earliest]. With --share-group: earliest or latest, where
    /// a new share group starts (refused on an existing one).
    #[arg(short = 'o', long, allow_hyphen_values = true)]
    pub from: Option<String>,

    /// Where to stop: end (each partition's end at start: the last
    /// stable offset under read_committed, else the high watermark) or
    /// @TIME. Without it, new records are followed.
    #[arg(long, value_name = "end|@TIME", allow_hyphen_values = true)]
    pub until: Option<String>,

    /// Same as --until end (kcat's -e).
    #[arg(short = 'e', conflicts_with = "until")]
    pub exit_at_end: bool,

    #[command(flatten)]
    pub fetch: FetchFlags,

    #[command(flatten)]
    pub decode: super::registry::DecodeArgs,
}

/// Read records from topics, one task per partition, to stdout.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,

    /// Stop after writing N records (0: write none and exit).
    #[arg(short = 'c', long, value_parser = non_negative::<u64>, allow_negative_numbers = true)]
    pub count: Option<u64>,

    /// Output template with fields {topic} {partition} {offset}
    /// {timestamp} {timestamp_type} {date} {date:FORMAT} {key} {value}
    /// {key_length} {value_length} {headers} and escapes \n \t; a newline
    /// is added unless it ends with \n. {date} is RFC 3339 (UTC, ms);
    /// FORMAT takes %Y %m %d %H %M %S %L (ms) %s %F %T %z %Z. Lengths are
    /// -1 for null. {headers} is k=v,k=v in the record's order, a null
    /// value as the key alone.
    #[arg(short, long, conflicts_with = "json")]
    pub format: Option<String>,

    /// What a null key or value writes (in {key}, {value} and the default
    /// output), so that it differs from an empty one; kcat's -Z is
    /// --null NULL. Default: nothing.
    #[arg(long, value_name = "TEXT", conflicts_with = "json")]
    pub null: Option<String>,

    /// One JSON object per record; bytes that are not UTF-8 are base64
    /// under key_b64, value_b64. Headers are a list in the record's order:
    /// {"key":K,"value":V or null} or {"key":K,"value_b64":B}.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub filters: FilterFlags,

    /// Read as a member of Kafka group G: the broker's group coordinator
    /// shares the partitions among the members (with --instance,
    /// --partitions, --until, -e or --no-commit, the partitions are chosen
    /// here instead); resume from, and commit to, the group's offsets in
    /// weir's offsets topic (--from applies to partitions without a
    /// commit).
    #[arg(short, long)]
    pub group: Option<String>,

    /// Read as a member of this share group (KIP-932, Kafka 4.1+): the
    /// broker hands each record to one member; a record is acknowledged
    /// (ACCEPT) once written and flushed, and given back (RELEASE) at a
    /// stop. Templates and --json have the record's delivery count.
    #[arg(long, value_name = "GROUP", conflicts_with_all = ["group", "partitions", "instance", "until", "exit_at_end"])]
    pub share_group: Option<String>,

    /// Time between commits.
    #[arg(long, default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true, requires = "group")]
    pub commit_interval: Duration,

    /// Start from the group's offsets but never commit.
    #[arg(long, requires = "group")]
    pub no_commit: bool,

    /// Exit 1 when an instance that started earlier commits a partition
    /// this one reads: of two, the later one yields (otherwise a warning).
    /// For instances that choose their partitions: with it, -g does not
    /// join the broker's group.
    #[arg(long, requires = "group")]
    pub exclusive: bool,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub membership: MembershipFlags,

    #[command(flatten)]
    pub metrics: MetricsFlags,
}

impl SelectionArgs {
    /// Whether a group (`-g`) reads as a member of the broker's group,
    /// the partitions given by its coordinator: unless they are chosen
    /// here (`--instance`, `--partitions`), or the read is bounded
    /// (`--until`, `-e`): a run that reads what is there and exits reads
    /// every partition from the group's commits, whoever else is in the
    /// group.
    pub fn joins_group(&self) -> bool {
        self.instance.is_none()
            && self.partitions.is_none()
            && self.until.is_none()
            && !self.exit_at_end
    }

    /// `group`'s plan for a reading job: commits as `commits` says
    /// (`None`: never); with `writes` the store is created when missing
    /// and, unless the partitions are chosen here or `--exclusive`, the
    /// job joins the broker's group.
    pub fn group_plan(
        &self,
        group: &str,
        store: &StoreArgs,
        membership: &MembershipFlags,
        commits: Option<CommitPlan>,
        writes: bool,
    ) -> anyhow::Result<GroupPlan> {
        let plan = GroupPlan::new(group, store.config(writes)?, commits);
        let exclusive = commits.is_some_and(|c| c.exclusive);
        Ok(match writes && self.joins_group() && !exclusive {
            true => plan.with_membership(membership.config(group, &self.topics())?),
            false => plan,
        })
    }

    /// The topics to read, each once, in the order first given: a
    /// repeated `-t` would read (and count) every record twice.
    fn topics(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.topics
            .iter()
            .filter(|t| seen.insert(t.as_str()))
            .cloned()
            .collect()
    }

    /// The partitions to read and the consumer's config; a repeated
    /// topic is read once, with a warning.
    pub fn plan(&self, timeout: Duration) -> anyhow::Result<(Selection, ConsumerConfig)> {
        let start: StartOffset = self
            .from
            .as_deref()
            .unwrap_or("earliest")
            .parse()
            .map_err(|e| usage(format!("--from: {e}")))?;
        let until = match (self.exit_at_end, self.until.as_deref()) {
            (true, _) | (false, Some("end")) => Until::End,
            (false, None) => Until::Never,
            (false, Some(t)) => match t.strip_prefix('@').map(parse_time) {
                Some(Ok(ms)) => Until::Timestamp(ms),
                Some(Err(e)) => return Err(usage(format!("--until \"{t}\": {e}"))),
                None => {
                    return Err(usage(format!(
                        "--until \"{t}\": expected end or @TIME (RFC 3339 or epoch ms)"
                    )));
                }
            },
        };
        let instance = self
            .instance
            .as_deref()
            .map(str::parse::<Instance>)
            .transpose()
            .map_err(|e| usage(format!("--instance: {e}")))?;
        let topics = self.topics();
        let repeated = repeated(&self.topics);
        if !repeated.is_empty() {
            let quoted: Vec<String> = repeated.iter().map(|t| format!("\"{t}\"")).collect();
            tracing::warn!(
                "-t {} given more than once: each topic is read once",
                quoted.join(", ")
            );
        }
        let mut selection = Selection::new(topics);
        selection.partitions = self.partitions.clone();
        selection.instance = instance;
        let config = self
            .fetch
            .config(timeout)?
            .with_start(start)
            .with_until(until)
            .with_decoding(self.decode.decoding(timeout)?);
        Ok((selection, config))
    }
}

/// The topics given more than once, each once, in the order first
/// repeated.
fn repeated(topics: &[String]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    let mut repeated = Vec::new();
    for t in topics {
        if !seen.insert(t.as_str()) && !repeated.contains(&t.as_str()) {
            repeated.push(t.as_str());
        }
    }
    repeated
}

impl ConsumeArgs {
    pub(super) fn format(&self) -> anyhow::Result<OutputFormat> {
        Ok(match (&self.format, self.json) {
            (_, true) => OutputFormat::Json,
            (Some(t), false) => OutputFormat::Template(
                t.parse::<Template>()
                    .map_err(|e| usage(format!("--format: {e}")))?,
            ),
            (None, false) => OutputFormat::Value,
        })
    }
}

/// Runs `weir consume`.
pub async fn run(
    args: ConsumeArgs,
    config: ConnectionConfig,
    quiet: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    super::require_stdout("the records")?;
    let (selection, consumer_config) = args.selection.plan(config.timeout)?;
    let filter = Filter::new(args.filters.config()?);
    let format = args.format()?;
    if args.metrics.metrics_addr.is_some()
        && args.group.is_none()
        && consumer_config.until != Until::Never
    {
        return Err(usage(
            "--metrics-addr is for reads that run on: follow the topic (no --until or -e) or read as a group (-g)",
        ));
    }
    let mut plan = ReadPlan::new(selection, consumer_config)
        .with_metrics_addr(args.metrics.addr()?)
        .with_pattern_refresh(args.selection.pattern_refresh);
    if let Some(group) = &args.group {
        // --count 0 commits nothing, so it creates no offsets topic and
        // joins no group either.
        let writes = !args.no_commit && args.count != Some(0);
        let commits = (!args.no_commit)
            .then_some(CommitPlan::new(args.commit_interval).with_exclusive(args.exclusive));
        plan = plan.with_group(args.selection.group_plan(
            group,
            &args.store,
            &args.membership,
            commits,
            writes,
        )?);
    }
    let stdout = std::io::stdout().lock();
    let mut writer = RecordWriter::new(std::io::BufWriter::with_capacity(1 << 16, stdout), format)
        .with_null(args.null.clone().unwrap_or_default());
    let stop = stop_or_stdout_closed(shutdown);
    let summary = consume(&config, plan, filter, args.count, &mut writer, stop).await?;
    if !quiet && summary.stop != StopReason::OutputClosed {
        print_summary(&summary);
    }
    Ok(())
}

fn print_summary(summary: &ConsumeSummary) {
    let records: u64 = summary.partitions.values().map(|t| t.records).sum();
    let bytes: u64 = summary.partitions.values().map(|t| t.bytes).sum();
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    let head = format!(
        "weir: consumed {records} records ({:.1} MB) in {secs:.2}s, {:.0} records/s; wrote {}",
        bytes as f64 / 1e6,
        records as f64 / secs,
        summary.written,
    );
    let figures = [
        (summary.filtered, "filtered out"),
        (summary.unparsed, "skipped as not JSON (--where)"),
    ];
    super::eprint_summary(head, &figures, summary.stop == StopReason::Shutdown);
    for (at, tally) in &summary.partitions {
        let next = summary.positions.get(at);
        super::eprint_line(&format!(
            "  {}/{}: {} records, {} bytes{}",
            at.topic,
            at.partition,
            tally.records,
            tally.bytes,
            next.map(|n| format!(", next offset {n}"))
                .unwrap_or_default()
        ));
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};

    #[test]
    fn a_repeated_topic_is_read_once() {
        for sub in ["consume", "count", "pipe"] {
            let mut args = vec!["weir", sub, "-t", "a", "-t", "b", "-t", "a", "-t", "a"];
            match sub {
                "count" => args.extend(["--by", "key"]),
                "pipe" => args.extend(["--to", "out"]),
                _ => {}
            }
            let cli = Cli::try_parse_from(&args).unwrap();
            let selection = match &cli.command {
                Command::Consume(a) => &a.selection,
                Command::Count(a) => &a.selection,
                Command::Pipe(a) => &a.selection,
                _ => unreachable!(),
            };
            let (plan, _) = selection.plan(std::time::Duration::from_secs(5)).unwrap();
            assert_eq!(plan.topics, ["a", "b"], "{sub}");
            assert_eq!(super::repeated(&selection.topics), ["a"], "{sub}");
        }
    }
}
