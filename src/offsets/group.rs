//! Groups as weir keeps them: a group's session with the offsets store,
//! where its partitions resume, and the offset resets and deletes of
//! `weir offsets set` and `delete`.
//!
//! A group's offsets live in weir's compacted topic ([`OffsetStore`]) and
//! on the broker (OffsetFetch); joining one loads both and moves each
//! assigned partition to the newer commit ([`resume_from`]). `set` and
//! `delete` write both.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use rskafka::client::Client;
use serde::Serialize;

use crate::kafka::admin::groups::{BrokerOffset, GroupAdminError, commit_metadata};
use crate::kafka::admin::{Admin, AdminError};
use crate::offsets::session::RESET_INSTANCE;
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
    /// The broker's offsets of the group could not be read or written.
    #[error(transparent)]
    Broker(#[from] GroupAdminError),
    /// The offsets store could not be read or written.
    #[error(transparent)]
    Offsets(#[from] OffsetsError),
    /// A partition's position could not be resolved.
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    /// The cluster could not be reached.
    #[error(transparent)]
    Connect(#[from] crate::kafka::connect::ConnectError),
    /// `weir offsets set` or `delete` of a group with live members.
    #[error(
        "group \"{group}\" has live members: {members}; its offsets can only be changed while it is inactive (state {state}): stop them first (weir consume and pipe members move while they run with `weir offsets set --force`)"
    )]
    LiveMembers {
        /// The group.
        group: String,
        /// Its state on the broker.
        state: String,
        /// Its members: client id (host), comma-separated.
        members: String,
    },
    /// `weir offsets set` or `delete` of a share group with members: the
    /// broker changes a share group's start offsets only while it is
    /// empty.
    #[error(
        "share group \"{group}\" has members: {members}; its start offsets can only be changed while it has none (state {state}): stop them first"
    )]
    ShareGroupLive {
        /// The group.
        group: String,
        /// Its state on the broker.
        state: String,
        /// Its members: client id (host), comma-separated.
        members: String,
    },
    /// `weir offsets set --force` of a group with
    /// live members that cannot pick the change up while they run.
    #[error(
        "group \"{group}\" has live members that cannot pick up a forced change: {members}; {why}"
    )]
    Unforceable {
        /// The group.
        group: String,
        /// The members in question: client id (host), comma-separated.
        members: String,
        /// Why, and what to do.
        why: &'static str,
    },
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
    client: Arc<Client>,
    config: &ConnectionConfig,
    store: &StoreConfig,
) -> Result<Option<OffsetStore>, GroupError> {
    let mut admin = Admin::connect(config).await?;
    match OffsetStore::open(client, &mut admin, store, config.timeout).await {
        Ok(store) => Ok(Some(store)),
        Err(OffsetsError::NoStore { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Where a partition of a group resumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResumeSource {
    /// weir's own commit in the offsets store.
    Weir,
    /// The broker's committed offset for the group (OffsetFetch), by
    /// whichever client committed it.
    Broker,
}

impl std::fmt::Display for ResumeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Weir => "weir",
            Self::Broker => "broker",
        })
    }
}

/// A partition's resume point: the offset, where it comes from, and
/// whether weir's commit and the broker's disagreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The next offset to read.
    pub offset: i64,
    /// Whose commit it is.
    pub source: ResumeSource,
    /// Both had a commit, at different offsets.
    pub differ: bool,
}

/// Where a partition resumes: weir's commit when there is one, else the
/// broker's; when both exist and differ, the newer. A broker commit
/// carrying weir's metadata has its time to compare; another client's is
/// the newer unless the session that made weir's commit found it on the
/// broker when it began ([`Commit::broker`]): weir's runs outside the
/// broker's group (bounded, static) do not mirror their commits.
pub fn resume_from(weir: Option<&Commit>, broker: Option<&BrokerOffset>) -> Option<Resume> {
    let resume = |offset, source, differ| Resume {
        offset,
        source,
        differ,
    };
    match (weir, broker) {
        (None, None) => None,
        (Some(c), None) => Some(resume(c.offset, ResumeSource::Weir, false)),
        (None, Some(b)) => Some(resume(b.offset, ResumeSource::Broker, false)),
        (Some(c), Some(b)) if c.offset == b.offset => {
            Some(resume(c.offset, ResumeSource::Weir, false))
        }
        (Some(c), Some(b)) => {
            let weir_newer = match b.weir_time() {
                // A reset stands over weir's mirrors: members that held
                // the partition when it was forced stopped committing it.
                Some(_) if c.instance.starts_with(RESET_INSTANCE) => true,
                Some(at) => at <= c.committed_at,
                // The session that made weir's commit saw this one.
                None => c.broker == Some(b.offset),
            };
            match weir_newer {
                true => Some(resume(c.offset, ResumeSource::Weir, true)),
                false => Some(resume(b.offset, ResumeSource::Broker, true)),
            }
        }
    }
}

