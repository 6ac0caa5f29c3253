//! One process's commits for a group ([`GroupSession`]): its positions,
//! checkpoints of positions with state (chunked when large), and the
//! commits of other instances on the same partitions ([`Conflict`]).

use std::collections::{BTreeMap, BTreeSet};

use tracing::warn;

use super::codec::{
    ChunkKey, Chunks, Commit, INLINE_BUDGET, OffsetKey, StateChain, StateError, StoreRecord,
    join_state, split_state,
};
use super::store::{CommitFailure, GroupOffsets, OffsetStore, OffsetsError, StoreWriter, apply};
use crate::TopicPartition;
use crate::kafka::membership::Lease;
use crate::read::Until;
use crate::timestamp::now_ms;

/// Another instance committed a partition this one is reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The partition.
    pub partition: TopicPartition,
    /// The other instance.
    pub instance: String,
    /// The offset it committed.
    pub offset: i64,
    /// Whether the other instance started after this one (so it is the
    /// one to yield under `--exclusive`).
    pub started_later: bool,
}

/// One process's commits for a group: what it last committed, and what
/// it has read of the store since, to notice another instance on the
/// same partitions.
#[derive(Debug)]
pub struct GroupSession {
    store: OffsetStore,
    group: String,
    instance: String,
    /// Next store offset not yet looked at.
    read_to: i64,
    /// What this session last committed, per partition.
    committed: BTreeMap<TopicPartition, i64>,
    /// The group's state chunks found at the start, until
    /// [`restore_states`](Self::restore_states) takes them.
    chunks: Chunks,
    /// The chunks each partition's committed state is made of.
    state_chunks: BTreeMap<TopicPartition, Vec<ChunkKey>>,
    /// Each partition's committed state as its commit carries it: the
    /// pieces of its chain (a snapshot, then deltas), for the next delta
    /// to be appended to.
    chains: BTreeMap<TopicPartition, Vec<serde_json::Value>>,
    /// Chunks of restored partitions that no commit refers to (a crash
    /// between chunks and commit, or a failed delete): deleted with the
    /// next state commit.
    orphans: Vec<ChunkKey>,
    /// State commits so far: checkpoint ids are `instance-seq`.
    checkpoint_seq: u64,
    /// When the session began, ms since the epoch.
    started_at: i64,
    /// A group member's hold on its partitions: nothing is written once
    /// it lapsed.
    hold: Option<Lease>,
    /// Other clients' commits of the group on the broker when the session
    /// began, kept with each commit ([`Commit::broker`]).
    broker_seen: BTreeMap<TopicPartition, i64>,
    /// Partitions `weir offsets set --force` moved while this session
    /// held them, with the offset: no longer committed, so that the reset
    /// stands for the run that starts again from it ([`moved`]).
    ///
    /// [`moved`]: Self::moved
    reset: BTreeMap<TopicPartition, i64>,
}

/// How the instance of a commit by `weir offsets set` begins.
pub(crate) const RESET_INSTANCE: &str = "offsets-set:";

/// A partition's next offset and the state kept with it, as JSON bytes,
/// for [`GroupSession::commit_states`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The partition.
    pub partition: TopicPartition,
    /// The next offset to read.
    pub offset: i64,
    /// The state, JSON: the whole of it, or with `delta` what changed
    /// since the last commit of the partition's state.
    pub state: Vec<u8>,
    /// The state is a delta, appended to the partition's committed chain
    /// (a snapshot and the deltas since) rather than replacing it: a
    /// checkpoint then costs what changed, and a restore gets the chain's
    /// pieces in order. Only after a state was committed or restored for
    /// the partition in this session.
    pub delta: bool,
}

/// Per partition with a commit, its saved state (`None`: the commit
/// carries none) as JSON pieces in the order they were committed: the
/// last whole state, then each delta since, from
/// [`GroupSession::restore_states`].
pub type SavedStates = BTreeMap<TopicPartition, Option<Vec<Vec<u8>>>>;

