//! `--metrics-addr`: a real `weir count -g` against a real Kafka, its
//! `/readyz` before and after its partitions are assigned, and its
//! `/metrics` read by the Prometheus project's own text format parser
//! (the Python `prometheus_client`).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{
    Cluster, KEYED, STEP_TIMEOUT, brokers, free_port, python, random_topic, wait_exit, wait_for,
    weir,
};

/// `GET path` on `addr`: the status code and the body.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(STEP_TIMEOUT)).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

/// Families of a `/metrics` body as `prometheus_client` parses it:
/// family name to (type, samples as (name, labels, value)).
type Families = BTreeMap<String, (String, Vec<(String, BTreeMap<String, String>, f64)>)>;

fn parse(text: &str) -> Families {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    assert f.documentation, f.name + " has no HELP"
    out[f.name] = [f.type, [[s.name, s.labels, s.value] for s in f.samples]]
print(json.dumps(out))
"#;
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The samples named `sample` in `families`, by their labels.
fn samples(families: &Families, sample: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    families
        .values()
        .flat_map(|(_, s)| s)
        .filter(|(name, _, _)| name == sample)
        .map(|(_, labels, value)| (labels.clone(), *value))
        .collect()
}

/// A TCP relay to `target` that holds every connection it accepts until
/// the returned sender is used: a bootstrap broker that answers only when
/// the test says so.
fn held_relay(target: String) -> (String, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (go, gate) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut released = false;
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            if !released {
                if gate.recv_timeout(STEP_TIMEOUT).is_err() {
                    return;
                }
                released = true;
            }
            let Ok(server) = TcpStream::connect(&target) else {
                return;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (addr, go)
}

#[test]
fn count_serves_readiness_and_metrics_that_prometheus_parses() {
    let cluster = Cluster::shared();
    let keys = 10;
    let per_key = 30;
    let lines: Vec<String> = (0..keys * per_key)
        .map(|i| format!("k{}:v{i}", i % keys))
        .collect();
    let topic = cluster.create_and_fill("metrics", 3, KEYED, &lines);
    let store = random_topic("metrics-store");
    let group = random_topic("metrics-g");
    let addr = format!("127.0.0.1:{}", free_port());
    let (bootstrap, release) = held_relay(brokers().to_owned());

    #[rustfmt::skip]
    let mut child = weir()
        .args([
            "count", "-t", &topic, "--by", "key", "--json", "-g", &group,
            "--offsets-topic", &store, "--commit-interval", "100ms",
            "--metrics-addr", &addr, "-b", &bootstrap,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());

    // The broker is held: weir has no partitions yet, but answers.
    let mut first = None;
    wait_for("the metrics endpoint answers", || {
        first = get(&addr, "/readyz");
        first.is_some()
    });
    let (status, reason) = first.unwrap();
    assert_eq!(status, 503, "{reason}");
    assert_eq!(reason.lines().count(), 1, "one line: {reason:?}");
    assert_eq!(get(&addr, "/healthz").unwrap().0, 200);

    release.send(()).unwrap();
    wait_for("/readyz answers 200", || {
        get(&addr, "/readyz").is_some_and(|(s, _)| s == 200)
    });

    let total = (keys * per_key) as f64;
    let mut families = Families::new();
    wait_for("every record consumed, no lag, a commit", || {
        let Some((200, text)) = get(&addr, "/metrics") else {
            return false;
        };
        families = parse(&text);
        let read: f64 = samples(&families, "weir_records_in_total")
            .iter()
            .map(|s| s.1)
            .sum();
        let lag = samples(&families, "weir_consumer_lag");
        let commits = samples(&families, "weir_commit_duration_seconds_count");
        read >= total && lag.len() == 3 && lag.iter().all(|s| s.1 == 0.0) && commits[0].1 >= 1.0
    });
    let read = samples(&families, "weir_records_in_total");
    assert_eq!(read.iter().map(|s| s.1).sum::<f64>(), total);
    // The group's reads of its offsets topic are not the job's input.
    assert!(
        read.iter().all(|(labels, _)| labels["topic"] == topic),
        "{read:?}"
    );
    let partitions: Vec<&str> = read
        .iter()
        .filter(|(labels, _)| labels["topic"] == topic)
        .map(|(labels, _)| labels["partition"].as_str())
        .collect();
    assert_eq!(partitions, ["0", "1", "2"]);
    assert_eq!(families["weir_records_in"].0, "counter");
    assert_eq!(families["weir_consumer_lag"].0, "gauge");
    assert_eq!(samples(&families, "weir_assigned_partitions")[0].1, 3.0);
    assert_eq!(samples(&families, "weir_ready")[0].1, 1.0);
    assert!(samples(&families, "weir_windows_open")[0].1 >= 1.0);

    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = wait_exit(&mut child, "weir count after SIGINT");
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    assert_eq!(status.code(), Some(130), "{stderr}");
    let mut counts = BTreeMap::new();
    for line in stdout.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        counts.insert(row["key"].to_string(), row["count"].as_u64().unwrap());
    }
    assert_eq!(counts.len(), keys, "{stdout}");
    assert!(counts.values().all(|&n| n == per_key as u64), "{stdout}");
    // Nothing listens once the job is over.
    assert!(TcpStream::connect(&addr).is_err());
}

#[test]
fn a_metrics_port_in_use_fails_at_start_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let run = common::run(weir().args([
        "count",
        "-t",
        "any",
        "--by",
        "key",
        "-g",
        "g",
        "--metrics-addr",
        &addr,
        // Nothing is asked of a broker: the port is taken first.
        "-b",
        "127.0.0.1:1",
    ]));
    run.expect_code(1);
    let stderr = run.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("weir: cannot listen for metrics on {addr}: ")),
        "{stderr}"
    );

    let bad = common::run(weir().args([
        "count",
        "-t",
        "any",
        "--by",
        "key",
        "--metrics-addr",
        "9464",
    ]));
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("--metrics-addr \"9464\""),
        "{}",
        bad.stderr
    );
    drop(taken);

    // A consume that ends by itself has nothing to watch.
    let bounded = common::run(weir().args([
        "consume",
        "-t",
        "any",
        "-e",
        "--metrics-addr",
        "127.0.0.1:0",
        "-b",
        "127.0.0.1:1",
    ]));
    bounded.expect_code(2);
    assert!(
        bounded
            .stderr
            .contains("--metrics-addr is for reads that run on"),
        "{}",
        bounded.stderr
    );
}

