//! `weir count`: counts per key in time windows, checkpointed with the
//! group's offsets.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use weir::ConnectionConfig;
use weir::aggregate::{
    AggSpec, CountConfig, CountOutput, CountSummary, EmitMode, Extractor, JsonLines, Row, RowSink,
    Table, WindowSpec, agg_table_line, count, table_line,
};
use weir::consume::output::stop_or_stdout_closed;
use weir::job::StopReason;
use weir::job::runner::{CommitPlan, ReadPlan};
use weir::timestamp::rfc3339;

use super::connect::parse_duration;
use super::consume::SelectionArgs;
use super::flags::{MembershipFlags, MetricsFlags};
use super::offsets::StoreArgs;
use super::{non_negative, usage, usage_for};

/// Count (`weir count`) or aggregate (`weir agg`) records per key in time
/// windows, exactly, across restarts: `count` is `agg` with one aggregate.
#[derive(Debug, clap::Args)]
pub struct CountArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,

    /// What a record is grouped under: value, key, json:/POINTER (a field
    /// of the JSON value) or regex:PATTERN (its first capture group).
    /// Repeat it for a composite key (a JSON array of the parts). Records
    /// it cannot read are grouped under "(unparsed)" (JSON: null).
    #[arg(long, value_name = "EXTRACTOR", required = true)]
    pub by: Vec<String>,

    /// An aggregate per (window, key), repeatable: count, sum:F, min:F,
    /// max:F, avg:F, distinct:F, topN:F (top10:json:/path) or pNN:F
    /// (p50, p99, p99.9), F a field as --by takes it. Default: count.
    #[arg(long, value_name = "AGG")]
    pub agg: Vec<String>,

    /// Windows of this length, aligned to the epoch, by record timestamp
    /// (event time): tumbling, or hopping with --hop. Without it: running
    /// totals.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub window: Option<Duration>,

    /// Hopping windows: a window of --window's length starts every HOP,
    /// so a record is in each window that starts in the length before it.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true, requires = "window")]
    pub hop: Option<Duration>,

    /// Session windows per key: records no more than GAP apart are one
    /// session, and sessions merge when a record joins them. A row shows
    /// the first and last record's time; it is emitted (final) when GAP
    /// has passed after the last record, by event time.
    #[arg(long, value_name = "GAP", value_parser = parse_duration, allow_hyphen_values = true, conflicts_with = "window")]
    pub session_gap: Option<Duration>,

    /// How long a window stays open behind the partition's newest
    /// timestamp; records for a closed window count as late.
    #[arg(long, default_value = "0s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub grace: Duration,

    /// A partition that has had no record for this long stops holding
    /// windows back: they close by the other partitions' timestamps, and
    /// its later records for them count as late. Without it a quiet
    /// partition holds windows open until it has a newer record.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub idle_timeout: Option<Duration>,

    /// final: each window once, when it closes (default with --window);
    /// updates: the changed counts at every checkpoint (default for
    /// totals and on a terminal).
    #[arg(long, value_parser = ["final", "updates"])]
    pub emit: Option<String>,

    /// Stop after reading N records (0: count none and exit).
    #[arg(short = 'c', long, value_parser = non_negative::<u64>, allow_negative_numbers = true)]
    pub count: Option<u64>,

    /// Count as a member of Kafka group G: the broker's group coordinator
    /// shares the partitions among the members (with --instance,
    /// --partitions, --until or -e they are chosen here instead); counts
    /// and offsets are
    /// kept in the group's records in weir's offsets topic, so a restart,
    /// or the member that takes a partition over, resumes them exactly.
    #[arg(short, long)]
    pub group: Option<String>,

    /// Time between checkpoints: emission, then commit.
    #[arg(long, default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub commit_interval: Duration,

    /// Exit 1 when an instance that started earlier commits a partition
    /// this one reads: of two, the later one yields.
    #[arg(long, requires = "group")]
    pub exclusive: bool,

    /// Rows as JSON lines: window_start, window_end (RFC 3339 or null),
    /// key, count.
    #[arg(long)]
    pub json: bool,

    /// Rows also (with --no-stdout: only) to this topic, one record
    /// per (window, key) keyed by both, so a repeat replaces itself under
    /// compaction. Created compacted when missing.
    #[arg(long, value_name = "TOPIC", value_parser = super::topic_name)]
    pub to_topic: Option<String>,

    /// The rows of a checkpoint and its commit (counts and positions) in
    /// one Kafka transaction (needs -g and --to-topic): readers of the
    /// output topic with read_committed see each row once, across crashes
    /// and rebalances. As a group member, the transaction also commits the
    /// positions to the group under the member's generation, so a member
    /// that lost its partitions cannot commit for them. Rows on stdout
    /// stay at least once.
    #[arg(long, requires_all = ["to_topic", "group"])]
    pub exactly_once: bool,

    /// How long the coordinator lets a transaction stay open before it
    /// aborts it (the Java producer's transaction.timeout.ms).
    #[arg(long, default_value = "1m", value_parser = parse_duration, requires = "exactly_once")]
    pub transaction_timeout: Duration,

    /// Write no rows to stdout (with --to-topic).
    #[arg(long, requires = "to_topic")]
    pub no_stdout: bool,

    #[command(flatten)]
    pub metrics: MetricsFlags,

    /// Rows shown by the live view on a terminal.
    #[arg(long, default_value_t = 20, value_parser = non_negative::<usize>, allow_negative_numbers = true)]
    pub top: usize,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub membership: MembershipFlags,
}

