//! The assignors a member offers in JoinGroup, as the Java consumer's
//! `partition.assignment.strategy`: `range` and `roundrobin` (eager, the
//! defaults of the Java and librdkafka consumers), `sticky` (eager) and
//! `cooperative-sticky` (KIP-429). The coordinator picks one that every
//! member offers (by vote, each member's first choice among them), and
//! the leader computes the assignment with it.
//!
//! Each follows the Java client's algorithm, so a group gets the same
//! assignment whichever client leads it:
//! - `range` (`RangeAssignor`): per topic, the members subscribed to it
//!   in order take consecutive runs of its partitions, the first
//!   `P % N` one more;
//! - `roundrobin` (`RoundRobinAssignor`): every partition, topic by
//!   topic, goes to the next member in order subscribed to its topic;
//! - `sticky` ([`assignor::assign`]): balanced, and what a member owned
//!   stays with it as far as balance allows;
//! - `cooperative-sticky` (`CooperativeStickyAssignor`): the sticky
//!   assignment, less every partition that moves between owners. Its
//!   owner gives it up and rejoins; the follow-up rebalance hands it to
//!   its new owner. A partition is never read by two members at once,
//!   and the members keep reading what did not move.
//!
//! Members are ordered as Java orders them (`MemberInfo`): static members
//! (with a group instance id) first, by that id, then by member id.

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::{self, Subscription};
use crate::TopicPartition;

/// An assignment strategy, by its protocol name in JoinGroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Assignor {
    /// `range`: the Java consumer's first default, and librdkafka's.
    Range,
    /// `roundrobin`: librdkafka's second default.
    RoundRobin,
    /// `sticky`: eager and sticky; what weir members offered alone before.
    Sticky,
    /// `cooperative-sticky`: sticky with cooperative rebalances (KIP-429),
    /// the Java consumer's second default.
    CooperativeSticky,
}

/// What weir offers when not told otherwise, in order of preference:
/// `sticky` first, as weir's members always have (and older weir
/// members offer only it); `range` and `roundrobin`, so that a default
/// Java (`range, cooperative-sticky`) or librdkafka (`range, roundrobin`)
/// consumer shares the group, and the vote picks `range` for both sides
/// (the Java consumer's own choice among its defaults); then
/// `cooperative-sticky`, which a group gets only when every member puts
/// it first (`--assignor cooperative-sticky`). The group's protocol is
/// then eager whoever joins, never switching between eager and
/// cooperative as members come and go.
pub const DEFAULT_ASSIGNORS: [Assignor; 4] = [
    Assignor::Sticky,
    Assignor::Range,
    Assignor::RoundRobin,
    Assignor::CooperativeSticky,
];

/// An assignor name weir does not implement.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown assignor \"{0}\": weir implements range, roundrobin, sticky and cooperative-sticky"
)]
pub struct UnknownAssignor(pub String);

impl Assignor {
    /// Every assignor weir implements.
    pub const ALL: [Assignor; 4] = [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::Sticky,
        Assignor::CooperativeSticky,
    ];

    /// The protocol name in JoinGroup and SyncGroup.
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
            Self::Sticky => assignor::STICKY,
            Self::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor named `name` in JoinGroup, if weir implements it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether members keep their partitions through a rebalance
    /// (KIP-429) rather than give them all up before rejoining.
    pub fn is_cooperative(self) -> bool {
        self == Self::CooperativeSticky
    }

    /// The assignment of `partitions` (every partition of the topics the
    /// members subscribe to) to `members`.
    pub fn assign(
        self,
        members: &[GroupMember],
        partitions: &[TopicPartition],
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut members: Vec<&GroupMember> = members.iter().collect();
        members.sort_by(|a, b| a.order().cmp(&b.order()));
        let mut result = match self {
            Self::Range => range(&members, partitions),
            Self::RoundRobin => round_robin(&members, partitions),
            Self::Sticky => sticky(&members, partitions),
            Self::CooperativeSticky => cooperative(&members, partitions),
        };
        for list in result.values_mut() {
            list.sort();
        }
        result
    }
}

impl std::fmt::Display for Assignor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Assignor {
    type Err = UnknownAssignor;

    /// A protocol name (`range`), or a Java class name as in
    /// `partition.assignment.strategy` (`RangeAssignor`, with or without
    /// its package).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let class = s.rsplit('.').next().unwrap_or(s);
        let by_class = match class {
            "RangeAssignor" => Some(Self::Range),
            "RoundRobinAssignor" => Some(Self::RoundRobin),
            "StickyAssignor" => Some(Self::Sticky),
            "CooperativeStickyAssignor" => Some(Self::CooperativeSticky),
            _ => None,
        };
        by_class
            .or_else(|| Self::from_name(&s.to_ascii_lowercase()))
            .ok_or_else(|| UnknownAssignor(s.to_owned()))
    }
}

