//! Which member of a consumer group reads which partition: the consumer
//! protocol's subscription and assignment, and weir's sticky assignor.
//!
//! The group leader computes the assignment from every member's
//! subscription, as in the Java consumer. weir's rule is the one Java's
//! `StickyAssignor` follows (protocol name `sticky`, eager rebalancing):
//! the partitions are spread evenly (counts differ by one at most), and
//! within that bound each member keeps the partitions it owned before, so
//! a rebalance moves as few partitions as balance allows. A partition two
//! members both claim (one of them missed a rebalance) stays with the
//! claim of the newer generation.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition as AssignedTopic,
};
use kafka_protocol::messages::consumer_protocol_subscription::{
    ConsumerProtocolSubscription, TopicPartition as OwnedTopic,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::TopicPartition;

/// The assignor's protocol name, as the Java consumer's `StickyAssignor`.
pub const STICKY: &str = "sticky";

/// The consumer protocol's embedded format version weir writes:
/// version 1 carries the partitions a member owns, version 2 its
/// generation, version 3 its rack.
const SUBSCRIPTION_VERSION: i16 = 2;
const ASSIGNMENT_VERSION: i16 = 1;

/// What a member asks for when it joins: its topics, the partitions it
/// owned in the generation it last belonged to, and that generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The topics to read.
    pub topics: Vec<String>,
    /// Partitions it owned before this rebalance.
    pub owned: Vec<TopicPartition>,
    /// The generation those were owned in (-1 for none).
    pub generation: i32,
}

/// A subscription or assignment that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode a member's {what}")]
pub struct ProtocolError {
    /// `subscription` or `assignment`.
    pub what: &'static str,
    /// The decoder's complaint.
    #[source]
    pub fault: DecodeFault,
}

/// Why a consumer protocol message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeFault {
    /// It ends before its version.
    #[error("it is shorter than its version")]
    NoVersion,
    /// The message after the version does not decode.
    #[error(transparent)]
    Message(Box<dyn std::error::Error + Send + Sync>),
}

impl Subscription {
    /// The subscription as JoinGroup's protocol metadata: a version, then
    /// `ConsumerProtocolSubscription` at that version.
    pub fn encode(&self) -> Bytes {
        let message = ConsumerProtocolSubscription::default()
            .with_topics(
                self.topics
                    .iter()
                    .map(|t| StrBytes::from_string(t.clone()))
                    .collect(),
            )
            .with_owned_partitions(
                by_topic(&self.owned)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OwnedTopic::default()
                            .with_topic(topic_name(topic))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
            .with_generation_id(self.generation);
        let mut buf = BytesMut::new();
        buf.put_i16(SUBSCRIPTION_VERSION);
        message
            .encode(&mut buf, SUBSCRIPTION_VERSION)
            .expect("a subscription encodes at the version it was built for");
        buf.freeze()
    }

    /// Decodes a member's subscription, of any version 0 to 3.
    ///
    /// # Errors
    ///
    /// [`ProtocolError`] for bytes that are not a subscription.
    pub fn decode(bytes: Bytes) -> Result<Self, ProtocolError> {
        let (version, message) =
            decode_versioned::<ConsumerProtocolSubscription>(bytes, "subscription")?;
        Ok(Self {
            topics: message.topics.iter().map(|t| t.to_string()).collect(),
            owned: message
                .owned_partitions
                .iter()
                .flat_map(|t| partitions_of(&t.topic, &t.partitions))
                .collect(),
            generation: if version >= 2 {
                message.generation_id
            } else {
                -1
            },
        })
    }
}

/// A member's assignment as SyncGroup carries it.
pub fn encode_assignment(partitions: &[TopicPartition]) -> Bytes {
    let message = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic(partitions)
            .into_iter()
            .map(|(topic, partitions)| {
                AssignedTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(ASSIGNMENT_VERSION);
    message
        .encode(&mut buf, ASSIGNMENT_VERSION)
        .expect("an assignment encodes at the version it was built for");
    buf.freeze()
}

/// Decodes the assignment SyncGroup returned; empty bytes are an empty
/// assignment (a member the leader gave nothing).
///
/// # Errors
///
/// [`ProtocolError`] for bytes that are not an assignment.
pub fn decode_assignment(bytes: Bytes) -> Result<Vec<TopicPartition>, ProtocolError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (_, message) = decode_versioned::<ConsumerProtocolAssignment>(bytes, "assignment")?;
    let mut partitions: Vec<TopicPartition> = message
        .assigned_partitions
        .iter()
        .flat_map(|t| partitions_of(&t.topic, &t.partitions))
        .collect();
    partitions.sort();
    Ok(partitions)
}

/// A consumer protocol message: its version, then the message at that
/// version. Newer members may write newer versions; their leading fields
/// are the same, so they are read at the newest version weir knows.
fn decode_versioned<M: Decodable>(
    mut bytes: Bytes,
    what: &'static str,
) -> Result<(i16, M), ProtocolError> {
    let error = |fault: DecodeFault| ProtocolError { what, fault };
    if bytes.remaining() < 2 {
        return Err(error(DecodeFault::NoVersion));
    }
    let version = bytes.get_i16().clamp(0, 3);
    let message =
        M::decode(&mut bytes, version).map_err(|e| error(DecodeFault::Message(e.into())))?;
    Ok((version, message))
}

/// The partitions of one topic entry.
fn partitions_of<'a>(
    topic: &TopicName,
    partitions: &'a [i32],
) -> impl Iterator<Item = TopicPartition> + 'a {
    let topic: std::sync::Arc<str> = topic.0.as_str().into();
    partitions
        .iter()
        .map(move |&p| TopicPartition::new(topic.clone(), p))
}

