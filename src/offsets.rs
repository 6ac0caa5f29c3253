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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rskafka::chrono::DateTime;
use rskafka::client::Client;
use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, instrument, warn};

use crate::consume::position::now_ms;
use crate::consume::{Assignment, Consumer, ConsumerConfig, ConsumerEvent, StartOffset, Until};
use crate::kafka::admin::{Admin, AdminError, NewTopic};
use crate::produce::partitioner::murmur2_partition;
use crate::record::ConsumedRecord;

/// The store's topic unless `--offsets-topic` says otherwise.
pub const DEFAULT_OFFSETS_TOPIC: &str = "__weir_offsets";

/// Partitions of a store weir creates, as Kafka's own
/// `offsets.topic.num.partitions` would be for a small cluster.
pub const DEFAULT_OFFSETS_PARTITIONS: i32 = 6;

/// Version of the key and value format.
const FORMAT_VERSION: u8 = 1;

/// Which group, topic and partition a commit belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OffsetKey {
    /// Group.
    pub group: String,
    /// Topic consumed.
    pub topic: String,
    /// Partition consumed.
    pub partition: i32,
}

impl OffsetKey {
    /// The record key: `[1,"group","topic",partition]`.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&(FORMAT_VERSION, &self.group, &self.topic, self.partition))
            .unwrap_or_default()
    }

    /// Reads a record key.
    ///
    /// # Errors
    ///
    /// A description of what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let (version, group, topic, partition): (u8, String, String, i32) =
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable key: {e}"))?;
        if version != FORMAT_VERSION {
            return Err(format!(
                "key format version {version} is not {FORMAT_VERSION}"
            ));
        }
        Ok(Self {
            group,
            topic,
            partition,
        })
    }
}

/// One piece of a state too large for its commit record, written before
/// the commit that references it: key `[1,group,topic,partition,checkpoint,index]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkKey {
    /// Group.
    pub group: String,
    /// Topic consumed.
    pub topic: String,
    /// Partition consumed.
    pub partition: i32,
    /// The checkpoint the chunk belongs to.
    pub checkpoint: String,
    /// Its place among the checkpoint's chunks, from 0.
    pub index: u32,
}

impl ChunkKey {
    /// The record key.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&(
            FORMAT_VERSION,
            &self.group,
            &self.topic,
            self.partition,
            &self.checkpoint,
            self.index,
        ))
        .unwrap_or_default()
    }
}

/// A record of the store, read.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreRecord {
    /// A commit (`None`: deleted).
    Commit(OffsetKey, Option<Commit>),
    /// A state chunk (`None`: deleted).
    Chunk(ChunkKey, Option<Vec<u8>>),
}

/// Chunks of a group's checkpointed state, by key.
type Chunks = BTreeMap<ChunkKey, Vec<u8>>;

/// State chunks are this large.
const CHUNK_BYTES: usize = 256 * 1024;

/// States are inline in their commit records while the commit request
/// stays under this; the rest are chunked.
const INLINE_BUDGET: usize = 256 * 1024;

/// A commit's state when it is in chunks: which checkpoint's, how many,
/// and their total size.
#[derive(Debug, Serialize, Deserialize)]
struct ChunkedState {
    checkpoint: String,
    chunks: u32,
    bytes: usize,
}

/// A produce request to the store stays under this many bytes: brokers
/// reject requests over 1 MiB by default.
pub const MAX_REQUEST_BYTES: usize = 900 * 1024;

/// One committed position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// The next offset to read.
    pub offset: i64,
    /// When it was committed, ms since the epoch.
    pub committed_at: i64,
    /// Which process committed it.
    pub instance: String,
    /// When that process's session began, ms since the epoch: of two
    /// `--exclusive` instances on one partition, the later one yields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// State saved with the offset (aggregation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

/// A group's commits by (topic, partition).
pub type GroupOffsets = BTreeMap<(String, i32), Commit>;

/// How the store is found or created.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The store topic.
    pub topic: String,
    /// Partitions when weir creates it.
    pub partitions: i32,
    /// Whether to create it when missing (readers such as `offsets show`
    /// do not).
    pub create: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            topic: DEFAULT_OFFSETS_TOPIC.to_owned(),
            partitions: DEFAULT_OFFSETS_PARTITIONS,
            create: true,
        }
    }
}

