use crate::{
    backoff::{Backoff, BackoffConfig, ErrorOrThrottle},
    client::error::{Error, RequestContext, Result},
    connection::{
        BrokerCache, BrokerCacheGeneration, BrokerConnection, BrokerConnector, MessengerTransport,
        MetadataLookupMode, Purpose,
    },
    messenger::RequestError,
    protocol::{
        error::Error as ProtocolError,
        messages::{
            DeleteRecordsRequest, DeleteRecordsResponse, DeleteRequestPartition,
            DeleteRequestTopic, DeleteResponsePartition, FetchResponse,
            FetchResponsePartition, ListOffsetsRequest,
            ListOffsetsRequestPartition, ListOffsetsRequestTopic, ListOffsetsResponse,
            ListOffsetsResponsePartition, NORMAL_CONSUMER, ProduceRequest,
            ProduceRequestPartitionData, ProduceRequestTopicData, ProduceResponse,
        },
        primitives::*,
        record::*,
    },
    record::{Record, RecordAndOffset},
    throttle::maybe_throttle,
    validation::ExactlyOne,
};
use chrono::{DateTime, LocalResult, TimeZone, Utc};
use std::{
    ops::{ControlFlow, Deref, Range},
    sync::Arc,
};
use tokio::sync::Mutex;
use tracing::{debug, error, info};

use super::{error::ServerErrorResponse, metadata_cache::MetadataCacheGeneration};
// weir: aborted transactions left out of READ_COMMITTED fetches.
use super::transactions::{AbortedTransactions, next_fetch_offset};
// weir: the isolation level of `fetch_records_isolated` and
// `get_offset_isolated`.
pub use crate::protocol::messages::IsolationLevel;

/// How strongly a [`PartitionClient`] is bound to a partition.
///
/// Under some circumstances and broker implementations, you might face a [`ProtocolError::UnknownTopicOrPartition`]
/// for nearly all operations directly after topic/partition creation. Since the Kafka protocol offers no (at least
/// to our knowledge) way to differentiate between "a topic/partition actually does not exist" and "our multiverse
/// split brain is not synced up yet", we can only offer you a manual way to wait for topic existence.
///
/// We offer the following ways to deal with this:
///
/// - Use a [`Error`](Self::Error). All other methods (including the creation of a [`PartitionClient`]) may produce
///   sporadic [`ProtocolError::UnknownTopicOrPartition`] errors.
/// - Use a [`Retry`](Self::Error) which assumes a partition exists and retries [`ProtocolError::UnknownTopicOrPartition`]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownTopicHandling {
    /// When a [`ProtocolError::UnknownTopicOrPartition`] is returned by Kafka,
    /// it is passed up to the user to handle.
    ///
    /// These errors may occur spuriously.
    Error,

    /// Always retry operations that return a
    /// [`ProtocolError::UnknownTopicOrPartition`], until the operation succeeds
    /// or a different error is returned.
    ///
    /// This may unpredictably increase operation latency.
    Retry,
}

/// Compression of records.
///
/// This is only relevant for [produce requests](PartitionClient::produce). There the client compresses the records.
///
/// For [fetch requests](PartitionClient::fetch_records) we have to accept a message as it exists, i.e. how it was
/// originally compressed. The broker will NOT change the data compression based on our request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    #[default]
    NoCompression,
    #[cfg(feature = "compression-gzip")]
    Gzip,
    #[cfg(feature = "compression-lz4")]
    Lz4,
    #[cfg(feature = "compression-snappy")]
    Snappy,
    #[cfg(feature = "compression-zstd")]
    Zstd,
}

/// weir: what a fetch returned, from
/// [`PartitionClient::fetch_records_isolated`].
#[derive(Debug)]
pub struct FetchedRecords {
    /// The records, in offset order: no transaction markers, and under
    /// [`IsolationLevel::ReadCommitted`] none of aborted transactions.
    pub records: Vec<RecordAndOffset>,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// The partition's last stable offset (the first offset of its
    /// oldest open transaction, else the high watermark), if the broker
    /// sent one.
    pub last_stable_offset: Option<i64>,
    /// Where the next fetch starts: past the last batch fetched,
    /// transaction markers and aborted records included (the request's
    /// offset when nothing was fetched).
    pub next_offset: i64,
}

/// Which type of offset should be requested by [`PartitionClient::get_offset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetAt {
    /// Earliest existing record.
    ///
    /// This is NOT the earliest produced record but the earliest record that is still kept, i.e. the offset might
    /// change if records are pruned by Kafka (retention policy) or if the are deleted.
    Earliest,

    /// The latest existing record.
    Latest,

    /// Timestamp
    ///
    /// The Kafka API supports querying an offset based on a timestamp, but the behavior seems to be
    /// semi-defined, unintuitive (even within Apache Kafka) and inconsistent between Apache Kafka and Redpanda. Mostly it
    /// offers timestamp based querying with millisecond precision.
    Timestamp(DateTime<Utc>),
}

#[derive(Debug)]
struct CurrentBroker {
    broker: Option<BrokerConnection>,
    gen_broker: BrokerCacheGeneration,
    gen_leader_from_arbitrary: Option<MetadataCacheGeneration>,
    gen_leader_from_self: Option<MetadataCacheGeneration>,
}

/// Many operations must be performed on the leader for a partition
///
/// Additionally a partition is the unit of concurrency within Kafka
///
/// As such a [`PartitionClient`] is a dedicated connection to the broker that
/// is the leader for a given partition.
///
/// In the event of a leadership change, [`PartitionClient`] will transparently
/// handle migrating to the new broker
///
pub struct PartitionClient {
    topic: String,
    partition: i32,
    brokers: Arc<BrokerConnector>,

    backoff_config: Arc<BackoffConfig>,

    /// Current broker connection if any
    current_broker: Mutex<CurrentBroker>,

    /// weir: the address of the last leader found, for error messages.
    leader_address: parking_lot::Mutex<Option<String>>,

    /// weir: the id of the last leader found, whose shared connections
    /// carry this partition's requests.
    leader_id: std::sync::atomic::AtomicI32,

    unknown_topic_handling: UnknownTopicHandling,

    /// weir: see [`set_caller_retries`](Self::set_caller_retries).
    caller_retries: bool,
}

