//! One member of one group and its requests to the coordinator.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{Assignor, Hold, Lease, MembershipConfig, MembershipError, Standing};
use crate::TopicPartition;
use crate::kafka::admin::BrokerRefusal;
use crate::kafka::connect::ConnectionConfig;
use crate::kafka::retry::{Failure, Retry, RetryError};
use crate::kafka::wire::{self, BrokerConnection, WireError, WireOptions};

/// One member of one consumer group.
#[derive(Debug)]
pub struct Member {
    pub(super) config: MembershipConfig,
    brokers: Vec<String>,
    wire: WireOptions,
    /// The deadline for finding and reaching the coordinator.
    timeout: Duration,
    coordinator: Option<BrokerConnection>,
    pub(super) member_id: String,
    pub(super) generation: i32,
    pub(super) leader: bool,
    pub(super) assigned: Vec<TopicPartition>,
    /// The assignor the coordinator chose for the current generation.
    pub(super) protocol: Option<Assignor>,
    /// What the last SyncGroup took away from the partitions owned before
    /// it (only a cooperative rebalance takes some and leaves others).
    pub(super) revoked: Vec<TopicPartition>,
    /// The partitions were given up as lost (the group switched to an
    /// eager assignor mid-generation): no answer renews the lease until
    /// the member joined again.
    pub(super) lost: bool,
    lease: Lease,
    /// KIP-848: an assignment a heartbeat brought that differs from what
    /// the member owns, taken up at the next [`rejoin`](Self::rejoin).
    pub(super) target: Option<Vec<TopicPartition>>,
    /// KIP-848: the subscribed topics by id, and when they were read.
    pub(super) topic_ids: std::collections::BTreeMap<uuid::Uuid, String>,
    pub(super) topic_ids_at: Instant,
    /// Said that its instance id is still held (consumer protocol), once
    /// per wait.
    pub(super) told_unreleased: bool,
    /// KIP-848: the timings the broker decides (its session timeout, read
    /// once at join, and the heartbeat interval of its last answer).
    pub(super) broker: BrokerTiming,
}

impl Member {
    /// Joins the group and waits for the first assignment.
    ///
    /// # Errors
    ///
    /// [`MembershipError`] when no coordinator answers within the
    /// connection's timeout, or the coordinator refuses the member (for
    /// example a group whose members use another assignor).
    pub async fn join(
        connection: &ConnectionConfig,
        config: MembershipConfig,
    ) -> Result<Self, MembershipError> {
        let mut member = Self::new(connection, config)?;
        member.rejoin().await?;
        Ok(member)
    }

    /// A member of `config`'s group that has not joined yet: its first
    /// [`rejoin`](Self::rejoin) joins.
    ///
    /// # Errors
    ///
    /// The connection's settings cannot be used.
    pub(super) fn new(
        connection: &ConnectionConfig,
        config: MembershipConfig,
    ) -> Result<Self, MembershipError> {
        Ok(Self {
            wire: connection.wire_options()?,
            brokers: connection.brokers.clone(),
            timeout: connection.timeout,
            config,
            coordinator: None,
            member_id: String::new(),
            generation: -1,
            leader: false,
            assigned: Vec::new(),
            protocol: None,
            revoked: Vec::new(),
            lost: false,
            lease: Lease::default(),
            target: None,
            topic_ids: std::collections::BTreeMap::new(),
            topic_ids_at: Instant::now(),
            told_unreleased: false,
            broker: BrokerTiming::default(),
        })
    }

