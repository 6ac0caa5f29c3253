//! What `weir offsets` asks of the store, as the library does it: the
//! groups that committed, a group's positions against each partition's
//! log, and moving or forgetting them. The binary only prints.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rskafka::client::Client;
use serde::Serialize;

use super::group::{
    GroupError, OffsetChange, OffsetReset, ResumeSource, broker_offsets, delete_offsets,
    resume_from, set_offsets,
};
use super::{GroupOffsets, OffsetStore, OffsetsError, StoreConfig};
use crate::kafka::admin::{Admin, AdminError, PartitionDescription};
use crate::read::StartOffset;
use crate::{ConnectionConfig, TopicPartition};

/// A group that committed offsets, in short: weir's commits, the
/// broker's, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    /// The group.
    pub group: String,
    /// The topics it committed for, sorted.
    pub topics: Vec<String>,
    /// The partitions it committed for.
    pub partitions: usize,
    /// When weir last committed for it, in ms since the epoch; `None` for
    /// a group only the broker has offsets of (their time is not known).
    pub last_commit_ms: Option<i64>,
    /// Where its offsets are: `weir` (the offsets store), `broker` (the
    /// broker's group offsets), in that order.
    pub sources: Vec<ResumeSource>,
    /// The broker's state of the group (`Empty`, `Stable`, …), for a group
    /// the broker knows.
    pub state: Option<String>,
    /// The group's type on the broker (`classic`, `consumer`, `share`),
    /// for a group the broker knows.
    pub group_type: Option<String>,
    /// Its protocol: the assignor (a classic group's members' choice, or
    /// the broker's for the consumer and share protocols), when known.
    pub protocol: Option<String>,
}

/// A group's position in one partition, against the partition's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset the group resumes from (the next to read), if any:
    /// weir's commit or the broker's, whichever is newer.
    pub committed: Option<i64>,
    /// Where `committed` comes from: `weir` or `broker`.
    pub resumes_from: Option<ResumeSource>,
    /// weir's commit in the offsets store.
    pub weir_committed: Option<i64>,
    /// The broker's committed offset for the group (OffsetFetch), by
    /// whichever client committed it.
    pub broker_committed: Option<i64>,
    /// The broker's commit was made by weir (its metadata says so).
    pub broker_by_weir: bool,
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
    /// When weir's commit was made, in ms since the epoch.
    pub committed_at_ms: Option<i64>,
    /// The weir instance that committed weir's commit.
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

