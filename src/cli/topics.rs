//! `weir topics`: list, describe, create, alter, delete.

use std::io::Write;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use weir::ConnectionConfig;
use weir::kafka::admin::{Admin, NewTopic, TopicDescription, TopicSummary};

use super::{non_negative, usage};

/// Topic administration.
#[derive(Debug, clap::Args)]
pub struct TopicsArgs {
    /// Output format: text for people, json (one document) for scripts.
    // No -o: across weir's commands -o is --from, as kcat's -o.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,

    #[command(subcommand)]
    pub verb: Verb,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Text,
    /// One JSON document.
    Json,
}

/// What to do with topics.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// List the topics of the cluster.
    List,
    /// Partitions (leader, replicas, earliest and latest offset) and configs of a topic.
    Describe {
        /// Topic name.
        #[arg(value_parser = super::topic_name)]
        topic: String,
    },
    /// Create a topic.
    Create {
        /// Topic name.
        #[arg(value_parser = super::topic_name)]
        topic: String,
        /// Number of partitions.
        // No -p: across weir's commands -p picks partitions by number.
        #[arg(long, default_value_t = 1, value_parser = non_negative::<i32>, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (default: the cluster's
        /// default.replication.factor, as kafka-topics).
        #[arg(short, long, value_parser = non_negative::<i16>, allow_negative_numbers = true)]
        replication_factor: Option<i16>,
        /// Topic config KEY=VALUE (repeatable), e.g. cleanup.policy=compact.
        // No -c: across weir's commands -c is --count.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Change a topic's configs or add partitions (as kafka-configs --alter
    /// and kafka-topics --alter).
    Alter {
        /// Topic name.
        topic: String,
        /// Set config KEY=VALUE (repeatable); other configs stay as they are.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Remove config KEY (repeatable): back to the broker's default.
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        /// Raise the partition count to N (Kafka cannot remove
        /// partitions; keyed records of existing keys may move).
        #[arg(long, value_parser = non_negative::<i32>, allow_negative_numbers = true)]
        partitions: Option<i32>,
    },
    /// Delete a topic. Kafka's internal topics are never deleted; weir's
    /// own offsets topic and its groups' internal topics only with --force.
    Delete {
        /// Topic name.
        #[arg(value_parser = super::topic_name)]
        topic: String,
        /// Delete weir's offsets topic or a group's internal topic too:
        /// what they hold is lost.
        #[arg(long)]
        force: bool,
    },
}

/// What one of weir's own topics holds: the default offsets topic, and
/// the internal topics of its groups' aggregations.
fn weir_internal(topic: &str) -> Option<&'static str> {
    let store = weir::offsets::DEFAULT_OFFSETS_TOPIC;
    if topic == store {
        return Some("every weir group's committed offsets and saved window state");
    }
    let inner = topic.strip_prefix(store)?.strip_prefix('-')?;
    inner
        .strip_suffix("-partials")
        .filter(|group| !group.is_empty())
        .map(|_| "a weir group's partial aggregates on their way between its members")
}

/// What `weir topics alter` changes: configs to set, to delete, and
/// the partition count; at least one.
type Alteration = (Vec<(String, String)>, Vec<String>, Option<i32>);

fn alteration(
    topic: &str,
    configs: &[String],
    delete: &[String],
    partitions: Option<i32>,
) -> anyhow::Result<Alteration> {
    if configs.is_empty() && delete.is_empty() && partitions.is_none() {
        return Err(usage(format!(
            "nothing to alter for topic \"{topic}\": give --config KEY=VALUE, --delete-config KEY or --partitions N"
        )));
    }
    if let Some(n) = partitions.filter(|&n| n < 1) {
        return Err(usage(format!(
            "--partitions {n} for topic \"{topic}\": a topic needs at least 1 partition"
        )));
    }
    let set = parse_configs(topic, configs)?;
    if let Some(key) = delete.iter().find(|k| set.iter().any(|(s, _)| s == *k)) {
        return Err(usage(format!(
            "config \"{key}\" of topic \"{topic}\" is both set and deleted"
        )));
    }
    Ok((set, delete.to_vec(), partitions))
}

/// Parses `KEY=VALUE` pairs from `--config`.
fn parse_configs(topic: &str, raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(usage(format!(
                "--config \"{kv}\" for topic \"{topic}\" is not KEY=VALUE (e.g. cleanup.policy=compact)"
            ))),
        })
        .collect()
}

impl Verb {
    /// Validates a `create` into a [`NewTopic`].
    fn new_topic(
        topic: &str,
        partitions: i32,
        replication_factor: Option<i16>,
        configs: &[String],
    ) -> anyhow::Result<NewTopic> {
        if topic.is_empty() {
            return Err(usage("topic name is empty"));
        }
        if partitions < 1 {
            return Err(usage(format!(
                "--partitions {partitions} for topic \"{topic}\": a topic needs at least 1 partition"
            )));
        }
        if let Some(replication_factor) = replication_factor.filter(|&r| r < 1) {
            return Err(usage(format!(
                "--replication-factor {replication_factor} for topic \"{topic}\": at least 1 replica is needed"
            )));
        }
        Ok(NewTopic {
            name: topic.to_owned(),
            partitions,
            replication_factor: replication_factor.unwrap_or(NewTopic::DEFAULT_REPLICATION),
            configs: parse_configs(topic, configs)?,
        })
    }
}

