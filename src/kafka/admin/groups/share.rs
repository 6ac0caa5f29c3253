//! Share groups (KIP-932) as `kafka-share-groups` sees them: the group,
//! its assignor and members with their partitions (ShareGroupDescribe),
//! each partition's start offset (DescribeShareGroupOffsets), and an
//! admin's move (AlterShareGroupOffsets) or delete
//! (DeleteShareGroupOffsets) of those; both are refused by the broker
//! while the group has members.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DeleteShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsRequest, ShareGroupDescribeRequest,
};
use serde::Serialize;

use super::{Admin, BrokerRefusal, GroupAdminError, coordinator_moved, group_id, topic_name};

/// A share group as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareGroupDescription {
    /// The group.
    pub group: String,
    /// Its state (`Empty`, `Stable`, …).
    pub state: String,
    /// The broker's assignor (`simple`).
    pub assignor: String,
    /// Its members.
    pub members: Vec<ShareMemberDescription>,
}

/// A member of a share group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShareMemberDescription {
    /// Its member id.
    pub member_id: String,
    /// Its client id.
    pub client_id: String,
    /// Where it connects from.
    pub host: String,
    /// Its partitions, topic by topic.
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// A share group's start offset of one partition: records before it are
/// done (acknowledged or archived); -1 when the partition has no state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShareStartOffset {
    /// The partition.
    pub partition: i32,
    /// The start offset, or -1.
    pub start_offset: i64,
}

fn refused(
    action: &'static str,
    group: &str,
    topic: Option<String>,
    partition: Option<i32>,
    broker: String,
    error: ResponseError,
    message: Option<String>,
) -> GroupAdminError {
    GroupAdminError::Refused {
        action,
        group: group.to_owned(),
        topic,
        partition,
        broker,
        refusal: BrokerRefusal {
            error,
            message: message.filter(|m| !m.is_empty()),
        },
    }
}

impl Admin {
    /// `group` as a share group; `None` when there is no share group by
    /// that name (none at all, or one of another type).
    ///
    /// # Errors
    ///
    /// The coordinator could not be found or refused.
    pub async fn describe_share_group(
        &mut self,
        group: &str,
    ) -> Result<Option<ShareGroupDescription>, GroupAdminError> {
        let request = ShareGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
        let (response, broker) = self
            .group_call(group, &request, |r| {
                r.groups
                    .first()
                    .and_then(|g| ResponseError::try_from_code(g.error_code))
                    .is_some_and(coordinator_moved)
            })
            .await?;
        let Some(described) = response.groups.into_iter().next() else {
            return Ok(None);
        };
        match ResponseError::try_from_code(described.error_code) {
            None => {}
            // A group of another type is "not found" as a share group.
            Some(ResponseError::GroupIdNotFound | ResponseError::InvalidGroupId) => {
                return Ok(None);
            }
            Some(error) => {
                return Err(refused(
                    "describe",
                    group,
                    None,
                    None,
                    broker,
                    error,
                    described.error_message.map(|m| m.to_string()),
                ));
            }
        }
        let members = described
            .members
            .into_iter()
            .map(|m| ShareMemberDescription {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: m
                    .assignment
                    .topic_partitions
                    .into_iter()
                    .map(|t| {
                        let mut partitions = t.partitions;
                        partitions.sort_unstable();
                        (t.topic_name.0.to_string(), partitions)
                    })
                    .collect(),
            })
            .collect();
        Ok(Some(ShareGroupDescription {
            group: group.to_owned(),
            state: described.group_state.to_string(),
            assignor: described.assignor_name.to_string(),
            members,
        }))
    }

    /// `group`'s start offset per partition, topic by topic.
    ///
    /// # Errors
    ///
    /// The coordinator could not be found or refused.
    pub async fn share_group_offsets(
        &mut self,
        group: &str,
    ) -> Result<BTreeMap<String, Vec<ShareStartOffset>>, GroupAdminError> {
        let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(None),
        ]);
        let (response, broker) = self
            .group_call(group, &request, |r| {
                r.groups
                    .first()
                    .and_then(|g| ResponseError::try_from_code(g.error_code))
                    .is_some_and(coordinator_moved)
            })
            .await?;
        let mut offsets = BTreeMap::new();
        for g in response.groups {
            match ResponseError::try_from_code(g.error_code) {
                None => {}
                Some(ResponseError::GroupIdNotFound) => return Ok(offsets),
                Some(error) => {
                    return Err(refused(
                        "fetch offsets of",
                        group,
                        None,
                        None,
                        broker,
                        error,
                        g.error_message.map(|m| m.to_string()),
                    ));
                }
            }
            for t in g.topics {
                let mut partitions: Vec<ShareStartOffset> = t
                    .partitions
                    .iter()
                    .map(|p| ShareStartOffset {
                        partition: p.partition_index,
                        start_offset: p.start_offset,
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                offsets.insert(t.topic_name.0.to_string(), partitions);
            }
        }
        Ok(offsets)
    }

    /// Sets `group`'s start offsets of `topic` (partition, offset): the
    /// group reads from there on. The broker refuses while the group has
    /// members.
    ///
    /// # Errors
    ///
    /// The coordinator could not be found or refused.
    pub async fn alter_share_group_offsets(
        &mut self,
        group: &str,
        topic: &str,
        offsets: &[(i32, i64)],
    ) -> Result<(), GroupAdminError> {
        let request = AlterShareGroupOffsetsRequest::default()
            .with_group_id(group_id(group))
            .with_topics(vec![
                AlterShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(topic_name(topic))
                    .with_partitions(
                        offsets
                            .iter()
                            .map(|&(p, o)| {
                                AlterShareGroupOffsetsRequestPartition::default()
                                    .with_partition_index(p)
                                    .with_start_offset(o)
                            })
                            .collect(),
                    ),
            ]);
        let (response, broker) = self
            .group_call(group, &request, |r| {
                ResponseError::try_from_code(r.error_code).is_some_and(coordinator_moved)
            })
            .await?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(refused(
                "set offsets of",
                group,
                Some(topic.to_owned()),
                None,
                broker,
                error,
                response.error_message.map(|m| m.to_string()),
            ));
        }
        for t in response.responses {
            for p in t.partitions {
                if let Some(error) = ResponseError::try_from_code(p.error_code) {
                    return Err(refused(
                        "set offsets of",
                        group,
                        Some(t.topic_name.0.to_string()),
                        Some(p.partition_index),
                        broker.clone(),
                        error,
                        p.error_message.map(|m| m.to_string()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Deletes `group`'s state of `topics`: the group starts each of their
    /// partitions afresh (as `share.auto.offset.reset` says).
    ///
    /// # Errors
    ///
    /// The coordinator could not be found or refused.
    pub async fn delete_share_group_offsets(
        &mut self,
        group: &str,
        topics: &[String],
    ) -> Result<(), GroupAdminError> {
        let request = DeleteShareGroupOffsetsRequest::default()
            .with_group_id(group_id(group))
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        DeleteShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(topic_name(t))
                    })
                    .collect(),
            );
        let (response, broker) = self
            .group_call(group, &request, |r| {
                ResponseError::try_from_code(r.error_code).is_some_and(coordinator_moved)
            })
            .await?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(refused(
                "delete offsets of",
                group,
                None,
                None,
                broker,
                error,
                response.error_message.map(|m| m.to_string()),
            ));
        }
        for t in response.responses {
            if let Some(error) = ResponseError::try_from_code(t.error_code) {
                return Err(refused(
                    "delete offsets of",
                    group,
                    Some(t.topic_name.0.to_string()),
                    None,
                    broker.clone(),
                    error,
                    t.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }
}
