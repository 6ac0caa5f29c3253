//! One round of joining: JoinGroup, the leader's assignment, SyncGroup.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DescribeGroupsRequest, JoinGroupRequest, MetadataRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::assignor::{self, Subscription};
use super::assignors::{Assignor, GroupMember};
use super::member::{Attempt, Member, millis, topic_name};
use super::{MembershipError, ProtocolError};
use crate::TopicPartition;

impl Member {
    /// One round of JoinGroup and SyncGroup.
    pub(super) async fn join_and_sync(&mut self) -> Result<(), Attempt> {
        // A cooperative member joins while its job reads on.
        let was_cooperative = self.is_cooperative();
        let subscription = Subscription {
            topics: self.config.topics.clone(),
            owned: self.assigned.clone(),
            generation: self.generation,
        };
        let version = self
            .coordinator()
            .await?
            .version_for::<JoinGroupRequest>()
            .map_err(|e| Attempt::Fatal(self.wire_error(e)))?;
        // KIP-345 came with JoinGroup v5, SyncGroup and Heartbeat v3,
        // OffsetCommit v7 and LeaveGroup v3 (Kafka 2.3): a coordinator
        // that takes JoinGroup v5 takes the instance id in all of them.
        if self.config.instance_id.is_some() && version < 5 {
            return Err(Attempt::Fatal(MembershipError::StaticUnsupported {
                group: self.config.group.clone(),
                version,
            }));
        }
        let mut request = JoinGroupRequest::default()
            .with_group_id(self.group_id())
            .with_group_instance_id(self.group_instance_id())
            .with_session_timeout_ms(millis(self.config.session_timeout))
            .with_rebalance_timeout_ms(millis(self.config.rebalance_timeout))
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(
                self.config
                    .assignors
                    .iter()
                    .map(|a| {
                        JoinGroupRequestProtocol::default()
                            .with_name(StrBytes::from_static_str(a.name()))
                            .with_metadata(subscription.encode())
                    })
                    .collect(),
            );
        let mut joined = self.send(&request).await?;
        // KIP-394: a dynamic member's first JoinGroup only hands out the
        // member id; the join proper follows at once, as the Java
        // consumer's does, without a retry's backoff. (A static member is
        // known by its instance id and joins in one request.)
        if joined.error_code == ResponseError::MemberIdRequired.code() {
            self.member_id = joined.member_id.to_string();
            info!(
                group = self.config.group.as_str(),
                member = self.member_id.as_str(),
                "joining the group"
            );
            request.member_id = joined.member_id.clone();
            joined = self.send(&request).await?;
        }
        match ResponseError::try_from_code(joined.error_code) {
            None => {}
            Some(ResponseError::MemberIdRequired) => {
                self.member_id = joined.member_id.to_string();
                return Err(Attempt::Retriable("member id assigned".to_owned()));
            }
            Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                self.forget();
                return Err(Attempt::Retriable("unknown member".to_owned()));
            }
            // Never worth another try, whatever the generation (as the
            // Java consumer): another process runs with this id.
            Some(ResponseError::FencedInstanceId) => {
                return Err(Attempt::Fatal(self.fenced_instance("JoinGroup")));
            }
            Some(ResponseError::InconsistentGroupProtocol) => {
                return Err(Attempt::Fatal(self.no_common_protocol().await));
            }
            Some(e) => return Err(self.judge("JoinGroup", e)),
        }
        self.member_id = joined.member_id.to_string();
        self.generation = joined.generation_id;
        self.leader = joined.leader == joined.member_id;
        // Before JoinGroup v7 the answer names no protocol: one offered
        // alone is the one chosen.
        let protocol = match joined.protocol_name.as_ref() {
            Some(name) => Assignor::from_name(name.as_str()),
            None => self.config.assignors.first().copied(),
        };
        let Some(protocol) = protocol else {
            return Err(Attempt::Fatal(MembershipError::Protocol {
                group: self.config.group.clone(),
                source: ProtocolError {
                    what: "chosen assignor",
                    fault: assignor::DecodeFault::Message(
                        format!(
                            "the coordinator chose {:?}, which weir did not offer",
                            joined.protocol_name
                        )
                        .into(),
                    ),
                },
            }));
        };
        self.protocol = Some(protocol);
        // A group that switched from cooperative-sticky to an eager
        // assignor (members offering other assignors joined or left) may
        // hand this member's partitions to another in this generation:
        // they are given up at once, as lost, not committed (their next
        // owner reads them from the last commit).
        let switched = was_cooperative && !protocol.is_cooperative();
        if switched {
            warn!(
                group = self.config.group.as_str(),
                assignor = %protocol,
                "the group's assignor is no longer cooperative-sticky: this member's partitions are given up at once"
            );
            self.lease().set(None);
            self.lost = true;
        } else if protocol.is_cooperative() {
            // Waiting in JoinGroup counts as being heard from, up to its
            // answer: the coordinator restarts every member's session when
            // the join completes. (From when it was sent, a join that
            // waited longer than the lease for a slow or frozen member
            // would end with the lease lapsed, and the job, which reads on
            // meanwhile, would stop as fenced with its last writes
            // uncommitted: read again by their next owner.)
            self.confirmed(Instant::now());
        }

