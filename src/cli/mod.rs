//! Command-line parsing: clap structs and their conversion into the
//! library's typed configs. Validation errors are raised here, as
//! [`UsageError`], and end the process with exit code 2.

use std::str::FromStr;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand};

pub mod bench;
pub mod cluster;
pub mod completions;
pub mod config;
pub mod connect;
pub mod consume;
pub mod count;
pub mod examples;
pub mod flags;
pub mod log;
pub mod offsets;
pub mod offsets_share;
pub mod pipe;
pub mod produce;
pub mod properties;
pub mod registry;
pub mod share;
pub mod topics;

/// A command line that parsed but makes no sense: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Shorthand for returning a [`UsageError`] through anyhow.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// A [`UsageError`] for `flag`, caused by the library's `error`: printed
/// as `FLAG: ERROR` with the error's whole chain.
pub fn usage_for(
    flag: &str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> anyhow::Error {
    anyhow::Error::new(error).context(UsageError(flag.to_owned()))
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

/// Set by `main` under `--log-format json`: the lines weir writes to
/// stderr itself (summaries, the final error) are JSON objects too, so
/// that every line of stderr parses.
pub static LOG_JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes one line to stderr: a summary or a note, at level INFO under
/// `--log-format json`. A closed or broken stderr loses the line and
/// nothing else: `eprintln!` would panic, and weir aborts on a panic.
pub fn eprint_line(line: &str) {
    eprint_at("INFO", line);
}

/// Writes a job's summary line with [`eprint_line`]: `head`, then
/// `; {n} {what}` for each figure that is not 0, then `; interrupted`
/// when a signal stopped the job.
pub fn eprint_summary(head: String, figures: &[(u64, &str)], interrupted: bool) {
    let mut line = head;
    for &(n, what) in figures {
        if n > 0 {
            line.push_str(&format!("; {n} {what}"));
        }
    }
    if interrupted {
        line.push_str("; interrupted");
    }
    eprint_line(&line);
}

/// As [`eprint_line`], for the error that ends the process: ERROR under
/// `--log-format json`.
pub fn eprint_error(line: &str) {
    eprint_at("ERROR", line);
}

fn eprint_at(level: &str, line: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    if LOG_JSON.load(std::sync::atomic::Ordering::Relaxed) {
        // The "weir: " prefix is for people reading several programs'
        // output.
        let message = line.strip_prefix("weir: ").unwrap_or(line);
        let object = log::json_line(
            level,
            &[
                ("message".to_owned(), message.into()),
                ("target".to_owned(), "weir".into()),
            ],
        );
        let _ = writeln!(err, "{object}");
    } else {
        let _ = err.write_all(line.as_bytes());
        let _ = err.write_all(b"\n");
    }
}

/// Parses the command line. A value that a flag's parser refused (`-c -1`,
/// `--timeout -3s`) is one line naming the flag, as weir's other usage
/// errors are, and exits 2; everything else (unknown flags, `--help`) is
/// clap's own.
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let command = Cli::command();
    let (args, added) = match properties::expand(std::env::args_os().collect()) {
        Ok(expanded) => expanded,
        Err(e) => {
            eprint_error(&format!("weir: {e}"));
            std::process::exit(2);
        }
    };
    let parsed = command
        .clone()
        .try_get_matches_from(args)
        .and_then(|matches| {
            let mut cli = Cli::from_arg_matches(&matches)?;
            cli.connect.given = connect::Given::from_matches(&matches, &command);
            Ok(cli)
        });
    match parsed {
        Ok(cli) => cli,
        Err(e) => match refused_value(&e).or_else(|| properties::misplaced(&e, &added)) {
            Some(line) => {
                eprint_error(&format!("weir: {line}"));
                std::process::exit(2);
            }
            None => e.exit(),
        },
    }
}

/// `--flag VALUE: why` for an error raised by a value parser.
fn refused_value(e: &clap::Error) -> Option<String> {
    if e.kind() != ErrorKind::ValueValidation {
        return None;
    }
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    // "--count <COUNT>": the flag without its value name.
    let flag = text(ContextKind::InvalidArg)?.split_whitespace().next()?;
    let value = text(ContextKind::InvalidValue)?;
    let why = std::error::Error::source(e)?;
    // A reason that quotes the value itself (a topic name) is not
    // preceded by it again; an argument without a flag is not named.
    let quoted = why.to_string().contains(&format!("{value:?}"));
    Some(match env_source(flag, value) {
        Some(var) if quoted => format!("{var} ({flag}): {why}"),
        Some(var) => format!("{var}={value} ({flag}): {why}"),
        None if quoted && flag.starts_with('<') => why.to_string(),
        None if quoted => format!("{flag}: {why}"),
        None => format!("{flag} {value}: {why}"),
    })
}

/// Value parser for a topic named on the command line: Kafka's rule for
/// topic names is checked before any request, as a usage error.
///
/// # Errors
///
/// The name and the rule it breaks.
pub fn topic_name(s: &str) -> Result<String, weir::kafka::admin::InvalidTopicName> {
    weir::kafka::admin::validate_topic_name(s).map(|()| s.to_owned())
}

/// A topic to read, or a pattern: one beginning with `^` is a regular
/// expression, checked here.
pub fn topic_or_pattern(s: &str) -> anyhow::Result<String> {
    if weir::read::pattern::is_pattern(s) {
        weir::read::pattern::compile(s)?;
        return Ok(s.to_owned());
    }
    Ok(topic_name(s)?)
}

/// The environment variable `flag`'s refused `value` came from, if it
/// holds that value: a bad `WEIR_TLS` should be named as such.
fn env_source(flag: &str, value: &str) -> Option<String> {
    use clap::CommandFactory;
    let long = flag.strip_prefix("--")?;
    let cli = Cli::command();
    let var = std::iter::once(&cli)
        .chain(cli.get_subcommands())
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long))?
        .get_env()?;
    (std::env::var_os(var)? == value).then(|| var.to_string_lossy().into_owned())
}

