//! Produce keyed JSON records, each with the future of its delivery.
//!
//! ```text
//! cargo run --example produce -- [BROKERS] [TOPIC] [COUNT]
//! ```
//!
//! Prints `written N records to TOPIC` once every record is acknowledged.

use std::sync::Arc;
use std::time::Instant;

use weir::ConnectionConfig;
use weir::produce::{Compression, FutureProducer, ProduceRecord, ProducerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topic = args.next().unwrap_or_else(|| "events".to_owned());
    let count: u64 = args.next().map_or(Ok(10_000), |n| n.parse())?;

    let client = Arc::new(ConnectionConfig::new([brokers]).client().await?);
    let config = ProducerConfig::default().with_compression(Compression::Lz4);
    let producer = FutureProducer::new(client, &topic, config).await?;

    let started = Instant::now();
    let mut deliveries = Vec::new();
    for i in 0..count {
        let user = i % 100;
        let record = ProduceRecord::new(format!(r#"{{"user":"u{user}","n":{i}}}"#))
            .with_key(format!("u{user}"));
        // Queued (waiting only for room in the buffer); the delivery is
        // awaited below, so records share batches.
        deliveries.push(producer.send(record).await?);
    }
    for delivery in deliveries {
        delivery.await.offset()?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("written {count} records to {topic}");
    eprintln!("{:.0} records/s", count as f64 / elapsed);
    Ok(())
}
