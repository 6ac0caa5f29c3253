//! Usage errors found before any request, without a broker: settings every
//! command refuses (and `config show` with them), SASL passwords that
//! cannot be used, and topic names Kafka's rule forbids. Each is exit 2
//! and one line on stderr, and each command is pointed at a listener that
//! must see no connection.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::{Run, run, weir};

/// A local port that records whether anything connected to it: weir is
/// pointed here, so a usage error found "before any request" can be told
/// from one the broker answered.
struct Untouched(TcpListener);

impl Untouched {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self(listener)
    }

    fn address(&self) -> String {
        self.0.local_addr().unwrap().to_string()
    }

    /// Panics if a connection came in (the kernel completes it in the
    /// backlog, so it is there to accept once weir has exited).
    fn assert_untouched(&self, what: &str) {
        match self.0.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("{what}: weir connected before refusing ({other:?})"),
        }
    }
}

/// Exit 2 and exactly one line on stderr; returns that line.
fn one_usage_line<'a>(run: &'a Run, what: &str) -> &'a str {
    run.expect_code(2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line expected:\n{}", run.stderr);
    assert!(lines[0].starts_with("weir: "), "{what}: {}", lines[0]);
    lines[0]
}

fn says(line: &str, part: &str) {
    assert!(line.contains(part), "{part:?} not in: {line}");
}

/// A config file only its owner reads (else one with a password is
/// warned about on a second line).
fn config_file(dir: &Path, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

/// `weir config show` refuses, with the commands' own line, what every
/// command refuses; the table of settings is still printed first, so the
/// origin of the setting at fault shows.
#[test]
fn config_show_refuses_what_every_command_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Untouched::new();
    let text = format!(
        "[profiles.gssapi]\nbrokers = \"{b}\"\nsasl-mechanism = \"GSSAPI\"\nsasl-username = \"u\"\n\
         [profiles.nobrokers]\nbrokers = \"\"\n\
         [profiles.certonly]\nbrokers = \"{b}\"\ntls-cert = \"client.pem\"\n\
         [profiles.fine]\nbrokers = \"{b}\"\n",
        b = broker.address()
    );
    let file = config_file(dir.path(), &text);
    /// A profile, the environment it runs with, what its line says.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case<'_>; 4] = [
        ("gssapi", &[], &["sasl-mechanism", "\"GSSAPI\""]),
        ("nobrokers", &[], &["brokers", "no broker given"]),
        ("certonly", &[], &["tls-cert", "needs --tls-key"]),
        (
            "fine",
            &[("WEIR_TIMEOUT", "0s")],
            &["WEIR_TIMEOUT", "greater than zero"],
        ),
    ];
    for (profile, env, parts) in cases {
        let command = |args: &[&str]| {
            let mut cmd: Command = weir();
            cmd.args(["--config-file", &file, "--profile", profile])
                .args(args)
                .envs(env.iter().copied());
            run(&mut cmd)
        };
        let shown = command(&["config", "show"]);
        let line = one_usage_line(&shown, &format!("config show, profile {profile}"));
        for part in parts {
            says(line, part);
        }
        assert!(
            shown.stdout.lines().any(|l| l.starts_with("brokers")),
            "the settings are shown first:\n{}",
            shown.stdout
        );
        // The same line as the commands that would use the settings.
        let listed = command(&["topics", "list"]);
        assert_eq!(one_usage_line(&listed, "topics list"), line);
        broker.assert_untouched(profile);
    }

    // Settings a command accepts are shown with exit 0.
    let mut cmd = weir();
    cmd.args([
        "--config-file",
        &file,
        "--profile",
        "fine",
        "config",
        "show",
    ]);
    let shown = run(&mut cmd);
    shown.ok();
    assert_eq!(shown.stderr, "");
}

