//! `weir offsets`: the groups in the offsets store, their positions and
//! lag, resets and deletes (what kafka-consumer-groups does for Kafka's
//! own groups).

use std::io::Write;

use clap::Subcommand;
use serde::Serialize;
use weir::ConnectionConfig;
use weir::kafka::admin::{Admin, OffsetForTime};
use weir::offsets::group::{OffsetChange, ResumeSource};
use weir::offsets::report::{self, GroupSummary, PartitionReport};
use weir::offsets::{DEFAULT_OFFSETS_PARTITIONS, DEFAULT_OFFSETS_TOPIC, StoreConfig};
use weir::read::StartOffset;
use weir::timestamp::rfc3339_millis;

use super::topics::Output;
use super::{non_negative, usage};

/// Where the offsets store is; shared by `consume --group` and `offsets`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The compacted topic weir keeps group offsets in.
    #[arg(long, default_value = DEFAULT_OFFSETS_TOPIC, env = "WEIR_OFFSETS_TOPIC", value_parser = super::topic_name)]
    pub offsets_topic: String,

    /// Partitions of the offsets topic when weir creates it.
    #[arg(long, default_value_t = DEFAULT_OFFSETS_PARTITIONS, value_parser = non_negative::<i32>, allow_negative_numbers = true)]
    pub offsets_partitions: i32,
}

impl StoreArgs {
    /// The store config; `create` for writers.
    pub fn config(&self, create: bool) -> anyhow::Result<StoreConfig> {
        if self.offsets_partitions < 1 {
            return Err(usage("--offsets-partitions must be at least 1"));
        }
        Ok(StoreConfig::default()
            .with_topic(&self.offsets_topic)
            .with_partitions(self.offsets_partitions)
            .with_create(create))
    }
}

/// Consumer-group offsets kept by weir.
#[derive(Debug, clap::Args)]
pub struct OffsetsArgs {
    /// Output format: text for people, json (one document) for scripts.
    // No -o: across weir's commands -o is --from, as kcat's -o.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(subcommand)]
    pub verb: Verb,
}

/// What to do with offsets.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// The groups that have committed offsets, in weir's store or on the
    /// broker.
    Groups,
    /// A group's committed offset, high watermark and lag per partition.
    Show {
        /// The group.
        #[arg(short, long)]
        group: String,
        /// Only this topic.
        #[arg(short, long, value_parser = super::topic_name)]
        topic: Option<String>,
    },
    /// Move a group's positions, weir's and the broker's
    /// (kafka-consumer-groups --reset-offsets); refused while the group has
    /// live members.
    Set {
        /// The group.
        #[arg(short, long)]
        group: String,
        /// The topic.
        #[arg(short, long, value_parser = super::topic_name)]
        topic: String,
        /// earliest, latest, OFFSET, -N (N before the end), @TIME (RFC 3339
        /// or epoch ms) or a duration ago such as 1h.
        #[arg(long, allow_hyphen_values = true)]
        to: String,
        /// Only these partitions, e.g. 0,3 (default: all).
        #[arg(short, long, value_delimiter = ',', value_parser = non_negative::<i32>, allow_hyphen_values = true)]
        partitions: Option<Vec<i32>>,
        /// Show what would change without writing it.
        #[arg(long)]
        dry_run: bool,
        /// Move the group even while it has live members, when they are all
        /// weir consume or pipe members: each moves to the new offsets at
        /// its next commit (refused for other clients' members and for
        /// count/agg members).
        #[arg(long)]
        force: bool,
    },
    /// Per partition of a topic, the first offset at or after a time
    /// (kcat -Q); a partition with no record that late gives its end.
    At {
        /// The topic.
        #[arg(short, long, value_parser = super::topic_name)]
        topic: String,
        /// @TIME (RFC 3339, or epoch ms) or a duration ago such as 1h.
        #[arg(allow_hyphen_values = true)]
        time: String,
    },
    /// Forget a group's offsets, weir's and the broker's (all topics, or
    /// one); refused while the group has live members.
    Delete {
        /// The group.
        #[arg(short, long)]
        group: String,
        /// Only this topic.
        #[arg(short, long, value_parser = super::topic_name)]
        topic: Option<String>,
    },
}

