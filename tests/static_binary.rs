//! The static release binaries, run where weir is meant to run: each alone
//! in an empty root, a stand-in for a `FROM scratch` container (no libc, no
//! /etc, no /etc/ssl, no resolv.conf). The x86_64 musl build runs natively;
//! the aarch64 musl build runs under `qemu-aarch64-static`, which is static
//! too and is copied into its root beside it.
//!
//! `just test` builds both first (`scripts/static.sh`, `scripts/cross.sh`)
//! and passes their paths in `WEIR_STATIC_BIN` and `WEIR_AARCH64_BIN`;
//! without those, the default `target/<triple>/release/weir` is used.
//! A test whose binary or qemu is missing fails and says what to run;
//! with `WEIR_ALLOW_SKIP=1` it prints a SKIPPED line instead.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Run, brokers, random_topic, run};

/// One target's static binary, ready to run alone in an empty root.
struct Target {
    /// The binary, where the build put it.
    binary: PathBuf,
    /// The root directory: `/weir` (and `/qemu-aarch64-static`) only.
    root: tempfile::TempDir,
    /// What runs `/weir` inside the root: `chroot ROOT [/qemu] /weir`.
    prefix: Vec<OsString>,
}

impl Target {
    /// The x86_64 musl build, run natively in an empty root; `None` when
    /// it is missing and `WEIR_ALLOW_SKIP=1` (see [`common::cannot_run`]).
    fn x86_64(test: &str) -> Option<Self> {
        let binary = built_binary(
            test,
            "WEIR_STATIC_BIN",
            "x86_64-unknown-linux-musl",
            "just static",
        )?;
        Some(Self::in_empty_root(binary, None))
    }

    /// The aarch64 musl build, run by qemu-aarch64-static in an empty root;
    /// `None` when either is missing and `WEIR_ALLOW_SKIP=1`.
    fn aarch64(test: &str) -> Option<Self> {
        let binary = built_binary(
            test,
            "WEIR_AARCH64_BIN",
            "aarch64-unknown-linux-musl",
            "just cross",
        )?;
        let Some(qemu) = find_program("qemu-aarch64-static") else {
            // scripts/cross.sh installs qemu-user-static where it can (as
            // root with apt-get).
            common::cannot_run(
                test,
                "qemu-aarch64-static is not installed: run `just cross` as root, \
                 or sudo apt-get install qemu-user-static",
            );
            return None;
        };
        Some(Self::in_empty_root(binary, Some(qemu)))
    }

    fn in_empty_root(binary: PathBuf, qemu: Option<PathBuf>) -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::copy(&binary, root.path().join("weir")).unwrap();
        let mut prefix = vec![chroot_program().into(), root.path().into()];
        if let Some(qemu) = qemu {
            std::fs::copy(&qemu, root.path().join("qemu-aarch64-static")).unwrap();
            prefix.push("/qemu-aarch64-static".into());
        }
        prefix.push("/weir".into());
        Self {
            binary,
            root,
            prefix,
        }
    }

    /// A command running `weir ARGS` in the root, with an empty environment
    /// and stdin from /dev/null.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.prefix[0]);
        cmd.args(&self.prefix[1..])
            .args(args)
            .env_clear()
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `weir ARGS` in the root to completion.
    fn weir(&self, args: &[&str]) -> Run {
        run(&mut self.command(args))
    }

    /// Runs `weir ARGS` in the root with the file `input` on stdin.
    fn weir_with_input(&self, args: &[&str], input: &Path) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(std::fs::File::open(input).unwrap());
        run(&mut cmd)
    }

    /// Places a file at `path` (relative to the root), e.g. `etc/hosts`.
    fn add_file(&self, path: &str, contents: &str) {
        let path = self.root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

/// The binary from `env_var`, else `target/<triple>/release/weir`. When it
/// is missing, `test` fails naming the recipe that builds it, or with
/// `WEIR_ALLOW_SKIP=1` is skipped (`None`).
fn built_binary(test: &str, env_var: &str, triple: &str, recipe: &str) -> Option<PathBuf> {
    let path = match std::env::var_os(env_var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let target_dir = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
            target_dir.join(triple).join("release/weir")
        }
    };
    if !path.exists() {
        common::cannot_run(
            test,
            &format!(
                "{} is missing: run `{recipe}` and pass its path in {env_var} \
                 (`just test` does both)",
                path.display()
            ),
        );
        return None;
    }
    Some(path)
}

/// The first of the usual places holding `name`, or any directory on PATH.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn chroot_program() -> PathBuf {
    find_program("chroot").expect("chroot (coreutils) is needed for this test")
}