/// The sticky assignment of `partitions` to `members` (member id and
/// subscription). Every member gets `P / N` or `P / N + 1` partitions;
/// within that, what it owned stays with it.
///
/// Members are taken in the order given, which breaks ties: give them
/// sorted by member id so that every leader computes the same result.
pub fn assign(
    members: &[(String, Subscription)],
    partitions: &[TopicPartition],
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut result: BTreeMap<String, Vec<TopicPartition>> = members
        .iter()
        .map(|(id, _)| (id.clone(), Vec::new()))
        .collect();
    if members.is_empty() {
        return result;
    }
    let all: BTreeSet<&TopicPartition> = partitions.iter().collect();
    let n = members.len();
    let base = all.len() / n;
    let mut extra = all.len() % n;

    // Each existing partition goes to its newest claim.
    let mut claims: BTreeMap<&TopicPartition, (i32, usize)> = BTreeMap::new();
    for (i, (_, subscription)) in members.iter().enumerate() {
        for tp in subscription.owned.iter().filter(|tp| all.contains(tp)) {
            let newer = claims
                .get(tp)
                .is_none_or(|&(generation, _)| subscription.generation > generation);
            if newer {
                claims.insert(tp, (subscription.generation, i));
            }
        }
    }
    let mut kept: Vec<Vec<&TopicPartition>> = vec![Vec::new(); n];
    for (tp, (_, i)) in claims {
        kept[i].push(tp);
    }

    // Members that owned the most keep the extra slots; everyone is cut
    // down to what balance allows.
    let mut by_owned: Vec<usize> = (0..n).collect();
    by_owned.sort_by_key(|&i| std::cmp::Reverse(kept[i].len()));
    let mut quota = vec![base; n];
    for i in by_owned {
        if kept[i].len() > base && extra > 0 {
            extra -= 1;
            quota[i] = base + 1;
        }
        kept[i].truncate(quota[i]);
    }

    // The rest go to the members with the fewest, up to their quota; the
    // extra slots left are handed out on the way (the partitions left
    // number exactly the open places plus the extra slots left).
    let taken: BTreeSet<&TopicPartition> = kept.iter().flatten().copied().collect();
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let open = (0..n)
            .filter(|&i| kept[i].len() < quota[i])
            .min_by_key(|&i| kept[i].len());
        let i = match open {
            Some(i) => i,
            None => {
                let i = (0..n)
                    .filter(|&i| quota[i] == base)
                    .min_by_key(|&i| kept[i].len())
                    .expect("the partitions fill the quotas exactly");
                quota[i] = base + 1;
                i
            }
        };
        kept[i].push(tp);
    }

    for (i, (id, _)) in members.iter().enumerate() {
        let mine = result.get_mut(id).expect("every member has an entry");
        mine.extend(kept[i].iter().map(|tp| (*tp).clone()));
        mine.sort();
    }
    result
}

