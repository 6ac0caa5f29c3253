//! A member stopped while it waits to join, on the shared node: member A
//! holds the group and is frozen (SIGSTOP), so the coordinator holds B's
//! join for it; B, sent SIGTERM meanwhile, ends with a summary and exit 0
//! and leaves the group, so that A, thawed, is the whole group at its next
//! join (a member that never left would be handed half the partitions,
//! and the rebalance would wait for it again).

use super::{PARTITIONS, start, wait};
use crate::common::{self, Cluster, random_topic};

/// The number in `partitions=N` of each `joined` line in `log`, in order.
fn joins(log: &str) -> Vec<usize> {
    log.lines()
        .filter(|l| l.contains(" joined "))
        .filter_map(|l| {
            let field = l.split(' ').find(|f| f.starts_with("partitions="))?;
            field["partitions=".len()..].parse().ok()
        })
        .collect()
}

#[test]
fn a_member_stopped_while_it_waits_to_join_leaves_the_group_with_a_summary() {
    let cluster = Cluster::shared();
    let input = random_topic("join-wait-in");
    let group = random_topic("join-wait-group");
    cluster.create_topic(&input, PARTITIONS as u32);
    let dir = tempfile::tempdir().unwrap();
    // A long session: the frozen A stays a member, and the group waits
    // for it to rejoin.
    let args = [
        "consume",
        "-t",
        &input,
        "-g",
        &group,
        "--session-timeout",
        "60s",
        "--heartbeat-interval",
        "500ms",
        "--max-poll-interval",
        "60s",
    ];
    let a = start(dir.path(), &cluster, "a", &args);
    wait(dir.path(), "A joined", || joins(&a.stderr()).len() == 1);
    a.signal(libc::SIGSTOP);

    let mut b = start(dir.path(), &cluster, "b", &args);
    wait(dir.path(), "B waiting to join", || {
        b.stderr().contains("joining the group")
    });
    b.signal(libc::SIGTERM);
    let status = common::wait_exit(&mut b.child, "b");
    let log = b.stderr();
    assert!(status.success(), "{status}\n{log}");
    assert!(log.contains("left the group"), "{log}");
    assert!(log.contains("consumed 0 records"), "no summary:\n{log}");
    assert!(joins(&log).is_empty(), "{log}");

    a.signal(libc::SIGCONT);
    wait(dir.path(), "A rejoined", || joins(&a.stderr()).len() == 2);
    assert_eq!(
        joins(&a.stderr())[1],
        PARTITIONS as usize,
        "A was not alone in the group:\n{}",
        a.stderr()
    );
    a.stop();
}
