//! The idempotent producer's sequence numbers in one partition, and what
//! it does when the leader refuses them, as the Java producer does since
//! KIP-360.
//!
//! Every batch carries the producer id, an epoch and the sequence number
//! of its first record; the leader appends a batch only if its sequence
//! follows the last one it appended for that producer and epoch. A refusal
//! means one of two things:
//! - **A batch overtook an earlier one** (each is retried on its own after
//!   a leader change): the batch is sent again once the earlier ones are
//!   acknowledged.
//! - **The leader lost the producer's state or records** (its log was
//!   truncated or deleted under the producer, or it expired the
//!   producer): OUT_OF_ORDER_SEQUENCE_NUMBER for a batch whose earlier
//!   batches were all acknowledged, or UNKNOWN_PRODUCER_ID. The partition
//!   then starts a new epoch: the refused batch is sent again as sequence
//!   0 of epoch + 1 and the batches after it follow on from there. A batch
//!   sent under the old epoch and refused is sent again in the new one.
//!   Nothing the leader appended is sent twice, and no (epoch, sequence)
//!   pair is used for two batches.
//!
//! The Java producer bumps one epoch for all its partitions; here each
//! partition keeps its own (the leader checks a producer's epoch per
//! partition, so the others go on undisturbed). A transactional producer
//! does not bump: its transaction fails, as in Java, and is aborted.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rskafka::client::error::ProtocolError;
use rskafka::client::partition::{BatchIdentity, ProduceAttempt};
use tokio::sync::watch;
use tracing::warn;

use crate::kafka::idempotence::ProducerId;

/// The sequence of a record `records` after sequence 0: Kafka's sequence
/// numbers wrap from `i32::MAX` to 0.
pub(super) fn sequence_at(records: u64) -> i32 {
    (records % (1 << 31)) as i32
}

/// The epoch one partition's batches are written under, and where its
/// sequence 0 falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Epoch {
    /// The producer id and this partition's epoch.
    id: ProducerId,
    /// Epochs started since the producer's first: which batches were
    /// stamped before the latest bump.
    number: u64,
    /// The partition's records before sequence 0 of this epoch.
    base: u64,
}

/// What to do after a refusal.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Send again under the current epoch (bumped or not).
    Send,
    /// Fail the batch with the refusal.
    GiveUp,
}

impl Epoch {
    /// Decides, after every batch before this one has reported, what
    /// happens to a batch of the partition that starts `first` records in,
    /// was last stamped in epoch `stamped`, and was `refused` (`None`:
    /// failed otherwise, e.g. a broken connection). `acked_before`: the
    /// batches before it were all acknowledged when it was refused, so a
    /// sequence gap is not one that a retry of theirs will fill.
    fn after_refusal(
        &mut self,
        stamped: u64,
        first: u64,
        refused: Option<ProtocolError>,
        acked_before: bool,
        transactional: bool,
    ) -> Verdict {
        if stamped < self.number {
            // Sent before a later batch's bump: it follows on in the new
            // epoch, after the batches before it.
            return Verdict::Send;
        }
        let lost = match refused {
            None => return Verdict::Send,
            Some(ProtocolError::OutOfOrderSequenceNumber) if !acked_before => return Verdict::Send,
            Some(ProtocolError::OutOfOrderSequenceNumber | ProtocolError::UnknownProducerId) => {
                true
            }
            // A newer epoch of this producer id than this partition's:
            // another producer, fenced for good.
            Some(_) => false,
        };
        // Sequence 0 of an epoch this producer started itself cannot be
        // out of order: a bump would not mend it.
        let bumped_here = self.number > 0 && first == self.base;
        if !lost || transactional || bumped_here || self.id.epoch == i16::MAX {
            return Verdict::GiveUp;
        }
        self.id.epoch += 1;
        self.number += 1;
        self.base = first;
        Verdict::Send
    }

    fn identity(&self, first: u64, transactional_id: Option<&String>) -> BatchIdentity {
        BatchIdentity {
            producer_id: self.id.id,
            producer_epoch: self.id.epoch,
            base_sequence: sequence_at(first - self.base),
            transactional_id: transactional_id.cloned(),
        }
    }
}

/// The sequencing of one partition's batches.
#[derive(Debug)]
pub(super) struct Sequencing {
    epoch: Mutex<Epoch>,
    transactional_id: Option<String>,
    topic: String,
    partition: i32,
}

impl Sequencing {
    pub(super) fn new(
        id: ProducerId,
        transactional_id: Option<String>,
        topic: &str,
        partition: i32,
    ) -> Self {
        Self {
            epoch: Mutex::new(Epoch {
                id,
                number: 0,
                base: 0,
            }),
            transactional_id,
            topic: topic.to_owned(),
            partition,
        }
    }
}

/// One batch's identity, given before each attempt to send it.
pub(super) struct Stamp {
    pub(super) sequencing: std::sync::Arc<Sequencing>,
    /// The partition's records before the batch.
    pub(super) first: u64,
    /// Until the batches before it have reported.
    pub(super) settled: Settled,
    /// Whether a batch of the partition failed.
    pub(super) failed: watch::Receiver<bool>,
    /// The epoch number it was last stamped with.
    pub(super) stamped: AtomicU64,
}