/// `file`'s description of `binary`.
fn file_type(binary: &Path) -> String {
    let out = Command::new("file")
        .arg("-b")
        .arg(binary)
        .output()
        .expect("`file` is needed for this test (Debian package file)");
    assert!(out.status.success(), "file {} failed", binary.display());
    String::from_utf8(out.stdout).unwrap()
}

/// The size budget for each stripped release binary.
const SIZE_BUDGET: u64 = 12 * 1024 * 1024;

fn assert_statically_linked(binary: &Path) -> String {
    let size = std::fs::metadata(binary).unwrap().len();
    assert!(
        size <= SIZE_BUDGET,
        "{} is {size} bytes, over the 12 MiB budget",
        binary.display()
    );
    let text = file_type(binary);
    assert!(
        text.contains("statically linked") || text.contains("static-pie linked"),
        "{}: {text}",
        binary.display()
    );
    text
}

/// The smoke test every static binary passes, against the shared broker.
fn smoke(target: &Target, name: &str) {
    let b = brokers();

    let version = target.weir(&["--version"]);
    version.ok();
    assert!(
        version
            .stdout
            .starts_with(&format!("weir {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        version.stdout
    );

    let topic = random_topic(name);
    let partitions = 3;
    target
        .weir(&["topics", "create", &topic, "--partitions", "3", "-b", b])
        .ok();
    // Configured as in a container: through the environment, no flags.
    let listed = run(target
        .command(&["topics", "list"])
        .env("WEIR_BROKERS", b)
        .env("WEIR_TIMEOUT", "20s"));
    listed.ok();
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some(topic.as_str())),
        "{topic} not in:\n{}",
        listed.stdout
    );

    // 10,000 keyed records, zstd-compressed: the codec is C code, built
    // into the static binary for this target.
    let records = 10_000;
    let mut input = String::new();
    for i in 0..records {
        writeln!(input, "key-{}:value-{i}", i % 97).unwrap();
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &input).unwrap();
    target
        .weir_with_input(
            &[
                "produce",
                "-t",
                &topic,
                "-K",
                ":",
                "--compression",
                "zstd",
                "-b",
                b,
            ],
            file.path(),
        )
        .ok();

    let describe = target.weir(&["topics", "describe", &topic, "--output", "json", "-b", b]);
    describe.ok();
    let doc: serde_json::Value = serde_json::from_str(&describe.stdout).unwrap();
    let stored: i64 = doc["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["latest"].as_i64().unwrap() - p["earliest"].as_i64().unwrap())
        .sum();
    assert_eq!(stored, records, "{}", describe.stdout);

    // Read back with rskafka on the host: every record arrived, on the
    // partition the Java client's murmur2 gives its key, in input order.
    let mut placed: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..records {
        let key = format!("key-{}", i % 97);
        let p = weir::produce::partitioner::murmur2_partition(key.as_bytes(), partitions);
        placed
            .entry(p)
            .or_default()
            .push(format!("{key}:value-{i}"));
    }
    for (p, stored) in common::read_all(b, &topic, partitions) {
        let stored: Vec<String> = stored
            .iter()
            .map(|r| {
                let key = String::from_utf8_lossy(r.record.key.as_deref().unwrap_or_default());
                let value = String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default());
                format!("{key}:{value}")
            })
            .collect();
        assert_eq!(stored, placed[&p], "partition {p}");
    }

    // The target's own consumer reads them back (zstd decoded there): all
    // of them, each partition in offset order.
    let consumed = target.weir(&[
        "consume", "-t", &topic, "--until", "end", "--json", "-q", "-b", b,
    ]);
    consumed.ok();
    let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for line in consumed.stdout.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let partition = i32::try_from(r["partition"].as_i64().unwrap()).unwrap();
        let text = format!(
            "{}:{}",
            r["key"].as_str().unwrap(),
            r["value"].as_str().unwrap()
        );
        read.entry(partition)
            .or_default()
            .push((r["offset"].as_i64().unwrap(), text));
    }
    assert_eq!(
        read.keys().collect::<Vec<_>>(),
        placed.keys().collect::<Vec<_>>()
    );
    for (p, records) in &read {
        assert!(
            records.windows(2).all(|w| w[0].0 < w[1].0),
            "partition {p} out of order"
        );
        let texts: Vec<&String> = records.iter().map(|(_, t)| t).collect();
        assert_eq!(
            texts,
            placed[p].iter().collect::<Vec<_>>(),
            "consumed partition {p}"
        );
    }

    // A group commits its offsets from inside the root too: a second run
    // of the same group starts at its commit, the end, and reads nothing.
    let group = random_topic("group");
    let args = [
        "consume", "-t", &topic, "--until", "end", "-g", &group, "-q", "-b", b,
    ];
    let first = target.weir(&args);
    first.ok();
    assert_eq!(
        first.stdout.lines().count(),
        records as usize,
        "{}",
        first.stderr
    );
    let again = target.weir(&args);
    again.ok();
    assert_eq!(again.stdout, "", "{}", again.stderr);

    // TLS with the compiled-in roots needs no /etc/ssl: the config builds
    // and the failure is about the broker, not a missing trust store.
    let tls = target.weir(&[
        "topics",
        "list",
        "--tls",
        "--timeout",
        "2s",
        "-b",
        "127.0.0.1:1",
    ]);
    tls.expect_code(1);
    assert!(tls.stderr.contains("127.0.0.1:1"), "{}", tls.stderr);
}

