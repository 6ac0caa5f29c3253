//! Cooperative rebalances (KIP-429) against the scripted coordinator: a
//! rebalance that moves nothing never reaches the job, a join held longer
//! than the lease keeps it, and a group that switches to an eager
//! assignor takes the partitions away at once.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_cooperative_rebalance_that_moves_nothing_never_ends_the_jobs_generation() {
    let (broker, group) = coordinator();
    group.lock().unwrap().protocol = "cooperative-sticky";
    let (mut membership, first) = join(&broker).await;
    let link = membership.link(&first);
    group.lock().unwrap().heartbeat = Answer::Error(ResponseError::RebalanceInProgress);
    // The member rejoins on its own, owning its partitions...
    while group.lock().unwrap().joins.len() < 2 {
        tokio::time::sleep(HEARTBEAT / 4).await;
    }
    group.lock().unwrap().heartbeat = Answer::Ok;
    // ...and the job, whose partitions stay the same, is never told.
    let ended = tokio::time::timeout(HEARTBEAT * 5, membership.ended()).await;
    assert!(ended.is_err(), "{ended:?}");
    assert!(link.valid());
    // Its transactions name the new generation.
    assert_eq!(link.generation().unwrap().generation, 2);
    membership.leave().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_switch_to_an_eager_assignor_gives_the_partitions_up_until_the_member_rejoined() {
    let (broker, group) = coordinator();
    group.lock().unwrap().protocol = "cooperative-sticky";
    let (mut membership, first) = join(&broker).await;
    let link = membership.link(&first);
    {
        let mut g = group.lock().unwrap();
        g.protocol = "range";
        g.heartbeat = Answer::Error(ResponseError::RebalanceInProgress);
    }
    while group.lock().unwrap().joins.len() < 2 {
        tokio::time::sleep(HEARTBEAT / 4).await;
    }
    group.lock().unwrap().heartbeat = Answer::Ok;
    // The eager generation may have handed them to another member: the
    // lease is gone, and heartbeats answered do not bring it back.
    tokio::time::sleep(HEARTBEAT * 3).await;
    assert!(!link.valid());
    // The job stopped (its lease lapsed) and releases: the member joins
    // again, eagerly, and holds its partitions again.
    let next = tokio::time::timeout(HEARTBEAT * 3, membership.released())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.partitions.len(), 3);
    assert!(membership.link(&next).valid());
    membership.leave().await.unwrap();
}

/// The coordinator holds the join longer than the lease (the other members
/// are slow to rejoin) and then the follower's SyncGroup: the member, whose
/// job reads on meanwhile, keeps its lease all along, since a member
/// awaiting a join is not expired and the sessions restart when the join
/// and the sync complete. (Its lease ran from the JoinGroup's sending
/// once, and lapsed while the SyncGroup was on its way.)
#[tokio::test(start_paused = true)]
async fn a_join_held_longer_than_the_lease_keeps_it() {
    let (broker, group) = coordinator();
    group.lock().unwrap().protocol = "cooperative-sticky";
    let (mut membership, first) = join(&broker).await;
    let link = membership.link(&first);
    {
        let mut g = group.lock().unwrap();
        g.held = Some((SESSION * 2, HEARTBEAT * 3));
        g.heartbeat = Answer::Error(ResponseError::RebalanceInProgress);
    }
    while group.lock().unwrap().joins.len() < 2 {
        tokio::time::sleep(HEARTBEAT / 4).await;
    }
    group.lock().unwrap().heartbeat = Answer::Ok;
    // Through the held join, the sync, and after.
    let until = Instant::now() + SESSION * 2 + HEARTBEAT * 6;
    while Instant::now() < until {
        assert!(
            link.valid(),
            "the lease lapsed at {:?}",
            until - Instant::now()
        );
        tokio::time::sleep(HEARTBEAT / 4).await;
    }
    let ended = tokio::time::timeout(HEARTBEAT, membership.ended()).await;
    assert!(ended.is_err(), "{ended:?}");
    membership.leave().await.unwrap();
}
