//! Share groups (KIP-932) against the project's Kafka 4.4: `weir consume
//! --share-group`. Members on ONE partition each receive records; a
//! member SIGKILLed leaves its records to the acquisition lock's timeout
//! (10 s on the test broker, scripts/kafka.sh) and the others get them; no
//! record is processed twice except those the killed member held; a
//! member that starts after everything was acknowledged receives only
//! what is produced after. The Java console share consumer and a weir
//! member share a group.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, kafka_script, random_topic, wait_until, weir};

/// One line per record: offset and delivery count.
const FORMAT: &str = "{offset} {delivery_count}";

/// A weir member writing to a file, killed when dropped.
struct Member {
    child: Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
}

impl Member {
    fn start(cluster: &Cluster, topic: &str, group: &str, extra: &[&str]) -> Self {
        let out = tempfile::NamedTempFile::new().unwrap();
        let err = tempfile::NamedTempFile::new().unwrap();
        let child = weir()
            .args(["consume", "-t", topic, "--share-group", group])
            .args(["-f", FORMAT])
            .args(extra)
            .args(["-b", cluster.address()])
            .stdout(out.reopen().unwrap())
            .stderr(err.reopen().unwrap())
            .spawn()
            .unwrap();
        Self { child, out, err }
    }

    /// (offset, delivery count) of each whole line written so far.
    fn records(&self) -> Vec<(i64, i16)> {
        read_records(self.out.path())
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.err.path()).unwrap_or_default()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// SIGTERM, then its exit within the limit.
    fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let status = wait_until(&mut self.child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("a member did not stop: {}", self.stderr()));
        assert!(status.success(), "a member failed: {}", self.stderr());
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Whole `offset delivery_count` lines (a killed member may leave half a
/// line at the end).
fn read_records(path: &Path) -> Vec<(i64, i16)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    whole
        .lines()
        .filter_map(|line| {
            let (offset, count) = line.split_once(' ')?;
            Some((offset.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

/// Waits for `condition`, up to `limit`; panics with `what` and the
/// members' stderr past it.
fn wait(what: &str, limit: Duration, members: &[&Member], mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() > deadline {
            let errs: Vec<String> = members.iter().map(|m| m.stderr()).collect();
            panic!(
                "{what}: not within {limit:?}; members said:\n{}",
                errs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn produce_numbers(cluster: &Cluster, topic: &str, from: usize, to: usize) {
    let input: String = (from..to).map(|i| format!("{i}\n")).collect();
    cluster.produce(&["-t", topic], input.as_bytes()).ok();
}

#[test]
fn members_share_one_partition_and_a_killed_members_records_come_back() {
    const RECORDS: usize = 30_000;
    let cluster = Cluster::shared();
    let topic = random_topic("share");
    let group = random_topic("share-group");
    cluster.create_topic(&topic, 1);
    produce_numbers(&cluster, &topic, 0, RECORDS);

    // --from earliest on each: the first sets where the new group starts,
    // the others ask for what it is set to already.
    let from = ["--from", "earliest"];
    let mut members: Vec<Member> = (0..3)
        .map(|_| Member::start(&cluster, &topic, &group, &from))
        .collect();
    wait(
        "the first member receives records",
        Duration::from_secs(30),
        &members.iter().collect::<Vec<_>>(),
        || !members[0].records().is_empty(),
    );
    // SIGKILL: it acknowledges nothing more and releases nothing; what it
    // holds comes back when the locks expire.
    members[0].signal(libc::SIGKILL);
    wait_until(&mut members[0].child, Duration::from_secs(10)).expect("SIGKILL");
    let killed = members.remove(0);
    let held_by_killed: std::collections::BTreeSet<i64> =
        killed.records().iter().map(|r| r.0).collect();

    let seen = |members: &[Member]| {
        let mut seen: BTreeMap<i64, u32> = BTreeMap::new();
        for m in members {
            for (offset, _) in m.records() {
                *seen.entry(offset).or_default() += 1;
            }
        }
        seen
    };
    wait(
        "every record processed (the killed member's after their locks expired)",
        Duration::from_secs(45),
        &members.iter().collect::<Vec<_>>(),
        || {
            let mut all = seen(&members);
            for &offset in &held_by_killed {
                *all.entry(offset).or_default() += 1;
            }
            all.len() == RECORDS
        },
    );
    for m in &members {
        assert!(
            !m.records().is_empty(),
            "a surviving member received nothing: {}",
            m.stderr()
        );
    }
    assert!(!held_by_killed.is_empty());
    // The survivors never got a record twice between them; a record of
    // theirs delivered more than once is one the killed member held
    // (acquired, written or not, never acknowledged).
    let survivors = seen(&members);
    let twice: Vec<_> = survivors.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "records the survivors got twice: {twice:?}"
    );
    let first_written_by_killed = held_by_killed.iter().next().copied().unwrap();
    for m in &members {
        for (offset, count) in m.records() {
            if count > 1 {
                assert!(
                    offset >= first_written_by_killed,
                    "offset {offset} came back (delivery {count}) though the killed member, whose first record was {first_written_by_killed}, cannot have held it"
                );
            }
        }
    }
    // Every record the killed member wrote that a survivor got again was
    // delivered to the survivor as a redelivery.
    for m in &members {
        for (offset, count) in m.records() {
            if held_by_killed.contains(&offset) {
                assert!(
                    count > 1,
                    "offset {offset}: written by the killed member, redelivered with delivery count {count}"
                );
            }
        }
    }

    for m in &mut members {
        m.stop();
    }
    // All acknowledged: a new member gets only what comes after.
    let mut late = Member::start(&cluster, &topic, &group, &["-c", "1"]);
    produce_numbers(&cluster, &topic, RECORDS, RECORDS + 1);
    let status = wait_until(&mut late.child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the late member did not get its record: {}", late.stderr()));
    assert!(status.success(), "{}", late.stderr());
    assert_eq!(late.records(), [(RECORDS as i64, 1)], "{}", late.stderr());
}

/// The Java console share consumer, killed when dropped.
struct JavaMember(Child);

impl Drop for JavaMember {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[test]
fn the_java_console_share_consumer_and_weir_share_a_group() {
    const RECORDS: usize = 20_000;
    let cluster = Cluster::shared();
    let topic = random_topic("share-java");
    let group = random_topic("share-java-group");
    cluster.create_topic(&topic, 1);
    produce_numbers(&cluster, &topic, 0, RECORDS);
    // Where the group starts, set before anyone joins (-c 0 reads nothing).
    cluster
        .weir(&[
            "consume",
            "-t",
            &topic,
            "--share-group",
            &group,
            "--from",
            "earliest",
            "-c",
            "0",
        ])
        .ok();

    let mut java = JavaMember(
        Command::new(kafka_script())
            .arg("tool")
            .arg("org.apache.kafka.tools.consumer.ConsoleShareConsumer")
            .args(["--bootstrap-server", cluster.address()])
            .args(["--topic", &topic, "--group", &group])
            .args(["--formatter-property", "print.offset=true"])
            .args(["--formatter-property", "print.delivery=true"])
            .args(["--formatter-property", "print.value=false"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The Java member's output is read one line, then not until weir has
    // records: its pipe fills and it stops taking records (holding what
    // it acquired), so weir, which starts later, gets some.
    let java_seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(i64, i16)>::new()));
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    {
        let seen = std::sync::Arc::clone(&java_seen);
        let stdout = java.0.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut first = true;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                // Offset:N<TAB>Delivery:D
                let mut fields = line.split('\t');
                let offset = fields
                    .next()
                    .and_then(|f| f.trim().strip_prefix("Offset:")?.parse().ok());
                let count = fields
                    .next()
                    .and_then(|f| f.trim().strip_prefix("Delivery:")?.parse().ok());
                if let (Some(offset), Some(count)) = (offset, count) {
                    seen.lock().unwrap().push((offset, count));
                }
                if first {
                    first = false;
                    if wait_go.recv().is_err() {
                        return;
                    }
                }
            }
        });
    }
    let java_records = || java_seen.lock().unwrap().clone();
    let java_offsets = || -> Vec<i64> { java_records().iter().map(|r| r.0).collect() };
    wait(
        "the Java member receives records",
        Duration::from_secs(40),
        &[],
        || !java_offsets().is_empty(),
    );
    let mut member = Member::start(&cluster, &topic, &group, &[]);
    wait(
        "weir receives records",
        Duration::from_secs(30),
        &[&member],
        || !member.records().is_empty(),
    );
    go.send(()).unwrap();
    wait(
        "every record delivered to one of the two",
        Duration::from_secs(40),
        &[&member],
        || {
            let mut all: std::collections::BTreeSet<i64> = java_offsets().into_iter().collect();
            all.extend(member.records().iter().map(|r| r.0));
            all.len() == RECORDS
        },
    );
    member.stop();
    java.0.kill().ok();
    java.0.wait().ok();
    let weir_records = member.records();
    let java_records = java_records();
    assert!(
        !weir_records.is_empty(),
        "weir received nothing: {}",
        member.stderr()
    );
    assert!(!java_records.is_empty());
    // The Java member stops taking records while its output is not read,
    // holding what it acquired (up to the partition's record locks): weir
    // gets those once their locks expire, as redeliveries. A record both
    // received was delivered again to one of them; none twice at first.
    let java: BTreeMap<i64, i16> = java_records.iter().copied().collect();
    let twice_at_first: Vec<(i64, i16, i16)> = weir_records
        .iter()
        .filter_map(|&(o, n)| Some((o, n, *java.get(&o)?)))
        .filter(|&(_, weir, java)| weir == 1 && java == 1)
        .collect();
    assert!(
        twice_at_first.is_empty(),
        "{} records delivered to both as first deliveries, e.g. {:?}",
        twice_at_first.len(),
        &twice_at_first[..twice_at_first.len().min(5)]
    );
}

#[test]
fn from_is_refused_on_a_share_group_that_has_state() {
    let cluster = Cluster::shared();
    let topic = random_topic("share-from");
    let group = random_topic("share-from-group");
    cluster.create_topic(&topic, 1);
    produce_numbers(&cluster, &topic, 0, 10);
    let first = cluster.weir(&[
        "consume",
        "-t",
        &topic,
        "--share-group",
        &group,
        "--from",
        "earliest",
        "-c",
        "10",
        "-f",
        FORMAT,
    ]);
    first.ok();
    let offsets: Vec<&str> = first
        .stdout
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(offsets.len(), 10, "{}", first.stderr);
    let refused = cluster.weir(&[
        "consume",
        "-t",
        &topic,
        "--share-group",
        &group,
        "--from",
        "latest",
        "-c",
        "1",
    ]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("already exists") && refused.stderr.contains(&group),
        "{}",
        refused.stderr
    );
}

#[test]
fn offsets_show_set_and_delete_a_share_group() {
    let cluster = Cluster::shared();
    let topic = random_topic("share-offsets");
    let group = random_topic("share-offsets-group");
    cluster.create_topic(&topic, 1);
    produce_numbers(&cluster, &topic, 0, 10);
    cluster
        .weir(&[
            "consume",
            "-t",
            &topic,
            "--share-group",
            &group,
            "--from",
            "earliest",
            "-c",
            "10",
        ])
        .ok();
    let show = |cluster: &Cluster| -> serde_json::Value {
        let run = cluster.weir(&["offsets", "show", "-g", &group, "--output", "json"]);
        serde_json::from_str(&run.ok().stdout).unwrap()
    };
    let shown = show(&cluster);
    assert_eq!(shown["type"], "share", "{shown}");
    // The start offset as the share coordinator last persisted it: the
    // acknowledgements sent as the member closed its session may not be
    // in it yet (Kafka 4.4 writes them at the partition's next change).
    let partition = &shown["partitions"][0];
    assert_eq!(partition["high_watermark"], 10, "{shown}");
    let start = partition["start_offset"].as_i64().unwrap();
    assert!((0..=10).contains(&start), "{shown}");
    assert_eq!(partition["lag"], 10 - start, "{shown}");

    let groups = cluster.weir(&["offsets", "groups", "--output", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&groups.ok().stdout).unwrap();
    let ours = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(ours["type"], "share", "{ours}");
    assert_eq!(ours["protocol"], "simple", "{ours}");

    // Back to offset 7: the next member reads 7, 8, 9 as first deliveries.
    cluster
        .weir(&["offsets", "set", "-g", &group, "-t", &topic, "--to", "7"])
        .ok();
    assert_eq!(show(&cluster)["partitions"][0]["start_offset"], 7);
    let again = cluster.weir(&[
        "consume",
        "-t",
        &topic,
        "--share-group",
        &group,
        "-c",
        "3",
        "-f",
        FORMAT,
    ]);
    assert_eq!(again.ok().stdout, "7 1\n8 1\n9 1\n");

    cluster.weir(&["offsets", "delete", "-g", &group]).ok();
    let shown = show(&cluster);
    assert!(
        shown["partitions"].as_array().unwrap().is_empty(),
        "{shown}"
    );
}

#[test]
fn a_member_stopped_by_count_releases_what_it_did_not_write() {
    let cluster = Cluster::shared();
    let topic = random_topic("share-release");
    let group = random_topic("share-release-group");
    cluster.create_topic(&topic, 1);
    // One batch of 10: a member acquires it whole.
    produce_numbers(&cluster, &topic, 0, 10);
    let first = cluster.weir(&[
        "consume",
        "-t",
        &topic,
        "--share-group",
        &group,
        "--from",
        "earliest",
        "-c",
        "3",
        "-f",
        FORMAT,
    ]);
    assert_eq!(first.ok().stdout, "0 1\n1 1\n2 1\n");
    // "...; acknowledged 3 accept, 7 release, 0 reject"
    let released: u64 = first
        .stderr
        .split([';', ','])
        .find_map(|part| part.trim().strip_suffix(" release")?.parse().ok())
        .unwrap_or_else(|| panic!("{}", first.stderr));
    assert!(released <= 7, "{}", first.stderr);
    // Released, not left to the locks (10 s): the next member gets the
    // rest well before they would expire, as second deliveries when they
    // were acquired before.
    let mut next = Member::start(&cluster, &topic, &group, &["-c", "7"]);
    let status = wait_until(&mut next.child, Duration::from_secs(8))
        .unwrap_or_else(|| panic!("the rest did not come back at once: {}", next.stderr()));
    assert!(status.success(), "{}", next.stderr());
    let got: Vec<i64> = next.records().iter().map(|r| r.0).collect();
    assert_eq!(got, (3..10).collect::<Vec<_>>(), "{}", next.stderr());
    let second = next.records().iter().filter(|r| r.1 == 2).count() as u64;
    assert_eq!(second, released, "{}", next.stderr());
}

/// `GET path` on `addr`: the status code and the body.
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
fn a_share_member_is_ready_and_counts_what_it_acknowledged() {
    let cluster = Cluster::shared();
    let topic = random_topic("share-metrics");
    let group = random_topic("share-metrics-group");
    cluster.create_topic(&topic, 1);
    produce_numbers(&cluster, &topic, 0, 100);
    let addr = format!("127.0.0.1:{}", common::free_port());
    let member = Member::start(
        &cluster,
        &topic,
        &group,
        &["--from", "earliest", "--metrics-addr", &addr],
    );
    wait(
        "100 records written",
        Duration::from_secs(30),
        &[&member],
        || member.records().len() == 100,
    );
    wait("ready", Duration::from_secs(10), &[&member], || {
        get(&addr, "/readyz").is_some_and(|(status, _)| status == 200)
    });
    // Accepted once written and flushed; the count shows once the
    // delivery's acknowledgements were made.
    let mut body = String::new();
    wait("100 accepted", Duration::from_secs(10), &[&member], || {
        body = get(&addr, "/metrics").map(|r| r.1).unwrap_or_default();
        sample(&body, "weir_share_accepted_total") == Some(100.0)
    });
    assert_eq!(
        sample(&body, "weir_records_in_total"),
        Some(100.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "weir_share_released_total"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "weir_share_redeliveries_total"),
        Some(0.0),
        "{body}"
    );
}
