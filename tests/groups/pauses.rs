//! Measurements, not pass/fail tests: how long partitions pause while a
//! group rebalances, with records arriving at a steady pace. `rebalance_gap`:
//! members joining, by protocol. `leave_and_kill_gap`: on the consumer
//! group protocol (KIP-848), a member that LEAVES (SIGTERM) and one that
//! is SIGKILLed, for three `weir consume -g` members and for three Java
//! console consumers (`group.protocol=consumer`). Run with
//! `cargo test --test groups _gap -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::assignors::java_named;
use super::{Member, members, start, wait};
use crate::common::{self, Cluster, random_topic};

/// Printed records of a member: weir's `--json` lines, the console
/// consumer's `Partition:N<TAB>value`.
fn lines(member: &Member) -> usize {
    std::fs::read_to_string(&member.out)
        .unwrap_or_default()
        .lines()
        .count()
}

/// SIGTERM, then its exit (the console consumer's is 143).
fn leave(mut member: Member) {
    member.signal(libc::SIGTERM);
    common::wait_exit(&mut member.child, &member.name);
}

/// The first arrival in `times` at or after `from`.
fn first_after(times: Option<&Vec<Instant>>, from: Instant) -> Option<Instant> {
    times?.iter().copied().find(|t| *t >= from)
}