/// Errors of the offsets store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OffsetsError {
    /// The store topic is missing and may not be created.
    #[error("the offsets topic \"{topic}\" does not exist (no group has committed yet)")]
    NoStore {
        /// The store topic.
        topic: String,
    },
    /// Creating or describing the store failed.
    #[error("offsets topic \"{topic}\": {source}")]
    Admin {
        /// The store topic.
        topic: String,
        /// Why.
        #[source]
        source: AdminError,
    },
    /// Reading the store failed.
    #[error("reading offsets topic \"{topic}\" partition {partition}: {reason}")]
    Read {
        /// The store topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Why.
        reason: String,
    },
    /// A commit was not acknowledged.
    #[error(
        "committing group \"{group}\" to offsets topic \"{topic}\" partition {partition} failed: {reason}"
    )]
    Commit {
        /// The group.
        group: String,
        /// The store topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Why.
        reason: String,
    },
}

/// A partition's saved state that cannot be put back together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A chunk the commit refers to is not in the store.
    #[error("chunk {index} of checkpoint {checkpoint} is missing from the offsets topic")]
    MissingChunk {
        /// Topic consumed.
        topic: String,
        /// Partition consumed.
        partition: i32,
        /// The checkpoint the commit refers to.
        checkpoint: String,
        /// The missing chunk's index.
        index: u32,
    },
    /// The chunks do not add up to the size the commit gives.
    #[error("checkpoint {checkpoint} has {found} bytes in its chunks, not {expected}")]
    Length {
        /// Topic consumed.
        topic: String,
        /// Partition consumed.
        partition: i32,
        /// The checkpoint the commit refers to.
        checkpoint: String,
        /// Bytes in the chunks.
        found: usize,
        /// Bytes the commit gives.
        expected: usize,
    },
}

impl StateError {
    /// The topic and partition whose state it is.
    pub fn partition(&self) -> (&str, i32) {
        match self {
            Self::MissingChunk {
                topic, partition, ..
            }
            | Self::Length {
                topic, partition, ..
            } => (topic, *partition),
        }
    }
}

/// The offsets store: a compacted topic of commits.
#[derive(Debug)]
pub struct OffsetStore {
    client: Arc<Client>,
    topic: String,
    partitions: i32,
    /// Partition clients by store partition, opened on first use.
    writers: tokio::sync::Mutex<BTreeMap<i32, Arc<PartitionClient>>>,
    timeout: Duration,
    /// Unreadable records already warned about, by (partition, offset):
    /// a command that reads a store partition more than once (offsets,
    /// then state) warns once.
    warned: std::sync::Mutex<std::collections::BTreeSet<(i32, i64)>>,
}

impl OffsetStore {
    /// Finds the store topic, creating it (compacted) when missing and
    /// `config.create` is set; warns when it exists without compaction.
    ///
    /// # Errors
    ///
    /// [`OffsetsError::NoStore`] when missing and not to be created; admin
    /// errors.
    #[instrument(skip_all, fields(topic = config.topic.as_str()))]
    pub async fn open(
        client: Arc<Client>,
        admin: &mut Admin,
        config: &StoreConfig,
        timeout: Duration,
    ) -> Result<Self, OffsetsError> {
        let admin_error = |source| OffsetsError::Admin {
            topic: config.topic.clone(),
            source,
        };
        let partitions = match admin.describe_topic(&config.topic).await {
            Ok(description) => {
                let policy = description
                    .configs
                    .iter()
                    .find(|c| c.name == "cleanup.policy")
                    .and_then(|c| c.value.clone())
                    .unwrap_or_default();
                if !policy.split(',').any(|p| p.trim() == "compact") {
                    warn!(
                        topic = config.topic.as_str(),
                        policy = policy.as_str(),
                        "the offsets topic is not compacted (cleanup.policy=compact); it will keep every commit"
                    );
                }
                i32::try_from(description.partitions.len()).unwrap_or(i32::MAX)
            }
            Err(AdminError::UnknownTopic { .. }) if config.create => {
                let brokers = admin.broker_count().await.map_err(admin_error)?;
                let topic =
                    NewTopic::compacted_replicated(&config.topic, config.partitions, brokers);
                match admin.create_topic(&topic).await {
                    Ok(()) => info!(
                        topic = config.topic.as_str(),
                        partitions = config.partitions,
                        replication_factor = topic.replication_factor,
                        "created the offsets topic"
                    ),
                    // Another process created it first: fine.
                    Err(AdminError::TopicExists { .. }) => {}
                    Err(e) => return Err(admin_error(e)),
                }
                i32::try_from(
                    admin
                        .partition_count(&config.topic)
                        .await
                        .map_err(admin_error)?,
                )
                .unwrap_or(i32::MAX)
            }
            Err(AdminError::UnknownTopic { .. }) => {
                return Err(OffsetsError::NoStore {
                    topic: config.topic.clone(),
                });
            }
            Err(e) => return Err(admin_error(e)),
        };
        Ok(Self {
            client,
            topic: config.topic.clone(),
            partitions,
            writers: tokio::sync::Mutex::new(BTreeMap::new()),
            timeout,
            warned: std::sync::Mutex::new(std::collections::BTreeSet::new()),
        })
    }

