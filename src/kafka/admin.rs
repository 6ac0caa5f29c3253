//! Topics: list, describe, create (with configs) and delete.
//!
//! rskafka's `create_topic` cannot pass topic configs and it has no
//! DescribeConfigs, yet weir's offsets store needs `cleanup.policy=compact`.
//! [`Admin`] therefore speaks the protocol itself over
//! [`wire`] connections that honour the same TLS, SASL and
//! deadline as everything else.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, ListOffsetsRequest,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Message, Request, StrBytes};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{debug, instrument};

use crate::kafka::connect::{ConnectError, ConnectionConfig};
use crate::kafka::wire::{self, BrokerConnection, WireError};

/// DescribeConfigs resource type of a topic (Kafka's `ConfigResource.Type`).
const RESOURCE_TOPIC: i8 = 2;

/// ListOffsets timestamps meaning "earliest" and "latest".
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

/// Errors of topic administration. Each names the topic involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The cluster could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A request failed on the wire.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// `create` of a topic that exists.
    #[error("topic \"{topic}\" already exists")]
    TopicExists {
        /// The topic.
        topic: String,
    },
    /// A topic that does not exist.
    #[error("topic \"{topic}\" does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// More replicas asked for than there are brokers.
    #[error(
        "cannot create topic \"{topic}\": replication factor {requested} is above the number of brokers ({available})"
    )]
    ReplicationFactor {
        /// The topic.
        topic: String,
        /// Replication factor asked for.
        requested: i16,
        /// Brokers in the cluster.
        available: usize,
    },
    /// The broker refused a request about a topic.
    #[error("cannot {action} topic \"{topic}\": {reason}")]
    Refused {
        /// What weir tried: create, delete, describe.
        action: &'static str,
        /// The topic.
        topic: String,
        /// The broker's error and message.
        reason: String,
    },
    /// A broker accepted the request but did not answer in time.
    #[error("broker \"{broker}\" did not answer {api} within {}", humantime::format_duration(*.timeout))]
    RequestTimeout {
        /// `host:port` of the broker.
        broker: String,
        /// The request.
        api: String,
        /// The deadline.
        timeout: std::time::Duration,
    },
}

/// How long a request to a partition leader tries to connect before the
/// leaders are looked up again.
const LEADER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `e` says the broker could not be reached or stopped answering,
/// rather than refused the request.
fn unreachable(e: &AdminError) -> bool {
    match e {
        AdminError::Connect(ConnectError::Wire(w)) | AdminError::Wire(w) => {
            matches!(w, WireError::Timeout { .. }) || w.is_retryable()
        }
        AdminError::RequestTimeout { .. } => true,
        _ => false,
    }
}

/// An attempt's error: worth another try (a leader being elected or
/// moved), or final.
#[derive(Debug)]
enum Retry {
    Again(AdminError),
    Fail(AdminError),
}

impl<E: Into<AdminError>> From<E> for Retry {
    fn from(e: E) -> Self {
        Self::Fail(e.into())
    }
}

/// A topic in [`Admin::list_topics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicSummary {
    /// Topic name.
    pub topic: String,
    /// Number of partitions.
    pub partitions: usize,
    /// Whether the broker marks it internal.
    pub internal: bool,
}

/// Everything [`Admin::describe_topic`] reports.
#[derive(Debug, Clone, Serialize)]
pub struct TopicDescription {
    /// Topic name.
    pub topic: String,
    /// Per partition: leader, replicas, watermarks.
    pub partitions: Vec<PartitionDescription>,
    /// Topic configs as the broker reports them.
    pub configs: Vec<ConfigEntry>,
}

/// One partition of a [`TopicDescription`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionDescription {
    /// Partition index.
    pub partition: i32,
    /// Broker id of the leader (-1 when there is none).
    pub leader: i32,
    /// Broker ids of the replicas.
    pub replicas: Vec<i32>,
    /// Broker ids of the in-sync replicas.
    pub isr: Vec<i32>,
    /// Earliest offset still stored (the low watermark).
    pub earliest: i64,
    /// Offset the next record will get (the high watermark).
    pub latest: i64,
}