#[test]
#[ignore = "a measurement: prints the pauses, asserts nothing about them"]
fn leave_and_kill_gap() {
    let cluster = Cluster::shared();
    let kinds = std::env::var("WEIR_PAUSE_KINDS").unwrap_or_else(|_| "weir,java".to_owned());
    for kind in kinds.split(',') {
        let topic = random_topic("pause-in");
        let group = random_topic("pause-group");
        cluster.create_topic(&topic, 4);
        let dir = tempfile::tempdir().unwrap();
        // About 400 records a second over the 4 partitions (64 keys).
        let mut producer = common::weir()
            .args(["produce", "-t", &topic, "-K", ":", "-b", cluster.address()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = producer.stdin.take().unwrap();
        let producing = Arc::new(AtomicBool::new(true));
        let on = producing.clone();
        let pacer = std::thread::spawn(move || {
            let mut n = 0u64;
            while on.load(Relaxed) {
                for _ in 0..5 {
                    writeln!(input, "k{}:v{n}", n % 64).unwrap();
                    n += 1;
                }
                input.flush().unwrap();
                std::thread::sleep(Duration::from_millis(12));
            }
        });
        let member = |name: &str| match kind {
            // The broker's timings, as for the Java consumer: heartbeats
            // every 5 s (group.consumer.heartbeat.interval.ms).
            "weir" => start(
                dir.path(),
                &cluster,
                name,
                &[
                    "consume",
                    "-t",
                    &topic,
                    "-g",
                    &group,
                    "--group-protocol",
                    "consumer",
                    "--json",
                ],
            ),
            _ => java_named(
                dir.path(),
                &cluster,
                &topic,
                &group,
                &[
                    "--consumer-property",
                    "group.protocol=consumer",
                    "--formatter-property",
                    "print.partition=true",
                ],
                name,
            ),
        };
        let a = member("a");
        wait(dir.path(), "a alone", || members(&cluster, &group) == [4]);
        let b = member("b");
        let c = member("c");
        wait(dir.path(), "three members holding partitions", || {
            let m = members(&cluster, &group);
            m.len() == 3 && m.iter().all(|&p| p > 0) && m.iter().sum::<usize>() == 4
        });
        let times = |m: &Member| Arrivals::tail(m.out.clone());
        let (a_times, b_times, c_times) = (times(&a), times(&b), times(&c));
        let settled = lines(&a) + 400;
        wait(dir.path(), "a reading", || lines(&a) > settled);
        let started = Instant::now();
        let settled = lines(&a) + 400;
        wait(dir.path(), "a reading on", || lines(&a) > settled);

        // c leaves: its partitions go to a and b.
        let leaves = Instant::now();
        leave(c);
        let c_left = Instant::now();
        wait(dir.path(), "two members holding partitions", || {
            let m = members(&cluster, &group);
            m.len() == 2 && m.iter().sum::<usize>() == 4
        });
        let settled = (lines(&a) + 400, lines(&b) + 200);
        wait(dir.path(), "a and b reading on", || {
            lines(&a) > settled.0 && lines(&b) > settled.1
        });

        // b is killed: the coordinator moves its partitions to a once
        // b's session expires (the broker's
        // group.consumer.session.timeout.ms, 45 s by default).
        let killed = Instant::now();
        b.signal(libc::SIGKILL);
        wait(dir.path(), "a alone again", || {
            members(&cluster, &group) == [4]
        });
        let settled = lines(&a) + 400;
        wait(dir.path(), "a reading on", || lines(&a) > settled);
        let end = Instant::now();
        producing.store(false, Relaxed);
        pacer.join().unwrap();
        let _ = producer.wait();
        let (a_times, b_times, c_times) = (a_times.finish(), b_times.finish(), c_times.finish());

        println!(
            "{kind}: c's SIGTERM to its exit: {} ms",
            (c_left - leaves).as_millis()
        );
        // The leave: a's and b's partitions before it, and c's.
        let held = |t: &BTreeMap<i64, Vec<Instant>>| -> Vec<i64> {
            t.iter()
                .filter(|(_, v)| v.iter().any(|x| *x >= started && *x < leaves))
                .map(|(p, _)| *p)
                .collect()
        };
        for (name, t) in [("a", &a_times), ("b", &b_times)] {
            for p in held(t) {
                println!(
                    "{kind}: leave: {name} keeps partition {p}: longest pause {} ms (before: {} ms)",
                    longest_gap(&t[&p], leaves, killed),
                    longest_gap(&t[&p], started, leaves),
                );
            }
        }
        for p in held(&c_times) {
            let last = c_times[&p].iter().copied().filter(|x| *x < c_left).max();
            let next = [("a", &a_times), ("b", &b_times)]
                .into_iter()
                .filter_map(|(n, t)| Some((n, first_after(t.get(&p), leaves)?)))
                .min_by_key(|(_, t)| *t);
            match (last, next) {
                (Some(last), Some((to, next))) => println!(
                    "{kind}: leave: partition {p} moves from c to {to}: no record for {} ms",
                    (next - last).as_millis()
                ),
                _ => println!("{kind}: leave: partition {p} of c: not read again"),
            }
        }
        // The kill: a's partitions before it, and b's.
        let held_at_kill = |t: &BTreeMap<i64, Vec<Instant>>| -> Vec<i64> {
            t.iter()
                .filter(|(_, v)| {
                    v.iter()
                        .any(|x| *x >= killed - Duration::from_secs(1) && *x < killed)
                })
                .map(|(p, _)| *p)
                .collect()
        };
        for p in held_at_kill(&a_times) {
            println!(
                "{kind}: SIGKILL: a keeps partition {p}: longest pause {} ms",
                longest_gap(&a_times[&p], killed, end),
            );
        }
        for p in held_at_kill(&b_times) {
            let last = b_times[&p].iter().copied().filter(|x| *x < end).max();
            match (last, first_after(a_times.get(&p), killed)) {
                (Some(last), Some(next)) => println!(
                    "{kind}: SIGKILL: partition {p} moves from b to a: no record for {} ms",
                    (next - last).as_millis()
                ),
                _ => println!("{kind}: SIGKILL: partition {p} of b: not read again"),
            }
        }
        leave(a);
    }
}

/// Arrival times of a member's records, by partition, taken by tailing
/// its `--json` output (or the console consumer's, printed with
/// `print.partition=true`) as it is written.
struct Arrivals {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<BTreeMap<i64, Vec<Instant>>>,
}

impl Arrivals {
    fn tail(path: std::path::PathBuf) -> Self {
        use std::io::Read;
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut times: BTreeMap<i64, Vec<_>> = BTreeMap::new();
            let mut file = std::fs::File::open(&path).unwrap();
            let mut partial = String::new();
            while !done.load(Relaxed) {
                let mut chunk = String::new();
                file.read_to_string(&mut chunk).unwrap();
                let now = Instant::now();
                partial.push_str(&chunk);
                while let Some(end) = partial.find('\n') {
                    let line: String = partial.drain(..=end).collect();
                    let partition = match line.split_once("Partition:") {
                        Some((_, rest)) => rest
                            .split(|c: char| !c.is_ascii_digit())
                            .next()
                            .and_then(|p| p.parse().ok()),
                        None => serde_json::from_str::<serde_json::Value>(&line)
                            .ok()
                            .and_then(|r| r["partition"].as_i64()),
                    };
                    // Not a record: the console consumer's notes.
                    if let Some(p) = partition {
                        times.entry(p).or_default().push(now);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            times
        });
        Self { stop, thread }
    }

    fn finish(self) -> BTreeMap<i64, Vec<Instant>> {
        self.stop.store(true, Relaxed);
        self.thread.join().unwrap()
    }
}

/// The longest pause, in ms, between records of one partition that
/// arrived from `from` on, before `to`.
fn longest_gap(times: &[Instant], from: Instant, to: Instant) -> u128 {
    times
        .iter()
        .filter(|t| **t >= from && **t < to)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| (*w[1] - *w[0]).as_millis())
        .max()
        .unwrap_or(0)
}

/// The partitions in `times` still arriving at the end.
fn still_read(times: &BTreeMap<i64, Vec<Instant>>, end: Instant) -> Vec<i64> {
    times
        .iter()
        .filter(|(_, t)| t.last().is_some_and(|t| end - *t < Duration::from_secs(1)))
        .map(|(p, _)| *p)
        .collect()
}

/// Not a pass/fail test: how long partitions that do not move pause
/// while members join, eager (`sticky`) against cooperative
/// (`cooperative-sticky`) and the consumer protocol (KIP-848), with records arriving at about 400 a second
/// over 4 partitions: b joins a (a gives up two of its four), then c
/// joins a and b (one of them gives up one of its two, the other none).
/// Run with `cargo test --test groups rebalance_gap -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: prints the pauses, asserts nothing about them"]
fn rebalance_gap() {
    use std::io::Write;
    let cluster = Cluster::shared();
    for assignor in ["sticky", "cooperative-sticky", "consumer"] {
        let topic = random_topic("gap-in");
        let group = random_topic("gap-group");
        cluster.create_topic(&topic, 4);
        let dir = tempfile::tempdir().unwrap();
        let mut producer = common::weir()
            .args(["produce", "-t", &topic, "-K", ":", "-b", cluster.address()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = producer.stdin.take().unwrap();
        let producing = Arc::new(AtomicBool::new(true));
        let on = producing.clone();
        let pacer = std::thread::spawn(move || {
            let mut n = 0u64;
            while on.load(Relaxed) {
                for _ in 0..5 {
                    writeln!(input, "k{}:v{n}", n % 64).unwrap();
                    n += 1;
                }
                input.flush().unwrap();
                std::thread::sleep(Duration::from_millis(12));
            }
        });
        // The Java consumer's timeouts (weir's defaults): a member hears
        // of a rebalance at its next heartbeat, within 3 s.
        // "consumer": the consumer group protocol (KIP-848), the broker's
        // uniform assignor.
        let (flag, value) = match assignor {
            "consumer" => ("--group-protocol", "consumer"),
            _ => ("--assignor", assignor),
        };
        let member = |name: &str| {
            let args = ["consume", "-t", &topic, "-g", &group, flag, value];
            start(
                dir.path(),
                &cluster,
                name,
                &[&args[..], &["--json"]].concat(),
            )
        };
        let a = member("a");
        wait(dir.path(), "a alone", || members(&cluster, &group) == [4]);
        let a_times = Arrivals::tail(a.out.clone());
        let started = Instant::now();
        wait(dir.path(), "a reading", || lines(&a) > 400);
        let settled = lines(&a) + 1000;
        wait(dir.path(), "a reading on", || lines(&a) > settled);
        let b_joins = Instant::now();
        let b = member("b");
        wait(dir.path(), "a and b, two each", || {
            members(&cluster, &group) == [2, 2]
        });
        let b_times = Arrivals::tail(b.out.clone());
        let settled = lines(&a) + 600;
        wait(dir.path(), "a reading on", || lines(&a) > settled);
        let c_joins = Instant::now();
        let c = member("c");
        wait(dir.path(), "three members", || {
            let mut m = members(&cluster, &group);
            m.sort();
            m == [1, 1, 2]
        });
        let settled = lines(&c) + 300;
        wait(dir.path(), "c reading", || lines(&c) > settled);
        let (a_times, b_times) = (a_times.finish(), b_times.finish());
        let end = Instant::now();
        producing.store(false, Relaxed);
        pacer.join().unwrap();
        let _ = producer.wait();
        for p in still_read(&a_times, end) {
            println!(
                "{assignor}: a alone, partition {p}: longest pause {} ms; b joins, a keeps it: longest pause {} ms",
                longest_gap(&a_times[&p][..], started, b_joins),
                longest_gap(&a_times[&p][..], b_joins, c_joins)
            );
        }
        for (name, times) in [("a", &a_times), ("b", &b_times)] {
            let kept = still_read(times, end);
            for p in &kept {
                println!(
                    "{assignor}: c joins, {name} (keeping {} partitions) keeps partition {p}: longest pause {} ms",
                    kept.len(),
                    longest_gap(&times[p][..], c_joins, end)
                );
            }
        }
        c.stop();
        b.stop();
        a.stop();
    }
}
