//! Static membership (`--group-instance-id`, KIP-345) on the shared node:
//! three `weir count -g` members, one SIGKILLed and restarted with its
//! id, which takes its partitions back in the running generation (the
//! others never rejoin, which they would with dynamic membership), and
//! counts nothing twice; then a second process with a member's id
//! fences that member, which exits 1 naming the group and the id.

use std::collections::BTreeMap;

use super::{Member, PARTITIONS, balanced, chrono_ms, start, wait};
use crate::common::{self, Cluster, random_topic};

/// The generation of each `joined` line in `member`'s log, in order.
fn generations(member: &Member) -> Vec<i32> {
    member
        .stderr()
        .lines()
        .filter(|l| l.contains(" joined "))
        .filter_map(|l| {
            let field = l.split(' ').find(|f| f.starts_with("generation="))?;
            field["generation=".len()..].parse().ok()
        })
        .collect()
}

/// Every member's last generation, when each has joined once at least.
fn last_generations(members: &[&Member]) -> Option<Vec<i32>> {
    members
        .iter()
        .map(|m| generations(m).last().copied())
        .collect()
}

#[test]
fn a_static_member_restarted_with_its_id_resumes_without_a_rebalance() {
    let cluster = Cluster::shared();
    let input = random_topic("static-in");
    let output = random_topic("static-out");
    let group = random_topic("static-group");
    cluster.create_topic(&input, PARTITIONS as u32);
    let dir = tempfile::tempdir().unwrap();
    let lines = |from: usize| (from..from + 3000).map(|n| format!("svc{}:{n}", n * 7 % 40));
    cluster.fill(&input, common::KEYED, lines(0));
    let args = |id: &'static str| -> Vec<String> {
        [
            "count",
            "-t",
            &input,
            "-g",
            &group,
            "--group-instance-id",
            id,
            "--by",
            "key",
            "--window",
            "1m",
            "--to-topic",
            &output,
            "--no-stdout",
            // Long enough that the restart must be what brings the
            // member back, not the session's end and a rebalance.
            "--session-timeout",
            "30s",
            "--heartbeat-interval",
            "500ms",
            "--commit-interval",
            "300ms",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let member = |name: &str, id: &'static str| {
        let args = args(id);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        start(dir.path(), &cluster, name, &args)
    };
    let a = member("a", "a");
    let b = member("b", "b");
    let c = member("c", "c");
    wait(dir.path(), "three members, evenly", || {
        balanced(&cluster, &group, 3, PARTITIONS as usize)
    });
    // Counted by the record key, which places the records: no second
    // stage, no internal topic.
    wait(dir.path(), "the one-stage path in the log", || {
        a.stderr().contains("one stage")
    });
    wait(dir.path(), "the three in one generation", || {
        last_generations(&[&a, &b, &c]).is_some_and(|g| g.iter().all(|&x| x == g[0]))
    });
    wait(dir.path(), "the first records committed", || {
        cluster.committed_total("__weir_offsets", &group) == cluster.topic_end(&input)
    });
    let stable = generations(&b).last().copied().unwrap();
    let joins_before = (generations(&b).len(), generations(&c).len());

    // A crashes and comes back with its id while the input grows.
    a.signal(libc::SIGKILL);
    drop(a);
    cluster.fill(&input, common::KEYED, lines(3000));
    let a = member("a-restarted", "a");
    let end = cluster.topic_end(&input);
    wait(dir.path(), "every record committed", || {
        cluster.committed_total("__weir_offsets", &group) == end
    });
    assert_eq!(
        generations(&a),
        [stable],
        "the restarted member joined the running generation:\n{}",
        a.stderr()
    );
    assert_eq!(
        (generations(&b).len(), generations(&c).len()),
        joins_before,
        "the others never rejoined:\n{}\n{}",
        b.stderr(),
        c.stderr()
    );
    assert!(
        balanced(&cluster, &group, 3, PARTITIONS as usize),
        "three members still"
    );

    // A second process with C's id takes C's place; C stops, naming why.
    let mut c = c;
    let twin = member("c-twin", "c");
    let status = common::wait_exit(&mut c.child, "c, fenced");
    let log = c.stderr();
    assert_eq!(status.code(), Some(1), "{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("group \"{group}\""))
            && last.contains("group instance id \"c\"")
            && last.contains("FENCED_INSTANCE_ID"),
        "{log}"
    );
    assert_eq!(generations(&twin), [stable], "{}", twin.stderr());
    // More input, committed by every member: the twin reads C's
    // partitions (a stop while it still started would end it before it
    // held any window to emit).
    cluster.fill(&input, common::KEYED, lines(6000));
    let end = cluster.topic_end(&input);
    wait(dir.path(), "every record committed, the twin's too", || {
        cluster.committed_total("__weir_offsets", &group) == end
    });

    // A stop leaves nothing out: the static members stop without leaving.
    for m in [a, b, twin] {
        m.stop();
    }

    // Nothing counted twice: the last row per (window, key) equals a
    // reference counted from the input.
    let mut reference: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for records in cluster.read_all(&input, PARTITIONS).values() {
        for r in records {
            let key = String::from_utf8(r.record.key.clone().unwrap()).unwrap();
            let ts = r.record.timestamp.timestamp_millis();
            *reference
                .entry((ts - ts.rem_euclid(60_000), key))
                .or_default() += 1;
        }
    }
    let out_partitions = cluster.high_watermarks(&output).len() as i32;
    let mut last: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for records in cluster.read_all(&output, out_partitions).values() {
        for r in records {
            let row: serde_json::Value =
                serde_json::from_slice(r.record.value.as_ref().unwrap()).unwrap();
            let start = chrono_ms(row["window_start"].as_str().unwrap());
            let key = row["key"].as_str().unwrap().to_owned();
            last.insert((start, key), row["count"].as_u64().unwrap());
        }
    }
    assert_eq!(last, reference, "final counts per (window, key)");
}

