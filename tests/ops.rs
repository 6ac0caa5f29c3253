//! Everyday command-line conventions, against a real broker and the real
//! binary: `--log-format json` lines that parse, shell completions that
//! bash loads, the man page, and `weir cluster`.

mod common;

use std::sync::Mutex;

use common::{Cluster, brokers, cannot_run, random_topic, run, weir};
use serde_json::Value;

/// Held by the tests here that create topics, so that `weir cluster`'s
/// topic count can be compared exactly before and after a creation.
static CREATING_TOPICS: Mutex<()> = Mutex::new(());

fn json(what: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

/// Every line of `stderr` as a JSON object.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|line| {
            let value = json("stderr line", line);
            assert!(value.is_object(), "not an object: {line}");
            value
        })
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line_with_the_events_fields() {
    let cluster = Cluster::shared();
    let topic = random_topic("ops-logs");
    {
        let _creating = CREATING_TOPICS.lock().unwrap_or_else(|e| e.into_inner());
        cluster.create_topic(&topic, 1);
    }
    cluster.produce(&["-t", &topic], b"a\nb\nc\n").ok();

    // Starting past the end of a 3-record partition is logged at info,
    // with the topic and partition as fields.
    let consume = ["consume", "-t", &topic, "-e", "--from", "100"];
    let by_flag = cluster.weir(&[&consume[..], &["--log-format", "json"]].concat());
    let mut cmd = weir();
    cmd.args(consume)
        .args(["-b", cluster.address()])
        .env("WEIR_LOG_FORMAT", "json");
    let by_env = run(&mut cmd);

    for (how, run) in [
        ("--log-format json", by_flag),
        ("WEIR_LOG_FORMAT=json", by_env),
    ] {
        run.ok();
        let lines = json_lines(&run.stderr);
        let clamped = lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.contains("clamped")))
            .unwrap_or_else(|| panic!("{how}: no clamp event in\n{}", run.stderr));
        assert_eq!(clamped["level"], "INFO", "{how}: {clamped}");
        assert_eq!(clamped["topic"], topic.as_str(), "{how}: {clamped}");
        assert_eq!(clamped["partition"], 0, "{how}: {clamped}");
        assert_eq!(clamped["wanted"], 100, "{how}: {clamped}");
        assert_eq!(clamped["start"], 3, "{how}: {clamped}");
        assert!(clamped["timestamp"].is_string(), "{how}: {clamped}");
        // weir's own summary line is an object too.
        assert!(
            lines.iter().any(|l| l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("consumed 0 records"))),
            "{how}: no summary in\n{}",
            run.stderr
        );
    }

    // Text stays the default.
    let text = cluster.weir(&consume);
    text.ok();
    let clamped = text
        .stderr
        .lines()
        .find(|l| l.contains("clamped"))
        .unwrap_or_else(|| panic!("no clamp line in\n{}", text.stderr));
    assert!(serde_json::from_str::<Value>(clamped).is_err(), "{clamped}");
}

#[test]
fn the_final_error_is_a_json_object_too() {
    let run = run(weir().args([
        "--log-format",
        "json",
        "topics",
        "describe",
        "no-such-topic-ops",
        "-b",
        brokers(),
    ]));
    run.expect_code(1);
    let lines = json_lines(&run.stderr);
    let last = lines.last().expect("an error line");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"no-such-topic-ops\" does not exist")),
        "{last}"
    );
}

#[test]
fn bash_loads_the_completions() {
    let script = run(weir().args(["completions", "bash"]));
    script.ok();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.bash");
    std::fs::write(&file, &script.stdout).unwrap();
    let mut bash = std::process::Command::new("bash");
    bash.arg("-c")
        .arg(format!("source '{}' && complete -p weir", file.display()));
    let loaded = match bash.output() {
        Ok(out) => out,
        Err(e) => return cannot_run("bash_loads_the_completions", &format!("bash: {e}")),
    };
    let stdout = String::from_utf8_lossy(&loaded.stdout);
    assert!(
        loaded.status.success(),
        "complete -p weir failed: {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert!(
        stdout.trim_end().ends_with(" weir") && stdout.contains("-F _weir"),
        "{stdout}"
    );
    // The subcommands are what it completes after `weir`.
    for sub in ["topics", "consume", "cluster", "completions", "manpage"] {
        assert!(script.stdout.contains(sub), "{sub} missing");
    }

    let bad = run(weir().args(["completions", "tcsh"]));
    bad.expect_code(2);
}

