//! The broker's consumer groups, as `kafka-consumer-groups` sees them:
//! their committed offsets (OffsetFetch), an admin commit and delete of
//! them (OffsetCommit with generation -1, OffsetDelete), and what a group
//! is and who is in it (DescribeGroups, ListGroups).
//!
//! Group requests go to the group's coordinator (FindCoordinator first);
//! a coordinator that moved or is loading is looked up again until the
//! connection's timeout. Versions are the highest the broker and weir
//! share, so Kafka 3.6 to 4.x brokers answer.
//!
//! weir's own commits to a group's offsets carry a metadata string
//! ([`commit_metadata`]): `weir <commit time in ms>`, so that a reader
//! tells weir's mirrored commits from other clients' and knows when
//! weir's were made ([`weir_commit_time`]).
//!
//! DescribeGroups and ListGroups are in `members`; share groups'
//! descriptions and offsets in `share`.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::{Message, Request, StrBytes};
use serde::Serialize;
use tokio::time::Instant;

use super::{Admin, AdminError, BrokerRefusal, topic_name};

mod members;
mod share;

use crate::kafka::connect::ConnectError;
use crate::kafka::wire::WireError;
pub use members::{GroupDescription, GroupMemberDescription, ListedGroup};
pub use share::{ShareGroupDescription, ShareMemberDescription, ShareStartOffset};

/// How weir's commits to a group's offsets begin their metadata string.
const WEIR_METADATA: &str = "weir ";

/// The metadata string of a commit weir makes at `committed_at_ms`:
/// `weir <ms>`.
pub fn commit_metadata(committed_at_ms: i64) -> String {
    format!("{WEIR_METADATA}{committed_at_ms}")
}

/// When weir made a commit whose metadata string is `metadata`; `None`
/// for another client's commit.
pub fn weir_commit_time(metadata: &str) -> Option<i64> {
    metadata
        .strip_prefix(WEIR_METADATA)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Errors of requests about a broker's consumer group. Each names the
/// group, and the topic and partition where the broker named one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupAdminError {
    /// The cluster could not be reached or asked.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The broker refused a request about the group.
    #[error("cannot {action} group \"{group}\"{} (broker {broker})", at(.topic.as_deref(), *.partition))]
    Refused {
        /// What weir tried: fetch offsets of, commit offsets of, …
        action: &'static str,
        /// The group.
        group: String,
        /// The topic, when the refusal was about one.
        topic: Option<String>,
        /// The partition, when the refusal was about one.
        partition: Option<i32>,
        /// `host:port` of the broker that refused.
        broker: String,
        /// The broker's error and message.
        #[source]
        refusal: BrokerRefusal,
    },
    /// No coordinator for the group within the connection's timeout.
    #[error("no coordinator for group \"{group}\" within {}: {why}", humantime::format_duration(*.timeout))]
    NoCoordinator {
        /// The group.
        group: String,
        /// The deadline.
        timeout: std::time::Duration,
        /// The last answer.
        why: String,
    },
}

impl From<WireError> for GroupAdminError {
    fn from(e: WireError) -> Self {
        Self::Admin(AdminError::Wire(e))
    }
}

impl From<ConnectError> for GroupAdminError {
    fn from(e: ConnectError) -> Self {
        Self::Admin(AdminError::Connect(e))
    }
}

impl GroupAdminError {
    /// The broker's error code, for a refusal (of the request, or of
    /// finding the group's coordinator).
    pub fn refusal(&self) -> Option<ResponseError> {
        match self {
            Self::Refused { refusal, .. } => Some(refusal.error),
            // FindCoordinator's own refusal (GroupAuthorizationFailed).
            Self::Admin(AdminError::Wire(WireError::Broker { error, .. })) => Some(*error),
            _ => None,
        }
    }
}

fn at(topic: Option<&str>, partition: Option<i32>) -> String {
    match (topic, partition) {
        (Some(t), Some(p)) => format!(" topic \"{t}\" partition {p}"),
        (Some(t), None) => format!(" topic \"{t}\""),
        _ => String::new(),
    }
}

/// A group's committed offset of one partition on the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset: the next to read.
    pub offset: i64,
    /// The committer's metadata string (weir's is `weir <ms>`).
    pub metadata: Option<String>,
}

impl BrokerOffset {
    /// When weir committed it; `None` for another client's commit.
    pub fn weir_time(&self) -> Option<i64> {
        self.metadata.as_deref().and_then(weir_commit_time)
    }
}

