//! The topic a produce job writes to: its partition count, created first
//! when asked, and the record timestamps it accepts.

use tracing::warn;

use crate::kafka::admin::{Admin, AdminError, NewTopic};
use crate::timestamp::TimestampLimits;

/// How a topic to produce to is found.
#[derive(Debug, Clone)]
pub struct TopicPlan {
    /// The topic.
    pub name: String,
    /// Create it with these partitions and replicas when it is missing.
    pub create: Option<(i32, i16)>,
}

/// Errors finding the topic to produce to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic does not exist, and was not to be created.
    #[error("topic \"{0}\" does not exist (weir does not create topics on its own)")]
    Missing(String),
    /// An admin request failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
}

/// The topic's partition count, creating it first when `plan` says so,
/// and the create times it accepts.
///
/// # Errors
///
/// [`TopicError::Missing`], or the admin request's failure.
pub async fn prepare_topic(
    admin: &mut Admin,
    plan: &TopicPlan,
) -> Result<(i32, TimestampLimits), TopicError> {
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
            None => return Err(TopicError::Missing(topic)),
        },
        Err(e) => return Err(e.into()),
    };
    // A principal allowed to write may still be denied DescribeConfigs:
    // Kafka's defaults are then the best guess, and the broker still has
    // the last word.
    let timestamps = match admin.topic_configs(&plan.name).await {
        Ok(configs) => TimestampLimits::from_configs(
            configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_deref())),
        ),
        Err(e) => {
            warn!(
                topic = plan.name.as_str(),
                error = %crate::ErrorChain(&e),
                "cannot read the topic's timestamp limits; assuming Kafka's defaults"
            );
            TimestampLimits::default()
        }
    };
    Ok((partitions, timestamps))
}
