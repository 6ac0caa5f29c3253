//! Groups as weir keeps them: a group's session with the offsets store,
//! where its partitions resume, and the offset resets and deletes of
//! `weir offsets set` and `delete`.
//!
//! A group's offsets live in weir's compacted topic ([`OffsetStore`]);
//! joining one loads its commits and moves each assigned partition to its
//! committed offset.

use std::sync::Arc;

use rskafka::client::Client;
use serde::Serialize;

use crate::kafka::admin::{Admin, AdminError};
use crate::offsets::{
    Commit, GroupOffsets, GroupSession, OffsetKey, OffsetStore, OffsetsError, StoreConfig,
    instance_id,
};
use crate::read::{Assignment, ConsumeError, StartOffset, resolve_start};
use crate::timestamp::now_ms;
use crate::{ConnectionConfig, TopicPartition};

/// Errors of joining a group or changing its offsets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The cluster could not be asked.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The offsets store could not be read or written.
    #[error(transparent)]
    Offsets(#[from] OffsetsError),
    /// A partition's position could not be resolved.
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    /// The cluster could not be reached.
    #[error(transparent)]
    Connect(#[from] crate::kafka::connect::ConnectError),
    /// A partition the topic does not have.
    #[error("topic \"{topic}\" has {}, partition {partition} is out of range", crate::plural(*.partitions, "partition"))]
    PartitionOutOfRange {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many it has.
        partitions: i32,
    },
}

/// Opens the offsets store: `None` when it does not exist and `store`
/// does not create it (a reader on a cluster where no group committed).
///
/// # Errors
///
/// The store could not be found, created or checked.
pub async fn open_store(
    client: &Arc<Client>,
    config: &ConnectionConfig,
    store: &StoreConfig,
) -> Result<Option<OffsetStore>, GroupError> {
    let mut admin = Admin::connect(config).await?;
    match OffsetStore::open(Arc::clone(client), &mut admin, store, config.timeout).await {
        Ok(store) => Ok(Some(store)),
        Err(OffsetsError::NoStore { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens `group`'s session with the offsets store and moves each
/// assignment to the group's committed offset where it has one. `None`
/// when the store does not exist and `store.create` is off.
///
/// # Errors
///
/// The store could not be opened or read.
pub async fn join(
    client: &Arc<Client>,
    config: &ConnectionConfig,
    store: &StoreConfig,
    group: &str,
    assignments: &mut [Assignment],
) -> Result<Option<(GroupSession, GroupOffsets)>, GroupError> {
    let Some(store) = open_store(client, config, store).await? else {
        return Ok(None);
    };
    let (session, offsets) = GroupSession::start(store, group, instance_id()).await?;
    let mut resumed = 0;
    for a in assignments.iter_mut() {
        if let Some(c) = offsets.get(&TopicPartition::new(Arc::clone(&a.topic), a.partition)) {
            a.start = Some(c.offset);
            resumed += 1;
        }
    }
    tracing::debug!(
        group,
        resumed,
        new = assignments.len() - resumed,
        instance = session.instance(),
        "group offsets loaded"
    );
    Ok(Some((session, offsets)))
}

/// One partition's committed offset before and after `weir offsets set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffsetChange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The committed offset before, if any.
    pub from: Option<i64>,
    /// The offset committed now.
    pub to: i64,
}

/// Commits `start` (resolved against each partition's watermarks now) as
/// `group`'s offset for `partitions` of `topic`; with `dry_run`, or
/// without a store, only says what it would commit.
///
/// # Errors
///
/// A position that cannot be resolved, or a store that cannot be read or
/// written.
pub async fn set_offsets(
    client: &Client,
    store: Option<&OffsetStore>,
    group: &str,
    topic: &str,
    partitions: &[i32],
    start: StartOffset,
    dry_run: bool,
) -> Result<Vec<OffsetChange>, GroupError> {
    let before = match store {
        Some(store) => store.load(group).await?,
        None => GroupOffsets::new(),
    };
    let instance = format!("offsets-set:{}", instance_id());
    let mut commits = Vec::with_capacity(partitions.len());
    let mut changes = Vec::with_capacity(partitions.len());
    for &partition in partitions {
        let position = resolve_start(client, topic, partition, start).await?;
        let at = TopicPartition::new(topic, partition);
        changes.push(OffsetChange {
            topic: topic.to_owned(),
            partition,
            from: before.get(&at).map(|c| c.offset),
            to: position.start,
        });
        commits.push((
            OffsetKey {
                group: group.to_owned(),
                partition: at,
            },
            Some(Commit {
                offset: position.start,
                committed_at: now_ms(),
                instance: instance.clone(),
                started_at: None,
                state: None,
            }),
        ));
    }
    if let (Some(store), false) = (store, dry_run) {
        store.commit(group, &commits, None).await?;
    }
    Ok(changes)
}

/// Deletes `group`'s committed offsets (of `topic` only, when given);
/// returns how many.
///
/// # Errors
///
/// The store could not be read or written.
pub async fn delete_offsets(
    store: &OffsetStore,
    group: &str,
    topic: Option<&str>,
) -> Result<usize, GroupError> {
    let offsets = store.load(group).await?;
    let tombstones: Vec<(OffsetKey, Option<Commit>)> = offsets
        .into_keys()
        .filter(|p| topic.is_none_or(|t| t == &*p.topic))
        .map(|partition| {
            let key = OffsetKey {
                group: group.to_owned(),
                partition,
            };
            (key, None)
        })
        .collect();
    let deleted = tombstones.len();
    if deleted > 0 {
        store.commit(group, &tombstones, None).await?;
    }
    Ok(deleted)
}
