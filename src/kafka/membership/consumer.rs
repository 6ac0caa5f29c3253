//! The consumer group protocol (KIP-848, Kafka 4.0): a member states what
//! it subscribes to and what it owns in ConsumerGroupHeartbeat, and the
//! coordinator assigns (`uniform` or `range`, on the broker) and answers
//! each heartbeat with the member's assignment when it changed. There is no
//! join and no stop-the-world: a partition moves only once its owner has
//! given it up, which the owner says by heartbeating without it.
//!
//! This member keeps the classic [`Member`]'s shape for its owner: the
//! member epoch is its generation, an assignment that changed is
//! [`Standing::Rebalance`] (as a cooperative rebalance), and
//! [`rejoin`](Member::rejoin) takes the new assignment up locally the
//! first time and, once the job has finished with what it gave up, tells
//! the coordinator (so that the partitions' new owners get them).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::{debug, info};

use super::member::{Attempt, millis, topic_name};
use super::{Member, MembershipError, Standing};
use crate::TopicPartition;

/// The member epoch that joins, leaves, or (static) leaves to come back.
const JOIN: i32 = 0;
const LEAVE: i32 = -1;
const LEAVE_STATIC: i32 = -2;

/// A member id for the consumer protocol: the member makes its own
/// (random, kept for the process's life), as the Java consumer's
/// `Uuid.randomUuid()`.
pub(crate) fn new_member_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut id = String::with_capacity(22);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for round in 0..2_u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(round);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        let mut bits = h.finish();
        for _ in 0..11 {
            id.push(alphabet[(bits & 63) as usize] as char);
            bits >>= 6;
        }
    }
    id
}

impl Member {
    /// Whether this member speaks the consumer group protocol (KIP-848).
    pub(super) fn speaks_consumer_protocol(&self) -> bool {
        self.config.protocol == super::GroupProtocol::Consumer
    }

    /// KIP-848's [`rejoin`](Member::rejoin): joins (epoch 0) when not a
    /// member; takes up an assignment a heartbeat brought (locally: the
    /// job then finishes with what it gave up); otherwise tells the
    /// coordinator what it owns now, which releases what it gave up.
    pub(super) async fn consumer_rejoin(&mut self) -> Result<(), Attempt> {
        if self.member_id.is_empty() {
            self.member_id = new_member_id();
        }
        if self.generation <= 0 {
            let version = self
                .coordinator()
                .await?
                .version_for::<ConsumerGroupHeartbeatRequest>();
            if version.is_err() {
                return Err(Attempt::Fatal(unsupported(&self.config.group)));
            }
            self.read_session_timeout().await?;
            self.consumer_heartbeat(JOIN).await?;
            info!(
                group = self.config.group.as_str(),
                member = self.member_id.as_str(),
                epoch = self.generation,
                partitions = self.assigned.len(),
                session_timeout = %humantime::format_duration(self.session_timeout()),
                heartbeat_interval = %humantime::format_duration(self.heartbeat_interval()),
                "joined (consumer protocol)"
            );
            return Ok(());
        }
        if let Some(target) = self.target.take() {
            self.revoked = self
                .assigned
                .iter()
                .filter(|tp| target.binary_search(tp).is_err())
                .cloned()
                .collect();
            self.assigned = target;
            return Ok(());
        }
        self.revoked.clear();
        self.consumer_heartbeat(self.generation).await?;
        Ok(())
    }

    /// KIP-848's heartbeat for the owner's [`heartbeat`](Member::heartbeat):
    /// [`Standing::Rebalance`] when the assignment changed.
    pub(super) async fn consumer_heartbeat_standing(
        &mut self,
    ) -> Result<Standing, MembershipError> {
        match self.consumer_heartbeat(self.generation).await {
            Ok(()) if self.target.is_some() => Ok(Standing::Rebalance),
            Ok(()) => Ok(Standing::Member),
            Err(Attempt::Retriable(why)) => {
                debug!(
                    group = self.config.group.as_str(),
                    why, "heartbeat not answered"
                );
                Ok(Standing::Member)
            }
            Err(Attempt::Fatal(MembershipError::Refused { source, .. }))
                if matches!(
                    source.error,
                    ResponseError::FencedMemberEpoch | ResponseError::UnknownMemberId
                ) =>
            {
                self.forget_epoch();
                Ok(Standing::Fenced)
            }
            Err(Attempt::Fatal(e)) => Err(e),
        }
    }

    /// Leaves the group: epoch -1, or -2 for a static member, which the
    /// coordinator then keeps for it until its session times out.
    pub(super) async fn consumer_leave(&mut self) -> Result<(), Attempt> {
        if self.generation <= 0 {
            return Ok(());
        }
        let epoch = match self.config.instance_id {
            Some(_) => LEAVE_STATIC,
            None => LEAVE,
        };
        self.consumer_heartbeat(epoch).await?;
        info!(
            group = self.config.group.as_str(),
            member = self.member_id.as_str(),
            "left the group (consumer protocol)"
        );
        Ok(())
    }

