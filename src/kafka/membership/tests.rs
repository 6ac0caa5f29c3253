//! A member against a scripted group coordinator ([`FakeBroker`]) on a
//! paused clock: a fenced generation, a rebalance during a checkpoint, a
//! lapsed lease after a freeze, a commit refused; a static member's
//! instance id on every request, its restart without a rebalance, and
//! two processes with one instance id; cooperative rebalances
//! ([`cooperative`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::metadata_response::{
    MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse, MetadataResponse,
    OffsetCommitResponse, RequestKind, ResponseKind, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::{Generation, Membership, MembershipConfig, Standing};
use crate::TopicPartition;
use crate::kafka::wire::fake::{FakeBroker, Reply};

const SESSION: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(5);

/// How the coordinator answers heartbeats and commits.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Ok,
    Error(ResponseError),
    /// Takes the request and never answers.
    Hang,
}

/// The group as the coordinator keeps it: one member.
#[derive(Debug)]
struct Group {
    generation: i32,
    member_id: Option<String>,
    heartbeat: Answer,
    commit: Answer,
    /// The generation of each OffsetCommit, in order.
    commits: Vec<i32>,
    /// The generation each JoinGroup started, in order.
    joins: Vec<i32>,
    /// The static member's instance id, once one joined.
    instance: Option<String>,
    /// The group's assignment for its member, once synced.
    assignment: Option<bytes::Bytes>,
    /// Each request's API and the instance id it carried, in order.
    sent: Vec<(ApiKey, Option<String>)>,
    /// How the coordinator answers JoinGroup, when not as usual.
    join_error: Option<ResponseError>,
    /// The assignor the coordinator chooses.
    protocol: &'static str,
    /// How long the coordinator holds JoinGroup and SyncGroup (waiting
    /// for other members) before it answers.
    held: Option<(Duration, Duration)>,
}

type Shared = Arc<Mutex<Group>>;

fn coordinator() -> (FakeBroker, Shared) {
    let group = Arc::new(Mutex::new(Group {
        generation: 0,
        member_id: None,
        heartbeat: Answer::Ok,
        commit: Answer::Ok,
        commits: Vec::new(),
        joins: Vec::new(),
        instance: None,
        assignment: None,
        sent: Vec::new(),
        join_error: None,
        protocol: "sticky",
        held: None,
    }));
    let state = Arc::clone(&group);
    let broker = FakeBroker::start(move |request| {
        let mut g = state.lock().unwrap();
        answer(&mut g, request)
    });
    (broker, group)
}

/// The instance id a request carried, and its API.
fn instance_of(request: &RequestKind) -> (ApiKey, Option<String>) {
    let id = |i: &Option<StrBytes>| i.as_ref().map(ToString::to_string);
    match request {
        RequestKind::JoinGroup(r) => (ApiKey::JoinGroup, id(&r.group_instance_id)),
        RequestKind::SyncGroup(r) => (ApiKey::SyncGroup, id(&r.group_instance_id)),
        RequestKind::Heartbeat(r) => (ApiKey::Heartbeat, id(&r.group_instance_id)),
        RequestKind::OffsetCommit(r) => (ApiKey::OffsetCommit, id(&r.group_instance_id)),
        RequestKind::LeaveGroup(r) => (
            ApiKey::LeaveGroup,
            r.members.first().and_then(|m| id(&m.group_instance_id)),
        ),
        RequestKind::Metadata(_) => (ApiKey::Metadata, None),
        other => panic!("not a group request: {other:?}"),
    }
}

fn answer(g: &mut Group, request: &RequestKind) -> Reply {
    let reply = answer_now(g, request);
    match (g.held, request, reply) {
        (Some((join, _)), RequestKind::JoinGroup(_), Reply::Answer(r)) => Reply::After(join, r),
        (Some((_, sync)), RequestKind::SyncGroup(_), Reply::Answer(r)) => Reply::After(sync, r),
        (_, _, reply) => reply,
    }
}

