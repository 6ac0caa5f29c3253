//! Partial aggregates, the records of a group's internal topic: what an
//! input partition (a *source*) sends the second stage ([`super::merge`])
//! at a checkpoint. One record per internal partition holds the source's
//! partials of the keys that hash there (the Java client's murmur2, as
//! Kafka Streams' repartition topics) and its tick: position, watermark,
//! idle, ended. A large checkpoint is split into several records, the
//! same tick in each.
//!
//! The topic is named after the offsets store and the group
//! ([`crate::offsets::partials_topic`]), so a user never names or
//! creates it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::acc::{AggPlan, Aggs};
use super::state::TOTALS;
use crate::TopicPartition;
use crate::produce::partitioner::murmur2_partition;

/// The version of the partial records.
const PARTIAL_VERSION: u32 = 1;

/// Cells per record at most are sized to stay far below the broker's
/// default `max.message.bytes` (1 MiB).
const RECORD_BYTES: usize = 256 * 1024;

/// The internal partition of `key` (the unparsed bucket: 0).
pub(super) fn partition_for(key: Option<&str>, partitions: i32) -> i32 {
    key.map_or(0, |k| murmur2_partition(k.as_bytes(), partitions))
}

/// One source's partial of one (window, key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Cell {
    /// The window's start; `None` for running totals.
    #[serde(rename = "w")]
    pub(super) start: Option<i64>,
    /// The grouping key; `None` for the unparsed bucket.
    #[serde(rename = "k")]
    pub(super) key: Option<String>,
    /// Records counted.
    #[serde(rename = "n")]
    pub(super) records: u64,
    /// The other aggregates, in their checkpoint form.
    #[serde(rename = "a")]
    pub(super) aggs: Value,
    /// A session's last record's time (`start` is its first's); `None`
    /// for windows and totals.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub(super) end: Option<i64>,
}

impl Cell {
    /// The partial of `key` in the window starting at `start`.
    pub(super) fn new(plan: &AggPlan, start: i64, key: Option<&str>, aggs: &Aggs) -> Self {
        Self {
            start: (start != TOTALS).then_some(start),
            key: key.map(str::to_owned),
            records: aggs.records,
            aggs: plan.save(aggs),
            end: None,
        }
    }

    /// A session of `key` from `start` to `end`, final in its source.
    pub(super) fn session(
        plan: &AggPlan,
        start: i64,
        end: i64,
        key: Option<&str>,
        aggs: &Aggs,
    ) -> Self {
        Self {
            end: Some(end),
            ..Self::new(plan, start, key, aggs)
        }
    }
}

/// A record of the internal topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Partial {
    pub(super) v: u32,
    /// The source: topic and partition.
    pub(super) src: (String, i32),
    /// The source's position: its partials cover the records before it.
    pub(super) pos: i64,
    /// The source's largest record timestamp.
    pub(super) wm: Option<i64>,
    /// The source holds no window back.
    pub(super) idle: bool,
    /// The source reached its stop.
    pub(super) end: bool,
    /// Session windows: the earliest start of the source's sessions that
    /// are still open (none sent yet); `None` when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) open_from: Option<i64>,
    pub(super) cells: Vec<Cell>,
}

impl Partial {
    /// The source partition.
    pub(super) fn source(&self) -> TopicPartition {
        TopicPartition::new(self.src.0.as_str(), self.src.1)
    }

    /// Reads a record's value.
    ///
    /// # Errors
    ///
    /// Not a partial, or one of another version.
    pub(super) fn from_json(bytes: &[u8]) -> Result<Self, PartialError> {
        let partial: Self = serde_json::from_slice(bytes).map_err(PartialError::Unreadable)?;
        if partial.v != PARTIAL_VERSION {
            return Err(PartialError::Version { found: partial.v });
        }
        Ok(partial)
    }
}

/// Where a source stands, for its tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tick {
    pub(super) pos: i64,
    pub(super) wm: Option<i64>,
    pub(super) idle: bool,
    pub(super) end: bool,
    pub(super) open_from: Option<i64>,
}

impl Tick {
    /// What the tick says besides the position: a source sends it to
    /// every internal partition when this changed.
    pub(super) fn stand(&self) -> (Option<i64>, bool, bool, Option<i64>) {
        (self.wm, self.idle, self.end, self.open_from)
    }
}

