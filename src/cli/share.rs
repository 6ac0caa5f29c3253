//! `weir consume --share-group G` and `weir pipe --share-group G`: the
//! flags of `weir consume` and `weir pipe` turned into a [`ShareConfig`];
//! the jobs are [`weir::share`]'s.

use std::future::Future;

use weir::ConnectionConfig;
use weir::consume::filter::Filter;
use weir::consume::output::{RecordWriter, stop_or_stdout_closed};
use weir::job::StopReason;
use weir::share::{ShareConfig, ShareError, ShareStart, ShareSummary};

use super::consume::{ConsumeArgs, SelectionArgs};
use super::pipe::PipeArgs;
use super::usage;

/// Runs `weir consume --share-group G`.
pub async fn consume(
    args: &ConsumeArgs,
    group: &str,
    config: ConnectionConfig,
    quiet: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    super::require_stdout("the records")?;
    let share = share_config(&args.selection, group)?
        .with_filter(Filter::new(args.filters.config()?))
        .with_count(args.count)
        .with_metrics_addr(args.metrics.addr()?);
    let stdout = std::io::stdout().lock();
    let mut writer = RecordWriter::new(
        std::io::BufWriter::with_capacity(1 << 16, stdout),
        args.format()?,
    )
    .with_null(args.null.clone().unwrap_or_default());
    let stop = stop_or_stdout_closed(shutdown);
    let summary = weir::share::consume(&config, share, &mut writer, stop).await?;
    if !quiet && summary.stop != Some(StopReason::OutputClosed) {
        print_summary(&summary);
    }
    Ok(())
}

/// The share group's side of `weir consume` or `weir pipe`: its topics
/// (names, not patterns) and where a new group starts (`--from`).
fn share_config(selection: &SelectionArgs, group: &str) -> anyhow::Result<ShareConfig> {
    if selection.decode.registry.registry.is_some() {
        return Err(usage(
            "--registry with --share-group: share groups do not decode through a schema registry yet",
        ));
    }
    let start = match selection.from.as_deref() {
        None => None,
        Some("earliest") => Some(ShareStart::Earliest),
        Some("latest") => Some(ShareStart::Latest),
        Some(other) => {
            return Err(usage(format!(
                "--from \"{other}\" with --share-group: a share group starts at earliest or latest (move an existing one with `weir offsets set`)"
            )));
        }
    };
    let mut topics: Vec<String> = Vec::new();
    for t in &selection.topics {
        if weir::read::pattern::is_pattern(t) {
            return Err(usage(format!(
                "topic pattern \"{t}\" with --share-group: a share group subscribes to topic names (KIP-932 has no pattern subscription); name the topics"
            )));
        }
        if !topics.contains(t) {
            topics.push(t.clone());
        }
    }
    Ok(ShareConfig::new(group, topics).with_start(start))
}

/// Runs `weir pipe --share-group G`.
pub async fn pipe(
    args: &PipeArgs,
    group: &str,
    config: ConnectionConfig,
    quiet: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if args.exactly_once {
        // The library refuses it too; here before anything is reached.
        return Err(usage(
            ShareError::ExactlyOnce {
                group: group.to_owned(),
            }
            .to_string(),
        ));
    }
    let share = share_config(&args.selection, group)?
        .with_filter(Filter::new(args.filters.config()?))
        .with_count(args.count)
        .with_metrics_addr(args.metrics.addr()?);
    let transform = args.transform()?;
    let to = args.output(config.timeout)?;
    let stop = async {
        shutdown.await;
        StopReason::Shutdown
    };
    let summary = weir::share::pipe(&config, share, transform, to, stop).await?;
    if !quiet {
        let secs = summary.elapsed.as_secs_f64().max(1e-9);
        let head = format!(
            "weir: piped {} of {} records acquired to topic \"{}\" in {secs:.2}s, {:.0} records/s; acknowledged {} accept, {} release, {} reject",
            summary.written,
            summary.records,
            args.to,
            summary.records as f64 / secs,
            summary.accepted,
            summary.released,
            summary.rejected,
        );
        let figures = [
            (summary.redeliveries, "delivered before"),
            (summary.filtered, "filtered out (accepted)"),
            (
                summary.unparsed,
                "rejected (no key, value or filter field could be read)",
            ),
        ];
        super::eprint_summary(head, &figures, summary.stop == Some(StopReason::Shutdown));
    }
    Ok(())
}

fn print_summary(summary: &ShareSummary) {
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    let head = format!(
        "weir: acquired {} records in {secs:.2}s, {:.0} records/s; wrote {}; acknowledged {} accept, {} release, {} reject",
        summary.records,
        summary.records as f64 / secs,
        summary.written,
        summary.accepted,
        summary.released,
        summary.rejected,
    );
    let figures = [
        (summary.redeliveries, "delivered before"),
        (summary.filtered, "filtered out"),
        (summary.unparsed, "skipped as not JSON (--where)"),
    ];
    super::eprint_summary(head, &figures, summary.stop == Some(StopReason::Shutdown));
}