impl CountArgs {
    /// What to count and when to emit; `live` for a live view on a
    /// terminal.
    fn config(&self, live: bool) -> anyhow::Result<CountConfig> {
        let args = self;
        let by = args
            .by
            .iter()
            .map(|b| b.parse::<Extractor>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| usage_for("--by", e))?;
        let aggs = args
            .agg
            .iter()
            .map(|a| a.parse::<AggSpec>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| usage_for("--agg", e))?;
        let mut windows = WindowSpec::default();
        windows.window = args.window;
        windows.hop = args.hop;
        windows.session_gap = args.session_gap;
        windows.grace = args.grace;
        windows.idle_timeout = args.idle_timeout;
        windows.emit = args.emit.as_deref().map(|e| match e {
            "final" => EmitMode::Final,
            _ => EmitMode::Updates,
        });
        windows.live = live;
        let (windowing, emit) = windows.check().map_err(|e| usage(e.to_string()))?;
        let mut config = CountConfig::default()
            .with_by(by)
            .with_aggs(aggs)
            .with_checkpoint_interval(args.commit_interval);
        config.windowing = windowing;
        config.emit = emit;
        config.count = args.count;
        config.idle_timeout = args.idle_timeout;
        Ok(config)
    }
}

/// Runs `weir count`.
pub async fn run(
    args: CountArgs,
    config: ConnectionConfig,
    quiet: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if !args.no_stdout {
        super::require_stdout("the counts (--no-stdout writes only to --to-topic)")?;
    }
    let (selection, consumer_config) = args.selection.plan(config.timeout)?;
    let terminal = std::io::stdout().is_terminal() && !args.json && !args.no_stdout;
    let count_config = args.config(terminal)?;
    let input = selection.topics.first().cloned();
    let output = args.to_topic.as_ref().map(|topic| {
        let output = CountOutput::new(topic, input);
        match args.exactly_once {
            true => output.exactly_once(args.transaction_timeout),
            false => output,
        }
    });
    let mut plan = ReadPlan::new(selection, consumer_config)
        .with_metrics_addr(args.metrics.addr()?)
        .with_pattern_refresh(args.selection.pattern_refresh);
    if let Some(group) = &args.group {
        // --count 0 commits nothing, so it creates no offsets topic and
        // joins no group either.
        let writes = args.count != Some(0);
        let commits = CommitPlan::new(args.commit_interval).with_exclusive(args.exclusive);
        plan = plan.with_group(args.selection.group_plan(
            group,
            &args.store,
            &args.membership,
            Some(commits),
            writes,
        )?);
    }
    let stdout = std::io::stdout();
    let sink: Option<Box<dyn RowSink>> = match (args.no_stdout, args.json, terminal) {
        (true, _, _) => None,
        (false, true, _) => Some(Box::new(JsonLines(std::io::BufWriter::new(stdout)))),
        (false, false, true) => Some(Box::new(LiveView::new(stdout, args.top))),
        (false, false, false) => Some(Box::new(Table::new(std::io::BufWriter::new(stdout)))),
    };
    let stop = stop_or_stdout_closed(shutdown);
    let summary = count(&config, plan, count_config, sink, output, stop).await?;
    if !quiet && summary.stop != StopReason::OutputClosed {
        print_summary(&summary);
    }
    Ok(())
}

/// Latest row per key (`None`: unparsed).
type KeyRows = HashMap<Option<String>, Row>;

/// On a terminal: the top rows (most records first) of the newest window
/// (or of the totals), redrawn at every emission.
struct LiveView<W> {
    out: W,
    top: usize,
    /// Latest row per key, per window start (`None`: totals).
    windows: BTreeMap<Option<i64>, (Option<i64>, KeyRows)>,
}

impl<W> LiveView<W> {
    fn new(out: W, top: usize) -> Self {
        Self {
            out,
            top,
            windows: BTreeMap::new(),
        }
    }
}

impl<W: Write + Send> RowSink for LiveView<W> {
    fn emit(&mut self, rows: &[Row], stopping: bool) -> std::io::Result<()> {
        for row in rows {
            let (_, keys) = self
                .windows
                .entry(row.window_start)
                .or_insert_with(|| (row.window_end, HashMap::new()));
            keys.insert(row.key.clone(), row.clone());
        }
        // Two windows are enough to show: the newest, and the one before
        // it while it may still change.
        while self.windows.len() > 2 {
            self.windows.pop_first();
        }
        let Some((&start, (end, keys))) = self.windows.last_key_value() else {
            return Ok(());
        };
        let mut top: Vec<&Row> = keys.values().collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        let windowed = start.is_some();
        let names = top.first().and_then(|r| r.agg.as_ref()).map(|a| &a.names);
        let line = |row: Option<&Row>| match names {
            None => table_line(row, windowed),
            Some(names) => agg_table_line(row, names, windowed),
        };
        let mut screen = String::from("\x1b[H\x1b[2J");
        if let (Some(s), Some(e)) = (start, end) {
            screen.push_str(&format!("window {} .. {}\n", rfc3339(s), rfc3339(*e)));
        }
        screen.push_str(&line(None));
        screen.push('\n');
        for row in top.into_iter().take(self.top) {
            screen.push_str(&line(Some(row)));
            screen.push('\n');
        }
        if stopping {
            screen.push_str("(stopped)\n");
        }
        self.out.write_all(screen.as_bytes())?;
        self.out.flush()
    }
}

fn print_summary(summary: &CountSummary) {
    let records: u64 = summary.records.values().sum();
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    let head = format!(
        "weir: counted {records} records in {secs:.2}s, {:.0} records/s; {} rows emitted",
        records as f64 / secs,
        summary.rows,
    );
    let figures = [
        (summary.unparsed, "unparsed"),
        (summary.late, "late (window already closed, not counted)"),
        (summary.commits, "checkpoints"),
    ];
    super::eprint_summary(head, &figures, summary.stop == StopReason::Shutdown);
}
