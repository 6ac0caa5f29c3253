//! `-X key=value`: the Java client's and librdkafka's property names for
//! the weir flags they match, so that settings copied from a
//! `client.properties` or a kcat command line work.
//!
//! Each property is rewritten into its flag before clap parses the
//! command line, so it is checked, and takes precedence over the
//! environment and the profile, exactly as the flag does. A property and
//! the flag it stands for (or two properties for one flag) cannot both be
//! given: which one was meant is not guessed. An unknown property is a
//! usage error naming the nearest known one.
//!
//! A value that is weir's default and has no flag of its own
//! (`security.protocol=PLAINTEXT`, `acks=all`) adds no flag, so it does
//! not undo what the environment or a profile set.

use std::ffi::OsString;

/// How a property's value becomes flags.
#[derive(Debug, Clone, Copy)]
enum Convert {
    /// The value as it is: `--flag VALUE`.
    Same,
    /// Milliseconds: `--flag {N}ms`.
    Millis,
    /// Its own rule: the flags to add, or why the value is refused.
    With(fn(&str) -> Result<Vec<&'static str>, String>),
    /// Never accepted, for this reason.
    Refused(&'static str),
}

/// A property: its names, the flag it stands for, that flag's short
/// form, and how its value converts.
#[derive(Debug)]
struct Property {
    names: &'static [&'static str],
    flag: &'static str,
    short: Option<char>,
    convert: Convert,
}

const fn property(
    names: &'static [&'static str],
    flag: &'static str,
    convert: Convert,
) -> Property {
    Property {
        names,
        flag,
        short: None,
        convert,
    }
}

/// Every property weir understands, in the README's order.
const PROPERTIES: &[Property] = &[
    Property {
        short: Some('b'),
        ..property(
            &["bootstrap.servers", "metadata.broker.list"],
            "--brokers",
            Convert::Same,
        )
    },
    property(&["client.id"], "--client-id", Convert::Same),
    property(
        &["default.api.timeout.ms", "delivery.timeout.ms"],
        "--timeout",
        Convert::Millis,
    ),
    property(
        &["security.protocol"],
        "--tls",
        Convert::With(security_protocol),
    ),
    property(&["ssl.ca.location"], "--tls-ca", Convert::Same),
    property(&["ssl.certificate.location"], "--tls-cert", Convert::Same),
    property(&["ssl.key.location"], "--tls-key", Convert::Same),
    property(
        &["ssl.endpoint.identification.algorithm"],
        "--tls-skip-hostname-check",
        Convert::With(endpoint_identification),
    ),
    property(
        &["sasl.mechanism", "sasl.mechanisms"],
        "--sasl-mechanism",
        Convert::Same,
    ),
    property(&["sasl.username"], "--sasl-username", Convert::Same),
    property(
        &["sasl.password"],
        "--sasl-password-file",
        Convert::Refused(
            "weir takes no password on the command line, where other users can read it: set WEIR_SASL_PASSWORD or give --sasl-password-file",
        ),
    ),
    Property {
        short: Some('g'),
        ..property(&["group.id"], "--group", Convert::Same)
    },
    property(&["group.instance.id"], "--group-instance-id", Convert::Same),
    property(
        &["session.timeout.ms"],
        "--session-timeout",
        Convert::Millis,
    ),
    property(
        &["heartbeat.interval.ms"],
        "--heartbeat-interval",
        Convert::Millis,
    ),
    property(
        &["max.poll.interval.ms"],
        "--max-poll-interval",
        Convert::Millis,
    ),
    property(
        &["partition.assignment.strategy"],
        "--assignor",
        Convert::Same,
    ),
    Property {
        short: Some('o'),
        ..property(
            &["auto.offset.reset"],
            "--from",
            Convert::With(auto_offset_reset),
        )
    },
    property(&["isolation.level"], "--isolation", Convert::Same),
    property(
        &["max.partition.fetch.bytes"],
        "--fetch-bytes",
        Convert::Same,
    ),
    property(&["fetch.max.wait.ms"], "--fetch-max-wait", Convert::Millis),
    property(
        &["compression.type", "compression.codec"],
        "--compression",
        Convert::Same,
    ),
    property(
        &["linger.ms", "queue.buffering.max.ms"],
        "--linger",
        Convert::Millis,
    ),
    property(&["batch.size"], "--batch-bytes", Convert::Same),
    property(&["buffer.memory"], "--buffer-bytes", Convert::Same),
    property(
        &["acks", "request.required.acks"],
        "--acks",
        Convert::With(acks),
    ),
    property(
        &["enable.idempotence"],
        "--no-idempotence",
        Convert::With(idempotence),
    ),
    property(&["transactional.id"], "--transactional-id", Convert::Same),
    property(
        &["transaction.timeout.ms"],
        "--transaction-timeout",
        Convert::Millis,
    ),
    property(
        &["metadata.max.age.ms"],
        "--metadata-max-age",
        Convert::Millis,
    ),
];

