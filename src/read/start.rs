//! Where each assigned partition starts and stops: its committed offset,
//! or the [`StartOffset`] the consumer is configured with, clamped to the
//! partition's watermarks; the end of the log at start for [`Until::End`]
//! (the last stable offset under read_committed, as the Java consumer's
//! `endOffsets`).

use std::sync::Arc;

use rskafka::chrono::DateTime;
use rskafka::client::Client;
use rskafka::client::partition::OffsetAt;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::TopicPartition;
use crate::read::assign::Assignment;
use crate::read::config::ConsumerConfig;
use crate::read::error::{ConsumeError, FetchError, FetchFailure};
use crate::read::fetch::{PartitionFetch, PartitionReader, open_partition, within};
use crate::read::position::{StartOffset, Until};

/// Where an assigned partition starts and stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPosition {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Low watermark at start.
    pub low: i64,
    /// Where the log ended at start: the high watermark, or under
    /// read_committed the last stable offset.
    pub high: i64,
    /// First offset read.
    pub start: i64,
    /// Offset where reading stops ([`Until::End`]).
    pub end: Option<i64>,
}

impl PartitionPosition {
    /// The partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(Arc::clone(&self.topic), self.partition)
    }
}

/// Where `start` puts `topic`/`partition` now, clamped to its
/// watermarks, as a consumer starting there would resolve it.
///
/// # Errors
///
/// The partition cannot be opened or its watermarks cannot be read.
pub async fn resolve_start(
    client: &Client,
    topic: &str,
    partition: i32,
    start: StartOffset,
) -> Result<PartitionPosition, ConsumeError> {
    let topic: Arc<str> = Arc::from(topic);
    // The caller has just read the partition count: retried as in
    // `Consumer::start`, for a broker that does not know the topic yet.
    let pc = open_partition(
        client,
        &topic,
        partition,
        crate::kafka::connect::DEFAULT_TIMEOUT,
    )
    .await?;
    let assignment = Assignment {
        topic,
        partition,
        start: None,
    };
    let config = ConsumerConfig {
        start,
        ..ConsumerConfig::default()
    };
    let reader = PartitionReader {
        client: pc,
        isolation: config.isolation,
    };
    resolve(&assignment, &reader, &config).await
}

