//! Count records by a JSON field in one-minute windows, until the topic's
//! end or Ctrl-C (the shutdown future), each window's rows as JSON lines.
//!
//! ```text
//! cargo run --example count -- [BROKERS] [TOPIC]
//! ```

use std::time::Duration;

use weir::ConnectionConfig;
use weir::aggregate::{CountConfig, Extractor, JsonLines, WindowSpec, count};
use weir::job::StopReason;
use weir::job::runner::ReadPlan;
use weir::read::{ConsumerConfig, Selection, Until};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topic = args.next().unwrap_or_else(|| "events".to_owned());

    let connection = ConnectionConfig::new([brokers]);
    let read = ReadPlan::new(
        Selection::new([topic]),
        ConsumerConfig::default().with_until(Until::End),
    );
    let config = CountConfig::default()
        .with_by(["json:/user".parse::<Extractor>()?])
        .with_windows(WindowSpec::tumbling(Duration::from_secs(60)))?;
    let rows = Box::new(JsonLines(std::io::stdout()));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        StopReason::Shutdown
    };
    let summary = count(&connection, read, config, Some(rows), None, shutdown).await?;
    eprintln!("{} rows, stopped: {:?}", summary.rows, summary.stop);
    Ok(())
}
