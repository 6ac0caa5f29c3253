//! A broker lost or garbled under a running job: the job notices within
//! `--timeout` (readiness, error metrics), ends within `--timeout` plus
//! one request, and says what failed in one line. Each test starts a
//! one-node Kafka of its own, which it kills or puts behind a proxy.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Cluster, KEYED, STEP_TIMEOUT, free_port, random_topic, wait_for, weir};

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

/// The value of the sample line `sample` (name and labels as written) in
/// a `/metrics` body.
fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_killed_broker_shows_in_readiness_and_metrics_and_ends_the_job_within_the_timeout() {
    let mut cluster = Cluster::start(1);
    let lines: Vec<String> = (0..60).map(|i| format!("k{}:v{i}", i % 6)).collect();
    let topic = cluster.create_and_fill("lost", 3, KEYED, &lines);
    let store = random_topic("lost-store");
    let group = random_topic("lost-g");
    let addr = format!("127.0.0.1:{}", free_port());
    let timeout = Duration::from_secs(3);

    #[rustfmt::skip]
    let mut child = weir()
        .args([
            "consume", "-t", &topic, "-g", &group, "--offsets-topic", &store,
            "--commit-interval", "100ms", "--metrics-addr", &addr,
            "--timeout", "3s", "-b", cluster.address(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());

    wait_for("every record read, ready, a commit", || {
        let ready = get(&addr, "/readyz").is_some_and(|(s, _)| s == 200);
        let Some((200, text)) = get(&addr, "/metrics") else {
            return false;
        };
        let read: f64 = text
            .lines()
            .filter(|l| l.starts_with("weir_records_in_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        ready
            && read >= lines.len() as f64
            && sample(&text, "weir_commit_duration_seconds_count").is_some_and(|n| n >= 1.0)
    });
    let text = get(&addr, "/metrics").unwrap().1;
    assert_eq!(sample(&text, "weir_retries_total"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "weir_errors_total{kind=\"fetch\"}"),
        Some(0.0),
        "{text}"
    );

    cluster.kafka().kill(0);
    let killed = Instant::now();
    // Scrapes until the process is gone: when readiness first failed,
    // and when each error metric first moved.
    let limit = 3 * timeout;
    let (mut unready, mut errors, mut retries) = (None, None, None);
    let mut reasons = Vec::new();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if killed.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "weir still ran {limit:?} after its only broker was killed (--timeout {timeout:?}); unready after {unready:?}, errors after {errors:?}, retries after {retries:?}\n{}",
                err.join().unwrap()
            );
        }
        if let Some((status, reason)) = get(&addr, "/readyz") {
            if status != 200 && unready.is_none() {
                unready = Some(killed.elapsed());
                reasons.push(reason);
            }
        }
        if let Some((200, text)) = get(&addr, "/metrics") {
            if errors.is_none()
                && sample(&text, "weir_errors_total{kind=\"fetch\"}").is_some_and(|n| n > 0.0)
            {
                errors = Some(killed.elapsed());
            }
            if retries.is_none() && sample(&text, "weir_retries_total").is_some_and(|n| n > 0.0) {
                retries = Some(killed.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ended = killed.elapsed();
    let (_stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    eprintln!(
        "--timeout {timeout:?}: unready after {unready:?} ({reasons:?}), fetch errors counted after {errors:?}, retries after {retries:?}, exit after {ended:?}"
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    // Each was seen by a scrape while the process still ran.
    let unready = unready.expect("/readyz answered 200 until the process ended");
    let errors = errors.expect("weir_errors_total{kind=\"fetch\"} stayed 0 until the end");
    let retries = retries.expect("weir_retries_total stayed 0 until the end");
    assert!(
        reasons[0].contains("failing"),
        "readiness fails for the fetches first: {reasons:?}"
    );
    for (what, at) in [("unready", unready), ("errors", errors), ("retries", retries)] {
        assert!(at < ended, "{what} only with the exit");
    }
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("weir: reading topic")
            && last.contains("no good fetch")
            && last.contains("at offset")
            && last.contains(&topic),
        "{stderr}"
    );
}