/// One topic config entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigEntry {
    /// Config name, e.g. `cleanup.policy`.
    pub name: String,
    /// Value; `None` when the broker hides it (sensitive) or has none.
    pub value: Option<String>,
    /// Where the value comes from: `topic`, `broker`, `default`, …
    pub source: &'static str,
    /// Whether the value cannot be changed.
    pub read_only: bool,
    /// Whether the value is sensitive.
    pub sensitive: bool,
}

impl ConfigEntry {
    /// Whether the value was set on the topic itself rather than inherited.
    pub fn is_topic_override(&self) -> bool {
        self.source == "topic"
    }
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions (at least 1).
    pub partitions: i32,
    /// Replication factor (at least 1).
    pub replication_factor: i16,
    /// Topic configs, e.g. `cleanup.policy=compact`.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A compacted topic that weir creates for its own records (the
    /// offsets store, `count --to-topic`), replicated as Kafka replicates
    /// its `__consumer_offsets`: on 3 brokers (`offsets.topic.replication.factor`),
    /// or on every broker of a smaller cluster, so that it outlives a
    /// broker. `min.insync.replicas` is one less than the replication
    /// factor (at least 1): an `acks=all` write counts once two of three
    /// replicas have it, so a broker lost after the acknowledgement loses
    /// nothing, and one broker down stops no commit.
    pub fn compacted_replicated(name: &str, partitions: i32, brokers: usize) -> Self {
        let replication = brokers.clamp(1, 3);
        let min_insync = (replication - 1).max(1);
        Self {
            name: name.to_owned(),
            partitions,
            replication_factor: i16::try_from(replication).unwrap_or(1),
            configs: vec![
                ("cleanup.policy".to_owned(), "compact".to_owned()),
                ("min.insync.replicas".to_owned(), min_insync.to_string()),
            ],
        }
    }
}

/// An administrative session with a cluster.
#[derive(Debug)]
pub struct Admin {
    config: ConnectionConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Open connections by `host:port`.
    connections: HashMap<String, BrokerConnection>,
    /// The address of the bootstrap connection, used for metadata.
    bootstrap: String,
}

impl Admin {
    /// Connects to the first bootstrap broker that answers.
    ///
    /// # Errors
    ///
    /// [`AdminError::Connect`] when no broker answers within the timeout or
    /// TLS or SASL fail.
    pub async fn connect(config: &ConnectionConfig) -> Result<Self, AdminError> {
        let tls = config.rustls_config()?;
        let deadline = Instant::now() + config.timeout;
        let conn = wire::connect_any(config, tls.clone(), deadline)
            .await
            .map_err(ConnectError::from)?;
        let bootstrap = conn.broker().to_owned();
        Ok(Self {
            config: config.clone(),
            tls,
            connections: HashMap::from([(bootstrap.clone(), conn)]),
            bootstrap,
        })
    }

    /// The connection to the broker at `address`, opened if needed, trying
    /// to connect for at most `limit`.
    async fn connection(
        &mut self,
        address: &str,
        limit: Duration,
    ) -> Result<&mut BrokerConnection, AdminError> {
        if !self.connections.contains_key(address) {
            let deadline = Instant::now() + limit;
            let conn = wire::connect_to(&self.config, address, self.tls.clone(), deadline)
                .await
                .map_err(ConnectError::from)?;
            self.connections.insert(address.to_owned(), conn);
        }
        Ok(self.connections.get_mut(address).expect("inserted above"))
    }

    /// Sends a request to the broker at `address` within the configured
    /// timeout. A connection that failed is dropped; the next call reopens it.
    async fn call<R: Request + Message>(
        &mut self,
        address: &str,
        request: &R,
    ) -> Result<R::Response, AdminError> {
        self.call_within(address, request, self.config.timeout)
            .await
    }