/// A partition's next offset and the state its commit record carries
/// (inline, or which checkpoint's chunks hold it).
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionCommit {
    /// The partition.
    pub partition: TopicPartition,
    /// The next offset to read.
    pub offset: i64,
    /// The state the commit carries, if any.
    pub state: Option<serde_json::Value>,
}

/// A commit of positions with state, for [`GroupSession::checkpoint`].
#[derive(Debug, Default)]
struct Checkpoint {
    /// Per partition: the next offset and the state to keep with it.
    partitions: Vec<PartitionCommit>,
    /// State chunks the commit refers to, written before it.
    chunks: Vec<(ChunkKey, Vec<u8>)>,
    /// Chunks no longer referred to once the commit is acknowledged.
    obsolete: Vec<ChunkKey>,
}

impl GroupSession {
    /// Whether `weir offsets set --force` moved one of this session's
    /// partitions: the job stops committing it and should start again
    /// from the group's commits ([`crate::job::StopReason::Moved`]).
    pub fn moved(&self) -> bool {
        !self.reset.is_empty()
    }

    /// Writes only while `lease` holds: a member's commits stop when its
    /// hold on the partitions lapses, even one that was under way when
    /// the member froze ([`OffsetsError::LeaseLapsed`]).
    pub fn hold_while(&mut self, lease: Lease) {
        self.hold = Some(lease);
    }

    /// Notes the broker's committed offsets of the group made by other
    /// clients, as found when the session began: each later commit of
    /// the partition carries it, so that the next run knows no other
    /// client committed since ([`Commit::broker`]).
    pub fn saw_broker(&mut self, offsets: BTreeMap<TopicPartition, i64>) {
        self.broker_seen = offsets;
    }