#[test]
fn pipe_counts_what_it_filtered_and_produced() {
    let cluster = Cluster::shared();
    let lines: Vec<String> = (0..200).map(|i| format!("k{}:v{i}", i % 4)).collect();
    let input = cluster.create_and_fill("metrics-in", 2, KEYED, &lines);
    let output = random_topic("metrics-out");
    cluster.create_topic(&output, 1);
    let store = random_topic("metrics-store");
    let group = random_topic("metrics-g");
    let addr = format!("127.0.0.1:{}", free_port());
    // Keys k1 and k3 pass: half the records.
    #[rustfmt::skip]
    let mut child = weir()
        .args([
            "pipe", "-t", &input, "--to", &output, "--grep-key", "^k[13]$", "-g", &group,
            "--offsets-topic", &store, "--commit-interval", "100ms",
            "--metrics-addr", &addr, "-b", brokers(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut families = Families::new();
    wait_for("every record piped or filtered out", || {
        let Some((200, text)) = get(&addr, "/metrics") else {
            return false;
        };
        families = parse(&text);
        let out: f64 = samples(&families, "weir_records_out_total")
            .iter()
            .map(|s| s.1)
            .sum();
        let filtered = total(&families, "weir_records_filtered_total");
        out >= 100.0 && filtered >= 100.0
    });
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    wait_exit(&mut child, "weir pipe after SIGINT");
    let out = samples(&families, "weir_records_out_total");
    assert_eq!(out.len(), 1, "one output partition: {out:?}");
    assert_eq!(out[0].0["topic"], output);
    assert_eq!(out[0].1, 100.0);
    let filtered = samples(&families, "weir_records_filtered_total");
    assert!(
        filtered.iter().all(|(labels, _)| labels["topic"] == input),
        "{filtered:?}"
    );
    assert_eq!(total(&families, "weir_records_filtered_total"), 100.0);
    assert!(samples(&families, "weir_produce_duration_seconds_count")[0].1 >= 1.0);
    assert_eq!(families["weir_produce_duration_seconds"].0, "histogram");
    let buckets = samples(&families, "weir_produce_duration_seconds_bucket");
    assert_eq!(buckets.last().unwrap().0["le"], "+Inf");
    assert_eq!(
        buckets.last().unwrap().1,
        samples(&families, "weir_produce_duration_seconds_count")[0].1
    );
}

/// The sum of a family's samples across their labels.
fn total(families: &Families, name: &str) -> f64 {
    samples(families, name).iter().map(|s| s.1).sum()
}
