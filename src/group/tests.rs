//! The handler's run on a fake log: each record handled once, in order,
//! its position moved only after its handler returned `Ok`, and a
//! handler's error stopping the run with the positions before it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::handle::{PerBatch, PerRecord, Run};
use crate::TopicPartition;
use crate::job::StopReason;
use crate::read::fake_log::NumberedLog;
use crate::read::{Assignment, Consumer, ConsumerConfig, Until};
use crate::record::ConsumedRecord;

/// A consumer of a fake partition `t` 0 of `len` records, to its end.
async fn consumer(len: i64) -> Consumer {
    let assignment = Assignment {
        topic: Arc::from("t"),
        partition: 0,
        start: None,
    };
    let config = ConsumerConfig::default()
        .with_until(Until::End)
        .with_fetch_max_wait(Duration::from_millis(10));
    Consumer::start_with(vec![(assignment, NumberedLog { len })], config)
        .await
        .unwrap()
}

#[derive(Debug, thiserror::Error)]
#[error("record {0} refused")]
struct Refused(i64);

#[tokio::test]
async fn every_record_is_handled_once_in_order_and_its_position_follows() {
    let consumer = consumer(5).await;
    let mut seen = Vec::new();
    let mut handler = PerRecord(|r: ConsumedRecord| {
        seen.push(r.offset);
        async { Ok::<(), Refused>(()) }
    });
    let mut run = Run::new(&mut handler, consumer.starts(), None, None, None);
    let stop = tokio::time::timeout(
        Duration::from_secs(10),
        crate::job::run(consumer, &mut run, None, std::future::pending()),
    )
    .await
    .expect("the run did not reach the end")
    .unwrap();
    assert_eq!(stop, StopReason::Reached);
    assert!(run.failure().is_none());
    let positions = run.positions().clone();
    drop(run);
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert_eq!(
        positions,
        BTreeMap::from([(TopicPartition::new("t", 0), 5)])
    );
}

#[tokio::test]
async fn a_handler_error_stops_the_run_with_the_positions_before_it() {
    let consumer = consumer(5).await;
    let mut handler = PerRecord(|r: ConsumedRecord| async move {
        match r.offset {
            3 => Err(Refused(3)),
            _ => Ok(()),
        }
    });
    let mut run = Run::new(&mut handler, consumer.starts(), None, None, None);
    let stop = tokio::time::timeout(
        Duration::from_secs(10),
        crate::job::run(consumer, &mut run, None, std::future::pending()),
    )
    .await
    .expect("the run did not stop")
    .unwrap();
    assert_eq!(stop, StopReason::Shutdown);
    let (at, offset, e) = run.failure().expect("the handler's error is kept");
    assert_eq!((at.clone(), *offset), (TopicPartition::new("t", 0), 3));
    assert_eq!(e.to_string(), "record 3 refused");
    assert_eq!(
        run.positions(),
        &BTreeMap::from([(TopicPartition::new("t", 0), 3)]),
        "offset 3 is not past: a member that takes the partition over reads it again"
    );
}

#[tokio::test]
async fn a_batch_handler_takes_a_partitions_records_and_moves_past_them_all_or_none() {
    let consumer = consumer(5).await;
    let mut batches = Vec::new();
    let mut handler = PerBatch(|records: Vec<ConsumedRecord>| {
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        batches.push(offsets.clone());
        async move {
            match offsets.contains(&4) {
                true => Err(Refused(offsets[0])),
                false => Ok(()),
            }
        }
    });
    let mut run = Run::new(&mut handler, consumer.starts(), None, None, None);
    let stop = tokio::time::timeout(
        Duration::from_secs(10),
        crate::job::run(consumer, &mut run, None, std::future::pending()),
    )
    .await
    .expect("the run did not stop")
    .unwrap();
    assert_eq!(stop, StopReason::Shutdown, "the batch with offset 4 failed");
    let (_, failed_at, _) = run.failure().expect("the handler's error is kept");
    let failed_at = *failed_at;
    let positions = run.positions().clone();
    drop(run);
    let all: Vec<i64> = batches.concat();
    assert_eq!(all, [0, 1, 2, 3, 4], "each record in one batch, in order");
    let last = batches.last().unwrap();
    assert_eq!(
        failed_at, last[0],
        "reported at the failed batch's first offset"
    );
    assert_eq!(
        positions,
        BTreeMap::from([(TopicPartition::new("t", 0), last[0])]),
        "none of the failed batch is past"
    );
}