/// One row of `groups`.
#[derive(Debug, Serialize)]
struct GroupRow<'a> {
    group: &'a str,
    topics: &'a [String],
    partitions: usize,
    last_commit: Option<String>,
    sources: &'a [ResumeSource],
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    /// classic, consumer or share, for a group the broker knows.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    group_type: Option<&'a str>,
    /// Its assignor, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
}

/// One row of `show`: the library's report with its times as text.
#[derive(Debug, Serialize)]
struct Row<'a> {
    topic: &'a str,
    partition: i32,
    committed: Option<i64>,
    resumes_from: Option<ResumeSource>,
    weir_committed: Option<i64>,
    broker_committed: Option<i64>,
    broker_by_weir: bool,
    high_watermark: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_stable_offset: Option<i64>,
    lag: Option<i64>,
    out_of_range: bool,
    committed_at: Option<String>,
    instance: Option<&'a str>,
    /// The group's own internal topic, not an input.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    internal: bool,
}

/// Runs `weir offsets`.
pub async fn run(args: OffsetsArgs, config: ConnectionConfig) -> anyhow::Result<()> {
    let mut out = super::stdout();
    let store = args.store.config(false)?;
    match args.verb {
        Verb::Groups => {
            let groups = report::list_groups(&config, &store).await?;
            print_groups(&mut out, args.output, &groups)?;
        }
        Verb::Show { group, topic } => {
            if let Some(r) = weir::share::offsets::show(&config, &group, topic.as_deref()).await? {
                super::offsets_share::print_show(&mut out, args.output, &r)?;
                out.flush()?;
                return Ok(());
            }
            let rows = report::describe_group(&config, &store, &group, topic.as_deref()).await?;
            let kind = match args.output {
                Output::Json => report::group_kind(&config, &group).await?,
                Output::Text => None,
            };
            print_positions(&mut out, args.output, &group, &rows, kind)?;
        }
        Verb::Set {
            group,
            topic,
            to,
            partitions,
            dry_run,
            force,
        } => {
            let start: StartOffset = to.parse().map_err(|e| usage(format!("--to: {e}")))?;
            if weir::share::offsets::is_share_group(&config, &group).await? {
                let rows =
                    weir::share::offsets::set(&config, &group, &topic, partitions, start, dry_run)
                        .await?;
                super::offsets_share::print_changes(&mut out, args.output, &group, &rows, dry_run)?;
                out.flush()?;
                return Ok(());
            }
            let rows = report::set_group_offsets(
                &config, &store, &group, &topic, partitions, start, dry_run, force,
            )
            .await?;
            print_changes(&mut out, args.output, &group, &rows, dry_run)?;
        }
        Verb::At { topic, time } => {
            let at = time_arg(&time)?;
            let mut admin = Admin::connect(&config).await?;
            let found = admin.offsets_for_time(&topic, at).await?;
            print_at(&mut out, args.output, &topic, at, &found)?;
        }
        Verb::Delete { group, topic }
            if weir::share::offsets::is_share_group(&config, &group).await? =>
        {
            let deleted = weir::share::offsets::delete(&config, &group, topic.as_deref()).await?;
            if args.output == Output::Json {
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({ "group": group, "type": "share", "deleted": deleted }),
                )?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "deleted the start offsets of {deleted} partitions of share group \"{group}\""
                )?;
            }
        }
        Verb::Delete { group, topic } => {
            let (deleted, internal) =
                report::delete_group_offsets(&config, &store, &group, topic.as_deref()).await?;
            if args.output == Output::Json {
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({ "group": group, "deleted": deleted, "internal_topic_deleted": internal }),
                )?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "deleted {deleted} committed offsets of group \"{group}\""
                )?;
                if let Some(t) = internal {
                    writeln!(out, "deleted the group's internal topic \"{t}\"")?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// The time of `offsets at`: `@` and a time, or a duration ago, as
/// `--from` takes them; a duration reaching before 1970 is 1970.
fn time_arg(text: &str) -> anyhow::Result<i64> {
    let wrong = || {
        usage(format!(
            "offsets at: \"{text}\" is not a time: give @TIME (RFC 3339 such as @2026-01-31T12:00:00Z, or epoch ms such as @1769860800000) or a duration ago such as 1h"
        ))
    };
    match text.parse::<StartOffset>() {
        Ok(StartOffset::Timestamp(ms)) => Ok(ms),
        // A duration longer ago than 1970, not the word "earliest".
        Ok(StartOffset::Earliest) if text.starts_with(|c: char| c.is_ascii_digit()) => Ok(0),
        Ok(_) => Err(wrong()),
        Err(e) if text.starts_with('@') => Err(usage(format!("offsets at: {e}"))),
        Err(_) => Err(wrong()),
    }
}

/// One row of `at`.
#[derive(Debug, Serialize)]
struct AtRow {
    partition: i32,
    offset: i64,
    /// The record's time; `null` when no record is that late.
    timestamp: Option<String>,
    timestamp_ms: Option<i64>,
    /// No record at or after the time: `offset` is the end.
    end: bool,
}

fn print_at(
    out: &mut impl Write,
    output: Output,
    topic: &str,
    at: i64,
    found: &[OffsetForTime],
) -> anyhow::Result<()> {
    let rows: Vec<AtRow> = found
        .iter()
        .map(|f| AtRow {
            partition: f.partition,
            offset: f.offset,
            timestamp: f.timestamp.map(rfc3339_millis),
            timestamp_ms: f.timestamp,
            end: f.past_the_end(),
        })
        .collect();
    if output == Output::Json {
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({ "topic": topic, "time": rfc3339_millis(at), "time_ms": at, "partitions": rows }),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:>9} {:>12}  RECORD TIME (first at or after {})",
        "TOPIC",
        "PARTITION",
        "OFFSET",
        rfc3339_millis(at)
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<24} {:>9} {:>12}  {}",
            topic,
            r.partition,
            r.offset,
            r.timestamp
                .as_deref()
                .unwrap_or("none: the end, no record is that late"),
        )?;
    }
    Ok(())
}

