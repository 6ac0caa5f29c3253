//! Membership in a Kafka consumer group through the broker's group
//! coordinator, as the Java consumer does it with the classic protocol:
//! FindCoordinator, JoinGroup (protocol type `consumer`, offering the
//! [assignors] in the configured order), SyncGroup, Heartbeat, LeaveGroup,
//! and OffsetCommit with the member's generation so that standard tools see
//! the group's position.
//!
//! A [`Member`] is one member of one group. It is driven by its owner: the
//! owner heartbeats every [`MembershipConfig::heartbeat_interval`], and when
//! a heartbeat (or a commit) answers [`Standing::Rebalance`] it finishes
//! with its partitions (flush, checkpoint) and calls [`Member::rejoin`]; a
//! [`Standing::Fenced`] member has already lost them and must not write for
//! them again. With an eager assignor (`range`, `roundrobin`, `sticky`)
//! every member gives up its partitions before rejoining. With
//! `cooperative-sticky` (KIP-429) the member rejoins on its own, keeping
//! what it owns: the job hears of the rebalance only when its assignment
//! changed, once the new one is known ([`Membership`]); a partition that
//! moves is given up by its owner first (which then rejoins once more, as
//! the Java consumer does) and handed to its new owner in the follow-up.
//!
//! A member with a group instance id ([`MembershipConfig::with_instance_id`],
//! the Java consumer's `group.instance.id`, KIP-345) is *static*: the
//! coordinator keeps its partitions for it until its session times out,
//! so a process restarted with the same id within the session rejoins the
//! running generation and gets them back without a rebalance. As the Java
//! consumer, a static member does not leave the group when it closes
//! ([`Membership::close`]); a second process with the same id fences the
//! first ([`MembershipError::FencedInstance`]).

use std::time::Duration;

use tokio::time::Instant;

pub mod assignor;
pub mod assignors;
mod broker_timing;
mod consumer;
pub(crate) use consumer::new_member_id;
mod join;
mod member;
mod task;

pub use assignors::{Assignor, DEFAULT_ASSIGNORS};
pub use member::Member;
pub use task::{Generation, MemberLink, Membership};

use crate::kafka::admin::BrokerRefusal;
use crate::kafka::connect::ConnectError;
use crate::kafka::wire::WireError;
use assignor::ProtocolError;

/// The Java consumer's `session.timeout.ms` (45 s since Kafka 3.0).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// The Java consumer's `heartbeat.interval.ms`.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
/// The Java consumer's `max.poll.interval.ms`, which it sends as the
/// rebalance timeout: how long the coordinator waits for members to
/// rejoin.
pub const DEFAULT_MAX_POLL_INTERVAL: Duration = Duration::from_secs(300);

/// A group to join and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MembershipConfig {
    /// The group id.
    pub group: String,
    /// The topics to read.
    pub topics: Vec<String>,
    /// A member not heard from for this long is removed.
    pub session_timeout: Duration,
    /// How often the owner heartbeats.
    pub heartbeat_interval: Duration,
    /// How long a rebalance waits for members to rejoin.
    pub rebalance_timeout: Duration,
    /// The group instance id of a static member (`group.instance.id`);
    /// `None` (the Java consumer's default) joins as a dynamic member.
    pub instance_id: Option<String>,
    /// The assignors offered in JoinGroup, in order of preference (the
    /// Java consumer's `partition.assignment.strategy`).
    pub assignors: Vec<Assignor>,
    /// The group protocol (the Java consumer's `group.protocol`).
    pub protocol: GroupProtocol,
    /// With the consumer protocol, the broker's assignor to use
    /// (`group.remote.assignor`: `uniform` or `range`); `None` is the
    /// broker's default.
    pub remote_assignor: Option<String>,
}

/// The group protocol a member speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup and SyncGroup, the leader assigning (every broker since
    /// Kafka 0.9, and Redpanda).
    #[default]
    Classic,
    /// ConsumerGroupHeartbeat (KIP-848, Kafka 4.0): the broker assigns,
    /// incrementally.
    Consumer,
}

