//! What a share-group member holds and owes, with no I/O: the records of
//! one ShareFetch answer that the member acquired (with their delivery
//! counts), the offsets it acquired that hold no record (gaps: control
//! records, compacted or aborted offsets), and the acknowledgements it
//! owes per partition, coalesced into the batches ShareFetch and
//! ShareAcknowledge carry.

use std::collections::BTreeMap;
use std::sync::Arc;

use rskafka::record::RecordAndOffset;

use crate::record::{ConsumedRecord, TimestampType};

/// How a record is acknowledged (KIP-932's acknowledge types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AckKind {
    /// An acquired offset that holds no record.
    Gap,
    /// Processed: never delivered again.
    Accept,
    /// Given back unprocessed: delivered again, to any member.
    Release,
    /// Unprocessable: archived, never delivered again.
    Reject,
}

impl AckKind {
    /// The type's number on the wire (0 gap, 1 accept, 2 release, 3
    /// reject).
    pub fn code(self) -> i8 {
        match self {
            Self::Gap => 0,
            Self::Accept => 1,
            Self::Release => 2,
            Self::Reject => 3,
        }
    }
}

/// A range of offsets the broker says the member acquired, and how often
/// they were delivered (1 the first time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquiredRange {
    /// The first offset.
    pub first: i64,
    /// The last offset, inclusive.
    pub last: i64,
    /// How often these records were delivered, this time included.
    pub delivery_count: i16,
}

/// One acquired record and its delivery count.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The record.
    pub record: ConsumedRecord,
    /// How often it was delivered, this time included.
    pub delivery_count: i16,
}

/// The records of `fetched` that fall in `acquired` (the others are
/// another member's), in offset order, and the acquired offsets with no
/// record among them (to be acknowledged as gaps).
pub fn acquired(
    topic: &Arc<str>,
    partition: i32,
    fetched: Vec<RecordAndOffset>,
    acquired: &[AcquiredRange],
) -> (Vec<Delivered>, Vec<i64>) {
    let mut by_offset: BTreeMap<i64, RecordAndOffset> =
        fetched.into_iter().map(|r| (r.offset, r)).collect();
    let mut records = Vec::new();
    let mut gaps = Vec::new();
    for range in acquired {
        for offset in range.first..=range.last {
            match by_offset.remove(&offset) {
                Some(r) => records.push(Delivered {
                    record: ConsumedRecord {
                        topic: Arc::clone(topic),
                        partition,
                        offset,
                        timestamp_ms: r.record.timestamp.timestamp_millis(),
                        timestamp_type: if r.log_append_time {
                            TimestampType::LogAppendTime
                        } else {
                            TimestampType::CreateTime
                        },
                        key: r.record.key,
                        value: r.record.value,
                        headers: r.record.headers,
                        decoded: Default::default(),
                    },
                    delivery_count: range.delivery_count,
                }),
                None => gaps.push(offset),
            }
        }
    }
    records.sort_by_key(|d| d.record.offset);
    (records, gaps)
}

/// One acknowledgement batch: offsets `first..=last`, all of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckBatch {
    /// The first offset.
    pub first: i64,
    /// The last offset, inclusive.
    pub last: i64,
    /// How they are acknowledged.
    pub kind: AckKind,
}

/// Acknowledgements owed for one partition, by offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acks {
    by_offset: BTreeMap<i64, AckKind>,
}

impl Acks {
    /// Owes `kind` for `offset` (a later call for the same offset wins).
    pub fn add(&mut self, offset: i64, kind: AckKind) {
        self.by_offset.insert(offset, kind);
    }

    /// Whether nothing is owed.
    pub fn is_empty(&self) -> bool {
        self.by_offset.is_empty()
    }

    /// How many offsets of `kind` are owed.
    pub fn count(&self, kind: AckKind) -> u64 {
        self.by_offset.values().filter(|&&k| k == kind).count() as u64
    }

    /// The owed acknowledgements as batches of consecutive offsets of one
    /// kind, in offset order.
    pub fn batches(&self) -> Vec<AckBatch> {
        let mut batches: Vec<AckBatch> = Vec::new();
        for (&offset, &kind) in &self.by_offset {
            match batches.last_mut() {
                Some(b) if b.kind == kind && b.last + 1 == offset => b.last = offset,
                _ => batches.push(AckBatch {
                    first: offset,
                    last: offset,
                    kind,
                }),
            }
        }
        batches
    }

    /// Every owed acknowledgement that is not yet final becomes `kind`
    /// (used to release what was not written at a stop); gaps stay gaps.
    pub fn turn_all(&mut self, kind: AckKind) {
        for k in self.by_offset.values_mut() {
            if *k != AckKind::Gap {
                *k = kind;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rskafka::chrono::{TimeZone, Utc};
    use rskafka::record::Record;

    fn fetched(offsets: &[i64]) -> Vec<RecordAndOffset> {
        offsets
            .iter()
            .map(|&offset| RecordAndOffset {
                record: Record {
                    key: None,
                    value: Some(offset.to_string().into_bytes()),
                    headers: Vec::new(),
                    timestamp: Utc.timestamp_millis_opt(1_000).unwrap(),
                },
                offset,
                log_append_time: false,
            })
            .collect()
    }

    #[test]
    fn only_acquired_offsets_are_delivered_and_missing_ones_are_gaps() {
        let topic: Arc<str> = Arc::from("t");
        let ranges = [
            AcquiredRange {
                first: 2,
                last: 4,
                delivery_count: 1,
            },
            AcquiredRange {
                first: 6,
                last: 7,
                delivery_count: 3,
            },
        ];
        // 0-1 and 5 are another member's; 3 is a control record.
        let (records, gaps) = acquired(&topic, 0, fetched(&[0, 1, 2, 4, 5, 6, 7]), &ranges);
        let got: Vec<(i64, i16)> = records
            .iter()
            .map(|d| (d.record.offset, d.delivery_count))
            .collect();
        assert_eq!(got, [(2, 1), (4, 1), (6, 3), (7, 3)]);
        assert_eq!(gaps, [3]);
    }

    #[test]
    fn acknowledgements_coalesce_into_runs_of_one_kind() {
        let mut acks = Acks::default();
        for offset in [5, 6, 7, 9] {
            acks.add(offset, AckKind::Accept);
        }
        acks.add(8, AckKind::Gap);
        acks.add(10, AckKind::Reject);
        acks.add(11, AckKind::Accept);
        let batch = |first, last, kind| AckBatch { first, last, kind };
        assert_eq!(
            acks.batches(),
            [
                batch(5, 7, AckKind::Accept),
                batch(8, 8, AckKind::Gap),
                batch(9, 9, AckKind::Accept),
                batch(10, 10, AckKind::Reject),
                batch(11, 11, AckKind::Accept),
            ]
        );
        assert_eq!(acks.count(AckKind::Accept), 5);
        acks.turn_all(AckKind::Release);
        assert_eq!(
            acks.batches(),
            [
                batch(5, 7, AckKind::Release),
                batch(8, 8, AckKind::Gap),
                batch(9, 11, AckKind::Release),
            ]
        );
    }
}