/// Static membership on the consumer protocol (KIP-848): a static member
/// stopped with SIGTERM leaves with epoch -2, which keeps its assignment
/// for it; restarted with its id, it reads exactly the partitions it had,
/// and the other member's assignment never changes. (After a crash the
/// coordinator holds the id until the old session ends,
/// UNRELEASED_INSTANCE_ID, which the restarted member waits out.)
#[test]
fn a_static_member_on_the_consumer_protocol_restarted_takes_its_partitions_back() {
    let cluster = Cluster::shared();
    let topic = random_topic("static848-in");
    let group = random_topic("static848-group");
    cluster.create_topic(&topic, PARTITIONS as u32);
    let dir = tempfile::tempdir().unwrap();
    let member = |name: &str, id: &str| {
        let args = [
            "consume",
            "-t",
            &topic,
            "-g",
            &group,
            "--group-protocol",
            "consumer",
            "--group-instance-id",
            id,
            "--commit-interval",
            "200ms",
            "-f",
            "{partition} {value}\\n",
        ];
        start(dir.path(), &cluster, name, &args)
    };
    // The partitions a member printed records of, from line `from` on.
    let partitions = |m: &Member, from: usize| -> std::collections::BTreeSet<i32> {
        std::fs::read_to_string(&m.out)
            .unwrap_or_default()
            .lines()
            .skip(from)
            .filter_map(|l| l.split(' ').next()?.parse().ok())
            .collect()
    };
    let lines = |m: &Member| {
        std::fs::read_to_string(&m.out)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let a = member("a", "a");
    let b = member("b", "b");
    wait(dir.path(), "two members, evenly", || {
        balanced(&cluster, &group, 2, PARTITIONS as usize)
    });
    let fill = |from: usize| {
        let records = (from..from + 600).map(|n| format!("k{n}:v{n}"));
        cluster.fill(&topic, common::KEYED, records);
    };
    fill(0);
    wait(dir.path(), "the first records read", || {
        lines(&a) + lines(&b) >= 600
    });
    let held = partitions(&a, 0);
    assert_eq!(held.len(), PARTITIONS as usize / 2, "{held:?}");
    let changes = |m: &Member| m.stderr().matches("assignment changed").count();
    let b_changes = changes(&b);

    let b_before = lines(&b);
    a.stop();
    let a = member("a-restarted", "a");
    fill(600);
    wait(dir.path(), "the new records read", || {
        lines(&a) + lines(&b) - b_before >= 600
    });
    assert_eq!(partitions(&a, 0), held, "{}", a.stderr());
    assert_eq!(
        changes(&b),
        b_changes,
        "b's assignment changed:\n{}",
        b.stderr()
    );
    assert!(
        balanced(&cluster, &group, 2, PARTITIONS as usize),
        "two members still"
    );
    b.stop();
    a.stop();
}
