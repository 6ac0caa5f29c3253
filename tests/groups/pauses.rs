//! A measurement, not a pass/fail test: on the consumer group protocol
//! (KIP-848), how long partitions pause when a member LEAVES (SIGTERM)
//! and when one is SIGKILLed, for three `weir consume -g` members and for
//! three Java console consumers (`group.protocol=consumer`), with the
//! same paced input. Run with
//! `cargo test --test groups leave_and_kill_gap -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::assignors::{Arrivals, java_named, longest_gap, weir_member};
use super::{Member, members, wait};
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
    for kind in ["weir", "java"] {
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
            "weir" => weir_member(
                dir.path(),
                &cluster,
                name,
                &topic,
                &group,
                &["--group-protocol", "consumer", "--json"],
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
