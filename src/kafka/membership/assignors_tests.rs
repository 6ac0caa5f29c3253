use std::collections::BTreeMap;

use super::*;

fn tps(topic: &str, range: std::ops::Range<i32>) -> Vec<TopicPartition> {
    range.map(|p| TopicPartition::new(topic, p)).collect()
}

fn member(id: &str, topics: &[&str], owned: Vec<TopicPartition>, generation: i32) -> GroupMember {
    GroupMember {
        member_id: id.to_owned(),
        instance_id: None,
        subscription: Subscription {
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            owned,
            generation,
        },
    }
}

fn fresh(ids: &[&str], topics: &[&str]) -> Vec<GroupMember> {
    ids.iter()
        .map(|id| member(id, topics, vec![], -1))
        .collect()
}

fn of(assignment: &BTreeMap<String, Vec<TopicPartition>>, id: &str) -> Vec<String> {
    assignment[id]
        .iter()
        .map(|tp| format!("{}-{}", tp.topic, tp.partition))
        .collect()
}

/// Every partition at most once; `all` says whether every one is given.
fn check(assignment: &BTreeMap<String, Vec<TopicPartition>>, partitions: &[TopicPartition]) {
    let mut given: Vec<TopicPartition> = assignment.values().flatten().cloned().collect();
    given.sort();
    assert_eq!(given, partitions, "{assignment:?}");
    let counts: Vec<usize> = assignment.values().map(Vec::len).collect();
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= 1, "{counts:?}");
}

#[test]
fn names_parse_as_java_spells_them() {
    for a in Assignor::ALL {
        assert_eq!(a.name().parse::<Assignor>().unwrap(), a);
        assert_eq!(Assignor::from_name(a.name()), Some(a));
    }
    assert_eq!(
        "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"
            .parse::<Assignor>()
            .unwrap(),
        Assignor::CooperativeSticky
    );
    assert_eq!(
        " RoundRobin ".parse::<Assignor>().unwrap(),
        Assignor::RoundRobin
    );
    let e = "uniform".parse::<Assignor>().unwrap_err().to_string();
    assert!(
        e.contains("\"uniform\"") && e.contains("cooperative-sticky"),
        "{e}"
    );
    assert!(Assignor::CooperativeSticky.is_cooperative());
    assert!(!Assignor::Sticky.is_cooperative());
}

#[test]
fn range_gives_consecutive_runs_per_topic_the_first_members_one_more() {
    // As Java's RangeAssignor: t has 5 partitions over 2 members (3 + 2),
    // u has 3 (2 + 1): the first member takes the extra of each topic.
    let mut partitions = tps("t", 0..5);
    partitions.extend(tps("u", 0..3));
    let members = fresh(&["b", "a"], &["t", "u"]);
    let a = Assignor::Range.assign(&members, &partitions);
    assert_eq!(of(&a, "a"), ["t-0", "t-1", "t-2", "u-0", "u-1"]);
    assert_eq!(of(&a, "b"), ["t-3", "t-4", "u-2"]);
}

#[test]
fn range_and_roundrobin_order_static_members_first() {
    let partitions = tps("t", 0..2);
    let mut members = fresh(&["a", "b"], &["t"]);
    members[1].instance_id = Some("z".to_owned());
    for assignor in [Assignor::Range, Assignor::RoundRobin] {
        let a = assignor.assign(&members, &partitions);
        assert_eq!(of(&a, "b"), ["t-0"], "{assignor}");
        assert_eq!(of(&a, "a"), ["t-1"], "{assignor}");
    }
}

#[test]
fn range_only_gives_a_topic_to_members_subscribed_to_it() {
    let mut partitions = tps("t", 0..2);
    partitions.extend(tps("u", 0..2));
    let members = vec![
        member("a", &["t"], vec![], -1),
        member("b", &["t", "u"], vec![], -1),
    ];
    let a = Assignor::Range.assign(&members, &partitions);
    assert_eq!(of(&a, "a"), ["t-0"]);
    assert_eq!(of(&a, "b"), ["t-1", "u-0", "u-1"]);
}

#[test]
fn roundrobin_deals_partitions_in_turn_over_topics() {
    // As Java's RoundRobinAssignor: one circle over the sorted members,
    // partitions topic by topic.
    let mut partitions = tps("t", 0..3);
    partitions.extend(tps("u", 0..2));
    let members = fresh(&["c", "a", "b"], &["t", "u"]);
    let a = Assignor::RoundRobin.assign(&members, &partitions);
    assert_eq!(of(&a, "a"), ["t-0", "u-0"]);
    assert_eq!(of(&a, "b"), ["t-1", "u-1"]);
    assert_eq!(of(&a, "c"), ["t-2"]);
    check(&a, &partitions);
}

