//! Consumer-group offsets kept as records in a compacted topic that weir
//! owns (`__weir_offsets`), since rskafka has no offset-commit API and
//! weir has no group protocol.
//!
//! - Created when missing, compacted and replicated as Kafka's own
//!   `__consumer_offsets` ([`NewTopic::compacted_replicated`]), so commits
//!   outlive a broker.
//! - A group's records all live on partition `murmur2(group) % P` of the
//!   store, so loading a group reads one partition, from its earliest
//!   offset to the high watermark taken when loading starts.
//! - Key: the JSON array `[1, group, topic, partition]` (format version
//!   first). JSON escaping makes it unambiguous for any group or topic
//!   name, and it reads well in any console consumer.
//! - Value: a JSON [`Commit`]: the next offset to read, the commit time,
//!   the committing instance and optional state. A null value deletes.
//! - The last record per key wins, so loading gives the same answer
//!   before and after the broker compacts the topic.
//! - A commit is one produce request with `acks=all` for all of a group's
//!   partitions; it counts only once acknowledged.
//! - State saved with an offset (`weir count`'s counts) is inline in the
//!   commit while the request stays small. A larger state is written first
//!   as chunks, keyed `[1, group, topic, partition, checkpoint, index]`,
//!   and the commit that follows refers to them by checkpoint id; a crash
//!   between the two leaves the previous commit, and its chunks, in force.
//!   Chunks of a replaced checkpoint are deleted (tombstones) after the
//!   commit. [`GroupSession::restore_states`] and
//!   [`GroupSession::commit_states`] are the whole protocol: a job hands
//!   over its state as bytes and gets the same bytes back.
//!
//! Records weir cannot read are skipped with a warning naming their
//! offset; they never stop a load.
//!
//! Its files, from the records up:
//!
//! - `codec`: the records: keys ([`OffsetKey`], [`ChunkKey`]), commit
//!   values ([`Commit`]), and a state split into chunks and joined back.
//! - `store`: the topic ([`OffsetStore`]): found or created, read from a
//!   partition's start or from an offset, written with acks=all.
//! - `session`: one process's commits for a group ([`GroupSession`]): what
//!   it committed, other instances' commits ([`Conflict`]), and the
//!   checkpoints of positions with state.
//! - [`group`]: joining a group and `weir offsets set` and `delete`.
//!
//! A group also has offsets on the broker (those of the Java consumer,
//! librdkafka, `kafka-consumer-groups`, and weir's mirrored commits):
//! [`group::join`] resumes each partition from weir's commit or the
//! broker's, whichever is newer ([`group::resume_from`]), and
//! [`report`] shows, moves and deletes both.
//!
//! [`NewTopic::compacted_replicated`]: crate::kafka::admin::NewTopic::compacted_replicated

mod codec;
pub mod group;
pub mod report;
mod session;
mod store;

pub use codec::{ChunkKey, Commit, OffsetKey, RecordError, StateError, StoreRecord};
pub use session::{
    Conflict, GroupSession, PartitionCommit, PartitionState, SavedStates, instance_id,
};
pub use store::{
    CommitFailure, GroupOffsets, MAX_REQUEST_BYTES, OffsetStore, OffsetsError, StoreConfig,
    StoreWriter,
};

/// The store's topic unless `--offsets-topic` says otherwise.
pub const DEFAULT_OFFSETS_TOPIC: &str = "__weir_offsets";

/// Partitions of a store weir creates, as Kafka's own
/// `offsets.topic.num.partitions` would be for a small cluster.
pub const DEFAULT_OFFSETS_PARTITIONS: i32 = 6;

/// The internal topic of `group`'s aggregation in the offsets store
/// `store`: `<store>-<group>-partials`, with characters a topic name
/// cannot hold replaced by `_`.
pub fn partials_topic(store: &str, group: &str) -> String {
    let name: String = format!("{store}-{group}-partials")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    name
}

#[cfg(test)]
mod naming_tests {
    use super::partials_topic;

    #[test]
    fn the_internal_topic_is_named_after_the_store_and_the_group() {
        assert_eq!(
            partials_topic("__weir_offsets", "logs"),
            "__weir_offsets-logs-partials"
        );
        assert_eq!(partials_topic("s", "a b/c"), "s-a_b_c-partials");
    }
}
