//! `weir pipe --share-group` against the project's Kafka 4.4: a record
//! that cannot be transformed is rejected once and never delivered again;
//! a member stopped with SIGTERM accepts what its output acknowledged and
//! releases the rest, so that another member pipes every other record
//! exactly once; a SIGKILLed member's records come back (after the
//! acquisition lock's timeout, 10 s on the test broker) to another
//! member, at least once; `-c N` accepts N and releases the rest; the
//! metrics count each kind of acknowledgement; `--exactly-once` is
//! refused in one line.

mod common;

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use common::{Cluster, random_topic, wait_until, weir};

/// A `weir pipe --share-group` member, its stderr in a file, killed when
/// dropped.
struct Piper {
    child: Child,
    err: tempfile::NamedTempFile,
}

impl Piper {
    fn start(cluster: &Cluster, input: &str, output: &str, group: &str, extra: &[&str]) -> Self {
        let err = tempfile::NamedTempFile::new().unwrap();
        let child = weir()
            .args(["pipe", "-t", input, "--to", output, "--share-group", group])
            .args(extra)
            .args(["-b", cluster.address()])
            .stderr(err.reopen().unwrap())
            .spawn()
            .unwrap();
        Self { child, err }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.err.path()).unwrap_or_default()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// SIGTERM, then its exit within the limit; its stderr.
    fn stop(&mut self) -> String {
        self.signal(libc::SIGTERM);
        let status = wait_until(&mut self.child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("a member did not stop: {}", self.stderr()));
        assert!(status.success(), "a member failed: {}", self.stderr());
        self.stderr()
    }

    /// The acknowledgements of its end summary: (accept, release, reject).
    fn acknowledged(stderr: &str) -> (u64, u64, u64) {
        let line = stderr
            .lines()
            .find(|l| l.starts_with("weir: piped "))
            .unwrap_or_else(|| panic!("no summary: {stderr}"));
        let tail = line
            .split_once("acknowledged ")
            .unwrap_or_else(|| panic!("no acknowledgements: {line}"))
            .1;
        let n: Vec<u64> = tail
            .split(", ")
            .map(|part| part.split(' ').next().unwrap().parse().unwrap())
            .take(3)
            .collect();
        (n[0], n[1], n[2])
    }
}