/// The records `src` sends at a checkpoint: `cells` by the internal
/// partition of their key, each partition's split to stay under
/// [`RECORD_BYTES`], each with `tick`; to every internal partition when
/// `everywhere` (the tick changed), else only where there are cells.
pub(super) fn records(
    src: &TopicPartition,
    tick: Tick,
    cells: Vec<Cell>,
    partitions: i32,
    everywhere: bool,
) -> Vec<(i32, Vec<u8>)> {
    let mut by_partition: std::collections::BTreeMap<i32, Vec<Cell>> = Default::default();
    if everywhere {
        for p in 0..partitions {
            by_partition.insert(p, Vec::new());
        }
    }
    for cell in cells {
        let p = partition_for(cell.key.as_deref(), partitions);
        by_partition.entry(p).or_default().push(cell);
    }
    let mut out = Vec::new();
    let record = |p: i32, cells: Vec<Cell>| {
        let partial = Partial {
            v: PARTIAL_VERSION,
            src: (src.topic.to_string(), src.partition),
            pos: tick.pos,
            wm: tick.wm,
            idle: tick.idle,
            end: tick.end,
            open_from: tick.open_from,
            cells,
        };
        (p, serde_json::to_vec(&partial).unwrap_or_default())
    };
    for (p, cells) in by_partition {
        let mut chunk: Vec<Cell> = Vec::new();
        let mut bytes = 0;
        for cell in cells {
            bytes += cell.key.as_ref().map_or(0, String::len) + cell.aggs.to_string().len() + 32;
            chunk.push(cell);
            if bytes >= RECORD_BYTES {
                out.push(record(p, std::mem::take(&mut chunk)));
                bytes = 0;
            }
        }
        // The last chunk, or the tick alone.
        if !chunk.is_empty() || out.last().is_none_or(|(last, _)| *last != p) {
            out.push(record(p, chunk));
        }
    }
    out
}

/// Why a record of the internal topic, or the second stage's saved state,
/// cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartialError {
    /// Not JSON of the expected shape.
    #[error("unreadable partial aggregates")]
    Unreadable(#[source] serde_json::Error),
    /// Written by another version of weir.
    #[error("partial aggregates of version {found}, this weir reads version {PARTIAL_VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
    /// Saved for other aggregates than this run's.
    #[error(
        "the second stage's state was saved for other aggregates ({saved}); use another group or `weir offsets delete`"
    )]
    OtherAggregates {
        /// The aggregates it was saved for.
        saved: String,
    },
    /// An aggregate's state does not fit the run's aggregates.
    #[error("partial aggregates that do not fit this run's aggregates")]
    Aggregates(#[source] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_go_where_java_puts_their_key_and_ticks_everywhere() {
        let src = TopicPartition::new("in", 3);
        let plan = AggPlan::new(Vec::new());
        let mut aggs = plan.empty();
        aggs.add(&[]);
        let cell = |k: &str| Cell::new(&plan, 60_000, Some(k), &aggs);
        let tick = Tick {
            pos: 10,
            wm: Some(61_000),
            idle: false,
            end: false,
            open_from: None,
        };
        let out = records(&src, tick, vec![cell("INFO"), cell("WARN")], 4, true);
        assert_eq!(out.len(), 4, "a tick to every partition");
        for (p, bytes) in &out {
            let partial = Partial::from_json(bytes).unwrap();
            assert_eq!(partial.source(), src);
            assert_eq!(partial.pos, 10);
            for c in &partial.cells {
                let k = c.key.as_deref().unwrap();
                assert_eq!(*p, murmur2_partition(k.as_bytes(), 4));
            }
        }
        let cells: usize = out
            .iter()
            .map(|(_, b)| Partial::from_json(b).unwrap().cells.len())
            .sum();
        assert_eq!(cells, 2);
        let quiet = records(&src, tick, vec![cell("INFO")], 4, false);
        assert_eq!(quiet.len(), 1, "only where there are cells");
    }

    #[test]
    fn a_large_checkpoint_is_split_under_the_record_size() {
        let src = TopicPartition::new("in", 0);
        let plan = AggPlan::new(Vec::new());
        let aggs = plan.empty();
        let cells: Vec<Cell> = (0..40_000)
            .map(|i| Cell::new(&plan, 0, Some(&format!("key-{i:08}")), &aggs))
            .collect();
        let tick = Tick {
            pos: 1,
            wm: None,
            idle: true,
            end: true,
            open_from: None,
        };
        let out = records(&src, tick, cells, 1, false);
        assert!(out.len() > 1);
        let mut total = 0;
        for (_, bytes) in &out {
            assert!(bytes.len() < 2 * RECORD_BYTES, "{}", bytes.len());
            let partial = Partial::from_json(bytes).unwrap();
            assert!(partial.end && partial.idle, "the tick in every record");
            total += partial.cells.len();
        }
        assert_eq!(total, 40_000);
    }

    #[test]
    fn another_version_is_refused() {
        let bytes =
            br#"{"v":9,"src":["t",0],"pos":1,"wm":null,"idle":false,"end":false,"cells":[]}"#;
        assert!(matches!(
            Partial::from_json(bytes),
            Err(PartialError::Version { found: 9 })
        ));
        assert!(Partial::from_json(b"{}").is_err());
    }
}
