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
        match (self.verbose, self.quiet) {
            (0, 0) => "warn,weir=info",
            (1, _) => "info,weir=debug",
            (v, _) if v >= 2 => "debug,weir=trace",
            (_, 1) => "error",
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