/// A member of the group as the leader sees it in JoinGroup's answer.
#[derive(Debug, Clone)]
pub struct GroupMember {
    /// The member id.
    pub member_id: String,
    /// Its group instance id, for a static member.
    pub instance_id: Option<String>,
    /// What it subscribed to and owned.
    pub subscription: Subscription,
}

impl GroupMember {
    /// Java's `MemberInfo` order: static members first, by instance id;
    /// then by member id.
    fn order(&self) -> (bool, Option<&str>, &str) {
        (
            self.instance_id.is_none(),
            self.instance_id.as_deref(),
            &self.member_id,
        )
    }

    fn subscribes(&self, topic: &str) -> bool {
        self.subscription.topics.iter().any(|t| t == topic)
    }
}

fn empty(members: &[&GroupMember]) -> BTreeMap<String, Vec<TopicPartition>> {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

/// The partitions of `partitions` by topic, each list in partition order.
fn by_topic(partitions: &[TopicPartition]) -> BTreeMap<&str, Vec<&TopicPartition>> {
    let mut topics: BTreeMap<&str, Vec<&TopicPartition>> = BTreeMap::new();
    for tp in partitions {
        topics.entry(&tp.topic).or_default().push(tp);
    }
    for list in topics.values_mut() {
        list.sort();
    }
    topics
}

/// Java's `RangeAssignor` (without racks).
fn range(
    members: &[&GroupMember],
    partitions: &[TopicPartition],
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut result = empty(members);
    for (topic, list) in by_topic(partitions) {
        let takers: Vec<&&GroupMember> = members.iter().filter(|m| m.subscribes(topic)).collect();
        if takers.is_empty() {
            continue;
        }
        let per = list.len() / takers.len();
        let extra = list.len() % takers.len();
        for (i, m) in takers.iter().enumerate() {
            let start = per * i + i.min(extra);
            let len = per + usize::from(i < extra);
            let mine = result
                .get_mut(&m.member_id)
                .expect("every member has an entry");
            mine.extend(list[start..start + len].iter().map(|tp| (*tp).clone()));
        }
    }
    result
}

/// Java's `RoundRobinAssignor`: one circle over the members, partitions
/// topic by topic; each goes to the next member subscribed to its topic.
fn round_robin(
    members: &[&GroupMember],
    partitions: &[TopicPartition],
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut result = empty(members);
    if members.is_empty() {
        return result;
    }
    let mut next = 0;
    for (topic, list) in by_topic(partitions) {
        if !members.iter().any(|m| m.subscribes(topic)) {
            continue;
        }
        for tp in list {
            while !members[next % members.len()].subscribes(topic) {
                next += 1;
            }
            let m = members[next % members.len()];
            next += 1;
            result
                .get_mut(&m.member_id)
                .expect("every member has an entry")
                .push(tp.clone());
        }
    }
    result
}

fn sticky(
    members: &[&GroupMember],
    partitions: &[TopicPartition],
) -> BTreeMap<String, Vec<TopicPartition>> {
    let pairs: Vec<(String, Subscription)> = members
        .iter()
        .map(|m| (m.member_id.clone(), m.subscription.clone()))
        .collect();
    assignor::assign(&pairs, partitions)
}

/// The sticky assignment less the partitions that change owner (Java's
/// `CooperativeStickyAssignor.adjustAssignment`): a partition some other
/// member claims (the newest generation's claim, as the sticky assignor
/// judges claims) is withheld until that member gave it up and rejoined.
fn cooperative(
    members: &[&GroupMember],
    partitions: &[TopicPartition],
) -> BTreeMap<String, Vec<TopicPartition>> {
    let all: BTreeSet<&TopicPartition> = partitions.iter().collect();
    let mut owners: BTreeMap<&TopicPartition, (i32, &str)> = BTreeMap::new();
    for m in members {
        let generation = m.subscription.generation;
        for tp in m.subscription.owned.iter().filter(|tp| all.contains(tp)) {
            if owners.get(tp).is_none_or(|&(g, _)| generation > g) {
                owners.insert(tp, (generation, &m.member_id));
            }
        }
    }
    let mut result = sticky(members, partitions);
    for (member, list) in &mut result {
        list.retain(|tp| owners.get(tp).is_none_or(|&(_, owner)| owner == member));
    }
    result
}

#[cfg(test)]
#[path = "assignors_tests.rs"]
mod tests;
