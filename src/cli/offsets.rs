//! `weir offsets`: the groups in the offsets store, their positions and
//! lag, resets and deletes (what kafka-consumer-groups does for Kafka's
//! own groups).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use clap::Subcommand;
use serde::Serialize;
use weir::kafka::admin::{Admin, AdminError, PartitionDescription};
use weir::offsets::group::OffsetChange;
use weir::offsets::{
    DEFAULT_OFFSETS_PARTITIONS, DEFAULT_OFFSETS_TOPIC, OffsetStore, OffsetsError, StoreConfig,
};
use weir::read::StartOffset;
use weir::timestamp::rfc3339_millis;
use weir::{ConnectionConfig, TopicPartition};

use super::topics::Output;
use super::{non_negative, usage};

/// Where the offsets store is; shared by `consume --group` and `offsets`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The compacted topic weir keeps group offsets in.
    #[arg(long, default_value = DEFAULT_OFFSETS_TOPIC, env = "WEIR_OFFSETS_TOPIC")]
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
        Ok(StoreConfig {
            topic: self.offsets_topic.clone(),
            partitions: self.offsets_partitions,
            create,
        })
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
    /// The groups that have committed offsets.
    Groups,
    /// A group's committed offset, high watermark and lag per partition.
    Show {
        /// The group.
        #[arg(short, long)]
        group: String,
        /// Only this topic.
        #[arg(short, long)]
        topic: Option<String>,
    },
    /// Move a group's positions (kafka-consumer-groups --reset-offsets).
    Set {
        /// The group.
        #[arg(short, long)]
        group: String,
        /// The topic.
        #[arg(short, long)]
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
    },
    /// Forget a group's offsets (all topics, or one).
    Delete {
        /// The group.
        #[arg(short, long)]
        group: String,
        /// Only this topic.
        #[arg(short, long)]
        topic: Option<String>,
    },
}

/// One row of `groups`.
#[derive(Debug, Serialize)]
struct GroupRow<'a> {
    group: &'a str,
    topics: Vec<&'a str>,
    partitions: usize,
    last_commit: String,
}

/// One row of `show`.
#[derive(Debug, Serialize)]
struct Row {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    high_watermark: Option<i64>,
    /// Below the high watermark while a transaction is open: consumers
    /// reading read_committed (weir's default) stop there.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_stable_offset: Option<i64>,
    /// High watermark minus committed: negative when the commit lies past
    /// the end of the log.
    lag: Option<i64>,
    /// The commit lies outside the partition's log (past its high
    /// watermark, or before its low one): the next run does not trust it
    /// and starts where `--from` says.
    out_of_range: bool,
    committed_at: Option<String>,
    instance: Option<String>,
}

/// Opens the store for reading or writing; `None` when it does not exist
/// yet and a reader asked.
async fn open(
    config: &ConnectionConfig,
    store: &StoreArgs,
    create: bool,
) -> anyhow::Result<(Option<OffsetStore>, Arc<rskafka::client::Client>, Admin)> {
    let mut admin = Admin::connect(config).await?;
    let client = Arc::new(config.client().await?);
    let opened = OffsetStore::open(
        Arc::clone(&client),
        &mut admin,
        &store.config(create)?,
        config.timeout,
    )
    .await;
    match opened {
        Ok(s) => Ok((Some(s), client, admin)),
        Err(OffsetsError::NoStore { .. }) if !create => Ok((None, client, admin)),
        Err(e) => Err(e.into()),
    }
}

