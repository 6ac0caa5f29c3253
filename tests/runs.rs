//! How a job's run begins and ends, against a real broker: a topic given
//! twice is read once, the summary's time is the whole run, setup
//! included, and a second SIGINT ends the process at once.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Cluster, KEYED, STEP_TIMEOUT, brokers, random_topic, run, weir};

/// How long [`SlowStart`] holds each connection before it relays it.
const DELAY: Duration = Duration::from_secs(1);

/// A TCP relay to a broker that holds each connection for [`DELAY`]
/// before relaying it: a client bootstrapped through it cannot have
/// reached the cluster before [`DELAY`] passed. The brokers it learns of
/// are reached directly, so only the setup is slow. Dropping it stops and
/// joins its accepting thread.
struct SlowStart {
    address: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SlowStart {
    fn to(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = conn else { continue };
                    let upstream = upstream.clone();
                    // Each relay ends when either side closes.
                    std::thread::spawn(move || {
                        std::thread::sleep(DELAY);
                        let Ok(server) = TcpStream::connect(&upstream) else {
                            return;
                        };
                        relay(client, server);
                    });
                }
            })
        };
        Self {
            address,
            stop,
            thread: Some(thread),
        }
    }
}

/// Copies both ways until either side closes.
fn relay(client: TcpStream, server: TcpStream) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        copy(&mut c_read, &mut s_write);
    });
    let (mut s_read, mut c_write) = (server, client);
    copy(&mut s_read, &mut c_write);
    up.join().ok();
}

fn copy(from: &mut TcpStream, to: &mut TcpStream) {
    let mut buf = [0; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    from.shutdown(Shutdown::Both).ok();
    to.shutdown(Shutdown::Both).ok();
}

impl Drop for SlowStart {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread, which then sees the flag.
        TcpStream::connect(&self.address).ok();
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

/// The seconds of the summary line (`... in 2.31s, ...`) on stderr.
fn summary_secs(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("weir: ") && l.contains(" in ") && l.contains("s, "))
        .unwrap_or_else(|| panic!("no summary line:\n{stderr}"));
    let after = &line[line.find(" in ").unwrap() + 4..];
    after[..after.find("s,").unwrap()]
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn the_summary_time_includes_reaching_the_cluster() {
    let cluster = Cluster::shared();
    let topic = cluster.create_and_fill("slowstart", 2, KEYED, (0..20).map(|i| format!("k{i}:v")));
    let out = random_topic("slowstart-out");
    cluster.create_topic(&out, 1);
    let slow = SlowStart::to(cluster.address());
    let jobs: [&[&str]; 4] = [
        &["consume", "-t", &topic, "-e"],
        &["count", "-t", &topic, "--by", "key", "-e"],
        &["pipe", "-t", &topic, "--to", &out, "-e"],
        &["produce", "-t", &out],
    ];
    for args in jobs {
        let mut cmd = weir();
        cmd.args(args).args(["-b", &slow.address]);
        let run = run(&mut cmd);
        run.ok();
        // The process could not reach the cluster before DELAY: a time
        // below it leaves the setup out. (Not a speed limit: any run
        // takes at least DELAY.)
        let secs = summary_secs(&run.stderr);
        assert!(
            secs >= DELAY.as_secs_f64() && secs <= run.elapsed.as_secs_f64(),
            "{args:?}: summary says {secs}s, the run took {:?}:\n{}",
            run.elapsed,
            run.stderr
        );
    }
}

#[test]
fn a_topic_given_twice_is_read_once_with_one_warning() {
    let cluster = Cluster::shared();
    let topic = cluster.create_and_fill("twice", 3, KEYED, (0..30).map(|i| format!("k{i}:v{i}")));
    let run = cluster.weir(&["consume", "-t", &topic, "-t", &topic, "-e", "-f", "{value}"]);
    run.ok();
    let mut values: Vec<&str> = run.stdout.lines().collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(run.stdout.lines().count(), 30, "{}", run.stdout);
    assert_eq!(values.len(), 30);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("given more than once"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains(&topic), "{}", warnings[0]);

    let run = cluster.weir(&[
        "count", "-t", &topic, "-t", &topic, "--by", "key", "-e", "--json",
    ]);
    run.ok();
    let total: u64 = run
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 30, "{}", run.stdout);
}

/// A child process killed (if still running) and reaped when the test
/// ends, also by a failed assertion.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[test]
fn a_second_sigint_ends_at_once_even_with_stdout_blocked() {
    use std::os::fd::AsRawFd;

    // 300 KB of records: more than a pipe holds.
    let value = "x".repeat(300);
    let topic = Cluster::shared().create_and_fill(
        "sigint2",
        1,
        KEYED,
        (0..1000).map(|i| format!("k{i}:{value}")),
    );
    let mut child = Reaped(
        weir()
            .args(["consume", "-t", &topic, "-b", brokers()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    // Never read: weir's writes block once the pipe is full.
    let stdout = child.stdout.take().unwrap();
    let pending = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes the bytes waiting in our own pipe to n.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::ioctl(stdout.as_raw_fd(), libc::FIONREAD, &mut n) };
        assert_eq!(rc, 0);
        n
    };
    let deadline = Instant::now() + STEP_TIMEOUT;
    while pending() < 60_000 {
        assert!(Instant::now() < deadline, "the pipe did not fill");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let sigint = || {
        // SAFETY: signalling our own child process.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
    };
    sigint();
    // The first is seen (and cannot be acted on while the write blocks).
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no line saying the signal was received");
        if line.contains("signal received") {
            assert!(line.contains("second Ctrl-C"), "{line}");
            break;
        }
    }
    sigint();
    let status = common::wait_until(child, Duration::from_secs(10));
    drop(stdout);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(130),
        "no exit within 10 s of the second SIGINT"
    );
}
