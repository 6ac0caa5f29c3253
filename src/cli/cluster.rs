//! `weir cluster`: the cluster's id, controller and brokers, and the
//! number of its topics and partitions; with `--topics`, each partition's
//! leader, replicas and in-sync replicas (kcat -L).

use std::io::Write;

use anyhow::Context;
use serde::Serialize;
use weir::ConnectionConfig;
use weir::kafka::admin::{Admin, ClusterDescription, TopicLayout};

use super::topics::Output;

/// Arguments of `weir cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Output format: text for people, json (one document) for scripts.
    // No -o: across weir's commands -o is --from, as kcat's -o.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// Also each topic's partitions: leader ("none" when offline),
    /// replicas, in-sync and offline replicas.
    #[arg(long)]
    pub topics: bool,

    /// With --topics: only these topics (repeatable; default: every
    /// topic, internal ones included).
    #[arg(short, long = "topic", value_name = "TOPIC", requires = "topics", value_parser = super::topic_name)]
    pub topic: Vec<String>,
}

/// The JSON document of `--topics`: the cluster's fields and the layouts.
#[derive(Debug, Serialize)]
struct WithTopics<'a> {
    #[serde(flatten)]
    cluster: &'a ClusterDescription,
    topic_partitions: &'a [TopicLayout],
}

/// Runs `weir cluster`.
///
/// # Errors
///
/// Connection and broker errors, naming the broker.
pub async fn run(args: &ClusterArgs, config: &ConnectionConfig) -> anyhow::Result<()> {
    let mut admin = Admin::connect(config).await?;
    let cluster = admin.describe_cluster().await?;
    let mut out = super::stdout();
    if args.topics {
        let names: Vec<&str> = args.topic.iter().map(String::as_str).collect();
        let layouts = admin
            .topic_layouts((!names.is_empty()).then_some(&names[..]))
            .await?;
        if args.output == Output::Json {
            serde_json::to_writer(
                &mut out,
                &WithTopics {
                    cluster: &cluster,
                    topic_partitions: &layouts,
                },
            )?;
            writeln!(out)?;
        } else {
            print(&mut out, args.output, &cluster)?;
            writeln!(out)?;
            print_layouts(&mut out, &layouts)?;
        }
        out.flush().context("writing to stdout")?;
        return Ok(());
    }
    print(&mut out, args.output, &cluster)?;
    out.flush().context("writing to stdout")?;
    Ok(())
}

fn print(out: &mut impl Write, output: Output, c: &ClusterDescription) -> anyhow::Result<()> {
    if output == Output::Json {
        serde_json::to_writer(&mut *out, c)?;
        writeln!(out)?;
        return Ok(());
    }
    let unknown = "(unknown)";
    writeln!(
        out,
        "Cluster id: {}",
        c.cluster_id.as_deref().unwrap_or(unknown)
    )?;
    match c.controller {
        Some(id) => writeln!(out, "Controller: {id}")?,
        None => writeln!(out, "Controller: {unknown}")?,
    }
    writeln!(
        out,
        "Topics: {} ({} partitions), internal: {} ({} partitions)",
        c.topics, c.partitions, c.internal_topics, c.internal_partitions
    )?;
    writeln!(out)?;
    let width = c
        .brokers
        .iter()
        .map(|b| b.address.len())
        .max()
        .unwrap_or(0)
        .max(7);
    writeln!(out, "{:>6}  {:<width$}  RACK", "BROKER", "ADDRESS")?;
    for b in &c.brokers {
        let controller = if c.controller == Some(b.id) {
            "  (controller)"
        } else {
            ""
        };
        writeln!(
            out,
            "{:>6}  {:<width$}  {}{controller}",
            b.id,
            b.address,
            b.rack.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// Broker ids as `1,2,3` (`-` for none).
fn ids(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".to_owned();
    }
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The partitions table of `--topics`, with a line counting the offline
/// and under-replicated partitions.
fn print_layouts(out: &mut impl Write, layouts: &[TopicLayout]) -> anyhow::Result<()> {
    let width = layouts
        .iter()
        .map(|t| t.topic.len())
        .max()
        .unwrap_or(0)
        .max(5);
    writeln!(
        out,
        "{:<width$}  {:>9}  {:>6}  {:<12}  {:<12}  {:<8}  STATE",
        "TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "OFFLINE"
    )?;
    let (mut offline, mut under) = (0, 0);
    for t in layouts {
        for p in &t.partitions {
            let state = if p.is_offline() {
                offline += 1;
                "offline"
            } else if p.is_under_replicated() {
                under += 1;
                "under-replicated"
            } else {
                "ok"
            };
            writeln!(
                out,
                "{:<width$}  {:>9}  {:>6}  {:<12}  {:<12}  {:<8}  {state}",
                t.topic,
                p.partition,
                p.leader.map_or("none".to_owned(), |l| l.to_string()),
                ids(&p.replicas),
                ids(&p.isr),
                ids(&p.offline_replicas),
            )?;
        }
    }
    writeln!(
        out,
        "\nOffline partitions: {offline}, under-replicated: {under}"
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use weir::kafka::admin::BrokerDescription;

    use super::*;

    #[test]
    fn an_offline_partition_has_no_leader_and_is_counted() {
        use weir::kafka::admin::PartitionLayout;
        let layouts = vec![TopicLayout {
            topic: "orders".to_owned(),
            internal: false,
            partitions: vec![
                PartitionLayout {
                    partition: 0,
                    leader: Some(1),
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2],
                    offline_replicas: vec![],
                },
                PartitionLayout {
                    partition: 1,
                    leader: None,
                    replicas: vec![3],
                    isr: vec![],
                    offline_replicas: vec![3],
                },
            ],
        }];
        let mut text = Vec::new();
        print_layouts(&mut text, &layouts).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("orders          0       1  1,2,3         1,2           -         under-replicated\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "orders          1    none  3             -             3         offline\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("Offline partitions: 1, under-replicated: 1\n"),
            "{text}"
        );
    }

    #[test]
    fn text_marks_the_controller_and_counts_internal_topics_apart() {
        let cluster = ClusterDescription {
            cluster_id: Some("q1Sh-9_ISia_zwGINzRvyQ".to_owned()),
            controller: Some(2),
            brokers: vec![
                BrokerDescription {
                    id: 1,
                    address: "10.0.0.1:9092".to_owned(),
                    rack: Some("a".to_owned()),
                },
                BrokerDescription {
                    id: 2,
                    address: "10.0.0.2:9092".to_owned(),
                    rack: None,
                },
            ],
            topics: 3,
            partitions: 13,
            internal_topics: 1,
            internal_partitions: 50,
        };
        let mut text = Vec::new();
        print(&mut text, Output::Text, &cluster).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("Cluster id: q1Sh-9_ISia_zwGINzRvyQ\n"),
            "{text}"
        );
        assert!(
            text.contains("Topics: 3 (13 partitions), internal: 1 (50 partitions)"),
            "{text}"
        );
        assert!(text.contains("     1  10.0.0.1:9092  a\n"), "{text}");
        assert!(
            text.contains("     2  10.0.0.2:9092  -  (controller)\n"),
            "{text}"
        );
    }
}
