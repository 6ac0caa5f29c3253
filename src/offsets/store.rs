//! The store: a compacted topic of commits, found or created, read from a
//! partition's start (or an offset) to its high watermark, and written
//! with acks=all.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rskafka::chrono::DateTime;
use rskafka::client::Client;
use rskafka::client::partition::{BatchIdentity, Compression, EncodedBatch, PartitionClient};
use rskafka::record::Record;
use tracing::{debug, info, instrument, warn};

use super::codec::{ChunkKey, Commit, OffsetKey, StoreRecord, parse};
use super::{DEFAULT_OFFSETS_PARTITIONS, DEFAULT_OFFSETS_TOPIC};
use crate::kafka::admin::{Admin, AdminError, NewTopic};
use crate::kafka::connect::{ClientError, LeaderLookupError};
use crate::kafka::idempotence::ProducerId;
use crate::produce::partitioner::murmur2_partition;
use crate::read::{
    Assignment, ConsumeError, Consumer, ConsumerConfig, ConsumerEvent, StartOffset, Until,
};
use crate::timestamp::now_ms;
use crate::{ErrorChain, TopicPartition};

/// A produce request to the store stays under this many bytes: brokers
/// reject requests over 1 MiB by default.
pub const MAX_REQUEST_BYTES: usize = 900 * 1024;

/// A group's commits by partition.
pub type GroupOffsets = BTreeMap<TopicPartition, Commit>;

/// How the store is found or created.
#[derive(Debug, Clone)]
#[non_exhaustive]
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

/// `with_*` builders, each setting the field of its name.
impl StoreConfig {
    /// With [`topic`](Self::topic) (`--offsets-topic`).
    #[must_use]
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// With [`partitions`](Self::partitions) (`--offsets-partitions`).
    #[must_use]
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = partitions;
        self
    }

    /// With [`create`](Self::create).
    #[must_use]
    pub fn with_create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }
}

/// Errors of the offsets store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OffsetsError {
    /// A group member's hold on its partitions lapsed while it committed
    /// (it was frozen past its session, or cut off from its coordinator):
    /// the commit is not written, since the partitions may be another
    /// member's by now.
    #[error(
        "group \"{group}\": this member's hold on its partitions lapsed before its commit was written (they may be another member's by now)"
    )]
    LeaseLapsed {
        /// The group.
        group: String,
    },
    /// The store topic is missing and may not be created.
    #[error("the offsets topic \"{topic}\" does not exist (no group has committed yet)")]
    NoStore {
        /// The store topic.
        topic: String,
    },
    /// Creating or describing the store failed.
    #[error("offsets topic \"{topic}\"")]
    Admin {
        /// The store topic.
        topic: String,
        /// Why.
        #[source]
        source: AdminError,
    },
    /// Reading the store failed.
    #[error("reading offsets {partition}")]
    Read {
        /// The store partition.
        partition: TopicPartition,
        /// Why (boxed: a consumer's error is large).
        #[source]
        source: Box<ConsumeError>,
    },
    /// A commit was not acknowledged.
    #[error("committing group \"{group}\" to offsets {partition} failed")]
    Commit {
        /// The group.
        group: String,
        /// The store partition.
        partition: TopicPartition,
        /// Why: no leader, no acknowledgement in time, or the broker's
        /// refusal.
        #[source]
        cause: CommitFailure,
    },
    /// A commit inside a transaction was refused because a newer producer
    /// of its transactional id started: the writer is fenced.
    #[error(
        "committing group \"{group}\" to offsets {partition} failed: fenced by a newer producer of transactional id \"{transactional_id}\""
    )]
    Fenced {
        /// The group.
        group: String,
        /// The store partition.
        partition: TopicPartition,
        /// The writer's transactional id.
        transactional_id: String,
    },
}

