//! A broker lost or garbled under a running job: the job notices within
//! `--timeout` (readiness, error metrics), ends within `--timeout` plus
//! one request, and says what failed in one line. Each test starts a
//! one-node Kafka of its own, which it kills or puts behind a proxy.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::proxy::{self, Proxy};
use common::{Cluster, KEYED, STEP_TIMEOUT, free_port, random_topic, run_within, weir};

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

    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut last = String::new();
    loop {
        let ready = get(&addr, "/readyz").is_some_and(|(s, _)| s == 200);
        if let Some((200, text)) = get(&addr, "/metrics") {
            let read: f64 = text
                .lines()
                .filter(|l| l.starts_with("weir_records_in_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            let committed = sample(&text, "weir_commit_duration_seconds_count");
            if ready && read >= lines.len() as f64 && committed.is_some_and(|n| n >= 1.0) {
                break;
            }
            last = text;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "not every record read, ready and committed within {STEP_TIMEOUT:?}:\n{last}\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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
    for (what, at) in [
        ("unready", unready),
        ("errors", errors),
        ("retries", retries),
    ] {
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

#[test]
fn damaged_fetch_responses_are_failed_attempts_said_in_kafkas_terms() {
    let proxy = Proxy::start();
    let cluster = Cluster::start_behind(&proxy);
    let levels = ["info", "warn", "error"];
    let lines: Vec<String> = (0..1500)
        .map(|i| format!(r#"{{"level":"{}","n":{i}}}"#, levels[i % 3]))
        .collect();
    // Small batches, so that a count takes many fetches.
    let topic = cluster.create_and_fill("mr", 3, &["--batch-bytes", "2048"], &lines);
    let count = |timeout: &str| {
        let mut cmd = weir();
        #[rustfmt::skip]
        cmd.args([
            "count", "-t", &topic, "--by", "json:/level", "-e", "--json",
            "--fetch-bytes", "4096", "--timeout", timeout, "-b", proxy.address(),
        ]);
        cmd
    };
    let counted = |stdout: &str| -> BTreeMap<String, u64> {
        stdout
            .lines()
            .map(|l| {
                let row: serde_json::Value = serde_json::from_str(l).unwrap();
                let key = row["key"].as_str().unwrap().to_owned();
                (key, row["count"].as_u64().unwrap())
            })
            .collect()
    };
    let expected: BTreeMap<String, u64> = levels
        .iter()
        .map(|l| (l.to_string(), (lines.len() / 3) as u64))
        .collect();

    // Through the proxy, undamaged: every record counted.
    let clean = run_within(&mut count("5s"), STEP_TIMEOUT, None);
    assert_eq!(clean.code, Some(0), "{}", clean.stderr);
    assert_eq!(counted(&clean.stdout), expected, "{}", clean.stderr);

    // About one Fetch response in four damaged: each is a failed attempt,
    // retried, and the count comes out whole. (Before, a damaged length
    // hung its connection until the deadline, which failed the job on
    // some of these seeds.)
    let damaged_before = proxy.corrupted();
    for seed in [2, 4] {
        proxy.corrupt_some(4, Some(proxy::FETCH), seed);
        let before = proxy.corrupted();
        let run = run_within(&mut count("5s"), STEP_TIMEOUT, None);
        proxy.corrupt(0, None, seed);
        eprintln!(
            "seed {seed}, some damaged: exit {:?} after {:?}, {} responses damaged",
            run.code,
            run.elapsed,
            proxy.corrupted() - before
        );
        assert_eq!(run.code, Some(0), "seed {seed}: {}", run.stderr);
        let rows = counted(&run.stdout);
        assert_eq!(rows, expected, "seed {seed}: {}", run.stderr);
    }
    assert!(proxy.corrupted() > damaged_before, "nothing damaged");

    // Every Fetch response damaged: the job ends after the timeout, in one
    // line naming the broker, topic, partition and offset, and what was
    // wrong with the response in Kafka's terms.
    let timeout = Duration::from_secs(2);
    for seed in [7, 1234, 99991] {
        proxy.corrupt(usize::MAX, Some(proxy::FETCH), seed);
        let before = proxy.corrupted();
        let damaged = run_within(&mut count("2s"), 3 * timeout, None);
        proxy.corrupt(0, None, seed);
        let stderr = &damaged.stderr;
        let last = stderr.lines().last().unwrap_or_default();
        eprintln!(
            "seed {seed}, all damaged: exit {:?} after {:?}, {} responses damaged; {last}",
            damaged.code,
            damaged.elapsed,
            proxy.corrupted() - before,
        );
        assert!(proxy.corrupted() > before, "nothing damaged");
        assert_eq!(damaged.code, Some(1), "seed {seed}: {stderr}");
        assert!(
            last.starts_with(&format!("weir: reading topic \"{topic}\" partition "))
                && last.contains(&format!("from leader {}", proxy.address()))
                && last.contains("at offset 0 ")
                && last.contains("within the retry timeout (2s)"),
            "seed {seed}: one line naming the broker, topic, partition and offset: {stderr}"
        );
        assert!(
            last.contains("Fetch response") || last.contains("message_size"),
            "seed {seed}: which response, what was wrong: {stderr}"
        );
        for internal in [
            "failed to fill whole buffer",
            "out of range integral type conversion",
            "Cannot read",
            "poisoned",
            "CRC error",
            "panicked",
        ] {
            assert!(
                !stderr.contains(internal),
                "seed {seed}: a decoder's words ({internal:?}) in: {stderr}"
            );
        }
    }
}
