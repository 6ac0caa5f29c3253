//! The `weir` binary: install tracing, parse the command line, call the
//! library, map errors to exit codes (0 ok, 1 runtime failure, 2 usage).

mod cli;

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use std::process::ExitCode;
use tokio::signal::unix::{Signal, SignalKind, signal};

use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogFormat, UsageError};

/// The static (musl) builds use mimalloc: musl's allocator hands every
/// large buffer back to the kernel and costs the consumer two thirds of its
/// speed.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// glibc builds keep large buffers (fetch responses, produce requests) in
/// the heap. By default glibc maps each one on its own above a threshold
/// that moves, and returns freed memory at the top of the heap to the
/// kernel, so at some fetch sizes every fetch faulted its pages in again: a
/// 1-partition consumer spent 60% of its time in the kernel and ran at half
/// speed. Fixed thresholds end that; peak memory is what the buffers need.
#[cfg(target_env = "gnu")]
fn tune_allocator() {
    // 32 MiB is the largest mmap threshold glibc accepts on 64-bit targets.
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;
    const TRIM_THRESHOLD: libc::c_int = 64 << 20;
    // SAFETY: mallopt only sets allocator parameters; this runs first in
    // `main`, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Runs before `main`, and so before the Rust runtime puts `/dev/null` in
/// place of a closed standard descriptor: records whether stdout was
/// closed (`weir consume >&-`), so that a consumer does not commit offsets
/// for output that went nowhere.
#[used]
#[unsafe(link_section = ".init_array")]
static CHECK_STDOUT: extern "C" fn() = check_stdout;

extern "C" fn check_stdout() {
    // SAFETY: fd 1 is only asked for its flags, never used or closed.
    let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(1) };
    if rustix::io::fcntl_getfd(fd).is_err() {
        cli::STDOUT_CLOSED_AT_START.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn main() -> ExitCode {
    #[cfg(target_env = "gnu")]
    tune_allocator();
    let cli = cli::parse();
    install_tracing(&cli.log);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            cli::eprint_error(&format!("weir: cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    // On the workers, not in `block_on`: the main thread may be blocked
    // in a write to a full stdout.
    runtime.spawn(second_interrupt());
    let ran = runtime.block_on(async {
        tokio::select! {
            ran = run(cli) => Ok(ran),
            code = early_signal() => Err(code),
        }
    });
    let ran = match ran {
        Ok(ran) => ran,
        Err(code) => return code,
    };
    match ran {
        // Stopped by Ctrl-C: everything up to the signal was written and
        // committed, and a script can still tell, as from any program
        // ended by SIGINT (128 + 2). SIGTERM, a service manager's request
        // to stop, ends with 0 when the stop went well.
        Ok(()) if INTERRUPTED.load(Relaxed) => ExitCode::from(130),
        Ok(()) => ExitCode::SUCCESS,
        // The reader of the output went away: the output ends, as for
        // any Unix filter (`weir topics list | head -1`).
        Err(e) if cli::output_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            cli::eprint_error(&format!("weir: {e:#}"));
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Logs to stderr, filtered by the flags or `RUST_LOG`, as text or JSON.
fn install_tracing(log: &cli::LogArgs) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(log.filter()));
    let ansi =
        log.log_format == LogFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if log.log_format == LogFormat::Json {
        cli::LOG_JSON.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // On a failed write the subscriber would report it with
        // `eprintln!`, which panics on a closed stderr (and weir aborts
        // on a panic): a log line that cannot be written is lost, nothing
        // else.
        .log_internal_errors(false)
        .with_ansi(ansi)
        .fmt_fields(cli::log::Fields::new(log.log_format))
        .event_format(cli::log::Lines::new(log.log_format, ansi))
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        // Made from the command line alone: no connection settings needed.
        Command::Completions(args) => cli::completions::completions(&args),
        Command::Manpage => cli::completions::manpage(),
        Command::Config(args) => cli::config::run(args, &cli.connect),
        command => run_connected(command, &cli.connect, cli.log.quiet > 0).await,
    }
}

async fn run_connected(
    command: Command,
    connect: &cli::connect::ConnectArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let effective = connect.effective()?;
    let registry = effective.registry.clone();
    let config = effective.to_config()?;
    let mut command = command;
    // The profile's `registry` where --registry (or WEIR_REGISTRY) is not given.
    match &mut command {
        Command::Produce(args) => args.registry.or_profile(registry),
        Command::Consume(args) => args.selection.decode.registry.or_profile(registry),
        Command::Count(args) | Command::Agg(args) => {
            args.selection.decode.registry.or_profile(registry);
        }
        Command::Pipe(args) => args.selection.decode.registry.or_profile(registry),
        _ => {}
    }
    match command {
        Command::Topics(args) => cli::topics::run(args, config).await,
        Command::Produce(args) => cli::produce::run(args, config, shutdown_signal()).await,
        Command::Consume(args) => match args.share_group.clone() {
            Some(group) => {
                cli::share::consume(&args, &group, config, quiet, shutdown_signal()).await
            }
            None => cli::consume::run(args, config, quiet, shutdown_signal()).await,
        },
        Command::Count(args) | Command::Agg(args) => {
            cli::count::run(args, config, quiet, shutdown_signal()).await
        }
        Command::Pipe(args) => match args.share_group.clone() {
            Some(group) => cli::share::pipe(&args, &group, config, quiet, shutdown_signal()).await,
            None => cli::pipe::run(args, config, quiet, shutdown_signal()).await,
        },
        Command::Offsets(args) => cli::offsets::run(args, config).await,
        Command::Bench(args) => cli::bench::run(args, config, shutdown_signal()).await,
        Command::Cluster(args) => cli::cluster::run(&args, &config).await,
        Command::Completions(_) | Command::Manpage | Command::Config(_) => {
            unreachable!("run() answers these")
        }
    }
}

/// Set when a job stopped on SIGINT.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Set once a job waits for its shutdown signal: a signal from then on
/// stops it gracefully. Before (a job still reaching the cluster, or a
/// command with nothing to stop gracefully) the process ends at once.
static WATCHED: AtomicBool = AtomicBool::new(false);

/// A stream of `kind`, or `None` (logged) when it cannot be watched.
fn watch(kind: SignalKind, name: &str) -> Option<Signal> {
    signal(kind)
        .inspect_err(|e| tracing::warn!("cannot watch {name}: {e}"))
        .ok()
}

/// The next signal of `signal`; never without one.
async fn next(signal: Option<&mut Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Resolves on the first SIGINT or SIGTERM: long jobs stop gracefully.
/// Both are watched from the call on, not from the first poll, so a
/// signal while the job starts is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let mut term = watch(SignalKind::terminate(), "SIGTERM");
    let mut int = watch(SignalKind::interrupt(), "SIGINT");
    async move {
        WATCHED.store(true, Relaxed);
        tokio::select! {
            _ = next(int.as_mut()) => INTERRUPTED.store(true, Relaxed),
            _ = next(term.as_mut()) => {}
        }
    }
}

/// Once a job stops on a signal, a further SIGINT ends the process at
/// once with 130, as a second Ctrl-C ends most tools: even while the job
/// cannot stop, its stdout a full pipe (`weir consume | (sleep 20; cat)`).
/// Nothing more is written or committed, so the next run reads again what
/// was not (at least once).
async fn second_interrupt() {
    let Some(mut int) = watch(SignalKind::interrupt(), "SIGINT") else {
        return;
    };
    let mut term = watch(SignalKind::terminate(), "SIGTERM");
    // The signal that stops the job gracefully; one before (early_signal)
    // ends the process anyway.
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = next(term.as_mut()) => {}
        }
        if WATCHED.load(Relaxed) {
            break;
        }
    }
    tracing::info!("signal received, stopping (a second Ctrl-C ends weir at once)");
    int.recv().await;
    // std's exit flushes what stdout holds: into /dev/null, not a full
    // pipe that would hold the exit back.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
    std::process::exit(130);
}

/// Resolves with 128 + the signal's number on a SIGINT or SIGTERM that
/// comes before any job waits for its shutdown signal: the status the
/// signal's default action would give.
async fn early_signal() -> ExitCode {
    let mut term = watch(SignalKind::terminate(), "SIGTERM");
    let mut int = watch(SignalKind::interrupt(), "SIGINT");
    loop {
        let code = tokio::select! {
            _ = next(int.as_mut()) => 130,
            _ = next(term.as_mut()) => 143,
        };
        if !WATCHED.load(Relaxed) {
            return ExitCode::from(code);
        }
    }
}
