//! Copy a topic's records of one user (JSON field `user` equal to `u7`)
//! into another topic, exactly once: each input partition's records, and the group's
//! positions for them, in one transaction. Stops at the input's end or
//! at Ctrl-C.
//!
//! ```text
//! cargo run --example pipe -- [BROKERS] [FROM] [TO] [GROUP]
//! ```

use std::time::Duration;

use weir::ConnectionConfig;
use weir::consume::filter::{Filter, FilterConfig};
use weir::job::StopReason;
use weir::job::runner::{CommitPlan, GroupPlan, ReadPlan};
use weir::offsets::StoreConfig;
use weir::pipe::{PipeTo, Transform, pipe};
use weir::produce::ProducerConfig;
use weir::read::{ConsumerConfig, Selection, Until};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let from = args.next().unwrap_or_else(|| "events".to_owned());
    let to = args.next().unwrap_or_else(|| "even".to_owned());
    let group = args.next().unwrap_or_else(|| "even-pipe".to_owned());

    let connection = ConnectionConfig::new([brokers]);
    let read = ReadPlan::new(
        Selection::new([from]),
        ConsumerConfig::default().with_until(Until::End),
    )
    .with_group(GroupPlan::new(
        group,
        StoreConfig::default(),
        Some(CommitPlan::new(Duration::from_secs(1))),
    ));
    let filter = Filter::new(FilterConfig::default().with_where("user=u7".parse()?));
    // Keys and values as they are.
    let transform = Transform::default();
    let to = PipeTo::new(to, ProducerConfig::default()).exactly_once(Duration::from_secs(60));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        StopReason::Shutdown
    };
    let summary = pipe(&connection, read, filter, transform, to, shutdown).await?;
    println!("piped {} records", summary.written);
    Ok(())
}
