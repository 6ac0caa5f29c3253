//! Groups that scale out and fail over, on a three-node Kafka cluster:
//! `weir count -g` and `weir consume -g` members share a topic's
//! partitions through the broker's group coordinator while the input
//! arrives, and go through the churn a deployment sees: a member
//! SIGKILLed, one joining, one frozen (SIGSTOP) past its session timeout
//! and thawed, one leaving on SIGTERM.
//!
//! - count: grouped by a field of the value (not the record key, so each
//!   key's records are spread over every member), the final value per
//!   (window, key) in the output topic equals a reference computed from
//!   the input read back independently: the members' partial aggregates
//!   meet in the group's internal topic;
//! - consume: the members' outputs hold every offset, and an offset is
//!   written twice only when one of the writers crashed or froze;
//! - once membership is stable the partitions are spread evenly, and
//!   `kafka-consumer-groups` shows the members and a lag of 0;
//! - static members ([`static_members`]) come back from a crash without
//!   a rebalance.

#[path = "groups/assignors.rs"]
mod assignors;
mod common;
#[path = "groups/joining.rs"]
mod joining;
#[path = "groups/pauses.rs"]
mod pauses;
#[path = "groups/static_members.rs"]
mod static_members;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{Cluster, group_table, kafka_tool, random_topic, wait_for, weir};

/// The input's partitions.
const PARTITIONS: i32 = 12;

/// Input records, written by the Java console producer in this many
/// batches while the members run.
const RECORDS: usize = 300_000;
const BATCHES: usize = 10;

/// Distinct record keys, which place the records.
const KEYS: usize = 50;

/// Distinct values of the counted field, each in every partition.
const LEVELS: usize = 4;

/// The members' session timeout (the broker's minimum is 6 s).
const SESSION: Duration = Duration::from_secs(6);

const GROUP_COMMAND: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
const CONSOLE_PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";

