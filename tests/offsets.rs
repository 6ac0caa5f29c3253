//! Group offsets in weir's compacted topic: resume, crash, show/set/delete,
//! compaction by the broker, malformed records and two instances.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    Cluster, Feeder, KEYED, STEP_TIMEOUT, brokers, random_topic, run, wait_exit, weir, weir_run,
};
use serde_json::Value;
use weir::produce::partitioner::murmur2_partition;

/// A topic with `n` keyed records over `partitions` partitions, and a
/// private offsets topic for the test.
fn setup(prefix: &str, partitions: u32, n: usize) -> (String, String) {
    let lines = (0..n).map(|i| format!("k{}:{i}", i % 17));
    let topic = Cluster::shared().create_and_fill(prefix, partitions, KEYED, lines);
    (topic, random_topic("offsets"))
}

fn consume(store: &str, args: &[&str]) -> common::Run {
    let mut all = vec![
        "consume",
        "--offsets-topic",
        store,
        "-f",
        "{partition} {offset}",
    ];
    all.extend_from_slice(args);
    weir_run(&all)
}

fn pairs(stdout: &str) -> Vec<(i32, i64)> {
    stdout
        .lines()
        .map(|l| {
            let (p, o) = l.split_once(' ').unwrap();
            (p.parse().unwrap(), o.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_group_resumes_at_exactly_the_next_record() {
    let (topic, store) = setup("resume", 6, 10_000);
    let group = random_topic("g");
    let first = consume(&store, &["-t", &topic, "-g", &group, "-c", "3000"]);
    first.ok();
    let second = consume(&store, &["-t", &topic, "-g", &group, "-e"]);
    second.ok();
    let a = pairs(&first.stdout);
    let b = pairs(&second.stdout);
    assert_eq!((a.len(), b.len()), (3_000, 7_000));
    let mut all = BTreeSet::new();
    for pair in a.iter().chain(&b) {
        assert!(all.insert(*pair), "{pair:?} read twice");
    }
    // Per partition, the second run starts right after the first.
    for p in 0..6 {
        let last_first = a.iter().filter(|x| x.0 == p).map(|x| x.1).max();
        let first_second = b.iter().filter(|x| x.0 == p).map(|x| x.1).min();
        if let (Some(l), Some(f)) = (last_first, first_second) {
            assert_eq!(f, l + 1, "partition {p}");
        }
    }
    assert_eq!(all.len(), 10_000);
}

#[test]
fn show_set_and_delete() {
    let (topic, store) = setup("show", 6, 6_000);
    let group = random_topic("g");
    consume(&store, &["-t", &topic, "-g", &group, "-c", "2500"]).ok();

    let shown = Cluster::shared().offsets_show(&store, &group);
    let rows = shown["partitions"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    let mut total = 0;
    for r in rows {
        let c = r["committed"].as_i64().unwrap();
        assert_eq!(
            r["lag"].as_i64().unwrap(),
            r["high_watermark"].as_i64().unwrap() - c,
            "{r}"
        );
        assert!(r["instance"].as_str().is_some_and(|i| !i.is_empty()));
        total += c;
    }
    assert_eq!(total, 2_500, "committed offsets add up to what was written");

    // A dry run changes nothing.
    let before = Cluster::shared().committed(&store, &group);
    let dry = weir_run(&[
        "offsets",
        "--offsets-topic",
        &store,
        "set",
        "-g",
        &group,
        "-t",
        &topic,
        "--to",
        "-5",
        "-p",
        "0",
        "--dry-run",
    ]);
    dry.ok();
    assert!(dry.stdout.contains("dry run"), "{}", dry.stdout);
    assert_eq!(Cluster::shared().committed(&store, &group), before);

    // -N on one partition.
    weir_run(&[
        "offsets",
        "--offsets-topic",
        &store,
        "set",
        "-g",
        &group,
        "-t",
        &topic,
        "--to",
        "-5",
        "-p",
        "0",
    ])
    .ok();
    let high0 = rows.iter().find(|r| r["partition"] == 0).unwrap()["high_watermark"]
        .as_i64()
        .unwrap();
    assert_eq!(Cluster::shared().committed(&store, &group)[&0], high0 - 5);

    // earliest: the next run reads everything again.
    weir_run(&[
        "offsets",
        "--offsets-topic",
        &store,
        "set",
        "-g",
        &group,
        "-t",
        &topic,
        "--to",
        "earliest",
    ])
    .ok();
    assert!(
        Cluster::shared()
            .committed(&store, &group)
            .values()
            .all(|&c| c == 0)
    );
    let again = consume(&store, &["-t", &topic, "-g", &group, "-e"]);
    again.ok();
    assert_eq!(pairs(&again.stdout).len(), 6_000);

    // delete: the group is new; with --from latest it reads nothing.
    let deleted = weir_run(&["offsets", "--offsets-topic", &store, "delete", "-g", &group]);
    deleted.ok();
    assert!(deleted.stdout.contains("deleted 6"), "{}", deleted.stdout);
    assert!(Cluster::shared().committed(&store, &group).is_empty());
    let groups = weir_run(&[
        "offsets",
        "--offsets-topic",
        &store,
        "groups",
        "--output",
        "json",
    ]);
    groups.ok();
    assert!(!groups.stdout.contains(&group), "{}", groups.stdout);
    let fresh = consume(
        &store,
        &["-t", &topic, "-g", &group, "-e", "--from", "latest"],
    );
    fresh.ok();
    assert_eq!(fresh.stdout, "");
}

#[test]
fn show_fails_for_a_topic_that_does_not_exist() {
    let (topic, store) = setup("show-missing", 2, 100);
    let group = random_topic("g");
    consume(&store, &["-t", &topic, "-g", &group, "-e"]).ok();
    let show_topic = |t: &str| {
        weir_run(&[
            "offsets",
            "--offsets-topic",
            &store,
            "show",
            "-g",
            &group,
            "-t",
            t,
            "--output",
            "json",
        ])
    };
    let missing = random_topic("nosuch");
    let run = show_topic(&missing);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("topic \"{missing}\" does not exist")),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");

    // A topic deleted after the group committed to it still shows its
    // commits, without a high watermark.
    weir_run(&["topics", "delete", &topic]).ok();
    let run = show_topic(&topic);
    run.ok();
    let shown: Value = serde_json::from_str(&run.stdout).unwrap();
    let rows = shown["partitions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{shown}");
    let total: i64 = rows.iter().map(|r| r["committed"].as_i64().unwrap()).sum();
    assert_eq!(total, 100);
    assert!(
        rows.iter().all(|r| r["high_watermark"].is_null()),
        "{shown}"
    );
}

#[test]
fn killed_consumers_lose_nothing_and_resume_at_the_commit() {
    let (topic, store) = setup("crash", 3, 2_000);
    let group = random_topic("g");

    // A producer keeps adding records while the consumer is killed and
    // restarted, so kills land mid-stream: about 1,000 a second, for
    // longer than the five rounds take (at 20 a millisecond it ran out
    // after the second round, and the later runs had nothing to commit;
    // each run now also waits up to the 6 s session timeout for the
    // killed one to leave the broker's group).
    let writer = Feeder::start(
        &["-t", &topic, "-K", ":", "--linger", "1ms", "-b", brokers()],
        (2_000..40_000).map(|i| format!("k{}:{i}", i % 17)),
        1,
        Duration::from_millis(1),
    );

    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    // Each run must start exactly at the previous run's last commit: what
    // it repeats is what was written after that commit, and no more.
    let mut previous: BTreeMap<i32, i64> = BTreeMap::new();
    let starts_at_commit = |written: &[(i32, i64)], previous: &BTreeMap<i32, i64>, round: usize| {
        for p in 0..3 {
            if let Some(first) = written.iter().find(|x| x.0 == p) {
                assert_eq!(
                    first.1,
                    previous.get(&p).copied().unwrap_or(0),
                    "round {round}: partition {p} did not resume at its commit"
                );
            }
        }
    };
    let cluster = Cluster::shared();
    // Killed runs that moved the committed offsets on.
    let mut progress = 0;
    let kills = [350u64, 800, 250, 600, 450];
    for (round, after) in kills.iter().enumerate() {
        let file = dir.path().join(format!("out-{round}"));
        let mut child = weir()
            .args([
                "consume",
                "-t",
                &topic,
                "-g",
                &group,
                "--offsets-topic",
                &store,
            ])
            .args([
                "--commit-interval",
                "200ms",
                "-f",
                "{partition} {offset}",
                "-b",
                brokers(),
            ])
            // Each run joins the broker's group; a killed one stays in it
            // until its session expires, and the next waits for that.
            .args(["--session-timeout", "6s", "--heartbeat-interval", "500ms"])
            .stdout(std::fs::File::create(&file).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Each run commits at least once (unless everything in the topic
        // is committed already), then dies `after` ms later: runs killed
        // before their first commit would resume nothing, and every check
        // below would hold without testing anything.
        let before = previous.values().sum::<i64>();
        let mut now = before;
        common::wait_for(&format!("round {round}: a commit"), || {
            now = cluster.committed_total(&store, &group);
            now > before || now == cluster.topic_end(&topic)
        });
        if now > before {
            progress += 1;
        }
        std::thread::sleep(Duration::from_millis(*after));
        child.kill().unwrap(); // SIGKILL: no final commit, no flush.
        child.wait().unwrap();
        let written = pairs(&std::fs::read_to_string(&file).unwrap());
        starts_at_commit(&written, &previous, round);
        // Never committed past what reached the file: the next run starts
        // at or before the first record this one did not write.
        let commits = cluster.committed(&store, &group);
        for (p, c) in &commits {
            let last = written.iter().filter(|x| x.0 == *p).map(|x| x.1).max();
            let start = outputs
                .iter()
                .flat_map(|o: &Vec<(i32, i64)>| o.iter())
                .filter(|x| x.0 == *p)
                .map(|x| x.1 + 1)
                .max()
                .unwrap_or(0);
            assert!(
                *c <= last.map_or(start, |l| l + 1).max(start),
                "round {round}: partition {p} committed {c} beyond the output ({last:?})"
            );
        }
        outputs.push(written);
        previous = commits;
    }
    writer.stop();
    assert_eq!(
        progress,
        kills.len(),
        "killed runs that committed anything before the kill"
    );

    // A last run reads to the end.
    let last = weir_run(&[
        "consume",
        "-t",
        &topic,
        "-g",
        &group,
        "--offsets-topic",
        &store,
        "-e",
        "-f",
        "{partition} {offset}",
    ]);
    last.ok();
    let written = pairs(&last.stdout);
    starts_at_commit(&written, &previous, kills.len());
    outputs.push(written);

    let high: BTreeMap<i32, i64> = cluster.committed(&store, &group);
    let mut seen: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for pair in outputs.iter().flatten() {
        *seen.entry(*pair).or_default() += 1;
    }
    for (p, h) in &high {
        for o in 0..*h {
            assert!(
                seen.contains_key(&(*p, o)),
                "partition {p} offset {o} never written"
            );
        }
    }
    let total: i64 = high.values().sum();
    assert!(total > 2_000, "the consumer got past the first records");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    // Each kill repeats at most what was written after the last commit.
    println!(
        "{total} records, {duplicates} written twice over {} kills, {progress} after a commit",
        kills.len()
    );
    assert!(
        duplicates < total as usize,
        "{duplicates} duplicates for {total} records"
    );
}

#[test]
fn another_instance_on_the_same_partitions_is_noticed() {
    let (topic, store) = setup("two", 2, 100);
    let group = random_topic("g");
    let mut a = weir()
        .args([
            "consume",
            "-t",
            &topic,
            "-g",
            &group,
            "--offsets-topic",
            &store,
        ])
        .args(["--commit-interval", "200ms", "--exclusive", "-b", brokers()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for a's first commit, then b commits the same partitions.
    let deadline = Instant::now() + STEP_TIMEOUT;
    while Cluster::shared().committed(&store, &group).is_empty() {
        assert!(Instant::now() < deadline, "no first commit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = a.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    consume(
        &store,
        &["-t", &topic, "-g", &group, "-e", "--from", "earliest"],
    )
    .ok();
    // a notices b's commits; b started later, so a (--exclusive) keeps
    // running and says that b is the one to yield.
    let noticed = lines
        .iter()
        .take_while(|_| Instant::now() < deadline + STEP_TIMEOUT)
        .find(|l| l.contains(&format!("group \"{group}\": instance")))
        .expect("a never noticed b");
    assert!(noticed.contains("started later"), "{noticed}");
    assert!(
        a.try_wait().unwrap().is_none(),
        "the earlier instance exited"
    );
    a.kill().ok();
    a.wait().ok();
    reader.join().unwrap();
}

#[test]
fn unreadable_records_in_the_store_are_skipped() {
    let (topic, store) = setup("malformed", 1, 50);
    let group = random_topic("g");
    consume(&store, &["-t", &topic, "-g", &group, "-c", "20"]).ok();
    // Another client writes garbage to the group's store partition.
    let partition = murmur2_partition(group.as_bytes(), 6).to_string();
    let garbage = format!(
        "garbage-key|x\n[1,\"{group}\",\"{topic}\",0]|not json\n[1,\"{group}\",\"{topic}\",0]|{{\"offset\":\"x\"}}\n"
    );
    common::produce(
        &["-t", &store, "-p", &partition, "-K", "|"],
        garbage.as_bytes(),
    )
    .ok();
    let rest = consume(&store, &["-t", &topic, "-g", &group, "-e"]);
    rest.ok();
    let read = pairs(&rest.stdout);
    assert_eq!(read.first(), Some(&(0, 20)), "resumed at the commit");
    assert_eq!(read.len(), 30);
    assert_eq!(
        rest.stderr
            .matches("skipping an unreadable record of the offsets topic")
            .count(),
        3,
        "{}",
        rest.stderr
    );
    assert!(rest.stderr.contains("offset="), "{}", rest.stderr);
}

#[test]
fn loading_after_the_broker_compacted_the_store() {
    let address = brokers();
    let topic = random_topic("compacted");
    let group = random_topic("g");
    let store = random_topic("store");
    let weir_on = |args: &[&str]| {
        let mut cmd = weir();
        cmd.args(args).args(["-b", address]);
        run(&mut cmd)
    };
    weir_on(&["topics", "create", &topic, "--partitions", "2"]).ok();
    // Kafka compacts only closed segments: a store whose segments close
    // after 100 ms and are cleaned at once, so the broker's log cleaner
    // (which wakes every 15 s) compacts it while the test waits.
    weir_on(&[
        "topics",
        "create",
        &store,
        "--partitions",
        "6",
        "--config",
        "cleanup.policy=compact",
        "--config",
        "segment.ms=100",
        "--config",
        "min.cleanable.dirty.ratio=0.01",
        "--config",
        "delete.retention.ms=100",
    ])
    .ok();
    let mut produced = 0;
    for round in 0..25 {
        let input: String = (0..8).map(|i| format!("k{i}:{round}\n")).collect();
        let mut cmd = weir();
        cmd.args(["produce", "-t", &topic, "-K", ":", "-b", address]);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), input).unwrap();
        cmd.stdin(std::fs::File::open(file.path()).unwrap());
        run(&mut cmd).ok();
        produced += 8;
        let out = weir_on(&[
            "consume",
            "-t",
            &topic,
            "-g",
            &group,
            "--offsets-topic",
            &store,
            "-e",
            "-f",
            "{offset}",
        ]);
        out.ok();
        assert_eq!(
            out.stdout.lines().count(),
            8,
            "round {round} read only the new records"
        );
    }
    // Wait until the broker has compacted the group's store partition.
    let partition = murmur2_partition(group.as_bytes(), 6);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A commit to the same store partition rolls the segment before
        // it, once 100 ms have passed.
        let roll = loop {
            let name = random_topic("roll");
            if murmur2_partition(name.as_bytes(), 6) == partition {
                break name;
            }
        };
        weir_on(&[
            "offsets",
            "--offsets-topic",
            &store,
            "set",
            "-g",
            &roll,
            "-t",
            &topic,
            "--to",
            "earliest",
        ])
        .ok();
        let described = weir_on(&["topics", "describe", &store, "--output", "json"]);
        described.ok();
        let v: Value = serde_json::from_str(&described.stdout).unwrap();
        let p = &v["partitions"][partition as usize];
        let (earliest, latest) = (
            p["earliest"].as_i64().unwrap(),
            p["latest"].as_i64().unwrap(),
        );
        let stored = weir_on(&[
            "consume",
            "-t",
            &store,
            "-p",
            &partition.to_string(),
            "-e",
            "-f",
            "{offset}",
        ]);
        stored.ok();
        let kept = stored.stdout.lines().count() as i64;
        if earliest > 0 || kept < latest - earliest {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store was never compacted ({kept} of {latest} kept)"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let shown = weir_on(&[
        "offsets",
        "--offsets-topic",
        &store,
        "show",
        "-g",
        &group,
        "--output",
        "json",
    ]);
    shown.ok();
    let v: Value = serde_json::from_str(&shown.stdout).unwrap();
    let total: i64 = v["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["lag"], 0, "{r}");
            r["committed"].as_i64().unwrap()
        })
        .sum();
    assert_eq!(total, produced);
    let out = weir_on(&[
        "consume",
        "-t",
        &topic,
        "-g",
        &group,
        "--offsets-topic",
        &store,
        "-e",
    ]);
    out.ok();
    assert_eq!(out.stdout, "", "nothing new after compaction");
}

#[test]
fn no_commit_sigint_and_an_uncompacted_store() {
    let (topic, store) = setup("flags", 2, 300);
    let group = random_topic("g");
    // A store that exists without compaction: used, with a warning.
    weir_run(&["topics", "create", &store, "--partitions", "6"]).ok();
    let first = consume(&store, &["-t", &topic, "-g", &group, "-c", "100"]);
    first.ok();
    assert!(first.stderr.contains("not compacted"), "{}", first.stderr);
    let groups = weir_run(&[
        "offsets",
        "--offsets-topic",
        &store,
        "groups",
        "--output",
        "json",
    ]);
    groups.ok();
    let listed: Value = serde_json::from_str(&groups.stdout).unwrap();
    // The broker's groups are listed too: find this one.
    let ours = listed["groups"].as_array().unwrap();
    assert!(
        ours.iter().any(|g| g["group"] == group.as_str()),
        "{listed}"
    );
    let before = Cluster::shared().committed(&store, &group);
    assert_eq!(before.values().sum::<i64>(), 100);

    // --no-commit reads from the group's offsets and leaves them alone.
    let peek = consume(&store, &["-t", &topic, "-g", &group, "-e", "--no-commit"]);
    peek.ok();
    assert_eq!(pairs(&peek.stdout).len(), 200);
    assert_eq!(Cluster::shared().committed(&store, &group), before);

    // SIGINT: the last commit covers everything written.
    let mut child = weir()
        .args([
            "consume",
            "-t",
            &topic,
            "-g",
            &group,
            "--offsets-topic",
            &store,
        ])
        .args(["--commit-interval", "1h", "-b", brokers()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        let mut count = 0;
        for _ in BufReader::new(stdout).lines().map_while(Result::ok) {
            count += 1;
            tx.send(count).ok();
        }
        count
    });
    // Wait until all 200 are out (the store shows nothing new until then:
    // the commit interval is an hour), so the SIGINT commit has records to
    // cover.
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut out = 0;
    while out < 200 {
        out = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("only {out} of 200 records written before the SIGINT"));
    }
    // SAFETY: signalling our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = wait_exit(&mut child, "weir consume after SIGINT");
    assert_eq!(status.code(), Some(130));
    let written = lines.join().unwrap() as i64;
    let after = Cluster::shared().committed(&store, &group);
    assert_eq!(
        after.values().sum::<i64>(),
        100 + written,
        "commit on SIGINT"
    );
}

/// `weir offsets at -t T @TIME` (kcat -Q): per partition the first offset
/// at or after the time, as Kafka's GetOffsetShell finds it; a partition
/// with no record that late gives its end offset, marked as the end.
#[test]
fn offsets_at_a_time_are_what_kafkas_get_offset_shell_finds() {
    let cluster = Cluster::shared();
    let topic = random_topic("offsets-at");
    cluster.create_topic(&topic, 2);
    // An hour ago, within any timestamp limit.
    let base = weir::timestamp::now_ms() - 3_600_000;
    let lines = |times: &[i64]| -> String {
        times
            .iter()
            .map(|t| format!("{{\"value\":\"v\",\"timestamp\":{}}}\n", base + t))
            .collect()
    };
    cluster
        .produce(
            &["-t", &topic, "-p", "0", "--format", "json"],
            lines(&[0, 1_000, 2_000]).as_bytes(),
        )
        .ok();
    cluster
        .produce(
            &["-t", &topic, "-p", "1", "--format", "json"],
            lines(&[5_000, 6_000]).as_bytes(),
        )
        .ok();

    let at = |time: i64| -> Value {
        let run = cluster.weir(&[
            "offsets",
            "at",
            "-t",
            &topic,
            &format!("@{time}"),
            "--output",
            "json",
        ]);
        run.ok();
        serde_json::from_str(&run.stdout).unwrap()
    };
    let rows = |v: &Value| -> Vec<(i64, Option<i64>, bool)> {
        v["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["offset"].as_i64().unwrap(),
                    p["timestamp_ms"].as_i64(),
                    p["end"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let early = at(base + 1_500);
    assert_eq!(
        rows(&early),
        [
            (2, Some(base + 2_000), false),
            (0, Some(base + 5_000), false)
        ],
        "{early}"
    );
    let late = at(base + 5_500);
    assert_eq!(
        rows(&late),
        [(3, None, true), (1, Some(base + 6_000), false)],
        "{late}"
    );

    // Kafka's own tool agrees where a record is that late.
    let shell = common::kafka_tool(
        "org.apache.kafka.tools.GetOffsetShell",
        &[
            "--bootstrap-server",
            cluster.address(),
            "--topic",
            &topic,
            "--time",
            &(base + 1_500).to_string(),
        ],
    );
    let mut java: Vec<_> = shell.stdout.lines().map(str::to_owned).collect();
    java.sort();
    assert_eq!(
        java,
        [format!("{topic}:0:2"), format!("{topic}:1:0")],
        "{}",
        shell.stderr
    );

    // The text table, and a duration ago.
    let text = cluster.weir(&["offsets", "at", "-t", &topic, "2h"]);
    text.ok();
    assert!(text.stdout.contains("RECORD TIME"), "{}", text.stdout);
    let first: Vec<_> = text
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(2).unwrap().to_owned())
        .collect();
    assert_eq!(first, ["0", "0"], "{}", text.stdout);
    // A bare number is an offset elsewhere, so not a time here.
    cluster
        .weir(&["offsets", "at", "-t", &topic, "1700000000000"])
        .expect_code(2);
}