    /// The store topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The store partition holding `group`'s records.
    pub fn partition_for(&self, group: &str) -> i32 {
        murmur2_partition(group.as_bytes(), self.partitions)
    }

    /// `group`'s commits: its store partition read from the earliest
    /// offset to the high watermark at the start of the load.
    ///
    /// # Errors
    ///
    /// The store partition could not be read.
    pub async fn load(&self, group: &str) -> Result<GroupOffsets, OffsetsError> {
        let partition = self.partition_for(group);
        let mut offsets = GroupOffsets::new();
        self.read(partition, None, |record, _| {
            if let StoreRecord::Commit(key, commit) = record {
                if key.group == group {
                    apply(&mut offsets, key, commit);
                }
            }
        })
        .await?;
        Ok(offsets)
    }

    /// Every group's commits (all store partitions).
    ///
    /// # Errors
    ///
    /// A store partition could not be read.
    pub async fn load_all(&self) -> Result<BTreeMap<String, GroupOffsets>, OffsetsError> {
        let mut groups: BTreeMap<String, GroupOffsets> = BTreeMap::new();
        for partition in 0..self.partitions {
            self.read(partition, None, |record, _| {
                if let StoreRecord::Commit(key, commit) = record {
                    let group = groups.entry(key.group.clone()).or_default();
                    apply(group, key, commit);
                }
            })
            .await?;
        }
        groups.retain(|_, offsets| !offsets.is_empty());
        Ok(groups)
    }

    /// Reads store `partition` from `from` (default: earliest) to its high
    /// watermark now, calling `each` with every readable record and its
    /// offset. Returns the next offset.
    async fn read(
        &self,
        partition: i32,
        from: Option<i64>,
        mut each: impl FnMut(StoreRecord, i64),
    ) -> Result<i64, OffsetsError> {
        let failed = |reason: String| OffsetsError::Read {
            topic: self.topic.clone(),
            partition,
            reason,
        };
        let config = ConsumerConfig {
            start: StartOffset::Earliest,
            until: Until::End,
            fetch_max_wait: Duration::from_millis(100),
            retry_timeout: self.timeout,
            ..ConsumerConfig::default()
        };
        let assignment = Assignment {
            topic: Arc::from(self.topic.as_str()),
            partition,
            start: from,
        };
        let mut consumer = Consumer::start(&self.client, vec![assignment], config)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut next = consumer.positions()[0].start;
        while let Some(event) = consumer.next().await {
            match event {
                ConsumerEvent::Records(records) => {
                    for record in records {
                        let offset = record.offset;
                        next = offset + 1;
                        match parse(record) {
                            Ok(record) => each(record, offset),
                            Err(reason) => {
                                let first = self
                                    .warned
                                    .lock()
                                    .map(|mut w| w.insert((partition, offset)))
                                    .unwrap_or(true);
                                if first {
                                    warn!(
                                        topic = self.topic.as_str(),
                                        partition,
                                        offset,
                                        reason = reason.as_str(),
                                        "skipping an unreadable record of the offsets topic"
                                    );
                                }
                            }
                        }
                    }
                }
                ConsumerEvent::Reached { next_offset, .. } => next = next_offset,
                ConsumerEvent::Failed(e) => return Err(failed(e.to_string())),
            }
        }
        Ok(next)
    }