#[test]
fn roundrobin_skips_members_not_subscribed() {
    let mut partitions = tps("t", 0..2);
    partitions.extend(tps("u", 0..2));
    let members = vec![
        member("a", &["t", "u"], vec![], -1),
        member("b", &["t"], vec![], -1),
    ];
    let a = Assignor::RoundRobin.assign(&members, &partitions);
    assert_eq!(of(&a, "a"), ["t-0", "u-0", "u-1"]);
    assert_eq!(of(&a, "b"), ["t-1"]);
}

#[test]
fn every_assignor_is_balanced_and_deterministic() {
    let partitions = tps("t", 0..13);
    let members = fresh(&["m3", "m1", "m2", "m0"], &["t"]);
    let mut reversed = members.clone();
    reversed.reverse();
    for assignor in Assignor::ALL {
        let a = assignor.assign(&members, &partitions);
        check(&a, &partitions);
        assert_eq!(a, assignor.assign(&reversed, &partitions), "{assignor}");
    }
}

#[test]
fn sticky_assignors_keep_what_members_owned() {
    let partitions = tps("t", 0..12);
    for assignor in [Assignor::Sticky, Assignor::CooperativeSticky] {
        let first = assignor.assign(&fresh(&["a", "b", "c"], &["t"]), &partitions);
        // c leaves: a and b keep all they had, and take c's.
        let members = vec![
            member("a", &["t"], first["a"].clone(), 1),
            member("b", &["t"], first["b"].clone(), 1),
        ];
        let after = assignor.assign(&members, &partitions);
        check(&after, &partitions);
        for id in ["a", "b"] {
            assert!(
                first[id].iter().all(|tp| after[id].contains(tp)),
                "{assignor}: {id} lost a partition: {first:?} -> {after:?}"
            );
        }
    }
}

#[test]
fn cooperative_withholds_a_moving_partition_until_its_owner_gave_it_up() {
    let partitions = tps("t", 0..6);
    let first = Assignor::CooperativeSticky.assign(&fresh(&["a", "b"], &["t"]), &partitions);
    assert_eq!((first["a"].len(), first["b"].len()), (3, 3));

    // c joins. First rebalance: a and b keep 2 each and give one up; c
    // gets nothing yet, since both partitions it will take are still
    // owned.
    let members = vec![
        member("a", &["t"], first["a"].clone(), 1),
        member("b", &["t"], first["b"].clone(), 1),
        member("c", &["t"], vec![], -1),
    ];
    let one = Assignor::CooperativeSticky.assign(&members, &partitions);
    assert_eq!((one["a"].len(), one["b"].len()), (2, 2), "{one:?}");
    assert!(one["c"].is_empty(), "{one:?}");
    for id in ["a", "b"] {
        assert!(one[id].iter().all(|tp| first[id].contains(tp)), "{one:?}");
    }
    // The eager sticky assignor hands them over at once.
    let eager = Assignor::Sticky.assign(&members, &partitions);
    assert_eq!(eager["c"].len(), 2, "{eager:?}");

    // a and b gave theirs up and rejoin owning what they kept: the
    // follow-up hands the two to c, and a and b keep theirs.
    let members = vec![
        member("a", &["t"], one["a"].clone(), 2),
        member("b", &["t"], one["b"].clone(), 2),
        member("c", &["t"], vec![], -1),
    ];
    let two = Assignor::CooperativeSticky.assign(&members, &partitions);
    check(&two, &partitions);
    assert_eq!(two["a"], one["a"]);
    assert_eq!(two["b"], one["b"]);
    let mut moved: Vec<TopicPartition> = first["a"]
        .iter()
        .chain(&first["b"])
        .filter(|tp| !one["a"].contains(tp) && !one["b"].contains(tp))
        .cloned()
        .collect();
    moved.sort();
    assert_eq!(two["c"], moved);
}

#[test]
fn cooperative_hands_out_unowned_partitions_at_once() {
    // A member that left owned 0..3: nobody claims them any more, so the
    // others take them in the same rebalance.
    let partitions = tps("t", 0..6);
    let members = vec![
        member("a", &["t"], tps("t", 3..5), 4),
        member("b", &["t"], tps("t", 5..6), 4),
    ];
    let a = Assignor::CooperativeSticky.assign(&members, &partitions);
    check(&a, &partitions);
}

#[test]
fn cooperative_judges_a_double_claim_by_generation() {
    // a missed a rebalance and still claims 0 from generation 1; b owns
    // it in generation 2: b keeps it, and a is not given it either.
    let partitions = tps("t", 0..2);
    let members = vec![
        member("a", &["t"], tps("t", 0..1), 1),
        member("b", &["t"], tps("t", 0..2), 2),
    ];
    let a = Assignor::CooperativeSticky.assign(&members, &partitions);
    assert!(a["b"].contains(&TopicPartition::new("t", 0)), "{a:?}");
    assert!(!a["a"].contains(&TopicPartition::new("t", 0)), "{a:?}");
}