fn security_protocol(value: &str) -> Result<Vec<&'static str>, String> {
    match value.to_ascii_uppercase().as_str() {
        // SASL itself is on when a mechanism (or a token) is given.
        "PLAINTEXT" | "SASL_PLAINTEXT" => Ok(Vec::new()),
        "SSL" | "SASL_SSL" => Ok(vec!["--tls"]),
        _ => Err("expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL".to_owned()),
    }
}

fn endpoint_identification(value: &str) -> Result<Vec<&'static str>, String> {
    match value.to_ascii_lowercase().as_str() {
        "" | "none" => Ok(vec!["--tls-skip-hostname-check"]),
        "https" => Ok(Vec::new()),
        _ => Err("expected https (check the name, the default) or nothing (skip it)".to_owned()),
    }
}

fn auto_offset_reset(value: &str) -> Result<Vec<&'static str>, String> {
    match value.to_ascii_lowercase().as_str() {
        "earliest" | "smallest" | "beginning" => Ok(vec!["--from", "earliest"]),
        "latest" | "largest" | "end" => Ok(vec!["--from", "latest"]),
        _ => Err("expected earliest or latest (--from takes offsets and times too)".to_owned()),
    }
}

fn acks(value: &str) -> Result<Vec<&'static str>, String> {
    match value {
        "all" | "-1" => Ok(Vec::new()),
        _ => Err(
            "weir's producer always waits for every in-sync replica: only acks=all (-1) is accepted"
                .to_owned(),
        ),
    }
}

fn idempotence(value: &str) -> Result<Vec<&'static str>, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(Vec::new()),
        "false" => Ok(vec!["--no-idempotence"]),
        _ => Err("expected true or false".to_owned()),
    }
}

/// Why `-X` was refused: the whole message, a usage error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PropertyError(String);

/// A flag `expand` added, with the property it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The flag.
    pub flag: &'static str,
    /// `-X key=value` as given.
    pub property: String,
}