fn answer_now(g: &mut Group, request: &RequestKind) -> Reply {
    let reply = |kind| Reply::Answer(Box::new(kind));
    g.sent.push(instance_of(request));
    match request {
        RequestKind::JoinGroup(_) if g.join_error.is_some() => reply(ResponseKind::JoinGroup(
            JoinGroupResponse::default().with_error_code(g.join_error.unwrap().code()),
        )),
        // KIP-345: a static member that joins again (a new process, no
        // member id) while the group is stable takes its predecessor's
        // place under a new member id, in the same generation; as the
        // leader it is told not to assign again (KIP-814).
        RequestKind::JoinGroup(r)
            if r.member_id.is_empty()
                && r.group_instance_id.is_some()
                && r.group_instance_id.as_deref() == g.instance.as_deref()
                && g.assignment.is_some() =>
        {
            let id = StrBytes::from_string(format!("m-{}", g.sent.len()));
            g.member_id = Some(id.to_string());
            reply(ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_generation_id(g.generation)
                    .with_protocol_name(Some(StrBytes::from_static_str("sticky")))
                    .with_leader(id.clone())
                    .with_member_id(id.clone())
                    .with_skip_assignment(true)
                    .with_members(vec![
                        JoinGroupResponseMember::default()
                            .with_member_id(id)
                            .with_group_instance_id(r.group_instance_id.clone())
                            .with_metadata(r.protocols[0].metadata.clone()),
                    ]),
            ))
        }
        // A static member gets its id with its first JoinGroup.
        RequestKind::JoinGroup(r) if r.member_id.is_empty() && r.group_instance_id.is_some() => {
            let mut r = r.clone();
            r.member_id = StrBytes::from_string(format!("m-{}", g.joins.len() + 1));
            g.instance = r.group_instance_id.as_ref().map(ToString::to_string);
            g.member_id = Some(r.member_id.to_string());
            answer(g, &RequestKind::JoinGroup(r))
        }
        // Another process took this instance id over.
        RequestKind::Heartbeat(r)
            if r.group_instance_id.is_some()
                && g.member_id.as_deref() != Some(r.member_id.as_str()) =>
        {
            reply(ResponseKind::Heartbeat(
                HeartbeatResponse::default()
                    .with_error_code(ResponseError::FencedInstanceId.code()),
            ))
        }
        RequestKind::JoinGroup(r) if r.member_id.is_empty() => {
            // KIP-394: the first JoinGroup only hands out the member id.
            let id = format!("m-{}", g.joins.len() + 1);
            g.member_id = Some(id.clone());
            reply(ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(ResponseError::MemberIdRequired.code())
                    .with_member_id(StrBytes::from_string(id)),
            ))
        }
        RequestKind::JoinGroup(r) => {
            g.generation += 1;
            g.joins.push(g.generation);
            let id = r.member_id.clone();
            reply(ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_generation_id(g.generation)
                    .with_protocol_name(Some(StrBytes::from_static_str(g.protocol)))
                    .with_leader(id.clone())
                    .with_member_id(id.clone())
                    .with_members(vec![
                        JoinGroupResponseMember::default()
                            .with_member_id(id)
                            .with_metadata(r.protocols[0].metadata.clone()),
                    ]),
            ))
        }
        RequestKind::Metadata(_) => reply(ResponseKind::Metadata(
            MetadataResponse::default().with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("in"))))
                    .with_partitions(
                        (0..3)
                            .map(|p| MetadataResponsePartition::default().with_partition_index(p))
                            .collect(),
                    ),
            ]),
        )),
        RequestKind::SyncGroup(r) => {
            let computed = r
                .assignments
                .iter()
                .find(|a| a.member_id == r.member_id)
                .map(|a| a.assignment.clone());
            // A stable group hands out the assignment it holds.
            let mine = computed
                .or_else(|| g.assignment.clone())
                .unwrap_or_default();
            g.assignment = Some(mine.clone());
            reply(ResponseKind::SyncGroup(
                SyncGroupResponse::default().with_assignment(mine),
            ))
        }
        RequestKind::Heartbeat(_) => match g.heartbeat {
            Answer::Hang => Reply::Hang,
            Answer::Ok => reply(ResponseKind::Heartbeat(HeartbeatResponse::default())),
            Answer::Error(e) => reply(ResponseKind::Heartbeat(
                HeartbeatResponse::default().with_error_code(e.code()),
            )),
        },
        RequestKind::OffsetCommit(r) => {
            g.commits.push(r.generation_id_or_member_epoch);
            let code = match g.commit {
                Answer::Hang => return Reply::Hang,
                Answer::Ok => 0,
                Answer::Error(e) => e.code(),
            };
            reply(ResponseKind::OffsetCommit(
                OffsetCommitResponse::default().with_topics(
                    r.topics
                        .iter()
                        .map(|t| {
                            OffsetCommitResponseTopic::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            OffsetCommitResponsePartition::default()
                                                .with_partition_index(p.partition_index)
                                                .with_error_code(code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            ))
        }
        RequestKind::LeaveGroup(_) => {
            reply(ResponseKind::LeaveGroup(LeaveGroupResponse::default()))
        }
        other => panic!("not a group request: {other:?}"),
    }
}

fn config() -> MembershipConfig {
    MembershipConfig {
        session_timeout: SESSION,
        heartbeat_interval: HEARTBEAT,
        rebalance_timeout: Duration::from_secs(30),
        ..MembershipConfig::new("g", vec!["in".to_owned()])
    }
}

async fn join(broker: &FakeBroker) -> (Membership, Generation) {
    Membership::join(&broker.connection(TIMEOUT), config())
        .await
        .unwrap()
}

fn positions() -> Vec<(TopicPartition, i64)> {
    vec![(TopicPartition::new("in", 0), 10)]
}

#[tokio::test(start_paused = true)]
async fn a_member_alone_is_given_every_partition_and_keeps_its_lease() {
    let (broker, group) = coordinator();
    let started = Instant::now();
    let (membership, first) = join(&broker).await;
    // MEMBER_ID_REQUIRED is answered at once, not after a retry's backoff
    // (the paused clock moves only for timers).
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(broker.count(ApiKey::JoinGroup), 2);
    assert_eq!(first.generation, 1);
    assert_eq!(first.member_id, "m-1");
    assert_eq!(first.partitions.len(), 3);
    let link = membership.link(&first);
    // Heartbeats keep the lease on, well past a session.
    tokio::time::sleep(SESSION * 3).await;
    assert!(link.valid());
    assert!(group.lock().unwrap().joins == [1]);
    membership.leave().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_fenced_generation_ends_at_once_and_the_member_rejoins() {
    let (broker, group) = coordinator();
    let (mut membership, first) = join(&broker).await;
    let link = membership.link(&first);
    group.lock().unwrap().heartbeat = Answer::Error(ResponseError::IllegalGeneration);
    let standing = tokio::time::timeout(HEARTBEAT * 3, membership.ended())
        .await
        .expect("the next heartbeat ends the generation")
        .unwrap();
    assert_eq!(standing, Standing::Fenced);
    assert!(!link.valid(), "a fenced member holds nothing");
    group.lock().unwrap().heartbeat = Answer::Ok;
    let next = membership.released().await.unwrap();
    assert_eq!(next.generation, 2);
    assert_eq!(next.member_id, "m-2", "it starts over with a new id");
    assert!(membership.link(&next).valid());
    membership.leave().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_rebalance_during_a_checkpoint_commits_under_the_old_generation_first() {
    let (broker, group) = coordinator();
    let (mut membership, first) = join(&broker).await;
    let link = membership.link(&first);
    group.lock().unwrap().heartbeat = Answer::Error(ResponseError::RebalanceInProgress);
    let standing = membership.ended().await.unwrap();
    assert_eq!(standing, Standing::Rebalance);
    // The job finishes with its partitions: they are still its own until
    // it rejoins, and its checkpoint goes to the group under generation 1.
    assert!(link.valid());
    link.mirror(positions().iter().map(|(tp, o)| (tp, o)));
    group.lock().unwrap().heartbeat = Answer::Ok;
    let next = membership.released().await.unwrap();
    assert_eq!(next.generation, 2);
    {
        let g = group.lock().unwrap();
        assert_eq!(
            g.commits,
            [1],
            "the checkpoint's commit, under its generation"
        );
        assert_eq!(g.joins, [1, 2]);
    }
    let seen = broker.seen();
    let committed = seen.iter().position(|k| *k == ApiKey::OffsetCommit);
    let rejoined = seen.iter().rposition(|k| *k == ApiKey::JoinGroup);
    assert!(
        committed.unwrap() < rejoined.unwrap(),
        "committed before rejoining: {seen:?}"
    );
    membership.leave().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_lease_lapses_when_the_coordinator_is_out_of_reach_and_the_member_rejoins() {
    let (broker, group) = coordinator();
    let (mut membership, first) = join(&broker).await;
    let link = membership.link(&first);
    let cut = Instant::now();
    // The coordinator stops answering (a freeze on either side, or a
    // half-open connection): no heartbeat confirms the lease any more.
    group.lock().unwrap().heartbeat = Answer::Hang;
    tokio::time::sleep(SESSION - HEARTBEAT / 2).await;
    assert!(!link.valid(), "the lease ends before the session could");
    // Meanwhile the coordinator expired the session: once it answers
    // again, it does not know the member.
    group.lock().unwrap().heartbeat = Answer::Error(ResponseError::UnknownMemberId);
    let standing = tokio::time::timeout(SESSION * 2, membership.ended())
        .await
        .expect("a heartbeat that is never answered is given up by the deadline")
        .unwrap();
    assert_eq!(standing, Standing::Fenced);
    assert!(cut.elapsed() < SESSION + TIMEOUT * 2, "{:?}", cut.elapsed());
    group.lock().unwrap().heartbeat = Answer::Ok;
    let next = membership.released().await.unwrap();
    assert_eq!(next.generation, 2);
    assert!(membership.link(&next).valid());
    membership.leave().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_commit_refused_for_a_past_generation_fences_the_member() {
    let (broker, group) = coordinator();
    let (mut membership, first) = join(&broker).await;
    let link = membership.link(&first);
    group.lock().unwrap().commit = Answer::Error(ResponseError::IllegalGeneration);
    link.mirror(positions().iter().map(|(tp, o)| (tp, o)));
    let standing = tokio::time::timeout(HEARTBEAT, membership.ended())
        .await
        .expect("the refused commit ends the generation")
        .unwrap();
    assert_eq!(standing, Standing::Fenced);
    assert!(!link.valid());
    assert_eq!(group.lock().unwrap().commits, [1]);
    membership.leave().await.unwrap();
}

fn static_config() -> MembershipConfig {
    config().with_instance_id("a")
}

#[tokio::test(start_paused = true)]
async fn a_static_member_sends_its_instance_id_with_every_request_and_closes_without_leaving() {
    let (broker, group) = coordinator();
    let connection = broker.connection(TIMEOUT);
    let (membership, first) = Membership::join(&connection, static_config())
        .await
        .unwrap();
    assert_eq!(first.partitions.len(), 3);
    membership
        .link(&first)
        .mirror(positions().iter().map(|(tp, o)| (tp, o)));
    tokio::time::sleep(HEARTBEAT * 2).await;
    membership.close().await.unwrap();
    assert_eq!(broker.count(ApiKey::LeaveGroup), 0, "a static member stays");
    let sent = group.lock().unwrap().sent.clone();
    for api in [
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::OffsetCommit,
    ] {
        let ids: Vec<_> = sent.iter().filter(|(k, _)| *k == api).collect();
        assert!(!ids.is_empty(), "{api:?} sent: {sent:?}");
        assert!(
            ids.iter().all(|(_, id)| id.as_deref() == Some("a")),
            "{api:?}: {sent:?}"
        );
    }
    // KIP-345: no MEMBER_ID_REQUIRED round for a static member.
    assert_eq!(broker.count(ApiKey::JoinGroup), 1);

    // Leaving on purpose names the instance too.
    let (membership, _) = Membership::join(&connection, static_config())
        .await
        .unwrap();
    membership.leave().await.unwrap();
    let sent = group.lock().unwrap().sent.clone();
    assert_eq!(
        sent.last(),
        Some(&(ApiKey::LeaveGroup, Some("a".to_owned())))
    );
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_member_sends_no_instance_id_and_leaves_when_it_closes() {
    let (broker, group) = coordinator();
    let (membership, _) = join(&broker).await;
    membership.close().await.unwrap();
    assert_eq!(broker.count(ApiKey::LeaveGroup), 1);
    assert!(
        group
            .lock()
            .unwrap()
            .sent
            .iter()
            .all(|(_, id)| id.is_none())
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_static_leader_takes_its_partitions_back_without_assigning_again() {
    let (broker, group) = coordinator();
    let connection = broker.connection(TIMEOUT);
    let (membership, first) = Membership::join(&connection, static_config())
        .await
        .unwrap();
    // The process dies: no LeaveGroup, the coordinator keeps the member.
    drop(membership);
    tokio::task::yield_now().await;
    assert_eq!(
        broker.count(ApiKey::Metadata),
        1,
        "the first leader assigned"
    );

    let (membership, again) = Membership::join(&connection, static_config())
        .await
        .unwrap();
    assert_eq!(again.generation, first.generation, "no rebalance");
    assert_eq!(again.partitions, first.partitions);
    assert_ne!(again.member_id, first.member_id);
    assert_eq!(group.lock().unwrap().joins, [1], "no new generation");
    // skip_assignment: no metadata asked, no assignment sent.
    assert_eq!(broker.count(ApiKey::Metadata), 1, "{:?}", broker.seen());
    let sent = group.lock().unwrap().sent.clone();
    assert_eq!(
        sent.iter().filter(|(k, _)| *k == ApiKey::SyncGroup).count(),
        2
    );
    assert!(membership.link(&again).valid());
    tokio::time::sleep(SESSION * 2).await;
    assert!(
        membership.link(&again).valid(),
        "it heartbeats as the member"
    );
    membership.close().await.unwrap();
    assert_eq!(broker.count(ApiKey::LeaveGroup), 0);
}

#[tokio::test(start_paused = true)]
async fn a_second_process_with_the_instance_id_fences_the_first_which_stops() {
    let (broker, _group) = coordinator();
    let connection = broker.connection(TIMEOUT);
    let (mut first, generation) = Membership::join(&connection, static_config())
        .await
        .unwrap();
    let link = first.link(&generation);
    let (second, _) = Membership::join(&connection, static_config())
        .await
        .unwrap();
    let joins = broker.count(ApiKey::JoinGroup);
    let error = tokio::time::timeout(HEARTBEAT * 2, first.ended())
        .await
        .expect("the next heartbeat is refused")
        .expect_err("fenced for good, not a rebalance");
    assert!(
        matches!(&error, super::MembershipError::FencedInstance { group, instance_id, api: "Heartbeat" }
            if group == "g" && instance_id == "a"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("\"g\"") && message.contains("\"a\"") && !message.contains('\n'),
        "{message}"
    );
    assert!(!link.valid(), "the fenced process holds nothing");
    tokio::time::sleep(SESSION).await;
    assert_eq!(broker.count(ApiKey::JoinGroup), joins, "it does not rejoin");
    first.close().await.unwrap();
    second.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_join_refused_with_fenced_instance_id_fails_at_once() {
    let (broker, group) = coordinator();
    group.lock().unwrap().join_error = Some(ResponseError::FencedInstanceId);
    let error = Membership::join(&broker.connection(TIMEOUT), static_config())
        .await
        .expect_err("fenced");
    assert!(
        matches!(
            error,
            super::MembershipError::FencedInstance {
                api: "JoinGroup",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(broker.count(ApiKey::JoinGroup), 1, "not tried again");
}

#[path = "cooperative_tests.rs"]
mod cooperative;

#[path = "consumer_tests.rs"]
mod consumer_protocol;