impl Drop for Piper {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The values of `topic`, each with how often it is there.
fn values(cluster: &Cluster, topic: &str) -> BTreeMap<String, u32> {
    let shown = cluster.weir(&["consume", "-t", topic, "-e", "-f", "{value}"]);
    shown.ok();
    let mut seen = BTreeMap::new();
    for line in shown.stdout.lines() {
        *seen.entry(line.to_owned()).or_default() += 1;
    }
    seen
}

/// `weir produce` flags for `topic` in batches of some 50 records: a
/// share fetch acquires whole batches, so that a member holds about 500
/// records at a time (its max_records) rather than the whole topic.
fn small_batches(topic: &str) -> [&str; 4] {
    ["-t", topic, "--batch-bytes", "1024"]
}

/// Waits for `condition`, up to `limit`; panics with `what` and the
/// members' stderr past it.
fn wait(what: &str, limit: Duration, members: &[&Piper], mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() > deadline {
            let errs: Vec<String> = members.iter().map(|m| m.stderr()).collect();
            panic!(
                "{what}: not within {limit:?}; members said:\n{}",
                errs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_bad_record_is_rejected_once_and_every_other_is_piped_exactly_once() {
    const GOOD: usize = 5_000;
    const BAD_AT: usize = 1_000;
    let cluster = Cluster::shared();
    let input = random_topic("spipe-in");
    let output = random_topic("spipe-out");
    let group = random_topic("spipe-group");
    cluster.create_topic(&input, 1);
    cluster.create_topic(&output, 1);
    let mut lines = String::new();
    for n in 0..GOOD {
        if n == BAD_AT {
            lines.push_str("not json\n");
        }
        lines.push_str(&format!("{{\"n\":{n}}}\n"));
    }
    cluster
        .produce(&small_batches(&input), lines.as_bytes())
        .ok();

    // A slow first member (its output waits 1 s per batch), stopped with
    // SIGTERM while records are in flight: what its output acknowledged
    // is accepted, the rest released.
    let transform = ["--value", "json:/n"];
    let mut first = Piper::start(
        &cluster,
        &input,
        &output,
        &group,
        &[&transform[..], &["--from", "earliest", "--linger", "1s"]].concat(),
    );
    wait(
        "the first member pipes records",
        Duration::from_secs(40),
        &[&first],
        || !values(&cluster, &output).is_empty(),
    );
    let first_said = first.stop();
    let (accepted_first, _, rejected_first) = Piper::acknowledged(&first_said);
    assert!(accepted_first > 0, "{first_said}");
    assert!(
        (accepted_first as usize) < GOOD,
        "the first member was to be stopped half-way: {first_said}"
    );

    let mut second = Piper::start(&cluster, &input, &output, &group, &transform);
    wait(
        "every good record in the output",
        Duration::from_secs(60),
        &[&second],
        || values(&cluster, &output).len() >= GOOD,
    );
    let second_said = second.stop();
    let (_, _, rejected_second) = Piper::acknowledged(&second_said);
    assert_eq!(
        rejected_first + rejected_second,
        1,
        "the bad record is rejected once:\n{first_said}\n---\n{second_said}"
    );
    let said = format!("{first_said}{second_said}");
    for line in said.lines().filter(|l| l.starts_with("weir: piped")) {
        eprintln!("{line}");
    }
    assert!(
        said.contains("1 rejected (no key, value or filter field could be read)"),
        "the summary counts the rejected record:\n{said}"
    );
    let out = values(&cluster, &output);
    let twice: Vec<_> = out.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "piped more than once: {twice:?}");
    let expected: Vec<String> = (0..GOOD).map(|n| n.to_string()).collect();
    let mut got: Vec<String> = out.into_keys().collect();
    got.sort_by_key(|v| v.parse::<usize>().unwrap_or(usize::MAX));
    assert_eq!(got, expected);

    // Everything is acknowledged and the bad record archived: a new
    // member of the group gets only what is produced after.
    let mut late = weir()
        .args(["consume", "-t", &input, "--share-group", &group])
        .args(["-f", "{offset} {delivery_count}", "-c", "1"])
        .args(["-b", cluster.address()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    cluster
        .produce(&["-t", &input], format!("{{\"n\":{GOOD}}}\n").as_bytes())
        .ok();
    let status = wait_until(&mut late, Duration::from_secs(30));
    if status.is_none() {
        late.kill().ok();
        late.wait().ok();
    }
    assert!(status.is_some_and(|s| s.success()), "the late member");
    let mut got = String::new();
    std::io::Read::read_to_string(&mut late.stdout.take().unwrap(), &mut got).unwrap();
    assert_eq!(got.trim(), format!("{} 1", GOOD + 1));
}

#[test]
fn a_killed_pipe_members_records_come_back_to_another_member() {
    const RECORDS: usize = 5_000;
    let cluster = Cluster::shared();
    let input = random_topic("spipe-kill-in");
    let output = random_topic("spipe-kill-out");
    let group = random_topic("spipe-kill-group");
    cluster.create_topic(&input, 1);
    cluster.create_topic(&output, 1);
    let lines: String = (0..RECORDS).map(|n| format!("{n}\n")).collect();
    cluster
        .produce(&small_batches(&input), lines.as_bytes())
        .ok();

    // The output value is the input's and its delivery count.
    let template = ["-f", "{value} {delivery_count}"];
    let mut killed = Piper::start(
        &cluster,
        &input,
        &output,
        &group,
        &[&template[..], &["--from", "earliest", "--linger", "1s"]].concat(),
    );
    wait(
        "the first member pipes records",
        Duration::from_secs(40),
        &[&killed],
        || !values(&cluster, &output).is_empty(),
    );
    // SIGKILL while it holds records handed to its output, not yet
    // acknowledged: they come back when their locks expire.
    killed.signal(libc::SIGKILL);
    wait_until(&mut killed.child, Duration::from_secs(10)).expect("SIGKILL");

    let mut other = Piper::start(&cluster, &input, &output, &group, &template);
    let every_value = |out: &BTreeMap<String, u32>| {
        let mut seen = std::collections::BTreeSet::new();
        for line in out.keys() {
            if let Some((value, _)) = line.split_once(' ') {
                seen.insert(value.to_owned());
            }
        }
        seen.len() == RECORDS
    };
    wait(
        "every input value in the output (the killed member's after their locks expired)",
        Duration::from_secs(60),
        &[&other],
        || every_value(&values(&cluster, &output)),
    );
    other.stop();
    let out = values(&cluster, &output);
    let same: Vec<_> = out.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(same.is_empty(), "piped twice in one delivery: {same:?}");
    let redelivered: Vec<&String> = out
        .keys()
        .filter(|line| line.split_once(' ').is_some_and(|(_, count)| count != "1"))
        .collect();
    assert!(
        !redelivered.is_empty(),
        "nothing the killed member held came back to the other"
    );
    // A value piped twice is one the killed member held: its second copy
    // is a redelivery.
    let mut copies: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in out.keys() {
        let (value, count) = line.split_once(' ').unwrap();
        copies.entry(value).or_default().push(count);
    }
    for (value, counts) in copies {
        if counts.len() > 1 {
            assert!(
                counts.iter().any(|c| *c != "1"),
                "{value} piped twice, neither a redelivery: {counts:?}"
            );
        }
    }
}

#[test]
fn exactly_once_with_a_share_group_is_refused_in_one_line() {
    // Refused before any broker is asked.
    let run = common::run(weir().args([
        "pipe",
        "-t",
        "in",
        "--to",
        "out",
        "--share-group",
        "g",
        "--exactly-once",
        "-b",
        "127.0.0.1:1",
    ]));
    run.expect_code(2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].contains("share groups have no transactional acknowledgement"),
        "{}",
        run.stderr
    );
}

/// A `GET` of `path` at `addr`: status and body.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

/// The value of the one sample of `name` in a `/metrics` body.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_pipe_member_counts_each_kind_of_acknowledgement() {
    let cluster = Cluster::shared();
    let input = random_topic("spipe-metrics-in");
    let output = random_topic("spipe-metrics-out");
    let group = random_topic("spipe-metrics-group");
    cluster.create_topic(&input, 1);
    cluster.create_topic(&output, 1);
    // 100 JSON records, 10 of which the filter leaves out, and one that is
    // not JSON (the filter cannot read it).
    let mut lines: String = (0..100)
        .map(|n| format!("{{\"n\":{n},\"keep\":{}}}\n", n % 10 != 0))
        .collect();
    lines.push_str("oops\n");
    cluster.produce(&["-t", &input], lines.as_bytes()).ok();
    let addr = format!("127.0.0.1:{}", common::free_port());
    let mut member = Piper::start(
        &cluster,
        &input,
        &output,
        &group,
        &[
            "--from",
            "earliest",
            "--where",
            "/keep=true",
            "-f",
            "{value}",
            "--metrics-addr",
            &addr,
        ],
    );
    let mut body = String::new();
    wait(
        "every record acknowledged",
        Duration::from_secs(30),
        &[&member],
        || {
            body = get(&addr, "/metrics").map(|r| r.1).unwrap_or_default();
            sample(&body, "weir_share_accepted_total") == Some(100.0)
                && sample(&body, "weir_share_rejected_total") == Some(1.0)
        },
    );
    assert_eq!(
        sample(&body, "weir_share_released_total"),
        Some(0.0),
        "{body}"
    );
    let said = member.stop();
    assert_eq!(Piper::acknowledged(&said), (100, 0, 1), "{said}");
    assert!(said.contains("weir: piped 90 of 101"), "{said}");
    assert!(said.contains("10 filtered out (accepted)"), "{said}");
    let out = values(&cluster, &output);
    assert_eq!(out.len(), 90, "{out:?}");
}

#[test]
fn a_pipe_member_stops_after_count_and_releases_the_rest() {
    let cluster = Cluster::shared();
    let input = random_topic("spipe-count-in");
    let output = random_topic("spipe-count-out");
    let group = random_topic("spipe-count-group");
    cluster.create_topic(&input, 1);
    cluster.create_topic(&output, 1);
    let lines: String = (0..100).map(|n| format!("{n}\n")).collect();
    cluster
        .produce(&small_batches(&input), lines.as_bytes())
        .ok();
    let run = |count: &str, extra: &[&str]| {
        let mut member = Piper::start(
            &cluster,
            &input,
            &output,
            &group,
            &[&["-c", count][..], extra].concat(),
        );
        let status = wait_until(&mut member.child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("-c {count} did not stop: {}", member.stderr()));
        assert!(status.success(), "{}", member.stderr());
        member.stderr()
    };
    let said = run("30", &["--from", "earliest"]);
    let (accepted, released, rejected) = Piper::acknowledged(&said);
    assert_eq!((accepted, rejected), (30, 0), "{said}");
    assert_eq!(values(&cluster, &output).len(), 30);
    // What it acquired past 30 went back at once: the next member gets
    // it without waiting for a lock to expire.
    let said = run("70", &[]);
    let (accepted, _, _) = Piper::acknowledged(&said);
    assert_eq!(accepted, 70, "{said}");
    let out = values(&cluster, &output);
    assert!(out.values().all(|&n| n == 1), "{out:?}");
    assert_eq!(out.len(), 100, "released before: {released}");
}