/// Resolves a partition's start and end against its watermarks.
pub(super) async fn resolve<F: PartitionFetch>(
    assignment: &Assignment,
    fetch: &F,
    config: &ConsumerConfig,
) -> Result<PartitionPosition, ConsumeError> {
    let topic = &assignment.topic;
    let partition = assignment.partition;
    let failed = |e: FetchError| ConsumeError::Fetch {
        at: assignment.topic_partition(),
        cause: FetchFailure::Watermarks(e),
    };
    let deadline = Instant::now() + config.retry_timeout;
    let timeout = config.retry_timeout;
    let low = within(deadline, timeout, fetch.offset_at(OffsetAt::Earliest))
        .await
        .map_err(&failed)?;
    let high = within(deadline, timeout, fetch.offset_at(OffsetAt::Latest))
        .await
        .map_err(&failed)?;
    // Under read_committed `high` is the last stable offset; a commit
    // past it but within the high watermark (one written inside a
    // transaction still open, as the offsets store's own) is in the log,
    // to be read once the transaction ends.
    let log_end = match assignment.start {
        Some(offset) if offset > high => within(deadline, timeout, fetch.high_watermark())
            .await
            .map_err(&failed)?
            .max(high),
        _ => high,
    };
    // A committed offset outside the log (the topic was deleted and
    // re-created, or truncated, or retention passed it) is not trusted:
    // as the Java consumer with an out-of-range position, the reset policy
    // (the configured start) decides.
    let committed = assignment.start.filter(|&offset| {
        let inside = (low..=log_end).contains(&offset);
        if !inside {
            warn!(
                topic = topic.as_ref(),
                partition,
                committed = offset,
                low,
                high,
                start = ?config.start,
                "committed offset outside the partition's log (topic re-created or truncated?); starting at the configured start instead"
            );
        }
        inside
    });
    let follow = config.follow.iter().any(|t| **t == **topic);
    let wanted = match (committed, config.start) {
        (Some(offset), _) => offset,
        (None, _) if follow => low,
        (None, StartOffset::Offset(offset)) => offset,
        (None, StartOffset::Earliest) => low,
        (None, StartOffset::Latest) => high,
        (None, StartOffset::FromEnd(n)) => high.saturating_sub(n).max(low),
        (None, StartOffset::Timestamp(ms)) => {
            let at = DateTime::from_timestamp_millis(ms).unwrap_or_default();
            match within(deadline, timeout, fetch.offset_at(OffsetAt::Timestamp(at))).await {
                // -1: no record at or after the time.
                Ok(offset) if offset >= 0 => offset,
                Ok(_) => high,
                Err(e) => return Err(failed(e)),
            }
        }
    };
    let start = match committed {
        Some(offset) => offset,
        None => wanted.clamp(low, high.max(low)),
    };
    if start != wanted {
        info!(
            topic = topic.as_ref(),
            partition,
            wanted,
            low,
            high,
            start,
            "start offset outside the partition's log; clamped to its watermarks"
        );
    }
    let end = match config.until {
        _ if follow => None,
        Until::End => Some(high),
        Until::HighWatermark => Some(
            within(deadline, timeout, fetch.high_watermark())
                .await
                .map_err(&failed)?
                .max(high),
        ),
        Until::Never | Until::Timestamp(_) => None,
    };
    debug!(
        topic = topic.as_ref(),
        partition,
        low,
        high,
        start,
        ?end,
        "assigned"
    );
    Ok(PartitionPosition {
        topic: Arc::clone(topic),
        partition,
        low,
        high,
        start,
        end,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::read::consumer::Consumer;
    use crate::read::fake_log::{FakeLog, assignment, config, drain, read};

    #[tokio::test]
    async fn every_start_form_is_resolved_and_clamped() {
        let log = Arc::new(FakeLog::new(0..10));
        let end = Until::End;
        let from = |f| read(&log, None, f, end);
        assert_eq!(
            from(StartOffset::Earliest).await,
            ((0..10).collect(), Some(10))
        );
        assert_eq!(from(StartOffset::Latest).await, (vec![], Some(10)));
        assert_eq!(
            from(StartOffset::Offset(7)).await,
            (vec![7, 8, 9], Some(10))
        );
        assert_eq!(from(StartOffset::FromEnd(2)).await, (vec![8, 9], Some(10)));
        assert_eq!(
            from(StartOffset::FromEnd(99)).await.0,
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(from(StartOffset::Timestamp(6_500)).await.0, vec![7, 8, 9]);
        assert_eq!(
            from(StartOffset::Timestamp(99_000)).await.0,
            Vec::<i64>::new()
        );
        // Beyond the watermarks: clamped.
        assert_eq!(from(StartOffset::Offset(50)).await, (vec![], Some(10)));
        // A committed start outside the log is not trusted: --from decides.
        assert_eq!(
            read(&log, Some(-3), StartOffset::Latest, end).await.0.len(),
            0
        );
        assert_eq!(
            read(&log, Some(50), StartOffset::Earliest, end)
                .await
                .0
                .len(),
            10
        );
        // An explicit (committed) start wins over --from.
        assert_eq!(
            read(&log, Some(9), StartOffset::Earliest, end).await.0,
            vec![9]
        );
    }

    #[tokio::test]
    async fn until_end_ignores_records_written_after_the_start() {
        let log = Arc::new(FakeLog::new(0..5));
        let consumer = Consumer::start_with(
            vec![(assignment(None), Arc::clone(&log))],
            config(StartOffset::Earliest, Until::End),
        )
        .await
        .unwrap();
        log.log.lock().unwrap().extend((5..8).map(|o| (o, 10, 0)));
        assert_eq!(drain(consumer).await, ((0..5).collect(), Some(5)));
    }
}
