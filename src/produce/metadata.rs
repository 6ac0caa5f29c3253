//! How the producer learns a topic's partition count, and keeps learning
//! it while it runs: partitions added to a topic are used from the next
//! refresh on, as with the Java client.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::Client;
use tokio::sync::{Notify, watch};
use tracing::{debug, warn};

/// Where the producer learns a topic's partition count. rskafka's
/// [`Client`] implements it with a metadata request; tests substitute
/// their own.
pub trait TopicMetadata: Send + Sync + fmt::Debug {
    /// The topic's current number of partitions.
    ///
    /// # Errors
    ///
    /// A description of why the count could not be read.
    fn partition_count<'a>(
        &'a self,
        topic: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<i32, String>> + Send + 'a>>;
}

impl TopicMetadata for Client {
    fn partition_count<'a>(
        &'a self,
        topic: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<i32, String>> + Send + 'a>> {
        Box::pin(async move {
            let topics = self.list_topics().await.map_err(|e| e.to_string())?;
            let found = topics
                .into_iter()
                .find(|t| t.name == topic)
                .ok_or_else(|| format!("topic \"{topic}\" is not in the metadata"))?;
            i32::try_from(found.partitions.len()).map_err(|e| e.to_string())
        })
    }
}

/// Reads the partition count every `max_age`, or at once when a partition
/// task reports trouble, and publishes growth.
pub(super) async fn refresh_partition_count(
    metadata: Arc<dyn TopicMetadata>,
    topic: String,
    max_age: Duration,
    stale: Arc<Notify>,
    counts: watch::Sender<i32>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(max_age) => {}
            () = stale.notified() => {}
        }
        match metadata.partition_count(&topic).await {
            Ok(count) if count > *counts.borrow() => {
                if counts.send(count).is_err() {
                    return;
                }
            }
            Ok(count) if count < *counts.borrow() => {
                warn!(
                    topic,
                    count, "the metadata shows fewer partitions than before; ignored"
                );
            }
            Ok(_) => {}
            Err(error) => debug!(topic, error, "partition count refresh failed"),
        }
    }
}
