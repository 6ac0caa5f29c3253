//! What a new user hit with faults and closed pipes, on the real broker
//! (Apache Kafka with its default `auto.create.topics.enable=true`):
//! deadlines, topics deleted under running jobs, closed stdout and stderr,
//! commits outside the log, and the offsets topic's unreadable records.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Kafka, STEP_TIMEOUT, brokers, random_topic, run, wait_until, weir, weir_run};
use serde_json::Value;

/// A running weir whose stderr is collected.
struct Job {
    name: &'static str,
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Job {
    fn spawn(name: &'static str, cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        Self {
            name,
            child,
            stderr: Some(std::thread::spawn(move || {
                std::io::read_to_string(stderr).unwrap_or_default()
            })),
        }
    }

    /// Waits for the exit; returns the code, when it came after `since`,
    /// and stderr.
    fn finish(mut self, since: Instant) -> (Option<i32>, Duration, String) {
        let status = wait_until(&mut self.child, STEP_TIMEOUT)
            .unwrap_or_else(|| panic!("{}: still running after {STEP_TIMEOUT:?}", self.name));
        let elapsed = since.elapsed();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        (status.code(), elapsed, stderr)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or_default()
}

fn topic_list() -> Vec<String> {
    let out = weir_run(&["topics", "list", "--output", "json"]);
    out.ok();
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    doc["topics"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", out.stdout))
        .iter()
        .map(|t| t["topic"].as_str().unwrap().to_owned())
        .collect()
}

/// Class 1: a broker killed under running jobs ends each within
/// `--timeout` plus one request, with one line naming what was being done
/// and the broker. (It took 24-55 s with `--timeout 3s`.)
#[test]
fn a_killed_broker_ends_every_job_within_its_timeout() {
    let mut kafka = Kafka::start(1);
    let address = kafka.address();
    let topic = random_topic("deadline");
    run(weir().args([
        "topics",
        "create",
        &topic,
        "--partitions",
        "2",
        "-b",
        &address,
    ]))
    .ok();
    let input: String = (0..200).map(|i| format!("k{i}:v{i}\n")).collect();
    let mut cmd = weir();
    cmd.args(["produce", "-t", &topic, "-K", ":", "-b", &address])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());

    let timeout = ["--timeout", "2s"];
    let job = |name, args: &[&str]| {
        let mut cmd = weir();
        cmd.args(args).args(["-b", &address]).args(timeout);
        Job::spawn(name, &mut cmd)
    };
    let jobs = vec![
        job("consume", &["consume", "-t", &topic]),
        job("consume -g", &["consume", "-t", &topic, "-g", "deadline-c"]),
        job(
            "count -g",
            &["count", "-t", &topic, "--by", "key", "-g", "deadline-n"],
        ),
    ];
    // A producer that keeps sending, a line every 20 ms.
    let mut producer = weir();
    producer
        .args(["produce", "-t", &topic, "-b", &address])
        .args(timeout)
        .stdin(Stdio::piped());
    let mut producer = Job::spawn("produce", &mut producer);
    let mut stdin = producer.child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        for i in 0..3_000 {
            if writeln!(stdin, "line {i}")
                .and_then(|()| stdin.flush())
                .is_err()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });

    std::thread::sleep(Duration::from_secs(4));
    kafka.kill(0);
    let killed = Instant::now();
    for j in jobs.into_iter().chain([producer]) {
        let name = j.name;
        let (code, elapsed, stderr) = j.finish(killed);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        // 2 s of --timeout, one request (a 500 ms long poll), a second
        // of slack for a loaded machine; before, 10 times that.
        assert!(
            elapsed < Duration::from_millis(2_000 + 500 + 3_000),
            "{name} ended {elapsed:?} after the kill:\n{stderr}"
        );
        let last = last_line(&stderr);
        assert!(last.starts_with("weir: "), "{name}: {stderr}");
        assert!(last.contains(&topic), "{name} names no topic: {last}");
        assert!(last.contains(&address), "{name} names no broker: {last}");
        assert!(!last.contains("retries failed"), "{name}: {last}");
    }
    feeder.join().unwrap();
}

