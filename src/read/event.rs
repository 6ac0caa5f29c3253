//! What a [`Consumer`](super::Consumer)'s stream yields.

use std::sync::Arc;

use super::error::ConsumeError;
use crate::record::ConsumedRecord;

/// What the stream yields.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConsumerEvent {
    /// Records of one partition, in offset order.
    Records(Vec<ConsumedRecord>),
    /// A partition reached its stop; `next_offset` is where it stopped.
    Reached {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// The next offset to read.
        next_offset: i64,
    },
    /// A fetch answered that a partition has nothing more to read for
    /// now: it is at the end of its log (for the isolation level). Sent
    /// when it gets there, again only after records came since. Never
    /// for a partition read to an offset ([`Until::End`]): short of it,
    /// records are left; there, it has [`Reached`](Self::Reached) it.
    ///
    ///
    /// `next_offset` is the position a caught-up consumer commits: past
    /// the last record delivered and any transaction markers or aborted
    /// records after it, as the Java consumer's `position()`, so a group
    /// at the end of a transactional topic shows a lag of 0.
    ///
    /// [`Until::End`]: super::Until::End
    CaughtUp {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// The next offset to read.
        next_offset: i64,
    },
    /// A partition failed and stopped.
    Failed(ConsumeError),
}
