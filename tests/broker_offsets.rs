//! The broker's group offsets: a group started by Kafka's Java console
//! consumer and continued by weir (and the other way round) reads nothing
//! twice; `weir offsets show` lists a Java-only group's offsets; `weir
//! offsets set` moves a Java group and is refused on a live one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};

use common::{Cluster, STEP_TIMEOUT, brokers, random_topic, weir_run};
use serde_json::Value;

const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";

/// A topic of `partitions` partitions holding the values `v{from}` to
/// `v{to - 1}`.
fn topic_with(prefix: &str, partitions: u32, n: usize) -> String {
    Cluster::shared().create_and_fill(prefix, partitions, &[], (0..n).map(|i| format!("v{i}")))
}

fn append(topic: &str, from: usize, to: usize) {
    let lines: String = (from..to).map(|i| format!("v{i}\n")).collect();
    common::produce(&["-t", topic], lines.as_bytes()).ok();
}

/// The Java console consumer in `group` reads `topic` until it has read
/// `expect` records (and exits, committing), or is idle for 10 s.
fn java_read(topic: &str, group: &str, expect: usize) -> Vec<String> {
    let max = expect.max(1).to_string();
    let args = [
        "--bootstrap-server",
        brokers(),
        "--topic",
        topic,
        "--group",
        group,
        "--max-messages",
        &max,
        "--timeout-ms",
        "10000",
        "--consumer-property",
        "auto.offset.reset=earliest",
    ];
    let run = common::kafka_tool_within(CONSOLE_CONSUMER, &args, STEP_TIMEOUT);
    run.stdout
        .lines()
        .filter(|l| l.starts_with('v'))
        .map(str::to_owned)
        .collect()
}

/// The sum of [`java_offsets`]' offsets (a partition without one as 0).
fn total(offsets: &BTreeMap<i32, String>) -> i64 {
    offsets
        .values()
        .map(|o| o.parse::<i64>().unwrap_or(0))
        .sum()
}

/// kafka-consumer-groups --describe: the group's committed offset per
/// partition of `topic`.
fn java_offsets(group: &str, topic: &str) -> BTreeMap<i32, String> {
    let run = common::kafka_tool(
        GROUP_COMMAND,
        &[
            "--bootstrap-server",
            brokers(),
            "--describe",
            "--group",
            group,
        ],
    );
    if !run.stdout.lines().any(|l| l.starts_with("GROUP ")) {
        return BTreeMap::new();
    }
    let (header, rows) = common::group_table(&run.stdout);
    let column = |name: &str| header.iter().position(|&h| h == name).unwrap();
    let (t, p, c) = (
        column("TOPIC"),
        column("PARTITION"),
        column("CURRENT-OFFSET"),
    );
    rows.iter()
        .filter(|r| r[t] == topic)
        .map(|r| (r[p].parse().unwrap(), r[c].to_owned()))
        .collect()
}

fn show(group: &str) -> Value {
    let run = weir_run(&["offsets", "show", "-g", group, "--output", "json"]);
    serde_json::from_str(&run.ok().stdout).unwrap()
}

fn assert_once(read: &[String], n: usize) {
    let set: BTreeSet<&String> = read.iter().collect();
    assert_eq!(set.len(), read.len(), "a record read twice");
    assert_eq!(set.len(), n);
}

#[test]
fn a_java_group_is_continued_by_weir_and_shown() {
    let topic = topic_with("java-then-weir", 3, 300);
    let group = random_topic("jg");
    let first = java_read(&topic, &group, 300);
    assert_eq!(first.len(), 300, "the console consumer read all");

    // offsets show: a Java-only group lists its offsets, from the broker.
    let shown = show(&group);
    let rows = shown["partitions"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{shown}");
    for r in rows {
        assert_eq!(r["resumes_from"], "broker", "{r}");
        assert_eq!(r["weir_committed"], Value::Null, "{r}");
        assert_eq!(r["committed"], r["high_watermark"], "{r}");
        assert_eq!(r["lag"], 0, "{r}");
    }
    let listed = weir_run(&["offsets", "groups", "--output", "json"]);
    let listed: Value = serde_json::from_str(&listed.ok().stdout).unwrap();
    let ours = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group.as_str())
        .unwrap_or_else(|| panic!("{group} not in {listed}"));
    assert_eq!(ours["sources"], serde_json::json!(["broker"]), "{ours}");
    assert_eq!(ours["partitions"], 3, "{ours}");

    // weir continues the group: only the records written since.
    append(&topic, 300, 400);
    let run = weir_run(&["consume", "-t", &topic, "-g", &group, "-e"]);
    let second: Vec<String> = run.ok().stdout.lines().map(str::to_owned).collect();
    assert_once(&second, 100);
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_once(&all, 400);
    // weir's commit, at the same offsets as the broker's now ... or
    // newer: each partition resumes from weir's.
    let shown = show(&group);
    for r in shown["partitions"].as_array().unwrap() {
        assert_eq!(r["resumes_from"], "weir", "{r}");
        assert_eq!(r["lag"], 0, "{r}");
    }
}

