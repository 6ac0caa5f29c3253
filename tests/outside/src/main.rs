//! A library user's program: a few of weir's public items, from outside
//! its workspace, without the `cli` feature. No broker: it checks that the
//! dependency resolves, builds and links.

use std::time::Duration;

use weir::produce::partitioner::murmur2_partition;
use weir::produce::{Compression, ProduceRecord, ProducerConfig};
use weir::{ConnectionConfig, ErrorChain, Header, TopicPartition};

#[tokio::main]
async fn main() {
    // Java's partition for the key "kafka" among 10 partitions.
    assert_eq!(
        murmur2_partition(b"kafka", 10),
        (0xd067_cf64u32 & 0x7fff_ffff) as i32 % 10
    );
    let tp = TopicPartition::new("orders", 3);
    assert_eq!(tp.to_string(), "topic \"orders\" partition 3");
    let header: Header = ("trace".to_owned(), None);
    assert!(header.1.is_none());
    // A producer's options and records in weir's own types: no rskafka
    // type to name (its crate is not a dependency here).
    let config = ProducerConfig::default().with_compression(Compression::Zstd);
    assert_eq!(config.compression.to_string(), "zstd");
    let record = ProduceRecord::new("v").with_key("k").with_header("trace", "1");
    assert_eq!(record.headers.len(), 1);

    // Nothing listens on port 1: connecting fails within the deadline with
    // weir's typed error.
    let config = ConnectionConfig::new(["127.0.0.1:1".to_owned()]).with_timeout(Duration::from_millis(500));
    match config.client().await {
        Ok(_) => panic!("a client from a port nothing listens on"),
        Err(e) => println!("weir from outside: {}", ErrorChain(&e)),
    }
}