    /// The partitions of the current generation, sorted.
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assigned
    }

    /// The current generation.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The id the coordinator gave this member.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// Whether this member computed the current assignment.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The group this member belongs to.
    pub fn group(&self) -> &str {
        &self.config.group
    }

    /// The assignor the coordinator chose for the current generation.
    pub fn protocol(&self) -> Option<Assignor> {
        self.protocol
    }

    /// Whether rebalances are cooperative (KIP-429) in the current
    /// generation: the member keeps its partitions while it rejoins.
    pub fn is_cooperative(&self) -> bool {
        match self.speaks_consumer_protocol() {
            // KIP-848 is incremental by design.
            true => self.generation > 0,
            false => self.protocol.is_some_and(Assignor::is_cooperative) && self.generation >= 0,
        }
    }

    /// The partitions the last rebalance took from this member while it
    /// kept the rest (cooperative only): it must finish with them and
    /// rejoin once more so that their new owner gets them.
    pub fn revoked(&self) -> &[TopicPartition] {
        &self.revoked
    }

    /// The group instance id of a static member.
    pub fn instance_id(&self) -> Option<&str> {
        self.config.instance_id.as_deref()
    }

    /// The member's lease on its partitions, shared with whoever writes
    /// for them.
    pub fn lease(&self) -> Lease {
        self.lease.clone()
    }

    /// The lease runs on from `sent`, when a request the coordinator
    /// answered in good standing was sent.
    pub(super) fn confirmed(&self, sent: Instant) {
        if self.lost {
            return;
        }
        let margin = self.heartbeat_interval();
        self.lease
            .set(Some(sent + self.session_timeout().saturating_sub(margin)));
    }

    /// Joins again after a rebalance or fencing, offering the partitions
    /// owned until now, and waits for the new assignment. The caller must
    /// have finished with its partitions (flushed and checkpointed).
    ///
    /// # Errors
    ///
    /// As [`join`](Self::join).
    pub async fn rejoin(&mut self) -> Result<(), MembershipError> {
        // JoinGroup waits at the coordinator until every member rejoined
        // or the rebalance timeout passed.
        let limit = self.config.rebalance_timeout + self.timeout;
        let group = self.config.group.clone();
        let hold = self.is_cooperative().then(|| self.hold_while_joining());
        let joining = Retry::until(Instant::now() + limit).run_with(
            self,
            |member, _| match member.speaks_consumer_protocol() {
                true => Box::pin(member.consumer_rejoin()),
                false => Box::pin(member.join_and_sync()),
            },
            |why, _| debug!(group = group.as_str(), why, "joining again"),
        );
        let joined = match hold {
            None => joining.await,
            Some(hold) => hold.over(joining).await,
        };
        match joined {
            Ok(()) => Ok(()),
            Err(RetryError::Deadline(_)) => Err(MembershipError::Timeout {
                group,
                what: "joining",
                timeout: limit,
            }),
            Err(RetryError::Fatal(e)) => Err(e),
        }
    }

    /// How a cooperative member's lease is held while it waits in
    /// JoinGroup (its job reads on meanwhile).
    fn hold_while_joining(&self) -> Hold {
        Hold {
            lease: self.lease.clone(),
            span: self
                .session_timeout()
                .saturating_sub(self.heartbeat_interval()),
            every: self.heartbeat_interval(),
            until: Instant::now() + self.config.rebalance_timeout,
        }
    }

    /// Tells the coordinator this member is alive.
    ///
    /// # Errors
    ///
    /// A coordinator that cannot be reached within the session timeout,
    /// or a refusal that waiting cannot change.
    pub async fn heartbeat(&mut self) -> Result<Standing, MembershipError> {
        if self.speaks_consumer_protocol() {
            return self.consumer_heartbeat_standing().await;
        }
        let request = HeartbeatRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id(self.generation)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_group_instance_id(self.group_instance_id());
        let sent = Instant::now();
        let code = match self.call(&request).await? {
            Some(response) => response.error_code,
            None => return Ok(Standing::Member),
        };
        let standing = self.standing("Heartbeat", code)?;
        // REBALANCE_IN_PROGRESS answers a member of the generation too:
        // the coordinator renewed its session.
        if standing != Standing::Fenced {
            self.confirmed(sent);
        }
        Ok(standing)
    }

    /// Commits `offsets` to the broker's group offsets under this member's
    /// generation, so `kafka-consumer-groups` and lag exporters see them.
    /// `at` (ms since the epoch) is when weir committed them to its own
    /// store: where a partition resumes, the newer of the two commits
    /// wins. A commit refused for the generation says where the member
    /// stands.
    ///
    /// # Errors
    ///
    /// A coordinator that cannot be reached, or a refusal that waiting
    /// cannot change.
    pub async fn commit(
        &mut self,
        offsets: &[(TopicPartition, i64)],
        at: i64,
    ) -> Result<Standing, MembershipError> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        // Marks the commit as weir's, with its time (`weir offsets show`).
        let metadata = crate::kafka::admin::groups::commit_metadata(at);
        for (tp, offset) in offsets {
            topics.entry(&tp.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(*offset)
                    .with_committed_metadata(Some(StrBytes::from_string(metadata.clone()))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(self.group_id())
            .with_generation_id_or_member_epoch(self.generation)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_group_instance_id(self.group_instance_id())
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let sent = Instant::now();
        let Some(response) = self.call(&request).await? else {
            return Ok(Standing::Member);
        };
        let mut standing = Standing::Member;
        for topic in &response.topics {
            for partition in &topic.partitions {
                match self.standing("OffsetCommit", partition.error_code)? {
                    Standing::Member => {}
                    other => standing = other,
                }
            }
        }
        if standing == Standing::Member {
            self.confirmed(sent);
        }
        Ok(standing)
    }

    /// Ends this member's part as the Java consumer's `close()` does: a
    /// dynamic member [leaves](Self::leave), so the others take its
    /// partitions over at once; a static member stays in the group until
    /// its session times out, so a process restarted with the same
    /// instance id within it takes the partitions back without a
    /// rebalance (and a member gone for good is replaced after the
    /// session timeout).
    ///
    /// # Errors
    ///
    /// As [`leave`](Self::leave), for a dynamic member.
    pub async fn close(mut self) -> Result<(), MembershipError> {
        if self.speaks_consumer_protocol() {
            // A static member leaves with epoch -2, which keeps its
            // assignment for it until its session times out.
            return match self.consumer_leave().await {
                Ok(()) => Ok(()),
                Err(attempt) => Err(self.unreachable(attempt)),
            };
        }
        match &self.config.instance_id {
            None => self.leave().await,
            // Fenced, or never joined: nothing to keep.
            Some(_) if self.member_id.is_empty() => Ok(()),
            Some(instance) => {
                info!(
                    group = self.config.group.as_str(),
                    instance = instance.as_str(),
                    session_timeout = %humantime::format_duration(self.config.session_timeout),
                    "static member: not leaving the group; a restart with this instance id within the session timeout takes the partitions back"
                );
                Ok(())
            }
        }
    }

    /// Leaves the group, so the others take the partitions over at once
    /// rather than after the session timeout; a static member is named by
    /// its instance id too (KIP-345), as an admin's removal of it is.
    ///
    /// # Errors
    ///
    /// A coordinator that cannot be reached within the timeout, or
    /// [`MembershipError::FencedInstance`] when another process holds the
    /// instance id.
    pub async fn leave(mut self) -> Result<(), MembershipError> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        if self.speaks_consumer_protocol() {
            self.config.instance_id = None;
            return match self.consumer_leave().await {
                Ok(()) => Ok(()),
                Err(attempt) => Err(self.unreachable(attempt)),
            };
        }
        let member_id = StrBytes::from_string(self.member_id.clone());
        let mut request = LeaveGroupRequest::default().with_group_id(self.group_id());
        // Version 3 moved the member into a list (KIP-345).
        let version = match self.coordinator().await {
            Ok(conn) => conn.version_for::<LeaveGroupRequest>(),
            Err(attempt) => return Err(self.unreachable(attempt)),
        };
        if version.map_err(|e| self.wire_error(e))? >= 3 {
            request.members = vec![
                MemberIdentity::default()
                    .with_member_id(member_id)
                    .with_group_instance_id(self.group_instance_id()),
            ];
        } else {
            request.member_id = member_id;
        }
        if let Some(response) = self.call(&request).await? {
            // v3+ answers per member too.
            let codes = std::iter::once(response.error_code)
                .chain(response.members.iter().map(|m| m.error_code));
            for error in codes.filter_map(ResponseError::try_from_code) {
                match error {
                    // A member the coordinator already dropped has left
                    // anyway.
                    ResponseError::UnknownMemberId => {}
                    ResponseError::FencedInstanceId => {
                        return Err(self.fenced_instance("LeaveGroup"));
                    }
                    e => return Err(self.refused("LeaveGroup", e)),
                }
            }
        }
        info!(
            group = self.config.group.as_str(),
            member = self.member_id.as_str(),
            "left the group"
        );
        Ok(())
    }

    /// Drops the connection to the coordinator: a request still pending
    /// there (a JoinGroup the coordinator holds) is given up, and the next
    /// request goes on a new connection rather than waiting behind it (a
    /// broker answers one request per connection at a time).
    pub(super) fn disconnect(&mut self) {
        self.coordinator = None;
    }

    /// The connection to the group's coordinator, found and opened if
    /// needed.
    pub(super) async fn coordinator(&mut self) -> Result<&mut BrokerConnection, Attempt> {
        if self.coordinator.is_none() {
            let deadline = Instant::now() + self.timeout;
            let mut any = wire::connect_any(&self.wire, &self.brokers, deadline)
                .await
                .map_err(|e| Attempt::Fatal(self.wire_error(e)))?;
            // Key type 0: a group.
            let address = match any.find_coordinator(&self.config.group, 0).await {
                Ok(address) => address,
                Err(WireError::Broker { error, .. }) => {
                    return Err(self.judge("FindCoordinator", error));
                }
                Err(e @ WireError::Unsupported { .. }) => {
                    return Err(Attempt::Fatal(self.wire_error(e)));
                }
                Err(e) => return Err(Attempt::Retriable(crate::ErrorChain(&e).to_string())),
            };
            // A coordinator just killed is named until the controller
            // fences it: a short try, then it is looked up again.
            let try_deadline =
                deadline.min(Instant::now() + crate::kafka::transaction::COORDINATOR_CONNECT_TRY);
            let conn = wire::connect_to(&self.wire, &address, try_deadline)
                .await
                .map_err(|e| Attempt::Retriable(crate::ErrorChain(&e).to_string()))?;
            debug!(
                group = self.config.group.as_str(),
                coordinator = address,
                "coordinator found"
            );
            self.coordinator = Some(conn);
        }
        Ok(self.coordinator.as_mut().expect("opened above"))
    }

    /// Sends `request` to the coordinator; a broken connection is dropped
    /// and reported as worth another try.
    pub(super) async fn send<R>(&mut self, request: &R) -> Result<R::Response, Attempt>
    where
        R: kafka_protocol::protocol::Request + kafka_protocol::protocol::Message,
    {
        // JoinGroup (and a follower's SyncGroup) wait at the coordinator
        // for the other members, up to the rebalance timeout, as the Java
        // consumer allows them.
        use kafka_protocol::protocol::Request as _;
        let waits = [JoinGroupRequest::KEY, SyncGroupRequest::KEY].contains(&R::KEY);
        let timeout = match waits {
            true => self.config.rebalance_timeout + self.timeout,
            false => self.timeout,
        };
        let conn = self.coordinator().await?;
        // A coordinator that took the request and never answers (frozen,
        // or behind a half-open connection) is given up after that and
        // looked up again, so a heartbeat never waits longer than the
        // connection's timeout: the lease lapses meanwhile, and the next
        // answer says where the member stands.
        match tokio::time::timeout(timeout, conn.request(request)).await {
            Err(_elapsed) => {
                self.coordinator = None;
                Err(Attempt::Retriable(format!(
                    "no answer within {}",
                    humantime::format_duration(timeout)
                )))
            }
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.coordinator = None;
                if e.is_retryable() {
                    Err(Attempt::Retriable(crate::ErrorChain(&e).to_string()))
                } else {
                    Err(Attempt::Fatal(self.wire_error(e)))
                }
            }
        }
    }

    /// As [`send`](Self::send), for heartbeats, commits and leaving: a
    /// coordinator that cannot be reached now is not an error yet (`None`),
    /// unless it fails for good.
    async fn call<R>(&mut self, request: &R) -> Result<Option<R::Response>, MembershipError>
    where
        R: kafka_protocol::protocol::Request + kafka_protocol::protocol::Message,
    {
        match self.send(request).await {
            Ok(response) => Ok(Some(response)),
            Err(Attempt::Retriable(why)) => {
                debug!(
                    group = self.config.group.as_str(),
                    why, "coordinator not reached"
                );
                Ok(None)
            }
            Err(Attempt::Fatal(e)) => Err(e),
        }
    }

    /// What an error code of a heartbeat or a commit means for the member.
    fn standing(&mut self, api: &'static str, code: i16) -> Result<Standing, MembershipError> {
        match ResponseError::try_from_code(code) {
            None => Ok(Standing::Member),
            Some(ResponseError::RebalanceInProgress) => Ok(Standing::Rebalance),
            Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                self.forget();
                Ok(Standing::Fenced)
            }
            // Another process joined with this instance id and holds the
            // partitions: this one must stop, not rejoin and fence it back
            // (as the Java consumer, which fails with
            // FencedInstanceIdException).
            Some(ResponseError::FencedInstanceId) => {
                self.forget();
                Err(self.fenced_instance(api))
            }
            Some(
                ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress,
            ) => {
                self.coordinator = None;
                Ok(Standing::Member)
            }
            Some(e) => Err(self.refused(api, e)),
        }
    }

    /// A member the coordinator does not know any more starts over.
    pub(super) fn forget(&mut self) {
        self.lease.set(None);
        self.member_id.clear();
        self.generation = -1;
        self.assigned.clear();
        self.revoked.clear();
    }

    /// An error code as another try (a coordinator moving or loading) or
    /// a failure.
    pub(super) fn judge(&mut self, api: &'static str, error: ResponseError) -> Attempt {
        match error {
            ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress => {
                self.coordinator = None;
                Attempt::Retriable("coordinator moved".to_owned())
            }
            ResponseError::RebalanceInProgress => {
                Attempt::Retriable("rebalance in progress".to_owned())
            }
            e if e.is_retriable() => Attempt::Retriable("retriable error".to_owned()),
            e => Attempt::Fatal(self.refused(api, e)),
        }
    }

    pub(super) fn refused(&self, api: &'static str, error: ResponseError) -> MembershipError {
        MembershipError::Refused {
            group: self.config.group.clone(),
            api,
            source: BrokerRefusal {
                error,
                message: None,
            },
        }
    }

    pub(super) fn fenced_instance(&self, api: &'static str) -> MembershipError {
        MembershipError::FencedInstance {
            group: self.config.group.clone(),
            instance_id: self.config.instance_id.clone().unwrap_or_default(),
            api,
        }
    }

    pub(super) fn wire_error(&self, source: WireError) -> MembershipError {
        MembershipError::Wire {
            group: self.config.group.clone(),
            source,
        }
    }

    fn unreachable(&self, attempt: Attempt) -> MembershipError {
        match attempt {
            Attempt::Fatal(e) => e,
            Attempt::Retriable(_) => MembershipError::Timeout {
                group: self.config.group.clone(),
                what: "finding the coordinator",
                timeout: self.timeout,
            },
        }
    }

    pub(super) fn group_id(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.config.group.clone()))
    }

    pub(super) fn group_instance_id(&self) -> Option<StrBytes> {
        self.config.instance_id.clone().map(StrBytes::from_string)
    }
}

/// An attempt's failure: another try, with why for the log, or final.
pub(super) type Attempt = Failure<MembershipError, String>;

pub(super) fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

pub(super) fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// The timings the broker decides for a consumer-protocol member (read
/// and followed in `broker_timing`).
#[derive(Debug, Default)]
pub(super) struct BrokerTiming {
    /// The group's session timeout, read at join.
    pub(super) session: Option<std::time::Duration>,
    /// The heartbeat interval of the last answer.
    pub(super) interval: Option<std::time::Duration>,
}