    /// Writes `commits` of `group` in one produce request and waits for
    /// the acknowledgement of all replicas. Returns the store offset of the
    /// last record written.
    ///
    /// # Errors
    ///
    /// [`OffsetsError::Commit`] when the broker did not take them.
    pub async fn commit(
        &self,
        group: &str,
        commits: &[(OffsetKey, Option<Commit>)],
    ) -> Result<Option<i64>, OffsetsError> {
        let records = commits
            .iter()
            .map(|(key, commit)| {
                let value = commit
                    .as_ref()
                    .map(|c| serde_json::to_vec(c).unwrap_or_default());
                (key.encode(), value)
            })
            .collect();
        self.write(group, records, true).await
    }

    /// Writes state chunks (or, with `None`, deletes them), in as many
    /// produce requests as their size needs.
    ///
    /// # Errors
    ///
    /// [`OffsetsError::Commit`] when the broker did not take them.
    pub async fn write_chunks(
        &self,
        group: &str,
        chunks: Vec<(ChunkKey, Option<Vec<u8>>)>,
    ) -> Result<Option<i64>, OffsetsError> {
        let records = chunks
            .into_iter()
            .map(|(key, value)| (key.encode(), value))
            .collect();
        self.write(group, records, false).await
    }

    /// Produces `records` to `group`'s store partition with acks=all: in
    /// one request when `atomic`, else in requests of at most
    /// [`MAX_REQUEST_BYTES`]. Returns the offset of the last one.
    async fn write(
        &self,
        group: &str,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        atomic: bool,
    ) -> Result<Option<i64>, OffsetsError> {
        let partition = self.partition_for(group);
        let failed = |reason: String| OffsetsError::Commit {
            group: group.to_owned(),
            topic: self.topic.clone(),
            partition,
            reason,
        };
        let timestamp = DateTime::from_timestamp_millis(now_ms()).unwrap_or_default();
        let mut requests: Vec<Vec<Record>> = Vec::new();
        let mut bytes = 0;
        for (key, value) in records {
            // Record framing and headers of a batch are well under 100
            // bytes per record.
            let size = key.len() + value.as_ref().map_or(0, Vec::len) + 100;
            if requests.is_empty() || (!atomic && bytes + size > MAX_REQUEST_BYTES) {
                requests.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            requests.last_mut().unwrap_or(&mut Vec::new()).push(Record {
                key: Some(key),
                value,
                headers: Vec::new(),
                timestamp,
            });
        }
        if requests.is_empty() {
            return Ok(None);
        }
        let writer = self.writer(partition).await.map_err(&failed)?;
        let mut last = None;
        for records in requests {
            let count = records.len();
            let offsets = tokio::time::timeout(
                self.timeout,
                writer.produce(records, Compression::NoCompression),
            )
            .await
            .map_err(|_| {
                failed(format!(
                    "no acknowledgement within {} (--timeout)",
                    humantime::format_duration(self.timeout)
                ))
            })?
            .map_err(|e| failed(crate::kafka::connect::client_error_text(&e)))?;
            debug!(
                group,
                records = count,
                partition,
                "written to the offsets topic"
            );
            last = offsets.last().copied().or(last);
        }
        Ok(last)
    }

    async fn writer(&self, partition: i32) -> Result<Arc<PartitionClient>, String> {
        let mut writers = self.writers.lock().await;
        if let Some(w) = writers.get(&partition) {
            return Ok(Arc::clone(w));
        }
        let client = crate::kafka::connect::partition_client_within(
            &self.client,
            &self.topic,
            partition,
            self.timeout,
        )
        .await?;
        let client = Arc::new(client);
        writers.insert(partition, Arc::clone(&client));
        Ok(client)
    }
}

fn apply(offsets: &mut GroupOffsets, key: OffsetKey, commit: Option<Commit>) {
    let at = (key.topic, key.partition);
    match commit {
        Some(c) => {
            offsets.insert(at, c);
        }
        None => {
            offsets.remove(&at);
        }
    }
}

fn parse(record: ConsumedRecord) -> Result<StoreRecord, String> {
    let key = record.key.as_deref().ok_or("no key")?;
    if let Ok((version, group, topic, partition, checkpoint, index)) =
        serde_json::from_slice::<(u8, String, String, i32, String, u32)>(key)
    {
        if version != FORMAT_VERSION {
            return Err(format!(
                "key format version {version} is not {FORMAT_VERSION}"
            ));
        }
        let key = ChunkKey {
            group,
            topic,
            partition,
            checkpoint,
            index,
        };
        return Ok(StoreRecord::Chunk(key, record.value));
    }
    let key = OffsetKey::decode(key)?;
    let commit = match &record.value {
        None => None,
        Some(v) => Some(
            serde_json::from_slice::<Commit>(v).map_err(|e| format!("unreadable value: {e}"))?,
        ),
    };
    Ok(StoreRecord::Commit(key, commit))
}

/// Another instance committed a partition this one is reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
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
    committed: BTreeMap<(Arc<str>, i32), i64>,
    /// The group's state chunks found at the start, until
    /// [`restore_states`](Self::restore_states) takes them.
    chunks: Chunks,
    /// The chunks each partition's committed state is made of.
    state_chunks: BTreeMap<(Arc<str>, i32), Vec<ChunkKey>>,
    /// Chunks of restored partitions that no commit refers to (a crash
    /// between chunks and commit, or a failed delete): deleted with the
    /// next state commit.
    orphans: Vec<ChunkKey>,
    /// State commits so far: checkpoint ids are `instance-seq`.
    checkpoint_seq: u64,
    /// When the session began, ms since the epoch.
    started_at: i64,
}

