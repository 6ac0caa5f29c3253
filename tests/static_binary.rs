//! The x86_64 musl build runs alone in an empty root, a stand-in for a
//! `FROM scratch` container: no libc, no /etc, no /etc/ssl. `just test`
//! builds it first (`just static`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::run;

fn static_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-musl/release/weir");
    assert!(
        path.exists(),
        "{} is missing: run `just static` (or `just test`, which builds it)",
        path.display()
    );
    path
}

#[test]
fn static_binary_runs_in_an_empty_root() {
    let binary = static_binary();
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&binary, root.path().join("weir")).unwrap();
    let entries: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "the root holds only the binary");

    // Found before the environment is cleared for the child.
    let chroot_bin = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chroot (coreutils) is needed for this test");
    let chroot = |args: &[&str]| {
        let mut cmd = Command::new(chroot_bin);
        cmd.arg(root.path()).arg("/weir").args(args).env_clear();
        run(&mut cmd)
    };

    let version = chroot(&["--version"]);
    version.ok();
    assert!(version.stdout.starts_with("weir "), "{}", version.stdout);

    let topic = common::random_topic("scratch");
    chroot(&["topics", "create", &topic, "-b", common::brokers()]).ok();
    let listed = chroot(&["topics", "list", "-b", common::brokers()]);
    listed.ok();
    assert!(listed.stdout.contains(&topic), "{}", listed.stdout);

    // TLS with the compiled-in roots needs no /etc/ssl: the config builds
    // and the failure is about the broker, not a missing trust store.
    let tls = chroot(&[
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
fn static_binary_is_statically_linked() {
    let binary = static_binary();
    let out = Command::new("file").arg(&binary).output();
    let Ok(out) = out else {
        // `file` is not everywhere; ldd's verdict is the fallback.
        let ldd = Command::new("ldd").arg(&binary).output().unwrap();
        let text = String::from_utf8_lossy(&ldd.stdout).into_owned()
            + &String::from_utf8_lossy(&ldd.stderr);
        assert!(!text.contains("=>"), "dynamic dependencies: {text}");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("statically linked") || text.contains("static-pie linked"),
        "{text}"
    );
}
