//! Command-line parsing: clap structs and their conversion into the
//! library's typed configs. Validation errors are raised here, as
//! [`UsageError`], and end the process with exit code 2.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod connect;
pub mod consume;
pub mod count;
pub mod offsets;
pub mod produce;
pub mod topics;

/// A command line that parsed but makes no sense: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Shorthand for returning a [`UsageError`] through anyhow.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// A write to stdout refused because its reader went away (`weir ... |
/// head`): the command's output ends there, and the process exits 0.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct OutputClosed;

/// Stdout for a command's output. A write its reader refused fails with
/// an [`io::Error`](std::io::Error) holding [`OutputClosed`], which
/// [`output_closed`] recognises.
#[derive(Debug)]
pub struct Stdout(std::io::Stdout);

/// The command's output stream.
pub fn stdout() -> Stdout {
    Stdout(std::io::stdout())
}

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(mark_closed)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf).map_err(mark_closed)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(mark_closed)
    }
}

fn mark_closed(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, OutputClosed)
    } else {
        e
    }
}

/// True when `e` is, or was caused by, a closed stdout.
pub fn output_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<OutputClosed>()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .is_some_and(|inner| inner.is::<OutputClosed>())
    })
}

/// Set before `main` when the process started with stdout closed.
pub static STDOUT_CLOSED_AT_START: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// A usage error when stdout was closed at start: `what` would write into
/// nothing (the runtime gives a closed stdout `/dev/null`) and commit it as
/// written.
pub fn require_stdout(what: &str) -> anyhow::Result<()> {
    if STDOUT_CLOSED_AT_START.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(usage(format!(
            "stdout is closed: {what} would go nowhere (redirect it to /dev/null to discard it on purpose)"
        )));
    }
    Ok(())
}

/// Writes one line to stderr. A closed or broken stderr loses the line
/// and nothing else: `eprintln!` would panic, and weir aborts on a panic.
pub fn eprint_line(line: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.write_all(b"\n");
}

/// weir: real-time data processing on Apache Kafka, in one static binary.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub connect: connect::ConnectArgs,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Logging flags; `RUST_LOG` overrides both.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Less log output on stderr (-q errors only, -qq nothing).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
}

impl LogArgs {
    /// The tracing filter the flags ask for.
    pub fn filter(&self) -> &'static str {
        // rskafka's own warnings and errors are the retries weir makes
        // and the failures it reports in its own words, once: shown with
        // -v and RUST_LOG only.
        match (self.verbose, self.quiet) {
            (0, 0) => "warn,weir=info,rskafka=off",
            (1, _) => "info,weir=debug",
            (v, _) if v >= 2 => "debug,weir=trace",
            (_, 1) => "error,rskafka=off",
            _ => "off",
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, describe, create and delete topics.
    Topics(topics::TopicsArgs),
    /// Produce records from stdin or files to a topic.
    Produce(produce::ProduceArgs),
    /// Read records from topics to stdout, filtered and formatted.
    Consume(consume::ConsumeArgs),
    /// Count records per key in time windows, exactly, across restarts.
    Count(count::CountArgs),
    /// Consumer-group offsets kept by weir: groups, show, set, delete.
    Offsets(offsets::OffsetsArgs),
    /// Measure producer and consumer throughput and end-to-end latency.
    Bench(bench::BenchArgs),
}