/// (topic, partition), the next offset, and the state kept with it as
/// JSON bytes, for [`GroupSession::commit_states`].
pub type PartitionState = ((Arc<str>, i32), i64, Vec<u8>);

/// Per (topic, partition) with a commit, its saved state as JSON bytes
/// (`None`: the commit carries none), from
/// [`GroupSession::restore_states`].
pub type SavedStates = BTreeMap<(Arc<str>, i32), Option<Vec<u8>>>;

/// (topic, partition), the next offset, and the state kept with it.
pub type PartitionCommit = ((Arc<str>, i32), i64, Option<serde_json::Value>);

/// A commit of positions with state, for [`GroupSession::checkpoint`].
#[derive(Debug, Default)]
struct Checkpoint {
    /// Per (topic, partition): the next offset and the state to keep with it.
    partitions: Vec<PartitionCommit>,
    /// State chunks the commit refers to, written before it.
    chunks: Vec<(ChunkKey, Vec<u8>)>,
    /// Chunks no longer referred to once the commit is acknowledged.
    obsolete: Vec<ChunkKey>,
}

impl GroupSession {
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
            .read(partition, None, |record, _| match record {
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
            })
            .await?;
        let session = Self {
            store,
            group: group.to_owned(),
            instance,
            read_to,
            committed: BTreeMap::new(),
            chunks,
            state_chunks: BTreeMap::new(),
            orphans: Vec::new(),
            checkpoint_seq: 0,
            started_at,
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
        partitions: &[(Arc<str>, i32)],
    ) -> Result<SavedStates, StateError> {
        let mut chunks = std::mem::take(&mut self.chunks);
        let mut states = BTreeMap::new();
        for at @ (topic, partition) in partitions {
            let Some(commit) = offsets.get(&(topic.to_string(), *partition)) else {
                continue;
            };
            let Some(state) = &commit.state else {
                states.insert(at.clone(), None);
                continue;
            };
            let (bytes, keys) = join_state(&mut chunks, &self.group, at, state)?;
            if !keys.is_empty() {
                self.state_chunks.insert(at.clone(), keys);
            }
            states.insert(at.clone(), Some(bytes));
        }
        let ours: std::collections::BTreeSet<(&str, i32)> =
            partitions.iter().map(|(t, p)| (&**t, *p)).collect();
        self.orphans = chunks
            .into_keys()
            .filter(|k| ours.contains(&(k.topic.as_str(), k.partition)))
            .collect();
        Ok(states)
    }