/// A member process, its stdout and stderr in files.
struct Member {
    name: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Member {
    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// SIGTERM, then its exit, which must be 0.
    fn stop(mut self) -> PathBuf {
        self.signal(libc::SIGTERM);
        let status = common::wait_exit(&mut self.child, &self.name);
        assert!(
            status.success(),
            "{}: {status}\n{}",
            self.name,
            self.stderr()
        );
        self.out.clone()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts member `name` of `args` (a weir command line, `-b` added).
fn start(dir: &Path, cluster: &Cluster, name: &str, args: &[&str]) -> Member {
    let out = dir.join(format!("{name}.out"));
    let err = dir.join(format!("{name}.err"));
    let child = weir()
        .args(args)
        .args(["-b", cluster.address()])
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

/// A column of `kafka-consumer-groups --describe --group GROUP [EXTRA]`,
/// one value per row; empty while the group has no table to show.
fn describe_column(cluster: &Cluster, group: &str, extra: &[&str], column: &str) -> Vec<String> {
    let args = [
        &[
            "--bootstrap-server",
            cluster.address(),
            "--describe",
            "--group",
            group,
        ][..],
        extra,
    ]
    .concat();
    let run = kafka_tool(GROUP_COMMAND, &args);
    if run.code != Some(0) || !run.stdout.contains(column) {
        return Vec::new();
    }
    let (header, rows) = group_table(&run.stdout);
    let at = header.iter().position(|&h| h == column).unwrap();
    rows.iter().map(|row| row[at].to_owned()).collect()
}

/// `kafka-consumer-groups --describe --members`: partitions per member.
fn members(cluster: &Cluster, group: &str) -> Vec<usize> {
    describe_column(cluster, group, &["--members"], "#PARTITIONS")
        .iter()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// `kafka-consumer-groups --describe`: the lag of each partition (-1 for
/// none shown).
fn lags(cluster: &Cluster, group: &str) -> Vec<i64> {
    describe_column(cluster, group, &[], "LAG")
        .iter()
        .map(|n| n.parse().unwrap_or(-1))
        .collect()
}

/// [`common::wait_for`], showing the members' logs when it fails.
fn wait(dir: &Path, what: &str, condition: impl FnMut() -> bool) {
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(what, condition);
    }));
    if let Err(panic) = waited {
        let mut logs: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "err"))
            .collect();
        logs.sort();
        for log in logs {
            eprintln!(
                "--- {}\n{}",
                log.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::panic::resume_unwind(panic);
    }
}

/// Whether `group` has `n` members with its `total` partitions spread
/// evenly.
fn balanced(cluster: &Cluster, group: &str, n: usize, total: usize) -> bool {
    let counts = members(cluster, group);
    counts.len() == n
        && counts.iter().sum::<usize>() == total
        && counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1
}

/// The partitions each group reads: the count's members read the
/// group's internal topic too.
fn partitions_of(group: &str, counting: &str) -> usize {
    if group == counting {
        2 * PARTITIONS as usize
    } else {
        PARTITIONS as usize
    }
}

#[test]
fn members_share_partitions_and_survive_kills_freezes_joins_and_leaves() {
    let cluster = Cluster::start(3);
    let input = random_topic("groups-in");
    let output = random_topic("groups-out");
    cluster.create_topic(&input, PARTITIONS as u32);
    let counting = random_topic("count-group");
    let reading = random_topic("consume-group");
    let dir = tempfile::tempdir().unwrap();
    let session = format!("{}s", SESSION.as_secs());
    let membership = [
        "--session-timeout",
        &session,
        "--heartbeat-interval",
        "500ms",
        "--max-poll-interval",
        "30s",
        "--commit-interval",
        "10s",
        "--timeout",
        "30s",
    ];
    // The count members rebalance cooperatively (changing their partitions
    // while they count on) and the consume members eagerly (weir's
    // default); WEIR_TEST_GROUP_ASSIGNOR=LIST gives both that list.
    let assignor = std::env::var("WEIR_TEST_GROUP_ASSIGNOR").unwrap_or_default();
    let (count_assignor, consume_assignor) = match assignor.is_empty() {
        true => (vec!["--assignor", "cooperative-sticky"], Vec::new()),
        false => (vec!["--assignor", &assignor], vec!["--assignor", &assignor]),
    };
    let count_args: Vec<&str> = [
        &[
            "count",
            "-t",
            &input,
            "-g",
            &counting,
            "--by",
            "json:/level",
            "--window",
            "1m",
            "--to-topic",
            &output,
            "--no-stdout",
        ][..],
        &membership,
        &count_assignor,
    ]
    .concat();
    let consume_args: Vec<&str> = [
        &[
            "consume",
            "-t",
            &input,
            "-g",
            &reading,
            "-f",
            "{partition} {offset}\\n",
        ][..],
        &membership,
        &consume_assignor,
    ]
    .concat();
    let start_both = |name: &str| {
        (
            start(dir.path(), &cluster, &format!("count-{name}"), &count_args),
            start(
                dir.path(),
                &cluster,
                &format!("consume-{name}"),
                &consume_args,
            ),
        )
    };

    // The input arrives from the Java client while the members churn.
    let producer = {
        let address = cluster.address().to_owned();
        let input = input.clone();
        std::thread::spawn(move || {
            for batch in 0..BATCHES {
                let mut lines = String::new();
                for i in 0..RECORDS / BATCHES {
                    let n = batch * RECORDS / BATCHES + i;
                    let level = n * 3 % LEVELS;
                    lines.push_str(&format!(
                        "svc{}|{{\"n\":{n},\"level\":\"L{level}\"}}\n",
                        n * 7 % KEYS
                    ));
                }
                common::kafka_tool_with_input(
                    CONSOLE_PRODUCER,
                    &[
                        "--bootstrap-server",
                        &address,
                        "--topic",
                        &input,
                        "--property",
                        "parse.key=true",
                        "--property",
                        "key.separator=|",
                    ],
                    lines.as_bytes(),
                )
                .ok();
            }
        })
    };

    let (count_a, consume_a) = start_both("a");
    let (count_b, consume_b) = start_both("b");
    let (count_c, consume_c) = start_both("c");
    wait(dir.path(), "three count members, evenly", || {
        balanced(&cluster, &counting, 3, 2 * PARTITIONS as usize)
    });
    wait(dir.path(), "three consume members, evenly", || {
        balanced(&cluster, &reading, 3, PARTITIONS as usize)
    });

    // A crashes; D joins.
    count_a.signal(libc::SIGKILL);
    consume_a.signal(libc::SIGKILL);
    let (count_d, consume_d) = start_both("d");
    // B freezes past its session timeout, then thaws: it must find its
    // partitions gone and write nothing more for them.
    count_b.signal(libc::SIGSTOP);
    consume_b.signal(libc::SIGSTOP);
    std::thread::sleep(SESSION + Duration::from_secs(3));
    let thawed = epoch_ms();
    count_b.signal(libc::SIGCONT);
    consume_b.signal(libc::SIGCONT);
    let frozen = [
        (counting.clone(), count_b.child.id(), count_b.err.clone()),
        (reading.clone(), consume_b.child.id(), consume_b.err.clone()),
    ];
    // C leaves.
    let consumed_c = consume_c.stop();
    count_c.stop();

    producer.join().unwrap();
    assert_eq!(cluster.topic_end(&input), RECORDS as i64);
    // A record two minutes on in every partition closes every window of
    // the input in every member (the open ones are not emitted at a stop:
    // they are not final across the group).
    let later = epoch_ms() + 120_000;
    let flush: String = (0..PARTITIONS)
        .map(|p| {
            let line = serde_json::json!({
                "key": null,
                "value": r#"{"level":"FLUSH"}"#,
                "timestamp": later,
                "partition": p,
            });
            format!("{line}\n")
        })
        .collect();
    let produced = cluster.produce(&["-t", &input, "--format", "json"], flush.as_bytes());
    assert!(produced.code == Some(0), "{}", produced.stderr);
    let end: i64 = cluster.topic_end(&input);
    assert_eq!(end, RECORDS as i64 + i64::from(PARTITIONS));
    // B and D share the partitions evenly and read everything; the
    // broker's group offsets (mirrored by weir) show no lag.
    for group in [&counting, &reading] {
        let total = partitions_of(group, &counting);
        wait(dir.path(), "two members, evenly", || {
            balanced(&cluster, group, 2, total)
        });
        wait(dir.path(), "every record committed", || {
            cluster.committed_total("__weir_offsets", group) == end
        });
        wait(dir.path(), "lag 0 in kafka-consumer-groups", || {
            let lags = lags(&cluster, group);
            lags.len() == total && lags.iter().all(|&l| l == 0)
        });
    }
    let consumed_b = consume_b.stop();
    let consumed_d = consume_d.stop();
    let count_b_log = count_b.err.clone();
    count_b.stop();
    // D stops once it holds B's partitions too: a member stopped while it
    // rejoins holds no windows to emit (they stay in the group's state
    // for the next run).
    wait(
        dir.path(),
        "the last count member holds every partition",
        || {
            let log = std::fs::read_to_string(&count_d.err).unwrap_or_default();
            let last = log.lines().rev().find(|l| l.contains(" joined "));
            last.is_some_and(|l| l.contains(&format!("partitions={}", 2 * PARTITIONS)))
        },
    );
    let count_logs = [count_b_log, count_d.err.clone()];
    count_d.stop();
    if count_assignor.contains(&"cooperative-sticky") {
        // The count members changed their partitions while they ran.
        let logs: String = count_logs
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect();
        assert!(
            logs.contains("reading on with the new assignment"),
            "no count member changed its partitions while it ran:\n{logs}"
        );
    }

    // The frozen member, thawed, found its partitions gone and committed
    // nothing (no counts, no positions) until it had rejoined.
    let store = cluster.read_all("__weir_offsets", 6);
    for (group, pid, err) in &frozen {
        let log = std::fs::read_to_string(err).unwrap();
        let rejoined = log
            .lines()
            .filter(|l| l.contains("joined") && !l.contains("left"))
            .filter_map(|l| {
                humantime::parse_rfc3339_weak(l.split(' ').next()?.trim_end_matches('Z')).ok()
            })
            .map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
            .find(|&t| t > thawed)
            .unwrap_or_else(|| panic!("{group}: the thawed member never rejoined:\n{log}"));
        assert!(
            log.contains("fenced: this member's partitions went to another"),
            "{group}: not fenced:\n{log}"
        );
        let marker = format!("-{pid}-");
        let mut commits_of_b = 0;
        for r in store.values().flatten() {
            let key: serde_json::Value =
                match serde_json::from_slice(r.record.key.as_deref().unwrap_or_default()) {
                    Ok(key) => key,
                    Err(_) => continue,
                };
            if key[1] != group.as_str() {
                continue;
            }
            let Some(value) = r.record.value.as_deref() else {
                continue;
            };
            let Ok(commit) = serde_json::from_slice::<serde_json::Value>(value) else {
                continue;
            };
            let (Some(instance), Some(at)) =
                (commit["instance"].as_str(), commit["committed_at"].as_i64())
            else {
                continue;
            };
            if instance.contains(&marker) {
                commits_of_b += 1;
                assert!(
                    !(at > thawed && at < rejoined),
                    "{group}: the thawed member committed {key} at {at}, before it rejoined at {rejoined}"
                );
            }
        }
        assert!(
            commits_of_b > 0,
            "{group}: no commit of the frozen member found"
        );
    }

    // count: the last row per (window, key) equals the reference.
    let mut reference: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for records in cluster.read_all(&input, PARTITIONS).values() {
        for r in records {
            let value: serde_json::Value =
                serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap();
            let key = value["level"].as_str().unwrap().to_owned();
            if key == "FLUSH" {
                continue;
            }
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

    // The count's internal topic: replicated on the three nodes with
    // min.insync.replicas 2, listed by `weir offsets show` with its lag,
    // and deleted with the group's offsets.
    let internal = format!("__weir_offsets-{counting}-partials");
    let described = cluster.weir(&["topics", "describe", &internal, "--output", "json"]);
    described.ok();
    let description: serde_json::Value = serde_json::from_str(&described.stdout).unwrap();
    for p in description["partitions"].as_array().unwrap() {
        assert_eq!(p["replicas"].as_array().unwrap().len(), 3, "{p}");
    }
    let min_isr = description["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "min.insync.replicas")
        .map(|c| c["value"].clone());
    assert_eq!(min_isr, Some(serde_json::json!("2")), "{description}");
    let shown = cluster.offsets_show("__weir_offsets", &counting);
    let internal_rows: Vec<&serde_json::Value> = shown["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["internal"] == true)
        .collect();
    assert_eq!(internal_rows.len(), PARTITIONS as usize, "{shown}");
    assert!(internal_rows.iter().all(|r| r["lag"].is_i64()), "{shown}");
    let deleted = cluster.weir(&["offsets", "delete", "-g", &counting]);
    deleted.ok();
    assert!(
        deleted.stdout.contains(&format!(
            "deleted the group's internal topic \"{internal}\""
        )),
        "{}",
        deleted.stdout
    );
    let gone = cluster.weir(&["topics", "describe", &internal]);
    assert_ne!(gone.code, Some(0), "{}", gone.stdout);

    // consume: every offset at least once; twice only where a crashed
    // (A) or frozen (B) member wrote it too.
    let read = |path: &Path| -> Vec<(i32, i64)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let (p, o) = l.split_once(' ').unwrap();
                (p.parse().unwrap(), o.parse().unwrap())
            })
            .collect()
    };
    let crashed: BTreeSet<(i32, i64)> = read(&consume_a.out)
        .into_iter()
        .chain(read(&consumed_b))
        .collect();
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for path in [&consume_a.out, &consumed_b, &consumed_c, &consumed_d] {
        for at in read(path) {
            *seen.entry(at).or_default() += 1;
        }
    }
    let watermarks = cluster.high_watermarks(&input);
    for (p, hw) in &watermarks {
        for o in 0..*hw {
            assert!(
                seen.contains_key(&(*p, o)),
                "partition {p} offset {o} never written"
            );
        }
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    for (at, _) in &duplicates {
        if crashed.contains(at) {
            continue;
        }
        // Which members wrote it, and what they logged about the group.
        let writers: Vec<String> = [
            ("a", &consume_a.out),
            ("b", &consumed_b),
            ("c", &consumed_c),
            ("d", &consumed_d),
        ]
        .iter()
        .filter(|(_, path)| read(path).contains(at))
        .map(|(name, _)| {
            let err = dir.path().join(format!("consume-{name}.err"));
            let log: String = std::fs::read_to_string(err)
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.starts_with(' '))
                .map(|l| format!("  {l}\n"))
                .collect();
            format!("consume-{name}:\n{log}")
        })
        .collect();
        panic!(
            "{at:?} written twice, though no member that wrote it crashed; {} such offsets; writers' logs:\n{}",
            duplicates
                .iter()
                .filter(|(a, _)| !crashed.contains(a))
                .count(),
            writers.join("")
        );
    }
    eprintln!(
        "consume: {} offsets, {} written twice (after the crash or the freeze)",
        seen.len(),
        duplicates.len()
    );
    drop(consume_a);
    drop(count_a);
}

/// Milliseconds since the epoch, now.
fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Milliseconds since the epoch of an RFC 3339 time as weir writes them.
fn chrono_ms(text: &str) -> i64 {
    humantime::parse_rfc3339(text)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A transaction that carries a member's positions to its group under a
/// generation the group does not know (a member that lost its partitions
/// in a rebalance: a zombie) is refused by the group's coordinator
/// (KIP-447), which `weir count --exactly-once` as a member takes as the
/// end of its generation: it aborts and rejoins.
#[test]
fn offsets_in_a_transaction_from_a_past_generation_are_refused() {
    use weir::kafka::transaction::{GroupGeneration, Transactions};
    let cluster = Cluster::shared();
    let input = random_topic("zombie-in");
    cluster.create_topic(&input, 2);
    let group = random_topic("zombie-group");
    let dir = tempfile::tempdir().unwrap();
    let member = start(
        dir.path(),
        &cluster,
        "member",
        &["consume", "-t", &input, "-g", &group, "-q"],
    );
    wait(dir.path(), "the member joined", || {
        members(&cluster, &group) == [2]
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let refused = rt.block_on(async {
        let connection = weir::ConnectionConfig::new([cluster.address().to_owned()])
            .with_timeout(Duration::from_secs(20));
        let id = format!("{group}-zombie");
        let mut transactions = Transactions::init(&connection, &id, Duration::from_secs(10))
            .await
            .unwrap();
        let zombie = GroupGeneration::new(group.clone(), 1, "a-member-the-group-dropped");
        let at = weir::TopicPartition::new(input.as_str(), 0);
        let refused = transactions.commit_offsets(&zombie, &[(at, 1)]).await;
        transactions.end(false).await.unwrap();
        refused
    });
    let error = refused.expect_err("offsets from outside the generation");
    assert!(error.is_stale_generation(), "{error}");
    member.stop();
}

/// The topics and group of a fencing test: an input of 2 partitions, an
/// output of 1, an offsets store and a group.
struct Fencing {
    input: String,
    output: String,
    store: String,
    group: String,
}

impl Fencing {
    fn create(cluster: &Cluster, prefix: &str) -> Self {
        let fencing = Self {
            input: random_topic(&format!("{prefix}-in")),
            output: random_topic(&format!("{prefix}-out")),
            store: random_topic(&format!("{prefix}-offsets")),
            group: random_topic(&format!("{prefix}-group")),
        };
        cluster.create_topic(&fencing.input, 2);
        cluster.create_topic(&fencing.output, 1);
        fencing
    }

    /// Waits for the member's first checkpoint of the input's 100
    /// records, starts a producer of each of `ids` (fencing the member's),
    /// has `fill` write 100 more, and checks that the member rejoined
    /// (saying `rejoining`) and committed them.
    fn fence(
        &self,
        cluster: &Cluster,
        dir: &Path,
        member: Member,
        ids: &[String],
        fill: impl FnOnce(),
        rejoining: &str,
    ) {
        use weir::kafka::transaction::Transactions;
        let mut member = member;
        // Fails at once when the member exits.
        let mut committed = |n| {
            if let Some(status) = member.child.try_wait().unwrap() {
                panic!("{} exited with {status}", member.name);
            }
            cluster.committed_total(&self.store, &self.group) == n
        };
        wait(dir, "the first checkpoint", || committed(100));
        let connection = weir::ConnectionConfig::new([cluster.address().to_owned()])
            .with_timeout(Duration::from_secs(20));
        let rt = tokio::runtime::Runtime::new().unwrap();
        for id in ids {
            rt.block_on(Transactions::init(&connection, id, Duration::from_secs(10)))
                .unwrap();
        }
        fill();
        wait(dir, "the rejoined member's checkpoint", || committed(200));
        let log = member.stderr();
        assert!(log.contains(rejoining), "{log}");
        assert_eq!(log.matches("joined group").count(), 2, "{log}");
        member.stop();
    }
}

/// A member whose transactional id another producer took (as a member
/// given its partitions would, here a producer the test starts) learns it
/// from its output's transaction before the group tells it anything: the
/// rows of a closed window are refused. It aborts, rejoins and counts on,
/// as Kafka Streams takes a fenced producer for a task that moved.
#[test]
fn a_member_fenced_through_its_transactional_id_rejoins() {
    let cluster = Cluster::shared();
    let topics = Fencing::create(&cluster, "fenced");
    // Two seconds' lines a minute ago; the second second's close the
    // first's window.
    let start_ms = (epoch_ms() - 60_000) / 1000 * 1000;
    let lines = |second: i64| {
        (0..100).map(move |i| {
            serde_json::json!({
                "key": format!("k{}", i % 4),
                "value": "x",
                "timestamp": start_ms + second * 1000 + i,
            })
            .to_string()
        })
    };
    cluster.fill(&topics.input, common::JSON, lines(0));
    let dir = tempfile::tempdir().unwrap();
    let member = start(
        dir.path(),
        &cluster,
        "member",
        &[
            "count",
            "-t",
            &topics.input,
            "--by",
            "json:/level",
            "--window",
            "1s",
            "--emit",
            "final",
            "--exactly-once",
            "-g",
            &topics.group,
            "--offsets-topic",
            &topics.store,
            "--to-topic",
            &topics.output,
            "--commit-interval",
            "200ms",
            "--session-timeout",
            "30s",
            "--no-stdout",
        ],
    );
    // The member holds the input's partitions and those of its second
    // stage's internal topic (counted by a field of the value).
    let internal = weir::offsets::partials_topic(&topics.store, &topics.group);
    let partitions: Vec<_> = (0..2)
        .flat_map(|p| {
            [
                weir::TopicPartition::new(topics.input.as_str(), p),
                weir::TopicPartition::new(internal.as_str(), p),
            ]
        })
        .collect();
    let id = weir::aggregate::count_transactional_id(&topics.group, &partitions);
    topics.fence(
        &cluster,
        dir.path(),
        member,
        &[id],
        || cluster.fill(&topics.input, common::JSON, lines(1)),
        "fenced: another member took this one's partitions; rejoining",
    );
}

/// The same for `weir pipe --exactly-once`: a member whose lanes'
/// transactional ids another producer took rejoins and pipes on, and its
/// output holds every record once.
#[test]
fn a_pipe_member_fenced_through_a_lane_rejoins() {
    let cluster = Cluster::shared();
    let topics = Fencing::create(&cluster, "fenced-pipe");
    let lines = |from: usize| (from..from + 100).map(|i| format!("k{}:{i}", i % 4));
    cluster.fill(&topics.input, common::KEYED, lines(0));
    let dir = tempfile::tempdir().unwrap();
    let member = start(
        dir.path(),
        &cluster,
        "member",
        &[
            "pipe",
            "-t",
            &topics.input,
            "--to",
            &topics.output,
            "--exactly-once",
            "-g",
            &topics.group,
            "--offsets-topic",
            &topics.store,
            "--commit-interval",
            "200ms",
            "--session-timeout",
            "30s",
        ],
    );
    let ids: Vec<_> = (0..2)
        .map(|p| {
            let lane = weir::TopicPartition::new(topics.input.as_str(), p);
            weir::pipe::lanes::transactional_id(&topics.group, &lane)
        })
        .collect();
    topics.fence(
        &cluster,
        dir.path(),
        member,
        &ids,
        || cluster.fill(&topics.input, common::KEYED, lines(100)),
        "fenced: a partition of this member was given to another; rejoining",
    );
    // Exactly once, as read_committed readers see it.
    let read = common::weir_run(&["consume", "-t", &topics.output, "--until", "end", "-q"]);
    read.ok();
    assert_eq!(read.stdout.lines().count(), 200, "{}", read.stderr);
    let stored: usize = cluster
        .read_all(&topics.output, 1)
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(stored, 200, "records read back by rskafka");
}
