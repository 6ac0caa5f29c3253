//! Topics: list, describe, create (with configs) and delete, the offsets
//! for a time, and Kafka's rule for their names ([`validate_topic_name`]);
//! the cluster and its partitions' placement.
//!
//! rskafka's `create_topic` cannot pass topic configs and it has no
//! DescribeConfigs, yet weir's offsets store needs `cleanup.policy=compact`.
//! [`Admin`] therefore speaks the protocol itself over
//! `wire` connections that honour the same TLS, SASL and
//! deadline as everything else.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Message, Request, StrBytes};
use serde::Serialize;
use tokio::time::Instant;
use tracing::debug;

use crate::kafka::connect::{ConnectError, ConnectionConfig};
use crate::kafka::wire::{self, BrokerConnection, WireError, WireOptions};

mod alter;
mod cluster;
pub mod groups;
mod name;
mod times;
mod topics;

pub use cluster::{ClusterDescription, PartitionLayout, TopicLayout};
pub use name::{InvalidTopicName, MAX_TOPIC_NAME_LENGTH, validate_topic_name};
pub use times::OffsetForTime;
pub use topics::kafka_internal;

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
    /// One of Kafka's internal topics, which weir never deletes.
    #[error(
        "topic \"{topic}\" is internal to Kafka ({holds}); weir never deletes it (kafka-topics refuses it too)"
    )]
    InternalTopic {
        /// The topic.
        topic: String,
        /// What it holds.
        holds: &'static str,
    },
    /// The broker refused a request about a topic.
    #[error("cannot {action} topic \"{topic}\"{}", partition.map(|p| format!(" partition {p}")).unwrap_or_default())]
    Refused {
        /// What weir tried: create, delete, describe.
        action: &'static str,
        /// The topic.
        topic: String,
        /// The partition, when the refusal was about one.
        partition: Option<i32>,
        /// The broker's error and message.
        #[source]
        refusal: BrokerRefusal,
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

/// A broker's error code for a request, with the message it sent along.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
pub struct BrokerRefusal {
    /// The error code, as Kafka names it.
    pub error: ResponseError,
    /// The broker's message, if it sent a non-empty one.
    pub message: Option<String>,
}

/// The error code a broker answered about `topic` (and `partition`), as
/// weir's error: the one place where the codes of topic requests become
/// [`AdminError`]s.
fn topic_result(
    action: &'static str,
    topic: &str,
    partition: Option<i32>,
    code: i16,
    message: Option<&StrBytes>,
) -> Result<(), AdminError> {
    let topic = topic.to_owned();
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(ResponseError::UnknownTopicOrPartition) if partition.is_none() => {
            Err(AdminError::UnknownTopic { topic })
        }
        Some(ResponseError::TopicAlreadyExists) => Err(AdminError::TopicExists { topic }),
        Some(error) => Err(AdminError::Refused {
            action,
            topic,
            partition,
            refusal: BrokerRefusal {
                error,
                message: message
                    .filter(|m| !m.is_empty())
                    .map(|m| m.as_str().to_owned()),
            },
        }),
    }
}

/// How long a request to a partition leader tries to connect before the
/// leaders are looked up again.
const LEADER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `e` says the broker could not be reached or stopped answering,
/// rather than refused the request.
pub(super) fn unreachable(e: &AdminError) -> bool {
    match e {
        AdminError::Connect(ConnectError::Wire(w)) | AdminError::Wire(w) => {
            matches!(w, WireError::Timeout { .. }) || w.is_retryable()
        }
        AdminError::RequestTimeout { .. } => true,
        _ => false,
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
    /// The last stable offset (the first record of the oldest transaction
    /// still open), when it lies below the high watermark; read_committed
    /// consumers read no further.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_stable: Option<i64>,
}

/// A broker of the cluster, as its metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerDescription {
    /// The broker's id (`node.id`).
    pub id: i32,
    /// `host:port` it advertises to clients.
    pub address: String,
    /// Its rack, when it has one.
    pub rack: Option<String>,
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
    /// Replication factor (at least 1), or
    /// [`DEFAULT_REPLICATION`](NewTopic::DEFAULT_REPLICATION) for the
    /// cluster's `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic configs, e.g. `cleanup.policy=compact`.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A replication factor of -1: the cluster's
    /// `default.replication.factor` (KIP-464, CreateTopics v4, Kafka 2.4),
    /// as `kafka-topics --create` without `--replication-factor`.
    pub const DEFAULT_REPLICATION: i16 = -1;

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

impl NewTopic {
    /// An internal topic of weir's that carries records between two
    /// stages of a job (a count's partial aggregates across group
    /// members): replicated as [`compacted_replicated`](Self::compacted_replicated),
    /// deleted by retention (the broker's default) rather than compacted.
    pub fn internal_replicated(name: &str, partitions: i32, brokers: usize) -> Self {
        let mut topic = Self::compacted_replicated(name, partitions, brokers);
        topic.configs.retain(|(k, _)| k != "cleanup.policy");
        topic
            .configs
            .push(("cleanup.policy".to_owned(), "delete".to_owned()));
        topic
    }
}

/// An administrative session with a cluster.
#[derive(Debug)]
pub struct Admin {
    config: ConnectionConfig,
    wire: WireOptions,
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
        let wire = config.wire_options()?;
        let deadline = Instant::now() + config.timeout;
        let conn = wire::connect_checked(&wire, &config.brokers, deadline)
            .await
            .map_err(ConnectError::from)?;
        let bootstrap = conn.broker().to_owned();
        Ok(Self {
            config: config.clone(),
            wire,
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
            let conn = wire::connect_to(&self.wire, address, deadline)
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
        self.call_any(&request).await
    }

    /// Sends a request any broker can answer to the bootstrap broker. A
    /// broker restarting under a job closes its connections: reconnect to
    /// any bootstrap broker and ask again, until the deadline, as the Java
    /// clients do with a metadata request that found no broker.
    async fn call_any<R: Request + Message>(
        &mut self,
        request: &R,
    ) -> Result<R::Response, AdminError> {
        let deadline = Instant::now() + self.config.timeout;
        loop {
            let bootstrap = self.bootstrap.clone();
            match self.call(&bootstrap, request).await {
                Err(e) if unreachable(&e) && Instant::now() < deadline => {
                    debug!(broker = bootstrap.as_str(), api = api_name::<R>(), error = %crate::ErrorChain(&e), "request failed; reconnecting");
                    let conn = wire::connect_any(&self.wire, &self.config.brokers, deadline)
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

    /// Number of brokers in the cluster.
    ///
    /// # Errors
    ///
    /// Connection and protocol errors.
    pub async fn broker_count(&mut self) -> Result<usize, AdminError> {
        Ok(self.metadata(None).await?.brokers.len())
    }

    /// The brokers the cluster's metadata lists, by id.
    ///
    /// # Errors
    ///
    /// Connection and protocol errors.
    pub async fn brokers(&mut self) -> Result<Vec<BrokerDescription>, AdminError> {
        Ok(broker_descriptions(&self.metadata(None).await?))
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
}

/// The brokers a Metadata response lists, by id.
fn broker_descriptions(metadata: &MetadataResponse) -> Vec<BrokerDescription> {
    let mut brokers: Vec<_> = metadata
        .brokers
        .iter()
        .map(|b| BrokerDescription {
            id: b.node_id.0,
            address: format!("{}:{}", b.host.as_str(), b.port),
            rack: b.rack.as_ref().map(|r| r.as_str().to_owned()),
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    brokers
}

fn api_name<R: Request>() -> String {
    crate::kafka::wire::api_name(R::KEY)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}