/// Runs `weir topics`.
///
/// # Errors
///
/// Usage errors before connecting; connection and broker errors naming the
/// topic otherwise.
pub async fn run(args: TopicsArgs, config: ConnectionConfig) -> anyhow::Result<()> {
    // Validate before touching the network.
    let alter = match &args.verb {
        Verb::Alter {
            topic,
            configs,
            delete_configs,
            partitions,
        } => Some(alteration(topic, configs, delete_configs, *partitions)?),
        _ => None,
    };
    let new_topic = match &args.verb {
        Verb::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } => Some(Verb::new_topic(
            topic,
            *partitions,
            *replication_factor,
            configs,
        )?),
        _ => None,
    };

    let mut admin = Admin::connect(&config).await?;
    let mut out = super::stdout();
    match args.verb {
        Verb::List => {
            let topics = admin.list_topics().await?;
            print_list(&mut out, args.output, &topics)?;
        }
        Verb::Describe { topic } => {
            let description = admin.describe_topic(&topic).await?;
            print_description(&mut out, args.output, &description)?;
        }
        Verb::Create { topic, .. } => {
            let new_topic = new_topic.expect("validated above");
            admin.create_topic(&new_topic).await?;
            print_done(&mut out, args.output, &topic, "created")?;
        }
        Verb::Alter { topic, .. } => {
            let (set, delete, partitions) = alter.expect("validated above");
            if !set.is_empty() || !delete.is_empty() {
                admin.alter_topic_configs(&topic, &set, &delete).await?;
            }
            if let Some(count) = partitions {
                admin.add_partitions(&topic, count).await?;
            }
            print_done(&mut out, args.output, &topic, "altered")?;
        }
        Verb::Delete { topic, force } => {
            if let Some(holds) = weir_internal(&topic).filter(|_| !force) {
                return Err(usage(format!(
                    "topic \"{topic}\" holds {holds}; deleting it loses them: add --force to delete it anyway"
                )));
            }
            admin.delete_topic(&topic).await?;
            print_done(&mut out, args.output, &topic, "deleted")?;
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(())
}

fn print_list(out: &mut impl Write, output: Output, topics: &[TopicSummary]) -> anyhow::Result<()> {
    match output {
        Output::Json => {
            serde_json::to_writer(&mut *out, &serde_json::json!({ "topics": topics }))?;
            writeln!(out)?;
        }
        Output::Text => {
            let width = topics
                .iter()
                .map(|t| t.topic.len())
                .max()
                .unwrap_or(0)
                .max(5);
            writeln!(out, "{:<width$}  PARTITIONS", "TOPIC")?;
            for t in topics {
                let internal = if t.internal { "  (internal)" } else { "" };
                writeln!(out, "{:<width$}  {}{internal}", t.topic, t.partitions)?;
            }
        }
    }
    Ok(())
}

fn print_description(
    out: &mut impl Write,
    output: Output,
    d: &TopicDescription,
) -> anyhow::Result<()> {
    if output == Output::Json {
        serde_json::to_writer(&mut *out, d)?;
        writeln!(out)?;
        return Ok(());
    }
    let replication = d.partitions.first().map_or(0, |p| p.replicas.len());
    writeln!(out, "Topic: {}", d.topic)?;
    writeln!(out, "Partitions: {}", d.partitions.len())?;
    writeln!(out, "Replication factor: {replication}")?;
    let overrides: Vec<String> = d
        .configs
        .iter()
        .filter(|c| c.is_topic_override())
        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("(hidden)")))
        .collect();
    writeln!(out, "Configs: {}", overrides.join(","))?;
    writeln!(out)?;
    writeln!(
        out,
        "{:>9}  {:>6}  {:<12}  {:<12}  {:>12}  {:>12}",
        "PARTITION", "LEADER", "REPLICAS", "ISR", "EARLIEST", "LATEST"
    )?;
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for p in &d.partitions {
        writeln!(
            out,
            "{:>9}  {:>6}  {:<12}  {:<12}  {:>12}  {:>12}",
            p.partition,
            p.leader,
            ids(&p.replicas),
            ids(&p.isr),
            p.earliest,
            p.latest
        )?;
    }
    Ok(())
}

fn print_done(out: &mut impl Write, output: Output, topic: &str, what: &str) -> anyhow::Result<()> {
    match output {
        Output::Json => {
            serde_json::to_writer(
                &mut *out,
                &serde_json::json!({ "topic": topic, "result": what }),
            )?;
            writeln!(out)?;
        }
        Output::Text => writeln!(out, "{what} topic \"{topic}\"")?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_and_name_the_topic_when_malformed() {
        let ok = parse_configs("t", &["cleanup.policy=compact".into(), "a=b=c".into()]).unwrap();
        assert_eq!(ok[0], ("cleanup.policy".into(), "compact".into()));
        assert_eq!(ok[1], ("a".into(), "b=c".into()));
        let err = parse_configs("orders", &["cleanup.policy".into()]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("orders") && msg.contains("cleanup.policy"),
            "{msg}"
        );
        assert!(err.downcast_ref::<super::super::UsageError>().is_some());
    }

    #[test]
    fn zero_partitions_is_a_usage_error() {
        let err = Verb::new_topic("t", 0, Some(1), &[]).unwrap_err();
        assert!(err.downcast_ref::<super::super::UsageError>().is_some());
        assert!(err.to_string().contains("--partitions 0"));
    }
}
