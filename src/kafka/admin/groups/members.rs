//! What a broker's group is and who is in it: DescribeGroups and
//! ListGroups.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DescribeGroupsRequest, ListGroupsRequest,
};
use kafka_protocol::protocol::Decodable;
use serde::Serialize;

use super::{GroupAdminError, coordinator_moved, group_id};
use crate::kafka::admin::{Admin, BrokerRefusal};

/// A group as DescribeGroups tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupDescription {
    /// The group.
    pub group: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, `CompletingRebalance`,
    /// `Dead` (a group the broker does not know).
    pub state: String,
    /// `consumer` for consumer groups; empty for a group without members.
    pub protocol_type: String,
    /// The assignor the group chose, e.g. `range`.
    pub protocol: String,
    /// Its members.
    pub members: Vec<GroupMemberDescription>,
}

impl GroupDescription {
    /// A group the broker does not know.
    fn dead(group: &str) -> Self {
        Self {
            group: group.to_owned(),
            state: "Dead".to_owned(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        }
    }

    /// Whether the group has members the broker considers alive.
    pub fn is_live(&self) -> bool {
        !self.members.is_empty() && !matches!(self.state.as_str(), "Empty" | "Dead")
    }
}

/// One member of a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMemberDescription {
    /// The coordinator's id for it.
    pub member_id: String,
    /// Its static instance id, if any.
    pub instance_id: Option<String>,
    /// Its `client.id`.
    pub client_id: String,
    /// Where it connects from.
    pub host: String,
    /// Its partitions, topic by topic, for a consumer-protocol member.
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// A group as ListGroups tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedGroup {
    /// The group.
    pub group: String,
    /// `consumer` for consumer groups.
    pub protocol_type: String,
    /// Its state (ListGroups v4+; empty before).
    pub state: String,
    /// Its type: `classic`, `consumer` (KIP-848), `share` (KIP-932) or
    /// `streams` (ListGroups v5, Kafka 4.0+; `classic` before, the only
    /// type there was).
    pub group_type: String,
}

impl Admin {
    /// `group` as its coordinator describes it: state, protocol and
    /// members. A group the broker does not know is `Dead` with no members.
    ///
    /// # Errors
    ///
    /// The coordinator could not be found or refused.
    pub async fn describe_group(
        &mut self,
        group: &str,
    ) -> Result<GroupDescription, GroupAdminError> {
        let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
        let code = |r: &kafka_protocol::messages::DescribeGroupsResponse| {
            r.groups.first().map_or(0, |g| g.error_code)
        };
        let (response, broker) = self
            .group_call(group, &request, |r| {
                ResponseError::try_from_code(code(r)).is_some_and(coordinator_moved)
            })
            .await?;
        let Some(described) = response.groups.into_iter().next() else {
            return Ok(GroupDescription::dead(group));
        };
        match ResponseError::try_from_code(described.error_code) {
            None => {}
            // Kafka 4 answers a group it does not know this way (v6).
            Some(ResponseError::GroupIdNotFound) => return Ok(GroupDescription::dead(group)),
            Some(error) => {
                return Err(GroupAdminError::Refused {
                    action: "describe",
                    group: group.to_owned(),
                    topic: None,
                    partition: None,
                    broker,
                    refusal: BrokerRefusal {
                        error,
                        message: described
                            .error_message
                            .map(|m| m.to_string())
                            .filter(|m| !m.is_empty()),
                    },
                });
            }
        }
        let consumer = described.protocol_type.as_str() == "consumer";
        let members = described
            .members
            .into_iter()
            .map(|m| GroupMemberDescription {
                member_id: m.member_id.to_string(),
                instance_id: m.group_instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: if consumer {
                    decode_assignment(m.member_assignment)
                } else {
                    BTreeMap::new()
                },
            })
            .collect();
        Ok(GroupDescription {
            group: group.to_owned(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            protocol: described.protocol_data.to_string(),
            members,
        })
    }

    /// `group`'s protocol, by its type: a classic group's assignor as its
    /// members chose it (DescribeGroups; empty while it has none), a
    /// consumer group's broker assignor (ConsumerGroupDescribe, KIP-848),
    /// a share group's (ShareGroupDescribe); `None` for another type or a
    /// group that is gone.
    ///
    /// # Errors
    ///
    /// The coordinator could not be found or refused.
    pub async fn group_protocol(
        &mut self,
        group: &str,
        group_type: &str,
    ) -> Result<Option<String>, GroupAdminError> {
        Ok(match group_type {
            "classic" => {
                let described = self.describe_group(group).await?;
                Some(described.protocol).filter(|p| !p.is_empty())
            }
            "consumer" => {
                let request = kafka_protocol::messages::ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![group_id(group)]);
                let (response, _) = self
                    .group_call(group, &request, |r| {
                        r.groups
                            .first()
                            .and_then(|g| ResponseError::try_from_code(g.error_code))
                            .is_some_and(coordinator_moved)
                    })
                    .await?;
                response
                    .groups
                    .into_iter()
                    .find(|g| g.error_code == 0)
                    .map(|g| g.assignor_name.to_string())
            }
            "share" => self.describe_share_group(group).await?.map(|g| g.assignor),
            _ => None,
        })
    }

    /// Every group the cluster's brokers coordinate, sorted by name.
    ///
    /// # Errors
    ///
    /// A broker could not be reached or refused.
    pub async fn list_groups(&mut self) -> Result<Vec<ListedGroup>, GroupAdminError> {
        let metadata = self.metadata(Some(&[])).await?;
        let brokers = Self::broker_addresses(&metadata);
        let mut groups = Vec::new();
        for address in brokers.values() {
            let response = self.call(address, &ListGroupsRequest::default()).await?;
            if let Some(error) = ResponseError::try_from_code(response.error_code)
                && !coordinator_moved(error)
            {
                return Err(GroupAdminError::Refused {
                    action: "list",
                    group: String::new(),
                    topic: None,
                    partition: None,
                    broker: address.clone(),
                    refusal: BrokerRefusal {
                        error,
                        message: None,
                    },
                });
            }
            groups.extend(response.groups.into_iter().map(|g| ListedGroup {
                group: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                group_type: match g.group_type.as_str() {
                    "" => "classic".to_owned(),
                    t => t.to_lowercase(),
                },
            }));
        }
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        groups.dedup_by(|a, b| a.group == b.group);
        Ok(groups)
    }
}

/// A consumer-protocol member's assignment, topic by topic; empty for
/// bytes that are not one.
fn decode_assignment(mut bytes: Bytes) -> BTreeMap<String, Vec<i32>> {
    let mut topics = BTreeMap::new();
    if bytes.remaining() < 2 {
        return topics;
    }
    let version = bytes.get_i16().clamp(0, 3);
    if let Ok(a) = ConsumerProtocolAssignment::decode(&mut bytes, version) {
        for t in a.assigned_partitions {
            let mut partitions = t.partitions;
            partitions.sort_unstable();
            topics.insert(t.topic.0.to_string(), partitions);
        }
    }
    topics
}