/// The command line with each `-X key=value` (also `-Xkey=value`,
/// `--property key=value`, `--property=key=value`) replaced by its flags,
/// put before a `--` or at the end; and which flags were added.
///
/// # Errors
///
/// An unknown property, a value its flag cannot take, or a property given
/// with its flag or twice.
pub fn expand(args: Vec<OsString>) -> Result<(Vec<OsString>, Vec<Added>), PropertyError> {
    let mut kept = Vec::with_capacity(args.len());
    let mut given: Vec<String> = Vec::new();
    let mut iter = args.into_iter();
    let mut rest = Vec::new();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            rest.push(arg);
            rest.extend(iter.by_ref());
            break;
        }
        let text = arg.to_str();
        let inline = text.and_then(|t| {
            t.strip_prefix("--property=")
                .or_else(|| t.strip_prefix("-X").filter(|v| !v.is_empty()))
        });
        if let Some(value) = inline {
            given.push(value.to_owned());
        } else if matches!(text, Some("-X" | "--property")) {
            let Some(value) = iter.next() else {
                return Err(PropertyError("-X needs key=value".to_owned()));
            };
            let value = value
                .into_string()
                .map_err(|v| PropertyError(format!("-X {}: not UTF-8", v.to_string_lossy())))?;
            given.push(value);
        } else {
            kept.push(arg);
        }
    }
    let mut added: Vec<Added> = Vec::new();
    let mut flags: Vec<OsString> = Vec::new();
    for text in given {
        let Some((key, value)) = text.split_once('=') else {
            return Err(PropertyError(format!(
                "-X {text}: expected key=value (e.g. -X bootstrap.servers=kafka:9092)"
            )));
        };
        let key = key.trim();
        let Some(p) = PROPERTIES.iter().find(|p| p.names.contains(&key)) else {
            return Err(PropertyError(format!(
                "-X {key}: not a property weir understands; the nearest is {} (the README lists them all)",
                nearest(key)
            )));
        };
        if let Some(other) = added.iter().find(|a| a.flag == p.flag) {
            return Err(PropertyError(format!(
                "-X {text} and -X {} both set {}: give one",
                other.property, p.flag
            )));
        }
        if on_command_line(&kept, p) {
            return Err(PropertyError(format!(
                "-X {text} and {} both given: give one (a property is the flag by another name)",
                p.flag
            )));
        }
        let converted = match p.convert {
            Convert::Same => vec![p.flag.to_owned(), value.to_owned()],
            Convert::Millis => match value.trim().parse::<u64>() {
                Ok(ms) => vec![p.flag.to_owned(), format!("{ms}ms")],
                Err(_) => {
                    return Err(PropertyError(format!(
                        "-X {text}: {key} is a number of milliseconds"
                    )));
                }
            },
            Convert::With(convert) => convert(value)
                .map_err(|why| PropertyError(format!("-X {text}: {why}")))?
                .into_iter()
                .map(str::to_owned)
                .collect(),
            Convert::Refused(why) => return Err(PropertyError(format!("-X {key}: {why}"))),
        };
        added.push(Added {
            flag: p.flag,
            property: text.clone(),
        });
        flags.extend(converted.into_iter().map(OsString::from));
    }
    kept.extend(flags);
    kept.extend(rest);
    Ok((kept, added))
}

/// Whether `p`'s flag is among `args` (`--flag`, `--flag=V`, `-s`, `-sV`).
fn on_command_line(args: &[OsString], p: &Property) -> bool {
    args.iter().skip(1).filter_map(|a| a.to_str()).any(|a| {
        a == p.flag
            || a.strip_prefix(p.flag).is_some_and(|v| v.starts_with('='))
            || p.short.is_some_and(|s| {
                let mut chars = a.chars();
                chars.next() == Some('-') && chars.next() == Some(s)
            })
    })
}

/// The known property name closest to `key` (edit distance).
fn nearest(key: &str) -> &'static str {
    PROPERTIES
        .iter()
        .flat_map(|p| p.names.iter().copied())
        .min_by_key(|name| distance(key, name))
        .unwrap_or("bootstrap.servers")
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `-X`, for help, completions and the man page: the properties are
/// rewritten into their flags before clap parses ([`expand`]).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Connection")]
pub struct PropertyArgs {
    /// A Java client or librdkafka property for the weir flag it matches
    /// (-X bootstrap.servers=k:9092, -X group.id=g, -X
    /// ssl.endpoint.identification.algorithm=); the README lists them.
    /// Given with its flag, or unknown, it is a usage error.
    #[arg(
        short = 'X',
        long = "property",
        value_name = "KEY=VALUE",
        global = true
    )]
    pub property: Vec<String>,
}

/// `-X key=value: ...` for clap's refusal of a flag a property became:
/// one the subcommand does not take (`-X linger.ms=5` to `weir consume`),
/// or a value it does not (`-X isolation.level=snapshot`).
pub fn misplaced(e: &clap::Error, added: &[Added]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    // "--isolation <ISOLATION>": the flag without its value name.
    let flag = arg.split_whitespace().next()?;
    let added = added.iter().find(|a| a.flag == flag)?;
    match e.kind() {
        ErrorKind::UnknownArgument => Some(format!(
            "-X {}: this command has no {} (the flag it stands for)",
            added.property, added.flag
        )),
        ErrorKind::InvalidValue => {
            let valid = match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(values)) => format!(": one of {}", values.join(", ")),
                _ => String::new(),
            };
            Some(format!(
                "-X {}: not a value {} takes{valid}",
                added.property, added.flag
            ))
        }
        _ => None,
    }
}

