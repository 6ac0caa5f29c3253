//! Changing a topic, as `kafka-configs --alter` and `kafka-topics --alter`
//! do: its configs (IncrementalAlterConfigs, KIP-339: set or delete one
//! key without touching the others) and its partition count
//! (CreatePartitions).

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{CreatePartitionsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use tracing::instrument;

use super::topics::RESOURCE_TOPIC;
use super::{Admin, AdminError, topic_name};

/// IncrementalAlterConfigs' operations.
const SET: i8 = 0;
const DELETE: i8 = 1;

impl Admin {
    /// Sets the configs `set` (`key`, `value`) of `topic` and deletes the
    /// keys `delete` (back to the broker's default); other configs stay.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownTopic`], or the broker's refusal (an unknown
    /// key, a value out of range), naming the topic.
    #[instrument(skip(self))]
    pub async fn alter_topic_configs(
        &mut self,
        topic: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<(), AdminError> {
        let metadata = self.metadata(Some(&[topic])).await?;
        Self::topic_partitions(&metadata, topic)?;
        let configs = set
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(SET)
                    .with_value(Some(StrBytes::from_string(v.clone())))
            })
            .chain(delete.iter().map(|k| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(DELETE)
            }))
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configs(configs),
        ]);
        let response = self.call_any(&request).await?;
        for result in response.responses {
            super::topic_result(
                "alter configs of",
                topic,
                None,
                result.error_code,
                result.error_message.as_ref(),
            )?;
        }
        Ok(())
    }

    /// Raises `topic`'s partition count to `count` and waits until the
    /// metadata shows them with leaders. Kafka cannot take partitions
    /// away; the broker refuses a count that is not larger.
    ///
    /// # Errors
    ///
    /// [`AdminError::UnknownTopic`], or the broker's refusal naming the
    /// topic.
    #[instrument(skip(self))]
    pub async fn add_partitions(&mut self, topic: &str, count: i32) -> Result<(), AdminError> {
        let metadata = self.metadata(Some(&[topic])).await?;
        Self::topic_partitions(&metadata, topic)?;
        let controller = Self::broker_addresses(&metadata)
            .remove(&metadata.controller_id.0)
            .unwrap_or_else(|| self.bootstrap.clone());
        let timeout_ms = i32::try_from(self.config.timeout.as_millis()).unwrap_or(i32::MAX);
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(topic_name(topic))
                    .with_count(count)
                    // Null: the controller places the new partitions.
                    .with_assignments(None),
            ]);
        let response = self.call(&controller, &request).await?;
        for result in response.results {
            super::topic_result(
                "add partitions to",
                topic,
                None,
                result.error_code,
                result.error_message.as_ref(),
            )?;
        }
        // Until the new partitions show with leaders, so that a command
        // that follows writes to them; quietly at the deadline, as the
        // broker already confirmed.
        let deadline = Instant::now() + self.config.timeout;
        loop {
            let metadata = self.metadata(Some(&[topic])).await?;
            let partitions = Self::topic_partitions(&metadata, topic)?;
            let ready = usize::try_from(count).is_ok_and(|n| partitions.len() >= n)
                && partitions.iter().all(|p| p.leader >= 0);
            if ready || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
