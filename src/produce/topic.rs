//! The topic a produce job writes to: its partition count, created first
//! when asked, and the record timestamps it accepts.

use tracing::warn;

use crate::kafka::admin::{Admin, AdminError, NewTopic};
use crate::produce::size::DEFAULT_MAX_MESSAGE_BYTES;
use crate::timestamp::TimestampLimits;

/// How a topic to produce to is found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TopicPlan {
    /// The topic.
    pub name: String,
    /// Create it with these partitions and replicas when it is missing.
    pub create: Option<(i32, i16)>,
}

impl TopicPlan {
    /// The topic `name`, which must exist.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            create: None,
        }
    }

    /// With [`create`](Self::create): `Some((partitions, replicas))`
    /// creates the topic when it is missing.
    #[must_use]
    pub fn with_create(mut self, create: Option<(i32, i16)>) -> Self {
        self.create = create;
        self
    }
}

/// Errors finding the topic to produce to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic does not exist, and was not to be created: the same
    /// words as every reader's and the producer's `UnknownTopic`.
    #[error("topic \"{topic}\" does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// An admin request failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

/// What a topic accepts, from its configs: the create times and the
/// largest batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// The create times it accepts.
    pub timestamps: TimestampLimits,
    /// Its `max.message.bytes` (the broker's `message.max.bytes` unless
    /// the topic sets it).
    pub max_message_bytes: usize,
    /// Whether it is compacted (`cleanup.policy` has `compact`): the
    /// broker refuses a record without a key, and its batch with it.
    pub compacted: bool,
}

impl Default for TopicLimits {
    fn default() -> Self {
        Self {
            timestamps: TimestampLimits::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            compacted: false,
        }
    }
}

impl TopicLimits {
    /// The limits in a topic's configs, as `(name, value)` pairs (the
    /// values in force); a missing or unreadable value keeps Kafka's
    /// default.
    pub fn from_configs<'a>(
        configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)> + Clone,
    ) -> Self {
        let max_message_bytes = configs
            .clone()
            .into_iter()
            .find(|(name, _)| *name == "max.message.bytes")
            .and_then(|(_, value)| value?.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
        let compacted = configs
            .clone()
            .into_iter()
            .find(|(name, _)| *name == "cleanup.policy")
            .and_then(|(_, value)| value)
            .is_some_and(|policy| policy.split(',').any(|p| p.trim() == "compact"));
        Self {
            timestamps: TimestampLimits::from_configs(configs),
            max_message_bytes,
            compacted,
        }
    }
}

/// The topic's partition count, creating it first when `plan` says so,
/// and what it accepts.
///
/// # Errors
///
/// [`TopicError::UnknownTopic`], or the admin request's failure.
pub async fn prepare_topic(
    admin: &mut Admin,
    plan: &TopicPlan,
) -> Result<(i32, TopicLimits), TopicError> {
    let partitions = match admin.partition_count(&plan.name).await {
        Ok(n) => i32::try_from(n).unwrap_or(i32::MAX),
        Err(AdminError::UnknownTopic { topic }) => match plan.create {
            Some((partitions, replication_factor)) => {
                admin
                    .create_topic(&NewTopic {
                        name: topic,
                        partitions,
                        replication_factor,
                        configs: Vec::new(),
                    })
                    .await?;
                partitions
            }
            None => return Err(TopicError::UnknownTopic { topic }),
        },
        Err(e) => return Err(e.into()),
    };
    Ok((partitions, topic_limits(admin, &plan.name).await))
}

/// What `topic` accepts, from its configs. A principal allowed to write
/// may still be denied DescribeConfigs: Kafka's defaults are then the
/// best guess, and the broker still has the last word.
pub async fn topic_limits(admin: &mut Admin, topic: &str) -> TopicLimits {
    match admin.topic_configs(topic).await {
        Ok(configs) => TopicLimits::from_configs(
            configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_deref())),
        ),
        Err(e) => {
            warn!(
                topic,
                error = %crate::ErrorChain(&e),
                "cannot read the topic's limits (timestamps, max.message.bytes); assuming Kafka's defaults"
            );
            TopicLimits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_batch_is_read_from_the_topic_configs() {
        let limits = TopicLimits::from_configs([
            ("max.message.bytes", Some("10485760")),
            ("message.timestamp.type", Some("LogAppendTime")),
        ]);
        assert_eq!(limits.max_message_bytes, 10_485_760);
        assert!(limits.timestamps.log_append_time);
        assert!(!limits.compacted);
        let unset = TopicLimits::from_configs([("max.message.bytes", None)]);
        assert_eq!(unset.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        let compacted = TopicLimits::from_configs([("cleanup.policy", Some("delete,compact"))]);
        assert!(compacted.compacted);
    }
}