#[test]
fn x86_64_static_binary_is_statically_linked() {
    let Some(target) = Target::x86_64("x86_64_static_binary_is_statically_linked") else {
        return;
    };
    let text = assert_statically_linked(&target.binary);
    assert!(text.contains("x86-64"), "{text}");
}

#[test]
fn x86_64_static_binary_works_in_an_empty_root() {
    let Some(target) = Target::x86_64("x86_64_static_binary_works_in_an_empty_root") else {
        return;
    };
    let entries = std::fs::read_dir(target.root.path()).unwrap().count();
    assert_eq!(entries, 1, "the root holds only the binary");
    smoke(&target, "scratch-x86-64");
}

#[test]
fn aarch64_static_binary_is_statically_linked() {
    let Some(binary) = built_binary(
        "aarch64_static_binary_is_statically_linked",
        "WEIR_AARCH64_BIN",
        "aarch64-unknown-linux-musl",
        "just cross",
    ) else {
        return;
    };
    let text = assert_statically_linked(&binary);
    assert!(text.contains("ARM aarch64"), "{text}");
}

#[test]
fn aarch64_static_binary_works_under_qemu_in_an_empty_root() {
    let Some(target) = Target::aarch64("aarch64_static_binary_works_under_qemu_in_an_empty_root")
    else {
        return;
    };
    let entries = std::fs::read_dir(target.root.path()).unwrap().count();
    assert_eq!(entries, 2, "the root holds only the binary and qemu");
    smoke(&target, "scratch-aarch64");
}

/// Without /etc/hosts and /etc/resolv.conf a host name, even `localhost`,
/// cannot be resolved: weir says so and points to an IP address instead of
/// hanging or failing with a bare resolver error.
#[test]
fn host_name_without_etc_fails_with_a_hint() {
    let Some(target) = Target::x86_64("host_name_without_etc_fails_with_a_hint") else {
        return;
    };
    let port = broker_addr().port();
    let broker = format!("localhost:{port}");
    // The default --timeout (30s): musl, without resolv.conf, asks a name
    // server on 127.0.0.1 and gives up after its own 5 s.
    let out = target.weir(&["topics", "list", "-b", &broker]);
    out.expect_code(1);
    assert!(out.elapsed.as_secs() < 20, "took {:?}", out.elapsed);
    let err = &out.stderr;
    assert!(
        err.contains(&format!("cannot resolve broker address \"{broker}\"")),
        "{err}"
    );
    assert!(
        err.contains("/etc/hosts") && err.contains("IP address"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line:\n{err}");
}

/// An /etc/hosts placed in the root (as one mounted into a scratch
/// container) is all a host name needs.
#[test]
fn host_name_resolves_with_an_etc_hosts_in_the_root() {
    let Some(target) = Target::x86_64("host_name_resolves_with_an_etc_hosts_in_the_root") else {
        return;
    };
    let addr = broker_addr();
    target.add_file("etc/hosts", &format!("{} weir-test-broker\n", addr.ip()));
    let broker = format!("weir-test-broker:{}", addr.port());
    let listed = target.weir(&["topics", "list", "--timeout", "10s", "-b", &broker]);
    listed.ok();
    assert!(listed.stdout.starts_with("TOPIC"), "{}", listed.stdout);
}

/// The shared broker's first bootstrap address, resolved on the host.
fn broker_addr() -> std::net::SocketAddr {
    let first = brokers().split(',').next().unwrap().trim();
    first
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap_or_else(|| panic!("{first} resolves to nothing"))
}
