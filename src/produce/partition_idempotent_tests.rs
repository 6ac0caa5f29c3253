//! The partition task as an idempotent producer: its window of batches
//! on their way, their sequences, and the new epochs it starts, against
//! a leader modelled in memory.

use super::*;

/// A partition log as a leader keeps it for an idempotent producer: a
/// batch is appended only if its sequence follows the producer's last one
/// in its epoch (or starts a new epoch at 0), and is otherwise refused as
/// Kafka refuses it; the task then sends it again as its [`Stamp`] says.
/// Answers come slower for earlier batches (batch `n` after `50 - 10 * (n
/// % 5)` ms), so later batches of a window are answered first. Keeps the
/// appended batches with their identities, and the most batches it had on
/// their way at once.
#[derive(Debug)]
struct SlowLog {
    batches: Mutex<Vec<(Option<BatchIdentity>, Vec<String>)>>,
    /// The producer's epoch and next sequence, as the leader knows them.
    producer: Mutex<Option<(i16, i32)>>,
    tried: AtomicU64,
    on_way: AtomicU64,
    most_on_way: AtomicU64,
    fault: Option<(u64, Fault)>,
}

/// What befalls the partition when the `n`th batch is first sent.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The batch is refused for good (NOT_ENOUGH_REPLICAS).
    Refuse,
    /// The leader forgets the producer: UNKNOWN_PRODUCER_ID for a
    /// sequence other than 0, as brokers before 2.8 answered.
    Forget,
    /// The leader loses the last batch it appended (an unclean leader
    /// election): OUT_OF_ORDER_SEQUENCE_NUMBER for the next.
    Truncate,
}

impl SlowLog {
    fn new(fault: Option<(u64, Fault)>) -> Arc<Self> {
        Arc::new(Self {
            batches: Mutex::default(),
            producer: Mutex::default(),
            tried: AtomicU64::new(0),
            on_way: AtomicU64::new(0),
            most_on_way: AtomicU64::new(0),
            fault,
        })
    }

    /// Appends `values` as `identity` if its sequence is the next: the
    /// offset of its first record, or Kafka's refusal.
    fn append(
        &self,
        identity: Option<&BatchIdentity>,
        values: &[String],
    ) -> Result<i64, ProtocolError> {
        if let Some(id) = identity {
            let mut producer = self.producer.lock().unwrap();
            let (epoch, sequence) = (id.producer_epoch, id.base_sequence);
            match *producer {
                None if sequence != 0 => return Err(ProtocolError::UnknownProducerId),
                Some((known, _)) if epoch < known => {
                    return Err(ProtocolError::InvalidProducerEpoch);
                }
                Some((known, _)) if epoch > known && sequence != 0 => {
                    return Err(ProtocolError::OutOfOrderSequenceNumber);
                }
                Some((known, next)) if epoch == known && sequence != next => {
                    return Err(ProtocolError::OutOfOrderSequenceNumber);
                }
                _ => {}
            }
            *producer = Some((epoch, sequence + values.len() as i32));
        }
        let mut batches = self.batches.lock().unwrap();
        let start: usize = batches.iter().map(|b| b.1.len()).sum();
        batches.push((identity.cloned(), values.to_vec()));
        Ok(start as i64)
    }

    fn befall(&self, fault: Fault) -> Option<ProtocolError> {
        match fault {
            Fault::Refuse => return Some(ProtocolError::NotEnoughReplicas),
            Fault::Forget => *self.producer.lock().unwrap() = None,
            Fault::Truncate => {
                let lost = self.batches.lock().unwrap().pop().unwrap();
                if let Some((_, next)) = self.producer.lock().unwrap().as_mut() {
                    *next -= lost.1.len() as i32;
                }
            }
        }
        None
    }
}