/// Value parser for a whole number that is never negative: a count, a
/// size, a partition or its number. Zero is left to the conversion, which
/// knows whether it makes sense.
///
/// # Errors
///
/// "cannot be negative" for `-1`, where clap's own parser would say
/// "invalid digit found in string".
pub fn non_negative<T>(s: &str) -> Result<T, String>
where
    T: FromStr<Err = std::num::ParseIntError> + Default + PartialOrd,
{
    let negative = s
        .strip_prefix('-')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match s.parse::<T>() {
        Ok(n) if n < T::default() => Err("cannot be negative".to_owned()),
        Ok(n) => Ok(n),
        Err(_) if negative => Err("cannot be negative".to_owned()),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// Value parser for on/off flags that also come from the environment
/// (`WEIR_TLS=1`): 1/0, true/false, yes/no, on/off in any case; empty is
/// off, as an unset variable.
///
/// # Errors
///
/// Any other word.
pub fn boolish(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" => Ok(true),
        "0" | "false" | "no" | "n" | "off" | "" => Ok(false),
        _ => Err("expected 1, 0, true, false, yes, no, on or off".to_owned()),
    }
}

/// weir: real-time data processing on Apache Kafka, in one static binary.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, propagate_version = true, after_help = examples::WEIR)]
pub struct Cli {
    #[command(flatten)]
    pub connect: connect::ConnectArgs,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(flatten)]
    pub properties: properties::PropertyArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Logging flags; `RUST_LOG` overrides -v and -q.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Less log output on stderr (-q errors only, -qq nothing).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,

    /// Log lines as text for people, or as JSON, one object per line, for
    /// log shippers.
    #[arg(long, value_enum, env = "WEIR_LOG_FORMAT", default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// How log lines on stderr are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event: time, level, spans, message and fields.
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`,
    /// `message` and the event's fields, `span` and `spans`.
    Json,
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
    #[command(after_help = examples::TOPICS)]
    Topics(topics::TopicsArgs),
    /// Produce records from stdin or files to a topic.
    #[command(after_help = examples::PRODUCE)]
    Produce(produce::ProduceArgs),
    /// Read records from topics to stdout, filtered and formatted.
    #[command(after_help = examples::CONSUME)]
    Consume(consume::ConsumeArgs),
    /// Count records per key in time windows, exactly, across restarts.
    #[command(after_help = examples::COUNT)]
    Count(count::CountArgs),
    /// Aggregate records per key in time windows: count, sum, min, max,
    /// avg, distinct, top-k and percentiles, exactly across restarts.
    #[command(after_help = examples::AGG)]
    Agg(count::CountArgs),
    /// Records of topics, filtered, re-keyed and reshaped, into another topic.
    #[command(after_help = examples::PIPE)]
    Pipe(pipe::PipeArgs),
    /// Consumer-group offsets kept by weir: groups, show, set, delete;
    /// a topic's offsets for a time (at).
    #[command(after_help = examples::OFFSETS)]
    Offsets(offsets::OffsetsArgs),
    /// Measure producer and consumer throughput and end-to-end latency.
    #[command(after_help = examples::BENCH)]
    Bench(bench::BenchArgs),
    /// Connection settings: `weir config show` prints those in force.
    #[command(after_help = examples::CONFIG)]
    Config(config::ConfigArgs),
    /// The cluster: its id, controller, brokers, and how many topics and
    /// partitions it holds; with --topics each partition's leader,
    /// replicas and ISR (kcat -L).
    #[command(after_help = examples::CLUSTER)]
    Cluster(cluster::ClusterArgs),
    /// Shell completions for bash, zsh, fish, powershell or elvish, on stdout.
    #[command(after_help = examples::COMPLETIONS)]
    Completions(completions::CompletionsArgs),
    /// The man page (roff): weir and every subcommand with its flags, one
    /// page, on stdout.
    #[command(after_help = examples::MANPAGE)]
    Manpage,
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use clap::CommandFactory;

    use super::*;

    /// Every argument of every subcommand, with its command path.
    fn all_args() -> Vec<(String, clap::Arg)> {
        fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
            for arg in cmd.get_arguments() {
                out.push((path.to_owned(), arg.clone()));
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut out = Vec::new();
        walk(&Cli::command(), "weir", &mut out);
        out
    }

    #[test]
    fn each_short_flag_means_one_thing_in_every_subcommand() {
        // The README's table of short flags: -p picks partitions by number
        // (one to produce to, or a list to read), as kcat's -p.
        let meaning: BTreeMap<char, &[&str]> = [
            ('b', &["brokers"][..]),
            ('v', &["verbose"]),
            ('q', &["quiet"]),
            ('t', &["topic"]),
            ('p', &["partition", "partitions"]),
            ('o', &["from"]),
            ('e', &[]),
            ('c', &["count"]),
            ('f', &["format"]),
            ('g', &["group"]),
            ('k', &["key"]),
            ('K', &["key-delimiter"]),
            ('D', &["delimiter"]),
            ('H', &["header"]),
            ('r', &["replication-factor"]),
            ('n', &["records"]),
            ('s', &["size"]),
            ('X', &["property"]),
        ]
        .into_iter()
        .collect();
        let mut seen: BTreeMap<char, BTreeSet<String>> = BTreeMap::new();
        for (path, arg) in all_args() {
            let Some(short) = arg.get_short() else {
                continue;
            };
            let long = arg.get_long().unwrap_or_default().to_owned();
            let allowed = meaning
                .get(&short)
                .unwrap_or_else(|| panic!("{path}: -{short} (--{long}) is not in the table"));
            assert!(
                allowed.contains(&long.as_str()) || (allowed.is_empty() && long.is_empty()),
                "{path}: -{short} is --{long}, elsewhere {allowed:?}"
            );
            seen.entry(short).or_default().insert(path);
        }
        // A number of partitions to create is never -p.
        for (path, arg) in all_args() {
            let creates = ["weir topics create", "weir produce", "weir bench"]
                .iter()
                .any(|p| path.starts_with(p));
            if creates && arg.get_long() == Some("partitions") {
                assert_eq!(arg.get_short(), None, "{path} --partitions");
            }
        }
        assert!(seen[&'o'].contains("weir consume") && seen[&'o'].contains("weir count"));
    }

    #[test]
    fn every_boolean_flag_with_an_environment_variable_takes_1_0_yes_no() {
        let mut checked = Vec::new();
        for (path, arg) in all_args() {
            let Some(var) = arg.get_env() else {
                continue;
            };
            if !matches!(
                arg.get_action(),
                clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
            ) {
                continue;
            }
            // The variable's value goes through the flag's value parser;
            // as an option taking a value, the same parser can be fed
            // without touching the process environment.
            let long = arg.get_long().unwrap_or_default().to_owned();
            let id = arg.get_id().clone();
            let parse = |value: &str| {
                clap::Command::new("t")
                    .arg(
                        arg.clone()
                            .action(clap::ArgAction::Set)
                            .env(clap::builder::Resettable::Reset),
                    )
                    .try_get_matches_from(["t", &format!("--{long}={value}")])
                    .ok()
                    .and_then(|m| m.get_one::<bool>(id.as_str()).copied())
            };
            for (value, expected) in [
                ("1", true),
                ("true", true),
                ("TRUE", true),
                ("yes", true),
                ("Yes", true),
                ("on", true),
                ("0", false),
                ("false", false),
                ("False", false),
                ("no", false),
                ("NO", false),
                ("off", false),
                ("", false),
            ] {
                assert_eq!(
                    parse(value),
                    Some(expected),
                    "{path} --{long} from {var:?}={value:?}"
                );
            }
            assert_eq!(parse("maybe"), None, "{path} {var:?}=maybe");
            checked.push(var.to_string_lossy().into_owned());
        }
        assert_eq!(checked, ["WEIR_TLS", "WEIR_TLS_SKIP_HOSTNAME_CHECK"]);
    }

    #[test]
    fn no_two_arguments_share_a_name() {
        // clap checks this only in debug builds, when the command is built.
        Cli::command().debug_assert();
    }

    #[test]
    fn negative_numbers_are_refused_by_name() {
        assert_eq!(non_negative::<u64>("7"), Ok(7));
        assert_eq!(non_negative::<i32>("0"), Ok(0));
        assert_eq!(
            non_negative::<u64>("-1"),
            Err("cannot be negative".to_owned())
        );
        assert_eq!(
            non_negative::<i32>("-3"),
            Err("cannot be negative".to_owned())
        );
        assert!(
            non_negative::<u64>("x")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            non_negative::<u64>("-")
                .unwrap_err()
                .contains("whole number")
        );

        // As the user sees it: one line naming the flag and the value.
        let err = Cli::try_parse_from(["weir", "consume", "-t", "x", "-c", "-1"]).unwrap_err();
        assert_eq!(
            refused_value(&err).as_deref(),
            Some("--count -1: cannot be negative")
        );
        let err = Cli::try_parse_from(["weir", "topics", "list", "--timeout", "-3s"]).unwrap_err();
        assert_eq!(
            refused_value(&err).as_deref(),
            Some("--timeout -3s: a duration cannot be negative")
        );
        // -N for --from stays a position.
        let cli = Cli::try_parse_from(["weir", "consume", "-t", "x", "-o", "-5"]).unwrap();
        let Command::Consume(args) = cli.command else {
            panic!("not consume");
        };
        assert_eq!(args.selection.from.as_deref(), Some("-5"));
    }
}
