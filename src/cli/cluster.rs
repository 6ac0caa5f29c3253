//! `weir cluster`: the cluster's id, controller and brokers, and the
//! number of its topics and partitions (kcat -L).

use std::io::Write;

use anyhow::Context;
use weir::ConnectionConfig;
use weir::kafka::admin::{Admin, ClusterDescription};

use super::topics::Output;

/// Arguments of `weir cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Output format: text for people, json (one document) for scripts.
    // No -o: across weir's commands -o is --from, as kcat's -o.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
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

#[cfg(test)]
mod tests {
    use weir::kafka::admin::BrokerDescription;

    use super::*;

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