#[test]
fn an_empty_sasl_password_or_one_without_a_mechanism_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Untouched::new();
    let b = broker.address();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let blank_line = dir.path().join("blank-line");
    std::fs::write(&blank_line, "\nsecond line\n").unwrap();
    let login = ["--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "u"];

    for file in [&empty, &blank_line] {
        let file_arg = file.display().to_string();
        for args in [&["topics", "list"][..], &["config", "show"][..]] {
            let mut cmd = weir();
            cmd.args(["-b", &b])
                .args(login)
                .args(["--sasl-password-file", &file_arg])
                .args(args);
            let refused = run(&mut cmd);
            let line = one_usage_line(&refused, &format!("{file_arg} {args:?}"));
            says(line, "--sasl-password-file");
            says(line, &format!("\"{file_arg}\""));
            says(line, "SASL needs a password");
        }
    }

    // An empty WEIR_SASL_PASSWORD, and one in a profile.
    let mut cmd = weir();
    cmd.args(["-b", &b])
        .args(login)
        .args(["topics", "list"])
        .env("WEIR_SASL_PASSWORD", "");
    let line = one_usage_line(&run(&mut cmd), "empty WEIR_SASL_PASSWORD").to_owned();
    says(&line, "WEIR_SASL_PASSWORD is empty");
    let file = config_file(
        dir.path(),
        &format!(
            "[profiles.p]\nbrokers = \"{b}\"\nsasl-mechanism = \"PLAIN\"\n\
             sasl-username = \"u\"\nsasl-password = \"\"\n"
        ),
    );
    let mut cmd = weir();
    cmd.args(["--config-file", &file, "--profile", "p", "topics", "list"]);
    let line = one_usage_line(&run(&mut cmd), "empty sasl-password").to_owned();
    says(&line, "profile \"p\"");
    says(&line, "sasl-password is empty");

    // A password without a mechanism, as a user name without one.
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "secret\n").unwrap();
    for (what, args, env) in [
        (
            "WEIR_SASL_PASSWORD",
            &["topics", "list"][..],
            Some("secret"),
        ),
        (
            "WEIR_SASL_PASSWORD",
            &["config", "show"][..],
            Some("secret"),
        ),
        (
            "--sasl-password-file",
            &[
                "topics",
                "list",
                "--sasl-password-file",
                password_file.to_str().unwrap(),
            ][..],
            None,
        ),
    ] {
        let mut cmd = weir();
        cmd.args(["-b", &b]).args(args);
        if let Some(password) = env {
            cmd.env("WEIR_SASL_PASSWORD", password);
        }
        let refused = run(&mut cmd);
        let line = one_usage_line(&refused, what);
        says(line, &format!("{what} needs --sasl-mechanism"));
        assert!(!refused.stderr.contains("secret"), "{}", refused.stderr);
        assert!(!refused.stdout.contains("secret"), "{}", refused.stdout);
    }
    broker.assert_untouched("SASL passwords");
}

#[test]
fn invalid_topic_names_are_usage_errors_before_any_request() {
    let broker = Untouched::new();
    let b = broker.address();
    let long = "x".repeat(250);
    let names = ["bad name!", ".", "..", long.as_str(), "é", "a/b", ""];
    for name in names {
        let quoted = format!("{name:?}");
        let commands: Vec<Vec<&str>> = vec![
            vec!["topics", "create", name],
            vec!["topics", "delete", name],
            vec!["topics", "describe", name],
            vec!["produce", "-t", name],
            vec!["consume", "-t", "ok", "-t", name, "-e"],
            vec!["count", "-t", name, "-e", "--by", "key"],
            vec!["agg", "-t", name, "-e", "--by", "key"],
            vec!["pipe", "-t", name, "--to", "ok", "-e"],
            vec!["pipe", "-t", "ok", "--to", name, "-e"],
            vec!["count", "-t", "ok", "--to-topic", name, "-e", "--by", "key"],
            vec!["offsets", "show", "-g", "g", "-t", name],
            vec!["offsets", "delete", "-g", "g", "-t", name],
            vec!["offsets", "set", "-g", "g", "-t", name, "--to", "earliest"],
            vec!["consume", "-t", "ok", "-g", "g", "--offsets-topic", name],
            vec!["bench", "produce", "-t", name],
        ];
        for args in commands {
            let mut cmd = weir();
            cmd.args(["-b", &b, "--timeout", "2s"]).args(&args);
            let refused = run(&mut cmd);
            let what = format!("{args:?}");
            let line = one_usage_line(&refused, &what);
            says(line, &format!("topic name {quoted}"));
            says(line, "Kafka's rule: 1 to 249 characters of a-z, A-Z, 0-9");
        }
    }
    broker.assert_untouched("invalid topic names");

    // The longest name allowed, and every allowed character, get past the
    // check (to the listener, which is not Kafka).
    let mut cmd = weir();
    let longest = "x".repeat(249);
    cmd.args(["-b", &b, "--timeout", "1s", "topics", "describe", &longest]);
    let past = run(&mut cmd);
    assert_eq!(past.code, Some(1), "{}", past.stderr);
    assert!(!past.stderr.contains("Kafka's rule"), "{}", past.stderr);
}