/// Every property name with its flag, for tests and the README.
#[cfg(test)]
fn table() -> Vec<(&'static str, &'static str)> {
    PROPERTIES
        .iter()
        .flat_map(|p| p.names.iter().map(move |n| (*n, p.flag)))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn run(args: &[&str]) -> Result<Vec<String>, String> {
        let args = args.iter().map(OsString::from).collect();
        expand(args)
            .map(|(args, _)| args.into_iter().map(|a| a.into_string().unwrap()).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn properties_become_their_flags_before_a_double_dash() {
        assert_eq!(
            run(&[
                "weir",
                "-X",
                "bootstrap.servers=k:9092",
                "consume",
                "-Xgroup.id=g",
                "--property=session.timeout.ms=10000",
                "--property",
                "ssl.endpoint.identification.algorithm=",
                "-t",
                "x",
                "--",
                "-X",
            ])
            .unwrap(),
            [
                "weir",
                "consume",
                "-t",
                "x",
                "--brokers",
                "k:9092",
                "--group",
                "g",
                "--session-timeout",
                "10000ms",
                "--tls-skip-hostname-check",
                "--",
                "-X",
            ]
        );
        assert_eq!(
            run(&["weir", "-X", "security.protocol=SASL_SSL", "-X", "acks=all"]).unwrap(),
            ["weir", "--tls"]
        );
        assert_eq!(
            run(&[
                "weir",
                "-X",
                "enable.idempotence=false",
                "-X",
                "auto.offset.reset=smallest"
            ])
            .unwrap(),
            ["weir", "--no-idempotence", "--from", "earliest"]
        );
    }

    #[test]
    fn unknown_properties_name_the_nearest_and_bad_values_say_why() {
        let err = run(&["weir", "-X", "bootstrap.server=k:1"]).unwrap_err();
        assert!(err.contains("the nearest is bootstrap.servers"), "{err}");
        let err = run(&["weir", "-X", "sasl.mechanisn=PLAIN"]).unwrap_err();
        assert!(err.contains("the nearest is sasl.mechanism"), "{err}");
        let err = run(&["weir", "-X", "sasl.password=hunter2"]).unwrap_err();
        assert!(err.contains("WEIR_SASL_PASSWORD"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = run(&["weir", "-X", "acks=1"]).unwrap_err();
        assert!(err.contains("acks=all"), "{err}");
        let err = run(&["weir", "-X", "linger.ms=5s"]).unwrap_err();
        assert!(err.contains("milliseconds"), "{err}");
        let err = run(&["weir", "-X", "bootstrap.servers"]).unwrap_err();
        assert!(err.contains("key=value"), "{err}");
        let err = run(&["weir", "-X"]).unwrap_err();
        assert!(err.contains("key=value"), "{err}");
    }

    #[test]
    fn a_property_and_its_flag_are_not_both_taken() {
        for args in [
            &["weir", "-b", "a:1", "-X", "bootstrap.servers=b:1"][..],
            &["weir", "-ba:1", "-X", "bootstrap.servers=b:1"],
            &["weir", "--brokers=a:1", "-X", "bootstrap.servers=b:1"],
            &[
                "weir",
                "-X",
                "metadata.broker.list=a:1",
                "-X",
                "bootstrap.servers=b:1",
            ],
            &["weir", "consume", "-g", "x", "-X", "group.id=y"],
        ] {
            let err = run(args).unwrap_err();
            assert!(err.contains("give one"), "{args:?}: {err}");
        }
    }

    #[test]
    fn every_flag_a_property_names_exists() {
        let mut longs = std::collections::BTreeSet::new();
        fn walk(cmd: &clap::Command, longs: &mut std::collections::BTreeSet<String>) {
            for arg in cmd.get_arguments() {
                if let Some(l) = arg.get_long() {
                    longs.insert(format!("--{l}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, longs);
            }
        }
        walk(&crate::cli::Cli::command(), &mut longs);
        for (name, flag) in table() {
            // acks has no flag: only its default is accepted.
            if flag != "--acks" {
                assert!(longs.contains(flag), "{name}: no flag {flag}");
            }
        }
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }
}