#[test]
fn a_weir_group_is_continued_by_java() {
    let topic = topic_with("weir-then-java", 3, 300);
    let group = random_topic("wg");
    // A member of the broker's group (not bounded): its commits are
    // mirrored to the broker's group offsets.
    let run = weir_run(&["consume", "-t", &topic, "-g", &group, "-c", "300"]);
    let first: Vec<String> = run.ok().stdout.lines().map(str::to_owned).collect();
    assert_once(&first, 300);
    let offsets = java_offsets(&group, &topic);
    assert_eq!(total(&offsets), 300, "kafka-consumer-groups: {offsets:?}");

    append(&topic, 300, 350);
    let second = java_read(&topic, &group, 50);
    assert_once(&second, 50);
    assert!(
        second
            .iter()
            .all(|v| v[1..].parse::<usize>().unwrap() >= 300),
        "{second:?}"
    );
    // And back to weir: the Java commits are newer than weir's.
    append(&topic, 350, 360);
    let run = weir_run(&["consume", "-t", &topic, "-g", &group, "-e"]);
    let third: Vec<String> = run.ok().stdout.lines().map(str::to_owned).collect();
    assert_once(&third, 10);
    assert!(
        run.stderr
            .contains("resuming from the broker's committed offset"),
        "{}",
        run.stderr
    );
}

#[test]
fn offsets_set_moves_an_empty_java_group() {
    let topic = topic_with("set-java", 2, 100);
    let group = random_topic("sj");
    assert_eq!(java_read(&topic, &group, 100).len(), 100);
    let set = weir_run(&[
        "offsets", "set", "-g", &group, "-t", &topic, "--to", "earliest",
    ]);
    set.ok();
    assert!(set.stdout.contains("(broker)"), "{}", set.stdout);
    let offsets = java_offsets(&group, &topic);
    assert_eq!(
        offsets.values().collect::<Vec<_>>(),
        ["0", "0"],
        "kafka-consumer-groups: {offsets:?}"
    );
    // The Java consumer reads everything again.
    assert_eq!(java_read(&topic, &group, 100).len(), 100);

    // delete: the broker's offsets are gone too.
    let deleted = weir_run(&["offsets", "delete", "-g", &group]);
    assert!(
        deleted.ok().stdout.contains("deleted 2"),
        "{}",
        deleted.stdout
    );
    let shown = show(&group);
    assert_eq!(shown["partitions"], serde_json::json!([]), "{shown}");
}

