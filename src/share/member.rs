//! A share group's member as the coordinator sees it (KIP-932,
//! `ShareMembershipManager`): the member makes its own id, joins with
//! ShareGroupHeartbeat at epoch 0 naming its topics, heartbeats at the
//! interval the coordinator gives, takes the assignment (partitions by
//! topic id) each answer may carry, and leaves with epoch -1. Fenced or
//! forgotten, it joins again with epoch 0 and the same id.
//!
//! Also the cluster as the member needs it: topic ids and names, and
//! each partition's leader, from Metadata.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, GroupId, MetadataRequest, ShareGroupHeartbeatRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::{debug, info};

use super::ShareError;
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::wire::{self, BrokerConnection, WireError, WireOptions};

/// The member epoch that joins and the one that leaves.
const JOIN: i32 = 0;
const LEAVE: i32 = -1;

/// Topic ids and names, and where each partition's leader is.
#[derive(Debug, Clone, Default)]
pub(super) struct Topology {
    pub(super) names: BTreeMap<uuid::Uuid, Arc<str>>,
    /// `host:port` of the leader of each (topic id, partition).
    pub(super) leaders: BTreeMap<(uuid::Uuid, i32), String>,
}

/// The member.
pub(super) struct ShareMember {
    pub(super) wire: WireOptions,
    brokers: Vec<String>,
    pub(super) timeout: Duration,
    pub(super) group: String,
    topics: Vec<String>,
    pub(super) member_id: String,
    epoch: i32,
    coordinator: Option<BrokerConnection>,
    bootstrap: Option<BrokerConnection>,
    /// The interval the coordinator asks for.
    pub(super) interval: Duration,
    /// The assignment: (topic id, partition), sorted.
    assignment: Vec<(uuid::Uuid, i32)>,
}

impl ShareMember {
    /// Connects to the cluster and checks that it offers share groups.
    pub(super) async fn connect(
        connection: &ConnectionConfig,
        group: &str,
        topics: &[String],
    ) -> Result<Self, ShareError> {
        let wire_options = connection.wire_options()?;
        let deadline = Instant::now() + connection.timeout;
        let conn = wire::connect_checked(&wire_options, &connection.brokers, deadline)
            .await
            .map_err(|source| ShareError::Wire {
                group: group.to_owned(),
                source,
            })?;
        check_share_groups(&conn, group)?;
        Ok(Self {
            wire: wire_options,
            brokers: connection.brokers.clone(),
            timeout: connection.timeout,
            group: group.to_owned(),
            topics: topics.to_vec(),
            member_id: crate::kafka::membership::new_member_id(),
            epoch: LEAVE,
            coordinator: None,
            bootstrap: Some(conn),
            interval: Duration::from_secs(5),
            assignment: Vec::new(),
        })
    }

    /// The current assignment: (topic id, partition), sorted.
    pub(super) fn assignment(&self) -> &[(uuid::Uuid, i32)] {
        &self.assignment
    }

    /// When to heartbeat next: at the coordinator's interval, or soon
    /// while no partitions are assigned (a join's first answer has none:
    /// the coordinator assigns after it), so that a new member starts
    /// reading at once rather than an interval (5 s) later.
    pub(super) fn next_heartbeat(&self) -> Duration {
        match self.assignment.is_empty() {
            true => self.interval.min(Duration::from_millis(200)),
            false => self.interval,
        }
    }

