//! `weir offsets show/set/delete` of a share group: its start offset per
//! partition against the partition's log, its members and their
//! partitions; a move of the start offsets and a delete of the group's
//! state, both only while the group has no members (the broker refuses
//! otherwise, and weir says so first).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ConnectionConfig;
use crate::kafka::admin::Admin;
use crate::kafka::admin::groups::ShareGroupDescription;
use crate::offsets::group::GroupError;
use crate::read::StartOffset;

/// A share group's position in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharePartitionReport {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The start offset: records before it are done (acknowledged or
    /// archived); `None` when the group has no state for the partition.
    pub start_offset: Option<i64>,
    /// The partition's high watermark; `None` for a deleted topic.
    pub high_watermark: Option<i64>,
    /// High watermark minus start offset: records not yet done, those
    /// in flight (acquired, not acknowledged) included.
    pub lag: Option<i64>,
}

/// A share group, its members and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareGroupReport {
    /// The group, its state, assignor and members.
    pub group: ShareGroupDescription,
    /// Per partition, sorted.
    pub partitions: Vec<SharePartitionReport>,
}

/// One partition's start offset as `set` moves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareOffsetChange {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The start offset before, if the group had one.
    pub from: Option<i64>,
    /// The start offset after.
    pub to: i64,
}

/// `group` as a share group (of `topic` only, when given); `None` when
/// it is not one.
///
/// # Errors
///
/// The cluster could not be reached or refused.
pub async fn show(
    connection: &ConnectionConfig,
    group: &str,
    topic: Option<&str>,
) -> Result<Option<ShareGroupReport>, GroupError> {
    let mut admin = Admin::connect(connection).await?;
    let Some(description) = describe(&mut admin, group).await? else {
        return Ok(None);
    };
    let offsets = admin.share_group_offsets(group).await?;
    let mut partitions = Vec::new();
    for (name, starts) in offsets {
        if topic.is_some_and(|t| t != name) {
            continue;
        }
        let ends: BTreeMap<i32, i64> = match admin.describe_topic(&name).await {
            Ok(t) => t
                .partitions
                .iter()
                .map(|p| (p.partition, p.latest))
                .collect(),
            Err(crate::kafka::admin::AdminError::UnknownTopic { .. }) => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        for s in starts {
            let start = Some(s.start_offset).filter(|&o| o >= 0);
            let end = ends.get(&s.partition).copied();
            partitions.push(SharePartitionReport {
                topic: name.clone(),
                partition: s.partition,
                start_offset: start,
                high_watermark: end,
                lag: start.zip(end).map(|(s, e)| (e - s).max(0)),
            });
        }
    }
    Ok(Some(ShareGroupReport {
        group: description,
        partitions,
    }))
}

/// Moves `group`'s start offsets of `topic` (its `partitions`, or all)
/// to `to`, clamped to each partition's log; with `dry_run` only says
/// what would change.
///
/// # Errors
///
/// The group has members ([`GroupError::ShareGroupLive`]), the topic does
/// not exist, or the broker refused.
pub async fn set(
    connection: &ConnectionConfig,
    group: &str,
    topic: &str,
    partitions: Option<Vec<i32>>,
    to: StartOffset,
    dry_run: bool,
) -> Result<Vec<ShareOffsetChange>, GroupError> {
    let mut admin = Admin::connect(connection).await?;
    refuse_members(&mut admin, group).await?;
    let logs = admin.describe_topic(topic).await?.partitions;
    let times = match to {
        StartOffset::Timestamp(ms) => admin
            .offsets_for_time(topic, ms)
            .await?
            .into_iter()
            .map(|t| (t.partition, t.offset))
            .collect(),
        _ => BTreeMap::new(),
    };
    let current: BTreeMap<i32, i64> = admin
        .share_group_offsets(group)
        .await?
        .remove(topic)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.start_offset >= 0)
        .map(|s| (s.partition, s.start_offset))
        .collect();
    let mut changes = Vec::new();
    for log in &logs {
        if partitions
            .as_ref()
            .is_some_and(|ps| !ps.contains(&log.partition))
        {
            continue;
        }
        let wanted = match to {
            StartOffset::Earliest => log.earliest,
            StartOffset::Latest => log.latest,
            StartOffset::Offset(o) => o,
            StartOffset::FromEnd(n) => log.latest - n,
            StartOffset::Timestamp(_) => times.get(&log.partition).copied().unwrap_or(log.latest),
        };
        changes.push(ShareOffsetChange {
            topic: topic.to_owned(),
            partition: log.partition,
            from: current.get(&log.partition).copied(),
            to: wanted.clamp(log.earliest, log.latest),
        });
    }
    if let Some(ps) = &partitions {
        for &p in ps {
            if !logs.iter().any(|l| l.partition == p) {
                return Err(GroupError::PartitionOutOfRange {
                    topic: topic.to_owned(),
                    partition: p,
                    partitions: i32::try_from(logs.len()).unwrap_or(i32::MAX),
                });
            }
        }
    }
    if !dry_run {
        let offsets: Vec<(i32, i64)> = changes.iter().map(|c| (c.partition, c.to)).collect();
        admin
            .alter_share_group_offsets(group, topic, &offsets)
            .await?;
    }
    Ok(changes)
}

/// Deletes `group`'s state of `topic`, or of every topic it has state
/// of; returns the partitions that had a start offset.
///
/// # Errors
///
/// The group has members ([`GroupError::ShareGroupLive`]) or the broker
/// refused.
pub async fn delete(
    connection: &ConnectionConfig,
    group: &str,
    topic: Option<&str>,
) -> Result<usize, GroupError> {
    let mut admin = Admin::connect(connection).await?;
    refuse_members(&mut admin, group).await?;
    let offsets = admin.share_group_offsets(group).await?;
    let topics: Vec<String> = offsets
        .keys()
        .filter(|t| topic.is_none_or(|only| only == t.as_str()))
        .cloned()
        .collect();
    let deleted = topics
        .iter()
        .map(|t| offsets[t].iter().filter(|s| s.start_offset >= 0).count())
        .sum();
    if !topics.is_empty() {
        admin.delete_share_group_offsets(group, &topics).await?;
    }
    Ok(deleted)
}

async fn refuse_members(admin: &mut Admin, group: &str) -> Result<(), GroupError> {
    if let Some(described) = describe(admin, group).await? {
        if !described.members.is_empty() {
            let members: Vec<String> = described
                .members
                .iter()
                .map(|m| format!("{} ({})", m.client_id, m.host))
                .collect();
            return Err(GroupError::ShareGroupLive {
                group: group.to_owned(),
                state: described.state,
                members: members.join(", "),
            });
        }
    }
    Ok(())
}

/// Whether `group` is a share group; `false` on a broker without share
/// groups.
///
/// # Errors
///
/// The cluster could not be reached or refused.
pub async fn is_share_group(
    connection: &ConnectionConfig,
    group: &str,
) -> Result<bool, GroupError> {
    let mut admin = Admin::connect(connection).await?;
    Ok(describe(&mut admin, group).await?.is_some())
}

/// ShareGroupDescribe, `None` for a group that is not a share group and
/// on a broker that has none.
async fn describe(
    admin: &mut Admin,
    group: &str,
) -> Result<Option<ShareGroupDescription>, GroupError> {
    use crate::kafka::admin::AdminError;
    use crate::kafka::admin::groups::GroupAdminError;
    match admin.describe_share_group(group).await {
        Err(GroupAdminError::Admin(AdminError::Wire(crate::kafka::WireError::Unsupported {
            ..
        }))) => Ok(None),
        result => Ok(result?),
    }
}
