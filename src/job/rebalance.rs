//! Cooperative rebalances while a job runs (`cooperative-sticky`, KIP-429,
//! and the consumer group protocol, KIP-848): the partitions a member
//! keeps are read on without a pause; only those that move stop.
//!
//! The member's side ([`super::runner`]) hears that the assignment
//! changed, asks the running job to finish with what it gives up
//! ([`Rebalance::Revoke`]: the job loop stops reading them, the job
//! flushes, commits and forgets them), tells the coordinator, and hands
//! the job what it gained ([`Rebalance::Gain`]), opened and resumed from
//! the group's commits, with a session of the offsets store that covers
//! them. A job that cannot change its partitions while it runs (one that
//! keeps state per partition) stops as for any rebalance and starts again
//! on the new assignment.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, oneshot};

use crate::TopicPartition;
use crate::offsets::{GroupOffsets, GroupSession};
use crate::read::{PartitionPosition, PartitionReader};

/// A change of a running job's partitions.
#[derive(Debug)]
pub enum Rebalance {
    /// Finish with these partitions (flush, commit) and stop reading
    /// them; `done` once that is committed.
    Revoke {
        /// The partitions given up.
        partitions: Vec<TopicPartition>,
        /// Told once the job has finished with them.
        done: oneshot::Sender<()>,
    },
    /// Read these partitions too.
    Gain(Box<Gained>),
}

/// Partitions a running job gained.
#[derive(Debug)]
pub struct Gained {
    /// Each partition opened, its start resolved from the group's commits.
    pub fetchers: Vec<(PartitionPosition, PartitionReader)>,
    /// A session of the offsets store that covers every partition the job
    /// holds now, and the commits it found; `None` without a store.
    pub session: Option<(GroupSession, GroupOffsets)>,
}

impl Gained {
    /// Where each gained partition starts.
    pub fn starts(&self) -> BTreeMap<TopicPartition, i64> {
        self.fetchers
            .iter()
            .map(|(p, _)| (p.topic_partition(), p.start))
            .collect()
    }
}

/// The job's end of the changes.
pub type Rebalances = mpsc::Receiver<Rebalance>;

/// The member's end of the changes.
pub type Steering = mpsc::Sender<Rebalance>;

/// A channel for one run's changes.
pub fn channel() -> (Steering, Rebalances) {
    mpsc::channel(1)
}

/// The next change; never without a channel, or once it closed.
pub(crate) async fn next(rebalances: &mut Option<Rebalances>) -> Rebalance {
    match rebalances {
        Some(r) => match r.recv().await {
            Some(change) => change,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