#[test]
fn the_man_page_is_roff_and_documents_every_subcommand() {
    let page = run(weir().arg("manpage"));
    page.ok();
    let th = page
        .stdout
        .lines()
        .position(|l| l.starts_with(".TH weir 1"))
        .unwrap_or_else(|| panic!("no .TH header:\n{}", page.stdout));
    assert!(
        page.stdout.lines().take(th).all(|l| l.starts_with('.')),
        "text before the .TH header"
    );
    assert!(page.stdout.contains("\n.SH NAME\n"));
    for sub in [
        "topics",
        "produce",
        "consume",
        "count",
        "agg",
        "pipe",
        "offsets",
        "bench",
        "cluster",
        "completions",
        "manpage",
    ] {
        assert!(
            page.stdout.contains(&format!("\\fBweir {sub}\\fR")),
            "{sub} missing from the SUBCOMMANDS section"
        );
        // Its own section in the same page, with its flags.
        assert!(
            page.stdout
                .contains(&format!("\n.SH \"WEIR {}\"\n", sub.to_uppercase())),
            "no section for {sub}"
        );
    }
    // One page: no other page is named, as none is made.
    assert!(!page.stdout.contains("(1)"), "a reference to another page");
    assert!(
        page.stdout.contains("\\-\\-session\\-gap"),
        "no flag of agg"
    );
    assert!(
        page.stdout.contains("WEIR_BROKERS"),
        "no environment variables"
    );
}

#[test]
fn cluster_lists_the_brokers_and_counts_a_new_topic() {
    let cluster = Cluster::shared();
    let port = cluster
        .address()
        .rsplit(':')
        .next()
        .expect("host:port")
        .to_owned();
    let describe = || {
        let run = cluster.weir(&["cluster", "--output", "json"]);
        run.ok();
        json("weir cluster --output json", &run.stdout)
    };
    let topic = random_topic("ops-cluster");
    let (before, after) = {
        let _creating = CREATING_TOPICS.lock().unwrap_or_else(|e| e.into_inner());
        let before = describe();
        cluster.create_topic(&topic, 3);
        (before, describe())
    };

    let id = after["cluster_id"].as_str().expect("a cluster id");
    assert!(!id.is_empty());
    let brokers = after["brokers"].as_array().expect("brokers");
    assert!(
        brokers.iter().any(|b| b["address"]
            .as_str()
            .is_some_and(|a| a.ends_with(&format!(":{port}")))),
        "no broker on port {port}: {after}"
    );
    let ids: Vec<_> = brokers.iter().map(|b| b["id"].clone()).collect();
    assert!(ids.contains(&after["controller"]), "{after}");
    let count = |v: &Value, field: &str| v[field].as_u64().expect(field);
    assert_eq!(count(&after, "topics"), count(&before, "topics") + 1);
    assert_eq!(
        count(&after, "partitions"),
        count(&before, "partitions") + 3
    );

    // The same in text, for people.
    let text = cluster.weir(&["cluster"]);
    text.ok();
    assert!(
        text.stdout.contains(&format!("Cluster id: {id}\n")),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains(&format!(":{port} ")),
        "{}",
        text.stdout
    );
}