/// Class 2: nothing weir sends creates a topic, and a topic deleted under
/// running jobs ends them with exit 1 and a clear message; the topic
/// stays deleted. (A consumer used to re-create it and hang.)
#[test]
fn a_deleted_topic_ends_running_jobs_and_is_never_recreated() {
    let address = brokers();
    // Reading, describing and producing to a missing topic.
    let missing = random_topic("never");
    for args in [
        vec!["consume", "-t", &missing, "-e"],
        vec!["topics", "describe", &missing],
        vec!["count", "-t", &missing, "--by", "key", "-e"],
        vec!["offsets", "show", "-g", "never", "-t", &missing],
    ] {
        let mut all = args.clone();
        all.extend(["--timeout", "5s"]);
        let out = weir_run(&all);
        out.expect_code(1);
        assert!(
            out.stderr.contains("does not exist"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = common::produce(&["-t", &missing, "--timeout", "5s"], b"x\n");
    out.expect_code(1);

    let topic = random_topic("deleted");
    weir_run(&["topics", "create", &topic, "--partitions", "2"]).ok();
    let input: String = (0..100).map(|i| format!("k{i}:v{i}\n")).collect();
    common::produce(&["-t", &topic, "-K", ":"], input.as_bytes()).ok();
    let job = |name, args: &[&str]| {
        let mut cmd = weir();
        cmd.args(args).args(["-b", address, "--timeout", "20s"]);
        Job::spawn(name, &mut cmd)
    };
    let jobs = [
        job("consume", &["consume", "-t", &topic]),
        job(
            "count -g",
            &[
                "count",
                "-t",
                &topic,
                "--by",
                "key",
                "-g",
                &random_topic("g"),
            ],
        ),
    ];
    std::thread::sleep(Duration::from_secs(3));
    weir_run(&["topics", "delete", &topic]).ok();
    let deleted = Instant::now();
    for j in jobs {
        let name = j.name;
        let (code, elapsed, stderr) = j.finish(deleted);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(
            last_line(&stderr).contains("the topic was deleted"),
            "{name}: {stderr}"
        );
        // Well before its 20 s --timeout.
        assert!(elapsed < Duration::from_secs(10), "{name}: {elapsed:?}");
    }
    // Give a re-creation time to show.
    std::thread::sleep(Duration::from_secs(2));
    let topics = topic_list();
    assert!(!topics.contains(&topic), "re-created: {topics:?}");
    assert!(!topics.contains(&missing), "created: {topics:?}");
}

/// A pipe whose reading end is already closed: every write to it fails
/// with EPIPE, deterministically.
fn broken_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two new descriptors, which are owned below.
    #[allow(unsafe_code)]
    let (read, write) = unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    drop(read);
    Stdio::from(write)
}

/// Runs weir with stdout and/or stderr into a closed pipe; returns the
/// exit code (None: killed by a signal).
fn with_closed(args: &[&str], stdout: bool, stderr: bool, input: Option<&[u8]>) -> Option<i32> {
    let mut cmd = weir();
    cmd.args(args).args(["-b", brokers()]);
    cmd.stdout(if stdout { broken_pipe() } else { Stdio::null() });
    cmd.stderr(if stderr { broken_pipe() } else { Stdio::null() });
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
    }
    let status = wait_until(&mut child, STEP_TIMEOUT).expect("weir did not finish");
    status.code()
}

/// Class 3: a closed stdout ends the output with exit 0, a closed stderr
/// never crashes (it aborted with SIGABRT), a closed --report reader stops
/// only the reports, and a consumer started with stdout closed commits
/// nothing.
#[test]
fn closed_stdout_and_stderr_are_never_a_crash() {
    let topic = random_topic("pipes");
    weir_run(&["topics", "create", &topic, "--partitions", "2"]).ok();
    let lines: String = (0..5_000).map(|i| format!("v{i}\n")).collect();

    assert_eq!(with_closed(&["topics", "list"], true, false, None), Some(0));
    assert_eq!(with_closed(&["topics", "list"], true, true, None), Some(0));
    // Log lines into a closed stderr: the subscriber's own error report
    // used `eprintln!`, which panicked.
    assert_eq!(
        with_closed(&["topics", "list", "-v"], true, true, None),
        Some(0)
    );
    assert_eq!(
        with_closed(&["topics", "describe", &topic], true, true, None),
        Some(0)
    );
    // The summary goes to a closed stderr: no panic, every record stored.
    let code = with_closed(
        &["produce", "-t", &topic],
        false,
        true,
        Some(lines.as_bytes()),
    );
    assert_eq!(code, Some(0));
    assert_eq!(common::topic_end(brokers(), &topic), 5_000);
    // --report into a closed pipe: the records all go, the summary stays.
    let mut cmd = weir();
    cmd.args(["produce", "-t", &topic, "--report", "-b", brokers()])
        .stdout(broken_pipe())
        .stderr(Stdio::piped())
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("produced 5000 records"), "{stderr}");
    assert!(stderr.contains("--report reader closed"), "{stderr}");
    assert_eq!(common::topic_end(brokers(), &topic), 10_000);
    // Output commands into a closed stdout.
    let group = random_topic("pipes-g");
    let code = with_closed(
        &["consume", "-t", &topic, "-e", "-g", &group],
        true,
        true,
        None,
    );
    assert_eq!(code, Some(0));
    let code = with_closed(&["offsets", "show", "-g", &group], true, false, None);
    assert_eq!(code, Some(0));

    // Started with stdout closed (`>&-`): refused, and nothing committed.
    let closed_group = random_topic("closed-g");
    for args in [
        format!("consume -t {topic} -e -g {closed_group}"),
        format!("count -t {topic} --by value -e -g {closed_group}"),
    ] {
        let script = format!("exec \"$0\" {args} -b {} >&-", brokers());
        let out = run(Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(common::weir_bin()));
        out.expect_code(2);
        assert!(out.stderr.contains("stdout is closed"), "{}", out.stderr);
    }
    let out = weir_run(&["offsets", "show", "-g", &closed_group, "--output", "json"]);
    out.ok();
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["partitions"], serde_json::json!([]), "{}", out.stdout);
}