impl std::fmt::Debug for PartitionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartitionClient({}:{})", self.topic, self.partition)
    }
}

impl PartitionClient {
    pub(super) async fn new(
        topic: String,
        partition: i32,
        brokers: Arc<BrokerConnector>,
        unknown_topic_handling: UnknownTopicHandling,
        backoff_config: Arc<BackoffConfig>,
    ) -> Result<Self> {
        let p = Self {
            topic,
            partition,
            brokers: Arc::clone(&brokers),
            backoff_config,
            current_broker: Mutex::new(CurrentBroker {
                broker: None,
                gen_broker: BrokerCacheGeneration::START,
                gen_leader_from_arbitrary: None,
                gen_leader_from_self: None,
            }),
            leader_address: parking_lot::Mutex::new(None),
            leader_id: std::sync::atomic::AtomicI32::new(-1),
            unknown_topic_handling,
            caller_retries: false,
        };

        // Force discover and establish a cached connection to the leader
        let scope = &p;
        maybe_retry(
            &p.backoff_config,
            p.unknown_topic_handling,
            false,
            &*brokers,
            "leader_detection",
            || async move {
                scope
                    .get()
                    .await
                    .map_err(|e| ErrorOrThrottle::Error((e, None)))?;
                Ok(())
            },
        )
        .await?;

        Ok(p)
    }

    /// Topic
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Partition
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// weir: how later requests treat UNKNOWN_TOPIC_OR_PARTITION. A client
    /// opened with [`UnknownTopicHandling::Retry`] (a topic just created,
    /// which some brokers learn of a moment later) can switch to `Error`
    /// once it reads, so that a topic deleted under it fails its next
    /// request at once instead of after every retry.
    pub fn set_unknown_topic_handling(&mut self, handling: UnknownTopicHandling) {
        self.unknown_topic_handling = handling;
    }

    /// weir: whether the caller retries fetches. With `true`, an error
    /// this client would retry in
    /// [`fetch_records_isolated`](Self::fetch_records_isolated) (a broken
    /// connection, a stale leader, a leader not yet elected) is returned
    /// at once, after the cached leader is
    /// dropped as for a retry, so that the next request looks it up
    /// again: a caller with its own deadline (weir's fetch loop) sees
    /// every failed attempt when it happens (to count it and report the
    /// partition as failing) instead of the last one after rskafka's
    /// backoff. Throttling is still waited out here.
    pub fn set_caller_retries(&mut self, caller_retries: bool) {
        self.caller_retries = caller_retries;
    }

    /// weir: `host:port` of the last leader this client found, if any.
    pub fn leader_address(&self) -> Option<String> {
        self.leader_address.lock().clone()
    }

    /// weir: whether the topic still exists, asked of any broker with a
    /// metadata request that cannot create it.
    pub async fn topic_exists(&self) -> Result<bool> {
        let (metadata, _gen) = self
            .brokers
            .request_metadata(
                &MetadataLookupMode::ArbitraryBroker,
                Some(vec![self.topic.clone()]),
            )
            .await?;
        Ok(metadata.topics.iter().any(|t| {
            t.name.0 == self.topic && t.error != Some(ProtocolError::UnknownTopicOrPartition)
        }))
    }