/// `weir cluster --topics -t T` (kcat -L): each partition's leader,
/// replicas and ISR, as Kafka's TopicCommand describes them; a topic that
/// does not exist fails naming it.
#[test]
fn cluster_topics_lists_each_partitions_leader_replicas_and_isr() {
    let cluster = Cluster::shared();
    let topic = random_topic("ops-layout");
    {
        let _creating = CREATING_TOPICS.lock().unwrap_or_else(|e| e.into_inner());
        cluster.create_topic(&topic, 2);
    }
    let run = cluster.weir(&["cluster", "--topics", "-t", &topic, "--output", "json"]);
    run.ok();
    let v = json("weir cluster --topics", &run.stdout);
    assert!(v["cluster_id"].is_string(), "{v}");
    let topics = v["topic_partitions"].as_array().expect("topic_partitions");
    assert_eq!(topics.len(), 1, "{v}");
    assert_eq!(topics[0]["topic"], topic.as_str());
    let partitions = topics[0]["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "{v}");
    let broker = v["brokers"][0]["id"].clone();
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], i as u64);
        assert_eq!(p["leader"], broker, "{p}");
        assert_eq!(p["replicas"], serde_json::json!([broker]), "{p}");
        assert_eq!(p["isr"], serde_json::json!([broker]), "{p}");
    }
    // The same for people: the leader, replicas and ISR per partition.
    let text = cluster.weir(&["cluster", "--topics", "-t", &topic]);
    text.ok();
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with(&topic) && l.split_whitespace().nth(1) == Some("1"))
        .unwrap_or_else(|| panic!("no row for partition 1:\n{}", text.stdout));
    let cells: Vec<_> = line.split_whitespace().collect();
    let id = broker.to_string();
    assert_eq!(cells[2..], [&id, &id, &id, "-", "ok"], "{line}");
    assert!(
        text.stdout
            .contains("Offline partitions: 0, under-replicated: 0"),
        "{}",
        text.stdout
    );

    let missing = cluster.weir(&["cluster", "--topics", "-t", &format!("{topic}-none")]);
    missing.expect_code(1);
    assert!(
        missing.stderr.contains(&format!("{topic}-none")),
        "{}",
        missing.stderr
    );
}

/// `-X key=value` with Java and librdkafka property names: the producer's,
/// the consumer's and the group's settings reach the broker as their flags
/// do (the group's offsets are committed under `group.id`); an unknown
/// property names the nearest, and a property with its flag is refused.
#[test]
fn client_properties_stand_for_their_flags() {
    let cluster = Cluster::shared();
    let topic = random_topic("ops-props");
    {
        let _creating = CREATING_TOPICS.lock().unwrap_or_else(|e| e.into_inner());
        cluster.create_topic(&topic, 2);
    }
    let servers = format!("bootstrap.servers={}", cluster.address());
    let group = random_topic("props-group");
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), "a\nb\nc\nd\ne\n").unwrap();
    run(weir()
        .args(["-X", &servers, "-X", "client.id=props-test"])
        .args(["produce", "-t", &topic])
        .args(["-X", "compression.type=gzip", "-X", "linger.ms=1"])
        .args(["-X", "acks=all", "-X", "enable.idempotence=true"])
        .stdin(std::fs::File::open(input.path()).unwrap()))
    .ok();

    let read = run(weir().args([
        "-X",
        &servers,
        "consume",
        "-t",
        &topic,
        "-e",
        "-q",
        "-X",
        &format!("group.id={group}"),
        "-X",
        "auto.offset.reset=earliest",
        "-X",
        "isolation.level=read_committed",
        "-X",
        "session.timeout.ms=10000",
    ]));
    read.ok();
    let mut values: Vec<_> = read.stdout.lines().collect();
    values.sort_unstable();
    assert_eq!(values, ["a", "b", "c", "d", "e"]);
    let shown = cluster.weir(&["offsets", "show", "-g", &group, "--output", "json"]);
    shown.ok();
    let shown = json("offsets show", &shown.stdout);
    let committed: i64 = shown["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(committed, 5, "{shown}");

    let unknown = run(weir().args(["-X", "bootstrap.server=x:1", "topics", "list"]));
    unknown.expect_code(2);
    assert!(
        unknown.stderr.contains("the nearest is bootstrap.servers"),
        "{}",
        unknown.stderr
    );
    let both = cluster.weir(&["topics", "list", "-X", &servers]);
    both.expect_code(2);
    assert!(both.stderr.contains("--brokers"), "{}", both.stderr);
    let misplaced = run(weir().args(["-X", &servers, "topics", "list", "-X", "linger.ms=5"]));
    misplaced.expect_code(2);
    assert!(
        misplaced.stderr.contains("--linger"),
        "{}",
        misplaced.stderr
    );
}
