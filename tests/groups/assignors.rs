//! Groups weir shares with the consumers people already run, on the
//! shared node: a `weir consume -g` member with a default Java console
//! consumer (which offers `range, cooperative-sticky`) and with a default
//! confluent-kafka (librdkafka) consumer (`range, roundrobin`) both get
//! partitions and read every record once between them; weir members
//! rebalance cooperatively (a member whose partitions did not move never
//! stops reading them, one that gave some up keeps the rest); and a group
//! whose members offer nothing weir offers is refused with a message that
//! names both sides.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Member, members, start, wait};
use crate::common::{self, Cluster, random_topic};

const PARTITIONS: u32 = 6;
const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";

/// Member `name` run by `cmd`, its output in files under `dir`.
fn spawn(dir: &Path, name: &str, cmd: &mut Command) -> Member {
    let out = dir.join(format!("{name}.out"));
    let err = dir.join(format!("{name}.err"));
    let child = cmd
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Member {
        name: name.to_owned(),
        child,
        out,
        err,
    }
}

/// A Java console consumer in `group` (its defaults, plus `extra`).
fn java(dir: &Path, cluster: &Cluster, topic: &str, group: &str, extra: &[&str]) -> Member {
    java_named(dir, cluster, topic, group, extra, "java")
}

/// As [`java`], its files named `name`.
pub(super) fn java_named(
    dir: &Path,
    cluster: &Cluster,
    topic: &str,
    group: &str,
    extra: &[&str],
    name: &str,
) -> Member {
    let mut cmd = Command::new(common::kafka_script());
    cmd.args(["tool", CONSOLE_CONSUMER, "--bootstrap-server"])
        .args([cluster.address(), "--topic", topic, "--group", group])
        .arg("--from-beginning")
        .args(extra);
    spawn(dir, name, &mut cmd)
}

/// A confluent-kafka consumer on its defaults (`tests/py/group_member.py`).
fn librdkafka(dir: &Path, cluster: &Cluster, topic: &str, group: &str) -> Member {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/group_member.py");
    let mut cmd = Command::new(common::python());
    cmd.arg(script).args([cluster.address(), topic, group]);
    spawn(dir, "librdkafka", &mut cmd)
}

/// A `weir consume -g` member, with `extra` flags.
fn weir_member(
    dir: &Path,
    cluster: &Cluster,
    name: &str,
    topic: &str,
    group: &str,
    extra: &[&str],
) -> Member {
    // The consumer protocol's timings are the broker's.
    let classic = match extra.contains(&"consumer") {
        true => &[][..],
        false => &["--heartbeat-interval", "500ms", "--session-timeout", "10s"][..],
    };
    let args = [
        &[
            "consume",
            "-t",
            topic,
            "-g",
            group,
            "--commit-interval",
            "200ms",
        ][..],
        classic,
        extra,
    ]
    .concat();
    start(dir, cluster, name, &args)
}

/// The records' values a member printed.
fn values(member: &Member) -> Vec<String> {
    std::fs::read_to_string(&member.out)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('v'))
        .map(str::to_owned)
        .collect()
}

fn records(from: usize, to: usize) -> impl Iterator<Item = String> {
    (from..to).map(|n| format!("k{n}:v{n}"))
}

/// Every value of `0..n` exactly once over `members`, and each member
/// read some.
fn read_once(members: &[&Member], n: usize) {
    let mut seen = BTreeSet::new();
    for m in members {
        let values = values(m);
        assert!(!values.is_empty(), "{} read nothing", m.name);
        for v in values {
            assert!(seen.insert(v.clone()), "{v} read twice");
        }
    }
    let all: BTreeSet<String> = (0..n).map(|n| format!("v{n}")).collect();
    assert_eq!(seen, all);
}