    /// Commits each partition's next offset with its state (JSON bytes),
    /// as one checkpoint: states inline while the commit request stays
    /// small, the rest in chunks written before the commit. The chunks
    /// the partitions' previous states were made of, and orphans found by
    /// [`restore_states`](Self::restore_states), are deleted after it.
    /// Returns the conflicts found first, as [`commit`](Self::commit) does.
    ///
    /// # Errors
    ///
    /// The store could not be read or the commit was not acknowledged;
    /// the previous checkpoint then stays in force, and the next call
    /// deletes what this one would have.
    pub async fn commit_states(
        &mut self,
        states: Vec<PartitionState>,
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
        let mut new_chunks: BTreeMap<(Arc<str>, i32), Vec<ChunkKey>> = BTreeMap::new();
        let mut inline_bytes = 0;
        for (at, offset, json) in states {
            let state = if inline_bytes + json.len() <= INLINE_BUDGET {
                inline_bytes += json.len();
                serde_json::from_slice(&json).unwrap_or_default()
            } else {
                let (state, pieces) = split_state(&self.group, &at, &id, &json);
                new_chunks.insert(at.clone(), pieces.iter().map(|(k, _)| k.clone()).collect());
                checkpoint.chunks.extend(pieces);
                state
            };
            if let Some(old) = self.state_chunks.get(&at) {
                checkpoint.obsolete.extend(old.iter().cloned());
            }
            checkpoint.partitions.push((at, offset, Some(state)));
        }
        let committed: Vec<_> = checkpoint
            .partitions
            .iter()
            .map(|(at, _, _)| at.clone())
            .collect();
        let conflicts = self.checkpoint(checkpoint).await?;
        self.orphans.clear();
        for at in committed {
            match new_chunks.remove(&at) {
                Some(keys) => self.state_chunks.insert(at, keys),
                None => self.state_chunks.remove(&at),
            };
        }
        Ok(conflicts)
    }