    /// One heartbeat (a join when not a member); `true` when the
    /// assignment changed. A coordinator that cannot be reached now is
    /// not an error: the next heartbeat tries again.
    pub(super) async fn heartbeat(&mut self) -> Result<bool, ShareError> {
        let joining = self.epoch < 0;
        let epoch = if joining { JOIN } else { self.epoch };
        let request = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(epoch)
            .with_subscribed_topic_names(joining.then(|| {
                self.topics
                    .iter()
                    .map(|t| TopicName(StrBytes::from_string(t.clone())))
                    .collect()
            }));
        let response = match self.send(&request).await? {
            Some(response) => response,
            None => return Ok(false),
        };
        match ResponseError::try_from_code(response.error_code) {
            None => {}
            Some(ResponseError::FencedMemberEpoch | ResponseError::UnknownMemberId) => {
                info!(
                    group = self.group.as_str(),
                    "fenced by the coordinator; joining again"
                );
                self.epoch = LEAVE;
                return Ok(false);
            }
            Some(
                ResponseError::CoordinatorNotAvailable
                | ResponseError::NotCoordinator
                | ResponseError::CoordinatorLoadInProgress,
            ) => {
                self.coordinator = None;
                return Ok(false);
            }
            Some(error) => {
                return Err(ShareError::Refused {
                    group: self.group.clone(),
                    api: "ShareGroupHeartbeat",
                    error,
                    message: response.error_message.map(|m| m.to_string()),
                });
            }
        }
        if joining {
            info!(
                group = self.group.as_str(),
                member = self.member_id.as_str(),
                "joined the share group"
            );
        }
        self.epoch = response.member_epoch;
        if response.heartbeat_interval_ms > 0 {
            self.interval = Duration::from_millis(response.heartbeat_interval_ms as u64);
        }
        let Some(assignment) = response.assignment else {
            return Ok(false);
        };
        let mut assigned: Vec<(uuid::Uuid, i32)> = assignment
            .topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic_id, p)))
            .collect();
        assigned.sort();
        let changed = assigned != self.assignment;
        if changed {
            debug!(
                group = self.group.as_str(),
                partitions = assigned.len(),
                "assignment"
            );
        }
        self.assignment = assigned;
        Ok(changed)
    }

    /// Leaves the group (epoch -1), if a member.
    pub(super) async fn leave(&mut self) -> Result<(), ShareError> {
        if self.epoch < 0 {
            return Ok(());
        }
        let request = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(LEAVE);
        self.send(&request).await?;
        self.epoch = LEAVE;
        info!(group = self.group.as_str(), "left the share group");
        Ok(())
    }

    /// Sends to the coordinator; `None` when it cannot be reached now.
    async fn send(
        &mut self,
        request: &ShareGroupHeartbeatRequest,
    ) -> Result<Option<kafka_protocol::messages::ShareGroupHeartbeatResponse>, ShareError> {
        if self.coordinator.is_none() {
            match self.find_coordinator().await {
                Ok(conn) => self.coordinator = Some(conn),
                Err(why) => {
                    debug!(group = self.group.as_str(), why, "no coordinator yet");
                    return Ok(None);
                }
            }
        }
        let conn = self.coordinator.as_mut().expect("found above");
        match tokio::time::timeout(self.timeout, conn.request(request)).await {
            Ok(Ok(response)) => Ok(Some(response)),
            Ok(Err(e @ WireError::Unsupported { .. })) => Err(unsupported(conn, &self.group)
                .unwrap_or(ShareError::Wire {
                    group: self.group.clone(),
                    source: e,
                })),
            Ok(Err(e)) => {
                debug!(group = self.group.as_str(), error = %crate::ErrorChain(&e), "heartbeat failed");
                self.coordinator = None;
                Ok(None)
            }
            Err(_) => {
                self.coordinator = None;
                Ok(None)
            }
        }
    }

    async fn find_coordinator(&mut self) -> Result<BrokerConnection, String> {
        let deadline = Instant::now() + self.timeout;
        let group = self.group.clone();
        let any = self.bootstrap().await?;
        let address = coordinator_address(any, &group, deadline)
            .await
            .map_err(|e| crate::ErrorChain(&e).to_string());
        let address = match address {
            Ok(a) => a,
            Err(e) => {
                self.bootstrap = None;
                return Err(e);
            }
        };
        wire::connect_to(&self.wire, &address, deadline)
            .await
            .map_err(|e| crate::ErrorChain(&e).to_string())
    }

    async fn bootstrap(&mut self) -> Result<&mut BrokerConnection, String> {
        if self.bootstrap.is_none() {
            let deadline = Instant::now() + self.timeout;
            let conn = wire::connect_any(&self.wire, &self.brokers, deadline)
                .await
                .map_err(|e| crate::ErrorChain(&e).to_string())?;
            self.bootstrap = Some(conn);
        }
        Ok(self.bootstrap.as_mut().expect("opened above"))
    }

    /// The topics' ids and each partition's leader.
    pub(super) async fn topology(&mut self) -> Result<Topology, ShareError> {
        let request = MetadataRequest::default()
            .with_topics(Some(
                self.topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let deadline = Instant::now() + self.timeout;
        let response = loop {
            let timeout = self.timeout;
            let attempt = match self.bootstrap().await {
                Ok(conn) => match tokio::time::timeout(timeout, conn.request(&request)).await {
                    Ok(Ok(response)) => Ok(response),
                    Ok(Err(e)) => Err(crate::ErrorChain(&e).to_string()),
                    Err(_) => Err("no answer".to_owned()),
                },
                Err(e) => Err(e),
            };
            match attempt {
                Ok(response) => break response,
                Err(why) if Instant::now() < deadline => {
                    debug!(why, "metadata failed; trying again");
                    self.bootstrap = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(why) => {
                    return Err(ShareError::Unreachable {
                        group: self.group.clone(),
                        why,
                    });
                }
            }
        };
        let brokers: BTreeMap<i32, String> = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let mut topology = Topology::default();
        for t in &response.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if ResponseError::try_from_code(t.error_code).is_some() {
                return Err(ShareError::UnknownTopic { topic: name });
            }
            topology.names.insert(t.topic_id, Arc::from(name.as_str()));
            for p in &t.partitions {
                if let Some(address) = brokers.get(&p.leader_id.0) {
                    topology
                        .leaders
                        .insert((t.topic_id, p.partition_index), address.clone());
                }
            }
        }
        Ok(topology)
    }
}

/// Refuses a broker that does not offer share groups (KIP-932's
/// ShareGroupHeartbeat v1: Kafka 4.1 and later, with the `share.version`
/// feature finalized at 1 or more).
fn check_share_groups(conn: &BrokerConnection, group: &str) -> Result<(), ShareError> {
    match unsupported(conn, group) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn unsupported(conn: &BrokerConnection, group: &str) -> Option<ShareError> {
    let offered = conn.version_for::<ShareGroupHeartbeatRequest>().is_ok();
    let version = refusal(
        conn.feature("share.version"),
        conn.api_range(ApiKey::ShareGroupHeartbeat as i16),
        offered,
    )?;
    Some(ShareError::Unsupported {
        group: group.to_owned(),
        broker: conn.broker().to_owned(),
        version,
    })
}

/// What a broker is that cannot be a share group's, from its ApiVersions
/// answer: the `share.version` feature (highest supported, finalized) and
/// its ShareGroupHeartbeat versions; `None` when it can.
fn refusal(
    share_version: Option<(i16, Option<i16>)>,
    api: Option<(i16, i16)>,
    offered: bool,
) -> Option<String> {
    let finalized = share_version.map(|(_, f)| f.unwrap_or(0));
    match (share_version, finalized, api) {
        // Brokers that list no features (not Kafka's own) are judged by
        // the API alone.
        (None, _, _) | (_, Some(1..), _) if offered => None,
        (None, _, Some((_, 0))) => Some(
            "Kafka 4.0, whose share groups are an early-access protocol (ShareGroupHeartbeat v0)"
                .to_owned(),
        ),
        (None, _, _) => Some("Kafka 4.0 or older (it has no share.version feature)".to_owned()),
        (Some(_), Some(1..), Some((min, max))) => Some(format!(
            "a Kafka whose ShareGroupHeartbeat (versions {min}-{max}) weir does not speak (version 1)"
        )),
        (Some((max, _)), finalized, _) => Some(format!(
            "Kafka 4.1 or later with share groups off (share.version {} of up to {max}; turn them on with `kafka-features.sh upgrade --feature share.version=1`)",
            finalized.unwrap_or(0)
        )),
    }
}

/// The `host:port` of `group`'s coordinator, asked of `conn` again while
/// the coordinator is not there yet (the group offsets topic being
/// created or loaded) until `deadline`.
pub(super) async fn coordinator_address(
    conn: &mut BrokerConnection,
    group: &str,
    deadline: Instant,
) -> Result<String, WireError> {
    loop {
        match conn.find_coordinator(group, 0).await {
            Err(WireError::Broker {
                error:
                    ResponseError::CoordinatorNotAvailable
                    | ResponseError::NotCoordinator
                    | ResponseError::CoordinatorLoadInProgress,
                ..
            }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn a_broker_without_share_groups_is_named_by_what_it_is() {
        // Kafka 4.4 with share groups on.
        assert_eq!(refusal(Some((1, Some(1))), Some((1, 1)), true), None);
        // 4.1+ with share.version 0: the API may be listed or not.
        for api in [None, Some((1, 1))] {
            let why = refusal(Some((1, Some(0))), api, api.is_some()).unwrap();
            assert!(
                why.contains("share groups off (share.version 0 of up to 1"),
                "{why}"
            );
        }
        let why = refusal(Some((1, None)), None, false).unwrap();
        assert!(why.contains("share.version 0"), "{why}");
        // 4.0: early access, v0 only.
        let why = refusal(None, Some((0, 0)), false).unwrap();
        assert!(
            why.starts_with("Kafka 4.0, whose share groups are an early-access"),
            "{why}"
        );
        // 3.9 and older.
        let why = refusal(None, None, false).unwrap();
        assert!(why.starts_with("Kafka 4.0 or older"), "{why}");
        // A broker that lists no features but speaks the API.
        assert_eq!(refusal(None, Some((1, 1)), true), None);
        // A later Kafka that dropped version 1.
        let why = refusal(Some((2, Some(2))), Some((2, 3)), false).unwrap();
        assert!(why.contains("versions 2-3"), "{why}");
    }
}