/// Class 5: a commit past the end of a re-created topic is not trusted:
/// the group starts where --from says (earliest), warns, and `offsets
/// show` shows the negative lag. (It read nothing and showed LAG 0.)
#[test]
fn a_commit_outside_the_log_is_reset_by_the_from_policy() {
    let topic = random_topic("recreated");
    let group = random_topic("recreated-g");
    weir_run(&["topics", "create", &topic, "--partitions", "1"]).ok();
    let ten: String = (0..10).map(|i| format!("old{i}\n")).collect();
    common::produce(&["-t", &topic], ten.as_bytes()).ok();
    let out = weir_run(&["consume", "-t", &topic, "-e", "-g", &group]);
    out.ok();
    assert_eq!(out.stdout.lines().count(), 10);

    weir_run(&["topics", "delete", &topic]).ok();
    // Deletion completes in the background; creating again can be refused
    // for a moment.
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let out = weir_run(&["topics", "create", &topic, "--partitions", "1"]);
        if out.code == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cannot re-create: {}",
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let five: String = (0..5).map(|i| format!("new{i}\n")).collect();
    common::produce(&["-t", &topic], five.as_bytes()).ok();

    let out = weir_run(&["offsets", "show", "-g", &group, "--output", "json"]);
    out.ok();
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let row = &doc["partitions"][0];
    assert_eq!(row["committed"], 10, "{}", out.stdout);
    assert_eq!(row["high_watermark"], 5, "{}", out.stdout);
    assert_eq!(row["lag"], -5, "{}", out.stdout);
    assert_eq!(row["out_of_range"], true, "{}", out.stdout);
    assert!(out.stderr.contains("outside the log"), "{}", out.stderr);

    let out = weir_run(&["consume", "-t", &topic, "-e", "-g", &group]);
    out.ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["new0", "new1", "new2", "new3", "new4"],
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("outside the partition's log"),
        "{}",
        out.stderr
    );
    let out = weir_run(&["offsets", "show", "-g", &group, "--output", "json"]);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["partitions"][0]["lag"], 0, "{}", out.stdout);
    assert_eq!(doc["partitions"][0]["out_of_range"], false);
}

