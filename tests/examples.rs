//! The examples in `examples/` are tests: each is built and run against
//! the test broker, and what it prints is checked, so the library's
//! documented use cannot rot.
//!
//! `cargo test` builds the examples with the tests; a run of this file
//! alone (`cargo test --test examples`) builds them first, with cargo.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::{STEP_TIMEOUT, brokers, random_topic, read_all, run_with_deadline, weir_run};

/// The example `name`, built (again, if its sources changed) first: a
/// no-op after `cargo test`, which builds the examples with the tests.
fn example(name: &str) -> Command {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let built = run_with_deadline(
            Command::new(env!("CARGO"))
                .args(["build", "--offline", "--examples"])
                .current_dir(env!("CARGO_MANIFEST_DIR")),
            std::time::Duration::from_secs(900),
        );
        built.ok();
        // target/debug/deps/examples-HASH -> target/debug/examples
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join("examples")
    });
    Command::new(dir.join(name))
}

/// Runs example `name` with `args`, which must succeed; its stdout.
fn run_example(name: &str, args: &[&str]) -> String {
    let run = run_with_deadline(example(name).args(args), STEP_TIMEOUT);
    run.ok();
    run.stdout
}

/// 1,000 keyed JSON records through `produce` (each awaited through its
/// delivery future), read back by `consume` with manual commits (all of
/// them, then none on a second run of the group), counted per user and
/// window by `count`, and one user's records piped exactly once by `pipe`.
#[test]
fn the_examples_produce_consume_count_and_pipe_exactly() {
    let topic = random_topic("examples");
    weir_run(&["topics", "create", &topic, "--partitions", "3"]).ok();
    let out = run_example("produce", &[brokers(), &topic, "1000"]);
    assert_eq!(out.trim(), format!("written 1000 records to {topic}"));
    let stored = read_all(brokers(), &topic, 3);
    assert_eq!(stored.values().map(Vec::len).sum::<usize>(), 1000);

    let group = format!("{topic}-readers");
    let out = run_example("consume", &[brokers(), &topic, &group]);
    assert_eq!(out.trim(), "read 1000 records, committed up to 1000");
    let again = run_example("consume", &[brokers(), &topic, &group]);
    assert_eq!(
        again.trim(),
        "read 0 records, committed up to 0",
        "resumed from the commits"
    );

    let out = run_example("count", &[brokers(), &topic]);
    let mut per_user: BTreeMap<String, u64> = BTreeMap::new();
    let mut windows = BTreeSet::new();
    for line in out.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        windows.insert(row["window_start"].as_str().unwrap().to_owned());
        *per_user
            .entry(row["key"].as_str().unwrap().to_owned())
            .or_default() += row["count"].as_u64().unwrap();
    }
    assert_eq!(per_user.len(), 100, "{out}");
    assert!(per_user.values().all(|n| *n == 10), "{per_user:?}");
    assert!(windows.len() <= 2, "one-minute windows: {windows:?}");

    let to = random_topic("examples-u7");
    weir_run(&["topics", "create", &to, "--partitions", "1"]).ok();
    let out = run_example("pipe", &[brokers(), &topic, &to, &format!("{topic}-pipe")]);
    assert_eq!(out.trim(), "piped 10 records");
    // The transaction's commit markers are written after EndTxn answered:
    // read_committed sees the records once they are.
    let values = || -> BTreeSet<String> {
        read_all(brokers(), &to, 1)[&0]
            .iter()
            .map(|r| String::from_utf8(r.record.value.clone().unwrap()).unwrap())
            .collect()
    };
    common::wait_for("the piped records, committed", || !values().is_empty());
    let values = values();
    assert_eq!(values.len(), 10);
    assert!(
        values.iter().all(|v| v.contains(r#""user":"u7""#)),
        "{values:?}"
    );
}

/// Two members of one group in one process, each with a handler
/// (`group`): every record of a 3-partition topic handled exactly once
/// across both in a clean run, and a second run of the group handles only
/// the records produced since, resumed from the commits.
#[test]
fn the_group_example_handles_every_record_once_across_two_members() {
    let topic = random_topic("examples-group");
    weir_run(&["topics", "create", &topic, "--partitions", "3"]).ok();
    let out = run_example("produce", &[brokers(), &topic, "600"]);
    assert_eq!(out.trim(), format!("written 600 records to {topic}"));

    let group = format!("{topic}-members");
    let out = run_example("group", &[brokers(), &topic, &group, "600"]);
    assert_eq!(out.trim(), "handled 600 records, 600 distinct");

    let out = run_example("produce", &[brokers(), &topic, "50"]);
    assert_eq!(out.trim(), format!("written 50 records to {topic}"));
    let again = run_example("group", &[brokers(), &topic, &group, "50"]);
    assert_eq!(
        again.trim(),
        "handled 50 records, 50 distinct",
        "resumed from the commits"
    );
}
