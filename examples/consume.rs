//! Read a topic to its end, partition by partition, committing each
//! batch's positions to a group once the batch is processed (at least
//! once: a crash repeats at most the batch being processed).
//!
//! ```text
//! cargo run --example consume -- [BROKERS] [TOPIC] [GROUP]
//! ```
//!
//! Prints `read N records, committed up to M` (M summed over partitions);
//! run it again with the same group and it reads only what came since.

use std::collections::BTreeMap;
use std::sync::Arc;

use weir::ConnectionConfig;
use weir::offsets::StoreConfig;
use weir::offsets::group::join;
use weir::read::{Consumer, ConsumerConfig, ConsumerEvent, Selection, Until, assign};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topic = args.next().unwrap_or_else(|| "events".to_owned());
    let group = args.next().unwrap_or_else(|| "example".to_owned());

    let connection = ConnectionConfig::new([brokers]);
    let client = Arc::new(connection.client().await?);
    // Every partition of the topic, each from the group's commit (or the
    // earliest offset), to the end of its log as it is now.
    let mut partitions = assign(&client, &Selection::new([topic])).await?;
    let (mut session, _) = join(
        Arc::clone(&client),
        &connection,
        &StoreConfig::default(),
        &group,
        &mut partitions,
    )
    .await?
    .ok_or("no offsets store")?;
    let config = ConsumerConfig::default().with_until(Until::End);
    let mut consumer = Consumer::start(&client, partitions, config).await?;

    let mut read = 0;
    let mut positions = BTreeMap::new();
    while let Some(event) = consumer.next().await {
        match event {
            ConsumerEvent::Records(records) => {
                for record in &records {
                    // Process the record here.
                    read += 1;
                    positions.insert(record.topic_partition(), record.offset + 1);
                }
                session.commit(&positions).await?;
            }
            ConsumerEvent::Failed(e) => return Err(e.into()),
            _ => {}
        }
    }
    let committed: i64 = positions.values().sum();
    println!("read {read} records, committed up to {committed}");
    Ok(())
}