        // KIP-814 (JoinGroup v9): a static leader that rejoins a stable
        // group keeps the generation and its assignment; it must not
        // compute another, which the coordinator would not hand out.
        let assignments = if self.leader && joined.skip_assignment {
            info!(
                group = self.config.group.as_str(),
                generation = self.generation,
                "returning static leader: the assignment stands, not computed again"
            );
            Vec::new()
        } else if self.leader {
            let mut members = Vec::with_capacity(joined.members.len());
            for m in &joined.members {
                let subscription = Subscription::decode(m.metadata.clone()).map_err(|source| {
                    Attempt::Fatal(MembershipError::Protocol {
                        group: self.config.group.clone(),
                        source,
                    })
                })?;
                members.push(GroupMember {
                    member_id: m.member_id.to_string(),
                    instance_id: m.group_instance_id.as_ref().map(ToString::to_string),
                    subscription,
                });
            }
            let mut topics: Vec<String> = members
                .iter()
                .flat_map(|m| m.subscription.topics.iter().cloned())
                .collect();
            topics.sort();
            topics.dedup();
            let partitions = self.partitions_of(&topics).await?;
            debug!(
                group = self.config.group.as_str(),
                assignor = protocol.name(),
                members = members.len(),
                partitions = partitions.len(),
                "assigning as leader"
            );
            protocol
                .assign(&members, &partitions)
                .into_iter()
                .map(|(member, partitions)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(member))
                        .with_assignment(assignor::encode_assignment(&partitions))
                })
                .collect()
        } else {
            Vec::new()
        };

        let mut sync = SyncGroupRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(self.generation)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_group_instance_id(self.group_instance_id())
            .with_assignments(assignments);
        let version = self.coordinator().await?.version_for::<SyncGroupRequest>();
        if version.is_ok_and(|v| v >= 5) {
            sync.protocol_type = Some(StrBytes::from_static_str("consumer"));
            sync.protocol_name = Some(StrBytes::from_static_str(protocol.name()));
        }
        let synced = self.send(&sync).await?;
        // A follower's SyncGroup waits for the leader's; the coordinator
        // restarts the sessions when it answers.
        let sent = Instant::now();
        match ResponseError::try_from_code(synced.error_code) {
            None => {}
            Some(ResponseError::RebalanceInProgress) => {
                return Err(Attempt::Retriable("rebalance in progress".to_owned()));
            }
            Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                self.forget();
                return Err(Attempt::Retriable("unknown member".to_owned()));
            }
            Some(ResponseError::FencedInstanceId) => {
                return Err(Attempt::Fatal(self.fenced_instance("SyncGroup")));
            }
            Some(e) => return Err(self.judge("SyncGroup", e)),
        }
        let assigned = assignor::decode_assignment(synced.assignment).map_err(|source| {
            Attempt::Fatal(MembershipError::Protocol {
                group: self.config.group.clone(),
                source,
            })
        })?;
        self.revoked = self
            .assigned
            .iter()
            .filter(|tp| assigned.binary_search(tp).is_err())
            .cloned()
            .collect();
        self.assigned = assigned;
        // After a switch the lease stays ended until the job stopped and
        // the member joined again.
        if !switched {
            self.lost = false;
            self.confirmed(sent);
        }
        info!(
            group = self.config.group.as_str(),
            member = self.member_id.as_str(),
            instance = self.config.instance_id.as_deref(),
            generation = self.generation,
            leader = self.leader,
            assignor = %protocol,
            partitions = self.assigned.len(),
            "joined"
        );
        Ok(())
    }

    /// The refusal of a JoinGroup whose protocols no member shares, with
    /// what the group uses as DescribeGroups tells it.
    async fn no_common_protocol(&mut self) -> MembershipError {
        let offered = self
            .config
            .assignors
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(",");
        let request = DescribeGroupsRequest::default().with_groups(vec![self.group_id()]);
        let described = match self.send(&request).await {
            Ok(response) => response.groups.into_iter().next(),
            Err(_) => None,
        };
        let (state, uses, hint) = match described.filter(|g| g.error_code == 0) {
            None => (
                "unknown".to_owned(),
                "protocols DescribeGroups did not tell".to_owned(),
                format!(
                    "run kafka-consumer-groups --describe --group {} --members, and set --assignor to one its members offer",
                    self.config.group
                ),
            ),
            Some(g) => {
                let members = g.members.len();
                let (kind, name) = (g.protocol_type.to_string(), g.protocol_data.to_string());
                let uses = format!(
                    "protocol type \"{kind}\" with assignor \"{name}\" ({members} member{})",
                    if members == 1 { "" } else { "s" }
                );
                let hint = if !kind.is_empty() && kind != "consumer" {
                    "it is not a consumer group (a Kafka Connect or other client's group): use another group id".to_owned()
                } else {
                    match Assignor::from_name(&name) {
                        Some(a) => format!(
                            "offer it, e.g. --assignor {a} (WEIR_ASSIGNOR), or configure the other members to offer one of weir's"
                        ),
                        None => format!(
                            "weir does not implement \"{name}\": configure the other members to offer one of weir's (e.g. partition.assignment.strategy=range), or use another group id"
                        ),
                    }
                };
                (g.group_state.to_string(), uses, hint)
            }
        };
        MembershipError::NoCommonProtocol {
            group: self.config.group.clone(),
            offered,
            state,
            uses,
            hint,
        }
    }

    /// Every partition of `topics`, from the coordinator's metadata; a
    /// topic that does not exist has none.
    async fn partitions_of(&mut self, topics: &[String]) -> Result<Vec<TopicPartition>, Attempt> {
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let metadata = self.send(&request).await?;
        let mut partitions = Vec::new();
        for topic in &metadata.topics {
            let Some(name) = &topic.name else { continue };
            if topic.error_code != 0 {
                debug!(
                    topic = name.0.as_str(),
                    code = topic.error_code,
                    "topic left out"
                );
                continue;
            }
            let name: std::sync::Arc<str> = name.0.as_str().into();
            partitions.extend(
                topic
                    .partitions
                    .iter()
                    .map(|p| TopicPartition::new(name.clone(), p.partition_index)),
            );
        }
        partitions.sort();
        Ok(partitions)
    }
}