/// Partitions grouped by topic, each list sorted.
fn by_topic(partitions: &[TopicPartition]) -> BTreeMap<&str, Vec<i32>> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    for list in topics.values_mut() {
        list.sort_unstable();
    }
    topics
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(topic: &str, range: std::ops::Range<i32>) -> Vec<TopicPartition> {
        range.map(|p| TopicPartition::new(topic, p)).collect()
    }

    fn member(id: &str, owned: Vec<TopicPartition>, generation: i32) -> (String, Subscription) {
        (
            id.to_owned(),
            Subscription {
                topics: vec!["t".to_owned()],
                owned,
                generation,
            },
        )
    }

    fn counts(assignment: &BTreeMap<String, Vec<TopicPartition>>) -> Vec<usize> {
        assignment.values().map(Vec::len).collect()
    }

    /// Every partition exactly once, counts within one of each other.
    fn check(assignment: &BTreeMap<String, Vec<TopicPartition>>, partitions: &[TopicPartition]) {
        let mut all: Vec<TopicPartition> = assignment.values().flatten().cloned().collect();
        all.sort();
        assert_eq!(all, partitions, "{assignment:?}");
        let c = counts(assignment);
        let (min, max) = (c.iter().min().unwrap(), c.iter().max().unwrap());
        assert!(max - min <= 1, "{c:?}");
    }

    #[test]
    fn a_first_assignment_is_even() {
        let partitions = tps("t", 0..12);
        let members: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| member(id, Vec::new(), -1))
            .collect();
        let assignment = assign(&members, &partitions);
        check(&assignment, &partitions);
        assert_eq!(counts(&assignment), [4, 4, 4]);
    }

    #[test]
    fn a_joining_member_takes_only_what_balance_needs() {
        let partitions = tps("t", 0..12);
        let before = assign(
            &[member("a", vec![], -1), member("b", vec![], -1)],
            &partitions,
        );
        let members = vec![
            member("a", before["a"].clone(), 1),
            member("b", before["b"].clone(), 1),
            member("c", vec![], -1),
        ];
        let after = assign(&members, &partitions);
        check(&after, &partitions);
        // a and b each give up 2 of their 6; nothing else moves.
        for id in ["a", "b"] {
            let stayed = after[id]
                .iter()
                .filter(|tp| before[id].contains(tp))
                .count();
            assert_eq!(stayed, 4, "{id}: {after:?}");
        }
    }

    #[test]
    fn a_leaving_members_partitions_are_spread_and_the_rest_stay() {
        let partitions = tps("t", 0..10);
        let before = assign(
            &[
                member("a", vec![], -1),
                member("b", vec![], -1),
                member("c", vec![], -1),
            ],
            &partitions,
        );
        let members = vec![
            member("a", before["a"].clone(), 1),
            member("c", before["c"].clone(), 1),
        ];
        let after = assign(&members, &partitions);
        check(&after, &partitions);
        for id in ["a", "c"] {
            assert!(
                before[id].iter().all(|tp| after[id].contains(tp)),
                "{id} lost a partition: {before:?} -> {after:?}"
            );
        }
    }

    #[test]
    fn a_doubly_claimed_partition_stays_with_the_newer_generation() {
        let partitions = tps("t", 0..4);
        let members = vec![
            member("a", tps("t", 0..2), 1),
            member("b", tps("t", 1..4), 2),
        ];
        let after = assign(&members, &partitions);
        check(&after, &partitions);
        assert!(
            after["b"].contains(&TopicPartition::new("t", 1)),
            "{after:?}"
        );
    }

    #[test]
    fn more_members_than_partitions_leaves_some_idle_and_partitions_gone_are_dropped() {
        let partitions = tps("t", 0..2);
        let members = vec![
            member("a", tps("t", 0..5), 3),
            member("b", vec![], -1),
            member("c", vec![], -1),
        ];
        let after = assign(&members, &partitions);
        check(&after, &partitions);
        assert_eq!(after["a"], tps("t", 0..1));
    }

    #[test]
    fn subscriptions_and_assignments_round_trip() {
        let subscription = Subscription {
            topics: vec!["orders".to_owned(), "users".to_owned()],
            owned: vec![
                TopicPartition::new("orders", 3),
                TopicPartition::new("orders", 1),
                TopicPartition::new("users", 0),
            ],
            generation: 7,
        };
        let decoded = Subscription::decode(subscription.encode()).unwrap();
        assert_eq!(decoded.topics, subscription.topics);
        let mut owned = subscription.owned.clone();
        owned.sort();
        assert_eq!(decoded.owned, owned);
        assert_eq!(decoded.generation, 7);

        let partitions = tps("orders", 0..3);
        assert_eq!(
            decode_assignment(encode_assignment(&partitions)).unwrap(),
            partitions
        );
        assert!(decode_assignment(Bytes::new()).unwrap().is_empty());
        assert!(decode_assignment(Bytes::from_static(&[0])).is_err());
    }

    #[test]
    fn a_version_0_subscription_from_another_client_is_read() {
        // Version 0, topics ["t"], no user data: as a 2.x Java consumer
        // writes it.
        let bytes = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff]);
        let decoded = Subscription::decode(bytes).unwrap();
        assert_eq!(decoded.topics, ["t"]);
        assert!(decoded.owned.is_empty());
        assert_eq!(decoded.generation, -1);
    }
}