    /// Loads `group`'s commits and starts a session as `instance`.
    ///
    /// # Errors
    ///
    /// The store could not be read.
    pub async fn start(
        store: OffsetStore,
        group: &str,
        instance: String,
    ) -> Result<(Self, GroupOffsets), OffsetsError> {
        let started_at = now_ms();
        let partition = store.partition_for(group);
        let mut offsets = GroupOffsets::new();
        let mut chunks = Chunks::new();
        let read_to = store
            .read(
                partition,
                None,
                Until::HighWatermark,
                |record, _| match record {
                    StoreRecord::Commit(key, commit) if key.group == group => {
                        apply(&mut offsets, key, commit);
                    }
                    StoreRecord::Chunk(key, value) if key.group == group => match value {
                        Some(v) => {
                            chunks.insert(key, v);
                        }
                        None => {
                            chunks.remove(&key);
                        }
                    },
                    _ => {}
                },
            )
            .await?;
        let session = Self {
            store,
            group: group.to_owned(),
            instance,
            read_to,
            committed: BTreeMap::new(),
            chunks,
            state_chunks: BTreeMap::new(),
            chains: BTreeMap::new(),
            orphans: Vec::new(),
            checkpoint_seq: 0,
            started_at,
            hold: None,
            broker_seen: BTreeMap::new(),
            reset: BTreeMap::new(),
        };
        Ok((session, offsets))
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// This process's instance id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The store.
    pub fn store(&self) -> &OffsetStore {
        &self.store
    }

    /// What this session last committed for `partition`.
    pub fn committed(&self, partition: &TopicPartition) -> Option<i64> {
        self.committed.get(partition).copied()
    }

    /// The states saved with `offsets` (the group's commits, as
    /// [`start`](Self::start) loaded them) for `partitions`, as the bytes
    /// [`commit_states`](Self::commit_states) was given: inline ones as
    /// they are, chunked ones put back together. A partition without a
    /// commit is absent; one whose commit carries no state maps to `None`.
    /// Called once, at the start: chunks of these partitions that no commit
    /// refers to are deleted with the next state commit.
    ///
    /// # Errors
    ///
    /// [`StateError`] for a chunk that is missing or chunks that do not
    /// add up.
    pub fn restore_states(
        &mut self,
        offsets: &GroupOffsets,
        partitions: &[TopicPartition],
    ) -> Result<SavedStates, StateError> {
        let mut chunks = std::mem::take(&mut self.chunks);
        let mut states = BTreeMap::new();
        for partition in partitions {
            let Some(commit) = offsets.get(partition) else {
                continue;
            };
            let Some(state) = &commit.state else {
                states.insert(partition.clone(), None);
                continue;
            };
            let (pieces, keys) = join_state(&mut chunks, &self.group, partition, state)?;
            if !keys.is_empty() {
                self.state_chunks.insert(partition.clone(), keys);
            }
            let chain = match serde_json::from_value::<StateChain>(state.clone()) {
                Ok(chain) => chain.chain,
                Err(_) => vec![state.clone()],
            };
            self.chains.insert(partition.clone(), chain);
            states.insert(partition.clone(), Some(pieces));
        }
        let ours: BTreeSet<&TopicPartition> = partitions.iter().collect();
        self.orphans = chunks
            .into_keys()
            .filter(|k| ours.contains(&k.partition))
            .collect();
        Ok(states)
    }

    /// Commits each partition's next offset with its state (JSON bytes),
    /// as one checkpoint: states inline while the commit request stays
    /// small, the rest in chunks written before the commit. The chunks
    /// the partitions' previous states were made of, and orphans found by
    /// [`restore_states`](Self::restore_states), are deleted after it.
    /// Returns the conflicts found first, as [`commit`](Self::commit) does.
    /// With `writer`, every record is written inside its transaction.
    ///
    /// # Errors
    ///
    /// The store could not be read or the commit was not acknowledged;
    /// the previous checkpoint then stays in force, and the next call
    /// deletes what this one would have.
    pub async fn commit_states(
        &mut self,
        states: Vec<PartitionState>,
        writer: Option<&mut StoreWriter>,
    ) -> Result<Vec<Conflict>, OffsetsError> {
        self.checkpoint_seq += 1;
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let id = format!("{}-{}", self.instance, self.checkpoint_seq);
        let mut checkpoint = Checkpoint {
            obsolete: self.orphans.clone(),
            ..Checkpoint::default()
        };
        let mut new_chunks: BTreeMap<TopicPartition, Vec<ChunkKey>> = BTreeMap::new();
        let mut new_chains: BTreeMap<TopicPartition, Vec<serde_json::Value>> = BTreeMap::new();
        let mut inline_bytes = 0;
        for PartitionState {
            partition,
            offset,
            state: json,
            delta,
        } in states
        {
            // A delta goes in chunks of its own, so the commit record only
            // grows by a reference per delta; the chain's earlier pieces
            // stay. A whole state replaces the chain.
            let base = self.chains.get(&partition).filter(|_| delta);
            let mut chain = base.cloned().unwrap_or_default();
            let mut keys = match base {
                Some(_) => self
                    .state_chunks
                    .get(&partition)
                    .cloned()
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let piece = if base.is_none() && inline_bytes + json.len() <= INLINE_BUDGET {
                inline_bytes += json.len();
                serde_json::from_slice(&json).unwrap_or_default()
            } else {
                let (piece, pieces) = split_state(&self.group, &partition, &id, &json);
                keys.extend(pieces.iter().map(|(k, _)| k.clone()));
                checkpoint.chunks.extend(pieces);
                piece
            };
            chain.push(piece);
            if base.is_none() {
                if let Some(old) = self.state_chunks.get(&partition) {
                    checkpoint.obsolete.extend(old.iter().cloned());
                }
            }
            let state = match chain.as_slice() {
                [only] => only.clone(),
                _ => serde_json::to_value(StateChain {
                    chain: chain.clone(),
                })
                .unwrap_or_default(),
            };
            new_chunks.insert(partition.clone(), keys);
            new_chains.insert(partition.clone(), chain);
            checkpoint.partitions.push(PartitionCommit {
                partition,
                offset,
                state: Some(state),
            });
        }
        let committed: Vec<_> = checkpoint
            .partitions
            .iter()
            .map(|c| c.partition.clone())
            .collect();
        let conflicts = self.checkpoint(checkpoint, writer).await?;
        self.orphans.clear();
        for partition in committed {
            match new_chunks.remove(&partition).filter(|k| !k.is_empty()) {
                Some(keys) => self.state_chunks.insert(partition.clone(), keys),
                None => self.state_chunks.remove(&partition),
            };
            if let Some(chain) = new_chains.remove(&partition) {
                self.chains.insert(partition, chain);
            }
        }
        Ok(conflicts)
    }

    /// Commits `positions`, the next offsets to read, where they moved
    /// since the last commit (all of them the first time), without state.
    /// First reads what others wrote to the store since the last look and
    /// returns their commits on these partitions as conflicts.
    ///
    /// # Errors
    ///
    /// The store could not be read or the commit was not acknowledged.
    pub async fn commit(
        &mut self,
        positions: &BTreeMap<TopicPartition, i64>,
    ) -> Result<Vec<Conflict>, OffsetsError> {
        self.commit_as(positions, None).await
    }

    /// As [`commit`](Self::commit); with `writer`, the commit is written
    /// inside its transaction, and takes effect when that commits.
    ///
    /// # Errors
    ///
    /// The store could not be read or the commit was not acknowledged.
    pub async fn commit_as(
        &mut self,
        positions: &BTreeMap<TopicPartition, i64>,
        writer: Option<&mut StoreWriter>,
    ) -> Result<Vec<Conflict>, OffsetsError> {
        let partitions = positions
            .iter()
            .filter(|(partition, offset)| self.committed.get(*partition) != Some(*offset))
            .map(|(partition, &offset)| PartitionCommit {
                partition: partition.clone(),
                offset,
                state: None,
            })
            .collect();
        self.checkpoint(
            Checkpoint {
                partitions,
                ..Checkpoint::default()
            },
            writer,
        )
        .await
    }

    /// Writes `checkpoint`: its chunks, then its commits in one request
    /// (so a crash before that leaves the previous commits in force), then
    /// tombstones for the obsolete chunks. Returns the conflicts found
    /// first, as [`commit`](Self::commit) does.
    ///
    /// # Errors
    ///
    /// The store could not be read or the commit was not acknowledged. A
    /// failure to delete obsolete chunks is only logged.
    async fn checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        writer: Option<&mut StoreWriter>,
    ) -> Result<Vec<Conflict>, OffsetsError> {
        let metrics = crate::metrics::global();
        let writes = !checkpoint.partitions.is_empty();
        let started = std::time::Instant::now();
        // One deadline for the whole of it (the look at the store, the
        // chunks, the commits, the tombstones), not one per request: a
        // commit on a lost broker takes `--timeout`, not a multiple.
        let timeout = self.store.timeout();
        let partition = self.store.partition_for(&self.group);
        let written = tokio::time::timeout(timeout, self.write_checkpoint(checkpoint, writer))
            .await
            .unwrap_or_else(|_| {
                Err(OffsetsError::Commit {
                    group: self.group.clone(),
                    partition: TopicPartition::new(self.store.topic(), partition),
                    cause: CommitFailure::NoAcknowledgement { timeout },
                })
            });
        match &written {
            Ok(_) if writes => metrics.commits.observe(started.elapsed()),
            Ok(_) => {}
            Err(_) => metrics.error(crate::metrics::ErrorKind::Commit),
        }
        written
    }

    /// [`checkpoint`](Self::checkpoint) itself.
    async fn write_checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        mut writer: Option<&mut StoreWriter>,
    ) -> Result<Vec<Conflict>, OffsetsError> {
        let partition = self.store.partition_for(&self.group);
        let mut conflicts = Vec::new();
        let mut resets = Vec::new();
        let group = self.group.as_str();
        let instance = self.instance.as_str();
        let started_at = self.started_at;
        let ours: BTreeSet<&TopicPartition> = checkpoint
            .partitions
            .iter()
            .map(|c| &c.partition)
            .chain(self.committed.keys())
            .collect();
        self.read_to = self
            .store
            // Not past the open transactions: this job's own may be one.
            .read(partition, Some(self.read_to), Until::End, |record, _| {
                let StoreRecord::Commit(key, Some(commit)) = record else {
                    return;
                };
                if key.group == group
                    && commit.instance.starts_with(RESET_INSTANCE)
                    && ours.contains(&key.partition)
                {
                    resets.push((key.partition, commit.offset));
                } else if key.group == group
                    && commit.instance != instance
                    && ours.contains(&key.partition)
                {
                    // A commit without a start time is from an older weir,
                    // taken as the earlier one.
                    let started_later = commit
                        .started_at
                        .is_some_and(|t| (t, commit.instance.as_str()) > (started_at, instance));
                    conflicts.push(Conflict {
                        partition: key.partition,
                        instance: commit.instance,
                        offset: commit.offset,
                        started_later,
                    });
                }
            })
            .await?;
        // The read above can take long, or the process be frozen in it:
        // the member's hold is looked at again just before anything is
        // written.
        if self.hold.as_ref().is_some_and(|lease| !lease.valid()) {
            return Err(OffsetsError::LeaseLapsed {
                group: self.group.clone(),
            });
        }
        for (partition, offset) in resets {
            warn!(
                "group \"{}\" topic \"{}\" partition {}: moved to offset {offset} by `weir offsets set --force`; reading on from there",
                self.group, partition.topic, partition.partition
            );
            self.reset.insert(partition, offset);
        }
        let mut checkpoint = checkpoint;
        // A position without state is not committed over a reset (a
        // state's chunks are already made; it is committed as it is).
        checkpoint
            .partitions
            .retain(|c| c.state.is_some() || !self.reset.contains_key(&c.partition));
        if !checkpoint.chunks.is_empty() {
            let chunks = checkpoint
                .chunks
                .into_iter()
                .map(|(key, value)| (key, Some(value)))
                .collect();
            self.store
                .write_chunks(&self.group, chunks, writer.as_deref_mut())
                .await?;
        }
        let now = now_ms();
        let commits: Vec<(OffsetKey, Option<Commit>)> = checkpoint
            .partitions
            .into_iter()
            .map(|c| {
                let key = OffsetKey {
                    group: self.group.clone(),
                    partition: c.partition,
                };
                let commit = Commit {
                    offset: c.offset,
                    committed_at: now,
                    instance: self.instance.clone(),
                    started_at: Some(self.started_at),
                    broker: self.broker_seen.get(&key.partition).copied(),
                    state: c.state,
                };
                (key, Some(commit))
            })
            .collect();
        if let Some(last) = self
            .store
            .commit(&self.group, &commits, writer.as_deref_mut())
            .await?
        {
            // Our own records need no second look.
            self.read_to = self.read_to.max(last + 1);
        }
        for (key, commit) in commits {
            if let Some(c) = commit {
                self.committed.insert(key.partition, c.offset);
            }
        }
        if !checkpoint.obsolete.is_empty() {
            let tombstones = checkpoint
                .obsolete
                .into_iter()
                .map(|key| (key, None))
                .collect();
            if let Err(e) = self
                .store
                .write_chunks(&self.group, tombstones, writer)
                .await
            {
                warn!(error = %crate::ErrorChain(&e), "cannot delete old state chunks; they stay in the offsets topic, unused");
            }
        }
        Ok(conflicts)
    }
}

/// An instance id for this process: host name, process id and a few
/// random bits, so two processes never share one.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weir".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{:05x}", std::process::id(), nanos & 0xfffff)
}