fn print_groups(
    out: &mut impl Write,
    output: Output,
    groups: &[GroupSummary],
) -> anyhow::Result<()> {
    let rows: Vec<GroupRow<'_>> = groups
        .iter()
        .map(|g| GroupRow {
            group: &g.group,
            topics: &g.topics,
            partitions: g.partitions,
            last_commit: g.last_commit_ms.map(rfc3339_millis),
            sources: &g.sources,
            state: g.state.as_deref(),
            group_type: g.group_type.as_deref(),
            protocol: g.protocol.as_deref(),
        })
        .collect();
    if output == Output::Json {
        serde_json::to_writer(&mut *out, &serde_json::json!({ "groups": rows }))?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<30} {:<8} {:<16} {:>10}  {:<24}  {:<11}  TOPICS",
        "GROUP", "TYPE", "PROTOCOL", "PARTITIONS", "LAST COMMIT", "OFFSETS IN"
    )?;
    for r in &rows {
        let sources: Vec<String> = r.sources.iter().map(ToString::to_string).collect();
        writeln!(
            out,
            "{:<30} {:<8} {:<16} {:>10}  {:<24}  {:<11}  {}",
            r.group,
            r.group_type.unwrap_or("-"),
            r.protocol.unwrap_or("-"),
            r.partitions,
            r.last_commit.as_deref().unwrap_or("-"),
            sources.join(","),
            r.topics.join(",")
        )?;
    }
    Ok(())
}

