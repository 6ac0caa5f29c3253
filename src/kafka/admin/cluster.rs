//! The cluster as a whole: its id, controller, brokers, and how many
//! topics and partitions it holds, from one Metadata request; and each
//! partition's leader, replicas and in-sync replicas (kcat -L).

use kafka_protocol::messages::MetadataResponse;
use serde::Serialize;
use tracing::instrument;

use super::{Admin, AdminError, BrokerDescription};

/// Everything [`Admin::describe_cluster`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterDescription {
    /// The cluster's id; `None` from a broker too old to send it
    /// (Metadata before v2).
    pub cluster_id: Option<String>,
    /// The id of the broker the cluster names as its controller; `None`
    /// when it names none. Under KRaft a broker names one of the brokers
    /// (which forwards to the controller quorum), as the Java
    /// `AdminClient.describeCluster` reports it.
    pub controller: Option<i32>,
    /// The brokers, by id.
    pub brokers: Vec<BrokerDescription>,
    /// Topics, not counting internal ones.
    pub topics: usize,
    /// Partitions of those topics.
    pub partitions: usize,
    /// Topics the broker marks internal (`__consumer_offsets`,
    /// `__transaction_state`).
    pub internal_topics: usize,
    /// Partitions of the internal topics.
    pub internal_partitions: usize,
}

impl ClusterDescription {
    /// The description a Metadata response for every topic gives.
    fn from_metadata(metadata: &MetadataResponse) -> Self {
        let mut description = Self {
            cluster_id: metadata
                .cluster_id
                .as_ref()
                .map(|id| id.as_str().to_owned()),
            controller: Some(metadata.controller_id.0).filter(|&id| id >= 0),
            brokers: super::broker_descriptions(metadata),
            topics: 0,
            partitions: 0,
            internal_topics: 0,
            internal_partitions: 0,
        };
        // A topic with an error (being deleted, not authorized) is not
        // listed by `topics list` either.
        for topic in metadata.topics.iter().filter(|t| t.error_code == 0) {
            if topic.is_internal {
                description.internal_topics += 1;
                description.internal_partitions += topic.partitions.len();
            } else {
                description.topics += 1;
                description.partitions += topic.partitions.len();
            }
        }
        description
    }
}

/// A topic's partitions as the cluster's metadata places them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicLayout {
    /// The topic.
    pub topic: String,
    /// Whether the broker marks it internal (`__consumer_offsets`).
    pub internal: bool,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionLayout>,
}

/// Where one partition lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLayout {
    /// Partition index.
    pub partition: i32,
    /// The leader's broker id; `None` (the broker's -1) for an offline
    /// partition, which no client can read or write.
    pub leader: Option<i32>,
    /// Broker ids of the replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// Broker ids of the in-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas on brokers that are offline (log directory failed or
    /// broker gone), as the metadata lists them.
    pub offline_replicas: Vec<i32>,
}

impl PartitionLayout {
    /// No leader: the partition cannot be read or written.
    pub fn is_offline(&self) -> bool {
        self.leader.is_none()
    }

    /// Fewer in-sync replicas than replicas.
    pub fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

/// The layouts in a Metadata response, sorted by topic and partition; a
/// topic with an error (being deleted, not authorized) is left out, as
/// `topics list` leaves it out, unless it was asked for by name.
fn layouts(
    metadata: &MetadataResponse,
    asked: Option<&[&str]>,
) -> Result<Vec<TopicLayout>, AdminError> {
    let mut topics = Vec::new();
    for t in &metadata.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        if asked.is_some() {
            super::topic_result("describe", &name, None, t.error_code, None)?;
        } else if t.error_code != 0 {
            continue;
        }
        let mut partitions: Vec<_> = t
            .partitions
            .iter()
            .map(|p| PartitionLayout {
                partition: p.partition_index,
                leader: Some(p.leader_id.0).filter(|&id| id >= 0),
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        topics.push(TopicLayout {
            topic: name,
            internal: t.is_internal,
            partitions,
        });
    }
    topics.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(topics)
}

impl Admin {
    /// Each partition's leader, replicas, in-sync and offline replicas,
    /// of `topics` or (`None`) of every topic, internal ones included.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownTopic`] for a named topic that does not
    /// exist; connection and protocol errors.
    #[instrument(skip(self))]
    pub async fn topic_layouts(
        &mut self,
        topics: Option<&[&str]>,
    ) -> Result<Vec<TopicLayout>, AdminError> {
        let metadata = self.metadata(topics).await?;
        layouts(&metadata, topics)
    }

    /// The cluster's id, controller and brokers, and the number of its
    /// topics and partitions.
    ///
    /// # Errors
    ///
    /// Connection and protocol errors.
    #[instrument(skip(self))]
    pub async fn describe_cluster(&mut self) -> Result<ClusterDescription, AdminError> {
        let metadata = self.metadata(None).await?;
        Ok(ClusterDescription::from_metadata(&metadata))
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn topic(
        name: &str,
        partitions: usize,
        internal: bool,
        error_code: i16,
    ) -> MetadataResponseTopic {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
            .with_is_internal(internal)
            .with_error_code(error_code)
            .with_partitions(vec![MetadataResponsePartition::default(); partitions])
    }

    #[test]
    fn internal_topics_and_failed_topics_are_counted_apart() {
        let metadata = MetadataResponse::default()
            .with_cluster_id(Some(StrBytes::from_static_str("abc")))
            .with_controller_id(BrokerId(2))
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(2))
                    .with_host(StrBytes::from_static_str("b"))
                    .with_port(9094),
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("a"))
                    .with_port(9092)
                    .with_rack(Some(StrBytes::from_static_str("r1"))),
            ])
            .with_topics(vec![
                topic("orders", 6, false, 0),
                topic("logs", 3, false, 0),
                topic("__consumer_offsets", 50, true, 0),
                // UNKNOWN_TOPIC_OR_PARTITION: being deleted.
                topic("gone", 2, false, 3),
            ]);
        let d = ClusterDescription::from_metadata(&metadata);
        assert_eq!(d.cluster_id.as_deref(), Some("abc"));
        assert_eq!(d.controller, Some(2));
        let brokers: Vec<_> = d
            .brokers
            .iter()
            .map(|b| (b.id, b.address.as_str(), b.rack.as_deref()))
            .collect();
        assert_eq!(brokers, [(1, "a:9092", Some("r1")), (2, "b:9094", None)]);
        assert_eq!((d.topics, d.partitions), (2, 9));
        assert_eq!((d.internal_topics, d.internal_partitions), (1, 50));
    }

    #[test]
    fn no_controller_is_none() {
        let metadata = MetadataResponse::default().with_controller_id(BrokerId(-1));
        assert_eq!(
            ClusterDescription::from_metadata(&metadata).controller,
            None
        );
    }
}