/// A process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[test]
fn offsets_set_on_a_live_group_is_refused_naming_its_members() {
    let topic = topic_with("set-live", 2, 10);
    let group = random_topic("live");
    let client = random_topic("java-client");
    let java = Command::new(common::kafka_script())
        .args(["tool", CONSOLE_CONSUMER, "--bootstrap-server", brokers()])
        .args(["--topic", &topic, "--group", &group])
        .args(["--consumer-property", &format!("client.id={client}")])
        .args(["--consumer-property", "auto.offset.reset=earliest"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _java = Killed(java);
    // The member is in once kafka-consumer-groups shows its commit of all
    // 10 records (it commits what it read every 5 s).
    common::wait_for("the console consumer's commit", || {
        total(&java_offsets(&group, &topic)) == 10
    });
    let set = weir_run(&[
        "offsets", "set", "-g", &group, "-t", &topic, "--to", "earliest",
    ]);
    set.expect_code(1);
    assert!(set.stderr.contains("live members"), "{}", set.stderr);
    assert!(set.stderr.contains(&client), "{}", set.stderr);
    assert_eq!(set.stderr.trim().lines().count(), 1, "{}", set.stderr);
    // Nothing moved.
    let offsets = java_offsets(&group, &topic);
    assert_eq!(total(&offsets), 10, "{offsets:?}");
    let delete = weir_run(&["offsets", "delete", "-g", &group]);
    delete.expect_code(1);
    assert!(delete.stderr.contains(&client), "{}", delete.stderr);

    // --force is refused too: a Java member cannot be moved while it runs
    // (the broker refuses commits from outside a group with members).
    let forced = weir_run(&[
        "offsets", "set", "-g", &group, "-t", &topic, "--to", "earliest", "--force",
    ]);
    forced.expect_code(1);
    assert!(
        forced.stderr.contains("cannot pick up a forced change") && forced.stderr.contains(&client),
        "{}",
        forced.stderr
    );
    let offsets = java_offsets(&group, &topic);
    assert_eq!(total(&offsets), 10, "{offsets:?}");
}

/// `offsets set --force` on a group with a live weir member: the member
/// moves to the new offsets at its next commit and reads on from there;
/// its commits go on from there (nothing undoes the reset), mirrored to
/// the broker. `offsets delete` is refused under it.
#[test]
fn a_forced_reset_moves_a_live_weir_member() {
    use std::io::{BufRead, BufReader};

    let topic = topic_with("forced", 2, 100);
    let group = random_topic("forced");
    let mut child = common::weir()
        .args(["consume", "-t", &topic, "-g", &group])
        .args(["--commit-interval", "200ms", "-b", brokers()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut member = Killed(child);
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines_tx.send(l).ok();
        }
    });
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let logged = log.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = logged.lock().unwrap();
            log.push_str(&l);
            log.push('\n');
        }
    });
    let first: Vec<String> = (0..100)
        .map(|_| {
            lines
                .recv_timeout(STEP_TIMEOUT)
                .expect("the member's records")
        })
        .collect();
    assert_once(&first, 100);
    // Its commit is mirrored to the broker: a live member of the group.
    common::wait_for("the member's commit on the broker", || {
        total(&java_offsets(&group, &topic)) == 100
    });
    let deleted = weir_run(&["offsets", "delete", "-g", &group]);
    deleted.expect_code(1);
    assert!(
        deleted.stderr.contains("offsets set --force"),
        "{}",
        deleted.stderr
    );
    let forced = weir_run(&[
        "offsets", "set", "-g", &group, "-t", &topic, "--to", "earliest", "--force",
    ]);
    forced.ok();
    assert!(forced.stderr.contains("next commit"), "{}", forced.stderr);
    // The member notices at its next commit, which more records bring,
    // and reads everything again from the reset.
    append(&topic, 100, 110);
    let mut again = BTreeSet::new();
    while again.len() < 110 {
        let line = lines.recv_timeout(STEP_TIMEOUT).unwrap_or_else(|_| {
            panic!(
                "the member did not read everything again ({} of 110):\n{}",
                again.len(),
                log.lock().unwrap()
            )
        });
        again.insert(line);
    }
    assert!(
        log.lock()
            .unwrap()
            .contains("by `weir offsets set --force`; reading on from there"),
        "{}",
        log.lock().unwrap()
    );
    // Its commits go on from the reset: everything, on both sides.
    common::wait_for("the member's commits after the reset", || {
        total(&java_offsets(&group, &topic)) == 110
    });
    // SAFETY: signalling our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(member.0.id() as i32, libc::SIGINT);
    }
    let status = common::wait_exit(&mut member.0, "weir consume after SIGINT");
    assert_eq!(status.code(), Some(130));
    let shown = show(&group);
    let committed: i64 = shown["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["committed"].as_i64().unwrap())
        .sum();
    assert_eq!(committed, 110, "{shown}");
}

/// `offsets set --force` under a live `weir count` member is refused: its
/// counts cannot move with its position.
#[test]
fn a_forced_reset_under_a_live_count_member_is_refused() {
    let topic = topic_with("forced-count", 1, 20);
    let group = random_topic("forced-count");
    let child = common::weir()
        .args([
            "count", "-t", &topic, "-g", &group, "--by", "key", "--window", "1m",
        ])
        .args(["--commit-interval", "200ms", "-b", brokers()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _member = Killed(child);
    common::wait_for("the count member's commit", || {
        java_offsets(&group, &topic).values().any(|o| o == "20")
    });
    let forced = weir_run(&[
        "offsets", "set", "-g", &group, "-t", &topic, "--to", "earliest", "--force",
    ]);
    forced.expect_code(1);
    assert!(
        forced.stderr.contains("count/agg") && forced.stderr.contains("stop them first"),
        "{}",
        forced.stderr
    );
    assert_eq!(forced.stderr.trim().lines().count(), 1, "{}", forced.stderr);
}