impl PartitionProduce for Arc<SlowLog> {
    fn produce<'a>(
        &'a self,
        batch: EncodedBatch,
        stamp: Option<&'a Stamp>,
    ) -> BoxFuture<'a, Result<Vec<i64>, ClientError>> {
        Box::pin(async move {
            let values = values_of(&batch);
            let n = self.tried.fetch_add(1, Ordering::SeqCst);
            let now = self.on_way.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_on_way.fetch_max(now, Ordering::SeqCst);
            let wait = Duration::from_millis(50 - 10 * (n % 5));
            let mut attempt = ProduceAttempt {
                number: 0,
                refused: None,
            };
            // As rskafka's `produce_as`: the stamp before each attempt,
            // again after a refusal of the sequence.
            let result = loop {
                let identity = match stamp {
                    None => None,
                    Some(stamp) => match stamp.identity(attempt).await {
                        Some(identity) => Some(identity),
                        None => break Err(server_error(attempt.refused.unwrap())),
                    },
                };
                let fault = match self.fault {
                    Some((at, fault)) if at == n && attempt.number == 0 => self.befall(fault),
                    _ => None,
                };
                attempt.number += 1;
                let answer = match fault {
                    Some(refusal) => Err(refusal),
                    None => self.append(identity.as_ref(), &values),
                };
                tokio::time::sleep(wait).await;
                match answer {
                    Ok(start) => break Ok((start..start + values.len() as i64).collect()),
                    Err(
                        refusal @ (ProtocolError::OutOfOrderSequenceNumber
                        | ProtocolError::UnknownProducerId
                        | ProtocolError::InvalidProducerEpoch),
                    ) => attempt.refused = Some(refusal),
                    Err(refusal) => break Err(server_error(refusal)),
                }
            };
            self.on_way.fetch_sub(1, Ordering::SeqCst);
            result.map_err(ClientError::from)
        })
    }

    fn topic_exists(&self) -> BoxFuture<'_, Result<bool, ClientError>> {
        Box::pin(async { Ok(true) })
    }

    fn leader(&self) -> Option<String> {
        Some("fake:9092".to_owned())
    }
}

const PRODUCER: ProducerId = ProducerId { id: 7, epoch: 2 };