/// Runs `weir offsets`.
pub async fn run(args: OffsetsArgs, config: ConnectionConfig) -> anyhow::Result<()> {
    let mut out = super::stdout();
    match args.verb {
        Verb::Groups => {
            let (store, _, _) = open(&config, &args.store, false).await?;
            let groups = match &store {
                Some(store) => store.load_all().await?,
                None => BTreeMap::new(),
            };
            let rows: Vec<GroupRow<'_>> = groups
                .iter()
                .map(|(group, offsets)| {
                    let mut topics: Vec<&str> = offsets.keys().map(|p| &*p.topic).collect();
                    topics.dedup();
                    let last = offsets.values().map(|c| c.committed_at).max().unwrap_or(0);
                    GroupRow {
                        group,
                        topics,
                        partitions: offsets.len(),
                        last_commit: rfc3339_millis(last),
                    }
                })
                .collect();
            if args.output == Output::Json {
                serde_json::to_writer(&mut out, &serde_json::json!({ "groups": rows }))?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<30} {:>10}  {:<24}  TOPICS",
                    "GROUP", "PARTITIONS", "LAST COMMIT"
                )?;
                for r in &rows {
                    writeln!(
                        out,
                        "{:<30} {:>10}  {:<24}  {}",
                        r.group,
                        r.partitions,
                        r.last_commit,
                        r.topics.join(",")
                    )?;
                }
            }
        }
        Verb::Show { group, topic } => {
            let (store, _, mut admin) = open(&config, &args.store, false).await?;
            let offsets = match &store {
                Some(store) => store.load(&group).await?,
                None => BTreeMap::new(),
            };
            let mut topics: Vec<String> = offsets.keys().map(|p| p.topic.to_string()).collect();
            topics.dedup();
            if let Some(t) = &topic {
                topics.retain(|x| x == t);
                if topics.is_empty() {
                    topics.push(t.clone());
                }
            }
            let mut rows = Vec::new();
            for t in &topics {
                let description = match admin.describe_topic(t).await {
                    Ok(d) => Some(d),
                    // A topic deleted since the group committed to it: its
                    // commits show, without watermarks. A topic the group
                    // never read (-t with a typo) is an error.
                    Err(AdminError::UnknownTopic { .. })
                        if offsets.keys().any(|p| &*p.topic == t) =>
                    {
                        None
                    }
                    Err(e) => return Err(e.into()),
                };
                let mut partitions: BTreeMap<i32, Option<&PartitionDescription>> = description
                    .iter()
                    .flat_map(|d| d.partitions.iter().map(|p| (p.partition, Some(p))))
                    .collect();
                for p in offsets.keys().filter(|p| &*p.topic == t) {
                    partitions.entry(p.partition).or_insert(None);
                }
                for (partition, described) in partitions {
                    let commit = offsets.get(&TopicPartition::new(t.as_str(), partition));
                    let watermarks = described.map(|p| (p.earliest, p.latest));
                    let high = watermarks.map(|(_, high)| high);
                    rows.push(Row {
                        topic: t.clone(),
                        partition,
                        committed: commit.map(|c| c.offset),
                        high_watermark: high,
                        last_stable_offset: described.and_then(|p| p.last_stable),
                        lag: match (commit, high) {
                            (Some(c), Some(h)) => Some(h - c.offset),
                            _ => None,
                        },
                        out_of_range: match (commit, watermarks) {
                            (Some(c), Some((low, high))) => !(low..=high).contains(&c.offset),
                            _ => false,
                        },
                        committed_at: commit.map(|c| rfc3339_millis(c.committed_at)),
                        instance: commit.map(|c| c.instance.clone()),
                    });
                }
            }
            for r in rows.iter().filter(|r| r.out_of_range) {
                tracing::warn!(
                    "group \"{group}\" topic \"{}\" partition {}: committed offset {} lies outside the log (re-created or truncated?); the next run starts where --from says (default earliest)",
                    r.topic,
                    r.partition,
                    r.committed.unwrap_or_default()
                );
            }
            if args.output == Output::Json {
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({ "group": group, "partitions": rows }),
                )?;
                writeln!(out)?;
            } else if rows.is_empty() {
                writeln!(out, "group \"{group}\" has no committed offsets")?;
            } else {
                // The last stable offset only where a transaction is
                // open: the usual table stays as it was.
                let stable = rows.iter().any(|r| r.last_stable_offset.is_some());
                let dash = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
                let stable_cell = |text: String| {
                    if stable {
                        format!(" {text:>12}")
                    } else {
                        String::new()
                    }
                };
                writeln!(
                    out,
                    "{:<24} {:>9} {:>12} {:>14}{} {:>10}  {:<24}  INSTANCE",
                    "TOPIC",
                    "PARTITION",
                    "COMMITTED",
                    "HIGH-WATERMARK",
                    stable_cell("LAST-STABLE".to_owned()),
                    "LAG",
                    "COMMITTED AT"
                )?;
                for r in &rows {
                    writeln!(
                        out,
                        "{:<24} {:>9} {:>12} {:>14}{} {:>10}  {:<24}  {}",
                        r.topic,
                        r.partition,
                        dash(r.committed),
                        dash(r.high_watermark),
                        stable_cell(dash(r.last_stable_offset)),
                        dash(r.lag),
                        r.committed_at.as_deref().unwrap_or("-"),
                        r.instance.as_deref().unwrap_or("-"),
                    )?;
                }
            }
        }
        Verb::Set {
            group,
            topic,
            to,
            partitions,
            dry_run,
        } => {
            let start: StartOffset = to.parse().map_err(|e| usage(format!("--to: {e}")))?;
            let (store, client, mut admin) = open(&config, &args.store, !dry_run).await?;
            let count = i32::try_from(admin.partition_count(&topic).await?).unwrap_or(i32::MAX);
            let partitions = match partitions {
                Some(list) => {
                    if let Some(p) = list.iter().find(|p| !(0..count).contains(*p)) {
                        anyhow::bail!(
                            "topic \"{topic}\" has {}, partition {p} is out of range",
                            weir::plural(count, "partition")
                        );
                    }
                    list
                }
                None => (0..count).collect(),
            };
            let rows = weir::offsets::group::set_offsets(
                &client,
                store.as_ref(),
                &group,
                &topic,
                &partitions,
                start,
                dry_run,
            )
            .await?;
            print_changes(&mut out, args.output, &group, &rows, dry_run)?;
        }
        Verb::Delete { group, topic } => {
            let (store, _, _) = open(&config, &args.store, false).await?;
            let deleted = match &store {
                Some(store) => {
                    weir::offsets::group::delete_offsets(store, &group, topic.as_deref()).await?
                }
                None => 0,
            };
            if args.output == Output::Json {
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({ "group": group, "deleted": deleted }),
                )?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "deleted {deleted} committed offsets of group \"{group}\""
                )?;
            }
        }
    }
    out.flush()?;
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
        "{:<24} {:>9} {:>12} {:>12}",
        "TOPIC", "PARTITION", "FROM", "TO"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<24} {:>9} {:>12} {:>12}",
            r.topic,
            r.partition,
            r.from.map_or("-".to_owned(), |v| v.to_string()),
            r.to,
        )?;
    }
    if dry_run {
        writeln!(out, "(dry run: nothing written)")?;
    }
    Ok(())
}
