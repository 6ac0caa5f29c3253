//! The producer picks up partitions added while it runs.
//!
//! nisshi cannot add partitions to a topic, so the topic is created with 6
//! and the producer's metadata source first reports 3, then 6: the records
//! really go to the broker, and only the partition count is staged.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::Duration;

use common::{brokers, random_topic, timeout, weir_run};
use weir::partitioner::murmur2_partition;
use weir::producer::{ProduceRecord, Producer, ProducerConfig, TopicMetadata};

#[derive(Debug, Default)]
struct Staged {
    count: AtomicI32,
    reads: AtomicUsize,
}

impl TopicMetadata for Staged {
    fn partition_count<'a>(
        &'a self,
        _topic: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, String>> + Send + 'a>> {
        Box::pin(async move {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.count.load(Ordering::SeqCst))
        })
    }
}

async fn send_keys(
    producer: &mut Producer,
    deliveries: &mut tokio::sync::mpsc::UnboundedReceiver<weir::producer::Delivery>,
    keys: std::ops::Range<u64>,
) -> Vec<(String, i32)> {
    let mut placed = Vec::new();
    for i in keys.clone() {
        let key = format!("key-{i}");
        producer
            .send(
                i,
                ProduceRecord {
                    key: Some(key.clone().into_bytes()),
                    value: Some(b"v".to_vec()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        placed.push(key);
    }
    let mut out = Vec::new();
    for _ in keys.clone() {
        let d = timeout("delivery", deliveries.recv()).await.unwrap();
        assert!(d.result.is_ok(), "{:?}", d.result);
        let key = placed[(d.tag - keys.start) as usize].clone();
        out.push((key, d.partition));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_added_mid_run_are_used() {
    let topic = random_topic("grow");
    weir_run(&["topics", "create", &topic, "--partitions", "6"]).ok();
    let config = weir::ConnectionConfig {
        brokers: vec![brokers().to_owned()],
        timeout: Duration::from_secs(20),
        ..Default::default()
    };
    let client = Arc::new(timeout("connect", config.client()).await.unwrap());
    let staged = Arc::new(Staged::default());
    staged.count.store(3, Ordering::SeqCst);
    let producer_config = ProducerConfig {
        metadata_max_age: Duration::from_millis(50),
        ..Default::default()
    };
    let (mut producer, mut deliveries) = timeout(
        "producer",
        Producer::with_metadata(client, staged.clone(), &topic, 3, producer_config),
    )
    .await
    .unwrap();

    for (key, partition) in send_keys(&mut producer, &mut deliveries, 0..200).await {
        assert_eq!(partition, murmur2_partition(key.as_bytes(), 3), "{key}");
    }
    assert_eq!(producer.partitions(), 3);

    staged.count.store(6, Ordering::SeqCst);
    let seen = staged.reads.load(Ordering::SeqCst);
    timeout("refresh", async {
        while staged.reads.load(Ordering::SeqCst) < seen + 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let placed = send_keys(&mut producer, &mut deliveries, 200..400).await;
    assert_eq!(producer.partitions(), 6);
    for (key, partition) in &placed {
        assert_eq!(*partition, murmur2_partition(key.as_bytes(), 6), "{key}");
    }
    assert!(
        placed.iter().any(|(_, p)| *p >= 3),
        "no record reached a new partition"
    );
    producer.close().await;
}