impl std::str::FromStr for GroupProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "classic" => Ok(Self::Classic),
            "consumer" => Ok(Self::Consumer),
            _ => Err(format!(
                "unknown group protocol \"{s}\": classic or consumer"
            )),
        }
    }
}

impl MembershipConfig {
    /// Membership of `group` for `topics`, with the Java consumer's
    /// timeouts.
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            group: group.into(),
            topics,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            rebalance_timeout: DEFAULT_MAX_POLL_INTERVAL,
            instance_id: None,
            assignors: DEFAULT_ASSIGNORS.to_vec(),
            protocol: GroupProtocol::Classic,
            remote_assignor: None,
        }
    }

    /// Speaks `protocol`; with the consumer protocol, asks the broker for
    /// `remote_assignor` (`None`: its default).
    #[must_use]
    pub fn with_protocol(
        mut self,
        protocol: GroupProtocol,
        remote_assignor: Option<String>,
    ) -> Self {
        self.protocol = protocol;
        self.remote_assignor = remote_assignor;
        self
    }

    /// Offers `assignors` in this order of preference (an empty list
    /// keeps the default, [`DEFAULT_ASSIGNORS`]); a repeated one counts
    /// once.
    #[must_use]
    pub fn with_assignors(mut self, assignors: impl IntoIterator<Item = Assignor>) -> Self {
        let mut offered = Vec::new();
        for a in assignors {
            if !offered.contains(&a) {
                offered.push(a);
            }
        }
        if !offered.is_empty() {
            self.assignors = offered;
        }
        self
    }

    /// Joins as the static member `id` (KIP-345): a restart with the same
    /// id within the session timeout takes the partitions back without a
    /// rebalance. The id must be unique in the group and stable across
    /// restarts (in Kubernetes, a StatefulSet's pod name).
    #[must_use]
    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// With [`session_timeout`](Self::session_timeout).
    #[must_use]
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// With [`heartbeat_interval`](Self::heartbeat_interval).
    #[must_use]
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// With [`rebalance_timeout`](Self::rebalance_timeout) (the Java
    /// consumer's `max.poll.interval.ms`).
    #[must_use]
    pub fn with_rebalance_timeout(mut self, timeout: Duration) -> Self {
        self.rebalance_timeout = timeout;
        self
    }

    /// Whether this is a static member.
    pub fn is_static(&self) -> bool {
        self.instance_id.is_some()
    }
}

/// Where a member stands after a heartbeat or a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Still a member of the current generation.
    Member,
    /// A rebalance started: finish with the partitions, then rejoin.
    Rebalance,
    /// The coordinator no longer knows this member or generation (its
    /// session expired): its partitions are someone else's already.
    Fenced,
}