fn print_positions(
    out: &mut impl Write,
    output: Output,
    group: &str,
    reports: &[PartitionReport],
    kind: Option<(String, Option<String>)>,
) -> anyhow::Result<()> {
    let rows: Vec<Row<'_>> = reports
        .iter()
        .map(|r| Row {
            topic: &r.topic,
            partition: r.partition,
            committed: r.committed,
            resumes_from: r.resumes_from,
            weir_committed: r.weir_committed,
            broker_committed: r.broker_committed,
            broker_by_weir: r.broker_by_weir,
            high_watermark: r.high_watermark,
            last_stable_offset: r.last_stable_offset,
            lag: r.lag,
            out_of_range: r.out_of_range,
            committed_at: r.committed_at_ms.map(rfc3339_millis),
            instance: r.instance.as_deref(),
            internal: r.internal,
        })
        .collect();
    if output == Output::Json {
        serde_json::to_writer(
            &mut *out,
            &match kind {
                // The group's type and protocol on the broker, when it
                // knows the group.
                Some((group_type, protocol)) => serde_json::json!({
                    "group": group, "type": group_type, "protocol": protocol, "partitions": rows,
                }),
                None => serde_json::json!({ "group": group, "partitions": rows }),
            },
        )?;
        writeln!(out)?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(out, "group \"{group}\" has no committed offsets")?;
        return Ok(());
    }
    // The last stable offset only where a transaction is open: the usual
    // table stays as it was.
    let stable = rows.iter().any(|r| r.last_stable_offset.is_some());
    let dash = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    let stable_cell = |text: String| {
        if stable {
            format!(" {text:>12}")
        } else {
            String::new()
        }
    };
    // Both offsets where weir's and the broker's differ.
    let differ = rows
        .iter()
        .any(|r| r.weir_committed.is_some() && r.weir_committed != r.broker_committed);
    let both = |r: &Row<'_>| {
        if differ {
            format!(
                " {:>12} {:>12}",
                dash(r.weir_committed),
                dash(r.broker_committed)
            )
        } else {
            String::new()
        }
    };
    writeln!(
        out,
        "{:<24} {:>9} {:>12} {:<6}{} {:>14}{} {:>10}  {:<24}  INSTANCE",
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "FROM",
        if differ {
            format!(" {:>12} {:>12}", "WEIR", "BROKER")
        } else {
            String::new()
        },
        "HIGH-WATERMARK",
        stable_cell("LAST-STABLE".to_owned()),
        "LAG",
        "COMMITTED AT"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<24} {:>9} {:>12} {:<6}{} {:>14}{} {:>10}  {:<24}  {}",
            r.topic,
            r.partition,
            dash(r.committed),
            r.resumes_from.map_or("-".to_owned(), |s| s.to_string()),
            both(r),
            dash(r.high_watermark),
            stable_cell(dash(r.last_stable_offset)),
            dash(r.lag),
            r.committed_at.as_deref().unwrap_or("-"),
            r.instance.unwrap_or("-"),
        )?;
    }
    Ok(())
}

fn print_changes(
    out: &mut impl Write,
    output: Output,
    group: &str,
    rows: &[OffsetChange],
    dry_run: bool,
) -> anyhow::Result<()> {
    if output == Output::Json {
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({ "group": group, "dry_run": dry_run, "partitions": rows }),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:>9} {:>12} {:<6} {:>12}",
        "TOPIC", "PARTITION", "FROM", "", "TO"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<24} {:>9} {:>12} {:<6} {:>12}",
            r.topic,
            r.partition,
            r.from.map_or("-".to_owned(), |v| v.to_string()),
            r.from_source.map_or(String::new(), |s| format!("({s})")),
            r.to,
        )?;
    }
    if dry_run {
        writeln!(out, "(dry run: nothing written)")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_is_an_at_time_or_a_duration_ago() {
        assert_eq!(time_arg("@1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            time_arg("@2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        let ago = time_arg("1h").unwrap();
        let now = weir::timestamp::now_ms();
        assert!(
            (now - 3_600_000 - 5_000..=now - 3_600_000).contains(&ago),
            "{ago}"
        );
        assert_eq!(time_arg("100000years").unwrap(), 0);
        for wrong in [
            "1700000000000",
            "earliest",
            "latest",
            "-5",
            "soon",
            "@yesterday",
        ] {
            assert!(time_arg(wrong).is_err(), "{wrong}");
        }
    }
}