/// `group`'s committed offsets on the broker for `partitions`, by
/// partition. A group the principal may not read is warned about and
/// treated as having none.
///
/// # Errors
///
/// The coordinator could not be found or refused otherwise.
pub async fn broker_offsets(
    admin: &mut Admin,
    group: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, BrokerOffset>, GroupError> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for p in partitions {
        topics.entry(&p.topic).or_default().push(p.partition);
    }
    let topics: Vec<(String, Vec<i32>)> = topics
        .into_iter()
        .map(|(t, ps)| (t.to_owned(), ps))
        .collect();
    let filter = (!topics.is_empty()).then_some(topics.as_slice());
    let fetched = match admin.fetch_group_offsets(group, filter).await {
        Ok(offsets) => offsets,
        Err(e) if e.refusal() == Some(ResponseError::GroupAuthorizationFailed) => {
            tracing::warn!(
                group,
                error = %crate::ErrorChain(&e),
                "the broker's offsets of the group cannot be read; resuming from weir's commits only"
            );
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    Ok(fetched
        .into_iter()
        .map(|b| (TopicPartition::new(b.topic.as_str(), b.partition), b))
        .collect())
}

/// Whether this process has not yet said where `at` resumes with these
/// two commits: a member joins again at each rebalance, and says it once.
fn first_time(
    group: &str,
    at: &TopicPartition,
    weir: Option<&Commit>,
    broker: Option<&BrokerOffset>,
) -> bool {
    type Said = (String, TopicPartition, Option<i64>, Option<i64>);
    static SAID: std::sync::Mutex<std::collections::BTreeSet<Said>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    SAID.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert((
            group.to_owned(),
            at.clone(),
            weir.map(|c| c.offset),
            broker.map(|b| b.offset),
        ))
}

/// Opens `group`'s session with the offsets store and moves each
/// assignment to where the group resumes ([`resume_from`]): weir's commit,
/// or the broker's committed offset for the group where weir has none or
/// the broker's is newer (logged once per partition, with both offsets).
/// A partition resuming from the broker's offset is left out of the
/// returned commits, so a job with state starts its windows there rather
/// than restore state saved at another offset. The session is `None`
/// when the store does not exist and `store.create` is off (the broker's
/// offsets still apply).
///
/// # Errors
///
/// The store could not be opened or read, or the broker's offsets not
/// fetched.
pub async fn join(
    client: Arc<Client>,
    config: &ConnectionConfig,
    store: &StoreConfig,
    group: &str,
    assignments: &mut [Assignment],
) -> Result<Option<(GroupSession, GroupOffsets)>, GroupError> {
    let mut admin = Admin::connect(config).await?;
    let opened = match OffsetStore::open(client, &mut admin, store, config.timeout).await {
        Ok(store) => Some(store),
        Err(OffsetsError::NoStore { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let partitions: Vec<TopicPartition> = assignments
        .iter()
        .map(Assignment::topic_partition)
        .collect();
    let broker = match partitions.is_empty() {
        true => BTreeMap::new(),
        false => broker_offsets(&mut admin, group, &partitions).await?,
    };
    let (session, mut offsets) = match opened {
        Some(store) => {
            let (mut session, offsets) = GroupSession::start(store, group, instance_id()).await?;
            session.saw_broker(
                broker
                    .iter()
                    .filter(|(_, b)| b.weir_time().is_none())
                    .map(|(at, b)| (at.clone(), b.offset))
                    .collect(),
            );
            (Some(session), offsets)
        }
        None => (None, GroupOffsets::new()),
    };
    let (mut from_weir, mut from_broker) = (0, 0);
    for a in assignments.iter_mut() {
        let at = a.topic_partition();
        let weir = offsets.get(&at);
        let theirs = broker.get(&at);
        let Some(resume) = resume_from(weir, theirs) else {
            continue;
        };
        if resume.differ && first_time(group, &at, weir, theirs) {
            let (w, b) = (
                weir.map_or(-1, |c| c.offset),
                theirs.map_or(-1, |b| b.offset),
            );
            let whose = match theirs.and_then(BrokerOffset::weir_time) {
                Some(_) => "weir's mirrored commit",
                None => "another client's commit",
            };
            match resume.source {
                ResumeSource::Broker => tracing::warn!(
                    "group \"{group}\" topic \"{}\" partition {}: resuming from the broker's committed offset {b} ({whose}, the newer), not weir's {w}",
                    a.topic,
                    a.partition
                ),
                ResumeSource::Weir => tracing::info!(
                    "group \"{group}\" topic \"{}\" partition {}: resuming from weir's committed offset {w} (the newer), not the broker's {b} ({whose})",
                    a.topic,
                    a.partition
                ),
            }
        }
        a.start = Some(resume.offset);
        match resume.source {
            ResumeSource::Weir => from_weir += 1,
            ResumeSource::Broker => {
                offsets.remove(&at);
                from_broker += 1;
            }
        }
    }
    tracing::debug!(
        group,
        from_weir,
        from_broker,
        new = assignments.len() - from_weir - from_broker,
        "group offsets loaded"
    );
    Ok(session.map(|s| (s, offsets)))
}

/// One partition's committed offset before and after `weir offsets set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffsetChange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The offset the group resumed from before, if any.
    pub from: Option<i64>,
    /// Where `from` came from: weir's commit or the broker's.
    pub from_source: Option<ResumeSource>,
    /// The offset committed now.
    pub to: i64,
}

/// What `weir offsets set` is to do: which partitions, to where, and
/// where it writes.
#[derive(Debug, Clone)]
pub struct OffsetReset<'a> {
    /// The group.
    pub group: &'a str,
    /// The topic.
    pub topic: &'a str,
    /// Its partitions to move.
    pub partitions: &'a [i32],
    /// Where to.
    pub start: StartOffset,
    /// Only say what would change.
    pub dry_run: bool,
    /// Write the broker's group offsets too (off for a group with live
    /// members, which the broker refuses commits from outside).
    pub broker: bool,
}

/// Commits `reset.start` (resolved against each partition's watermarks
/// now) as the group's offset for its partitions, in weir's store (when
/// there is one) and on the broker (as `kafka-consumer-groups
/// --reset-offsets`, with weir's metadata and the same commit time);
/// with `dry_run` only says what it would commit.
///
/// # Errors
///
/// A position that cannot be resolved, or a store or broker that cannot
/// be read or written.
pub async fn set_offsets(
    client: &Client,
    admin: &mut Admin,
    store: Option<&OffsetStore>,
    reset: &OffsetReset<'_>,
) -> Result<Vec<OffsetChange>, GroupError> {
    let OffsetReset {
        group,
        topic,
        partitions,
        start,
        dry_run,
        broker,
    } = *reset;
    let before = match store {
        Some(store) => store.load(group).await?,
        None => GroupOffsets::new(),
    };
    let at: Vec<TopicPartition> = partitions
        .iter()
        .map(|&p| TopicPartition::new(topic, p))
        .collect();
    let broker_before = broker_offsets(admin, group, &at).await?;
    let instance = format!("{RESET_INSTANCE}{}", instance_id());
    let now = now_ms();
    let mut commits = Vec::with_capacity(partitions.len());
    let mut changes = Vec::with_capacity(partitions.len());
    let mut broker_commits = Vec::with_capacity(partitions.len());
    for tp in at {
        let position = resolve_start(client, topic, tp.partition, start).await?;
        let was = resume_from(before.get(&tp), broker_before.get(&tp));
        changes.push(OffsetChange {
            topic: topic.to_owned(),
            partition: tp.partition,
            from: was.map(|r| r.offset),
            from_source: was.map(|r| r.source),
            to: position.start,
        });
        broker_commits.push((topic.to_owned(), tp.partition, position.start));
        commits.push((
            OffsetKey {
                group: group.to_owned(),
                partition: tp,
            },
            Some(Commit {
                offset: position.start,
                committed_at: now,
                instance: instance.clone(),
                started_at: None,
                broker: None,
                state: None,
            }),
        ));
    }
    if dry_run {
        return Ok(changes);
    }
    // The broker first: a refusal (a group with live members that
    // DescribeGroups does not show, as a KIP-848 group) leaves both as
    // they were.
    if broker {
        let committed = admin
            .commit_group_offsets(group, &broker_commits, &commit_metadata(now))
            .await;
        match committed {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.refusal(),
                    Some(
                        ResponseError::UnknownMemberId
                            | ResponseError::IllegalGeneration
                            | ResponseError::StaleMemberEpoch
                    )
                ) =>
            {
                return Err(GroupError::LiveMembers {
                    group: group.to_owned(),
                    state: "not Empty".to_owned(),
                    members: format!("the broker refused the commit ({})", crate::ErrorChain(&e)),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(store) = store {
        store.commit(group, &commits, None).await?;
    }
    Ok(changes)
}

/// Deletes `group`'s committed offsets (of `topic` only, when given), in
/// weir's store (when there is one) and, with `broker`, on the broker
/// (OffsetDelete, as `kafka-consumer-groups --delete-offsets`); returns
/// how many partitions had a commit.
///
/// # Errors
///
/// The store or the broker could not be read or written.
pub async fn delete_offsets(
    admin: &mut Admin,
    store: Option<&OffsetStore>,
    group: &str,
    topic: Option<&str>,
    broker: bool,
) -> Result<usize, GroupError> {
    let offsets = match store {
        Some(store) => store.load(group).await?,
        None => GroupOffsets::new(),
    };
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
    let mut deleted: std::collections::BTreeSet<TopicPartition> = tombstones
        .iter()
        .map(|(k, _)| k.partition.clone())
        .collect();
    if let (Some(store), false) = (store, tombstones.is_empty()) {
        store.commit(group, &tombstones, None).await?;
    }
    let theirs = broker_offsets(admin, group, &[]).await?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for p in theirs
        .keys()
        .filter(|p| topic.is_none_or(|t| t == &*p.topic))
    {
        by_topic.entry(&p.topic).or_default().push(p.partition);
        deleted.insert(p.clone());
    }
    if broker {
        for (t, partitions) in by_topic {
            admin.delete_group_offsets(group, t, &partitions).await?;
        }
    }
    Ok(deleted.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weir(offset: i64, at: i64) -> Commit {
        Commit {
            offset,
            committed_at: at,
            instance: "i".to_owned(),
            started_at: None,
            broker: None,
            state: None,
        }
    }

    fn broker(offset: i64, metadata: Option<String>) -> BrokerOffset {
        BrokerOffset {
            topic: "t".to_owned(),
            partition: 0,
            offset,
            metadata,
        }
    }

    #[test]
    fn a_partition_resumes_from_the_newer_commit() {
        let source = |w: Option<&Commit>, b: Option<&BrokerOffset>| {
            resume_from(w, b).map(|r| (r.offset, r.source, r.differ))
        };
        assert_eq!(source(None, None), None);
        assert_eq!(
            source(Some(&weir(5, 10)), None),
            Some((5, ResumeSource::Weir, false))
        );
        // Another client's commit, and weir has none.
        assert_eq!(
            source(None, Some(&broker(7, None))),
            Some((7, ResumeSource::Broker, false))
        );
        // The same offset: weir's.
        assert_eq!(
            source(Some(&weir(7, 10)), Some(&broker(7, None))),
            Some((7, ResumeSource::Weir, false))
        );
        // Another client committed after weir's last mirror.
        assert_eq!(
            source(Some(&weir(5, 10)), Some(&broker(9, None))),
            Some((9, ResumeSource::Broker, true))
        );
        // A run outside the broker's group that began at the Java commit.
        let mut after = weir(9, 10);
        after.broker = Some(5);
        assert_eq!(
            source(Some(&after), Some(&broker(5, None))),
            Some((9, ResumeSource::Weir, true))
        );
        // A forced reset stands over a live member's later mirror.
        let mut reset = weir(0, 10);
        reset.instance = format!("{RESET_INSTANCE}x");
        assert_eq!(
            source(Some(&reset), Some(&broker(8, Some(commit_metadata(11))))),
            Some((0, ResumeSource::Weir, true))
        );
        // weir's own mirror, older than its store commit.
        assert_eq!(
            source(
                Some(&weir(5, 10)),
                Some(&broker(3, Some(commit_metadata(9))))
            ),
            Some((5, ResumeSource::Weir, true))
        );
        // weir's mirror newer than the store's commit (another store).
        assert_eq!(
            source(
                Some(&weir(5, 10)),
                Some(&broker(8, Some(commit_metadata(11))))
            ),
            Some((8, ResumeSource::Broker, true))
        );
    }
}