/// Errors of group membership. Each names the group.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The cluster could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A request failed on the wire.
    #[error("group \"{group}\"")]
    Wire {
        /// The group.
        group: String,
        /// The failure.
        source: WireError,
    },
    /// The coordinator refused a request for good.
    #[error("group \"{group}\": {api} refused")]
    Refused {
        /// The group.
        group: String,
        /// The request.
        api: &'static str,
        /// The broker's error.
        source: BrokerRefusal,
    },
    /// A member's subscription or assignment could not be read.
    #[error("group \"{group}\"")]
    Protocol {
        /// The group.
        group: String,
        /// What could not be decoded.
        source: ProtocolError,
    },
    /// Another process joined the group with this member's instance id
    /// (FENCED_INSTANCE_ID): two processes must not run with one id. The
    /// later one keeps the partitions; this one must stop, not rejoin.
    #[error(
        "group \"{group}\": another member joined with group instance id \"{instance_id}\" ({api} answered FENCED_INSTANCE_ID); each member needs an id of its own"
    )]
    FencedInstance {
        /// The group.
        group: String,
        /// The instance id.
        instance_id: String,
        /// The request that was refused.
        api: &'static str,
    },
    /// The coordinator is older than static membership (JoinGroup v5,
    /// Kafka 2.3).
    #[error(
        "group \"{group}\": the coordinator does not support group instance ids (JoinGroup v{version}, static membership needs v5: Kafka 2.3 or later)"
    )]
    StaticUnsupported {
        /// The group.
        group: String,
        /// The highest JoinGroup version the coordinator takes.
        version: i16,
    },
    /// The group's members use assignors or a protocol type weir does not
    /// offer (INCONSISTENT_GROUP_PROTOCOL), as DescribeGroups tells.
    #[error(
        "group \"{group}\": JoinGroup refused (INCONSISTENT_GROUP_PROTOCOL): weir offered protocol type \"consumer\" with assignors {offered}; the group ({state}) uses {uses}; {hint}"
    )]
    NoCommonProtocol {
        /// The group.
        group: String,
        /// The assignors weir offered, comma-separated.
        offered: String,
        /// The group's state (`Stable`, ...), or `unknown`.
        state: String,
        /// What the group uses: its protocol type and assignor.
        uses: String,
        /// How to change it.
        hint: String,
    },
    /// No coordinator answered, or joining did not finish, in time.
    #[error("group \"{group}\": {what} not within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The group.
        group: String,
        /// What did not happen.
        what: &'static str,
        /// The deadline.
        timeout: Duration,
    },
    /// `--group-protocol consumer` against a coordinator that does not
    /// take ConsumerGroupHeartbeat.
    #[error(
        "group \"{group}\": the broker does not speak the consumer group protocol (KIP-848, ConsumerGroupHeartbeat: Kafka 4.0 and later; 3.7-3.9 only as a preview turned on by group.coordinator.rebalance.protocols); use --group-protocol classic"
    )]
    ConsumerProtocolUnsupported {
        /// The group.
        group: String,
    },
}

/// How long a member may go on writing for its partitions: until the
/// session timeout after the last request the coordinator answered as
/// from a member in good standing (counted from when it was sent, so the
/// coordinator's own clock can only end the session later), less one
/// heartbeat interval of margin. A process that was frozen (SIGSTOP) or
/// cut off finds its lease lapsed and stops before it writes again for
/// partitions that may be someone else's by now.
#[derive(Debug, Clone, Default)]
pub struct Lease(std::sync::Arc<std::sync::Mutex<Option<Instant>>>);

impl Lease {
    /// Whether the member may still write for its partitions.
    pub fn valid(&self) -> bool {
        self.until().is_some_and(|until| Instant::now() < until)
    }

    /// When the lease lapses, if the member holds one.
    pub fn until(&self) -> Option<Instant> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn set(&self, until: Option<Instant>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = until;
    }
}

/// A cooperative member's lease while it waits in JoinGroup: the
/// coordinator does not expire a member awaiting the join (as a heartbeat
/// would, its pending JoinGroup keeps its session), which can take as long
/// as the slowest member needs to rejoin (up to the rebalance timeout), so
/// the lease is renewed every heartbeat interval meanwhile, never past the
/// rebalance timeout from the start. A lease the join itself ended (the
/// member was forgotten: its partitions are lost) stays ended.
pub(super) struct Hold {
    pub(super) lease: Lease,
    pub(super) span: Duration,
    pub(super) every: Duration,
    pub(super) until: Instant,
}

impl Hold {
    pub(super) async fn over<T>(self, joining: impl std::future::Future<Output = T>) -> T {
        let mut joining = std::pin::pin!(joining);
        let mut ticks = tokio::time::interval(self.every);
        loop {
            tokio::select! {
                done = &mut joining => return done,
                _ = ticks.tick() => {
                    let now = Instant::now();
                    if self.lease.valid() && now < self.until {
                        self.lease.set(Some((now + self.span).min(self.until)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
