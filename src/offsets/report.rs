//! What `weir offsets` asks of the store, as the library does it: the
//! groups that committed, a group's positions against each partition's
//! log, and moving or forgetting them. The binary only prints.

use std::collections::BTreeMap;
use std::sync::Arc;

use rskafka::client::Client;
use serde::Serialize;

use super::group::{GroupError, OffsetChange, delete_offsets, set_offsets};
use super::{OffsetStore, OffsetsError, StoreConfig};
use crate::kafka::admin::{Admin, AdminError, PartitionDescription};
use crate::read::StartOffset;
use crate::{ConnectionConfig, TopicPartition};

/// A group that committed offsets, in short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    /// The group.
    pub group: String,
    /// The topics it committed for, sorted.
    pub topics: Vec<String>,
    /// The partitions it committed for.
    pub partitions: usize,
    /// When it last committed, in ms since the epoch.
    pub last_commit_ms: i64,
}

/// A group's position in one partition, against the partition's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset (the next to read), if any.
    pub committed: Option<i64>,
    /// The partition's high watermark; `None` for a deleted topic.
    pub high_watermark: Option<i64>,
    /// Below the high watermark while a transaction is open: consumers
    /// reading read_committed (weir's default) stop there.
    pub last_stable_offset: Option<i64>,
    /// High watermark minus committed: negative when the commit lies past
    /// the end of the log.
    pub lag: Option<i64>,
    /// The commit lies outside the partition's log (past its high
    /// watermark, or before its low one): the next run does not trust it
    /// and starts where `--from` says.
    pub out_of_range: bool,
    /// When it was committed, in ms since the epoch.
    pub committed_at_ms: Option<i64>,
    /// The instance that committed it.
    pub instance: Option<String>,
    /// The group's own internal topic (the partial aggregates of a count
    /// across members), not an input.
    pub internal: bool,
}

/// Opens the store (created when `store.create`), the client and an admin
/// connection; `None` for a store that does not exist and is not created.
async fn open(
    connection: &ConnectionConfig,
    store: &StoreConfig,
) -> Result<(Option<OffsetStore>, Arc<Client>, Admin), GroupError> {
    let mut admin = Admin::connect(connection).await?;
    let client = Arc::new(connection.client().await?);
    let opened =
        OffsetStore::open(Arc::clone(&client), &mut admin, store, connection.timeout).await;
    match opened {
        Ok(s) => Ok((Some(s), client, admin)),
        Err(OffsetsError::NoStore { .. }) if !store.create => Ok((None, client, admin)),
        Err(e) => Err(e.into()),
    }
}

/// Every group with committed offsets, by name.
///
/// # Errors
///
/// The cluster or the store could not be read.
pub async fn list_groups(
    connection: &ConnectionConfig,
    store: &StoreConfig,
) -> Result<Vec<GroupSummary>, GroupError> {
    let (store, _, _) = open(connection, store).await?;
    let groups = match &store {
        Some(store) => store.load_all().await?,
        None => BTreeMap::new(),
    };
    Ok(groups
        .into_iter()
        .map(|(group, offsets)| {
            let mut topics: Vec<String> = offsets.keys().map(|p| p.topic.to_string()).collect();
            topics.dedup();
            GroupSummary {
                group,
                topics,
                partitions: offsets.len(),
                last_commit_ms: offsets.values().map(|c| c.committed_at).max().unwrap_or(0),
            }
        })
        .collect())
}

/// `group`'s commits (of `topic` only, when given) against each
/// partition's watermarks; a partition of a described topic without a
/// commit shows too. Commits outside their partition's log are logged as
/// a warning.
///
/// # Errors
///
/// The cluster or the store could not be read, or `topic` does not exist
/// and the group never committed to it.
pub async fn describe_group(
    connection: &ConnectionConfig,
    store: &StoreConfig,
    group: &str,
    topic: Option<&str>,
) -> Result<Vec<PartitionReport>, GroupError> {
    let internal = super::partials_topic(&store.topic, group);
    let (store, _, mut admin) = open(connection, store).await?;
    let offsets = match &store {
        Some(store) => store.load(group).await?,
        None => BTreeMap::new(),
    };
    let mut topics: Vec<String> = offsets.keys().map(|p| p.topic.to_string()).collect();
    topics.dedup();
    if let Some(t) = topic {
        topics.retain(|x| x == t);
        if topics.is_empty() {
            topics.push(t.to_owned());
        }
    }
    let mut rows = Vec::new();
    for t in &topics {
        let description = match admin.describe_topic(t).await {
            Ok(d) => Some(d),
            // A topic deleted since the group committed to it: its commits
            // show, without watermarks. A topic the group never read (-t
            // with a typo) is an error.
            Err(AdminError::UnknownTopic { .. }) if offsets.keys().any(|p| &*p.topic == t) => None,
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
            rows.push(PartitionReport {
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
                committed_at_ms: commit.map(|c| c.committed_at),
                instance: commit.map(|c| c.instance.clone()),
                internal: *t == internal,
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
    Ok(rows)
}

/// Moves `group`'s positions in `partitions` of `topic` (all, without a
/// list) to `start`, resolved against each partition's watermarks now;
/// with `dry_run` only says what would change.
///
/// # Errors
///
/// A partition out of the topic's range, or the cluster or the store
/// could not be read or written.
pub async fn set_group_offsets(
    connection: &ConnectionConfig,
    store: &StoreConfig,
    group: &str,
    topic: &str,
    partitions: Option<Vec<i32>>,
    start: StartOffset,
    dry_run: bool,
) -> Result<Vec<OffsetChange>, GroupError> {
    let store = StoreConfig {
        create: !dry_run,
        ..store.clone()
    };
    let (store, client, mut admin) = open(connection, &store).await?;
    let count = i32::try_from(admin.partition_count(topic).await?).unwrap_or(i32::MAX);
    let partitions = match partitions {
        Some(list) => {
            if let Some(&partition) = list.iter().find(|p| !(0..count).contains(*p)) {
                return Err(GroupError::PartitionOutOfRange {
                    topic: topic.to_owned(),
                    partition,
                    partitions: count,
                });
            }
            list
        }
        None => (0..count).collect(),
    };
    set_offsets(
        &client,
        store.as_ref(),
        group,
        topic,
        &partitions,
        start,
        dry_run,
    )
    .await
}

/// Forgets `group`'s commits (of `topic` only, when given); returns how
/// many, and, for the whole group, the internal topic deleted with them
/// (a count's partial aggregates across members), if it had one.
///
/// # Errors
///
/// The cluster or the store could not be read or written, or the
/// internal topic not deleted.
pub async fn delete_group_offsets(
    connection: &ConnectionConfig,
    store: &StoreConfig,
    group: &str,
    topic: Option<&str>,
) -> Result<(usize, Option<String>), GroupError> {
    let internal = super::partials_topic(&store.topic, group);
    let (store, _, mut admin) = open(connection, store).await?;
    let deleted = match &store {
        Some(store) => delete_offsets(store, group, topic).await?,
        None => 0,
    };
    if topic.is_some() {
        return Ok((deleted, None));
    }
    match admin.delete_topic(&internal).await {
        Ok(()) => Ok((deleted, Some(internal))),
        Err(AdminError::UnknownTopic { .. }) => Ok((deleted, None)),
        Err(e) => Err(e.into()),
    }
}
