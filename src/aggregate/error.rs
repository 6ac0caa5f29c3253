//! The errors of `weir agg` and `weir count`, and why a partition's saved
//! state cannot be used.

use super::{CountsFormatError, OutputTopicError, RowsRefused};
use crate::TopicPartition;
use crate::job::JobError;
use crate::offsets::{OffsetsError, StateError};

/// Errors of `weir count`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CountError {
    /// Consuming, writing or committing failed.
    #[error(transparent)]
    Job(#[from] JobError),
    /// A partition's saved state cannot be used.
    #[error("group \"{group}\", {at}")]
    State {
        /// The group.
        group: String,
        /// The partition whose state it is.
        at: TopicPartition,
        /// What is wrong with it.
        #[source]
        cause: StateProblem,
    },
    /// The output topic did not take the rows.
    #[error("writing counts to topic \"{topic}\"")]
    Produce {
        /// The output topic.
        topic: String,
        /// Why.
        #[source]
        cause: RowsRefused,
    },
    /// A transaction of the output could not be opened or ended.
    #[error("the output's transaction (nothing after the last checkpoint is committed)")]
    Transaction(#[source] Box<crate::kafka::transaction::TransactionError>),
    /// A rebalance gave the member's partitions to another member before
    /// its checkpoint committed: the checkpoint's transaction is aborted.
    #[error(
        "group \"{group}\": the coordinator refused this member's offsets for generation {generation}: a rebalance gave its partitions to another member"
    )]
    Rebalanced {
        /// The group.
        group: String,
        /// The member's generation.
        generation: i32,
    },
    /// The exactly-once output could not be opened for a generation.
    #[error(transparent)]
    Output(#[from] Box<OutputTopicError>),
    /// An exactly-once output without a group, whose offsets its
    /// transactions commit.
    #[error("an exactly-once output needs a group (-g), whose offsets its transactions commit")]
    ExactlyOnceWithoutGroup,
    /// The group's internal topic could not be found or created.
    #[error("the group's internal topic \"{topic}\"")]
    InternalTopic {
        /// The internal topic.
        topic: String,
        /// Why.
        #[source]
        source: crate::kafka::admin::AdminError,
    },
    /// A windowed run outside the group's membership, of a group whose
    /// members counted in two stages.
    #[error(
        "group \"{group}\" was counted by its members in two stages (its internal topic \"{topic}\" has commits): a run outside the group (-e, --until, --instance, -p, --exclusive) would miss the windows its second stage holds; run it as a member, without those flags, or use another group"
    )]
    TwoStageGroup {
        /// The group.
        group: String,
        /// Its internal topic.
        topic: String,
    },
    /// Partial aggregates to send, and no producer opened for them.
    #[error("no producer for the partial aggregates was opened (a bug in weir)")]
    NoPartialsProducer,
    /// Another instance with the same partitions started since this one.
    #[error(
        "fenced: another instance started with transactional id \"{id}\" since this one did, and took over its partitions; this one stops, and what it left open is aborted"
    )]
    Fenced {
        /// The transactional id.
        id: String,
    },
}

impl CountError {
    pub(crate) fn transaction(e: crate::kafka::transaction::TransactionError) -> Self {
        match e.fenced_id() {
            Some(id) => Self::Fenced { id: id.to_owned() },
            None => Self::Transaction(Box::new(e)),
        }
    }
}

/// Why a partition's saved state cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateProblem {
    /// The state's chunks cannot be put back together.
    #[error(transparent)]
    Chunks(#[from] StateError),
    /// The commit carries no counts: not a `weir count` group.
    #[error(
        "committed offset {offset} carries no counts (was the group used by weir consume?); use another group or `weir offsets delete`"
    )]
    NoCounts {
        /// The committed offset.
        offset: i64,
    },
    /// The counts cannot be read.
    #[error(transparent)]
    Format(#[from] CountsFormatError),
    /// The second stage's state cannot be read.
    #[error(transparent)]
    Merge(#[from] super::PartialError),
}

impl From<OffsetsError> for CountError {
    fn from(e: OffsetsError) -> Self {
        match e {
            OffsetsError::Fenced {
                transactional_id, ..
            } => Self::Fenced {
                id: transactional_id,
            },
            e => Self::Job(e.into()),
        }
    }
}