/// Why a commit to the store was not acknowledged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitFailure {
    /// The store partition's leader could not be found.
    #[error(transparent)]
    Leader(#[from] LeaderLookupError),
    /// No acknowledgement came by the deadline.
    #[error("no acknowledgement within {} (--timeout)", humantime::format_duration(*.timeout))]
    NoAcknowledgement {
        /// The deadline.
        timeout: Duration,
    },
    /// The broker refused the records.
    #[error(transparent)]
    Refused(ClientError),
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
                let created = admin
                    .create_topic_if_missing(&topic)
                    .await
                    .map_err(admin_error)?;
                if created {
                    info!(
                        topic = config.topic.as_str(),
                        partitions = config.partitions,
                        replication_factor = topic.replication_factor,
                        "created the offsets topic"
                    );
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

    /// The deadline of each of its requests (`--timeout`).
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
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
    /// offset to the high watermark at the start of the load, waiting for
    /// the transactions open below it to end (see `read`).
    ///
    /// # Errors
    ///
    /// The store partition could not be read.
    pub async fn load(&self, group: &str) -> Result<GroupOffsets, OffsetsError> {
        let partition = self.partition_for(group);
        let mut offsets = GroupOffsets::new();
        self.read(partition, None, Until::HighWatermark, |record, _| {
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
            self.read(partition, None, Until::End, |record, _| {
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

    /// Reads store `partition` from `from` (default: earliest) to its end
    /// now, calling `each` with every committed record and its offset.
    /// Returns the next offset.
    ///
    /// Records written in a transaction (by `weir pipe --exactly-once`
    /// and `weir count --exactly-once`) are read once it commits, never
    /// when it aborts. [`Until::HighWatermark`] waits for the transactions
    /// open below the high watermark to end (another instance's, ending at
    /// its next checkpoint, or a dead one's, aborted by the coordinator
    /// after the transaction timeout): what a job resumes from must hold
    /// every commit made before it started, including those past an open
    /// transaction. [`Until::End`] stops at the last stable offset.
    pub(super) async fn read(
        &self,
        partition: i32,
        from: Option<i64>,
        until: Until,
        mut each: impl FnMut(StoreRecord, i64),
    ) -> Result<i64, OffsetsError> {
        let failed = |source: ConsumeError| OffsetsError::Read {
            partition: TopicPartition::new(self.topic.as_str(), partition),
            source: Box::new(source),
        };
        let config = ConsumerConfig {
            start: StartOffset::Earliest,
            until,
            fetch_max_wait: Duration::from_millis(100),
            retry_timeout: self.timeout,
            metered: false,
            ..ConsumerConfig::default()
        };
        let assignment = Assignment {
            topic: Arc::from(self.topic.as_str()),
            partition,
            start: from,
        };
        let mut consumer = Consumer::start(&self.client, vec![assignment], config)
            .await
            .map_err(failed)?;
        let mut next = consumer.positions()[0].start;
        while let Some(event) = consumer.next().await {
            match event {
                ConsumerEvent::Records(records) => {
                    for record in records {
                        let offset = record.offset;
                        next = offset + 1;
                        match parse(record) {
                            Ok(record) => each(record, offset),
                            Err(e) => {
                                let first = self
                                    .warned
                                    .lock()
                                    .map(|mut w| w.insert((partition, offset)))
                                    .unwrap_or(true);
                                if first {
                                    let reason = ErrorChain(&e).to_string();
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
                ConsumerEvent::CaughtUp { .. } => {}
                ConsumerEvent::Failed(e) => return Err(failed(e)),
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
        writer: Option<&mut StoreWriter>,
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
        self.write(group, records, true, writer).await
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
        writer: Option<&mut StoreWriter>,
    ) -> Result<Option<i64>, OffsetsError> {
        let records = chunks
            .into_iter()
            .map(|(key, value)| (key.encode(), value))
            .collect();
        self.write(group, records, false, writer).await
    }

    /// Produces `records` to `group`'s store partition with acks=all: in
    /// one request when `atomic`, else in requests of at most
    /// [`MAX_REQUEST_BYTES`]; as `writer`'s batches when given, inside its
    /// open transaction. Returns the offset of the last one.
    async fn write(
        &self,
        group: &str,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        atomic: bool,
        mut writer: Option<&mut StoreWriter>,
    ) -> Result<Option<i64>, OffsetsError> {
        let partition = self.partition_for(group);
        let failed = |cause: CommitFailure| OffsetsError::Commit {
            group: group.to_owned(),
            partition: TopicPartition::new(self.topic.as_str(), partition),
            cause,
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
        let client = self
            .writer(partition)
            .await
            .map_err(|e| failed(CommitFailure::Leader(e)))?;
        let mut last = None;
        for records in requests {
            let count = records.len();
            let produced = match writer.as_deref_mut() {
                None => client.produce(records, Compression::NoCompression).boxed(),
                Some(w) => {
                    let identity = w.identity();
                    // Kafka's sequence numbers wrap from i32::MAX to 0.
                    w.sequence = ((i64::from(w.sequence) + count as i64) % (1 << 31)) as i32;
                    // A refused sequence fails the transaction, which is
                    // aborted (no epoch bump inside a transaction).
                    let client = &client;
                    async move {
                        let batch = EncodedBatch::encode(&records, Compression::NoCompression)?;
                        client
                            .produce_as(batch, move |a| {
                                std::future::ready(a.refused.is_none().then(|| identity.clone()))
                            })
                            .await
                    }
                    .boxed()
                }
            };
            let offsets = tokio::time::timeout(self.timeout, produced)
                .await
                .map_err(|_| {
                    failed(CommitFailure::NoAcknowledgement {
                        timeout: self.timeout,
                    })
                })?
                .map_err(|e| {
                    let e = ClientError::from(e);
                    match writer.as_deref() {
                        Some(w) if e.is_fenced() => OffsetsError::Fenced {
                            group: group.to_owned(),
                            partition: TopicPartition::new(self.topic.as_str(), partition),
                            transactional_id: w.transactional_id.clone(),
                        },
                        _ => failed(CommitFailure::Refused(e)),
                    }
                })?;
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

    async fn writer(&self, partition: i32) -> Result<Arc<PartitionClient>, LeaderLookupError> {
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

/// A transactional producer's writes to the store: its batches carry its
/// transactional id, producer id and epoch, and the next sequence number
/// of the group's store partition, so they are part of its open
/// transaction (the store partition must have been added to it) and seen
/// by the store's `read_committed` readers only once it commits.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id and epoch.
    pub producer: ProducerId,
    /// The sequence number of the next record written to the group's
    /// store partition by this producer id and epoch.
    pub sequence: i32,
}

impl StoreWriter {
    /// A writer for a producer that has not written to the store yet.
    pub fn new(transactional_id: &str, producer: ProducerId) -> Self {
        Self {
            transactional_id: transactional_id.to_owned(),
            producer,
            sequence: 0,
        }
    }

    fn identity(&self) -> BatchIdentity {
        BatchIdentity {
            producer_id: self.producer.id,
            producer_epoch: self.producer.epoch,
            base_sequence: self.sequence,
            transactional_id: Some(self.transactional_id.clone()),
        }
    }
}

/// Takes `key`'s record into `offsets`: the last commit wins, a null one
/// deletes.
pub(super) fn apply(offsets: &mut GroupOffsets, key: OffsetKey, commit: Option<Commit>) {
    match commit {
        Some(c) => {
            offsets.insert(key.partition, c);
        }
        None => {
            offsets.remove(&key.partition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_record_wins_and_null_deletes() {
        let mut offsets = GroupOffsets::new();
        let key = || OffsetKey {
            group: "g".into(),
            partition: TopicPartition::new("t", 0),
        };
        let commit = |offset| Commit {
            offset,
            committed_at: 0,
            instance: "i".into(),
            started_at: None,
            broker: None,
            state: None,
        };
        apply(&mut offsets, key(), Some(commit(5)));
        apply(&mut offsets, key(), Some(commit(9)));
        assert_eq!(offsets[&TopicPartition::new("t", 0)].offset, 9);
        apply(&mut offsets, key(), None);
        assert!(offsets.is_empty());
    }
}