#[tokio::test(start_paused = true)]
async fn idempotent_batches_go_five_at_a_time_with_sequences_and_report_in_order() {
    let log = SlowLog::new(None);
    let one = record_size(&pending(0, values(0..1).remove(0)).record);
    // Two records to a batch, 12 batches.
    let (queue, running, mut deliveries) = task_over(
        Arc::new(Arc::clone(&log)),
        Duration::from_secs(3600),
        2 * one,
        Some(PRODUCER),
    );
    for (tag, v) in values(0..24).into_iter().enumerate() {
        queue.send(pending(tag as u64, v)).await.unwrap();
    }
    drop(queue);
    running.await.unwrap();

    assert_eq!(
        log.most_on_way.load(Ordering::SeqCst),
        IDEMPOTENT_IN_FLIGHT as u64
    );
    let batches = log.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 12);
    for (n, (identity, values)) in batches.iter().enumerate() {
        let identity = identity.as_ref().expect("an identity");
        assert_eq!(
            (identity.producer_id, identity.producer_epoch),
            (7, 2),
            "batch {n}"
        );
        assert_eq!(identity.base_sequence, 2 * n as i32, "batch {n}");
        assert_eq!(
            values,
            &[format!("v{:03}", 2 * n), format!("v{:03}", 2 * n + 1)]
        );
    }
    // Deliveries in the partition's order, though later batches were
    // acknowledged first.
    let mut got = Vec::new();
    while let Ok(d) = deliveries.try_recv() {
        got.push((d.tag, d.result.unwrap()));
    }
    assert_eq!(got, (0..24).map(|i| (i, i as i64)).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn without_idempotence_one_batch_at_a_time_without_identity() {
    let log = SlowLog::new(None);
    let one = record_size(&pending(0, values(0..1).remove(0)).record);
    let (queue, running, _deliveries) = task_over(
        Arc::new(Arc::clone(&log)),
        Duration::from_secs(3600),
        2 * one,
        None,
    );
    for (tag, v) in values(0..10).into_iter().enumerate() {
        queue.send(pending(tag as u64, v)).await.unwrap();
    }
    drop(queue);
    running.await.unwrap();
    assert_eq!(log.most_on_way.load(Ordering::SeqCst), 1);
    assert!(log.batches.lock().unwrap().iter().all(|b| b.0.is_none()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_fails_those_on_their_way_and_abandons_the_rest() {
    let log = SlowLog::new(Some((1, Fault::Refuse)));
    let one = record_size(&pending(0, values(0..1).remove(0)).record);
    let (queue, running, mut deliveries) = task_over(
        Arc::new(Arc::clone(&log)),
        Duration::from_secs(3600),
        one,
        Some(PRODUCER),
    );
    // Batches 0-4 go out at once; 1 fails after 40 ms, when 2-4 are
    // still on their way; 5-7 wait for room and are never sent.
    for (tag, v) in values(0..8).into_iter().enumerate() {
        queue.send(pending(tag as u64, v)).await.unwrap();
    }
    drop(queue);
    running.await.unwrap();

    let mut outcomes = Vec::new();
    while let Ok(d) = deliveries.try_recv() {
        let result = d.result.map_err(|e| match &*e {
            ProduceError::Send { .. } => "failed",
            ProduceError::Unconfirmed { .. } => "unconfirmed",
            ProduceError::Abandoned { .. } => "abandoned",
            _ => "other",
        });
        outcomes.push((d.tag, result));
    }
    let sent = log.tried.load(Ordering::SeqCst);
    let (on_way, abandoned) = (2..sent, sent..8);
    let mut expected = vec![(0, Ok(0)), (1, Err("failed"))];
    expected.extend(on_way.map(|t| (t, Err("unconfirmed"))));
    expected.extend(abandoned.map(|t| (t, Err("abandoned"))));
    assert_eq!(outcomes, expected);
    // 0-4 went at once; the first to find room after the failure was
    // known (5 or 6: the failure and batch 0's freed room come together)
    // was not sent.
    assert!((5..=6).contains(&sent), "batches sent: {sent}");
}

/// Sends `values(0..n)`, one record to a batch, as [`PRODUCER`] to `log`;
/// returns the deliveries as (tag, offset or error text).
async fn one_record_batches(log: &Arc<SlowLog>, n: usize) -> Vec<(u64, Result<i64, String>)> {
    let one = record_size(&pending(0, values(0..1).remove(0)).record);
    let (queue, running, mut deliveries) = task_over(
        Arc::new(Arc::clone(log)),
        Duration::from_secs(3600),
        one,
        Some(PRODUCER),
    );
    for (tag, v) in values(0..n).into_iter().enumerate() {
        queue.send(pending(tag as u64, v)).await.unwrap();
    }
    drop(queue);
    running.await.unwrap();
    let mut got = Vec::new();
    while let Ok(d) = deliveries.try_recv() {
        got.push((d.tag, d.result.map_err(|e| e.to_string())));
    }
    got
}

/// The (epoch, sequence, value) of each batch appended to `log`.
fn appended(log: &SlowLog) -> Vec<(i16, i32, String)> {
    let batches = log.batches.lock().unwrap();
    batches
        .iter()
        .map(|(identity, values)| {
            let identity = identity.as_ref().unwrap();
            let [value] = values.as_slice() else {
                panic!("one record to a batch")
            };
            (
                identity.producer_epoch,
                identity.base_sequence,
                value.clone(),
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_forgets_the_producer_gets_a_new_epoch_from_the_refused_batch() {
    let log = SlowLog::new(Some((6, Fault::Forget)));
    let got = one_record_batches(&log, 12).await;
    assert_eq!(got, (0..12).map(|i| (i, Ok(i as i64))).collect::<Vec<_>>());
    // Batches 0-5 in epoch 2; the refused batch 6 again as sequence 0 of
    // epoch 3, and the batches after it, refused in epoch 2, follow on.
    let expected: Vec<_> = (0..12)
        .map(|i| match i {
            0..6 => (2, i, format!("v{i:03}")),
            _ => (3, i - 6, format!("v{i:03}")),
        })
        .collect();
    assert_eq!(appended(&log), expected);
}

#[tokio::test(start_paused = true)]
async fn a_gap_after_acknowledged_batches_gets_a_new_epoch_and_nothing_twice() {
    // The leader loses batch 5 after appending it (as an unclean leader
    // election loses records): its delivery was acknowledged, and batch
    // 6 finds a gap before it.
    let log = SlowLog::new(Some((6, Fault::Truncate)));
    let got = one_record_batches(&log, 12).await;
    let tags: Vec<u64> = got.iter().map(|(tag, _)| *tag).collect();
    assert_eq!(tags, (0..12).collect::<Vec<_>>());
    let expected: Vec<_> = (0..12)
        .filter(|&i| i != 5)
        .map(|i| match i {
            0..5 => (2, i, format!("v{i:03}")),
            _ => (3, i - 6, format!("v{i:03}")),
        })
        .collect();
    assert_eq!(appended(&log), expected);
    assert!(got.iter().all(|(_, r)| r.is_ok()), "{got:?}");
}
