//! The command line as users write it, without a broker: boolean
//! environment variables, negative numbers, short flags, `-n 0`, and a
//! port that answers but is not Kafka. Where a command must get past
//! parsing, it is pointed at [`Impostor`], a local server that is not Kafka,
//! so it fails at once with a known message instead of waiting for a
//! broker.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{Run, run, weir};

/// What an HTTP server sends back to bytes it cannot parse.
const HTTP_400: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A TCP server on 127.0.0.1 that is not Kafka: it reads what a
/// connection sends, answers `answer` and closes, as an HTTP server does.
/// It keeps the first byte each connection sent. Dropping it stops and
/// joins its thread.
struct Impostor {
    address: String,
    first_bytes: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Impostor {
    fn start(answer: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let first_bytes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let first_bytes = Arc::clone(&first_bytes);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut conn) = conn else { continue };
                    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    let mut request = [0; 1024];
                    if let Ok(1..) = conn.read(&mut request) {
                        first_bytes.lock().unwrap().push(request[0]);
                    }
                    conn.write_all(answer).ok();
                }
            })
        };
        Self {
            address,
            first_bytes,
            stop,
            thread: Some(thread),
        }
    }

    /// The first byte of every connection so far.
    fn first_bytes(&self) -> Vec<u8> {
        self.first_bytes.lock().unwrap().clone()
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the thread sees the flag.
        TcpStream::connect(&self.address).ok();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

/// `weir ARGS -b BROKER --timeout 20s` with `env`.
fn weir_at(broker: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = weir();
    cmd.args(args).args(["-b", broker, "--timeout", "20s"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// Asserts exit `code` with exactly one line on stderr, and returns it.
fn one_line(run: &Run, code: i32, what: &str) -> String {
    run.expect_code(code);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line:\n{}", run.stderr);
    lines[0].to_owned()
}

/// TLS records start with content type 22 (handshake); a Kafka request
/// starts with its length, whose first byte is 0 for any request weir sends.
const TLS_HANDSHAKE: u8 = 0x16;

#[test]
fn weir_tls_takes_1_0_true_false_yes_no_on_off() {
    for (value, tls) in [
        ("1", true),
        ("true", true),
        ("TRUE", true),
        ("yes", true),
        ("on", true),
        ("0", false),
        ("false", false),
        ("No", false),
        ("off", false),
        ("", false),
    ] {
        let impostor = Impostor::start(HTTP_400);
        let run = weir_at(
            &impostor.address,
            &["topics", "list"],
            &[("WEIR_TLS", value)],
        );
        let line = one_line(&run, 1, &format!("WEIR_TLS={value}"));
        let first = impostor.first_bytes();
        assert!(!first.is_empty(), "WEIR_TLS={value}: no connection made");
        assert_eq!(
            first.iter().all(|&b| b == TLS_HANDSHAKE),
            tls,
            "WEIR_TLS={value}: first bytes {first:x?}; {line}"
        );
        let expected = if tls {
            "TLS handshake"
        } else {
            "is not a Kafka broker"
        };
        assert!(line.contains(expected), "WEIR_TLS={value}: {line}");
    }
    // The flag still turns TLS on by itself, and wins over WEIR_TLS=0.
    let impostor = Impostor::start(HTTP_400);
    let run = weir_at(
        &impostor.address,
        &["topics", "list", "--tls"],
        &[("WEIR_TLS", "0")],
    );
    run.expect_code(1);
    assert_eq!(impostor.first_bytes()[0], TLS_HANDSHAKE);

    let bad = weir_at("127.0.0.1:9", &["topics", "list"], &[("WEIR_TLS", "maybe")]);
    let line = one_line(&bad, 2, "WEIR_TLS=maybe");
    assert!(
        line.contains("WEIR_TLS=maybe") && line.contains("--tls") && line.contains("yes"),
        "{line}"
    );
}

#[test]
fn a_port_that_is_not_kafka_is_named_as_such_by_every_command() {
    let impostor = Impostor::start(HTTP_400);
    let expected = format!(
        "weir: \"{}\" is not a Kafka broker (it answered \"HTTP/1.1 400 Bad Request\")",
        impostor.address
    );
    for args in [
        &["topics", "list"][..],
        &["topics", "create", "t"],
        &["produce", "-t", "t"],
        &["consume", "-t", "t", "-e"],
        &["count", "-t", "t", "--by", "key", "-e"],
        &["offsets", "groups"],
        &["offsets", "show", "-g", "g"],
        &["bench", "consume"],
    ] {
        let run = weir_at(&impostor.address, args, &[]);
        let line = one_line(&run, 1, &format!("{args:?}"));
        assert_eq!(line, expected, "{args:?}");
        // Not retried until --timeout: the answer cannot change.
        assert!(
            run.elapsed < Duration::from_secs(10),
            "{args:?} took {:?}",
            run.elapsed
        );
    }
}

#[test]
fn negative_numbers_get_one_line_naming_the_flag() {
    for (args, flag) in [
        (&["consume", "-t", "t", "-c", "-1"][..], "--count -1"),
        (&["consume", "-t", "t", "--count", "-1"], "--count -1"),
        (
            &["count", "-t", "t", "--by", "key", "-c", "-5"],
            "--count -5",
        ),
        (&["consume", "-t", "t", "-p", "-1"], "--partitions -1"),
        (&["consume", "-t", "t", "-p", "0,-2"], "--partitions -2"),
        (&["produce", "-t", "t", "-p", "-1"], "--partition -1"),
        (
            &[
                "offsets", "set", "-g", "g", "-t", "t", "--to", "earliest", "-p", "-1",
            ],
            "--partitions -1",
        ),
        (
            &["topics", "create", "t", "--partitions", "-1"],
            "--partitions -1",
        ),
        (
            &["topics", "create", "t", "-r", "-1"],
            "--replication-factor -1",
        ),
        (
            &["bench", "produce", "--partitions", "-3"],
            "--partitions -3",
        ),
        (&["bench", "produce", "-n", "-1"], "--records -1"),
        (&["bench", "latency", "--rate", "-10"], "--rate -10"),
        (
            &["consume", "-t", "t", "--fetch-bytes", "-1"],
            "--fetch-bytes -1",
        ),
        (&["--timeout", "-3s", "topics", "list"], "--timeout -3s"),
        (
            &["consume", "-t", "t", "--fetch-max-wait", "-1s"],
            "--fetch-max-wait -1s",
        ),
        (
            &["count", "-t", "t", "--by", "key", "--window", "-1m"],
            "--window -1m",
        ),
        (&["produce", "-t", "t", "--linger", "-5ms"], "--linger -5ms"),
    ] {
        let mut cmd = weir();
        // The broker is never reached: parsing fails first.
        cmd.args(args).args(["-b", "127.0.0.1:9"]);
        let run = run(&mut cmd);
        let line = one_line(&run, 2, &format!("{args:?}"));
        assert!(
            line.starts_with(&format!("weir: {flag}: ")) && line.contains("negative"),
            "{args:?}: {line}"
        );
    }
    // A duration from the environment names its variable.
    let mut cmd = weir();
    cmd.args(["topics", "list"]).env("WEIR_TIMEOUT", "-3s");
    let line = one_line(&run(&mut cmd), 2, "WEIR_TIMEOUT=-3s");
    assert!(line.contains("WEIR_TIMEOUT=-3s (--timeout)"), "{line}");
}

#[test]
fn positions_before_the_end_stay_negative() {
    // --from -N and --to -N are N records before the end: they parse, and
    // the command goes on to the (impostor) broker.
    let impostor = Impostor::start(HTTP_400);
    for args in [
        &["consume", "-t", "t", "--from", "-10"][..],
        &["consume", "-t", "t", "-o", "-10"],
        &["count", "-t", "t", "--by", "key", "-o", "-3"],
        &["offsets", "set", "-g", "g", "-t", "t", "--to", "-5"],
    ] {
        let run = weir_at(&impostor.address, args, &[]);
        let line = one_line(&run, 1, &format!("{args:?}"));
        assert!(line.contains("is not a Kafka broker"), "{args:?}: {line}");
    }
}

#[test]
fn short_flags_mean_one_thing_across_commands() {
    // -o is --from, -p picks partitions, -c is --count: the short forms
    // that meant something else elsewhere are gone, and say so at once.
    for args in [
        &["topics", "list", "-o", "json"][..],
        &["offsets", "groups", "-o", "json"],
        &["topics", "create", "t", "-p", "3"],
        &["topics", "create", "t", "-c", "cleanup.policy=compact"],
        &["bench", "produce", "-p", "3"],
    ] {
        let mut cmd = weir();
        cmd.args(args).args(["-b", "127.0.0.1:9"]);
        let run = run(&mut cmd);
        run.expect_code(2);
        assert!(
            run.stderr.contains("unexpected argument"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // Their long forms, and the short flags in their one meaning, parse.
    let impostor = Impostor::start(HTTP_400);
    for args in [
        &["topics", "list", "--output", "json"][..],
        &["offsets", "groups", "--output", "json"],
        &[
            "topics",
            "create",
            "t",
            "--partitions",
            "3",
            "--config",
            "a=b",
        ],
        &["bench", "produce", "--partitions", "3"],
        &[
            "consume", "-t", "t", "-p", "0,1", "-o", "earliest", "-c", "5",
        ],
        &[
            "count", "-t", "t", "--by", "key", "-p", "0", "-o", "latest", "-c", "5",
        ],
        &["produce", "-t", "t", "-p", "0"],
        &[
            "offsets", "set", "-g", "g", "-t", "t", "--to", "earliest", "-p", "1",
        ],
    ] {
        let run = weir_at(&impostor.address, args, &[]);
        let line = one_line(&run, 1, &format!("{args:?}"));
        assert!(line.contains("is not a Kafka broker"), "{args:?}: {line}");
    }
}

#[test]
fn a_benchmark_of_no_records_is_a_usage_error() {
    for job in ["produce", "consume", "latency"] {
        let mut cmd = weir();
        cmd.args(["bench", job, "-n", "0", "-b", "127.0.0.1:9"]);
        let run = run(&mut cmd);
        let line = one_line(&run, 2, job);
        assert!(line.contains("--records 0"), "{job}: {line}");
    }
}

#[test]
fn a_hop_longer_than_the_window_is_refused_in_one_line() {
    // Refused before any broker is reached (Kafka Streams refuses an
    // advance larger than the size): the records between windows would
    // be in none.
    for sub in ["agg", "count"] {
        let mut cmd = weir();
        cmd.args([
            sub, "-t", "t", "--by", "key", "--window", "1m", "--hop", "2m",
        ])
        .args(["-b", "127.0.0.1:9"]);
        let line = one_line(&run(&mut cmd), 2, sub);
        assert!(
            line.starts_with("weir: --hop (120s) is longer than --window (60s)"),
            "{sub}: {line}"
        );
    }
}

/// A share group subscribes to topic names: a pattern is refused before
/// anything is reached.
#[test]
fn a_topic_pattern_with_a_share_group_is_refused_in_one_line() {
    let run = weir_at(
        "127.0.0.1:9",
        &["consume", "-t", "^logs-.*", "--share-group", "workers"],
        &[],
    );
    let line = one_line(&run, 2, "pattern with --share-group");
    assert!(
        line.contains("topic pattern \"^logs-.*\" with --share-group"),
        "{line}"
    );
}