impl Stamp {
    /// The identity for `attempt`; `None` to fail it with the refusal.
    /// A retry waits until the batches before this one have reported.
    pub(super) async fn identity(&self, attempt: ProduceAttempt) -> Option<BatchIdentity> {
        let s = &self.sequencing;
        if attempt.number > 0 {
            crate::metrics::global()
                .retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let acked_before = self.settled.is_done() && !*self.failed.borrow();
            self.settled.clone().wait().await;
            if *self.failed.borrow() {
                // An earlier batch failed: this one is no longer waited
                // for (it reports as unconfirmed), and never sent again.
                std::future::pending::<()>().await;
            }
            let mut epoch = s.epoch.lock().expect("not poisoned");
            let before = epoch.id.epoch;
            let verdict = epoch.after_refusal(
                self.stamped.load(Ordering::Relaxed),
                self.first,
                attempt.refused,
                acked_before,
                s.transactional_id.is_some(),
            );
            if verdict == Verdict::GiveUp {
                return None;
            }
            if epoch.id.epoch != before {
                warn!(
                    topic = s.topic.as_str(),
                    partition = s.partition,
                    producer_id = epoch.id.id,
                    epoch = epoch.id.epoch,
                    refused = ?attempt.refused,
                    "the leader lost this producer's sequence; starting a new epoch from this batch"
                );
            }
        }
        let epoch = *s.epoch.lock().expect("not poisoned");
        self.stamped.store(epoch.number, Ordering::Relaxed);
        Some(epoch.identity(self.first, s.transactional_id.as_ref()))
    }
}

/// Until every batch of a partition before batch `batch` has reported.
#[derive(Clone)]
pub(super) struct Settled {
    pub(super) reported: watch::Receiver<u64>,
    pub(super) batch: u64,
}

impl Settled {
    /// Whether the batches before this one have reported.
    pub(super) fn is_done(&self) -> bool {
        *self.reported.borrow() >= self.batch
    }

    /// Waits until the batches before this one have reported.
    pub(super) async fn wait(mut self) {
        let batch = self.batch;
        let _ = self.reported.wait_for(|&r| r >= batch).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OOOS: Option<ProtocolError> = Some(ProtocolError::OutOfOrderSequenceNumber);

    fn epoch() -> Epoch {
        Epoch {
            id: ProducerId { id: 7, epoch: 3 },
            number: 0,
            base: 0,
        }
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(sequence_at(5), 5);
        assert_eq!(sequence_at(i32::MAX as u64), i32::MAX);
        assert_eq!(sequence_at(i32::MAX as u64 + 1), 0);
        assert_eq!(sequence_at(i32::MAX as u64 + 3), 2);
    }

    #[test]
    fn a_batch_that_overtook_an_earlier_one_is_sent_again_unchanged() {
        let mut e = epoch();
        assert_eq!(e.after_refusal(0, 100, OOOS, false, false), Verdict::Send);
        assert_eq!(e, epoch());
        assert_eq!(e.after_refusal(0, 100, None, true, false), Verdict::Send);
        assert_eq!(e, epoch());
    }

    #[test]
    fn a_first_batch_refused_by_a_leader_that_knows_the_epoch_bumps_it() {
        // Another producer wrote with this id and epoch.
        let mut e = epoch();
        assert_eq!(e.after_refusal(0, 0, OOOS, true, false), Verdict::Send);
        assert_eq!((e.id.epoch, e.base), (4, 0));
    }

    #[test]
    fn a_gap_after_acknowledged_batches_starts_a_new_epoch_at_the_batch() {
        let mut e = epoch();
        assert_eq!(e.after_refusal(0, 100, OOOS, true, false), Verdict::Send);
        assert_eq!((e.id.epoch, e.number, e.base), (4, 1, 100));
        assert_eq!(e.identity(100, None).base_sequence, 0);
        assert_eq!(e.identity(130, None).base_sequence, 30);
        // A later batch sent in the old epoch follows on in the new one,
        // whatever its refusal said.
        let refused = Some(ProtocolError::InvalidProducerEpoch);
        assert_eq!(e.after_refusal(0, 130, refused, true, false), Verdict::Send);
        assert_eq!((e.id.epoch, e.base), (4, 100));
        // An unknown producer id bumps too.
        let unknown = Some(ProtocolError::UnknownProducerId);
        assert_eq!(e.after_refusal(1, 160, unknown, true, false), Verdict::Send);
        assert_eq!((e.id.epoch, e.number, e.base), (5, 2, 160));
    }

    #[test]
    fn what_a_bump_cannot_mend_fails() {
        // Sequence 0 of an epoch bumped here refused: a second bump
        // would not mend it.
        let mut e = epoch();
        assert_eq!(e.after_refusal(0, 100, OOOS, true, false), Verdict::Send);
        assert_eq!(e.after_refusal(1, 100, OOOS, true, false), Verdict::GiveUp);
        // A transactional producer's transaction fails instead.
        assert_eq!(
            epoch().after_refusal(0, 100, OOOS, true, true),
            Verdict::GiveUp
        );
        // Fenced by a newer epoch of the same producer id.
        let fenced = Some(ProtocolError::InvalidProducerEpoch);
        assert_eq!(
            epoch().after_refusal(0, 100, fenced, true, false),
            Verdict::GiveUp
        );
        let mut last = epoch();
        last.id.epoch = i16::MAX;
        assert_eq!(
            last.after_refusal(0, 100, OOOS, true, false),
            Verdict::GiveUp
        );
    }
}