/// The assignor of `member`'s last `joined` line.
fn assignor(member: &Member) -> Option<String> {
    let log = member.stderr();
    let line = log.lines().rfind(|l| l.contains(" joined "))?;
    let field = line.split(' ').find(|f| f.starts_with("assignor="))?;
    Some(field["assignor=".len()..].to_owned())
}

/// weir and `other` (started first) in one group: both get partitions,
/// and the records produced once the group is stable are read once
/// between them.
fn shares_a_group_with(
    other: impl FnOnce(&Path, &Cluster, &str, &str) -> Member,
) -> Option<String> {
    shares_a_group_as(other, &[])
}

/// [`shares_a_group_with`], weir with `weir_flags`.
fn shares_a_group_as(
    other: impl FnOnce(&Path, &Cluster, &str, &str) -> Member,
    weir_flags: &[&str],
) -> Option<String> {
    let cluster = Cluster::shared();
    let topic = random_topic("assignors-in");
    let group = random_topic("assignors-group");
    cluster.create_topic(&topic, PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let other = other(dir.path(), &cluster, &topic, &group);
    wait(dir.path(), "the other client alone in the group", || {
        members(&cluster, &group) == [PARTITIONS as usize]
    });
    let w = weir_member(dir.path(), &cluster, "weir", &topic, &group, weir_flags);
    wait(dir.path(), "both members holding partitions", || {
        let m = members(&cluster, &group);
        m.len() == 2 && m.iter().all(|&n| n > 0) && m.iter().sum::<usize>() == 6
    });
    let n = 600;
    cluster.fill(&topic, common::KEYED, records(0, n));
    wait(dir.path(), "every record read", || {
        values(&other).len() + values(&w).len() >= n
    });
    let chosen = assignor(&w);
    let log = w.stderr();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(!other.stderr().contains("rror"), "{}", other.stderr());
    read_once(&[&other, &w], n);
    println!(
        "{}: the group chose {chosen:?}; weir read {}, {} read {}",
        other.name,
        values(&w).len(),
        other.name,
        values(&other).len()
    );
    w.stop();
    chosen
}

/// KIP-848: weir on the consumer protocol and a Java consumer on it
/// (`group.protocol=consumer`) in one group: the broker assigns both some
/// partitions, and every record is read once between them.
#[test]
fn a_weir_member_shares_a_consumer_protocol_group_with_a_java_consumer() {
    shares_a_group_as(
        |dir, cluster, topic, group| {
            java(
                dir,
                cluster,
                topic,
                group,
                &["--consumer-property", "group.protocol=consumer"],
            )
        },
        &["--group-protocol", "consumer"],
    );
}

#[test]
fn a_weir_member_shares_a_group_with_a_default_java_consumer() {
    let chosen =
        shares_a_group_with(|dir, cluster, topic, group| java(dir, cluster, topic, group, &[]));
    // Java offers range then cooperative-sticky; weir's first of those
    // is range too, so the vote is unanimous.
    assert_eq!(chosen.as_deref(), Some("range"));
}

#[test]
fn a_weir_member_shares_a_group_with_a_default_librdkafka_consumer() {
    let chosen = shares_a_group_with(librdkafka);
    assert_eq!(chosen.as_deref(), Some("range"));
}

#[test]
fn a_weir_member_shares_a_group_with_an_older_one_offering_only_sticky() {
    let chosen = shares_a_group_with(|dir, cluster, topic, group| {
        weir_member(
            dir,
            cluster,
            "older",
            topic,
            group,
            &["--assignor", "sticky"],
        )
    });
    assert_eq!(chosen.as_deref(), Some("sticky"));
}

/// The `cooperative rebalance` lines of `member`'s log.
fn rebalances(member: &Member) -> Vec<String> {
    member
        .stderr()
        .lines()
        .filter(|l| l.contains("cooperative rebalance"))
        .map(str::to_owned)
        .collect()
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    line.split(' ')
        .find_map(|f| f.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[test]
fn weir_members_rebalance_cooperatively_and_unmoved_partitions_keep_flowing() {
    let cluster = Cluster::shared();
    let topic = random_topic("coop-in");
    let group = random_topic("coop-group");
    cluster.create_topic(&topic, 4);
    let dir = tempfile::tempdir().unwrap();
    let coop = ["--assignor", "cooperative-sticky"];
    let a = weir_member(dir.path(), &cluster, "a", &topic, &group, &coop);
    wait(dir.path(), "a alone", || members(&cluster, &group) == [4]);
    cluster.fill(&topic, common::KEYED, records(0, 400));

    // b joins: a gives up two and reads on with the other two, never
    // stopped; b gets the two in the follow-up rebalance.
    let b = weir_member(dir.path(), &cluster, "b", &topic, &group, &coop);
    wait(dir.path(), "a and b, two each", || {
        members(&cluster, &group) == [2, 2]
    });
    let changed = rebalances(&a);
    let first = changed
        .iter()
        .find(|l| l.contains("assignment changed"))
        .unwrap_or_else(|| panic!("{}", a.stderr()));
    assert_eq!(field(first, "kept"), "2", "{first}");
    assert_eq!(field(first, "revoked").split(',').count(), 2, "{first}");
    assert_eq!(field(first, "gained"), "none", "{first}");
    let handed = |m: &Member| m.stderr().matches("partitions handed back").count();
    assert_eq!(handed(&a), 0, "a stopped its run\n{}", a.stderr());

    // c joins: one of a and b keeps both of its partitions (it only logs
    // that it reads on); the other gives one up; neither stops its run.
    let changes = |m: &Member| {
        rebalances(m)
            .iter()
            .filter(|l| l.contains("assignment changed"))
            .count()
    };
    let before = [handed(&a), handed(&b)];
    let changed_before = [changes(&a), changes(&b)];
    let c = weir_member(dir.path(), &cluster, "c", &topic, &group, &coop);
    wait(dir.path(), "three members", || {
        let mut m = members(&cluster, &group);
        m.sort();
        m == [1, 1, 2]
    });
    cluster.fill(&topic, common::KEYED, records(400, 800));
    wait(dir.path(), "every record read", || {
        values(&a).len() + values(&b).len() + values(&c).len() >= 800
    });
    let after = [handed(&a), handed(&b)];
    assert_eq!(
        before,
        after,
        "a run stopped\n--- a\n{}\n--- b\n{}",
        a.stderr(),
        b.stderr()
    );
    let unchanged: Vec<usize> = (0..2)
        .filter(|&i| {
            let m = [&a, &b][i];
            changes(m) == changed_before[i]
                && rebalances(m)
                    .iter()
                    .any(|l| l.contains("assignment unchanged"))
        })
        .collect();
    assert_eq!(
        unchanged.len(),
        1,
        "one of a and b keeps its two without stopping\n--- a\n{}\n--- b\n{}",
        a.stderr(),
        b.stderr()
    );
    for m in [&a, &b, &c] {
        assert_eq!(assignor(m).as_deref(), Some("cooperative-sticky"));
    }
    read_once(&[&a, &b, &c], 800);
    for m in [&a, &b, &c] {
        println!("{}: {:#?}", m.name, rebalances(m));
    }
    for m in [c, b, a] {
        m.stop();
    }
}

/// KIP-848: three weir members and a Java consumer on the consumer
/// protocol in one group, while a weir member joins and another leaves:
/// the member that holds partitions throughout never stops its run (its
/// partitions that do not move keep arriving; `rebalance_gap` measures
/// the pauses), and every record is read once across the members.
#[test]
fn consumer_protocol_members_and_a_java_consumer_hand_over_without_stopping() {
    let cluster = Cluster::shared();
    let topic = random_topic("kip848-in");
    let group = random_topic("kip848-group");
    cluster.create_topic(&topic, PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let protocol = ["--group-protocol", "consumer"];
    let a = weir_member(dir.path(), &cluster, "a", &topic, &group, &protocol);
    wait(dir.path(), "a alone", || {
        members(&cluster, &group) == [PARTITIONS as usize]
    });
    let java = java(
        dir.path(),
        &cluster,
        &topic,
        &group,
        &["--consumer-property", "group.protocol=consumer"],
    );
    let b = weir_member(dir.path(), &cluster, "b", &topic, &group, &protocol);
    let (cluster_ref, group_ref) = (&cluster, group.as_str());
    let holding = |n: usize| {
        move || {
            let m = members(cluster_ref, group_ref);
            m.len() == n && m.iter().all(|&p| p > 0) && m.iter().sum::<usize>() == 6
        }
    };
    wait(dir.path(), "three members holding partitions", holding(3));
    cluster.fill(&topic, common::KEYED, records(0, 300));
    let c = weir_member(dir.path(), &cluster, "c", &topic, &group, &protocol);
    wait(dir.path(), "four members holding partitions", holding(4));
    cluster.fill(&topic, common::KEYED, records(300, 600));
    let read = || values(&a).len() + values(&b).len() + values(&c).len() + values(&java).len();
    wait(dir.path(), "600 records read", || read() >= 600);
    let b_read = values(&b);
    b.stop();
    wait(dir.path(), "three members again", holding(3));
    cluster.fill(&topic, common::KEYED, records(600, 900));
    wait(dir.path(), "every record read", || {
        b_read.len() + values(&a).len() + values(&c).len() + values(&java).len() >= 900
    });
    let handed = |m: &Member| m.stderr().matches("partitions handed back").count();
    assert_eq!(handed(&a), 0, "a stopped its run\n{}", a.stderr());
    assert!(
        a.stderr().contains("assignment changed"),
        "a's assignment never changed\n{}",
        a.stderr()
    );
    assert!(!java.stderr().contains("rror"), "{}", java.stderr());
    let mut seen = BTreeSet::new();
    for v in b_read
        .into_iter()
        .chain(values(&a))
        .chain(values(&c))
        .chain(values(&java))
    {
        assert!(seen.insert(v.clone()), "{v} read twice");
    }
    assert_eq!(seen, (0..900).map(|n| format!("v{n}")).collect());
    c.stop();
    a.stop();
}

/// KIP-848: the session timeout and heartbeat interval are the broker's.
/// With the group's own (set as a user would with `kafka-configs
/// --entity-type groups`), a weir member on the consumer protocol holds
/// its lease for the group's session timeout, not weir's 45 s, and
/// heartbeats at the group's interval, as its join line says.
#[test]
fn a_consumer_protocol_member_uses_the_groups_session_timeout_and_heartbeat_interval() {
    let cluster = Cluster::shared();
    let topic = random_topic("kip848-timing-in");
    let group = random_topic("kip848-timing-group");
    cluster.create_topic(&topic, 2);
    // Within the broker's bounds: sessions 45-60 s, heartbeats 5-15 s.
    let set = common::kafka_tool(
        "org.apache.kafka.tools.ConfigCommand",
        &[
            "--bootstrap-server",
            cluster.address(),
            "--entity-type",
            "groups",
            "--entity-name",
            &group,
            "--alter",
            "--add-config",
            "consumer.session.timeout.ms=50000,consumer.heartbeat.interval.ms=6000",
        ],
    );
    assert_eq!(set.code, Some(0), "{}{}", set.stdout, set.stderr);
    let dir = tempfile::tempdir().unwrap();
    let protocol = ["--group-protocol", "consumer"];
    let a = weir_member(dir.path(), &cluster, "a", &topic, &group, &protocol);
    let joined = || {
        a.stderr()
            .lines()
            .find(|l| l.contains("joined (consumer protocol)"))
            .map(str::to_owned)
    };
    wait(dir.path(), "a joined", || joined().is_some());
    let line = joined().unwrap();
    assert_eq!(field(&line, "session_timeout"), "50s", "{line}");
    assert_eq!(field(&line, "heartbeat_interval"), "6s", "{line}");
    let stderr = a.stderr();
    let read = stderr
        .lines()
        .find(|l| l.contains("session timeout (consumer protocol)"))
        .unwrap_or_else(|| panic!("no session timeout line\n{stderr}"));
    assert_eq!(field(read, "from"), "\"group\"", "{read}");
    a.stop();
}

/// `weir pipe` members (at least once) rebalance cooperatively too: the
/// member that gives partitions up reads on with the rest, and the output
/// holds every input record once (a clean handover commits what was
/// acknowledged before the partitions move).
#[test]
fn pipe_members_hand_partitions_over_cooperatively_without_stopping() {
    let cluster = Cluster::shared();
    let input = random_topic("coop-pipe-in");
    let output = random_topic("coop-pipe-out");
    let group = random_topic("coop-pipe-group");
    cluster.create_topic(&input, 4);
    cluster.create_topic(&output, 1);
    let dir = tempfile::tempdir().unwrap();
    let member = |name: &str| {
        let args = [
            "pipe",
            "-t",
            &input,
            "--to",
            &output,
            "-g",
            &group,
            "--assignor",
            "cooperative-sticky",
            "--heartbeat-interval",
            "500ms",
            "--session-timeout",
            "10s",
            "--commit-interval",
            "200ms",
        ];
        start(dir.path(), &cluster, name, &args)
    };
    let a = member("a");
    wait(dir.path(), "a alone", || members(&cluster, &group) == [4]);
    cluster.fill(&input, common::KEYED, records(0, 400));
    let b = member("b");
    wait(dir.path(), "a and b, two each", || {
        members(&cluster, &group) == [2, 2]
    });
    cluster.fill(&input, common::KEYED, records(400, 800));
    let piped = || -> Vec<String> {
        cluster.read_all(&output, 1)[&0]
            .iter()
            .map(|r| String::from_utf8(r.record.value.clone().unwrap()).unwrap())
            .collect()
    };
    wait(dir.path(), "every record piped", || piped().len() >= 800);
    let handed = |m: &Member| m.stderr().matches("partitions handed back").count();
    let changed = |m: &Member| m.stderr().matches("assignment changed").count();
    assert!(
        changed(&a) >= 1,
        "a's assignment never changed\n{}",
        a.stderr()
    );
    assert_eq!(handed(&a), 0, "a stopped its run\n{}", a.stderr());
    let mut values = piped();
    values.sort();
    let mut all: Vec<String> = (0..800).map(|n| format!("v{n}")).collect();
    all.sort();
    assert_eq!(values, all, "every input record once in the output");
    b.stop();
    a.stop();
}

#[test]
fn a_group_whose_members_offer_no_assignor_weir_offers_is_refused_naming_both() {
    let cluster = Cluster::shared();
    let topic = random_topic("refused-in");
    let group = random_topic("refused-group");
    cluster.create_topic(&topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let _java = java(
        dir.path(),
        &cluster,
        &topic,
        &group,
        &[
            "--consumer-property",
            "partition.assignment.strategy=org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
        ],
    );
    wait(dir.path(), "the Java consumer in the group", || {
        members(&cluster, &group) == [2]
    });
    let run = common::run_with_deadline(
        common::weir()
            .args(["consume", "-t", &topic, "-g", &group, "--assignor", "range"])
            .args(["-b", cluster.address()]),
        common::STEP_TIMEOUT,
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap_or_default();
    println!("{last}");
    for needed in [
        "INCONSISTENT_GROUP_PROTOCOL",
        &format!("group \"{group}\""),
        "assignors range",
        "protocol type \"consumer\" with assignor \"cooperative-sticky\"",
        "Stable",
        "--assignor cooperative-sticky",
    ] {
        assert!(last.contains(needed), "{needed:?} not in: {last}");
    }
}
