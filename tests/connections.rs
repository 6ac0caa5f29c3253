//! Connections shared per broker: a topic of more partitions than the
//! process may open files is produced and consumed back exactly, through a
//! few sockets to the broker whatever the number of partitions.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, STEP_TIMEOUT, random_topic, weir_bin};

/// Partitions of the topic: more than the file limit below.
const PARTITIONS: usize = 1_100;

/// The process's file limit (`ulimit -n`).
const FILE_LIMIT: u32 = 256;

/// The most sockets to the broker a run may hold: one for cluster
/// metadata and one for a partition's other requests, and two for fetches
/// (consume) or up to three for produce requests (produce).
const MOST_SOCKETS: usize = 5;

/// A finished run under the file limit, and the most sockets it held at
/// once.
struct Limited {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    most_sockets: usize,
    samples: usize,
}

/// TCP connections `pid` holds to `port` (its descriptors that link to
/// `socket:[INODE]`, whose entry in its `/proc/PID/net/tcp` names that
/// remote port); `None` once it has exited.
fn sockets_to(pid: u32, port: u16) -> Option<usize> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let inodes: HashSet<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut count = 0;
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(inode)) = (fields.get(2), fields.get(9)) else {
                continue;
            };
            let remote_port = remote
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if remote_port == Some(port) && inodes.contains(*inode) {
                count += 1;
            }
        }
    }
    Some(count)
}

/// Runs `weir ARGS` under `ulimit -n FILE_LIMIT` (through sh, which execs
/// weir: the child's pid is weir's) with `input` on stdin, counting its
/// sockets until it exits; killed after [`STEP_TIMEOUT`] twice.
fn run_limited(args: &[&str], input: Option<&[u8]>, port: u16) -> Limited {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {FILE_LIMIT} && exec \"$0\" \"$@\""))
        .arg(weir_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let file = input.map(|input| {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(input).unwrap();
        file
    });
    match &file {
        Some(file) => cmd.stdin(std::fs::File::open(file.path()).unwrap()),
        None => cmd.stdin(Stdio::null()),
    };
    let mut child = cmd.spawn().expect("spawn sh");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).ok();
        s
    });
    let deadline = Instant::now() + STEP_TIMEOUT * 2;
    let (mut most_sockets, mut samples) = (0, 0);
    let status = loop {
        // Counted before asking whether it exited: a count of a process
        // that has exited is `None`, not zero.
        if let Some(n) = sockets_to(child.id(), port) {
            most_sockets = most_sockets.max(n);
            samples += 1;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Limited {
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        most_sockets,
        samples,
    }
}

#[test]
fn a_topic_of_more_partitions_than_open_files_is_produced_and_consumed() {
    let cluster = Cluster::shared();
    let topic = random_topic("conn");
    cluster.create_topic(&topic, PARTITIONS as u32);
    let port: u16 = cluster
        .address()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the broker's port");

    // Three records to every partition, in turn.
    let values: Vec<String> = (0..PARTITIONS * 3).map(|i| format!("v{i}")).collect();
    let input = values.join("\n") + "\n";
    let produced = run_limited(
        &[
            "produce",
            "-t",
            &topic,
            "--partitioner",
            "round-robin",
            "-b",
            cluster.address(),
        ],
        Some(input.as_bytes()),
        port,
    );
    assert_eq!(
        produced.code,
        Some(0),
        "produce under ulimit -n {FILE_LIMIT}: {}",
        produced.stderr
    );
    assert!(
        produced.most_sockets <= MOST_SOCKETS,
        "produce held {} sockets at once (at most {MOST_SOCKETS} expected)",
        produced.most_sockets
    );

    let watermarks = cluster.high_watermarks(&topic);
    assert_eq!(watermarks.len(), PARTITIONS, "{watermarks:?}");
    assert!(
        watermarks.values().all(|&end| end == 3),
        "three records in every partition: {watermarks:?}"
    );

    let consumed = run_limited(
        &["consume", "-t", &topic, "-e", "-b", cluster.address()],
        None,
        port,
    );
    assert_eq!(
        consumed.code,
        Some(0),
        "consume under ulimit -n {FILE_LIMIT}: {}",
        consumed.stderr
    );
    let mut read: Vec<&str> = consumed.stdout.lines().collect();
    read.sort_unstable();
    let mut expected: Vec<&str> = values.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(read.len(), expected.len(), "every record once");
    assert!(read == expected, "the records read are those produced");

    assert!(consumed.samples > 0, "the consume was never sampled");
    assert!(
        consumed.most_sockets >= 1,
        "the consume held no socket when sampled ({} samples)",
        consumed.samples
    );
    assert!(
        consumed.most_sockets <= MOST_SOCKETS,
        "consume of {PARTITIONS} partitions held {} sockets at once (at most {MOST_SOCKETS} expected)",
        consumed.most_sockets
    );
    eprintln!(
        "produce held at most {} sockets, consume at most {} ({} samples)",
        produced.most_sockets, consumed.most_sockets, consumed.samples
    );
}
