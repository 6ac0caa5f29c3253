//! One round of joining: JoinGroup, the leader's assignment, SyncGroup.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{JoinGroupRequest, MetadataRequest, SyncGroupRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::{debug, info};

use super::MembershipError;
use super::assignor::{self, STICKY, Subscription};
use super::member::{Attempt, Member, millis, topic_name};
use crate::TopicPartition;

impl Member {
    /// One round of JoinGroup and SyncGroup.
    pub(super) async fn join_and_sync(&mut self) -> Result<(), Attempt> {
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
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(STICKY))
                    .with_metadata(subscription.encode()),
            ]);
        let mut joined = self.send(&request).await?;
        // KIP-394: a dynamic member's first JoinGroup only hands out the
        // member id; the join proper follows at once, as the Java
        // consumer's does, without a retry's backoff. (A static member is
        // known by its instance id and joins in one request.)
        if joined.error_code == ResponseError::MemberIdRequired.code() {
            self.member_id = joined.member_id.to_string();
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
            Some(e) => return Err(self.judge("JoinGroup", e)),
        }
        self.member_id = joined.member_id.to_string();
        self.generation = joined.generation_id;
        self.leader = joined.leader == joined.member_id;

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
                members.push((m.member_id.to_string(), subscription));
            }
            members.sort_by(|a, b| a.0.cmp(&b.0));
            let mut topics: Vec<String> = members
                .iter()
                .flat_map(|(_, s)| s.topics.iter().cloned())
                .collect();
            topics.sort();
            topics.dedup();
            let partitions = self.partitions_of(&topics).await?;
            assignor::assign(&members, &partitions)
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
            sync.protocol_name = Some(StrBytes::from_static_str(STICKY));
        }
        let sent = Instant::now();
        let synced = self.send(&sync).await?;
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
        self.assigned = assignor::decode_assignment(synced.assignment).map_err(|source| {
            Attempt::Fatal(MembershipError::Protocol {
                group: self.config.group.clone(),
                source,
            })
        })?;
        self.confirmed(sent);
        info!(
            group = self.config.group.as_str(),
            member = self.member_id.as_str(),
            instance = self.config.instance_id.as_deref(),
            generation = self.generation,
            leader = self.leader,
            partitions = self.assigned.len(),
            "joined"
        );
        Ok(())
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