/// How long a coordinator FindCoordinator named is tried before it is
/// asked for again.
const REACH_COORDINATOR: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a group-level error code means "ask the coordinator again".
fn coordinator_moved(error: ResponseError) -> bool {
    matches!(
        error,
        ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
    )
}

impl Admin {
    /// The address of `group`'s coordinator.
    async fn group_coordinator(&mut self, group: &str) -> Result<String, GroupAdminError> {
        let deadline = Instant::now() + self.config.timeout;
        loop {
            let bootstrap = self.bootstrap.clone();
            let timeout = self.config.timeout;
            let conn = self.connection(&bootstrap, timeout).await?;
            let why = match conn.find_coordinator(group, 0).await {
                // A coordinator that cannot be reached (its broker died,
                // and the controller has not moved its groups yet) is
                // asked for again, as the Java admin client does, rather
                // than tried until the whole timeout.
                Ok(address) => {
                    let limit =
                        REACH_COORDINATOR.min(deadline.saturating_duration_since(Instant::now()));
                    match self.connection(&address, limit).await {
                        Ok(_) => return Ok(address),
                        Err(e) if Instant::now() < deadline => {
                            format!(
                                "coordinator {address} unreachable: {}",
                                crate::ErrorChain(&e)
                            )
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(WireError::Broker { error, .. }) if coordinator_moved(error) => {
                    format!("{error:?}")
                }
                Err(e @ WireError::Broker { .. }) => return Err(e.into()),
                Err(e) if e.is_retryable() => {
                    self.connections.remove(&bootstrap);
                    crate::ErrorChain(&e).to_string()
                }
                Err(e) => return Err(e.into()),
            };
            if Instant::now() >= deadline {
                return Err(GroupAdminError::NoCoordinator {
                    group: group.to_owned(),
                    timeout: self.config.timeout,
                    why,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Sends `request` to `group`'s coordinator; `moved` tells from the
    /// answer whether the coordinator moved, and then it is found and
    /// asked again until the timeout. Returns the answer and the broker.
    async fn group_call<R: Request + Message>(
        &mut self,
        group: &str,
        request: &R,
        moved: impl Fn(&R::Response) -> bool,
    ) -> Result<(R::Response, String), GroupAdminError> {
        let deadline = Instant::now() + self.config.timeout;
        loop {
            let coordinator = self.group_coordinator(group).await?;
            let response = self.call(&coordinator, request).await?;
            if moved(&response) && Instant::now() < deadline {
                self.connections.remove(&coordinator);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            return Ok((response, coordinator));
        }
    }

    /// The version of `R` the broker at `address` speaks with weir.
    async fn version_at<R: Request + Message>(
        &mut self,
        address: &str,
    ) -> Result<i16, GroupAdminError> {
        let timeout = self.config.timeout;
        Ok(self
            .connection(address, timeout)
            .await?
            .version_for::<R>()?)
    }

    /// `group`'s committed offsets on the broker: of `topics` only, when
    /// given, or of every topic. Partitions without a commit are left out.
    ///
    /// # Errors
    ///
    /// The coordinator could not be found or refused
    /// ([`GroupAdminError::Refused`]).
    pub async fn fetch_group_offsets(
        &mut self,
        group: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<BrokerOffset>, GroupAdminError> {
        let coordinator = self.group_coordinator(group).await?;
        let version = self.version_at::<OffsetFetchRequest>(&coordinator).await?;
        let mut request = OffsetFetchRequest::default();
        if version >= 8 {
            request.groups = vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(group_id(group))
                    .with_topics(topics.map(|ts| {
                        ts.iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopics::default()
                                    .with_name(topic_name(t))
                                    .with_partition_indexes(ps.clone())
                            })
                            .collect()
                    })),
            ];
        } else {
            request.group_id = group_id(group);
            request.topics = topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps.clone())
                    })
                    .collect()
            });
        }
        let group_code = |r: &kafka_protocol::messages::OffsetFetchResponse| {
            r.groups.first().map_or(r.error_code, |g| g.error_code)
        };
        let (response, broker) = self
            .group_call(group, &request, |r| {
                ResponseError::try_from_code(group_code(r)).is_some_and(coordinator_moved)
            })
            .await?;
        let refused =
            |topic: Option<&str>, partition: Option<i32>, error| GroupAdminError::Refused {
                action: "fetch the offsets of",
                group: group.to_owned(),
                topic: topic.map(str::to_owned),
                partition,
                broker: broker.clone(),
                refusal: BrokerRefusal {
                    error,
                    message: None,
                },
            };
        if let Some(error) = ResponseError::try_from_code(group_code(&response)) {
            return Err(refused(None, None, error));
        }
        // (topic, partition, offset, metadata, error code)
        let mut rows = Vec::new();
        match response.groups.first() {
            Some(g) => {
                for t in &g.topics {
                    for p in &t.partitions {
                        rows.push((
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.metadata.clone(),
                            p.error_code,
                        ));
                    }
                }
            }
            None => {
                for t in &response.topics {
                    for p in &t.partitions {
                        rows.push((
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.metadata.clone(),
                            p.error_code,
                        ));
                    }
                }
            }
        }
        let mut offsets = Vec::with_capacity(rows.len());
        for (topic, partition, offset, metadata, code) in rows {
            match ResponseError::try_from_code(code) {
                None => {}
                // A topic that is gone or not there yet: no commit.
                Some(ResponseError::UnknownTopicOrPartition) => continue,
                Some(error) => return Err(refused(Some(&topic), Some(partition), error)),
            }
            if offset < 0 {
                continue;
            }
            offsets.push(BrokerOffset {
                topic,
                partition,
                offset,
                metadata: metadata.map(|m| m.to_string()).filter(|m| !m.is_empty()),
            });
        }
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(offsets)
    }

    /// Commits `offsets` (topic, partition, offset) as `group`'s on the
    /// broker, as an admin client does (generation -1, no member): the
    /// broker accepts it only while the group has no live members. Each
    /// commit carries `metadata`.
    ///
    /// # Errors
    ///
    /// [`GroupAdminError::Refused`] naming the partition the broker
    /// refused (`UnknownMemberId` for a group with live members).
    pub async fn commit_group_offsets(
        &mut self,
        group: &str,
        offsets: &[(String, i32, i64)],
        metadata: &str,
    ) -> Result<(), GroupAdminError> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (topic, partition, offset) in offsets {
            topics.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_string(metadata.to_owned()))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let (response, broker) = self
            .group_call(group, &request, |r| {
                r.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .filter_map(|p| ResponseError::try_from_code(p.error_code))
                    .any(coordinator_moved)
            })
            .await?;
        for t in &response.topics {
            for p in &t.partitions {
                if let Some(error) = ResponseError::try_from_code(p.error_code) {
                    return Err(GroupAdminError::Refused {
                        action: "commit the offsets of",
                        group: group.to_owned(),
                        topic: Some(t.name.0.to_string()),
                        partition: Some(p.partition_index),
                        broker,
                        refusal: BrokerRefusal {
                            error,
                            message: None,
                        },
                    });
                }
            }
        }
        Ok(())
    }

    /// Deletes `group`'s committed offsets of `partitions` of `topic` on
    /// the broker (OffsetDelete, `kafka-consumer-groups --delete-offsets`).
    ///
    /// # Errors
    ///
    /// [`GroupAdminError::Refused`]: `GroupSubscribedToTopic` while a live
    /// member reads the topic, `GroupIdNotFound` for a group the broker
    /// does not know.
    pub async fn delete_group_offsets(
        &mut self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<(), GroupAdminError> {
        let request = OffsetDeleteRequest::default()
            .with_group_id(group_id(group))
            .with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&p| {
                                OffsetDeleteRequestPartition::default().with_partition_index(p)
                            })
                            .collect(),
                    ),
            ]);
        let (response, broker) = self
            .group_call(group, &request, |r| {
                ResponseError::try_from_code(r.error_code).is_some_and(coordinator_moved)
            })
            .await?;
        let refused = |partition, error| GroupAdminError::Refused {
            action: "delete the offsets of",
            group: group.to_owned(),
            topic: Some(topic.to_owned()),
            partition,
            broker: broker.clone(),
            refusal: BrokerRefusal {
                error,
                message: None,
            },
        };
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(refused(None, error));
        }
        for t in &response.topics {
            for p in &t.partitions {
                if let Some(error) = ResponseError::try_from_code(p.error_code) {
                    return Err(refused(Some(p.partition_index), error));
                }
            }
        }
        Ok(())
    }
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weir_commits_carry_their_time() {
        assert_eq!(
            weir_commit_time(&commit_metadata(1_700_000_000_123)),
            Some(1_700_000_000_123)
        );
        assert_eq!(weir_commit_time(""), None);
        assert_eq!(weir_commit_time("java"), None);
        assert_eq!(weir_commit_time("weir x"), None);
    }
}