    /// As [`call`](Self::call), trying to connect for at most
    /// `connect_limit`.
    async fn call_within<R: Request + Message>(
        &mut self,
        address: &str,
        request: &R,
        connect_limit: Duration,
    ) -> Result<R::Response, AdminError> {
        let timeout = self.config.timeout;
        let conn = self.connection(address, connect_limit).await?;
        let result = tokio::time::timeout(timeout, conn.request(request)).await;
        match result {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.connections.remove(address);
                Err(e.into())
            }
            Err(_) => {
                self.connections.remove(address);
                Err(AdminError::RequestTimeout {
                    broker: address.to_owned(),
                    api: api_name::<R>(),
                    timeout,
                })
            }
        }
    }

    async fn metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse, AdminError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|&n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        // A broker restarting under a job closes its connections: reconnect
        // to any bootstrap broker and ask again, until the deadline, as the
        // Java clients do with a metadata request that found no broker.
        let deadline = Instant::now() + self.config.timeout;
        loop {
            let bootstrap = self.bootstrap.clone();
            match self.call(&bootstrap, &request).await {
                Err(e) if unreachable(&e) && Instant::now() < deadline => {
                    debug!(broker = bootstrap.as_str(), error = %e, "metadata failed; reconnecting");
                    let conn = wire::connect_any(&self.config, self.tls.clone(), deadline)
                        .await
                        .map_err(ConnectError::from)?;
                    self.bootstrap = conn.broker().to_owned();
                    self.connections.insert(self.bootstrap.clone(), conn);
                }
                result => return result,
            }
        }
    }

    /// Addresses of the cluster's brokers by id.
    fn broker_addresses(metadata: &MetadataResponse) -> BTreeMap<i32, String> {
        metadata
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect()
    }

    /// Lists the topics of the cluster, sorted by name.
    ///
    /// # Errors
    ///
    /// Connection and protocol errors.
    #[instrument(skip(self))]
    pub async fn list_topics(&mut self) -> Result<Vec<TopicSummary>, AdminError> {
        let metadata = self.metadata(None).await?;
        let mut topics: Vec<_> = metadata
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .filter_map(|t| {
                Some(TopicSummary {
                    topic: t.name.as_ref()?.0.to_string(),
                    partitions: t.partitions.len(),
                    internal: t.is_internal,
                })
            })
            .collect();
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        Ok(topics)
    }

    /// Number of brokers in the cluster.
    ///
    /// # Errors
    ///
    /// Connection and protocol errors.
    pub async fn broker_count(&mut self) -> Result<usize, AdminError> {
        Ok(self.metadata(None).await?.brokers.len())
    }

    /// Number of partitions of `topic`.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownTopic`] when it does not exist.
    pub async fn partition_count(&mut self, topic: &str) -> Result<usize, AdminError> {
        let metadata = self.metadata(Some(&[topic])).await?;
        Ok(Self::topic_partitions(&metadata, topic)?.len())
    }

    /// The partitions of `topic` from metadata, sorted, with watermarks
    /// not yet known (-1).
    fn topic_partitions(
        metadata: &MetadataResponse,
        topic: &str,
    ) -> Result<Vec<PartitionDescription>, AdminError> {
        let t = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .ok_or_else(|| AdminError::UnknownTopic {
                topic: topic.to_owned(),
            })?;
        match ResponseError::try_from_code(t.error_code) {
            None => {}
            Some(ResponseError::UnknownTopicOrPartition) => {
                return Err(AdminError::UnknownTopic {
                    topic: topic.to_owned(),
                });
            }
            Some(e) => {
                return Err(AdminError::Refused {
                    action: "describe",
                    topic: topic.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
        let mut partitions: Vec<_> = t
            .partitions
            .iter()
            .map(|p| PartitionDescription {
                partition: p.partition_index,
                leader: p.leader_id.0,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                earliest: -1,
                latest: -1,
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        Ok(partitions)
    }

    /// Describes `topic`: partitions with leader, replicas, ISR, earliest
    /// and latest offsets, and its configs.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownTopic`] when it does not exist; connection and
    /// protocol errors.
    #[instrument(skip(self))]
    pub async fn describe_topic(&mut self, topic: &str) -> Result<TopicDescription, AdminError> {
        // Kafka answers ListOffsets with NOT_LEADER_OR_FOLLOWER (or
        // LEADER_NOT_AVAILABLE) while a new topic's leaders are being
        // elected or after a leader moved: as the Java admin client, look
        // up the leaders again and retry until the deadline.
        let deadline = Instant::now() + self.config.timeout;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.describe_topic_once(topic).await {
                Err(Retry::Again(e)) if Instant::now() + backoff < deadline => {
                    debug!(topic, error = %e, "retrying describe");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(Retry::Again(e) | Retry::Fail(e)) => return Err(e),
                Ok(description) => return Ok(description),
            }
        }
    }

    async fn describe_topic_once(&mut self, topic: &str) -> Result<TopicDescription, Retry> {
        let metadata = self.metadata(Some(&[topic])).await?;
        let mut partitions = Self::topic_partitions(&metadata, topic)?;
        let addresses = Self::broker_addresses(&metadata);

        // ListOffsets must go to each partition's leader.
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in &partitions {
            by_leader.entry(p.leader).or_default().push(p.partition);
        }
        for (leader, ids) in by_leader {
            let Some(address) = addresses.get(&leader).cloned() else {
                debug!(topic, leader, "leader unknown, watermarks left out");
                continue;
            };
            let earliest = self.list_offsets(&address, topic, &ids, EARLIEST).await?;
            let latest = self.list_offsets(&address, topic, &ids, LATEST).await?;
            for p in partitions.iter_mut().filter(|p| p.leader == leader) {
                p.earliest = earliest.get(&p.partition).copied().unwrap_or(-1);
                p.latest = latest.get(&p.partition).copied().unwrap_or(-1);
            }
        }

        let configs = self.topic_configs(topic).await?;
        Ok(TopicDescription {
            topic: topic.to_owned(),
            partitions,
            configs,
        })
    }

    async fn list_offsets(
        &mut self,
        address: &str,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<HashMap<i32, i64>, Retry> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    ),
            ]);
        // The metadata can name a leader that is gone: a broker that died
        // is fenced by the controller only when its session expires
        // (broker.session.timeout.ms, 9 s), and only then is a new leader
        // elected. As the Java admin client, a leader that cannot be
        // reached is looked up again (`describe_topic` retries), instead
        // of being dialled until the deadline.
        let limit = self.config.timeout.min(LEADER_CONNECT_TIMEOUT);
        let response = match self.call_within(address, &request, limit).await {
            Ok(response) => response,
            Err(e) if unreachable(&e) => return Err(Retry::Again(e)),
            Err(e) => return Err(Retry::Fail(e)),
        };
        let mut offsets = HashMap::new();
        for t in response.topics {
            for p in t.partitions {
                if let Some(e) = ResponseError::try_from_code(p.error_code) {
                    let error = AdminError::Refused {
                        action: "list offsets of",
                        topic: topic.to_owned(),
                        reason: format!("partition {}: {e}", p.partition_index),
                    };
                    return Err(if e.is_retriable() {
                        Retry::Again(error)
                    } else {
                        Retry::Fail(error)
                    });
                }
                offsets.insert(p.partition_index, p.offset);
            }
        }
        Ok(offsets)
    }

    /// The configs of `topic`, sorted by name.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownTopic`] when it does not exist; the broker's
    /// refusal otherwise.
    #[instrument(skip(self))]
    pub async fn topic_configs(&mut self, topic: &str) -> Result<Vec<ConfigEntry>, AdminError> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configuration_keys(None),
        ]);
        let bootstrap = self.bootstrap.clone();
        let response = self.call(&bootstrap, &request).await?;
        let mut entries = Vec::new();
        for result in response.results {
            match ResponseError::try_from_code(result.error_code) {
                None => {}
                Some(ResponseError::UnknownTopicOrPartition) => {
                    return Err(AdminError::UnknownTopic {
                        topic: topic.to_owned(),
                    });
                }
                Some(e) => {
                    return Err(AdminError::Refused {
                        action: "describe configs of",
                        topic: topic.to_owned(),
                        reason: with_message(e, result.error_message.as_ref()),
                    });
                }
            }
            entries.extend(result.configs.into_iter().map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: config_source(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            }));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Creates a topic with its configs and waits until its metadata shows
    /// every partition with a leader.
    ///
    /// # Errors
    ///
    /// [`AdminError::TopicExists`], [`AdminError::ReplicationFactor`], or the
    /// broker's refusal (e.g. an invalid config), each naming the topic.
    #[instrument(skip(self))]
    pub async fn create_topic(&mut self, topic: &NewTopic) -> Result<(), AdminError> {
        let metadata = self.metadata(None).await?;
        let brokers = metadata.brokers.len();
        if usize::try_from(topic.replication_factor).unwrap_or(0) > brokers {
            return Err(AdminError::ReplicationFactor {
                topic: topic.name.clone(),
                requested: topic.replication_factor,
                available: brokers,
            });
        }
        let controller = Self::broker_addresses(&metadata)
            .remove(&metadata.controller_id.0)
            .unwrap_or_else(|| self.bootstrap.clone());

        let timeout_ms = i32::try_from(self.config.timeout.as_millis()).unwrap_or(i32::MAX);
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(&topic.name))
                    .with_num_partitions(topic.partitions)
                    .with_replication_factor(topic.replication_factor)
                    .with_configs(
                        topic
                            .configs
                            .iter()
                            .map(|(k, v)| {
                                CreatableTopicConfig::default()
                                    .with_name(StrBytes::from_string(k.clone()))
                                    .with_value(Some(StrBytes::from_string(v.clone())))
                            })
                            .collect(),
                    ),
            ]);
        let response = self.call(&controller, &request).await?;
        for result in response.topics {
            match ResponseError::try_from_code(result.error_code) {
                None => {}
                Some(ResponseError::TopicAlreadyExists) => {
                    return Err(AdminError::TopicExists {
                        topic: topic.name.clone(),
                    });
                }
                Some(e) => {
                    return Err(AdminError::Refused {
                        action: "create",
                        topic: topic.name.clone(),
                        reason: with_message(e, result.error_message.as_ref()),
                    });
                }
            }
        }
        self.wait_for(&topic.name, true).await
    }

    /// Deletes a topic and waits until its metadata is gone.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownTopic`] when it does not exist; the broker's
    /// refusal otherwise.
    #[instrument(skip(self))]
    pub async fn delete_topic(&mut self, topic: &str) -> Result<(), AdminError> {
        let metadata = self.metadata(Some(&[topic])).await?;
        Self::topic_partitions(&metadata, topic)?;
        let controller = Self::broker_addresses(&metadata)
            .remove(&metadata.controller_id.0)
            .unwrap_or_else(|| self.bootstrap.clone());

        let timeout_ms = i32::try_from(self.config.timeout.as_millis()).unwrap_or(i32::MAX);
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
        // Version 6 moved names from `topic_names` into `topics`.
        let version = self
            .connection(&controller, self.config.timeout)
            .await?
            .version_for::<DeleteTopicsRequest>()?;
        if version >= 6 {
            request.topics = vec![DeleteTopicState::default().with_name(Some(topic_name(topic)))];
        } else {
            request.topic_names = vec![topic_name(topic)];
        }
        let response = self.call(&controller, &request).await?;
        for result in response.responses {
            match ResponseError::try_from_code(result.error_code) {
                None => {}
                Some(ResponseError::UnknownTopicOrPartition) => {
                    return Err(AdminError::UnknownTopic {
                        topic: topic.to_owned(),
                    });
                }
                Some(e) => {
                    return Err(AdminError::Refused {
                        action: "delete",
                        topic: topic.to_owned(),
                        reason: with_message(e, result.error_message.as_ref()),
                    });
                }
            }
        }
        self.wait_for(topic, false).await
    }

    /// Polls metadata until `topic` exists with leaders (or is gone), so a
    /// command that follows sees the change. Gives up quietly at the
    /// deadline: the broker already confirmed the change.
    async fn wait_for(&mut self, topic: &str, present: bool) -> Result<(), AdminError> {
        let deadline = Instant::now() + self.config.timeout;
        loop {
            let metadata = self.metadata(Some(&[topic])).await?;
            let ready = match Self::topic_partitions(&metadata, topic) {
                Ok(partitions) => {
                    present && partitions.iter().all(|p| p.leader >= 0) && !partitions.is_empty()
                }
                Err(AdminError::UnknownTopic { .. }) => !present,
                Err(e) => return Err(e),
            };
            if ready || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

fn api_name<R: Request>() -> String {
    crate::kafka::wire::api_name(R::KEY)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn with_message(error: ResponseError, message: Option<&StrBytes>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!("{error}: {}", m.as_str()),
        _ => error.to_string(),
    }
}

/// Kafka's `ConfigSource` codes as words.
fn config_source(code: i8) -> &'static str {
    match code {
        1 => "topic",
        2 => "dynamic-broker",
        3 => "dynamic-default-broker",
        4 => "static-broker",
        5 => "default",
        6 => "dynamic-broker-logger",
        7 => "client-metrics",
        8 => "group",
        _ => "unknown",
    }
}