    /// weir: produce a batch as an idempotent (or transactional) producer:
    /// the batch carries a producer id, epoch and base sequence, so a
    /// retry of a batch the broker already appended is answered with the
    /// first append's offsets instead of storing it twice.
    ///
    /// `stamp` gives the identity before every attempt, told which attempt
    /// it is and the broker's refusal of the last one when that was about
    /// the producer's sequence (OUT_OF_ORDER_SEQUENCE_NUMBER,
    /// UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH), or `None` after any
    /// other retriable error. The caller holds a retry back until the
    /// partition's earlier batches are settled, so batches are retried in
    /// sequence order (as the Java producer does) and a new leader without
    /// the producer's state never takes a later batch first; after a
    /// refusal it may give a new epoch and sequence (the Java producer's
    /// epoch bump, KIP-360), or `None` to fail with the refusal.
    ///
    /// The batch was encoded ahead ([`EncodedBatch::encode`]): every
    /// attempt sends the same bytes.
    pub async fn produce_as<S, SF>(&self, batch: EncodedBatch, stamp: S) -> Result<Vec<i64>>
    where
        S: Fn(ProduceAttempt) -> SF + Send + Sync,
        SF: std::future::Future<Output = Option<BatchIdentity>> + Send,
    {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let n = batch.records() as i64;
        let request = &Mutex::new(batch.into_request(self.partition, &self.topic));
        let attempts = &std::sync::atomic::AtomicUsize::new(0);
        let refusal = &std::sync::Mutex::new(None::<Error>);
        let stamp = &stamp;
        maybe_retry(
            &self.backoff_config,
            self.unknown_topic_handling,
            false,
            self,
            "produce",
            || async move {
                loop {
                    let number = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Only the attempt just before counts: one that failed
                    // otherwise since (a broken connection) may have been
                    // appended, and an older refusal must not make the
                    // caller start a new epoch and append it again.
                    let last = refusal.lock().expect("not poisoned").take();
                    let refused = last.as_ref().and_then(|e| match e {
                        Error::ServerError { protocol_error, .. } => Some(*protocol_error),
                        _ => None,
                    });
                    let Some(identity) = stamp(ProduceAttempt { number, refused }).await else {
                        let error = last.expect("given up after a refusal only");
                        return Err(ErrorOrThrottle::Error((error, None)));
                    };
                    let mut request = request.lock().await;
                    identity.stamp(&mut request);
                    let (_broker, r#gen) = self
                        .get()
                        .await
                        .map_err(|e| ErrorOrThrottle::Error((e, None)))?;
                    let response = Box::pin(self.produce_shared(&mut request))
                        .await
                        .map_err(|e| ErrorOrThrottle::Error((e, Some(r#gen))))?;
                    maybe_throttle(response.throttle_time_ms)?;
                    let answer = process_produce_response(self.partition, &self.topic, n, response);
                    let sequence_refusal = matches!(
                        answer,
                        Err(Error::ServerError {
                            protocol_error: ProtocolError::OutOfOrderSequenceNumber
                                | ProtocolError::UnknownProducerId
                                | ProtocolError::InvalidProducerEpoch,
                            ..
                        })
                    );
                    match answer {
                        Err(e) if sequence_refusal => {
                            *refusal.lock().expect("not poisoned") = Some(e);
                        }
                        answer => {
                            return answer.map_err(|e| ErrorOrThrottle::Error((e, Some(r#gen))));
                        }
                    }
                }
            },
        )
        .await
    }

    /// Produce a batch of records to the partition
    pub async fn produce(
        &self,
        records: Vec<Record>,
        compression: Compression,
    ) -> Result<Vec<i64>> {
        // weir: encoded once, by the same code as `produce_as`'s batches.
        self.produce_encoded(EncodedBatch::encode(&records, compression)?)
            .await
    }

    /// weir: [`produce`](Self::produce) a batch encoded ahead.
    pub async fn produce_encoded(&self, batch: EncodedBatch) -> Result<Vec<i64>> {
        // skip request entirely if `records` is empty
        if batch.is_empty() {
            return Ok(vec![]);
        }

        let n = batch.records() as i64;
        let request = &Mutex::new(batch.into_request(self.partition, &self.topic));

        maybe_retry(
            &self.backoff_config,
            self.unknown_topic_handling,
            false,
            self,
            "produce",
            || async move {
                let (_broker, r#gen) = self
                    .get()
                    .await
                    .map_err(|e| ErrorOrThrottle::Error((e, None)))?;
                let mut request = request.lock().await;
                let response = Box::pin(self.produce_shared(&mut request))
                    .await
                    .map_err(|e| ErrorOrThrottle::Error((e, Some(r#gen))))?;
                maybe_throttle(response.throttle_time_ms)?;
                process_produce_response(self.partition, &self.topic, n, response)
                    .map_err(|e| ErrorOrThrottle::Error((e, Some(r#gen))))
            },
        )
        .await
    }

    /// weir: sends `request` (this partition's one batch) through the
    /// leader's shared connection, in one Produce request with the other
    /// partitions' batches to it; the batch is put back for a retry.
    async fn produce_shared(&self, request: &mut ProduceRequest) -> Result<ProduceResponse> {
        let leader = self.leader_id.load(std::sync::atomic::Ordering::Acquire);
        let records = &mut request.topic_data[0].partition_data[0].records.0;
        let batch = records.pop().expect("a produce request holds one batch");
        // weir: the broker is asked to answer within the request timeout,
        // after which the client gives the request up.
        let timeout_ms = i32::try_from(self.brokers.request_timeout().as_millis()).unwrap_or(i32::MAX);
        request.timeout_ms.0 = timeout_ms;
        let key = crate::connection::ProduceKey {
            acks: request.acks.0,
            timeout_ms,
            transactional_id: request.transactional_id.0.clone(),
        };
        // Boxed: a shallower future for callers that nest it deep.
        let answer = Box::pin(self.brokers.produce_shared(
            leader,
            &self.topic,
            self.partition,
            key,
            batch,
        ))
        .await;
        let Some((response, batch)) = answer else {
            return Err(Error::InvalidResponse(format!(
                "the produce request to partition {} of \"{}\" was dropped",
                self.partition, self.topic
            )));
        };
        request.topic_data[0].partition_data[0].records.0.push(batch);
        Ok(response?)
    }

    /// Fetch `bytes` bytes of record data starting at sequence number `offset`
    ///
    /// Returns the records, and the current high watermark.
    ///
    /// weir: read committed, records of aborted transactions left out (see
    /// [`fetch_records_isolated`](Self::fetch_records_isolated)).
    ///
    /// # Error Handling
    /// Fetching records outside the range known the to broker (marked by low and high watermark) will lead to a
    /// [`ServerError`](Error::ServerError) with [`OffsetOutOfRange`](ProtocolError::OffsetOutOfRange). You may use
    /// [`get_offset`](Self::get_offset) to determine the offset range.
    pub async fn fetch_records(
        &self,
        offset: i64,
        bytes: Range<i32>,
        max_wait_ms: i32,
    ) -> Result<(Vec<RecordAndOffset>, i64)> {
        let fetched = self
            .fetch_records_isolated(offset, bytes, max_wait_ms, IsolationLevel::ReadCommitted)
            .await?;
        Ok((fetched.records, fetched.high_watermark))
    }

    /// weir: [`fetch_records`](Self::fetch_records) at `isolation`, with
    /// the partition's state and where the next fetch starts. Under
    /// [`IsolationLevel::ReadCommitted`] the broker returns records up to
    /// the last stable offset, and the records of aborted transactions are
    /// left out here, as the Java consumer does; transaction markers
    /// (control batches) are never returned as records.
    pub async fn fetch_records_isolated(
        &self,
        offset: i64,
        bytes: Range<i32>,
        max_wait_ms: i32,
        isolation: IsolationLevel,
    ) -> Result<FetchedRecords> {
        let bytes = &bytes;
        let partition = maybe_retry(
            &self.backoff_config,
            self.unknown_topic_handling,
            self.caller_retries,
            self,
            "fetch_records",
            || async move {
                let (_broker, r#gen) = self
                    .get()
                    .await
                    .map_err(|e| ErrorOrThrottle::Error((e, None)))?;
                // weir: through the leader's shared fetch connections, in
                // one Fetch request with its other partitions.
                let leader = self.leader_id.load(std::sync::atomic::Ordering::Acquire);
                let response = Box::pin(self.brokers.fetch_shared(
                    leader,
                    &self.topic,
                    self.partition,
                    offset,
                    bytes.clone(),
                    max_wait_ms,
                    isolation,
                ))
                .await
                    .map_err(|e| ErrorOrThrottle::Error((e.into(), Some(r#gen))))?;
                maybe_throttle(response.throttle_time_ms)?;
                process_fetch_response(self.partition, &self.topic, response, offset)
                    .map_err(|e| ErrorOrThrottle::Error((e, Some(r#gen))))
            },
        )
        .await?;

        let batches = partition.records.0;
        let next_offset = next_fetch_offset(&batches, offset);
        let batches = match isolation {
            IsolationLevel::ReadCommitted => {
                AbortedTransactions::new(&partition.aborted_transactions).retain(batches)
            }
            IsolationLevel::ReadUncommitted => batches,
        };
        let records = extract_records(batches, offset)?;

        Ok(FetchedRecords {
            records,
            high_watermark: partition.high_watermark.0,
            // -1: unknown (Kafka before 0.11, or no answer for it).
            last_stable_offset: partition
                .last_stable_offset
                .map(|o| o.0)
                .filter(|&o| o >= 0),
            next_offset,
        })
    }

    /// Get offset for this partition.
    ///
    /// Note that the value returned by this method should be considered stale data, since:
    ///
    /// - **[`OffsetAt::Earliest`]:** Might be change at any time due to the Kafka retention policy or by
    ///   [deleting records](Self::delete_records).
    /// - **[`OffsetAt::Latest`]:** Might be change at any time by [producing records](Self::produce).
    pub async fn get_offset(&self, at: OffsetAt) -> Result<i64> {
        self.get_offset_isolated(at, IsolationLevel::ReadCommitted)
            .await
    }

    /// weir: [`get_offset`](Self::get_offset) at `isolation`:
    /// [`OffsetAt::Latest`] is the last stable offset under
    /// [`IsolationLevel::ReadCommitted`], the high watermark under
    /// [`IsolationLevel::ReadUncommitted`].
    pub async fn get_offset_isolated(
        &self,
        at: OffsetAt,
        isolation: IsolationLevel,
    ) -> Result<i64> {
        let request = &build_list_offsets_request(self.partition, &self.topic, at, isolation);

        let partition = maybe_retry(
            &self.backoff_config,
            self.unknown_topic_handling,
            false,
            self,
            "get_offset",
            || async move {
                let (broker, r#gen) = self
                    .get()
                    .await
                    .map_err(|e| ErrorOrThrottle::Error((e, None)))?;
                // weir: within the request timeout (a silent leader's
                // connection is broken for a retry on a new one).
                let response = self
                    .brokers
                    .within_request_timeout(&broker, "ListOffsets", broker.request(&request))
                    .await
                    .map_err(|e| ErrorOrThrottle::Error((e.into(), Some(r#gen))))?;
                maybe_throttle(response.throttle_time_ms)?;
                process_list_offsets_response(self.partition, &self.topic, response)
                    .map_err(|e| ErrorOrThrottle::Error((e, Some(r#gen))))
            },
        )
        .await?;

        extract_offset(partition)
    }

    /// Delete records whose offset is smaller than the given offset.
    ///
    /// # Supported Brokers
    /// Currently this is only supported by Apache Kafka but NOT by Redpanda, see
    /// <https://github.com/redpanda-data/redpanda/issues/1016>.
    pub async fn delete_records(&self, offset: i64, timeout_ms: i32) -> Result<()> {
        let request =
            &build_delete_records_request(offset, timeout_ms, &self.topic, self.partition);

        maybe_retry(
            &self.backoff_config,
            self.unknown_topic_handling,
            false,
            self,
            "delete_records",
            || async move {
                let (broker, r#gen) = self
                    .get()
                    .await
                    .map_err(|e| ErrorOrThrottle::Error((e, None)))?;
                // weir: within the request timeout (a silent leader's
                // connection is broken for a retry on a new one).
                let response = self
                    .brokers
                    .within_request_timeout(&broker, "DeleteRecords", broker.request(&request))
                    .await
                    .map_err(|e| ErrorOrThrottle::Error((e.into(), Some(r#gen))))?;
                maybe_throttle(Some(response.throttle_time_ms))?;
                process_delete_records_response(&self.topic, self.partition, response)
                    .map_err(|e| ErrorOrThrottle::Error((e, Some(r#gen))))
            },
        )
        .await?;

        Ok(())
    }

    /// Retrieve the broker ID of the partition leader
    async fn get_leader(
        &self,
        metadata_mode: MetadataLookupMode,
    ) -> Result<(i32, Option<MetadataCacheGeneration>)> {
        let (metadata, r#gen) = self
            .brokers
            .request_metadata(&metadata_mode, Some(vec![self.topic.clone()]))
            .await?;
        self.leader_in(metadata, r#gen, &metadata_mode.to_string())
    }

    /// weir: the second half of upstream's `get_leader`: the partition's
    /// leader in `metadata`, got as `metadata_mode` says.
    fn leader_in(
        &self,
        metadata: crate::protocol::messages::MetadataResponse,
        r#gen: Option<MetadataCacheGeneration>,
        metadata_mode: &str,
    ) -> Result<(i32, Option<MetadataCacheGeneration>)> {
        let topic = metadata
            .topics
            .exactly_one()
            .map_err(Error::exactly_one_topic)?;

        if topic.name.0 != self.topic {
            return Err(Error::InvalidResponse(format!(
                "Expected metadata for topic \"{}\" got \"{}\"",
                self.topic, topic.name.0
            )));
        }

        if let Some(e) = topic.error {
            // TODO: Add retry logic
            return Err(Error::ServerError {
                protocol_error: e,
                error_message: None,
                request: RequestContext::Topic(self.topic.clone()),
                response: None,
                is_virtual: false,
            });
        }

        let partition = topic
            .partitions
            .iter()
            .find(|p| p.partition_index.0 == self.partition)
            .ok_or_else(|| {
                Error::InvalidResponse(format!(
                    "Could not find metadata for partition {} in topic \"{}\"",
                    self.partition, self.topic
                ))
            })?;

        if let Some(e) = partition.error {
            // TODO: Add retry logic
            return Err(Error::ServerError {
                protocol_error: e,
                error_message: None,
                request: RequestContext::Partition(self.topic.clone(), self.partition),
                response: None,
                is_virtual: false,
            });
        }

        if partition.leader_id.0 == -1 {
            return Err(Error::ServerError {
                protocol_error: ProtocolError::LeaderNotAvailable,
                error_message: None,
                request: RequestContext::Partition(self.topic.clone(), self.partition),
                response: None,
                is_virtual: true,
            });
        }

        info!(
            topic=%self.topic,
            partition=%self.partition,
            leader=partition.leader_id.0,
            %metadata_mode,
            "Detected leader",
        );
        Ok((partition.leader_id.0, r#gen))
    }
}

/// Caches the partition leader broker.
impl BrokerCache for &PartitionClient {
    type R = MessengerTransport;
    type E = Error;

    async fn get(&self) -> Result<(Arc<Self::R>, BrokerCacheGeneration)> {
        let mut current_broker = self.current_broker.lock().await;
        if let Some(broker) = &current_broker.broker {
            return Ok((Arc::clone(broker), current_broker.gen_broker));
        }

        info!(
            topic=%self.topic,
            partition=%self.partition,
            "Creating new partition-specific broker connection",
        );

        // Perform a request to fetch the topic metadata to determine the
        // current leader.
        //
        // Accept a cached metadata entry as a response because:
        //   * If the leader is offline, the connection call below fails and the cache is invalidated - the next call
        //     will cause the cache to be re-populate with a fresh entry.
        //   * A subsequent query is performed against the leader that does not use the cached entry - this validates
        //     the correctness of the cached entry.
        //
        let (leader, gen_leader_from_arbitrary) =
            self.get_leader(MetadataLookupMode::CachedArbitrary).await?;
        if let Some(address) = self.brokers.broker_address(leader).await {
            *self.leader_address.lock() = Some(address);
        }
        // weir: the leader's connection shared by every partition client.
        let broker = match self.brokers.shared_connection(leader, Purpose::Requests).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => {
                if let Some(r#gen) = gen_leader_from_arbitrary {
                    self.brokers.invalidate_metadata_cache(
                        "partition client: broker that is leader is unknown",
                        r#gen,
                    );
                }
                Err(Error::InvalidResponse(format!(
                    "Partition leader {} not found in metadata response",
                    leader
                )))
            }
            Err(e) => {
                if let Some(r#gen) = gen_leader_from_arbitrary {
                    self.brokers.invalidate_metadata_cache(
                        "partition client: error connecting to partition leader",
                        r#gen,
                    );
                }
                Err(e.into())
            }
        }?;

        // Check if the chosen leader also thinks it is the leader.
        //
        // For Kafka (+ Zookeeper) this seems to be required if we don't want to blindly retry `UnknownTopicOrPartition`
        // that happen after we connect to a leader (as advised by another broker) which doesn't know about its assigned
        // partition yet. The metadata query below seems to result in an LeaderNotAvailable in this case and is retried
        // by the layer above.
        //
        // This does not seem to be required for redpanda.
        //
        // Because this check requires the most up-to-date metadata from a specific broker, do not accept a cached
        // metadata response.
        //
        // weir: the partition clients of a topic checking one leader at
        // once share one request (the connection is shared: a thousand
        // such requests would queue on it ahead of every produce).
        let metadata = self
            .brokers
            .own_metadata(leader, &broker, &self.topic)
            .await?;
        let (leader_self, gen_leader_from_self) =
            self.leader_in(metadata, None, "SpecificBroker")?;
        if leader != leader_self {
            // weir: upstream 2f67e11 (after v0.6.0): the generation to
            // invalidate is that of the cached metadata which named the
            // wrong leader, not that of the leader's own answer, fresh
            // (never cached); upstream invalidated the latter, a no-op, so
            // after a leader change every retry went to the old leader
            // until something else refreshed the cache.
            if let Some(r#gen) = gen_leader_from_arbitrary {
                // The cached metadata identified an incorrect leader - it is stale and should be refreshed.
                self.brokers.invalidate_metadata_cache(
                    "partition client: broker that should be leader does treat itself as a leader",
                    r#gen,
                );
            }

            // this might happen if the leader changed after we got the hint from a arbitrary broker and this specific
            // metadata call.
            return Err(Error::ServerError {
                protocol_error: ProtocolError::NotLeaderOrFollower,
                error_message: None,
                request: RequestContext::Partition(self.topic.clone(), self.partition),
                response: Some(ServerErrorResponse::LeaderForward {
                    broker: leader,
                    new_leader: leader_self,
                }),
                is_virtual: true,
            });
        }

        self.leader_id
            .store(leader, std::sync::atomic::Ordering::Release);
        *current_broker = CurrentBroker {
            broker: Some(Arc::clone(&broker)),
            gen_broker: current_broker.gen_broker.bump(),
            gen_leader_from_arbitrary,
            gen_leader_from_self,
        };

        info!(
            topic=%self.topic,
            partition=%self.partition,
            leader,
            "Created new partition-specific broker connection",
        );
        Ok((broker, current_broker.gen_broker))
    }

    async fn invalidate(&self, reason: &'static str, r#gen: BrokerCacheGeneration) {
        let mut current_broker = self.current_broker.lock().await;

        if current_broker.gen_broker != r#gen {
            // stale request
            debug!(
                reason,
                current_gen = current_broker.gen_broker.get(),
                request_gen = r#gen.get(),
                "stale invalidation request for arbitrary broker cache",
            );
            return;
        }

        info!(
            topic = self.topic.deref(),
            partition = self.partition,
            reason,
            "Invaliding cached leader",
        );

        if let Some(r#gen) = current_broker.gen_leader_from_arbitrary {
            self.brokers.invalidate_metadata_cache(reason, r#gen);
        }
        if let Some(r#gen) = current_broker.gen_leader_from_self {
            self.brokers.invalidate_metadata_cache(reason, r#gen);
        }

        current_broker.broker = None
    }
}

/// weir: who writes a batch, for an idempotent or transactional producer
/// (Kafka's record batch v2 producer fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchIdentity {
    /// The producer id the broker gave (InitProducerId).
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
    /// The sequence number of the batch's first record in this partition.
    pub base_sequence: i32,
    /// The transactional id, for a batch inside a transaction.
    pub transactional_id: Option<String>,
}

/// weir: an attempt of [`PartitionClient::produce_as`]: its number (0 for
/// the first), and the broker's refusal of the one before when that was
/// about the producer's identity or sequence.
#[derive(Debug, Clone, Copy)]
pub struct ProduceAttempt {
    /// 0 for the first attempt.
    pub number: usize,
    /// OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID or
    /// INVALID_PRODUCER_EPOCH from the attempt before.
    pub refused: Option<ProtocolError>,
}

impl BatchIdentity {
    fn stamp(&self, request: &mut ProduceRequest) {
        request.transactional_id =
            crate::protocol::primitives::NullableString(self.transactional_id.clone());
        for topic in &mut request.topic_data {
            for partition in &mut topic.partition_data {
                for batch in &mut partition.records.0 {
                    batch.producer_id = self.producer_id;
                    batch.producer_epoch = self.producer_epoch;
                    batch.base_sequence = self.base_sequence;
                    batch.is_transactional = self.transactional_id.is_some();
                }
            }
        }
    }
}

/// Takes a `request_name` and a function yielding a fallible future
/// and handles certain classes of error
async fn maybe_retry<B, R, F, T>(
    backoff_config: &BackoffConfig,
    unknown_topic_handling: UnknownTopicHandling,
    caller_retries: bool,
    broker_cache: B,
    request_name: &str,
    f: R,
) -> Result<T>
where
    B: BrokerCache,
    R: (Fn() -> F) + Send + Sync,
    F: std::future::Future<
            Output = Result<T, ErrorOrThrottle<(Error, Option<BrokerCacheGeneration>)>>,
        > + Send,
{
    let mut backoff = Backoff::new(backoff_config);

    backoff
        .retry_with_backoff(request_name, || async {
            let (error, cache_gen) = match f().await {
                Ok(v) => {
                    return ControlFlow::Break(Ok(v));
                }
                Err(ErrorOrThrottle::Throttle(throttle)) => {
                    return ControlFlow::Continue(ErrorOrThrottle::Throttle(throttle));
                }
                Err(ErrorOrThrottle::Error(e)) => e,
            };

            let retry = match error {
                // weir: a response that cannot be decoded (a damaged
                // frame) is a failed attempt like a broken connection.
                Error::Request(
                    RequestError::Poisoned(_)
                    | RequestError::IO(_)
                    | RequestError::Undecodable { .. }
                    | RequestError::TooMuchData { .. },
                )
                | Error::Connection(_) => {
                    if let Some(cache_gen) = cache_gen {
                        broker_cache
                            .invalidate("partition client: connection broken", cache_gen)
                            .await;
                    }
                    true
                }
                Error::ServerError {
                    protocol_error:
                        ProtocolError::InvalidReplicationFactor
                        | ProtocolError::LeaderNotAvailable
                        | ProtocolError::OffsetNotAvailable,
                    ..
                } => true,
                // weir: errors Kafka marks retriable and the Java producer
                // retries until its delivery timeout, which upstream treats
                // as fatal. A leader refuses writes with fewer in-sync
                // replicas than `min.insync.replicas` (NOT_ENOUGH_REPLICAS),
                // or has appended them but cannot get enough replicas to
                // acknowledge them (NOT_ENOUGH_REPLICAS_AFTER_APPEND), or
                // waited longer than the request's timeout for them
                // (REQUEST_TIMED_OUT, e.g. for a follower that died and is
                // still in the ISR until the controller fences it): all
                // pass once the replicas are back. A retry of the last two
                // can store the batch twice, as the Java producer without
                // idempotence does.
                Error::ServerError {
                    protocol_error:
                        ProtocolError::NotEnoughReplicas
                        | ProtocolError::NotEnoughReplicasAfterAppend
                        | ProtocolError::RequestTimedOut,
                    ..
                } => true,
                // weir: with several batches of an idempotent producer in
                // flight, a batch that overtook an earlier one (each is
                // retried on its own after a leader change) is refused
                // until the earlier one is appended; the Java producer
                // retries it. A sequence that never comes fails at the
                // caller's delivery deadline.
                Error::ServerError {
                    protocol_error: ProtocolError::OutOfOrderSequenceNumber,
                    ..
                } => true,
                // weir: as NOT_LEADER_OR_FOLLOWER, these say the cached
                // leader is stale (a leader epoch the broker has moved past
                // or not reached yet, a log directory gone offline on the
                // leader, a broken connection on the broker's side): the
                // Java client refreshes its metadata and retries.
                Error::ServerError {
                    protocol_error:
                        ProtocolError::NotLeaderOrFollower
                        | ProtocolError::FencedLeaderEpoch
                        | ProtocolError::UnknownLeaderEpoch
                        | ProtocolError::KafkaStorageError
                        | ProtocolError::NetworkException,
                    ..
                } => {
                    if let Some(cache_gen) = cache_gen {
                        broker_cache
                            .invalidate("partition client: server error: stale leader", cache_gen)
                            .await;
                    }
                    true
                }
                Error::ServerError {
                    protocol_error: ProtocolError::UnknownTopicOrPartition,
                    ..
                } => {
                    if let Some(cache_gen) = cache_gen {
                        broker_cache
                            .invalidate(
                                "partition client: server error: unknown topic or partition",
                                cache_gen,
                            )
                            .await;
                    }
                    unknown_topic_handling == UnknownTopicHandling::Retry
                }
                // weir: a response that decoded but does not answer the
                // request (no part for this partition, a damaged count):
                // the connection is suspect, and the request is retried
                // on a new one, as after a broken connection.
                Error::InvalidResponse(_) => {
                    if let Some(cache_gen) = cache_gen {
                        broker_cache
                            .invalidate("partition client: invalid response", cache_gen)
                            .await;
                    }
                    true
                }
                _ => false,
            };

            // weir: the caller retries (see `set_caller_retries`).
            if retry && caller_retries {
                debug!(e=%error, request_name, "request failed; the caller retries");
                ControlFlow::Break(Err(error))
            } else if retry {
                ControlFlow::Continue(ErrorOrThrottle::Error(error))
            } else {
                error!(
                    e=%error,
                    request_name,
                    "request encountered fatal error",
                );
                ControlFlow::Break(Err(error))
            }
        })
        .await
        .map_err(Error::RetryFailed)?
}

/// weir: a batch of records written and compressed ahead of its
/// request: its size on the wire is known before it is sent (a producer
/// sizes its next batches by it, and cuts one the broker would refuse),
/// and every attempt sends the same bytes instead of compressing again.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    records: EncodedRecords,
    compression: RecordBatchCompression,
    first_timestamp: i64,
    max_timestamp: i64,
}

impl EncodedBatch {
    /// Writes `records` in Kafka's record format and compresses them.
    pub fn encode(records: &[Record], compression: Compression) -> Result<Self> {
        let first_timestamp = records
            .first()
            .map_or(0, |r| r.timestamp.timestamp_millis());
        let mut max_timestamp = first_timestamp;
        let mut plain = 0;
        for record in records {
            max_timestamp = max_timestamp.max(record.timestamp.timestamp_millis());
            plain += record.approximate_size() + 16;
        }
        let compression = batch_compression(compression);
        let refs = records
            .iter()
            .enumerate()
            .map(|(offset_delta, record)| RecordRef {
                timestamp_delta: record.timestamp.timestamp_millis() - first_timestamp,
                offset_delta: offset_delta as i32,
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: &record.headers,
            });
        let records = EncodedRecords::encode(refs, plain, compression).map_err(|e| {
            Error::Request(RequestError::WriteError(
                crate::protocol::messages::WriteVersionedError::WriteError(e),
            ))
        })?;
        Ok(Self {
            records,
            compression,
            first_timestamp,
            max_timestamp,
        })
    }

    /// Bytes of the records on the wire (compressed when the batch is),
    /// without the batch's header.
    pub fn len(&self) -> usize {
        self.records.bytes.len()
    }

    /// The records as written (compressed when the batch is).
    pub fn as_bytes(&self) -> &[u8] {
        &self.records.bytes
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.count == 0
    }

    /// How many records it holds.
    pub fn records(&self) -> usize {
        self.records.count
    }

    fn into_request(self, partition: i32, topic: &str) -> ProduceRequest {
        let n = self.records.count as i32;
        produce_request(
            partition,
            topic,
            RecordBatch {
                base_offset: 0,
                partition_leader_epoch: 0,
                last_offset_delta: n - 1,
                is_transactional: false,
                base_sequence: -1,
                compression: self.compression,
                timestamp_type: RecordBatchTimestampType::CreateTime,
                producer_id: -1,
                producer_epoch: -1,
                first_timestamp: self.first_timestamp,
                max_timestamp: self.max_timestamp,
                records: ControlBatchOrRecords::Encoded(self.records),
            },
        )
    }
}

/// weir: the record batch's name for `compression`.
fn batch_compression(compression: Compression) -> RecordBatchCompression {
    match compression {
        Compression::NoCompression => RecordBatchCompression::NoCompression,
        #[cfg(feature = "compression-gzip")]
        Compression::Gzip => RecordBatchCompression::Gzip,
        #[cfg(feature = "compression-lz4")]
        Compression::Lz4 => RecordBatchCompression::Lz4,
        #[cfg(feature = "compression-snappy")]
        Compression::Snappy => RecordBatchCompression::Snappy,
        #[cfg(feature = "compression-zstd")]
        Compression::Zstd => RecordBatchCompression::Zstd,
    }
}

/// weir: a produce request of one batch to one partition.
fn produce_request(partition: i32, topic: &str, batch: RecordBatch) -> ProduceRequest {
    ProduceRequest {
        transactional_id: crate::protocol::primitives::NullableString(None),
        acks: Int16(-1),
        timeout_ms: Int32(30_000),
        topic_data: vec![ProduceRequestTopicData {
            name: String_(topic.to_string()),
            partition_data: vec![ProduceRequestPartitionData {
                index: Int32(partition),
                records: Records(vec![batch]),
            }],
        }],
    }
}

fn process_produce_response(
    partition: i32,
    topic: &str,
    num_records: i64,
    response: ProduceResponse,
) -> Result<Vec<i64>> {
    let response = response
        .responses
        .exactly_one()
        .map_err(Error::exactly_one_topic)?;

    if response.name.0 != topic {
        return Err(Error::InvalidResponse(format!(
            "Expected write for topic \"{}\" got \"{}\"",
            topic, response.name.0,
        )));
    }

    let response = response
        .partition_responses
        .exactly_one()
        .map_err(Error::exactly_one_partition)?;

    if response.index.0 != partition {
        return Err(Error::InvalidResponse(format!(
            "Expected partition {} for topic \"{}\" got {}",
            partition, topic, response.index.0,
        )));
    }

    match response.error {
        Some(e) => Err(Error::ServerError {
            protocol_error: e,
            error_message: None,
            request: RequestContext::Partition(topic.to_owned(), partition),
            response: None,
            is_virtual: false,
        }),
        None => Ok((0..num_records)
            .map(|x| x + response.base_offset.0)
            .collect()),
    }
}

fn process_fetch_response(
    partition: i32,
    topic: &str,
    response: FetchResponse,
    request_offset: i64,
) -> Result<FetchResponsePartition> {
    let response_topic = response
        .responses
        .exactly_one()
        .map_err(Error::exactly_one_topic)?;

    if response_topic.topic.0 != topic {
        return Err(Error::InvalidResponse(format!(
            "Expected data for topic '{}' but got data for topic '{}'",
            topic, response_topic.topic.0
        )));
    }

    let response_partition = response_topic
        .partitions
        .exactly_one()
        .map_err(Error::exactly_one_partition)?;

    if response_partition.partition_index.0 != partition {
        return Err(Error::InvalidResponse(format!(
            "Expected data for partition {} but got data for partition {}",
            partition, response_partition.partition_index.0
        )));
    }

    if let Some(err) = response_partition.error_code {
        return Err(Error::ServerError {
            protocol_error: err,
            error_message: None,
            request: RequestContext::Fetch {
                topic_name: topic.to_owned(),
                partition_id: partition,
                offset: request_offset,
            },
            response: Some(ServerErrorResponse::PartitionFetchState {
                high_watermark: response_partition.high_watermark.0,
                last_stable_offset: response_partition.last_stable_offset.map(|x| x.0),
            }),
            is_virtual: false,
        });
    }

    Ok(response_partition)
}

/// weir: the records of the record batches in `data` (as a fetch or a
/// ShareFetch response carries them), in offset order, control records
/// left out; a last batch cut short (at the request's size limit) is
/// dropped. For a caller that sends its own fetch requests (weir's share
/// groups, whose ShareFetch rskafka does not know).
///
/// # Errors
///
/// A batch that cannot be parsed or decompressed.
pub fn decode_records(data: &[u8]) -> Result<Vec<RecordAndOffset>> {
    let batches = Records::parse(data).map_err(|e| Error::InvalidResponse(e.to_string()))?;
    extract_records(batches.0, 0)
}

fn extract_records(
    partition_records: Vec<RecordBatch>,
    request_offset: i64,
) -> Result<Vec<RecordAndOffset>> {
    let mut records = vec![];

    for batch in partition_records {
        match batch.records {
            // weir: a fetch reads no batch as `Encoded`.
            ControlBatchOrRecords::ControlBatch(_) | ControlBatchOrRecords::Encoded(_) => {
                // ignore
            }
            ControlBatchOrRecords::Records(protocol_records) => {
                records.reserve(protocol_records.len());

                for record in protocol_records {
                    let offset = batch.base_offset + record.offset_delta as i64;
                    if offset < request_offset {
                        // Kafka does not split record batches on the server side, so we need to do this filtering on
                        // the client side
                        continue;
                    }

                    // weir: in a batch of a LogAppendTime topic every
                    // record's timestamp is the batch's max timestamp, the
                    // broker's append time (the records keep their create
                    // times), as the Java consumer reads it.
                    let appended = matches!(
                        batch.timestamp_type,
                        RecordBatchTimestampType::LogAppendTime
                    );
                    let timestamp_millis = match batch.first_timestamp.checked_add(record.timestamp_delta) {
                        _ if appended => batch.max_timestamp,
                        Some(ts) => ts,
                        None => {
                            return Err(Error::InvalidResponse(format!(
                                "Timestamp overflow (first_timestamp={}, delta={}",
                                batch.first_timestamp, record.timestamp_delta
                            )));
                        }
                    };
                    let timestamp = match Utc.timestamp_millis_opt(timestamp_millis) {
                        LocalResult::None => {
                            return Err(Error::InvalidResponse(format!(
                                "Not a valid timestamp ({timestamp_millis})"
                            )));
                        }
                        LocalResult::Single(ts) => ts,
                        LocalResult::Ambiguous(a, b) => {
                            return Err(Error::InvalidResponse(format!(
                                "Ambiguous timestamp ({timestamp_millis}): {a} or {b}"
                            )));
                        }
                    };

                    records.push(RecordAndOffset {
                        record: Record {
                            key: record.key,
                            value: record.value,
                            // weir: in order, repeated keys and null
                            // values kept (upstream: a map).
                            headers: record
                                .headers
                                .into_iter()
                                .map(|header| (header.key, header.value))
                                .collect(),
                            timestamp,
                        },
                        offset,
                        log_append_time: appended,
                    })
                }
            }
        }
    }

    Ok(records)
}

fn build_list_offsets_request(
    partition: i32,
    topic: &str,
    at: OffsetAt,
    isolation: IsolationLevel,
) -> ListOffsetsRequest {
    let timestamp = match at {
        OffsetAt::Earliest => -2,
        OffsetAt::Latest => -1,
        OffsetAt::Timestamp(ts) => ts.timestamp_millis(),
    };

    ListOffsetsRequest {
        replica_id: NORMAL_CONSUMER,
        // weir: the caller's (upstream: always read committed).
        isolation_level: Some(isolation),
        topics: vec![ListOffsetsRequestTopic {
            name: String_(topic.to_owned()),
            partitions: vec![ListOffsetsRequestPartition {
                partition_index: Int32(partition),
                timestamp: Int64(timestamp),
                max_num_offsets: Some(Int32(1)),
            }],
        }],
    }
}

fn process_list_offsets_response(
    partition: i32,
    topic: &str,
    response: ListOffsetsResponse,
) -> Result<ListOffsetsResponsePartition> {
    let response_topic = response
        .topics
        .exactly_one()
        .map_err(Error::exactly_one_topic)?;

    if response_topic.name.0 != topic {
        return Err(Error::InvalidResponse(format!(
            "Expected data for topic '{}' but got data for topic '{}'",
            topic, response_topic.name.0
        )));
    }

    let response_partition = response_topic
        .partitions
        .exactly_one()
        .map_err(Error::exactly_one_partition)?;

    if response_partition.partition_index.0 != partition {
        return Err(Error::InvalidResponse(format!(
            "Expected data for partition {} but got data for partition {}",
            partition, response_partition.partition_index.0
        )));
    }

    match response_partition.error_code {
        Some(err) => Err(Error::ServerError {
            protocol_error: err,
            error_message: None,
            request: RequestContext::Partition(topic.to_owned(), partition),
            response: None,
            is_virtual: false,
        }),
        None => Ok(response_partition),
    }
}

fn extract_offset(partition: ListOffsetsResponsePartition) -> Result<i64> {
    match (
        partition.old_style_offsets.as_ref(),
        partition.offset.as_ref(),
    ) {
        // old style
        (Some(offsets), None) => match offsets.0.as_ref() {
            Some(offsets) => match offsets.len() {
                1 => Ok(offsets[0].0),
                n => Err(Error::InvalidResponse(format!(
                    "Expected 1 offset to be returned but got {}",
                    n
                ))),
            },
            None => Err(Error::InvalidResponse(
                "Got NULL as offset array".to_owned(),
            )),
        },
        // new style
        (None, Some(offset)) => Ok(offset.0),
        _ => unreachable!(),
    }
}

fn build_delete_records_request(
    offset: i64,
    timeout_ms: i32,
    topic: &str,
    partition: i32,
) -> DeleteRecordsRequest {
    DeleteRecordsRequest {
        topics: vec![DeleteRequestTopic {
            name: String_(topic.to_string()),
            partitions: vec![DeleteRequestPartition {
                partition_index: Int32(partition),
                offset: Int64(offset),
                tagged_fields: None,
            }],
            tagged_fields: None,
        }],
        timeout_ms: Int32(timeout_ms),
        tagged_fields: None,
    }
}

fn process_delete_records_response(
    topic: &str,
    partition: i32,
    response: DeleteRecordsResponse,
) -> Result<DeleteResponsePartition> {
    let response_topic = response
        .topics
        .exactly_one()
        .map_err(Error::exactly_one_topic)?;

    if response_topic.name.0 != topic {
        return Err(Error::InvalidResponse(format!(
            "Expected data for topic '{}' but got data for topic '{}'",
            topic, response_topic.name.0
        )));
    }

    let response_partition = response_topic
        .partitions
        .exactly_one()
        .map_err(Error::exactly_one_partition)?;

    if response_partition.partition_index.0 != partition {
        return Err(Error::InvalidResponse(format!(
            "Expected data for partition {} but got data for partition {}",
            partition, response_partition.partition_index.0
        )));
    }

    match response_partition.error {
        Some(err) => Err(Error::ServerError {
            protocol_error: err,
            error_message: None,
            request: RequestContext::Partition(topic.to_owned(), partition),
            response: None,
            is_virtual: false,
        }),
        None => Ok(response_partition),
    }
}