/// On the consumer protocol (KIP-848) the broker decides the session
/// timeout, the heartbeat interval and the assignment, and the Java
/// consumer refuses `session.timeout.ms`, `heartbeat.interval.ms` and
/// `partition.assignment.strategy` with `group.protocol=consumer`: weir
/// refuses their flags (given as flags, `-X` properties or, for
/// `--assignor`, WEIR_ASSIGNOR), naming the broker-side config to set
/// instead; its defaults stay allowed.
#[test]
fn classic_timings_and_assignors_are_refused_on_the_consumer_protocol() {
    let broker = Untouched::new();
    let b = broker.address();
    let consumer = ["--group-protocol", "consumer"];
    // The flags, an environment variable, the flag named, what to set.
    type Case = (
        &'static [&'static str],
        Option<(&'static str, &'static str)>,
        &'static str,
        &'static str,
    );
    let cases: [Case; 5] = [
        (
            &["--session-timeout", "60s"],
            None,
            "--session-timeout",
            "--entity-type groups --entity-name g --alter --add-config consumer.session.timeout.ms=",
        ),
        (
            &["-X", "session.timeout.ms=60000"],
            None,
            "--session-timeout",
            "its group.consumer.session.timeout.ms",
        ),
        (
            &["--heartbeat-interval", "1s"],
            None,
            "--heartbeat-interval",
            "--add-config consumer.heartbeat.interval.ms=",
        ),
        (
            &["--assignor", "range"],
            None,
            "--assignor",
            "--group-remote-assignor",
        ),
        (
            &[],
            Some(("WEIR_ASSIGNOR", "range")),
            "--assignor",
            "--group-remote-assignor",
        ),
    ];
    for command in [
        &["consume", "-t", "in", "-g", "g"][..],
        &["pipe", "-t", "in", "--to", "out", "-g", "g"],
        &["count", "-t", "in", "-g", "g", "--by", "key"],
    ] {
        for (flags, env, flag, instead) in cases {
            let mut cmd = weir();
            cmd.args(["-b", &b, "--timeout", "2s"])
                .args(command)
                .args(consumer)
                .args(flags);
            if let Some((var, value)) = env {
                cmd.env(var, value);
            }
            let refused = run(&mut cmd);
            let what = format!("{command:?} {flags:?} {env:?}");
            let line = one_usage_line(&refused, &what);
            says(line, &format!("{flag} is for the classic protocol only"));
            says(line, "--group-protocol consumer");
            says(line, instead);
        }
    }
    broker.assert_untouched("classic flags on the consumer protocol");

    // The same flags on the classic protocol, and the consumer protocol
    // with weir's defaults, get past the check (to the listener).
    for flags in [
        &["--session-timeout", "60s", "--assignor", "range"][..],
        &consumer[..],
    ] {
        let mut cmd = weir();
        cmd.args([
            "-b",
            &b,
            "--timeout",
            "1s",
            "consume",
            "-t",
            "in",
            "-g",
            "g",
        ])
        .args(flags);
        let past = run(&mut cmd);
        assert_eq!(past.code, Some(1), "{flags:?}: {}", past.stderr);
        assert!(
            !past.stderr.contains("classic protocol only"),
            "{}",
            past.stderr
        );
    }
}
