//! Topics: list, describe (leaders, replicas, watermarks, configs),
//! create with configs, delete.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, ListOffsetsRequest,
    MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::{debug, info, instrument};

use super::{
    Admin, AdminError, ConfigEntry, LEADER_CONNECT_TIMEOUT, NewTopic, PartitionDescription,
    TopicDescription, TopicSummary, topic_name, unreachable,
};
use crate::kafka::retry::{Failure, Retry, RetryError};

/// DescribeConfigs resource type of a topic (Kafka's `ConfigResource.Type`).
pub(super) const RESOURCE_TOPIC: i8 = 2;

/// ListOffsets timestamps meaning "earliest" and "latest".
const EARLIEST: i64 = -2;
pub(super) const LATEST: i64 = -1;

/// ListOffsets isolation levels: "latest" is the high watermark under
/// read_uncommitted, the last stable offset under read_committed.
pub(super) const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

impl Admin {
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

    /// The partitions of `topic` from metadata, sorted, with watermarks
    /// not yet known (-1).
    pub(super) fn topic_partitions(
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
        super::topic_result("describe", topic, None, t.error_code, None)?;
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
                last_stable: None,
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        Ok(partitions)
    }

    /// The partitions of `topic` with leader, replicas and in-sync
    /// replicas, from metadata alone: watermarks are not looked up (-1).
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownTopic`] when it does not exist; connection and
    /// protocol errors.
    pub async fn partitions(
        &mut self,
        topic: &str,
    ) -> Result<Vec<PartitionDescription>, AdminError> {
        let metadata = self.metadata(Some(&[topic])).await?;
        Self::topic_partitions(&metadata, topic)
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
        Retry::until(Instant::now() + self.config.timeout)
            .run_with(
                &mut (self, topic),
                |(admin, topic), _| Box::pin(admin.describe_topic_once(topic)),
                |e, _| debug!(topic, error = %crate::ErrorChain(e), "retrying describe"),
            )
            .await
            .map_err(RetryError::into_inner)
    }

    async fn describe_topic_once(
        &mut self,
        topic: &str,
    ) -> Result<TopicDescription, Failure<AdminError>> {
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
            let earliest = self
                .list_offsets(&address, topic, &ids, EARLIEST, READ_UNCOMMITTED)
                .await?;
            let latest = self
                .list_offsets(&address, topic, &ids, LATEST, READ_UNCOMMITTED)
                .await?;
            let stable = self
                .list_offsets(&address, topic, &ids, LATEST, READ_COMMITTED)
                .await?;
            for p in partitions.iter_mut().filter(|p| p.leader == leader) {
                p.earliest = earliest.get(&p.partition).copied().unwrap_or(-1);
                p.latest = latest.get(&p.partition).copied().unwrap_or(-1);
                p.last_stable = stable
                    .get(&p.partition)
                    .copied()
                    .filter(|&s| s >= 0 && s != p.latest);
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
        isolation: i8,
    ) -> Result<HashMap<i32, i64>, Failure<AdminError>> {
        let found = self
            .list_offsets_and_times(address, topic, partitions, timestamp, isolation)
            .await?;
        Ok(found.into_iter().map(|(p, (o, _))| (p, o)).collect())
    }

    /// ListOffsets to `address` (the partitions' leader): per partition
    /// the offset and the timestamp the broker answers (-1, -1 for a time
    /// after the last record).
    pub(super) async fn list_offsets_and_times(
        &mut self,
        address: &str,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
        isolation: i8,
    ) -> Result<HashMap<i32, (i64, i64)>, Failure<AdminError>> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
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
            Err(e) if unreachable(&e) => return Err(Failure::Retriable(e)),
            Err(e) => return Err(Failure::Fatal(e)),
        };
        let mut offsets = HashMap::new();
        for t in response.topics {
            for p in t.partitions {
                let answer = super::topic_result(
                    "list offsets of",
                    topic,
                    Some(p.partition_index),
                    p.error_code,
                    None,
                );
                if let Err(error) = answer {
                    let retriable = ResponseError::try_from_code(p.error_code)
                        .is_some_and(|e| e.is_retriable());
                    return Err(if retriable {
                        Failure::Retriable(error)
                    } else {
                        Failure::Fatal(error)
                    });
                }
                offsets.insert(p.partition_index, (p.offset, p.timestamp));
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
        let response = self.call_any(&request).await?;
        let mut entries = Vec::new();
        for result in response.results {
            super::topic_result(
                "describe configs of",
                topic,
                None,
                result.error_code,
                result.error_message.as_ref(),
            )?;
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
        // -1: the broker's default, which the broker checks.
        if topic.replication_factor > 0
            && usize::try_from(topic.replication_factor).unwrap_or(0) > brokers
        {
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
        let response = match self.call(&controller, &request).await {
            Err(e @ AdminError::RequestTimeout { .. }) => return self.created_late(topic, e).await,
            answer => answer?,
        };
        for result in response.topics {
            let checked = super::topic_result(
                "create",
                &topic.name,
                None,
                result.error_code,
                result.error_message.as_ref(),
            );
            match checked {
                Err(
                    e @ AdminError::Refused {
                        refusal:
                            super::BrokerRefusal {
                                error: ResponseError::RequestTimedOut,
                                ..
                            },
                        ..
                    },
                ) => return self.created_late(topic, e).await,
                checked => checked?,
            }
        }
        self.wait_for(&topic.name, true).await
    }

    /// After a CreateTopics that timed out: the controller may still be
    /// creating the topic (Kafka's REQUEST_TIMED_OUT says so; a loaded
    /// cluster takes longer than the deadline). Once it shows with leaders
    /// and the partitions asked for, it was created; otherwise `timed_out`
    /// stands. A retry would only have been told the topic exists.
    async fn created_late(
        &mut self,
        topic: &NewTopic,
        timed_out: AdminError,
    ) -> Result<(), AdminError> {
        self.wait_for(&topic.name, true).await?;
        let metadata = self.metadata(Some(&[&topic.name])).await?;
        match Self::topic_partitions(&metadata, &topic.name) {
            Ok(partitions)
                if !partitions.is_empty()
                    && partitions.iter().all(|p| p.leader >= 0)
                    && (topic.partitions < 1
                        || usize::try_from(topic.partitions) == Ok(partitions.len())) =>
            {
                info!(
                    topic = topic.name.as_str(),
                    "created after the request timed out"
                );
                Ok(())
            }
            _ => Err(timed_out),
        }
    }

    /// Creates `topic` unless it exists, and waits until the metadata
    /// shows it with leaders, whoever created it: several processes
    /// starting at once (members of a group) all find it. Returns whether
    /// this call created it.
    ///
    /// # Errors
    ///
    /// As [`create_topic`](Self::create_topic), but for
    /// [`AdminError::TopicExists`].
    pub async fn create_topic_if_missing(&mut self, topic: &NewTopic) -> Result<bool, AdminError> {
        // A request whose answer was lost or damaged is asked again
        // within the deadline: if the first created the topic, the next
        // is told it exists.
        let deadline = Instant::now() + self.config.timeout;
        loop {
            match self.create_topic(topic).await {
                Ok(()) => return Ok(true),
                Err(AdminError::TopicExists { .. }) => {
                    self.wait_for(&topic.name, true).await?;
                    return Ok(false);
                }
                Err(e) if super::unreachable(&e) && Instant::now() < deadline => {
                    debug!(topic = topic.name.as_str(), error = %crate::ErrorChain(&e), "creating the topic failed; asking again");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Deletes a topic and waits until its metadata is gone.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownTopic`] when it does not exist; the broker's
    /// refusal otherwise.
    #[instrument(skip(self))]
    pub async fn delete_topic(&mut self, topic: &str) -> Result<(), AdminError> {
        if let Some(holds) = kafka_internal(topic) {
            return Err(AdminError::InternalTopic {
                topic: topic.to_owned(),
                holds,
            });
        }
        let metadata = self.metadata(Some(&[topic])).await?;
        Self::topic_partitions(&metadata, topic)?;
        let flagged = metadata
            .topics
            .iter()
            .any(|t| t.is_internal && t.name.as_ref().is_some_and(|n| n.0.as_str() == topic));
        if flagged {
            return Err(AdminError::InternalTopic {
                topic: topic.to_owned(),
                holds: "the broker marks it internal",
            });
        }
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
            super::topic_result(
                "delete",
                topic,
                None,
                result.error_code,
                result.error_message.as_ref(),
            )?;
        }
        self.wait_for(topic, false).await
    }

    /// Polls metadata until `topic` exists with leaders (or is gone), so a
    /// command that follows sees the change. Gives up quietly at the
    /// deadline: the broker already confirmed the change.
    pub(super) async fn wait_for(&mut self, topic: &str, present: bool) -> Result<(), AdminError> {
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

/// What one of Kafka's internal topics holds, by name; `None` for any
/// other topic. (The broker also marks them internal in its metadata,
/// all but the KRaft log, which it does not list.)
pub fn kafka_internal(topic: &str) -> Option<&'static str> {
    match topic {
        "__consumer_offsets" => Some("every consumer group's committed offsets"),
        "__transaction_state" => Some("every transactional producer's state"),
        "__share_group_state" => Some("every share group's delivery state"),
        "__cluster_metadata" => Some("the KRaft cluster's metadata log"),
        _ => None,
    }
}