/// Class 8: an unreadable record in the offsets topic is warned about
/// once per command, naming its offset (it was three times).
#[test]
fn an_unreadable_store_record_is_warned_once() {
    let topic = random_topic("unreadable");
    let group = random_topic("unreadable-g");
    weir_run(&["topics", "create", &topic, "--partitions", "1"]).ok();
    common::produce(&["-t", &topic], b"a\nb\n").ok();
    let consumers = random_topic("unreadable-c");
    // Create the store, then a record under each group's name lands on the
    // group's store partition (both murmur2 of the group).
    weir_run(&["count", "-t", &topic, "--by", "value", "-e", "-g", &group]).ok();
    weir_run(&["consume", "-t", &topic, "-e", "-g", &consumers]).ok();
    for g in [&group, &consumers] {
        common::produce(&["-t", "__weir_offsets", "-k", g], b"not a commit\n").ok();
    }
    for args in [
        vec!["count", "-t", &topic, "--by", "value", "-e", "-g", &group],
        vec!["consume", "-t", &topic, "-e", "-g", &consumers],
    ] {
        let out = weir_run(&args);
        out.ok();
        // One warning per unreadable record (the two groups may share a
        // store partition), each naming its offset.
        let warned: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains("unreadable record"))
            .map(|l| l.split_once("offset=").map_or("", |(_, o)| o))
            .collect();
        let distinct: std::collections::BTreeSet<_> = warned.iter().collect();
        assert!(!warned.is_empty(), "{args:?}:\n{}", out.stderr);
        assert_eq!(warned.len(), distinct.len(), "{args:?}:\n{}", out.stderr);
    }
}

/// Class 8: of two `--exclusive` instances on one partition, the later
/// one yields and the first keeps running (both used to exit).
#[test]
fn the_later_exclusive_instance_yields() {
    let topic = random_topic("exclusive");
    let group = random_topic("exclusive-g");
    weir_run(&["topics", "create", &topic, "--partitions", "1"]).ok();
    let feeder = common::Feeder::start(
        &["-t", &topic, "-b", brokers()],
        (0..100_000).map(|i| format!("v{i}")),
        10,
        Duration::from_millis(50),
    );
    let job = |name| {
        let mut cmd = weir();
        cmd.args([
            "consume",
            "-t",
            &topic,
            "-g",
            &group,
            "--exclusive",
            "--commit-interval",
            "300ms",
            "-b",
            brokers(),
        ]);
        Job::spawn(name, &mut cmd)
    };
    let mut first = job("first");
    std::thread::sleep(Duration::from_secs(2));
    let second = job("second");
    let (code, _, stderr) = second.finish(Instant::now());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("exclusive") || stderr.contains("commits"),
        "{stderr}"
    );
    // The first saw the second's commits, and stays.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the first instance exited too"
    );
    feeder.stop();
    first.child.kill().ok();
}

/// Class 8: copying `weir consume --json` into a topic with fewer
/// partitions: the records' own partitions are out of range there (every
/// record failed); `--partition-from none` places them by key.
#[test]
fn copying_into_fewer_partitions_repartitions_by_key() {
    let from = random_topic("wide");
    let to = random_topic("narrow");
    weir_run(&["topics", "create", &from, "--partitions", "4"]).ok();
    weir_run(&["topics", "create", &to, "--partitions", "2"]).ok();
    let input: String = (0..40).map(|i| format!("k{i}:v{i}\n")).collect();
    common::produce(&["-t", &from, "-K", ":"], input.as_bytes()).ok();
    let json = weir_run(&["consume", "-t", &from, "-e", "--json"]);
    json.ok();

    let refused = common::produce(&["-t", &to, "--format", "json"], json.stdout.as_bytes());
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("--partition-from none"),
        "{}",
        refused.stderr
    );
    let copied = common::produce(
        &["-t", &to, "--format", "json", "--partition-from", "none"],
        json.stdout.as_bytes(),
    );
    copied.ok();
    // Every key where the Java client puts it on 2 partitions: weir's own
    // murmur2 placement, checked against Java in tests/interop.rs.
    let placed = weir_run(&["consume", "-t", &to, "-e", "-f", "{partition} {key}"]);
    placed.ok();
    let mut expected = BTreeMap::new();
    for i in 0..40 {
        let key = format!("k{i}");
        let p = weir::produce::partitioner::murmur2_partition(key.as_bytes(), 2);
        expected.insert(key, p);
    }
    let got: BTreeMap<String, i32> = placed
        .stdout
        .lines()
        .map(|l| {
            let (p, k) = l.split_once(' ').unwrap();
            (k.to_owned(), p.parse().unwrap())
        })
        .collect();
    assert_eq!(got, expected);
}
