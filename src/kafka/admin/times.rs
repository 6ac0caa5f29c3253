//! Offsets for a time (kcat -Q, Kafka's `GetOffsetShell --time`): per
//! partition, the first offset whose record's timestamp is at or after it.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{debug, instrument};

use super::topics::{LATEST, READ_UNCOMMITTED};
use super::{Admin, AdminError, BrokerRefusal};
use crate::kafka::retry::{Failure, Retry, RetryError};

/// Where a partition's records reach a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffsetForTime {
    /// Partition index.
    pub partition: i32,
    /// The first offset whose timestamp is at or after the time; with no
    /// such record, the end offset (high watermark), where a consumer
    /// starting at that time (`consume --from @T`) starts.
    pub offset: i64,
    /// That record's timestamp (ms since the epoch); `None` when no record
    /// is at or after the time (`offset` is then the end).
    pub timestamp: Option<i64>,
}

impl OffsetForTime {
    /// No record at or after the time: `offset` is the partition's end.
    pub fn past_the_end(&self) -> bool {
        self.timestamp.is_none()
    }
}

impl Admin {
    /// Per partition of `topic`, sorted, the first offset whose record's
    /// timestamp is at or after `at_ms` (ms since the epoch, 0 or more),
    /// as ListOffsets with a timestamp answers it: by the broker's time
    /// index, so with `LogAppendTime` by append time. A partition with no
    /// such record gives its end offset and no timestamp.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownTopic`] when it does not exist; connection and
    /// protocol errors.
    #[instrument(skip(self))]
    pub async fn offsets_for_time(
        &mut self,
        topic: &str,
        at_ms: i64,
    ) -> Result<Vec<OffsetForTime>, AdminError> {
        // Leaders move while a topic is new or a broker restarts: look
        // them up again until the deadline, as `describe_topic`.
        Retry::until(Instant::now() + self.config.timeout)
            .run_with(
                &mut (self, topic),
                |(admin, topic), _| Box::pin(admin.offsets_for_time_once(topic, at_ms)),
                |e, _| debug!(topic, error = %crate::ErrorChain(e), "retrying offsets for a time"),
            )
            .await
            .map_err(RetryError::into_inner)
    }

    async fn offsets_for_time_once(
        &mut self,
        topic: &str,
        at_ms: i64,
    ) -> Result<Vec<OffsetForTime>, Failure<AdminError>> {
        let metadata = self.metadata(Some(&[topic])).await?;
        let partitions = Self::topic_partitions(&metadata, topic)?;
        let addresses = Self::broker_addresses(&metadata);
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in &partitions {
            by_leader.entry(p.leader).or_default().push(p.partition);
        }
        let mut found = Vec::with_capacity(partitions.len());
        for (leader, ids) in by_leader {
            let Some(address) = addresses.get(&leader).cloned() else {
                // No leader (offline, or an election under way): nothing
                // can answer for these partitions yet.
                return Err(Failure::Retriable(AdminError::Refused {
                    action: "list offsets of",
                    topic: topic.to_owned(),
                    partition: Some(ids[0]),
                    refusal: BrokerRefusal {
                        error: ResponseError::LeaderNotAvailable,
                        message: Some("the partition has no leader".to_owned()),
                    },
                }));
            };
            let at = self
                .list_offsets_and_times(&address, topic, &ids, at_ms, READ_UNCOMMITTED)
                .await?;
            let mut ends = None;
            for &partition in &ids {
                let (offset, timestamp) = at.get(&partition).copied().unwrap_or((-1, -1));
                if offset >= 0 {
                    found.push(OffsetForTime {
                        partition,
                        offset,
                        timestamp: Some(timestamp).filter(|&t| t >= 0),
                    });
                    continue;
                }
                // -1: no record at or after the time.
                if ends.is_none() {
                    ends = Some(
                        self.list_offsets_and_times(
                            &address,
                            topic,
                            &ids,
                            LATEST,
                            READ_UNCOMMITTED,
                        )
                        .await?,
                    );
                }
                let end = ends
                    .as_ref()
                    .and_then(|e| e.get(&partition))
                    .map_or(-1, |&(o, _)| o);
                found.push(OffsetForTime {
                    partition,
                    offset: end,
                    timestamp: None,
                });
            }
        }
        found.sort_by_key(|f| f.partition);
        Ok(found)
    }
}
