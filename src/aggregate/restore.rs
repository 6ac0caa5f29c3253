//! A group's saved counts, read back from the offsets store when a run
//! (or a group member's generation) starts.

use std::collections::BTreeMap;

use super::merge::MergeCounts;
use super::{AggPlan, CountError, PartitionCounts, StateProblem};
use crate::TopicPartition;
use crate::offsets::{GroupOffsets, GroupSession};

/// Saved counts, read back from the offsets store.
#[derive(Debug, Default)]
pub struct Restored {
    pub(super) counts: BTreeMap<TopicPartition, PartitionCounts>,
    /// The second stage's, per partition of the internal topic.
    pub(super) merges: BTreeMap<TopicPartition, MergeCounts>,
}

impl Restored {
    /// Partitions with saved counts.
    pub fn len(&self) -> usize {
        self.counts.len() + self.merges.len()
    }

    /// No saved counts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads the saved counts of `partitions` from `offsets` (the group's
/// commits) through the session, which puts chunked states back together;
/// those of the `internal` topic's partitions are the second stage's.
///
/// # Errors
///
/// [`CountError::State`] for a commit without count state (the group was
/// used by `weir consume`), or a state that is unreadable or misses a
/// chunk.
pub fn restore(
    session: &mut GroupSession,
    offsets: &GroupOffsets,
    partitions: &[TopicPartition],
    plan: &AggPlan,
    internal: Option<&str>,
) -> Result<Restored, CountError> {
    let group = session.group().to_owned();
    let error = |at: TopicPartition, cause: StateProblem| CountError::State {
        group: group.clone(),
        at,
        cause,
    };
    let states = session
        .restore_states(offsets, partitions)
        .map_err(|e| error(e.partition().clone(), e.into()))?;
    let mut restored = Restored::default();
    for (at, state) in states {
        let Some(bytes) = state else {
            let offset = offsets.get(&at).map_or(0, |c| c.offset);
            return Err(error(at, StateProblem::NoCounts { offset }));
        };
        if internal.is_some_and(|t| *at.topic == *t) {
            // Always saved whole: the last piece is the state.
            let last = bytes.last().map_or(&[][..], Vec::as_slice);
            let merge =
                MergeCounts::from_json(last, plan).map_err(|e| error(at.clone(), e.into()))?;
            restored.merges.insert(at, merge);
            continue;
        }
        match PartitionCounts::from_pieces(&bytes, plan) {
            Ok(counts) => restored.counts.insert(at, counts),
            Err(e) => return Err(error(at, e.into())),
        };
    }
    tracing::debug!(
        group = group.as_str(),
        partitions = restored.len(),
        "counts restored"
    );
    Ok(restored)
}