/// Every group with committed offsets, by name: the groups of the
/// offsets store and the broker's consumer groups that have committed
/// offsets (ListGroups, then OffsetFetch for each).
///
/// # Errors
///
/// The cluster or the store could not be read.
pub async fn list_groups(
    connection: &ConnectionConfig,
    store: &StoreConfig,
) -> Result<Vec<GroupSummary>, GroupError> {
    let (store, _, mut admin) = open(connection, store).await?;
    let groups = match &store {
        Some(store) => store.load_all().await?,
        None => BTreeMap::new(),
    };
    let mut summaries: BTreeMap<String, (BTreeSet<TopicPartition>, GroupSummary)> = groups
        .into_iter()
        .map(|(group, offsets)| {
            let summary = GroupSummary {
                group: group.clone(),
                topics: Vec::new(),
                partitions: 0,
                last_commit_ms: offsets.values().map(|c| c.committed_at).max(),
                sources: vec![ResumeSource::Weir],
                state: None,
                group_type: None,
                protocol: None,
            };
            (group, (offsets.into_keys().collect(), summary))
        })
        .collect();
    for listed in admin.list_groups().await? {
        // Consumer groups (classic or KIP-848), groups of commits only, and
        // share groups (their start offsets).
        let share = listed.group_type == "share";
        if !share && !matches!(listed.protocol_type.as_str(), "consumer" | "") {
            continue;
        }
        let offsets = match share {
            true => admin
                .share_group_offsets(&listed.group)
                .await
                .map(|topics| {
                    topics
                        .into_iter()
                        .flat_map(|(topic, partitions)| {
                            partitions
                                .into_iter()
                                .filter(|p| p.start_offset >= 0)
                                .map(move |p| TopicPartition::new(topic.as_str(), p.partition))
                        })
                        .collect::<Vec<_>>()
                }),
            false => admin
                .fetch_group_offsets(&listed.group, None)
                .await
                .map(|offsets| {
                    offsets
                        .iter()
                        .map(|b| TopicPartition::new(b.topic.as_str(), b.partition))
                        .collect()
                }),
        };
        let offsets = match offsets {
            Ok(offsets) => offsets,
            Err(e) if e.refusal().is_some() => {
                tracing::debug!(group = listed.group, error = %crate::ErrorChain(&e), "group skipped");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let known = summaries.contains_key(&listed.group);
        if offsets.is_empty() && !known {
            continue;
        }
        let (partitions, summary) = summaries.entry(listed.group.clone()).or_insert_with(|| {
            (
                BTreeSet::new(),
                GroupSummary {
                    group: listed.group.clone(),
                    topics: Vec::new(),
                    partitions: 0,
                    last_commit_ms: None,
                    sources: Vec::new(),
                    state: None,
                    group_type: None,
                    protocol: None,
                },
            )
        });
        if !offsets.is_empty() {
            summary.sources.push(ResumeSource::Broker);
        }
        summary.state = Some(listed.state.clone()).filter(|s| !s.is_empty());
        summary.group_type = Some(listed.group_type.clone());
        summary.protocol = match admin
            .group_protocol(&listed.group, &listed.group_type)
            .await
        {
            Ok(protocol) => protocol,
            Err(e) => {
                tracing::debug!(group = listed.group, error = %crate::ErrorChain(&e), "protocol not known");
                None
            }
        };
        partitions.extend(offsets);
    }
    Ok(summaries
        .into_values()
        .map(|(partitions, mut summary)| {
            let mut topics: Vec<String> = partitions.iter().map(|p| p.topic.to_string()).collect();
            topics.dedup();
            summary.topics = topics;
            summary.partitions = partitions.len();
            summary
        })
        .collect())
}

/// `group`'s type on the broker (`classic`, `consumer`, `share`) and
/// protocol (its assignor, when known); `None` for a group the broker
/// does not know.
///
/// # Errors
///
/// The cluster could not be reached or refused.
pub async fn group_kind(
    connection: &ConnectionConfig,
    group: &str,
) -> Result<Option<(String, Option<String>)>, GroupError> {
    let mut admin = Admin::connect(connection).await?;
    let Some(listed) = admin
        .list_groups()
        .await?
        .into_iter()
        .find(|g| g.group == group)
    else {
        return Ok(None);
    };
    let protocol = admin
        .group_protocol(group, &listed.group_type)
        .await
        .unwrap_or_default();
    Ok(Some((listed.group_type, protocol)))
}

/// `group`'s commits, weir's and the broker's (of `topic` only, when
/// given), against each partition's watermarks, with where each partition
/// resumes from; a partition of a described topic without a commit shows
/// too. Commits outside their partition's log are logged as a warning.
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
    let broker = broker_offsets(&mut admin, group, &[]).await?;
    let committed: BTreeSet<&TopicPartition> = offsets.keys().chain(broker.keys()).collect();
    let mut topics: Vec<String> = committed.iter().map(|p| p.topic.to_string()).collect();
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
            Err(AdminError::UnknownTopic { .. }) if committed.iter().any(|p| &*p.topic == t) => {
                None
            }
            Err(e) => return Err(e.into()),
        };
        let mut partitions: BTreeMap<i32, Option<&PartitionDescription>> = description
            .iter()
            .flat_map(|d| d.partitions.iter().map(|p| (p.partition, Some(p))))
            .collect();
        for p in committed.iter().filter(|p| &*p.topic == t) {
            partitions.entry(p.partition).or_insert(None);
        }
        for (partition, described) in partitions {
            let at = TopicPartition::new(t.as_str(), partition);
            let commit = offsets.get(&at);
            let theirs = broker.get(&at);
            let resume = resume_from(commit, theirs);
            let resumed = resume.map(|r| r.offset);
            let watermarks = described.map(|p| (p.earliest, p.latest));
            let high = watermarks.map(|(_, high)| high);
            rows.push(PartitionReport {
                topic: t.clone(),
                partition,
                committed: resumed,
                resumes_from: resume.map(|r| r.source),
                weir_committed: commit.map(|c| c.offset),
                broker_committed: theirs.map(|b| b.offset),
                broker_by_weir: theirs.is_some_and(|b| b.weir_time().is_some()),
                high_watermark: high,
                last_stable_offset: described.and_then(|p| p.last_stable),
                lag: match (resumed, high) {
                    (Some(c), Some(h)) => Some(h - c),
                    _ => None,
                },
                out_of_range: match (resumed, watermarks) {
                    (Some(c), Some((low, high))) => !(low..=high).contains(&c),
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

/// `group` on the broker, refused with [`GroupError::LiveMembers`] while
/// it has live members, unless `force`; returns them, if it has any.
/// Forced, every member must be weir's (a client id starting with
/// `weir`): only those pick a moved position up while they run.
async fn check_inactive(
    admin: &mut Admin,
    group: &str,
    force: bool,
) -> Result<Option<String>, GroupError> {
    let described = admin.describe_group(group).await?;
    if !described.is_live() {
        return Ok(None);
    }
    let list = |weirs: Option<bool>| {
        described
            .members
            .iter()
            .filter(|m| weirs.is_none_or(|w| m.client_id.starts_with("weir") == w))
            .map(|m| format!("{} ({})", m.client_id, m.host))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !force {
        return Err(GroupError::LiveMembers {
            group: group.to_owned(),
            state: described.state.clone(),
            members: list(None),
        });
    }
    let others = list(Some(false));
    if !others.is_empty() {
        return Err(GroupError::Unforceable {
            group: group.to_owned(),
            members: others,
            why: "only weir's members (a client id starting with \"weir\") move while they run; the broker refuses commits from outside a group with members: stop these first",
        });
    }
    Ok(Some(list(None)))
}

/// Whether the group keeps state with its positions (`weir count/agg`):
/// its counts cannot be moved with them under live members.
fn keeps_state(offsets: &GroupOffsets) -> bool {
    offsets.values().any(|c| c.state.is_some())
}

/// Moves `group`'s positions in `partitions` of `topic` (all, without a
/// list) to `start`, resolved against each partition's watermarks now, in
/// weir's store and the broker's group offsets; with `dry_run` only says
/// what would change. A group with live members is refused unless
/// `force` and every member is a weir member without state: then only
/// weir's store is written, and the members move to it at their next
/// commit.
///
/// # Errors
///
/// A partition out of the topic's range, a group with live members, or
/// the cluster or the store could not be read or written.
#[allow(clippy::too_many_arguments)]
pub async fn set_group_offsets(
    connection: &ConnectionConfig,
    store: &StoreConfig,
    group: &str,
    topic: &str,
    partitions: Option<Vec<i32>>,
    start: StartOffset,
    dry_run: bool,
    force: bool,
) -> Result<Vec<OffsetChange>, GroupError> {
    let store = StoreConfig {
        create: !dry_run,
        ..store.clone()
    };
    // Refused before anything is created.
    let live = match dry_run {
        true => None,
        false => check_inactive(&mut Admin::connect(connection).await?, group, force).await?,
    };
    let (store, client, mut admin) = open(connection, &store).await?;
    if let Some(members) = &live {
        if let Some(store) = &store
            && keeps_state(&store.load(group).await?)
        {
            return Err(GroupError::Unforceable {
                group: group.to_owned(),
                members: "weir count/agg members".to_owned(),
                why: "their windows hold what was counted up to their positions, which a forced move would count again or skip: stop them first",
            });
        }
        tracing::warn!(
            "group \"{group}\" has live members ({members}); --force: each moves to the new offsets at its next commit (--commit-interval) and reads on from there"
        );
    }
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
    let reset = OffsetReset {
        group,
        topic,
        partitions: &partitions,
        start,
        dry_run,
        broker: live.is_none(),
    };
    set_offsets(&client, &mut admin, store.as_ref(), &reset).await
}

/// Forgets `group`'s commits (of `topic` only, when given), weir's and
/// the broker's; returns how many partitions had one, and, for the whole
/// group, the internal topic deleted with them (a count's partial
/// aggregates across members), if it had one. A group with live members
/// is refused (a running member cannot pick up a deleted commit).
///
/// # Errors
///
/// A group with live members, the cluster or the store could not be read
/// or written, or the internal topic not deleted.
pub async fn delete_group_offsets(
    connection: &ConnectionConfig,
    store: &StoreConfig,
    group: &str,
    topic: Option<&str>,
) -> Result<(usize, Option<String>), GroupError> {
    let internal = super::partials_topic(&store.topic, group);
    let (store, _, mut admin) = open(connection, store).await?;
    check_inactive(&mut admin, group, false).await?;
    let deleted = delete_offsets(&mut admin, store.as_ref(), group, topic, true).await?;
    if topic.is_some() {
        return Ok((deleted, None));
    }
    match admin.delete_topic(&internal).await {
        Ok(()) => Ok((deleted, Some(internal))),
        Err(AdminError::UnknownTopic { .. }) => Ok((deleted, None)),
        Err(e) => Err(e.into()),
    }
}