    /// One ConsumerGroupHeartbeat at `epoch`, stating the subscription and
    /// what the member owns; an assignment in the answer that differs from
    /// what it owns becomes its target.
    async fn consumer_heartbeat(&mut self, epoch: i32) -> Result<(), Attempt> {
        let joining = epoch == JOIN;
        let leaving = epoch < 0;
        let ids = self.topic_ids().await?;
        let mut owned: BTreeMap<kafka_protocol::messages::TopicName, Vec<i32>> = BTreeMap::new();
        for tp in &self.assigned {
            owned
                .entry(topic_name(&tp.topic))
                .or_default()
                .push(tp.partition);
        }
        let owned = owned
            .into_iter()
            .filter_map(|(name, partitions)| {
                let id = ids.iter().find(|(_, n)| **n == *name.0)?.0;
                Some(
                    OwnedPartitions::default()
                        .with_topic_id(*id)
                        .with_partitions(partitions),
                )
            })
            .collect();
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(self.group_id())
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(epoch)
            .with_instance_id(self.group_instance_id())
            .with_rebalance_timeout_ms(if joining {
                millis(self.config.rebalance_timeout)
            } else {
                -1
            })
            .with_subscribed_topic_names(
                joining.then(|| self.config.topics.iter().map(|t| topic_name(t)).collect()),
            )
            .with_server_assignor(
                self.config
                    .remote_assignor
                    .as_ref()
                    .filter(|_| joining)
                    .map(|a| StrBytes::from_string(a.clone())),
            )
            .with_topic_partitions((!leaving).then_some(owned));
        let sent = Instant::now();
        let response = self.send(&request).await?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(match error {
                // A Kafka 3.7-3.9 broker names the API but has the protocol
                // off (group.coordinator.rebalance.protocols).
                ResponseError::UnsupportedVersion => {
                    Attempt::Fatal(unsupported(&self.config.group))
                }
                ResponseError::UnsupportedAssignor => {
                    Attempt::Fatal(self.refused("ConsumerGroupHeartbeat", error))
                }
                // A later process took this member's instance id.
                ResponseError::FencedInstanceId => {
                    Attempt::Fatal(self.fenced_instance("ConsumerGroupHeartbeat"))
                }
                // The instance id is still held by a member that did not
                // leave (a crash, or a second process): the coordinator
                // frees it when that member's session ends. The Java
                // consumer gives up; weir waits, so that a static member
                // restarted after a crash comes back once it can.
                ResponseError::UnreleasedInstanceId if joining => {
                    if std::mem::replace(&mut self.told_unreleased, true) {
                        return Err(Attempt::Retriable(
                            "instance id not released yet".to_owned(),
                        ));
                    }
                    info!(
                        group = self.config.group.as_str(),
                        instance_id = self.config.instance_id.as_deref().unwrap_or_default(),
                        "the group instance id is still held by a member that did not leave (UNRELEASED_INSTANCE_ID): waiting for its session to end (the broker's group.consumer.session.timeout.ms)"
                    );
                    Attempt::Retriable("instance id not released yet".to_owned())
                }
                e => self.judge("ConsumerGroupHeartbeat", e),
            });
        }
        self.told_unreleased = false;
        self.heard_interval(response.heartbeat_interval_ms);
        if leaving {
            self.forget_epoch();
            return Ok(());
        }
        self.generation = response.member_epoch;
        self.confirmed(sent);
        if let Some(assignment) = response.assignment {
            let mut target = Vec::new();
            let ids = self.topic_ids().await?;
            for topic in assignment.topic_partitions {
                let Some(name) = ids.get(&topic.topic_id) else {
                    // A topic the member does not subscribe to (or does
                    // not know yet): learnt at the next heartbeat.
                    continue;
                };
                target.extend(
                    topic
                        .partitions
                        .iter()
                        .map(|&p| TopicPartition::new(name.as_str(), p)),
                );
            }
            target.sort();
            if joining {
                self.assigned = target;
            } else if target != self.assigned {
                self.target = Some(target);
            }
        }
        Ok(())
    }

    /// The member epoch is lost (fenced, or left): the next rejoin joins
    /// again with epoch 0, keeping the member id.
    fn forget_epoch(&mut self) {
        self.lease().set(None);
        self.generation = -1;
        self.assigned.clear();
        self.revoked.clear();
        self.target = None;
    }

    /// The ids of the subscribed topics (the assignment names topics by
    /// id), from the coordinator's metadata.
    async fn topic_ids(&mut self) -> Result<BTreeMap<uuid::Uuid, String>, Attempt> {
        if !self.topic_ids.is_empty()
            && self.topic_ids_at.elapsed() < self.heartbeat_interval() * 10
        {
            return Ok(self.topic_ids.clone());
        }
        let request = MetadataRequest::default()
            .with_topics(Some(
                self.config
                    .topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let metadata = self.send(&request).await?;
        self.topic_ids = metadata
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| Some((t.topic_id, t.name.as_ref()?.0.to_string())))
            .collect();
        self.topic_ids_at = Instant::now();
        Ok(self.topic_ids.clone())
    }
}

/// Whether the coordinator speaks the consumer protocol: it must take
/// ConsumerGroupHeartbeat (Kafka 4.0 made it generally available).
pub(super) fn unsupported(group: &str) -> MembershipError {
    MembershipError::ConsumerProtocolUnsupported {
        group: group.to_owned(),
    }
}