    /// Commits the positions that moved since the last commit (all of
    /// them the first time), with `state` per partition when given. First
    /// reads what others wrote to the store since the last look and
    /// returns their commits on these partitions as conflicts.
    ///
    /// # Errors
    ///
    /// The store could not be read or the commit was not acknowledged.
    pub async fn commit(
        &mut self,
        positions: &BTreeMap<(Arc<str>, i32), i64>,
        mut state: impl FnMut(&str, i32) -> Option<serde_json::Value>,
    ) -> Result<Vec<Conflict>, OffsetsError> {
        let partitions = positions
            .iter()
            .filter(|(at, offset)| self.committed.get(*at) != Some(*offset))
            .map(|(at, &offset)| (at.clone(), offset, state(&at.0, at.1)))
            .collect();
        self.checkpoint(Checkpoint {
            partitions,
            ..Checkpoint::default()
        })
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
    async fn checkpoint(&mut self, checkpoint: Checkpoint) -> Result<Vec<Conflict>, OffsetsError> {
        let partition = self.store.partition_for(&self.group);
        let mut conflicts = Vec::new();
        let group = self.group.as_str();
        let instance = self.instance.as_str();
        let started_at = self.started_at;
        let ours: std::collections::BTreeSet<(&str, i32)> = checkpoint
            .partitions
            .iter()
            .map(|((topic, partition), _, _)| (&**topic, *partition))
            .chain(self.committed.keys().map(|(t, p)| (&**t, *p)))
            .collect();
        self.read_to = self
            .store
            .read(partition, Some(self.read_to), |record, _| {
                let StoreRecord::Commit(key, Some(commit)) = record else {
                    return;
                };
                if key.group == group
                    && commit.instance != instance
                    && ours.contains(&(key.topic.as_str(), key.partition))
                {
                    // A commit without a start time is from an older weir,
                    // taken as the earlier one.
                    let started_later = commit
                        .started_at
                        .is_some_and(|t| (t, commit.instance.as_str()) > (started_at, instance));
                    conflicts.push(Conflict {
                        topic: key.topic,
                        partition: key.partition,
                        instance: commit.instance,
                        offset: commit.offset,
                        started_later,
                    });
                }
            })
            .await?;
        if !checkpoint.chunks.is_empty() {
            let chunks = checkpoint
                .chunks
                .into_iter()
                .map(|(key, value)| (key, Some(value)))
                .collect();
            self.store.write_chunks(&self.group, chunks).await?;
        }
        let now = now_ms();
        let commits: Vec<(OffsetKey, Option<Commit>)> = checkpoint
            .partitions
            .into_iter()
            .map(|((topic, partition), offset, state)| {
                let key = OffsetKey {
                    group: self.group.clone(),
                    topic: topic.to_string(),
                    partition,
                };
                let commit = Commit {
                    offset,
                    committed_at: now,
                    instance: self.instance.clone(),
                    started_at: Some(self.started_at),
                    state,
                };
                (key, Some(commit))
            })
            .collect();
        if let Some(last) = self.store.commit(&self.group, &commits).await? {
            // Our own records need no second look.
            self.read_to = self.read_to.max(last + 1);
        }
        for (key, commit) in commits {
            if let Some(c) = commit {
                self.committed
                    .insert((Arc::from(key.topic.as_str()), key.partition), c.offset);
            }
        }
        if !checkpoint.obsolete.is_empty() {
            let tombstones = checkpoint
                .obsolete
                .into_iter()
                .map(|key| (key, None))
                .collect();
            if let Err(e) = self.store.write_chunks(&self.group, tombstones).await {
                warn!(error = %e, "cannot delete old state chunks; they stay in the offsets topic, unused");
            }
        }
        Ok(conflicts)
    }
}

/// Splits `json`, the state of `at` in checkpoint `id`, into chunks:
/// returns the state its commit carries instead (a [`ChunkedState`]) and
/// the chunks, to be written before that commit.
fn split_state(
    group: &str,
    at: &(Arc<str>, i32),
    id: &str,
    json: &[u8],
) -> (serde_json::Value, Vec<(ChunkKey, Vec<u8>)>) {
    let pieces: Vec<_> = json
        .chunks(CHUNK_BYTES)
        .enumerate()
        .map(|(index, piece)| {
            let key = ChunkKey {
                group: group.to_owned(),
                topic: at.0.to_string(),
                partition: at.1,
                checkpoint: id.to_owned(),
                index: u32::try_from(index).unwrap_or(u32::MAX),
            };
            (key, piece.to_vec())
        })
        .collect();
    let chunked = ChunkedState {
        checkpoint: id.to_owned(),
        chunks: u32::try_from(pieces.len()).unwrap_or(u32::MAX),
        bytes: json.len(),
    };
    (serde_json::to_value(chunked).unwrap_or_default(), pieces)
}

/// The bytes of `state`, the state a commit of `at` carries: an inline
/// one as it is, a [`ChunkedState`] put back together from `chunks`
/// (which it takes, and whose keys it returns).
fn join_state(
    chunks: &mut Chunks,
    group: &str,
    at: &(Arc<str>, i32),
    state: &serde_json::Value,
) -> Result<(Vec<u8>, Vec<ChunkKey>), StateError> {
    let Ok(chunked) = serde_json::from_value::<ChunkedState>(state.clone()) else {
        return Ok((serde_json::to_vec(state).unwrap_or_default(), Vec::new()));
    };
    let (topic, partition) = (at.0.to_string(), at.1);
    let mut bytes = Vec::with_capacity(chunked.bytes);
    let mut keys = Vec::new();
    for index in 0..chunked.chunks {
        let key = ChunkKey {
            group: group.to_owned(),
            topic: topic.clone(),
            partition,
            checkpoint: chunked.checkpoint.clone(),
            index,
        };
        let chunk = chunks
            .remove(&key)
            .ok_or_else(|| StateError::MissingChunk {
                topic: topic.clone(),
                partition,
                checkpoint: chunked.checkpoint.clone(),
                index,
            })?;
        bytes.extend_from_slice(&chunk);
        keys.push(key);
    }
    if bytes.len() != chunked.bytes {
        return Err(StateError::Length {
            topic,
            partition,
            checkpoint: chunked.checkpoint,
            found: bytes.len(),
            expected: chunked.bytes,
        });
    }
    Ok((bytes, keys))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_any_name() {
        for (group, topic) in [
            ("g", "t"),
            ("a/b\\c\"d", "topic.with-dots_and"),
            ("grüße 🚀", "t"),
            ("", "x"),
            ("[1,\"g\",\"t\",0]", "y"),
        ] {
            let key = OffsetKey {
                group: group.to_owned(),
                topic: topic.to_owned(),
                partition: 7,
            };
            assert_eq!(OffsetKey::decode(&key.encode()).unwrap(), key);
        }
        let key = OffsetKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(key.encode(), br#"[1,"g","t",3]"#);
        assert!(OffsetKey::decode(br#"[2,"g","t",3]"#).is_err());
        assert!(OffsetKey::decode(b"garbage").is_err());
    }

    #[test]
    fn keys_of_different_groups_never_collide() {
        // A separator-based key would make these two equal.
        let a = OffsetKey {
            group: "a,b".into(),
            topic: "c".into(),
            partition: 0,
        };
        let b = OffsetKey {
            group: "a".into(),
            topic: "b,c".into(),
            partition: 0,
        };
        assert_ne!(a.encode(), b.encode());
    }

    #[test]
    fn last_record_wins_and_null_deletes() {
        let mut offsets = GroupOffsets::new();
        let key = || OffsetKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        };
        let commit = |offset| Commit {
            offset,
            committed_at: 0,
            instance: "i".into(),
            started_at: None,
            state: None,
        };
        apply(&mut offsets, key(), Some(commit(5)));
        apply(&mut offsets, key(), Some(commit(9)));
        assert_eq!(offsets[&("t".to_owned(), 0)].offset, 9);
        apply(&mut offsets, key(), None);
        assert!(offsets.is_empty());
    }

    #[test]
    fn a_chunked_state_comes_back_byte_for_byte() {
        let at = (Arc::from("t"), 3);
        // JSON larger than two chunks, with multi-byte text across a cut.
        let text = "é".repeat(CHUNK_BYTES);
        let json = serde_json::to_vec(&serde_json::json!({ "k": text })).unwrap();
        let (state, pieces) = split_state("g", &at, "i-7", &json);
        assert_eq!(pieces.len(), 3);
        assert_eq!(
            state,
            serde_json::json!({"checkpoint": "i-7", "chunks": 3, "bytes": json.len()})
        );
        let keys: Vec<_> = pieces.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys[2].encode(),
            br#"[1,"g","t",3,"i-7",2]"#,
            "chunk keys name group, topic, partition, checkpoint and index"
        );
        let mut chunks: Chunks = pieces.into_iter().collect();
        let (bytes, used) = join_state(&mut chunks, "g", &at, &state).unwrap();
        assert_eq!(bytes, json);
        assert_eq!(used, keys);
        assert!(chunks.is_empty(), "the chunks used are taken");

        // An inline state is the commit's JSON itself.
        let inline = serde_json::json!({"n": 3});
        let (bytes, used) = join_state(&mut Chunks::new(), "g", &at, &inline).unwrap();
        assert_eq!(bytes, br#"{"n":3}"#);
        assert!(used.is_empty());
    }

    #[test]
    fn a_missing_or_short_chunk_is_an_error_naming_it() {
        let at = (Arc::from("t"), 0);
        let json = vec![b'1'; CHUNK_BYTES + 10];
        let (state, pieces) = split_state("g", &at, "i-1", &json);
        let mut missing: Chunks = pieces.iter().skip(1).cloned().collect();
        let err = join_state(&mut missing, "g", &at, &state).unwrap_err();
        assert_eq!(
            err.to_string(),
            "chunk 0 of checkpoint i-1 is missing from the offsets topic"
        );
        assert_eq!(err.partition(), ("t", 0));
        let mut short: Chunks = pieces.into_iter().collect();
        short.values_mut().last().unwrap().pop();
        let err = join_state(&mut short, "g", &at, &state).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "checkpoint i-1 has {} bytes in its chunks, not {}",
                json.len() - 1,
                json.len()
            )
        );
    }

    #[test]
    fn commit_values_are_json_with_optional_state() {
        let c = Commit {
            offset: 42,
            committed_at: 1_700_000_000_000,
            instance: "host-1-abc".into(),
            started_at: None,
            state: None,
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"offset":42,"committed_at":1700000000000,"instance":"host-1-abc"}"#
        );
        let with_state: Commit =
            serde_json::from_str(r#"{"offset":1,"committed_at":2,"instance":"i","state":{"n":3}}"#)
                .unwrap();
        assert_eq!(with_state.state, Some(serde_json::json!({"n": 3})));
    }
}
